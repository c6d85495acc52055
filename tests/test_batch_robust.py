"""A batch under messy data and a tired operator: one bad patient never stops it, outputs never lie.

The contract's exit codes for many patients (shared/contract/fhir-input.md, "Decisions"): 0 every
patient reported and conforming; 1 some not conforming, none refused; 2 some refused, the others
still reported; 3 an output or environment error. Most runs are in-process through
``reasoner.cli.main`` with the guideline and engine loaded once (``--jobs 2`` forks workers that
inherit them, and inherit the faults injected here).
"""

from __future__ import annotations

import ast
import contextlib
import copy
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest

from benchmarks.cohort import generate, write_ndjson
from conftest import ROOT, guideline
from reasoner import batch, engines, unit as unit_module
from reasoner.batch import MANIFEST_NAME
from reasoner.unit import NDJSON, Context, Status, Unit, process_unit
from reasoner.cli import main
from reasoner.patient import MAX_INPUT_BYTES
from reasoner.examination import examination
from reasoner.text import render_text

MASKED_CRASH = "could not process the input"


@lru_cache(maxsize=None)
def _engine(name: str | None) -> Any:
    return engines.make_engine(guideline(), name)


@pytest.fixture(autouse=True)
def _loaded_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Workers and in-process runs take the guideline and engine loaded once; every input is still read in full."""
    monkeypatch.setattr(Context, "load", classmethod(
        lambda cls, engine_name=None, fmt="json", now=None, beside=(): cls(guideline(), _engine(engine_name), fmt,
                                                                          now, beside)))


@lru_cache(maxsize=None)
def _good(n: int = 6) -> tuple[dict, ...]:
    """Conforming patients of the synthetic cohort (exit 0 each)."""
    return tuple(b for b in generate(60, seed=11) if "exit-0" in json.dumps(b["meta"]))[:n]


def _with_identifier(bundle: dict, value: str) -> dict:
    bundle = copy.deepcopy(bundle)
    for entry in bundle["entry"]:
        if entry["resource"]["resourceType"] == "Patient":
            entry["resource"]["identifier"] = [{"system": "urn:example:mrn", "value": value}]
    return bundle


def _folder(root: Path, bundles: dict[str, dict]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, bundle in bundles.items():
        (root / name).write_text(json.dumps(bundle), encoding="utf-8")
    return root


def _good_folder(root: Path, poisoned: int = 0) -> Path:
    bundles = {f"good-{i}.json": b for i, b in enumerate(_good())}
    for i in range(poisoned):
        bundles[f"poison-{i}.json"] = _with_identifier(_good()[i], f"POISON-{i}")
    return _folder(root, bundles)


def _run(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    try:
        code = main(["recommend", *map(str, argv)])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 2
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _reports(out: Path) -> list[str]:
    """The reports of an output folder: not its manifest, not the report graphs (.nq) a JSON batch keeps beside."""
    return sorted(p.name for p in out.iterdir() if not p.name.startswith(".") and p.suffix != ".nq")


def _poison(monkeypatch: pytest.MonkeyPatch, stage: str, exc: BaseException) -> None:
    """An unexpected exception for the patients whose identifier says POISON, at one stage of the work."""
    def poisoned(report_data_or_patient: Any) -> bool:
        text = getattr(report_data_or_patient, "identifier", None) or json.dumps(
            getattr(report_data_or_patient, "data", {}).get("patient", {}))
        return "POISON" in text

    if stage == "read":
        real_parse = unit_module.parse_patient

        def parse(*args: Any, **kwargs: Any) -> Any:
            patient = real_parse(*args, **kwargs)
            if poisoned(patient):
                raise exc
            return patient
        monkeypatch.setattr(unit_module, "parse_patient", parse)
    elif stage == "reason":
        real_build = unit_module.build_report

        def build(*args: Any) -> Any:
            report = real_build(*args)
            if poisoned(report):
                raise exc
            return report
        monkeypatch.setattr(unit_module, "build_report", build)
    else:
        real_render = unit_module.render

        def render(g: Any, report: Any, *rest: Any) -> str:
            if poisoned(report):
                raise exc
            return real_render(g, report, *rest)
        monkeypatch.setattr(unit_module, "render", render)


# ---- isolation ----


@pytest.mark.parametrize("jobs,stage", [("1", "read"), ("1", "reason"), ("1", "render"), ("2", "reason")])
def test_an_unexpected_failure_on_one_patient_refuses_that_patient_and_reports_all_others(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        jobs: str, stage: str) -> None:
    source = _good_folder(tmp_path / "in", poisoned=2)
    _poison(monkeypatch, stage, RuntimeError("a defect\nwith a second line"))
    code, out, err = _run(capsys, source, "--out", tmp_path / "out", "--jobs", jobs)
    assert code == 2, err
    assert _reports(tmp_path / "out") == sorted(f"good-{i}.json" for i in range(6))
    assert "Traceback" not in err and MASKED_CRASH not in err
    lines = err.splitlines()
    assert "guideline-kg: poison-0.json: could not be reasoned over (RuntimeError: a defect with a second line)" in lines
    assert "6 conforming, 0 not conforming, 2 refused" in err
    assert "guideline-kg: refused: poison-0.json, poison-1.json" in lines

    again_code, _, again = _run(capsys, source, "--out", tmp_path / "out", "--jobs", jobs)  # a rerun goes past it
    assert again_code == 2
    assert "0 conforming, 0 not conforming, 2 refused, 6 already done" in again


def test_inputs_that_once_crashed_the_reader_are_refused_and_every_other_patient_reported(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 14's triggers (a resourceType naming a reader method, a date past year 9999 in UTC): whatever
    the reader makes of them, an error or a refusal, only that patient goes without a report."""
    bundles = {f"good-{i}.json": b for i, b in enumerate(_good(4))}
    for rt in ("Fact", "Keys", "_Init__"):
        bundle = copy.deepcopy(_good()[4])
        bundle["entry"].append({"resource": {"resourceType": rt, "id": "x1"}})
        bundles[f"type-{rt}.json"] = bundle
    late = copy.deepcopy(_good()[5])
    pid = _split(late)[0]["id"]
    late["entry"].append({"resource": {
        "resourceType": "Observation", "id": "late", "status": "final", "subject": {"reference": f"Patient/{pid}"},
        "code": {"coding": [{"system": "http://loinc.org", "code": "8310-5"}]},
        "effectiveDateTime": "9999-12-31T23:59:59-01:00",
        "valueQuantity": {"value": 37, "unit": "Cel", "system": "http://unitsofmeasure.org", "code": "Cel"}}})
    bundles["late.json"] = late
    source = _folder(tmp_path / "in", bundles)
    code, _, err = _run(capsys, source, "--out", tmp_path / "out", "--jobs", "2")
    assert "Traceback" not in err and MASKED_CRASH not in err
    assert _reports(tmp_path / "out")[:4] == [f"good-{i}.json" for i in range(4)]
    refused = err.splitlines()[-1]
    for name in ("type-Fact.json", "type-Keys.json", "type-_Init__.json"):
        assert name in refused or name in _reports(tmp_path / "out")
    assert code == (2 if "refused:" in refused else 0)


