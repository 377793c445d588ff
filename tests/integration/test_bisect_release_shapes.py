"""Release bisection over the shapes of versions and files a real index has (real wheels,
real pip): yanked files linked from a page of a --find-links folder, builds of one
release offered for other platforms, releases matrix.yaml does not declare between
declared ones that carry their own requirements, and an index's files for another Python
when an image's Python installs."""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from bisect_repo import REPRO, _init, build_wheels

from repromatrix.store import ResultStore

pytestmark = pytest.mark.integration


def _bisect(
    tmp_path: Path,
    folder: Path,
    good: str,
    bad: str,
    declared: str = "",
    more: str = "",
    flags: tuple[str, ...] = (),
) -> subprocess.CompletedProcess[str]:
    """`repromatrix bisect scale --good GOOD --bad BAD` over `folder`, matrix.yaml
    declaring the two ends (or the `declared` YAML list), and `more` of the library."""
    (tmp_path / "repros").mkdir(exist_ok=True)
    (tmp_path / "repros" / "scale.py").write_text(REPRO)
    matrix = tmp_path / "matrix.yaml"
    matrix.write_text(
        f"schema: 1\nlibraries:\n  pkg: {{pypi: bisectpkg, import: bisectpkg, {more}"
        f"versions: {declared or f'[{good!r}, {bad!r}]'}}}\n"
        "repros:\n  scale: {script: repros/scale.py, gpus: [cpu], libraries: {pkg: all}}\n"
    )
    argv = [sys.executable, "-m", "repromatrix", "--matrix", str(matrix), "bisect", "scale"]
    argv += ["--library=pkg", f"--good={good}", f"--bad={bad}", "--executor=local"]
    argv += ["--no-progress", f"--find-links={folder}", "--no-index", f"--cache={tmp_path / 'c'}"]
    argv += [f"--results={tmp_path / 'results'}", *flags]
    return subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, check=False)


def test_a_yanked_release_linked_from_a_page_in_a_find_links_folder_is_named(
    tmp_path: Path,
) -> None:
    """pip reads a page in a --find-links folder and skips the files it marks yanked
    (PEP 592 `data-yanked`), as an index's; the listing dropped what pip said of them, so
    1.1 (yanked, bad) was left out silently and 'first bad release: pkg 1.2' exited 0."""
    files = build_wheels(
        tmp_path / "files", ["1.0", "1.1", "1.2", "1.3"], bad={"1.1", "1.2", "1.3"}
    )
    folder = tmp_path / "links"
    folder.mkdir()
    links = [
        f'<a href="{f.as_uri()}"{" data-yanked=broken" if "-1.1-" in f.name else ""}>{f.name}</a>'
        for f in sorted(files.iterdir())
    ]
    (folder / "links.html").write_text("<html><body>\n" + "\n".join(links) + "\n</body></html>\n")
    out = _bisect(tmp_path, folder, "1.0", "1.3")
    assert "first bad release:" not in out.stdout, out.stdout
    assert "first bad release not known: it is between 1.0 (good) and 1.2 (bad)" in out.stdout
    assert "note: yanked release(s) between 1.0 (good) and 1.2 (bad) were not run (1.1)" in (
        out.stdout
    )
    assert out.returncode == 6, out.stderr
    # Declared, the yanked release is pinned, which pip installs: the answer is found.
    again = _bisect(tmp_path, folder, "1.0", "1.3", declared='["1.0", "1.1", "1.3"]')
    assert "first bad release: pkg 1.1\n" in again.stdout, again.stdout
    assert again.returncode == 0, again.stderr


def test_a_release_yanked_only_as_a_wheel_for_another_platform_is_not_installable_here(
    tmp_path: Path,
) -> None:
    """1.1's one file, a Windows wheel, is yanked: pip says "yanked" before it looks at
    the tags, so 1.1 read as a yanked release whose way out was "declare it in
    matrix.yaml", which installs nothing here ("No matching distribution found"). It is
    a release for another platform: the way out names another interpreter or image."""
    files = build_wheels(tmp_path / "files", ["1.0", "1.1", "1.2"], bad={"1.1", "1.2"})
    windows = files / "bisectpkg-1.1-cp311-cp311-win_amd64.whl"
    (files / "bisectpkg-1.1-py3-none-any.whl").rename(windows)
    folder = tmp_path / "links"
    folder.mkdir()
    links = [
        f'<a href="{f.as_uri()}"{" data-yanked=gone" if f == windows else ""}>{f.name}</a>'
        for f in sorted(files.iterdir())
    ]
    (folder / "links.html").write_text("<html><body>\n" + "\n".join(links) + "\n</body></html>\n")
    out = _bisect(tmp_path, folder, "1.0", "1.2")
    assert "first bad release not known: it is between 1.0 (good) and 1.2 (bad)" in out.stdout
    assert "note: release(s) between 1.0 (good) and 1.2 (bad) were not run (1.1)" in out.stdout
    assert "yanked release" not in out.stdout + out.stderr, out.stdout
    assert "1.1 (not installable here) between 1.0 and 1.2 was not run" in out.stderr
    assert out.returncode == 6, out.stderr


