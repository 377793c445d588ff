"""Check that `repromatrix report` writes the same files as before a change.

    python bench/report_outputs.py write REF_DIR   # the outputs of every case, as they are now
    python bench/report_outputs.py check REF_DIR   # again, compared byte for byte with REF_DIR

Parquet files are compared as tables (schema, values) when their bytes differ: since the
table is built with pyarrow directly, it no longer carries pandas' schema metadata.

Cases: the published results with the project's matrix.yaml (with and without `--compare`),
10,000 synthetic records (`bench_report.synthetic_results`) without a matrix, and a small
set of odd lines (older schemas, numbers to clean, unreadable and truncated lines) whose
warnings on stderr are compared too. Every file must be byte-identical except the
generation time ("Generated 2026-01-01 12:00 UTC"), which is masked.
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from bench_report import synthetic_results

ROOT = Path(__file__).resolve().parents[1]
_GENERATED = re.compile(rb"\d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC")


def _odd_lines() -> list[str]:
    """Lines the store must read (migrating or cleaning them) or report and skip."""
    good = synthetic_results(40)
    lines = [json.dumps(r.record()) for r in good]
    rec = good[0].record()
    v1 = {k: v for k, v in rec.items() if k not in ("commits", "machine", "base_fingerprint")}
    v1.update(schema=1, key="old1", executor="")
    v1.pop("executor")
    v2 = {k: v for k, v in rec.items() if k not in ("commits", "machine")}
    v2.update(
        schema=2,
        key="old2",
        provenance={
            "harness": {
                "pins": {"lib0": {"commit": "a" * 40, "kind": "git", "rev": "aaaaaaa"}},
                "gpu": {"uuid": "GPU-1234", "name": "NVIDIA H200"},
            },
            "driver": "580.1",
        },
    )
    numbers = dict(rec, key="nums", metrics={"a": 1, "b": True, "c": "x", "d": None, "e": 1e400})
    lines += [
        json.dumps(v1),
        json.dumps(v2),
        json.dumps(numbers).replace("Infinity", "1e999"),
        json.dumps(dict(rec, key="nan", metrics={"m": float("nan"), "n": float("inf")})),
        json.dumps(dict(rec, key="dur", duration_s=3)),
        json.dumps(dict(rec, key="extra", unknown_field={"x": 1})),
        "{not json",
        "[1, 2, 3]",
        json.dumps(dict(rec, status="exploded")),
        json.dumps({k: v for k, v in rec.items() if k != "schema"}),
        json.dumps(dict(rec, schema=True)),
        json.dumps(dict(rec, exit_code="1")),
        json.dumps(dict(rec, pins={"lib0": 3})),
        json.dumps(dict(rec, key="bad-surrogate", reason="\ud800 lone")),
        "",
        json.dumps(dict(rec, key="trunc"))[:50],
    ]
    return lines


def _inputs(tmp: Path) -> dict[str, list[str]]:
    synth = tmp / "synthetic-10k.jsonl"
    with synth.open("w") as f:
        for r in synthetic_results(10_000):
            f.write(json.dumps(r.record()) + "\n")
    odd = tmp / "odd" / "odd.jsonl"
    odd.parent.mkdir()
    odd.write_text("\n".join(_odd_lines()))  # no final newline: a truncated last record
    matrix = str(ROOT / "matrix.yaml")
    published = str(ROOT / "results" / "published")
    return {
        "published": ["--results", published, "--matrix", matrix],
        "published-compare": [
            "--results",
            published,
            "--matrix",
            matrix,
            "--compare",
            str(ROOT / "results" / "published" / "h100-matrix.jsonl"),
        ],
        # Relative to the folder the command runs in: warnings name these paths.
        "synthetic-10k": ["--results", synth.name, "--matrix", "/nonexistent.yaml"],
        "odd": ["--results", odd.parent.name, "--matrix", "/nonexistent.yaml"],
    }


def write_all(dest: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="report-outputs-") as tmp_name:
        tmp = Path(tmp_name)
        for case, args in _inputs(tmp).items():
            out = dest / case
            out.mkdir(parents=True, exist_ok=True)
            proc = subprocess.run(
                [sys.executable, "-m", "repromatrix", "report", *args, "--out", str(out)],
                capture_output=True,
                cwd=tmp,  # no .repromatrix/ mirrors: commits are ordered by date alone
                check=False,
            )
            stderr = proc.stderr.replace(tmp_name.encode(), b"TMP").replace(
                str(out).encode(), b"OUT"
            )
            (out / "stderr.txt").write_bytes(stderr + f"\nexit {proc.returncode}\n".encode())


def _diff(name: str, a: bytes, b: bytes) -> str:
    lines = difflib.unified_diff(
        a.decode("utf-8", "replace").splitlines()[:2000],
        b.decode("utf-8", "replace").splitlines()[:2000],
        "reference/" + name,
        "now/" + name,
        n=1,
        lineterm="",
    )
    return "\n".join(line[:300] for line in list(lines)[:40])


def compare(ref: Path, now: Path) -> list[str]:
    """What differs (beyond the generation time); Parquet files equal as tables are noted."""
    problems: list[str] = []
    ref_files = {p.relative_to(ref) for p in ref.rglob("*") if p.is_file()}
    now_files = {p.relative_to(now) for p in now.rglob("*") if p.is_file()}
    for missing in sorted(ref_files - now_files):
        problems.append(f"{missing}: not written any more")
    for extra in sorted(now_files - ref_files):
        problems.append(f"{extra}: new file")
    for rel in sorted(ref_files & now_files):
        a = _GENERATED.sub(b"<generated>", (ref / rel).read_bytes())
        b = _GENERATED.sub(b"<generated>", (now / rel).read_bytes())
        if a == b:
            continue
        if rel.suffix == ".parquet":
            differs = _parquet_differs(str(rel), ref / rel, now / rel)
            problems += differs
            if not differs:
                print(f"{rel}: the same table (the bytes differ: no pandas metadata)")
        else:
            diff = _diff(str(rel), a, b)
            problems.append(f"{rel}: differs ({len(a)} vs {len(b)} bytes)\n{diff}")
    return problems


def _parquet_differs(name: str, ref: Path, now: Path) -> list[str]:
    """What differs between two Parquet files other than pandas' schema metadata."""
    import pyarrow.parquet as pq

    a, b = pq.read_table(ref), pq.read_table(now)
    out = []
    if a.schema.remove_metadata() != b.schema.remove_metadata():
        out.append(f"{name}: schema differs\n{a.schema}\nvs\n{b.schema}")
    elif not a.equals(b):
        out.append(f"{name}: values differ")
    meta_a = {k: v for k, v in (a.schema.metadata or {}).items() if k != b"pandas"}
    if meta_a != (b.schema.metadata or {}):
        out.append(f"{name}: schema metadata differs beyond pandas' own")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("action", choices=["write", "check"])
    ap.add_argument("reference", type=Path)
    args = ap.parse_args()
    if args.action == "write":
        write_all(args.reference.resolve())
        print(f"reference outputs written to {args.reference}")
        return 0
    with tempfile.TemporaryDirectory(prefix="report-now-") as now:
        write_all(Path(now))
        problems = compare(args.reference.resolve(), Path(now))
    for p in problems:
        print(p)
    print("identical" if not problems else f"{len(problems)} file(s) differ")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
