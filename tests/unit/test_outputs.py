"""Files written for people: checked before work starts, replaced whole or not at all."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from repromatrix import outputs
from repromatrix.cli import main
from repromatrix.errors import ExitCode, OutputError, UsageError


def test_checking_a_folder_leaves_nothing_behind(tmp_path: Path) -> None:
    (tmp_path / "there").mkdir()
    for folder in (tmp_path / "a" / "b", tmp_path / "there"):
        outputs.check_folder(folder, "--out")
    assert [p.name for p in tmp_path.iterdir()] == ["there"]
    assert list((tmp_path / "there").iterdir()) == []


@pytest.mark.parametrize(
    ("name", "message"),
    [("file", "is a file; pass a folder"), ("file/below", "cannot write there")],
)
def test_a_folder_that_cannot_be_one_is_refused(tmp_path: Path, name: str, message: str) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match=message) as caught:
        outputs.check_folder(tmp_path / name, "--out")
    assert str(tmp_path / name) in str(caught.value)
    assert caught.value.exit_code is ExitCode.OUTPUT


def test_a_file_path_that_is_a_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="is a folder; pass a file path"):
        outputs.check_file(tmp_path, "--markdown")


def test_staged_files_replace_their_namesakes_only_when_all_are_written(tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text("old page")
    (tmp_path / "keep.txt").write_text("not ours")
    with outputs.staged(tmp_path, "--out") as stage:
        assert stage.parent == tmp_path
        (stage / "index.html").write_text("new page")
        (stage / "junit.xml").write_text("<x/>")
        assert (tmp_path / "index.html").read_text() == "old page"
    assert (tmp_path / "index.html").read_text() == "new page"
    assert (tmp_path / "junit.xml").read_text() == "<x/>"
    assert (tmp_path / "keep.txt").read_text() == "not ours"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index.html", "junit.xml", "keep.txt"]


def test_a_write_that_fails_leaves_the_old_files_and_no_staging(tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text("old page")

    def fill_the_disk() -> None:
        with outputs.staged(tmp_path, "--out") as stage:
            (stage / "index.html").write_text("half a pa")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with pytest.raises(OutputError) as caught:
        fill_the_disk()
    assert "No space left on device" in str(caught.value)
    assert "--out" in str(caught.value)
    assert [p.name for p in tmp_path.iterdir()] == ["index.html"]
    assert (tmp_path / "index.html").read_text() == "old page"


def _old_report(folder: Path) -> None:
    for name in ("compat.html", "index.html", "results.csv", "summary.md"):
        (folder / name).write_text(f"old {name}")


def _write_new(folder: Path) -> None:
    with outputs.staged(folder, "--out") as stage:
        for name in ("compat.html", "index.html", "junit.xml", "results.csv", "summary.md"):
            (stage / name).write_text(f"new {name}")


def test_a_folder_in_the_way_replaces_nothing(tmp_path: Path) -> None:
    """A folder named junit.xml: compat.html and index.html were already the new report,
    results.csv and summary.md still the old one, and the fix said to free some space."""
    _old_report(tmp_path)
    (tmp_path / "junit.xml").mkdir()
    with pytest.raises(OutputError) as caught:
        _write_new(tmp_path)
    assert "writing junit.xml failed" in str(caught.value)
    assert "make junit.xml a file you can replace" in str(caught.value)
    assert "free some space" not in str(caught.value)
    for name in ("compat.html", "index.html", "results.csv", "summary.md"):
        assert (tmp_path / name).read_text() == f"old {name}"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "compat.html",
        "index.html",
        "junit.xml",
        "results.csv",
        "summary.md",
    ]


def test_a_rename_that_fails_half_way_puts_back_what_it_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _old_report(tmp_path)
    real = os.replace

    def refuse_the_csv(src: str | Path, dst: str | Path) -> None:
        putting_back = Path(src).parent.name.startswith(".replaced-")
        if Path(dst).name == "results.csv" and not putting_back:
            raise OSError(errno.EBUSY, os.strerror(errno.EBUSY), str(dst))
        real(src, dst)

    monkeypatch.setattr(os, "replace", refuse_the_csv)
    with pytest.raises(OutputError, match=r"writing results\.csv failed"):
        _write_new(tmp_path)
    for name in ("compat.html", "index.html", "results.csv", "summary.md"):
        assert (tmp_path / name).read_text() == f"old {name}"
    # A file the old report did not have is taken away again.
    assert not (tmp_path / "junit.xml").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "compat.html",
        "index.html",
        "results.csv",
        "summary.md",
    ]


def test_other_errors_pass_through_and_still_remove_the_staging(tmp_path: Path) -> None:

    def buggy() -> None:
        with outputs.staged(tmp_path, "--out"):
            raise KeyError("a bug")

    with pytest.raises(KeyError):
        buggy()
    assert list(tmp_path.iterdir()) == []


def test_write_text_keeps_the_old_files_mode(tmp_path: Path) -> None:
    path = tmp_path / "README.md"
    path.write_text("old")
    path.chmod(0o664)
    outputs.write_text(path, "new", "--readme")
    assert path.read_text() == "new"
    assert path.stat().st_mode & 0o777 == 0o664
    assert [p.name for p in tmp_path.iterdir()] == ["README.md"]


def test_report_refuses_an_unusable_out_before_loading(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "taken").write_text("a file")
    # The results path does not exist: had the store been read first, this would be exit 3.
    code = main(
        [
            "--matrix",
            str(tmp_path / "none.yaml"),
            "report",
            "--results",
            str(tmp_path / "missing"),
            "--out",
            str(tmp_path / "taken"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 10
    assert ExitCode.OUTPUT.value == 10
    assert err.count("\n") == 1
    assert err.startswith(f"repromatrix: error: --out {tmp_path / 'taken'}: is a file")


@pytest.fixture
def matrix(tmp_path: Path) -> Path:
    """One CPU repro, no libraries."""
    path = tmp_path / "m.yaml"
    path.write_text("schema: 1\nrepros:\n  r: {script: r.py, gpus: [cpu]}\n")
    (tmp_path / "r.py").write_text("")
    return path


def test_bisect_refuses_a_markdown_path_that_is_a_folder_before_bisecting(
    tmp_path: Path, matrix: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--matrix", str(matrix), "bisect", "r", "--library=x", "--good=a", "--bad=b"]
    code = main([*argv, f"--markdown={tmp_path}"])
    err = capsys.readouterr().err
    assert code == 10
    assert f"--markdown {tmp_path}: is a folder" in err


def test_a_device_or_fifo_is_never_replaced_by_a_file(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for path in (fifo, Path("/dev/null")):
        with pytest.raises(OutputError, match="not a regular file"):
            outputs.check_file(path, "--markdown")
    assert fifo.is_fifo()


@pytest.mark.parametrize("readme", ["/dev/zero", "fifo"])
def test_report_refuses_a_readme_that_is_not_a_regular_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], readme: str
) -> None:
    if readme == "fifo":
        os.mkfifo(tmp_path / "fifo")
        readme = str(tmp_path / "fifo")
    argv = ["--matrix", str(tmp_path / "none.yaml"), "report", "--results", str(tmp_path)]
    code = main([*argv, "--out", str(tmp_path / "rep"), "--readme", readme])
    assert code == 64
    assert f"--readme {readme}: not a regular file" in capsys.readouterr().err


def test_report_names_a_readme_that_is_a_link_loop_an_output_it_cannot_write(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--readme L`, L one of two links to each other, ended with exit 64 (usage); an
    output path that cannot be written (a link loop) is exit 10, as README's codes say."""
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    argv = ["--matrix", str(tmp_path / "none.yaml"), "report", "--results", str(tmp_path)]
    code = main([*argv, "--out", str(tmp_path / "rep"), "--readme", str(tmp_path / "a")])
    err = capsys.readouterr().err
    assert (code, ExitCode.OUTPUT.value) == (ExitCode.OUTPUT, 10), err
    assert f"--readme {tmp_path / 'a'}: a link that leads nowhere (a loop)" in err
    assert "Traceback" not in err


