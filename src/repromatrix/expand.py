"""Matrix → cells: the cartesian product per repro, minus excludes, plus includes (pure).

Also the CLI's selection (`CellFilter`), which narrows the expanded cells down.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from repromatrix.config import Matrix
from repromatrix.config.messages import did_you_mean, not_ascii
from repromatrix.errors import UsageError
from repromatrix.model import Cell, Pin, Repro, SourceKind, cell_key
from repromatrix.pep440 import pep440
from repromatrix.safetext import excerpt


def expand(matrix: Matrix) -> list[Cell]:
    """Cartesian product per repro over the axes it spans, minus excludes, plus includes.

    Order is stable: repros as declared, then bases, GPUs and library revisions in axis
    order. Duplicates (an include that the product already has) appear once.
    """
    return expand_noting_idle_rules(matrix)[0]


def expand_noting_idle_rules(matrix: Matrix) -> tuple[list[Cell], list[str]]:
    """`expand`, and one line per include or exclude entry that changes nothing: an
    exclude that matches no cell of the product (a stale entry, or one whose fields never
    meet: the cell it meant to drop runs), an include of a cell the matrix already has."""
    cells: dict[str, Cell] = {}
    excluding: set[int] = set()
    idle: list[str] = []
    for repro in matrix.repros.values():
        lib_axes = [
            [matrix.libraries[name].revision(rev) for rev in revs]
            for name, revs in repro.libraries.items()
        ]
        lib_names = list(repro.libraries)
        for base_name, gpu_name in itertools.product(repro.bases, repro.gpus):
            for combo in itertools.product(*lib_axes):
                pins = tuple(
                    matrix.libraries[n].pin(rv) for n, rv in zip(lib_names, combo, strict=True)
                )
                cell = make_cell(matrix, repro, base_name, gpu_name, pins)
                hits = {i for i, rule in enumerate(matrix.exclude) if rule.matches(cell)}
                excluding |= hits
                if not hits:
                    cells.setdefault(cell.key, cell)
    idle.extend(
        f"{rule.where}: this exclude matches no cell of the product; fix or remove it"
        for i, rule in enumerate(matrix.exclude)
        if i not in excluding
    )
    for rule in matrix.include:
        assert rule.repro is not None
        assert rule.gpu is not None
        repro = matrix.repros[rule.repro]
        base_name = rule.base or repro.bases[0]
        pins = tuple(
            matrix.libraries[n].pin(matrix.libraries[n].revision(rule.libraries[n]))
            for n in repro.libraries
        )
        cell = make_cell(matrix, repro, base_name, rule.gpu, pins)
        if cell.key in cells:
            idle.append(
                f"{rule.where}: this include names {cell.id}, which the matrix has already; "
                "remove it"
            )
        cells.setdefault(cell.key, cell)
    return list(cells.values()), idle


def make_cell(
    matrix: Matrix, repro: Repro, base_name: str, gpu_name: str, pins: tuple[Pin, ...]
) -> Cell:
    base = matrix.bases[base_name]
    gpu = matrix.gpus[gpu_name]
    key = cell_key(
        repro=repro.name,
        script_digest=repro.script_digest,
        base=base,
        gpu=gpu,
        pins=pins,
        params=repro.params,
    )
    needs = repro.needs if repro.needs is not None else (("torch",) if not gpu.is_cpu else ())
    return Cell(
        repro=repro.name,
        script=repro.script,
        base=base,
        gpu=gpu,
        pins=pins,
        params=repro.params,
        timeout_s=repro.timeout_s,
        key=key,
        # What the pins install comes from the environment, not the base interpreter.
        needs=tuple(m for m in needs if m not in {p.import_name for p in pins}),
        isolate=repro.isolate,
        script_digest=repro.script_digest,
        inputs=repro.inputs,
    )


@dataclass(frozen=True, kw_only=True)
class CellFilter:
    """The CLI's selection flags; empty fields select everything."""

    repros: tuple[str, ...] = ()
    gpus: tuple[str, ...] = ()
    bases: tuple[str, ...] = ()
    libraries: Mapping[str, tuple[str, ...]] | None = None
    #: Texts one of which the cell id must contain (case aside); empty: any cell.
    keywords: tuple[str, ...] = ()

    def __call__(self, cell: Cell) -> bool:
        if self.repros and cell.repro not in self.repros:
            return False
        if self.gpus and cell.gpu.name not in self.gpus:
            return False
        if self.bases and cell.base.name not in self.bases:
            return False
        for lib, revs in (self.libraries or {}).items():
            pin = cell.pin(lib)
            if pin is None or not any(same_revision(pin, rev) for rev in revs):
                return False
        name = cell.id.lower()
        return not self.keywords or any(k.lower() in name for k in self.keywords)

    def check_revisions(self, cells: Sequence[Cell], matrix: Matrix) -> None:
        """A `--library NAME=REV` that no cell pins is a mistake (a typo, an undeclared
        release), not a run of nothing that ends well."""
        for lib, revs in (self.libraries or {}).items():
            pins = [p for c in cells if (p := c.pin(lib)) is not None]
            for rev in revs:
                if not any(same_revision(p, rev) for p in pins):
                    labels = list(dict.fromkeys(p.label for p in pins))
                    raise UsageError(
                        f"--library {excerpt(lib, 64)}={excerpt(rev, 64)}{not_ascii(rev)}: "
                        f"no cell of {excerpt(matrix.path.name, 64)} pins that revision; pinned: "
                        f"{excerpt(', '.join(labels), 120) if labels else 'none'} (to try "
                        "other releases or commits, declare them or use `repromatrix bisect`)"
                    )

    def check_against(self, matrix: Matrix) -> None:
        """Unknown names in filters are usage mistakes worth a hint, not an empty run."""
        checks: list[tuple[str, Sequence[str], Iterable[str]]] = [
            ("--repro", self.repros, matrix.repros),
            ("--gpu", self.gpus, matrix.gpus),
            ("--image", self.bases, matrix.bases),
            ("--library", tuple((self.libraries or {}).keys()), matrix.libraries),
        ]
        for flag, given, known in checks:
            known_list = list(known)
            for name in given:
                if name not in known_list:
                    hint = did_you_mean(name, known_list)
                    # Excerpts: a matrix may declare hundreds of names; the line stays short.
                    names = whole_names(known_list, 120) if known_list else "none"
                    # The hint ends the line: "…?; known: …" read as two sentences glued.
                    raise UsageError(
                        f"{flag} {excerpt(name, 64)}{not_ascii(name)}: not in "
                        f"{excerpt(matrix.path.name, 64)} "
                        f"(known: {names}){hint}"
                    )


def whole_names(names: Sequence[str], limit: int) -> str:
    """`names` joined, as many whole ones as fit in about `limit` characters, then how many
    more (a cut in the middle of a name hid two of them)."""
    shown: list[str] = []
    for name in names:
        if shown and len(", ".join([*shown, name])) > limit:
            return ", ".join(shown) + f" and {len(names) - len(shown)} more"
        shown.append(excerpt(name, 64))
    return ", ".join(shown)


def same_revision(pin: Pin, rev: str) -> bool:
    """Whether `rev`, as a user types it, names the pin's revision: its spelling in
    matrix.yaml or its label; for a PyPI release any spelling pip takes for the same
    release (`1.20`, `1.20.0`, `v1.20`); for a commit any abbreviation of 7+ hex digits."""
    if rev in (pin.rev, pin.label):
        return True
    if pin.kind is SourceKind.PYPI:
        given, pinned = pep440(rev), pep440(pin.rev)
        return given is not None and given == pinned
    short, full = rev.lower(), pin.rev.lower()
    hexdigits = len(short) >= 7 and all(ch in "0123456789abcdef" for ch in short)
    return hexdigits and len(full) >= 7 and (full.startswith(short) or short.startswith(full))