def test_a_worker_killed_on_one_patient_costs_that_patient_only(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker that dies outright (SIGKILL: the kernel's out-of-memory killer, a crash in native code):
    the patient it was on is refused, the rest of its chunk is done again, the run neither hangs nor stops."""
    bundles = {f"p{i}.json": b for i, b in enumerate(_good())}
    bundles["p1-poison.json"] = _with_identifier(_good()[0], "POISON-0")  # the middle of the first chunk
    bundles["p4-poison.json"] = _with_identifier(_good()[1], "POISON-1")  # and of the second (3 a chunk)
    source = _folder(tmp_path / "in", bundles)
    real_parse = unit_module.parse_patient

    def parse(*args: Any, **kwargs: Any) -> Any:
        patient = real_parse(*args, **kwargs)
        if "POISON" in patient.identifier:
            os.kill(os.getpid(), signal.SIGKILL)
        return patient
    monkeypatch.setattr(unit_module, "parse_patient", parse)
    monkeypatch.setattr(batch, "CHUNK", 3)
    code, _, err = _run(capsys, source, "--out", tmp_path / "out", "--jobs", "2")
    assert code == 2, err
    assert _reports(tmp_path / "out") == sorted(f"p{i}.json" for i in range(6))
    assert "Traceback" not in err
    for name in ("p1-poison.json", "p4-poison.json"):
        assert f"guideline-kg: {name}: the worker process died while reasoning over it" in err
    assert "6 conforming, 0 not conforming, 2 refused" in err


@pytest.mark.parametrize("exc", [SystemExit(3), MemoryError(), RecursionError(), KeyError("x")],
                         ids=lambda e: type(e).__name__)
def test_any_exception_a_patient_raises_is_one_refused_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                            monkeypatch: pytest.MonkeyPatch, exc: BaseException) -> None:
    source = _good_folder(tmp_path / "in", poisoned=1)
    _poison(monkeypatch, "reason", exc)
    code, _, err = _run(capsys, source, "--out", tmp_path / "out")
    assert code == 2 and "Traceback" not in err
    assert len(_reports(tmp_path / "out")) == 6
    refused = [line for line in err.splitlines() if line.startswith("guideline-kg: poison-0.json: ")]
    assert len(refused) == 1


def test_process_unit_is_a_library_function_that_never_raises_for_a_patient() -> None:
    context = Context.load("fast", NDJSON)
    good = process_unit(Unit(0, "a", "a", data=json.dumps(_good()[0]).encode()), context)
    assert good.status is Status.REPORTED and good.reason == "" and good.identifier
    assert json.loads(good.report)["conforms"] is True and len(good.input_sha256) == 64
    broken = process_unit(Unit(1, "b", "b", data=b'{"resourceType": "Bundle"'), context)
    assert broken.status is Status.REFUSED and broken.report is None and "not JSON" in broken.reason
    unread = process_unit(Unit(2, "c", "c", problem="not read"), context)
    assert unread.status is Status.REFUSED and unread.reason == "not read"


def test_library_modules_never_import_the_command_line() -> None:
    for path in sorted((ROOT / "reasoner").glob("*.py")):
        if path.name in ("cli.py", "__main__.py"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else (
                [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            assert not any(n.startswith("reasoner.commands") for n in names), path.name


# ---- exit codes ----


def test_a_nonconforming_patient_makes_exit_1_and_is_named_in_the_summary(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = next(b for b in generate(2000, seed=7) if "out-of-range" in json.dumps(b["meta"]))
    source = _folder(tmp_path / "in", {"fine.json": _good()[0], "implausible.json": bad})
    code, _, err = _run(capsys, source, "--out", tmp_path / "out")
    assert code == 1, err
    assert "guideline-kg: not conforming: implausible.json" in err.splitlines()
    assert _reports(tmp_path / "out") == ["fine.json", "implausible.json"]


def test_a_full_disk_is_an_output_error_naming_the_path_and_stops_the_run(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    source = _good_folder(tmp_path / "in", poisoned=1)  # a refused patient too: 3 is the highest code
    real_write = batch.write_atomic
    written = []

    def write(path: Path, text: str | bytes) -> None:
        if path.name == MANIFEST_NAME or path.suffix == ".nq":
            return real_write(path, text)
        if len(written) >= 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_write(path, text)
        written.append(path.name)
    monkeypatch.setattr(batch, "write_atomic", write)
    code, _, err = _run(capsys, source, "--out", tmp_path / "out")
    assert code == 3, err
    assert f"{tmp_path / 'out'}/" in err and "No space left on device" in err
    assert MASKED_CRASH not in err and "Traceback" not in err
    assert "output error, the run stopped" in err.splitlines()[-1]
    assert _reports(tmp_path / "out") == sorted(written)  # nothing partial, nothing temporary
    assert not list((tmp_path / "out").glob(".*.tmp"))


def test_one_patient_written_to_a_full_disk_is_an_output_error_too(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    import reasoner.output

    source = _good_folder(tmp_path / "in") / "good-0.json"

    def full(path: Path, text: str | bytes) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(reasoner.output, "write_atomic", full)
    code, out, err = _run(capsys, source, "--out", tmp_path / "report.json")
    assert code == 3 and out == ""
    assert err == f"guideline-kg: {tmp_path / 'report.json'}: cannot write: No space left on device\n"


def test_a_read_only_output_folder_is_an_output_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = _good_folder(tmp_path / "in")
    out = tmp_path / "out"
    out.mkdir()
    out.chmod(0o555)
    immutable = os.geteuid() == 0  # root writes through permissions; an immutable folder stops it too
    if immutable and (shutil.which("chattr") is None
                      or subprocess.run(["chattr", "+i", str(out)], capture_output=True).returncode != 0):
        pytest.skip("running as root without chattr +i: no folder is read-only to this process "
                    "(test_a_full_disk_... covers the write error itself)")
    try:
        code, _, err = _run(capsys, source, "--out", out)
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(out)], check=True)
        out.chmod(0o755)
    assert code == 3, err
    assert err.count("\n") == 1 and str(out) in err and "cannot write" in err and MASKED_CRASH not in err


@pytest.mark.parametrize("where", ["same", "inside"])
def test_an_output_folder_in_the_input_folder_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                         where: str) -> None:
    source = _good_folder(tmp_path / "in")
    out = source if where == "same" else source / "reports"
    before = sorted(p.name for p in source.iterdir())
    code, _, err = _run(capsys, source, "--out", out)
    assert code == 3 and "inside" in err and err.count("\n") == 1
    assert sorted(p.name for p in source.iterdir()) == before


def test_two_inputs_sharing_a_report_name_stop_the_run_before_any_reasoning(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    source = _good_folder(tmp_path / "in")
    (source / "good-0.ttl").write_text("# a patient graph\n", encoding="utf-8")
    reasoned: list[str] = []
    monkeypatch.setattr(batch, "process_unit", lambda unit, context: reasoned.append(unit.source))
    code, _, err = _run(capsys, source, "--out", tmp_path / "out")
    assert code == 3, err
    assert "good-0.json and good-0.ttl would both be reported as good-0.json" in err
    assert reasoned == [] and _reports(tmp_path / "out") == []


def test_a_second_batch_on_a_folder_in_use_is_refused_and_leaves_the_first_alone(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import fcntl

    source = _good_folder(tmp_path / "in")
    out = tmp_path / "out"
    out.mkdir()
    work = out / ".guideline-kg-batch-of-the-first-run"
    work.mkdir()
    held = os.open(out, os.O_RDONLY)
    fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # the first run, still going
    try:
        code, _, err = _run(capsys, source, "--out", out)
    finally:
        os.close(held)
    assert code == 3 and "another batch is writing to this folder" in err and err.count("\n") == 1
    assert work.is_dir() and _reports(out) == []
    assert _run(capsys, source, "--out", out)[0] == 0  # once it is done, the folder is free again
    assert not work.exists()  # and what a killed run left is cleared


# ---- "already done" ----


def test_already_done_means_a_report_of_that_very_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = _good_folder(tmp_path / "in")
    out = tmp_path / "out"
    now = ("--now", "2026-01-15T12:00:00Z")  # one reasoning time: the single run's report is compared byte for byte
    assert _run(capsys, source, "--out", out, *now)[0] == 0
    (source / "good-1.json").write_text(json.dumps(_good()[0]), encoding="utf-8")  # the input changed
    (out / "good-2.json").write_text("{}", encoding="utf-8")  # a file of that name, not a report of it
    (out / "good-3.json").unlink()
    (out / "good-4.json").write_text('{"report_version": "1"', encoding="utf-8")  # cut short
    (out / "good-0.nq").unlink()  # the report graph beside a JSON report is part of it
    code, _, err = _run(capsys, source, "--out", out, *now)
    assert code == 0 and "5 patients" in err and "1 already done" in err, err
    assert (out / "good-0.nq").exists()
    single = _run(capsys, source / "good-1.json", *now)[1]
    assert (out / "good-1.json").read_text(encoding="utf-8") == single
    for name in ("good-2.json", "good-3.json", "good-4.json"):
        assert json.loads((out / name).read_text(encoding="utf-8"))["report_version"] == "1"
    # an input now refused takes its old report with it: no report of another input stays under its name
    (source / "good-5.json").write_text("{", encoding="utf-8")
    code, _, err = _run(capsys, source, "--out", out, *now)
    assert code == 2 and "5 already done" in err
    assert "good-5.json" not in _reports(out) and not (out / "good-5.nq").exists()  # nor its graph beside
    assert MANIFEST_NAME in {p.name for p in out.iterdir()}


# ---- NDJSON and Bulk Data: the single-file checks ----


def test_every_ndjson_line_passes_the_single_file_checks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = json.dumps(_good()[0]).encode()
    a = json.dumps(_with_identifier(_good()[1], "MRN-\x00-X")).encode().replace(b"\\u0000", b"\xff")
    b = json.dumps(_with_identifier(_good()[1], "MRN-\x00-X")).encode().replace(b"\\u0000", b"\xfe")
    lone = json.dumps(_with_identifier(_good()[2], "x")).encode().replace(b'"x"', b'"\\ud800"')
    deep = b'{"resourceType": "Bundle", "type": "collection", "entry": [], "x": ' + b"[" * 70 + b"]" * 70 + b"}"
    source = tmp_path / "mixed.ndjson"
    with source.open("wb") as handle:
        for line in (good, a, b, lone, deep, b'{"x": "' + b"y" * (MAX_INPUT_BYTES + 1) + b'"}', good):
            handle.write(line + b"\n")
    code, out, err = _run(capsys, source, "--ndjson")
    assert code == 2, err
    assert len(out.splitlines()) == 2
    lines = err.splitlines()
    assert "guideline-kg: line-0000002: not UTF-8 text (byte" in lines[0]  # never replaced: no two patients collapse
    assert "guideline-kg: line-0000003: not UTF-8 text (byte" in lines[1]
    assert "unpaired surrogate" in lines[2] and "nested deeper than 64" in lines[3]
    assert f"line-0000006: {MAX_INPUT_BYTES + 10} bytes is over the {MAX_INPUT_BYTES} byte input limit" in lines[4]
    assert "2 conforming, 0 not conforming, 5 refused" in err


def _bulk(root: Path, resources: dict[str, list[Any]]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, lines in resources.items():
        with (root / name).open("wb") as handle:
            for item in lines:
                handle.write((item if isinstance(item, bytes) else json.dumps(item).encode()) + b"\n")
    return root


def _split(bundle: dict) -> tuple[dict, list[dict]]:
    resources = [e["resource"] for e in bundle["entry"]]
    return next(r for r in resources if r["resourceType"] == "Patient"), [
        r for r in resources if r["resourceType"] != "Patient"]


def test_a_bulk_export_merges_identical_duplicates_refuses_different_ones_and_bad_lines(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (p0, r0), (p1, r1), (p2, r2), (p3, r3) = (_split(b) for b in _good(4))
    first = r0[0]
    reordered = dict(reversed(list(first.items())))  # the same content, keys in another order
    changed = copy.deepcopy(r1[0])
    changed["meta"] = {"versionId": "2"}  # the same type and id, different content
    bad_line = json.dumps(r2[0]).encode().replace(b'"id": "', b'"id": "\xff', 1)  # whose it is still readable
    dangling = copy.deepcopy(r3[0])
    dangling["encounter"] = {"reference": "Encounter/not-in-the-export"}
    source = _bulk(tmp_path / "bulk", {
        "Patient.ndjson": [p0, p1, p2, p3, p3],
        "Resources.ndjson": [*r0, reordered, *r1, changed, *r2, bad_line, dangling, *r3[1:],
                             {"resourceType": "Condition", "id": "stray", "subject": {"reference": "Patient/nobody"}},
                             {"resourceType": "Condition", "id": "grp", "subject": {"reference": "Group/g"}},
                             {"resourceType": "Practitioner", "id": "doc"}],
    })
    code, _, err = _run(capsys, source, "--out", tmp_path / "out")
    assert code == 2, err
    assert "Traceback" not in err and MASKED_CRASH not in err
    reports = _reports(tmp_path / "out")
    assert reports == sorted([f"{p0['id']}.json", f"{p3['id']}.json"])  # merged duplicates, a dangling link left out
    lines = err.splitlines()
    assert any(line.startswith(f"guideline-kg: Patient/{p1['id']}: ") for line in lines)  # two contents, one id
    assert any(line.startswith(f"guideline-kg: Patient/{p2['id']}: Resources.ndjson line ")
               and "not UTF-8 text" in line for line in lines)  # the patient of a bad line is refused, not reported without it
    assert "guideline-kg: Patient/nobody: 1 resource(s) name this patient but Patient.ndjson does not hold it" in lines
    assert any("Resources.ndjson line" in line and "Group/g" in line for line in lines)
    assert "1 resource(s) name no patient" in err


def test_symbolic_links_out_of_a_batch_folder_are_refused_unread(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    source = _good_folder(tmp_path / "in")
    secret = tmp_path / "secret.json"
    secret.write_text(json.dumps(_good()[0]), encoding="utf-8")
    (source / "outside.json").symlink_to(secret)
    (source / "environ.json").symlink_to("/proc/self/environ")
    (source / "inside.json").symlink_to(source / "good-0.json")
    os.mkfifo(source / "pipe.json")  # reading it would wait forever
    read: list[str] = []
    real_read = unit_module.read_input_file
    monkeypatch.setattr(unit_module, "read_input_file", lambda path, name: read.append(str(path)) or real_read(path, name))
    code, _, err = _run(capsys, source, "--out", tmp_path / "out")
    assert code == 2, err
    assert "outside.json: a symbolic link to" in err and "outside the input folder; not read" in err
    assert "environ.json: a symbolic link to /proc/" in err
    assert "pipe.json: not a regular file (a device, pipe or socket); not read" in err
    assert str(secret) not in read and not any(p.startswith("/proc") for p in read)
    assert "inside.json" in _reports(tmp_path / "out")


# ---- what a terminal shows ----


def test_text_report_and_batch_stderr_escape_control_characters(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    context = Context.load("fast", "json")
    data = json.loads(process_unit(Unit(0, "a", "a", data=json.dumps(_good()[0]).encode()), context).report)
    data["patient"]["identifier"] = "X\n\nGUIDELINE DOES NOT APPLY: forged\x1b[2J\r"
    for violation in data["violations"]:
        violation["message"] += "\nGUIDELINE DOES NOT APPLY: forged"
    text = render_text(data, examination(context.guideline))
    assert not any(line.startswith("GUIDELINE DOES NOT APPLY") for line in text.splitlines())
    assert "\x1b" not in text and "\r" not in text
    assert "Patient X\\n\\nGUIDELINE DOES NOT APPLY: forged\\x1b[2J\\r" in text

    source = tmp_path / "in"
    source.mkdir()
    (source / "evil\nGUIDELINE DOES NOT APPLY\x1b[31m.json").write_text("{", encoding="utf-8")
    code, _, err = _run(capsys, source, "--out", tmp_path / "out")
    assert code == 2 and "\x1b" not in err
    assert not any(line.startswith("GUIDELINE") for line in err.splitlines())
    assert "evil\\nGUIDELINE DOES NOT APPLY\\x1b[31m.json" in err


# ---- SIGTERM ----


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_sigterm_stops_a_batch_quietly_removes_its_work_and_exits_143(tmp_path: Path, jobs: str) -> None:
    source = tmp_path / "cohort.ndjson"
    with source.open("w", encoding="utf-8") as handle:
        write_ndjson(generate(60, seed=5), handle)
    out = tmp_path / "out"
    process = subprocess.Popen([sys.executable, "-m", "reasoner", "recommend", str(source), "--out", str(out),
                                "--jobs", jobs], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        if out.is_dir() and sum(1 for _ in out.glob("line-*.json")) >= 3:
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)  # the parent only, as a service manager's stop would
    _, err = process.communicate(timeout=120)
    assert process.returncode == 143, err
    assert "Traceback" not in err and err.splitlines()[-1] == "guideline-kg: terminated"
    leftovers = [p.name for p in out.iterdir() if p.name.startswith(".") and p.name != MANIFEST_NAME]
    assert leftovers == []
    deadline = time.monotonic() + 5  # the forkserver ends when the batch closes its pipe: a moment, not a run
    while time.monotonic() < deadline:
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    with pytest.raises(ProcessLookupError):  # no worker outlives the batch
        os.killpg(process.pid, 0)


# ---- progress ----


def test_the_progress_bar_is_drawn_on_a_terminal_only(tmp_path: Path) -> None:
    """On a terminal tqdm redraws one line (carriage returns) above the summary; piped, stderr holds lines only
    (tests/test_batch.py checks the piped case)."""
    import fcntl
    import pty
    import struct
    import termios

    source = _good_folder(tmp_path / "in")
    primary, secondary = pty.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a terminal of 100 columns
    process = subprocess.Popen([sys.executable, "-m", "reasoner", "recommend", str(source), "--out",
                                str(tmp_path / "out")], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=secondary)
    os.close(secondary)
    seen = b""
    while True:
        try:
            chunk = os.read(primary, 65536)
        except OSError:  # the terminal closed with the process
            break
        if not chunk:
            break
        seen += chunk
    os.close(primary)
    assert process.wait(timeout=120) == 0
    text = seen.decode("utf-8", errors="replace")
    assert "\r" in text and "6/6" in text and "patients" in text
    assert "6 patients, 6 conforming, 0 not conforming, 0 refused" in text


def test_a_file_name_that_is_not_utf8_is_reported_resumed_and_named_escaped(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "in"
    source.mkdir()
    with open(os.path.join(os.fsencode(source), b"caf\xe9.json"), "w", encoding="utf-8") as handle:
        handle.write(json.dumps(_good()[0]))
    with open(os.path.join(os.fsencode(source), b"bad\xff.json"), "w", encoding="utf-8") as handle:
        handle.write("{")
    code, _, err = _run(capsys, source, "--out", tmp_path / "out")
    assert code == 2 and "Traceback" not in err
    assert os.path.exists(os.path.join(os.fsencode(tmp_path / "out"), b"caf\xe9.json"))
    assert "guideline-kg: bad\\udcff.json: " in err  # the undecodable byte shown as an escape
    code, _, err = _run(capsys, source, "--out", tmp_path / "out")
    assert "1 already done" in err


def test_an_ndjson_pipe_is_read_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import threading

    pipe = tmp_path / "feed.ndjson"
    os.mkfifo(pipe)

    def feed() -> None:
        with pipe.open("w", encoding="utf-8") as handle:
            write_ndjson(_good(3), handle)
    writer = threading.Thread(target=feed)
    writer.start()
    code, out, err = _run(capsys, pipe, "--ndjson")
    writer.join(timeout=60)
    assert code == 0, err
    assert len(out.splitlines()) == 3


def test_a_batch_whose_parent_alone_was_killed_can_be_run_again_at_once(tmp_path: Path) -> None:
    """kill -9 of the parent only: its workers may linger a while, but they do not hold the output folder."""
    source = tmp_path / "cohort.ndjson"
    with source.open("w", encoding="utf-8") as handle:
        write_ndjson(generate(40, seed=5), handle)
    out = tmp_path / "out"
    first = subprocess.Popen([sys.executable, "-m", "reasoner", "recommend", str(source), "--out", str(out),
                              "--jobs", "2"], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and first.poll() is None:
            if out.is_dir() and sum(1 for _ in out.glob("line-*.json")) >= 2:
                break
            time.sleep(0.05)
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
        again = subprocess.run([sys.executable, "-m", "reasoner", "recommend", str(source), "--out", str(out)],
                               cwd=ROOT, capture_output=True, text=True, timeout=600)
        assert again.returncode == 0, again.stderr
        assert "another batch" not in again.stderr
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(first.pid, signal.SIGKILL)  # the orphaned workers
