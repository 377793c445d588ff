"""Run a cell with the host interpreter plus the cell's pins (no container)."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

from repromatrix import proc
from repromatrix.envs import EnvCache, exclusive_use
from repromatrix.errors import EnvironmentBuildError, MissingToolError
from repromatrix.executors.base import RESULT_FILE, RunOutcome, Slot, harness_failure
from repromatrix.executors.cellenv import cell_variables
from repromatrix.model import Cell


class LocalExecutor:
    name = "local"

    def __init__(
        self,
        envs: EnvCache,
        *,
        env: Mapping[str, str] | None = None,
        cell_env: Mapping[str, str] | None = None,
    ) -> None:
        self.envs = envs
        self.base_env = dict(env if env is not None else os.environ)
        self.cell_env = dict(cell_env or {})
        self._running: set[proc.ProcessGroup] = set()
        self._lock = threading.Lock()
        self._cancelled = threading.Event()

    def base_fingerprint(self, cell: Cell) -> str:
        return f"host:{self.envs.interpreter.fingerprint}"

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
        harness: dict[str, object] = {"slot": slot.name, "workdir": str(workdir)}
        if self.cell_env:
            harness["cell_env"] = dict(self.cell_env)
        if slot.gpu is not None:
            harness["gpu"] = {"index": slot.gpu.index, "name": slot.gpu.name, "uuid": slot.gpu.uuid}
        if self._cancelled.is_set():
            return self._failed(started, "cancelled (Ctrl-C) before it started", harness)
        try:
            env = self.envs.ensure(cell.pins, log=workdir / "env-build.log")
        except (EnvironmentBuildError, MissingToolError) as exc:
            return self._failed(started, f"environment: {exc}", harness)
        harness["env"] = env.key
        harness["pins"] = env.libraries()
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
        argv = [
            env.python,
            str(cell.script),
            "--out",
            str(result_json),
            "--params",
            json.dumps(dict(cell.params), sort_keys=True),
        ]
        stdout, stderr = workdir / "stdout.log", workdir / "stderr.log"
        with exclusive_use(env.root, [env.home, env.cache], pinned=bool(cell.pins)) as stale:
            if stale:
                harness["removed_stale_locks"] = stale
            group = proc.ProcessGroup(
                argv, cwd=workdir, env=variables, stdout=stdout, stderr=stderr
            )
            with self._lock:
                self._running.add(group)
            try:
                if self._cancelled.is_set():
                    group.kill(cancelled=True)
                outcome = group.wait(timeout=cell.timeout_s)
            finally:
                with self._lock:
                    self._running.discard(group)
        return RunOutcome(
            exit_code=outcome.returncode,
            timed_out=outcome.timed_out,
            cancelled=outcome.cancelled,
            duration_s=outcome.duration_s,
            started=started,
            result_json=result_json,
            stdout_tail=proc.tail(stdout),
            stderr_tail=proc.tail(stderr),
            executor=self.name,
            base_fingerprint=self.base_fingerprint(cell),
            harness=harness,
        )

    def _failed(self, started: datetime, why: str, harness: dict[str, object]) -> RunOutcome:
        return harness_failure(
            executor=self.name,
            base_fingerprint=f"host:{self.envs.interpreter.fingerprint}",
            started=started,
            why=why,
            harness=harness,
            cancelled=self._cancelled.is_set(),
        )

    def cancel(self) -> None:
        self._cancelled.set()
        with self._lock:
            running = list(self._running)
        for group in running:
            group.kill(cancelled=True)
