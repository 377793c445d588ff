"""What a repro's `run()` hands back against the protocol (no dict, an unknown status, a
`sys.exit` code outside 0-255): one record, worded alike, in its persistent worker and in
a process of its own (`--isolate`). Real processes through `repromatrix run`."""

from __future__ import annotations

import shutil
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
from repro_runs import HELPER, run_matrix, run_repros

from repromatrix.executors.helper_copies import HELPER_VERSION
from repromatrix.model import Status
from repromatrix.records import Result
from repromatrix.store import ResultStore

pytestmark = pytest.mark.integration

BODY = """\
    def run(params):
        mode = params["mode"]
        if mode == "exit_minus_one":
            sys.exit(-1)  # a process exits 255 on it, never "killed by signal 1"
        if mode == "a_list":
            return [{"schema": 1, "status": "passed"}]
        if mode == "a_set":  # json cannot write it
            return {"schema": 1, "status": "passed", "provenance": {"gpus": {0, 1}}}
        if mode == "too_deep":
            nested = {}
            for _ in range(100_000):
                nested = {"x": nested}
            return {"schema": 1, "status": "passed", "provenance": {"n": nested}}
        return {"schema": 1, "repro": "m", "status": mode, "reason": "checked"}
"""
HEAD = """\
    import os, sys
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import _repro

"""
MAIN = """
    if __name__ == "__main__":
        sys.exit(_repro.main(run, {"mode": ""}))
"""
WITH_MAIN = textwrap.dedent(HEAD + BODY + MAIN)
MODULE_ONLY = "import sys\n\n" + textwrap.dedent(BODY)  # `run` and no command line

MODES = ("exit_minus_one", "a_list", "fail", "PASSED", "a_set", "too_deep")


@dataclass(frozen=True, kw_only=True)
class Modes:
    root: Path
    #: Records of the run by repro name.
    got: dict[str, Result]


