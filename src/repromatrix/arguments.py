"""What the command line's arguments mean: run options, the cell selection, a bisection
request. Checked here, once, with one-line usage errors naming the flag."""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from repromatrix import caches
from repromatrix.config import Matrix
from repromatrix.config.digest import uncovered_reads
from repromatrix.config.messages import did_you_mean
from repromatrix.config.schema import MAX_TIMEOUT_S
from repromatrix.errors import ConfigError, UsageError
from repromatrix.expand import CellFilter, expand_noting_idle_rules
from repromatrix.model import Cell, Status
from repromatrix.options import ExecutorKind, PullPolicy, SessionConfig, Sources
from repromatrix.safetext import printable

if TYPE_CHECKING:
    # bisect_plan brings the session, scheduler and progress bars: 45 ms of imports that
    # `report`, `validate` and `list` (which read this module's helpers) never use.
    from repromatrix.bisect_plan import BisectRequest


def selection(args: argparse.Namespace, matrix: Matrix) -> CellFilter:
    if any(not k.strip() for k in args.keyword):  # an unset CI variable: not "every cell"
        raise UsageError("-k is empty; give text that the cell ids to select contain")
    libs: dict[str, tuple[str, ...]] = {}
    for item in args.library:
        name, sep, rev = item.partition("=")
        if not sep or not name or not rev:
            raise UsageError(f"--library {item}: write NAME=REV, e.g. --library flashinfer=0.2.4")
        _one_revision(item, name.rstrip("<>!~"), rev.lstrip("="))
        libs[name] = (*libs.get(name, ()), rev)
    flt = CellFilter(
        repros=tuple(args.repro),
        gpus=tuple(args.gpu),
        bases=tuple(args.image),
        libraries=libs,
        keywords=tuple(args.keyword),
    )
    flt.check_against(matrix)
    return flt


def _one_revision(item: str, name: str, rev: str) -> None:
    """UsageError for a pip requirement given as NAME=REV (`lib==1.0` was "no cell pins
    that revision; pinned: 1.0, …", `lib>=1.0` "--library lib>: not in matrix.yaml") and
    for several revisions in one flag (`lib=1.0,1.1`): no declared revision is spelt so."""
    if item.startswith(f"{name}=") and "," in rev:
        revs = " ".join(f"--library {name}={r.strip()}" for r in rev.split(",")[:3] if r)
        raise UsageError(f"--library {item}: one revision per flag; repeat it ({revs})")
    if item.startswith(f"{name}=={rev}"):
        raise UsageError(f"--library {item}: write NAME=REV with one '=' (--library {name}={rev})")
    if not item.startswith(f"{name}={rev}"):  # lib>=1.0, lib!=1.0, lib~=1.0
        raise UsageError(
            f"--library {item}: a pip requirement, not a revision; select each revision "
            f"with a flag of its own (--library {name}=REV), as many as needed"
        )


def git_mirrors(items: list[str]) -> dict[str, str]:
    """`--git-mirror NAME=PATH` flags as NAME → PATH."""
    mirrors: dict[str, str] = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise UsageError(f"--git-mirror {item}: write NAME=PATH, e.g. --git-mirror fla=../fla")
        mirrors[name] = path
    return mirrors


def check_mirrors(items: list[str], matrix: Matrix) -> None:
    """UsageError for a --git-mirror of no library of the matrix, or of a path that is not
    there (a clone would fail at every cell, after its environment's other work)."""
    for name, path in git_mirrors(items).items():
        library = name.split("/", 1)[0]
        if library not in matrix.libraries:
            hint = did_you_mean(library, list(matrix.libraries)) or (
                f"; known: {', '.join(sorted(matrix.libraries)) or 'none'}"
            )
            raise UsageError(
                f"--git-mirror {name}: no library '{library}' in {matrix.path.name}{hint}"
            )
        if "://" not in path and not Path(path).exists():
            raise UsageError(
                f"--git-mirror {name}={path}: no such file or folder; pass a clone or a git bundle"
            )


