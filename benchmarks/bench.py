"""Benchmark the fast engine against the reference pipeline on a generated cohort.

    python -m benchmarks.bench --n 1000 --jobs 2 --reference-n 20 --agreement-n 1000

In one run, on the cohort of ``benchmarks.cohort`` (FHIR JSON in, JSON reports out):

* per-stage times of both engines (parse, validate, reason, report), per patient;
* warm per-patient latency of the fast engine (p50, p95) and its patients/s in one process;
* end-to-end patients/s of the batch path with ``--jobs`` worker processes;
* the reference engine run here on the first ``--reference-n`` patients (a few seconds each),
  timed: the speed-up ratio;
* the agreement count over the first ``--agreement-n`` patients: how many fast JSON reports are
  byte-identical to the reference's. Reference reports beyond those run here come from the
  reference cache (``$XDG_CACHE_HOME/guideline-kg/reference-reports/<key>``), keyed by everything
  a reference report depends on (the reference's code, the encoding, library versions, the
  patient's text); missing ones are computed with ``--jobs`` workers and kept. The first run
  on a machine computes them all (~3 s a patient); ``--no-reference-cache`` always does;
* one patient through the CLI from a cold start, and peak RSS.

Targets (issue 5) are printed beside the figures; they are checked here, never in the tests.
The exit status is 1 when any report disagrees.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rdflib import Graph

from benchmarks.cohort import generate
from benchmarks.reference import reasoning_time, reference_key
from reasoner.batch import NDJSON, Settings, Unit, _results
from reasoner.cache import cache_dir
from reasoner.engine import Reasoned, ReferenceEngine, run_rules
from reasoner.engines import settle
from reasoner.fast import FastEngine, PatientView
from reasoner.guideline import Guideline
from reasoner.patient import parse_patient
from reasoner.report import build_report
from reasoner.validate import unique, validate

TARGETS = {"throughput": 2000.0, "p50_ms": 5.0, "cold_s": 0.4, "rss_mb_100k": 500.0}


@dataclass
class Stages:
    """Seconds spent per stage, summed over patients."""

    times: dict[str, float] = field(default_factory=lambda: {"parse": 0.0, "validate": 0.0, "reason": 0.0,
                                                              "report": 0.0})
    patients: int = 0

    def add(self, stage: str, seconds: float) -> None:
        self.times[stage] += seconds

    def per_patient_ms(self) -> dict[str, float]:
        return {k: v / max(self.patients, 1) * 1000 for k, v in self.times.items()}


def _timed(stages: Stages, stage: str, call: Callable[[], Any]) -> Any:
    start = time.perf_counter()
    value = call()
    stages.add(stage, time.perf_counter() - start)
    return value


def run_fast(guideline: Guideline, engine: FastEngine, texts: list[str]) -> tuple[list[str], Stages, list[float]]:
    """The fast engine stage by stage, as FastEngine.reason does it; returns reports, stage times, latencies."""
    stages, reports, latencies = Stages(), [], []
    for i, text in enumerate(texts):
        begin = time.perf_counter()
        patient = _timed(stages, "parse", lambda: parse_patient(guideline, text, "json", f"patient {i}", BENCH_NOW))
        own = _timed(stages, "parse", lambda: engine.own(patient))
        results = _timed(stages, "validate", lambda: engine.validate_asserted(patient, own))
        if any(r.severity == "Violation" for r in results):
            reasoned = Reasoned(patient, None, results)
        else:
            triples, side = _timed(stages, "reason", lambda: engine.load(patient, own))
            triples = _timed(stages, "reason", lambda: engine.infer(triples, side))
            results = results + _timed(stages, "validate", lambda: engine.validate_inferred(triples, side))
            reasoned = Reasoned(patient, PatientView(engine, triples, side), unique(results))
        reports.append(_timed(stages, "report", lambda: build_report(guideline, reasoned).to_json()))
        latencies.append(time.perf_counter() - begin)
        stages.patients += 1
    return reports, stages, latencies


def _reference_one(text: str) -> tuple[str, dict[str, float]]:
    guideline = _REFERENCE["guideline"]
    engine: ReferenceEngine = _REFERENCE["engine"]
    stages = Stages()
    patient = _timed(stages, "parse", lambda: parse_patient(guideline, text, "json", "patient", BENCH_NOW))
    data = Graph()
    data += guideline.graph
    data += patient.graph
    results = _timed(stages, "validate", lambda: validate(data, engine.patient_shapes))
    if any(r.severity == "Violation" for r in results):
        reasoned = Reasoned(patient, None, results)
    else:
        graph = Graph()
        graph += guideline.graph
        graph += patient.graph
        _timed(stages, "reason", lambda: run_rules(guideline, graph))
        results = results + _timed(stages, "validate", lambda: validate(graph, engine.inferred_shapes))
        reasoned = Reasoned(patient, graph, unique(results))
    report = _timed(stages, "report", lambda: build_report(guideline, reasoned).to_json())
    return report, stages.times


_REFERENCE: dict[str, Any] = {}


def _reference_init() -> None:
    guideline = Guideline.load()
    _REFERENCE.update(guideline=guideline, engine=ReferenceEngine(guideline))


def _reference_outcomes(texts: list[str], jobs: int) -> Iterator[tuple[str, dict[str, float]]]:
    """(report, stage times) of the reference for each text, in order, as each is done, on ``jobs`` workers."""
    context = multiprocessing.get_context("fork")
    with context.Pool(jobs, initializer=_reference_init) as pool:
        yield from pool.imap(_reference_one, texts, chunksize=1)


def run_reference(texts: list[str], jobs: int) -> tuple[list[str], Stages, float]:
    start = time.perf_counter()
    outcomes = list(_reference_outcomes(texts, jobs))
    wall = time.perf_counter() - start
    stages = Stages()
    for _, times in outcomes:
        for k, v in times.items():
            stages.add(k, v)
        stages.patients += 1
    return [r for r, _ in outcomes], stages, wall


# The reference's JSON report is a function of the patient's text, the encoding, the code the
# reference runs and the libraries it calls: nothing else (benchmarks.reference.reference_key). Its
# reports are kept under that key, so the 1,000-patient agreement is checked on every run without the
# reference's ~50 minutes each time; any change to that code, the encoding or a library version
# recomputes them.
# Both engines reason at the reference's one fixed time, so their reports compare byte for byte and the stored
# reference reports stay valid from day to day.
BENCH_NOW = reasoning_time()


def reference_reports(texts: list[str], jobs: int, folder: Path | None) -> tuple[list[str], int]:
    """The reference's report for each text: from ``folder`` where kept, else computed (and kept); how many computed."""
    reports: list[str | None] = [None] * len(texts)
    if folder is not None:
        for i, text in enumerate(texts):
            try:
                reports[i] = (folder / _report_name(text)).read_text(encoding="utf-8")
            except OSError:
                pass
    todo = [i for i, r in enumerate(reports) if r is None]
    if todo:
        print(f"computing {len(todo)} reference reports with {jobs} workers (~3 s each) ...", file=sys.stderr, flush=True)
        # each kept as it comes: an interrupted run keeps what it computed
        for i, (report, _) in zip(todo, _reference_outcomes([texts[i] for i in todo], jobs)):
            reports[i] = report
            if folder is not None:
                keep_report(folder, texts[i], report)
    return [r or "" for r in reports], len(todo)


