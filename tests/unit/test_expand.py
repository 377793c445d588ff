"""Expansion (pure): product per repro minus excludes plus includes; deterministic keys."""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import pytest

from repromatrix.cli import main
from repromatrix.config import load_matrix
from repromatrix.expand import expand

MATRIX = """\
schema: 1
images:
  ngc-24.12: {ref: "nvcr.io/nvidia/pytorch:24.12-py3", released: "2024-12"}
gpus:
  L4: {compute_capability: "8.9", smi_names: ["NVIDIA L4"]}
  H100: {compute_capability: "9.0", smi_names: ["NVIDIA H100 80GB HBM3"]}
libraries:
  fi:
    pypi: flashinfer-python
    import: flashinfer
    versions: ["0.2.2", "0.2.3", "0.2.4"]
  fla:
    git: https://example.invalid/fla.git
    import: fla
    install: pythonpath
    versions: [aaaa1111, bbbb2222]
repros:
  r1:
    script: repros/r1.py
    gpus: [L4, H100]
    libraries: {fi: ["0.2.3", "0.2.4"]}
    params: {batch: 3}
  r2:
    script: repros/r2.py
    gpus: [cpu, H100]
    bases: [host, ngc-24.12]
    libraries: {fla: all}
exclude:
  - {repro: r2, gpu: cpu, base: ngc-24.12}
  - {repro: r1, gpu: L4, libraries: {fi: "0.2.4"}}
include:
  - {repro: r1, gpu: L4, libraries: {fi: "0.2.2"}}
  - {repro: r1, gpu: H100, libraries: {fi: "0.2.3"}}
"""


@pytest.fixture
def matrix_path(tmp_path: Path) -> Path:
    (tmp_path / "repros").mkdir()
    (tmp_path / "repros" / "r1.py").write_text("print(1)\n")
    (tmp_path / "repros" / "r2.py").write_text("print(2)\n")
    (tmp_path / "repros" / "_helper.py").write_text("X = 1\n")
    path = tmp_path / "matrix.yaml"
    path.write_text(MATRIX)
    return path


def ids(path: Path) -> list[str]:
    return [c.id for c in expand(load_matrix(path))]


def test_product_minus_excludes_plus_includes(matrix_path: Path) -> None:
    assert ids(matrix_path) == [
        "r1[L4,host,fi=0.2.3]",
        "r1[H100,host,fi=0.2.3]",
        "r1[H100,host,fi=0.2.4]",
        "r2[cpu,host,fla=aaaa1111]",
        "r2[cpu,host,fla=bbbb2222]",
        "r2[H100,host,fla=aaaa1111]",
        "r2[H100,host,fla=bbbb2222]",
        "r2[H100,ngc-24.12,fla=aaaa1111]",
        "r2[H100,ngc-24.12,fla=bbbb2222]",
        # includes: one new cell, one already in the product (appears once)
        "r1[L4,host,fi=0.2.2]",
    ]


def test_keys_are_stable_and_unique(matrix_path: Path) -> None:
    first = [c.key for c in expand(load_matrix(matrix_path))]
    second = [c.key for c in expand(load_matrix(matrix_path))]
    assert first == second
    assert len(set(first)) == len(first)


def _keys(path: Path) -> dict[str, str]:
    return {c.id: c.key for c in expand(load_matrix(path))}


def test_editing_a_script_changes_only_its_keys(matrix_path: Path) -> None:
    before = _keys(matrix_path)
    (matrix_path.parent / "repros" / "r1.py").write_text("print(1)  # edited\n")
    after = _keys(matrix_path)
    for cell_id, key in before.items():
        if cell_id.startswith("r1["):
            assert after[cell_id] != key
        else:
            assert after[cell_id] == key


def test_editing_the_helper_changes_every_key(matrix_path: Path) -> None:
    before = _keys(matrix_path)
    (matrix_path.parent / "repros" / "_helper.py").write_text("X = 2\n")
    after = _keys(matrix_path)
    assert all(after[i] != k for i, k in before.items())


