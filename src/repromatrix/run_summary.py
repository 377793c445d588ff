"""What a run gives back: its id, its records, and why it stopped (`RunSummary`).

Apart from the scheduler because the commands that end a run (`run`, `bisect`, `--fail-on`)
read it without running anything: they need the summary's counts and its exit code, not
the slots and threads that filled it.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from repromatrix.errors import (
    ConfigError,
    DockerError,
    EnvironmentBuildError,
    ExitCode,
    MissingToolError,
    ReproMatrixError,
    StoreError,
)
from repromatrix.model import Cell, Status
from repromatrix.records import Result


@dataclass(kw_only=True)
class RunSummary:
    run_id: str
    results: list[Result] = field(default_factory=list)
    reused: int = 0
    #: Of the `reused` runs, those whose stored record is an error or a timeout.
    reused_failed: int = 0
    not_run: int = 0
    interrupted: bool = False
    reused_results: list[Result] = field(default_factory=list)
    not_run_cells: list[tuple[Cell, str]] = field(default_factory=list)
    #: (cell, why) of cells of a GPU type no node offered, none joining while the run went
    #: on (`Scheduler`): noted "not run here" once it ends.
    no_node: list[tuple[Cell, str]] = field(default_factory=list)
    #: Per key, the stored records that count on this host (`Plan.evidence`).
    evidence: Mapping[str, tuple[Result, ...]] = field(default_factory=dict)
    #: Why a result could not be stored (the run stopped there); None when all were.
    lost: str | None = None
    #: The exit code that stop means (a store or cache that cannot be written, or a
    #: container engine that stopped answering).
    lost_code: ExitCode = ExitCode.STORE
    #: (cell id, note) of cells noted because their environment failed to build for this
    #: machine's own want (its index, its compiler): the run ends with exit 7.
    own_builds: list[tuple[str, str]] = field(default_factory=list)

    def lost_error(self) -> ReproMatrixError:
        """The error to end the command with, when the run stopped (`lost`)."""
        why = self.lost or "the run stopped"
        codes: dict[ExitCode, type[ReproMatrixError]] = {
            ExitCode.DOCKER: DockerError,
            ExitCode.MISSING_TOOL: MissingToolError,
            ExitCode.ENVIRONMENT: EnvironmentBuildError,
            ExitCode.CONFIG: ConfigError,  # a repro's code edited while the run went on
        }
        return codes.get(self.lost_code, StoreError)(why)

    def count(self, status: Status) -> int:
        return sum(1 for r in self.results if r.status is status)


#: The start of a bisection's run ids (`bisect_session`): what tells its records apart from
#: a run's where they are read back (`bisected_axes`, the report's views and unlisted pins).
BISECT_RUN_PREFIX = "bisect-"


def new_run_id(hostname: str, workroot: Path | None = None, *, prefix: str = "") -> str:
    """A run's id, `prefix` + time, host and a random part; given the cache's `workroot`,
    one whose folder there (where the run's cells work) this call made. Two runs of one
    cache that began in the same second on hosts of one name (every lent VM is `vm`) drew
    the same 4 hex digits one time in 65,536 and shared that folder: a cell of one read the
    other's result JSON as its own, a repro that wrote none recorded as the other's pass.
    A folder that cannot be made (a full or read-only cache) leaves the id unclaimed: the
    cell's own work there then fails as it did."""
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in hostname)[:40] or "host"
    while True:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        run_id = f"{prefix}{stamp}-{safe}-{secrets.token_hex(2)}"
        if workroot is None:
            return run_id
        try:
            workroot.mkdir(parents=True, exist_ok=True)
        except OSError:  # a file where it goes too: the id is never claimed, so never drawn again
            return run_id
        try:
            (workroot / run_id).mkdir()
        except FileExistsError:
            continue  # another run's: draw again
        except OSError:
            return run_id
        return run_id
