"""One identity per revision: however a pin was spelled, one commit is one point, shown by
one label; old records are migrated to carry the full commit."""

from __future__ import annotations

import json
import random
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from repromatrix.config import load_matrix
from repromatrix.entries import collect_entries
from repromatrix.executors.base import RunOutcome
from repromatrix.executors.judge import judge
from repromatrix.expand import expand
from repromatrix.harness_pins import harness_pins
from repromatrix.model import (
    CPU,
    HOST_BASE,
    Base,
    BaseKind,
    Cell,
    InstallMode,
    Pin,
    SourceKind,
    Status,
)
from repromatrix.records import RESULT_SCHEMA, Result
from repromatrix.report import build_report
from repromatrix.revision_catalog import (
    _Builder,
    _call,
    _see_record,
    build_catalog,
)
from repromatrix.revisions import Catalog
from repromatrix.store import ResultStore, decode

ROOT = Path(__file__).resolve().parents[2]
A = "a" * 8 + "1" * 32
B = "b" * 8 + "2" * 32
TAG = "9c8e42e762fce087c27b673af4922795d9edb85e"


def record(
    label: str,
    commit: str | None,
    *,
    status: Status = Status.PASSED,
    key: str | None = None,
    kind: str = "git",
    gpu: str = "H100",
    finished: str = "2026-01-01T00:00:00+00:00",
    schema: int = 2,
) -> dict[str, Any]:
    """A stored line as an older repromatrix wrote it: the commit only in provenance."""
    pin: dict[str, Any] = {"kind": kind, "label": label, "rev": label}
    if commit:
        pin["commit"] = commit
    return {
        "schema": schema,
        "key": key or f"k-{label}-{gpu}",
        "cell_id": f"r[{gpu},host,lib={label}]",
        "repro": "r",
        "base": "host",
        "gpu": gpu,
        "pins": {"lib": label},
        "status": status.value,
        "finished": finished,
        "provenance": {"harness": {"pins": {"lib": pin}}},
    }


def load(*records: dict[str, Any]) -> list[Result]:
    return [decode(json.dumps(r)) for r in records]


def test_a_declared_short_rev_and_a_bisect_sha_are_one_revision() -> None:
    results = load(
        record("aaaaaaaa", A),  # a matrix run pins the declared short rev
        record("aaaaaaaa11", A, key="bisect-a"),  # a bisect run pins the full sha
        record("bbbbbbbb22", B, key="bisect-b"),
    )
    catalog = build_catalog(results)
    assert catalog.label("lib", "aaaaaaaa") == catalog.label("lib", "aaaaaaaa11") == "aaaaaaaa"
    assert catalog.label("lib", "anything", A) == "aaaaaaaa"  # the commit decides
    entries = collect_entries(results, (), catalog)
    assert sorted(e.pins for e in entries) == [(("lib", "aaaaaaaa"),), (("lib", "bbbbbbbb"),)]
    (a,) = [e for e in entries if e.pins == (("lib", "aaaaaaaa"),)]
    assert len(a.records) == 2


def test_a_tag_is_shown_with_its_short_hash_and_a_release_by_its_version() -> None:
    results = load(
        record("v0.5.2", TAG),
        record("9c8e42e762", TAG, key="bisect"),
        record("0.2.4", None, kind="pypi"),
    )
    catalog = build_catalog(results)
    assert catalog.label("lib", "v0.5.2") == "v0.5.2 · 9c8e42e7"
    assert catalog.label("lib", "9c8e42e762") == "v0.5.2 · 9c8e42e7"
    assert catalog.label("lib", "0.2.4") == "0.2.4"


def test_a_branch_run_on_two_commits_is_two_revisions() -> None:
    results = load(
        record("main", A, key="k1"),
        record("main", B, key="k2", finished="2026-02-01T00:00:00+00:00"),
    )
    catalog = build_catalog(results)
    labels = {catalog.label("lib", "main", A), catalog.label("lib", "main", B)}
    assert labels == {"main · aaaaaaaa", "main · bbbbbbbb"}
    # Without its commit, "main" could be either: it stays itself rather than guessing.
    assert catalog.label("lib", "main") == "main"


