"""The shape of matrix.yaml, as pydantic models (the validation layer at the edge).

Structure and types live here, unions included (a version is a string or a mapping; a
repro's library selection is "all" or a list). Cross-references (a repro naming an
undeclared GPU), file existence and Docker reference syntax are checked in `build.py`,
where each problem can be tied to a position in the file.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    Tag,
    field_validator,
)

from repromatrix.safetext import excerpt
from repromatrix.schema_number import SchemaOne

#: Names of images, GPU types, libraries and repros: they become parts of cell ids, file
#: names (`envs/<hash>/src/<library>`) and CSV columns, so never `..` or `-x`.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", re.ASCII)

#: Tags of the unions below; `messages.py` drops them from error locations.
UNION_TAGS = frozenset({"text", "mapping", "all", "list"})


def _text_or_mapping(value: Any) -> str | None:
    if isinstance(value, dict):
        return "mapping"
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        return "text"  # a number gets StrictStr's error: "quote it"
    return None


def _all_or_list(value: Any) -> str | None:
    if isinstance(value, list):
        return "list"
    if isinstance(value, str):
        return "all"
    return None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


#: The longest a cell may be given (a week): beyond it a timeout is a typo, and an
#: infinite one would never end a hung cell.
MAX_TIMEOUT_S = 7 * 24 * 3600.0
#: Most runs of each end a repro may ask for (`bisect --max-runs`'s default).
MAX_CALIBRATE = 20


class DefaultsSpec(_Strict):
    # strict: `true` and "60" are not a number of seconds.
    timeout: float = Field(default=1800.0, gt=0, le=MAX_TIMEOUT_S, allow_inf_nan=False, strict=True)


class ImageSpec(_Strict):
    ref: StrictStr
    released: StrictStr | None = Field(default=None, pattern=r"^\d{4}-\d{2}$")
    ships: dict[str, StrictStr] = Field(default_factory=dict)
    description: StrictStr | None = None


class GpuSpec(_Strict):
    compute_capability: StrictStr = Field(pattern=r"^\d+\.\d+$")
    smi_names: list[StrictStr] = Field(min_length=1)
    shared_memory_per_sm_kb: StrictInt | None = Field(default=None, gt=0, le=10**6)


class RevisionSpec(_Strict):
    pypi: StrictStr | None = None
    git: StrictStr | None = None
    label: StrictStr | None = None
    requires: list[StrictStr] = Field(default_factory=list)
    note: StrictStr | None = None


#: One entry of `libraries.<name>.versions`: a plain version string or a mapping.
VersionSpec = Annotated[
    Annotated[StrictStr, Tag("text")] | Annotated[RevisionSpec, Tag("mapping")],
    Discriminator(
        _text_or_mapping,
        custom_error_type="version_entry",
        custom_error_message="must be a version string or a mapping with 'pypi:' or 'git:'",
    ),
]

#: A repro's selection of one library's revisions: "all" or a non-empty list of them.
Selection = Annotated[
    Annotated[Literal["all"], Tag("all")]
    | Annotated[list[StrictStr], Field(min_length=1), Tag("list")],
    Discriminator(
        _all_or_list,
        custom_error_type="selection",
        custom_error_message="must be 'all' or a non-empty list of revisions declared for "
        "that library",
    ),
]


class LibrarySpec(_Strict):
    pypi: StrictStr | None = None
    git: StrictStr | None = None
    import_name: StrictStr = Field(alias="import")
    install: Literal["pip", "pythonpath"] = "pip"
    requires: list[StrictStr] = Field(default_factory=list)
    versions: list[VersionSpec] = Field(min_length=1)


class ReproSpec(_Strict):
    script: StrictStr
    issue: StrictStr | None = None
    description: StrictStr = ""
    gpus: list[StrictStr] = Field(min_length=1)
    bases: list[StrictStr] = Field(default_factory=lambda: ["host"], min_length=1)
    libraries: dict[str, Selection] = Field(default_factory=dict)
    timeout: float | None = Field(
        default=None, gt=0, le=MAX_TIMEOUT_S, allow_inf_nan=False, strict=True
    )
    params: dict[str, Any] = Field(default_factory=dict)
    #: The metric the report charts and the README table quotes.
    key_metric: StrictStr | None = None
    #: Modules the base interpreter must import for this repro's cells (default: torch
    #: for cells on a GPU). Checked before a run, so a wrong interpreter is one line.
    needs: list[StrictStr] | None = None
    #: Run each cell in a process of its own instead of the environment's worker.
    isolate: StrictBool = False
    #: Runs of each end before a bisection of this repro (one known to be flaky):
    #: `bisect --calibrate`'s default for it.
    calibrate: int | None = Field(default=None, ge=0, le=MAX_CALIBRATE, strict=True)


class RuleSpec(_Strict):
    repro: StrictStr | None = None
    gpu: StrictStr | None = None
    base: StrictStr | None = None
    libraries: dict[str, StrictStr] = Field(default_factory=dict)


class MatrixSpec(_Strict):
    schema_version: SchemaOne = Field(alias="schema")
    defaults: DefaultsSpec = Field(default_factory=DefaultsSpec)
    images: dict[str, ImageSpec] = Field(default_factory=dict)
    gpus: dict[str, GpuSpec] = Field(default_factory=dict)
    libraries: dict[str, LibrarySpec] = Field(default_factory=dict)
    repros: dict[str, ReproSpec] = Field(min_length=1)
    include: list[RuleSpec] = Field(default_factory=list)
    exclude: list[RuleSpec] = Field(default_factory=list)

    @field_validator("images", "gpus", "libraries", "repros")
    @classmethod
    def _names(cls, value: dict[str, Any]) -> dict[str, Any]:
        for name in value:
            if not _NAME.fullmatch(name):
                raise ValueError(
                    f"name '{excerpt(name)}' must be 1 to 64 ASCII letters, digits, '.', '_' "
                    "and '-', starting with a letter or digit; rename it where it is declared "
                    "and used"
                )
        return value
