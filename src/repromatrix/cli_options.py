"""The parser every command uses (flags taken whole, a "did you mean" for a misspelling) and
the option groups several subcommands share: which cells (the selection) and how to
run them (executor, slots, sources, workers, the results folder)."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from repromatrix.errors import UsageError
from repromatrix.flag_types import (
    address_arg,
    count_arg,
    links_arg,
    number_arg,
    path_arg,
    program_arg,
    title_arg,
)


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


class Flags(argparse.Namespace):
    """The parsed arguments. A global option given before the command and again after it
    (`--matrix a.yaml list --matrix b.yaml`) reaches here as the command's values copied
    over the ones parsed before it: a second `Once` flag is refused here too."""

    def __setattr__(self, name: str, value: object) -> None:
        if name.endswith("_given") and value and getattr(self, name, False):
            flag = "--" + name.removeprefix("_").removesuffix("_given").replace("_", "-")
            raise argparse.ArgumentError(
                None, f"argument {flag}: given twice; the command takes one, keep it"
            )
        super().__setattr__(name, value)


class Parser(argparse.ArgumentParser):
    #: The arguments being parsed, when the caller says (see `main`): to name an unknown flag.
    argv: Sequence[str] = ()

    def __init__(self, **kwargs: Any) -> None:
        # A flag is taken whole: argparse read `--res` as `--results`, which the noxfile
        # (it knows flags by their names: relative paths made the caller's, --results
        # handed on to `report`) did not, and a script's prefix broke when a flag was added.
        super().__init__(**{**kwargs, "allow_abbrev": False})
        # Every flag that keeps one value refuses a second (`bisect --gpu H100 --gpu H200`
        # bisected on H200 in silence), not only those that say `action=Once`.
        self.register("action", None, Once)
        self.register("action", "store", Once)

    def error(self, message: str) -> NoReturn:
        before = list(self.argv)
        if chosen := re.match(r"argument command: invalid choice: '(.*?)' \(", message):
            before = before[: before.index(chosen[1])] if chosen[1] in before else []
        if chosen or message.startswith("the following arguments are required: command"):
            # `repromatrix --bogus` (or `--mat m.yaml run`): argparse asks for the command
            # first (or takes the flag's value for it); the flag it does not know is the
            # mistake to name.
            unknown = [
                a for a in before if a.startswith("-") and a.split("=")[0] not in self._known()
            ]
            if unknown:
                message = f"unrecognized arguments: {' '.join(unknown)}"
        # "repromatrix: error: bisect: …", not "repromatrix: error: repromatrix bisect: …"
        where = self.prog.removeprefix("repromatrix").strip()
        if message.startswith("unrecognized arguments: "):
            given = message.removeprefix("unrecognized arguments: ")
            message += self._flag_hint(given)
            # argparse says a command's unknown flags at the top (`list --format json`):
            # the help that lists the flags it takes is the command's own.
            where = where or self._command_before(given.split())
        see = f"see repromatrix {where} --help" if where else "see --help"
        raise UsageError(f"{where}: {message} ({see})" if where else f"{message} ({see})")

    def _command_before(self, words: list[str]) -> str:
        """The command named in the arguments when every word of `words` comes after it."""
        commands = self._subparsers._group_actions[0].choices if self._subparsers else None
        argv = list(self.argv)
        if not isinstance(commands, dict) or not words:
            return ""
        named = next((i for i, a in enumerate(argv) if a in commands), None)
        if named is None:
            return ""
        after = argv[named + 1 :]
        return argv[named] if all(w in after for w in words) else ""

    def _known(self) -> set[str]:
        return {s for action in self._actions for s in action.option_strings}

    def _flag_hint(self, unknown: str) -> str:
        """ "; did you mean --repeat?" for the first unknown flag that is close to one of
        this parser's or, when the arguments name one, of its command's."""
        known = ours = self._known()
        commands = self._subparsers._group_actions[0].choices if self._subparsers else None
        named = None
        if isinstance(commands, dict):
            named = next((a for a in self.argv if a in commands), None)
            if named is not None:
                known = ours | commands[named]._known()
        words = unknown.split()
        for word in words:
            flag = word.split("=")[0]
            if flag in known and flag not in ours:  # `--executor local run`
                return f"; {flag} is an option of {named}: give it after the command"
            if flag in ours and named is not None:  # `run --version`: "did you mean --version?"
                return f"; {flag} is an option of repromatrix itself: give it before {named}"
            if flag.startswith("--") and flag != "--" and (close := closest(flag, known)):
                # `--rep`: --repeat as likely as --repro; spelling alone picked one.
                begun = sorted(n for n in known if n.startswith(flag))
                if 1 < len(begun) <= 3:
                    close = " or ".join([", ".join(begun[:-1]), begun[-1]])
                return f"; did you mean {close}?"
        if words and not any(w.startswith("-") for w in words) and "--repro" in known - ours:
            # `run mla`, as `bisect mla` is written: run and list select cells by flags.
            return f"; did you mean --repro {words[0]}?"
        return ""

    def _check_value(self, action: argparse.Action, value: Any) -> None:
        # "invalid choice: 'lcoal' (choose from …)" gains "; did you mean 'local'?"
        try:
            super()._check_value(action, value)
        except argparse.ArgumentError as exc:
            close = closest(str(value), map(str, action.choices or ()))
            if close is None:
                raise
            raise argparse.ArgumentError(
                action, f"{exc.message}; did you mean '{close}'?"
            ) from None

    def _print_message(self, message: str, file: Any = None) -> None:
        # argparse drops a failed write of --help or --version in silence (exit 0, nothing
        # written); where the output goes is full or gone: `main` says so.
        if message:
            out = file or sys.stderr
            out.write(message)
            getattr(out, "flush", lambda: None)()


def filters(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("selection")
    # Each flag repeats: a cell matches one of its values; the flags given all must hold.
    g.add_argument(
        "--repro",
        action="append",
        default=[],
        metavar="NAME",
        help="only this repro (repeatable: any of them)",
    )
    g.add_argument(
        "--gpu",
        action="append",
        default=[],
        metavar="TYPE",
        help="only this GPU type (repeatable: any of them)",
    )
    g.add_argument(
        "--image",
        action="append",
        default=[],
        metavar="BASE",
        help="only this base (an image name from matrix.yaml, or 'host'; repeatable: any of them)",
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


def run_options(p: argparse.ArgumentParser, *, bisect: bool = False) -> None:
    p.add_argument(
        "--executor",
        action=Once,
        choices=["auto", "local", "docker", "ray"],
        default="auto",
        help="where cells run: the host interpreter (local), containers (docker), a Ray "
        "cluster's nodes (ray), or Docker for image bases when an engine is reachable "
        "(auto, the default)",
    )
    p.add_argument(
        "--results",
        action=Once,
        type=path_arg("a results folder"),
        default=Path("results"),
        help="result store directory (default results)",
    )
    p.add_argument(
        "--cache",
        action=Once,
        type=path_arg("a cache folder"),
        default=Path(".repromatrix"),
        help="environments, git clones and work directories (default .repromatrix)",
    )
    p.add_argument(
        "--jobs",
        action=Once,
        type=count_arg,
        default=None,
        help=(
            "points run at once in each round (a CPU repro's; a GPU repro's at most GPUs x "
            "--per-gpu; default: half this machine's CPUs, under --executor ray every slot "
            "of its GPU type in the cluster)"
            if bisect
            else "parallel CPU-only cells (default: half this machine's CPUs; GPU cells get "
            "one slot per GPU)"
        ),
    )
    p.add_argument(
        "--per-gpu",
        action=Once,
        type=count_arg,
        default=1,
        metavar="N",
        help="cells sharing one GPU at a time (default 1: clean latencies); more "
        "helps when cells wait on JIT compilation",
    )
    p.add_argument(
        "--timeout",
        action=Once,
        type=number_arg,
        metavar="SECONDS",
        help="override every cell's timeout",
    )
    p.add_argument(
        "--python",
        action=Once,
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
        action=Once,
        choices=["never", "missing", "always"],
        default="missing",
        help="Docker pull policy for base images (default missing: pull only what is absent)",
    )
    p.add_argument(
        "--ray-address",
        action=Once,
        type=address_arg,
        metavar="ADDR",
        help="with --executor ray: the cluster (host:port of its head; default RAY_ADDRESS, "
        "else a cluster already running on this machine)",
    )
    p.add_argument(
        "--ray-retries",
        action=Once,
        type=count_arg,
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
        action=Once,
        type=number_arg,
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
        type=path_arg("a results folder or JSONL file"),
        action="append",
        default=[],
        help="result store directory or JSONL file (repeatable; default results/)",
    )
    p.add_argument(
        "--out",
        type=path_arg("an output folder"),
        action=Once,
        default=Path("reports"),
        help="output folder (default reports)",
    )
    p.add_argument(
        "--compare",
        action=Once,
        type=path_arg("a results folder or JSONL file to compare with"),
        metavar="OLD_DIR",
        help="also write changes.html/changes.md: verdicts that flipped, new regressions "
        "and fixes since the results in OLD_DIR (a results folder or JSONL file)",
    )
    p.add_argument(
        "--title",
        type=title_arg,
        default="repromatrix report",
        help="the report's title (default 'repromatrix report')",
    )
    p.add_argument(
        "--readme",
        type=path_arg("a Markdown file holding the reproduced:begin/end markers"),
        action=Once,
        metavar="PATH",
        help="also rewrite the 'Reproduced so far' table between the reproduced:begin/end "
        "markers of this Markdown file",
    )
    p.add_argument(
        "--cache",
        type=path_arg("the runs' cache folder (as given to run)"),
        default=Path(".repromatrix"),
        help="the runs' cache (as given to run/bisect; default .repromatrix): commits are "
        "ordered by ancestry "
        "from its git mirrors, and what was parsed of the results is kept there",
    )
    p.add_argument(
        "--jobs",
        type=count_arg,
        default=None,
        help="processes: 2 or more writes results.csv, results.parquet and junit.xml in a "
        "second process while the pages render (on 100,000 records a fifth faster; about "
        "40%% more memory), and parses a large results file in up to this many parts at "
        "once; 1: all in this one; default: the CPUs this process may use, at most 4",
    )


def closest(word: str, names: Iterable[str]) -> str | None:
    """The name `word` was most likely meant to be: the one it begins (`--res`), else the
    nearest in spelling (`--repaet`), else None."""
    import difflib  # here: only a usage error pays for it

    names = sorted(set(names))
    starting = [n for n in names if n.startswith(word)]
    if len(starting) == 1:
        return starting[0]
    # Spelling is compared without the dashes: every flag shares "--", which lifted a
    # made-up word over difflib's cutoff (`--bogus` was "did you mean --gpu?").
    bare = {n.lstrip("-"): n for n in names}
    close = difflib.get_close_matches(word.lstrip("-"), list(bare), n=1)
    return bare[close[0]] if close else None