def test_short_hashes_grow_until_they_are_unique() -> None:
    c1, c2 = "abcdef01" + "0" * 32, "abcdef01" + "f" * 32
    catalog = build_catalog(load(record("x1", c1), record("x2", c2)))
    labels = {i.label for i in catalog.identities("lib")}
    assert labels == {"x1 · abcdef010", "x2 · abcdef01f"}


def test_a_not_run_note_of_a_declared_short_rev_joins_its_commit(tmp_path: Path) -> None:
    note = record("aaaaaaa", None, status=Status.NOT_RUN, key="note")
    del note["provenance"]
    results = load(record("aaaaaaaa11", A, key="bisect"), note)
    entries = collect_entries(results)
    assert [e.pins for e in entries] == [(("lib", "aaaaaaaa"),)]
    assert entries[0].status is Status.PASSED  # the note never hides the verdict


def test_old_records_are_migrated_with_their_commits(tmp_path: Path) -> None:
    old = record("v0.5.2", TAG)
    (tmp_path / "old.jsonl").write_text(json.dumps(old) + "\n")
    (r,) = ResultStore(tmp_path).load().results
    assert r.schema_version == RESULT_SCHEMA == 3
    assert r.commits == {"lib": TAG}
    assert r.pins == {"lib": "v0.5.2"}  # the recorded label is kept as it was
    assert r.record()["schema"] == RESULT_SCHEMA
    assert decode(json.dumps(r.record())) == r  # a migrated record round-trips
    # A commit that is not a full sha (or a malformed provenance) is not invented.
    odd = record("x", "not-a-sha")
    odd["provenance"]["harness"]["pins"]["lib"] = ["not", "a", "mapping"]
    assert decode(json.dumps(odd)).commits == {}


def test_the_published_records_have_one_row_per_commit() -> None:
    results = ResultStore(ROOT / "results" / "published").load().results
    matrix = load_matrix(ROOT / "matrix.yaml")
    data = build_report(results, matrix, expand(matrix))
    for rr in data.repros:
        rows = rr.grid.rows
        assert len(rows) == len(set(rows)), rr.name
        if rr.axis != "fla":
            continue
        commits = [data.revisions["fla"][label].commit for label in rows]
        assert len(commits) == len(set(commits)), rr.name
        for label in rows:  # one label per commit: no 10-digit bisect spelling left
            assert len(label.split(" · ")[-1]) == 8, label
    fla = next(rr for rr in data.repros if rr.name == "fla_fused_chunk_scale")
    assert "v0.5.2 · 9c8e42e7" in fla.grid.rows
    assert not {"3f1f080f43", "85992884bf", "7336d0cf15", "9c8e42e762"} & set(fla.grid.rows)


def _cell(rev: str) -> Cell:
    pin = Pin(
        library="lib",
        kind=SourceKind.GIT,
        source="https://example.invalid/lib",
        rev=rev,
        label=rev[:10],
        install=InstallMode.PYTHONPATH,
        import_name="lib",
    )
    return Cell(
        repro="r",
        script=Path("r.py"),
        base=Base(name=HOST_BASE, kind=BaseKind.HOST),
        gpu=CPU,
        pins=(pin,),
        params={},
        timeout_s=30.0,
        key="k" * 20,
    )


