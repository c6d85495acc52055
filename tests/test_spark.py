"""``guideline-kg spark``: the batch as a Spark job, with the batch's reports byte for byte.

One local SparkSession serves the whole file (local[2], few shuffle partitions, no UI, loopback only,
Spark's folders in a temporary folder); the batch runs once per input, as ``recommend --out``.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest

pyspark = pytest.importorskip("pyspark", reason="the spark extra is not installed")

from benchmarks.cohort import generate, write_bulk, write_files, write_ndjson  # noqa: E402
from conftest import ROOT, TEST_NOW  # noqa: E402
from reasoner.clock import parse_instant  # noqa: E402
from reasoner import cli  # noqa: E402
from reasoner import spark as job  # noqa: E402

N = 200  # Bulk Data: the cohort compared with the batch
N_NDJSON = 60
SEED = 16


@pytest.fixture(scope="session")
def spark(tmp_path_factory: pytest.TempPathFactory) -> Any:
    os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"
    scratch = tmp_path_factory.mktemp("spark-scratch")
    session = (job.session_builder("local[2]", scratch, "guideline-kg-tests")
               .config("spark.sql.shuffle.partitions", "4").config("spark.default.parallelism", "2").getOrCreate())
    yield session
    session.stop()


@lru_cache(maxsize=None)
def cohort(n: int = N, seed: int = SEED) -> tuple[dict, ...]:
    return tuple(generate(n, seed))


def batch(source: Path, out: Path) -> dict[str, str]:
    """The single-machine batch's reports of ``source`` (``recommend INPUT --out DIR``): file stem -> the file's text."""
    assert cli.main(["recommend", str(source), "--out", str(out), "--now", TEST_NOW]) in (0, 1, 2)
    return {p.stem: p.read_text(encoding="utf-8") for p in out.glob("*.json")}


def run(spark: Any, source: Path, out: Path) -> tuple[int, dict[str, Any], dict[str, dict[str, Any]]]:
    code, summary = job.run_job(spark, str(source), str(out), None, "local[2]", parse_instant(TEST_NOW))
    reports = spark.read.parquet(job.literal(job.as_uri(str(out / "reports"))))
    rows = {row["source"]: row.asDict() for row in reports.collect()}
    return code, summary, rows


def same_reports(rows: dict[str, dict[str, Any]], expected: dict[str, str]) -> None:
    reported = {name: row["report_json"] for name, row in rows.items() if row["status"] != "refused"}
    assert sorted(reported) == sorted(expected)
    differing = [name for name in expected if reported[name] != expected[name]]
    assert not differing, f"{len(differing)} reports differ from the batch's, e.g. {differing[:3]}"


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("spark-inputs")
    with (root / "cohort.ndjson").open("w", encoding="utf-8") as handle:
        write_ndjson(cohort()[:N_NDJSON], handle)
    write_bulk(cohort(), root / "bulk", seed=SEED)
    with (root / "bulk" / "Observation.ndjson").open("a", encoding="utf-8") as handle:  # resources of no patient
        handle.write(json.dumps({"resourceType": "Observation", "id": "orphan-1", "status": "final",
                                 "code": {"text": "no subject"}}) + "\n")
        handle.write(json.dumps({"resourceType": "Observation", "id": "orphan-2", "status": "final",
                                 "code": {"text": "another patient"},
                                 "subject": {"reference": "Patient/not-in-this-export"}}) + "\n")
        handle.write(json.dumps({"resourceType": "Observation", "id": "orphan-3", "status": "final",
                                 "code": {"text": "another patient"},
                                 "subject": {"reference": "Patient/not-in-this-export"}}) + "\n")
        handle.write(json.dumps({"resourceType": "Observation", "id": "group-1", "status": "final",
                                 "code": {"text": "a group"}, "subject": {"reference": "Group/g"}}) + "\n")
        handle.write("{not json\n")
    write_files(cohort(12, SEED + 1), root / "bundles")
    return root


# ---- the same reports as the batch ----


def test_every_example_gets_the_batch_report_byte_for_byte(spark, tmp_path: Path) -> None:
    expected = batch(ROOT / "examples", tmp_path / "batch")
    assert len(expected) == len(list((ROOT / "examples").glob("*.json")))
    code, summary, rows = run(spark, ROOT / "examples", tmp_path / "spark")
    same_reports(rows, expected)
    assert summary["input_kind"] == "folder"
    assert summary["patients"] == len(expected)
    assert code == (1 if summary["nonconforming"] else 0)


@pytest.fixture(scope="module")
def ndjson_batch(inputs: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return batch(inputs / "cohort.ndjson", tmp_path_factory.mktemp("ndjson-batch"))


def test_an_ndjson_cohort_gets_the_batch_reports(spark, inputs: Path, ndjson_batch, tmp_path: Path) -> None:
    assert len(ndjson_batch) == N_NDJSON
    code, summary, rows = run(spark, inputs / "cohort.ndjson", tmp_path / "spark")
    same_reports(rows, ndjson_batch)
    assert sorted(rows) == [f"line-{i:07d}" for i in range(1, N_NDJSON + 1)]
    assert summary["patients"] == N_NDJSON and summary["input_kind"] == "ndjson"
    identifiers = {row["patient_identifier"] for row in rows.values()}
    assert len(identifiers) == N_NDJSON and None not in identifiers
    # each Python worker loads the guideline once (a worker kept from an earlier run keeps it), not each partition
    assert summary["partitions"] > 2 and summary["guideline_loads"] <= 2
    assert summary["reasoning_seconds"] > 0


def test_a_bulk_export_is_gathered_by_patient_and_gets_the_batch_reports(spark, inputs: Path, tmp_path: Path,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    expected = batch(inputs / "bulk", tmp_path / "batch")
    batch_err = capsys.readouterr().err.splitlines()
    assert len(expected) == N
    code, summary, rows = run(spark, inputs / "bulk", tmp_path / "spark")
    same_reports(rows, expected)
    # the batch's rule: a patient id Patient.ndjson does not hold is one refused input, and so is each line that
    # fails the checks and names no patient (a Group, not JSON); a resource naming no patient is counted, not read
    assert summary["input_kind"] == "bulk" and summary["patients"] == N + 3
    assert summary["resources_without_patient"] == 1
    refused = {item["source"]: item["reason"] for item in summary["refused_inputs"]}
    assert refused["not-in-this-export"] == "2 resource(s) name this patient but Patient.ndjson does not hold it"
    assert rows["not-in-this-export"]["status"] == "refused"
    assert [name for name in refused if name.startswith("Observation.ndjson line ")] == list(refused)[-2:]
    assert any("Group/g" in reason for reason in refused.values())
    assert any("not JSON" in reason for reason in refused.values())
    # in the batch's words: each refusal, the summary's counts and the line for resources naming no patient
    for reason in refused.values():
        assert any(line.endswith(": " + reason) for line in batch_err), reason
    spark_lines = job._summary_line(summary).splitlines()
    (batch_line,) = [line for line in batch_err if line.startswith(f"guideline-kg: {N + 3} patients, ")]
    assert spark_lines[0].split(";")[0] == batch_line.split(";")[0]
    assert spark_lines[1] == "guideline-kg: 1 resource(s) name no patient (e.g. Practitioner); not read"
    assert spark_lines[1] in batch_err
    statuses = Counter(row["status"] for row in rows.values())
    assert code == 2 and statuses["refused"] == summary["refused"] >= 3
    assert summary["nonconforming_inputs"] == sorted(
        (name for name, row in rows.items() if row["status"] == "nonconforming"), key=lambda n: rows[n]["seq"])


# ---- the entry tables are the reports' entries ----


@pytest.fixture(scope="module")
def examples_run(spark, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("examples-run") / "out"
    job.run_job(spark, str(ROOT / "examples"), str(out), None, "local[2]", parse_instant(TEST_NOW))
    return out


def test_the_recommendations_table_is_the_reports_recommendations(spark, examples_run: Path) -> None:
    reports = [r for r in spark.read.parquet(str(examples_run / "reports")).collect() if r["report_json"]]
    expected = sorted(
        (r["source"], rec["action"]["key"], rec["direction"], rec.get("urgency"), rec.get("strength"),
         tuple(rec["statements"]), tuple(rec["citations"]))
        for r in reports for rec in json.loads(r["report_json"])["recommendations"])
    table = sorted(
        (r["source"], r["action"], r["direction"], r["urgency"], r["strength"], tuple(r["statements"]),
         tuple(r["citations"]))
        for r in spark.read.parquet(str(examples_run / "recommendations")).collect())
    assert table == expected
    assert len(table) > len(reports)  # the examples recommend something: the comparison is not of two empty lists


def test_the_red_flag_and_differential_tables_are_the_reports_entries(spark, examples_run: Path) -> None:
    reports = {r["source"]: json.loads(r["report_json"])
               for r in spark.read.parquet(str(examples_run / "reports")).collect()}
    for table, field in (("red_flags", "red_flags"), ("differential", "differential")):
        rows = spark.read.parquet(str(examples_run / table)).collect()
        assert sorted((r["source"], r["key"], tuple(r["statements"]), tuple(r["citations"])) for r in rows) == sorted(
            (source, e["key"], tuple(e["statements"]), tuple(e["citations"]))
            for source, data in reports.items() for e in data[field])
        assert rows, table
        assert all(r["patient_identifier"] == reports[r["source"]]["patient"]["identifier"] for r in rows)
    summary = json.loads((examples_run / "summary.json").read_text(encoding="utf-8"))
    assert summary["rows"]["red_flags"] == sum(len(d["red_flags"]) for d in reports.values())


# ---- one bad patient never fails the job ----

POISON = [
    b"\xff\xfe not UTF-8 at all\n",
    b"{this is not json}\n",
    json.dumps({"resourceType": "Bundle", "type": "collection", "entry": [
        {"resource": {"resourceType": "Patient", "id": "a", "identifier": [{"value": "A"}]}},
        {"resource": {"resourceType": "Patient", "id": "b", "identifier": [{"value": "B"}]}}]}).encode() + b"\n",
    b"[1, 2, 3]\n",
]


def test_poisoned_patients_are_refused_rows_and_the_others_are_reported(spark, ndjson_batch, tmp_path: Path) -> None:
    good = cohort()[:6]
    source = tmp_path / "poisoned [1].ndjson"  # glob characters in the names are read as they are
    with source.open("wb") as handle:
        for i, bundle in enumerate(good):
            handle.write(json.dumps(bundle).encode() + b"\n")
            if i < len(POISON):
                handle.write(POISON[i])
    expected = {f"line-{i:07d}": ndjson_batch[f"line-{i:07d}"] for i in range(1, len(good) + 1)}
    code, summary, rows = run(spark, source, tmp_path / "out [1]")
    assert code == 2
    refused = {name: row for name, row in rows.items() if row["status"] == "refused"}
    assert sorted(refused) == [f"line-{2 * i + 2:07d}" for i in range(len(POISON))]
    for row in refused.values():
        assert row["reason"] and "\n" not in row["reason"] and row["report_json"] is None
    assert "not UTF-8" in refused["line-0000002"]["reason"]
    assert "not JSON" in refused["line-0000004"]["reason"]
    assert "2 Patient resources" in refused["line-0000006"]["reason"]
    by_patient = {json.loads(text)["patient"]["identifier"]: text for text in expected.values()}
    reported = [row for row in rows.values() if row["status"] != "refused"]
    assert len(reported) == len(good)
    assert all(by_patient[row["patient_identifier"]] == row["report_json"] for row in reported)
    assert [item["source"] for item in summary["refused_inputs"]] == sorted(refused)


def test_anything_a_patient_raises_is_caught_in_the_executor(monkeypatch) -> None:
    """The last resort: an unexpected exception (a defect, not an input error) refuses that patient only."""
    import reasoner.unit

    guideline, engine, _ = job.worker_engine(None)
    real = reasoner.unit.build_report
    lines = [(i + 1, f"line-{i + 1:07d}", "line", json.dumps(b).encode()) for i, b in enumerate(cohort()[:3])]

    calls = []

    def failing(g, reasoned):
        calls.append(reasoned.patient.identifier)
        if len(calls) == 2:
            raise ZeroDivisionError("a defect\nover two lines")
        return real(g, reasoned)

    monkeypatch.setattr(reasoner.unit, "build_report", failing)
    rows = list(job.reason_partition(None, (), None, iter(lines), now=parse_instant(TEST_NOW)))
    assert [r[3] for r in rows] == ["report", "refused", "report"]
    assert rows[1][4] == "could not be reasoned over (ZeroDivisionError: a defect over two lines)"


def test_an_input_in_the_partition_cannot_make_the_worker_read_files(tmp_path: Path) -> None:
    secret = tmp_path / "secret.ttl"
    secret.write_text("<urn:a> <urn:b> <urn:c> .\n", encoding="utf-8")
    other = tmp_path / "allowed"
    other.mkdir()
    rows = list(job.reason_partition(None, (str(other),), None, iter([(1, "secret", "path", str(secret))])))
    assert rows[0][3] == "refused" and "not allowed" in rows[0][4]


# ---- the command ----


def test_the_command_on_a_folder_of_cohort_bundles(spark, inputs: Path, tmp_path: Path, capsys) -> None:
    """``guideline-kg spark FOLDER --out OUT``: the datasets, the summary, the batch's reports, its scratch gone."""
    import tempfile

    expected = batch(inputs / "bundles", tmp_path / "batch")
    capsys.readouterr()

    out = tmp_path / "out"
    scratch = set(Path(tempfile.gettempdir()).glob("guideline-kg-spark-*"))
    code = cli.main(["spark", str(inputs / "bundles"), "--out", str(out), "--now", TEST_NOW])
    err = capsys.readouterr().err
    assert set(Path(tempfile.gettempdir()).glob("guideline-kg-spark-*")) == scratch  # its scratch folder is gone
    assert code in (0, 1), err
    assert sorted(p.name for p in out.iterdir()) == ["differential", "recommendations", "red_flags", "reports",
                                                     "summary.json"]
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["patients"] == 12 and summary["refused"] == 0 and summary["input_kind"] == "folder"
    assert err.splitlines() == [err.splitlines()[-1]] and err.startswith("guideline-kg: 12 patients, ")
    reports = spark.read.parquet(str(out / "reports")).collect()
    same_reports({row["source"]: row.asDict() for row in reports}, expected)
    assert code == (1 if summary["nonconforming"] else 0)


