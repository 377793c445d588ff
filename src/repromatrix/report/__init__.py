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
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from repromatrix.entries import Entry
from repromatrix.gitlog import Line
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
    yanked: Mapping[str, Mapping[str, bool | None]] | None = None,
    cache: str | None = None,
    unlisted: Mapping[str, str] | None = None,
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
    commits on it that no cell ran make a boundary across them a range. `yanked`, per
    library, its yanked releases (release → whether a bisection skipped it, as
    `kept_releases.KeptListing.yanked` holds them): one nothing ran is said "yanked", as the CLI
    says it (default: none known); `cache`, the --cache they were read from, as the
    bisection to run again names it where a listing is too old to say them; `unlisted`, the
    libraries whose kept listing is incomplete, and why: a boundary along one is a range.
    Parquet is skipped, with a note in the report, when
    pyarrow is not installed. `catalog` (of `results` and `cells`) and `compare_catalog`
    (of `compare`, `results` and `cells`) save building them again when the caller has them
    (see `revision_catalog.build_catalog`).
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
            yanked=yanked,
            cache=cache,
            unlisted=unlisted,
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
    ahead: bool = False,
    details: Iterable[str] | None = None,
) -> dict[str, Path]:
    """`write_report`'s files from a report already built (`build_report` of `results`):
    a caller that needs the findings too (the README table) builds them once. The tables
    and junit.xml are written here after the pages (`tables_ahead`, unforked), unless
    `ahead`: they are being written already (`tables_ahead`, by a child); `details`: the
    page's details, as `tables_ahead` gives them (default: made here)."""
    from repromatrix.report.compare import CHANGE_GROUPS
    from repromatrix.report.compat import build_compat
    from repromatrix.report.markdown import render_changes, render_markdown
    from repromatrix.report.render import render_page, write_html, write_page
    from repromatrix.report.table import parquet_available

    if not cells and matrix is not None:
        from repromatrix.expand import expand

        cells = expand(matrix)
    notes: list[str] = []
    if not parquet_available():
        notes.append(
            "results.parquet was not written: pyarrow is not installed (pip install 'pyarrow>=14')"
        )
        log.warning("%s", notes[-1])
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {fmt: out_dir / name for fmt, name in OUTPUT_NAMES.items()}
    if not parquet_available():
        del paths["parquet"]

    with contextlib.ExitStack() as stack:
        if not ahead:  # written here once the pages are, as `tables_ahead` writes them
            ahead_of = tables_ahead(data.entries, out_dir=out_dir, matrix=matrix, fork=False)
            stack.enter_context(ahead_of)(data)
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
                orders=data.orders,
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
        write_html(paths["html"], data, notes=notes, links=links, changes=cmp, details=details)
        compat = build_compat(data, matrix, OUTPUT_NAMES["html"])
        write_page(paths["compat"], render_page("compat.html.j2", compat=compat, **context))
        paths["markdown"].write_text(
            render_markdown(data, notes=notes), encoding="utf-8", errors="replace"
        )
    return paths


#: The share of the page's cells whose details the child forked by `tables_ahead` makes,
#: after the tables, while this process makes the rest of the page. On 2 CPUs, 100,000
#: light records: this process's first 40% of them end as the child's 60% do (the child's
#: tables end as the report is built), so neither waits for the other's details. (With
#: 40% the child ended junit.xml 0.4-0.5 s before this process ended the page.)
CHILD_DETAILS_SHARE = 0.6
#: ... as long as their records weigh at most this much (`_weight`): the child copies the
#: pages of what it reads and lives the longer, while this process copies what it reads.
#: 20,000 records shaped like a GPU host's took 642 MiB with no share, 685 MiB with 0.2,
#: 880 MiB with 0.4; bounded by weight, 650-657 MiB at 16 MB and 669-673 MiB at 24 MB
#: (light: 438 and 443-445 MiB). 60% of 100,000 light records weigh 23.7 MB: whole.
CHILD_DETAILS_BYTES = 24 << 20


