"""A run session: host facts, environments, executors and the store, wired once.

The CLI's `run` and `bisect` both go through `Session.run_cells`, so a bisect evaluation is
an ordinary result that a later matrix run, bisect or report reuses.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from repromatrix.cells_interpreter import check_cells_interpreter
from repromatrix.env_turns import SlotEnvs
from repromatrix.envs import EnvCache
from repromatrix.errors import DockerError, ExitCode, MissingToolError, StoreError
from repromatrix.executors.base import Executor
from repromatrix.executors.helper_copies import outdated_copies
from repromatrix.executors.local import LocalExecutor
from repromatrix.host import HostInfo, Interpreter, detect, probe_interpreter
from repromatrix.model import Cell, GpuType, Status
from repromatrix.options import ExecutorKind, SessionConfig
from repromatrix.parsed_cache import parsed_cache
from repromatrix.planning import History, Plan, Planned, evidence_after, plan
from repromatrix.progress import Reporter
from repromatrix.records import Result, latest_by_key
from repromatrix.release_digest import ReleaseFiles
from repromatrix.release_files import Target
from repromatrix.run_summary import RunSummary, new_run_id
from repromatrix.safetext import printable
from repromatrix.scheduler import Scheduler
from repromatrix.slot_growth import NODE_WAIT_VAR, node_wait_seconds
from repromatrix.store import Loaded, LoadProblem, ResultStore, by_key
from repromatrix.store_links import own_copy
from repromatrix.store_repair import repair


class Session:
    def __init__(
        self,
        config: SessionConfig,
        *,
        env: Mapping[str, str],
        reporter: Reporter | None = None,
        host: HostInfo | None = None,
    ) -> None:
        self.config = config
        self.env = dict(env)
        self.reporter = reporter
        self.host = host or detect(self.env)
        self.store = ResultStore(
            config.results, host=self.host.hostname, parsed=parsed_cache(config.cache)
        )
        self._interpreter: Interpreter | None = None
        self._local: LocalExecutor | None = None
        self._docker: Executor | None = None
        #: Why there is no Docker executor, as the error `--executor docker` stops with:
        #: no SDK is a missing tool (exit 4), an unreachable engine a Docker error (5).
        self._docker_problem: MissingToolError | DockerError | None = None
        #: The Docker executor's images whose python3 cannot run cells (its line, or None).
        self._refused_images: Callable[[], str | None] | None = None
        #: Why a cell about to run in Docker cannot (its image's python3), or None.
        self._refuses: Callable[[Cell], str | None] | None = None
        #: The Docker executor's answer of an image's python3 (`image_target`).
        self._image_target: Callable[[str], Target | None] | None = None
        self._ray: Any = None
        self.load_problems: tuple[LoadProblem, ...] = ()
        #: What this session set aside of the store (said once, with the load problems).
        self._repaired: tuple[LoadProblem, ...] = ()
        #: The store as `repair_store` left it, for the next `history` to read.
        self._fresh: Loaded | None = None
        #: Every stored record of each key, as the last `run_cells` found them.
        self.stored: dict[str, list[Result]] = {}
        #: Runs the last `run_cells` planned (the summary counts those that finished).
        self.planned = 0
        #: Warnings said once a session (outdated `_repro.py` copies).
        self._said: set[str] = set()
        #: The environment each slot's worker serves, from one `run_cells` to the next: the
        #: executors keep their workers, so a bisection's next round prefers them.
        self._slot_envs = SlotEnvs()
        #: The folders of this session's runs in the cache (`new_run_id`).
        self._run_folders: list[Path] = []

    # -- executors ----------------------------------------------------------------------

    @property
    def interpreter(self) -> Interpreter:
        if self._interpreter is None:
            self._interpreter = probe_interpreter(self.config.python, env=self.env)
        return self._interpreter

    def envs(self) -> EnvCache:
        return EnvCache(self.config.cache, self.interpreter, self.config.sources)

    def local(self) -> LocalExecutor:
        if self._local is None:
            self._local = LocalExecutor(
                self.envs(),
                env=self.env,
                cell_env=self.config.cell_env,
                isolate=self.config.isolate,
                worker_max_rss_mb=self.config.worker_max_rss_mb,
                workroot=self.config.cache.resolve() / "workers",
            )
        return self._local

    def docker(self) -> Executor | str:
        """The Docker executor, or why there is none (engine unreachable, SDK missing)."""
        if self._docker is None and self._docker_problem is None:
            try:
                from repromatrix.executors.docker import DockerExecutor
            except ImportError as exc:
                self._docker_problem = MissingToolError(
                    f"the Docker SDK is not installed ({exc.name}); pip install "
                    "'docker>=7.0' or use --executor local"
                )
                return str(self._docker_problem)
            made = DockerExecutor.connect(self.config, env=self.env)
            if isinstance(made, str):
                self._docker_problem = DockerError(made)
            else:
                self._docker = made
                self._refused_images = made.refused_images
                self._refuses = made.refuses
                self._image_target = made.image_target
        return self._docker if self._docker is not None else str(self._docker_problem)

    def image_target(self, ref: str, gpu: GpuType) -> Target | None:
        """The version and wheel tags of the python3 of image `ref` that installs its
        cells' pins, where the Docker executor runs them (under Ray: on a node of `gpu`,
        whose engine builds) and the image says; None otherwise (no engine)."""
        if self.config.executor is ExecutorKind.RAY:
            from repromatrix.executors.ray.image_pythons import image_target

            self.ray()  # joins the cluster
            return image_target(self.config, ref, gpu)
        if self.config.executor not in (ExecutorKind.DOCKER, ExecutorKind.AUTO):
            return None
        if isinstance(self.docker(), str) or self._image_target is None:
            return None
        return self._image_target(ref)

    def node_target(self, gpu: GpuType) -> Target | None:
        """Under Ray, the version and wheel tags of the interpreter a node of `gpu` runs the
        host base's cells with (`ray-node --python`), where it says them; None otherwise
        (this interpreter installs them)."""
        if self.config.executor is not ExecutorKind.RAY:
            return None
        from repromatrix.executors.ray.image_pythons import image_target

        self.ray()  # joins the cluster
        return image_target(self.config, "", gpu)

    def ray(self) -> Any:
        """The Ray executor (connects to the cluster on first use)."""
        if self._ray is None:
            try:
                from repromatrix.executors.ray.executor import RayExecutor
            except ImportError as exc:
                raise MissingToolError(
                    f"--executor ray needs Ray ({exc.name} is missing): pip install "
                    "'ray>=2.9' (the version the cluster's nodes run)"
                ) from None
            note = self.reporter.note if self.reporter is not None else None
            self._ray = RayExecutor(self.config, note=note)
        return self._ray

    def choose(self, cell: Cell) -> Executor | str:
        kind = self.config.executor
        if kind is ExecutorKind.RAY:
            ray_executor: Executor = self.ray()
            return ray_executor
        if kind is ExecutorKind.LOCAL:
            local = self.local()
            why = local.can_run(cell)
            return local if why is None else why
        if kind is ExecutorKind.DOCKER:
            docker = self.docker()
            if isinstance(docker, str):
                problem = self._docker_problem
                raise (type(problem) if problem is not None else DockerError)(docker)
            why = docker.can_run(cell)
            return docker if why is None else why
        # auto: the host base runs locally; an image runs in Docker when it can.
        if cell.base.is_host:
            return self.local()
        docker = self.docker()
        if isinstance(docker, str):
            return f"image {cell.base.ref} needs Docker: {docker}"
        why = docker.can_run(cell)
        return docker if why is None else why

    # -- running ------------------------------------------------------------------------

    def close(self) -> None:
        """Stop the executors' workers (they also stop by themselves when we exit)."""
        for executor in (self._local, self._docker, self._ray):
            if executor is not None:
                executor.close()
        self.store.witness.close()
        for folder in self._run_folders:
            # A run that ran no cell (all reused, or not run here) left it empty, one more
            # each run; a cell's logs keep it (rmdir removes only an empty folder).
            with contextlib.suppress(OSError):
                folder.rmdir()

    def new_run_id(self, prefix: str = "") -> str:
        """A new run's id, its folder in the cache made (`run_summary.new_run_id`) and
        removed by `close` if no cell left anything there."""
        workroot = self.config.cache / "runs"
        run_id = new_run_id(self.host.hostname, workroot, prefix=prefix)
        self._run_folders.append(workroot / run_id)
        return run_id

    def repair_store(self) -> None:
        """Set aside what killed runs left cut short in the results folder (`store_repair`;
        said once, with the load problems): the step `run` and `bisect` take once they
        hold the folder, before they read its records. Reading never writes."""
        # First: a results file hard-linked elsewhere is made this folder's own.
        unshared = own_copy(self.store.path)
        repaired = repair(self.store)
        self.store.hold()  # what another process does to the file from now on is found
        self._repaired += (*([unshared] if unshared else []), *repaired.notes)
        self._fresh = repaired.loaded
        self.load_problems = self._repaired  # said even if the command stops before a read

    def _note_no_node(
        self, scheduler: Scheduler, summary: RunSummary, history: History, fingerprint: str
    ) -> None:
        """Store the notes of cells of a GPU type no node offered, none joining while the
        run went on (`summary.no_node`), as the notes of a run's start are stored."""
        notes = scheduler.not_run_notes(summary.no_node, history, fingerprint)
        try:
            self.store.append_many(notes)
        except OSError as exc:  # all or nothing: the next run notes them again
            if summary.lost is None:
                summary.lost_code = ExitCode.STORE
                summary.lost = (
                    f"the 'not run here' notes of {len(notes)} cell(s) could not be stored in "
                    f"{self.store.path}: {exc.strerror or exc}; earlier results are kept: "
                    "make room or grant access there, then run again"
                )

    def _verify_store(self, summary: RunSummary) -> None:
        """Put back the records of this run that another process took from the results
        file while it ran (`store_witness`; the command says what the file lost)."""
        try:
            self.store.verify()
        except OSError as exc:
            if summary.lost is None:
                summary.lost, summary.lost_code = (
                    f"records of this run could not be stored again in {self.store.path}, "
                    f"which another process changed during the run: {exc.strerror or exc}; "
                    "make room or grant access there, then run again",
                    ExitCode.STORE,
                )

    def history(self) -> dict[str, list[Result]]:
        """Every stored record of each key (load problems are kept for the caller)."""
        loaded = self._fresh if self._fresh is not None else self.store.load()
        self._fresh = None
        self.load_problems = self._repaired + loaded.problems
        return by_key(loaded.results)

    def _check_interpreter(self, planned: Sequence[Planned]) -> None:
        """Refuse, in one line, to run local cells whose interpreter cannot run them."""
        local = [p.cell for p in planned if p.executor is self._local]
        check_cells_interpreter(self.interpreter, local)

    def _refuse_images(self, the_plan: Plan) -> Plan:
        """The plan without the Docker cells whose image's python3 cannot run them, now
        noted "not run here": asked here, of cells about to run or reused as errors, and
        not when planning, which asks of every reused cell (a container per image, on
        every run)."""
        docker, refuses = self._docker, self._refuses
        if docker is None or refuses is None:
            return the_plan
        # And of cells whose reused record is an error: a run from before images were
        # asked recorded each cell of an image whose python3 cannot run them as one, which
        # every later run reused at exit 0 where a fresh results folder notes the cells.
        errors = [
            c for c, r in the_plan.reused if r.status is Status.ERROR and r.executor == docker.name
        ]
        cells = [p.cell for p in the_plan.to_run if p.executor is docker]
        why_of: dict[str, str | None] = {}
        for cell in (*cells, *(c for c in errors if self.choose(c) is docker)):
            if cell.key not in why_of:
                why_of[cell.key] = refuses(cell)
        refused = {key: why for key, why in why_of.items() if why is not None}
        if not refused:
            return the_plan
        to_run = tuple(p for p in the_plan.to_run if p.cell.key not in refused)
        reused = tuple((c, r) for c, r in the_plan.reused if c.key not in refused)
        # Once a cell, however many runs of it were planned (--repeat).
        noted = {c.key: (c, refused[c.key]) for c in (*cells, *errors) if c.key in refused}
        not_run = the_plan.not_run + tuple(noted.values())
        stored = {k: n for k, n in the_plan.stored_runs.items() if k not in refused}
        failed = {k: n for k, n in the_plan.stored_failed.items() if k not in refused}
        return dataclasses.replace(
            the_plan,
            to_run=to_run,
            reused=reused,
            not_run=not_run,
            stored_runs=stored,
            stored_failed=failed,
        )

    def existing(self) -> dict[str, Result]:
        """The record that stands for each key (newest; a note never hides a result)."""
        return {k: latest_by_key(v)[k] for k, v in self.history().items()}

    def slots(self, gpu: GpuType) -> int:
        """How many cells of this GPU type can run at once: its GPUs x --per-gpu, counted
        over the live cluster under --executor ray, else on this host."""
        if self.config.executor is ExecutorKind.RAY:
            self.host = self.ray().host([gpu])
        return len(self.host.gpus_of_type(gpu)) * self.config.per_gpu

    def cpu_jobs(self) -> int:
        """How many CPU cells run at once: --jobs, but under --executor ray no more than
        the live cluster's CPUs (asked once a run; a bisection's rounds ask again)."""
        if self.config.executor is ExecutorKind.RAY:
            return int(self.ray().cpu_slots(self.config.jobs, self.config.jobs_given))
        return self.config.jobs

    def run_cells(
        self,
        cells: Sequence[Cell],
        *,
        rerun: bool = False,
        retry_errors: bool = False,
        run_id: str | None = None,
        repeat: int | Mapping[str, int] = 1,
    ) -> RunSummary:
        """Run what the store lacks: each cell ends with `repeat` final records made on this
        base (per key when a mapping; `rerun` makes that many fresh ones)."""
        if self.config.timeout_s is not None:
            cells = [dataclasses.replace(c, timeout_s=self.config.timeout_s) for c in cells]
        history = self.stored = self.history()
        if self.config.executor is ExecutorKind.RAY:
            # Slots are the cluster's: one per GPU of each type a live node offers.
            self.host = self.ray().host({c.gpu.name: c.gpu for c in cells}.values())
        files = ReleaseFiles(self.config.sources.find_links, self.config.python)
        the_plan = plan(
            cells,
            host=self.host,
            choose=self.choose,
            history=history,
            rerun=rerun,
            retry_errors=retry_errors,
            repeat=repeat,
            files=files,
            # A node of a type none offers now may join while the run goes on.
            wait_for_gpus=self.config.executor is ExecutorKind.RAY,
        )
        # The cluster's CPUs bound CPU cells alone (and are said only for them).
        cpu = any(p.pool == "cpu" for p in the_plan.to_run)
        scheduler = Scheduler(
            store=self.store,
            host=self.host,
            workroot=self.config.cache / "runs",
            jobs=self.cpu_jobs() if cpu else self.config.jobs,
            per_gpu=self.config.per_gpu,
            run_id=run_id or self.new_run_id(),
            reporter=self.reporter,
            # A node that joins mid-run adds its slots (it was used by the next run only).
            capacity=self.ray().slots_now if self.config.executor is ExecutorKind.RAY else None,
            node_wait_s=node_wait_seconds(os.environ.get(NODE_WAIT_VAR, ""))
            if self.config.executor is ExecutorKind.RAY
            else 0.0,
            slot_envs=self._slot_envs,
        )
        the_plan = self._refuse_images(the_plan)
        self.planned = len(the_plan.to_run)
        self._check_interpreter(the_plan.to_run)
        fingerprint = f"host:{self._interpreter.fingerprint}" if self._interpreter else ""
        notes = scheduler.not_run_notes(the_plan.not_run, history, fingerprint)
        # Only when something is to be written: a read-only folder that holds every record
        # (published results a CI job checks with --fail-on) was exit 8.
        if the_plan.to_run or notes:
            self.store.check_writable()
        try:
            self.store.append_many(notes)
        except OSError as exc:
            # The check above wants 64 KiB free; the notes of a whole matrix's GPU cells
            # can take more (and went out as "internal error", exit 70). Written all or
            # nothing, so the store is as it was.
            raise StoreError(
                f"the 'not run here' notes of {len(the_plan.not_run)} cell(s) could not be "
                f"stored in {self.store.path}: {exc.strerror or exc}; no cell was run: make "
                "room or grant access there, then run again"
            ) from None
        for line in outdated_copies(p.cell.script for p in the_plan.to_run):
            if line not in self._said:  # once a run (a bisection runs a round at a time)
                self._said.add(line)
                print(printable(f"repromatrix: warning: {line}"), file=sys.stderr)
        summary = scheduler.run(the_plan.to_run)
        self._note_no_node(scheduler, summary, history, fingerprint)
        self._verify_store(summary)
        lost = self._ray.lost_cells() if self._ray is not None else None
        if lost is not None and summary.lost is None and not summary.interrupted:
            # Noted, not recorded: the run must not end as if it had done them.
            summary.lost, summary.lost_code = lost, ExitCode.DOCKER
        builds = self._ray.node_builds() if self._ray is not None else None
        if builds is not None and summary.lost is None and not summary.interrupted:
            # Noted: a node could not build them (its index, its compiler), not the pins.
            summary.lost, summary.lost_code = builds, ExitCode.ENVIRONMENT
        refused = self._refused_images() if self._refused_images is not None else None
        if refused is None and self._ray is not None:  # what the nodes' Docker refused
            refused = self._ray.refused.line()
        if refused is not None and summary.lost is None and not summary.interrupted:
            # Noted "not run here" for want of a usable python3: a local run refuses such
            # an interpreter (exit 4), and a run that left cells undone never ends with 0.
            summary.lost, summary.lost_code = refused, ExitCode.MISSING_TOOL
        # Runs, as the other counts are: a --repeat that tops a cell up reuses some.
        summary.reused = the_plan.reused_runs()
        summary.reused_failed = the_plan.reused_failed_runs()
        summary.not_run = len(the_plan.not_run) + len(summary.no_node)
        summary.reused_results = [r for _, r in the_plan.reused]
        summary.not_run_cells = [*the_plan.not_run, *summary.no_node]
        # The new records name the commits a cell pinned by a name ran at: a bisection's
        # runs of them count too (`evidence_after`).
        summary.evidence = evidence_after(
            the_plan, summary.results, history, self.host, retry_errors, files
        )
        return summary
