"""What a record's provenance says of its pins: `provenance.harness.pins.<library>.<field>`.

The harness writes that tree (executors' `judge`), but a record read back from a file may
hold anything there (an older schema's, a hand-edited one's), so every step is checked:
one reader of it, where the run, bisect and report each walked it in their own way.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

_NONE: Mapping[str, Any] = MappingProxyType({})


def harness(provenance: Any) -> Mapping[str, Any]:
    """`provenance.harness` ({} where it is no mapping)."""
    found = provenance.get("harness") if isinstance(provenance, Mapping) else None
    return found if isinstance(found, Mapping) else _NONE


def harness_pins(provenance: Any) -> Mapping[str, Any] | None:
    """`provenance.harness.pins`, library → what its pin resolved to (None where the
    record says nothing of its pins)."""
    pins = harness(provenance).get("pins")
    return pins if isinstance(pins, Mapping) else None


def harness_pin(provenance: Any, library: str) -> Mapping[str, Any]:
    """`provenance.harness.pins.<library>` ({} where the record has none)."""
    pin = (harness_pins(provenance) or _NONE).get(library)
    return pin if isinstance(pin, Mapping) else _NONE


def pin_field(provenance: Any, library: str, name: str) -> str:
    """`provenance.harness.pins.<library>.<name>` ("" where it is no string)."""
    value = harness_pin(provenance, library).get(name)
    return value if isinstance(value, str) else ""