@contextmanager
def tables_ahead(
    entries: Sequence[Entry], *, out_dir: Path, matrix: Matrix | None, fork: bool
) -> Iterator[Callable[[ReportData], Iterable[str] | None]]:
    """results.csv, results.parquet and junit.xml written into `out_dir` by a forked child
    started now, with the cells alone (`collect_entries`), while this process builds the
    rest of the report and renders the pages (`write_outputs(..., ahead=True)`): the
    tables need only the cells, so the child starts the second CPU a second sooner, at
    100,000 records. The body calls what it is given with the report once built: junit.xml
    needs its order of cells, sent to the child (which holds the same cells, by their
    place in `entries`), which then makes the details of the page's last cells too
    (`CHILD_DETAILS_SHARE`, `CHILD_DETAILS_BYTES`) before junit.xml; what the call returns
    is the page's details (`render.detail_runs`), those of the child's cells read back
    from it. Without `fork` (or where it is not possible) all is written here on the way
    out, and the call returns None (the page makes all its details): `write_outputs`
    writes the tables and junit.xml so when nothing wrote them ahead."""
    from repromatrix.report import forked

    names = {fmt: out_dir / name for fmt, name in OUTPUT_NAMES.items()}
    repros = matrix.repros if matrix is not None else None
    apart = frozenset(e.repro for e in entries if repros is not None and e.repro not in repros)
    plan = _Plan(entries, fork and forked.fork_possible(), out_dir)

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
            plan.in_parent()
            yield plan.send
    finally:
        plan.close()