def test_a_build_for_another_platform_of_a_release_that_ran_is_no_release_left_out(
    tmp_path: Path,
) -> None:
    """Ends without a local label make each release one point, installed as `==1.2`
    installs it (1.2+cu121, the one build here). Its Windows-only build 1.2+cu118 was
    said "not run here" between 1.2 (good) and 1.3 (bad): a range, exit 6, where the
    answer is 1.3; with both builds installable here none would have been named."""
    folder = build_wheels(tmp_path / "wheels", ["1.0", "1.1", "1.2+cu121", "1.3"], bad={"1.3"})
    windows = folder / "bisectpkg-1.2+cu118-cp311-cp311-win_amd64.whl"
    windows.write_bytes((folder / "bisectpkg-1.3-py3-none-any.whl").read_bytes())
    out = _bisect(tmp_path, folder, "1.0", "1.3")
    assert "first bad release: pkg 1.3\n" in out.stdout, out.stdout
    assert "not run" not in out.stdout, out.stdout
    assert out.returncode == 0, out.stderr


def _wheel(folder: Path, name: str, version: str, code: str) -> None:
    """A pure-Python wheel of `name` `version` whose package is `code`."""
    dist = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": code.encode(),
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        f"{dist}/WHEEL": b"Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = [
        f"{n},sha256={base64.urlsafe_b64encode(hashlib.sha256(d).digest()).rstrip(b'=').decode()},"
        f"{len(d)}"
        for n, d in files.items()
    ]
    files[f"{dist}/RECORD"] = ("\n".join([*record, f"{dist}/RECORD,,"]) + "\n").encode()
    with zipfile.ZipFile(folder / f"{name}-{version}-py3-none-any.whl", "w") as zf:
        for n, d in files.items():
            zf.writestr(n, d)


def test_undeclared_releases_installed_without_a_declared_ones_requires_are_named(
    tmp_path: Path,
) -> None:
    """matrix.yaml declares 1.3 with `requires: [depx==1.0]` (installs are --no-deps);
    1.1 and 1.2, found between the ends, need it too but got none of it: "one of 3",
    each "No module named 'depx'", and nothing said they ran without what 1.3 declares,
    nor where to give it."""
    folder = build_wheels(tmp_path / "wheels", ["1.0"], bad=set())
    _wheel(folder, "depx", "1.0", "")
    for i, version in enumerate(["1.1", "1.2", "1.3"], 1):
        _wheel(folder, "bisectpkg", version, "import depx\n" + _init(i, version != "1.1"))
    declared = '["1.0", {pypi: "1.3", requires: ["depx==1.0"]}]'
    out = _bisect(tmp_path, folder, "1.0", "1.3", declared=declared)
    assert out.returncode == 6, out.stderr
    said = (
        "1.1, 1.2 are not declared in matrix.yaml, so they were installed without the "
        "per-version requires of declared releases (1.3: depx==1.0"
    )
    way = "put what every release needs in pkg's requires, or declare them in pkg's versions"
    assert f"note: {said}; installs are --no-deps): {way}" in out.stdout, out.stdout
    (line,) = [ln for ln in out.stderr.splitlines() if "error:" in ln]
    assert f"{said}): {way}" in line, line
    # Given to every release, the requirement makes each testable: the answer is found.
    again = _bisect(tmp_path, folder, "1.0", "1.3", more="requires: [depx==1.0], ")
    assert "first bad release: pkg 1.2\n" in again.stdout, again.stdout
    assert "not declared in matrix.yaml" not in again.stdout
    assert again.returncode == 0, again.stderr


