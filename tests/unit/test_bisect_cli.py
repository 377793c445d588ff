"""The bisect command's pure parts: release candidates, verdict terms, deterministic cells,
log parsing, the upstream-test repro's helpers, and usage errors before anything runs."""

from __future__ import annotations

import argparse
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import upstream_pytest

from repromatrix.arguments import bisect_request
from repromatrix.bisect import Verdict
from repromatrix.bisect_aliases import LazyCells, may_hold
from repromatrix.bisect_plan import Setup, make_setup
from repromatrix.candidate_releases import release_candidates
from repromatrix.candidates import SHORT, Candidate, candidate
from repromatrix.cli import build_parser, main
from repromatrix.config import Matrix, load_matrix
from repromatrix.errors import UsageError
from repromatrix.gitlog import parse_log
from repromatrix.model import SourceKind, Status
from repromatrix.records import Result

MATRIX = """\
schema: 1
gpus:
  H100: {compute_capability: "9.0", smi_names: ["NVIDIA H100 80GB HBM3"]}
libraries:
  fi:
    pypi: flashinfer-python
    git: https://example.invalid/flashinfer.git
    import: flashinfer
    versions: ["0.2.10", "0.2.2", "0.2.3", {git: abc1234}, "0.2.4rc1", "0.2.4"]
  fla:
    git: https://example.invalid/fla.git
    import: fla
    install: pythonpath
    versions: [aaaa1111]
repros:
  r1:
    script: repros/r1.py
    gpus: [H100]
    libraries: {fla: all}
  r2:
    script: repros/r1.py
    gpus: [cpu, H100]
    libraries: {fla: all, fi: ["0.2.3", "0.2.4"]}
"""


@pytest.fixture
def matrix(tmp_path: Path) -> Matrix:
    (tmp_path / "repros").mkdir()
    (tmp_path / "repros" / "r1.py").write_text("print('hi')\n")
    path = tmp_path / "matrix.yaml"
    path.write_text(MATRIX)
    return load_matrix(path)


def parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["bisect", *argv])


def _setup(args: argparse.Namespace, matrix: Matrix) -> Setup:
    return make_setup(bisect_request(args), matrix)


def test_declared_releases_alone_are_in_pep440_order_and_incomplete(matrix: Matrix) -> None:
    axis = release_candidates(matrix.libraries["fi"], "0.2.2", "0.2.10", None)
    got = axis.candidates
    assert [c.label for c in got] == ["0.2.2", "0.2.3", "0.2.4rc1", "0.2.4", "0.2.10"]
    assert all(c.kind is SourceKind.PYPI for c in got)
    assert not axis.complete  # no source listed what lies between them
    with pytest.raises(UsageError, match="not older than"):
        release_candidates(matrix.libraries["fi"], "0.2.4", "0.2.3", None)
    with pytest.raises(UsageError, match=r"0\.2\.3 and 0\.2\.3\.0 are the same release"):
        release_candidates(matrix.libraries["fi"], "0.2.3", "0.2.3.0", None)
    with pytest.raises(UsageError, match=r"^--bad latest: not a PEP 440 version"):
        release_candidates(matrix.libraries["fi"], "0.2.2", "latest", None)


def test_verdict_terms_swap_with_find_fix(matrix: Matrix) -> None:
    regression = _setup(parse("r1", "--library=fla", "--good=a", "--bad=b"), matrix)
    fix = _setup(parse("r1", "--library=fla", "--bad=a", "--good=b", "--find-fix"), matrix)
    assert (regression.old, regression.new) == ("a", "b")
    assert (fix.old, fix.new) == ("a", "b")
    assert regression.verdict(Status.PASSED) is Verdict.OLD
    assert regression.verdict(Status.REGRESSED) is Verdict.NEW
    assert fix.verdict(Status.PASSED) is Verdict.NEW
    assert fix.verdict(Status.REGRESSED) is Verdict.OLD
    for s in (Status.UNTESTABLE, Status.ERROR, Status.TIMEOUT):
        assert regression.verdict(s) is Verdict.SKIP
        assert fix.verdict(s) is Verdict.SKIP


