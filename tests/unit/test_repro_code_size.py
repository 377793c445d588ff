"""A repro's Python code is parsed by every command that loads the matrix (its cell key
covers what the code imports and reads beside it): a script or helper of megabytes is
refused at the script's line instead of costing minutes and gigabytes, and each file is
parsed once however many times the digest, the checks and the warnings look at it."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest

from repromatrix.cli import main
from repromatrix.config import digest

MATRIX = "schema: 1\nrepros:\n  r:\n    script: repros/r.py\n    gpus: [cpu]\n"


def _repo(tmp_path: Path, script: str) -> Path:
    (tmp_path / "repros").mkdir()
    (tmp_path / "repros" / "r.py").write_text(script)
    matrix = tmp_path / "m.yaml"
    matrix.write_text(MATRIX)
    return matrix


def _parsed_sizes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The sizes of the sources the digest hands to Python's parser, in order."""
    sizes: list[int] = []
    parse = ast.parse

    def counted(source: Any, *args: Any, **kwargs: Any) -> Any:
        sizes.append(len(source))
        return parse(source, *args, **kwargs)

    monkeypatch.setattr(ast, "parse", counted)  # the module digest parses with
    return sizes


def _one_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert "Traceback" not in err
    return err


# Data spelled as code: a module that holds a big table (parses slowly, as 12 MB did).
_TABLE_ROW = "ROW_{i} = [{i}, 'abc', {{'k': {i}}}]\n"


def _table(size: int) -> str:
    rows: list[str] = []
    total = 0
    while total < size:
        rows.append(_TABLE_ROW.format(i=len(rows)))
        total += len(rows[-1])
    return "".join(rows)


def test_a_script_of_megabytes_is_refused_at_its_line_unparsed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A 12 MB script took `validate` 30 s and 2 GB (parsed six times); one past the
    limit is now one line at the script's line, naming the file, the limit and the fix,
    and is never parsed."""
    matrix = _repo(tmp_path, _table(digest.MAX_SOURCE_BYTES + 1))
    sizes = _parsed_sizes(monkeypatch)
    assert main(["--matrix", str(matrix), "validate"]) == 2
    err = _one_line(capsys)
    assert f"{matrix}:4:13: " in err
    assert "repros/r.py is 2.0 MiB of Python" in err
    assert "at most 2 MiB" in err
    assert "a file it reads" in err
    assert max(sizes, default=0) <= digest.MAX_SOURCE_BYTES


def test_a_module_of_megabytes_it_imports_is_refused_at_the_script_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    matrix = _repo(tmp_path, "import tables\n\ndef run(params):\n    return {}\n")
    (tmp_path / "repros" / "tables.py").write_text(_table(digest.MAX_SOURCE_BYTES + 1))
    sizes = _parsed_sizes(monkeypatch)
    for command in ("validate", "list"):
        assert main(["--matrix", str(matrix), command]) == 2
        err = _one_line(capsys)
        assert f"{matrix}:4:13: " in err
        assert "repros/tables.py is 2.0 MiB of Python" in err
    assert max(sizes) <= digest.MAX_SOURCE_BYTES


def test_a_package_it_imports_is_bounded_as_a_whole(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Files each under the limit, together past the total: a package of them."""
    matrix = _repo(tmp_path, "import vendored\n")
    package = tmp_path / "repros" / "vendored"
    package.mkdir()
    comment = "# " + "x" * 1021 + "\n"  # cheap to parse: the total is what is refused
    each = digest.MAX_SOURCE_BYTES // len(comment) - 1
    files = digest.MAX_CODE_BYTES // (each * len(comment)) + 1
    for i in range(files):
        (package / f"m{i:02}.py").write_text(comment * each)
    assert main(["--matrix", str(matrix), "validate"]) == 2
    err = _one_line(capsys)
    assert f"{matrix}:4:13: " in err
    assert "passes 16 MiB" in err
    assert "repros/vendored/" in err
    (package / "m00.py").unlink()
    assert main(["--matrix", str(matrix), "validate"]) == 0, capsys.readouterr().err


def test_each_code_file_is_parsed_once_per_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The digest, its re-reads for the warnings of names computed whole and `list` each
    parsed the script and its modules again: six parses of each file per command."""
    matrix = _repo(tmp_path, "import common\n\ndef run(params):\n    return {}\n")
    (tmp_path / "repros" / "common.py").write_text("import json\nX = 1\n")
    sizes = _parsed_sizes(monkeypatch)
    assert main(["--matrix", str(matrix), "list"]) == 0, capsys.readouterr().err
    assert len(sizes) == 2, sizes
    # An edit is read anew: the cache is keyed by the file's bytes, not its name.
    (tmp_path / "repros" / "common.py").write_text("import json\nX = 2\n")
    assert main(["--matrix", str(matrix), "list"]) == 0, capsys.readouterr().err
    assert len(sizes) == 3, sizes
