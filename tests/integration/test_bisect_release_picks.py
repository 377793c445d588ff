"""Release bisection where a release's files disagree (real wheels, real pip): pip takes
one file of a release, its best-ranked wheel (the higher build tag, then the file whose
URL sorts first, across every --find-links folder), and its Requires-Python alone decides
whether the release installs here."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from bisect_repo import REPRO, _init, build_wheels

pytestmark = pytest.mark.integration


def _bisect(
    tmp_path: Path, folders: list[Path], good: str, bad: str, *more: str
) -> subprocess.CompletedProcess[str]:
    """`repromatrix bisect scale --good GOOD --bad BAD` over `folders` (--no-index),
    matrix.yaml declaring the two ends, `more` arguments added."""
    (tmp_path / "repros").mkdir(exist_ok=True)
    (tmp_path / "repros" / "scale.py").write_text(REPRO)
    matrix = tmp_path / "matrix.yaml"
    matrix.write_text(
        "schema: 1\nlibraries:\n  pkg: {pypi: bisectpkg, import: bisectpkg, "
        f"versions: [{good!r}, {bad!r}]}}\n"
        "repros:\n  scale: {script: repros/scale.py, gpus: [cpu], libraries: {pkg: all}}\n"
    )
    argv = [sys.executable, "-m", "repromatrix", "--matrix", str(matrix), "bisect", "scale"]
    argv += ["--library=pkg", f"--good={good}", f"--bad={bad}", "--executor=local"]
    argv += ["--no-progress", "--no-index", f"--cache={tmp_path / 'c'}", *more]
    argv += [f"--find-links={f}" for f in folders]
    return subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, check=False)


def _wheel(path: Path, *, bad: bool, requires: str = "") -> None:
    """A wheel of bisectpkg at `path` (its name gives version and tags), bad or good, with
    `requires` as its Requires-Python."""
    version = path.name.split("-")[1]
    dist = f"bisectpkg-{version}.dist-info"
    meta = f"Metadata-Version: 2.1\nName: bisectpkg\nVersion: {version}\n"
    meta += f"Requires-Python: {requires}\n" if requires else ""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("bisectpkg/__init__.py", _init(7, bad))
        zf.writestr(f"{dist}/METADATA", meta)
        zf.writestr(
            f"{dist}/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        )
        zf.writestr(f"{dist}/RECORD", "")


_NOT_HERE = (
    "first bad release not known: it is between 1.1 (good) and 1.3 (bad), 1.3 included; "
    "1.2 between them was not run here"
)


@pytest.mark.parametrize(
    ("excluded", "admitted", "answer"),
    [
        # Tied at the best tag, pip takes the file whose URL sorts first ("py2.py3" < "py3").
        ("bisectpkg-1.2-py2.py3-none-any.whl", "bisectpkg-1.2-py3-none-any.whl", _NOT_HERE),
        (
            "bisectpkg-1.2-py3-none-any.whl",
            "bisectpkg-1.2-py2.py3-none-any.whl",
            "first bad release: pkg 1.2\n",
        ),
        # The higher build tag before any URL.
        ("bisectpkg-1.2-2-py3-none-any.whl", "bisectpkg-1.2-1-py3-none-any.whl", _NOT_HERE),
        (
            "bisectpkg-1.2-1-py3-none-any.whl",
            "bisectpkg-1.2-2-py3-none-any.whl",
            "first bad release: pkg 1.2\n",
        ),
        # The same file name in two folders: the one in the folder whose path sorts first.
        ("a/bisectpkg-1.2-py3-none-any.whl", "b/bisectpkg-1.2-py3-none-any.whl", _NOT_HERE),
        (
            "b/bisectpkg-1.2-py3-none-any.whl",
            "a/bisectpkg-1.2-py3-none-any.whl",
            "first bad release: pkg 1.2\n",
        ),
    ],
)
def test_of_tied_wheels_the_one_pip_takes_decides_with_its_requires_python(
    tmp_path: Path, excluded: str, admitted: str, answer: str
) -> None:
    """Two wheels of 1.2 tied at pip's best rank, one for Requires-Python >=3.99: 1.2 was a
    candidate if either admitted this Python, but pip takes one of them and tries no other,
    so where it took the excluded one the install failed ("requires a different Python")
    and the answer was "one of" for a release not installable here."""
    folder = build_wheels(tmp_path / "a", ["1.0", "1.1", "1.3"], bad={"1.3"})
    (tmp_path / "b").mkdir()
    _wheel(
        folder.parent / excluded if "/" in excluded else folder / excluded,
        bad=True,
        requires=">=3.99",
    )
    _wheel(folder.parent / admitted if "/" in admitted else folder / admitted, bad=True)
    out = _bisect(tmp_path, [tmp_path / "b", folder], "1.0", "1.3")
    assert "Traceback" not in out.stderr, out.stderr
    assert answer in out.stdout, out.stdout + out.stderr
    assert "one of" not in out.stdout, out.stdout
    assert out.returncode == (0 if answer.startswith("first bad release:") else 6), out.stderr


def test_in_an_image_a_release_yanked_only_as_a_windows_wheel_is_not_installable_here(
    tmp_path: Path,
) -> None:
    """1.1's one file, a Windows wheel, is yanked (a page in a --find-links folder says
    so). On the host it was a release not installable here; bisecting in an image (another
    Python installs) it was still a yanked release whose way out was "declare it in
    matrix.yaml", which installs nothing in a Linux image. A yanked Linux wheel stays a
    yanked release there: declaring it may run it."""
    from repromatrix.options import Sources
    from repromatrix.release_listing import list_releases

    files = build_wheels(tmp_path / "links" / "files", ["1.0", "1.1", "1.2", "1.3"], bad=set())
    windows = files / "bisectpkg-1.1-cp311-cp311-win_amd64.whl"
    (files / "bisectpkg-1.1-py3-none-any.whl").rename(windows)
    linux = files / "bisectpkg-1.2-cp310-cp310-manylinux_2_17_x86_64.whl"
    (files / "bisectpkg-1.2-py3-none-any.whl").rename(linux)
    links = [
        f'<a href="files/{f.name}"{" data-yanked=gone" if f in (windows, linux) else ""}>'
        f"{f.name}</a>"
        for f in sorted(files.iterdir())
    ]
    page = tmp_path / "links" / "links.html"
    page.write_text("<html><body>\n" + "\n".join(links) + "\n</body></html>\n")
    sources = Sources(find_links=(page.parent,), no_index=True)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PIP_CONFIG_FILE": "/dev/null"}
    for image in (False, True):
        got = list_releases(
            "bisectpkg", sources, python=sys.executable, env=env, wheel_tags=not image
        )
        assert {str(v) for v in got.versions} == {"1.0", "1.3"}, (image, got)
        assert {str(v) for v in got.elsewhere} == {"1.1"} | (set() if image else {"1.2"}), (
            image,
            got,
        )
        assert {str(v) for v in got.yanked} == ({"1.2"} if image else set()), (image, got)


def test_a_release_deleted_from_the_folder_since_the_last_bisection_is_no_gap_passed_over(
    tmp_path: Path,
) -> None:
    """A bisection found 1.2; its wheel was then deleted from the folder. Run again, the
    stored runs of 1.1 (good) and 1.3 (bad) were taken as adjacent: "first bad release:
    pkg 1.3", exit 0, while the store itself says 1.2 was bad. The release the sources
    offered before is one that may be the answer: a range, exit 6, saying how to run it."""
    folder = build_wheels(tmp_path / "a", ["1.0", "1.1", "1.2", "1.3"], bad={"1.2", "1.3"})
    first = _bisect(tmp_path, [folder], "1.0", "1.3")
    assert "first bad release: pkg 1.2\n" in first.stdout, first.stdout + first.stderr
    (folder / "bisectpkg-1.2-py3-none-any.whl").unlink()
    again = _bisect(tmp_path, [folder], "1.0", "1.3")
    assert "first bad release: pkg 1.3" not in again.stdout, again.stdout
    assert (
        "first bad release not known: it is between 1.1 (good) and 1.3 (bad), 1.3 included"
    ) in again.stdout, again.stdout
    # 1.2 ran (regressed) in the first bisection: "not run" was false of it.
    assert "1.3 included; 1.2 between them was left out (see the note below)" in again.stdout
    assert "note: release(s) between 1.1 (good) and 1.3 (bad) were left out (1.2): the " in (
        again.stdout
    )
    assert "and offer them no more, so its runs of them are not this one's evidence" in (
        again.stdout
    )
    assert "1.2 (offered before, no longer) between 1.1 and 1.3 was left out" in again.stderr
    assert again.returncode == 6, again.stderr


@pytest.mark.parametrize(
    ("offered", "installs"),
    [
        ("bisectpkg-1.2-py30-none-any.whl", False),  # ranks below the folder's py3 wheel
        ("bisectpkg-1.2-py3-none-any.whl", True),  # tied: pip takes the index's first
    ],
)
def test_a_folder_wheel_that_outranks_the_index_files_of_its_release_decides(
    tmp_path: Path, offered: str, installs: bool
) -> None:
    """1.2's wheel in the --find-links folder is for Requires-Python >=3.99, and the index
    offers 1.2 too. pip takes the one file it ranks first: the folder's py3 wheel over the
    index's py30 one (the install fails, "requires a different Python"), the index's where
    they tie. The index's listing made 1.2 a candidate either way."""
    import http.server
    import threading

    from repromatrix.options import Sources
    from repromatrix.release_listing import list_releases

    folder = build_wheels(tmp_path / "a", ["1.0", "1.3"], bad=set())
    _wheel(folder / "bisectpkg-1.2-py3-none-any.whl", bad=True, requires=">=3.99")
    _wheel(tmp_path / "files" / offered, bad=True)
    page = tmp_path / "simple" / "bisectpkg" / "index.html"
    page.parent.mkdir(parents=True)
    page.write_text(f'<html><body><a href="../../files/{offered}">{offered}</a></body></html>')

    class Files(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, directory=str(tmp_path), **kwargs)  # type: ignore[arg-type]

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Files)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PIP_CONFIG_FILE": "/dev/null"}
    env["PIP_INDEX_URL"] = f"http://127.0.0.1:{server.server_address[1]}/simple"
    try:
        got = list_releases(
            "bisectpkg", Sources(find_links=(folder,)), python=sys.executable, env=env
        )
    finally:
        server.shutdown()
        server.server_close()
    assert {str(v) for v in got.versions} == {"1.0", "1.3"} | ({"1.2"} if installs else set()), got
    assert {str(v) for v in got.elsewhere} == (set() if installs else {"1.2"}), got
    # pip agrees: it installs 1.2 only where the index's file is the one it takes.
    pip = [sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(tmp_path / "t")]
    pip += ["--find-links", str(folder), "--index-url", env["PIP_INDEX_URL"], "bisectpkg===1.2"]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Files)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    pip[-2] = f"http://127.0.0.1:{server.server_address[1]}/simple"
    try:
        done = subprocess.run(pip, capture_output=True, text=True, check=False, env=env)
    finally:
        server.shutdown()
        server.server_close()
    assert (done.returncode == 0) is installs, done.stderr