def check_selected(args: argparse.Namespace, selected: int, total: int) -> None:
    """UsageError for a run of no cell: it would end well having tested nothing."""
    if selected:
        return
    flags = [f"--repro {x}" for x in args.repro] + [f"--gpu {x}" for x in args.gpu]
    flags += [f"--image {x}" for x in args.image] + [f"--library {x}" for x in args.library]
    flags += [f"-k {x}" for x in args.keyword]
    # A matrix of no cells never gets here: `expand_warning` refuses it (exit 2).
    raise UsageError(
        f"{' '.join(flags)} selects none of the {total} cells of {args.matrix}; "
        "`repromatrix list` shows them"
    )


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: Variables each cell gets from the harness (see `executors.cellenv`): a --cell-env value
#: would be dropped (the slot's GPU) or would share caches between library versions.
HARNESS_OWNED = frozenset(
    {"CUDA_VISIBLE_DEVICES", "PYTHONUNBUFFERED", "HOME", "XDG_CACHE_HOME", "TRITON_CACHE_DIR",
     "TORCHINDUCTOR_CACHE_DIR", "TORCH_EXTENSIONS_DIR", "CUDA_CACHE_PATH", "PYTHONPATH",
     "PYTHONHOME", "NVIDIA_VISIBLE_DEVICES"}
)  # fmt: skip
#: Variables the harness derives from the calling shell's (see `executors.local`): PATH with
#: the cells' interpreter's bin/ first (in a container, the image's, where `python` is
#: found), the cells' venv, the user site the interpreter check saw. A --cell-env value
#: replaced what the harness made of them; the shell's own value is kept and adjusted.
FROM_THE_SHELL = frozenset({"PATH", "VIRTUAL_ENV", "PYTHONUSERBASE"})
#: Python start-up switches that change how a cell's process starts, not what it tests:
#: PYTHONSAFEPATH=1 kept every worker from importing its own files (each exited before
#: connecting), PYTHONINSPECT=1 turned a passing isolated cell's exit 0 into 1.
HARNESS_STARTUP = frozenset({"PYTHONSAFEPATH", "PYTHONINSPECT"})


def session_config(args: argparse.Namespace) -> SessionConfig:
    mirrors = git_mirrors(args.git_mirror)
    cell_env: dict[str, str] = {}
    for item in args.cell_env:
        name, sep, value = item.partition("=")
        if not sep or not _ENV_NAME.fullmatch(name):
            raise UsageError(f"--cell-env {item}: write NAME=VALUE (NAME: letters, digits, _)")
        if name in cell_env:
            raise UsageError(f"--cell-env {name}: given twice; keep one")
        if name in HARNESS_OWNED or name.startswith("REPROMATRIX_"):
            raise UsageError(
                f"--cell-env {name}: set by repromatrix for every cell (the GPU slot, the "
                "pins' install folders on PYTHONPATH, the per-environment compile caches "
                "that keep library versions apart); drop it"
            )
        if name in FROM_THE_SHELL:
            raise UsageError(
                f"--cell-env {name}: made by repromatrix from the calling shell's (the cells' "
                "interpreter first); set it in the shell that runs repromatrix and drop it here"
            )
        if name in HARNESS_STARTUP:
            raise UsageError(
                f"--cell-env {name}: changes how the harness starts each cell's Python, not "
                "what the repro tests; drop it"
            )
        cell_env[name] = value
    caches.check_separator(args.cache)
    for d in args.find_links:
        if not d.is_dir():
            what = "not a folder" if d.exists() else "no such folder"
            raise UsageError(f"--find-links {d}: {what}; pass the folder of the wheels or sdists")
    jobs = default_jobs() if args.jobs is None else args.jobs
    count("--jobs", jobs, MAX_JOBS)
    count("--per-gpu", args.per_gpu, MAX_PER_GPU)
    if args.timeout is not None and not 0 < args.timeout <= MAX_TIMEOUT_S:
        raise UsageError(
            f"--timeout {args.timeout}: give seconds above 0 and at most {MAX_TIMEOUT_S:.0f} "
            "(a week, as matrix.yaml allows)"
        )
    _check_ray_flags(args)
    _check_flags_that_apply(args)
    if not 0 <= args.worker_memory < math.inf:  # NaN fails this too
        raise UsageError("--worker-memory must be 0 (no limit) or a positive number of MiB")
    return SessionConfig(
        results=args.results,
        cache=args.cache,
        executor=ExecutorKind(args.executor),
        # A path is this folder's: a Ray node looked for a relative one in its own, and ran
        # the cells with its Ray interpreter when it found none (abspath: a venv's link kept).
        python=os.path.abspath(args.python) if os.sep in args.python else args.python,
        jobs=jobs,
        jobs_given=args.jobs is not None,
        per_gpu=args.per_gpu,
        sources=Sources(
            find_links=tuple(d.resolve() for d in args.find_links),
            no_index=args.no_index,
            git_mirrors={
                k: str(Path(v).resolve()) if Path(v).exists() else v for k, v in mirrors.items()
            },
        ),
        pull=PullPolicy(args.pull),
        cell_env=cell_env,
        timeout_s=args.timeout,
        images_dir=args.matrix.resolve().parent / "images",
        isolate=args.isolate,
        worker_max_rss_mb=args.worker_memory or None,
        ray_address=args.ray_address or os.environ.get("RAY_ADDRESS"),
        ray_address_from="--ray-address" if args.ray_address else "RAY_ADDRESS",
        ray_retries=DEFAULT_RAY_RETRIES if args.ray_retries is None else args.ray_retries,
        keep_logs=args.keep_logs,
    )