def test_releases_an_index_offers_for_another_python_count_in_an_image(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bisecting in an image (another Python installs), a folder's wheels all count, but
    the index was still read for this interpreter: 1.1 (Requires-Python <3.11) and 1.15
    (a cp310 wheel) were "not installable here; bisect it with an interpreter or image it
    installs on (--image)", while the bisection already ran in such an image."""
    import html
    import http.server
    import threading

    from repromatrix.options import Sources
    from repromatrix.release_listing import list_releases

    files = build_wheels(tmp_path / "files", ["1.0", "1.1", "1.2"], bad=set())
    cp310 = files / "bisectpkg-1.15-cp310-cp310-manylinux_2_17_x86_64.whl"
    cp310.write_bytes((files / "bisectpkg-1.2-py3-none-any.whl").read_bytes())
    page = tmp_path / "simple" / "bisectpkg" / "index.html"
    page.parent.mkdir(parents=True)
    links = [
        f'<a href="../../files/{f.name}"'
        f"{' data-requires-python=' + repr(html.escape('<3.11')) if '-1.1-' in f.name else ''}"
        f">{f.name}</a>"
        for f in sorted(files.iterdir())
    ]
    page.write_text("<html><body>\n" + "\n".join(links) + "\n</body></html>\n")

    class Files(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, directory=str(tmp_path), **kwargs)  # type: ignore[arg-type]

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Files)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    index = f"http://127.0.0.1:{server.server_address[1]}/simple"
    for name in [k for k in os.environ if k.startswith("PIP_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_INDEX_URL", index)  # pip reads this process's variables
    try:
        here = list_releases("bisectpkg", Sources(), python=sys.executable)
        image = list_releases("bisectpkg", Sources(), python=sys.executable, wheel_tags=False)
    finally:
        server.shutdown()
        server.server_close()
    assert {str(v) for v in here.elsewhere} == {"1.1", "1.15"}, here  # not for this Python
    assert {str(v) for v in image.versions} == {"1.0", "1.1", "1.15", "1.2"}, image
    assert not image.elsewhere, image


def test_an_end_offered_only_as_several_local_builds_is_refused_naming_them(
    tmp_path: Path,
) -> None:
    """`--good 1.0` where the folder holds only 1.0+cu118 and 1.0+cu121: `===1.0` matched
    nothing, `==1.0` installed the highest build, 1.0+cu121, the `--bad` end's, and the
    bisection ran one build at both ends. One line names the builds to choose from."""
    folder = build_wheels(tmp_path / "wheels", ["1.0+cu118", "1.0+cu121"], bad={"1.0+cu121"})
    out = _bisect(tmp_path, folder, "1.0", "1.0+cu121")
    assert out.returncode == 6, out.stdout + out.stderr
    assert "Traceback" not in out.stderr
    (line,) = out.stderr.strip().splitlines()
    assert "only as the builds 1.0+cu118, 1.0+cu121" in line, line
    assert "e.g. --good 1.0+cu118" in line, line
    named = _bisect(tmp_path, folder, "1.0+cu118", "1.0+cu121")
    assert "first bad release: pkg 1.0+cu121\n" in named.stdout, named.stdout + named.stderr
    assert named.returncode == 0, named.stderr


def test_a_wheel_whose_metadata_cannot_be_decompressed_is_skipped_not_fatal(
    tmp_path: Path,
) -> None:
    """A wheel whose zip directory is whole but whose METADATA bytes are not (a download
    cut or overwritten in place) ended the bisection before anything ran: "internal
    error: error: Error -3 while decompressing data", exit 70. pip fails on it as on any
    broken wheel: a release that could not be evaluated, named among the suspects."""
    folder = build_wheels(tmp_path / "wheels", ["1.0", "1.1", "1.3"], bad={"1.3"})
    damaged = folder / "bisectpkg-1.2-py3-none-any.whl"
    meta = "Metadata-Version: 2.1\nName: bisectpkg\nVersion: 1.2\n" + "x" * 4000
    with zipfile.ZipFile(damaged, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("bisectpkg-1.2.dist-info/METADATA", meta)
    data = bytearray(damaged.read_bytes())
    start = 30 + int.from_bytes(data[26:28], "little") + int.from_bytes(data[28:30], "little")
    data[start + 4 : start + 40] = bytes(b ^ 0x5A for b in data[start + 4 : start + 40])
    damaged.write_bytes(bytes(data))
    out = _bisect(tmp_path, folder, "1.0", "1.3")
    assert "internal error" not in out.stderr, out.stderr
    assert out.returncode == 6, out.stderr
    assert "4 releases (from folder" in out.stdout, out.stdout
    assert "first bad release is one of 2 (the others could not be evaluated):" in out.stdout
    assert "  pkg 1.2 [error: environment: pip could not install bisectpkg===1.2" in out.stdout


def test_a_release_whose_wheel_excludes_this_python_is_not_installable_here_beside_its_sdist(
    tmp_path: Path,
) -> None:
    """bisectpkg-1.2-py3-none-any.whl (Requires-Python >=3.99) beside bisectpkg-1.2.tar.gz
    (none): the sdist made 1.2 a candidate, pip took the wheel and failed ("requires a
    different Python"), and the answer was "one of" for a release that is not installable
    here. It is named as such, the range's way out an interpreter it installs on."""
    import io
    import tarfile

    folder = build_wheels(tmp_path / "wheels", ["1.0", "1.1", "1.3"], bad={"1.3"})
    with zipfile.ZipFile(folder / "bisectpkg-1.2-py3-none-any.whl", "w") as zf:
        zf.writestr("bisectpkg/__init__.py", _init(2, True))
        meta = "Metadata-Version: 2.1\nName: bisectpkg\nVersion: 1.2\nRequires-Python: >=3.99\n"
        zf.writestr("bisectpkg-1.2.dist-info/METADATA", meta)
        zf.writestr("bisectpkg-1.2.dist-info/WHEEL", "Wheel-Version: 1.0\nTag: py3-none-any\n")
        zf.writestr("bisectpkg-1.2.dist-info/RECORD", "")
    with tarfile.open(folder / "bisectpkg-1.2.tar.gz", "w:gz") as tf:
        for name, text in {
            "PKG-INFO": "Metadata-Version: 2.1\nName: bisectpkg\nVersion: 1.2\n",
            "pyproject.toml": '[project]\nname = "bisectpkg"\nversion = "1.2"\n',
            "bisectpkg/__init__.py": _init(2, True),
        }.items():
            data = text.encode()
            info = tarfile.TarInfo(f"bisectpkg-1.2/{name}")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    out = _bisect(tmp_path, folder, "1.0", "1.3")
    assert "one of" not in out.stdout, out.stdout
    assert (
        "first bad release not known: it is between 1.1 (good) and 1.3 (bad), 1.3 included; "
        "1.2 between them was not run here"
    ) in out.stdout, out.stdout
    assert out.returncode == 6, out.stderr


@pytest.mark.parametrize("find_fix", [False, True])
def test_builds_of_the_last_good_release_not_run_are_named(tmp_path: Path, find_fix: bool) -> None:
    """1.0 and 1.0+cpu offered, ends 1.0 and 1.2: 1.0 ran as itself (`===1.0`), 1.0+cpu,
    an install of its own that PEP 440 puts between 1.0 and 1.1 (and the one pip takes for
    `==1.0`), never ran. It held the change, yet "first bad release: pkg 1.1" exited 0 and
    named it nowhere, where builds of the answer's own release not run are named. It is
    now named in a note with the end that bisects the builds; so with --find-fix."""
    changed = {"1.0+cpu", "1.1", "1.2"}
    offered = ["1.0", "1.0+cpu", "1.1", "1.2"]
    folder = build_wheels(
        tmp_path / "wheels", offered, bad=set(offered) - changed if find_fix else changed
    )
    old = "--bad" if find_fix else "--good"
    term, old_term = ("first fixed", "bad") if find_fix else ("first bad", "good")
    ends = ("1.2", "1.0") if find_fix else ("1.0", "1.2")
    out = _bisect(tmp_path, folder, *ends, flags=("--find-fix",) * find_fix)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"{term} release: pkg 1.1\n" in out.stdout, out.stdout
    assert (
        f"note: build(s) of 1.0 ({old_term}) were not run (1.0+cpu): each is an install of "
        "its own, which PEP 440 puts before 1.1, and the change may have come in one: "
        f"bisect them with {old} 1.0+cpu"
    ) in out.stdout, out.stdout
    pins = {r.pins["pkg"] for r in ResultStore(tmp_path / "results").load().results}
    assert "1.0+cpu" not in pins, pins
