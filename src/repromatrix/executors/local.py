"""Run a cell with the host interpreter plus the cell's pins (no container).

By default a cell runs in the persistent worker of its (environment, slot): torch, CUDA
and the library are imported once per worker, not once per cell (see `workers.py`). A
cell whose repro declares `isolate: true`, or every cell under `--isolate`, runs in a
process of its own, as `python SCRIPT --out RESULT.json --params JSON`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import tempfile
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

from repromatrix import locks, orphans, proc
from repromatrix import logs as cell_logs
from repromatrix.env_use import exclusive_use
from repromatrix.envs import EnvCache, Environment
from repromatrix.errors import EnvironmentBuildError, MissingToolError
from repromatrix.executors.base import (
    HOST_FULL,
    HOST_STORAGE,
    HOST_STORAGE_AT,
    RESULT_FILE,
    FailedBuilds,
    RunOutcome,
    Slot,
    full_in,
    harness_failure,
    run_identity,
    run_of,
)
from repromatrix.executors.build_words import SKIPPED_BUILD
from repromatrix.executors.cell_inputs import lay_inputs
from repromatrix.executors.cellenv import cell_variables
from repromatrix.executors.repro_bytecode import ReproBytecode
from repromatrix.executors.worker_main import ONCE
from repromatrix.executors.worker_pool import WorkerPool
from repromatrix.executors.worker_program import program_in
from repromatrix.executors.worker_scripts import module_only
from repromatrix.executors.workers import CellRequest, WorkerFailed, WorkerProcess
from repromatrix.git_pins import moving_commits
from repromatrix.model import Cell

#: The variable naming PYTHONPATH entries that are repromatrix's own, never the cells'.
OWN_PATH = "REPROMATRIX_OWN_PATH"


class LocalExecutor:
    name = "local"

    def __init__(
        self,
        envs: EnvCache,
        *,
        env: Mapping[str, str] | None = None,
        cell_env: Mapping[str, str] | None = None,
        isolate: bool = False,
        worker_max_rss_mb: float | None = None,
        workroot: Path | None = None,
        holds: Path | None = None,
        failed_builds: FailedBuilds | None = None,
    ) -> None:
        self.envs = envs
        self.base_env = dict(env if env is not None else os.environ)
        # Folders on PYTHONPATH that only repromatrix itself needs (scripts/run-offline.sh
        # puts its own dependencies there): cells import the GPU stack's packages, not ours.
        own = set(filter(None, self.base_env.pop(OWN_PATH, "").split(os.pathsep)))
        if "PYTHONPATH" in self.base_env:
            kept = [p for p in self.base_env["PYTHONPATH"].split(os.pathsep) if p not in own]
            self.base_env["PYTHONPATH"] = os.pathsep.join(kept)
            if not self.base_env["PYTHONPATH"]:
                del self.base_env["PYTHONPATH"]
        _leave_own_venv(self.base_env, envs.interpreter.executable)
        _keep_user_site(self.base_env)
        self.cell_env = dict(cell_env or {})
        self.isolate = isolate
        self.pool = WorkerPool(max_rss_mb=worker_max_rss_mb)
        self.workroot = workroot or envs.root / "workers"
        #: The workers' own logs this executor wrote to: trimmed when it closes.
        self._worker_logs: set[Path] = set()
        self._running: set[proc.ProcessGroup] = set()
        self._lock = threading.Lock()
        self._cancelled = threading.Event()
        # A Ray node's slots share theirs (`ray/builds.py`): each slot is a process.
        self._env_failed = failed_builds or FailedBuilds()
        #: Whether this process became the subreaper of the isolated cells' daemons.
        self._adopting = False
        #: The locks this executor holds (`locks.hold_folder`) while its cells may run:
        #: `holds` (a Ray node's cells' folders) now, workroot from its first worker on.
        self._holding = [fd for fd in [locks.hold_folder(holds)] if fd is not None] if holds else []
        self._program_held = False
        self._bytecode = ReproBytecode()  # the repros' folders', whole (`repro_bytecode`)

    def _program(self) -> str:
        """The worker program's copy in workroot (`worker_program`), which this executor
        holds from its first worker until it closes: `clean` keeps it while they run."""
        if not self._program_held:  # before the copy is looked at
            self._program_held = True
            self._holding += [fd for fd in [locks.hold_folder(self.workroot)] if fd is not None]
        return program_in(self.workroot)

    def base_fingerprint(self, cell: Cell) -> str:
        return run_identity(
            f"host:{self.envs.interpreter.fingerprint}",
            cell_env=self.cell_env,
            pythonpath=self.base_env.get("PYTHONPATH"),
            moved=moving_commits(self.envs.mirrors, cell.pins),
        )

    def can_run(self, cell: Cell) -> str | None:
        if not cell.base.is_host:
            return (
                f"base '{cell.base.name}' is the image {cell.base.ref}; the local executor "
                "runs only the host base (use --executor docker or auto)"
            )
        return None

    def run(self, cell: Cell, slot: Slot, workdir: Path) -> RunOutcome:
        started = datetime.now(UTC)
        workdir.mkdir(parents=True, exist_ok=True)
        result_json = workdir / RESULT_FILE
        result_json.unlink(missing_ok=True)
        lay_inputs(cell, workdir)  # its process's working folder, isolated or in a worker
        # The base this cell ran on, as reuse compares it (`base_fingerprint`): made once,
        # before the cell, so the record names the commit a git name stood for when it ran.
        harness: dict[str, object] = {
            "slot": slot.name,
            "workdir": str(workdir),
            "base": self.base_fingerprint(cell),
        }
        if self.cell_env:
            harness["cell_env"] = dict(self.cell_env)
        if slot.gpu is not None:
            harness["gpu"] = {"index": slot.gpu.index, "name": slot.gpu.name, "uuid": slot.gpu.uuid}
        if self._cancelled.is_set():
            return self._failed(started, "cancelled (Ctrl-C) before it started", harness)
        run_id, pins = run_of(workdir), tuple(cell.pins)
        try:
            if failed := self._env_failed.get(run_id, pins):
                note = f"{SKIPPED_BUILD}{failed.log}\n"
                (workdir / "env-build.log").write_text(note)
                raise EnvironmentBuildError(failed.why)
            env = self.envs.ensure(cell.pins, log=workdir / "env-build.log")
        except (EnvironmentBuildError, MissingToolError) as exc:
            full = full_in(str(exc)) if isinstance(exc, EnvironmentBuildError) else None
            if full is None and isinstance(exc, EnvironmentBuildError):
                self._env_failed.remember(run_id, pins, str(exc), workdir / "env-build.log")
            if full is not None:
                # pip or git ran out of room (in the environments, or in the temporary
                # folder pip unpacks into): not the cell's error, which every later cell
                # would get too and later runs would reuse; the run stops instead.
                harness[HOST_STORAGE] = f"{full} (environment: {exc})"
                where = f"the environments ({self.envs.root / 'envs'}) or the temporary "
                harness[HOST_STORAGE_AT] = where + f"folder ({tempfile.gettempdir()})"
            return self._failed(started, f"environment: {exc}", harness)
        harness["env"] = env.key
        harness["pins"] = env.libraries()
        variables = self._variables(cell, slot, env)
        if full := self._bytecode.ensure(env.python, cell.script.parent, variables):
            harness[HOST_STORAGE], harness[HOST_STORAGE_AT] = full, str(cell.script.parent)
            return self._failed(started, full, harness)
        with exclusive_use(env.root, [env.home, env.cache], pinned=bool(cell.pins)) as stale:
            if stale:
                harness["removed_stale_locks"] = stale
            if self.isolate or cell.isolate:
                harness["isolated"] = True
                return self._process(cell, env, variables, workdir, started, harness)
            return self._in_worker(cell, slot, env, variables, workdir, started, harness)

    def _variables(self, cell: Cell, slot: Slot, env: Environment) -> dict[str, str]:
        variables = dict(self.base_env)
        inherited = variables.get("PYTHONPATH")
        variables["PYTHONPATH"] = os.pathsep.join(
            [*env.pythonpath(), *([inherited] if inherited else [])]
        )
        variables.update(
            cell_variables(
                cell,
                env_key=env.key,
                libraries=env.libraries(),
                home=str(env.home),
                cache=str(env.cache),
            )
        )
        variables.update(self.cell_env)
        variables["CUDA_VISIBLE_DEVICES"] = slot.cuda_visible_devices
        env.home.mkdir(exist_ok=True)
        env.cache.mkdir(exist_ok=True)
        return variables

    def _process(
        self,
        cell: Cell,
        env: Environment,
        variables: dict[str, str],
        workdir: Path,
        started: datetime,
        harness: dict[str, object],
    ) -> RunOutcome:
        """A process of its own for the cell (`isolate`)."""
        result_json = workdir / RESULT_FILE
        argv = [env.python, str(cell.script), "--out", str(result_json), "--params", _params(cell)]
        if module_only(str(cell.script)):
            # `run(params)` and no command line: its one cell as a worker would run it.
            argv = [env.python, self._program(), ONCE, str(cell.script), *argv[3::2]]
        stdout, stderr = workdir / "stdout.log", workdir / "stderr.log"
        with self._lock:
            if not self._adopting:
                # A daemon the script leaves (double fork, its own session and
                # environment) would go to init, beyond every kill and sweep: it comes
                # to us instead, and ends with its cell.
                orphans.adopt_orphans()
                self._adopting = True
        group = proc.ProcessGroup(argv, cwd=workdir, env=variables, stdout=stdout, stderr=stderr)
        with self._lock:
            self._running.add(group)
        try:
            if self._cancelled.is_set():
                group.kill(cancelled=True)
            outcome = group.wait(timeout=cell.timeout_s)
        finally:
            with self._lock:
                self._running.discard(group)
                alone = not self._running
            if alone:  # else they may be a running cell's: at the next such moment, or close
                orphans.end_orphans()
        return self._outcome(
            code=outcome.returncode,
            timed_out=outcome.timed_out,
            cancelled=outcome.cancelled or self._cancelled.is_set(),
            duration_s=outcome.duration_s,
            started=started,
            workdir=workdir,
            harness=harness,
        )

    def _in_worker(
        self,
        cell: Cell,
        slot: Slot,
        env: Environment,
        variables: dict[str, str],
        workdir: Path,
        started: datetime,
        harness: dict[str, object],
    ) -> RunOutcome:
        logs = self.workroot / f"{slot.name}-{env.key}.log"
        logs.parent.mkdir(parents=True, exist_ok=True)
        self._worker_logs.add(logs)

        def start(folder: Path) -> WorkerProcess:
            argv = [env.python, self._program(), str(folder / "w.sock")]
            group = proc.ProcessGroup(
                argv, cwd=workdir, env=variables, stdout=logs, stderr=logs, append=True
            )
            return _LocalProcess(group)

        request = CellRequest(
            script=str(cell.script),
            params=cell.params,
            out=str(workdir / RESULT_FILE),
            stdout=str(workdir / "stdout.log"),
            stderr=str(workdir / "stderr.log"),
            cwd=str(workdir),
            env={k: v for k, v in variables.items() if k.startswith(("REPROMATRIX_", "PYTHON"))},
        )
        try:
            worker, done = self.pool.run(
                slot.name, env.key, start, request, cell.timeout_s, connect_s=cell.timeout_s
            )
        except WorkerFailed as exc:
            if exc.timed_out:  # the cell's time ran out before its worker could start
                return dataclasses.replace(
                    self._outcome(
                        code=None,
                        timed_out=True,
                        cancelled=self._cancelled.is_set(),
                        duration_s=(datetime.now(UTC) - started).total_seconds(),
                        started=started,
                        workdir=workdir,
                        harness=harness,
                    ),
                    stderr_tail=proc.tail(logs),
                )
            return self._failed(started, f"worker: {exc} (log: {logs})", harness)
        except (OSError, MissingToolError) as exc:
            if isinstance(exc, OSError) and exc.errno in HOST_FULL:
                # Its log could not be made (no inode left): no cell would fare better.
                harness[HOST_STORAGE] = exc.strerror or str(exc)
                if exc.filename:  # the folder to fix: the cache's envs/ or workers/
                    harness[HOST_STORAGE_AT] = str(exc.filename)
            return self._failed(started, f"worker: {exc} (log: {logs})", harness)
        harness["worker"] = {
            **worker.process.describe(),
            "cell": worker.cells,
            "retired": done.why or None,
            **({"rerun": done.rerun} if done.rerun else {}),
        }
        if not done.started:  # twice: not the cell's doing
            return self._failed(started, f"worker: {done.why} (log: {logs})", harness)
        return self._outcome(
            code=done.exit_code,
            timed_out=done.timed_out,
            cancelled=self._cancelled.is_set(),
            duration_s=done.duration_s,
            started=started,
            workdir=workdir,
            harness=harness,
        )

    def _outcome(
        self,
        *,
        code: int | None,
        timed_out: bool,
        cancelled: bool,
        duration_s: float,
        started: datetime,
        workdir: Path,
        harness: dict[str, object],
    ) -> RunOutcome:
        return RunOutcome(
            exit_code=code,
            timed_out=timed_out,
            cancelled=cancelled,
            duration_s=duration_s,
            started=started,
            result_json=workdir / RESULT_FILE,
            stdout_tail=proc.tail(workdir / "stdout.log"),
            stderr_tail=proc.tail(workdir / "stderr.log"),
            executor=self.name,
            base_fingerprint=str(harness["base"]),
            harness=harness,
        )

    def _failed(self, started: datetime, why: str, harness: dict[str, object]) -> RunOutcome:
        return harness_failure(
            executor=self.name,
            base_fingerprint=str(harness["base"]),
            started=started,
            why=why,
            harness=harness,
            cancelled=self._cancelled.is_set(),
        )

    def cancel(self) -> None:
        self._cancelled.set()
        with self._lock:
            running = list(self._running)
        # All at once, workers included: a cell that ignores SIGTERM costs Ctrl-C one
        # grace period, not one per running cell in turn.
        ends = [
            threading.Thread(target=group.kill, kwargs={"cancelled": True}, daemon=True)
            for group in running
        ]
        ends.append(threading.Thread(target=self.pool.close, kwargs={"kill": True}, daemon=True))
        for end in ends:
            end.start()
        for end in ends:
            end.join()

    def close(self) -> None:
        """Stop the workers (end of a session), then trim and redact their own logs."""
        self.pool.close()
        while self._holding:
            os.close(self._holding.pop())
        if self._adopting:
            orphans.end_orphans()
        cell_logs.trim_worker_logs(sorted(self._worker_logs))


def _leave_own_venv(env: dict[str, str], cells_python: str) -> None:
    """The venv repromatrix itself runs in (nox's, pipx's) is not the cells': its bin/
    leaves PATH and VIRTUAL_ENV goes (kept when the cells run in that venv). The cells'
    own venv or conda environment comes first, as activating it would put it: a library
    or JIT step that runs `python` or `pip` from PATH gets the cells' interpreter's."""
    cells_bin = os.path.dirname(os.path.abspath(cells_python))
    if sys.prefix != sys.base_prefix:
        own = os.path.realpath(os.path.join(sys.prefix, "bin"))
        if os.path.realpath(cells_bin) != own:
            paths = env.get("PATH", "").split(os.pathsep)
            env["PATH"] = os.pathsep.join(p for p in paths if p and os.path.realpath(p) != own)
            if os.path.realpath(env.get("VIRTUAL_ENV", "") or os.sep) == os.path.realpath(
                sys.prefix
            ):
                del env["VIRTUAL_ENV"]
    # Only an environment's own bin/: /usr/bin first would change which compiler or
    # nvcc /usr/local/bin gives the cell.
    home = os.path.dirname(cells_bin)
    venv = os.path.isfile(os.path.join(home, "pyvenv.cfg"))
    if venv or os.path.isdir(os.path.join(home, "conda-meta")):
        paths = env.get("PATH", "").split(os.pathsep)
        mine = os.path.realpath(cells_bin)
        env["PATH"] = os.pathsep.join(
            [cells_bin, *(p for p in paths if p and os.path.realpath(p) != mine)]
        )
        if venv:
            env["VIRTUAL_ENV"] = home


def _keep_user_site(env: dict[str, str]) -> None:
    """Cells get a HOME of their own (compile caches live there), which would hide the
    user site of the HOME the interpreter check ran with: torch from `pip install --user`
    passed the check, then every GPU cell was untestable. Its folder is named instead."""
    if "PYTHONUSERBASE" not in env and "HOME" in env:
        import site

        env["PYTHONUSERBASE"] = site.getuserbase()


def _params(cell: Cell) -> str:
    return json.dumps(dict(cell.params), sort_keys=True)


class _LocalProcess:
    """A worker as a local process group."""

    def __init__(self, group: proc.ProcessGroup) -> None:
        self.group = group

    def alive(self) -> bool:
        return self.group.proc.poll() is None

    def exit_code(self, wait_s: float) -> int | None:
        if not proc.wait_pid(self.group.proc, wait_s):
            return None
        return self.group.proc.returncode

    def kill(self) -> None:
        self.group.end()

    def describe(self) -> dict[str, object]:
        return {"pid": self.group.proc.pid}
