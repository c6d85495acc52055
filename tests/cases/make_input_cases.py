#!/usr/bin/env python3
"""Write the in/out cases of the FHIR input decisions (shared/contract/fhir-input.md, final section).

Each case is a copy of a hand-written case of the same folder with the entries this script
names changed, and an expected.json asserted field by field by tests/test_cases.py. Every case
fixes its reasoning time (``now``). Deterministic: run it twice, get the same files.

    python3 tests/cases/make_input_cases.py
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, Callable

CASES = Path(__file__).resolve().parent
NOW = "2026-01-15T12:00:00Z"
UCUM = "http://unitsofmeasure.org"
SCT = "http://snomed.info/sct"
LOINC = "http://loinc.org"
LOCAL = "urn:guideline-kg:concept"
FEVER_TEMPLATE = CASES / "red-flag-fever" / "in-temperature-38-0-cel" / "bundle.json"
HR_TEMPLATE = CASES / "red-flag-tachycardia" / "in-heart-rate-101" / "bundle.json"
FLAG_TEMPLATE = CASES / "ct-when-mri-contraindicated-or-unavailable" / "in-flag-mri-contraindicated-pacemaker" / "bundle.json"
MRI_TEMPLATE = CASES / "reassess-if-imaging-negative" / "in-negative-mri-with-and-without-contrast" / "bundle.json"

Bundle = dict[str, Any]


def load(path: Path) -> Bundle:
    return json.loads(path.read_text(encoding="utf-8"))


def patient_ref(b: Bundle) -> str:
    return next(f"Patient/{e['resource']['id']}" for e in b["entry"] if e["resource"]["resourceType"] == "Patient")


def first(b: Bundle, rtype: str) -> dict[str, Any]:
    return next(e["resource"] for e in b["entry"] if e["resource"]["resourceType"] == rtype)


def without(b: Bundle, rtype: str) -> Bundle:
    b["entry"] = [e for e in b["entry"] if e["resource"]["resourceType"] != rtype]
    return b


def add(b: Bundle, resource: dict[str, Any]) -> Bundle:
    b["entry"].append({"fullUrl": f"https://fhir.example.org/r4/{resource['resourceType']}/{resource['id']}",
                       "resource": resource})
    return b


def vital(b: Bundle, rid: str, loinc: str, quantity: dict[str, Any], when: str | None = "2025-02-11T09:35:00-05:00",
          **extra: Any) -> dict[str, Any]:
    res: dict[str, Any] = {
        "resourceType": "Observation", "id": rid, "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                  "code": "vital-signs"}]}],
        "code": {"coding": [{"system": LOINC, "code": loinc}]}, "subject": {"reference": patient_ref(b)}}
    if when is not None:
        res["effectiveDateTime"] = when
    res["valueQuantity"] = quantity
    res.update(extra)
    return res


def q(value: Any, code: str | None, comparator: str | None = None, unit: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"value": value}
    if comparator:
        out["comparator"] = comparator
    if unit is not None:
        out["unit"] = unit
    if code is not None:
        out.update({"system": UCUM, "code": code})
    return out


def temps(*readings: tuple[Any, ...]) -> Callable[[], Bundle]:
    """A fever-template bundle whose temperatures are (id, quantity, time) readings."""
    def make() -> Bundle:
        b = without(load(FEVER_TEMPLATE), "Observation")
        for rid, quantity, when in readings:
            add(b, vital(b, rid, "8310-5", quantity, when))
        return b
    return make


def rates(*readings: tuple[Any, ...]) -> Callable[[], Bundle]:
    def make() -> Bundle:
        b = without(load(HR_TEMPLATE), "Observation")
        for rid, quantity, when in readings:
            add(b, vital(b, rid, "8867-4", quantity, when))
        return b
    return make


def finding_observation(value_code: str) -> Callable[[], Bundle]:
    def make() -> Bundle:
        b = without(load(FEVER_TEMPLATE), "Observation")
        add(b, {"resourceType": "Observation", "id": "fever-obs", "status": "final",
                "code": {"coding": [{"system": SCT, "code": "386661006", "display": "Fever"}]},
                "subject": {"reference": patient_ref(b)}, "effectiveDateTime": "2025-02-11T09:35:00-05:00",
                "valueCodeableConcept": {"coding": [{"system": SCT, "code": value_code}]}})
        return b
    return make


def flag(status: str, period: dict[str, str]) -> Callable[[], Bundle]:
    def make() -> Bundle:
        b = load(FLAG_TEMPLATE)
        f = first(b, "Flag")
        f["status"] = status
        f["period"] = period
        return b
    return make


def mri(status: str, **changes: Any) -> Callable[[], Bundle]:
    def make() -> Bundle:
        b = load(MRI_TEMPLATE)
        report = first(b, "DiagnosticReport")
        report["status"] = status
        report.update(changes)
        return b
    return make


def reference_form(form: str) -> Callable[[], Bundle]:
    """The febrile reading's subject written as another R4 reference form that resolves to the Patient."""
    def make() -> Bundle:
        b = load(FEVER_TEMPLATE)
        patient_entry = next(e for e in b["entry"] if e["resource"]["resourceType"] == "Patient")
        pid = patient_entry["resource"]["id"]
        if form == "urn-uuid":
            patient_entry["fullUrl"] = f"urn:uuid:{pid}"
            ref = f"urn:uuid:{pid}"
        elif form == "versioned":
            ref = f"Patient/{pid}/_history/3"
        else:
            ref = patient_entry["fullUrl"]
        for e in b["entry"]:
            if "subject" in e["resource"]:
                e["resource"]["subject"] = {"reference": ref}
        return b
    return make