def test_clean_removes_the_workers_folder_but_not_while_a_run_uses_the_cache(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`clean` left <cache>/workers/ (the workers' logs, copies of the worker program),
    which grew with every run; it is removed now, as runs/ is, and, as runs/ is, never
    while a run holds the cache."""
    from repromatrix.locks import cache_in_use

    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    cache = tmp_path / "cache"
    (cache / "workers" / "program-0123456789abcdef").mkdir(parents=True)
    (cache / "workers" / "program-0123456789abcdef" / "worker_main.py").write_text("")
    (cache / "workers" / "cpu0-3f2a.log").write_text("worker log\n")
    (cache / ".repromatrix-cache.lock").touch()
    with cache_in_use(cache):  # a run in progress
        assert main(["clean", "--cache", str(cache)]) == ExitCode.RESULTS_BUSY
    assert (cache / "workers" / "cpu0-3f2a.log").is_file()
    capsys.readouterr()
    assert main(["clean", "--cache", str(cache)]) == 0
    assert not (cache / "workers").exists()
    assert f"removed 1 item(s): {cache / 'workers'}" in capsys.readouterr().err


def test_clean_removes_what_it_finds_in_the_cache_as_it_is(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious").write_text("keep")
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / ".repromatrix-cache.lock").touch()  # what a run leaves: this is a cache
    (cache / "runs").write_text("a file where a folder goes")
    (cache / "envs").symlink_to(victim)
    (cache / "git").mkdir()
    (cache / "git" / "x").write_text("x")
    assert main(["clean", "--cache", str(cache), "--envs"]) == 0
    assert [p.name for p in cache.iterdir()] == [".repromatrix-cache.lock"]  # kept: a lock
    assert (victim / "precious").read_text() == "keep"
    assert "removed 3 item(s)" in capsys.readouterr().err


def test_report_refuses_a_readme_with_two_table_markers_before_writing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    readme = tmp_path / "README.md"
    pair = "<!-- reproduced:begin -->\nold\n<!-- reproduced:end -->\n"
    readme.write_text(pair + "text\n" + pair)
    argv = ["--matrix", str(tmp_path / "none.yaml"), "report", "--results", str(tmp_path)]
    code = main([*argv, "--out", str(tmp_path / "rep"), "--readme", str(readme)])
    assert code == 64
    assert "more than one '<!-- reproduced:begin -->'" in capsys.readouterr().err
    assert readme.read_text() == pair + "text\n" + pair
    assert not (tmp_path / "rep").exists()


def test_a_library_flag_on_a_matrix_without_libraries_says_there_are_none(
    matrix: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--matrix", str(matrix), "list", "--library", "nope=1"]) == 64
    assert "known: none" in capsys.readouterr().err


def test_a_results_link_that_leads_nowhere_is_named_as_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    argv = ["--matrix", str(tmp_path / "none.yaml"), "report", "--results", str(loop)]
    assert main([*argv, "--out", str(tmp_path / "rep")]) == 3
    assert f"--results {loop}: a link that leads nowhere" in capsys.readouterr().err


def test_report_says_when_the_named_matrix_is_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    typo = tmp_path / "matirx.yaml"
    code = main(["--matrix", str(typo), "report", "--results", str(tmp_path), "--out",
                 str(tmp_path / "rep")])  # fmt: skip
    assert code == 0
    assert f"warning: --matrix {typo}: no such file" in capsys.readouterr().err


def test_an_output_path_that_is_an_input_is_refused_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`bisect --markdown results/x.jsonl` replaced the store with Markdown (records lost,
    exit 0); `--markdown matrix.yaml` replaced the matrix."""
    store = tmp_path / "results"
    store.mkdir()
    (store / "vm.jsonl").write_text("")
    matrix = tmp_path / "matrix.yaml"
    matrix.write_text("schema: 1\nrepros: {}\n")
    for path, what in ((store / "vm.jsonl", "results file"), (store / "new.jsonl", "results file"),
                       (tmp_path / "." / "matrix.yaml", "matrix file")):  # fmt: skip
        with pytest.raises(UsageError, match=what):
            outputs.check_not_input(path, "--markdown", matrix=matrix, results=[store])
    outputs.check_not_input(store / "bisect.md", "--markdown", matrix=matrix, results=[store])
    readme = store / "vm.jsonl"
    argv = [
        "--matrix",
        str(matrix),
        "report",
        "--results",
        str(store),
        "--out",
        str(tmp_path / "o"),
    ]
    assert main([*argv, "--readme", str(readme)]) == 64
    assert "is a results file" in capsys.readouterr().err
    assert readme.read_text() == ""


@pytest.mark.parametrize("inside", ["runs", "envs/x", "git"])
def test_a_results_folder_inside_what_clean_empties_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], inside: str
) -> None:
    matrix = tmp_path / "matrix.yaml"
    matrix.write_text("schema: 1\nrepros: {r: {script: r.py, gpus: [cpu]}}\n")
    (tmp_path / "r.py").write_text("")
    cache = tmp_path / "cache"
    argv = ["--matrix", str(matrix), "run", "--cache", str(cache), "--no-progress"]
    assert main([*argv, "--results", str(cache / inside)]) == 64
    assert "which `repromatrix clean` empties" in capsys.readouterr().err
    outputs.check_results_outside_cache(tmp_path / "results", cache)  # beside it: fine