def test_cells_are_deterministic_per_commit(matrix: Matrix) -> None:
    setup: Setup = _setup(parse("r1", "--library=fla", "--good=a", "--bad=b"), matrix)
    sha = "0123456789abcdef0123456789abcdef01234567"
    one = Candidate(rev=sha, label=sha[:SHORT], kind=SourceKind.GIT, subject="x")
    two = Candidate(rev=sha, label=sha[:SHORT], kind=SourceKind.GIT, subject="y")
    a, b = setup.cell(setup.pin(one)), setup.cell(setup.pin(two))
    assert a.key == b.key
    pin = a.pins[0]
    assert (pin.rev, pin.label, pin.source) == (sha, sha[:10], "https://example.invalid/fla.git")
    assert pin.install.value == "pythonpath"
    assert a.id == f"r1[H100,host,fla={sha[:10]}]"


def test_other_libraries_must_be_pinned(matrix: Matrix) -> None:
    args = parse("r2", "--library=fla", "--good=a", "--bad=b", "--gpu=cpu")
    with pytest.raises(UsageError, match="also spans fi"):
        _setup(args, matrix)
    args = parse("r2", "--library=fla", "--good=a", "--bad=b", "--gpu=cpu", "--with=fi=0.2.4")
    setup = _setup(args, matrix)
    sha = "f" * 40
    cell = setup.cell(setup.pin(Candidate(rev=sha, label=sha[:10], kind=SourceKind.GIT)))
    assert {p.library: p.label for p in cell.pins} == {"fla": sha[:10], "fi": "0.2.4"}
    # Any spelling of the declared release, as `run --library fi=0.2.4.0` takes it ("is not
    # declared for fi; add it", though it is).
    args = parse("r2", "--library=fla", "--good=a", "--bad=b", "--gpu=cpu", "--with=fi=0.2.4.0")
    again = _setup(args, matrix).cell(
        setup.pin(Candidate(rev=sha, label=sha[:10], kind=SourceKind.GIT))
    )
    assert again.key == cell.key