def _check_flags_that_apply(args: argparse.Namespace) -> None:
    """UsageError for a flag that this run would take and drop: the run ended well as if
    it had applied."""
    if getattr(args, "_pull_given", False) and args.executor == "local":
        # A local run is in no image: nothing was pulled.
        raise UsageError(
            f"--pull {args.pull}: --executor local runs every cell on this host, in no image, "
            "so nothing is pulled; drop --pull, or run image bases with --executor docker"
        )
    if args.isolate and getattr(args, "_worker_memory_given", False):
        # No cell ran in a worker: the limit applied to none.
        raise UsageError(
            f"--worker-memory {args.worker_memory:g}: --isolate runs each cell in a process of "
            "its own, with no worker to replace; drop one of them"
        )


def _check_ray_flags(args: argparse.Namespace) -> None:
    if args.ray_retries is not None:
        count("--ray-retries", args.ray_retries, MAX_RAY_RETRIES, least=0)
    # Ray's flags without Ray: every cell would run here and nothing would say so.
    for flag, value in (("--ray-address", args.ray_address), ("--ray-retries", args.ray_retries)):
        if value is not None and value != "" and args.executor != "ray":
            raise UsageError(
                f"{flag} {value}: only --executor ray runs cells on a cluster; "
                f"add --executor ray, or drop {flag} to run them on this host"
            )
    ambient = os.environ.get("RAY_ADDRESS", "").strip()
    if ambient and args.executor == "auto":
        # Set by `ray job submit` for its entrypoint, or kept in a Ray user's shell: the
        # cells ran here, and "1 cell needs an H100; this host has none" was all it said.
        print(
            printable(
                f"repromatrix: warning: RAY_ADDRESS is set ({ambient}), but --executor auto "
                "runs cells on this host; pass --executor ray to run them on that cluster"
            ),
            file=sys.stderr,
        )


#: Upper bounds of counts from the command line. Each is far above any real use (a host
#: with thousands of cores, a GPU shared by 64 cells); past them a typo like
#: `--jobs 10000000` would build millions of slots (gigabytes, deaf to Ctrl-C) instead of
#: running anything.
MAX_JOBS = 4096
MAX_PER_GPU = 64
MAX_RAY_RETRIES = 100
DEFAULT_RAY_RETRIES = 2
MAX_REPEAT = 10_000


def count(flag: str, value: int, most: int, *, least: int = 1) -> None:
    """UsageError unless least <= value <= most."""
    if not least <= value <= most:
        raise UsageError(f"{flag} {value}: give a number from {least} to {most:,}")


def head_port(args: argparse.Namespace) -> int:
    """`ray-node`'s --port: a port a socket can have (99999 and 0 said "node started"),
    and only with --head (beside --address it was dropped in silence)."""
    if args.port is not None and args.address:
        raise UsageError(
            "--port is the head's port: give it with --head, or leave it out (--address "
            "HOST:PORT names the head's)"
        )
    port = 6379 if args.port is None else args.port
    count("--port", port, 65535)
    return int(port)


def fail_on(text: str | None) -> set[Status | str]:
    """The statuses `--fail-on` names, and "flaky" (a cell whose records passed and
    regressed)."""
    out: set[Status | str] = set()
    if text is None:
        return out
    names = [*(s.value for s in Status), "flaky"]
    known = ", ".join(names)
    if not text.strip(" ,"):  # `--fail-on ""` (an unset CI variable) would gate nothing
        raise UsageError(f"--fail-on needs one or more statuses: {known}")
    for part in filter(None, (p.strip() for p in text.split(","))):
        if part == "flaky":
            out.add(part)
            continue
        try:
            out.add(Status(part))
        except ValueError:
            # `not-run`, as flags are spelt: say which one was meant, as every name does.
            hint = did_you_mean(part.replace("-", "_"), names).removeprefix(";")
            raise UsageError(
                f"--fail-on {part}: unknown status;{hint} use some of: {known}"
            ) from None
    return out


