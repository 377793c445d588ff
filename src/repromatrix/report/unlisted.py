"""What a repro that matrix.yaml does not list is, told from its own records (pure).

`bisect --test` records `upstream_pytest` cells: a library's own test as the verdict. The
matrix has no description or issue for them, but the records do say what ran: the pytest
node id (in `provenance.params.test` when recorded, else the start of the reason, which
the runner writes as `path::node: outcome`) and the library's source URL.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from repromatrix.model import Status
from repromatrix.records import Result

_NODE = re.compile(r"^([\w./-]+\.py::[\w.]+)")


@dataclass(frozen=True, kw_only=True)
class Described:
    description: str
    #: A page to follow (the test file at a tested commit, or the library's repository).
    link: str | None


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _node(r: Result) -> str | None:
    test = _mapping(r.provenance.get("params")).get("test")
    if isinstance(test, str) and "::" in test:
        return test
    m = _NODE.match(r.reason)
    return m.group(1) if m else None


def describe_unlisted(name: str, results: Sequence[Result]) -> Described:
    """A description and link for repro `name` from its records alone."""
    nodes = sorted({n for r in results if (n := _node(r))})
    libs = sorted({lib for r in results for lib in r.pins})
    bisect = any(r.run_id.startswith("bisect-") for r in results)
    by = " by repromatrix bisect --test" if bisect else ""
    source, commit = _source(results, libs[0] if libs else None)
    if nodes:
        owner = f"{', '.join(libs)}'s own test" if libs else "the test"
        text = (
            f"Not in matrix.yaml: {owner} {', '.join(nodes)}, run as the verdict{by} "
            f"(pytest passed → passed, a test failed → regressed)."
        )
        path = nodes[0].split("::", 1)[0]
        link = source
        if source and commit and source.startswith("https://github.com/"):
            link = f"{source.removesuffix('.git').rstrip('/')}/blob/{commit}/{path}"
        return Described(description=text, link=link)
    runs = len({r.run_id for r in results})
    text = (
        f"Not in matrix.yaml: {len(results)} record(s) from {runs} run(s){by}; "
        f"the records carry no description of {name}."
    )
    return Described(description=text, link=source)


def _source(results: Sequence[Result], library: str | None) -> tuple[str | None, str | None]:
    """The library's source URL and a commit to show it at (a passing one, where a test
    added with a fix exists)."""
    if library is None:
        return None, None
    ranked = sorted(results, key=lambda r: (r.status is not Status.PASSED, r.finished))
    for r in ranked:
        entry = _mapping(_mapping(_mapping(r.provenance.get("harness")).get("pins")).get(library))
        source = entry.get("source")
        if isinstance(source, str) and source.startswith(("https://", "http://")):
            return source, r.commits.get(library)
    return None, None
