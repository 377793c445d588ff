"""Benchmark `repromatrix report` as a user runs it: the whole process, from reading a
result store of 10,000 or 100,000 light records, or 20,000 shaped like a GPU host's, to
the last file written.

    python bench/bench_report.py --out bench/results.json

Light records hold 3 metrics and a flat provenance (0.8 KB a line); records shaped like
`results/published` hold tens of metrics, nested provenance and kilobytes of stderr (7 KB
a line), and cost each step of a report about ten times as much.
Each size's records are written once as a JSONL store; then `python -m repromatrix report
--results STORE --out DIR` runs as its own process, cold (an empty `--cache`: nothing
parsed before) and warm (the cache a report left before the last run's 1% of the records
were appended), interleaved with the floor every such process pays (`python -m repromatrix
--help`), `--rounds` times. Wall time is the median; peak memory is the larger of the
child's own peak RSS and the summed PSS of it and the children it forks (see `timed`).
When playwright and Chromium are available, the time for headless Chromium to open the
10,000-cell HTML is measured too.
Targets (issue 12): 100,000 records in at most 5 s and 512 MiB peak, whole process.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from _common import machine, merge_into

from repromatrix.model import Status
from repromatrix.records import Result
from repromatrix.report.forked import default_jobs

SIZES = (10_000, 100_000)
#: Cells of records shaped like the published ones: each is about ten times a light one.
PUBLISHED_SIZE = 20_000
GPUS = ("h100", "h200", "a100", "l4", "l40s", "b200", "rtx4090", "a10g")
TARGET_S = 5.0
#: (name, warm cache, extra arguments) of each command timed, interleaved per round.
VARIANTS: tuple[tuple[str, bool, tuple[str, ...]], ...] = (
    ("cold", False, ()),
    ("warm", True, ()),
    ("cold_jobs1", False, ("--jobs", "1")),
    ("warm_jobs1", True, ("--jobs", "1")),
)
TARGET_RSS_MIB = 512.0


def synthetic_results(cells: int) -> list[Result]:
    """`cells` results: repros × 8 GPUs × versions, each repro with one bad interval,
    a few untestable/error/timeout cells, and a second, older record for 5% of cells."""
    versions = 50 if cells <= 10_000 else 250
    repros = max(1, cells // (len(GPUS) * versions))
    out: list[Result] = []
    for r in range(repros):
        begin, end = versions // 3 + r % 7, 2 * versions // 3 + r % 5
        for g, gpu in enumerate(GPUS):
            for v in range(versions):
                if len(out) >= cells:
                    break
                label = f"0.{v // 10}.{v % 10}"
                if (v * 7 + g + r) % 53 == 0:
                    status = Status.UNTESTABLE
                elif (v * 11 + g + r) % 97 == 0:
                    status = Status.ERROR
                elif (v * 13 + g + r) % 211 == 0:
                    status = Status.TIMEOUT
                else:
                    status = Status.REGRESSED if begin <= v < end else Status.PASSED
                bad = status is Status.REGRESSED
                key = f"k{r}-{gpu}-{v}"
                res = Result(
                    key=key,
                    cell_id=f"repro{r}[{gpu},host,lib{r}={label}]",
                    repro=f"repro{r}",
                    base="host",
                    image=None,
                    gpu=gpu,
                    pins={f"lib{r}": label, "torch": "2.6.0"},
                    status=status,
                    reason="max_abs 3.2 > 0.01" if bad else "within tolerance",
                    metrics={
                        f"op{r}.fp16.max_abs": (3.2 if bad else 1e-4 * (1 + v % 3)),
                        f"op{r}.fp16.rel_err": (0.5 if bad else 1e-5),
                        f"op{r}.latency_ms": 0.1 + v / 1000,
                    },
                    thresholds={f"op{r}.fp16.max_abs": 0.01},
                    provenance={"python": "3.12.3", "torch": "2.6.0", "gpu": gpu},
                    exit_code=1 if bad else 0,
                    duration_s=1.25,
                    started="2025-04-01T10:00:00+00:00",
                    finished=f"2025-04-01T10:{v % 60:02d}:00+00:00",
                    host=f"host{g % 3}",
                    run_id="run-1",
                    executor="local",
                    stdout_tail="ok\n" if not bad else "mismatch at index 17\n",
                    stderr_tail="" if status is not Status.ERROR else "Traceback: boom\n",
                )
                out.append(res)
                if (v + g + r) % 20 == 0:
                    out.append(
                        Result(
                            **{
                                **res.__dict__,
                                "finished": "2025-03-01T00:00:00+00:00",
                                "host": "old-host",
                            }
                        )
                    )
    return out


def published_like(cells: int) -> list[Result]:
    """`cells` records shaped like those a GPU host records (`results/published`: tens of
    metrics, nested provenance, kilobytes of stderr, thresholds with zeros), each a copy
    of one of them as a cell of its own: 2,000 cells per repro, 250 versions."""
    from repromatrix.store import ResultStore

    root = Path(__file__).resolve().parents[1] / "results" / "published"
    source = [r for r in ResultStore(root).load().results if r.metrics]
    out: list[Result] = []
    for i in range(cells):
        r = source[i % len(source)]
        repro, label = f"{r.repro}_{i // 2000}", f"0.{i % 250 // 10}.{i % 10}"
        out.append(
            r.model_copy(
                update={
                    "key": f"p{i}",
                    "repro": repro,
                    "cell_id": f"{repro}[{r.gpu},{r.base},lib={label}]",
                    "pins": {**r.pins, "lib": label},
                    "stderr_tail": f"{r.stderr_tail}\nseed {i}",
                }
            )
        )
    return out


def write_store(cells: int, folder: Path, shape: str = "light") -> int:
    """The synthetic records of `cells` cells as one JSONL store; how many records."""
    folder.mkdir(parents=True, exist_ok=True)
    results = synthetic_results(cells) if shape == "light" else published_like(cells)
    with (folder / "bench.jsonl").open("w") as f:
        for r in results:
            f.write(json.dumps(r.record()) + "\n")
    return len(results)


def write_store_apart(cells: int, folder: Path, shape: str = "light") -> int:
    """`write_store` in a process of its own. A child started from this process counts
    this process's resident memory as its own peak until it execs (vfork or fork shares
    the pages): with 100,000 records made here, each `report` child was charged ~500 MiB
    of them."""
    code = (
        "import sys, pathlib, bench_report as b; "
        "print(b.write_store(int(sys.argv[1]), pathlib.Path(sys.argv[2]), sys.argv[3]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(cells), str(folder), shape],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), *sys.path])},
    )
    return int(out.stdout.strip())


def made_before_last_run(command: list[str], store_file: Path, cache: Path) -> Path:
    """The `parsed` entries a report leaves in `cache` for `store_file` without its last
    1% of records (those a last run appended since): copied aside, the path returned."""
    whole = store_file.read_bytes()
    lines = whole.splitlines(keepends=True)
    store_file.write_bytes(b"".join(lines[: len(lines) - max(1, len(lines) // 100)]))
    try:
        timed([*command, "--cache", str(cache)])
    finally:
        store_file.write_bytes(whole)
    kept = cache.parent / f"{cache.name}-entries"
    shutil.copytree(cache / "parsed", kept)
    return kept


def timed(argv: list[str], *, sample: bool = True) -> tuple[float, float]:
    """(wall seconds, peak memory MiB) of one child process, which must exit 0.

    The memory is the largest of: the child's own peak RSS (`os.wait4`, which also covers
    the processes it waited for, each alone), and (`sample`) the summed proportional set
    size (PSS) of the child and every process under it, sampled every 20 ms. The report
    writes some files in forked children: their memory shared with the parent counts
    once, what each copied counts for each.
    """
    start = time.perf_counter()
    child = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak_tree = [0.0]
    done = threading.Event()

    def sampling() -> None:
        while not done.wait(0.02):
            peak_tree[0] = max(peak_tree[0], tree_pss_mib(child.pid))

    sampler = threading.Thread(target=sampling, daemon=True)
    if sample:
        sampler.start()
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    done.set()
    if sample:
        sampler.join()
    child.returncode = os.waitstatus_to_exitcode(status)
    stderr = child.stderr.read() if child.stderr else b""
    if child.returncode != 0:
        raise SystemExit(f"{argv} exited {child.returncode}: {stderr.decode()[-500:]}")
    return wall, max(usage.ru_maxrss / 1024, peak_tree[0])


def tree_pss_mib(root: int) -> float:
    """Summed PSS of `root` and its descendants now (0 where /proc cannot tell)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    tree, grew = {root}, True
    while grew:
        more = {pid for pid, ppid in parents.items() if ppid in tree} - tree
        tree |= more
        grew = bool(more)
    total_kib = 0
    for pid in tree:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total_kib += int(line.split()[1])
                    break
        except (OSError, ValueError):
            continue
    return total_kib / 1024


