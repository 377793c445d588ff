"""Per-cell overhead of the Docker executor against a bare `docker run --rm IMAGE true`.

    python bench/bench_docker.py --out bench/results.json [-n 10]

Three ways of running one container on the same image, interleaved round by round so that
drift in the machine's load hits them alike, N times each (after a warm-up):

- bare_true:      `docker run --rm IMAGE true` (the CLI; the floor the target is set against)
- bare_same_work: `docker run --rm --init` with the repro mounts, running the same repro
                  (python3 pass_repro.py) as the executor does: what any harness must pay
- executor:       DockerExecutor.run() of that repro's cell, plus `judge` (labels, mounts,
                  per-env cache dir, logs saved to files, container removed, Result built)

Medians and ratios are merged into the JSON file under the key "docker", with the machine
and engine they were measured on. The target is executor / bare_true <= 1.25.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _common import machine, merge_into, workdir

ROOT = Path(__file__).resolve().parents[1]
FIXTURE_REPROS = ROOT / "tests" / "fixtures" / "repros"
TARGET = 1.25


def timed(fn: Any) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def docker_cli(*args: str) -> None:
    subprocess.run(["docker", *args], check=True, capture_output=True)


def main() -> int:  # noqa: C901, PLR0915 -- one linear script: setup, interleaved A/B rounds, results
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("bench/results.json"))
    ap.add_argument("-n", type=int, default=10, help="runs of each kind (median reported)")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument(
        "--image", default=os.environ.get("REPROMATRIX_TEST_BASE", "repromatrix-test-base:bookworm")
    )
    args = ap.parse_args()
    if shutil.which("docker") is None:
        print("bench_docker: the docker client is not on PATH", file=sys.stderr)
        return 1
    build = subprocess.run(
        ["bash", str(ROOT / "images" / "test-base.sh")],
        env={**os.environ, "REPROMATRIX_TEST_BASE": args.image},
        capture_output=True,
        text=True,
        check=False,
    )
    if build.returncode != 0:
        print(f"bench_docker: no test image: {build.stderr.strip()}", file=sys.stderr)
        return 1

    from repromatrix.config import load_matrix
    from repromatrix.executors.base import Slot
    from repromatrix.executors.docker import DockerExecutor
    from repromatrix.executors.judge import judge
    from repromatrix.expand import expand
    from repromatrix.options import PullPolicy, SessionConfig

    with workdir("bench-docker-") as tmp_s:
        tmp = Path(tmp_s)
        matrix = tmp / "matrix.yaml"
        matrix.write_text(
            "schema: 1\n"
            f'images: {{testbase: {{ref: "{args.image}"}}}}\n'
            "repros:\n"
            f"  pass_repro: {{script: {FIXTURE_REPROS}/pass_repro.py, gpus: [cpu], "
            "bases: [testbase]}\n"
        )
        (cell,) = expand(load_matrix(matrix))
        config = SessionConfig(cache=tmp / "cache", pull=PullPolicy.NEVER)
        executor = DockerExecutor.connect(config, env=os.environ)
        if isinstance(executor, str):
            print(f"bench_docker: {executor}", file=sys.stderr)
            return 1
        why = executor.can_run(cell)
        if why is not None:
            print(f"bench_docker: {why}", file=sys.stderr)
            return 1
        slot = Slot(name="cpu0")
        out_dir = tmp / "bare-out"
        out_dir.mkdir()
        count = 0

        def run_executor() -> None:
            nonlocal count
            count += 1
            outcome = executor.run(cell, slot, tmp / "runs" / "bench" / f"{cell.key}-{count}")
            result = judge(cell, outcome, host="bench", run_id="bench")
            assert result.status.value == "passed", result.reason

        def bare_true() -> None:
            docker_cli("run", "--rm", args.image, "true")

        def bare_same_work() -> None:
            docker_cli(
                "run", "--rm", "--init",
                "-v", f"{FIXTURE_REPROS}:/repromatrix/repros:ro",
                "-v", f"{out_dir}:/repromatrix/out",
                args.image, "python3", "/repromatrix/repros/pass_repro.py",
                "--out", "/repromatrix/out/result.json", "--params", "{}",
            )  # fmt: skip

        kinds = {"bare_true": bare_true, "bare_same_work": bare_same_work, "executor": run_executor}
        for _ in range(args.warmup):
            for fn in kinds.values():
                fn()
        samples: dict[str, list[float]] = {k: [] for k in kinds}
        for _ in range(args.n):
            for name, fn in kinds.items():
                samples[name].append(timed(fn))
        engine = executor.client.version()
        executor.client.close()

    medians = {k: statistics.median(v) for k, v in samples.items()}
    ratio_true = medians["executor"] / medians["bare_true"]
    ratio_same = medians["executor"] / medians["bare_same_work"]
    for name, values in samples.items():
        print(
            f"{name:>15}: median {medians[name] * 1000:7.1f} ms  "
            f"(min {min(values) * 1000:6.1f}, max {max(values) * 1000:6.1f}, n={len(values)})"
        )
    print(f"executor / bare_true      = {ratio_true:.3f} (target <= {TARGET})")
    print(f"executor / bare_same_work = {ratio_same:.3f}")
    result = {
        "machine": machine(),
        "engine": {
            "version": engine.get("Version"),
            "api": engine.get("ApiVersion"),
            "os": engine.get("Os"),
        },
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "image": args.image,
        "n": args.n,
        "warmup": args.warmup,
        "median_ms": {k: round(v * 1000, 1) for k, v in medians.items()},
        "samples_ms": {k: [round(x * 1000, 1) for x in v] for k, v in samples.items()},
        "ratio_executor_vs_bare_true": round(ratio_true, 3),
        "ratio_executor_vs_bare_same_work": round(ratio_same, 3),
        "target_ratio": TARGET,
        "meets_target": ratio_true <= TARGET,
        "note": "bare_* are `docker run --rm` through the CLI; executor is DockerExecutor.run "
        "+ judge of pass_repro.py (python3 start-up included), interleaved round by round",
    }
    merge_into(args.out, "docker", result)
    print(f"bench_docker: written to {args.out} under 'docker'")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
