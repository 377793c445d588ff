"""What of pip's variables an environment image's build gets (`docker.build_sources`)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("docker")

from repromatrix.executors.docker.build_sources import (
    CERT_IN_BUILD,
    build_cert,
    build_sources,
    on_loopback,
    pip_settings,
)
from repromatrix.options import Sources


def test_folders_urls_and_no_index_of_pip_variables_reach_the_build(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    page = "https://download.example/whl/stable.html"
    env = {"PIP_FIND_LINKS": f"{wheels.as_uri()} {tmp_path / 'absent'} {page}", "PIP_NO_INDEX": "1"}
    got = build_sources(Sources(), env)
    assert got.find_links == (wheels,)
    assert got.no_index
    # One that is not there (a share not mounted) is passed as it is: the build's pip
    # says so, as a local pip does, and the build is the machine's own failure.
    assert got.pip_args == ("--find-links", page, "--find-links", str(tmp_path / "absent"))


def test_a_folder_under_the_home_folder_is_copied_to_the_build_as_pip_takes_it(
    tmp_path: Path,
) -> None:
    """PIP_FIND_LINKS=~/wheels (or pip.conf's find-links): pip expands the `~`, the build
    got it as text, a folder that is not there: its pip looked in the container's home,
    found nothing, and every pinned cell was "No matching distribution found"."""
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    got = build_sources(Sources(), {"PIP_FIND_LINKS": "~/wheels", "HOME": str(tmp_path)})
    assert got.find_links == (wheels,)
    assert got.pip_args == ()


def test_a_url_with_a_password_is_not_baked_into_an_image(tmp_path: Path) -> None:
    """Build arguments stay in the image's history: a token there is anyone's."""
    got = build_sources(Sources(), {"PIP_FIND_LINKS": "https://me:token@wheels.example/w/"})
    assert "token" not in " ".join(got.pip_args)
    assert got == Sources()


def test_index_urls_reach_the_build_and_secrets_or_folders_do_not() -> None:
    env = {
        "PIP_INDEX_URL": "https://pypi.site.example/simple/",
        "PIP_EXTRA_INDEX_URL": "https://me:token@private.example/simple/ "
        "https://ghp_token@other.example/simple/ file:///srv/index "
        "http://127.0.0.1:3141/root/dev/",
    }
    got = build_sources(Sources(pip_args=("--index-url", "https://given.example/")), env)
    assert got.pip_args == (
        "--index-url", "https://pypi.site.example/simple/",
        "--extra-index-url", "http://127.0.0.1:3141/root/dev/",
        "--index-url", "https://given.example/",  # the run's own, last: it wins
    )  # fmt: skip
    assert on_loopback(" ".join(got.pip_args))
    assert not on_loopback("--index-url https://pypi.site.example/simple/")


def test_the_ca_pip_trusts_goes_to_the_build_when_it_is_a_file(tmp_path: Path) -> None:
    cert = tmp_path / "site-ca.pem"
    cert.write_text("-----BEGIN CERTIFICATE-----\n")
    assert build_sources(Sources(), {"PIP_CERT": str(cert)}).pip_args == ("--cert", CERT_IN_BUILD)
    assert build_cert({"PIP_CERT": str(cert)}) == cert
    assert build_sources(Sources(), {"PIP_CERT": str(tmp_path / "absent.pem")}) == Sources()


def test_pip_conf_settings_reach_the_build_where_no_variable_is_set(tmp_path: Path) -> None:
    """A site's index named only in a pip.conf reached a local run's pip, never the build."""
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    config = {
        "index-url": "https://pypi.site.example/simple/",
        "extra-index-url": "\nhttps://more.site.example/simple/\nfile:///srv/index",
        "trusted-host": "pypi.site.example",
        "find-links": str(wheels),
        "no-index": "false",
    }
    notes: list[str] = []
    got = build_sources(Sources(), {}, config, notes)
    assert got.find_links == (wheels,)
    assert not got.no_index
    assert got.pip_args == (
        "--index-url", "https://pypi.site.example/simple/",
        "--extra-index-url", "https://more.site.example/simple/",
        "--trusted-host", "pypi.site.example",
    )  # fmt: skip
    # Said at the first build, naming where it came from: no variable was set.
    assert notes == [
        "extra-index-url of pip's configuration: a file:// index is not passed to image "
        "builds: file:///srv/index"
    ]


def test_a_variable_wins_over_pip_conf_and_an_empty_one_does_not(tmp_path: Path) -> None:
    """As pip takes them: its variables over its files, an empty variable skipped."""
    config = {"index-url": "https://conf.example/simple/", "cert": str(tmp_path / "ca.pem")}
    env = {"PIP_INDEX_URL": "https://env.example/simple/", "PIP_FIND_LINKS": ""}
    assert pip_settings(env, config) == {
        "PIP_INDEX_URL": "https://env.example/simple/",
        "PIP_CERT": str(tmp_path / "ca.pem"),
    }
    assert pip_settings({"PIP_INDEX_URL": ""}, config)["PIP_INDEX_URL"] == config["index-url"]
    # pip.conf's find-links folder that is not there is passed as PIP_FIND_LINKS's is.
    absent = str(tmp_path / "share")
    assert build_sources(Sources(), {}, {"find-links": absent}).pip_args == ("--find-links", absent)
    (tmp_path / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    got = build_sources(Sources(), env, config)
    assert got.pip_args == ("--index-url", "https://env.example/simple/", "--cert", CERT_IN_BUILD)
