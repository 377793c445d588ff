"""Malformed matrix files: each gives exactly one line naming file:line:column and the fix."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from repromatrix.cli import main
from repromatrix.config import load_matrix
from repromatrix.errors import ConfigError, ExitCode
from repromatrix.expand import expand

GOOD = """\
schema: 1
gpus:
  H100:
    compute_capability: "9.0"
    smi_names: ["NVIDIA H100 80GB HBM3"]
libraries:
  flashinfer:
    pypi: flashinfer-python
    import: flashinfer
    versions: ["0.2.3", "0.2.4"]
repros:
  mla:
    script: repros/mla.py
    gpus: [H100]
    libraries:
      flashinfer: all
"""


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "repros").mkdir(exist_ok=True)
    (tmp_path / "repros" / "mla.py").write_text("print('hi')\n")
    path = tmp_path / "matrix.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def error_of(tmp_path: Path, text: str) -> str:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_matrix(path)
    message = str(info.value)
    assert "\n" not in message
    return message.replace(str(path), "M")


CASES: list[tuple[str, str, str]] = [
    (
        "unknown top-level key",
        GOOD + "repos: {}\n",
        "M:17:1: unknown key 'repos' in (top level); did you mean 'repros'?",
    ),
    (
        "unknown key in a repro",
        GOOD.replace("    gpus: [H100]\n", "    gpus: [H100]\n    timout: 30\n"),
        "M:15:5: unknown key 'timout' in repros.mla; did you mean 'timeout'?",
    ),
    (
        "missing required key",
        GOOD.replace("    script: repros/mla.py\n", ""),
        "M:12:3: repros.mla is missing the required key 'script'; add it",
    ),
    (
        "wrong type",
        GOOD.replace("    gpus: [H100]\n", "    gpus: H100\n"),
        "M:14:11: repros.mla.gpus must be a list; write [H100] (or one '- item' per line)",
    ),
    (
        "text for a flag",
        GOOD.replace("    gpus: [H100]\n", '    gpus: [H100]\n    isolate: "yes"\n'),
        "M:15:14: repros.mla.isolate must be true or false, not 'yes'",
    ),
    (
        "a date for text",
        GOOD.replace("    gpus: [H100]\n", "    gpus: [H100]\n    description: 2024-01-01\n"),
        "M:15:18: repros.mla.description must be a string, but YAML read 2024-01-01 as a "
        "date; quote it",
    ),
    (
        "an empty value",
        GOOD.replace("    gpus: [H100]\n", "    gpus: [H100]\n    description:\n"),
        "M:15:17: repros.mla.description is empty (YAML reads that as null); write a value "
        "or remove it",
    ),
    (
        "a number beyond floats",
        GOOD.replace("    gpus: [H100]\n", "    gpus: [H100]\n    timeout: 1e400\n"),
        "M:15:14: repros.mla.timeout must be a number, not the text '1e400'; it is beyond "
        "the largest number (about 1.8e+308)",
    ),
    (
        "no repros",
        GOOD.split("repros:", maxsplit=1)[0] + "repros: {}\n",
        "M:11:9: repros must have at least one entry; add one",
    ),
    (
        "unquoted all-digit commit",
        GOOD.replace('versions: ["0.2.3", "0.2.4"]', 'versions: ["0.2.3", {pypi: 85992884}]'),
        "M:10:32: libraries.flashinfer.versions[1].pypi must be a string but YAML read "
        "85992884 as a number; quote it: '85992884'",
    ),
    (
        "undeclared GPU",
        GOOD.replace("    gpus: [H100]\n", "    gpus: [H10]\n"),
        "M:14:12: GPU type 'H10' is not declared; did you mean 'H100'?",
    ),
    (
        "undeclared library",
        GOOD.replace("      flashinfer: all\n", "      flashinfr: all\n"),
        "M:16:7: library 'flashinfr' is not declared; did you mean 'flashinfer'?",
    ),
    (
        "undeclared revision",
        GOOD.replace("      flashinfer: all\n", '      flashinfer: ["0.2.5"]\n'),
        "M:16:20: revision '0.2.5' is not declared for library 'flashinfer'; did you mean '0.2.4'?",
    ),
    (
        "duplicate repro name",
        GOOD + "  mla:\n    script: repros/mla.py\n    gpus: [H100]\n",
        "M:17:3: duplicate key 'mla' (first defined at line 12); remove or rename one of them",
    ),
    (
        "script does not exist",
        GOOD.replace("script: repros/mla.py", "script: repros/nope.py"),
        "M:13:13: script 'repros/nope.py' of repro 'mla' does not exist (looked in ROOT); "
        "create it or fix the path",
    ),
    (
        "invalid image reference",
        GOOD + "images:\n  ngc:\n    ref: nvcr.io/NVIDIA/PyTorch:24.12 py3\n",
        "M:19:10: images.ngc.ref 'nvcr.io/NVIDIA/PyTorch:24.12 py3' is not a valid Docker "
        "image reference; write it as [registry/]repository[:tag][@sha256:digest], lower-case",
    ),
    (
        "YAML syntax error",
        GOOD.replace("    gpus: [H100]\n", "    gpus: [H100\n"),
        "M:15:14: invalid YAML: expected ',' or ']', but got ':'; fix the syntax there",
    ),
    (
        "unsupported schema",
        GOOD.replace("schema: 1", "schema: 3"),
        "M:1:9: schema 3 is not supported by this repromatrix (it reads 1); set 'schema: 1' "
        "or upgrade repromatrix",
    ),
    (
        "duplicate revision",
        GOOD.replace('versions: ["0.2.3", "0.2.4"]', 'versions: ["0.2.3", "0.2.3"]'),
        "M:10:25: library 'flashinfer' lists revision '0.2.3' twice; remove one",
    ),
    (
        "library without a source",
        GOOD.replace("    pypi: flashinfer-python\n", ""),
        "M:7:3: library 'flashinfer' needs a source: add 'pypi:' or 'git:'",
    ),
    (
        "exclude matching everything",
        GOOD + "exclude:\n  - {}\n",
        "M:18:5: exclude[0] matches every cell; narrow it down",
    ),
    (
        "include missing a pinned library",
        GOOD + "include:\n  - {repro: mla, gpu: H100}\n",
        "M:18:5: include[0] must pin every library repro 'mla' spans; missing: flashinfer",
    ),
    (
        # It was taken on the repro's first base, silently: the cell meant for the
        # image ran on the host (or the other way round).
        "include that names no base of a repro spanning two",
        GOOD.replace("    gpus: [H100]\n", "    gpus: [H100]\n    bases: [host, ngc]\n").replace(
            "gpus:\n", 'images:\n  ngc: {ref: "nvcr.io/nvidia/pytorch:24.12-py3"}\ngpus:\n', 1
        )
        + 'include:\n  - {repro: mla, gpu: H100, libraries: {flashinfer: "0.2.3"}}\n',
        "M:21:5: include[0] must name 'base': repro 'mla' spans host, ngc",
    ),
    (
        "bad compute capability",
        GOOD.replace('compute_capability: "9.0"', 'compute_capability: "sm90"'),
        "M:4:25: gpus.H100.compute_capability 'sm90' must look like '9.0' (major.minor, quoted)",
    ),
    (
        "the matrix is a list",
        "- a\n- b\n",
        "M:1:1: the matrix must be a mapping with 'schema' and 'repros' (and 'gpus', "
        "'libraries' where repros use them); see README.md",
    ),
    (
        "a required key misspelt is named at the typo, not 'add it'",
        GOOD.replace("    script: repros/mla.py", "    scirpt: repros/mla.py"),
        "M:13:5: unknown key 'scirpt' in repros.mla; did you mean 'script'?",
    ),
    (
        "a release and a git revision of one label (one cell id: one of them was dropped)",
        GOOD.replace(
            "    pypi: flashinfer-python\n",
            "    pypi: flashinfer-python\n    git: https://example.com/fi\n",
        ).replace('versions: ["0.2.3", "0.2.4"]', 'versions: ["0.2.3", "0.2.4", {git: "0.2.3"}]'),
        "M:11:34: library 'flashinfer' lists revision '0.2.3' twice; remove one, or pin the "
        "git one by its commit (a label names its cells)",
    ),
    (
        "a revision YAML read as a number (leading zeros dropped) is quoted as written",
        GOOD.replace('versions: ["0.2.3", "0.2.4"]', "versions: [0.2.3, {git: 0012345}]"),
        "M:10:29: libraries.flashinfer.versions[1].git must be a string but YAML read 0012345 "
        "as the number 12345; quote it: '0012345'",
    ),
    (
        "schema given as true",
        GOOD.replace("schema: 1", "schema: true"),
        "M:1:9: schema must be the number 1, not 'true'; write 'schema: 1'",
    ),
    (
        "a timeout YAML read as a boolean",
        GOOD.replace("    gpus: [H100]\n", "    gpus: [H100]\n    timeout: true\n"),
        "M:15:14: repros.mla.timeout must be a number (YAML reads true as a boolean); "
        "write a whole or decimal number",
    ),
    (
        "a timeout of `on` (YAML 1.2: text, not true)",
        GOOD.replace("    gpus: [H100]\n", "    gpus: [H100]\n    timeout: on\n"),
        "M:15:14: repros.mla.timeout must be a number, not the text 'on'; write a whole or "
        "decimal number",
    ),
    (
        "a timeout in quotes",
        GOOD.replace("    gpus: [H100]\n", "    gpus: [H100]\n    timeout: '60'\n"),
        "M:15:14: repros.mla.timeout must be a number, not the text '60'; drop the quotes",
    ),
    (
        "params with .nan",
        GOOD.replace("    gpus: [H100]\n", "    gpus: [H100]\n    params: {x: .nan}\n"),
        "M:15:13: params hold .nan or .inf, which JSON (the repro's --params) cannot carry; "
        "write null or a string such as 'inf'",
    ),
    (
        "params given as a list",
        GOOD.replace("    gpus: [H100]\n", "    gpus: [H100]\n    params: []\n"),
        "M:15:13: repros.mla.params must be a mapping ({key: value, ...}); write one or remove it",
    ),
    (  # a required key was told "or remove the key": removing it is the next error
        "an empty GPU list",
        GOOD.replace("    gpus: [H100]\n", "    gpus: []\n"),
        "M:14:11: repros.mla.gpus must list at least one item; add one",
    ),
    (
        "an empty script",
        GOOD.replace("script: repros/mla.py", "script:"),
        "M:13:12: repros.mla.script is empty (YAML reads that as null); write a value",
    ),
    (
        "repros left empty",
        GOOD.replace("repros:\n  mla:", "repros:\nx:\n  mla:"),
        "M:11:8: repros must be a mapping ({key: value, ...}); write one",
    ),
    (
        "an empty list of versions",
        GOOD.replace('versions: ["0.2.3", "0.2.4"]', "versions: []"),
        "M:10:15: libraries.flashinfer.versions must list at least one item; add one",
    ),
    (  # it said "quote it", and quoted, the date is no month: the next error
        "a release date where a month goes",
        GOOD.replace(
            "gpus:\n  H100:", "images:\n  ngc: {ref: x, released: 2024-12-01}\ngpus:\n  H100:"
        ),
        "M:3:27: images.ngc.released must look like '2024-12' (YYYY-MM), but YAML read "
        "2024-12-01 as a date",
    ),
    (  # it read "must be true or false, not None"
        "an empty flag",
        GOOD.replace("    gpus: [H100]\n", "    gpus: [H100]\n    isolate: ~\n"),
        "M:15:14: repros.mla.isolate is empty (YAML reads that as null); write true or false",
    ),
    (  # it read "schema must be the number 1, not 'None'"
        "an empty schema",
        GOOD.replace("schema: 1", "schema:"),
        "M:1:8: schema is empty (YAML reads that as null); write 'schema: 1'",
    ),
    (
        "an empty key_metric",
        GOOD.replace("    gpus: [H100]\n", '    gpus: [H100]\n    key_metric: ""\n'),
        "M:15:17: key_metric '' must name a metric the repro reports, with no blanks around "
        "it (e.g. max_abs_err); or leave key_metric out",
    ),
    (
        "a key_metric of blanks",
        GOOD.replace("    gpus: [H100]\n", '    gpus: [H100]\n    key_metric: " "\n'),
        "M:15:17: key_metric '' must name a metric the repro reports, with no blanks around "
        "it (e.g. max_abs_err); or leave key_metric out",
    ),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_malformed_matrix_gives_one_precise_line(tmp_path: Path, text: str, expected: str) -> None:
    assert error_of(tmp_path, text) == expected.replace("ROOT", str(tmp_path.resolve()))


def test_good_matrix_loads(tmp_path: Path) -> None:
    matrix = load_matrix(write(tmp_path, GOOD))
    assert list(matrix.repros) == ["mla"]
    assert [r.rev for r in matrix.libraries["flashinfer"].revisions] == ["0.2.3", "0.2.4"]


def test_cli_exit_code_and_no_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, GOOD.replace("    gpus: [H100]\n", "    gpus: [H10]\n"))
    code = main(["--matrix", str(path), "validate"])
    err = capsys.readouterr().err
    assert code == int(ExitCode.CONFIG) == 2
    assert err.count("\n") == 1
    assert "Traceback" not in err
    assert err.startswith("repromatrix: error: ")
    assert ":14:12: GPU type 'H10' is not declared; did you mean 'H100'?" in err


def test_missing_matrix_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--matrix", str(tmp_path / "nope.yaml"), "validate"])
    assert code == 2
    assert "file not found; pass --matrix PATH or create it" in capsys.readouterr().err


def test_the_projects_matrix_is_valid() -> None:
    root = Path(__file__).resolve().parents[2]
    matrix = load_matrix(root / "matrix.yaml")
    assert set(matrix.repros) == {
        "trt_sdpa_scale",
        "flashinfer_decode_tensor_cores",
        "flashinfer_mla_sm89",
        "flashinfer_mla_oob_nan",
        "fla_fused_chunk_scale",
    }


def test_an_issue_link_must_be_http(tmp_path: Path) -> None:
    text = GOOD.replace("    gpus: [H100]\n", "    gpus: [H100]\n    issue: javascript:alert(1)\n")
    assert "must be an http(s) URL" in error_of(tmp_path, text)


def test_two_spellings_of_one_release_are_refused(tmp_path: Path) -> None:
    text = GOOD.replace('versions: ["0.2.3", "0.2.4"]', 'versions: ["0.2.3", "0.2.3.0"]')
    assert error_of(tmp_path, text) == (
        "M:10:25: library 'flashinfer' lists '0.2.3.0', the same release as '0.2.3'; remove one"
    )


@pytest.mark.parametrize(
    ("smi", "message"),
    [
        ('["NVIDIA H100 80GB HBM3", "nvidia h100 80gb hbm3 "]', "is already claimed by GPU type"),
        ('[""]', "an empty nvidia-smi name matches no GPU"),
    ],
)
def test_nvidia_smi_names_match_one_gpu_type(tmp_path: Path, smi: str, message: str) -> None:
    """One physical GPU matched two types (names compare ignoring case), or none."""
    text = GOOD.replace('    smi_names: ["NVIDIA H100 80GB HBM3"]\n', f"    smi_names: {smi}\n")
    assert message in error_of(tmp_path, text)


def test_an_image_release_month_must_exist(tmp_path: Path) -> None:
    text = GOOD.replace(
        "gpus:\n",
        "images:\n  ngc: {ref: 'nvcr.io/nvidia/pytorch:24.12-py3', released: '2024-13'}\ngpus:\n",
        1,
    )
    assert "with a month from 01 to 12" in error_of(tmp_path, text)


@pytest.mark.parametrize("odd", ["\u2028", "\x85", "\u2029"])
def test_a_line_break_editors_do_not_count_is_named_at_its_place(tmp_path: Path, odd: str) -> None:
    """After a LINE SEPARATOR every line number was one more than the editor showed."""
    text = GOOD.replace("    gpus: [H100]\n", f"    gpus: [H100]  # a note{odd}\n")
    assert error_of(tmp_path, text).startswith(f"M:14:27: the character U+{ord(odd):04X} is")


def test_an_issue_may_be_a_plain_reference(tmp_path: Path) -> None:
    text = GOOD.replace("    gpus: [H100]\n", "    gpus: [H100]\n    issue: org/repo#941\n")
    load_matrix(write(tmp_path, text))


def test_the_readme_matrix_example_is_a_valid_matrix(tmp_path: Path) -> None:
    """The README's `## matrix.yaml` block, copied as it stands, validates: it named an
    undeclared GPU (L4), excluded an undeclared repro and included an undeclared revision,
    so a reader who started from it got exit 2 three times over."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("\n## matrix.yaml\n", 1)[1]
    example = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    (tmp_path / "repros").mkdir()
    (tmp_path / "repros" / "flashinfer_mla_oob_nan.py").write_text("")
    (tmp_path / "matrix.yaml").write_text(example)
    cells = expand(load_matrix(tmp_path / "matrix.yaml"))
    assert {c.id for c in cells} == {
        "flashinfer_mla_oob_nan[H100,host,flashinfer=0.2.3]",
        "flashinfer_mla_oob_nan[H100,host,flashinfer=27906fdbf]",
        "flashinfer_mla_oob_nan[H100,ngc-24.12,flashinfer=0.2.3]",
    }