@pytest.fixture(scope="module", params=[False, True], ids=["worker", "isolate"])
def modes(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Modes:
    """Each mode of `m.py` (with `_repro.main`) and of `bare.py` (a module only), one run
    per way of running cells (in their workers, `--isolate`) that the tests read."""
    isolate = bool(request.param)
    root = tmp_path_factory.mktemp("isolate" if isolate else "worker")
    repros = [
        f"{script}_{mode}: {{script: repros/{script}.py, params: {{mode: {mode}}}, gpus: [cpu]}}"
        for script in ("m", "bare")
        for mode in MODES
    ]
    scripts = {"m": WITH_MAIN, "bare": MODULE_ONLY}
    _, got = run_repros(root, scripts, repros, isolate=isolate, timeout=30)
    return Modes(root=root, got=got)


def test_sys_exit_minus_one_from_run_is_exit_255_not_a_signal(modes: Modes) -> None:
    """`sys.exit(-1)` in `run()`: a process exits 255 ("crashed: exited 255" under
    `--isolate`); the worker reported -1, read as "crashed: killed by signal 1", and a
    module without a command line was even killed by SIGHUP under `--isolate`."""
    got = modes.got
    for script in ("m", "bare"):
        cell = got[f"{script}_exit_minus_one"]
        assert (cell.status, cell.exit_code) == (Status.ERROR, 255), cell.reason
        assert cell.reason == "crashed: exited 255", cell.reason


def test_what_run_returns_against_the_protocol_is_one_error_in_both_modes(modes: Modes) -> None:
    """A list, or a dict whose status is no word of the protocol: the worker said
    "exited 2 without a result (wrote result JSON that is not an object); last output:
    error: run() returned list ..." where `--isolate` said "exited 2: run() returned list
    ...", and its last output line lacked the reason `_repro.main` prints."""
    got = modes.got
    listed = got["m_a_list"]
    assert (listed.status, listed.exit_code) == (Status.ERROR, 2), listed.reason
    assert listed.reason == "exited 2: run() returned list, not a result dict"
    # The statuses named, and the one meant: "unknown status 'PASSED'" alone sent its
    # author to the docs for a capital letter.
    known = "a status is one of passed, regressed, untestable, error"
    for word, meant in (("fail", "regressed"), ("PASSED", "passed")):
        hint = f"did you mean '{meant}'? {known}"
        cell = got[f"m_{word}"]
        assert (cell.status, cell.exit_code) == (Status.ERROR, 2), cell.reason
        assert cell.reason == (
            f"exited 2 without a result (wrote result JSON that has an unknown status "
            f"'{word}' ({hint})); last output: m: {word}: checked"
        )


def test_a_result_json_cannot_write_is_one_error_in_both_modes(modes: Modes) -> None:
    """A set, or nesting past Python's recursion limit, in what `run()` returned: the
    worker's last output was the traceback's "TypeError: ...", `--isolate`'s "error:
    cannot write /…/runs/RUN/KEY/result.json: TypeError: ..." (a path of its run: each run
    a reason of its own), and a RecursionError escaped `_repro.main` as a traceback and
    exit 1, "a verdict without its result JSON is not trusted"."""
    got = modes.got
    cannot = "exited 2 without a result (wrote no result JSON); last output: error: cannot "
    odd = got["m_a_set"]
    assert (odd.status, odd.exit_code) == (Status.ERROR, 2), odd.reason
    assert odd.reason == f"{cannot}write the result JSON: TypeError: Object of type set is " + (
        "not JSON serializable"
    )
    deep = got["m_too_deep"]
    assert (deep.status, deep.exit_code) == (Status.ERROR, 2), deep.reason
    assert deep.reason.startswith(f"{cannot}write the result JSON: RecursionError: maximum")
    assert "Traceback" not in deep.stderr_tail
    tmp_left = sorted(p.name for p in modes.root.rglob("*.tmp*"))
    assert not tmp_left  # the worker's half-written temporary file is not left behind


RAW_BYTES = textwrap.dedent("""\
    import argparse
    p = argparse.ArgumentParser()
    p.add_argument("--out")
    p.add_argument("--params")
    args = p.parse_args()
    with open(args.out, "wb") as f:  # as a C++ tool writes a message it did not decode
        f.write(b'{"schema": 1, "repro": "b", "status": "passed", "reason": "max abs 0.5 '
                b'on \\xff\\xfe", "metrics": {"max_abs": 0.5}}')
""")


@pytest.mark.parametrize("isolate", [False, True], ids=["worker", "isolate"])
def test_a_byte_that_is_no_utf8_in_the_result_json_costs_that_character_only(
    tmp_path: Path, isolate: bool
) -> None:
    """One byte that is not UTF-8 in a reason: the whole result was "exited 0 but wrote
    result JSON that does not parse (Invalid JSON: invalid unicode code point ...)", its
    verdict and metrics lost; the byte is now read as U+FFFD, as Python's "replace" has it."""
    (tmp_path / "repros").mkdir()
    (tmp_path / "repros" / "b.py").write_text(RAW_BYTES)
    (tmp_path / "m.yaml").write_text(
        "schema: 1\nrepros:\n  b: {script: repros/b.py, gpus: [cpu]}\n"
    )
    run_matrix(tmp_path, isolate=isolate)
    (cell,) = ResultStore(tmp_path / "results").load().results
    assert (cell.status, cell.exit_code) == (Status.PASSED, 0), cell.reason
    assert cell.reason == "max abs 0.5 on \ufffd\ufffd"
    assert cell.metrics == {"max_abs": 0.5}


REMOVES_ITS_FOLDER = textwrap.dedent("""\
    import os, shutil, sys
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import _repro

    def run(params):
        shutil.rmtree(os.getcwd())  # a clean-up that takes the cell's folder with it
        return {"schema": 1, "repro": "rm", "status": "regressed", "reason": "checked",
                "metrics": {"max_abs": 0.5}}

    if __name__ == "__main__":
        sys.exit(_repro.main(run, {}))
""")


@pytest.mark.parametrize("isolate", [False, True], ids=["worker", "isolate"])
def test_a_repro_that_removes_its_folder_keeps_its_verdict_in_both_modes(
    tmp_path: Path, isolate: bool
) -> None:
    """`run()` removing its working folder (the cell's, where its result JSON goes): its
    worker recorded "exited 2 without a result (wrote no result JSON)", the verdict lost
    and nothing said why, where `--isolate` kept it (`_repro.main` makes the folder again)."""
    (tmp_path / "repros").mkdir()
    shutil.copy(HELPER, tmp_path / "repros" / "_repro.py")
    (tmp_path / "repros" / "rm.py").write_text(REMOVES_ITS_FOLDER)
    (tmp_path / "m.yaml").write_text(
        "schema: 1\nrepros:\n  rm: {script: repros/rm.py, gpus: [cpu]}\n"
    )
    run_matrix(tmp_path, isolate=isolate)
    (cell,) = ResultStore(tmp_path / "results").load().results
    assert (cell.status, cell.exit_code) == (Status.REGRESSED, 1), cell.reason
    assert (cell.reason, cell.metrics) == ("checked", {"max_abs": 0.5})


CLOSES_STDERR = textwrap.dedent("""\
    import os, sys
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import _repro

    def run(params):
        if params["how"] == "fd":
            os.close(2)  # a library that closes what it thinks is its own descriptor
        else:
            sys.stderr.close()
        return {"schema": 1, "repro": "c", "status": "passed", "reason": "checked"}

    if __name__ == "__main__":
        sys.exit(_repro.main(run, {"how": ""}))
""")


@pytest.mark.parametrize("isolate", [False, True], ids=["worker", "isolate"])
def test_a_repro_that_closes_its_stderr_keeps_the_verdict_it_wrote(
    tmp_path: Path, isolate: bool
) -> None:
    """`run()` closing fd 2 or `sys.stderr`, then returning "passed": the line
    `_repro.main` prints after writing the result raised, and the process exited 1,
    "regressed" to `git bisect run`; the record said "exit code 1 (regressed) disagrees
    with result JSON status 'passed'", in its worker too."""
    (tmp_path / "repros").mkdir()
    shutil.copy(HELPER, tmp_path / "repros" / "_repro.py")
    (tmp_path / "repros" / "c.py").write_text(CLOSES_STDERR)
    (tmp_path / "m.yaml").write_text(
        "schema: 1\nrepros:\n"
        "  c_fd: {script: repros/c.py, params: {how: fd}, gpus: [cpu]}\n"
        "  c_stream: {script: repros/c.py, params: {how: stream}, gpus: [cpu]}\n"
    )
    run_matrix(tmp_path, isolate=isolate)
    for cell in ResultStore(tmp_path / "results").load().results:
        assert (cell.status, cell.exit_code, cell.reason) == (Status.PASSED, 0, "checked")


WRITES_AT_EXIT = textwrap.dedent("""\
    import atexit, json, sys
    out = sys.argv[sys.argv.index("--out") + 1]
    params = json.loads(sys.argv[sys.argv.index("--params") + 1])
    status = params["status"]

    @atexit.register
    def write():  # as a framework's finaliser writes its report
        with open(out, "w") as f:
            json.dump({"schema": 1, "repro": "x", "status": status, "reason": status}, f)

    sys.exit({"passed": 0, "regressed": 1}[status])
""")


#: A repro module whose import makes a folder and registers its removal at exit.
CLEANS_AT_EXIT = textwrap.dedent("""\
    import atexit, os, shutil, tempfile
    SCRATCH = tempfile.mkdtemp()

    @atexit.register
    def _clean():
        shutil.rmtree(SCRATCH, ignore_errors=True)


    def run(params):
        with open(os.path.join(SCRATCH, "x"), "w"):  # the import's folder, every cell
            pass
        return {"schema": 1, "repro": "s", "status": "passed", "reason": "scratch kept"}
""")


@pytest.mark.parametrize("isolate", [False, True], ids=["worker", "isolate"])
def test_a_result_json_written_at_exit_is_read_in_both_modes(tmp_path: Path, isolate: bool) -> None:
    """A script writing its result JSON in an `atexit` handler: its worker recorded
    "exited 1 but wrote no result JSON; a verdict without its result JSON is not trusted"
    (the handler ran only when the worker exited, into a folder long judged), where
    `--isolate` recorded "regressed". Each cell's handler now runs when its cell ends."""
    (tmp_path / "repros").mkdir()
    (tmp_path / "repros" / "x.py").write_text(WRITES_AT_EXIT)
    (tmp_path / "repros" / "s.py").write_text(CLEANS_AT_EXIT)
    (tmp_path / "m.yaml").write_text(
        "schema: 1\nrepros:\n"
        "  x_bad: {script: repros/x.py, params: {status: regressed}, gpus: [cpu]}\n"
        "  x_good: {script: repros/x.py, params: {status: passed}, gpus: [cpu]}\n"
        "  s_1: {script: repros/s.py, params: {n: 1}, gpus: [cpu]}\n"
        "  s_2: {script: repros/s.py, params: {n: 2}, gpus: [cpu]}\n"
    )
    run_matrix(tmp_path, isolate=isolate)
    got = {r.repro: r for r in ResultStore(tmp_path / "results").load().results}
    assert (got["x_bad"].status, got["x_bad"].reason) == (Status.REGRESSED, "regressed")
    assert (got["x_good"].status, got["x_good"].reason) == (Status.PASSED, "passed")
    # Handlers a repro module registers as it is imported (once per worker) stay the
    # worker's: run after its first cell, they removed what every later cell uses.
    for n in ("1", "2"):
        cell = got[f"s_{n}"]
        assert (cell.status, cell.reason) == (Status.PASSED, "scratch kept"), cell.stderr_tail


#: A repro module whose cells register a function not of its code at exit (a builtin).
REGISTERS_OTHERS_AT_EXIT = textwrap.dedent("""\
    import atexit

    def run(params):
        atexit.register(print, "done with", params["n"])  # or shutil.rmtree, its scratch
        return {"schema": 1, "repro": "r", "status": "passed", "reason": "registered"}
""")


@pytest.mark.parametrize("isolate", [False, True], ids=["worker", "isolate"])
def test_an_exit_handler_a_cell_registers_runs_as_the_cell_ends_in_both_modes(
    tmp_path: Path, isolate: bool
) -> None:
    """`atexit.register(print, ...)` (or `shutil.rmtree, scratch`) in `run()`: a function
    not of the script's file, so its worker ran it only as the worker exited, its output
    in no cell's log and its clean-up long after, where `--isolate` runs it as the cell's
    process ends. Each cell's now runs when its cell ends."""
    (tmp_path / "repros").mkdir()
    (tmp_path / "repros" / "r.py").write_text(REGISTERS_OTHERS_AT_EXIT)
    (tmp_path / "m.yaml").write_text(
        "schema: 1\nrepros:\n"
        + "".join(
            f"  r_{n}: {{script: repros/r.py, params: {{n: {n}}}, gpus: [cpu]}}\n" for n in "ab"
        )
    )
    _, got = run_matrix(tmp_path, isolate=isolate)
    assert [got[f"r_{n}"].stdout_tail for n in "ab"] == ["done with a\n", "done with b\n"]


@pytest.mark.parametrize("isolate", [False, True], ids=["worker", "isolate"])
def test_a_param_its_defaults_lack_is_refused_in_both_modes(tmp_path: Path, isolate: bool) -> None:
    """A typo in matrix.yaml's params (`mdoe`), or a wrong type: `_repro.main(run,
    DEFAULTS)` refuses them, but a worker never runs the `__main__` block, and `run()` got
    them as they were: "exited 2: KeyError: 'mode'" here, the default case run (and
    passed) where `run()` reads `params.get("mode", ...)`, while `--isolate` said "exited
    2: ParamsError: unknown param 'mdoe' (known: mode)"."""
    (tmp_path / "repros").mkdir()
    shutil.copy(HELPER, tmp_path / "repros" / "_repro.py")
    (tmp_path / "repros" / "m.py").write_text(WITH_MAIN)
    (tmp_path / "m.yaml").write_text(
        "schema: 1\nrepros:\n"
        "  typo: {script: repros/m.py, params: {mdoe: fail}, gpus: [cpu]}\n"
        "  typed: {script: repros/m.py, params: {mode: 3}, gpus: [cpu]}\n"
        "  fine: {script: repros/m.py, params: {mode: passed}, gpus: [cpu]}\n"
    )
    run_matrix(tmp_path, isolate=isolate)
    got = {r.repro: r for r in ResultStore(tmp_path / "results").load().results}
    typo, typed = got["typo"], got["typed"]
    assert (typo.status, typo.exit_code) == (Status.ERROR, 2), typo.reason
    assert typo.reason == "exited 2: ParamsError: unknown param 'mdoe' (known: mode)"
    assert typo.stderr_tail == "error: unknown param 'mdoe' (known: mode)\n"
    assert typed.reason == "exited 2: ParamsError: param 'mode' must be str, got int 3"
    assert got["fine"].status is Status.PASSED, got["fine"].reason


#: `_repro.main`'s defaults as users hand them, none a literal or a global of the script:
#: built by a call, a local of the `__main__` block, or in a function of the script's own.
BUILT_DEFAULTS = {
    "call": 'if __name__ == "__main__":\n    sys.exit(_repro.main(run, dict(mode="")))\n',
    "local": (
        'if __name__ == "__main__":\n    d = {"mode": ""}\n    sys.exit(_repro.main(run, d))\n'
    ),
    "wrapped": (
        "from _repro import main as repro_main\n\n"
        'def main():\n    return repro_main(run, {**{"mode": ""}})\n\n'
        'if __name__ == "__main__":\n    sys.exit(main())\n'
    ),
}


@pytest.mark.parametrize("isolate", [False, True], ids=["worker", "isolate"])
def test_a_param_its_built_defaults_lack_is_refused_in_both_modes(
    tmp_path: Path, isolate: bool
) -> None:
    """Defaults built by a call (`dict(mode="")`), a local of the `__main__` block or a
    function of the script's own: the worker could not read them, and a typo in
    matrix.yaml's params (`mdoe`) reached `run()` ("exited 2: KeyError: 'mode'"), where
    --isolate said "exited 2: ParamsError: unknown param 'mdoe' (known: mode)"."""
    (tmp_path / "repros").mkdir()
    shutil.copy(HELPER, tmp_path / "repros" / "_repro.py")
    lines = ["schema: 1", "repros:"]
    for how, block in BUILT_DEFAULTS.items():
        (tmp_path / "repros" / f"{how}.py").write_text(textwrap.dedent(HEAD + BODY) + block)
        lines += [
            f"  {how}_typo: {{script: repros/{how}.py, params: {{mdoe: fail}}, gpus: [cpu]}}",
            f"  {how}_fine: {{script: repros/{how}.py, params: {{mode: passed}}, gpus: [cpu]}}",
        ]
    (tmp_path / "m.yaml").write_text("\n".join(lines) + "\n")
    run_matrix(tmp_path, isolate=isolate)
    got = {r.repro: r for r in ResultStore(tmp_path / "results").load().results}
    for how in BUILT_DEFAULTS:
        typo = got[f"{how}_typo"]
        assert (typo.status, typo.exit_code) == (Status.ERROR, 2), (how, typo.reason)
        assert typo.reason == "exited 2: ParamsError: unknown param 'mdoe' (known: mode)", how
        assert typo.stderr_tail == "error: unknown param 'mdoe' (known: mode)\n", how
        fine = got[f"{how}_fine"]
        assert (fine.status, fine.reason) == (Status.PASSED, "checked"), (how, fine.reason)


@pytest.mark.parametrize("isolate", [False, True], ids=["worker", "isolate"])
def test_an_older_copy_of_the_helper_is_said_once_a_run(tmp_path: Path, isolate: bool) -> None:
    """A `repros/_repro.py` copied before fixes made in it: scripts run as commands kept
    the old behaviour (a closed stderr read as "regressed") where a worker had the new,
    and nothing said why; the run says so, once, and not of a current copy."""
    source = HELPER.read_text()
    assert f"\nHELPER_VERSION = {HELPER_VERSION}\n" in source  # the two agree
    for folder, text in (
        ("old", source.replace(f"\nHELPER_VERSION = {HELPER_VERSION}\n", "\n")),
        ("new", source),
    ):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "_repro.py").write_text(text)
        (tmp_path / folder / "m.py").write_text(WITH_MAIN)
    (tmp_path / "m.yaml").write_text(
        "schema: 1\nrepros:\n"
        + "".join(
            f"  {f}_{mode}: {{script: {f}/m.py, params: {{mode: {mode}}}, gpus: [cpu]}}\n"
            for f in ("old", "new")
            for mode in ("passed", "regressed")
        )
    )
    out, _ = run_matrix(tmp_path, isolate=isolate)
    said = [line for line in out.stderr.splitlines() if "older copy" in line]
    assert said == [
        f"repromatrix: warning: {tmp_path / 'old' / '_repro.py'} is an older copy of the "
        f"repro helper (version 1, this repromatrix's is {HELPER_VERSION}): cells run as "
        "commands (--isolate, isolate: true) miss the fixes made in it since, and may be "
        "recorded unlike in a worker; copy it again from repromatrix's repros/_repro.py"
    ], out.stderr
    got = {r.repro: r.status for r in ResultStore(tmp_path / "results").load().results}
    assert got["old_regressed"] is got["new_regressed"] is Status.REGRESSED