def browser_open_seconds(html: Path) -> dict[str, Any] | None:
    """Time for headless Chromium to load the page and run a filter, when available."""
    chromium = (
        "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else shutil.which("chromium")
    )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    if not chromium:
        return None
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=chromium,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        page = browser.new_page()
        start = time.perf_counter()
        page.goto(html.as_uri(), wait_until="load")
        loaded = time.perf_counter() - start
        nav: Any = page.evaluate(
            "() => { const n = performance.getEntriesByType('navigation')[0];"
            " return {dcl: n.domContentLoadedEventEnd, load: n.loadEventEnd}; }"
        )
        start = time.perf_counter()
        page.select_option("#f-status", "regressed")
        page.wait_for_function("document.body.getAttribute('data-fs') === 'regressed'")
        filtered = time.perf_counter() - start
        start = time.perf_counter()
        page.locator("table.grid td.c.s-regressed").first.click()
        page.locator(".detail:not([hidden])").first.wait_for()
        first_detail = time.perf_counter() - start
        browser.close()
    return {
        "goto_load_s": round(loaded, 3),
        "dom_content_loaded_ms": round(float(nav["dcl"]), 1),
        "load_event_ms": round(float(nav["load"]), 1),
        "status_filter_s": round(filtered, 3),
        "first_detail_click_s": round(first_detail, 3),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("bench/results.json"))
    ap.add_argument("--sizes", type=int, nargs="*", default=list(SIZES))
    ap.add_argument(
        "--published-sizes",
        type=int,
        nargs="*",
        default=[PUBLISHED_SIZE],
        help="cells of records shaped like results/published (see `published_like`)",
    )
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-browser", action="store_true", help="skip the Chromium open time")
    args = ap.parse_args()
    cli = [sys.executable, "-m", "repromatrix"]
    runs = []
    with tempfile.TemporaryDirectory(prefix="bench-report-") as tmp:
        shapes = [(n, "light") for n in args.sizes] + [
            (n, "published") for n in args.published_sizes
        ]
        for size, shape in shapes:
            name = f"{shape}-{size}"
            store, out_dir = Path(tmp) / f"store-{name}", Path(tmp) / f"out-{name}"
            records = write_store_apart(size, store, shape)
            cold, warm = Path(tmp) / f"cold-{name}", Path(tmp) / f"warm-{name}"
            command = [*cli, "report", "--results", str(store), "--out", str(out_dir)]
            warm_entries = made_before_last_run(command, store / "bench.jsonl", warm)
            timed([*command, "--cache", str(cold)])  # warm the page cache and .pyc files
            walls: dict[str, list[float]] = {kind: [] for kind, *_ in VARIANTS}
            peaks: dict[str, list[float]] = {kind: [] for kind, *_ in VARIANTS}
            floor = []
            for _ in range(args.rounds):
                # Cold: nothing parsed before (a first report, a copied store). Warm: the
                # cache as the last run left it, the run's own records appended since.
                # Each as the user runs it (on 2+ CPUs the tables and JUnit come from a
                # forked child) and with --jobs 1 (one process).
                for kind, warmed, extra in VARIANTS:
                    cache = warm if warmed else cold
                    shutil.rmtree(cache, ignore_errors=True)
                    if warmed:
                        shutil.copytree(warm_entries, cache / "parsed")
                    argv = [*command, "--cache", str(cache), *extra]
                    walls[kind].append(timed(argv, sample=False)[0])
                    # Memory in a run of its own: reading a 350 MiB process's PSS takes
                    # the kernel about 3 ms, every 20 ms a fifth of one of 2 CPUs, which
                    # the timed command would otherwise lose.
                    shutil.rmtree(cache, ignore_errors=True)
                    if warmed:
                        shutil.copytree(warm_entries, cache / "parsed")
                    peaks[kind].append(timed(argv)[1])
                floor.append(timed([*cli, "--help"])[0])
            run: dict[str, Any] = {"cells": size, "records": records, "shape": shape}
            for kind, *_ in VARIANTS:
                run[kind] = {
                    "seconds": round(statistics.median(walls[kind]), 3),
                    "seconds_samples": [round(w, 3) for w in walls[kind]],
                    "peak_mib": round(max(peaks[kind]), 1),
                }
                run[kind]["meets_target"] = (
                    run[kind]["seconds"] <= TARGET_S and run[kind]["peak_mib"] <= TARGET_RSS_MIB
                )
            run["floor_help_seconds"] = round(statistics.median(floor), 3)
            run["bytes"] = {p.name: p.stat().st_size for p in sorted(out_dir.iterdir())}
            run["meets_target"] = run["cold"]["meets_target"]
            if size <= 10_000 and shape == "light" and not args.no_browser:
                run["chromium"] = browser_open_seconds(out_dir / "index.html")
            runs.append(run)
            print(
                f"{size:>7} {shape} cells ({records} records): `repromatrix report` "
                f"{run['cold']['seconds']:.2f} s cold, {run['warm']['seconds']:.2f} s warm "
                f"(whole process, median of {args.rounds}), peak memory "
                f"{run['cold']['peak_mib']:.0f} / {run['warm']['peak_mib']:.0f} MiB; "
                f"--jobs 1: {run['cold_jobs1']['seconds']:.2f} s / "
                f"{run['warm_jobs1']['seconds']:.2f} s, "
                f"{run['cold_jobs1']['peak_mib']:.0f} / {run['warm_jobs1']['peak_mib']:.0f} MiB"
                + (
                    f", Chromium load {run['chromium']['load_event_ms']:.0f} ms"
                    if run.get("chromium")
                    else ""
                )
            )
    report = {
        "machine": machine(),
        "measures": "the whole `python -m repromatrix report` process, store to files; cold: "
        "an empty --cache; warm: the cache as a report left it before the last 1% of the "
        "records were appended (what a run leaves: it parsed the store, then added its own); "
        "peak_mib: the larger of the process's peak RSS and the summed PSS of it and the "
        "children it forks (sampled every 20 ms, in a run of its own: seconds are timed "
        "without the sampler, whose reads of /proc cost the kernel about 3 ms each); cold "
        "and warm are the command as a user types it (without --jobs: `default_jobs` "
        "processes, the CPUs it may use up to 4: CSV, Parquet and JUnit written by a forked "
        "child, and a large results file parsed in that many parts); *_jobs1: the same "
        "with `--jobs 1` (one process), interleaved in each round",
        "default_jobs": default_jobs(),
        "shapes": "light: records of 3 metrics and a flat provenance (about 0.8 KB a "
        "line); published: copies of the records in results/published (tens of metrics, "
        "nested provenance, kilobytes of stderr: about 7 KB a line), as a GPU host makes them",
        "targets": {"cells": 100_000, "seconds": TARGET_S, "peak_mib": TARGET_RSS_MIB},
        "runs": runs,
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    merge_into(args.out, "report", report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