def duplicated() -> Bundle:
    b = load(FEVER_TEMPLATE)
    obs = next(e for e in b["entry"] if e["resource"]["resourceType"] == "Observation")
    b["entry"].append(copy.deepcopy(obs))
    return b


def imaging_code_observation() -> Bundle:
    b = without(load(MRI_TEMPLATE), "DiagnosticReport")
    add(b, {"resourceType": "Observation", "id": "mri-obs", "status": "final",
            "code": {"coding": [{"system": LOINC, "code": "24967-2"}]}, "subject": {"reference": patient_ref(b)},
            "valueCodeableConcept": {"coding": [{"system": SCT, "code": "260385009", "display": "Negative"}]}})
    return b


FEVER_PRESENT = {"findings_include": [{"key": "fever", "status": "present"}], "red_flags_include": ["fever"]}
FEVER_ABSENT = {"findings_include": [{"key": "fever", "status": "absent"}], "red_flags_exclude": ["fever"]}
FEVER_UNKNOWN = {"findings_exclude": [{"key": "fever"}], "red_flags_exclude": ["fever"]}
TACHY_PRESENT = {"findings_include": [{"key": "tachycardia", "status": "present"}], "red_flags_include": ["tachycardia"]}
TACHY_ABSENT = {"findings_include": [{"key": "tachycardia", "status": "absent"}], "red_flags_exclude": ["tachycardia"]}
TACHY_UNKNOWN = {"findings_exclude": [{"key": "tachycardia"}], "red_flags_exclude": ["tachycardia"]}
T1, T2, T3 = "2025-02-11T08:00:00Z", "2025-02-11T09:00:00Z", "2025-02-11T10:00:00Z"


def warn(shape: str, source: str) -> dict[str, Any]:
    return {"warnings_include": [{"shape": shape, "names": source}]}