def test_new_records_carry_the_full_commit_their_environment_resolved(tmp_path: Path) -> None:
    outcome = RunOutcome(
        exit_code=125,
        timed_out=False,
        cancelled=False,
        duration_s=1.0,
        started=datetime(2026, 1, 1, tzinfo=UTC),
        result_json=tmp_path / "missing.json",
        stdout_tail="",
        stderr_tail="",
        executor="local",
        base_fingerprint="host:x",
        harness={"pins": {"lib": {"commit": B, "kind": "git"}}},
    )
    # The cell pinned a tag; the environment resolved it to B.
    r = judge(_cell("v1.0"), outcome, host="h", run_id="x")
    assert r.commits == {"lib": B}
    # A pin that is already a full sha is recorded as such, even without provenance.
    assert Result.for_cell(_cell(A), status=Status.NOT_RUN, reason="no GPU").commits == {"lib": A}


def test_bisect_tables_name_commits_as_the_report_does() -> None:
    from repromatrix.candidates import Candidate
    from repromatrix.model import Revision
    from repromatrix.report.bisect import candidate_label

    git = SourceKind.GIT
    tag = Revision(rev="v0.5.2", kind=git, label="v0.5.2")
    assert candidate_label(Candidate(rev=TAG, label=TAG[:10], kind=git, revision=tag)) == (
        "v0.5.2 · 9c8e42e7"
    )
    declared = Revision(rev="aaaaaaaa", kind=git, label="aaaaaaaa")
    assert candidate_label(Candidate(rev=A, label=A[:10], kind=git, revision=declared)) == (
        "aaaaaaaa"
    )
    assert candidate_label(Candidate(rev=B, label=B[:10], kind=git)) == "bbbbbbbb"
    release = Revision(rev="0.2.4", kind=SourceKind.PYPI, label="0.2.4")
    pypi = Candidate(rev="0.2.4", label="0.2.4", kind=SourceKind.PYPI, revision=release)
    assert candidate_label(pypi) == "0.2.4"


def _plain_catalog(results: list[Result], declared: dict[tuple[str, str], Any]) -> Catalog:
    """The catalog with one `seen` call per pin of every record, in order: what
    `build_catalog` must give without making the calls that would change nothing."""
    b = _Builder()
    for r in results:
        pins = harness_pins(r.provenance)
        for lib, spelling in r.pins.items():
            entry = pins.get(lib) if pins is not None else None
            prov = entry if isinstance(entry, dict) else {}
            lib_, spellings, commit, kind, index, committed = _call(
                lib, spelling, r.commits.get(lib), prov, declared
            )
            b.seen(lib_, spellings, commit, kind=kind, declared=index, committed=committed)
    return b.build()


@pytest.mark.parametrize("seed", range(40))
def test_the_catalog_skips_only_calls_that_change_nothing(seed: int) -> None:
    rng = random.Random(seed)
    spellings = ["v1", "abc1234", "main", "0.1.0", "deadbeef"][: rng.randint(3, 5)]
    declared = {
        ("lib", "v1"): (0, SourceKind.GIT),
        ("lib", "0.1.0"): (1, SourceKind.PYPI),
        ("other", "main"): (2, SourceKind.GIT),
    }
    results = []
    for i in range(200):
        pins = {
            lib: rng.choice(spellings) for lib in rng.sample(["lib", "other"], rng.randint(1, 2))
        }
        commits = {lib: rng.choice([A, B]) for lib in pins if rng.random() < 0.3}
        provenance: dict[str, Any] = {}
        if rng.random() < 0.6:
            entries = {
                lib: {
                    "rev": rng.choice([*spellings, None]),
                    "kind": rng.choice(["git", "pypi", None]),
                    "committed": rng.choice([None, f"2026-01-0{rng.randint(1, 3)}"]),
                    **({"commit": rng.choice([A, B])} if rng.random() < 0.2 else {}),
                }
                for lib in pins
                if rng.random() < 0.8
            }
            provenance = {"harness": {"pins": entries}}
        results.append(
            Result(
                key=f"k{i}",
                cell_id="c",
                repro="r",
                base="host",
                gpu="H100",
                pins=pins,
                commits=commits,
                provenance=provenance,
                status=Status.PASSED,
            )
        )
    b = _Builder()
    memo: dict[tuple[Any, ...], Any] = {}
    for r in results:
        _see_record(b, r, declared, memo)
    fast, plain = b.build(), _plain_catalog(results, declared)
    assert fast.libraries == plain.libraries
    for lib in plain.libraries:
        assert fast.identities(lib) == plain.identities(lib)
    # `build_catalog` skips idle records itself, before `_see_record`.
    built, plain = build_catalog(results), _plain_catalog(results, {})
    assert built.libraries == plain.libraries
    for lib in plain.libraries:
        assert built.identities(lib) == plain.identities(lib)