def test_the_command_refuses_an_output_folder_that_is_not_empty(spark, inputs: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine", encoding="utf-8")
    assert cli.main(["spark", str(inputs / "bundles"), "--out", str(out)]) == 3
    assert "not empty" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]


def test_the_command_refuses_an_output_inside_the_input(spark, inputs: Path, capsys) -> None:
    assert cli.main(["spark", str(inputs / "bundles"), "--out", str(inputs / "bundles" / "out")]) == 2
    assert "inside" in capsys.readouterr().err
    assert not (inputs / "bundles" / "out").exists()


def test_the_command_names_a_missing_input(spark, tmp_path: Path, capsys) -> None:
    assert cli.main(["spark", str(tmp_path / "nothing"), "--out", str(tmp_path / "out")]) == 2
    assert "no such file or folder" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_refused_patients_are_named_on_stderr_and_exit_2(spark, tmp_path: Path, capsys) -> None:
    source = tmp_path / "two.ndjson"
    source.write_bytes(json.dumps(cohort()[0]).encode() + b"\n" + b"{not json\n")
    code = cli.main(["spark", str(source), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.splitlines()
    assert code == 2
    assert err[0].startswith("guideline-kg: line-0000002: ") and "not JSON" in err[0]
    assert err[-1].startswith("guideline-kg: 2 patients, ") and "1 refused" in err[-1]


def test_the_job_file_runs_as_spark_submit_runs_it(tmp_path: Path) -> None:
    """spark-submit runs reasoner/spark.py as a file: its folder (with an html.py) must not shadow the standard library."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, str(ROOT / "reasoner" / "spark.py"), str(tmp_path / "nothing"), "--out",
                           str(tmp_path / "out")], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert done.stderr == f"guideline-kg: {tmp_path / 'nothing'}: no such file or folder\n"


def test_a_bulk_patient_bundle_merges_identical_repeats_and_keeps_export_order() -> None:
    patient = b'{"resourceType":"Patient","id":"p1","identifier":[{"value":"X"}]}'
    condition = b'{"resourceType":"Condition","id":"c1","subject":{"reference":"Patient/p1"},"code":{"text":"a"}}'
    same = b'{"code": {"text": "a"}, "subject": {"reference": "Patient/p1"}, "id": "c1", "resourceType": "Condition"}'
    other = b'{"resourceType":"Condition","id":"c1","subject":{"reference":"Patient/p1"},"code":{"text":"b"}}'
    flag = b'{"resourceType":"Flag","id":"f1","subject":{"reference":"Patient/p1"}}'
    lines = [("Flag.ndjson", 1, flag), ("Condition.ndjson", 9, other), ("Condition.ndjson", 2, condition),
             ("Condition.ndjson", 5, same), ("Patient.ndjson", 3, patient)]
    entries = [e["resource"] for e in json.loads(job.bulk_bundle(lines))["entry"]]
    assert [(e["resourceType"], e["id"], e.get("code")) for e in entries] == [
        ("Patient", "p1", None), ("Condition", "c1", {"text": "a"}), ("Condition", "c1", {"text": "b"}),
        ("Flag", "f1", None)]


def test_a_bulk_line_that_is_not_utf8_is_filed_under_its_patient_who_is_refused() -> None:
    raw = b'{"resourceType":"Condition","id":"c1","subject":{"reference":"Patient/p1"},"note":"\xff"}'
    key, line = job._patient_key(6, raw, "Condition.ndjson", 1)
    assert key == "p1" and line[:3] == ("Condition.ndjson", 7, raw)
    patient = job._patient_key(0, b'{"resourceType":"Patient","id":"p1"}', "Patient.ndjson", 0)
    seq, name, kind, payload = job.gather("p1", [line, patient[1]])
    guideline, engine, _ = job.worker_engine(None)
    row = job.reason_one(guideline, engine, name, kind, payload)
    assert row[3] == "refused" and row[4] == "Condition.ndjson line 7: not UTF-8 text (byte 83)"  # the batch's words


def test_bulk_lines_are_filed_as_the_batch_files_them() -> None:
    """Without Spark: which key each line gets and which input each key becomes, in the batch's order and words."""
    practitioner = job._patient_key(0, b'{"resourceType":"Practitioner","id":"doc"}', "Practitioner.ndjson", 2)
    assert practitioner[0] is None  # names no patient: counted, not read
    broken = job._patient_key(4, b"{broken", "Condition.ndjson", 1)
    group = job._patient_key(5, b'{"resourceType":"Condition","id":"g","subject":{"reference":"Group/g"}}',
                             "Condition.ndjson", 1)
    assert broken[0] == (1, 5) and group[0] == (1, 6)  # bad lines of no patient: inputs of their own
    orphan = [job._patient_key(n, b'{"resourceType":"Condition","id":"c%d","subject":{"reference":"Patient/x"}}' % n,
                               "Condition.ndjson", 1) for n in (8, 2)]
    assert {key for key, _ in orphan} == {"x"}
    patient = job._patient_key(9, b'{"resourceType":"Patient","id":"p"}', "Patient.ndjson", 0)
    inputs = sorted([job.gather(broken[0], [broken[1]]), job.gather(group[0], [group[1]]),
                     job.gather("x", [line for _, line in orphan]), job.gather("p", [patient[1]])])
    assert [(name, kind) for _, name, kind, _ in inputs] == [
        ("p", "bundle"), ("x", "problem"), ("Condition.ndjson line 5", "problem"),
        ("Condition.ndjson line 6", "problem")]
    assert inputs[1][3] == "2 resource(s) name this patient but Patient.ndjson does not hold it"
    assert inputs[2][3].startswith("Condition.ndjson line 5: ") and "Group/g" in inputs[3][3]


def test_without_now_every_executor_reasons_at_the_one_instant_the_run_started(spark, inputs: Path, tmp_path: Path) -> None:
    job.run_job(spark, str(inputs / "bundles"), str(tmp_path / "spark"), None, "local[2]")
    times = {json.loads(r["report_json"])["x-reasoning-time"]
             for r in spark.read.parquet(str(tmp_path / "spark" / "reports")).collect() if r["report_json"]}
    assert len(times) == 1


def test_now_is_the_reasoning_time_of_every_report(spark, inputs: Path, tmp_path: Path, capsys) -> None:
    assert cli.main(["spark", str(inputs / "bundles"), "--out", str(tmp_path / "out"), "--now", TEST_NOW]) in (0, 1)
    times = {json.loads(r["report_json"])["x-reasoning-time"]
             for r in spark.read.parquet(str(tmp_path / "out" / "reports")).collect() if r["report_json"]}
    assert times == {TEST_NOW}
    with pytest.raises(SystemExit) as refused:
        cli.main(["spark", str(inputs / "bundles"), "--out", str(tmp_path / "bad"), "--now", "yesterday"])
    assert refused.value.code == 2 and "--now" in capsys.readouterr().err
