"""Run one test of a library's own test suite as the verdict (`repromatrix bisect --test`).

params:
  test           pytest node id relative to the library's repository root,
                 e.g. "tests/ops/test_linear_attn.py::test_fused_chunk"
  library        library name in matrix.yaml (names the checkout: <env>/src/<library>)
  import_name    module to record in provenance
  test_file_sha256  the sha256 of the test file to use, from another revision (a test
                 added with the fix): the harness lays it in this cell's working folder as
                 inputs/<sha256>, since one argument of a command line (--params under
                 --isolate) holds at most 128 KiB; empty: use the file of the commit under test
  test_file_b64  the same file's content, base64 (how older harnesses gave it)
  test_from      the revision that content came from (recorded, not used)
  checkout       the checkout's path, when the harness does not put it on PYTHONPATH
  skip_init      packages (comma-separated) registered without running their __init__:
                 2024 trees of fla import their models (transformers) from fla/__init__.py,
                 which breaks under transformers 5 before any test is collected

The checkout belongs to a cached environment shared by every cell of that commit, so it is
never written to: the test tree is copied into this cell's work directory, the pinned file
laid over it, and pytest runs there against the library as the environment provides it.

pytest's exit codes map onto the protocol: 0 passed (and at least one test passed) →
passed; 1 tests failed → regressed (errors alone, in a fixture's setup or teardown, with no
test failed, or only tests marked xfail(strict=True) that passed → untestable);
2 interrupted (collection errors), 4 usage error, 5 no tests collected, or everything
skipped → untestable with the reason; 125 (`pytest.exit(why, returncode=125)`, as
`git bisect run` has it: cannot be tested here) → untestable; 3 internal error → error.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _repro

NAME = "upstream_pytest"
DEFAULTS: dict[str, Any] = {
    "test": "",
    "library": "",
    "import_name": "",
    "test_file_sha256": "",
    "test_file_b64": "",
    "test_from": "",
    "checkout": "",
    "skip_init": "",
}

#: A pytest plugin (loaded with -p before collection) that registers packages as bare
#: modules with the right __path__, so `import pkg.sub` works without pkg/__init__.py.
_SKIP_INIT_PLUGIN = """\
import os, re, sys, types

