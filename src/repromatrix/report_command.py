"""The `report` command: the records (and matrix.yaml, when there is one) read, the
findings built once, and every output written aside and renamed into place."""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from repromatrix import outputs, readme
from repromatrix.commit_aliases import tag_commits
from repromatrix.config import Matrix, load_matrix
from repromatrix.errors import MissingToolError
from repromatrix.expand import expand
from repromatrix.gitlog import Line
from repromatrix.gitpaths import same_place
from repromatrix.gitrepo import GitRepo
from repromatrix.mirrors import Mirrors
from repromatrix.model import Cell, SourceKind
from repromatrix.options import git_root
from repromatrix.ordering import commit_revs
from repromatrix.parsed_cache import ParsedCache, parsed_cache
from repromatrix.process_end import end_now
from repromatrix.records import Result, full_commit
from repromatrix.revision_catalog import build_catalog
from repromatrix.revisions import Catalog
from repromatrix.stderr_lines import left_out_error, say, warn_load_problems
from repromatrix.store import load_results

if TYPE_CHECKING:
    from repromatrix.report import ReportData

#: More parts than this parse no faster: this process unpacks each child's records in turn.
MAX_REPORT_JOBS = 64


def write_report(args: argparse.Namespace) -> int:
    from repromatrix.arguments import count
    from repromatrix.report import paused_gc
    from repromatrix.report.forked import default_jobs

    if args.jobs is not None:
        count("--jobs", args.jobs, MAX_REPORT_JOBS)
    _check_table_writer()
    # The same processes for the load as for the writing: a large file is parsed in parts,
    # and what was parsed is kept in the cache by a child while the report is built.
    jobs = args.jobs if args.jobs is not None else default_jobs()
    parsed = parsed_cache(args.cache, aside=jobs > 1)
    with paused_gc():
        try:
            code, held = _write(args, jobs, parsed)
        finally:
            parsed.finish()
        # The report is written and said, its children waited for: the records, cells
        # and pages built (`held`) go with the process, not one object at a time (0.1 s).
        end_now(code, held)
    return code


def _check_table_writer() -> None:
    """results.csv is written by pyarrow, else by pandas: with neither (carried wheels
    without pandas) the report ended as an internal error once its pages were built, and
    wrote no file. Said before any work, as a missing tool."""
    import sys

    from repromatrix.report import table

    if table.parquet_available():
        return
    try:
        import pandas  # noqa: F401 -- the CSV's writer without pyarrow
    except ImportError as exc:
        raise MissingToolError(
            "report: results.csv is written by pyarrow or, without it, by pandas, and "
            f"{sys.executable} imports neither (pandas: {exc}): pip install pandas, which "
            "repromatrix requires (offline: carry its wheel)"
        ) from None


def _history(
    repos: Mapping[str, GitRepo], revs: Mapping[str, Sequence[str]]
) -> tuple[dict[str, dict[str, int]], dict[str, Line]]:
    """Each library's commits in order, and the first-parent line between them, whose
    commits no cell ran are said (`GitRepo.history`): both read in its mirror (`_mirrors`)."""
    topo: dict[str, dict[str, int]] = {}
    lines: dict[str, Line] = {}
    for lib, given in revs.items():
        if (repo := repos.get(lib)) is not None:
            order, line = repo.history(given)
            if order:
                topo[lib], lines[lib] = order, line
    return topo, lines


def _mirrors(
    mirrors: Mirrors, results: Sequence[Result], cells: Sequence[Cell]
) -> dict[str, GitRepo]:
    """Per git library, the mirror its commits, tags and first-parent line are read in: of
    its mirrors (`<library>.git`, and `<library>@<hash>.git` of another source: a fork in
    another matrix sharing the cache), the one that holds the most of its records' commits
    and pinned revisions, one cloned from the matrix's source before another holding as
    many. The one named after the library alone gave a fork's records no count of their
    untested commits, and its tags (upstream's `v1.0`) named the fork's pins."""
    revs: dict[str, set[str]] = {}
    sources: dict[str, str] = {}
    for r in results:
        for lib, sha in r.commits.items():
            revs.setdefault(lib, set()).add(sha)
    for cell in cells:
        for p in cell.pins:
            if p.kind is SourceKind.GIT:
                revs.setdefault(p.library, set()).add(p.rev)
                sources[p.library] = p.source
    chosen: dict[str, GitRepo] = {}
    for lib, wanted in revs.items():
        source, best = sources.get(lib, ""), (-1, False)
        for repo, origin in mirrors.every(lib):  # the one named after it first: ties stay
            held = (
                len(repo.resolve_many(sorted(wanted))),
                bool(source) and same_place(origin, source),
            )
            if held > best:
                chosen[lib], best = repo, held
    return chosen


