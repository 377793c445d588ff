"""Reports: one static folder (HTML, Markdown, JUnit XML, CSV, Parquet) from result records.

`write_report` is the front door the CLI calls: the full report (index.html), the
compatibility matrix (compat.html), and with `compare` what changed since another result
set (changes.html, changes.md). `summary_rows` and `reproduced_table_markdown` give the
same findings to the README generator.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import pickle
import tempfile
from array import array
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from repromatrix.gitlog import Line
from repromatrix.grid import Entry
from repromatrix.model import Cell
from repromatrix.records import Result
from repromatrix.report.build import ReportData, SummaryRow, build_report, summary_rows
from repromatrix.report.markdown import reproduced_table_markdown
from repromatrix.store import LoadProblem

if TYPE_CHECKING:
    from repromatrix.config import Matrix
    from repromatrix.report.junit import Suite
    from repromatrix.revisions import Catalog

__all__ = [
    "OUTPUT_NAMES",
    "ReportData",
    "SummaryRow",
    "build_report",
    "paused_gc",
    "reproduced_table_markdown",
    "summary_rows",
    "tables_ahead",
    "write_outputs",
    "write_report",
]

log = logging.getLogger("repromatrix.report")

#: Format → file name inside the report folder.
OUTPUT_NAMES = {
    "html": "index.html",
    "compat": "compat.html",
    "markdown": "summary.md",
    "junit": "junit.xml",
    "csv": "results.csv",
    "parquet": "results.parquet",
}
#: Written only with `compare`.
CHANGES_NAMES = {"changes": "changes.html", "changes_markdown": "changes.md"}


def write_report(
    *,
    results: Sequence[Result],
    out_dir: Path,
    matrix: Matrix | None = None,
    cells: Sequence[Cell] = (),
    title: str = "repromatrix report",
    load_problems: Sequence[LoadProblem] = (),
    topo: Mapping[str, Mapping[str, int]] | None = None,
    compare: Sequence[Result] | None = None,
    compare_label: str = "",
    catalog: Catalog | None = None,
    compare_catalog: Catalog | None = None,
    releases: Mapping[str, Sequence[str]] | None = None,
    lines: Mapping[str, Line] | None = None,
) -> dict[str, Path]:
    """Write index.html, compat.html, summary.md, junit.xml, results.csv and
    results.parquet into `out_dir` (a static folder for any web host), and with `compare`
    (an older result set, named `compare_label`) changes.html and changes.md; return the
    paths by format.

    `cells` are the positions the matrix expects (default: all of them when a matrix is
    given); positions without a record show as "no result yet". `topo` gives, per library,
    the topological position of its commits (`GitRepo.topo_positions`); without it
    commits keep matrix.yaml's order, and others have none (a commit date is no place);
    `lines`, per library, the first-parent line between them (`GitRepo.history`):
    commits on it that no cell ran make a boundary across them a range.
    Parquet is skipped, with a note in the report, when
    pyarrow is not installed. `catalog` (of `results` and `cells`) and `compare_catalog`
    (of `compare`, `results` and `cells`) save building them again when the caller has them
    (see `revisions.build_catalog`).
    """
    with paused_gc():
        data = build_report(
            results,
            matrix,
            cells,
            title=title,
            load_problems=load_problems,
            topo=topo,
            catalog=catalog,
            releases=releases,
            lines=lines,
        )
        return write_outputs(
            data,
            results=results,
            out_dir=out_dir,
            matrix=matrix,
            cells=cells,
            title=title,
            compare=compare,
            compare_label=compare_label,
            compare_catalog=compare_catalog,
        )


@contextmanager
def paused_gc() -> Iterator[None]:
    """No cyclic garbage collection inside: reading and reporting 100,000 records makes
    millions of small containers, and every collection would walk them all again (it took
    half the time of loading them); nothing made here forms cycles worth collecting early."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@paused_gc()
