"""The benchmark command itself: it runs both engines, checks agreement and writes its figures (no timing asserted)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import ROOT


def test_the_benchmark_runs_both_engines_and_reports_agreement_and_where_the_cpu_went(tmp_path: Path) -> None:
    figures = tmp_path / "figures.json"
    run = subprocess.run([sys.executable, "-m", "benchmarks.bench", "--n", "6", "--jobs", "2", "--reference-n", "1",
                          "--agreement-n", "1", "--no-reference-cache", "--conditions", "50,200", "--json", str(figures)],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    data = json.loads(figures.read_text(encoding="utf-8"))
    assert (data["n"], data["agree"], data["agreement_n"], data["reference_n"]) == (6, 1, 1, 1)
    assert set(data["stages_fast_ms"]) == set(data["stages_reference_ms"]) == {"parse", "validate", "reason", "report"}
    assert data["throughput"] > 0 and data["speedup"] > 1
    assert set(data["reading_s"]) == set(data["recommend_conditions_s"]) == {"50", "200"}
    # the 6 patients were reasoned in the two workers, not in the parent that handed them out
    assert data["workers_cpu_ms"] > data["parent_cpu_ms"] >= 0
    for label in ("per-stage time per patient", "agreement (byte-identical JSON)", "1/1", "CPU a patient: parent / workers",
                  "one patient via the CLI, cold start", "peak RSS", "recommend, one patient, 50 / 200 Conditions"):
        assert label in run.stdout


def test_the_spark_benchmark_compares_every_report_with_the_batch_and_prints_the_scaling(tmp_path: Path) -> None:
    """The Spark runs reason at the batch's instant, so their reports are the batch's byte for byte (a benchmark
    whose two sides reasoned at different times once printed 'identical 0/1000' and exited 1)."""
    figures = tmp_path / "spark.json"
    run = subprocess.run([sys.executable, "-m", "benchmarks.spark_bench", "--n", "8", "--json", str(figures)],
                         cwd=ROOT, capture_output=True, text=True, timeout=600,
                         env={**os.environ, "SPARK_LOCAL_IP": "127.0.0.1"})
    assert run.returncode == 0, run.stdout + run.stderr[-3000:]
    data = json.loads(figures.read_text(encoding="utf-8"))
    assert [(r["master"], r["patients"], r["identical_to_batch"]) for r in data["spark"]] == [
        ("local[1]", 8, 8), ("local[2]", 8, 8)]
    assert data["batch"]["jobs"] == 2 and data["scaling_local2_over_local1"] > 0
    for label in ("recommend --jobs 2", "spark local[1]", "spark local[2]", "identical 8/8", "scaling local[2] / local[1]"):
        assert label in run.stdout