def _unmirrored(
    matrix: Matrix | None, repos: Mapping[str, GitRepo], results: Sequence[Result]
) -> list[str]:
    """The git libraries of the matrix with records of their commits and no mirror."""
    ran = {lib for r in results for lib in r.commits}
    if matrix is None:
        return []
    return [n for n, lib in matrix.libraries.items() if lib.git and n in ran and n not in repos]


def _no_old_records(compare: Path) -> None:
    """A `--compare` without records: a report folder given for its results is refused,
    an empty store said (a first report has nothing to compare with)."""
    outputs.check_compare_is_results(compare)
    say(
        f"repromatrix: warning: --compare {compare}: no records; every regressed or "
        "flaky cell counts as a new regression in changes.html (a pass is no change)"
    )


# The report written: its exit status, and what it was built of (to free or not).
def _write(args: argparse.Namespace, jobs: int, parsed: ParsedCache) -> tuple[int, object]:
    from repromatrix.report import CHANGES_NAMES, OUTPUT_NAMES
    from repromatrix.report.markdown import reproduced_table
    from repromatrix.report.metrics import key_metrics_not_found

    # What is written must be writable before seconds of loading, not after them.
    sources = args.results or [Path("results")]
    outputs.check_folder(args.out, "--out")
    outputs.check_out_not_results(args.out, sources, args.compare)
    if args.readme is not None:
        outputs.check_not_input(args.readme, "--readme", matrix=args.matrix, results=sources)
        names = [*OUTPUT_NAMES.values(), *CHANGES_NAMES.values()]
        outputs.check_not_written(args.readme, "--readme", args.out, names)
        readme.readme_section(readme.read_readme(args.readme), args.readme)
        outputs.check_file(args.readme, "--readme")
    matrix: Matrix | None = None
    cells: list[Cell] = []
    # No matrix.yaml: a report of the records alone; a --matrix named but missing is
    # said (a typo would otherwise lose the descriptions and expected cells in silence).
    if args.matrix.exists():
        matrix = load_matrix(args.matrix)
        cells = expand(matrix)
    elif args.matrix != Path("matrix.yaml"):
        say(
            f"repromatrix: warning: --matrix {args.matrix}: no such file; the report shows "
            "the records alone (no descriptions, no cells without a record)"
        )
    results, problems = load_results(sources, "--results", jobs=jobs, parsed=parsed)
    old: list[Result] | None = None
    if args.compare is not None:
        old, old_problems = load_results([args.compare], "--compare", parsed=parsed)
        problems.extend(old_problems)
    warn_load_problems(problems)
    if old is not None and not old:
        _no_old_records(args.compare)
    if not results:
        named = ", ".join(dict.fromkeys(map(str, sources)))  # each folder once
        say(f"repromatrix: warning: no records in {named}; the report is empty")
    if matrix is not None:
        for line in key_metrics_not_found(matrix.repros.values(), results):
            say(f"repromatrix: warning: {line}")
    # One catalog of revisions for the report, and one of both result sets for what
    # changed; git is asked about every spelling of their commits.
    # Commits are ordered by ancestry from the mirrors the runs cloned (same --cache).
    mirrors = Mirrors(git_root(args.cache))
    repos = _mirrors(mirrors, results, cells)
    for lib in _unmirrored(matrix, repos, results):
        say(
            f"repromatrix: warning: --cache {args.cache} holds no clone of {lib}: its commits "
            f"are placed by {args.matrix.name}'s list alone, and those between two it lists are "
            'not seen (a boundary across them reads "at"); give --cache the one its runs used'
        )
    pinned = _tags_as_commits(cells, repos, mirrors)
    catalog = build_catalog(results, matrix, pinned)
    both = catalog if old is None else build_catalog([*old, *results], matrix, pinned)
    topo, lines = _history(repos, commit_revs(results, matrix, both))
    # One build of the findings for the report and the README table (which so agree,
    # commit order and listed releases included).
    build = {
        "title": args.title,
        "load_problems": problems,
        "topo": topo,
        "catalog": catalog,
        "lines": lines,
        "cache": str(args.cache),
        **_listed(matrix, args.cache),
    }
    data, staged = _build_and_write(args, jobs, results, matrix, cells, build, old, both)
    paths = {fmt: args.out / path.name for fmt, path in staged.items()}
    if args.readme is not None:
        readme.update_readme(args.readme, reproduced_table(data.summary_rows))
    said = f"; what changed since {args.compare}: {paths['changes']}" if "changes" in paths else ""
    shown, records = sum(data.counts.values()), len(results)  # "1 cells" was said of one
    say(
        f"repromatrix: report of {shown:,} cell{'' if shown == 1 else 's'} ({records:,} "
        f"record{'' if records == 1 else 's'}) written to {paths.get('html', args.out)}{said}"
    )
    left_out = left_out_error(problems, "report")
    if left_out is not None:
        raise left_out
    return 0, (results, old, catalog, both, data)