def _report_name(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest() + ".json"


def keep_report(folder: Path, text: str, report: str) -> None:
    """Write the reference's report for ``text`` into the reference cache, atomically."""
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / (_report_name(text) + ".tmp")
    tmp.write_text(report, encoding="utf-8")
    tmp.replace(folder / _report_name(text))


def _cpu_seconds(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def end_to_end(texts: list[str], jobs: int) -> tuple[float, float, float]:
    """patients/s through the batch path (worker start-up included): FHIR JSON in, JSON reports out.

    Also the CPU each patient cost this process (reading, handing out, collecting) and the
    workers (start-up included; counted once they have exited), in ms: on 2 cores the two share
    the machine, so what the parent spends is taken from the workers.
    """
    units = (Unit(i, f"line-{i:07d}", f"line-{i:07d}", data=t.encode()) for i, t in enumerate(texts))
    own, children = _cpu_seconds(resource.RUSAGE_SELF), _cpu_seconds(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    outcomes = _results(units, jobs, Settings("fast", NDJSON, None))
    done = sum(1 for outcome in outcomes if outcome.report or outcome.reason)
    rate = done / (time.perf_counter() - start)
    own, children = _cpu_seconds(resource.RUSAGE_SELF) - own, _cpu_seconds(resource.RUSAGE_CHILDREN) - children
    return rate, own / max(done, 1) * 1000, children / max(done, 1) * 1000


def cold_start(example: Path) -> float:
    """Seconds for one patient through the CLI in a new process (best of three)."""
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "reasoner", "recommend", str(example), "--engine", "fast"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        best = min(best, time.perf_counter() - start)
    return best


def peak_rss_mb() -> tuple[float, float]:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return own, children


READING_SIZES = (1000, 4000, 20000)


def conditions_bundle(guideline: Guideline, n: int) -> str:
    """One patient's Bundle with ``n`` Conditions, cycling through the codes of the guideline's own code map."""
    pairs = sorted(pair for pair, (_, coding) in guideline.code_map.items() if coding.match != "needs-lumbar-site")
    entries = [{"resource": {"resourceType": "Patient", "id": "p", "identifier": [{"value": "reading"}]}}]
    for i in range(n):
        system, code = pairs[i % len(pairs)]
        entries.append({"resource": {"resourceType": "Condition", "id": f"c{i}", "subject": {"reference": "Patient/p"},
                                     "code": {"coding": [{"system": system, "code": code}]}}})
    return json.dumps({"resourceType": "Bundle", "type": "collection", "entry": entries})


def reading_seconds(guideline: Guideline, n: int) -> float:
    """Seconds to read one Bundle of a patient with ``n`` Conditions (codes of the guideline's own code map)."""
    from reasoner.fhir import BundleReader, load_json

    text = conditions_bundle(guideline, n)
    started = time.perf_counter()
    BundleReader(guideline, BENCH_NOW).read(load_json(text))
    return time.perf_counter() - started


def recommend_seconds(guideline: Guideline, engine: FastEngine, n: int) -> float:
    """Seconds for the whole recommend of that patient with the fast engine: read, check, reason, JSON report."""
    text = conditions_bundle(guideline, n)
    started = time.perf_counter()
    build_report(guideline, engine.reason(parse_patient(guideline, text, "json", f"conditions-{n}", BENCH_NOW))).to_json()
    return time.perf_counter() - started


def _line(label: str, value: str, target: str = "") -> str:
    return f"  {label:<44} {value:>16}  {target}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench", description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1000, help="patients for the fast engine (default 1000)")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes for the end-to-end run (default 2)")
    parser.add_argument("--reference-n", type=int, default=20,
                        help="patients the reference engine runs on in this process, timed (default 20; ~3 s each)")
    parser.add_argument("--agreement-n", type=int, default=1000,
                        help="patients whose fast report must equal the reference's byte for byte (default 1000); "
                             "reference reports come from the reference cache or are computed and kept there")
    parser.add_argument("--no-reference-cache", action="store_true",
                        help="compute every reference report for the agreement in this run")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--conditions", type=lambda text: [int(n) for n in text.split(",")],
                        default=list(READING_SIZES), help="Conditions of the one patient read and reasoned over "
                        "alone (default " + ",".join(map(str, READING_SIZES)) + ")")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)

    print(f"cohort: {args.n} patients, seed {args.seed}; reference on the first {args.reference_n}", flush=True)
    texts = [json.dumps(b, ensure_ascii=False) for b in generate(args.n, args.seed)]

    start = time.perf_counter()
    guideline = Guideline.load()
    engine = FastEngine(guideline)
    warm_up = time.perf_counter() - start
    run_fast(guideline, engine, texts[:5])  # warm caches
    settle()  # as a batch worker does (reasoner.engines.settle)

    reports, stages, latencies = run_fast(guideline, engine, texts)
    fast_total = sum(latencies)
    latencies_ms = sorted(x * 1000 for x in latencies)
    p50 = statistics.median(latencies_ms)
    p95 = latencies_ms[int(0.95 * (len(latencies_ms) - 1))]
    throughput, parent_cpu_ms, workers_cpu_ms = end_to_end(texts, args.jobs)

    reference_n = min(args.reference_n, args.n)
    ref_reports, ref_stages, ref_wall = run_reference(texts[:reference_n], args.jobs) if reference_n else ([], Stages(), 0)
    agreement_n = max(min(args.agreement_n, args.n), reference_n)
    folder = None if args.no_reference_cache else cache_dir() / "reference-reports" / reference_key()
    if folder is not None:  # the reports just computed count too
        for text, report in zip(texts[:reference_n], ref_reports):
            keep_report(folder, text, report)
    agreement_texts = texts[reference_n:agreement_n]
    more, computed = reference_reports(agreement_texts, args.jobs, folder)
    expected = ref_reports + more
    agree = sum(1 for a, b in zip(reports[:agreement_n], expected) if a == b)
    disagree = [i + 1 for i, (a, b) in enumerate(zip(reports[:agreement_n], expected)) if a != b]
    ref_per_patient = sum(ref_stages.times.values()) / max(ref_stages.patients, 1)
    fast_per_patient = fast_total / max(len(texts), 1)
    cold = cold_start(Path(__file__).resolve().parents[1] / "examples" / "palpable-mass-fever.json")
    own_rss, child_rss = peak_rss_mb()

    print("\nper-stage time per patient (ms)")
    print(f"  {'stage':<12}{'fast':>12}{'reference':>14}")
    fast_ms, ref_ms = stages.per_patient_ms(), ref_stages.per_patient_ms()
    for stage in fast_ms:
        print(f"  {stage:<12}{fast_ms[stage]:>12.2f}{ref_ms.get(stage, 0.0):>14.1f}")
    print(f"  {'total':<12}{fast_per_patient * 1000:>12.2f}{ref_per_patient * 1000:>14.1f}")
    print("\nfigures")
    print(_line("fast engine start-up (load + T-box cache)", f"{warm_up:.2f} s"))
    print(_line("fast, one process, warm", f"{1 / fast_per_patient:,.0f} patients/s"))
    print(_line("warm latency p50 / p95", f"{p50:.1f} / {p95:.1f} ms", f"target p50 <= {TARGETS['p50_ms']:.0f} ms"))
    print(_line(f"end-to-end, --jobs {args.jobs} (FHIR JSON in, JSON out)", f"{throughput:,.0f} patients/s",
                f"target >= {TARGETS['throughput']:,.0f}"))
    print(_line("  CPU a patient: parent / workers", f"{parent_cpu_ms:.2f} / {workers_cpu_ms:.2f} ms"))
    print(_line("reference, per patient", f"{ref_per_patient:.2f} s"))
    print(_line("speed-up (reference / fast, per patient)", f"{ref_per_patient / fast_per_patient:,.0f}x"))
    kept = agreement_n - reference_n - computed
    print(_line("agreement (byte-identical JSON)", f"{agree}/{agreement_n}", "target 100 % of >= 1,000"))
    print(_line("  reference reports: run here / computed / kept", f"{reference_n} / {computed} / {kept}"))
    if disagree:
        print(_line("patients that disagree", ", ".join(map(str, disagree[:20]))))
    print(_line("one patient via the CLI, cold start", f"{cold:.2f} s", f"target <= {TARGETS['cold_s']} s"))
    print(_line("peak RSS: this process / largest worker", f"{own_rss:.0f} / {child_rss:.0f} MB"))
    sizes = args.conditions
    reading = {n: reading_seconds(guideline, n) for n in sizes}
    print(_line("reading a bundle of " + " / ".join(f"{n:,}" for n in sizes) + " Conditions",
                " / ".join(f"{reading[n]:.2f}" for n in sizes) + " s", "linear (issue 14)"))
    whole = {n: recommend_seconds(guideline, engine, n) for n in sizes}
    print(_line("recommend, one patient, " + " / ".join(f"{n:,}" for n in sizes) + " Conditions",
                " / ".join(f"{whole[n]:.2f}" for n in sizes) + " s", "near-linear"))
    if args.json:
        args.json.write_text(json.dumps({
            "n": args.n, "jobs": args.jobs, "reference_n": reference_n, "stages_fast_ms": fast_ms,
            "stages_reference_ms": ref_ms, "p50_ms": p50, "p95_ms": p95, "throughput": throughput,
            "parent_cpu_ms": parent_cpu_ms, "workers_cpu_ms": workers_cpu_ms,
            "speedup": ref_per_patient / fast_per_patient, "agree": agree, "agreement_n": agreement_n,
            "reference_computed": computed, "cold_start_s": cold,
            "peak_rss_mb": own_rss, "peak_rss_worker_mb": child_rss,
            "reading_s": {str(n): reading[n] for n in sizes},
            "recommend_conditions_s": {str(n): whole[n] for n in sizes}}, indent=2) + "\n", encoding="utf-8")
    return 0 if agree == agreement_n else 1


if __name__ == "__main__":
    sys.exit(main())
