"""The published GPU results (results/published/, recorded by the tool on an H200) and what
the README and the report say about them."""

from __future__ import annotations

from pathlib import Path

from repromatrix.config import Matrix, load_matrix
from repromatrix.expand import expand
from repromatrix.model import Status
from repromatrix.readme import README_BEGIN, README_END
from repromatrix.records import Result
from repromatrix.report import build_report, reproduced_table_markdown, summary_rows, write_report
from repromatrix.store import ResultStore

ROOT = Path(__file__).resolve().parents[2]
PUBLISHED = ROOT / "results" / "published"


def _published() -> tuple[list[Result], Matrix]:
    loaded = ResultStore(PUBLISHED).load()
    assert loaded.problems == ()
    return list(loaded.results), load_matrix(ROOT / "matrix.yaml")


def test_readme_table_is_generated_from_the_published_results() -> None:
    results, matrix = _published()
    text = (ROOT / "README.md").read_text()
    start, end = text.index(README_BEGIN) + len(README_BEGIN), text.index(README_END)
    assert text[start:end].strip() == reproduced_table_markdown(results, matrix).strip()


def test_published_results_carry_provenance_from_inside_the_environment() -> None:
    results, matrix = _published()
    ran = [r for r in results if r.status is not Status.NOT_RUN]
    assert {r.gpu for r in ran} == {"cpu", "H100", "H200"}
    for r in ran:
        assert r.provenance["harness"]["env"]
        if r.status is Status.TIMEOUT:
            # Killed before writing its JSON: only what the harness knows is recorded.
            assert set(r.provenance) == {"harness"}
            assert r.provenance["harness"]["gpu"]["name"] in matrix.gpus[r.gpu].smi_names
            continue
        assert r.provenance["torch"].startswith("2.11.0")
        # CPU cells run with CUDA_VISIBLE_DEVICES empty: no GPU is what they must see.
        if r.gpu == "cpu":
            assert r.provenance["gpu"] is None
            continue
        names = matrix.gpus[r.gpu].smi_names
        assert r.provenance["harness"]["gpu"]["name"] in names  # the slot's physical GPU
        assert r.provenance["driver"]
        if r.repro != "upstream_pytest":  # the pytest runner does not import torch itself
            assert r.provenance["gpu"]["name"] in names


def test_summary_says_where_the_regressions_begin_and_end_on_the_h200() -> None:
    results, matrix = _published()
    rows = {(r.repro, r.gpu): r for r in summary_rows(results, matrix)}
    assert rows[("flashinfer_mla_oob_nan", "H200")].sentence == (
        "begins at or before 0.2.2 (first tested); ends at 0.2.4 (last bad 0.2.3)"
    )
    # Each GPU's series holds matrix cells (declared short revs) and bisect evaluations
    # (full shas) of the same commits: each commit is one point, named once. The bisect's
    # other commits have no place without the mirror (a commit date is none): said apart.
    # They may be older: 7336d0cf is the first tested of the known order only; those that
    # regressed may be newer than 85992884, its end too.
    for gpu in ("H100", "H200"):
        assert rows[("fla_fused_chunk_scale", gpu)].sentence.startswith(
            "where the order is known: begins at or before 7336d0cf (first tested whose order "
            "is known); ends at 85992884 (last bad 3f1f080f)"
        )
        assert rows[("fla_fused_chunk_scale", gpu)].sentence.endswith(
            "113e3d93 (regressed), 1159da7b (passed), 13858056 (regressed), 28ebfb76 "
            "(regressed) and 12 more"
        )
    assert rows[("upstream_pytest", "H200")].sentence == (
        "begins at or before 3f1f080f (first tested); ends at 85992884 (last bad 3f1f080f)"
    )
    # On the H100 two cells timed out: the end is only bracketed, and the gap is named.
    assert rows[("flashinfer_mla_oob_nan", "H100")].sentence == (
        "begins at or before 0.2.2 (first tested); ends between 0.2.2 and 0.2.4 (last bad "
        "0.2.2, first good 0.2.4; no verdict at 0.2.2.post1 (timeout), 0.2.3 (timeout))"
    )


def test_published_report_renders(tmp_path: Path) -> None:
    results, matrix = _published()
    paths = write_report(results=results, out_dir=tmp_path, matrix=matrix, cells=expand(matrix))
    html = paths["html"].read_text()
    for name in (
        "flashinfer_mla_oob_nan",
        "fla_fused_chunk_scale",
        "flashinfer_mla_sm89",
        "flashinfer_decode_tensor_cores",
        "trt_sdpa_scale",
    ):
        assert name in html
    assert "ends at 0.2.4 (last bad 0.2.3)" in paths["markdown"].read_text()


def test_a_record_that_could_not_test_does_not_hide_a_published_one(tmp_path: Path) -> None:
    """A CPU machine without torch says "untestable" for trt_sdpa_scale[cpu,host]: the
    published record of that cell, with its numbers, still stands for it."""
    results, matrix = _published()
    published = [r for r in results if r.cell_id == "trt_sdpa_scale[cpu,host]"]
    assert len(published) == 2  # one from each GPU machine's run, both with numbers
    local = published[0].model_copy(
        update={
            "status": Status.UNTESTABLE,
            "reason": "torch not importable: ModuleNotFoundError",
            "metrics": {},
            "finished": "2027-01-01T00:00:00+00:00",
            "host": "vm",
            "run_id": "laptop-run",
            "machine": published[0].machine.model_copy(update={"id": "m-laptop", "gpus": ()}),
        }
    )
    not_run = local.model_copy(update={"status": Status.NOT_RUN, "reason": "no H200 on this host"})
    h200 = next(r for r in results if r.cell_id == "fla_fused_chunk_scale[H200,host,fla=85992884]")
    note = h200.model_copy(
        update={"status": Status.NOT_RUN, "finished": "2027-01-01T00:00:00+00:00", "metrics": {}}
    )
    data = build_report([*results, local, note, not_run], matrix, expand(matrix))
    by_id = {
        (e.repro, e.gpu, dict(e.pins).get("fla", "")): e for e in data.entries if e.base == "host"
    }
    trt = by_id[("trt_sdpa_scale", "cpu", "")]
    assert trt.result is not None
    assert trt.result in published
    assert trt.result.metrics
    assert len(trt.records) == 4  # every record is still listed in the details
    fla = by_id[("fla_fused_chunk_scale", "H200", "85992884")]
    assert fla.status is Status.PASSED
