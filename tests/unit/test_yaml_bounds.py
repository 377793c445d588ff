"""Matrix files that would hang, exhaust or crash a YAML loader: each is one located line.

Every refusal names file:line:column (or, for what is not a readable regular file at all,
the file), quotes at most an excerpt of the value, and stays under 300 characters.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest

from repromatrix.cli import main
from repromatrix.config import load_matrix
from repromatrix.config.yamlevents import MAX_DEPTH, MAX_VALUES
from repromatrix.config.yamlsrc import MAX_BYTES
from repromatrix.errors import ConfigError

GOOD = """\
schema: 1
gpus:
  H100: {compute_capability: "9.0", smi_names: [NVIDIA H100 80GB HBM3]}
repros:
  mla: {script: repros/mla.py, gpus: [H100]}
"""


def matrix(tmp_path: Path, text: str | bytes) -> Path:
    (tmp_path / "repros").mkdir(exist_ok=True)
    (tmp_path / "repros" / "mla.py").write_text("print('hi')\n")
    path = tmp_path / "matrix.yaml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
    return path


def refusal(path: Path) -> str:
    """The one line `load_matrix` refuses `path` with, `path` written as M."""
    started = time.perf_counter()
    with pytest.raises(ConfigError) as info:
        load_matrix(path)
    assert time.perf_counter() - started < 2.0
    message = str(info.value)
    assert "\n" not in message
    assert len("repromatrix: error: " + message) < 300, message
    return message.replace(str(path), "M")


def bomb(levels: int, width: int = 9) -> str:
    lines = ["schema: 1", f"a0: &a0 [{', '.join(['lol'] * width)}]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]" for i in range(1, levels)]
    return "\n".join(lines) + "\nrepros: {}\n"


def test_an_alias_bomb_is_refused_at_the_alias_before_anything_is_built(tmp_path: Path) -> None:
    path = matrix(tmp_path, bomb(9))  # 560 bytes; 9**9 values if expanded
    assert path.stat().st_size < 600
    message = refusal(path)
    assert re.fullmatch(
        rf"M:6:\d+: alias '\*a3' would expand the document past {MAX_VALUES:,} values "
        r"\(an alias bomb\?\); write the values out or use fewer aliases",
        message,
    ), message


def test_aliases_within_bounds_still_expand(tmp_path: Path) -> None:
    text = GOOD.replace("gpus: [H100]}", "gpus: &types [H100]}") + (
        "  second: {script: repros/mla.py, gpus: *types}\n"
    )
    loaded = load_matrix(matrix(tmp_path, text))
    assert loaded.repros["second"].gpus == loaded.repros["mla"].gpus == ("H100",)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "schema: 1\nrepros: " + "[" * 5000 + "]" * 5000,
            r"M:2:\d+: nested (deeper than|over 1,000 levels deep; a matrix may nest) 64",
            id="flow nesting 5,000 deep",
        ),
        pytest.param(
            "schema: 1\nx:\n" + "".join(" " * i + "- \n" for i in range(MAX_DEPTH + 5)),
            rf"M:\d+:\d+: nested deeper than {MAX_DEPTH} levels; a matrix needs far fewer",
            id="block nesting",
        ),
        pytest.param(
            "schema: 1\nrepros: {a: {timeout: " + "9" * 5000 + "}}\n",
            r"M:2:23: an integer of 5000 digits is too large \(the most is 9,223,372",
            id="5,000-digit integer",
        ),
        pytest.param(
            "schema: 1\ndefaults: {timeout: 99999999999999999999}\n",
            r"M:2:21: an integer of 20 digits is too large",
            id="an integer past 64 bits",
        ),
        pytest.param(
            "schema: 1\x00\n", r"M:1:10: invalid YAML: the control character U\+0000", id="NUL"
        ),
        pytest.param(
            'schema: 1\nrepros: {a: {script: "\\0"}}\n',
            r"M:2:22: text holding the control character U\+0000; remove it",
            id="escaped NUL",
        ),
        pytest.param(
            'schema: 1\nrepros: {a: {description: "\\e]52;c;ZXZpbA==\\a"}}\n',
            r"M:2:27: text holding the control character U\+001B; remove it",
            id="escape sequence",
        ),
        pytest.param(
            'schema: 1\nrepros: {a: {description: "\\ud800"}}\n',
            r"M:2:\d+: (text holding the control character U\+D800"
            r"|invalid YAML: found invalid Unicode)",
            id="lone surrogate",
        ),
        pytest.param(
            "schema: 1\n---\nschema: 1\n", r"M:2:1: a second YAML document", id="two docs"
        ),
        pytest.param(  # read as 1.2 in silence: `mode: on` reached the repro as "on", not true
            "%YAML 1.1\n---\nschema: 1\n",
            r"M:1:1: %YAML 1\.1: a matrix is read as YAML 1\.2",
            id="YAML 1.1 directive",
        ),
        pytest.param(
            "schema: 1\nx: *nowhere\n", r"M:2:4: alias '\*nowhere' is not defined", id="alias"
        ),
        pytest.param("schema: 1\nx: &a [*a]\n", r"M:2:8: alias '\*a' refers to itself", id="loop"),
        pytest.param("schema: 1\n<<: {a: 1}\n", r"M:2:1: YAML merge keys", id="merge key"),
        pytest.param(
            "schema: !custom 1\n", r"M:1:9: the YAML tag !custom is not supported", id="tag"
        ),
        pytest.param(
            "schema: !!python/object:os.system 1\n",
            r"M:1:9: the YAML tag !!python/object:os.system is not supported",
            id="python tag",
        ),
        pytest.param(  # it read "found character '\t' that cannot start any token"
            "schema: 1\nrepros:\n\tr: {script: r.py}\n",
            r"M:3:1: a tab; YAML indents with spaces only: replace it with spaces",
            id="tab",
        ),
        pytest.param(  # tags on mappings and sequences were dropped in silence
            "schema: 1\nx: !!python/object:os.system {}\n",
            r"M:2:4: the YAML tag !!python/object:os.system is not supported; write the plain",
            id="tag on a mapping",
        ),
        pytest.param(
            "schema: 1\nx: {a: !custom [1]}\n",
            r"M:2:8: the YAML tag !custom is not supported; write the plain sequence",
            id="tag on a sequence",
        ),
        pytest.param(
            "schema: 1\ngpus: !!set {cpu}\n", r"M:2:7: the YAML tag !!set is not", id="set"
        ),
        pytest.param(
            "schema: 1\n? [a]\n: 1\n",
            r"M:2:3: a mapping key must be a string, not a sequence; write the name as text$",
            id="key",
        ),
        pytest.param(  # it was named at its anchor: "3:3: duplicate key 'r' (… at line 3)"
            "schema: 1\nrepros:\n  &k r: {script: a.py}\n  *k : {script: b.py}\n",
            r"M:4:3: duplicate key 'r' \(first defined at line 3\)",
            id="a duplicate key made by an alias",
        ),
        pytest.param(  # it read "mapping key 1.1 must be a string; quote it": '1.1' is 1.10?
            "schema: 1\nimages:\n  24.10: {ref: x}\n",
            r"M:3:3: mapping key 24.10 must be a string, but YAML reads it as the number 24.1; "
            r"quote it: '24.10'$",
            id="a key YAML reads as a number",
        ),
        pytest.param(  # it read "mapping key None must be a string"
            "schema: 1\nrepros:\n  ~: {script: r.py}\n",
            r"M:3:3: mapping key ~ must be a string, but YAML reads it as null; quote it: '~'$",
            id="a key YAML reads as null",
        ),
        pytest.param(
            "schema: 1\nrepros:\n  ? \n  : {script: r.py}\n",
            r"M:3:\d+: a mapping key is empty \(YAML reads that as null\); write the name$",
            id="an empty key",
        ),
        pytest.param(
            "schema: 1\nreleased: 2024-13-45\n", r"M:2:11: cannot read 2024-13-45", id="bad date"
        ),
        pytest.param(  # it read "mapping values are not allowed here" at the colon
            "schema: 1\nrepros:\n  " + "r" * 1100 + ": {script: r.py}\n",
            r"M:3:3: a key of 1,100 characters; YAML reads keys of at most 1,024 .*shorten it$",
            id="key past 1,024 characters",
        ),
        pytest.param(  # a value holding ': ' is the syntax error it is, however long
            "schema: 1\ndescription: " + "d" * 1100 + ": x\n",
            r"M:2:1114: invalid YAML: mapping values are not allowed here; fix the syntax",
            id="colon in a long value",
        ),
    ],
)
def test_hostile_yaml_is_one_located_line(tmp_path: Path, text: str, expected: str) -> None:
    message = refusal(matrix(tmp_path, text))
    assert re.match(expected, message), message


def test_invalid_utf8_names_the_byte_and_its_position(tmp_path: Path) -> None:
    message = refusal(matrix(tmp_path, GOOD.encode().replace(b"mla:", b"m\xffa:")))
    assert message == "M:5:4: byte 0xff is not UTF-8; save the file as UTF-8"


def test_a_file_past_the_size_limit_is_refused_where_it_passes_it(tmp_path: Path) -> None:
    message = refusal(matrix(tmp_path, "schema: 1\n" + "#" * MAX_BYTES + "\n"))
    assert message == (
        f"M:2:{MAX_BYTES - 10 + 1}: the file passes 512 KiB here, the most a matrix may be; "
        "split it or remove what it does not need"
    )


def test_a_huge_value_is_quoted_as_an_excerpt(tmp_path: Path) -> None:
    text = GOOD + "images:\n  ngc: {ref: '" + "X" * 400_000 + "'}\n"
    message = refusal(matrix(tmp_path, text))
    assert message.startswith("M:7:14: images.ngc.ref 'XXXX")
    assert "…" in message
    assert message.endswith(
        "' is not a valid Docker image reference; write it as "
        "[registry/]repository[:tag][@sha256:digest], lower-case"
    )


def test_an_unknown_8_kb_key_is_quoted_as_an_excerpt(tmp_path: Path) -> None:
    message = refusal(matrix(tmp_path, GOOD + '? "' + "z" * 8000 + '"\n: 1\n'))
    assert message.startswith("M:6:3: unknown key 'zzzz")
    assert "…" in message


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/proc/self/mem", "/proc/self/mem: cannot read (Input/output error); pass --matrix PATH"),
        ("/dev/zero", "/dev/zero: not a regular file; pass --matrix with a matrix.yaml file"),
        (".", ".: a directory; pass --matrix with a matrix.yaml file"),
    ],
)
def test_only_regular_files_are_read(
    target: str, expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    started = time.perf_counter()
    assert main(["--matrix", target, "validate"]) == 2
    assert time.perf_counter() - started < 2.0
    assert capsys.readouterr().err == f"repromatrix: error: {expected}\n"


def test_a_fifo_is_refused_without_waiting_for_a_writer(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fifo = tmp_path / "matrix.yaml"
    os.mkfifo(fifo)
    started = time.perf_counter()
    assert main(["--matrix", str(fifo), "validate"]) == 2
    assert time.perf_counter() - started < 2.0
    assert "not a regular file" in capsys.readouterr().err


def test_a_very_long_path_is_shown_by_its_end(tmp_path: Path) -> None:
    deep = tmp_path
    for i in range(12):
        deep = deep / f"folder-with-a-long-name-{i:02d}"
    deep.mkdir(parents=True)
    message = refusal(matrix(deep, "schema: 1\x00"))
    assert message.startswith("…")
    assert "matrix.yaml:1:10: invalid YAML" in message


def test_a_loop_of_links_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    loop = tmp_path / "matrix.yaml"
    loop.symlink_to(loop)
    assert main(["--matrix", str(loop), "validate"]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"repromatrix: error: {loop}: cannot read (Too many levels of symbolic links); "
        "pass --matrix PATH\n"
    )


def _with_param(value: str) -> str:
    return GOOD.replace("gpus: [H100]}", "gpus: [H100], params: {p: " + value + "}}")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        # "internal error" (exit 70): KeyError: 'maybe' (PyYAML's !!bool looks the text up),
        # AttributeError of !!timestamp (its pattern's match is None).
        ('!!bool "maybe"', r"M:5:58: 'maybe' is no !!bool as YAML 1\.2 reads one \(true or"),
        # YAML 1.1's readings, which the plain values lost (README): true, 1000, 90, 3.
        ("!!bool yes", r"M:5:58: 'yes' is no !!bool as YAML 1\.2 reads one \(true or false\)"),
        ("!!int 1_000", r"M:5:58: '1_000' is no !!int as YAML 1\.2 reads one \(digits 0-9"),
        ('!!float "1:30"', r"M:5:58: '1:30' is no !!float as YAML 1\.2 reads one"),
        ('!!int "٣"', r"M:5:58: '٣' is no !!int as YAML 1\.2 reads one"),
        ('!!timestamp "x"', r"M:5:58: 'x' is no !!timestamp as YAML 1\.2 reads one \(a date"),
        ("!!null x", r"M:5:58: 'x' is no !!null as YAML 1\.2 reads one \(null, ~ or nothing\)"),
        # It reached the repro as the text "1e400", which the README says never happens.
        ('!!float "1e400"', r"M:5:58: the number 1e400 is beyond the largest a float holds"),
    ],
)  # fmt: skip
def test_an_explicit_scalar_tag_reads_as_yaml_1_2_does(
    tmp_path: Path, value: str, expected: str
) -> None:
    message = refusal(matrix(tmp_path, _with_param(value)))
    assert re.match(expected, message), message


def test_an_explicit_scalar_tag_that_fits_its_value_is_read(tmp_path: Path) -> None:
    values = '[!!str 1.10, !!int "0x1F", !!int +12, !!float 1, !!bool "True", !!null ""]'
    loaded = load_matrix(matrix(tmp_path, _with_param(values)))
    assert loaded.repros["mla"].params == {"p": ["1.10", 31, 12, 1.0, True, None]}


@pytest.mark.parametrize(
    ("text", "where"),
    [
        # "M:2:8: repros must be a mapping", at the line before, of a space it never named.
        ("schema: 1\nrepros:\n\u00a0 mla: {script: repros/mla.py, gpus: [cpu]}\n", "M:3:1"),
        # "invalid YAML: mapping values are not allowed here" at M:5:9, a line after.
        ("schema: 1\nrepros:\n  mla:\n\u00a0   script: repros/mla.py\n    gpus: [cpu]\n", "M:4:1"),
        ("schema: 1\nrepros:\n  mla:\n    script: repros/mla.py\n    gpus:\n\u2003\u2003- cpu\n",
         "M:6:1"),
        ("schema:\u00a01\nrepros:\n  mla: {script: repros/mla.py, gpus: [cpu]}\n", "M:1:8"),
        ("schema: 1\r\nrepros:\r\n\u00a0 mla:\r\n    script: repros/mla.py\r\n", "M:3:1"),
    ],
)  # fmt: skip
def test_a_no_break_space_where_yaml_wants_a_space_is_named(
    tmp_path: Path, text: str, where: str
) -> None:
    message = refusal(matrix(tmp_path, text))
    assert message.startswith(f"{where}: "), message
    assert "where YAML wants a plain space" in message, message
    assert ("a no-break space" in message) != ("U+2003" in message), message


def test_a_no_break_space_in_text_is_text(tmp_path: Path) -> None:
    text = (
        "schema: 1\nrepros:\n  mla:\n    script: repros/mla.py\n    gpus: [cpu]\n"
        '    description: |\n      a line\n      \u00a0indented: text\n    issue: "https://x.invalid/1"\n'
    )
    assert "\u00a0indented" in load_matrix(matrix(tmp_path, text)).repros["mla"].description