TWICE = ("--with=fi=0.2.3", "--with=fi=0.2.4")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("r1", "--library=flb", "--good=a", "--bad=b"), "did you mean 'fla'"),
        (("r3", "--library=fla", "--good=a", "--bad=b"), "repro 'r3' is not in"),
        (("--library=fla", "--good=a", "--bad=b"), "name the REPRO"),
        (("r1", "--library=fi", "--good=a", "--bad=b"), "does not span library 'fi'"),
        (("r2", "--library=fla", "--good=a", "--bad=b", "--with=fi=0.2.3"), "several GPU"),
        (("r1", "--library=fla", "--good=a", "--bad=b", "--gpu=L4"), "not a GPU type"),
        (("r1", "--library=fla", "--good=a", "--bad=b", "--test-from=v1"), "needs --test"),
        (("r1", "--library=fla", "--good=a", "--bad=b", "--test-skip-init=fla"), "needs --test"),
        (("r1", "--library=fla", "--good=a", "--bad=b", "--test=t.py::x"), "not both"),
        (("--library=fla", "--good=a", "--bad=b", "--test=../t.py::x"), "inside the library"),
        # Before: both ends ran, untestable ("not found: t.py::"), exit 6.
        (("--library=fla", "--good=a", "--bad=b", "--test=t.py::"), "a '::' names no test"),
        (("--library=fla", "--good=a", "--bad=b", "--test=t.py::T::[1]"), "names no test"),
        (("r1", "--library=fla", "--good=a", "--bad=b", "--with=fla=aaaa1111"), "bisected"),
        (("r1", "--library=fla", "--good=a", "--bad=b", "--with=fi=0.2.3"), "does not span fi"),
        (
            ("r2", "--library=fla", "--good=a", "--bad=b", "--gpu=cpu", *TWICE),
            "given twice",
        ),
    ],
)
def test_usage_errors_name_the_fix(matrix: Matrix, argv: tuple[str, ...], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        _setup(parse(*argv), matrix)


def test_usage_errors_exit_64_through_main(
    matrix: Matrix, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["--matrix", str(matrix.path), "bisect", "r1", "--library=nope", "--good=a"])
    assert code == 64
    assert "--bad" in capsys.readouterr().err


def test_git_log_records_parse_with_any_subject() -> None:
    a, b, c = "a" * 40, "b" * 40, "c" * 40
    text = "\0".join(
        [
            *(a, "", "Ann O'Neil", "2024-01-02T03:04:05+00:00", "2024-01-03T00:00:00+00:00"),
            "1704240000",
            "fix: a | b, c \x1e d \x1f e",  # the separators the format once used
            *(b, f"{a} {c}", "Bo", "2024-01-04T00:00:00+00:00", "2024-01-05T00:00:00+00:00"),
            *("1704412800", ""),
            # A commit whose committer holds no date: git prints nothing for %ct.
            *(c, b, "Cy", "%aI", "%cI", "", "c"),
            "",
        ]
    )
    commits = parse_log(text)
    assert commits[1].parents == ("a" * 40, "c" * 40)
    got = [candidate(c) for c in commits]
    assert [c.label for c in got] == ["a" * 10, "b" * 10, "c" * 10]
    assert got[0].subject == "fix: a | b, c \x1e d \x1f e"
    assert len(commits) == 3
    assert got[0].author == "Ann O'Neil"
    assert got[1].committed == "2024-01-05T00:00:00+00:00"
    assert got[1].commit_time == 1704412800
    assert got[2].commit_time is None
    assert got[1].subject == ""


def test_upstream_repro_finds_the_checkout_and_reads_pytest_summaries(tmp_path: Path) -> None:
    env = tmp_path / "envs" / "k"
    (env / "src" / "fla").mkdir(parents=True)
    (env / "site").mkdir()
    assert upstream_pytest.find_checkout("fla", {"PYTHONPATH": f"{env / 'site'}"}) == (
        env / "src" / "fla"
    )
    assert upstream_pytest.find_checkout("fla", {"PYTHONPATH": f"/x:{env / 'src' / 'fla'}"}) == (
        env / "src" / "fla"
    )
    assert upstream_pytest.find_checkout("fi", {"PYTHONPATH": str(env / "site")}) is None
    out = "F\nFAILED t.py::x - assert 1 == 2\n1 failed, 2 passed, 1 skipped in 0.1s\n"
    assert upstream_pytest.summary_counts(out) == {"failed": 1, "passed": 2, "skipped": 1}
    assert upstream_pytest.summary_counts("no summary") == {}


def _result(status: Status, fingerprint: str = "") -> Result:
    return Result(
        key="k",
        cell_id="c",
        repro="r1",
        base="host",
        gpu="H100",
        status=status,
        fingerprint=fingerprint,
    )


def test_a_different_failure_is_a_skip(matrix: Matrix) -> None:
    setup = _setup(parse("r1", "--library=fla", "--good=a", "--bad=b"), matrix)
    same = _result(Status.REGRESSED, "a,b")
    other = _result(Status.REGRESSED, "c")
    assert setup.judge(same, "b") == (Verdict.NEW, False)
    assert setup.judge(other, "b") == (Verdict.SKIP, True)
    assert setup.judge(other, "") == (Verdict.NEW, False)  # no reference yet: no claim
    assert setup.judge(_result(Status.PASSED), "b") == (Verdict.OLD, False)
    fix = _setup(parse("r1", "--library=fla", "--bad=a", "--good=b", "--find-fix"), matrix)
    assert fix.judge(other, "b") == (Verdict.SKIP, True)
    assert fix.judge(same, "b") == (Verdict.OLD, False)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--calibrate=-1",), "--calibrate -1"),
        (("--confidence=1.0",), "--confidence 1: give a probability above 0.5"),
        (("--confidence=99",), r"--confidence 99: .* 0\.99 \(99% is --confidence 0\.99\)$"),
        (("--max-runs=0",), "--max-runs 0"),
        (("--calibrate=30",), "exceeds --max-runs 20"),
        (("--good= ",), "--good is empty"),
    ],
)
def test_flake_options_are_checked(argv: tuple[str, ...], message: str) -> None:
    given = {a.split("=")[0] for a in argv}  # --good, --bad: one value each
    ends = [a for a in ("--library=fla", "--good=a", "--bad=b") if a.split("=")[0] not in given]
    with pytest.raises(UsageError, match=message):
        bisect_request(parse("r1", *ends, *argv))


