"""The `schema` key both documents the harness reads carry (matrix.yaml and a repro's
result JSON): the number 1 and nothing that merely compares equal to it. One type, so
the two cannot drift apart; each caller words its own error around pydantic's."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator


def _exactly_an_int(value: Any) -> Any:
    if type(value) is not int:  # Literal[1] takes true and 1.0 as 1
        raise ValueError("schema must be the number 1")
    return value


#: The type of a `schema_version` field read from `schema` (give it `alias="schema"`).
SchemaOne = Annotated[Literal[1], BeforeValidator(_exactly_an_int)]

__all__ = ["SchemaOne"]
