"""The result record of repromatrix, as a pydantic model: one codec.

- `Result`: one line of the result store (JSONL). Older schemas are migrated by a
  before-validator; newer ones are refused with a message saying to upgrade.
- The result JSON a repro writes, its other record, is `repro_result.ReproResult`.

Numbers go through one cleaner, `finite_or_none`: a metric is a finite float or None.
Both records are bounded at the edge (`bounds.py`: a one-line reason, bounded metrics and
provenance) and a record made here is redacted (`redact.py`) before anything can store,
print or report it.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from repromatrix import bounds, redact
from repromatrix.errors import ResultsError
from repromatrix.fingerprints import fingerprint_of
from repromatrix.harness_pins import harness, harness_pins
from repromatrix.model import Cell, Status
from repromatrix.timestamps import supersedes

#: Version of the result record format written by this code. 3 added `commits` (the full
#: commit of each git pin) and `machine` (a stable machine id, its GPUs and driver).
RESULT_SCHEMA = 3


def finite_or_none(value: Any) -> float | None:
    """The one number cleaner: bools and ints become floats, NaN/inf/overflow become None,
    and anything that is not a number is None too."""
    if value is None or isinstance(value, str):
        return None
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        try:
            number = float(value)
        except OverflowError:  # a 400-digit integer
            return None
        return number if math.isfinite(number) else None
    return None


def clean_numbers(raw: Any) -> dict[str, float | None]:
    """A mapping of name → number, cleaned; entries whose value is not numeric are dropped."""
    if not isinstance(raw, Mapping):
        return {}
    out: dict[str, float | None] = {}
    for key, value in raw.items():
        if value is None or isinstance(value, bool | int | float):
            out[str(key)] = finite_or_none(value)
    return out


_MACHINE_KEY = b"repromatrix machine id v1"
_FULL_SHA = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")


def full_commit(value: Any) -> str | None:
    """`value` when it is a full git commit id (40 or 64 hex digits), else None."""
    return value if isinstance(value, str) and _FULL_SHA.match(value) else None


def machine_id(gpu_uuids: Iterable[str], *, fallback: str = "") -> str:
    """A stable, non-secret id for a machine: a hash of its GPUs' UUIDs (stable per
    physical GPU, unlike hostnames, and unlike /etc/machine-id, which VMs cloned from one
    image share), else of `fallback` (what the host offers for GPU-less machines, see
    `host.machine_identity`); "" when there is nothing to hash."""
    uuids = sorted({u.strip() for u in gpu_uuids if u and u.strip()})
    material = "gpus:" + ",".join(uuids) if uuids else ("host:" + fallback if fallback else "")
    if not material:
        return ""
    # Keyed, as systemd asks of anything derived from /etc/machine-id (machine-id(5)):
    # the id names the machine without revealing what it was derived from.
    digest = hmac.new(_MACHINE_KEY, material.encode(), hashlib.sha256).hexdigest()
    return "m-" + digest[:12]


class MachineGpu(BaseModel):
    """One GPU of the machine a record was made on, as nvidia-smi names it."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    name: StrictStr = ""
    uuid: StrictStr = ""


