"""What a cell changes in its persistent worker's interpreter must not reach the next
cell's record: each case is a pair of cells of one repro in one worker, the first
changing something for its own case, the second reading it. Real workers."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from clihelpers import CliRunner

from repromatrix.records import Result
from repromatrix.store import ResultStore

pytestmark = pytest.mark.integration


def _in_one_worker(
    run_cli: CliRunner, tmp_path: Path, script: str, **env: str
) -> dict[str, Result]:
    """Cells `a` then `b` of `script` (params {n: a|b}), run by one worker (checked)."""
    got = _two_workers(run_cli, tmp_path, script, **env)
    assert len({got[n].provenance["harness"]["worker"]["pid"] for n in "ab"}) == 1
    return got


def _two_workers(run_cli: CliRunner, tmp_path: Path, script: str, **env: str) -> dict[str, Result]:
    """Cells `a` then `b` of `script` (params {n: a|b}), in one worker unless `a` retires it."""
    (tmp_path / "repros").mkdir()
    (tmp_path / "repros" / "s.py").write_text(script)
    lines = ["schema: 1", "defaults: {timeout: 30}", "repros:"]
    lines += [f"  {n}: {{script: repros/s.py, gpus: [cpu], params: {{n: {n}}}}}" for n in "ab"]
    (tmp_path / "m.yaml").write_text("\n".join(lines) + "\n")
    out = run_cli(
        "--matrix", str(tmp_path / "m.yaml"), "run", "--jobs", "1", "--no-progress",
        "--results", str(tmp_path / "results"), env=env,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    return {r.repro: r for r in ResultStore(tmp_path / "results").load().results}


HIDES_A_MODULE = textwrap.dedent("""\
    import importlib.abc, sys

    class Hide(importlib.abc.MetaPathFinder):  # "the library without its optional wave"
        def find_spec(self, name, path=None, target=None):
            if name == "wave":
                raise ImportError("hidden for this case")

    def run(params):
        if params["n"] == "a":
            sys.meta_path.insert(0, Hide())
            sys.path_hooks.insert(0, lambda folder: None)
            import withfinder  # a library whose first import installs a finder, as six's
        try:
            import wave
            seen = "imported"
        except ImportError as exc:
            seen = str(exc)
        hooks = sum(1 for hook in sys.path_hooks if getattr(hook, "__name__", "") == "<lambda>")
        library = sum(type(f).__name__ == "LibraryFinder" for f in sys.meta_path)
        return {"schema": 1, "status": "passed", "reason": f"{seen}, {hooks}, {library}"}
""")
LIBRARY_WITH_A_FINDER = textwrap.dedent("""    import sys

    class LibraryFinder:
        def find_spec(self, name, path=None, target=None):
            return None

    sys.meta_path.append(LibraryFinder())
""")


def test_import_hooks_a_cell_installs_do_not_reach_the_next_cell(
    tmp_path: Path, run_cli: CliRunner
) -> None:
    """A finder a cell put first on `sys.meta_path` to hide a module from its own case (or a
    path hook it added) stayed for every later cell of its worker, whose import of the
    module then failed, where a process of its own imports it. A library's finder, installed
    by its first import, stays: the library's later imports need it."""
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "withfinder.py").write_text(LIBRARY_WITH_A_FINDER)
    got = _in_one_worker(run_cli, tmp_path, HIDES_A_MODULE, PYTHONPATH=str(tmp_path / "lib"))
    assert got["a"].reason == "hidden for this case, 1, 1"
    assert got["b"].reason == "imported, 0, 1"


OWN_TEMPORARY_FOLDER = textwrap.dedent("""\
    import shutil, tempfile

    def run(params):
        if params["n"] == "a":  # its temporary files in a folder of its own, removed after
            tempfile.tempdir = tempfile.mkdtemp(prefix="own-")
            shutil.rmtree(tempfile.tempdir)
        try:
            with tempfile.TemporaryDirectory():
                seen = "made"
        except OSError as exc:
            seen = type(exc).__name__
        return {"schema": 1, "status": "passed", "reason": seen}
""")