def test_readme_markers_in_the_wrong_order_are_named_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("<!-- reproduced:end -->\nold\n<!-- reproduced:begin -->\n")
    argv = ["--matrix", str(tmp_path / "none.yaml"), "report", "--results", str(tmp_path)]
    assert main([*argv, "--out", str(tmp_path / "rep"), "--readme", str(readme)]) == 64
    assert "comes before '<!-- reproduced:begin -->'" in capsys.readouterr().err


@pytest.mark.parametrize("eol", ["\r\n", "\n"])
def test_the_readme_keeps_its_line_endings(tmp_path: Path, eol: str) -> None:
    """A CRLF README had every line, outside the markers too, rewritten to LF."""
    from repromatrix.readme import update_readme

    readme = tmp_path / "README.md"
    lines = ["# Title", "text", "<!-- reproduced:begin -->", "old", "<!-- reproduced:end -->"]
    readme.write_bytes(eol.join([*lines, "after", ""]).encode())
    update_readme(readme, "| a | b |\n|---|---|\n| 1 | 2 |\n")
    expected = ["# Title", "text", "<!-- reproduced:begin -->", "| a | b |", "|---|---|"]
    expected += ["| 1 | 2 |", "<!-- reproduced:end -->", "after", ""]
    assert readme.read_bytes() == eol.join(expected).encode()


