"""pip's index settings (PIP_INDEX_URL, PIP_EXTRA_INDEX_URL, ..., and the same in its
configuration files) of a run and an environment image's build, against the real engine
and a real package index on this host."""

from __future__ import annotations

import contextlib
import functools
import http.server
import ipaddress
import shutil
import ssl
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from clihelpers import CliRunner
from test_docker_envs import TINYLIB, derived_image, latest

from repromatrix.model import Status

# The fixtures docker_client, docker_matrix and pip_image come from this module (wheelhouse:
# tests/conftest.py).
pytest_plugins = ("docker_fixtures",)
pytestmark = [pytest.mark.integration, pytest.mark.docker]


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


@contextlib.contextmanager
def _serving(
    tmp_path: Path,
    wheelhouse: Path,
    address: str,
    tls: ssl.SSLContext | None = None,
    port: int = 0,
) -> Iterator[str]:
    """A package index of tinylib's wheels (a folder's listing, which pip reads as one)
    served at `address` (over https with `tls`; on `port`, else a free one), as a devpi or
    a proxy of the site's would be; its URL."""
    project = tmp_path / "index" / "simple" / "tinylib"
    project.mkdir(parents=True, exist_ok=True)
    for wheel in wheelhouse.glob("*.whl"):
        shutil.copy(wheel, project)
    handler = functools.partial(_Quiet, directory=str(tmp_path / "index"))
    server = http.server.ThreadingHTTPServer((address, port), handler)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"{'https' if tls else 'http'}://{address}:{server.server_port}/simple/"
    finally:
        server.shutdown()
        server.server_close()


def _gateway(docker_client: Any) -> str:
    """This host's address on the engine's bridge network, as its containers reach it: the
    network's gateway, which some engines (20.10) leave out of its IPAM config, where it is
    the subnet's first address (172.17.0.1)."""
    config = docker_client.networks.get("bridge").attrs["IPAM"]["Config"][0]
    return str(config.get("Gateway") or ipaddress.ip_network(config["Subnet"])[1])


@pytest.fixture
def index(tmp_path: Path, wheelhouse: Path) -> Iterator[str]:
    """The index on this host's loopback."""
    with _serving(tmp_path, wheelhouse, "127.0.0.1") as url:
        yield url


@pytest.mark.parametrize("variable", ["PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL"])
def test_pip_index_urls_of_the_host_reach_an_environment_build(
    tmp_path: Path,
    run_cli: CliRunner,
    docker_matrix: Callable[..., Path],
    docker_client: Any,
    pip_image: str,
    index: str,
    variable: str,
) -> None:
    """PIP_INDEX_URL (or PIP_EXTRA_INDEX_URL) set for a run: a local run's pip reads it,
    the environment image's pip never saw it (PIP_FIND_LINKS reached it), so every pinned
    cell in Docker was an error record ('No matching distribution found') reused by later
    runs. An index on the host's loopback (a devpi) is reached from the build as well."""
    _built_from(tmp_path, run_cli, docker_matrix, docker_client, pip_image, {variable: index})


def test_a_plain_http_index_pip_is_told_to_trust_is_trusted_in_the_build(
    tmp_path: Path,
    run_cli: CliRunner,
    docker_matrix: Callable[..., Path],
    docker_client: Any,
    pip_image: str,
    wheelhouse: Path,
) -> None:
    """A site's index over plain http on another machine (here: this host as the
    engine's bridge network sees it) needs PIP_TRUSTED_HOST, which a local run's pip
    reads; the build's pip was given the index and not the trust, and ignored the index
    ('not a trusted or secure host'): every pinned cell an error record."""
    bridge = _gateway(docker_client)
    with _serving(tmp_path, wheelhouse, bridge) as url:
        env = {"PIP_INDEX_URL": url, "PIP_TRUSTED_HOST": bridge}
        _built_from(tmp_path, run_cli, docker_matrix, docker_client, pip_image, env)