for _name in {names!r}:
    for _entry in sys.path:
        _dir = os.path.join(_entry or os.getcwd(), _name)
        _init = os.path.join(_dir, "__init__.py")
        if os.path.isfile(_init):
            _mod = types.ModuleType(_name)
            _mod.__path__ = [_dir]
            _mod.__file__ = _init
            _found = re.search(r"__version__\\s*=\\s*['\\"]([^'\\"]+)", open(_init).read())
            _mod.__version__ = _found.group(1) if _found else "0+unknown"
            sys.modules[_name] = _mod
            break
"""

#: Files at the repository root that pytest reads for conftest-wide fixtures and settings.
#: pyproject.toml/setup.cfg/tox.ini are left out: their addopts often name plugins
#: (coverage, xdist) that the base interpreter does not have.
_ROOT_FILES = ("conftest.py", "pytest.ini")
#: pytest's summary line of a test marked xfail(strict=True) that passed.
_XPASS_STRICT = re.compile(r"FAILED \S.* - \[XPASS\(strict\)\]")
_SUMMARY = re.compile(r"(\d+) (passed|failed|errors?|skipped|xfailed|xpassed|deselected)")


def find_checkout(library: str, environ: Mapping[str, str]) -> Path | None:
    """<env>/src/<library>: on PYTHONPATH itself (pythonpath installs) or beside <env>/site."""
    for entry in environ.get("PYTHONPATH", "").split(os.pathsep):
        if not entry:
            continue
        path = Path(entry)
        if path.name == library and path.parent.name == "src" and path.is_dir():
            return path
        if path.name == "site" and (path.parent / "src" / library).is_dir():
            return path.parent / "src" / library
    return None


def summary_counts(output: str) -> dict[str, int]:
    """Counts from pytest's last summary line ("1 failed, 3 passed in 0.2s")."""
    counts: dict[str, int] = {}
    for line in reversed(output.splitlines()):
        found = _SUMMARY.findall(line)
        if found and (" in " in line or line.startswith("=")):
            for number, word in found:
                counts["errors" if word.startswith("error") else word] = int(number)
            break
    return counts


def _reason(output: str, fallback: str) -> str:
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    for prefix in ("FAILED ", "ERROR ", "E   ", "ERROR: "):
        for ln in lines:
            if ln.startswith(prefix):
                return ln
    return lines[-1] if lines else fallback


def _error_line(output: str) -> str:
    """The exception line of an error ("E   fixture 'big' not found"), else the reason."""
    for ln in output.splitlines():
        if ln.startswith("E "):
            return ln[1:].strip()
    return _reason(output, "error")


def _node_of(rest: str) -> str:
    """The node id of a summary line's "id - why": an id's parameters may hold " - "
    themselves (`test_y[a - b]`), so its brackets are taken whole."""
    cut = rest.find(" - ")
    opening = rest.find("[")
    if opening >= 0 and (cut < 0 or opening < cut):
        closing = rest.find("] - ", opening)
        if closing >= 0:
            return rest[: closing + 1].strip()
        if rest.rstrip().endswith("]"):
            return rest.strip()
    return (rest if cut < 0 else rest[:cut]).strip()


def failing_ids(output: str) -> list[str]:
    """Node ids of pytest's "FAILED id - why" / "ERROR id - why" summary lines, in order:
    the fingerprint of a regressed result (which test failed, not only that one did)."""
    found: list[str] = []
    for line in output.splitlines():
        for prefix in ("FAILED ", "ERROR "):
            if line.startswith(prefix):
                node = _node_of(line[len(prefix) :])
                if node and node not in found:
                    found.append(node)
    return found


def _prepare(checkout: Path, path: str, content: bytes | None, work: Path) -> Path:
    rel = Path(path)
    top = rel.parts[0]
    if (checkout / top).is_dir():
        shutil.copytree(checkout / top, work / top, symlinks=True)
    elif (checkout / top).is_file():
        shutil.copy2(checkout / top, work / top)
    for name in _ROOT_FILES:
        if (checkout / name).is_file() and not (work / name).exists():
            shutil.copy2(checkout / name, work / name)
    if not (work / "pytest.ini").exists():
        # Anchor pytest's rootdir here, so the copied root conftest.py is loaded.
        (work / "pytest.ini").write_text("[pytest]\n")
    if content is not None:
        (work / rel).parent.mkdir(parents=True, exist_ok=True)
        (work / rel).write_bytes(content)
    return work / rel


def test_file(sha256: str, b64: str) -> bytes | None:
    """The pinned test file's bytes (None: the commit's own): inputs/<sha256> of the
    working folder, checked against its name, else the base64 of the params."""
    if not sha256:
        return base64.b64decode(b64) if b64 else None
    path = Path(os.getcwd(), "inputs", sha256)
    try:
        content = path.read_bytes()
    except OSError as exc:
        raise RuntimeError(f"the test file's copy {path} cannot be read: {exc}") from None
    if hashlib.sha256(content).hexdigest() != sha256:
        raise RuntimeError(f"the test file's copy {path} is not the file its name says")
    return content


def body(cell: _repro.Recorder, failed: list[str] | None = None) -> _repro.StatusReason:
    p = cell.params
    node = str(p["test"])
    library = str(p["library"])
    if not node or not library:
        raise ValueError("params 'test' and 'library' are required")
    if not _repro.has_module("pytest"):
        raise _repro.Untestable("pytest is not installed in this environment's interpreter")
    checkout = Path(p["checkout"]) if p["checkout"] else find_checkout(library, os.environ)
    if checkout is None or not checkout.is_dir():
        raise _repro.Untestable(f"no checkout of {library} found on PYTHONPATH")
    content = test_file(str(p["test_file_sha256"]), str(p["test_file_b64"]))
    path = node.split("::", 1)[0]
    work = Path(tempfile.mkdtemp(prefix="upstream-", dir=os.getcwd()))
    try:
        target = _prepare(checkout, path, content, work)
        if not target.exists():
            raise _repro.Untestable(
                f"{path} does not exist at this commit; take it from a later one (--test-from)"
            )
        argv = [sys.executable, "-m", "pytest", node, "-x", "-q", "-p", "no:cacheprovider"]
        skip = [n.strip() for n in str(p["skip_init"]).split(",") if n.strip()]
        if skip:
            (work / "_repromatrix_skip_init.py").write_text(_SKIP_INIT_PLUGIN.format(names=skip))
            argv += ["-p", "_repromatrix_skip_init"]
        done = subprocess.run(argv, cwd=work, capture_output=True, text=True, check=False)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    # pytest names paths under this cell's throwaway copy of the tests ("ERROR: not found:
    # /cache/runs/<run>/<cell>/upstream-x1y2/tests/t.py::test_y[p]"): the reason names them
    # as the repository does.
    stdout, stderr = (text.replace(f"{work}{os.sep}", "") for text in (done.stdout, done.stderr))
    output = stdout + stderr
    sys.stdout.write(stdout)
    sys.stderr.write(stderr)
    counts = summary_counts(output)
    for key in ("passed", "failed", "errors", "skipped"):
        cell.metric(f"pytest.{key}", counts.get(key, 0))
    cell.metric("pytest.exit_code", done.returncode)
    return verdict(node, done.returncode, output, counts, failed)


def verdict(
    node: str, code: int, output: str, counts: Mapping[str, int], failed: list[str] | None
) -> _repro.StatusReason:
    """pytest's exit code and output as the protocol's verdict (see the module's doc)."""
    if code == 0:
        if counts.get("passed", 0) == 0:
            raise _repro.Untestable(f"{node}: no test passed ({_reason(output, 'all skipped')})")
        return _repro.PASSED, f"{node}: {counts.get('passed', 0)} passed"
    if code == 1:
        if counts.get("errors", 0) and not counts.get("failed", 0):
            # pytest exits 1 for an error in a fixture's setup or teardown too (a fixture
            # that a later conftest.py adds, "fixture 'x' not found"): the test itself did
            # not fail, so it says nothing of the bug; counted bad, it named the commit
            # that added the fixture as the fix.
            raise _repro.Untestable(
                f"{node}: no test failed, but a fixture's setup or teardown errored: "
                f"{_error_line(output)}"
            )
        xpassed = [ln for ln in output.splitlines() if _XPASS_STRICT.match(ln)]
        if xpassed and len(xpassed) == counts.get("failed", 0) and not counts.get("errors"):
            # A test marked xfail(strict=True) that passed: pytest calls that a failure, but
            # the test's body passed; counted bad, the fix was put at the commit that
            # dropped the marker. Untestable, as a plain xpassed test is.
            raise _repro.Untestable(
                f"{node}: it passed, but this commit marks it xfail(strict=True) "
                f"({xpassed[0].strip()})"
            )
        if failed is not None:
            failed.extend(failing_ids(output))
        return _repro.REGRESSED, f"{node}: {_reason(output, 'failed')}"
    if code in (2, 4, 5):
        what = {2: "collection error", 4: "usage error", 5: "no tests collected"}[code]
        raised = [ln[1:].strip() for ln in output.splitlines() if ln.startswith("E ")]
        if raised:
            # The file did not import ("ERROR tests/t.py" alone named no cause; pytest
            # exits 4 for it when a node id was asked): the exception says why.
            raise _repro.Untestable(f"{node}: collection error: {raised[-1]}")
        raise _repro.Untestable(f"{node}: {what}: {_reason(output, what)}")
    if code == 125:
        # `git bisect run`'s "cannot be tested here" (a conftest's or a test's
        # `pytest.exit(why, returncode=125)`: a library missing): a skip there, and here;
        # it was an error, sent to --retry-errors.
        said = [ln for ln in output.splitlines() if "_pytest.outcomes.Exit: " in ln]
        why = said[-1].split("Exit: ", 1)[1].strip(" !") if said else _reason(output, "")
        raise _repro.Untestable(f"{node}: exited 125 (cannot be tested here): {why}")
    raise RuntimeError(f"pytest exited {code}: {_reason(output, 'internal error')}")


def run(params: Mapping[str, Any]) -> dict[str, Any]:
    import_name = str(params.get("import_name") or params.get("library") or "")
    failed: list[str] = []
    result = _repro.execute(
        NAME,
        DEFAULTS,
        params,
        lambda cell: body(cell, failed),
        libraries=[import_name] if import_name else [],
    )
    if failed and result.get("status") == _repro.REGRESSED:
        # Optional in the protocol's result JSON: which tests failed (bisect follows it).
        result["fingerprint"] = ",".join(failed)
    return result


if __name__ == "__main__":
    sys.exit(_repro.main(run, DEFAULTS, description=__doc__))