def write_outputs(
    data: ReportData,
    *,
    results: Sequence[Result],
    out_dir: Path,
    matrix: Matrix | None = None,
    cells: Sequence[Cell] = (),
    title: str = "repromatrix report",
    compare: Sequence[Result] | None = None,
    compare_label: str = "",
    compare_catalog: Catalog | None = None,
    jobs: int = 1,
    ahead: bool = False,
) -> dict[str, Path]:
    """`write_report`'s files from a report already built (`build_report` of `results`):
    a caller that needs the findings too (the README table) builds them once. With
    `jobs` 2 the tables and junit.xml are written by a forked child beside the pages;
    `ahead`: they are being written already (`tables_ahead`)."""
    from repromatrix.forking import give_back_free_memory
    from repromatrix.report.compare import CHANGE_GROUPS
    from repromatrix.report.compat import build_compat
    from repromatrix.report.forked import side_by_side
    from repromatrix.report.junit import write_junit
    from repromatrix.report.markdown import render_changes, render_markdown
    from repromatrix.report.render import render_page, write_html, write_page
    from repromatrix.report.table import parquet_available, write_tables

    if not cells and matrix is not None:
        from repromatrix.expand import expand

        cells = expand(matrix)
    notes: list[str] = []
    if not parquet_available():
        notes.append(
            "results.parquet was not written: pyarrow is not installed "
            "(pip install 'repromatrix[parquet]')"
        )
        log.warning("%s", notes[-1])
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {fmt: out_dir / name for fmt, name in OUTPUT_NAMES.items()}
    if not parquet_available():
        del paths["parquet"]

    def tables_and_junit() -> None:
        unlisted = frozenset(rr.name for rr in data.repros if not rr.listed and data.has_matrix)
        write_tables(
            data.entries,
            csv_path=paths["csv"],
            parquet_path=paths.get("parquet"),
            apart=unlisted,
        )
        give_back_free_memory()  # what the tables' buffers took: not held through junit.xml
        with paths["junit"].open("wb") as out:
            write_junit(data, out)

    # With jobs 2, the tables and the JUnit file are written by a child while the pages
    # render here: one child, not one each, as each copies the pages of the records it
    # reads (their reference counts change), and the two take about as long as the pages.
    # Not by default: the copies take about a third more memory (bench_report).
    slow = [(f"{paths['csv'].name}, {paths['junit'].name}", tables_and_junit)]
    with side_by_side([] if ahead else slow, fork=jobs > 1):
        links = {"Compatibility matrix": OUTPUT_NAMES["compat"]}
        cmp = None
        context = {"title": title, "generated": data.generated, "page": OUTPUT_NAMES["html"]}
        if compare is not None:
            from repromatrix.report.compare import compare as compare_sets

            cmp = compare_sets(
                compare,
                results,
                matrix=matrix,
                cells=cells,
                old_label=compare_label,
                catalog=compare_catalog,
            )
            paths.update({fmt: out_dir / name for fmt, name in CHANGES_NAMES.items()})
            links[f"What changed since {compare_label or 'the older results'}"] = CHANGES_NAMES[
                "changes"
            ]
            write_page(
                paths["changes"],
                render_page("changes.html.j2", cmp=cmp, groups=CHANGE_GROUPS, **context),
            )
            paths["changes_markdown"].write_text(
                render_changes(cmp, title=title), encoding="utf-8", errors="replace"
            )
        links.update({"summary.md": OUTPUT_NAMES["markdown"], "results.csv": OUTPUT_NAMES["csv"]})
        write_html(paths["html"], data, notes=notes, links=links, changes=cmp)
        compat = build_compat(data, matrix, OUTPUT_NAMES["html"])
        write_page(paths["compat"], render_page("compat.html.j2", compat=compat, **context))
        paths["markdown"].write_text(
            render_markdown(data, notes=notes), encoding="utf-8", errors="replace"
        )
    return paths