def test_the_readme_matrix_section_names_every_key_the_schema_takes() -> None:
    """matrix.yaml's reference in the README left out `key_metric` (which every repro of
    the project's own matrix.yaml sets), `needs`, `isolate` and a revision's `label`: a
    reader could not learn from it how to choose the charted metric or name a `:/text`."""
    from pydantic import BaseModel

    from repromatrix.config import schema

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("\n## matrix.yaml\n", 1)[1].split("\n## ", 1)[0]
    models: list[type[BaseModel]] = [schema.MatrixSpec]
    missing = []
    while models:
        model = models.pop()
        for name, field in model.model_fields.items():
            key = field.alias or name
            if f"{key}:" not in section:
                missing.append(f"{model.__name__}.{key}")
            models += [
                t
                for t in _classes(field.annotation)
                if issubclass(t, BaseModel) and t not in models
            ]
    assert missing == []


def _classes(annotation: object) -> list[type]:
    """The classes an annotation names, through unions, generics and Annotated."""
    if isinstance(annotation, type) and not getattr(annotation, "__args__", None):
        return [annotation]
    found: list[type] = []
    for arg in getattr(annotation, "__args__", ()) or getattr(annotation, "__metadata__", ()):
        found += _classes(arg)
    origin = getattr(annotation, "__origin__", None)
    if origin is not None and hasattr(annotation, "__metadata__"):
        found += _classes(origin)
    return found


