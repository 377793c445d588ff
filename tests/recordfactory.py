"""One result record of a small store, as the store, damage and cache tests make it."""

from __future__ import annotations

from repromatrix.model import Status
from repromatrix.records import Result


def result(
    key: str,
    status: Status = Status.PASSED,
    finished: str = "2026-11-22T00:00:00+00:00",
    host: str = "h1",
    **metrics: float,
) -> Result:
    """A record of repro `r` on the host base and no GPU whose one pin, `lib`, is `key`."""
    return Result(
        key=key,
        cell_id=f"r[cpu,host,{key}]",
        repro="r",
        base="host",
        gpu="cpu",
        pins={"lib": key},
        status=status,
        reason=status.value,
        metrics=metrics,
        finished=finished,
        host=host,
    )
