"""Matrix values that would become something dangerous: each refused in one located line.

A value ends up on pip's or git's command line, in a path, in an image pull: an option-like
string, a script outside the repository, a reference with a trailing newline or a
fullwidth digit must never get that far.
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from repromatrix.cli import main
from repromatrix.config import load_matrix
from repromatrix.config.values import (
    git_rev,
    git_url,
    image_ref,
    package_name,
    pypi_version,
    requirement,
)
from repromatrix.errors import ConfigError

GOOD = """\
schema: 1
images:
  ngc: {ref: "nvcr.io/nvidia/pytorch:25.01-py3"}
gpus:
  H100:
    compute_capability: "9.0"
    smi_names: ["NVIDIA H100 80GB HBM3"]
libraries:
  flashinfer:
    pypi: flashinfer-python
    git: https://github.com/flashinfer-ai/flashinfer
    import: flashinfer
    versions: ["0.2.3", {git: 27906fdbf}]
    requires: [tqdm]
repros:
  mla:
    script: repros/mla.py
    gpus: [H100]
    bases: [host, ngc]
    libraries: {flashinfer: all}
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
    assert len(message) < 280
    return message.replace(str(path), "M")


def test_the_good_matrix_loads(tmp_path: Path) -> None:
    assert list(load_matrix(write(tmp_path, GOOD)).repros) == ["mla"]