class _Plan:
    """What a child forked before the report was built needs of it: junit.xml's suites,
    and the page's cells whose details it makes, each cell as its place in `entries`, in
    a file both hold open (written whole, then its length said on a pipe: the child reads
    them when its tables are done, and the parent never waits on it). The child writes
    those details into another file, a run of cells a line, and says so on a pipe of its
    own. Unforked, the report is kept as it is."""

    def __init__(self, entries: Sequence[Entry], forked: bool, folder: Path) -> None:
        self.entries, self.forked, self.parent = entries, forked, os.getpid()
        self.data: ReportData | None = None
        # Unnamed files beside the report's (a full /tmp is no reason for it to fail).
        self.file = tempfile.TemporaryFile(dir=folder) if forked else None  # noqa: SIM115
        self.details = tempfile.TemporaryFile(dir=folder) if forked else None  # noqa: SIM115
        self.said, self.say = os.pipe() if forked else (-1, -1)
        self.done, self.tell = os.pipe() if forked else (-1, -1)
        self.mine: list[tuple[Entry, bool]] = []

    def _close(self, *names: str) -> None:
        for name in names:
            fd = getattr(self, name)
            if fd >= 0:
                os.close(fd)
                setattr(self, name, -1)

    def in_parent(self) -> None:
        """In the parent, once the child is forked: the child's ends closed here."""
        if self.forked:
            self._close("said", "tell")

    def in_child(self) -> None:
        """In the child: the parent's ends closed, so a parent gone is an end of it."""
        if self.forked and os.getpid() != self.parent:
            self._close("say", "done")

    def send(self, data: ReportData) -> Iterable[str] | None:
        from repromatrix.report.junit import junit_suites
        from repromatrix.report.views import page_cells

        self.data = data
        if self.file is None:
            return None
        place = {id(e): i for i, e in enumerate(self.entries)}
        suites = [
            (name, apart, array("q", [place[id(e)] for e in cells]))
            for name, apart, cells in junit_suites(data)
        ]
        cells = list(page_cells(data))
        split = len(cells) - _child_cells(cells)
        self.mine = cells[:split]
        theirs = array("q", [place[id(e)] for e, _ in cells[split:]])
        apart = bytes(a for _, a in cells[split:])
        sent = (suites, data.title, theirs, apart)
        blob = pickle.dumps(sent, protocol=pickle.HIGHEST_PROTOCOL)
        done = 0
        while done < len(blob):  # a regular file takes it whole, but pwrite may say less
            done += os.pwrite(self.file.fileno(), blob[done:], done)
        with contextlib.suppress(BrokenPipeError):  # the child is gone: said when reaped
            os.write(self.say, b"%d\n" % len(blob))
        self._close("say")
        return self._page_runs(cells[split:])

    def _page_runs(self, theirs: list[tuple[Entry, bool]]) -> Iterator[str]:
        """The page's details: its first cells' made here, then the child's read back
        (made here too where the child failed before it wrote them all: its failure is
        said when it is waited for)."""
        from repromatrix.report.render import detail_runs
        from repromatrix.report.views import details_of

        yield from detail_runs(details_of(self.mine))
        self.mine = []
        said = _line(self.done)
        self._close("done")
        if not said or self.details is None:
            yield from detail_runs(details_of(theirs))
            return
        self.details.seek(0)
        for line in self.details:
            yield line.rstrip(b"\n").decode("utf-8", "surrogatepass")

    def receive(self) -> tuple[list[Suite], str]:
        from repromatrix.report.junit import junit_suites

        if self.file is None or os.getpid() == self.parent:
            if self.data is None:
                raise RuntimeError("the report was never built")
            return junit_suites(self.data), self.data.title
        said = _line(self.said)
        if not said:
            raise RuntimeError("the report was never built")
        suites, title, theirs, apart = pickle.loads(os.pread(self.file.fileno(), int(said), 0))
        entries = self.entries
        self._write_details([(entries[i], bool(a)) for i, a in zip(theirs, apart, strict=True)])
        return [(name, apart, [entries[i] for i in at]) for name, apart, at in suites], title

    def _write_details(self, cells: list[tuple[Entry, bool]]) -> None:
        """In the child: the details of `cells`, a run a line (JSON text has no line
        break), then their length said to the parent."""
        from repromatrix.report.render import detail_runs
        from repromatrix.report.views import details_of

        assert self.details is not None
        out = self.details
        for run in detail_runs(details_of(cells)):
            out.write(run.encode("utf-8", "surrogatepass") + b"\n")
        out.flush()
        os.write(self.tell, b"%d\n" % out.tell())
        self._close("tell")

    def close(self) -> None:
        self._close("said", "say", "done", "tell")
        for f in (self.file, self.details):
            if f is not None:
                f.close()


def _child_cells(cells: list[tuple[Entry, bool]]) -> int:
    """How many of the page's last `cells` the child makes the details of: up to
    `CHILD_DETAILS_SHARE` of them, as many as weigh `CHILD_DETAILS_BYTES` (`_weight`, of
    up to a thousand of them: weighing each took 0.1 s of 100,000 light records)."""
    most = int(len(cells) * CHILD_DETAILS_SHARE)
    sample = cells[len(cells) - most :: max(1, most // 1000)] if most else []
    if not sample:
        return 0
    mean = sum(_weight(e) for e, _ in sample) / len(sample)
    return min(most, int(CHILD_DETAILS_BYTES / mean))


def _weight(e: Entry) -> int:
    """About what a cell's details read of its records that the tables do not (bytes):
    tails, provenance (a GPU host's is nested: kilobytes), metrics' rows."""
    r = e.result
    own = 0 if r is None else len(r.stdout_tail) + len(r.stderr_tail)
    rows = 0 if r is None else len(r.metrics) + len(r.provenance)
    return 100 + own + 50 * rows + 100 * len(e.history)


def _line(fd: int) -> bytes:
    """What is said on the pipe `fd` up to its line's end (a process forked meanwhile may
    hold the other end open: no end of file to wait for); b"" when it was closed first."""
    said = b""
    while not said.endswith(b"\n") and (chunk := os.read(fd, 64)):
        said += chunk
    return said.strip()
