"""Release bisection of a repro that fails two ways (real wheels, real pip): a release
that fails otherwise than the --bad end is another bug, whatever the slots per round."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from bisect_repo import REPRO, build_wheels

pytestmark = pytest.mark.integration

#: The repro, and its other failure: `offset_err` over its limit, `abs_err` not measured,
#: at the releases whose wheel says OTHER (stands in for a crash of another bug).
TWO_WAYS = REPRO.replace(
    '"thresholds": {"abs_err": 1e-9}', '"thresholds": {"abs_err": 1e-9, "offset_err": 1e-9}'
).replace(
    "err = abs(bisectpkg.scale(x) - 2 * x)\n",
    'if getattr(bisectpkg, "OTHER", False):\n'
    '    finish("regressed", "offset broke", offset_err=1.0)\n'
    "err = abs(bisectpkg.scale(x) - 2 * x)\n",
)


def _setup(tmp_path: Path, repro: str) -> list[str]:
    """`repro` as tmp_path/repros/scale.py, a matrix.yaml declaring bisectpkg 1.0 and 1.5,
    and the command that bisects between them (sources and --cache to add)."""
    (tmp_path / "repros").mkdir(exist_ok=True)
    (tmp_path / "repros" / "scale.py").write_text(repro)
    matrix = tmp_path / "matrix.yaml"
    matrix.write_text(
        'schema: 1\nlibraries:\n  pkg: {pypi: bisectpkg, import: bisectpkg, versions: ["1.0", '
        '"1.5"]}\nrepros:\n  scale: {script: repros/scale.py, gpus: [cpu], libraries: '
        "{pkg: all}}\n"
    )
    argv = [sys.executable, "-m", "repromatrix", "--matrix", str(matrix), "bisect", "scale"]
    return [*argv, "--library=pkg", "--good=1.0", "--bad=1.5", "--executor=local", "--no-progress"]


def _bisect(tmp_path: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    assert "OTHER" in TWO_WAYS
    assert '"offset_err": 1e-9' in TWO_WAYS
    argv = _setup(tmp_path, TWO_WAYS)
    argv += [f"--find-links={tmp_path / 'wheels'}", "--no-index", f"--cache={tmp_path / 'c'}"]
    return subprocess.run(
        [*argv, *flags], cwd=tmp_path, capture_output=True, text=True, check=False
    )


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_good_end_failing_otherwise_than_the_bad_end_is_another_failure(
    tmp_path: Path, jobs: str
) -> None:
    """--good 1.0 fails as another bug does (offset_err; abs_err, the --bad end's check,
    not measured). With two slots both ends ran in one round and the line said 1.0 could
    not be evaluated (a different failure); with one, 1.0 ran twice before --bad 1.5 ran
    at all, judged against no failure, and the line said '--good 1.0 is not good … or, if
    the regression was fixed between them, find the release that fixed it with
    --find-fix', which searches for the fix of a bug 1.0 never showed."""
    wheels = build_wheels(
        tmp_path / "wheels", ["1.0", "1.1", "1.2", "1.3", "1.4", "1.5"], bad={"1.3", "1.4", "1.5"}
    )
    one = wheels / "bisectpkg-1.0-py3-none-any.whl"
    with zipfile.ZipFile(one) as zf:
        files = {n: zf.read(n) for n in zf.namelist()}
    files["bisectpkg/__init__.py"] += b"\nOTHER = True\n"
    with zipfile.ZipFile(one, "w") as zf:  # RECORD's hash of it is not checked by pip
        for name, data in files.items():
            zf.writestr(name, data)
    out = _bisect(tmp_path, f"--jobs={jobs}")
    assert out.returncode == 6, out.stderr
    assert (
        "error: --good 1.0 (1.0) could not be evaluated (a different failure: regressed: "
        "offset broke); fix that or pick another --good\n"
    ) in out.stderr, out.stdout + out.stderr
    assert "--find-fix" not in out.stdout + out.stderr


def test_a_release_whose_wheel_pip_found_needs_another_python_says_how_to_run_it(
    tmp_path: Path,
) -> None:
    """An index page without `data-requires-python` (a plain PEP 503 index) offers 1.2,
    whose wheel says `Requires-Python: >=3.99`: `pip index versions` lists it, its install
    fails ("requires a different Python"), and the "one of 2" answer said "fix what stops
    them and run the same command again with --retry-errors", which fails the same way:
    the way out is an interpreter or image it installs on."""
    files = build_wheels(
        tmp_path / "files", ["1.0", "1.1", "1.2", "1.3", "1.5"], bad={"1.2", "1.3", "1.5"}
    )
    wheel = files / "bisectpkg-1.2-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as zf:
        inside = {n: zf.read(n) for n in zf.namelist()}
    inside["bisectpkg-1.2.dist-info/METADATA"] += b"Requires-Python: >=3.99\n"
    with zipfile.ZipFile(wheel, "w") as zf:
        for name, data in inside.items():
            zf.writestr(name, data)
    page = tmp_path / "simple" / "bisectpkg" / "index.html"
    page.parent.mkdir(parents=True)
    links = "".join(f'<a href="{f.as_uri()}">{f.name}</a>\n' for f in sorted(files.iterdir()))
    page.write_text(f"<html><body>\n{links}</body></html>\n")
    argv = _setup(tmp_path, REPRO)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env |= {"PIP_CONFIG_FILE": os.devnull, "PIP_INDEX_URL": (tmp_path / "simple").as_uri()}
    out = subprocess.run(
        [*argv, f"--cache={tmp_path / 'c'}"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 6, out.stdout + out.stderr
    assert "first bad release is one of 2" in out.stdout, out.stdout
    (line,) = [ln for ln in out.stderr.splitlines() if "error:" in ln]
    assert "--retry-errors" not in line, line
    assert (
        "pip found that 1.2 requires a different Python than this one: run it with an "
        "interpreter or image it installs on (--python, --image)"
    ) in line, line
