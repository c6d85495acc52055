"""Benchmark ``guideline-kg spark`` in local mode against the single-machine batch, on one generated cohort.

    python -m benchmarks.spark_bench --n 1000 [--input ndjson|bulk] [--json FILE]

On the cohort of ``benchmarks.cohort`` (written once as NDJSON, or as a Bulk Data export):

* the batch: ``guideline-kg recommend INPUT --out DIR --jobs 2`` (a new process, wall time);
* Spark with ``local[1]`` and then ``local[2]``, each in a session of its own: the session's start,
  a first job on a few patients (Python workers start and load the guideline), then the timed job
  over the cohort (``reasoner.spark.run_job``: read, reason, write the four Parquet datasets and
  the summary);
* patients/s of each, the scaling ratio local[2] / local[1], and Spark's overhead a patient over
  the batch: (Spark local[2] seconds - batch seconds) / n, in wall time and in CPU time (the JVM's
  process tree, the Python daemon and workers in it; the batch's process and workers);
* how many workers were reasoning at once on average (their summed reasoning time over the job's
  wall time), and the wall time a patient took in a worker: on a machine other work keeps busy,
  local[2] runs two workers at once but each patient takes longer, and the ratio says so.

Every Spark run's reports are checked against the batch's (byte-identical ``report_json``); the exit
status is 1 when one differs. Figures depend on the machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.cohort import generate, write_bulk, write_ndjson
from benchmarks.reference import REFERENCE_NOW as NOW  # one reasoning time: the batch's and Spark's reports compare
from reasoner.clock import parse_instant

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


TICKS = os.sysconf("SC_CLK_TCK")


def tree_cpu(root: int) -> float:
    """CPU seconds (user + system) of a process and all its descendants, children they reaped included."""
    parents: dict[int, int] = {}
    cpu: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry.name)] = int(fields[1])
        cpu[int(entry.name)] = sum(int(x) for x in fields[11:15]) / TICKS  # utime stime cutime cstime
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        total += cpu.get(pid, 0.0)
        todo.extend(child for child, parent in parents.items() if parent == pid)
    return total


def run_batch(source: Path, out: Path, jobs: int) -> tuple[float, float, dict[str, str]]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "reasoner", "recommend", str(source), "--out", str(out),
                           "--jobs", str(jobs), "--now", NOW], cwd=ROOT, capture_output=True, text=True)
    seconds = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode not in (0, 1, 2):
        raise SystemExit(f"the batch failed: {done.stderr.strip()[-300:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return seconds, cpu, {p.stem: p.read_text(encoding="utf-8") for p in out.glob("*.json")}


def run_spark(master: str, source: Path, warm: Path, work: Path, expected: dict[str, str]) -> dict[str, Any]:
    from reasoner.spark import run_job, session_builder

    tag = master.replace("[", "-").replace("]", "").replace("*", "all")

    started = time.monotonic()
    spark = session_builder(master, work / f"scratch-{tag}").getOrCreate()
    session_seconds = time.monotonic() - started
    try:
        started = time.monotonic()
        run_job(spark, str(warm), str(work / f"warm-{tag}"), None, master, parse_instant(NOW))
        warm_seconds = time.monotonic() - started
        jvm = spark.sparkContext._gateway.proc.pid  # the JVM, its Python daemon and workers
        cpu_before = tree_cpu(jvm) + time.process_time()
        started = time.monotonic()
        _code, summary = run_job(spark, str(source), str(work / f"out-{tag}"), None, master, parse_instant(NOW))
        seconds = time.monotonic() - started
        cpu = tree_cpu(jvm) + time.process_time() - cpu_before
        rows = spark.read.parquet(str(work / f"out-{tag}" / "reports")).select("source", "report_json").collect()
    finally:
        spark.stop()
    reported = {row["source"]: row["report_json"] for row in rows if row["report_json"] is not None}
    same = sum(1 for name, text in expected.items() if reported.get(name) == text)
    return {"master": master, "session_start_s": round(session_seconds, 2), "first_job_s": round(warm_seconds, 2),
            "seconds": round(seconds, 2), "cpu_ms_per_patient": round(cpu / summary["patients"] * 1000, 2),
            "patients": summary["patients"],
            "patients_per_s": round(summary["patients"] / seconds, 1), "partitions": summary["partitions"],
            "reasoning_at_once": round(summary["reasoning_seconds"] / seconds, 2),
            "reasoning_ms_per_patient": round(summary["reasoning_seconds"] / summary["patients"] * 1000, 2),
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
        load = os.getloadavg()[0]
        batch_seconds, batch_cpu, expected = run_batch(source, work / "batch", args.jobs)
        runs = [run_spark(master, source, warm, work, expected) for master in ("local[1]", "local[2]")]

    one, two = runs
    figures = {
        "n": args.n, "input": args.input, "cpus": os.cpu_count(), "load_average_at_start": load,
        "batch": {"jobs": args.jobs, "seconds": round(batch_seconds, 2),
                  "cpu_ms_per_patient": round(batch_cpu / args.n * 1000, 2),
                  "patients_per_s": round(args.n / batch_seconds, 1)},
        "spark": runs,
        "scaling_local2_over_local1": round(two["patients_per_s"] / one["patients_per_s"], 2),
        "spark_overhead_ms_per_patient": round((two["seconds"] - batch_seconds) / args.n * 1000, 2),
        "spark_cpu_overhead_ms_per_patient": round(two["cpu_ms_per_patient"] - batch_cpu / args.n * 1000, 2),
    }
    lines = [f"cohort: {args.n} patients ({args.input}), seed {args.seed}, {os.cpu_count()} CPUs, "
             f"load average {load:.1f} at the start",
             f"  {'run':<22}{'wall s':>8}{'patients/s':>12}{'CPU ms/patient':>16}",
             f"  {'recommend --jobs ' + str(args.jobs):<22}{batch_seconds:8.2f}{args.n / batch_seconds:12.1f}"
             f"{batch_cpu / args.n * 1000:16.2f}"]
    for run in runs:
        lines.append(f"  {'spark ' + run['master']:<22}{run['seconds']:8.2f}{run['patients_per_s']:12.1f}"
                     f"{run['cpu_ms_per_patient']:16.2f}  (session start {run['session_start_s']} s, first job "
                     f"{run['first_job_s']} s, {run['partitions']} partitions; identical "
                     f"{run['identical_to_batch']}/{args.n})")
        lines.append(f"  {'':<22}workers reasoning at once {run['reasoning_at_once']:.2f} on average, "
                     f"{run['reasoning_ms_per_patient']:.2f} ms a patient each")
    lines.append(f"  scaling local[2] / local[1]: {figures['scaling_local2_over_local1']:.2f}")
    lines.append(f"  Spark local[2] over the batch, a patient: {figures['spark_overhead_ms_per_patient']:.2f} ms wall, "
                 f"{figures['spark_cpu_overhead_ms_per_patient']:.2f} ms CPU")
    print("\n".join(lines))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    return 0 if all(run["identical_to_batch"] == args.n for run in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
