"""Generated matrix documents through `repromatrix validate`: never a traceback, never an
internal error, every refusal one line naming file:line:column, each within 10 s of CPU and
256 MiB (a bound on blow-ups such as alias bombs, not a speed target; CPU time, so that a
loaded machine's waiting does not count).

The documents are structured: a valid matrix with one value replaced by something hostile
(a wrong type, a huge or non-finite number, NUL and escape characters, non-ASCII digits,
option-like strings such as `--index-url=...`, an 8 KB string, deep nesting), plus raw
texts no dumper would write: alias bombs, nesting thousands deep, NUL bytes, invalid
UTF-8, truncations, huge integers, several documents, unknown tags.
"""

from __future__ import annotations

import contextlib
import copy
import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from bounded import Spending
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from repromatrix.cli import main
from repromatrix.config import load_matrix
from repromatrix.errors import ReproMatrixError
from repromatrix.expand import expand

#: file:line:column at the start of every refusal of a regular file.
LOCATED = re.compile(r"^repromatrix: error: [^\n]*?:\d+:\d+: ")
LIMIT_CPU_S = 10.0
LIMIT_BYTES = 256 * 2**20

BASE: dict[str, Any] = {
    "schema": 1,
    "defaults": {"timeout": 600},
    "images": {
        "ngc": {
            "ref": "nvcr.io/nvidia/pytorch:25.01-py3",
            "released": "2025-01",
            "ships": {"cuda": "12.8.0"},
        }
    },
    "gpus": {"H100": {"compute_capability": "9.0", "smi_names": ["NVIDIA H100 80GB HBM3"]}},
    "libraries": {
        "flashinfer": {
            "pypi": "flashinfer-python",
            "git": "https://github.com/flashinfer-ai/flashinfer",
            "import": "flashinfer",
            "versions": ["0.2.3", {"git": "27906fdbf", "note": "#942"}, {"pypi": "0.5.3"}],
            "requires": ["tqdm"],
        },
        "fla": {
            "git": "https://github.com/fla-org/flash-linear-attention",
            "import": "fla",
            "install": "pythonpath",
            "versions": [{"git": "7336d0cf"}, {"git": "85992884"}],
        },
    },
    "repros": {
        "mla": {
            "script": "repros/mla.py",
            "gpus": ["H100", "cpu"],
            "bases": ["host", "ngc"],
            "libraries": {"flashinfer": "all", "fla": ["7336d0cf"]},
            "params": {"batch": 4},
            "needs": ["torch"],
            "issue": "https://github.com/flashinfer-ai/flashinfer/issues/941",
        }
    },
    "exclude": [{"repro": "mla", "gpu": "cpu"}],
    "include": [
        {
            "repro": "mla",
            "gpu": "H100",
            "base": "ngc",
            "libraries": {"flashinfer": "0.2.3", "fla": "85992884"},
        }
    ],
}

HOSTILE_STRINGS = [
    "--index-url=http://evil.example/simple",
    "--upload-pack=touch /tmp/pwned",
    "--config=core.sshCommand=touch /tmp/pwned",
    "-e.",
    "ext::sh -c touch% /tmp/pwned",
    "../../etc/passwd",
    "/proc/self/mem",
    "nvcr.io/nvidia/pytorch:25.01-py3\n",
    "nvcr.io/nvidia/pytorch:２５.01",
    "٩.٠",
    "H１００",
    "a\x00b",
    "\x1b]52;c;ZXZpbA==\x07",
    "\x1b[31mred\x1b[0m",
    "\ud800",
    "\u202egnp.exe",
    "",
    " ",
    "..",
    "x" * 8000,
    "é" * 300,
    "https://user:s3cr3t-t0ken@example.com/x.git",
]


def _nested(levels: int) -> Any:
    value: Any = "leaf"
    for _ in range(levels):
        value = [value]
    return value


HOSTILE = st.one_of(
    st.sampled_from(HOSTILE_STRINGS),
    st.text(max_size=60),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    st.lists(st.sampled_from(HOSTILE_STRINGS), max_size=3),
    st.dictionaries(st.sampled_from(["a", "--x", "ref", "git"]), st.integers(), max_size=3),
    st.integers(min_value=20, max_value=300).map(_nested),
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, (*prefix, i))


PATHS = [p for p in _paths(BASE) if p]


def _mutated(path: tuple[Any, ...], value: Any, as_key: bool) -> dict[str, Any]:
    doc = copy.deepcopy(BASE)
    node = doc
    for part in path[:-1]:
        node = node[part]
    last = path[-1]
    if as_key and isinstance(node, dict) and isinstance(value, str):
        node[value] = node.pop(last)
    else:
        node[last] = value
    return doc


_DUMPER: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def _dump(doc: Any) -> str:
    for unicode in (True, False):
        try:
            return yaml.dump(doc, Dumper=_DUMPER, allow_unicode=unicode, width=1_000_000)
        except (yaml.YAMLError, UnicodeEncodeError, RecursionError):
            continue
    return yaml.safe_dump(doc, width=1_000_000)