def test_an_output_over_a_repro_script_its_code_or_a_lock_file_is_refused(tmp_path: Path) -> None:
    """`bisect --markdown repros/x.py` replaced the repro it bisected (the next bisection
    ran Markdown as Python); one over `.repromatrix-run.lock` replaced the lock a run
    holds, so a second run could take the folder at once."""
    matrix = tmp_path / "matrix.yaml"
    repros = tmp_path / "repros"
    repros.mkdir()
    script = repros / "r.py"
    store = tmp_path / "results"
    for path, what in (
        (script, "repro"),
        (repros / "_helper.py", "repro"),
        (tmp_path / "repros" / ".." / "repros" / "r.py", "repro"),
        (store / ".repromatrix-run.lock", "repromatrix keeps"),
        (tmp_path / "cache" / ".repromatrix-cache.lock", "repromatrix keeps"),
    ):
        with pytest.raises(UsageError, match=what):
            outputs.check_not_input(
                path, "--markdown", matrix=matrix, results=[store], scripts=[script]
            )
    outputs.check_not_input(
        repros / "notes.md", "--markdown", matrix=matrix, results=[store], scripts=[script]
    )


def test_an_output_over_a_repro_script_names_that_script(tmp_path: Path) -> None:
    """`bisect libv ... --markdown repros/libv.py` said "is a repro script or its code
    (repros/ok.py)": the first script of that folder, which the path was not."""
    repros = tmp_path / "repros"
    repros.mkdir()
    scripts = [repros / "ok.py", repros / "libv.py"]
    for path, named in ((scripts[1], scripts[1]), (repros / "_helper.py", scripts[0])):
        with pytest.raises(UsageError) as caught:
            outputs.check_not_input(
                path, "--markdown", matrix=tmp_path / "m.yaml", results=[], scripts=scripts
            )
        assert str(caught.value) == (
            f"--markdown {path}: is a repro script or its code ({named}); pass another path"
        )


