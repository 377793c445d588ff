"""Why points of a library axis have no place on it, in words that fit them (pure)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Protocol

from repromatrix.model import HOST_BASE

_NEITHER = "neither a release nor a commit, which no version or ancestry orders"


class _Labelled(Protocol):
    @property
    def label(self) -> str: ...


def unordered_why(
    points: Sequence[_Labelled], neither: Collection[str], doubt: str = "", mirrored: bool = False
) -> str:
    """Why `points` have no place, `neither` the labels of them that are neither a release
    nor a commit (`revision_order.RevInfo.neither`), `doubt` why matrix.yaml's order is none
    (`ordering.declared_order_doubt`), `mirrored` whether a mirror ordered the axis.
    "1.1|x" (an edited record) is no commit: the mirror and commit dates said of commits
    would send the user after a clone that cannot help; nor, where a mirror ordered the
    others, is "no mirror in --cache" (after a bisect, the commits of a merged branch)."""
    if doubt:
        return f"{doubt}: list them oldest first, or give --cache a mirror"
    odd = [p.label for p in points if p.label in neither]
    if odd and len(odd) == len(points):
        return _NEITHER
    where = (
        "not on the first-parent line of the others in the mirror in --cache (a commit of a "
        "merged branch, one no branch or tag holds now (force-pushed away, deleted), or one "
        "the mirror lacks)"
        if mirrored
        else "no mirror in --cache to read its ancestry from, and a commit date is no order; "
        "or off the first-parent line of the others"
    )
    return f"{where}, or next to a release it cannot be compared with" + (
        f"; {', '.join(odd)}: {_NEITHER}" if odd else ""
    )


def base_why(
    points: Sequence[_Labelled], tied: Collection[str], doubt: str, file: str = "matrix.yaml"
) -> str:
    """Why bases have no place: no release (`_no_release`), or one shared with another
    image (`tied`, said in `doubt`). `file`: the matrix file given (--matrix)."""
    undated = [p for p in points if p.label not in tied]
    return "; ".join(x for x in (_no_release(undated, file) if undated else "", doubt) if x)


def _no_release(points: Sequence[_Labelled], file: str) -> str:
    """Why bases have no place among dated images: an image lacks its release (which
    the matrix `file` can give), the host has none (and none can be given)."""
    if all(p.label == HOST_BASE for p in points):
        return "the host is no image: it has no release to place it among them"
    host = "; the host has none" if any(p.label == HOST_BASE for p in points) else ""
    return f"no release: give the image `released: YYYY-MM` in {file}{host}"