# folder, name, description, bundle maker, expected fields
SPECS: list[tuple[str, str, str, Callable[[], Bundle], dict[str, Any]]] = [
    # thresholds compare the exact converted value
    ("red-flag-fever", "out-temperature-37-996-cel", "37.996 Cel is below 38.0 Cel: compared unrounded, not fever.",
     temps(("t", q(37.996, "Cel"), T1)), FEVER_ABSENT),
    ("red-flag-fever", "in-temperature-311-15-kelvin", "311.15 K is exactly 38.0 Cel: fever.",
     temps(("t", q(311.15, "K"), T1)), FEVER_PRESENT),
    ("red-flag-fever", "out-temperature-311-149-kelvin", "311.149 K is 37.999 Cel: not fever.",
     temps(("t", q(311.149, "K"), T1)), FEVER_ABSENT),
    ("red-flag-fever", "out-temperature-100-399-degf", "100.399 [degF] is just under 38.0 Cel (exact 5/9): not fever.",
     temps(("t", q(100.399, "[degF]"), T1)), FEVER_ABSENT),
    ("red-flag-fever", "in-unit-read-from-unit-without-code", "Without a code, unit 'Cel' (exactly an accepted code) is read.",
     temps(("t", q(38.2, None, unit="Cel"), T1)), FEVER_PRESENT),
    ("red-flag-fever", "out-unit-degree-sign-left-out",
     "A reading in '°C' (no UCUM code) is left out with a Warning naming it; fever is not documented either way.",
     temps(("t", q(39.0, None, unit="\u00b0C"), T1)),
     {**FEVER_UNKNOWN, **warn("UnreadableMeasurement-source", "Observation/t")}),
    ("red-flag-fever", "out-unit-with-backslashes-left-out",
     "A reading in 'Cel\\1\\g<0>' is left out with a Warning naming the unit as given, backslashes and all.",
     temps(("t", q(39.0, "Cel\\1\\g<0>"), T1)),
     {**FEVER_UNKNOWN, **warn("UnreadableMeasurement-source", "Observation/t is left out of reasoning: unit 'Cel\\1\\g<0>'")}),
    # comparators
    ("red-flag-fever", "in-comparator-above-38-5", "'>38.5 Cel' is fever: every value it allows is at or above 38.0.",
     temps(("t", q(38.5, "Cel", ">"), T1)), FEVER_PRESENT),
    ("red-flag-fever", "in-comparator-at-or-above-38-0", "'>=38.0 Cel' is fever.",
     temps(("t", q(38.0, "Cel", ">="), T1)), FEVER_PRESENT),
    ("red-flag-fever", "out-comparator-below-38-0", "'<38.0 Cel' is not fever.",
     temps(("t", q(38.0, "Cel", "<"), T1)), FEVER_ABSENT),
    ("red-flag-fever", "out-comparator-at-or-below-38-0-decides-nothing",
     "'<=38.0 Cel' allows 38.0 and less: it decides nothing and is left out with a Warning.",
     temps(("t", q(38.0, "Cel", "<="), T1)), {**FEVER_UNKNOWN, **warn("UnreadableMeasurement-source", "Observation/t")}),
    ("red-flag-fever", "in-comparator-undecided-next-most-recent-counts",
     "The newest reading '<38.5 Cel' decides nothing: the next most recent, 38.6 Cel, counts.",
     temps(("old", q(38.6, "Cel"), T1), ("new", q(38.5, "Cel", "<"), T2)),
     {**FEVER_PRESENT, **warn("UnreadableMeasurement-source", "Observation/new")}),
    # time and order
    ("red-flag-fever", "in-partial-date-is-its-first-instant",
     "A reading dated '2025-03' (1 March 00:00) is more recent than one of 28 February 23:00.",
     temps(("feb", q(37.0, "Cel"), "2025-02-28T23:00:00Z"), ("mar", q(38.5, "Cel"), "2025-03")), FEVER_PRESENT),
    ("red-flag-fever", "out-time-zones-compared-as-instants",
     "09:00+05:00 (04:00 UTC) is earlier than 05:00Z: the afebrile 05:00Z reading counts.",
     temps(("a", q(38.5, "Cel"), "2025-03-10T09:00:00+05:00"), ("b", q(37.0, "Cel"), "2025-03-10T05:00:00Z")),
     FEVER_ABSENT),
    ("red-flag-fever", "in-future-reading-treated-as-undated",
     "A reading dated in 2999 is a Warning and treated as undated: the dated febrile reading counts.",
     temps(("now", q(38.4, "Cel"), T1), ("later", q(36.5, "Cel"), "2999-01-01T00:00:00Z")),
     {**FEVER_PRESENT, "warnings_include": [{"shape": "FutureTime-source", "names": "Observation/later"},
                                            {"shape": "UndatedMeasurement-source", "names": "Observation/later"}]}),
    ("red-flag-fever", "in-mixed-dated-and-undated",
     "Dated 38.4 Cel and undated 36.5 Cel: the dated one counts and a Warning names the undated one.",
     temps(("dated", q(38.4, "Cel"), T1), ("undated", q(36.5, "Cel"), None)),
     {**FEVER_PRESENT, **warn("UndatedMeasurement-source", "Observation/undated")}),
    ("red-flag-fever", "out-mixed-dated-afebrile-undated-febrile",
     "Dated 37.0 Cel and undated 39.5 Cel: the dated one counts (not the highest); a Warning names the undated one.",
     temps(("dated", q(37.0, "Cel"), T1), ("undated", q(39.5, "Cel"), None)),
     {**FEVER_ABSENT, **warn("UndatedMeasurement-source", "Observation/undated")}),
    ("red-flag-fever", "in-undated-only-highest-counts", "With no dated reading, the highest counts.",
     temps(("a", q(37.0, "Cel"), None), ("b", q(38.9, "Cel"), None)),
     {**FEVER_PRESENT, "warnings_exclude": [{"shape": "UndatedMeasurement-source"}]}),
    # value qualifiers
    ("red-flag-fever", "out-observation-value-absent", "An Observation of fever with value SNOMED 2667000 (Absent): documented absent.",
     finding_observation("2667000"), FEVER_ABSENT),
    ("red-flag-fever", "out-observation-value-no", "An Observation of fever with value SNOMED 373067005 (No): documented absent.",
     finding_observation("373067005"), FEVER_ABSENT),
    ("red-flag-fever", "in-observation-value-positive", "An Observation of fever with value SNOMED 10828004 (Positive): present.",
     finding_observation("10828004"), FEVER_PRESENT),
    # references and duplicates
    ("red-flag-fever", "in-subject-urn-uuid", "A subject 'urn:uuid:' resolves against the Patient's fullUrl.",
     reference_form("urn-uuid"), FEVER_PRESENT),
    ("red-flag-fever", "in-subject-version-specific", "A subject 'Patient/id/_history/3' resolves with the version removed.",
     reference_form("versioned"), FEVER_PRESENT),
    ("red-flag-fever", "in-subject-absolute-full-url", "A subject equal to the Patient's absolute fullUrl resolves.",
     reference_form("absolute"), FEVER_PRESENT),
    ("red-flag-fever", "in-identical-duplicate-merged", "The febrile reading twice, identical: one resource.",
     duplicated, FEVER_PRESENT),
    # plausible range, exactly
    ("red-flag-fever", "out-temperature-45-004-cel-violation", "45.004 Cel is outside 25-45 Cel: a Violation (exit 1).",
     temps(("t", q(45.004, "Cel"), T1)), {"exit_code": 1, "violations_include": ["VitalSign-plausible"]}),
    ("red-flag-fever", "in-temperature-45-cel-in-range", "45.0 Cel is at the plausible range's bound: conforms.",
     temps(("t", q(45.0, "Cel"), T1)), FEVER_PRESENT),
    # heart rate
    ("red-flag-tachycardia", "in-heart-rate-100-004", "100.004 /min is above 100 /min: tachycardia.",
     rates(("h", q(100.004, "/min"), T1)), TACHY_PRESENT),
    ("red-flag-tachycardia", "in-heart-rate-per-second", "1.7 /s is 102 /min: tachycardia.",
     rates(("h", q(1.7, "/s"), T1)), TACHY_PRESENT),
    ("red-flag-tachycardia", "out-heart-rate-per-hour-6000", "6000 /h is exactly 100 /min: not tachycardia.",
     rates(("h", q(6000, "/h"), T1)), TACHY_ABSENT),
    ("red-flag-tachycardia", "in-heart-rate-beat-per-min", "101 {beat}/min: tachycardia.",
     rates(("h", q(101, "{beat}/min"), T1)), TACHY_PRESENT),
    ("red-flag-tachycardia", "in-heart-rate-one-per-min", "101 1/min: tachycardia.",
     rates(("h", q(101, "1/min"), T1)), TACHY_PRESENT),
    ("red-flag-tachycardia", "in-comparator-above-100", "'>100 /min' is tachycardia.",
     rates(("h", q(100, "/min", ">"), T1)), TACHY_PRESENT),
    ("red-flag-tachycardia", "out-comparator-at-or-below-100", "'<=100 /min' is not tachycardia.",
     rates(("h", q(100, "/min", "<="), T1)), TACHY_ABSENT),
    ("red-flag-tachycardia", "out-comparator-below-101-decides-nothing", "'<101 /min' decides nothing: left out with a Warning.",
     rates(("h", q(101, "/min", "<"), T1)), {**TACHY_UNKNOWN, **warn("UnreadableMeasurement-source", "Observation/h")}),
    ("red-flag-tachycardia", "out-unit-bpm-left-out", "'bpm' is not UCUM: the reading is left out with a Warning naming it.",
     rates(("h", q(120, "bpm"), T1)), {**TACHY_UNKNOWN, **warn("UnreadableMeasurement-source", "Observation/h")}),
    # flag status and period
    ("ct-when-mri-contraindicated-or-unavailable", "out-flag-period-ended",
     "An active Flag whose period ended before the reasoning time does not count.",
     flag("active", {"start": "2024-06-24", "end": "2025-06-30"}), {"does_not_fire": ["ct-when-mri-contraindicated-or-unavailable"]}),
    ("ct-when-mri-contraindicated-or-unavailable", "out-flag-period-not-started",
     "An active Flag whose period starts after the reasoning time does not count.",
     flag("active", {"start": "2026-03-01"}), {"does_not_fire": ["ct-when-mri-contraindicated-or-unavailable"]}),
    ("ct-when-mri-contraindicated-or-unavailable", "in-flag-period-ends-at-reasoning-time",
     "A Flag whose period ends exactly at the reasoning time still counts (bounds inclusive).",
     flag("active", {"start": "2024-06-24", "end": NOW}), {"fires": ["ct-when-mri-contraindicated-or-unavailable"],
                                                            "context_include": ["mri-contraindicated"]}),
    ("ct-when-mri-contraindicated-or-unavailable", "out-flag-inactive", "An inactive Flag does not count.",
     flag("inactive", {"start": "2024-06-24"}), {"does_not_fire": ["ct-when-mri-contraindicated-or-unavailable"]}),
    # diagnostic report status
    ("reassess-if-imaging-negative", "in-negative-mri-appended", "An appended negative MRI report counts.",
     mri("appended"), {"fires": ["reassess-if-imaging-negative"]}),
    ("reassess-if-imaging-negative", "out-negative-mri-preliminary", "A preliminary MRI report is not yet a result.",
     mri("preliminary"), {"does_not_fire": ["reassess-if-imaging-negative"]}),
    ("reassess-if-imaging-negative", "out-negative-mri-status-unknown",
     "An MRI report of unknown status is ignored with a Warning naming it.",
     mri("unknown"), {"does_not_fire": ["reassess-if-imaging-negative"],
                      **warn("UnknownReportStatus-source", "DiagnosticReport/dr-1")}),
    ("reassess-if-imaging-negative", "in-negative-mri-dated-in-the-future",
     "A negative MRI dated after the reasoning time is a Warning naming it; it counts, as an undated result.",
     mri("final", effectiveDateTime="2999-01-01", issued="2999-01-01T10:00:00Z"),
     {**warn("FutureTime-source", "DiagnosticReport/dr-1"), "does_not_fire": ["mri-immediate"]}),
    ("reassess-if-imaging-negative", "out-imaging-code-with-value-negative",
     "'Negative' as an Observation value never applies to an imaging code: no negative MRI result.",
     imaging_code_observation, {"does_not_fire": ["reassess-if-imaging-negative"]}),
]


def main() -> None:
    for folder, name, description, make, fields in SPECS:
        case = CASES / folder / name
        case.mkdir(parents=True, exist_ok=True)
        (case / "bundle.json").write_text(json.dumps(make(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        expected: dict[str, Any] = {"description": description, "now": NOW, "exit_code": fields.get("exit_code", 0)}
        if expected["exit_code"] == 0:
            expected["applicable"] = True
        rec = folder if not folder.startswith("red-flag-") else None
        expected.update({k: v for k, v in fields.items() if k != "exit_code"})
        if rec is not None:
            key = "fires" if name.startswith("in-") else "does_not_fire"
            expected.setdefault(key, [])
            if rec not in expected[key]:
                expected[key].append(rec)
        (case / "expected.json").write_text(json.dumps(expected, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"{len(SPECS)} cases")


if __name__ == "__main__":
    main()