@pytest.mark.parametrize(
    ("old", "new", "changed"),
    [
        ("params: {batch: 3}", "params: {batch: 4}", "r1["),
        (
            '"nvcr.io/nvidia/pytorch:24.12-py3"',
            '"nvcr.io/nvidia/pytorch:24.12-py3b"',
            "r2[H100,ngc",
        ),
        ('compute_capability: "9.0"', 'compute_capability: "9.1"', "[H100"),
        ("git: https://example.invalid/fla.git", "git: https://example.invalid/fla2.git", "r2["),
    ],
)
def test_key_sensitivity(matrix_path: Path, old: str, new: str, changed: str) -> None:
    before = _keys(matrix_path)
    matrix_path.write_text(MATRIX.replace(old, new))
    after = _keys(matrix_path)
    for cell_id, key in before.items():
        assert (after[cell_id] != key) == (changed in cell_id), cell_id


def test_timeout_and_comments_do_not_change_keys(matrix_path: Path) -> None:
    before = _keys(matrix_path)
    matrix_path.write_text(
        "# a comment\n" + MATRIX.replace("params: {batch: 3}", "params: {batch: 3}\n    timeout: 5")
    )
    assert _keys(matrix_path) == before


def test_list_json_is_a_ci_job_matrix(
    matrix_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(matrix_path.parent)
    assert main(["--matrix", str(matrix_path), "list", "--json", "--gpu", "H100", "-k", "fla"]) == 0
    cells = json.loads(capsys.readouterr().out)
    assert [c["id"] for c in cells] == [
        "r2[H100,host,fla=aaaa1111]",
        "r2[H100,host,fla=bbbb2222]",
        "r2[H100,ngc-24.12,fla=aaaa1111]",
        "r2[H100,ngc-24.12,fla=bbbb2222]",
    ]
    assert cells[2]["image"] == "nvcr.io/nvidia/pytorch:24.12-py3"
    assert cells[0]["script"] == "repros/r2.py"
    assert set(cells[0]) == {
        "id",
        "key",
        "repro",
        "script",
        "gpu",
        "base",
        "image",
        "libraries",
        "params",
        "timeout_s",
    }


def test_library_filter(matrix_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--matrix", str(matrix_path), "list", "--json", "--library", "fi=0.2.4"]) == 0
    cells = json.loads(capsys.readouterr().out)
    assert [c["id"] for c in cells] == ["r1[H100,host,fi=0.2.4]"]


def test_library_filter_takes_every_spelling_of_a_revision_and_refuses_an_unpinned_one(
    matrix_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for rev in ("0.2.4", "0.2.4.0", "v0.2.4"):  # one release, as pip reads them
        assert main(["--matrix", str(matrix_path), "list", "--json", "--library", f"fi={rev}"]) == 0
        assert [c["id"] for c in json.loads(capsys.readouterr().out)] == ["r1[H100,host,fi=0.2.4]"]
    assert main(["--matrix", str(matrix_path), "list", "--library", "fla=aaaa1111ffff"]) == 0
    assert "fla=aaaa1111" in capsys.readouterr().out  # a longer spelling of the commit
    # Not pinned by any cell: a typo or an undeclared release, never a run of nothing.
    assert main(["--matrix", str(matrix_path), "run", "--library", "fi=0.2.9"]) == 64
    err = capsys.readouterr().err
    assert "--library fi=0.2.9: no cell of matrix.yaml pins that revision; pinned: 0.2.3" in err
    # One error line (the fixture's include of a cell the product has is warned of).
    assert [line for line in err.splitlines() if "warning" not in line] == [err.splitlines()[-1]]


def test_unknown_filter_name_is_a_usage_error(
    matrix_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--matrix", str(matrix_path), "list", "--gpu", "H10"]) == 64
    err = capsys.readouterr().err
    assert "--gpu H10: not in matrix.yaml (known: " in err
    assert err.rstrip().endswith("; did you mean 'H100'?")
    assert err.count("\n") == 1


def test_real_matrix_expansion_counts() -> None:
    root = Path(__file__).resolve().parents[2]
    cells = expand(load_matrix(root / "matrix.yaml"))
    by_repro: dict[str, int] = {}
    for c in cells:
        by_repro[c.repro] = by_repro.get(c.repro, 0) + 1
    # trt: 3 bases x 5 GPU types minus the 2 excluded CPU cells of the images
    assert by_repro["trt_sdpa_scale"] == 13
    assert by_repro["flashinfer_mla_oob_nan"] == 4 * 5
    assert by_repro["fla_fused_chunk_scale"] == 3 * 4


def test_what_the_base_interpreter_must_import(tmp_path: Path) -> None:
    """GPU cells need torch from the base interpreter; a library their pins install is the
    environment's business; a repro may declare its own list."""
    text = MATRIX.replace(
        "  r2:\n", "  r3: {script: repros/r1.py, gpus: [H100], needs: [torch, fla]}\n  r2:\n"
    )
    path = tmp_path / "m.yaml"
    (tmp_path / "repros").mkdir(exist_ok=True)
    for name in ("r1", "r2"):
        (tmp_path / "repros" / f"{name}.py").write_text("")
    path.write_text(text)
    needs = {c.id: c.needs for c in expand(load_matrix(path))}
    assert needs["r1[H100,host,fi=0.2.4]"] == ("torch",)
    assert needs["r2[cpu,host,fla=aaaa1111]"] == ()
    # fla is pinned by r2's cells: their environment brings it, the interpreter need not.
    assert needs["r2[H100,host,fla=aaaa1111]"] == ("torch",)
    assert needs["r3[H100,host]"] == ("torch", "fla")


def test_missing_modules_asks_the_interpreter_itself() -> None:
    import sys

    from repromatrix.host import missing_modules

    assert missing_modules(sys.executable, ["json", "surely_not_here_xyz"]) == [
        "surely_not_here_xyz"
    ]
    assert missing_modules(sys.executable, []) == []


def test_the_digest_covers_the_modules_the_script_imports_beside_it(tmp_path: Path) -> None:
    """`import common` of the repro's folder shaped the result, but only `_*.py` helpers
    were in the key: an edited common.py left every stored result reused."""
    from repromatrix.config import script_digest

    (tmp_path / "repro.py").write_text(
        "import common\nfrom pkg.sub import f\nfrom nsh import conf\nimport os\n"
    )
    (tmp_path / "nsh").mkdir()  # a namespace package: no __init__.py
    (tmp_path / "nsh" / "conf.py").write_text("LIMIT = 1\n")
    (tmp_path / "common.py").write_text("import deeper\nFACTOR = 1.0\n")
    (tmp_path / "deeper.py").write_text("X = 1\n")
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "sub.py").write_text("def f(): return 1\n")
    (tmp_path / "other_repro.py").write_text("print('not imported')\n")
    script = tmp_path / "repro.py"
    before = script_digest(script)
    (tmp_path / "other_repro.py").write_text("print('edited, still not imported')\n")
    assert script_digest(script) == before  # a sibling repro is not this one's code
    _each_edit_changes_the_digest(
        script,
        ("common.py", "import deeper\nFACTOR = 10.0\n"),
        ("deeper.py", "X = 2\n"),  # imported through common.py
        ("pkg/sub.py", "def f(): return 2\n"),
        ("nsh/conf.py", "LIMIT = 3\n"),
    )


def _each_edit_changes_the_digest(script: Path, *edits: tuple[str, str]) -> None:
    """Each (path beside `script`, new text) in turn changes `script`'s digest."""
    from repromatrix.config import script_digest

    before = script_digest(script)
    for path, text in edits:
        (script.parent / path).write_text(text)
        after = script_digest(script)
        assert after != before, path
        before = after


def test_the_digest_covers_modules_imported_by_name_at_run_time(tmp_path: Path) -> None:
    """`importlib.import_module("tolerances")` (or `__import__`) of a module beside the
    script shaped the result, but the key read only `import` statements: an edited
    tolerances.py left the old results reused as if nothing had changed."""

    (tmp_path / "repro.py").write_text(
        "import importlib\n"
        "tol = importlib.import_module('tolerances')\n"
        "cfg = __import__('settings')\n"
        "from importlib import import_module\n"
        "sub = import_module('pkg.sub')\n"
    )
    (tmp_path / "tolerances.py").write_text("ATOL = 1e-3\n")
    (tmp_path / "settings.py").write_text("N = 1\n")
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "sub.py").write_text("def f(): return 1\n")
    script = tmp_path / "repro.py"
    _each_edit_changes_the_digest(
        script,
        ("tolerances.py", "ATOL = 1.0\n"),
        ("settings.py", "N = 2\n"),
        ("pkg/sub.py", "def f(): return 2\n"),
    )


def test_a_relative_name_imported_by_a_call_is_not_the_whole_folder(tmp_path: Path) -> None:
    """`importlib.import_module("..x")` (or `(".helpers", __package__)`) has an empty first
    part, and `folder / ""` is the script's folder: every Python file under it was read
    as the package imported, the other repros' keys folded into this one's and, at a
    repository's root, every file of its caches and venvs parsed (a 12 MB file beside it
    took validate 260 s and 7 GB). A relative name is skipped, as `from . import x` is."""
    from repromatrix.config import script_digest
    from repromatrix.config.digest import imported_siblings

    outside = tmp_path / "outside"  # a path given as a name: `folder / "/abs"` is /abs
    outside.mkdir()
    (outside / "x.py").write_text("X = 1\n")
    repros = tmp_path / "repros"
    repros.mkdir()
    (repros / "repro.py").write_text(
        "import importlib\nh = importlib.import_module('.helpers', __package__)\n"
        f"x = importlib.import_module('..x')\ny = __import__({str(outside)!r})\n"
    )
    (repros / "other_repro.py").write_text("print('not imported')\n")
    script = repros / "repro.py"
    assert imported_siblings(script) == []
    before = script_digest(script)
    (repros / "other_repro.py").write_text("print('edited, still not imported')\n")
    assert script_digest(script) == before


def test_k_given_twice_selects_cells_matching_either(
    matrix_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`-k a -k b` kept only the last one, silently, while --repro twice adds up."""
    monkeypatch.chdir(matrix_path.parent)
    argv = ["--matrix", str(matrix_path), "list", "--json", "--gpu", "H100"]
    assert main([*argv, "-k", "aaaa1111", "-k", "BBBB2222"]) == 0
    ids = [c["id"] for c in json.loads(capsys.readouterr().out)]
    assert any("aaaa1111" in i for i in ids)
    assert any("bbbb2222" in i for i in ids)
    assert main([*argv, "-k", "aaaa1111"]) == 0
    assert all("aaaa1111" in c["id"] for c in json.loads(capsys.readouterr().out))


def test_an_empty_k_is_refused_not_every_cell(
    matrix_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`-k "$UNSET"` selected the whole matrix, where an empty --repro or --gpu is refused."""
    monkeypatch.chdir(matrix_path.parent)
    assert main(["--matrix", str(matrix_path), "list", "-k", " "]) == 64
    assert "-k is empty" in capsys.readouterr().err


def test_include_and_exclude_entries_that_change_nothing_are_named(
    matrix_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An exclude whose fields never meet in the product (r1 has no cpu cells) dropped
    nothing and an include of a cell the product has added nothing, and validate, list and
    run said nothing of either: the cell the user meant to drop ran, silently."""
    monkeypatch.chdir(matrix_path.parent)
    text = MATRIX.replace(
        "exclude:\n", "exclude:\n  - {repro: r1, gpu: cpu}\n  - {gpu: L4, base: ngc-24.12}\n"
    )
    matrix_path.write_text(text)
    assert main(["--matrix", str(matrix_path), "validate"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "repromatrix: warning: matrix.yaml:29:5: this exclude matches no cell of the "
        "product; fix or remove it",
        "repromatrix: warning: matrix.yaml:30:5: this exclude matches no cell of the "
        "product; fix or remove it",
        "repromatrix: warning: matrix.yaml:35:5: this include names r1[H100,host,fi=0.2.3], "
        "which the matrix has already; remove it",
    ]
    assert main(["--matrix", str(matrix_path), "list", "--json"]) == 0
    assert len(capsys.readouterr().err.splitlines()) == 3
    # Entries that drop or add a cell are not named.
    matrix_path.write_text(
        MATRIX.replace('  - {repro: r1, gpu: H100, libraries: {fi: "0.2.3"}}\n', "")
    )
    assert main(["--matrix", str(matrix_path), "validate"]) == 0
    assert "warning" not in capsys.readouterr().err


def test_list_of_a_selection_that_matches_nothing_is_a_usage_error(
    matrix_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`list --json -k typo` printed `[]` and exited 0: a CI job matrix of nothing that
    passed, where `run` with the same flags is refused (exit 64)."""
    monkeypatch.chdir(matrix_path.parent)
    for command in (["list", "--json"], ["list"], ["run"]):
        assert main(["--matrix", str(matrix_path), *command, "--gpu", "L4", "-k", "fla"]) == 64
        out, err = capsys.readouterr()
        assert out == ""
        assert "--gpu L4 -k fla selects none of the 10 cells of" in err


def test_the_digest_covers_data_files_and_runpy_scripts_beside_the_script(tmp_path: Path) -> None:
    """A reference the repro read beside it (`data.txt`, `golden/case.json`), a script it
    ran with runpy (`runpy.run_path(.../setup_case.py)`, `runpy.run_module('shared')`) and
    a file those read shaped the result, but were not in the key: after editing one, `run`
    reused the stale records as if nothing had changed."""
    from repromatrix.config import script_digest

    (tmp_path / "repro.py").write_text(
        "import os, runpy\n"
        "from pathlib import Path\n"
        "HERE = os.path.dirname(__file__)\n"
        "LIMIT = open(os.path.join(HERE, 'data.txt')).read()\n"
        "GOLDEN = Path(__file__).parent / 'golden' / 'case.json'\n"
        "runpy.run_path(os.path.join(HERE, 'setup_case.py'))\n"
        "runpy.run_module('shared')\n"
        "NOT_A_FILE = 'passed'\n"
    )
    (tmp_path / "data.txt").write_text("0.1\n")
    (tmp_path / "golden").mkdir()
    (tmp_path / "golden" / "case.json").write_text("{}\n")
    (tmp_path / "setup_case.py").write_text("import os\nTOL = open('tolerance.cfg').read()\n")
    (tmp_path / "tolerance.cfg").write_text("1e-3\n")
    (tmp_path / "shared.py").write_text("X = 1\n")
    (tmp_path / "unrelated.txt").write_text("a\n")
    script = tmp_path / "repro.py"
    before = script_digest(script)
    (tmp_path / "unrelated.txt").write_text("b\n")
    (tmp_path / "passed").mkdir()  # a folder a word of the script happens to name
    (tmp_path / "passed" / "x").write_text("x\n")
    assert script_digest(script) == before  # what the script does not name is not its input
    _each_edit_changes_the_digest(
        script,
        ("data.txt", "0.2\n"),
        ("golden/case.json", '{"a": 1}\n'),
        ("tolerance.cfg", "1e-2\n"),  # named by setup_case.py, not by the script
        ("setup_case.py", "import os\nTOL = 2\n"),
        ("shared.py", "X = 2\n"),
    )


def test_the_digest_covers_data_files_whose_names_are_built_at_run_time(tmp_path: Path) -> None:
    """A golden file picked by a param (`os.path.join(HERE, "golden", name)`,
    `HERE / "cases" / f"case_{n}.npz"`, `"ref_" + dtype + ".json"`, `"tol_%s.cfg" % dtype`,
    or a glob the repro spells) is named by no literal: after editing it, `run` reused the
    stale record."""
    from repromatrix.config import script_digest

    (tmp_path / "repro.py").write_text(
        "import glob, os\n"
        "from pathlib import Path\n"
        "HERE = os.path.dirname(os.path.abspath(__file__))\n"
        "def run(params):\n"
        "    a = open(os.path.join(HERE, 'golden', params['name'])).read()\n"
        "    b = (Path(__file__).parent / 'cases' / f\"case_{params['n']}.npz\").read_bytes()\n"
        "    c = open(os.path.join(HERE, 'ref_' + params['dtype'] + '.json')).read()\n"
        "    d = sorted(glob.glob(os.path.join(HERE, 'tables', '*.csv')))\n"
        "    e = open(os.path.join(HERE, 'tol_%s.cfg' % params['dtype'])).read()\n"
        "    f = open(os.path.join(HERE, 'shapes', '{}.txt'.format(params['n']))).read()\n"
        "    print(f\"value {a}\", f\"{params['major']}.{params['minor']}\")\n"
        "    return {}\n"
    )
    for folder in ("golden", "cases", "tables", "results", "shapes"):
        (tmp_path / folder).mkdir()
    (tmp_path / "golden" / "fp16.json").write_text("1\n")
    (tmp_path / "cases" / "case_3.npz").write_bytes(b"\0")
    (tmp_path / "ref_bf16.json").write_text("1\n")
    (tmp_path / "tables" / "t.csv").write_text("a\n")
    (tmp_path / "other_repro.py").write_text("X = 1\n")
    (tmp_path / "results" / "run.jsonl").write_text("{}\n")
    (tmp_path / "tol_fp16.cfg").write_text("1e-3\n")
    (tmp_path / "shapes" / "3.txt").write_text("4x4\n")
    script = tmp_path / "repro.py"
    before = script_digest(script)
    (tmp_path / "other_repro.py").write_text("X = 2\n")  # `f"{major}.{minor}"` names no file
    (tmp_path / "results" / "run.jsonl").write_text("{}\n{}\n")
    (tmp_path / "cases" / "notes.txt").write_text("not a case\n")
    assert script_digest(script) == before
    _each_edit_changes_the_digest(
        script,
        ("golden/fp16.json", "2\n"),
        ("golden/fp32.json", "1\n"),  # a new golden file is a new input too
        ("cases/case_3.npz", "\1"),
        ("ref_bf16.json", "2\n"),
        ("tables/t.csv", "b\n"),
        ("tol_fp16.cfg", "1e-2\n"),  # `"tol_%s.cfg" % dtype`
        ("shapes/3.txt", "8x8\n"),
    )


def test_a_data_file_named_by_a_name_computed_whole_is_warned_of(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`open(os.path.join(HERE, params["file"]))` names a file of the repro's folder by a
    name no literal spells: no digest can cover it, and an edited file reused the stale
    record without a word. validate (and list, run) now say where; a glob the script
    spells is how it names such files, and silences the warning."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "repros").mkdir()
    script = tmp_path / "repros" / "whole.py"
    body = (
        "import os\n"
        "from pathlib import Path\n"
        "HERE = os.path.dirname(os.path.abspath(__file__))\n"
        "def run(params):\n"
        "    a = open(os.path.join(HERE, params['file'])).read()\n"
        "    b = (Path(__file__).parent / params['other']).read_text()\n"
        "    c = open(os.path.join(HERE, 'golden', params['n'])).read()\n"
        "    d = open(os.path.join(params['out_dir'], 'x.json'), 'w')\n"
        "    return {}\n"
    )
    script.write_text(body)
    (tmp_path / "m.yaml").write_text(
        "schema: 1\nrepros:\n  whole: {script: repros/whole.py, gpus: [cpu]}\n"
    )
    assert main(["--matrix", "m.yaml", "validate"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert [line.split(": repro ")[0] for line in err] == [
        f"repromatrix: warning: {script}:5",
        f"repromatrix: warning: {script}:6",
    ]
    assert "opens a file of its folder by a name computed whole" in err[0]
    script.write_text(body + "DATA = 'golden/*.json'  # what run() reads\n")
    assert main(["--matrix", "m.yaml", "validate"]) == 0
    assert "warning" not in capsys.readouterr().err


def test_a_script_holding_a_long_sum_is_read_not_an_internal_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A sum of 900 terms (Python runs it) took the digest past the recursion limit:
    validate, list and run ended in 'internal error: RecursionError', exit 70. The files
    a long sum names are still the script's inputs."""
    from repromatrix.cli import main
    from repromatrix.config import script_digest

    names = " + ".join(["params['dtype']"] * 600)
    (tmp_path / "repro.py").write_text(
        "import os\nHERE = os.path.dirname(os.path.abspath(__file__))\n"
        f"TOTAL = 1{' + 1' * 900}\n"
        f"def run(params):\n    return open(os.path.join(HERE, 'golden/' + {names} + '.json'))\n"
    )
    (tmp_path / "golden").mkdir()
    (tmp_path / "golden" / "fp16.json").write_text("1\n")
    matrix = tmp_path / "m.yaml"
    matrix.write_text("schema: 1\nrepros:\n  r: {script: repro.py, gpus: [cpu]}\n")
    assert main(["--matrix", str(matrix), "validate"]) == 0, capsys.readouterr().err
    script = tmp_path / "repro.py"
    before = script_digest(script)
    (tmp_path / "other.json").write_text("not named\n")
    assert script_digest(script) == before
    _each_edit_changes_the_digest(script, ("golden/fp16.json", "2\n"))
    # Nested past what Python's own parser takes (MemoryError, RecursionError there): the
    # repro fails when run, as one with a syntax error does; validate still loads it.
    (tmp_path / "repro.py").write_text("x = " + "-" * 100_000 + "1\ny = 1" + " + 1" * 50_000)
    assert main(["--matrix", str(matrix), "validate"]) == 0, capsys.readouterr().err


def test_a_long_sum_is_read_in_time_linear_in_its_length(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`validate` took 7 s on a script with a 2,900-term sum: the digest took every `+`
    node's operands anew, each a walk of the chain below it (and matched each one's text,
    as long as the chain, against its patterns), the square of the chain's length. Counted
    here, not timed: the fragments made and the text matched grow with the chain alone,
    and the patterns found are the same."""
    from repromatrix.cli import main
    from repromatrix.config import computed_paths

    terms = 2000
    chain = " + ".join("'p/'" if i % 2 else f"x{i}" for i in range(terms))
    (tmp_path / "repro.py").write_text(
        "import os\nHERE = os.path.dirname(os.path.abspath(__file__))\n"
        f"TOTAL = lambda: {' + '.join(f'x{i}' for i in range(terms))}\n"
        f"PATH = lambda: os.path.join(HERE, {chain})\n"
        "def run(params):\n    return open(os.path.join(HERE, 'golden/' + params['d'] + '.json'))\n"
    )
    (tmp_path / "golden").mkdir()
    (tmp_path / "golden" / "fp16.json").write_text("1\n")
    (tmp_path / "m.yaml").write_text("schema: 1\nrepros:\n  r: {script: repro.py, gpus: [cpu]}\n")
    fragments = matched = 0
    fragment, pattern = computed_paths._fragment, computed_paths._pattern

    def counted_fragment(*args: Any) -> str:
        nonlocal fragments
        fragments += 1
        return fragment(*args)

    def counted_pattern(parts: list[str]) -> str | None:
        nonlocal matched
        matched += sum(map(len, parts))
        return pattern(parts)

    monkeypatch.setattr(computed_paths, "_fragment", counted_fragment)
    monkeypatch.setattr(computed_paths, "_pattern", counted_pattern)
    assert main(["--matrix", str(tmp_path / "m.yaml"), "validate"]) == 0
    out = capsys.readouterr().out
    assert out.endswith(": ok: 1 repro, 0 GPU types, 0 images, 0 libraries, 1 cell\n")
    assert fragments < 20 * terms, fragments  # was about terms² / 2 for each sum
    assert matched < 500 * terms, matched
    found = computed_paths.path_patterns(ast.parse((tmp_path / "repro.py").read_text()))
    assert "golden/*.json" in found
    assert {"*p/*", "*p/*p/*"} <= found  # the sum's own prefixes, as before


def test_every_node_is_ast_walks_order_of_a_script_with_each_kind_of_child() -> None:
    """The digest's facts are read off one list of a script's nodes; `_string_sums` needs
    `ast.walk`'s breadth-first order (children after parents), and the lines and patterns
    must be those every walk found before."""
    import ast

    from repromatrix.config.computed_paths import every_node

    source = (
        "import os, json as j\nfrom pathlib import Path\nHERE = Path(__file__).parent\n"
        "def f(a, *b, k=1, **c):\n    x = [i for i in b if i]\n"
        "    return HERE / 'golden' / f'case_{a}.npz', 'ref_' + a + '.json', {k: x}\n"
        "class C:\n    @staticmethod\n    def g(): return lambda y: y or None\n"
        "with open(os.path.join(HERE, k)) as fh:\n    pass\n"
    )
    tree = ast.parse(source)
    walked = list(ast.walk(tree))
    listed = every_node(tree)
    assert len(listed) == len(walked) > 80
    assert all(a is b for a, b in zip(listed, walked, strict=True))
