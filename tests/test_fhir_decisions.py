"""The FHIR and RDF reader on the contract's decisions (shared/contract/fhir-input.md, final section).

Each decision is tested where it must happen and where it must not: the patient graph the reader
writes (vital values, times, notes), the refusals with the resource they name, and the CLI's
reasoning time. The clinical outcomes of the same decisions are in tests/cases/ (make_input_cases.py).
"""

from __future__ import annotations

import copy
import json
import sys
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from rdflib import XSD, Literal

from conftest import CASES, TEST_NOW, guideline
from reasoner.cli import main
from reasoner.clock import parse_instant
from reasoner.errors import InputError
from reasoner.fhir import MAX_DEPTH, READERS, RESOURCE_TYPES, BundleReader, PatientGraph, load_json
from reasoner.namespaces import GKG
from reasoner.patient import parse_patient

NOW = parse_instant(TEST_NOW)
TEMPLATE = CASES / "red-flag-fever" / "in-temperature-38-0-cel" / "bundle.json"
MRI = CASES / "reassess-if-imaging-negative" / "in-negative-mri-with-and-without-contrast" / "bundle.json"


def _bundle(path: Path = TEMPLATE) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def _read(bundle: dict[str, Any], now: datetime = NOW) -> PatientGraph:
    return BundleReader(guideline(), now).read(load_json(json.dumps(bundle)))


def _resource(bundle: dict[str, Any], rtype: str) -> dict[str, Any]:
    return next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == rtype)


def _patient_ref(bundle: dict[str, Any]) -> str:
    return "Patient/" + _resource(bundle, "Patient")["id"]


def _objects(patient: PatientGraph, predicate: Any) -> list[Any]:
    return sorted((o for _, p, o in patient.triples if p == predicate), key=str)


def _notes(patient: PatientGraph, kind: Any) -> list[str]:
    typed = {s for s, p, o in patient.triples if o == kind}
    return sorted(str(o) for s, p, o in patient.triples if s in typed and p == GKG.source)


def _with_temperature(quantity: dict[str, Any], **extra: Any) -> dict[str, Any]:
    b = _bundle()
    obs = _resource(b, "Observation")
    obs["valueQuantity"] = quantity
    obs.update(extra)
    return b


# ---- imaging results carry their time (the interface the exclusion and follow-up rules read) ----

def _mri(**changes: Any) -> dict[str, Any]:
    b = _bundle(MRI)
    report = _resource(b, "DiagnosticReport")
    for key in ("effectiveDateTime", "issued"):
        report.pop(key, None)
    report.update(changes)
    return b


def test_an_imaging_result_carries_its_effective_time_in_utc() -> None:
    patient = _read(_mri(effectiveDateTime="2025-01-26T13:10:00-05:00", issued="2025-01-27T09:00:00Z"))
    assert _objects(patient, GKG.effective) == [Literal("2025-01-26T18:10:00Z", datatype=XSD.dateTime)]


def test_an_imaging_result_without_effective_takes_issued() -> None:
    patient = _read(_mri(issued="2025-01-27T09:00:00+01:00"))
    assert _objects(patient, GKG.effective) == [Literal("2025-01-27T08:00:00Z", datatype=XSD.dateTime)]


def test_a_partial_date_is_its_first_instant() -> None:
    patient = _read(_mri(effectivePeriod={"start": "2025-03"}))
    assert _objects(patient, GKG.effective) == [Literal("2025-03-01T00:00:00Z", datatype=XSD.dateTime)]


def test_an_undated_imaging_result_has_no_time() -> None:
    patient = _read(_mri())
    assert _objects(patient, GKG.effective) == []
    assert any(p == GKG.hasImagingResult for _, p, _ in patient.triples)


