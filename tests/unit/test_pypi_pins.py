"""The requirement a PyPI pin is installed with: the release it names, not a local build."""

from __future__ import annotations

from repromatrix.model import InstallMode, Pin, SourceKind
from repromatrix.pypi_pins import (
    SPELLING_FIRST,
    loosened,
    pin_requirement,
    taken_as,
    took_another_build,
)


def _pin(rev: str) -> Pin:
    return Pin(
        library="torch", kind=SourceKind.PYPI, source="torch", rev=rev, label=rev,
        install=InstallMode.PIP, import_name="torch",
    )  # fmt: skip


def test_a_plain_release_is_asked_exactly_a_local_build_as_itself() -> None:
    # `torch==2.1.0` also matches 2.1.0+cu121, which pip prefers when both are offered.
    assert pin_requirement(_pin("2.1.0")) == "torch===2.1.0"
    assert pin_requirement(_pin("v2.1")) == "torch===2.1"  # the spelling pip compares
    assert pin_requirement(_pin("2.1.0+cu121")) == "torch==2.1.0+cu121"


def test_an_exact_release_pip_found_no_file_for_is_asked_again_as_pip_would_match_it() -> None:
    asked = ["torch===2.1", "numpy<2", "/env/src/fla"]
    failed = "ERROR: No matching distribution found for torch===2.1\n"
    again = loosened(asked, failed)
    assert again == ["torch==2.1", "numpy<2", "/env/src/fla"]
    assert taken_as(again, "torch===2.1") == "torch==2.1"
    assert taken_as(asked, "torch===2.1") == "torch===2.1"
    assert loosened(asked, "ERROR: Failed building wheel for fla\n") is None
    assert loosened(["torch==2.1"], "No matching distribution found for torch==2.1") is None


def test_an_environment_that_took_a_local_build_for_a_plain_pin_is_out_of_date() -> None:
    before = {"kind": "pypi", "rev": "1.2", "installed": "1.2+cu121"}
    assert took_another_build(before)
    # `==1.2` by a harness that never asked pip's own spelling first (`===1.2.0` beside
    # 1.2.0+cu121): perhaps another build than the release offered; built again.
    assert took_another_build(before | {"requirement": "pkg==1.2"})
    asked_since = before | {"requirement": "pkg==1.2", SPELLING_FIRST: True}
    assert not took_another_build(asked_since)  # local builds alone offered: that one
    assert not took_another_build(before | {"installed": "1.2"})
    assert not took_another_build({"kind": "pypi", "rev": "1.2+cu121", "installed": "1.2+cu121"})
    assert not took_another_build({"kind": "git", "rev": "1.2", "installed": None})


def test_an_exact_release_spelled_otherwise_is_asked_as_pip_spells_it_not_a_local_build() -> None:
    # `==1.0.0` takes 1.0+cu121 where both are offered: `===1.0` is the release itself.
    failed = (
        "ERROR: Could not find a version that satisfies the requirement pkg===1.0.0 "
        "(from versions: 0.9, 1.0, 1.0+cu121, 1.1)\n"
        "ERROR: No matching distribution found for pkg===1.0.0\n"
    )
    again = loosened(["pkg===1.0.0", "numpy<2"], failed)
    assert again == ["pkg===1.0", "numpy<2"]
    assert taken_as(again, "pkg===1.0.0") == "pkg===1.0"
    # That spelling failing too (no more to try): `==`, and then nothing more.
    failed_again = failed.replace("===1.0.0", "===1.0")
    assert loosened(again, failed_again) == ["pkg==1.0", "numpy<2"]
    assert loosened(["pkg==1.0", "numpy<2"], failed_again) is None
    # Only local builds of it offered: `==`, as before.
    only_builds = failed.replace("1.0, 1.0+cu121", "1.0+cu118, 1.0+cu121")
    assert loosened(["pkg===1.0.0"], only_builds) == ["pkg==1.0.0"]
