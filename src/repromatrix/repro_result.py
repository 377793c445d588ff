"""The result JSON a repro writes (the repro protocol, DESIGN.md), as a pydantic model
read by the harness before it judges the cell: `ReproResult`, its numbers through
`records.clean_numbers` and bounded at the edge as a stored record's are (`bounds.py`),
its reason and provenance redacted (`redact.py`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictStr, ValidationError, field_validator

from repromatrix import bounds, redact
from repromatrix.records import clean_numbers
from repromatrix.schema_number import SchemaOne

#: Version of the repro protocol's result JSON that this harness reads (repros/_repro.py).
PROTOCOL_SCHEMA = 1

#: The statuses a repro may write (timeouts and "not run here" are the harness's words).
ReproStatus = Literal["passed", "regressed", "untestable", "error"]


class ReproResult(BaseModel):
    """The result JSON of the repro protocol (what `repros/_repro.py` writes)."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    schema_version: SchemaOne = Field(alias="schema")
    repro: StrictStr = ""
    status: ReproStatus
    reason: StrictStr = ""
    metrics: Mapping[str, float | None] = Field(default_factory=dict)
    thresholds: Mapping[str, float | None] = Field(default_factory=dict)
    provenance: Mapping[str, Any] = Field(default_factory=dict)
    #: Which check failed (metric names, an exception type, failing test ids), when the
    #: repro says; optional, so repros that predate it stay valid.
    fingerprint: StrictStr = ""

    @field_validator("metrics", "thresholds", mode="before")
    @classmethod
    def _numbers(cls, value: Any) -> dict[str, float | None]:
        if not isinstance(value, Mapping):
            raise ValueError("must be an object of name → number")
        kept = {k: v for k, v in value.items() if type(v) is not bool and str(k).strip()}
        return bounds.bound_numbers(clean_numbers(kept))

    @field_validator("reason", mode="after")
    @classmethod
    def _reason(cls, value: str) -> str:
        return bounds.bound_reason(redact.current().text(value))

    @field_validator("provenance", mode="after")
    @classmethod
    def _provenance(cls, value: Mapping[str, Any]) -> Mapping[str, Any]:
        bounded: dict[str, Any] = bounds.bound_tree(value, redactor=redact.current())
        return bounded

    @classmethod
    def parse(cls, raw: bytes) -> ReproResult:
        """The result JSON a repro wrote; ValueError (pydantic's included) when unusable.

        A document a strict parser refuses only for its size (numbers of hundreds of
        digits, nesting deeper than 200 levels) is read again with `bounds.parse_json`:
        what a repro measured is kept and the excess cut, rather than the cell lost.
        """
        if len(raw) > bounds.MAX_RESULT_JSON_BYTES:
            raise ValueError(
                f"is larger than {bounds.MAX_RESULT_JSON_BYTES // 2**20} MiB, the most a "
                "result JSON may hold"
            )
        try:
            return cls.model_validate_json(raw)
        except ValidationError as exc:
            err = exc.errors()[0]
            # Also a lone surrogate escape ("\udcff", "end of hex escape" of a high one at
            # the end): json.dump writes one for undecodable bytes, and Python reads it;
            # a byte that is no UTF-8 (a C++ tool's message) is U+FFFD, not a lost verdict.
            reread = (
                *("recursion limit", "out of range", "too large", "too long"),
                *("surrogate", "end of hex escape", "invalid unicode code point"),
            )
            if err["type"] != "json_invalid" or not any(w in err["msg"] for w in reread):
                raise
            if not raw.lstrip().startswith(b"{"):
                raise  # not an object at all: nothing worth reading again
        return cls.model_validate(bounds.parse_json(raw.decode("utf-8", "replace")))