def test_a_different_failure_whose_followed_check_passes_is_a_verdict(matrix: Matrix) -> None:
    """Another bug fails at this commit, but the bad end's check was measured within its
    limit: the followed failure is absent here. A skip made drift a linear scan."""
    setup = _setup(parse("r1", "--library=fla", "--good=a", "--bad=b"), matrix)
    other = _result(Status.REGRESSED, "c").model_copy(
        update={"metrics": {"b": 0.001, "c": 1.0}, "thresholds": {"b": 0.01, "c": 0.01}}
    )
    assert setup.judge(other, "b") == (Verdict.OLD, True)
    unmeasured = other.model_copy(update={"metrics": {"c": 1.0}})
    assert setup.judge(unmeasured, "b") == (Verdict.SKIP, True)
    unbounded = other.model_copy(update={"thresholds": {"c": 0.01}})
    assert setup.judge(unbounded, "b") == (Verdict.SKIP, True)
    fix = _setup(parse("r1", "--library=fla", "--bad=a", "--good=b", "--find-fix"), matrix)
    assert fix.judge(other, "b") == (Verdict.NEW, True)


def _flaky_history(key: str) -> dict[str, list[Result]]:
    runs = [_result(Status.PASSED), _result(Status.REGRESSED)]
    return {key: [r.model_copy(update={"key": key, "cell_id": f"cell-{key}"}) for r in runs]}


def test_a_repro_known_flaky_is_bisected_calibrated_from_the_start(
    matrix: Matrix, tmp_path: Path
) -> None:
    """A repro whose lies never contradict each other at one run per commit looks stable:
    the store's flaky cells of it, or its own `calibrate:`, make the search calibrate."""
    from repromatrix.bisect_calibration import calibration as _calibration
    from repromatrix.expand import expand

    key = next(c.key for c in expand(matrix) if c.repro == "r1")
    setup = _setup(parse("r1", "--library=fla", "--good=a", "--bad=b"), matrix)
    request = bisect_request(parse("r1", "--library=fla", "--good=a", "--bad=b"))
    assert _calibration(request, setup, {}, set()) == (0, "")  # stable: costs nothing more
    runs, why = _calibration(request, setup, _flaky_history(key), set())
    assert runs == 5
    assert f"flaky cell of it: cell-{key} passed and regressed" in why
    # The same cell as a candidate: its own runs contradict each other in the search.
    assert _calibration(request, setup, _flaky_history(key), {key}) == (0, "")
    # ... unless --rerun takes no stored run as evidence: then they alone tell it lies.
    rerun = bisect_request(parse("r1", "--library=fla", "--good=a", "--bad=b", "--rerun"))
    assert _calibration(rerun, setup, _flaky_history(key), {key})[0] == 5
    # ... stored under a key of the bisection's own (the full commit pinned), which no
    # cell of the matrix has: --rerun trusted one run per commit of a repro seen lying.
    runs, why = _calibration(rerun, setup, _flaky_history("bisect-key"), {"bisect-key"})
    assert runs == 5
    assert "flaky cell of it: cell-bisect-key passed and regressed" in why
    assert _calibration(request, setup, _flaky_history("bisect-key"), {"bisect-key"})[0] == 0
    # A matrix cell pinned by a name (`good`) with no run of its own, whose commit an
    # earlier bisection ran (its twin): the report calls the cell flaky; a bisection of a
    # range without it trusted one run per commit.
    twins = {key: ("twin-key",)}
    runs, why = _calibration(request, setup, _flaky_history("twin-key"), set(), twins)
    assert runs == 5
    assert "flaky cell of it: cell-twin-key passed and regressed" in why
    # ... unless that commit is a candidate: its runs contradict in the search, as before.
    assert _calibration(request, setup, _flaky_history("twin-key"), {"twin-key"}, twins)[0] == 0
    # Another repro's flaky cell, or the command line's --calibrate, decides otherwise.
    other = next(c.key for c in expand(matrix) if c.repro == "r2")
    assert _calibration(request, setup, _flaky_history(other), set()) == (0, "")
    asked = bisect_request(parse("r1", "--library=fla", "--good=a", "--bad=b", "--calibrate=0"))
    assert _calibration(asked, setup, _flaky_history(key), set()) == (0, "")
    # Declared in matrix.yaml.
    (tmp_path / "m2.yaml").write_text(
        MATRIX.replace("    gpus: [H100]\n", "    gpus: [H100]\n    calibrate: 3\n", 1)
    )
    declared = load_matrix(tmp_path / "m2.yaml")
    setup = _setup(parse("r1", "--library=fla", "--good=a", "--bad=b"), declared)
    assert _calibration(request, setup, {}, set()) == (
        3,
        "m2.yaml asks for calibrate: 3 for r1",
    )
    few = bisect_request(parse("r1", "--library=fla", "--good=a", "--bad=b", "--max-runs=2"))
    with pytest.raises(UsageError, match="calibrate: 3, more than --max-runs 2"):
        _calibration(few, setup, {}, set())