CASES = [
    (
        "script outside the repository",
        GOOD.replace("script: repros/mla.py", "script: ../../etc/passwd"),
        "M:17:13: script '../../etc/passwd' is outside the repository (ROOT); keep repro "
        "scripts inside it (links are followed)",
    ),
    (
        "absolute script outside the repository",
        GOOD.replace("script: repros/mla.py", "script: /etc/passwd"),
        "M:17:13: script '/etc/passwd' is outside the repository (ROOT); keep repro scripts "
        "inside it (links are followed)",
    ),
    (
        "script in git's own folder",
        GOOD.replace("script: repros/mla.py", "script: .git/config"),
        "M:17:13: script '.git/config' is inside git's own folder (.git); give the path of "
        "the repro's Python file, relative to the matrix",
    ),
    (
        "option as the PyPI project",
        GOOD.replace("pypi: flashinfer-python", "pypi: --index-url=http://evil.example/simple"),
        "M:10:11: pypi '--index-url=http://evil.example/simple' is not a PyPI project name "
        "(PEP 508: letters, digits, '.', '_', '-')",
    ),
    (
        "option as a PyPI version",
        GOOD.replace('"0.2.3"', '"--index-url=http://evil.example"'),
        "M:13:16: PyPI version '--index-url=http://evil.example' is not a PEP 440 version "
        "(e.g. 0.2.3, 1.0.post1, 2.1rc1)",
    ),
    (
        "option as a git revision",
        GOOD.replace("{git: 27906fdbf}", '{git: "--config=core.sshCommand=touch /tmp/x"}'),
        "M:13:31: git revision '--config=core.sshCommand=touch /tmp/x' is not a git revision "
        "(a commit, tag or branch: letters, digits and ._/+~^@-, not starting with '-')",
    ),
    (
        "option as the git URL",
        GOOD.replace(
            "git: https://github.com/flashinfer-ai/flashinfer", "git: --upload-pack=touch /tmp/x"
        ),
        "M:11:10: git '--upload-pack=touch /tmp/x' is not a git URL or path (https://, ssh://, "
        "git://, file://, user@host:path or a local path; never starting with '-')",
    ),
    (
        "a remote helper as the git URL",
        GOOD.replace(
            "git: https://github.com/flashinfer-ai/flashinfer", "git: 'ext::sh -c touch% /tmp/x'"
        ),
        "M:11:10: git 'ext::sh -c touch% /tmp/x' is not a git URL or path (https://, ssh://, "
        "git://, file://, user@host:path or a local path; never starting with '-')",
    ),
    (
        "an editable install as a requirement",
        GOOD.replace("requires: [tqdm]", "requires: [-e.]"),
        "M:14:16: requirement '-e.' is not a PEP 508 requirement (e.g. 'tqdm' or "
        "'apache-tvm-ffi==0.1.3')",
    ),
    (
        "an option as a revision's requirement",
        GOOD.replace("{git: 27906fdbf}", "{git: 27906fdbf, requires: ['--index-url=x']}"),
        "M:13:53: requirement '--index-url=x' is not a PEP 508 requirement (e.g. 'tqdm' or "
        "'apache-tvm-ffi==0.1.3')",
    ),
    (
        "an image reference with a trailing newline",
        GOOD.replace('"nvcr.io/nvidia/pytorch:25.01-py3"', '"nvcr.io/nvidia/pytorch:25.01-py3\\n"'),
        "M:3:14: images.ngc.ref 'nvcr.io/nvidia/pytorch:25.01-py3\\n' is not a valid Docker "
        "image reference; write it as [registry/]repository[:tag][@sha256:digest], lower-case",
    ),
    (
        "fullwidth digits in a tag",
        GOOD.replace("pytorch:25.01-py3", "pytorch:２５.01-py3"),
        "M:3:14: images.ngc.ref 'nvcr.io/nvidia/pytorch:２５.01-py3' is not a valid Docker "
        "image reference; write it as [registry/]repository[:tag][@sha256:digest], lower-case",
    ),
    (
        "Arabic-Indic digits in a compute capability",
        GOOD.replace('compute_capability: "9.0"', 'compute_capability: "٩.٠"'),
        "M:6:25: compute_capability '٩.٠' must be written with ASCII digits",
    ),
    (
        "a non-ASCII GPU name",
        GOOD.replace("  H100:\n", "  H１００:\n").replace("gpus: [H100]", "gpus: [H１００]"),
        "M:5:3: gpus: name 'H１００' must be 1 to 64 ASCII letters, digits, '.', '_' and '-', "
        "starting with a letter or digit; rename it where it is declared and used",
    ),
    (
        "a library named '..'",
        GOOD.replace("  flashinfer:\n    pypi", '  "..":\n    pypi').replace(
            "{flashinfer: all}", "{'..': all}"
        ),
        "M:9:3: libraries: name '..' must be 1 to 64 ASCII letters, digits, '.', '_' and '-', "
        "starting with a letter or digit; rename it where it is declared and used",
    ),
    (  # cut at 160 characters, the fix read "starting…ter or digit"
        "a long name with a slash",
        GOOD.replace("  mla:\n", "  flashinfer/mla_oob_nan_regression:\n"),
        "M:16:3: repros: name 'flashinfer/mla_oob_nan_regression' must be 1 to 64 ASCII "
        "letters, digits, '.', '_' and '-', starting with a letter or digit; rename it where "
        "it is declared and used",
    ),
    (
        "a module name that is code",
        GOOD.replace("import: flashinfer", "import: 'os; os.system(1)'"),
        "M:12:13: import 'os; os.system(1)' is not a Python module name (e.g. torch or "
        "flash_attn.ops)",
    ),
    (
        "an infinite timeout",
        GOOD.replace("    gpus: [H100]\n", "    gpus: [H100]\n    timeout: .inf\n"),
        "M:19:14: repros.mla.timeout must be a finite number, not inf; write one",
    ),
    (
        "a negative timeout",
        GOOD.replace("    gpus: [H100]\n", "    gpus: [H100]\n    timeout: -5\n"),
        "M:19:14: repros.mla.timeout must be more than 0, not -5",
    ),
    (
        "a quoted timeout with an exponent",
        GOOD.replace("    gpus: [H100]\n", "    gpus: [H100]\n    timeout: '6e2'\n"),
        "M:19:14: repros.mla.timeout must be a number, not the text '6e2'; drop the quotes",
    ),
    (
        "a quoted timeout",
        GOOD.replace("    gpus: [H100]\n", "    gpus: [H100]\n    timeout: '60'\n"),
        "M:19:14: repros.mla.timeout must be a number, not the text '60'; drop the quotes",
    ),
    (
        "a calibrate beyond the most runs",
        GOOD.replace("    gpus: [H100]\n", "    gpus: [H100]\n    calibrate: 50\n"),
        "M:19:16: repros.mla.calibrate must be at most 20, not 50",
    ),
    (
        "an environment variable in the git URL (git reads it as a folder of that name)",
        GOOD.replace("git: https://github.com/flashinfer-ai/flashinfer", "git: ${FLASHINFER_GIT}"),
        "M:11:10: git '${FLASHINFER_GIT}' holds '$': nothing in a matrix is expanded "
        "(environment variables are the host's, a cell key is not); write the URL or path",
    ),
    (
        "an environment variable in a URL's credentials",
        GOOD.replace(
            "git: https://github.com/flashinfer-ai/flashinfer",
            "git: https://$TOKEN@github.com/flashinfer-ai/flashinfer",
        ),
        "M:11:10: git 'https://***@github.com/…ai/flashinfer' holds '$': nothing in a "
        "matrix is expanded (environment variables are the host's, a cell key is not); write "
        "the URL or path",
    ),
    (
        "an environment variable in the script's path",
        GOOD.replace("script: repros/mla.py", "script: $HOME/repros/mla.py"),
        "M:17:13: script '$HOME/repros/mla.py' does not exist; nothing in a matrix is expanded "
        "($VARIABLES, ~): write the path relative to the matrix's folder",
    ),
    (
        "a home folder in the script's path",
        GOOD.replace("script: repros/mla.py", "script: ~/repros/mla.py"),
        "M:17:13: script '~/repros/mla.py' does not exist; nothing in a matrix is expanded "
        "($VARIABLES, ~): write the path relative to the matrix's folder",
    ),
    (
        "a calibrate that is no whole number",
        GOOD.replace("    gpus: [H100]\n", "    gpus: [H100]\n    calibrate: 2.5\n"),
        "M:19:16: repros.mla.calibrate must be a whole number, not 2.5",
    ),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_dangerous_value_is_refused_in_one_line(tmp_path: Path, text: str, expected: str) -> None:
    assert error_of(tmp_path, text) == expected.replace("ROOT", str(tmp_path.resolve()))


def test_a_script_linked_to_outside_the_repository_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside.py"
    outside.write_text("print('not ours')\n")
    repo = tmp_path / "repo"
    (repo / "repros").mkdir(parents=True)
    (repo / "repros" / "link.py").symlink_to(outside)
    path = repo / "matrix.yaml"
    path.write_text(GOOD.replace("script: repros/mla.py", "script: repros/link.py"))
    with pytest.raises(ConfigError, match="is outside the repository") as info:
        load_matrix(path)
    assert str(info.value).startswith(f"{path}:17:13: script 'repros/link.py'")


def test_a_script_that_is_a_fifo_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("script: repros/mla.py", "script: repros/fifo.py"))
    os.mkfifo(tmp_path / "repros" / "fifo.py")
    with pytest.raises(ConfigError, match=r":17:13: script 'repros/fifo.py' is not a regular"):
        load_matrix(path)