def _bomb(levels: int, width: int) -> str:
    lines = ["schema: 1", f"a0: &a0 [{', '.join(['lol'] * width)}]"]
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]")
    return "\n".join(lines) + "\nrepros: {}\n"


RAW = st.one_of(
    st.builds(_bomb, st.integers(2, 12), st.integers(2, 12)),
    st.builds(lambda n: "schema: 1\nrepros: " + "[" * n + "]" * n, st.integers(50, 20_000)),
    st.builds(
        lambda n: "schema: 1\nx:\n" + "".join(" " * i + "- \n" for i in range(n)),
        st.integers(50, 400),
    ),
    st.builds(lambda n: "schema: 1\nrepros:\n  a:\n    timeout: " + "9" * n, st.integers(18, 6000)),
    st.builds(lambda n: "schema: 1\n" + "k" * n + ": 1\n", st.integers(100, 600_000)),
    st.sampled_from(
        [
            "schema: 1\x00\n",
            "schema: 1\n---\nschema: 1\n",
            "schema: !!python/object:os.system 1\n",
            "schema: !custom 1\n",
            "schema: 1\nrepros: *nowhere\n",
            "schema: 1\nx: &a [*a]\n",
            "schema: 1\n<<: {a: 1}\n",
            'schema: 1\nrepros: {a: {script: "\\e[31m"}}\n',
            'schema: 1\nrepros: {a: {script: "\\ud800"}}\n',
            "schema: 1\nrepros: {? [a]: 1}\n",
            "schema: 1\nreleased: 2024-13-45\n",
            "\ufeffschema: 1\n",
            "[1, 2",
            "{",
            "",
            "- a\n- b\n",
        ]
    ),
)


@st.composite
def documents(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["mutated", "mutated", "mutated", "raw", "bytes"]))
    if kind == "raw":
        raw: str = draw(RAW)
        return raw.encode("utf-8", errors="surrogatepass")
    text = _dump(
        _mutated(draw(st.sampled_from(PATHS)), draw(HOSTILE), draw(st.booleans()))
        if kind == "mutated"
        else BASE
    )
    data = text.encode("utf-8", errors="surrogatepass")
    if kind == "bytes":  # a byte-level mutation of a valid file: NUL, invalid UTF-8, cut
        at = draw(st.integers(0, len(data)))
        junk = draw(st.sampled_from([b"\x00", b"\xff\xfe", b"\xc3", b"\x1b[2J", b"&a *a", b""]))
        data = data[:at] + junk + data[at + draw(st.integers(0, 5)) :]
    return data


SEEN = {"examples": 0, "refused": 0, "max_s": 0.0, "max_bytes": 0}


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fuzz")
    (root / "repros").mkdir()
    (root / "repros" / "mla.py").write_text("print('hi')\n")
    # Once before measuring: the first validation imports the CLI's modules.
    (root / "matrix.yaml").write_text(_dump(BASE))
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["--matrix", str(root / "matrix.yaml"), "validate"]) == 0
    return root


@settings(
    max_examples=2000,
    deadline=None,  # measured below, with the memory
    derandomize=True,
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)
@given(data=documents())
def test_validate_refuses_any_document_in_one_located_line(folder: Path, data: bytes) -> None:
    path = folder / "matrix.yaml"
    path.write_bytes(data)
    with Spending() as spent:
        message = validate(path)
    elapsed, peak = spent.cpu_s, spent.peak_bytes
    SEEN["examples"] += 1
    SEEN["max_s"] = max(SEEN["max_s"], elapsed)
    SEEN["max_bytes"] = max(SEEN["max_bytes"], peak)
    assert elapsed < LIMIT_CPU_S, (elapsed, data[:200])
    assert peak < LIMIT_BYTES, (peak, data[:200])
    if message is None:
        return
    SEEN["refused"] += 1
    assert "\n" not in message, message
    assert len(message) < 300, message
    assert LOCATED.match(message), message


def validate(path: Path) -> str | None:
    """What `repromatrix validate` does (commands._validate) without parsing a command line:
    None when valid, else the line the CLI prints. Any other exception fails the test."""
    try:
        expand(load_matrix(path))
    except ReproMatrixError as exc:
        code = exc.exit_code
        message = f"repromatrix: error: {exc}"
    else:
        return None
    assert code == 2, message
    return message


def test_validate_through_the_cli_prints_the_same_one_line(folder: Path) -> None:
    path = folder / "cli.yaml"
    path.write_text(_bomb(9, 9))
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(["--matrix", str(path), "validate"])
    assert code == 2
    assert err.getvalue() == f"{validate(path)}\n"
    assert "alias bomb" in err.getvalue()


def test_the_fuzzing_above_ran_and_stayed_in_bounds() -> None:
    """Runs after the property (file order): what it saw, for the record."""
    print(f"matrix fuzz: {SEEN}")
    if SEEN["examples"] == 0:
        pytest.skip("run with the property test above")
    assert SEEN["examples"] >= 2000
    assert 0 < SEEN["refused"] < SEEN["examples"]  # both kinds of ending were exercised
