"""The `bisect` subcommand's flags: its ends, what decides a verdict (a repro or one of
the library's own tests), how sure the answer must be, and the run options it shares
(`cli_options.run_options`). `cli.build_parser` adds it beside the other commands."""

from __future__ import annotations

import argparse
from typing import Any

from repromatrix.cli_options import Once, run_options
from repromatrix.flag_types import count_arg, number_arg, path_arg


def bisect_parser(sub: Any) -> argparse.ArgumentParser:
    """The `bisect` subcommand."""
    p: argparse.ArgumentParser = sub.add_parser(
        "bisect",
        help="find the commit (or release) where a repro's verdict changes",
        description="Bisect a library's commits between two revisions with a repro (or one "
        "of the library's own tests) as the verdict. Every evaluation is stored as an "
        "ordinary result: rerunning resumes, and matrix runs and reports reuse them.",
    )
    p.add_argument("repro", nargs="?", metavar="REPRO", help="repro name from matrix.yaml")
    p.add_argument(
        "--library", required=True, action=Once, metavar="NAME", help="library to bisect"
    )
    # The old end may be given several times, as `git bisect start BAD GOOD1 GOOD2` takes
    # it (with --find-fix, --bad); `bisect_request` refuses a second new end.
    p.add_argument(
        "--good",
        required=True,
        action="append",
        metavar="REV",
        help="revision without the bug (several: each, as git bisect takes them)",
    )
    p.add_argument(
        "--bad",
        required=True,
        action="append",
        metavar="REV",
        help="revision with the bug (several with --find-fix: each)",
    )
    p.add_argument(
        "--find-fix",
        action="store_true",
        help="find the first commit that FIXED it: --bad is the older end, --good the newer",
    )
    p.add_argument("--gpu", metavar="TYPE", help="GPU type (default: the repro's only one)")
    p.add_argument("--image", metavar="BASE", help="base: image name or 'host' (default: first)")
    p.add_argument(
        "--first-parent",
        action="store_true",
        help="follow only the first parent of merges (merge-heavy histories)",
    )
    p.add_argument(
        "--pre",
        action="store_true",
        help="releases: count the pre-releases between the ends too (pip's --pre)",
    )
    p.add_argument(
        "--source",
        choices=["auto", "git", "pypi"],
        default="auto",
        help="bisect commits (git) or releases (pypi: those the --find-links folders and "
        "the index offer between the ends, not only matrix.yaml's); auto picks releases when "
        "both ends are declared PyPI versions (the default)",
    )
    p.add_argument(
        "--with",
        dest="with_pins",
        action="append",
        default=[],
        metavar="NAME=REV",
        help="pin for another library the repro spans (repeatable)",
    )
    p.add_argument(
        "--test",
        metavar="PATH::NODE",
        help="use this pytest node of the library's own test suite as the verdict",
    )
    p.add_argument(
        "--test-from",
        metavar="REV",
        help="take the --test file from this revision (a test added with the fix)",
    )
    p.add_argument(
        "--test-skip-init",
        metavar="PKG",
        default="",
        help="register PKG without running its __init__ before collecting the --test "
        "(old fla trees import transformers models from fla/__init__.py; default: none)",
    )
    p.add_argument(
        "--retry-errors",
        action="store_true",
        help="evaluate again commits whose stored result is an error or a timeout",
    )
    p.add_argument(
        "--rerun",
        action="store_true",
        help="fresh runs only: stored results are not taken as evidence",
    )
    p.add_argument(
        "--calibrate",
        type=count_arg,
        default=None,
        metavar="N",
        help="run each end N times first to learn how often the repro is wrong, then repeat "
        "points until --confidence is reached (default: the repro's 'calibrate:' in "
        "matrix.yaml; 5 when stored results show the repro flaky; else 0, calibrating only "
        "once verdicts contradict)",
    )
    p.add_argument(
        "--confidence",
        type=number_arg,
        default=0.99,
        metavar="P",
        help="probability the answer must reach when calibrated (default 0.99: a wrong "
        "answer at most 1%% of the time)",
    )
    p.add_argument(
        "--max-runs",
        type=count_arg,
        default=20,
        metavar="N",
        help="most runs of one candidate when calibrated (default 20); the whole "
        "bisection may make half as many per halving of the candidates, 3N at least",
    )
    p.add_argument(
        "--markdown",
        type=path_arg("a Markdown file to write"),
        action=Once,
        metavar="PATH",
        help="write a Markdown summary",
    )
    p.add_argument("--no-progress", action="store_true", help="plain lines instead of a bar")
    run_options(p, bisect=True)
    return p
