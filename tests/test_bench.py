"""The benchmark command itself: it runs both engines, checks agreement and writes its figures (no timing asserted)."""

from __future__ import annotations

import json
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