def test_a_new_release_does_not_make_the_records_of_the_others_seen_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each release first seen changed no entry known before: the records of `1.0` between
    them change nothing again (100,000 records named 250 releases a library, and each new
    one made every record of the others count again)."""
    calls: list[tuple[str, ...]] = []
    seen = _Builder.seen

    def counted(self: _Builder, lib: str, spellings: Any, *args: Any, **kw: Any) -> None:
        calls.append(tuple(spellings))
        seen(self, lib, spellings, *args, **kw)

    monkeypatch.setattr(_Builder, "seen", counted)
    labels = ["1.0", "2.0", "1.0", "3.0", "1.0", "4.0", "1.0"]
    results = [
        Result(
            key=f"k{i}",
            cell_id="c",
            repro="r",
            base="host",
            gpu="H100",
            pins={"lib": label},
            status=Status.PASSED,
        )
        for i, label in enumerate(labels)
    ]
    catalog = build_catalog(results)
    assert calls == [("1.0",), ("2.0",), ("3.0",), ("4.0",)]
    assert [i.label for i in catalog.identities("lib")] == ["1.0", "2.0", "3.0", "4.0"]


def test_a_record_is_seen_again_once_another_moved_its_spelling() -> None:
    """`v1` (declared first) joins `main`'s entry when a run of `main` resolves to the rev
    `v1`; the next record of `v1` must still make that entry the declared one."""

    def rec(label: str, rev: str | None = None) -> Result:
        harness = {"harness": {"pins": {"lib": {"kind": "git", "rev": rev}}}} if rev else {}
        return Result(
            key=label,
            cell_id="c",
            repro="r",
            base="host",
            gpu="H100",
            pins={"lib": label},
            provenance=harness,
            status=Status.PASSED,
        )

    results = [rec("v1"), rec("v1"), rec("main", "main"), rec("main", "v1"), rec("v1")]
    declared = {("lib", "v1"): (0, SourceKind.GIT)}
    b = _Builder()
    memo: dict[tuple[Any, ...], Any] = {}
    for r in results:
        _see_record(b, r, declared, memo)
    fast, plain = b.build(), _plain_catalog(results, declared)
    assert fast.identities("lib") == plain.identities("lib")
    assert [i.declared for i in plain.identities("lib")] == [0]


def test_a_cell_pinned_by_a_moved_branch_is_its_newest_commit_not_an_empty_row() -> None:
    """`{git: main}` run before and after main moved: two records of the cell's key at
    two commits. The report showed a third row, "main", with no result yet."""
    cell = replace(_cell("main"), gpu=replace(CPU, name="H100"), key="k-main")
    results = load(
        record("main", A, key="k-main"),
        record("main", B, key="k-main", finished="2026-02-01T00:00:00+00:00"),
    )
    entries = collect_entries(results, [cell], build_catalog(results, None, [cell]))
    assert all(e.result is not None for e in entries)
    assert sorted(e.pins for e in entries) == [
        (("lib", "main · aaaaaaaa"),),
        (("lib", "main · bbbbbbbb"),),
    ]
    (current,) = [e for e in entries if e.expected]
    assert current.pins == (("lib", "main · bbbbbbbb"),)
    assert current.cell_id == "r[H100,host,lib=main]"


def test_a_branch_cell_of_another_gpu_with_no_record_yet_is_the_branch_where_it_ran() -> None:
    """`{git: main}` on cpu and H100; only cpu ran, before and after main moved. The H100
    cell, with no record, kept the label "main": a row of its own between the two commits,
    which made the cpu series' sharp boundary a range ("no verdict at main (not run in this
    series)"). It is the newest commit the name ran at, as its cpu twin is."""
    cpu = replace(_cell("main"), gpu=replace(CPU, name="cpu"), key="k-cpu")
    h100 = replace(_cell("main"), gpu=replace(CPU, name="H100"), key="k-h100")
    results = load(
        record("main", A, key="k-cpu", gpu="cpu"),
        record(
            "main",
            B,
            key="k-cpu",
            gpu="cpu",
            status=Status.REGRESSED,
            finished="2026-02-01T00:00:00+00:00",
        ),
    )
    cells = [cpu, h100]
    entries = collect_entries(results, cells, build_catalog(results, None, cells))
    assert {(e.gpu, e.pins) for e in entries} == {
        ("cpu", (("lib", "main · aaaaaaaa"),)),
        ("cpu", (("lib", "main · bbbbbbbb"),)),
        ("H100", (("lib", "main · bbbbbbbb"),)),
    }
    (waiting,) = [e for e in entries if e.gpu == "H100"]
    assert waiting.expected
    assert waiting.result is None
    assert waiting.cell_id == "r[H100,host,lib=main]"


