"""Which machine made which records (pure): the report lists machines, not hostnames.

Every lent VM calls itself `vm`, so hostnames say nothing. Records carry a stable machine
id (schema 3; older records get one from their slot GPU's UUID when migrated). A machine
is the union of what ties records together: the same machine id, a shared GPU UUID (an old
record knows one GPU of a multi-GPU host, a new one all of them), or the same run (every
record of a local or Docker run comes from its host, so a GPU-less record joins its run's
machine; a Ray run spans the cluster's machines and ties none together).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from operator import attrgetter

from repromatrix.records import Machine, Result
from repromatrix.timestamps import instant, is_time


@dataclass(frozen=True, kw_only=True)
class MachineSummary:
    """One machine as the report's machines table shows it."""

    #: The machine id ("m-…"), or "unidentified (…)" for records that carry none.
    name: str
    #: "NVIDIA H200" (one per kind of GPU, with a count when several).
    gpus: tuple[str, ...]
    driver: str
    records: int
    first: str
    last: str
    #: Hostnames as recorded (for reference only: they are not unique).
    hostnames: tuple[str, ...] = ()
    uuids: tuple[str, ...] = ()


class _Union:
    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, x: str) -> str:
        self.parent.setdefault(x, x)
        root = x
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[x] != root:
            self.parent[x], x = root, self.parent[x]
        return root

    def join(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def _nodes(r: Result) -> list[str]:
    nodes = []
    if r.machine.id:
        nodes.append("id:" + r.machine.id)
    nodes += ["gpu:" + g.uuid for g in r.machine.gpus if g.uuid]
    # A run of the Ray executor spans the cluster's machines (every node's records carry
    # the driver's run id): it ties none of them together.
    if r.run_id and (r.executor != "ray" or not nodes):
        nodes.append("run:" + r.run_id)
    return nodes


def machines(results: Iterable[Result]) -> tuple[MachineSummary, ...]:
    """The machines behind `results`, most records first."""
    results = list(results)
    u = _Union()
    # Records share machines and runs: each (machine, run) is tied in once.
    first: dict[tuple[int, str], str | None] = {}
    held: list[Machine] = []  # keeps each id its machine's
    for r in results:
        key = (id(r.machine), r.run_id)
        if key not in first:
            nodes = _nodes(r)
            first[key] = nodes[0] if nodes else None
            held.append(r.machine)
            for n in nodes[1:]:
                u.join(nodes[0], n)
    roots = {key: u.find(node) for key, node in first.items() if node is not None}
    groups: dict[str, list[Result]] = {}
    for r in results:
        # A record with neither machine id nor run id has only its hostname to go by.
        root = roots.get((id(r.machine), r.run_id)) or "host:" + r.host
        groups.setdefault(root, []).append(r)
    out = [_summary(group) for group in groups.values()]
    return tuple(sorted(out, key=lambda m: (-m.records, m.name)))


def _summary(group: Sequence[Result]) -> MachineSummary:
    # Records share machines and times (`fastdecode`): each distinct one is read once, in
    # the order the records first name it (their counts weigh as the records would).
    held = list(map(_MACHINE, group))  # keeps each id its machine's
    objects = dict(zip(map(id, held), held, strict=True))
    ids: Counter[str] = Counter()
    uuids: dict[str, str] = {}
    drivers: Counter[str] = Counter()
    for key, n in Counter(map(id, held)).items():
        machine = objects[key]
        if machine.id:
            ids[machine.id] += n
        for g in machine.gpus:
            if g.uuid:
                uuids.setdefault(g.uuid, g.name)
        if machine.driver:
            drivers[machine.driver] += n
    kinds = Counter(uuids.values())
    gpus = tuple(f"{n} × {name}" if n > 1 else name for name, n in sorted(kinds.items()))
    # In time order, whatever offset a host wrote (as text, 11:00+05:00 came after 10:00Z);
    # text that is no time is none ("yesterday" sorted after every year: "last: yesterday").
    first, last = _first_last(group)
    hostnames = tuple(sorted({r.host for r in group if r.host}))
    unknown = "unidentified" + (f" (recorded as {', '.join(hostnames)})" if hostnames else "")
    return MachineSummary(
        name=ids.most_common(1)[0][0] if ids else unknown,
        gpus=gpus,
        driver=", ".join(d for d, _ in drivers.most_common()),
        records=len(group),
        first=first,
        last=last,
        hostnames=hostnames,
        uuids=tuple(sorted(uuids)),
    )


_MACHINE = attrgetter("machine")
_FINISHED = attrgetter("finished")
_TIMES = attrgetter("finished", "started")


def _first_last(group: Sequence[Result]) -> tuple[str, str]:
    """The earliest and the latest time of the records (when each finished, else started;
    "" without any): the first of the earliest and the last of the latest, as a sort of
    them all gave. Each distinct time is read once, in the order the records name it."""
    finished = dict.fromkeys(map(_FINISHED, group))
    if finished and all(map(is_time, finished)):  # none fell back on when it started
        latest = dict.fromkeys(map(_FINISHED, reversed(group)))
        return min(finished, key=instant), max(latest, key=instant)
    first = _dates(dict.fromkeys(map(_TIMES, group)))
    last = _dates(dict.fromkeys(map(_TIMES, reversed(group))))
    return (min(first, key=instant) if first else "", max(last, key=instant) if last else "")


def _dates(times: Iterable[tuple[str, str]]) -> list[str]:
    """Each record's time (when it finished, else started), those that are times."""
    stamps = ((finished if is_time(finished) else started) for finished, started in times)
    return [d for d in stamps if is_time(d)]