@pytest.mark.parametrize("value", ["-1", "21", "true", "'5'", "2.5"])
def test_a_repro_calibrate_is_a_small_count(tmp_path: Path, value: str) -> None:
    from repromatrix.errors import ConfigError

    (tmp_path / "repros").mkdir()
    (tmp_path / "repros" / "r1.py").write_text("print('hi')\n")
    path = tmp_path / "matrix.yaml"
    path.write_text(
        MATRIX.replace("    gpus: [H100]\n", f"    gpus: [H100]\n    calibrate: {value}\n", 1)
    )
    with pytest.raises(ConfigError, match=r"matrix.yaml:\d+:\d+: .*calibrate"):
        load_matrix(path)


def test_find_links_takes_a_file_url_as_pip_does(tmp_path: Path) -> None:
    """`--find-links file:///data/wheels` was refused as "file:/data/wheels: not a
    directory"."""
    (tmp_path / "my wheels").mkdir()
    url = (tmp_path / "my wheels").as_uri()  # file:///…/my%20wheels
    args = build_parser().parse_args(["run", f"--find-links={url}", "--find-links", "w"])
    assert args.find_links == [tmp_path / "my wheels", Path("w")]
    local = build_parser().parse_args(["run", "--find-links", f"file://localhost{tmp_path}"])
    assert local.find_links == [tmp_path]


def test_find_links_refuses_a_web_page_with_its_address_as_given() -> None:
    """`--find-links http://host:8765/files/` was read as a path and refused as
    "http:/host:8765/files: not a directory": the address mangled, and no word of how
    to give pip a page."""
    for url in ("http://127.0.0.1:8765/files/", "https://example.org/wheels.html"):
        with pytest.raises(UsageError) as refused:
            build_parser().parse_args(["run", "--find-links", url])
        assert f"{url}: a web page or index" in str(refused.value)
        assert "PIP_FIND_LINKS" in str(refused.value)


