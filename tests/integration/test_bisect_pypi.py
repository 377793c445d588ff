"""Release bisection over what a --find-links folder offers, when matrix.yaml declares only
the two ends (the issue's packaging 20.0 → 23.2 case): real wheels, real pip installs."""

from __future__ import annotations

import contextlib
import http.server
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from bisect_repo import BACKEND, PYPROJECT, REPRO, build_wheels

from repromatrix.store import ResultStore

pytestmark = pytest.mark.integration

#: 17 releases from 20.0 to 23.2, a pre-release and one release after the new end.
RELEASES = [
    *(f"20.{i}" for i in range(10)),
    "21.0",
    "21.1",
    "21.2",
    "21.3",
    "22.0rc1",
    "22.0",
    "23.0",
    "23.1",
    "23.2",
    "24.0",
]
#: The regression arrives with 22.0 (its release candidate already has it).
BAD = {"22.0rc1", "22.0", "23.0", "23.1", "23.2", "24.0"}


def test_releases_the_folder_offers_are_bisected_not_only_the_declared_ends(
    tmp_path: Path,
) -> None:
    wheels = build_wheels(tmp_path / "wheels", RELEASES, bad=BAD)
    (tmp_path / "wheels" / "bisectpkg-99-not-a-wheel.txt").write_text("ignored")
    (tmp_path / "repros").mkdir()
    (tmp_path / "repros" / "scale.py").write_text(REPRO)
    matrix = tmp_path / "matrix.yaml"
    matrix.write_text(
        textwrap.dedent(
            """\
            schema: 1
            libraries:
              pkg:
                pypi: bisectpkg
                import: bisectpkg
                versions: ["20.0", {pypi: "23.2", note: "first seen broken here"}]
            repros:
              scale:
                script: repros/scale.py
                gpus: [cpu]
                libraries: {pkg: all}
            """
        )
    )
    argv = [sys.executable, "-m", "repromatrix", "--matrix", str(matrix), "bisect", "scale"]
    argv += ["--library=pkg", "--good=20.0", "--bad=23.2", "--jobs=1", "--executor=local"]
    argv += [f"--find-links={wheels}", "--no-index", "--no-progress"]
    argv += [f"--cache={tmp_path / 'cache'}", f"--results={tmp_path / 'results'}"]
    out = subprocess.run(
        argv, cwd=tmp_path, env=dict(os.environ), capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr
    # 20.0 .. 23.2 without the pre-release (no end is one) nor 24.0 (after the new end).
    assert f"18 releases (from folder {wheels})" in out.stdout, out.stdout
    assert "first bad release: pkg 22.0" in out.stdout
    # 22.0rc1, bad too, lies between the answer's ends and was never run: said, not hidden.
    assert (
        "note: pre-release(s) between 21.3 (good) and 22.0 (bad) were not run (22.0rc1)"
        in out.stdout
    )
    pins = [r.pins["pkg"] for r in ResultStore(tmp_path / "results").load().results]
    assert "22.0rc1" not in pins
    assert "21.3" in pins  # the release just before, undeclared, was installed and run
    assert len(pins) <= 2 + 5  # the ends plus ceil(log2 17)


def _two_ends(tmp_path: Path, wheels: Path, good: str, bad: str) -> list[str]:
    """matrix.yaml declaring only `good` and `bad` of bisectpkg, and the bisect command
    over the `wheels` folder between them."""
    (tmp_path / "repros").mkdir()
    (tmp_path / "repros" / "scale.py").write_text(REPRO)
    matrix = tmp_path / "matrix.yaml"
    matrix.write_text(
        "schema: 1\nlibraries:\n  pkg: {pypi: bisectpkg, import: bisectpkg, "
        f'versions: ["{good}", "{bad}"]}}\n'
        "repros:\n  scale: {script: repros/scale.py, gpus: [cpu], libraries: {pkg: all}}\n"
    )
    argv = [sys.executable, "-m", "repromatrix", "--matrix", str(matrix), "bisect", "scale"]
    argv += ["--library=pkg", f"--good={good}", f"--bad={bad}", "--executor=local"]
    argv += ["--no-progress", f"--find-links={wheels}", "--no-index"]
    return [*argv, f"--cache={tmp_path / 'cache'}"]


def _bisect(tmp_path: Path, argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, check=False)


def test_an_end_that_failed_to_install_says_how_to_try_it_again(tmp_path: Path) -> None:
    wheels = build_wheels(tmp_path / "wheels", ["1.0", "1.1"], bad={"1.1"})
    argv = _two_ends(tmp_path, wheels, "1.0", "1.2")
    first = _bisect(tmp_path, argv)  # 1.2 is declared but not published yet: an error record
    assert first.returncode == 6, first.stderr
    assert "No matching distribution found for bisectpkg==1.2" in first.stderr
    # 1.2 is declared but the folder lacks it: the record stands, so the fix names the flag.
    assert "does not offer it: add its wheel or sdist there and run the same command" in (
        first.stderr
    )
    build_wheels(tmp_path / "wheels", ["1.2"], bad={"1.2"})  # published since
    again = _bisect(tmp_path, argv)
    assert again.returncode == 6, again.stderr
    assert "it is a stored record: --retry-errors runs it again" in again.stderr
    fresh = _bisect(tmp_path, [*argv, "--retry-errors"])
    assert fresh.returncode == 0, fresh.stderr
    assert "first bad release: pkg 1.1" in fresh.stdout


def test_a_release_pin_installs_that_release_not_a_local_build_of_it(tmp_path: Path) -> None:
    """`bisectpkg==1.2` takes 1.2+cu121 when the folder offers both (PEP 440 and pip's
    pick): the pin 1.2 ran the CUDA 12.1 build, and named 1.2 the first bad release."""
    wheels = build_wheels(
        tmp_path / "wheels", ["1.0", "1.1", "1.2", "1.2+cu121", "1.3"], bad={"1.2+cu121", "1.3"}
    )
    out = _bisect(tmp_path, _two_ends(tmp_path, wheels, "1.0", "1.3"))
    assert out.returncode == 0, out.stderr
    assert "first bad release: pkg 1.3\n" in out.stdout
    records = ResultStore(tmp_path / "results").load().results
    pins = {r.pins["pkg"]: r.provenance["harness"]["pins"]["pkg"] for r in records}
    assert pins["1.2"]["installed"] == "1.2"
    assert pins["1.2"]["requirement"] == "bisectpkg===1.2"


def test_a_release_offered_only_as_a_local_build_installs_it_and_says_so(
    tmp_path: Path,
) -> None:
    wheels = build_wheels(
        tmp_path / "wheels", ["1.0", "1.1", "1.2+cu121", "1.3"], bad={"1.2+cu121", "1.3"}
    )
    out = _bisect(tmp_path, _two_ends(tmp_path, wheels, "1.0", "1.3"))
    assert out.returncode == 0, out.stderr
    assert "first bad release: pkg 1.2 (pip installed 1.2+cu121)" in out.stdout
    records = ResultStore(tmp_path / "results").load().results
    pins = {r.pins["pkg"]: r.provenance["harness"]["pins"]["pkg"] for r in records}
    assert pins["1.2"]["installed"] == "1.2+cu121"
    assert pins["1.2"]["requirement"] == "bisectpkg==1.2"  # `===1.2` found no file
    assert pins["1.0"]["installed"] == "1.0"


def test_a_release_offered_as_several_builds_names_those_not_run(tmp_path: Path) -> None:
    """With 1.2+cpu and 1.2+cu130 offered, the answer read "first bad release: pkg 1.2 (pip
    installed 1.2+cu130)": nothing said that 1.2+cpu, an install of its own, never ran."""
    wheels = build_wheels(
        tmp_path / "wheels",
        ["1.0", "1.1", "1.2+cpu", "1.2+cu130", "1.3"],
        bad={"1.2+cpu", "1.2+cu130", "1.3"},
    )
    out = _bisect(tmp_path, _two_ends(tmp_path, wheels, "1.0", "1.3"))
    assert out.returncode == 0, out.stderr
    assert (
        "first bad release: pkg 1.2 (pip installed 1.2+cu130; 1.2+cpu, also offered, was not run)"
        in out.stdout
    ), out.stdout
    pins = [r.pins["pkg"] for r in ResultStore(tmp_path / "results").load().results]
    assert "1.2+cpu" not in pins


def test_builds_of_a_release_between_local_ends_are_each_run(tmp_path: Path) -> None:
    """Bisecting the cu118 builds (`--good 1.0+cu118 --bad 1.2+cu118`), release 1.1 was one
    candidate, "1.1", whose `==1.1` pip took as 1.1+cu121: "first bad release: pkg 1.1
    (pip installed 1.1+cu121)", past 1.1+cu118, which PEP 440 puts before it and nobody ran."""
    wheels = build_wheels(
        tmp_path / "wheels",
        [f"1.{i}+cu{cuda}" for i in range(3) for cuda in (118, 121)],
        bad={"1.1+cu121", "1.2+cu118", "1.2+cu121"},
    )
    out = _bisect(tmp_path, _two_ends(tmp_path, wheels, "1.0+cu118", "1.2+cu118"))
    assert out.returncode == 0, out.stderr
    assert "first bad release: pkg 1.1+cu121\n" in out.stdout, out.stdout
    pins = {r.pins["pkg"] for r in ResultStore(tmp_path / "results").load().results}
    assert "1.1+cu118" in pins, pins
    assert "1.1" not in pins, pins


@contextlib.contextmanager
def _index_answering(code: int) -> Iterator[str]:
    """A package index that answers every request with HTTP `code` (401/403: a private
    index whose token expired); yields its simple URL."""

    class Refuse(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(code)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self.wfile.write(b"no")

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Refuse)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/simple"
    finally:
        server.shutdown()
        server.server_close()


def _pip_env(index: str) -> dict[str, str]:
    """This process's variables, pip's configuration files and find-links left out, with
    `index` as pip's index."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    return env | {"PIP_CONFIG_FILE": os.devnull, "PIP_INDEX_URL": index}


@pytest.mark.parametrize("code", [401, 403])
def test_an_index_that_refuses_access_is_a_source_that_was_not_read(
    tmp_path: Path, code: int
) -> None:
    """pip says only "No matching distribution found" for an index whose token expired,
    as for one without the project: that read as a complete list ("first bad release:
    pkg 2.0" with the index unread)."""
    wheels = build_wheels(tmp_path / "wheels", ["1.0", "2.0"], bad={"2.0"})
    argv = _two_ends(tmp_path, wheels, "1.0", "2.0")
    argv.remove("--no-index")
    with _index_answering(code) as index:
        out = subprocess.run(
            argv, cwd=tmp_path, env=_pip_env(index), capture_output=True, text=True, check=False
        )
    assert f"2 releases (from folder {wheels})," in out.stdout, out.stdout
    assert "first bad release:" not in out.stdout
    assert out.returncode == 6, out.stderr  # a range: no single answer
    assert "no single first bad release" in out.stderr
    assert "between 1.0 (good) and 2.0 (bad), 2.0 included" in out.stdout
    assert f"could not read {index}/bisectpkg/: {code} Client Error" in out.stdout


def test_releases_an_index_leaves_out_between_the_answer_are_named(tmp_path: Path) -> None:
    """Through an index, a yanked 1.2 (bad) and a 1.2.5 offered only for Windows were left
    out silently: "first bad release: pkg 1.3", nothing said of either; either may be the
    first bad release, so the answer is a range (exit 6) that names them."""
    files = build_wheels(
        tmp_path / "files", ["1.0", "1.1", "1.2", "1.3", "2.0"], bad={"1.2", "1.3", "2.0"}
    )
    windows = files / "bisectpkg-1.2.5-cp311-cp311-win_amd64.whl"
    windows.write_bytes((files / "bisectpkg-1.3-py3-none-any.whl").read_bytes())
    page = tmp_path / "simple" / "bisectpkg" / "index.html"
    page.parent.mkdir(parents=True)
    links = [
        f'<a href="{f.as_uri()}"{" data-yanked=broken" if "-1.2-" in f.name else ""}>{f.name}</a>'
        for f in sorted(files.iterdir())
    ]
    page.write_text("<html><body>\n" + "\n".join(links) + "\n</body></html>\n")
    argv = _two_ends(tmp_path, tmp_path / "no-such-folder", "1.0", "2.0")
    argv = [a for a in argv if a != "--no-index" and not a.startswith("--find-links")]
    env = _pip_env((tmp_path / "simple").as_uri())
    out = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, check=False)
    assert out.returncode == 6, out.stderr
    assert "4 releases (from index)" in out.stdout, out.stdout
    assert "first bad release not known: it is between 1.1 (good) and 1.3 (bad)" in out.stdout
    assert (
        "no single first bad release: 1.2 (yanked) and 1.2.5 (not installable here) between "
        "1.1 and 1.3 were not run; declare a yanked release in matrix.yaml"
    ) in out.stderr
    assert "note: yanked release(s) between 1.1 (good) and 1.3 (bad) were not run (1.2): pip" in (
        out.stdout
    )
    assert "note: release(s) between 1.1 (good) and 1.3 (bad) were not run (1.2.5): offered" in (
        out.stdout
    )


def test_ends_declared_in_another_spelling_bisect_releases(tmp_path: Path) -> None:
    """With 1.0 and 1.2 declared and a git source too, `--good 1.0.0 --bad 1.2.0` went to
    git ("cannot clone …; auto takes them only when matrix.yaml declares both")."""
    wheels = build_wheels(tmp_path / "wheels", ["1.0", "1.1", "1.2"], bad={"1.2"})
    argv = _two_ends(tmp_path, wheels, "1.0", "1.2")
    matrix = tmp_path / "matrix.yaml"
    no_repo = (tmp_path / "no-repo").as_uri()
    matrix.write_text(
        matrix.read_text().replace("pypi: bisectpkg,", f"pypi: bisectpkg, git: {no_repo},")
    )
    argv = [{"--good=1.0": "--good=1.0.0", "--bad=1.2": "--bad=1.2.0"}.get(a, a) for a in argv]
    out = _bisect(tmp_path, argv)
    assert out.returncode == 0, out.stderr
    assert "first bad release: pkg 1.2\n" in out.stdout


@pytest.mark.parametrize("find_fix", [False, True])
def test_a_release_not_installable_here_between_the_answer_makes_it_a_range(
    tmp_path: Path, find_fix: bool
) -> None:
    """1.1 is offered only as a Windows wheel: no candidate here, yet the change may have
    come in it. "first bad release: pkg 1.2" (exit 0, 1.1 named in a note below) was an
    answer a script acts on, past a release nobody ran; it is a range, exit 6."""
    fixed = {"1.2", "1.3"} if find_fix else set()
    wheels = build_wheels(tmp_path / "wheels", ["1.0", "1.2", "1.3"], bad={"1.2", "1.3"} - fixed)
    if find_fix:
        build_wheels(tmp_path / "wheels", ["1.0"], bad={"1.0"})
    windows = wheels / "bisectpkg-1.1-cp311-cp311-win_amd64.whl"
    windows.write_bytes((wheels / "bisectpkg-1.2-py3-none-any.whl").read_bytes())
    argv = _two_ends(tmp_path, wheels, "1.0", "1.3")
    if find_fix:
        argv = [{"--good=1.0": "--bad=1.0", "--bad=1.3": "--good=1.3"}.get(a, a) for a in argv]
        argv.append("--find-fix")
    out = _bisect(tmp_path, argv)
    term, old, new = ("first fixed", "bad", "good") if find_fix else ("first bad", "good", "bad")
    assert f"{term} release:" not in out.stdout, out.stdout
    assert (
        f"{term} release not known: it is between 1.0 ({old}) and 1.2 ({new}), 1.2 included"
        in out.stdout
    ), out.stdout
    assert f"note: release(s) between 1.0 ({old}) and 1.2 ({new}) were not run (1.1): offered" in (
        out.stdout
    )
    assert out.returncode == 6, out.stderr
    (line,) = [ln for ln in out.stderr.splitlines() if "error:" in ln]
    assert (
        f"no single {term} release: 1.1 (not installable here) between 1.0 and 1.2 was not "
        "run; bisect it with an interpreter or image it installs on (--python, --image)"
    ) in line, line
    assert "Traceback" not in out.stderr


def test_the_report_after_a_release_bisection_places_releases_not_installable_here(
    tmp_path: Path,
) -> None:
    """The releases a bisection listed are kept for the report, which places them on the
    axis; 1.1, offered only as a Windows wheel, was not kept, and summary.md said the
    regression 'begins at 1.2 (last good 1.0)' past a release nobody ran."""
    wheels = build_wheels(tmp_path / "wheels", ["1.0", "1.2", "1.3"], bad={"1.2", "1.3"})
    windows = wheels / "bisectpkg-1.1-cp311-cp311-win_amd64.whl"
    windows.write_bytes((wheels / "bisectpkg-1.2-py3-none-any.whl").read_bytes())
    argv = _two_ends(tmp_path, wheels, "1.0", "1.3")
    assert _bisect(tmp_path, argv).returncode == 6
    report = [*argv[:5], "report", f"--cache={tmp_path / 'cache'}", f"--out={tmp_path / 'out'}"]
    out = _bisect(tmp_path, report)
    assert out.returncode == 0, out.stderr
    summary = (tmp_path / "out" / "summary.md").read_text()
    assert "begins at 1.2" not in summary, summary
    assert "between 1.0 and 1.2" in summary, summary


def test_a_page_in_a_find_links_folder_offers_releases_as_pip_reads_it(tmp_path: Path) -> None:
    """pip reads an HTML page inside a --find-links folder and takes the files it links
    to; the listing read file names only, so 1.1 (bad, linked from links.html) was no
    candidate and 'first bad release: pkg 1.2' named a release past it."""
    wheels = build_wheels(tmp_path / "wheels", ["1.0", "1.2"], bad={"1.2"})
    elsewhere = build_wheels(tmp_path / "elsewhere", ["1.1"], bad={"1.1"})
    linked = elsewhere / "bisectpkg-1.1-py3-none-any.whl"
    (wheels / "links.html").write_text(f'<html><a href="{linked.as_uri()}">{linked.name}</a>\n')
    out = _bisect(tmp_path, _two_ends(tmp_path, wheels, "1.0", "1.2"))
    assert f"3 releases (from folder {wheels})" in out.stdout, out.stdout
    assert "first bad release: pkg 1.1\n" in out.stdout, out.stdout
    assert out.returncode == 0, out.stderr


def _old_pip_python() -> str | None:
    """An interpreter on PATH whose pip is 23 or older (23.2 takes .tgz and .tar.bz2
    sdists from a folder), None when there is none."""
    import shutil

    # Debian's own (python3-pip: 23.0 on bookworm; `.ci/run` installs it) after PATH's,
    # which under nox is the session's own, with a new pip.
    names = ("python3", "python3.11", "python3.10", "python3.12", "/usr/bin/python3")
    for name in names:
        path = shutil.which(name)
        if path is None:
            continue
        out = subprocess.run(
            [path, "-c", "import pip; print(pip.__version__)"],
            capture_output=True,
            text=True,
            check=False,
        )
        parts = out.stdout.strip().split(".")
        if out.returncode == 0 and len(parts) >= 2 and (int(parts[0]), int(parts[1])) < (24, 0):
            return path
    return None


def test_sdists_an_older_pip_takes_from_a_folder_are_candidates(tmp_path: Path) -> None:
    """pip 23 (23.2 here) installs `bisectpkg-1.1.tgz` and `.tar.bz2` sdists from a folder;
    the listing parsed `.tar.gz` and `.zip` only, so with such a --python 1.1 (bad) was no
    candidate and 'first bad release: pkg 1.2' named a release past it."""
    import bz2
    import gzip
    import io
    import tarfile

    old_pip = _old_pip_python()
    if old_pip is None:  # CI provisions one (python3-pip); elsewhere it may be missing
        if os.environ.get("CI") == "true":
            pytest.fail("no interpreter with pip < 24: install python3-pip (Debian's pip 23)")
        pytest.skip("no interpreter with pip < 24 on PATH or as /usr/bin/python3")
    wheels = build_wheels(tmp_path / "wheels", ["1.0", "1.2"], bad={"1.2"})
    source = tmp_path / "sdist"
    source.mkdir()
    for version, ext in (("1.1", ".tgz"), ("1.1.5", ".tar.bz2")):
        top = f"bisectpkg-{version}"
        files = {
            "pyproject.toml": PYPROJECT.replace('version = "0.1"', f'version = "{version}"'),
            "_backend.py": BACKEND.replace('"0.1"', f'"{version}"'),
            "src/bisectpkg/__init__.py": "COMMIT = 1\ndef scale(x):\n    return x * 2.0 + 0.5\n",
            "PKG-INFO": f"Metadata-Version: 2.1\nName: bisectpkg\nVersion: {version}\n",
        }
        data = io.BytesIO()
        with tarfile.open(fileobj=data, mode="w") as tar:
            for name, text in files.items():
                info = tarfile.TarInfo(f"{top}/{name}")
                info.size = len(text.encode())
                tar.addfile(info, io.BytesIO(text.encode()))
        pack = gzip.compress if ext == ".tgz" else bz2.compress
        (wheels / f"{top}{ext}").write_bytes(pack(data.getvalue()))
    argv = [*_two_ends(tmp_path, wheels, "1.0", "1.2"), f"--python={old_pip}"]
    out = _bisect(tmp_path, argv)
    assert f"4 releases (from folder {wheels})" in out.stdout, out.stdout
    assert "first bad release: pkg 1.1\n" in out.stdout, out.stdout
    assert out.returncode == 0, out.stderr


def test_an_sdist_whose_version_holds_a_dash_is_a_candidate_where_pip_takes_it(
    tmp_path: Path,
) -> None:
    """pip 23 reads `bisectpkg-1.1-1.tar.gz` in a folder as 1.1.post1 (the version is
    what follows the project's name and a dash); packaging's parser splits it at its
    last dash, a project `bisectpkg-1.1`, so with such a --python 1.1.post1 (bad) was no
    candidate and 'first bad release: pkg 1.2' exited 0 past it."""
    import io
    import tarfile

    old_pip = _old_pip_python()
    if old_pip is None:  # CI provisions one (python3-pip); elsewhere it may be missing
        if os.environ.get("CI") == "true":
            pytest.fail("no interpreter with pip < 24: install python3-pip (Debian's pip 23)")
        pytest.skip("no interpreter with pip < 24 on PATH or as /usr/bin/python3")
    wheels = build_wheels(tmp_path / "wheels", ["1.0", "1.2"], bad={"1.2"})
    top, version = "bisectpkg-1.1-1", "1.1.post1"
    files = {
        "pyproject.toml": PYPROJECT.replace('version = "0.1"', f'version = "{version}"'),
        "_backend.py": BACKEND.replace('"0.1"', f'"{version}"'),
        "src/bisectpkg/__init__.py": "COMMIT = 1\ndef scale(x):\n    return x * 2.0 + 0.5\n",
        "PKG-INFO": f"Metadata-Version: 2.1\nName: bisectpkg\nVersion: {version}\n",
    }
    with tarfile.open(wheels / f"{top}.tar.gz", "w:gz") as tar:
        for name, text in files.items():
            info = tarfile.TarInfo(f"{top}/{name}")
            info.size = len(text.encode())
            tar.addfile(info, io.BytesIO(text.encode()))
    out = _bisect(tmp_path, [*_two_ends(tmp_path, wheels, "1.0", "1.2"), f"--python={old_pip}"])
    assert f"3 releases (from folder {wheels})" in out.stdout, out.stdout
    assert "first bad release: pkg 1.1.post1\n" in out.stdout, out.stdout
    assert out.returncode == 0, out.stderr


def test_sources_that_offer_no_release_of_the_library_give_a_range(tmp_path: Path) -> None:
    """Both ends stored by an earlier run, then a --find-links folder holding only another
    project's wheels (the wrong folder): the list of releases between the ends was taken
    as complete and empty, and 'first bad release: pkg 1.2' (exit 0) came from stored runs
    alone, where 1.1 may lie between."""
    wheels = build_wheels(tmp_path / "wheels", ["1.0", "1.2"], bad={"1.2"})
    argv = _two_ends(tmp_path, wheels, "1.0", "1.2")
    assert _bisect(tmp_path, argv).returncode == 0
    other = tmp_path / "other"
    other.mkdir()
    (other / "otherpkg-1.1-py3-none-any.whl").write_bytes(b"")
    out = _bisect(tmp_path, [a.replace(str(wheels), str(other)) for a in argv])
    assert "first bad release:" not in out.stdout, out.stdout
    assert "first bad release not known: it is between 1.0 (good) and 1.2 (bad)" in out.stdout
    assert f"folder {other} offers no release of bisectpkg" in out.stdout, out.stdout
    assert out.returncode == 6, out.stderr
    (line,) = [ln for ln in out.stderr.splitlines() if "error:" in ln]
    assert "give the --find-links folder or index that offers bisectpkg's releases" in line


def test_a_one_of_answer_names_the_release_not_installable_here_among_its_suspects(
    tmp_path: Path,
) -> None:
    """1.1's sdist does not build (a suspect), 1.2 is a Windows wheel only: 'first bad
    release is one of 2' listed 1.1 and 1.3, as if 1.2 could not be it."""
    import io
    import tarfile

    wheels = build_wheels(tmp_path / "wheels", ["1.0", "1.3"], bad={"1.3"})
    with tarfile.open(wheels / "bisectpkg-1.1.tar.gz", "w:gz") as tar:
        data = b"[build-system\nrequires = [\n"  # pip cannot even read it
        info = tarfile.TarInfo("bisectpkg-1.1/pyproject.toml")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    windows = wheels / "bisectpkg-1.2-cp311-cp311-win_amd64.whl"
    windows.write_bytes((wheels / "bisectpkg-1.3-py3-none-any.whl").read_bytes())
    out = _bisect(tmp_path, _two_ends(tmp_path, wheels, "1.0", "1.3"))
    assert "first bad release is one of 2 (the others could not be evaluated):" in out.stdout
    assert "  or 1.2, not run here (see the note below)" in out.stdout, out.stdout
    assert out.returncode == 6, out.stderr
    (line,) = [ln for ln in out.stderr.splitlines() if "error:" in ln]
    assert "could not be evaluated; or a release not run here (listed above)" in line, line


def test_a_declared_release_not_installable_here_is_run_and_not_said_unrun(
    tmp_path: Path,
) -> None:
    """matrix.yaml declares 1.1, offered only as a Windows wheel: it is a candidate (pip
    fails: a suspect), yet a note said it 'was not run' and, as a suspect already, it was
    named a second time."""
    wheels = build_wheels(tmp_path / "wheels", ["1.0", "1.2"], bad={"1.2"})
    windows = wheels / "bisectpkg-1.1-cp311-cp311-win_amd64.whl"
    windows.write_bytes((wheels / "bisectpkg-1.2-py3-none-any.whl").read_bytes())
    argv = _two_ends(tmp_path, wheels, "1.0", "1.2")
    matrix = tmp_path / "matrix.yaml"
    matrix.write_text(
        matrix.read_text().replace('versions: ["1.0", "1.2"]', 'versions: ["1.0", "1.1", "1.2"]')
    )
    out = _bisect(tmp_path, argv)
    assert "first bad release is one of 2 (the others could not be evaluated):" in out.stdout
    assert "  pkg 1.1 [error: environment: pip could not install" in out.stdout, out.stdout
    assert "not run" not in out.stdout, out.stdout
    assert out.returncode == 6, out.stderr