def test_an_output_link_is_checked_where_it_points_before_any_work(tmp_path: Path) -> None:
    """`--markdown link.md` whose target's folder cannot take a file passed the check (the
    link's own folder could) and failed only when written, after the whole bisection."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    link = tmp_path / "link.md"
    link.symlink_to(blocker / "bisect.md")
    with pytest.raises(OutputError, match=r"a link to .*whose folder cannot take it"):
        outputs.check_file(link, "--markdown")


@pytest.mark.parametrize("name", ["summary.md", "changes.md"])
def test_a_readme_the_report_itself_writes_is_refused_and_kept(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    """`--readme OUT/changes.md` was deleted as a stale comparison, `--readme
    OUT/summary.md` replaced by the report's summary: the README's text lost (exit 64)."""
    out = tmp_path / "out"
    out.mkdir()
    readme = out / name
    text = "mine\n<!-- reproduced:begin -->\n<!-- reproduced:end -->\nend\n"
    readme.write_text(text)
    (tmp_path / "results").mkdir()
    argv = ["--matrix", str(tmp_path / "none.yaml"), "report", "--results"]
    argv += [str(tmp_path / "results"), "--out", str(out), "--readme", str(readme)]
    assert main(argv) == ExitCode.USAGE
    assert "the report writes" in capsys.readouterr().err
    assert readme.read_text() == text


@pytest.mark.parametrize("sub", ["git", "envs", "runs", "workers"])
def test_a_cache_holding_folders_clean_would_empty_is_refused_at_first_use(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], sub: str
) -> None:
    """`run --cache ~` made ~ a cache (its lock file), and `clean --envs --cache ~` then
    deleted ~/git with the user's own clones in it (exit 0)."""
    matrix = tmp_path / "matrix.yaml"
    matrix.write_text("schema: 1\nrepros: {r: {script: r.py, gpus: [cpu]}}\n")
    (tmp_path / "r.py").write_text("")
    home = tmp_path / "home"
    (home / sub / "myproject").mkdir(parents=True)
    argv = ["--matrix", str(matrix), "run", "--cache", str(home), "--no-progress"]
    assert main([*argv, "--results", str(tmp_path / "results")]) == ExitCode.USAGE
    assert "not made by repromatrix" in capsys.readouterr().err
    assert (home / sub / "myproject").is_dir()
    assert main(["clean", "--envs", "--cache", str(home)]) == ExitCode.USAGE
    assert (home / sub / "myproject").is_dir()


def test_a_cache_a_report_made_is_taken_by_the_first_run(tmp_path: Path) -> None:
    """`report` keeps parsed records in <cache>/parsed/ without the lock: a run after it
    must still take that cache."""
    (tmp_path / "cache" / "parsed" / "entry").mkdir(parents=True)
    outputs.check_cache_is_ours(tmp_path / "cache")


def test_a_node_cache_from_before_nodes_left_the_lock_is_still_ours(tmp_path: Path) -> None:
    """A Ray node's cache holds envs/ and git/ but, made before nodes left the lock file,
    no lock: its next `ray-node` was refused. An environment repromatrix built (its
    manifest names its own folder) marks the folder as ours; a lookalike does not."""
    node = tmp_path / "node"
    (node / "envs" / "3f2a").mkdir(parents=True)
    (node / "git").mkdir()
    (node / "git" / "fla.git").mkdir()
    manifest = node / "envs" / "3f2a" / "env.json"
    manifest.write_text('{"layout": 3, "key": "3f2a", "base_fingerprint": "ab"}')
    outputs.check_cache_is_ours(node)
    manifest.write_text('{"key": "other", "base_fingerprint": "ab"}')
    with pytest.raises(UsageError, match="not made by repromatrix"):
        outputs.check_cache_is_ours(node)
    manifest.write_text("not json")
    with pytest.raises(UsageError, match="not made by repromatrix"):
        outputs.check_cache_is_ours(node)


def test_a_file_that_cannot_be_written_is_named_with_its_flag_not_its_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`report --readme README.md` on a full disk said "--readme <its folder>: writing
    the report failed ...: pass another folder" (a failed write names no file)."""
    readme = tmp_path / "README.md"
    readme.write_text("old")

    def full(self: Path, *args: object, **kwargs: object) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(Path, "write_text", full)
    with pytest.raises(OutputError) as caught:
        outputs.write_text(readme, "new", "--readme")
    assert str(caught.value) == (
        f"--readme {readme}: writing README.md failed (No space left on device); nothing "
        "there was replaced: free some space or pass another path"
    )
    monkeypatch.undo()
    assert readme.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["README.md"]