def bisect_request(args: argparse.Namespace) -> BisectRequest:
    from repromatrix.bisect_plan import BisectRequest

    for flag, values in (("--good", args.good), ("--bad", args.bad)):
        if any(not given.strip() for given in values):
            raise UsageError(f"{flag} is empty; give a commit, tag, branch or release")
    # `--gpu "$GPU"` of an unset variable took the default, as if the flag were not given.
    for flag, value, wants in (
        ("--gpu", args.gpu, "a GPU type of the repro"),
        ("--image", args.image, "a base: an image name or 'host'"),
        ("--test", args.test, "a test of the library's own suite, PATH::NODE"),
        ("--test-from", args.test_from, "a commit, tag, branch or release"),
    ):
        if value is not None and not value.strip():
            raise UsageError(f"{flag} is empty; give {wants}, or leave {flag} out")
    # Several old ends, as git bisect takes several good revisions; one new end, as it takes
    # one bad (with --find-fix the old end is --bad).
    new_flag, news = ("--good", args.good) if args.find_fix else ("--bad", args.bad)
    olds = args.bad if args.find_fix else args.good
    if len(set(news)) > 1:
        raise UsageError(
            f"{new_flag} given {len(news)} times ({', '.join(news)}): a bisection has one "
            f"{new_flag.removeprefix('--')} end, as git bisect has; keep one"
        )
    olds = list(dict.fromkeys(olds))
    if args.calibrate is not None and args.calibrate < 0:
        raise UsageError(
            f"--calibrate {args.calibrate}: give the runs per end, or 0 to calibrate only "
            "when verdicts contradict"
        )
    if not 0.5 < args.confidence < 1:
        # As typed (`99`, not "99.0"), and a percentage read as the probability it meant.
        given = f"{args.confidence:g}"
        meant = (
            f" ({given}% is --confidence {args.confidence / 100:g})"
            if 50 < args.confidence < 100
            else ""
        )
        raise UsageError(
            f"--confidence {given}: give a probability above 0.5 and below 1, e.g. 0.99{meant}"
        )
    if args.max_runs < 1:
        raise UsageError(f"--max-runs {args.max_runs}: give at least 1")
    if args.calibrate is not None and args.calibrate > args.max_runs:
        raise UsageError(
            f"--calibrate {args.calibrate} exceeds --max-runs {args.max_runs}; raise --max-runs"
        )
    return BisectRequest(
        repro=args.repro,
        library=args.library,
        good=args.good[0] if args.find_fix else olds[0],
        bad=olds[0] if args.find_fix else args.bad[0],
        also_old=tuple(olds[1:]),
        find_fix=args.find_fix,
        gpu=args.gpu,
        image=args.image,
        first_parent=args.first_parent,
        pre=args.pre,
        source=args.source,
        with_pins=tuple(args.with_pins),
        test=args.test,
        test_from=args.test_from,
        test_skip_init=args.test_skip_init,
        retry_errors=args.retry_errors,
        rerun=args.rerun,
        calibrate=args.calibrate,
        confidence=args.confidence,
        max_runs=args.max_runs,
    )


def default_jobs() -> int:
    """Parallel CPU-only cells when --jobs is not given: half this machine's CPUs."""
    return max(1, (os.cpu_count() or 2) // 2)


def expand_warning(matrix: Matrix) -> list[Cell]:
    """The cells, after a warning for each include or exclude entry that changes nothing;
    ConfigError for a matrix whose exclude entries remove every cell between them (one
    entry that matches every cell is refused at load): `validate` said "ok: ... 0 cells"
    (exit 0) of a matrix that every `run` and `list` then refused."""
    cells, idle = expand_noting_idle_rules(matrix)
    if not cells and matrix.exclude:
        raise ConfigError(
            f"{matrix.exclude[0].where}: its exclude "
            f"{'entry removes' if len(matrix.exclude) == 1 else 'entries remove'} every cell "
            "(nothing is left to run); narrow or remove them"
        )
    for line in idle:
        print(f"repromatrix: warning: {line}", file=sys.stderr)
    said: set[tuple[Path, int]] = set()
    for repro in matrix.repros.values():
        for path, lineno in uncovered_reads(repro.script):
            if (path, lineno) not in said:
                said.add((path, lineno))
                warning = (
                    f"repromatrix: warning: {path}:{lineno}: repro '{repro.name}' opens a file of "
                    "its folder by a name computed whole, which its cell key cannot cover (a "
                    "changed file would reuse stale results); spell the names in the script, "
                    "a literal or a glob such as 'golden/*.json', or run with --rerun"
                )
                print(printable(warning), file=sys.stderr)  # a path is the user's text
    return cells
