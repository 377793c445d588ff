"""Why points of a library axis have no place on it, in words that fit them (pure)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Protocol

_NEITHER = "neither a release nor a commit, which no version or ancestry orders"


class _Labelled(Protocol):
    @property
    def label(self) -> str: ...


def unordered_why(points: Sequence[_Labelled], neither: Collection[str], doubt: str = "") -> str:
    """Why `points` have no place, `neither` the labels of them that are neither a release
    nor a commit (`ordering.RevInfo.neither`), `doubt` why matrix.yaml's order is none
    (`ordering.declared_order_doubt`). "1.1|x" (an edited record) is no commit: the mirror
    and commit dates said of commits would send the user after a clone that cannot help."""
    if doubt:
        return f"{doubt}: list them oldest first, or give --cache a mirror"
    odd = [p.label for p in points if p.label in neither]
    if odd and len(odd) == len(points):
        return _NEITHER
    return (
        "no mirror in --cache to read its ancestry from, and a commit date is no order; or "
        "off the first-parent line of the others, or next to a release it cannot be compared "
        "with" + (f"; {', '.join(odd)}: {_NEITHER}" if odd else "")
    )
