"""The shape of matrix.yaml, as pydantic models (the validation layer at the edge).

Only the structure and the scalar types live here. Cross-references (a repro naming an
undeclared GPU), file existence and Docker reference syntax are checked in matrix.py,
where each problem can be tied to a position in the file.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, field_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class DefaultsSpec(_Strict):
    timeout: float = Field(default=1800.0, gt=0)


class ImageSpec(_Strict):
    ref: StrictStr
    released: StrictStr | None = Field(default=None, pattern=r"^\d{4}-\d{2}$")
    ships: dict[str, StrictStr] = Field(default_factory=dict)
    description: StrictStr | None = None


class GpuSpec(_Strict):
    compute_capability: StrictStr = Field(pattern=r"^\d+\.\d+$")
    smi_names: list[StrictStr] = Field(min_length=1)
    shared_memory_per_sm_kb: StrictInt | None = Field(default=None, gt=0)


class RevisionSpec(_Strict):
    pypi: StrictStr | None = None
    git: StrictStr | None = None
    label: StrictStr | None = None
    requires: list[StrictStr] = Field(default_factory=list)
    note: StrictStr | None = None


class LibrarySpec(_Strict):
    pypi: StrictStr | None = None
    git: StrictStr | None = None
    import_name: StrictStr = Field(alias="import")
    install: Literal["pip", "pythonpath"] = "pip"
    requires: list[StrictStr] = Field(default_factory=list)
    # Plain strings or RevisionSpec mappings; matrix.py validates each with its position.
    versions: list[Any] = Field(min_length=1)


class ReproSpec(_Strict):
    script: StrictStr
    issue: StrictStr | None = None
    description: StrictStr = ""
    gpus: list[StrictStr] = Field(min_length=1)
    bases: list[StrictStr] = Field(default_factory=lambda: ["host"], min_length=1)
    # library name -> "all" or a list of revisions; matrix.py validates each entry.
    libraries: dict[str, Any] = Field(default_factory=dict)
    timeout: float | None = Field(default=None, gt=0)
    params: dict[str, Any] = Field(default_factory=dict)
    #: The metric the report charts and the README table quotes.
    key_metric: StrictStr | None = None


class RuleSpec(_Strict):
    repro: StrictStr | None = None
    gpu: StrictStr | None = None
    base: StrictStr | None = None
    libraries: dict[str, StrictStr] = Field(default_factory=dict)


class MatrixSpec(_Strict):
    schema_version: Literal[1] = Field(alias="schema")
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
            if not name or not all(c.isalnum() or c in "._-" for c in name):
                raise ValueError(f"name '{name}' may only hold letters, digits, '.', '_' and '-'")
        return value