@pytest.mark.parametrize(
    ("versions", "message"),
    [
        (
            '[{git: "27906fdb"}, {git: "27906fdbf1a2b3c4d5e6f708192a3b4c5d6e7f80"}]',
            "M:10:35: library 'flashinfer' lists '27906fdbf1a2b3c4d5e6f708192a3b4c5d6e7f80', "
            "the same commit as '27906fdb'; remove one",
        ),
        (
            '[{git: "27906FDBF1"}, {git: "27906fdb"}]',
            "M:10:37: library 'flashinfer' lists '27906fdb', the same commit as '27906FDBF1'; "
            "remove one",
        ),
    ],
)
def test_two_spellings_of_one_commit_are_refused(
    tmp_path: Path, versions: str, message: str
) -> None:
    """A commit's abbreviation and its full hash (or a longer abbreviation) were two cells of
    one experiment: the commit ran twice, and the report showed two columns of it."""
    text = GOOD.replace("    pypi: flashinfer-python\n", "    git: https://example.invalid/fi\n")
    text = text.replace('versions: ["0.2.3", "0.2.4"]', f"versions: {versions}")
    assert error_of(tmp_path, text) == message


@pytest.mark.parametrize(
    ("where", "line"),
    [
        ("    libraries:\n      flashinfer: all\n", 16),
        ("exclude:\n  - {repro: mla, libraries: {flashinfer: FULL}}\n", 18),
    ],
)
def test_another_spelling_of_a_declared_commit_names_the_declared_one(
    tmp_path: Path, where: str, line: int
) -> None:
    """A repro's list (or a rule) naming the full hash of a commit versions: lists by its
    abbreviation was told to add it to versions, which then refused it as the same commit
    listed twice: the hint led nowhere. It now names the spelling to write."""
    full = "27906fdbf1a2b3c4d5e6f708192a3b4c5d6e7f80"
    text = GOOD.replace("    pypi: flashinfer-python\n", "    git: https://example.invalid/fi\n")
    text = text.replace('versions: ["0.2.3", "0.2.4"]', 'versions: [{git: "27906fdb"}]')
    if line == 16:
        text = text.replace(where, f"    libraries:\n      flashinfer: [{full}]\n")
    else:
        text += where.replace("FULL", full)
    message = error_of(tmp_path, text)
    assert message.startswith(f"M:{line}:"), message
    assert message.endswith(
        f"revision '{full}' is not declared for library 'flashinfer'; it is declared as "
        "'27906fdb' (the same commit): write that"
    ), message


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("    gpus: [H100]\n", "    gpus: [H100]\n    bogus: 1\n",
         "M:15:5: unknown key 'bogus' in repros.mla; remove it"),
        ("    gpus: [H100]\n", "    gpus: [H100]\n    gpuss: [H100]\n",
         "M:15:5: unknown key 'gpuss' in repros.mla; did you mean 'gpus'?"),
        ("    gpus: [H100]\n", "    gpus: [B200]\n",
         "M:14:12: GPU type 'B200' is not declared; declare it under 'gpus'"),
    ],
)  # fmt: skip
def test_a_hint_names_only_a_key_the_word_is_a_slip_of(
    tmp_path: Path, old: str, new: str, expected: str
) -> None:
    """`bogus:` was "did you mean 'gpus'?" (three letters in common lifted it over difflib's
    cutoff): a word more than a few edits from every name gets no hint."""
    assert error_of(tmp_path, GOOD.replace(old, new)) == expected


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("repros", "M:13:13: script 'repros' is not a regular file; give the path of"),
        ("''", "M:13:13: script '' is not a path to a script; give the path of"),
        # Blank names were excerpted to `''`: the user saw a name they never wrote.
        ("' '", "M:13:13: script ' ' is not a path to a script; give the path of"),
        ('"\\t"', "M:13:13: script '\\t' is not a path to a script; give the path of"),
    ],
)
def test_a_script_that_is_no_file_is_refused_with_the_fix(
    tmp_path: Path, script: str, expected: str
) -> None:
    """`script: repros` (a folder) said only "is not a regular file", with nothing to do."""
    message = error_of(tmp_path, GOOD.replace("script: repros/mla.py", f"script: {script}"))
    assert message.startswith(expected), message
    assert message.endswith("relative to the matrix"), message


