"""Every value of a matrix whose shape pydantic accepted, checked for what it becomes.

Walks the spec once, in file order, and raises the first problem as one line naming
file:line:column, the value (an excerpt) and the fix. The grammars are in `values.py`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable

from packaging.utils import canonicalize_name

from repromatrix.config import values
from repromatrix.config.schema import LibrarySpec, MatrixSpec, ReproSpec, RevisionSpec
from repromatrix.config.yamlsrc import Located, PathKey
from repromatrix.errors import ConfigError
from repromatrix.safetext import excerpt

#: Cells a matrix may expand to (each is a run of minutes on a GPU: 5,000 is weeks), and
#: revisions on one library's axis (lookups by label are linear, as they may be at this size).
MAX_CELLS = 5_000
MAX_REVISIONS = 500
#: A repro's params travel as one JSON argument on its command line, and are hashed into
#: the key of each of its cells.
MAX_PARAMS_JSON = 4 * 1024

Check = Callable[[str], str | None]


class _Checker:
    def __init__(self, located: Located) -> None:
        self.loc = located

    def fail(self, path: PathKey, message: str, *, key: bool = False) -> ConfigError:
        return ConfigError(f"{self.loc.mark(path, key=key)}: {message}")

    def value(self, path: PathKey, text: str | None, check: Check, what: str) -> None:
        if text is None:
            return
        problem = check(text)
        if problem is not None:
            raise self.fail(path, f"{what} '{excerpt(text)}' {problem}")

    def each(self, path: PathKey, items: Iterable[str], check: Check, what: str) -> None:
        for i, item in enumerate(items):
            self.value((*path, i), item, check, what)


def check_values(located: Located, spec: MatrixSpec) -> None:
    """Raise ConfigError at the first value that cannot be what it is used as."""
    c = _Checker(located)
    for name, img in spec.images.items():
        here = ("images", name)
        c.value((*here, "ref"), img.ref, values.image_ref, f"images.{name}.ref")
        for ship, version in img.ships.items():
            c.value((*here, "ships", ship), ship, values.label, "ships key")
            c.value((*here, "ships", ship), version, _line(200), f"ships.{ship}")
        c.value((*here, "released"), img.released, values.year_month, "released")
        c.value((*here, "description"), img.description, _text(10_000), "description")
    for name, gpu in spec.gpus.items():
        here = ("gpus", name)
        cc = gpu.compute_capability
        c.value((*here, "compute_capability"), cc, values.ascii_digits, "compute_capability")
        c.each((*here, "smi_names"), gpu.smi_names, _line(200), "nvidia-smi name")
    for name, lib in spec.libraries.items():
        _library(c, ("libraries", name), lib)
    cells = 0
    for name, repro in spec.repros.items():
        cells += _repro(c, ("repros", name), repro, spec)
        if cells > MAX_CELLS:
            raise c.fail(
                ("repros", name),
                f"the matrix expands to more than {MAX_CELLS:,} cells by repro "
                f"'{excerpt(name)}'; narrow its GPUs, bases or revisions down",
                key=True,
            )


def _line(limit: int) -> Check:
    return lambda text: values.one_line(text, limit)


def _metric_name(text: str) -> str | None:
    """`key_metric: ""` was taken as no key metric in silence, `" "` as a metric '' the
    report then warned of: no metric is named so."""
    if not text.strip() or text != text.strip():
        return (
            "must name a metric the repro reports, with no blanks around it "
            "(e.g. max_abs_err); or leave key_metric out"
        )
    return values.one_line(text, 200)


def _text(limit: int) -> Check:
    return lambda text: None if len(text) <= limit else f"is longer than {limit} characters"


def _library(c: _Checker, here: PathKey, lib: LibrarySpec) -> None:
    c.value((*here, "pypi"), lib.pypi, values.package_name, "pypi")
    c.value((*here, "git"), lib.git, values.git_url, "git")
    c.value((*here, "import"), lib.import_name, values.module_name, "import")
    c.each((*here, "requires"), lib.requires, values.requirement, "requirement")
    if len(lib.versions) > MAX_REVISIONS:
        raise c.fail(
            (*here, "versions", MAX_REVISIONS),
            f"more than {MAX_REVISIONS:,} revisions on one axis; keep the ones worth a cell "
            "(bisect finds the commits between them)",
        )
    for i, raw in enumerate(lib.versions):
        vhere = (*here, "versions", i)
        if isinstance(raw, str):
            pypi = lib.pypi is not None
            check = values.pypi_version if pypi else values.git_rev
            c.value(vhere, raw, check, "PyPI version" if pypi else "git revision")
            c.value(vhere, raw, _unnamed(lib.pypi is not None), "revision label")
            continue
        _revision(c, vhere, raw)


def _unnamed(pypi: bool) -> Check:
    """The label check of a revision that is its own label: one that is no label (git's
    `:/text`) says how to give it a name."""
    source = "pypi" if pypi else "git"

    def check(text: str) -> str | None:
        problem = values.label(text)
        if problem is None:
            return None
        return f"{problem}; name it: {{{source}: '{excerpt(text)}', label: NAME}}"

    return check


def _revision(c: _Checker, here: PathKey, raw: RevisionSpec) -> None:
    c.value((*here, "pypi"), raw.pypi, values.pypi_version, "PyPI version")
    c.value((*here, "git"), raw.git, values.git_rev, "git revision")
    rev = raw.label or raw.pypi or raw.git
    where = "label" if raw.label is not None else ("pypi" if raw.pypi is not None else "git")
    check = values.label if raw.label is not None else _unnamed(raw.pypi is not None)
    c.value((*here, where), rev, check, "revision label")
    c.each((*here, "requires"), raw.requires, values.requirement, "requirement")
    c.value((*here, "note"), raw.note, _text(1000), "note")


def _param_numbers(c: _Checker, path: PathKey, value: object) -> None:
    """Refuse, at its line, a number in params that YAML cannot hold as written: `1e400`
    reached the repro as the text "1e400" and `1e-400` as 0.0 (a tolerance of nothing),
    both in silence (params have no schema to say so)."""
    if isinstance(value, dict | list):
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            _param_numbers(c, (*path, key), item)
        return
    written = c.loc.mark(path).text
    if isinstance(value, str) and written and written == value:
        raise c.fail(
            path,
            f"the number {excerpt(written)} is beyond the largest a float holds (about "
            "1.8e+308) and would reach the repro as text; write a smaller one, or quote it",
        )
    mantissa = written.lower().partition("e")[0]
    if isinstance(value, float) and value == 0 and any(d in mantissa for d in "123456789"):
        raise c.fail(
            path,
            f"the number {excerpt(written)} is below the smallest a float holds (about "
            "5e-324) and would reach the repro as 0; write 0, a larger one, or quote it",
        )


def _not_json(path: PathKey, value: object) -> PathKey | None:
    """Where in params the first value JSON cannot carry lies (a date, bytes), to be said
    at its own line rather than at `params:`."""
    if isinstance(value, dict | list):
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            if (found := _not_json((*path, key), item)) is not None:
                return found
        return None
    return None if value is None or isinstance(value, str | int | float) else path


def _repro(c: _Checker, here: PathKey, repro: ReproSpec, spec: MatrixSpec) -> int:
    c.value((*here, "issue"), repro.issue, values.web_url, "issue")
    c.value((*here, "description"), repro.description, _text(10_000), "description")
    c.value((*here, "key_metric"), repro.key_metric, _metric_name, "key_metric")
    c.each((*here, "needs"), repro.needs or (), values.module_name, "module")
    for key in repro.params:
        if (problem := values.param_name(key)) is not None:
            shown = f"'{excerpt(key)}'" if key.strip() else repr(key[:20])  # '' stays ''
            raise c.fail((*here, "params", key), f"param name {shown} {problem}", key=True)
    _param_numbers(c, (*here, "params"), repro.params)
    try:
        size = len(json.dumps(repro.params, allow_nan=False))
    except (ValueError, TypeError, RecursionError) as exc:
        why = (
            "params hold .nan or .inf, which JSON (the repro's --params) cannot carry; "
            "write null or a string such as 'inf'"
            if "Out of range float" in str(exc)
            else "params must be plain JSON values (text, numbers, lists, mappings); quote dates"
        )
        at = _not_json((*here, "params"), repro.params) or (*here, "params")  # .nan: params
        raise c.fail(at, why) from None
    if size > MAX_PARAMS_JSON:
        raise c.fail(
            (*here, "params"),
            f"params are {size:,} characters as JSON; at most {MAX_PARAMS_JSON:,} (they go "
            "on the repro's command line): read large inputs from a file instead",
        )
    _one_per_import(c, here, repro, spec)
    cells = max(1, len(repro.gpus)) * max(1, len(repro.bases))
    for lib, selection in repro.libraries.items():
        declared = spec.libraries.get(lib)
        count = len(declared.versions) if declared is not None and selection == "all" else 0
        cells *= max(1, count if selection == "all" else len(selection))
    return cells


def _one_per_import(c: _Checker, here: PathKey, repro: ReproSpec, spec: MatrixSpec) -> None:
    """Refuse a repro over two libraries of one import name (a package and its nightly):
    each cell would install both into one environment, the second over the first, and
    record two pins of which the repro imports one. So with two of one PyPI package
    (`Flashinfer_Python` is `flashinfer-python` to pip) imported by other names: pip,
    asked for two versions of it at once, failed every cell that pinned two, each an
    `error` record."""
    # (what is shared, how it is said) → the first library of the repro that has it
    first_of: dict[tuple[str, str], str] = {}
    for lib in repro.libraries:
        declared = spec.libraries.get(lib)
        if declared is None:
            continue  # undeclared: the loader says so
        shared = [("imported as", declared.import_name)]
        if declared.pypi:
            shared.append(("the PyPI package", canonicalize_name(declared.pypi)))
        for how, name in shared:
            first = first_of.setdefault((how, name), lib)
            if first != lib:
                raise c.fail(
                    (*here, "libraries", lib),
                    f"libraries '{excerpt(first)}' and '{excerpt(lib)}' are both {how} "
                    f"'{excerpt(name)}': a cell cannot pin both (one install takes the "
                    "other's place); give each a repro of its own",
                    key=True,
                )
