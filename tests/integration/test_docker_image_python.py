"""An image whose python3 cannot run cells, against the real engine, through the CLI.

Cells need Python 3.10 or newer (the worker and repros/_repro.py). The local executor
refuses an older interpreter before any cell (exit 4); an image's python3 was found out by
each cell's worker instead, and every cell of the image was recorded as an error that the
next run reused.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from clihelpers import CliRunner
from docker_fixtures import derived_image, our_containers

from repromatrix.executors.docker.janitor import KIND_PROBE, L_BASE_REF, L_KIND
from repromatrix.model import Status
from repromatrix.store import ResultStore

pytest_plugins = ("docker_fixtures",)
pytestmark = [pytest.mark.integration, pytest.mark.docker]

MatrixWriter = Callable[..., Path]

#: What Python 3.8 does, in front of the image's own python3: it reports 3.8.18 to code
#: that asks (the real interpreter runs it with that version_info), and cannot compile
#: a 3.10 program (the worker) given as a file.
_PYTHON38 = r"""#!/bin/sh
if [ "$1" = "-c" ]; then
    exec /usr/bin/python3 -c "import sys; sys.version_info = (3, 8, 18); exec(sys.argv[1])" "$2"
fi
printf '  File "%s", line 40\n    match x:\n          ^\nSyntaxError: invalid syntax\n' "$1" >&2
exit 1
"""

#: Dockerfile lines that make the image's python3 unable to run cells.
_BROKEN = {
    "python38": (
        f"RUN echo {base64.b64encode(_PYTHON38.encode()).decode()} | base64 -d "
        "> /usr/local/bin/python3 && chmod 755 /usr/local/bin/python3"
    ),
    "no-python3": "RUN rm -f /usr/bin/python3*",
}
_SAID = {
    "python38": "its python3 is Python 3.8.18",
    "no-python3": "exec python3 failed: No such file or directory",
}


@pytest.mark.parametrize("broken", sorted(_BROKEN))
def test_an_image_whose_python3_cannot_run_cells_is_named_and_its_cells_are_not_run(
    tmp_path: Path,
    run_cli: CliRunner,
    docker_matrix: MatrixWriter,
    docker_client: Any,
    base_image: str,
    broken: str,
) -> None:
    tag = f"repromatrix-test-{broken}:1"
    with derived_image(docker_client, base_image, tag, _BROKEN[broken]):
        body = "script: {fx}/pass_repro.py, gpus: [cpu], bases: [testbase, old]"
        matrix = docker_matrix({"both": body}, {"old": f'ref: "{tag}"'})
        argv = ("--matrix", str(matrix), "run", "--executor", "docker", "--pull", "never",
                "--repro", "both", "--no-progress", "--results", "results")  # fmt: skip
        first = run_cli(*argv)
        second = run_cli(*argv)
    # Not exit 0 (cells were lost), as a local run refuses an old interpreter: exit 4,
    # with one line naming the image, what its python3 said and what to do.
    for out in (first, second):
        assert out.returncode == 4, out.stderr
        last = out.stderr.strip().splitlines()[-1]
        assert tag in last, out.stderr
        assert _SAID[broken] in last, out.stderr
        assert "3.10 or newer" in last, out.stderr
        assert "Traceback" not in out.stderr
    records = ResultStore(tmp_path / "results").load().results
    by_base: dict[str, set[Status]] = {}
    for r in records:
        by_base.setdefault(r.cell_id, set()).add(r.status)
    # The good image's cell ran; the broken one's was noted, never an error record that a
    # later run would reuse as the repro's own result.
    assert by_base["both[cpu,testbase]"] == {Status.PASSED}
    assert by_base["both[cpu,old]"] == {Status.NOT_RUN}, records
    (note,) = [r for r in records if r.cell_id == "both[cpu,old]"]  # noted once, not twice
    assert tag in note.reason
    assert _SAID[broken] in note.reason
    assert "1 reused" in second.stderr  # the good cell; the broken one was tried again
    assert not our_containers(docker_client, **{"base-ref": tag})


def _probes(docker_client: Any, tag: str, windows: list[tuple[int, int]]) -> list[int]:
    """How many containers were created to ask `tag`'s python3 in each (start, end)
    window, in ns (the engine's own events: a probe is removed once it has answered)."""
    events = docker_client.events(
        since=windows[0][0] // 10**9 - 1,
        until=windows[-1][1] // 10**9 + 1,
        filters={"type": "container", "event": "create", "label": f"{L_KIND}={KIND_PROBE}"},
        decode=True,
    )
    made = [e["timeNano"] for e in events if e["Actor"]["Attributes"].get(L_BASE_REF) == tag]
    return [sum(1 for t in made if start <= t <= end) for start, end in windows]


def test_an_image_is_asked_only_when_its_cells_run_and_once_per_image_id(
    tmp_path: Path,
    run_cli: CliRunner,
    docker_matrix: MatrixWriter,
    docker_client: Any,
    base_image: str,
) -> None:
    tag = "repromatrix-test-asked:1"
    body = "script: {fx}/pass_repro.py, gpus: [cpu], bases: [asked]"
    matrix = docker_matrix({"one": body}, {"asked": f'ref: "{tag}"'})
    argv = ("--matrix", str(matrix), "run", "--executor", "docker", "--pull", "never",
            "--repro", "one", "--no-progress", "--results", "results")  # fmt: skip
    windows: list[tuple[int, int]] = []

    def run(*extra: str) -> None:
        start = time.time_ns()
        out = run_cli(*argv, *extra)
        windows.append((start, time.time_ns()))
        assert out.returncode == 0, out.stderr

    with derived_image(docker_client, base_image, tag, "LABEL repromatrix-test=1"):
        run()
        run()
        run("--rerun")
    # Rebuilt under the same tag (another image id): asked again, as its python3 may differ.
    with derived_image(docker_client, base_image, tag, "LABEL repromatrix-test=2"):
        run("--rerun")
    time.sleep(1.1)  # the events' `until` has whole seconds
    # Run 1 asks; run 2 reuses the cell (nothing runs, nothing to ask); run 3 runs it again
    # on the same image id, whose good answer the cache holds; run 4 has a new image id.
    assert _probes(docker_client, tag, windows) == [1, 0, 0, 1]


def test_an_empty_or_damaged_kept_answer_is_asked_again(
    tmp_path: Path,
    run_cli: CliRunner,
    docker_matrix: MatrixWriter,
    docker_client: Any,
    base_image: str,
) -> None:
    """A kept answer was taken as good for being a file: one a full disk left empty, or a
    hand edit, let the cells of a Python 3.8 image fail one by one in the worker."""
    tag = "repromatrix-test-python38-kept:1"
    with derived_image(docker_client, base_image, tag, _BROKEN["python38"]):
        kept = tmp_path / ".repromatrix" / "docker" / "pythons"
        kept.mkdir(parents=True)
        image_hex = docker_client.images.get(tag).id.rpartition(":")[2]
        body = "script: {fx}/pass_repro.py, gpus: [cpu], bases: [old]"
        matrix = docker_matrix({"one": body}, {"old": f'ref: "{tag}"'})
        argv = ("--matrix", str(matrix), "run", "--executor", "docker", "--pull", "never",
                "--repro", "one", "--no-progress", "--results", "results")  # fmt: skip
        for damaged in ("", "3.", "2.7.18\n", "\xff"):
            (kept / image_hex).write_text(damaged, encoding="latin-1")
            out = run_cli(*argv)
            assert out.returncode == 4, (damaged, out.stderr)
            assert _SAID["python38"] in out.stderr.strip().splitlines()[-1]
    statuses = {r.status for r in ResultStore(tmp_path / "results").load().results}
    assert statuses == {Status.NOT_RUN}


def test_error_records_a_run_without_the_check_left_do_not_stand_for_a_refused_image(
    tmp_path: Path,
    run_cli: CliRunner,
    docker_matrix: MatrixWriter,
    docker_client: Any,
    base_image: str,
) -> None:
    """Before images were asked, a Python 3.8 image's cells were error records ("the
    worker exited (1) before connecting"). A later run reused them at exit 0 and never
    asked the image, where a fresh results folder noted the cells and ended with exit 4."""
    tag = "repromatrix-test-python38-older:1"
    with derived_image(docker_client, base_image, tag, _BROKEN["python38"]):
        kept = tmp_path / ".repromatrix" / "docker" / "pythons"
        kept.mkdir(parents=True)
        image_hex = docker_client.images.get(tag).id.rpartition(":")[2]
        body = "script: {fx}/pass_repro.py, gpus: [cpu], bases: [testbase, old]"
        matrix = docker_matrix({"one": body}, {"old": f'ref: "{tag}"'})
        argv = ("--matrix", str(matrix), "run", "--executor", "docker", "--pull", "never",
                "--repro", "one", "--no-progress", "--results", "results")  # fmt: skip
        # As a version without the check ran: a kept answer of a good python3 skips it.
        (kept / image_hex).write_text("3.11.2\n")
        older = run_cli(*argv)
        assert older.returncode == 0, older.stderr
        stored = {r.cell_id: r for r in ResultStore(tmp_path / "results").load().results}
        assert stored["one[cpu,old]"].status is Status.ERROR
        assert "before connecting" in stored["one[cpu,old]"].reason
        (kept / image_hex).unlink()
        out = run_cli(*argv)
    assert out.returncode == 4, out.stderr
    last = out.stderr.strip().splitlines()[-1]
    assert tag in last, out.stderr
    assert _SAID["python38"] in last, out.stderr
    latest = {r.cell_id: r for r in ResultStore(tmp_path / "results").load().results}
    assert latest["one[cpu,old]"].status is Status.NOT_RUN
    assert _SAID["python38"] in latest["one[cpu,old]"].reason
    assert "1 reused" in out.stderr  # the good image's cell, whose record stands