def test_a_helper_that_is_a_fifo_does_not_block_validation(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    os.mkfifo(tmp_path / "repros" / "_helper.py")
    assert list(load_matrix(path).repros) == ["mla"]


def test_a_script_in_the_git_work_tree_above_the_matrix_is_accepted(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()  # the repository: the work tree holding the matrix
    (tmp_path / "repros").mkdir()
    (tmp_path / "repros" / "mla.py").write_text("print('hi')\n")
    (tmp_path / "matrices").mkdir()
    path = tmp_path / "matrices" / "m.yaml"
    path.write_text(GOOD.replace("script: repros/mla.py", "script: ../repros/mla.py"))
    assert load_matrix(path).repros["mla"].script == (tmp_path / "repros" / "mla.py").resolve()


def test_a_matrix_of_too_many_cells_is_refused(tmp_path: Path) -> None:
    versions = ", ".join(f'"0.{i}"' for i in range(500))
    text = (
        GOOD.replace('["0.2.3", {git: 27906fdbf}]', f"[{versions}]")
        .replace(
            "  H100:\n",
            "".join(
                f"  G{i}: {{compute_capability: '9.0', smi_names: [n{i}]}}\n" for i in range(20)
            )
            + "  H100:\n",
        )
        .replace("gpus: [H100]", "gpus: [" + ", ".join(f"G{i}" for i in range(20)) + "]")
    )
    message = error_of(tmp_path, text)
    assert message.startswith("M:36:3: the matrix expands to more than 5,000 cells by repro 'mla'")


def test_cli_refuses_with_exit_2_and_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, GOOD.replace("pypi: flashinfer-python", "pypi: -e."))
    assert main(["--matrix", str(path), "validate"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(f"repromatrix: error: {path}:10:11: pypi '-e.' is not a PyPI project")


@pytest.mark.parametrize(
    "ref",
    [
        "nvcr.io/nvidia/pytorch:24.12-py3",
        "ubuntu",
        "localhost:5000/a/b:tag",
        "[::1]:5000/img@sha256:" + "a" * 64,
        "repromatrix-test-base:bookworm",
        "registry.example.com/org/img:v1.2.3_rc-1",
    ],
)
def test_valid_image_references_pass(ref: str) -> None:
    assert image_ref(ref) is None


@pytest.mark.parametrize(
    "ref",
    [
        "Ubuntu",
        "ubuntu:",
        "ubuntu:latest\n",
        "ubuntu:la test",
        "-ubuntu",
        "ubuntu:-x",
        "ubuntu@sha256:abc",
        "ubuntu:" + "t" * 129,
        "a/" * 130 + "b",
        "ubuntu:１",
        "ubuntu:٣",
    ],
)
def test_invalid_image_references_fail(ref: str) -> None:
    assert image_ref(ref) is not None


def test_the_other_grammars() -> None:
    assert package_name("flashinfer-python") is None
    assert package_name("apache_tvm.ffi") is None
    assert package_name("-e") is not None
    assert package_name("flashinfer-python\n") is not None
    assert pypi_version("0.2.2.post1") is None
    assert pypi_version("2.1rc1") is None
    assert pypi_version(" 0.2.3") is not None
    assert pypi_version("0.2.*") is not None
    assert pypi_version("٠.٢") is not None
    assert requirement("apache-tvm-ffi==0.1.3") is None
    assert requirement('foo; python_version > "3.8"') is None
    assert requirement("foo==1.0 --hash=sha256:x") is not None
    assert git_rev("v0.5.2") is None
    assert git_rev("origin/main~2") is None
    assert git_rev("HEAD^") is None
    assert git_rev("main:setup.py") is not None
    assert git_rev("a..b") is not None
    assert git_rev("-x") is not None
    assert git_rev(":/^fix overflow$") is None  # git's newest commit whose message matches
    assert git_rev(":/m1") is None
    assert git_rev(":/") is not None
    assert git_rev(":/fix\n--output=x") is not None
    assert git_url("git@github.com:org/repo.git") is None
    assert git_url("../local/clone") is None
    assert git_url("file:///srv/git/fla.git") is None
    assert git_url("fd::17") is not None
    assert git_url("javascript://x") is not None


def test_params_that_are_not_json_are_refused(tmp_path: Path) -> None:
    text = GOOD.replace("    gpus: [H100]\n", "    gpus: [H100]\n    params: {day: 2024-01-01}\n")
    assert error_of(tmp_path, text) == (
        "M:19:19: params must be plain JSON values (text, numbers, lists, mappings); quote dates"
    )
    text = GOOD.replace(
        "    gpus: [H100]\n", "    gpus: [H100]\n    params: {blob: " + "1" * 5000 + "}\n"
    )
    assert error_of(tmp_path, text).startswith("M:19:20: an integer of 5000 digits is too large")
    big = "[" + ", ".join(["1234567"] * 1000) + "]"
    text = GOOD.replace("    gpus: [H100]\n", f"    gpus: [H100]\n    params: {{blob: {big}}}\n")
    assert error_of(tmp_path, text).startswith("M:19:13: params are 9,010 characters as JSON")


def test_a_release_with_an_epoch_can_be_declared(tmp_path: Path) -> None:
    """`1!3.2` (PEP 440 epoch) was refused as a label, while bisect could reach it."""
    from repromatrix.config import load_matrix

    text = GOOD.replace('versions: ["0.2.3",', 'versions: ["0.2.3", "1!0.1",')
    assert text != GOOD
    matrix = load_matrix(write(tmp_path, text))
    assert "1!0.1" in [rv.label for rv in matrix.libraries["flashinfer"].revisions]


def test_a_float_written_with_an_exponent_only_is_a_number(tmp_path: Path) -> None:
    """YAML 1.1 wants a dot in a float: `atol: 1e-3`, as tolerances are written, reached
    the repro as the text "1e-3". Quoted, it stays text; a version or a commit never looks
    like this (they have dots or letters around the 'e')."""
    params = "{atol: 1e-3, big: 2E+8, neg: -5e-300, dotted: 1.0e-3, text: '1e-3', rev: 1e3a}"
    text = GOOD.replace("    gpus: [H100]\n", f"    gpus: [H100]\n    params: {params}\n")
    got = load_matrix(write(tmp_path, text)).repros["mla"].params
    assert got == {
        "atol": 1e-3,
        "big": 2e8,
        "neg": -5e-300,
        "dotted": 1e-3,
        "text": "1e-3",
        "rev": "1e3a",
    }
    assert isinstance(got["atol"], float)
    timeout = GOOD.replace("    gpus: [H100]\n", "    gpus: [H100]\n    timeout: 6e2\n")
    assert load_matrix(write(tmp_path, timeout)).repros["mla"].timeout_s == 600


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ("{atol: 1e400}", "M:19:20: the number 1e400 is beyond the largest a float holds"),
        ("{n: [1, -1e999]}", "M:19:21: the number -1e999 is beyond the largest a float"),
        ("{atol: 1e-400}", "M:19:20: the number 1e-400 is below the smallest a float holds"),
        ("{c: {rtol: 2.5E-330}}", "M:19:24: the number 2.5E-330 is below the smallest"),
    ],
)
def test_a_param_number_no_float_holds_is_refused_at_its_line(
    tmp_path: Path, params: str, expected: str
) -> None:
    """`atol: 1e400` reached the repro as the text "1e400" and `atol: 1e-400` as 0.0 (a
    tolerance of nothing), with validate's 'ok': params have no schema to refuse them."""
    text = GOOD.replace("    gpus: [H100]\n", f"    gpus: [H100]\n    params: {params}\n")
    assert error_of(tmp_path, text).startswith(expected)


def test_param_numbers_a_float_holds_and_quoted_ones_still_load(tmp_path: Path) -> None:
    params = "{zero: 0.0e-400, z: 0e5, sub: 1e-320, big: 1e300, q: '1e400', e: '', l: []}"
    text = GOOD.replace("    gpus: [H100]\n", f"    gpus: [H100]\n    params: {params}\n")
    got = load_matrix(write(tmp_path, text)).repros["mla"].params
    assert got == {
        "zero": 0.0,
        "z": 0.0,
        "sub": 1e-320,
        "big": 1e300,
        "q": "1e400",
        "e": "",
        "l": [],
    }


def test_integers_are_read_as_yaml_1_2_reads_them(tmp_path: Path) -> None:
    """YAML 1.1 read `010` as 8 (octal), `16:9` as 969 (base 60) and `1_000` as 1000: a
    `timeout: 010` ran for 8 seconds and a repro got 969 for an aspect ratio. YAML 1.2,
    as the README promises, reads 10 and the texts "16:9" and "1_000"; its 0o and 0x
    integers are numbers. A text that YAML would not read as a number is not told to
    drop its (absent) quotes."""
    params = (
        "{window: 010, ratio: 16:9, step: 1_000, mask: 0b11, hexa: 0x1F, octal: 0o17, t: 1:30.5}"
    )
    text = GOOD.replace("    gpus: [H100]\n", f"    gpus: [H100]\n    params: {params}\n")
    assert load_matrix(write(tmp_path, text)).repros["mla"].params == {
        "window": 10,
        "ratio": "16:9",
        "step": "1_000",
        "mask": "0b11",
        "hexa": 31,
        "octal": 15,
        "t": "1:30.5",
    }
    timeout = GOOD.replace("    gpus: [H100]\n", "    gpus: [H100]\n    timeout: 010\n")
    assert load_matrix(write(tmp_path, timeout)).repros["mla"].timeout_s == 10
    number = "; write a whole or decimal number"
    for written, hint in [("1_000", number), ("1:30", number), ('"30"', "; drop the quotes")]:
        text = GOOD.replace("    gpus: [H100]\n", f"    gpus: [H100]\n    timeout: {written}\n")
        shown = written.strip('"')
        assert error_of(tmp_path, text) == (
            f"M:19:14: repros.mla.timeout must be a number, not the text '{shown}'{hint}"
        )


def test_booleans_are_read_as_yaml_1_2_reads_them(tmp_path: Path) -> None:
    """YAML 1.1 read `yes`, `no`, `on` and `off` as true and false: a repro's `mode: on`
    or a country code `no` reached it as a boolean, and a key `off:` became the key
    false (refused as "must be a string"). YAML 1.2, as numbers already are read, knows
    only true and false; the rest is text. Keys the same."""
    params = (
        "{a: yes, b: no, c: on, d: off, e: y, f: n, g: Yes, h: OFF, t: true, u: False, "
        "on: 1, no: 2, y: 3}"
    )
    text = GOOD.replace("    gpus: [H100]\n", f"    gpus: [H100]\n    params: {params}\n")
    got = load_matrix(write(tmp_path, text)).repros["mla"].params
    assert got == {
        "a": "yes",
        "b": "no",
        "c": "on",
        "d": "off",
        "e": "y",
        "f": "n",
        "g": "Yes",
        "h": "OFF",
        "t": True,
        "u": False,
        "on": 1,
        "no": 2,
        "y": 3,
    }
    # A flag the schema wants true or false: `yes` is text, said as such.
    flag = GOOD.replace("    gpus: [H100]\n", "    gpus: [H100]\n    isolate: yes\n")
    assert (
        error_of(tmp_path, flag) == "M:19:14: repros.mla.isolate must be true or false, not 'yes'"
    )
    on = GOOD.replace("    gpus: [H100]\n", "    gpus: [H100]\n    isolate: true\n")
    assert load_matrix(write(tmp_path, on)).repros["mla"].isolate is True
    # A GPU type, library or revision called `on` or `no` is that text, not a boolean.
    named = GOOD.replace("  H100:\n", "  no:\n").replace("gpus: [H100]", "gpus: [no]")
    assert [g for g in load_matrix(write(tmp_path, named)).gpus if g != "cpu"] == ["no"]
    timeout = GOOD.replace("    gpus: [H100]\n", "    gpus: [H100]\n    timeout: true\n")
    assert error_of(tmp_path, timeout) == (
        "M:19:14: repros.mla.timeout must be a number (YAML reads true as a boolean); "
        "write a whole or decimal number"
    )


@pytest.mark.parametrize(
    ("params", "column", "shown"),
    [
        ("{'': 1}", 14, "''"),
        ("{n: 1, 'a b': 2}", 20, "'a b'"),
        ("{head-dim: 64}", 14, "'head-dim'"),
        ("{1st: 1}", 14, "'1st'"),
        ("{größe: 1}", 14, "'größe'"),
        ("{'x\\ty': 1}", 14, "'x\\ty'"),
        ("{" + "a" * 65 + ": 1}", 14, "'aaaa"),
    ],
)
def test_a_param_name_that_is_no_python_name_is_refused_at_its_key(
    tmp_path: Path, params: str, column: int, shown: str
) -> None:
    """`params: {"": 1}` passed validate: a name the repro's `DEFAULT_PARAMS` cannot
    declare as it reads it (`params["head-dim"]`, a name with a space) and `--params`
    passed on, for the cell to fail at run time as an unknown param."""
    text = GOOD.replace("    gpus: [H100]\n", f"    gpus: [H100]\n    params: {params}\n")
    error = error_of(tmp_path, text)
    assert error.startswith(f"M:19:{column}: param name {shown}"), error
    assert "1 to 64 ASCII letters, digits and '_', not starting with a digit" in error


def test_param_names_that_are_python_names_load(tmp_path: Path) -> None:
    """Names are the repro's to choose within that: a keyword, a leading '_', any case;
    keys nested below a param are its value's, not names."""
    params = "{class: 1, _private: 2, AtOl_2: 3, " + "a" * 64 + ": 4, nested: {'a b': 1, '': 2}}"
    text = GOOD.replace("    gpus: [H100]\n", f"    gpus: [H100]\n    params: {params}\n")
    got = load_matrix(write(tmp_path, text)).repros["mla"].params
    assert list(got) == ["class", "_private", "AtOl_2", "a" * 64, "nested"]
    assert got["nested"] == {"a b": 1, "": 2}


def test_a_param_that_is_no_json_value_is_named_at_its_own_line(tmp_path: Path) -> None:
    """A date (or binary) deep in a params mapping was said at the `params:` line: in a
    mapping of many lines the reader had to find it."""
    params = "\n      n: 1\n      cases:\n        - {when: 2024-01-01}\n"
    text = GOOD.replace("    gpus: [H100]\n", f"    gpus: [H100]\n    params:{params}")
    assert error_of(tmp_path, text) == (
        "M:22:18: params must be plain JSON values (text, numbers, lists, mappings); quote dates"
    )
    text = GOOD.replace(
        "    gpus: [H100]\n", "    gpus: [H100]\n    params: {n: 1, b: !!binary aGk=}\n"
    )
    assert error_of(tmp_path, text).startswith("M:19:23: params must be plain JSON values")