def test_in_an_image_a_release_offered_only_as_windows_or_macos_wheels_is_not_installable(
    tmp_path: Path,
) -> None:
    """Bisecting in an image (another Python installs there), every file pip skipped here
    counted: a release whose only file is a Windows or macOS wheel, in a --find-links
    folder or on the index, was a candidate, failed to install in the image, and the answer
    was "one of 2 ... --retry-errors", which cannot help. It is a release not installable
    there, as on the host (so is a Linux wheel for another machine than the engine's); a
    Linux wheel for another Python still counts in an image."""
    import http.server
    import platform
    import threading

    from repromatrix.options import Sources
    from repromatrix.release_listing import list_releases

    folder = build_wheels(tmp_path / "a", ["1.0", "1.2", "1.5"], bad=set())
    # An engine runs images of its own machine: an aarch64 wheel installs in none on x86_64.
    mine, other = platform.machine(), "aarch64" if platform.machine() != "aarch64" else "x86_64"
    for name in (
        "bisectpkg-1.1-cp311-cp311-win_amd64.whl",
        "bisectpkg-1.3-py3-none-macosx_11_0_arm64.whl",
        f"bisectpkg-1.4-cp39-cp39-manylinux_2_17_{mine}.whl",
        f"bisectpkg-1.6-py3-none-manylinux_2_17_{other}.whl",
    ):
        _wheel(folder / name, bad=False)
    files = tmp_path / "simple" / "bisectpkg"
    for name in (
        "bisectpkg-2.0-cp311-cp311-win_amd64.whl",
        f"bisectpkg-2.1-cp39-cp39-manylinux_2_17_{mine}.whl",
        "bisectpkg-2.2-py3-none-any.whl",
    ):
        _wheel(files / name, bad=False)

    class Files(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, directory=str(tmp_path), **kwargs)  # type: ignore[arg-type]

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Files)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PIP_CONFIG_FILE": "/dev/null"}
    env["PIP_INDEX_URL"] = f"http://127.0.0.1:{server.server_address[1]}/simple"
    try:
        here, image = (
            list_releases(
                "bisectpkg",
                Sources(find_links=(folder,)),
                python=sys.executable,
                env=env,
                wheel_tags=tags,
            )
            for tags in (True, False)
        )
    finally:
        server.shutdown()
        server.server_close()
    assert {str(v) for v in here.versions} == {"1.0", "1.2", "1.5", "2.2"}, here
    assert {str(v) for v in here.elsewhere} == {"1.1", "1.3", "1.4", "1.6", "2.0", "2.1"}, here
    assert {str(v) for v in image.versions} == {"1.0", "1.2", "1.4", "1.5", "2.1", "2.2"}, image
    assert {str(v) for v in image.elsewhere} == {"1.1", "1.3", "1.6", "2.0"}, image


