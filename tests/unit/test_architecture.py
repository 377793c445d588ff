"""The shape of the package, enforced: imports flow one way, one seam per outside system,
no module too big to read. Read from the source with `ast`, so lazy imports count too."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from repromatrix.executors.workers import WORKER_FILES

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "repromatrix"

#: The data flow, bottom to top: matrix → cells → executors → store → ranges/bisect →
#: report, with the vocabulary (model, options, errors) at the bottom and the CLI on top.
#: A module may import modules of its own layer or below, never above. Packages are placed
#: as a whole ("config", "executors", "report"). A new module must be placed here.
LAYERS: dict[str, int] = {
    "__init__": 0,
    "errors": 0,
    "options": 0,
    "locks": 0,
    "safetext": 0,
    "timestamps": 0,
    "redact": 0,
    "streams": 0,
    "bounds": 0,
    "jsonkeys": 0,  # the store refuses lines, the judge result JSONs, giving a key twice
    "fingerprints": 0,
    "splits": 0,  # what a position's verdicts disagree between, each side steady
    "harness_pins": 0,  # one reader of `provenance.harness.pins.<library>`
    "schema_number": 0,  # the `schema: 1` both matrix.yaml and a result JSON carry
    "model": 0,
    "records": 1,
    "repro_result": 1,
    "proctable": 0,
    "proc": 1,
    "orphans": 1,  # daemons our children leave, adopted and ended (beside proc)
    "watchdog": 1,
    "logs": 1,
    "outputs": 1,
    "own_outputs": 1,
    "caches": 1,
    "readme": 1,
    "parsed_cache": 1,
    "forking": 1,
    "process_end": 1,  # the command's own process ended once its work is written
    "not_run": 6,
    "config": 2,
    "host": 2,
    "gitrepo": 2,
    "mirrors": 2,
    "gitpaths": 1,
    "gitlog": 1,
    "pip_log": 1,
    "pip_settings": 2,
    "pypi_index": 2,
    "kept_releases": 1,
    "pep440": 0,
    "release_files": 2,
    "release_digest": 2,
    "made_from_files": 2,
    "release_listing": 2,
    "pypi_pins": 2,
    "expand": 3,
    "envs": 3,
    "env_use": 3,
    "git_pins": 3,
    "executors": 4,
    "store": 5,
    "fastdecode": 5,
    "jsonl": 5,
    "loadparts": 5,
    "storedlines": 5,
    "store_repair": 5,
    "store_links": 5,
    "store_witness": 5,
    "record_copies": 5,
    "load_problems": 5,
    "planning": 6,
    "scheduler": 6,
    "slot_growth": 6,
    "slot_drops": 6,
    "env_turns": 6,
    "code_watch": 6,
    "run_summary": 6,
    "flights": 6,
    "progress": 6,
    "interrupts": 1,  # Ctrl-C held off while a run cleans up
    "session": 7,
    "cells_interpreter": 6,
    "commit_aliases": 6,
    "ordering": 8,
    "revision_order": 8,
    "revisions": 8,
    "revision_catalog": 8,
    "ranges": 8,
    "points": 8,
    "unplaced": 8,
    "dag": 8,
    "bisect_terms": 8,
    "flaky": 8,
    "bisect": 8,
    "bisect_state": 8,
    "candidates": 8,
    "candidate_releases": 8,
    "grid": 9,
    "entries": 8,
    "bisected_axes": 8,
    "winner": 8,
    "bisect_plan": 9,
    "bisect_calibration": 9,
    "bisect_session": 9,
    "bisect_aliases": 9,
    "bisect_machines": 9,
    "bisect_axis": 9,
    "bisect_evidence": 9,
    "bisect_forks": 9,
    "upstream_test": 9,
    "upstream_test_file": 9,
    "report": 10,
    "arguments": 11,
    "commands": 11,
    "report_command": 11,
    "stderr_lines": 11,
    "fail_on": 11,
    "cli": 11,
    "cli_bisect": 11,
    "cli_options": 11,
    "flag_types": 11,
    "path_flags": 11,
    "__main__": 11,
}

MAX_LINES = 450

#: The front door beside the package, which nox imports from the project root: the limit
#: covered the package alone, and noxfile.py had grown to 600 lines.
ROOT = PACKAGE.parents[1]
FRONT_DOOR = [ROOT / "noxfile.py", *sorted((ROOT / "noxsupport").glob("*.py"))]


def modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__" and len(parts) > 1:
            parts = parts[:-1]
        yield ".".join(parts), path


def _from_module(name: str, path: Path, node: ast.ImportFrom) -> str | None:
    """The repromatrix module `from X import ...` in module `name` reads from ("" for the
    package itself; None: not ours)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    if node.level:
        base = package.split(".")[: len(package.split(".")) - node.level + 1]
        return ".".join([*base, *([node.module] if node.module else [])]).strip(".")
    if node.module and node.module.startswith("repromatrix"):
        return node.module.removeprefix("repromatrix").lstrip(".")
    return None


