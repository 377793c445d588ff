"""The line a run says when slots are dropped because their node left (`--executor ray`):
one per node, naming its slots, said once they have all ended.

A node holding several slots takes them all along, and each slot's thread finds out on
its own (each asks Ray how its actor ended, a second or so apart): a line per slot named
the node again and again, and the first gave a count of live slots that still held the
node's others. So a slot's drop is gathered under the words that say what took it away
(they name the node), and the line is said once no slot was dropped for those words for
`GATHER_S`, or when the run ends.

Apart from the scheduler because it is what the run says of lost slots; it knows nothing
of cells or executors.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

#: How long (s) after the last slot dropped for the same words their line waits for more:
#: a node's slots find out within a second or two of each other.
GATHER_S = 2.0


@dataclass
class _Pool:
    slots: list[str] = field(default_factory=list)
    cells: int = 0
    live: int = 0  # the pool's live slots once the last of these ended


@dataclass
class _Drop:
    last: float  # when the latest slot was dropped for these words (monotonic)
    pools: dict[str, _Pool] = field(default_factory=dict)  # a GPU type, or CPU


class SlotDrops:
    """Slots dropped for the words that say what took them away, not said yet."""

    def __init__(self) -> None:
        self._drops: dict[str, _Drop] = {}

    def dropped(self, why: str, slot: str, cells: int, live: int, pool: str) -> None:
        """Slot `slot` of `pool` ended for `why` with `cells` cells put back; `live`: the
        pool's slots left."""
        drop = self._drops.setdefault(why, _Drop(last=0.0))
        drop.last = time.monotonic()
        got = drop.pools.setdefault(pool, _Pool())
        got.slots.append(slot)
        got.cells += cells
        got.live = live

    def due(self, *, every: bool = False) -> list[str]:
        """The lines of the drops no slot joined for `GATHER_S` (`every`: all of them, as
        the run ends), taken out."""
        now = time.monotonic()
        ready = [w for w, d in self._drops.items() if every or now - d.last >= GATHER_S]
        return [_line(why, self._drops.pop(why)) for why in ready]


def _line(why: str, drop: _Drop) -> str:
    parts = []
    for pool, got in drop.pools.items():
        if len(got.slots) == 1:
            said = f"slot {got.slots[0]} is dropped; its {got.cells} cell(s)"
        else:
            names = ", ".join(sorted(got.slots, key=_numbered))
            said = f"slots {names} are dropped; their {got.cells} cell(s)"
        where = f"run next on the {got.live} live {pool} slot{'' if got.live == 1 else 's'}"
        if not got.live:
            where = f"wait for a free {pool} slot or node, as cells of a type no node offers do"
        parts.append(f"{said} {where}")
    return f"{why}: {'; '.join(parts)}"


def _numbered(name: str) -> list[tuple[int, str]]:
    """`gpu10` after `gpu9`."""
    return [(int(t), "") if t.isdigit() else (-1, t) for t in re.split(r"(\d+)", name)]
