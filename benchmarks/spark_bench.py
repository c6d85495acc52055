"""Benchmark ``guideline-kg spark`` in local mode against the single-machine batch, on one generated cohort.

    python -m benchmarks.spark_bench --n 1000 [--input ndjson|bulk] [--json FILE]

On the cohort of ``benchmarks.cohort`` (written once as NDJSON, or as a Bulk Data export):

* the batch: ``guideline-kg recommend INPUT --out DIR --jobs 2`` (a new process, wall time);
* Spark with ``local[1]`` and then ``local[2]``, each in a session of its own: the session's start,
  a first job on a few patients (Python workers start and load the guideline), then the timed job
  over the cohort (``reasoner.spark.run_job``: read, reason, write the four Parquet datasets and
  the summary);
* patients/s of each, the scaling ratio local[2] / local[1], and Spark's overhead a patient over
  the batch: (Spark local[2] seconds - batch seconds) / n.

Every Spark run's reports are checked against the batch's (byte-identical ``report_json``); the exit
status is 1 when one differs. Figures depend on the machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.cohort import generate, write_bulk, write_ndjson

ROOT = Path(__file__).resolve().parent.parent
WARM_UP = 8


def write_input(kind: str, n: int, seed: int, folder: Path) -> Path:
    cohort = generate(n, seed)
    if kind == "bulk":
        write_bulk(cohort, folder / "bulk", seed=seed)
        return folder / "bulk"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "cohort.ndjson"
    with path.open("w", encoding="utf-8") as handle:
        write_ndjson(cohort, handle)
    return path


def run_batch(source: Path, out: Path, jobs: int) -> tuple[float, dict[str, str]]:
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "reasoner", "recommend", str(source), "--out", str(out),
                           "--jobs", str(jobs)], cwd=ROOT, capture_output=True, text=True)
    seconds = time.monotonic() - started
    if done.returncode not in (0, 1, 2):
        raise SystemExit(f"the batch failed: {done.stderr.strip()[-300:]}")
    return seconds, {p.stem: p.read_text(encoding="utf-8") for p in out.glob("*.json")}


def run_spark(master: str, source: Path, warm: Path, work: Path, expected: dict[str, str]) -> dict[str, Any]:
    from reasoner.spark import run_job, session_builder

    tag = master.replace("[", "-").replace("]", "").replace("*", "all")

    started = time.monotonic()
    spark = session_builder(master, work / f"scratch-{tag}").getOrCreate()
    session_seconds = time.monotonic() - started
    try:
        started = time.monotonic()
        run_job(spark, str(warm), str(work / f"warm-{tag}"), None, master)
        warm_seconds = time.monotonic() - started
        started = time.monotonic()
        _code, summary = run_job(spark, str(source), str(work / f"out-{tag}"), None, master)
        seconds = time.monotonic() - started
        rows = spark.read.parquet(str(work / f"out-{tag}" / "reports")).select("source", "report_json").collect()
    finally:
        spark.stop()
    reported = {row["source"]: row["report_json"] for row in rows if row["report_json"] is not None}
    same = sum(1 for name, text in expected.items() if reported.get(name) == text)
    return {"master": master, "session_start_s": round(session_seconds, 2), "first_job_s": round(warm_seconds, 2),
            "seconds": round(seconds, 2), "patients": summary["patients"],
            "patients_per_s": round(summary["patients"] / seconds, 1), "partitions": summary["partitions"],
            "identical_to_batch": same}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.spark_bench", description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1000, help="patients (default 1000)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--input", choices=("ndjson", "bulk"), default="ndjson")
    parser.add_argument("--jobs", type=int, default=2, help="the batch's worker processes (default 2)")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")

    with tempfile.TemporaryDirectory(prefix="spark-bench-") as tmp:
        work = Path(tmp)
        source = write_input(args.input, args.n, args.seed, work / "input")
        warm = write_input("ndjson", WARM_UP, args.seed + 1, work / "warm")
        batch_seconds, expected = run_batch(source, work / "batch", args.jobs)
        runs = [run_spark(master, source, warm, work, expected) for master in ("local[1]", "local[2]")]

    one, two = runs
    figures = {
        "n": args.n, "input": args.input, "cpus": os.cpu_count(),
        "batch": {"jobs": args.jobs, "seconds": round(batch_seconds, 2),
                  "patients_per_s": round(args.n / batch_seconds, 1)},
        "spark": runs,
        "scaling_local2_over_local1": round(two["patients_per_s"] / one["patients_per_s"], 2),
        "spark_overhead_ms_per_patient": round((two["seconds"] - batch_seconds) / args.n * 1000, 2),
    }
    lines = [f"cohort: {args.n} patients ({args.input}), seed {args.seed}, {os.cpu_count()} CPUs",
             f"  recommend --jobs {args.jobs}            {batch_seconds:8.2f} s  {args.n / batch_seconds:8.1f} patients/s"]
    for run in runs:
        lines.append(f"  spark {run['master']:<10}             {run['seconds']:8.2f} s  {run['patients_per_s']:8.1f} "
                     f"patients/s  (session start {run['session_start_s']} s, first job {run['first_job_s']} s, "
                     f"{run['partitions']} partitions; identical {run['identical_to_batch']}/{args.n})")
    lines.append(f"  scaling local[2] / local[1]       {figures['scaling_local2_over_local1']:8.2f}")
    lines.append(f"  Spark overhead a patient vs batch {figures['spark_overhead_ms_per_patient']:8.2f} ms")
    print("\n".join(lines))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    return 0 if all(run["identical_to_batch"] == args.n for run in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