@pytest.mark.parametrize("written", ['"1"', "1.0", "true", "[1]"])
def test_a_schema_that_is_no_number_says_to_write_schema_1(tmp_path: Path, written: str) -> None:
    """`schema: "1"` said "schema: schema must be the number 1", the key twice and no fix."""
    message = error_of(tmp_path, GOOD.replace("schema: 1", f"schema: {written}"))
    assert message.startswith("M:1:9: schema must be the number 1, not "), message
    assert message.endswith("; write 'schema: 1'"), message


@pytest.mark.parametrize(
    ("versions", "message"),
    [
        (
            '[{git: ":/fix scale"}]',
            "M:10:22: revision label ':/fix scale' is not a usable label (at most 64 letters, "
            "digits and ._+~^@/#{}!-, not starting with '-'); name it: {git: ':/fix scale', "
            "label: NAME}",
        ),
        ('[":/fix scale"]', "name it: {git: ':/fix scale', label: NAME}"),
        ('[{git: ":/fix scale", label: "a b"}]', "not starting with '-')"),
    ],
)
def test_a_revision_that_is_no_label_says_how_to_name_it(
    tmp_path: Path, versions: str, message: str
) -> None:
    """README: git's `:/text` is "declared with a `label:`"; the refusal of one without
    a label said only what a label may hold, not that the revision can be given one."""
    text = GOOD.replace("    pypi: flashinfer-python\n", "    git: https://example.com/fi\n")
    text = text.replace('versions: ["0.2.3", "0.2.4"]', f"versions: {versions}")
    got = error_of(tmp_path, text)
    assert got.startswith(message) if message.startswith("M:") else got.endswith(message)


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("gpus: [H100]", 'gpus: ["H100 "]', "M:14:12: GPU type 'H100 ' is not declared; did"),
        ("flashinfer: all", 'flashinfer: ["0.2.3 "]', "M:16:20: revision '0.2.3 ' is not"),
        ('"0.2.3", "0.2.4"', '"0.2.3", " 0.2.4"', "M:10:25: PyPI version ' 0.2.4' is not a PEP"),
        ("import: flashinfer", 'import: "flashinfer "', "M:9:13: import 'flashinfer ' is not"),
        ("script: repros/mla.py", 'script: "repros/mla.py "', "M:13:13: script 'repros/mla.py '"),
    ],
)
def test_a_value_is_quoted_with_the_spaces_at_its_ends(
    tmp_path: Path, old: str, new: str, expected: str
) -> None:
    """A value with a space at an end was quoted without it ("GPU type 'H100' is not
    declared; did you mean 'H100'?", "requirement 'tqdm' is not a PEP 508 requirement (e.g.
    'tqdm' …)", "script 'repros/mla.py' does not exist"): the line refused what it showed
    as right, and named no difference to fix."""
    message = error_of(tmp_path, GOOD.replace(old, new))
    assert message.startswith(expected), message


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        (
            "1.10",
            "revision 1.10 must be a string, but YAML read it as the number 1.1; quote it: '1.10'",
        ),
        ("true", "revision true must be a string, but YAML read it as a boolean; quote it: 'true'"),
        ("~", "revision ~ must be a string, but YAML read it as null; quote it: '~'"),
        ("2024-01-01", "revision 2024-01-01 must be a string, but YAML read it as a date; quote"),
        ("[a]", "a revision must be a string, not a list; write it"),
    ],
)
def test_a_revision_a_repro_selects_is_quoted_as_written(
    tmp_path: Path, item: str, expected: str
) -> None:
    """`flashinfer: [1.10]` said "revision 1.1 must be a string", `[true]` "revision True",
    `[~]` "revision None", a date "revision datetime.date(2024, 1, 1)" and a list "quote it:
    '<a list of 1 items>'": what YAML made of the item, in Python's words."""
    text = GOOD.replace('"0.2.4"]', '"1.10"]').replace("flashinfer: all", f"flashinfer: [{item}]")
    message = error_of(tmp_path, text)
    assert message.startswith(f"M:16:20: {expected}"), message