def test_the_certificate_pip_is_told_to_trust_reaches_the_build(
    tmp_path: Path,
    run_cli: CliRunner,
    docker_matrix: Callable[..., Path],
    docker_client: Any,
    pip_image: str,
    wheelhouse: Path,
) -> None:
    """A site's index over https whose certificate a CA of the site's signs (as behind an
    intercepting proxy): a local run's pip trusts it by PIP_CERT; the build's pip was
    given the index, not the CA, and failed ('CERTIFICATE_VERIFY_FAILED'): every pinned
    cell an error record. The CA file now goes into the build (a CA is no secret)."""
    cert, key = tmp_path / "ca.pem", tmp_path / "ca.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    with _serving(tmp_path, wheelhouse, "127.0.0.1", tls) as url:
        env = {"PIP_INDEX_URL": url, "PIP_CERT": str(cert)}
        _built_from(tmp_path, run_cli, docker_matrix, docker_client, pip_image, env)


def _built_from(
    tmp_path: Path,
    run_cli: CliRunner,
    docker_matrix: Callable[..., Path],
    docker_client: Any,
    pip_image: str,
    env: dict[str, str],
) -> None:
    """Run tinylib's cells in Docker with `env`: its pins come from the index it names.
    The run has a home of its own, without this host's user pip.conf (unless `env` names
    another HOME)."""
    tag = f"repromatrix-test-pipindex:{'-'.join(sorted(env)).lower().replace('_', '-')}"
    with derived_image(docker_client, pip_image, tag, f"LABEL pipindex={tmp_path.name}"):
        matrix = docker_matrix(
            {
                "probe": "script: {fx}/env_probe_repro.py, gpus: [cpu], bases: [indexbase], "
                "params: {module: tinylib, good: 1.0}, libraries: {tinylib: all}"
            },
            {"indexbase": f'ref: "{tag}"'},
            extra=TINYLIB,
        )
        out = run_cli(
            "--matrix", str(matrix), "run", "--executor", "docker", "--pull", "never",
            "--no-progress", "--results", "results", "--cache", "cache", "--repro", "probe",
            env={"HOME": str(tmp_path / "home"), **env, "PIP_FIND_LINKS": "", "PIP_NO_INDEX": ""},
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        got = latest(tmp_path / "results")
        one, two = got["probe[cpu,indexbase,tinylib=1.0]"], got["probe[cpu,indexbase,tinylib=2.0]"]
        assert one.status is Status.PASSED, one.reason
        assert two.status is Status.REGRESSED, two.reason


@pytest.mark.parametrize(
    ("where", "option"),
    [
        ("PIP_CONFIG_FILE", "index-url"),
        ("PIP_CONFIG_FILE", "extra-index-url"),
        ("HOME", "index-url"),
    ],
)
def test_an_index_of_pip_conf_reaches_an_environment_build(
    tmp_path: Path,
    run_cli: CliRunner,
    docker_matrix: Callable[..., Path],
    docker_client: Any,
    pip_image: str,
    wheelhouse: Path,
    where: str,
    option: str,
) -> None:
    """A site's index (and its trust) given in pip's configuration file (PIP_CONFIG_FILE,
    or the user's ~/.config/pip/pip.conf), not in its variables: a local run's pip read
    it, the environment image's build never saw it, and every pinned cell in Docker was
    an error record ('No matching distribution found')."""
    bridge = _gateway(docker_client)
    with _serving(tmp_path, wheelhouse, bridge) as url:
        home = tmp_path / "home"
        conf = home / ".config" / "pip" / "pip.conf" if where == "HOME" else tmp_path / "pip.conf"
        conf.parent.mkdir(parents=True, exist_ok=True)
        conf.write_text(f"[global]\n{option} = {url}\n[install]\ntrusted-host = {bridge}\n")
        env = {"HOME": str(home)} if where == "HOME" else {where: str(conf)}
        _built_from(tmp_path, run_cli, docker_matrix, docker_client, pip_image, env)


def test_a_find_links_folder_of_pip_conf_reaches_an_environment_build(
    tmp_path: Path,
    run_cli: CliRunner,
    docker_matrix: Callable[..., Path],
    docker_client: Any,
    pip_image: str,
    wheelhouse: Path,
) -> None:
    """find-links and no-index in the user's pip.conf (an offline host's wheels): a local
    run's pip read them, the build's pip went to the public index instead."""
    conf = tmp_path / "home" / ".config" / "pip" / "pip.conf"
    conf.parent.mkdir(parents=True)
    conf.write_text(f"[global]\nfind-links = {wheelhouse}\nno-index = true\n")
    env = {"HOME": str(tmp_path / "home")}
    _built_from(tmp_path, run_cli, docker_matrix, docker_client, pip_image, env)
