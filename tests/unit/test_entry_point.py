"""The `repromatrix` command as the README presents it: what a Ctrl-C does before
`cli.main` is there to handle it, and the flags its synopsis names."""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

from recordfactory import result

from repromatrix.cli import build_parser
from repromatrix.model import Status

#: A process whose `repromatrix.cli` is still being imported when Ctrl-C arrives: taking
#: `main` from it raises KeyboardInterrupt, as the signal would at that point.
INTERRUPTED_WHILE_IMPORTING = """\
import sys, types

class Importing(types.ModuleType):
    def __getattr__(self, name):
        raise KeyboardInterrupt

sys.modules["repromatrix.cli"] = Importing("repromatrix.cli")
from repromatrix.__main__ import run
run()
"""


def test_ctrl_c_while_the_command_starts_ends_interrupted_130_without_a_traceback() -> None:
    """Ctrl-C in the command's first milliseconds (importing repromatrix's modules, before
    `main` installs its own handling) must end as every other Ctrl-C does: one line,
    `interrupted`, exit 130 (the README's Reliability table promises it)."""
    done = subprocess.run(
        [sys.executable, "-c", INTERRUPTED_WHILE_IMPORTING],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 130, done.stderr
    assert done.stderr == "repromatrix: interrupted\n"
    assert done.stdout == ""


#: `repromatrix run` in a Python that lacks rich, one of repromatrix's requirements (carried
#: wheels without it, as scripts/run-offline.sh runs the tool).
WITHOUT_RICH = """\
import sys

class NotInstalled:  # `import rich` fails as where it is not installed
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] == "rich":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)

sys.meta_path.insert(0, NotInstalled())
from repromatrix.cli import main
raise SystemExit(main(["--matrix", sys.argv[1], "run", "--results", sys.argv[2], "--cache",
                       sys.argv[3], "--executor", "local"]))
"""


def test_a_requirement_not_installed_is_a_missing_tool_not_an_internal_error(
    tmp_path: Path,
) -> None:
    """`run` in a Python without rich (carried wheels that lacked it) ended "internal error:
    ModuleNotFoundError: No module named 'rich' (... report it)", exit 70: no bug of
    repromatrix's, but a requirement to install. One line naming it and the fix, exit 4."""
    (tmp_path / "r.py").write_text("print('never run')\n")
    (tmp_path / "m.yaml").write_text("schema: 1\nrepros:\n  r: {script: r.py, gpus: [cpu]}\n")
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_RICH, str(tmp_path / "m.yaml"), str(tmp_path / "res"),
         str(tmp_path / "cache")],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 4, done.stderr
    assert done.stderr.splitlines() == [
        f"repromatrix: error: {sys.executable} cannot import rich, which repromatrix needs: "
        "install it with its requirements "
        "(pip install '.' from the checkout; offline, carry their wheels, as README's "
        "'Offline hosts' lists)"
    ]