@pytest.mark.parametrize(
    ("written", "code"),
    [("\u041d100", "041D"), ("H100\u200b", "200B"), ("H100\u00a0", "00A0")],
    ids=["Cyrillic H", "zero-width space", "no-break space"],
)
def test_a_name_that_only_looks_declared_says_which_character_is_not(
    tmp_path: Path, written: str, code: str
) -> None:
    """`gpus: [Н100]` (a Cyrillic Н) said "GPU type 'Н100' is not declared; did you mean
    'H100'?": two names that look the same, and no word of the difference."""
    message = error_of(tmp_path, GOOD.replace("gpus: [H100]", f'gpus: ["{written}"]'))
    assert f"(holding U+{code}, which is not ASCII) is not declared; did you mean 'H100'?" in (
        message
    ), message


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("      flashinfer: all\n",
         "      flashinfer: all\nexclude:\n  - {repro: mla, image: host}\n",
         "M:18:18: unknown key 'image' in exclude[0]; did you mean 'base'? (a base is an "
         "image of images: or host, as --image BASE selects one)"),
        ("      flashinfer: all\n",
         "      flashinfer: all\ninclude:\n  - {repro: mla, images: host}\n",
         "M:18:18: unknown key 'images' in include[0]; did you mean 'base'? (a base is an "
         "image of images: or host, as --image BASE selects one)"),
        ("    gpus: [H100]\n", "    gpus: [H100]\n    images: [host]\n",
         "M:15:5: unknown key 'images' in repros.mla; did you mean 'bases'? (a base is an "
         "image of images: or host, as --image BASE selects one)"),
    ],
)  # fmt: skip
def test_an_image_key_where_a_base_goes_names_base(
    tmp_path: Path, old: str, new: str, expected: str
) -> None:
    """`exclude: [{repro: mla, image: ngc-24.12}]`, as `--image BASE` selects it, said
    "unknown key 'image' in exclude[0]; remove it": done, the rule dropped the repro's
    cells on every base. The key is `base` (`bases` in a repro), and the line says so."""
    assert error_of(tmp_path, GOOD.replace(old, new)) == expected


