"""What a repro that matrix.yaml does not list is, told from its own records (pure).

`bisect --test` records `upstream_pytest` cells: a library's own test as the verdict. The
matrix has no description or issue for them, but the records do say what ran: the pytest
node id (in `provenance.params.test` when recorded, else the start of the reason, which
the runner writes as `path::node: outcome`) and the library's source URL.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from repromatrix.harness_pins import pin_field
from repromatrix.model import Status
from repromatrix.records import Result
from repromatrix.run_summary import BISECT_RUN_PREFIX
from repromatrix.timestamps import recency


class Counted(Protocol):
    """What the header counts of a repro (`build.ReproReport`, which imports this)."""

    @property
    def listed(self) -> bool: ...
    @property
    def counts(self) -> Mapping[str, int]: ...
    @property
    def reproduced(self) -> bool: ...


_NODE = re.compile(r"^([\w./-]+\.py::[\w.]+)")


@dataclass(frozen=True, kw_only=True)
class Described:
    description: str
    #: A page to follow (the test file at a tested commit, or the library's repository).
    link: str | None


@dataclass(frozen=True, kw_only=True)
class Tally:
    """Cells and repros of a report's header, and how many of the repros reproduced."""

    cells: int = 0
    repros: int = 0
    reproduced: int = 0

    def said(self, sep: str = ", ") -> str:
        """`5 cells, 1 repro, 1 reproduced` (`sep` between the cells and the repros)."""
        cells = f"{self.cells} cell{'' if self.cells == 1 else 's'}"
        repros = f"{self.repros} repro{'' if self.repros == 1 else 's'}"
        return f"{cells}{sep}{repros}, {self.reproduced} reproduced"

    def more(self, file: str = "matrix.yaml") -> str:
        """`1 more repro not in matrix.yaml (5 cells), 1 reproduced`, of those apart;
        `file`: the matrix file given (--matrix)."""
        repros = f"{self.repros} more repro{'' if self.repros == 1 else 's'}"
        cells = f"{self.cells} cell{'' if self.cells == 1 else 's'}"
        return f"{repros} not in {file} ({cells}), {self.reproduced} reproduced"


def tallies(repros: Iterable[Counted], *, has_matrix: bool) -> tuple[Tally, Tally]:
    """The header's counts of the repros matrix.yaml (given) lists, and of those it does
    not apart: "2 repros, 1 reproduced" of a matrix of one repro, whose old name's
    regression was the one reproduced, read as the matrix's own."""
    listed: list[Counted] = []
    apart: list[Counted] = []
    for rr in repros:
        (listed if rr.listed or not has_matrix else apart).append(rr)
    return _tally(listed), _tally(apart)


def _tally(repros: Sequence[Counted]) -> Tally:
    return Tally(
        cells=sum(sum(rr.counts.values()) for rr in repros),
        repros=len(repros),
        reproduced=sum(rr.reproduced for rr in repros),
    )


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def describe_unlisted(name: str, results: Sequence[Result], file: str = "matrix.yaml") -> Described:
    """A description and link for repro `name`, which the matrix `file` (as --matrix gave
    it) does not list, from its records alone. Records share
    their provenance and pins (see `fastdecode`): each is read once, not once per
    record (100,000 records took 0.18 s of the report's build)."""
    provenances = {id(r.provenance): r.provenance for r in results}
    # The node of a record: from its provenance where that names one, else its reason.
    named = {key: node for key, p in provenances.items() if (node := _test(p)) is not None}
    reasons = {r.reason for r in results if id(r.provenance) not in named}
    nodes = sorted({*named.values(), *(n for reason in reasons if (n := _reason_node(reason)))})
    pins = {id(r.pins): r.pins for r in results}
    libs = sorted({lib for p in pins.values() for lib in p})
    run_ids = {r.run_id for r in results}
    bisect = any(run_id.startswith(BISECT_RUN_PREFIX) for run_id in run_ids)
    by = " by repromatrix bisect --test" if bisect else ""
    source, commit = _source(results, provenances, libs[0] if libs else None)
    if nodes:
        owner = f"{', '.join(libs)}'s own test" if libs else "the test"
        text = (
            f"Not in {file}: {owner} {', '.join(nodes)}, run as the verdict{by} "
            f"(pytest passed → passed, a test failed → regressed)."
        )
        path = nodes[0].split("::", 1)[0]
        link = source
        if source and commit and source.startswith("https://github.com/"):
            link = f"{source.removesuffix('.git').rstrip('/')}/blob/{commit}/{path}"
        return Described(description=text, link=link)
    text = (
        f"Not in {file}: {len(results)} record(s) from {len(run_ids)} run(s){by}; "
        f"the records carry no description of {name}."
    )
    return Described(description=text, link=source)


def _test(provenance: Mapping[str, Any]) -> str | None:
    test = _mapping(provenance.get("params")).get("test")
    return test if isinstance(test, str) and "::" in test else None


def _reason_node(reason: str) -> str | None:
    m = _NODE.match(reason)
    return m.group(1) if m else None


def _source(
    results: Sequence[Result], provenances: Mapping[int, Mapping[str, Any]], library: str | None
) -> tuple[str | None, str | None]:
    """The library's source URL and a commit to show it at (a passing one, where a test
    added with a fix exists): of the records whose provenance names a source, the first
    passing one, else the first; the earliest finished of those (in real time, as
    `timestamps.recency` orders records), the first in `results` of equals.
    `provenances`: those of `results`, by id."""
    if library is None:
        return None, None
    sources = {}
    for key, provenance in provenances.items():
        source = pin_field(provenance, library, "source")
        if source.startswith(("https://", "http://")):
            sources[key] = source
    if not sources:
        return None, None
    found = min(
        (r for r in results if id(r.provenance) in sources),
        key=lambda r: (r.status is not Status.PASSED, recency(r.finished)),
    )
    return sources[id(found.provenance)], found.commits.get(library)
