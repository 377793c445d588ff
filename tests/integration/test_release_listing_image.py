"""What an index offers an image's python3 (`list_releases` with `image`): real pip reading
a real PEP 503 index (a file: URL), told the image's Python version and platforms."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from bisect_repo import build_wheels
from packaging.version import Version

from repromatrix.options import Sources
from repromatrix.release_files import interpreter_target
from repromatrix.release_listing import list_releases

pytestmark = pytest.mark.integration


def test_an_index_release_for_a_newer_python_than_the_images_is_not_installable_in_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The index offers 1.1 for Requires-Python >=3.9 alone (its page says so) and 1.2 as a
    cp39-only wheel, to an image whose python3 is 3.8: pip listed them for this host's
    Python, so both ran in the image, failed their builds, and the answer was "one of"."""
    files = build_wheels(tmp_path / "files", ["1.0", "1.1", "1.3"], bad=set())
    cp39 = files / "bisectpkg-1.2-cp39-cp39-manylinux2014_x86_64.whl"
    cp39.write_bytes((files / "bisectpkg-1.3-py3-none-any.whl").read_bytes())
    page = tmp_path / "simple" / "bisectpkg" / "index.html"
    page.parent.mkdir(parents=True)
    links = [
        f'<a href="{f.as_uri()}"'
        + (' data-requires-python="&gt;=3.9"' if "-1.1-" in f.name else "")
        + f">{f.name}</a>"
        for f in sorted(files.iterdir())
    ]
    page.write_text("<html><body>\n" + "\n".join(links) + "\n</body></html>\n")
    for var in ("PIP_FIND_LINKS", "PIP_NO_INDEX", "PIP_EXTRA_INDEX_URL", "PIP_CONFIG_FILE"):
        monkeypatch.delenv(var, raising=False)
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "PIP_CONFIG_FILE": "/dev/null",
        "PIP_INDEX_URL": (tmp_path / "simple").as_uri(),
    }
    here = interpreter_target(sys.executable)
    assert here is not None
    # This host's tags, as a 3.8 interpreter of the same platform has them.
    tags = tuple(t.replace(f"cp3{sys.version_info[1]}", "cp38") for t in here.order)
    image = type(here)(tags=frozenset(tags), python=Version("3.8.10"), order=tags)
    sources = Sources(find_links=(), no_index=False, pip_args=())
    got = list_releases(
        "bisectpkg", sources, python=sys.executable, env=env, wheel_tags=False, image=image
    )
    assert got.versions == {Version("1.0"), Version("1.3")}, got
    assert got.elsewhere == {Version("1.1"), Version("1.2")}, got
    assert got.image_python == "3.8.10"
    assert got.complete, got.problems
