"""What of pip's variables an environment image's build gets (`images.build_sources`)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("docker")

from repromatrix.executors.docker.images import build_sources
from repromatrix.options import Sources


def test_folders_urls_and_no_index_of_pip_variables_reach_the_build(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    page = "https://download.example/whl/stable.html"
    env = {"PIP_FIND_LINKS": f"{wheels.as_uri()} {tmp_path / 'absent'} {page}", "PIP_NO_INDEX": "1"}
    got = build_sources(Sources(), env)
    assert got.find_links == (wheels,)
    assert got.no_index
    assert got.pip_args == ("--find-links", page)


def test_a_url_with_a_password_is_not_baked_into_an_image(tmp_path: Path) -> None:
    """Build arguments stay in the image's history: a token there is anyone's."""
    got = build_sources(Sources(), {"PIP_FIND_LINKS": "https://me:token@wheels.example/w/"})
    assert "token" not in " ".join(got.pip_args)
    assert got == Sources()
