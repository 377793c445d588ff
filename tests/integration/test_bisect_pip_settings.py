"""Release bisection where pip's own settings decide which files of a release install:
only-binary / no-binary (PIP_ONLY_BINARY, PIP_NO_BINARY, pip.conf), yanked files of an
index. Real wheels and sdists, real pip installs."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from bisect_repo import BACKEND, PYPROJECT, _init, build_wheels
from test_bisect_pypi import _old_pip_python, _two_ends

pytestmark = pytest.mark.integration


def _sdist(folder: Path, version: str, *, bad: bool) -> Path:
    """A buildable sdist of bisectpkg `version` (its own stdlib backend)."""
    top = f"bisectpkg-{version}"
    files = {
        "pyproject.toml": PYPROJECT.replace('version = "0.1"', f'version = "{version}"'),
        "_backend.py": BACKEND.replace('"0.1"', f'"{version}"'),
        "src/bisectpkg/__init__.py": _init(0, bad),
        "PKG-INFO": f"Metadata-Version: 2.1\nName: bisectpkg\nVersion: {version}\n",
    }
    path = folder / f"{top}.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for name, text in files.items():
            info = tarfile.TarInfo(f"{top}/{name}")
            info.size = len(text.encode())
            tar.addfile(info, io.BytesIO(text.encode()))
    return path


def _run(tmp_path: Path, argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, cwd=tmp_path, env={**os.environ, **env}, capture_output=True, text=True, check=False
    )


@pytest.mark.parametrize(
    ("setting", "named"),
    [
        ({"PIP_ONLY_BINARY": ":all:"}, "PIP_ONLY_BINARY=:all: excludes its sdists"),
        ({"PIP_ONLY_BINARY": "bisectpkg"}, "PIP_ONLY_BINARY=bisectpkg excludes its sdists"),
        ({"PIP_CONFIG_FILE": "pip.conf"}, "only-binary = :all: in pip's configuration"),
    ],
)
def test_a_release_pip_settings_exclude_is_not_installable_here_and_names_the_setting(
    tmp_path: Path, setting: dict[str, str], named: str
) -> None:
    """1.2 is offered only as an sdist and pip's only-binary takes wheels alone: pip
    cannot install it, yet it was a candidate, "one of 2 … pkg 1.2 [error: No matching
    distribution found for bisectpkg==1.2]"; it is a release not installable here, and
    the way out names the setting that excludes it."""
    wheels = build_wheels(tmp_path / "wheels", ["1.0", "2.0"], bad={"2.0"})
    _sdist(wheels, "1.2", bad=True)
    (tmp_path / "pip.conf").write_text("[global]\nonly-binary = :all:\n")
    env = {k: str(tmp_path / v) if k == "PIP_CONFIG_FILE" else v for k, v in setting.items()}
    out = _run(tmp_path, _two_ends(tmp_path, wheels, "1.0", "2.0"), env)
    assert "one of" not in out.stdout, out.stdout
    assert (
        "first bad release not known: it is between 1.0 (good) and 2.0 (bad), 2.0 included"
        in out.stdout
    ), out.stdout
    assert "note: release(s) between 1.0 (good) and 2.0 (bad) were not run (1.2)" in out.stdout
    assert named in out.stdout, out.stdout
    assert out.returncode == 6, out.stderr
    (line,) = [ln for ln in out.stderr.splitlines() if "error:" in ln]
    assert "1.2 (not installable here) between 1.0 and 2.0 was not run" in line, line
    assert named in line, line
    assert "Traceback" not in out.stderr


def test_a_release_pip_no_binary_leaves_without_an_sdist_is_not_installable_here(
    tmp_path: Path,
) -> None:
    """PIP_NO_BINARY=bisectpkg: pip builds bisectpkg from sdists alone, so 1.2, offered
    only as a wheel, does not install; it was run as an error."""
    folder = tmp_path / "wheels"
    folder.mkdir()
    _sdist(folder, "1.0", bad=False)
    _sdist(folder, "2.0", bad=True)
    build_wheels(folder, ["1.2"], bad={"1.2"})
    out = _run(tmp_path, _two_ends(tmp_path, folder, "1.0", "2.0"), {"PIP_NO_BINARY": "bisectpkg"})
    assert "one of" not in out.stdout, out.stdout
    assert "PIP_NO_BINARY=bisectpkg excludes its wheels" in out.stdout, out.stdout
    assert out.returncode == 6, out.stderr


def _simple_index(tmp_path: Path, files: dict[Path, str | None]) -> str:
    """A PEP 503 index of bisectpkg in a folder (pip reads `file://` pages): each file
    linked, yanked (PEP 592 `data-yanked`) with its reason where one is given."""
    page = tmp_path / "simple" / "bisectpkg"
    page.mkdir(parents=True)
    links = []
    for path, yanked in files.items():
        mark = "" if yanked is None else f' data-yanked="{yanked}"'
        links.append(f'<a href="{path.as_uri()}"{mark}>{path.name}</a><br/>')
    (page / "index.html").write_text("<html><body>\n" + "\n".join(links) + "\n</body></html>\n")
    return (tmp_path / "simple").as_uri() + "/"


def _index_argv(tmp_path: Path, folder: Path, good: str, bad: str) -> list[str]:
    """`_two_ends`, reading the index alone (no --find-links, no --no-index)."""
    argv = _two_ends(tmp_path, folder, good, bad)
    return [a for a in argv if a != "--no-index" and not a.startswith("--find-links")]


@pytest.mark.parametrize("old_pip", [False, True])
def test_a_release_an_index_offers_only_as_files_pip_settings_exclude_is_not_run(
    tmp_path: Path, old_pip: bool
) -> None:
    """pip 23's `index versions` ignores only-binary, so the index's sdist-only 1.2 was a
    candidate pip then could not install ("one of 2 … pkg 1.2 [error …]"); pip 26's
    skips it, saying why in its log alone, so 1.2 was lost: "first bad release: pkg 2.0",
    exit 0, past a release nobody ran."""
    python = _old_pip_python() if old_pip else sys.executable
    if python is None:  # CI provisions one (python3-pip); elsewhere it may be missing
        if os.environ.get("CI") == "true":
            pytest.fail("no interpreter with pip < 24: install python3-pip (Debian's pip 23)")
        pytest.skip("no interpreter with pip < 24 on PATH or as /usr/bin/python3")
    files = build_wheels(tmp_path / "files", ["1.0", "2.0"], bad={"2.0"})
    _sdist(files, "1.2", bad=True)
    index = _simple_index(tmp_path, dict.fromkeys(sorted(files.iterdir())))
    env = {"PIP_INDEX_URL": index, "PIP_ONLY_BINARY": ":all:", "PIP_FIND_LINKS": ""}
    argv = [*_index_argv(tmp_path, files, "1.0", "2.0"), f"--python={python}"]
    out = _run(tmp_path, argv, env)
    assert "one of" not in out.stdout, out.stdout
    assert "first bad release:" not in out.stdout, out.stdout
    assert "2 releases (from index)" in out.stdout, out.stdout
    assert "PIP_ONLY_BINARY=:all: excludes its sdists" in out.stdout, out.stdout
    assert out.returncode == 6, out.stderr


def test_a_release_yanked_here_beside_a_file_for_another_platform_says_declare_it(
    tmp_path: Path,
) -> None:
    """1.2's Linux wheel is yanked, its Windows wheel is not: pip installs 1.2 here when
    pinned, yet it was said only "not installable here" (another interpreter or image),
    without the way that works: declare it in matrix.yaml."""
    files = build_wheels(tmp_path / "files", ["1.0", "1.2", "2.0"], bad={"1.2", "2.0"})
    windows = files / "bisectpkg-1.2-cp311-cp311-win_amd64.whl"
    windows.write_bytes((files / "bisectpkg-1.2-py3-none-any.whl").read_bytes())
    yanked = {files / "bisectpkg-1.2-py3-none-any.whl": "broken build"}
    index = _simple_index(tmp_path, {p: yanked.get(p) for p in sorted(files.iterdir())})
    env = {"PIP_INDEX_URL": index, "PIP_FIND_LINKS": ""}
    out = _run(tmp_path, _index_argv(tmp_path, files, "1.0", "2.0"), env)
    assert "note: yanked release(s) between 1.0 (good) and 2.0 (bad) were not run (1.2)" in (
        out.stdout
    ), out.stdout
    assert out.returncode == 6, out.stderr
    (line,) = [ln for ln in out.stderr.splitlines() if "error:" in ln]
    assert "1.2 (yanked) between 1.0 and 2.0 was not run" in line, line
    assert "declare a yanked release in" in line, line


def test_a_pip_find_links_folder_release_requires_python_excludes_is_not_run_from_the_index(
    tmp_path: Path,
) -> None:
    """A folder named only in PIP_FIND_LINKS, an index reachable: `pip index versions`
    reads the folder too and, its wheel's Requires-Python unknown to it, listed 1.1 again,
    a candidate whose install failed (a skip) where it is a release not installable here."""
    import zipfile

    folder = build_wheels(tmp_path / "wheels", ["1.0", "1.1", "2.0"], bad={"1.1", "2.0"})
    wheel = folder / "bisectpkg-1.1-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as z:
        files = {n: z.read(n) for n in z.namelist()}
    meta = "bisectpkg-1.1.dist-info/METADATA"
    files[meta] = files[meta] + b"Requires-Python: <3\n"
    with zipfile.ZipFile(wheel, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    index = _simple_index(tmp_path, {})
    env = {"PIP_INDEX_URL": index, "PIP_FIND_LINKS": str(folder)}
    out = _run(tmp_path, _index_argv(tmp_path, folder, "1.0", "2.0"), env)
    assert "one of" not in out.stdout, out.stdout
    assert "note: release(s) between 1.0 (good) and 2.0 (bad) were not run (1.1)" in out.stdout
    assert out.returncode == 6, out.stderr


@pytest.mark.parametrize("option", ["index-url", "extra-index-url"])
def test_an_index_pip_conf_sets_for_installs_alone_is_listed_too(
    tmp_path: Path, option: str
) -> None:
    """pip.conf's `[install]` section names the index the releases between the ends come
    from; `pip index versions` reads `[global]` (and `[index]`) alone, so the listing
    read only the global index, offering the two ends: "first bad release: pkg 2.0",
    exit 0, where pip installs 1.1 and 1.2 (bad from 1.2) from the install's index."""
    files = build_wheels(tmp_path / "files", ["1.0", "1.1", "1.2", "2.0"], bad={"1.2", "2.0"})
    wheels = sorted(files.iterdir())
    ends = [w for w in wheels if w.name.split("-")[1] in ("1.0", "2.0")]
    everything = _simple_index(tmp_path / "all", dict.fromkeys(wheels))
    only_ends = _simple_index(tmp_path / "ends", dict.fromkeys(ends))
    between = _simple_index(tmp_path / "between", dict.fromkeys(w for w in wheels if w not in ends))
    install = everything if option == "index-url" else between
    conf = tmp_path / "pip.conf"
    conf.write_text(f"[global]\nindex-url = {only_ends}\n[install]\n{option} = {install}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env |= {"PIP_CONFIG_FILE": str(conf), "XDG_CONFIG_HOME": str(tmp_path / "no-user-config")}
    argv = _index_argv(tmp_path, files, "1.0", "2.0")
    out = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "4 releases (from index)" in out.stdout, out.stdout
    assert "first bad release: pkg 1.2\n" in out.stdout, out.stdout