def test_a_temporary_folder_a_cell_sets_does_not_reach_the_next_cell(
    tmp_path: Path, run_cli: CliRunner
) -> None:
    """`tempfile.tempdir` a cell set to a folder of its own (then removed) stayed for every
    later cell of its worker: their temporary files failed (FileNotFoundError), where a
    process of their own makes them in the usual place."""
    got = _in_one_worker(run_cli, tmp_path, OWN_TEMPORARY_FOLDER)
    assert [got[n].reason for n in "ab"] == ["FileNotFoundError", "made"]


HIDES_OR_MOCKS_MODULES = textwrap.dedent("""\
    import sys

    class Mock:  # as unittest.mock.MagicMock() stands in for a module
        def rgb_to_hsv(self, *rgb):
            return "mocked"

    def run(params):
        if params["n"] == "a":  # "the library without wave, and with a stand-in colorsys"
            sys.modules["wave"] = None
            sys.modules["colorsys"] = Mock()
        try:
            import wave
            seen = ["wave"]
        except ImportError:
            seen = ["no wave"]
        import colorsys
        seen.append(str(colorsys.rgb_to_hsv(0, 0, 0)))
        return {"schema": 1, "status": "passed", "reason": ", ".join(seen)}
""")


def test_modules_a_cell_hides_or_mocks_in_sys_modules_do_not_reach_the_next_cell(
    tmp_path: Path, run_cli: CliRunner
) -> None:
    """`sys.modules["wave"] = None` (to run a case without it) or a mock put where no
    module was stayed for every later cell of the worker, whose `import wave` then failed
    and whose `colorsys` was the mock, where a process of its own imports the real ones.
    The worker is replaced after such a cell."""
    got = _two_workers(run_cli, tmp_path, HIDES_OR_MOCKS_MODULES)
    assert [got[n].reason for n in "ab"] == ["no wave, mocked", "wave, (0.0, 0.0, 0)"]
    assert "by hand" in got["a"].provenance["harness"]["worker"]["retired"]


PRINTS_AN_ARRAY = textwrap.dedent("""\
    import numpy as np
    import torch

    def run(params):
        if params["n"] == "a":  # this case's own, shorter numbers
            np.set_printoptions(precision=2)
            torch.set_printoptions(precision=1, sci_mode=True)
        shown = f"{np.array([1 / 3])} {torch.tensor([1 / 3])}"
        return {"schema": 1, "status": "passed", "reason": shown}
""")


def test_print_options_a_cell_sets_do_not_reach_the_next_cell(
    tmp_path: Path, run_cli: CliRunner
) -> None:
    """A cell's `np.set_printoptions(precision=2)` (or torch's) held for every later cell of
    its worker: the next cell's reason text read "[0.33]" where a process of its own, as
    `--isolate` gives, reads "[0.33333333]". Each cell starts with the options its script's
    import left, or the libraries' own."""
    got = _in_one_worker(run_cli, tmp_path, PRINTS_AN_ARRAY)
    assert got["a"].reason == "[0.33] tensor([3.3e-01])"
    assert got["b"].reason == "[0.33333333] tensor([0.3333])"


SETS_AN_EVENT_LOOP = textwrap.dedent("""\
    import asyncio

    async def twice(x):
        return 2 * x

    def run(params):
        if params["n"] == "a":
            # The pattern of a library's sync wrapper: a loop of its own, set, then closed.
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            value = loop.run_until_complete(twice(1))
            loop.close()
            return {"schema": 1, "status": "passed", "reason": str(value)}
        # A fresh process: no loop set yet, so the policy's get_event_loop makes one.
        loop = asyncio.get_event_loop_policy().get_event_loop()
        try:
            value = loop.run_until_complete(twice(2))
        finally:
            loop.close()
        return {"schema": 1, "status": "passed", "reason": str(value)}
""")


def test_an_event_loop_a_cell_sets_and_closes_does_not_reach_the_next_cell(
    tmp_path: Path, run_cli: CliRunner
) -> None:
    """A cell that set an asyncio loop of its own and closed it left that closed loop as
    the current one for every later cell of its worker: the next cell's loop said "Event
    loop is closed" (an error record) where a process of its own gets a new loop. Each
    cell starts with the loop its script's import left, or none."""
    got = _in_one_worker(run_cli, tmp_path, SETS_AN_EVENT_LOOP)
    assert (got["a"].status.value, got["a"].reason) == ("passed", "2")
    assert (got["b"].status.value, got["b"].reason) == ("passed", "4"), got["b"].reason
