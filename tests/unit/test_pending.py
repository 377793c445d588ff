"""`planning.Pending`: the cells a pool has yet to start. It must choose exactly as the
plain rule does (the slot's own environment first, else plan order, among cells that may
start) while looking at far fewer cells than a scan of all of them per take."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection

from cells import CELL
from hypothesis import given, settings
from hypothesis import strategies as st

from repromatrix.model import InstallMode, Pin, SourceKind
from repromatrix.planning import Pending, Planned, worker_env


class _NoExecutor:
    name = "none"


def planned(i: int, env: int) -> Planned:
    """Cell number `i` (its key), in environment `env` (0: no pins, the bare one)."""
    pins: tuple[Pin, ...] = ()
    if env:
        pins = (
            Pin(
                library="lib",
                kind=SourceKind.PYPI,
                source="lib",
                rev=str(env),
                label=str(env),
                install=InstallMode.PIP,
                import_name="lib",
            ),
        )
    cell = dataclasses.replace(CELL, pins=pins, key=f"k{i}")
    return Planned(cell=cell, executor=_NoExecutor(), pool="cpu")  # type: ignore[arg-type]


def plain_rule(
    left: list[Planned],
    env: object,
    may_start: Callable[[Planned], bool],
    others: Collection[object] = (),
) -> Planned | None:
    """What the scheduler did before: scan everything, prefer the slot's environment,
    then one no other slot's worker serves."""
    startable = [p for p in left if may_start(p)]
    same = [p for p in startable if worker_env(p.cell) == env]
    free = [p for p in startable if worker_env(p.cell) not in others]
    return (same or free or startable)[0] if startable else None


@settings(max_examples=300, deadline=None)
@given(
    envs=st.lists(st.integers(0, 5), min_size=1, max_size=150),
    steps=st.lists(
        st.tuples(st.integers(0, 5), st.sets(st.integers(0, 5)), st.sets(st.integers(0, 5))),
        max_size=200,
    ),
)
def test_it_takes_what_the_plain_rule_takes(
    envs: list[int], steps: list[tuple[int, set[int], set[int]]]
) -> None:
    cells = [planned(i, env) for i, env in enumerate(envs)]
    pending, left = Pending(cells), list(cells)
    for slot_env, blocked, served in steps:
        env = worker_env(planned(0, slot_env).cell)
        others = [worker_env(planned(0, e).cell) for e in served]

        def may_start(p: Planned, blocked: set[int] = blocked) -> bool:
            return int(p.cell.pins[0].rev if p.cell.pins else 0) not in blocked

        want = plain_rule(left, env, may_start, others)
        got = pending.take(env, may_start, others)
        assert got is want
        if want is not None:
            left.remove(want)
        assert len(pending) == len(left)
        assert list(pending) == left  # plan order kept, through every compaction


def test_taking_every_cell_looks_at_each_about_once() -> None:
    """A run of n cells asked `may_start` about n² / 2 times before (24 s for 3,200)."""
    n = 3000
    cells = [planned(i, 1 + i % 40) for i in range(n)]
    pending = Pending(cells)
    asked = 0

    def may_start(p: Planned) -> bool:
        nonlocal asked
        asked += 1
        return int(p.cell.key[1:]) % 7 != 0 or len(pending) < n // 2  # some wait a while

    env: object = None
    taken = []
    while pending:
        item = pending.take(env, may_start)
        assert item is not None
        env = worker_env(item.cell)
        taken.append(item)
    assert sorted(int(p.cell.key[1:]) for p in taken) == list(range(n))
    assert asked < 10 * n  # (it is about 4 n)


def test_a_cell_put_back_is_taken_before_every_other_longest_first() -> None:
    """A cell whose slot's node left was run again after every cell not taken yet. Put
    back, it is taken first, whatever the slot's environment; several, the longest
    expected first."""
    cells = [planned(i, 1 + i % 2) for i in range(6)]
    pending = Pending(cells)
    env = worker_env(cells[0].cell)
    taken = [pending.take(env, lambda p: True) for _ in range(3)]
    assert taken == [cells[0], cells[2], cells[4]]
    short, long = cells[2], dataclasses.replace(cells[4], expected_s=60.0)
    pending.put_back(short)
    pending.put_back(long)
    assert len(pending) == 5
    assert list(pending) == [long, short, cells[1], cells[3], cells[5]]
    # Held back (its environment busy), the next one put back is taken instead.
    assert pending.take(env, lambda p: p is not long) is short
    assert pending.take(env, lambda p: True) is long
    assert pending.take(env, lambda p: True) is cells[1]


def test_a_slot_leaves_the_cells_of_another_slots_worker_to_that_slot() -> None:
    """A round's slots start at once with the workers of the round before (a bisection's
    next round: the same executors). The slot that asked first took the longest expected
    cell, which another slot's worker served, and each slot then started a worker: it
    takes one no worker serves, and the other slot keeps its own."""
    import threading

    from repromatrix.env_turns import EnvTurns, SlotEnvs
    from repromatrix.executors.base import Slot

    served, new = planned(0, 1), planned(1, 2)  # plan order: the served one first
    memory = SlotEnvs()
    memory.serve("cpu0", worker_env(planned(9, 3).cell))
    memory.serve("cpu1", worker_env(served.cell))
    turns = EnvTurns(
        turn=threading.Condition(), stop=threading.Event(), note=print, slot_envs=memory
    )
    items = Pending([served, new])
    assert turns.take(items, Slot(name="cpu0"), wait=False) is new
    assert turns.take(items, Slot(name="cpu1"), wait=False) is served
    assert memory.of("cpu0") == worker_env(new.cell)
    assert memory.of("cpu1") == worker_env(served.cell)