def imports_of(name: str, path: Path) -> set[str]:
    """Every repromatrix module `name` imports (top level, lazy or under TYPE_CHECKING)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("repromatrix."):
                    found.add(alias.name.removeprefix("repromatrix."))
        elif isinstance(node, ast.ImportFrom):
            mod = _from_module(name, path, node)
            if mod is None:
                continue
            if not mod:  # `from repromatrix import x`: x is a module or a name in __init__
                for alias in node.names:
                    found.add(alias.name if (PACKAGE / f"{alias.name}.py").exists() else "__init__")
                continue
            for alias in node.names:
                # `from repromatrix.config import schema` depends on the submodule only.
                sub = f"{mod}.{alias.name}"
                is_module = any(sub == m for m, _ in modules())
                found.add(sub if is_module else mod)
    found.discard(name)
    return found


def layer(module: str) -> int:
    top = module.split(".", maxsplit=1)[0]
    assert top in LAYERS, f"place module '{module}' in LAYERS (tests/unit/test_architecture.py)"
    return LAYERS[top]


def graph() -> dict[str, set[str]]:
    return {name: imports_of(name, path) for name, path in modules()}


def test_no_module_imports_one_above_it_in_the_data_flow() -> None:
    wrong = [
        f"{name} (layer {layer(name)}) imports {dep} (layer {layer(dep)})"
        for name, deps in graph().items()
        for dep in sorted(deps)
        if layer(dep) > layer(name)
    ]
    assert wrong == []


def test_no_import_cycles() -> None:
    g = graph()
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for dep in sorted(g.get(node, ())):
            if state.get(dep) == 1:
                cycles.append([*stack[stack.index(dep) :], dep])
            elif dep not in state:
                visit(dep, [*stack, dep])
        state[node] = 2

    for node in sorted(g):
        if node not in state:
            visit(node, [node])
    assert cycles == []


def test_the_cycle_detector_sees_a_cycle(tmp_path: Path) -> None:
    """The checks above must be able to fail: two modules importing each other."""
    a, b = tmp_path / "a.py", tmp_path / "b.py"
    a.write_text("from repromatrix.b import x\n")
    b.write_text("import repromatrix.a\n")
    assert imports_of("a", a) == {"b"}
    assert imports_of("b", b) == {"a"}


#: (module, owner, name): a private name one module takes from another, known and left.
#: None now; an entry here is a debt to pay by giving the name a public spelling.
ALLOWED_PRIVATE: set[tuple[str, str, str]] = set()


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _siblings(path: Path) -> dict[str, str]:
    """What a worker file imports by its bare name when run from worker_main.py's folder
    (its `else:` fallback), as the module it is; nothing for any other file."""
    files = {f.resolve() for f in WORKER_FILES}
    if path.resolve() not in files:
        return {}
    return {f.stem: f"executors.{f.stem}" for f in files}


def _chain(node: ast.expr) -> list[str] | None:
    """`a.b.c` as ["a", "b", "c"] (None: not a dotted name)."""
    names: list[str] = []
    while isinstance(node, ast.Attribute):
        names.append(node.attr)
        node = node.value
    return [node.id, *reversed(names)] if isinstance(node, ast.Name) else None


def _from_ours(
    name: str, path: Path, siblings: dict[str, str]
) -> Iterator[tuple[str, ast.ImportFrom]]:
    """Each `from X import ...` of a repromatrix module (absolute, relative, or a worker
    sibling's bare name), with X's module name ("" for the package itself)."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            mod = _from_module(name, path, node)
            if mod is None and not node.level and node.module in siblings:
                mod = siblings[node.module]
            if mod is not None:
                yield mod, node


def _modules_bound(name: str, path: Path, siblings: dict[str, str]) -> dict[str, str]:
    """Each name in the module bound to a repromatrix module → that module."""
    known = {m for m, _ in modules()}
    bound = {
        alias.asname or alias.name: f"{mod}.{alias.name}".strip(".")
        for mod, node in _from_ours(name, path, siblings)
        for alias in node.names
        if f"{mod}.{alias.name}".strip(".") in known
    }
    for node in ast.walk(ast.parse(path.read_text())):
        for alias in node.names if isinstance(node, ast.Import) else ():
            if alias.name in siblings:
                bound[alias.asname or alias.name] = siblings[alias.name]
            elif alias.name.split(".")[0] == "repromatrix":
                # Without `as`, the chain is read from the top: `repromatrix.a.b._x`.
                module = alias.name.removeprefix("repromatrix").lstrip(".")
                bound[alias.asname or "repromatrix"] = module if alias.asname else ""
    return bound


def private_names_taken(
    name: str, path: Path, siblings: dict[str, str]
) -> set[tuple[str, str, int]]:
    """(owner, private name, line) of each private name module `name` takes from another
    repromatrix module: `from owner import _x` (absolute, relative, or a worker sibling's
    bare name) and `owner._x` through a name bound to that module."""
    known = {m for m, _ in modules()}
    taken = {
        (mod or "__init__", alias.name, node.lineno)
        for mod, node in _from_ours(name, path, siblings)
        for alias in node.names
        if _private(alias.name)
    }
    bound = _modules_bound(name, path, siblings)
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Attribute) and _private(node.attr):
            chain = _chain(node.value)
            if chain and chain[0] in bound:
                owner = ".".join(n for n in (bound[chain[0]], *chain[1:]) if n) or "__init__"
                if owner in known:
                    taken.add((owner, node.attr, node.lineno))
    return {t for t in taken if t[0] != name}