def test_pre_on_a_library_without_releases_says_to_drop_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--pre` on a git-only library said "use --source pypi", which is refused in turn:
    the library has no 'pypi:' name."""
    import os
    import subprocess

    work = tmp_path / "lib"
    work.mkdir()
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}  # fmt: skip
    for step in (["init", "-q"], ["commit", "-q", "--allow-empty", "-m", "a"], ["tag", "good"]):
        subprocess.run(["git", "-C", str(work), *step], env=env, check=True)
    for step in (["commit", "-q", "--allow-empty", "-m", "b"], ["tag", "bad"]):
        subprocess.run(["git", "-C", str(work), *step], env=env, check=True)
    (tmp_path / "r.py").write_text("")
    (tmp_path / "matrix.yaml").write_text(
        "schema: 1\n"
        f"libraries:\n  lib: {{git: {work}, import: lib,"
        " versions: [{git: good}, {git: bad}]}\n"
        "repros:\n  r: {script: r.py, gpus: [cpu], libraries: {lib: all}}\n"
    )
    argv = ["--matrix", str(tmp_path / "matrix.yaml"), "bisect", "r", "--library", "lib"]
    argv += ["--good", "good", "--bad", "bad", "--pre", "--executor", "local", "--no-progress"]
    argv += ["--cache", str(tmp_path / "cache"), "--results", str(tmp_path / "results")]
    assert main(argv) == 64
    assert capsys.readouterr().err.endswith(
        "--pre applies to releases, not commits: 'lib' has no 'pypi:': drop --pre\n"
    )


def test_a_cell_whose_machines_disagree_is_no_flaky_repro_to_calibrate_for(
    matrix: Matrix,
) -> None:
    """The store's cell passed twice on m-a and regressed twice on m-b: the report says
    "machines disagree", no flaky repro, yet every bisection of the repro was calibrated
    from the start "because the results hold a flaky cell of it"."""
    from repromatrix.bisect_calibration import calibration as _calibration
    from repromatrix.expand import expand
    from repromatrix.records import Machine

    key = next(c.key for c in expand(matrix) if c.repro == "r1")
    setup = _setup(parse("r1", "--library=fla", "--good=a", "--bad=b"), matrix)
    request = bisect_request(parse("r1", "--library=fla", "--good=a", "--bad=b"))
    runs = [
        _result(status).model_copy(
            update={"key": key, "cell_id": f"cell-{key}", "machine": Machine(id=machine)}
        )
        for status, machine in [(Status.PASSED, "m-a"), (Status.REGRESSED, "m-b")] * 2
    ]
    assert _calibration(request, setup, {key: runs}, set()) == (0, "")
    # One machine that disagrees with itself: a flaky repro.
    flaky = [*runs, runs[0].model_copy(update={"machine": Machine(id="m-b")})]
    assert _calibration(request, setup, {key: flaky}, set())[0] == 5


def test_cells_are_built_for_the_candidates_the_store_may_hold_and_when_asked(
    matrix: Matrix,
) -> None:
    """A record of this repro, GPU and base names the commit it was made at: only that
    candidate's cell is looked up; a record that names none may be any candidate's."""
    setup = _setup(parse("r1", "--library=fla", "--good=a", "--bad=b"), matrix)
    shas = [c * 40 for c in "abc"]
    candidates = [Candidate(rev=s, label=s[:SHORT], kind=SourceKind.GIT) for s in shas]
    where = {"repro": setup.repro.name, "gpu": setup.gpu, "base": setup.base}

    def record(commits: dict[str, str], **other: str) -> Any:
        return SimpleNamespace(**(where | other), commits=commits)

    made = {"k1": [record({"fla": shas[1]}), record({}, repro="r2")]}
    assert may_hold(setup, candidates, made, {}) == [1]
    assert may_hold(setup, candidates, made, {2: ()}) == [1, 2]
    assert may_hold(setup, candidates, made | {"k": [record({})]}, {}) == range(3)
    cells = LazyCells(setup, candidates)
    assert (len(cells), cells.built) == (3, 0)
    assert cells[1] is cells[-2]
    assert cells.built == 1
    assert cells[1].key == setup.cell(setup.pin(candidates[1])).key


def test_a_commit_whose_stored_runs_disagree_only_between_two_gpus_is_no_flaky_repro() -> None:
    """Two GPUs of one type on one machine, each steady (GPU-1 passed twice, GPU-2
    regressed twice: the report's "GPUs disagree"), were read as one commit both good and
    bad: the bisection calibrated 'because verdicts contradicted each other' there. Neither
    GPU is the search's (a run takes any slot): none of those runs counts, and the split is
    said."""
    from repromatrix.bisect_aliases import machines_apart
    from repromatrix.records import Machine

    runs = [
        _result(status).model_copy(
            update={"machine": Machine(id="m-a"), "provenance": {"gpu": {"uuid": uuid}}}
        )
        for status, uuid in [(Status.PASSED, "GPU-1"), (Status.REGRESSED, "GPU-2")] * 2
    ]
    kept, split = machines_apart(runs, {"k"}, "m-a", "vm")
    assert kept == []
    assert split is not None
    assert str(split).startswith("GPUs disagree: ")
    # One GPU that disagrees with itself: a flaky repro, every run kept.
    flaky = [*runs, runs[1].model_copy(update={"status": Status.PASSED})]
    assert machines_apart(flaky, {"k"}, "m-a", "vm") == (flaky, None)
    from repromatrix.candidates import Candidate
    from repromatrix.model import SourceKind
    from repromatrix.report.bisect_failures import machines_apart as note

    c0 = Candidate(rev="0" * 40, label="c0", kind=SourceKind.GIT, parents=())
    (line,) = note({0: split}, {}, [c0], lambda c: c.label)
    assert line.startswith("note: stored runs of c0 disagree only between GPUs (GPUs disagree")
    assert line.endswith("the bisection took none (a run takes any GPU of the type)")