@pytest.mark.parametrize("below", ["h1.jsonl", "published/h2.jsonl"])
def test_a_results_file_of_another_run_is_not_an_output(tmp_path: Path, below: str) -> None:
    """`bisect --results rb --markdown res/h1.jsonl`: res is not this command's input,
    but a run's results folder all the same (its lock file says so); its records were
    replaced by a Markdown page."""
    from repromatrix.locks import LOCK_NAME

    (tmp_path / "res" / "published").mkdir(parents=True)
    (tmp_path / "res" / LOCK_NAME).write_text("")
    target = tmp_path / "res" / below
    target.write_text('{"schema": 3}\n')
    with pytest.raises(UsageError, match=r"is a results file .*writing it would lose records"):
        outputs.check_not_input(target, "--markdown", matrix=tmp_path / "m.yaml", results=[])
    # A Markdown file there is no results file, and a .jsonl elsewhere is anyone's.
    outputs.check_not_input(
        tmp_path / "res" / "bisect.md", "--markdown", matrix=tmp_path / "m.yaml", results=[]
    )
    outputs.check_not_input(
        tmp_path / "notes.jsonl", "--markdown", matrix=tmp_path / "m.yaml", results=[]
    )


def test_an_out_folder_that_is_a_dangling_link_is_written_where_it_points(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`report --out D`, D a link to a folder not made yet, failed after loading every
    record with "cannot make it (File exists)": the link's own name was made a folder.
    An output link is written where it points, so the folder it names is made."""
    (tmp_path / "results").mkdir()
    link = tmp_path / "reports"
    link.symlink_to(tmp_path / "elsewhere" / "reports")
    argv = ["--matrix", str(tmp_path / "none.yaml"), "report", "--results"]
    assert main([*argv, str(tmp_path / "results"), "--out", str(link)]) == ExitCode.OK
    assert "File exists" not in capsys.readouterr().err
    assert link.is_symlink()
    assert (tmp_path / "elsewhere" / "reports" / "index.html").is_file()


def test_an_out_folder_that_is_a_link_loop_is_named_as_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "results").mkdir()
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    for flag, path in (("--out", loop), ("--markdown", loop / "x.md")):
        with pytest.raises(OutputError) as caught:
            (outputs.check_folder if flag == "--out" else outputs.check_file)(path, flag)
        assert str(caught.value) == (  # a file's folder is checked as a folder
            f"{flag} {loop}: {loop} is a link that leads nowhere (a loop); remove it or "
            "pass another path"
        )
    argv = ["--matrix", str(tmp_path / "none.yaml"), "report", "--results"]
    assert main([*argv, str(tmp_path / "results"), "--out", str(loop)]) == ExitCode.OUTPUT
    err = capsys.readouterr().err
    assert "a link that leads nowhere (a loop)" in err
    assert "File exists" not in err


def test_a_file_written_through_a_link_keeps_the_link(tmp_path: Path) -> None:
    """`--markdown link.md` (or `--readme`) was checked where the link points, then the
    link itself was replaced by a regular file: the file it named kept the old text."""
    real = tmp_path / "docs" / "README.md"
    real.parent.mkdir()
    real.write_text("old\n")
    link = tmp_path / "README.md"
    link.symlink_to(real)
    outputs.check_file(link, "--readme")
    outputs.write_text(link, "new\n", "--readme")
    assert link.is_symlink()
    assert real.read_text() == "new\n"
    dangling = tmp_path / "bisect.md"
    dangling.symlink_to(tmp_path / "notes" / "bisect.md")
    outputs.check_file(dangling, "--markdown")
    outputs.write_text(dangling, "found\n", "--markdown")
    assert dangling.is_symlink()
    assert (tmp_path / "notes" / "bisect.md").read_text() == "found\n"


def test_a_readme_that_is_the_results_folder_is_called_a_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`report --results res --readme res` said "is a results file of res" of a folder."""
    (tmp_path / "res").mkdir()
    res = str(tmp_path / "res")
    argv = ["--matrix", str(tmp_path / "none.yaml"), "report", "--results", res]
    assert main([*argv, "--out", str(tmp_path / "out"), "--readme", res]) == ExitCode.USAGE
    assert capsys.readouterr().err == (
        f"repromatrix: error: --readme {res}: is the results folder {res}; pass a file path\n"
    )


def test_an_out_folder_that_is_a_fifo_is_named_as_one(tmp_path: Path) -> None:
    """`report --out FIFO` said "is a file; pass a folder" of a named pipe."""
    os.mkfifo(tmp_path / "fifo")
    for path, kind in (
        (tmp_path / "fifo", "a FIFO (named pipe)"),
        (Path(os.devnull), "a character device"),
    ):
        with pytest.raises(OutputError) as caught:
            outputs.check_folder(path, "--out")
        assert str(caught.value) == f"--out {path}: {kind}, not a folder; pass a folder"


def test_a_readme_that_is_missing_or_a_dangling_link_says_what_to_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--readme gone.md` said "cannot read (No such file or directory)": no way out named,
    and for a link not even that the link is what leads nowhere."""
    (tmp_path / "res").mkdir()
    link = tmp_path / "README.md"
    link.symlink_to(tmp_path / "docs" / "README.md")
    argv = ["--matrix", str(tmp_path / "none.yaml"), "report", "--results", str(tmp_path / "res")]
    argv += ["--out", str(tmp_path / "out")]
    for readme, what in (
        (tmp_path / "gone.md", "no such file"),
        (link, f"a link to {tmp_path / 'docs' / 'README.md'}, which does not exist"),
    ):
        assert main([*argv, "--readme", str(readme)]) == ExitCode.USAGE
        assert capsys.readouterr().err == (
            f"repromatrix: error: --readme {readme}: {what}; pass the README to update (one "
            "with the '<!-- reproduced:begin -->' and '<!-- reproduced:end -->' markers)\n"
        )


def test_report_lines_name_each_folder_once_and_keep_a_path_on_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--results a --results a` warned "no records in a, a"; an `--out` holding a
    newline or an escape sequence was printed as it is, over two lines or run by the
    terminal."""
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "o\nut\x1b]0;title\x07"
    argv = ["--matrix", str(tmp_path / "none.yaml"), "report", "--results", str(empty)]
    assert main([*argv, "--results", str(empty), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert f"no records in {empty}; the report is empty" in err
    assert "\x1b" not in err
    last = err.strip().splitlines()[-1]  # where the report went, on one line
    assert last.startswith("repromatrix: report of 0 cells")
    assert last.endswith("index.html")
    assert (out / "index.html").exists()


def test_what_a_killed_report_left_aside_goes_with_the_next_report(tmp_path: Path) -> None:
    """A report killed while writing (kill -9, the OOM killer, a CI job's timeout) left its
    staging folder in --out (32 MB of a 60,000-record report), and every such kill one
    more, for ever, published with the folder. The next report removes those whose writer
    is gone; one a report still writing holds stays."""
    import fcntl

    dead = tmp_path / f"{outputs.STAGING_PREFIX}dead"
    dead.mkdir()
    (dead / "index.html").write_text("half a page")
    live = tmp_path / f"{outputs.STAGING_PREFIX}live"
    live.mkdir()
    held = os.open(live, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a report writing there holds it
        with outputs.staged(tmp_path, "--out") as stage:
            (stage / "index.html").write_text("new")
        assert sorted(p.name for p in tmp_path.iterdir()) == [live.name, "index.html"]
    finally:
        os.close(held)


def test_a_staging_folder_just_made_is_not_swept_by_another_writer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two reports into one --out at once: the second swept the first's staging folder in
    the moment between its making and its writer's hold (nobody held it yet), and the
    first failed, "writing the report failed (No such file or directory)"."""
    import threading

    hold = outputs._hold
    other = threading.Thread(target=outputs._sweep, args=(tmp_path, tmp_path / "theirs"))

    def hold_late(stage: Path) -> int:
        other.start()  # another writer's sweep, in the moment before the hold
        other.join(timeout=1)
        return hold(stage)

    monkeypatch.setattr(outputs, "_hold", hold_late)
    with outputs.staged(tmp_path, "--out") as stage:
        (stage / "index.html").write_text("new")
    other.join()
    assert (tmp_path / "index.html").read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["index.html"]


def test_clean_names_the_file_it_could_not_remove(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """One immutable log among a run's files (`chattr +i`) stopped `clean` with "cannot
    remove runs (Operation not permitted)": which of the files under runs/ was unsaid."""
    import subprocess

    if os.geteuid() != 0:
        pytest.skip("chattr needs root")
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    cache = tmp_path / "cache"
    log = cache / "runs" / "r1" / "k" / "stdout.log"
    log.parent.mkdir(parents=True)
    (cache / ".repromatrix-cache.lock").touch()
    log.write_text("x")
    if subprocess.run(["chattr", "+i", str(log)], check=False).returncode != 0:
        pytest.skip("no chattr on this filesystem")
    try:
        assert main(["clean", "--cache", str(cache)]) == ExitCode.OUTPUT
    finally:
        subprocess.run(["chattr", "-i", str(log)], check=True)
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"repromatrix: error: --cache {cache}: cannot remove runs/r1/k/stdout.log (Operation "
        "not permitted); pass a cache you can write, or remove it by hand"
    )