def test_a_commit_is_named_by_its_release_tag_before_a_branch() -> None:
    """One commit run as `{git: feat}` and `{git: v1}`, neither declared now: the report
    said "feat · aaaaaaaa" (the first name in alphabetical order), though the tag is the
    name that stays on the commit."""
    results = load(record("feat", A, key="k1"), record("v1", A, key="k2"))
    assert build_catalog(results).label("lib", A) == "v1 · aaaaaaaa"


def test_a_report_parses_each_version_spelling_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whether a label is a release is asked of every record's labels, again and again (by
    the catalog, the axis order, the builds of a release): each spelling is parsed once,
    where 100,000 records of 250 versions made 85,000 parses."""
    from packaging.version import Version

    import repromatrix.pep440 as versions

    parsed: list[str] = []

    class Counted(Version):
        def __init__(self, version: str) -> None:
            parsed.append(version)
            super().__init__(version)

    forget = getattr(versions.pep440, "cache_clear", lambda: None)
    monkeypatch.setattr(versions, "Version", Counted)
    forget()
    try:
        spellings = ["1.0", "1.0.0", "v1.1", "1.2+cu121", "2.0rc1"]
        results = load(
            *[record(spellings[i % 5], None, kind="pypi", key=f"k{i}") for i in range(200)]
        )
        report = build_report(results, None, [])
        assert sum(report.counts.values()) == 4  # 1.0 and 1.0.0: one release
        assert sorted(parsed) == sorted(set(parsed)), "a spelling parsed twice"
    finally:
        forget()


class _CountedGets(dict[str, Any]):
    """A provenance that counts how often it is read."""

    gets = 0

    def get(self, *args: Any) -> Any:
        type(self).gets += 1
        return super().get(*args)


def test_the_catalog_reads_a_provenance_records_share_once() -> None:
    """Records share equal provenances (the store's load makes them one object): the
    catalog looked for the pins in each record's, 0.07 s of 100,000 records."""
    shared = _CountedGets(load(record("v0.5.2", TAG))[0].provenance)
    results = [
        r.model_copy(update={"provenance": shared})
        for r in load(*(record("v0.5.2", TAG, key=f"k{i}", gpu=f"g{i}") for i in range(20)))
    ]
    _CountedGets.gets = 0
    catalog = build_catalog(results)
    assert catalog.label("lib", "v0.5.2") == "v0.5.2 · 9c8e42e7"
    assert _CountedGets.gets <= 1
