"""Markdown outputs: the CI step summary / PR comment, and the README's "Reproduced so far"."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from repromatrix.load_problems import rest_said
from repromatrix.model import STATUS_TEXT
from repromatrix.records import Result
from repromatrix.report.build import STATUS_ORDER, ReportData, SummaryRow, summary_rows
from repromatrix.report.compare import CHANGE_GROUPS, Comparison
from repromatrix.report.escape import Markdown, md_cell
from repromatrix.report.metrics import NOT_FINITE, fmt_against, fmt_bound
from repromatrix.report.unlisted import tallies
from repromatrix.safetext import cut

if TYPE_CHECKING:
    from repromatrix.config import Matrix


#: A table cell's text is cut in the middle beyond this many characters: a regression
#: that comes and goes at every other release is a sentence of kilobytes, past what a
#: reader follows, and a few such rows pass what a GitHub comment holds (65,536).
MAX_CELL_CHARS = 2000


#: Unreadable records named in the notes, as on standard error: a damaged results file of
#: 5,000 lines made a summary of 800 KB, past what a PR comment (65,536 characters) or a
#: CI step summary (1 MiB) takes; index.html lists every one.
MAX_PROBLEMS = 20


#: Rows of each group of changes.md: a matrix renamed or moved to new pins lost thousands
#: of verdicts at once, and a changes.md of 180 KB is past what a PR comment takes (65,536
#: characters: the comment is refused whole); changes.html lists every change.
MAX_CHANGE_ROWS = 50


#: What each of summary.md's own tables may take of a PR comment (65,536 characters: the
#: comment is refused whole past it): a matrix of 1,500 repros made a summary of 300 KB,
#: and a Ray cluster of hundreds of machines a machines table past it on its own. Rows past
#: a table's share are counted under it; index.html lists every one.
MAX_TABLE_CHARS = {"main": 30_000, "counts": 8_000, "machines": 8_000}


#: A title (`--title`) is cut in the middle beyond this many characters in a heading of
#: summary.md and changes.md: one of 100,000 (a CI job's text passed as the title) made
#: a summary past what a PR comment takes, refused whole; the HTML pages show it all.
MAX_TITLE_CHARS = 300


def _cell(text: str) -> str:
    if len(text) > MAX_CELL_CHARS and not isinstance(text, Markdown):
        marker = f" […{len(text) - MAX_CELL_CHARS:,} characters cut here; index.html has them…] "
        text = cut(text, MAX_CELL_CHARS + len(marker), marker=marker)
    return md_cell(text)


def _heading(title: str, page: str) -> str:
    """The `## ` line of `title`: one line, cut in the middle past `MAX_TITLE_CHARS`."""
    if len(title) > MAX_TITLE_CHARS:
        marker = f" […{len(title) - MAX_TITLE_CHARS:,} characters cut here; {page} has them…] "
        title = cut(title, MAX_TITLE_CHARS + len(marker), marker=marker)
    return f"## {md_cell(title)}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += [_row(row) for row in rows]
    return "\n".join(lines)


def _row(row: Sequence[str]) -> str:
    return "| " + " | ".join(_cell(c) for c in row) + " |"


def _capped_table(
    header: Sequence[str], rows: Sequence[Sequence[str]], budget: int, *, total: Sequence[str] = ()
) -> str:
    """`_table` of the first rows that fit in `budget` characters (and the `total` row
    after them, if any), and a line that counts the rows left out."""
    text = _table(header, [])
    shown = 0
    for row in rows:
        line = _row(row)
        if len(text) + 1 + len(line) > budget:
            break
        text, shown = f"{text}\n{line}", shown + 1
    if total:
        text += "\n" + _row(total)
    if shown < len(rows):
        text += f"\n\n… and {len(rows) - shown:,} more; index.html lists them all."
    return text


def key_metric_text(row: SummaryRow) -> str:
    if row.key_metric is None:
        return ""
    if not row.reproduced or row.first_bad is None:  # no place on the axis to name
        return row.key_metric
    text = f"{row.key_metric}: {_value(row.bad_value, row.threshold)} at {row.first_bad}"
    good_at = row.first_good or row.last_good
    if good_at is not None:
        text += f" vs {_value(row.good_value, row.threshold)} at {good_at}"
    if row.threshold is not None:
        text += f" (threshold {fmt_bound(row.threshold)})"
    return text


def repro_name(name: str, unlisted: bool) -> str:
    """A repro's name, marked as index.html's badge marks one matrix.yaml (given) does not
    list: a renamed repro's old records read as a live regression of the matrix."""
    return f"{name} (not in matrix)" if unlisted else name