@contextmanager
def tables_ahead(
    entries: list[Entry], *, out_dir: Path, matrix: Matrix | None, fork: bool
) -> Iterator[Callable[[ReportData], None]]:
    """results.csv, results.parquet and junit.xml written into `out_dir` by a forked child
    started now, with the cells alone (`collect_entries`), while this process builds the
    rest of the report and renders the pages (`write_outputs(..., ahead=True)`): the
    tables need only the cells, so the child starts the second CPU a second sooner, at
    100,000 records. The body calls what it is given with the report once built: junit.xml
    needs its order of cells, sent to the child (which holds the same cells, by their
    place in `entries`). Without `fork` (or where it is not possible) all is written here
    on the way out, as `write_outputs` writes it."""
    from repromatrix.report import forked

    names = {fmt: out_dir / name for fmt, name in OUTPUT_NAMES.items()}
    repros = matrix.repros if matrix is not None else None
    apart = frozenset(e.repro for e in entries if repros is not None and e.repro not in repros)
    plan = _JunitPlan(entries, fork and forked.fork_possible(), out_dir)

    def tables_and_junit() -> None:
        from repromatrix.forking import give_back_free_memory
        from repromatrix.report.junit import write_suites
        from repromatrix.report.table import parquet_available, write_tables

        plan.in_child()
        parquet = names["parquet"] if parquet_available() else None
        write_tables(entries, csv_path=names["csv"], parquet_path=parquet, apart=apart)
        give_back_free_memory()  # what the tables' buffers took: not held through junit.xml
        suites, title = plan.receive()
        with names["junit"].open("wb") as out:
            write_suites(suites, title, out)

    slow = [(f"{names['csv'].name}, {names['junit'].name}", tables_and_junit)]
    try:
        with forked.side_by_side(slow, fork=plan.forked):
            yield plan.send
    finally:
        plan.close()


class _JunitPlan:
    """junit.xml's suites, from the process that built the report to a child forked before:
    each suite's cells as their places in `entries`, in a file both hold open (written
    whole, then its length said on a pipe: the child reads them when its tables are done,
    and the parent never waits on it). Unforked, the report is kept as it is."""

    def __init__(self, entries: list[Entry], forked: bool, folder: Path) -> None:
        self.entries, self.forked, self.parent = entries, forked, os.getpid()
        self.data: ReportData | None = None
        # An unnamed file beside the report's (a full /tmp is no reason for it to fail).
        self.file = tempfile.TemporaryFile(dir=folder) if forked else None  # noqa: SIM115
        self.said, self.say = os.pipe() if forked else (-1, -1)

    def send(self, data: ReportData) -> None:
        from repromatrix.report.junit import junit_suites

        self.data = data
        if self.file is None:
            return
        place = {id(e): i for i, e in enumerate(self.entries)}
        suites = [
            (name, apart, array("q", [place[id(e)] for e in cells]))
            for name, apart, cells in junit_suites(data)
        ]
        blob = pickle.dumps((suites, data.title), protocol=pickle.HIGHEST_PROTOCOL)
        done = 0
        while done < len(blob):  # a regular file takes it whole, but pwrite may say less
            done += os.pwrite(self.file.fileno(), blob[done:], done)
        with contextlib.suppress(BrokenPipeError):  # the child is gone: said when reaped
            os.write(self.say, str(len(blob)).encode())
        os.close(self.say)
        self.say = -1

    def in_child(self) -> None:
        """In the child: the pipe's writing end closed, so a parent gone is an end of it."""
        if self.forked and os.getpid() != self.parent and self.say >= 0:
            os.close(self.say)
            self.say = -1

    def receive(self) -> tuple[list[Suite], str]:
        from repromatrix.report.junit import junit_suites

        if self.file is None or os.getpid() == self.parent:
            if self.data is None:
                raise RuntimeError("the report was never built")
            return junit_suites(self.data), self.data.title
        said = b""
        while chunk := os.read(self.said, 64):
            said += chunk
        if not said:
            raise RuntimeError("the report was never built")
        suites, title = pickle.loads(os.pread(self.file.fileno(), int(said), 0))
        entries = self.entries
        return [(name, apart, [entries[i] for i in at]) for name, apart, at in suites], title

    def close(self) -> None:
        for fd in (self.said, self.say):
            if fd >= 0:
                os.close(fd)
        self.said = self.say = -1
        if self.file is not None:
            self.file.close()