def test_an_imaging_result_more_than_a_day_ahead_is_undated_with_a_warning() -> None:
    ahead = _read(_mri(effectiveDateTime="2026-01-16T12:00:01Z"))  # 24 h and 1 s after NOW
    assert _objects(ahead, GKG.effective) == []
    assert _notes(ahead, GKG.FutureTime) == ["DiagnosticReport/dr-1"]
    within = _read(_mri(effectiveDateTime="2026-01-16T12:00:00Z"))  # exactly 24 h after: still dated
    assert _objects(within, GKG.effective) == [Literal("2026-01-16T12:00:00Z", datatype=XSD.dateTime)]
    assert _notes(within, GKG.FutureTime) == []


# ---- values: exact conversion, no rounding before comparing ----

@pytest.mark.parametrize("number, code, value", [
    ("37.996", "Cel", "37.996"), ("311.15", "K", "38"), ("100.4", "[degF]", "38"), ("1e499", "Cel", "1" + "0" * 499),
    ("100.3999999", "[degF]", None)])
def test_a_temperature_is_converted_exactly(number: str, code: str, value: str | None) -> None:
    text = json.dumps(_with_temperature({"value": "@@N@@", "code": code})).replace('"@@N@@"', number)
    patient = BundleReader(guideline(), NOW).read(load_json(text))
    [literal] = _objects(patient, GKG.value)
    if value is not None:
        assert Decimal(str(literal)) == Decimal(value)
    else:  # (100.3999999 - 32) * 5 / 9 repeats: written so that it stays just under 38.0 Cel
        assert Decimal(str(literal)) < Decimal("38.0") < Decimal(str(literal)) + Decimal("1e-7")


def test_a_number_of_any_magnitude_is_a_number_and_a_violation_outside_the_range(tmp_path: Path,
                                                                               capsys: pytest.CaptureFixture) -> None:
    for name, literal in (("huge", "1e499"), ("digits", "9" * 4000), ("over", "45.004")):
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(_with_temperature({"value": 0, "code": "Cel"})).replace(
            '"value": 0', f'"value": {literal}'), encoding="utf-8")
        assert main(["recommend", str(path), "--now", TEST_NOW]) == 1, name
        report = json.loads(capsys.readouterr().out)
        assert any(v["severity"] == "Violation" and v["shape"].endswith("VitalSign-plausible")
                   for v in report["violations"]), name


# ---- units and comparators ----

def test_an_unaccepted_unit_leaves_the_reading_out_with_a_warning_naming_it() -> None:
    patient = _read(_with_temperature({"value": 39.0, "unit": "°C"}))
    assert _objects(patient, GKG.value) == []
    assert _notes(patient, GKG.UnreadableMeasurement) == ["Observation/temp-1"]


def test_unit_without_code_is_read_only_when_it_is_an_accepted_code() -> None:
    assert _objects(_read(_with_temperature({"value": 38.2, "unit": "Cel"})), GKG.value) != []
    assert _objects(_read(_with_temperature({"value": 38.2, "unit": "cel"})), GKG.value) == []


def test_a_value_that_is_not_a_number_is_still_refused() -> None:
    with pytest.raises(InputError, match=r"Observation/temp-1: valueQuantity.value '38.2' is not a number"):
        _read(_with_temperature({"value": "38.2", "code": "Cel"}))


@pytest.mark.parametrize("comparator, value, kept", [
    (">", 38.5, True), (">=", 38.0, True), ("<", 38.0, True), ("<=", 38.0, False), ("<", 38.5, False),
    (">", 37.0, False)])
def test_a_bound_is_kept_only_when_it_decides_the_threshold(comparator: str, value: float, kept: bool) -> None:
    patient = _read(_with_temperature({"value": value, "comparator": comparator, "code": "Cel"}))
    assert bool(_objects(patient, GKG.value)) is kept
    assert bool(_notes(patient, GKG.UnreadableMeasurement)) is not kept
    if kept:
        assert _objects(patient, GKG.comparator) == [Literal(comparator)]


def test_a_comparator_that_is_not_fhirs_is_refused() -> None:
    with pytest.raises(InputError, match="valueQuantity.comparator"):
        _read(_with_temperature({"value": 38.5, "comparator": "ad", "code": "Cel"}))


# ---- the reasoning time ----