def _counted(n: int, one: str) -> str:
    """`1 cell`, `2 cells`."""
    return f"{n} {one}{'' if n == 1 else 's'}"


def render_markdown(data: ReportData, *, notes: Sequence[str] = ()) -> str:
    out = [_heading(data.title, "index.html"), ""]
    # As index.html's header: "regressions" counted the repros, reproduced or not; those
    # matrix.yaml does not list (a renamed one's old records) apart.
    listed, apart = tallies(data.repros, has_matrix=data.has_matrix)
    others = f"; {apart.more(data.orders.matrix_file)}" if apart.repros else ""
    out.append(
        f"{_counted(data.records, 'record')} from {_counted(len(data.machines), 'machine')}, "
        f"{listed.said()}{others}. Generated {data.generated}."
    )
    out.append("")
    rows: list[list[str]] = []
    for rr in data.repros:
        name = repro_name(rr.name, not rr.listed and data.has_matrix)
        # Series that say the same thing share a row ("RTX3090, L4 | no results yet").
        merged: dict[tuple[str, str], list[SummaryRow]] = {}
        for r in rr.rows:
            merged.setdefault((r.sentence, key_metric_text(r)), []).append(r)
        for (sentence, metric), same in merged.items():
            rows.append([name, ", ".join(r.context for r in same), sentence, metric])
    header = ["Regression", "GPU", "Where it begins and ends", "Key metric"]
    out.append(_capped_table(header, rows, MAX_TABLE_CHARS["main"]))
    out += ["", "### Cells per status", ""]
    named = [
        (repro_name(rr.name, not rr.listed and data.has_matrix), rr.counts) for rr in data.repros
    ]
    out.append(_counts_table(data.counts, named))
    flaky = sum(1 for e in data.entries if e.flaky and not e.split)
    split = sum(1 for e in data.entries if e.split)
    if flaky:
        out += ["", f"{flaky} cell(s) flaky: their records disagree (counted above by their "
                "newest verdict; junit.xml fails them, results.csv says `flaky`)."]  # fmt: skip
    if split:  # each machine steady: no rerun settles it, the machines differ (or the
        # bases or GPUs of one machine: `winner.machines_split`)
        out += ["", f"{split} cell(s) where machines (or one machine's bases or GPUs) disagree, "
                "each steady (named above; counted by their newest verdict; junit.xml fails "
                "them, results.csv says `machines_disagree`)."]  # fmt: skip
    out += ["", "### Machines", ""]
    out.append(
        _capped_table(
            ["Machine", "GPUs", "Driver", "Records", "First", "Last"],
            [
                [
                    m.name,
                    ", ".join(m.gpus) or "no GPU recorded",
                    m.driver,
                    str(m.records),
                    m.first,
                    m.last,
                ]
                for m in data.machines
            ],
            MAX_TABLE_CHARS["machines"],
        )
    )
    if data.load_problems or data.notes or notes:
        out += ["", "### Notes", ""]
        out += [f"- {md_cell(n)}" for n in (*data.notes, *notes)]
        problems = data.load_problems
        out += [f"- {md_cell(str(p))}" for p in problems[:MAX_PROBLEMS]]
        if len(problems) > MAX_PROBLEMS:
            rest = rest_said(problems[MAX_PROBLEMS:])
            out.append(f"- … and {rest}; index.html lists them all")
    return "\n".join(out) + "\n"


def _counts_table(
    total: Mapping[str, int], per_repro: Sequence[tuple[str, Mapping[str, int]]]
) -> str:
    statuses = [s for s in STATUS_ORDER if total.get(s)] or ["passed"]
    header = ["Regression", *(" ".join(STATUS_TEXT[s]) for s in statuses), "total"]
    rows = [
        [name, *(str(c.get(s, 0)) for s in statuses), str(sum(c.values()))] for name, c in per_repro
    ]
    every = [Markdown("**all**"), *(str(total.get(s, 0)) for s in statuses)]
    return _capped_table(
        header, rows, MAX_TABLE_CHARS["counts"], total=[*every, str(sum(total.values()))]
    )


def reproduced_table_markdown(results: Sequence[Result], matrix: Matrix | None = None) -> str:
    """The README's "Reproduced so far" table: one row per GPU (series) where a regression
    was reproduced, with its first bad and first good point and the key metric."""
    return reproduced_table(summary_rows(results, matrix))


