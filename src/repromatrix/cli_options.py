"""The option groups several subcommands share: which cells (the selection) and how to
run them (executor, slots, sources, workers, the results folder)."""

from __future__ import annotations

import argparse
import sys
import urllib.parse
from pathlib import Path


def path_arg(text: str) -> Path:
    """A path flag's value; an empty one (an unset variable) is not the current folder."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path; pass a file or folder")
    return Path(text)


def links_arg(text: str) -> Path:
    """A --find-links folder, given as a path or as pip also takes it, a `file://` URL
    (read as a path, `file:///data/wheels` became `file:/data/wheels`, "not a directory")."""
    parts = urllib.parse.urlsplit(text)
    if parts.scheme.lower() == "file" and parts.netloc in ("", "localhost"):
        from urllib.request import url2pathname  # here: it imports http.client and email

        return path_arg(url2pathname(parts.path))
    if parts.scheme.lower() in ("http", "https") and parts.netloc:
        # Read as a path, it was refused as "http:/host/…: not a directory".
        raise argparse.ArgumentTypeError(
            f"{text}: a web page or index, not a folder; pip reads one from PIP_FIND_LINKS "
            "(or PIP_INDEX_URL), and so does the list of releases bisect tries"
        )
    return path_arg(text)


def program_arg(text: str) -> str:
    """A program flag's value (a path, or a name found on PATH), as given; never empty."""
    path_arg(text)
    return text


class Once(argparse.Action):
    """A flag whose one value is all the command uses: a second one would be dropped in
    silence (argparse keeps the last), so it is a usage error."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
        seen = f"_{self.dest}_given"
        if getattr(namespace, seen, False):
            raise argparse.ArgumentError(self, "given twice; the command takes one, keep it")
        setattr(namespace, seen, True)
        setattr(namespace, self.dest, values)


def filters(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("selection")
    g.add_argument("--repro", action="append", default=[], metavar="NAME", help="only this repro")
    g.add_argument("--gpu", action="append", default=[], metavar="TYPE", help="only this GPU type")
    g.add_argument(
        "--image",
        action="append",
        default=[],
        metavar="BASE",
        help="only this base (an image name from matrix.yaml, or 'host')",
    )
    g.add_argument(
        "--library",
        action="append",
        default=[],
        metavar="NAME=REV",
        help="only cells pinning NAME at REV (repeatable)",
    )
    g.add_argument(
        "-k",
        dest="keyword",
        action="append",
        default=[],
        metavar="TEXT",
        help="only cells whose id contains TEXT (repeatable: any of them)",
    )


def run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--executor",
        choices=["auto", "local", "docker", "ray"],
        default="auto",
        help="where cells run: the host interpreter (local), containers (docker), "
        "or Docker for image bases when an engine is reachable (auto)",
    )
    p.add_argument(
        "--results", type=path_arg, default=Path("results"), help="result store directory"
    )
    p.add_argument(
        "--cache",
        type=path_arg,
        default=Path(".repromatrix"),
        help="environments, git clones and work directories",
    )
    p.add_argument(
        "--jobs",
        type=int,
        default=None,
        help="parallel CPU-only cells (default: half this machine's CPUs; GPU cells get one "
        "slot per GPU; a bisection under --executor ray takes every slot of its GPU type)",
    )
    p.add_argument(
        "--per-gpu",
        type=int,
        default=1,
        metavar="N",
        help="cells sharing one GPU at a time (default 1: clean latencies); more "
        "helps when cells wait on JIT compilation",
    )
    p.add_argument("--timeout", type=float, metavar="SECONDS", help="override every cell's timeout")
    p.add_argument(
        "--python",
        type=program_arg,
        default=sys.executable,
        help="base interpreter of the host base (default: this one)",
    )
    p.add_argument(
        "--find-links",
        action="append",
        type=links_arg,
        default=[],
        metavar="DIR",
        help="local folder of wheels/sdists for library pins (repeatable)",
    )
    p.add_argument(
        "--no-index",
        action="store_true",
        help="install pins only from --find-links folders (offline hosts)",
    )
    p.add_argument(
        "--git-mirror",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="use a local clone or bundle for a git library (offline hosts)",
    )
    p.add_argument(
        "--cell-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="environment variable for every cell, recorded in provenance (e.g. "
        "NVCC_APPEND_FLAGS=-static-global-template-stub=false for flashinfer 0.2.x on CUDA 13)",
    )
    p.add_argument(
        "--pull",
        choices=["never", "missing", "always"],
        default="missing",
        help="Docker pull policy for base images",
    )
    p.add_argument(
        "--ray-address",
        metavar="ADDR",
        help="with --executor ray: the cluster (host:port of its head; default RAY_ADDRESS, "
        "else a cluster already running on this machine)",
    )
    p.add_argument(
        "--ray-retries",
        type=int,
        default=None,
        metavar="N",
        help="with --executor ray: retries of a cell whose node or worker died (default 2); "
        "a repro's own failure, or Ray's kill of it for memory, is never retried",
    )
    p.add_argument(
        "--isolate",
        action="store_true",
        help="one process (or container) per cell instead of a persistent worker per "
        "environment and slot (a repro can ask for it with 'isolate: true')",
    )
    p.add_argument(
        "--worker-memory",
        type=float,
        default=16384.0,
        metavar="MIB",
        help="replace a worker that holds more than this resident memory after a cell "
        "(default 16384; 0: no limit)",
    )
    p.add_argument(
        "--wait",
        action="store_true",
        help="when another run is using the --results folder, wait for it to finish "
        "instead of stopping (exit 9)",
    )
    p.add_argument(
        "--keep-logs",
        action="store_true",
        help="keep each cell's whole logs in <cache>/runs/ (default: their last 64 KiB once "
        "the cell is recorded)",
    )


def report_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--results",
        type=path_arg,
        action="append",
        default=[],
        help="result store directory or JSONL file (repeatable; default results/)",
    )
    p.add_argument("--out", type=path_arg, default=Path("reports"), help="output folder")
    p.add_argument(
        "--compare",
        action=Once,
        type=path_arg,
        metavar="OLD_DIR",
        help="also write changes.html/changes.md: verdicts that flipped, new regressions "
        "and fixes since the results in OLD_DIR (a results folder or JSONL file)",
    )
    p.add_argument("--title", default="repromatrix report", help="the report's title")
    p.add_argument(
        "--readme",
        type=path_arg,
        metavar="PATH",
        help="also rewrite the 'Reproduced so far' table between the reproduced:begin/end "
        "markers of this Markdown file",
    )
    p.add_argument(
        "--cache",
        type=path_arg,
        default=Path(".repromatrix"),
        help="the runs' cache (as given to run/bisect): commits are ordered by ancestry "
        "from its git mirrors, and what was parsed of the results is kept there",
    )
    p.add_argument(
        "--jobs",
        type=int,
        choices=(1, 2),
        default=1,
        help="2: write results.csv, results.parquet and junit.xml in a second process while "
        "the pages render (on 100,000 records a fifth faster with a warm cache, a twentieth "
        "cold; about a third more memory); default 1",
    )