def test_the_reasoning_time_is_in_the_report_and_fixes_it_byte_for_byte(capsys: pytest.CaptureFixture) -> None:
    outputs = []
    for _ in range(2):
        assert main(["recommend", str(TEMPLATE), "--now", "2026-01-15T13:00:00+01:00"]) == 0
        outputs.append(capsys.readouterr().out)
    assert outputs[0] == outputs[1]
    assert json.loads(outputs[0])["x-reasoning-time"] == TEST_NOW
    assert main(["explain", str(TEMPLATE), "fever", "--now", TEST_NOW]) == 0
    capsys.readouterr()


@pytest.mark.parametrize("value", ["yesterday", "2026-01-15", "2026-01-15T12:00:00", "2026-13-01T00:00:00Z"])
def test_a_reasoning_time_that_is_not_an_instant_is_refused(value: str, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["recommend", str(TEMPLATE), "--now", value])
    assert exit_info.value.code == 2
    assert "--now" in capsys.readouterr().err


def test_a_batch_reasons_every_patient_at_the_given_time(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a", "b"):
        (folder / f"{name}.json").write_text(TEMPLATE.read_text(encoding="utf-8"), encoding="utf-8")
    assert main(["recommend", str(folder), "--ndjson", "--now", TEST_NOW]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(line)["x-reasoning-time"] for line in lines] == [TEST_NOW, TEST_NOW]


# ---- status filters ----

def _flag_bundle(status: str, period: dict[str, str] | None) -> dict[str, Any]:
    b = _bundle()
    flag: dict[str, Any] = {"resourceType": "Flag", "id": "f1", "status": status, "subject": {"reference": _patient_ref(b)},
                            "code": {"coding": [{"system": "urn:guideline-kg:concept", "code": "mri-contraindicated"}]}}
    if period is not None:
        flag["period"] = period
    b["entry"].append({"resource": flag})
    return b


@pytest.mark.parametrize("status, period, counts", [
    ("active", None, True), ("active", {"start": "2026-01-15T12:00:00Z"}, True), ("active", {"end": TEST_NOW}, True),
    ("active", {"start": "2026-01-15T12:00:01Z"}, False), ("active", {"end": "2026-01-15T11:59:59Z"}, False),
    ("inactive", None, False)])
def test_a_flag_counts_while_active_within_its_period(status: str, period: dict[str, str] | None,
                                                      counts: bool) -> None:
    patient = _read(_flag_bundle(status, period))
    sources = [str(o) for _, p, o in patient.triples if p == GKG.source]
    assert ("Flag/f1" in sources) is counts


@pytest.mark.parametrize("status, counts", [("final", True), ("appended", True), ("amended", True),
                                            ("preliminary", False), ("registered", False), ("unknown", False)])
def test_an_imaging_report_counts_only_in_a_final_status(status: str, counts: bool) -> None:
    patient = _read(_mri(status=status))
    assert any(p == GKG.hasImagingResult for _, p, _ in patient.triples) is counts
    assert bool(_notes(patient, GKG.UnknownReportStatus)) is (status == "unknown")


# ---- structure: resource types, codes, references, duplicates ----

@pytest.mark.parametrize("rtype", ["Fact", "_Init__", "Record", "Keys", "condition", "read", "_resources"])
def test_a_resource_type_that_is_not_fhirs_is_refused_before_any_reader(rtype: str) -> None:
    b = _bundle()
    b["entry"].append({"resource": {"resourceType": rtype, "id": "x"}})
    with pytest.raises(InputError, match="is not a FHIR R4 resource type"):
        _read(b)


def test_the_readers_are_an_explicit_table_of_fhir_types() -> None:
    assert set(READERS) == {"Condition", "Observation", "Flag", "DiagnosticReport"}
    assert set(READERS) <= RESOURCE_TYPES


def test_status_codes_are_case_sensitive() -> None:
    b = _bundle()
    _resource(b, "Observation")["status"] = "Final"
    with pytest.raises(InputError, match="Observation/temp-1: status 'Final' is not a FHIR Observation status"):
        _read(b)


def test_an_entered_in_error_resource_is_ignored_whole_even_when_broken() -> None:
    b = _bundle()
    obs = _resource(b, "Observation")
    obs.update(status="entered-in-error", id="not a FHIR id!", valueQuantity={"value": "hot"})
    patient = _read(b)
    assert _objects(patient, GKG.value) == []


@pytest.mark.parametrize("when", ["9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00"])
def test_a_date_that_overflows_in_utc_is_refused_cleanly(when: str) -> None:
    b = _bundle()
    _resource(b, "Observation")["effectiveDateTime"] = when
    with pytest.raises(InputError, match="Observation/temp-1: effectiveDateTime .* outside the years 0001-9999"):
        _read(b)


def test_identical_duplicates_are_one_resource_and_different_ones_are_refused() -> None:
    b = _bundle()
    obs = next(e for e in b["entry"] if e["resource"]["resourceType"] == "Observation")
    b["entry"].append(copy.deepcopy(obs))
    assert len(_objects(_read(b), GKG.value)) == 1
    b["entry"][-1]["resource"]["valueQuantity"]["value"] = 39.0
    with pytest.raises(InputError, match="Observation/temp-1: appears twice in the bundle with different content"):
        _read(b)


@pytest.mark.parametrize("reference, problem", [
    ("https://other.example.org/r4/Patient/{id}", "names no Patient of the bundle"),
    ("Patient/someone-else", "names no Patient of the bundle"),
    ("Group/g1", "names no Patient of the bundle"),
    ("Condition/mass", "is Condition/mass, not the bundle's Patient")])
def test_a_subject_that_is_not_the_bundles_patient_is_refused(reference: str, problem: str) -> None:
    b = _bundle()
    _resource(b, "Observation")["subject"] = {"reference": reference.format(id=_resource(b, "Patient")["id"])}
    with pytest.raises(InputError, match=f"Observation/temp-1: subject.reference .* {problem}"):
        _read(b)


def test_another_unresolvable_reference_only_leaves_that_link_out() -> None:
    b = _bundle(MRI)
    _resource(b, "DiagnosticReport")["result"] = [{"reference": "Observation/missing"},
                                                  {"reference": "https://elsewhere.example.org/Observation/x"}]
    assert any(p == GKG.hasImagingResult for _, p, _ in _read(b).triples)


def test_a_byte_order_mark_is_accepted_and_duplicate_keys_are_refused() -> None:
    text = TEMPLATE.read_text(encoding="utf-8")
    assert load_json("\ufeff" + text)["resourceType"] == "Bundle"
    with pytest.raises(InputError, match="the key 'a' appears twice"):
        load_json('{"a": 1, "b": {"a": 2}, "a": 3}')
    assert load_json('{"a": 1, "b": {"a": 2}}') == {"a": 1, "b": {"a": 2}}


@pytest.mark.parametrize("where", ["result", "performer"])
def test_a_control_character_in_any_reference_is_refused(where: str) -> None:
    b = _bundle(MRI)
    _resource(b, "DiagnosticReport")[where] = [{"reference": "Observation/o\u00071"}]
    with pytest.raises(InputError, match="reference 'Observation/o\\\\x071' holds a control character"):
        _read(b)
    _resource(b, "DiagnosticReport")[where] = [{"reference": "Observation/o1", "display": "tab\there is text"}]
    assert any(p == GKG.hasImagingResult for _, p, _ in _read(b).triples)


def test_a_control_character_in_an_identifier_is_refused() -> None:
    b = _bundle()
    _resource(b, "Patient")["identifier"][0]["value"] = "MRN\u00001"
    with pytest.raises(InputError, match="identifier\\[0\\].value holds a control character"):
        _read(b)


# ---- RDF patient graphs ----

RDF_PATIENT = """@prefix gkg: <https://w3id.org/guideline-kg/vocab#> .
@prefix xsd: <http://www.w3.org/2001/XMLSchema#> .
<urn:ex:p> a gkg:Patient ; gkg:identifier "R1" ; gkg:hasVitalSign <urn:ex:v> .
<urn:ex:v> a gkg:VitalSign ; gkg:measurement <https://loinc.org/rdf/8310-5> ; gkg:unit "Cel" ; gkg:value VALUE .
"""


@pytest.mark.parametrize("value", ['"sNaN"^^xsd:decimal', '"NaN"^^xsd:decimal', '"1e3"^^xsd:decimal',
                                   '"INF"^^xsd:double', '"-INF"^^xsd:double', '"38.x"^^xsd:double',
                                   '"eighty"^^xsd:integer'])
def test_an_ill_typed_or_non_finite_measured_value_is_refused(value: str) -> None:
    with pytest.raises(InputError, match="ill-typed|not a finite number|not a number"):
        parse_patient(guideline(), RDF_PATIENT.replace("VALUE", value), "turtle", "p.ttl")


@pytest.mark.parametrize("value", ['"38.2"^^xsd:decimal', '" 38.2 "^^xsd:decimal', '"3.82e1"^^xsd:double', "38"])
def test_a_well_typed_measured_value_is_read(value: str) -> None:
    patient = parse_patient(guideline(), RDF_PATIENT.replace("VALUE", value), "turtle", "p.ttl", NOW)
    assert patient.reasoning_time == NOW


def test_a_control_character_in_an_rdf_patients_identifier_is_refused() -> None:
    text = RDF_PATIENT.replace("VALUE", "38.2")
    assert parse_patient(guideline(), text, "turtle", "p.ttl").identifier == "R1"
    with pytest.raises(InputError, match="identifier holds a control character"):
        parse_patient(guideline(), text.replace('"R1"', '"R\\u00071"'), "turtle", "p.ttl")


def test_turtle_nested_past_the_limit_is_refused_and_within_it_read() -> None:
    def nested(depth: int) -> str:
        return RDF_PATIENT.replace("VALUE", "38.2") + "<urn:ex:p> gkg:x " + "[ gkg:x " * depth + "1" + " ]" * depth + " .\n"

    parse_patient(guideline(), nested(MAX_DEPTH), "turtle", "p.ttl")
    with pytest.raises(InputError, match=f"Turtle nested deeper than {MAX_DEPTH} levels"):
        parse_patient(guideline(), nested(MAX_DEPTH + 1), "turtle", "p.ttl")
    brackets_in_text = RDF_PATIENT.replace("VALUE", "38.2") + '<urn:ex:p> gkg:note "' + "[" * 100 + '" .\n'
    parse_patient(guideline(), brackets_in_text, "turtle", "p.ttl")


# ---- reading is linear in the bundle ----

def _conditions(n: int) -> str:
    b = _bundle()
    ref = _patient_ref(b)
    codes = ("279039007", "386661006", "3424008")
    for i in range(n):
        b["entry"].append({"resource": {"resourceType": "Condition", "id": f"c{i}", "subject": {"reference": ref},
                                        "code": {"coding": [{"system": "http://snomed.info/sct", "code": codes[i % 3]}]}}})
    return json.dumps(b)


def _lines_run_reading(text: str) -> int:
    """How many lines of Python run while the reader reads ``text``: a count of the work, the same on any machine."""
    bundle = load_json(text)
    reader = BundleReader(guideline(), NOW)
    count = 0

    def tracer(frame: Any, event: str, arg: Any) -> Any:
        nonlocal count
        if event == "line":
            count += 1
        return tracer

    sys.settrace(tracer)
    try:
        reader.read(bundle)
    finally:
        sys.settrace(None)
    return count


def test_reading_four_times_the_conditions_runs_about_four_times_the_code() -> None:
    _lines_run_reading(_conditions(10))  # the guideline's tables are read once, outside the counts
    small, large = _lines_run_reading(_conditions(500)), _lines_run_reading(_conditions(2000))
    ratio = large / small
    assert 3 < ratio < 4.5, f"reading 2,000 Conditions ran {ratio:.2f} times the lines of 500: not linear"