def reproduced_table(summary: Sequence[SummaryRow]) -> str:
    """`reproduced_table_markdown` of a report's summary rows (`ReportData.summary_rows`)."""
    rows: list[list[str]] = []
    for r in summary:
        name = repro_name(r.repro, r.unlisted)
        if r.flaky_only:  # regressed one run in a few: a row, or the table hides it
            flaky = r.flaky_only
            rows.append([name, r.context, flaky, "unknown", key_metric_text(r)])
            continue
        if not r.reproduced:
            continue
        if r.first_bad is None:  # seen bad only where the order is unknown
            unknown = f"at {', '.join(r.bad_unordered)} (order unknown)"
            rows.append([name, r.context, unknown, "unknown", key_metric_text(r)])
            continue
        first_bad = r.first_bad or ""
        unsure = f"no verdict at {', '.join(r.unsure_before)}" if r.unsure_before else ""
        if r.open_start:
            first = "first tested whose order is known" if r.seen_apart else "first tested"
            first_bad += f" (first verdict; {unsure})" if unsure else f" ({first})"
        elif r.last_good is not None:
            # A regression whose place is unknown may lie before it: the begin is there.
            apart = f"order unknown at {', '.join(r.bad_apart)}" if r.bad_apart else ""
            said = "; ".join(x for x in (f"last good {r.last_good}", unsure, apart) if x)
            first_bad += f" ({said})"
        elif unsure:
            first_bad += f" ({unsure})"
        first_good = _first_good(r)
        rows.append([name, r.context, first_bad, first_good, key_metric_text(r)])
    return _table(["regression", "GPU", "first bad", "first good", "key metric"], rows) + "\n"


def _first_good(r: SummaryRow) -> str:
    """The README table's "first good" cell: where the first interval ends, then every
    later interval, and the points no interval names (flaky, or of unknown order)."""
    # A pass whose place is unknown may be newer than the newest bad point: its fix.
    known = " where the order is known" if r.passed_unordered else ""
    first_good = r.first_good or f"— (still present{known})"
    if r.unsure_after:
        first_good += f" (no verdict at {', '.join(r.unsure_after)})"
    # Each later interval where it begins and ends: "2 more" told a reader who must
    # pick a version nothing of where the regression came back.
    # With the points without a verdict around it, as for the first interval: "bad
    # again from 1.4, first good 1.6" read as bad at 1.5 when 1.5 timed out.
    for again, fixed, before, after in r.later:
        begins = f" (no verdict before it at {', '.join(before)})" if before else ""
        unknown = f"no verdict at {', '.join(after)}" if after else ""
        if fixed is not None:
            ends = f"first good {fixed}" + (f" ({unknown})" if unknown else "")
        else:
            newest = f"newest verdict{known}"
            newest += f"; {unknown}" if unknown else ""
            ends = f"still present at {r.still_bad_at or again} ({newest})"
        first_good += f"; bad again from {again}{begins}, {ends}"
    if r.unsure_inside:  # "1.1" read as bad all through: it may be fixed and come back
        inside = "them" if r.later else "it"
        first_good += f"; no verdict inside {inside} at {', '.join(r.unsure_inside)}"
    if r.flaky_apart:  # "1.3" alone read as fixed for good, though 1.4 regressed too
        first_good += f"; {r.flaky_apart}"
    if r.bad_unordered:  # "1.3" read as fixed for good: such a point may be later
        first_good += f"; also regressed at {', '.join(r.bad_unordered)} (order unknown)"
    if r.passed_unordered:
        first_good += f"; passed at {', '.join(r.passed_unordered)} (order unknown)"
    # "3.0" read as the library's fix where 2.0 and 3.0 ran on machines that disagree.
    return "; ".join((first_good, *r.caveats))


def _value(value: float | None, threshold: float | None) -> str:
    # None: the record lacks the metric; NaN: it keeps it as null (`SummaryRow.bad_value`).
    if value is None:
        return "no value"
    return NOT_FINITE if math.isnan(value) else fmt_against(value, threshold)


def render_changes(cmp: Comparison, *, title: str) -> str:
    """`changes.md`: what `report --compare` found, for a PR comment or a CI summary."""
    out = [f"{_heading(title, 'changes.html')}: what changed since {md_cell(cmp.old_label)}", ""]
    out += [md_cell(cmp.headline) + ".", ""]
    for group, heading, empty in CHANGE_GROUPS:
        rows = cmp.of(group)
        out += [f"### {heading} ({len(rows)})", ""]
        if not rows:
            out += [empty, ""]
            continue
        header = ["Regression", "GPU", "Base", "Revision", "Before", "Now", "Change"]
        body = [
            [repro_name(c.repro, c.unlisted), c.gpu, c.base, c.pins, c.before, c.after, c.kind]
            for c in rows[:MAX_CHANGE_ROWS]
        ]
        out += [_table(header, body), ""]
        if len(rows) > MAX_CHANGE_ROWS:
            out += [f"… and {len(rows) - MAX_CHANGE_ROWS:,} more; changes.html lists them all.", ""]
    return "\n".join(out)