def _build_and_write(
    args: argparse.Namespace,
    jobs: int,
    results: list[Result],
    matrix: Matrix | None,
    cells: list[Cell],
    build: dict[str, Any],
    old: list[Result] | None,
    both: Catalog,
) -> tuple[ReportData, dict[str, Path]]:
    """The report built (`build`: `build_report`'s options) and written aside, then renamed
    into place: a full disk leaves the last report whole. A comparison written by an
    earlier report would pass for this one's, as would the Parquet table of an earlier
    report beside this one's CSV (without pyarrow now). The tables (and junit.xml, once
    the report says the order of its cells) are written by a forked child from the cells
    alone, while the rest of the report is built and its pages written here."""
    from repromatrix.entries import collect_entries
    from repromatrix.report import (
        CHANGES_NAMES,
        OUTPUT_NAMES,
        build_report,
        tables_ahead,
        write_outputs,
    )

    stale = [OUTPUT_NAMES["parquet"], *(CHANGES_NAMES.values() if old is None else ())]
    with outputs.staged(args.out, "--out", stale=stale) as stage:
        entries = collect_entries(results, cells, build["catalog"])
        with tables_ahead(entries, out_dir=stage, matrix=matrix, fork=jobs > 1) as built:
            data = build_report(results, matrix, cells, entries=entries, **build)
            details = built(data)
            staged = write_outputs(
                data,
                results=results,
                out_dir=stage,
                matrix=matrix,
                cells=cells,
                title=args.title,
                compare=old,
                compare_label=str(args.compare) if args.compare is not None else "",
                compare_catalog=both,
                ahead=True,
                details=details,
            )
    for note in data.old_listings:  # the page's words, once: the bisection to run again
        say(f"repromatrix: warning: {note}")
    return data, staged


def _tags_as_commits(
    cells: list[Cell], repos: Mapping[str, GitRepo], mirrors: Mirrors
) -> list[Cell]:
    """The cells, each pin of a tag its library's mirror has (`v0.5.2`) given as the commit
    the tag names: one point with a bisection's record of that commit, where "no verdict at
    v0.5.2 (no result yet)" was said beside the verdict of its commit. A tag is read in the
    mirror cloned from the pin's own source, where there is one: read in a fork's (the one
    holding the most of the records' commits), upstream's `v1.0` named the fork's commit
    that the fork tags v1.0, and that commit's verdict stood for upstream's cell."""
    tags: dict[tuple[str, str], dict[str, str]] = {}
    for (lib, source), names in _git_names(cells).items():
        own = (repo for repo, origin in mirrors.every(lib) if same_place(origin, source))
        repo = next(own, repos.get(lib))
        tags[(lib, source)] = tag_commits(repo, names) if repo else {}
    out = []
    for cell in cells:
        pins = tuple(
            replace(p, rev=sha) if (sha := tags.get((p.library, p.source), {}).get(p.rev)) else p
            for p in cell.pins
        )
        out.append(cell if pins == cell.pins else replace(cell, pins=pins))
    return out


def _git_names(cells: list[Cell]) -> dict[tuple[str, str], set[str]]:
    """Per library and source, the git revisions the cells pin that are not a full commit."""
    names: dict[tuple[str, str], set[str]] = {}
    for cell in cells:
        for p in cell.pins:
            if p.kind is SourceKind.GIT and full_commit(p.rev) is None:
                names.setdefault((p.library, p.source), set()).add(p.rev)
    return names


def _listed(matrix: Matrix | None, cache: Path) -> dict[str, dict[str, Any]]:
    """Per PyPI library of the matrix, what bisections listed of its releases (in the
    cache), as `build_report` takes it: `releases`, `yanked` (those listed as yanked,
    each with whether a bisection skipped it; None: a listing too old to say), and
    `unlisted` (why the last listing of a library was incomplete, where it was)."""
    from repromatrix.kept_releases import kept_listing

    libraries = matrix.libraries if matrix is not None else {}
    pypi = {name: lib.pypi for name, lib in libraries.items() if lib.pypi is not None}
    kept = {name: kept_listing(cache, project) for name, project in pypi.items()}
    return {
        "releases": {name: list(k.releases) for name, k in kept.items()},
        "yanked": {name: k.yanked_or_unknown for name, k in kept.items()},
        "unlisted": {name: k.incomplete for name, k in kept.items() if k.incomplete},
    }
