"""Which failed library builds a Ray node keeps as its own (`ray/builds.py`'s words): read
from real pip logs of real sdists. A node's own failure is noted "not run here" and built
again by every later run, so a source that does not build must never be taken for one:
its cells would never get their error record."""

from __future__ import annotations

import os
import socket
import sys
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from clihelpers import CliRunner

from repromatrix.envs import EnvCache
from repromatrix.errors import EnvironmentBuildError
from repromatrix.executors.build_words import node_cause
from repromatrix.host import probe_interpreter
from repromatrix.model import InstallMode, Pin, SourceKind, Status
from repromatrix.options import Sources
from repromatrix.store import ResultStore

# The Docker fixtures (docker_matrix, pip_image) come from this module.
pytest_plugins = ("docker_fixtures",)
pytestmark = [pytest.mark.integration]

_EXTENSION = (
    "from setuptools import setup, Extension\n"
    "setup(name={name!r}, version='1.0', ext_modules=[Extension('m', ['m.c'])])\n"
)
#: Each a source that does not build, whatever the node.
SOURCES = {
    "raisespkg": {"setup.py": "raise RuntimeError('this release does not build')\n"},
    # A C file with a syntax error; one that includes a header the source lacks.
    "syntaxpkg": {"setup.py": _EXTENSION.format(name="syntaxpkg"), "m.c": "int f() { return 1 }"},
    "headerpkg": {"setup.py": _EXTENSION.format(name="headerpkg"), "m.c": '#include "own.h"'},
}


@pytest.fixture
def links(tmp_path: Path) -> Path:
    folder = tmp_path / "links"
    folder.mkdir()
    for name, files in SOURCES.items():
        src = tmp_path / f"{name}-1.0"
        src.mkdir()
        for file, text in files.items():
            (src / file).write_text(text)
        (src / "PKG-INFO").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
        with tarfile.open(folder / f"{name}-1.0.tar.gz", "w:gz") as tar:
            tar.add(src, arcname=f"{name}-1.0")
    return folder


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A port bound and never listening: connections to it are refused."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        yield closed.getsockname()[1]


def _failed_build(root: Path, name: str, sources: Sources) -> tuple[str, Path]:
    """Build `name` 1.0 as a node does; its reason and the build's log."""
    pin = Pin(library=name, kind=SourceKind.PYPI, source=name, rev="1.0", label="1.0",
              install=InstallMode.PIP, import_name=name)  # fmt: skip
    log = root / f"{name}.log"
    envs = EnvCache(root / "cache", probe_interpreter(sys.executable, env=os.environ), sources)
    with pytest.raises(EnvironmentBuildError) as failed:
        envs.ensure([pin], log=log)
    return str(failed.value), log


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_a_source_that_does_not_build_is_never_the_nodes_own_failure(
    name: str, links: Path, tmp_path: Path
) -> None:
    why, log = _failed_build(tmp_path, name, Sources(find_links=(links,), no_index=True))
    assert node_cause(why, log) is None, log.read_text()


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_an_index_pip_retried_does_not_make_a_sources_failure_the_nodes(
    name: str, links: Path, tmp_path: Path, closed_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The node's extra index is down, pip warns that it retried it, then builds the sdist
    from the find-links folder, which fails: the words of pip's warning ('Connection
    refused') took the source's failure for the node's, whose cells were then noted 'not
    run here' on every run and never got their error."""
    monkeypatch.setenv("PIP_EXTRA_INDEX_URL", f"http://127.0.0.1:{closed_port}/simple/")
    monkeypatch.setenv("PIP_RETRIES", "1")
    why, log = _failed_build(tmp_path, name, Sources(find_links=(links,)))
    text = log.read_text()
    assert "Connection refused" in text  # pip did try the index and said so
    assert node_cause(why, log) is None, text


def test_an_unreachable_index_is_the_nodes_own_failure(
    tmp_path: Path, closed_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PIP_INDEX_URL", f"http://127.0.0.1:{closed_port}/simple/")
    monkeypatch.setenv("PIP_RETRIES", "1")
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
    monkeypatch.delenv("PIP_EXTRA_INDEX_URL", raising=False)
    why, log = _failed_build(tmp_path, "raisespkg", Sources())
    assert node_cause(why, log) is not None, log.read_text()


def test_a_node_without_its_compiler_is_the_nodes_own_failure(
    links: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """setuptools says "error: [Errno 2] No such file or directory: 'gcc'" of a compiler
    the node lacks (none of the words of older distutils): a node without gcc had the
    whole cluster's cells of the pins end in its error, recorded for good."""
    monkeypatch.setenv("CC", str(tmp_path / "no-such-bin" / "gcc"))
    why, log = _failed_build(tmp_path, "syntaxpkg", Sources(find_links=(links,), no_index=True))
    assert node_cause(why, log) is not None, log.read_text()


@pytest.mark.docker
def test_an_index_retried_in_an_image_build_does_not_make_a_sources_failure_the_nodes(
    links: Path,
    tmp_path: Path,
    closed_port: int,
    run_cli: CliRunner,
    docker_matrix: Callable[..., Path],
    pip_image: str,
) -> None:
    """As above, in an environment image's build (a Ray node's Docker executor), whose
    pip also says it could not fetch from PyPI before it builds ('Could not fetch URL
    ... SSLError' here, where an intercepting proxy answers), in lines the engine colours
    ('\\x1b[91mWARNING: Retrying'): each was read as the node's want."""
    matrix = docker_matrix(
        {
            "probe": "script: {fx}/env_probe_repro.py, gpus: [cpu], bases: [pipbase], "
            "params: {module: raisespkg, good: 1.0}, libraries: {raisespkg: all}"
        },
        {"pipbase": f'ref: "{pip_image}"'},
        extra="libraries:\n  raisespkg: {pypi: raisespkg, import: raisespkg, versions: ['1.0']}\n",
    )
    out = run_cli(
        "--matrix", str(matrix), "run", "--executor", "docker", "--pull", "never",
        "--no-progress", "--results", "results", "--cache", "cache", "--repro", "probe",
        "--find-links", str(links),
        env={"PIP_EXTRA_INDEX_URL": f"http://127.0.0.1:{closed_port}/simple/",
             "PIP_RETRIES": "1", "PIP_FIND_LINKS": "", "PIP_NO_INDEX": ""},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    (record,) = ResultStore(tmp_path / "results").load().results
    assert record.status is Status.ERROR, record.reason
    (log,) = (tmp_path / "cache").glob("runs/*/*/env-build.log")
    text = log.read_text()
    assert "Connection refused" in text  # pip did try the index and said so
    assert "this release does not build" in text
    assert node_cause(record.reason or "", log) is None, text