class Machine(BaseModel):
    """The machine a record was made on: a stable id (no hostname, no environment in it),
    its GPUs and driver. Empty for records that could not tell (e.g. old CPU records)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    id: StrictStr = ""
    gpus: tuple[MachineGpu, ...] = ()
    driver: StrictStr = ""


NO_MACHINE = Machine()


class Result(BaseModel):
    """One record of the result store: what running (or not running) a cell gave."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    schema_version: StrictInt = Field(default=RESULT_SCHEMA, alias="schema")
    key: StrictStr
    cell_id: StrictStr
    repro: StrictStr
    base: StrictStr
    image: StrictStr | None = None
    gpu: StrictStr
    #: library name → label, in the cell's pin order.
    pins: Mapping[StrictStr, StrictStr] = Field(default_factory=dict)
    status: Status
    reason: StrictStr = ""
    metrics: Mapping[str, float | None] = Field(default_factory=dict)
    thresholds: Mapping[str, float | None] = Field(default_factory=dict)
    provenance: Mapping[str, Any] = Field(default_factory=dict)
    #: An exit status or a negative signal number; anything beyond 32 bits is corrupt.
    exit_code: StrictInt | None = Field(default=None, ge=-(2**31), lt=2**31)
    duration_s: float = 0.0
    started: StrictStr = ""
    finished: StrictStr = ""
    host: StrictStr = ""
    run_id: StrictStr = ""
    executor: StrictStr = ""
    #: Fingerprint of the base interpreter / image content the cell ran on.
    base_fingerprint: StrictStr = ""
    stdout_tail: StrictStr = ""
    stderr_tail: StrictStr = ""
    #: library → full commit of its git pin (PyPI pins have none), as resolved when the
    #: cell ran: the one identity of a revision, however its label was spelled.
    commits: Mapping[StrictStr, StrictStr] = Field(default_factory=dict)
    #: One shared empty machine (frozen) rather than one per record: 100,000 records.
    machine: Machine = NO_MACHINE
    #: Which check failed, for a regressed cell (see `fingerprint_of`); "" when unknown.
    #: Added without a schema bump: older records simply lack it.
    fingerprint: StrictStr = ""

    @model_validator(mode="before")
    @classmethod
    def _migrate(cls, data: Any, info: ValidationInfo) -> Any:
        """Bring an older record up to RESULT_SCHEMA; refuse newer ones (NewerSchemaError).

        A record read from a file must say its schema (`context={"stored": True}`); one
        made in code gets the current schema by default.
        """
        if not isinstance(data, dict):
            return data  # pydantic reports "not an object"
        stored = bool(info.context and info.context.get("stored"))
        schema = data.get("schema", data.get("schema_version"))
        if schema is None and not stored:
            return _made_here(data)
        if not isinstance(schema, int) or isinstance(schema, bool):
            raise ValueError("record has no integer 'schema' field")
        if not 1 <= schema <= MAX_PLAUSIBLE_SCHEMA:
            raise ValueError(f"record has schema {bounds.number(schema)}, which no version wrote")
        if schema > RESULT_SCHEMA:
            raise NewerSchemaError(schema)
        if schema == 1:
            # Schema 1 kept the base interpreter's identity inside provenance only.
            data = dict(data)
            data.setdefault("base_fingerprint", "")
            data.setdefault("executor", "local")
            data["schema"] = 2
        if schema <= 2:
            data = _migrate_2_to_3(data)
        return data if stored else _made_here(data)

    @field_validator("metrics", "thresholds", mode="before")
    @classmethod
    def _numbers(cls, value: Any) -> dict[str, float | None]:
        return bounds.bound_numbers(clean_numbers(value))

    @field_validator("reason", mode="after")
    @classmethod
    def _reason(cls, value: str) -> str:
        return bounds.bound_reason(value)

    @field_validator("stdout_tail", "stderr_tail", mode="after")
    @classmethod
    def _tail(cls, value: str) -> str:
        return bounds.bound_tail(value)

    @field_validator("duration_s", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError("must be a number of seconds")
        seconds = finite_or_none(value)
        if seconds is None:
            raise ValueError("must be a finite number of seconds")
        return seconds

    @classmethod
    def for_cell(cls, cell: Cell, *, status: Status, reason: str, **fields: Any) -> Result:
        """A record of `cell`: its identity from the cell, the rest as given. A pin whose
        rev is already a full commit is recorded as such (`commits`), unless given."""
        fields.setdefault(
            "commits", {p.library: p.rev for p in cell.pins if full_commit(p.rev) is not None}
        )
        return cls(
            key=cell.key,
            cell_id=cell.id,
            repro=cell.repro,
            base=cell.base.name,
            image=cell.base.ref or None,
            gpu=cell.gpu.name,
            pins={p.library: p.label for p in cell.pins},
            status=status,
            reason=reason,
            **fields,
        )

    @property
    def failure(self) -> str:
        """The fingerprint of this result's failure: as recorded, else derived from its
        numbers (records written before fingerprints existed)."""
        if self.status is not Status.REGRESSED:
            return ""
        return self.fingerprint or fingerprint_of(self.metrics, self.thresholds)

    def record(self) -> dict[str, Any]:
        """The JSON-ready record the store writes (keys as the file has them)."""
        return self.model_dump(mode="json", by_alias=True)


#: Schemas above this are not "newer" but corrupt (a 400-digit schema is no version).
MAX_PLAUSIBLE_SCHEMA = 1000

#: The fields of a record that carry text from outside (the repro, its environment, pip
#: and git): redacted when the record is made.
_OUTSIDE_TEXT = ("reason", "stdout_tail", "stderr_tail")


def _made_here(data: dict[str, Any]) -> dict[str, Any]:
    """A record made by this process: secrets redacted, provenance bounded.

    Records read back from a file were made so already (and a report of 100,000 of them
    should not walk every provenance again); their fields are still bounded one by one.
    """
    redactor = redact.current()
    data = dict(data)
    for name in _OUTSIDE_TEXT:
        if isinstance(data.get(name), str):
            data[name] = redactor.text(data[name])
    provenance = data.get("provenance")
    if isinstance(provenance, Mapping):
        # Twice a repro's budget: what ReproResult bounded (plus the harness's few facts)
        # is never cut again.
        chars = 2 * bounds.MAX_PROVENANCE_CHARS
        data["provenance"] = bounds.bound_tree(provenance, chars=chars, redactor=redactor)
    return data


def pin_commits(provenance: Any, libraries: Iterable[str]) -> dict[str, str]:
    """library → full commit, from `provenance.harness.pins.<lib>.commit` (what the
    environment resolved the pin to)."""
    pins = harness_pins(provenance)
    if pins is None:
        return {}
    out: dict[str, str] = {}
    for lib in libraries:
        entry = pins.get(lib)
        commit = full_commit(entry.get("commit")) if isinstance(entry, Mapping) else None
        if commit is not None:
            out[str(lib)] = commit
    return out


def _migrate_2_to_3(data: dict[str, Any]) -> dict[str, Any]:
    """Schema 3 added `commits` and `machine`; older records carry both in provenance: the
    commit each pin resolved to, and the UUID of the slot's GPU (a GPU-less record gets
    no machine here; reports place it by its run's other records)."""
    data = dict(data)
    provenance = data.get("provenance")
    pins = data.get("pins")
    if "commits" not in data:
        data["commits"] = pin_commits(provenance, pins if isinstance(pins, Mapping) else ())
    if "machine" not in data:
        gpu = harness(provenance).get("gpu")
        uuid = gpu.get("uuid") if isinstance(gpu, Mapping) else None
        if isinstance(uuid, str) and uuid.strip() and isinstance(gpu, Mapping):
            name = gpu.get("name")
            driver = provenance.get("driver") if isinstance(provenance, Mapping) else None
            data["machine"] = {
                "id": machine_id([uuid]),
                "gpus": [{"name": name if isinstance(name, str) else "", "uuid": uuid}],
                "driver": driver if isinstance(driver, str) else "",
            }
    data["schema"] = RESULT_SCHEMA
    return data


class NewerSchemaError(Exception):
    """A record written by a newer repromatrix (not a ValueError: pydantic lets it through)."""

    def __init__(self, schema: int) -> None:
        super().__init__(schema)
        self.schema = schema

    def as_results_error(self, where: str) -> ResultsError:
        return ResultsError(
            f"{where}: record schema {self.schema} is newer than this repromatrix reads "
            f"({RESULT_SCHEMA}); upgrade repromatrix to read these results"
        )


def latest_by_key(results: Iterable[Result]) -> dict[str, Result]:
    """The newest record of each key wins (one dated in the future is no newest, see
    `timestamps.recency`), except that a `not_run` note never hides a result."""
    out: dict[str, Result] = {}
    for r in results:
        prev = out.get(r.key)
        if prev is None or newer(r, prev):
            out[r.key] = r
    return out


def newer(a: Result, b: Result) -> bool:
    """Whether record `a` should stand for its cell rather than `b`."""
    if a.status is Status.NOT_RUN and b.status is not Status.NOT_RUN:
        return False
    if b.status is Status.NOT_RUN and a.status is not Status.NOT_RUN:
        return True
    return supersedes(a.finished, b.finished)


#: The scalar columns of a record in tables (CSV, Parquet, pandas), in order.
BASE_COLUMNS = (
    "key",
    "cell_id",
    "repro",
    "gpu",
    "base",
    "image",
    "status",
    "reason",
    "exit_code",
    "duration_s",
    "started",
    "finished",
    "host",
    "run_id",
    "executor",
)