def test_the_readme_command_line_synopsis_names_every_flag_of_each_command() -> None:
    """README's "The command line" block against the parser: it left out `report --title`
    and `--cache`, most of `bisect`'s flags, `clean --cache`, the `ray-node` command and
    `--version`, so a reader could not learn them there."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = readme.split("\n## The command line\n", 1)[1].split("```text\n", 1)[1]
    block = block.split("```", 1)[0]
    selection = set(re.findall(r"(?<![\w-])(--[a-z][\w-]*|-k)\b", block.split("selection:")[1]))
    synopsis: dict[str, set[str]] = {}
    command = ""
    for line in block.split("selection:")[0].splitlines():
        if line.startswith("repromatrix "):
            named = re.findall(r"\b(validate|list|run|report|bisect|ray-node|clean)\b", line)
            command = named[0] if named else ""  # `repromatrix --version`: no command
        flags = set(re.findall(r"(?<![\w-])(--[a-z][\w-]*)", line))
        synopsis.setdefault(command, set()).update(flags)
        if "[selection]" in line:
            synopsis[command] |= selection
    parser = build_parser()
    (sub,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    everywhere = {"--help", "--matrix", "--verbose", "--debug"}
    for name, subparser in sub.choices.items():
        flags = {
            max(action.option_strings, key=len)
            for action in subparser._actions
            if action.option_strings
        } - everywhere
        assert synopsis.get(name, set()) - everywhere == flags, name
    # repromatrix's own (`--version` was in `repromatrix --help` alone).
    own = {max(a.option_strings, key=len) for a in parser._actions if a.option_strings}
    assert synopsis.get("", set()) | everywhere == own


def test_clean_help_says_what_docker_adds_to_a_plain_clean() -> None:
    """`clean --help` said --docker "also" removes repromatrix's containers, which a plain
    `clean` removes already whenever an engine answers; what --docker adds (README) is the
    environment images, and an engine that must answer."""
    parser = build_parser()
    (sub,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    text = " ".join(sub.choices["clean"].format_help().split())
    assert "also remove containers" not in text
    assert "--docker also remove repromatrix's environment images" in text


def _help(command: str) -> str:
    parser = build_parser()
    (sub,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return " ".join(sub.choices[command].format_help().split())


def test_run_and_bisect_help_say_what_their_flags_take() -> None:
    """`--executor` named every kind but `ray`; `--fail-on` gave examples but not the
    statuses it takes (a wrong one is refused); and `bisect --help` said `--jobs` is
    "parallel CPU-only cells", where a bisection runs that many points per round, its
    GPU cells too (at most GPUs x --per-gpu)."""
    for command in ("run", "bisect"):
        assert "a Ray cluster's nodes (ray)" in _help(command), command
    statuses = "passed, regressed, untestable, error, timeout, not_run, flaky"
    assert statuses in _help("run")
    assert "--jobs JOBS points run at once in each round" in _help("bisect")
    assert "--jobs JOBS parallel CPU-only cells" in _help("run")


def test_help_says_which_selection_flags_repeat_and_what_a_release_bisection_tries() -> None:
    """README: the selection flags are each repeatable (`--repro a --repro b` lists both),
    and a release bisection tries the releases the sources offer between the ends. `--help`
    said "only this repro" (as if a second replaced the first) beside "(repeatable)" for
    --library alone, and that `--source pypi` bisects "declared releases"."""
    for command in ("list", "run"):
        text = _help(command).split(" selection: ", 1)[1]
        for flag in ("--repro NAME", "--gpu TYPE", "--image BASE", "--library NAME=REV", "-k TEXT"):
            said = text.split(flag + " ", 1)[1].split(" --", 1)[0].split(" -k ", 1)[0]
            assert "repeatable" in said, (command, flag, said)
    options = _help("bisect").split(" options: ", 1)[1]
    source = options.split("--source {auto,git,pypi} ", 1)[1].split(" --with ", 1)[0]
    assert "declared releases" not in source, source
    assert "offer" in source, source


def test_every_flag_with_a_default_says_it_in_its_help() -> None:
    """`run --help` described `--results` as "result store directory" and `--cache` as
    "environments, git clones and work directories" without saying where they go unless
    given (results/, .repromatrix/: where a user looks for a run's records and its built
    environments), nor `--pull` its policy, `report --out` its folder or `--repeat` its
    count. Each flag whose default is a value now names it."""
    parser = build_parser()
    (sub,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    silent = [
        f"{name} {max(action.option_strings, key=len)}"
        for name, subparser in sub.choices.items()
        for action in subparser._actions
        if action.option_strings
        and action.default not in (None, False, [], argparse.SUPPRESS)
        and "default" not in (action.help or "")
    ]
    assert silent == []
    assert "--results RESULTS result store directory (default results)" in _help("run")
    assert "(default .repromatrix)" in _help("bisect")


#: The `repromatrix` command's process (`__main__.run`) with an exit handler of its own,
#: which runs where the interpreter ends as ever (freeing what it holds).
WITH_AN_EXIT_HANDLER = """\
import atexit, sys
atexit.register(lambda: sys.stderr.write("the interpreter ended\\n"))
sys.argv = ["repromatrix", *sys.argv[1:]]
from repromatrix.__main__ import run
run()
"""


def test_a_report_ends_its_own_process_once_written_and_said(tmp_path: Path) -> None:
    """A report of 100,000 records spent 0.1 s of its end freeing them one object at a
    time for an interpreter about to go. Once its files are written and its last line
    said, the command's own process ends at once: no exit handler runs, its status is the
    report's, and nothing it wrote or said is lost. (A caller of `cli.main` in-process,
    as every other test, keeps its process.)"""
    store = tmp_path / "results"
    store.mkdir()
    records = [result("1.0"), result("2.0", Status.REGRESSED)]
    (store / "x.jsonl").write_text("".join(json.dumps(r.record()) + "\n" for r in records))
    argv = ["report", "--results", str(store), "--out", "rep", "--cache", "cache"]
    done = subprocess.run(
        [sys.executable, "-c", WITH_AN_EXIT_HANDLER, *argv],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines() == [
        "repromatrix: report of 2 cells (2 records) written to rep/index.html"
    ]
    written = {p.name for p in (tmp_path / "rep").iterdir()}
    assert {"index.html", "compat.html", "summary.md", "junit.xml", "results.csv"} <= written
    assert (tmp_path / "rep" / "index.html").read_text().rstrip().endswith("</html>")
    assert (tmp_path / "rep" / "junit.xml").read_text().rstrip().endswith("</testsuites>")


def test_commands_that_run_nothing_do_not_import_the_run_machinery() -> None:
    """`report`, `validate` and `list` read `arguments`' helpers; the bisection plan it
    also builds brings the session, scheduler and progress bars (about 60 ms of CPU a
    start, on the report's critical path). Only `bisect_request` imports it. Nor does a
    report ask pip or read release files: the kept listings and PEP 440 parsing it needs
    were in `pypi_index`, whose seams brought urllib.request and ssl (about 35 ms)."""
    code = (
        "import sys\n"
        "import repromatrix.arguments, repromatrix.cli, repromatrix.report_command\n"
        "print(sorted(m for m in ('repromatrix.bisect_plan', 'repromatrix.session',"
        " 'repromatrix.scheduler', 'rich.progress', 'repromatrix.pypi_index',"
        " 'repromatrix.release_files', 'urllib.request', 'ssl') if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "[]", done.stdout