def test_no_module_takes_a_private_name_from_another() -> None:
    """A private name (leading underscore) taken from another module hides a dependency:
    its owner may change it freely. Shared, it gets a public spelling; used by one other
    module only, it moves there."""
    taken = sorted(
        f"{name}:{line} takes {owner}.{attr}"
        for name, path in modules()
        for owner, attr, line in private_names_taken(name, path, _siblings(path))
        if (name, owner, attr) not in ALLOWED_PRIVATE
    )
    assert taken == []


def test_the_private_name_check_sees_each_form(tmp_path: Path) -> None:
    """The check above must be able to fail: each way of taking a private name, planted."""
    planted = tmp_path / "planted.py"
    planted.write_text(
        "import ray._private.worker\n"  # not ours
        "import repromatrix.executors.ray.node as ray_node\n"
        "import worker_scopes as scoping\n"
        "from repromatrix import dag\n"
        "from repromatrix.candidates import Axis, _cut\n"
        "from repromatrix.report import __doc__\n"  # a dunder is no private name
        "from worker_code import _w\n"
        "from . import winner\n"
        "from ._own import x\n"
        "import repromatrix.executors.ray.node\n"
        "def f(self):\n"
        "    self._x, _cut, Axis._y\n"
        "    ray_node._docker, dag._d, winner._v, scoping._s\n"
        "    repromatrix.executors.ray.node._node\n"
        "    from repromatrix.bisect_forks import _z\n"  # lazy, and its own: not counted
    )
    siblings = {"worker_scopes": "executors.worker_scopes", "worker_code": "executors.worker_code"}
    assert sorted(private_names_taken("bisect_forks", planted, siblings)) == [
        ("candidates", "_cut", 5),
        ("dag", "_d", 13),
        ("executors.ray.node", "_docker", 13),
        ("executors.ray.node", "_node", 14),
        ("executors.worker_code", "_w", 7),
        ("executors.worker_scopes", "_s", 13),
        ("winner", "_v", 13),
    ]
    assert private_names_taken("bisect_forks", planted, {}) == {
        t for t in private_names_taken("bisect_forks", planted, siblings) if "worker" not in t[0]
    }