def test_two_libraries_of_one_import_name_in_one_repro_are_refused(tmp_path: Path) -> None:
    """A repro over `flashinfer` and `fi-nightly`, both `import: flashinfer`, passed
    validate: each cell installed both into one environment, the second over the first,
    and its record claimed two pins of which the repro could import one. Declared side by
    side, each for repros of its own, they still load."""
    nightly = (
        "  fi-nightly:\n    pypi: flashinfer-nightly\n    import: flashinfer\n"
        '    versions: ["0.3.0.dev1"]\n'
    )
    both = GOOD.replace("repros:\n", nightly + "repros:\n").replace(
        "      flashinfer: all\n", "      flashinfer: all\n      fi-nightly: all\n"
    )
    assert error_of(tmp_path, both) == (
        "M:21:7: libraries 'flashinfer' and 'fi-nightly' are both imported as 'flashinfer': "
        "a cell cannot pin both (one install takes the other's place); give each a repro "
        "of its own"
    )
    apart = GOOD.replace("repros:\n", nightly + "repros:\n")
    assert list(load_matrix(write(tmp_path, apart)).libraries) == ["flashinfer", "fi-nightly"]


def test_two_libraries_of_one_pypi_package_in_one_repro_are_refused(tmp_path: Path) -> None:
    """A repro over `fi` and `fi-old`, both `pypi: flashinfer-python` (`Flashinfer_Python`
    is the same package to pip) but imported by other names, passed validate: each cell
    asked one pip for two versions of one package, and every cell of two different ones
    became an `error` record ('pip could not install ...: ResolutionImpossible'), exit 0.
    Declared side by side, each for repros of its own, they still load."""
    old = (
        "  fi-old:\n    pypi: Flashinfer_Python\n    import: flashinfer_old\n"
        '    versions: ["0.1.6"]\n'
    )
    both = GOOD.replace("repros:\n", old + "repros:\n").replace(
        "      flashinfer: all\n", "      flashinfer: all\n      fi-old: all\n"
    )
    assert error_of(tmp_path, both) == (
        "M:21:7: libraries 'flashinfer' and 'fi-old' are both the PyPI package "
        "'flashinfer-python': a cell cannot pin both (one install takes the other's place); "
        "give each a repro of its own"
    )
    apart = GOOD.replace("repros:\n", old + "repros:\n")
    assert list(load_matrix(write(tmp_path, apart)).libraries) == ["flashinfer", "fi-old"]