def _broken_sdist(path: Path) -> None:
    """An sdist at `path` (its name gives the version) whose build fails at once."""
    import io
    import tarfile

    stem = path.name.removesuffix(".tar.gz")
    with tarfile.open(path, "w:gz") as tar:
        for name, text in (
            ("PKG-INFO", f"Metadata-Version: 2.1\nName: bisectpkg\nVersion: {stem[10:]}\n"),
            ("pyproject.toml", "[build-system\nrequires = [\n"),
        ):
            data = text.encode()
            info = tarfile.TarInfo(f"{stem}/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


@pytest.mark.parametrize(
    ("taken", "beside"),
    [
        ("bisectpkg-1.2-py3-none-any.whl", "bisectpkg-1.2.0.tar.gz"),
        ("bisectpkg-1.2.0-py3-none-any.whl", "bisectpkg-1.2.tar.gz"),
        # Tied wheels: the one whose URL sorts first ("1.2-" before "1.2.0-").
        ("bisectpkg-1.2-py3-none-any.whl", "bisectpkg-1.2.0-py3-none-any.whl"),
    ],
)
def test_two_spellings_of_one_release_are_one_candidate_the_file_pip_takes_decides(
    tmp_path: Path, taken: str, beside: str
) -> None:
    """1.2 offered as a wheel named `1.2` and an sdist (or a wheel) named `1.2.0`: one
    release (PEP 440), of which pip takes the wheel. The candidate kept whichever spelling
    the folder listed first and was installed as `===1.2.0`, which compares spellings: it
    took the sdist, whose build failed, and the answer was "one of 2", or the file pip
    passes over. The candidate is spelled as the file pip takes names it."""
    version = taken.split("-")[1]
    folder = build_wheels(tmp_path / "a", ["1.0", "1.1", "1.3"], bad={"1.3"})
    _wheel(folder / taken, bad=True)
    if beside.endswith(".tar.gz"):
        _broken_sdist(folder / beside)
    else:
        _wheel(folder / beside, bad=False, requires=">=3.99")
    out = _bisect(tmp_path, [folder], "1.1", "1.3")
    assert "Traceback" not in out.stderr, out.stderr
    assert f"first bad release: pkg {version}\n" in out.stdout, out.stdout + out.stderr
    assert "one of" not in out.stdout, out.stdout
    assert out.returncode == 0, out.stderr