def _calls_with_first_arg(tree: ast.AST, word: str) -> Iterator[int]:
    """Lines of list/tuple literals whose first element is the string `word` (an argv)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.List | ast.Tuple) and node.elts:
            first = node.elts[0]
            if isinstance(first, ast.Constant) and first.value == word:
                yield node.lineno


def test_only_the_git_module_runs_git() -> None:
    offenders = [
        f"{name}:{line}"
        for name, path in modules()
        if name != "gitrepo"
        for line in _calls_with_first_arg(ast.parse(path.read_text()), "git")
    ]
    assert offenders == []


def _imported_top_levels(path: Path) -> set[str]:
    tops: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            tops.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            tops.add(node.module.split(".")[0])
    return tops


@pytest.mark.parametrize(
    ("library", "owner"),
    [
        ("subprocess", "proc"),
        ("docker", "executors.docker"),
        ("requests", "executors.docker"),
        ("ray", "executors.ray"),
    ],
)
def test_one_seam_per_outside_system(library: str, owner: str) -> None:
    offenders = [
        name
        for name, path in modules()
        if not (name == owner or name.startswith(owner + "."))
        and library in _imported_top_levels(path)
    ]
    assert offenders == []


def test_no_module_over_450_lines() -> None:
    front_door = [(str(path.relative_to(ROOT)), path) for path in FRONT_DOOR]
    long = {
        name: n
        for name, path in [*modules(), *front_door]
        if (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}


def test_the_noxfile_and_its_helpers_never_import_repromatrix() -> None:
    """nox imports noxfile.py and noxsupport/ before a session installs repromatrix into
    its venv (and nox's own interpreter need not have it)."""
    importing = [p.name for p in FRONT_DOOR if "repromatrix" in _imported_top_levels(p)]
    assert importing == []


def test_the_readme_layer_table_names_every_module() -> None:
    """README's "Architecture" table is the map a reader takes in: it had left out five
    modules (pip_log.py, pypi_pins.py, report/bisect_ends.py, bisect_releases.py,
    forked.py), so a reader looking for them there found nothing."""
    readme = (PACKAGE.parents[1] / "README.md").read_text()
    table = readme.split("Layers, bottom to top", 1)[1].split("\n\n", 2)[1]
    rows = [row for row in table.splitlines() if row.startswith("| ")]
    missing = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).parts
        if parts[-1] in ("__init__.py", "__main__.py"):
            continue
        top = f"`{parts[0]}`" if len(parts) == 1 else f"`{parts[0]}/"
        row = next((r for r in rows if top in r), "")
        if (
            not all(
                f"`{p}`" in row or f"`{p}/`" in row or f"`{parts[0]}/{p}`" in row for p in parts[1:]
            )
            or not row
        ):
            missing.append("/".join(parts))
    assert missing == [], f"name these in README.md's layer table: {missing}"
