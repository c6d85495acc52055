#!/usr/bin/env python3
"""Write the hostile-input corpus: cases/, manifest.json, benign.json.

Standard library only and deterministic: no clock, no environment, and the one
source of "random" bytes is random.Random with a fixed seed. Running it twice
gives byte-identical files. Run from anywhere:

    python3 tests/hostile/make_corpus.py

manifest.json  cases the contract (shared/contract/fhir-input.md) decides:
               expect "refused" (exit 2, one line on stderr, nothing on stdout) or
               "nonconforming" (exit 1, report with conforms: false).
benign.json    odd but valid input: expect "ok" (exit 0).

Every file is under 2 MB and the corpus under 15 MB.
"""

from __future__ import annotations

import copy
import json
import random
import shutil
from pathlib import Path

HERE = Path(__file__).resolve().parent
CASES = HERE / "cases"

MANIFEST: list[dict[str, str]] = []
BENIGN: list[dict[str, str]] = []
_NAMES: set[str] = set()

EXT = {"fhir": ".json", "turtle": ".ttl", "jsonld": ".jsonld", "ntriples": ".nt", "rdfxml": ".rdf",
       "sparql": ".rq", "guideline": ".ttl"}
PREFIX = {"fhir": "fhir", "turtle": "ttl", "jsonld": "jsonld", "ntriples": "nt", "rdfxml": "rdfxml",
          "sparql": "sparql", "guideline": "guideline"}


def _write(kind: str, name: str, data: str | bytes) -> str:
    filename = f"{PREFIX[kind]}-{name}{EXT[kind]}"
    if filename in _NAMES:
        raise SystemExit(f"duplicate case name {filename}")
    _NAMES.add(filename)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    if len(raw) >= 2 * 1024 * 1024:
        raise SystemExit(f"{filename}: {len(raw)} bytes, over 2 MB")
    (CASES / filename).write_bytes(raw)
    return f"cases/{filename}"


def case(kind: str, expect: str, name: str, data: str | bytes, why: str) -> None:
    assert expect in ("refused", "nonconforming"), expect
    MANIFEST.append({"file": _write(kind, name, data), "kind": kind, "expect": expect, "why": why})


def benign(kind: str, name: str, data: str | bytes, why: str) -> None:
    BENIGN.append({"file": _write(kind, "ok-" + name, data), "kind": kind, "expect": "ok", "why": why})


def dumps(value: object) -> str:
    return json.dumps(value, indent=1, ensure_ascii=False) + "\n"


# ======================================================================
# FHIR
# ======================================================================

SCT = "http://snomed.info/sct"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
LOCAL = "urn:guideline-kg:concept"
PID = "p1"
PREF = {"reference": f"Patient/{PID}"}


def cc(system: str, code: str, display: str | None = None) -> dict:
    coding = {"system": system, "code": code}
    if display is not None:
        coding["display"] = display
    return {"coding": [coding]}


def patient(pid: str = PID, mrn: str = "HOSTILE-0001") -> dict:
    return {"resourceType": "Patient", "id": pid,
            "identifier": [{"system": "https://hospital.example.org/fhir/sid/mrn", "value": mrn}],
            "gender": "female", "birthDate": "1970-01-01"}


def condition(rid: str, code: dict, **extra: object) -> dict:
    res = {"resourceType": "Condition", "id": rid,
           "clinicalStatus": cc("http://terminology.hl7.org/CodeSystem/condition-clinical", "active"),
           "verificationStatus": cc("http://terminology.hl7.org/CodeSystem/condition-ver-status", "confirmed"),
           "code": code, "subject": dict(PREF)}
    res.update(extra)
    return res


def mass_condition(rid: str = "mass") -> dict:
    return condition(rid, cc(SCT, "443607001", "Palpable mass"),
                     bodySite=[cc(SCT, "52612000", "Lumbar region")])


def back_pain(rid: str = "pain") -> dict:
    return condition(rid, cc(SCT, "279039007", "Low back pain"))


def vital(rid: str, loinc: str, value: object, unit: str | None, **extra: object) -> dict:
    quantity: dict = {"value": value}
    if unit is not None:
        quantity.update({"unit": unit, "system": UCUM, "code": unit})
    res = {"resourceType": "Observation", "id": rid, "status": "final",
           "category": [cc("http://terminology.hl7.org/CodeSystem/observation-category", "vital-signs")],
           "code": cc(LOINC, loinc), "subject": dict(PREF),
           "effectiveDateTime": "2025-03-10T09:30:00+01:00", "valueQuantity": quantity}
    res.update(extra)
    return res


def temp(value: object, unit: str | None = "Cel", rid: str = "temp", **extra: object) -> dict:
    return vital(rid, "8310-5", value, unit, **extra)


def hr(value: object, unit: str | None = "/min", rid: str = "hr", **extra: object) -> dict:
    return vital(rid, "8867-4", value, unit, **extra)


def observation(rid: str, code: object, **extra: object) -> dict:
    res = {"resourceType": "Observation", "id": rid, "status": "final", "code": code, "subject": dict(PREF)}
    res.update(extra)
    return res


def bundle(*resources: dict, btype: str = "collection", full_urls: bool = True) -> dict:
    entries = []
    for r in resources:
        entry: dict = {}
        if full_urls and isinstance(r, dict) and "resourceType" in r and "id" in r:
            entry["fullUrl"] = f"https://fhir.example.org/r4/{r['resourceType']}/{r['id']}"
        entry["resource"] = r
        entries.append(entry)
    return {"resourceType": "Bundle", "id": "hostile", "type": btype, "entry": entries}


def base(*more: dict, btype: str = "collection") -> dict:
    """A well-formed bundle: one Patient, back pain, a lumbar mass, plus whatever is given."""
    return bundle(patient(), back_pain(), mass_condition(), *more, btype=btype)


def fhir_text(b: dict) -> str:
    return dumps(b)


def gen_fhir_structure() -> None:
    good = fhir_text(base(temp(37.0), hr(80)))
    R = "refused"
    case("fhir", R, "empty", "", "empty file: not JSON")
    case("fhir", R, "whitespace-only", " \n\t\r\n  ", "only whitespace: not JSON")
    case("fhir", R, "json-null", "null", "JSON null, not an object")
    case("fhir", R, "json-true", "true", "JSON boolean, not an object")
    case("fhir", R, "json-number", "42", "JSON number, not an object")
    case("fhir", R, "json-string", '"Bundle"', "JSON string, not an object")
    case("fhir", R, "json-empty-array", "[]", "JSON array, not an object")
    case("fhir", R, "json-array-of-bundle", "[" + good + "]", "a Bundle wrapped in an array: not an object")
    case("fhir", R, "json-empty-object", "{}", "object without resourceType: not a Bundle")
    case("fhir", R, "truncated-half", good[: len(good) // 2], "JSON truncated in the middle")
    case("fhir", R, "truncated-last-brace", good.rstrip()[:-1], "JSON missing its final brace")
    case("fhir", R, "trailing-comma", good.replace('"type": "collection",', '"type": "collection",,', 1),
         "double comma: not JSON")
    case("fhir", R, "trailing-comma-end", good.rstrip()[:-1] + ",}\n", "trailing comma before closing brace")
    case("fhir", R, "single-quotes", good.replace('"', "'"), "single-quoted strings are not JSON")
    case("fhir", R, "line-comment", "// a bundle\n" + good, "// comment: not JSON")
    case("fhir", R, "block-comment", good.replace("{", "{/* c */", 1), "/* */ comment: not JSON")
    case("fhir", R, "unquoted-keys", '{resourceType: "Bundle", type: "collection", entry: []}', "unquoted keys")
    case("fhir", R, "two-documents", good + good, "two JSON documents concatenated")
    case("fhir", R, "trailing-garbage", good + "garbage", "text after the JSON document")
    case("fhir", R, "raw-control-char-in-string",
         good.replace('"HOSTILE-0001"', '"HOSTILE\x01-0001"', 1), "unescaped control character inside a string")
    case("fhir", R, "raw-nul-in-string", good.replace('"HOSTILE-0001"', '"HOSTILE\x00-0001"', 1),
         "raw NUL byte inside a JSON string")
    case("fhir", R, "raw-nul-between-tokens", good.replace("{", "{\x00", 1), "raw NUL byte between JSON tokens")
    case("fhir", R, "latin1-byte", good.encode("utf-8").replace(b"HOSTILE", b"HOST\xe9LE", 1),
         "a Latin-1 byte: not UTF-8 text")
    case("fhir", R, "raw-lone-surrogate-bytes", good.encode("utf-8").replace(b"HOSTILE", b"HOST\xed\xa0\x80LE", 1),
         "encoded lone surrogate (ED A0 80): not valid UTF-8")
    case("fhir", R, "overlong-utf8", good.encode("utf-8").replace(b"HOSTILE", b"HOST\xc0\xafLE", 1),
         "overlong UTF-8 sequence: not valid UTF-8")
    case("fhir", R, "utf16le-bom", b"\xff\xfe" + good.encode("utf-16-le"), "UTF-16 encoded: not UTF-8 JSON")
    case("fhir", R, "utf32-be", good.encode("utf-32-be"), "UTF-32 encoded: not UTF-8 JSON")
    case("fhir", R, "nan-literal-top", "NaN", "NaN is not JSON")
    case("fhir", R, "binary-garbage", bytes(random.Random(20250310).randrange(256) for _ in range(4096)),
         "random bytes (seeded)")
    case("fhir", R, "gzip-magic", b"\x1f\x8b\x08\x00" + bytes(range(64)), "gzip header, not JSON text")
    case("fhir", R, "xml-instead", '<?xml version="1.0"?><Bundle xmlns="http://hl7.org/fhir">'
         '<type value="collection"/></Bundle>\n', "FHIR XML, not JSON")

    def rt(value: object) -> dict:
        b = base(temp(37.0))
        b["resourceType"] = value
        return b

    case("fhir", R, "bare-patient", dumps(patient()), "a bare Patient resource, not a Bundle")
    case("fhir", R, "bare-observation", dumps(temp(38.5)), "a bare Observation, not a Bundle")
    case("fhir", R, "resourcetype-lowercase", dumps(rt("bundle")), "resourceType 'bundle' (case) is not Bundle")
    case("fhir", R, "resourcetype-trailing-space", dumps(rt("Bundle ")), "resourceType 'Bundle ' is not Bundle")
    case("fhir", R, "resourcetype-number", dumps(rt(42)), "resourceType is a number")
    case("fhir", R, "resourcetype-list", dumps(rt(["Bundle"])), "resourceType is a list")
    case("fhir", R, "resourcetype-parameters", dumps(rt("Parameters")), "resourceType Parameters, not Bundle")
    case("fhir", R, "resourcetype-zero-width", dumps(rt("Bun\u200bdle")), "zero-width space inside 'Bundle'")
    case("fhir", R, "resourcetype-cyrillic", dumps(rt("Bundl\u0435")), "Cyrillic e homoglyph in 'Bundle'")
    b = base(temp(37.0))
    del b["resourceType"]
    case("fhir", R, "resourcetype-missing", dumps(b), "no resourceType: not a Bundle")

    def entries(value: object) -> str:
        b = base()
        b["entry"] = value
        return dumps(b)

    b = base()
    del b["entry"]
    case("fhir", R, "entry-missing", dumps(b), "Bundle without entry list (so no Patient)")
    case("fhir", R, "entry-null", entries(None), "entry is null")
    case("fhir", R, "entry-object", entries({"resource": patient()}), "entry is an object, not a list")
    case("fhir", R, "entry-string", entries("Patient/p1"), "entry is a string")
    case("fhir", R, "entry-number", entries(1), "entry is a number")
    case("fhir", R, "entry-empty-list", entries([]), "empty entry list: zero Patients")
    case("fhir", R, "entry-items-numbers", entries([1, 2, 3]), "entries are numbers, not objects")
    case("fhir", R, "entry-items-strings", entries(["Patient/p1"]), "entries are strings, not objects")
    case("fhir", R, "entry-items-null", entries([None]), "entry is null")
    case("fhir", R, "entry-items-lists", entries([[{"resource": patient()}]]), "entry is a list, not an object")
    case("fhir", R, "entry-patient-then-null",
         entries([{"resource": patient()}, None]), "second entry is null")
    case("fhir", R, "entry-without-resource",
         entries([{"resource": patient()}, {"fullUrl": "urn:uuid:0"}]), "an entry without a resource")
    case("fhir", R, "entry-resource-string",
         entries([{"resource": patient()}, {"resource": "Observation/o1"}]), "entry.resource is a string")
    case("fhir", R, "entry-resource-list",
         entries([{"resource": patient()}, {"resource": [temp(37.0)]}]), "entry.resource is a list")
    case("fhir", R, "entry-resource-no-resourcetype",
         entries([{"resource": patient()}, {"resource": {"id": "x", "status": "final"}}]),
         "entry.resource without resourceType")
    case("fhir", R, "entry-resource-resourcetype-number",
         entries([{"resource": patient()}, {"resource": {"resourceType": 7, "id": "x"}}]),
         "entry.resource.resourceType is a number")

    # Patient count
    case("fhir", R, "zero-patients", dumps(bundle(back_pain(), mass_condition(), temp(38.5))),
         "no Patient in the bundle")
    case("fhir", R, "zero-patients-lowercase-type",
         dumps(bundle(dict(patient(), resourceType="patient"), back_pain())),
         "resourceType 'patient' (lowercase) is not a Patient: zero Patients")
    case("fhir", R, "two-patients", dumps(bundle(patient(), patient("p2", "HOSTILE-0002"), back_pain())),
         "two Patients")
    benign("fhir", "two-patients-same-id", dumps(bundle(patient(), patient(), back_pain())),
           "the same Patient twice with identical content: one resource (contract: Duplicates)")
    case("fhir", R, "two-patients-same-id-different-mrn",
         dumps(bundle(patient(), patient(PID, "HOSTILE-9999"), back_pain())),
         "duplicate Patient id with conflicting identifiers")
    case("fhir", R, "two-patients-one-inactive",
         dumps(bundle(patient(), dict(patient("p2", "HOSTILE-0002"), active=False), back_pain())),
         "two Patients, one inactive: still two")
    case("fhir", R, "two-patients-no-ids",
         dumps(bundle({"resourceType": "Patient"}, {"resourceType": "Patient"}, full_urls=False)),
         "two anonymous Patients")
    case("fhir", R, "three-patients",
         dumps(bundle(patient(), patient("p2", "B"), patient("p3", "C"), back_pain())), "three Patients")
    many = [patient(f"p{i}", f"M{i}") for i in range(1, 201)]
    case("fhir", R, "two-hundred-patients", dumps(bundle(*many)), "200 Patients")
    case("fhir", R, "patient-last-and-first",
         dumps(bundle(patient(), back_pain(), temp(37.0), patient("p9", "HOSTILE-0009"))),
         "a second Patient at the end of the bundle")

    # Deep nesting
    deep_list = "[" * 10000 + "]" * 10000
    case("fhir", R, "deep-array-10000", deep_list, "JSON nested 10,000 levels deep (arrays)")
    b = fhir_text(base(temp(37.0, extension="@@DEEP@@")))
    case("fhir", R, "deep-extension-10000",
         b.replace('"@@DEEP@@"', "[" * 10000 + "1" + "]" * 10000),
         "a well-formed bundle with an extension nested 10,000 levels deep")
    deep_obj = '{"a":' * 10000 + "1" + "}" * 10000
    case("fhir", R, "deep-object-in-patient",
         fhir_text(bundle(dict(patient(), extension="@@D@@"), back_pain())).replace('"@@D@@"', deep_obj),
         "Patient.extension nested 10,000 objects deep")
    case("fhir", R, "deep-object-100000", '{"resourceType":"Bundle","type":"collection","entry":'
         + '{"a":' * 100000 + "[]" + "}" * 100000 + "}", "JSON nested 100,000 levels deep")
    case("fhir", R, "deep-unclosed-10000", "[" * 10000, "10,000 opening brackets, never closed")


def gen_fhir_datatypes() -> None:
    R = "refused"
    bad_values = [
        ("string", "38.2", "a string"),
        ("empty-string", "", "an empty string"),
        ("string-nan", "NaN", "the string 'NaN'"),
        ("string-infinity", "Infinity", "the string 'Infinity'"),
        ("string-exponent", "3.82e1", "a numeric-looking string"),
        ("string-with-unit", "38.2 Cel", "a string with the unit in it"),
        ("true", True, "a boolean true"),
        ("false", False, "a boolean false"),
        ("null", None, "null"),
        ("list", [38.2], "a list holding a number"),
        ("empty-list", [], "an empty list"),
        ("object", {"value": 38.2}, "an object"),
    ]
    for slug, value, what in bad_values:
        case("fhir", R, f"temp-value-{slug}", dumps(base(temp(value))),
             f"Body temperature valueQuantity.value is {what}, not a number")
        case("fhir", R, f"hr-value-{slug}", dumps(base(hr(value))),
             f"Heart rate valueQuantity.value is {what}, not a number")
    for slug, literal in (("nan", "NaN"), ("infinity", "Infinity"), ("minus-infinity", "-Infinity")):
        for which, maker in (("temp", temp), ("hr", hr)):
            text = dumps(base(maker("@@V@@"))).replace('"@@V@@"', literal)
            case("fhir", R, f"{which}-value-literal-{slug}", text,
                 f"valueQuantity.value is the non-JSON literal {literal}")
    for which, maker in (("temp", temp), ("hr", hr)):
        text = dumps(base(maker("@@V@@"))).replace('"@@V@@"', "0x26")
        case("fhir", R, f"{which}-value-hex", text, "valueQuantity.value 0x26: not JSON")
        text = dumps(base(maker("@@V@@"))).replace('"@@V@@"', "38.")
        case("fhir", R, f"{which}-value-trailing-dot", text, "valueQuantity.value '38.': not a JSON number")
        text = dumps(base(maker("@@V@@"))).replace('"@@V@@"', "+38")
        case("fhir", R, f"{which}-value-plus-sign", text, "valueQuantity.value '+38': not a JSON number")
        text = dumps(base(maker("@@V@@"))).replace('"@@V@@"', "038")
        case("fhir", R, f"{which}-value-leading-zero", text, "valueQuantity.value '038': not a JSON number")

    # valueQuantity itself broken, value missing
    for which, maker in (("temp", temp), ("hr", hr)):
        o = maker(37.0)
        del o["valueQuantity"]["value"]
        case("fhir", R, f"{which}-value-missing", dumps(base(o)), "valueQuantity without a value: not a number")
        o = maker(37.0)
        o["valueQuantity"] = 37.0
        case("fhir", R, f"{which}-quantity-is-number", dumps(base(o)), "valueQuantity is a bare number")
        o = maker(37.0)
        o["valueQuantity"] = "37.0 Cel"
        case("fhir", R, f"{which}-quantity-is-string", dumps(base(o)), "valueQuantity is a string")
        o = maker(37.0)
        o["valueQuantity"] = [o["valueQuantity"]]
        case("fhir", R, f"{which}-quantity-is-list", dumps(base(o)), "valueQuantity is a list of Quantities")
        o = maker(37.0)
        o["valueQuantity"] = None
        case("fhir", R, f"{which}-quantity-null", dumps(base(o)), "valueQuantity is null")

    # Units the contract does not accept: the measurement is left out with a Warning (no longer a refusal)
    temp_units = [("mmHg", "a pressure unit"),
                  ("/min", "a rate unit"), ("degF", "'degF' is not the UCUM code [degF]"),
                  ("[degC]", "'[degC]' is not a UCUM code"), ("C", "'C' is coulomb in UCUM"),
                  ("F", "'F' is farad in UCUM"), ("cel", "UCUM is case-sensitive: 'cel' is not 'Cel'"),
                  ("CEL", "'CEL' is not 'Cel'"), ("Cel ", "trailing space"), ("Cel\u200b", "zero-width space"),
                  ("\u202eleC", "RTL override spelling 'Cel' backwards"), ("", "empty unit"),
                  ("kg", "a mass unit"), ("%", "percent"), ("Cel/min", "a rate of temperature")]
    for i, (unit, what) in enumerate(temp_units):
        benign("fhir", f"temp-unit-{i:02d}", dumps(base(temp(37.0, unit))),
               f"Body temperature unit {unit!r} is not accepted ({what}): left out with a Warning")
    hr_units = [("mmHg", "a pressure unit"), ("Cel", "a temperature unit"), ("kg", "a mass unit"),
                ("%", "percent"), ("", "empty unit"), ("[degF]", "a temperature unit"),
                ("/MIN", "UCUM is case-sensitive"), ("min", "a duration, not a rate"), ("m", "a length")]
    for i, (unit, what) in enumerate(hr_units):
        benign("fhir", f"hr-unit-{i:02d}", dumps(base(hr(80, unit))),
               f"Heart rate unit {unit!r} is not accepted ({what}): left out with a Warning")
    for which, maker in (("temp", temp), ("hr", hr)):
        benign("fhir", f"{which}-unit-missing", dumps(base(maker(37.0, None))),
               "valueQuantity with a value and no unit/code at all: left out with a Warning")
        o = maker(37.0)
        o["valueQuantity"]["code"] = 42
        o["valueQuantity"]["unit"] = 42
        case("fhir", R, f"{which}-unit-number", dumps(base(o)), "valueQuantity.code and unit are numbers")
        o = maker(37.0)
        o["valueQuantity"]["code"] = ["Cel"]
        o["valueQuantity"]["unit"] = ["Cel"]
        case("fhir", R, f"{which}-unit-list", dumps(base(o)), "valueQuantity.code and unit are lists")

    # bodySite not a CodeableConcept (on the mass Condition and on an Observation)
    bad_sites = [("string", "Lumbar region"), ("list-of-strings", ["52612000", "Lumbar region"]),
                 ("number", 52612000), ("list-of-null", [None]), ("list-of-numbers", [52612000]),
                 ("coding-string", [{"coding": "52612000"}]), ("coding-list-of-strings", [{"coding": ["52612000"]}]),
                 ("coding-code-number", [{"coding": [{"system": SCT, "code": 52612000}]}]),
                 ("true", True)]
    for slug, site in bad_sites:
        m = mass_condition()
        m["bodySite"] = site
        case("fhir", R, f"condition-bodysite-{slug}", dumps(bundle(patient(), back_pain(), m)),
             f"Condition.bodySite is {json.dumps(site)[:40]}: not a CodeableConcept")
    for slug, site in bad_sites[:5]:
        o = observation("mass-exam", cc(SCT, "443607001", "Palpable mass"), bodySite=site)
        case("fhir", R, f"observation-bodysite-{slug}", dumps(bundle(patient(), back_pain(), o)),
             f"Observation.bodySite is {json.dumps(site)[:40]}: not a CodeableConcept")

    # code not a CodeableConcept
    bad_codes = [("string", "386661006"), ("list", [cc(SCT, "386661006")]), ("number", 386661006),
                 ("null", None), ("coding-object", {"coding": {"system": SCT, "code": "386661006"}}),
                 ("coding-strings", {"coding": ["386661006"]}),
                 ("coding-code-number", {"coding": [{"system": SCT, "code": 386661006}]}),
                 ("coding-system-list", {"coding": [{"system": [SCT], "code": "386661006"}]})]
    for slug, code in bad_codes:
        case("fhir", R, f"condition-code-{slug}", dumps(bundle(patient(), condition("fev", code))),
             f"Condition.code is {json.dumps(code)[:50]}: not a CodeableConcept")
    for slug, code in bad_codes[:5]:
        case("fhir", R, f"observation-code-{slug}",
             dumps(bundle(patient(), observation("fev", code, valueBoolean=True))),
             f"Observation.code is {json.dumps(code)[:50]}: not a CodeableConcept")
    for slug, code in bad_codes[:3]:
        flag = {"resourceType": "Flag", "id": "mri", "status": "active", "code": code, "subject": dict(PREF)}
        case("fhir", R, f"flag-code-{slug}", dumps(base(flag)), f"Flag.code is {json.dumps(code)[:50]}")
        rep = {"resourceType": "DiagnosticReport", "id": "mri", "status": "final", "code": code,
               "subject": dict(PREF), "conclusionCode": [cc(SCT, "94602001")]}
        case("fhir", R, f"diagnosticreport-code-{slug}", dumps(base(rep)),
             f"DiagnosticReport.code is {json.dumps(code)[:50]}")
    o = temp(37.0)
    o["code"] = "8310-5"
    case("fhir", R, "temp-code-string", dumps(base(o)), "Body temperature Observation.code is a bare string")

    # Other datatypes the mapping reads
    c = condition("fev", cc(SCT, "386661006"))
    c["verificationStatus"] = "refuted"
    case("fhir", R, "verificationstatus-string", dumps(base(c)), "Condition.verificationStatus is a string")
    c = condition("fev", cc(SCT, "386661006"))
    c["clinicalStatus"] = ["active"]
    case("fhir", R, "clinicalstatus-list", dumps(base(c)), "Condition.clinicalStatus is a list of strings")
    o = observation("gait", cc(SCT, "22325002"), interpretation="NEG")
    case("fhir", R, "interpretation-string", dumps(base(o)), "Observation.interpretation is a string")
    o = observation("gait", cc(SCT, "22325002"), valueBoolean="false")
    case("fhir", R, "valueboolean-string", dumps(base(o)), "Observation.valueBoolean is the string 'false'")
    o = observation("gait", cc(SCT, "22325002"), valueBoolean=0)
    case("fhir", R, "valueboolean-number", dumps(base(o)), "Observation.valueBoolean is 0")
    o = observation("exam", cc(SCT, "271907004"), valueCodeableConcept="fever")
    case("fhir", R, "valuecodeableconcept-string", dumps(base(o)), "Observation.valueCodeableConcept is a string")
    rep = {"resourceType": "DiagnosticReport", "id": "mri", "status": "final", "code": cc(LOINC, "24967-2"),
           "subject": dict(PREF), "conclusionCode": "94602001"}
    case("fhir", R, "conclusioncode-string", dumps(base(rep)), "DiagnosticReport.conclusionCode is a string")
    rep = dict(rep, conclusionCode=["94602001"])
    case("fhir", R, "conclusioncode-list-of-strings", dumps(base(rep)),
         "DiagnosticReport.conclusionCode is a list of strings")
    case("fhir", R, "temp-effective-not-a-date", dumps(base(temp(38.5, effectiveDateTime="yesterday"))),
         "Body temperature effectiveDateTime 'yesterday' is not a dateTime (the most recent one counts)")
    case("fhir", R, "temp-effective-number", dumps(base(temp(38.5, effectiveDateTime=20250310))),
         "Body temperature effectiveDateTime is a number")
    case("fhir", R, "hr-effective-impossible-date", dumps(base(hr(110, effectiveDateTime="2025-02-30T10:00:00Z"))),
         "Heart rate effectiveDateTime 2025-02-30 does not exist")
    p = patient()
    p["identifier"][0]["value"] = 1234
    case("fhir", R, "patient-identifier-value-number", dumps(bundle(p, back_pain())),
         "Patient.identifier[0].value is a number (the report reads it)")
    p = patient()
    p["identifier"] = "HOSTILE-0001"
    case("fhir", R, "patient-identifier-string", dumps(bundle(p, back_pain())),
         "Patient.identifier is a string, not a list of Identifiers")


def gen_fhir_references() -> None:
    R = "refused"

    def subj(ref: object) -> dict:
        c = back_pain()
        c["subject"] = ref
        return c

    refs = [("other-id", {"reference": "Patient/ghost"}, "Patient/ghost is not in the bundle"),
            ("empty-id", {"reference": "Patient/"}, "Patient/ names no patient"),
            ("case-differs", {"reference": "Patient/P1"}, "Patient/P1 is not Patient/p1 (ids are case-sensitive)"),
            ("type-lowercase", {"reference": "patient/p1"}, "patient/p1: lowercase resource type"),
            ("urn-uuid-unknown", {"reference": "urn:uuid:6f1c1f44-0000-4000-8000-000000000000"},
             "an urn:uuid that no entry has as fullUrl"),
            ("absolute-other-server", {"reference": "https://evil.example.org/r4/Patient/ghost"},
             "an absolute URL to a patient on another server"),
            ("zero-width", {"reference": "Patient/p\u200b1"}, "zero-width space inside the id"),
            ("rtl-override", {"reference": "Patient/\u202e1p"}, "RTL override inside the id"),
            ("file-url", {"reference": "file:///etc/passwd"}, "a file URL as subject"),
            ("localhost-url", {"reference": "http://127.0.0.1:9/Patient/p1"}, "a loopback URL as subject")]
    for slug, ref, what in refs:
        case("fhir", R, f"subject-{slug}", dumps(bundle(patient(), subj(ref))),
             f"Condition.subject: {what}")
    case("fhir", R, "subject-string", dumps(bundle(patient(), subj("Patient/p1"))),
         "Condition.subject is a string, not a Reference")
    case("fhir", R, "subject-reference-number", dumps(bundle(patient(), subj({"reference": 1}))),
         "Condition.subject.reference is a number")
    case("fhir", R, "subject-list", dumps(bundle(patient(), subj([{"reference": "Patient/p1"}]))),
         "Condition.subject is a list of References")
    case("fhir", R, "temp-subject-ghost", dumps(base(temp(38.5, subject={"reference": "Patient/ghost"}))),
         "Body temperature for a patient not in the bundle")
    case("fhir", R, "hr-subject-ghost", dumps(base(hr(120, subject={"reference": "Patient/ghost"}))),
         "Heart rate for a patient not in the bundle")
    flag = {"resourceType": "Flag", "id": "mri", "status": "active", "code": cc(LOCAL, "mri-contraindicated"),
            "subject": {"reference": "Patient/ghost"}}
    case("fhir", R, "flag-subject-ghost", dumps(base(flag)), "Flag for a patient not in the bundle")
    rep = {"resourceType": "DiagnosticReport", "id": "mri", "status": "final", "code": cc(LOINC, "24967-2"),
           "subject": {"reference": "Patient/ghost"}, "conclusionCode": [cc(SCT, "94602001")]}
    case("fhir", R, "diagnosticreport-subject-ghost", dumps(base(rep)),
         "DiagnosticReport for a patient not in the bundle")
    enc = {"resourceType": "Encounter", "id": "e1", "status": "finished", "subject": {"reference": "Patient/ghost"}}
    case("fhir", R, "encounter-subject-ghost", dumps(base(enc)), "Encounter for a patient not in the bundle")
    # circular / self references where the patient target is missing
    a = temp(38.5, rid="a", subject={"reference": "Patient/ghost"}, hasMember=[{"reference": "Observation/b"}])
    b = hr(120, rid="b", subject={"reference": "Patient/ghost"}, hasMember=[{"reference": "Observation/a"}])
    case("fhir", R, "circular-members-ghost-subject", dumps(bundle(patient(), a, b)),
         "Observations a<->b member of each other, both about a patient not in the bundle")
    s = temp(38.5, rid="self", subject={"reference": "Patient/ghost"}, derivedFrom=[{"reference": "Observation/self"}])
    case("fhir", R, "self-derived-ghost-subject", dumps(bundle(patient(), s)),
         "Observation derived from itself, about a patient not in the bundle")
    c1 = condition("c1", cc(SCT, "386661006"), subject={"reference": "Patient/p2"},
                   evidence=[{"detail": [{"reference": "Condition/c2"}]}])
    c2 = condition("c2", cc(SCT, "3424008"), subject={"reference": "Patient/p2"},
                   evidence=[{"detail": [{"reference": "Condition/c1"}]}])
    case("fhir", R, "circular-evidence-missing-patient", dumps(bundle(patient(), c1, c2)),
         "Conditions citing each other as evidence, subject Patient/p2 missing")
    pat = patient()
    pat["link"] = [{"other": {"reference": "Patient/p1"}, "type": "seealso"}]
    obs = temp(38.5, subject={"reference": "Patient/p2"})
    case("fhir", R, "self-linked-patient-dangling-obs", dumps(bundle(pat, obs)),
         "Patient linked to itself; an Observation for Patient/p2 that is not there")
    # the patient is present only as a fullUrl that does not match
    p = patient()
    bb = bundle(p, back_pain())
    bb["entry"][0]["fullUrl"] = "urn:uuid:11111111-1111-4111-8111-111111111111"
    del p["id"]
    bb["entry"][1]["resource"]["subject"] = {"reference": "urn:uuid:22222222-2222-4222-8222-222222222222"}
    case("fhir", R, "subject-urn-uuid-mismatch", dumps(bb), "subject urn:uuid differs from the Patient's fullUrl")


def gen_fhir_nonconforming() -> None:
    N = "nonconforming"
    temps = [("46", 46, "Cel"), ("45-01", 45.01, "Cel"), ("24-99", 24.99, "Cel"), ("20", 20, "Cel"),
             ("minus-5", -5, "Cel"), ("0", 0, "Cel"), ("absolute-zero", -273.15, "Cel"),
             ("1e308", "@1e308", "Cel"), ("tiny-1e-400", "@1e-400", "Cel"), ("100", 100, "Cel"),
             ("1000", 1000, "Cel"), ("exp-4-6e1", "@4.6e1", "Cel"), ("minus-1e308", "@-1e308", "Cel"),
             ("degf-120", 120, "[degF]"), ("degf-0", 0, "[degF]"), ("degf-minus-40", -40, "[degF]"),
             ("degf-114", 114, "[degF]"), ("degf-76", 76, "[degF]"), ("degf-212", 212, "[degF]"),
             ("degf-1e308", "@1e308", "[degF]")]
    for slug, value, unit in temps:
        text = dumps(base(temp("@@V@@" if isinstance(value, str) else value, unit)))
        if isinstance(value, str):
            text = text.replace('"@@V@@"', value[1:])
        shown = value[1:] if isinstance(value, str) else value
        case("fhir", N, f"temp-out-of-range-{slug}", text,
             f"body temperature {shown} {unit} is outside 25-45 Cel")
    rates = [("0", 0), ("19", 19), ("19-99", 19.99), ("301", 301), ("300-5", 300.5), ("10000", 10000),
             ("minus-60", -60), ("1e308", "@1e308"), ("1e-400", "@1e-400")]
    for slug, value in rates:
        text = dumps(base(hr("@@V@@" if isinstance(value, str) else value)))
        if isinstance(value, str):
            text = text.replace('"@@V@@"', value[1:])
        shown = value[1:] if isinstance(value, str) else value
        case("fhir", N, f"hr-out-of-range-{slug}", text, f"heart rate {shown} /min is outside 20-300 /min")
    case("fhir", N, "hr-out-of-range-beats-400", dumps(base(hr(400, "{beats}/min"))),
         "heart rate 400 {beats}/min is outside 20-300 /min")
    for btype in ("searchset", "transaction", "document"):
        case("fhir", N, f"temp-46-bundle-{btype}", dumps(base(temp(46), btype=btype)),
             f"46 Cel in a {btype} Bundle")
    case("fhir", N, "temp-one-good-one-bad",
         dumps(base(temp(37.2, rid="t1"), temp(47.0, rid="t2", effectiveDateTime="2025-03-09T09:00:00Z"))),
         "two temperatures, the older one (47 Cel) implausible: still a Violation")
    case("fhir", N, "temp-bad-without-date",
         dumps(base(temp(37.2, rid="t1"), {k: v for k, v in temp(50.0, rid="t2").items()
                                           if k != "effectiveDateTime"})),
         "an undated 50 Cel beside a plausible one")
    case("fhir", N, "temp-and-hr-both-bad", dumps(base(temp(10), hr(500))), "both vitals implausible")
    case("fhir", N, "temp-bad-plus-fever-condition",
         dumps(base(condition("fev", cc(SCT, "386661006")), temp(99.0))),
         "fever Condition plus 99 Cel: the measurement still breaks the shape")
    case("fhir", N, "temp-bad-refuted-fever",
         dumps(base(condition("fev", cc(SCT, "386661006"), verificationStatus=cc(
             "http://terminology.hl7.org/CodeSystem/condition-ver-status", "refuted")), temp(46.5))),
         "refuted fever plus 46.5 Cel")
    case("fhir", N, "temp-bad-urn-uuid-refs",
         dumps({"resourceType": "Bundle", "type": "collection", "entry": [
             {"fullUrl": "urn:uuid:aaaaaaaa-0000-4000-8000-000000000001", "resource": patient()},
             {"fullUrl": "urn:uuid:aaaaaaaa-0000-4000-8000-000000000002",
              "resource": temp(60, subject={"reference": "urn:uuid:aaaaaaaa-0000-4000-8000-000000000001"})}]}),
         "60 Cel, subject by urn:uuid fullUrl")
    case("fhir", N, "hr-bad-with-unicode-display",
         dumps(base(hr(350, code={"coding": [{"system": LOINC, "code": "8867-4",
                                               "display": "He\u200bart \u202erate"}]}))),
         "350 /min with zero-width and RTL characters in the display")
    case("fhir", N, "temp-bad-integer-text", dumps(base(temp(451))), "451 Cel (integer)")


def gen_fhir_benign() -> None:
    t = lambda v, **k: temp(v, **k)  # noqa: E731
    benign("fhir", "baseline", dumps(base(temp(37.0), hr(80))), "well-formed bundle, plausible vitals")
    for btype in ("searchset", "transaction", "document"):
        benign("fhir", f"bundle-type-{btype}", dumps(base(temp(37.0), btype=btype)), f"a {btype} Bundle")
    benign("fhir", "unknown-codes", dumps(base(condition("x", cc(SCT, "999999999", "Not a code")),
                                               condition("y", cc("http://example.org/cs", "zzz")))),
           "codes that match no concept are kept out of reasoning")
    benign("fhir", "local-system-unknown-key", dumps(base(condition("x", cc(LOCAL, "no-such-key")))),
           "local code system with an unknown key: matches no concept")
    others = [{"resourceType": "Practitioner", "id": "dr"}, {"resourceType": "Organization", "id": "org"},
              {"resourceType": "MedicationRequest", "id": "mr", "status": "active", "intent": "order",
               "subject": dict(PREF)},
              {"resourceType": "AllergyIntolerance", "id": "al", "patient": dict(PREF)},
              {"resourceType": "Basic", "id": "b1", "code": {"text": "anything"}}]
    benign("fhir", "other-resource-types", dumps(base(*others)), "other resource types are ignored")
    sr = {"resourceType": "ServiceRequest", "id": "sr", "status": "draft", "intent": "order",
          "code": cc(LOINC, "24972-2"), "subject": dict(PREF)}
    benign("fhir", "service-request", dumps(base(sr)), "a ServiceRequest is not a patient fact")
    tricks = {"rtl-override": "Low back pain \u202eniap kcab\u202c", "zero-width": "Low\u200b back\u200d pain\ufeff",
              "nul-escape": "Low back\u0000 pain",
              "combining": "Lo\u0301w ba\u0308ck pa\u0327in", "emoji": "Back pain \U0001F9B4\U0001F525",
              "bidi-isolates": "\u2067pain\u2069 \u2066back\u2069", "control-chars": "pain\u0007\u001b[31m",
              "homoglyph": "L\u043ew b\u0430ck p\u0430in", "newlines": "line1\nline2\r\nline3\u2028line4"}
    for slug, display in tricks.items():
        c = condition("pain", {"coding": [{"system": SCT, "code": "279039007", "display": display}],
                               "text": display})
        text = dumps(bundle(patient(), c, mass_condition()))
        benign("fhir", f"display-{slug}", text, f"unicode trick in display/text strings ({slug})")
    p = patient()
    p["name"] = [{"family": "\u202eevil\u202c", "given": ["\u200b", "\U0001F600"]}]
    benign("fhir", "patient-name-unicode", dumps(bundle(p, back_pain())), "RTL/zero-width/emoji in Patient.name")
    note = "x" * (1024 * 1024)
    benign("fhir", "huge-note", dumps(base(condition("n", cc(SCT, "279039007"), note=[{"text": note}]))),
           "a 1 MB note text on a Condition")
    benign("fhir", "long-display", dumps(base(condition("n", {"coding": [{"system": SCT, "code": "279039007",
                                                                         "display": "pain " * 20000}]}))),
           "a 100 kB display string")
    benign("fhir", "entered-in-error-temp-46", dumps(base(t(46.0, status="entered-in-error"))),
           "an implausible temperature entered in error is ignored")
    benign("fhir", "cancelled-hr-10000", dumps(base(hr(10000, status="cancelled"))),
           "an implausible heart rate on a cancelled Observation is ignored")
    c = condition("fev", cc(SCT, "386661006"), verificationStatus=cc(
        "http://terminology.hl7.org/CodeSystem/condition-ver-status", "entered-in-error"))
    benign("fhir", "entered-in-error-condition", dumps(base(c)), "an entered-in-error Condition is ignored")
    c = condition("fev", cc(SCT, "386661006"), verificationStatus=cc(
        "http://terminology.hl7.org/CodeSystem/condition-ver-status", "refuted"))
    benign("fhir", "refuted-fever-and-high-temp", dumps(base(c, t(38.6))),
           "refuted fever Condition and 38.6 Cel: presence wins, a Warning, not a failure")
    gait_present = observation("g1", cc(SCT, "22325002"), valueBoolean=True)
    gait_absent = observation("g2", cc(SCT, "22325002"), valueBoolean=False)
    benign("fhir", "contradictory-observations", dumps(base(gait_present, gait_absent)),
           "gait abnormality documented both present and absent")
    for slug, v, u in (("temp-25", 25, "Cel"), ("temp-45", 45, "Cel"), ("temp-degf-100-4", 100.4, "[degF]"),
                       ("temp-int-37", 37, "Cel"), ("temp-exp-3-82e1", "@3.82e1", "Cel"),
                       ("temp-many-decimals", "@38.00000000000000000001", "Cel")):
        text = dumps(base(t("@@V@@" if isinstance(v, str) else v, unit=u)))
        if isinstance(v, str):
            text = text.replace('"@@V@@"', v[1:])
        benign("fhir", slug, text, f"plausible temperature {v if not isinstance(v, str) else v[1:]} {u}")
    for slug, v, u in (("hr-20", 20, "/min"), ("hr-300", 300, "/min"), ("hr-beats", 80, "{beats}/min")):
        benign("fhir", slug, dumps(base(hr(v, u))), f"plausible heart rate {v} {u}")
    a = t(38.5, rid="a", hasMember=[{"reference": "Observation/b"}])
    b = hr(110, rid="b", hasMember=[{"reference": "Observation/a"}])
    benign("fhir", "circular-members-resolved", dumps(base(a, b)),
           "Observations member of each other, all targets present")
    s = t(37.5, rid="s", derivedFrom=[{"reference": "Observation/s"}])
    benign("fhir", "self-derived", dumps(base(s)), "Observation derived from itself, patient present")
    dangle = t(37.5, rid="d", derivedFrom=[{"reference": "Observation/nowhere"}], encounter={"reference": "Encounter/x"})
    benign("fhir", "dangling-non-subject-reference", dumps(base(dangle)),
           "derivedFrom/encounter point at resources not in the bundle (not the subject)")
    bb = {"resourceType": "Bundle", "type": "collection", "entry": [
        {"fullUrl": "urn:uuid:bbbbbbbb-0000-4000-8000-000000000001", "resource": patient()},
        {"fullUrl": "urn:uuid:bbbbbbbb-0000-4000-8000-000000000002",
         "resource": dict(back_pain(), subject={"reference": "urn:uuid:bbbbbbbb-0000-4000-8000-000000000001"})}]}
    benign("fhir", "urn-uuid-references", dumps(bb), "subject given as the Patient's urn:uuid fullUrl")
    c = back_pain()
    del c["subject"]
    benign("fhir", "condition-without-subject", dumps(bundle(patient(), c)), "a Condition without subject")
    c = back_pain()
    del c["code"]
    benign("fhir", "condition-without-code", dumps(base(dict(c, id="nocode"))), "a Condition without a code")
    benign("fhir", "mass-back-site", dumps(bundle(patient(), back_pain(), condition(
        "mass", cc(SCT, "443607001"), bodySite=[cc(SCT, "77568009", "Back")]))),
           "mass with a Back site: Warning only")
    rep = {"resourceType": "DiagnosticReport", "id": "mri", "status": "final", "code": cc(LOINC, "24967-2"),
           "subject": dict(PREF), "conclusionCode": [cc(SCT, "123456789")]}
    benign("fhir", "report-unmatched-conclusion", dumps(base(rep)), "final MRI with unmatched conclusion: Warning")
    rep = dict(rep, status="preliminary", conclusionCode=[cc(SCT, "94602001")])
    benign("fhir", "report-preliminary", dumps(base(rep)), "preliminary DiagnosticReport is not a result")
    benign("fhir", "crlf-and-tabs", json.dumps(base(t(37.0)), indent="\t").replace("\n", "\r\n") + "\r\n",
           "CRLF line endings and tab indentation")
    benign("fhir", "minified", json.dumps(base(t(37.0)), separators=(",", ":")), "no whitespace at all")
    benign("fhir", "ascii-escaped", json.dumps(base(condition("u", {"coding": [
        {"system": SCT, "code": "279039007", "display": "R\u00fcckenschmerz \u2603"}]})), ensure_ascii=True),
           "non-ASCII written as \\u escapes")
    obs = [observation(f"o{i}", cc("http://example.org/cs", f"c{i}"), valueString="v" * 50) for i in range(2000)]
    benign("fhir", "two-thousand-unrelated", dumps(base(*obs)), "2000 unrelated Observations")
    ext = {"url": "http://example.org/x", "extension": [{"url": "y", "valueString": "z"}] * 3}
    benign("fhir", "extensions-and-unknown-fields", dumps(base(dict(back_pain("p2"), extension=[ext],
                                                                  _code={"id": "x"}, weird=True))),
           "extensions, primitive extensions and unknown fields")
    pn = patient()
    pn["identifier"] = []
    benign("fhir", "patient-without-identifier", dumps(bundle(pn, back_pain())),
           "Patient without identifier: its id names it")
    pm = patient()
    pm["identifier"] = [{"system": "x", "value": f"ID{i}"} for i in range(500)]
    benign("fhir", "patient-many-identifiers", dumps(bundle(pm, back_pain())), "500 identifiers")
    flag = {"resourceType": "Flag", "id": "mri", "status": "active", "code": cc(LOCAL, "mri-contraindicated"),
            "subject": dict(PREF)}
    benign("fhir", "flag-mri-contraindicated", dumps(base(flag)), "an MRI contraindication Flag")
    neg = observation("night", cc(LOCAL, "night-pain"), interpretation=[cc(
        "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation", "NEG")])
    benign("fhir", "interpretation-neg", dumps(base(neg)), "documented absent by interpretation NEG")
    res = condition("fev", cc(SCT, "386661006"), clinicalStatus=cc(
        "http://terminology.hl7.org/CodeSystem/condition-clinical", "resolved"))
    benign("fhir", "resolved-fever", dumps(base(res)), "a resolved fever is not present now")
    dup = {"coding": [{"system": SCT, "code": "279039007"}] * 50}
    benign("fhir", "duplicate-codings", dumps(bundle(patient(), condition("pain", dup))), "50 identical codings")
    benign("fhir", "text-div-script", dumps(base(dict(back_pain("s"), text={
        "status": "generated", "div": '<div xmlns="http://www.w3.org/1999/xhtml"><script>alert(1)</script></div>'}))),
           "script markup inside a narrative div")
    benign("fhir", "sql-and-shell-in-strings", dumps(base(condition("q", {"text": "'; DROP TABLE x; -- $(rm -rf /)",
                                                                          "coding": [{"system": SCT,
                                                                                      "code": "279039007"}]}))),
           "injection-looking text")


# ======================================================================
# RDF patient graphs
# ======================================================================

GKG = "https://w3id.org/guideline-kg/vocab#"
CON = "https://w3id.org/guideline-kg/concept/"
LNC = "https://loinc.org/rdf/"
XSD = "http://www.w3.org/2001/XMLSchema#"
RDFT = "http://www.w3.org/1999/02/22-rdf-syntax-ns#type"
EX = "http://example.org/hostile/"
PREFIXES = {"gkg": GKG, "c": CON, "loinc": LNC, "xsd": XSD, "ex": EX}


class I(str):  # noqa: E742  an IRI
    pass


class L:  # a literal
    def __init__(self, lex: str, dt: str | None = None, lang: str | None = None) -> None:
        self.lex, self.dt, self.lang = lex, dt, lang


def dec(v: str) -> L:
    return L(v, XSD + "decimal")


Triple = tuple[I, I, object]


def patient_graph(temp_value: object = None, hr_value: object = None) -> list[Triple]:
    p = I(EX + "p")
    g: list[Triple] = [
        (p, I(RDFT), I(GKG + "Patient")),
        (p, I(GKG + "identifier"), L("HOSTILE-RDF-1")),
        (p, I(GKG + "hasFinding"), I(EX + "f1")),
        (I(EX + "f1"), I(RDFT), I(GKG + "PatientFinding")),
        (I(EX + "f1"), I(GKG + "concept"), I(CON + "back-pain")),
        (I(EX + "f1"), I(GKG + "status"), I(GKG + "present")),
        (p, I(GKG + "hasFinding"), I(EX + "f2")),
        (I(EX + "f2"), I(RDFT), I(GKG + "PatientFinding")),
        (I(EX + "f2"), I(GKG + "concept"), I(CON + "palpable-lumbar-mass")),
        (I(EX + "f2"), I(GKG + "status"), I(GKG + "present")),
        (p, I(GKG + "hasVitalSign"), I(EX + "v1")),
        (I(EX + "v1"), I(RDFT), I(GKG + "VitalSign")),
        (I(EX + "v1"), I(GKG + "measurement"), I(LNC + "8310-5")),
        (I(EX + "v1"), I(GKG + "value"), temp_value if temp_value is not None else dec("37.2")),
        (I(EX + "v1"), I(GKG + "unit"), L("Cel")),
        (p, I(GKG + "hasVitalSign"), I(EX + "v2")),
        (I(EX + "v2"), I(RDFT), I(GKG + "VitalSign")),
        (I(EX + "v2"), I(GKG + "measurement"), I(LNC + "8867-4")),
        (I(EX + "v2"), I(GKG + "value"), hr_value if hr_value is not None else L("82", XSD + "integer")),
        (I(EX + "v2"), I(GKG + "unit"), L("/min")),
    ]
    return g


def _curie(iri: str) -> str:
    if iri == RDFT:
        return "a"
    for pfx, ns in PREFIXES.items():
        if iri.startswith(ns):
            local = iri[len(ns):]
            if local and all(ch.isalnum() or ch in "-_" for ch in local) and not local[0] == "-":
                return f"{pfx}:{local}"
    return f"<{iri}>"


def _esc(s: str) -> str:
    out = []
    for ch in s:
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20 or ch == "\x7f":
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return "".join(out)


def _lit_ttl(lit: L, curie: bool) -> str:
    text = f'"{_esc(lit.lex)}"'
    if lit.lang:
        return text + "@" + lit.lang
    if lit.dt and lit.dt != XSD + "string":
        return text + "^^" + (_curie(lit.dt) if curie else f"<{lit.dt}>")
    if lit.dt == XSD + "string":
        return text + "^^" + (_curie(lit.dt) if curie else f"<{lit.dt}>")
    return text


def to_turtle(g: list[Triple]) -> str:
    lines = [f"@prefix {p}: <{ns}> ." for p, ns in PREFIXES.items()]
    lines.append("")
    for s, p, o in g:
        obj = _curie(o) if isinstance(o, I) else _lit_ttl(o, True)  # type: ignore[arg-type]
        lines.append(f"{_curie(s)} {_curie(p)} {obj} .")
    return "\n".join(lines) + "\n"


def to_ntriples(g: list[Triple]) -> str:
    lines = []
    for s, p, o in g:
        obj = f"<{o}>" if isinstance(o, I) else _lit_ttl(o, False)  # type: ignore[arg-type]
        lines.append(f"<{s}> <{p}> {obj} .")
    return "\n".join(lines) + "\n"


def _jid(iri: str) -> str:
    """A compact IRI where a prefix fits, else the full IRI (JSON-LD has no <...> form)."""
    text = _curie(iri)
    return iri if text.startswith("<") or text == "a" else text


def to_jsonld(g: list[Triple], context: object = None) -> str:
    nodes: dict[str, dict] = {}
    for s, p, o in g:
        node = nodes.setdefault(s, {"@id": _jid(s)})
        if p == RDFT:
            node.setdefault("@type", []).append(_jid(o))
            continue
        key = _jid(p)
        if isinstance(o, I):
            val: object = {"@id": _jid(o)}
        else:
            lit: L = o  # type: ignore[assignment]
            if lit.lang:
                val = {"@value": lit.lex, "@language": lit.lang}
            elif lit.dt:
                val = {"@value": lit.lex, "@type": _jid(lit.dt)}
            else:
                val = lit.lex
        node.setdefault(key, []).append(val)
    ctx = context if context is not None else dict(PREFIXES)
    return dumps({"@context": ctx, "@graph": list(nodes.values())})


RDF_KINDS = (("turtle", to_turtle), ("jsonld", to_jsonld), ("ntriples", to_ntriples))


def without(g: list[Triple], s: str, p: str) -> list[Triple]:
    return [t for t in g if not (t[0] == EX + s and t[1] == p)]


def replace(g: list[Triple], s: str, p: str, *objs: object) -> list[Triple]:
    return without(g, s, p) + [(I(EX + s), I(p), o) for o in objs]


def gen_rdf_nonconforming() -> None:
    N = "nonconforming"
    G = patient_graph
    muts: list[tuple[str, list[Triple], str]] = []
    muts.append(("finding-no-concept", without(G(), "f1", GKG + "concept"), "finding without gkg:concept"))
    muts.append(("finding-unknown-concept", replace(G(), "f1", GKG + "concept", I(CON + "no-such-key")),
                 "finding whose concept c:no-such-key is not a known concept"))
    muts.append(("finding-concept-case", replace(G(), "f1", GKG + "concept", I(CON + "Back-Pain")),
                 "concept IRI with different case: not a known concept"))
    muts.append(("finding-concept-vocab-term", replace(G(), "f1", GKG + "concept", I(GKG + "Patient")),
                 "concept is gkg:Patient, which has no gkg:key"))
    muts.append(("finding-concept-literal", replace(G(), "f1", GKG + "concept", L("back-pain")),
                 "concept given as a string literal, not an IRI"))
    muts.append(("finding-two-concepts", replace(G(), "f1", GKG + "concept", I(CON + "back-pain"), I(CON + "fever")),
                 "finding with two concepts (max 1)"))
    muts.append(("finding-no-status", without(G(), "f1", GKG + "status"), "finding without gkg:status"))
    muts.append(("finding-status-unknown", replace(G(), "f1", GKG + "status", I(GKG + "maybe")),
                 "status gkg:maybe is neither present nor absent"))
    muts.append(("finding-status-literal", replace(G(), "f1", GKG + "status", L("present")),
                 "status given as the string 'present'"))
    muts.append(("finding-two-statuses", replace(G(), "f1", GKG + "status", I(GKG + "present"), I(GKG + "absent")),
                 "finding both present and absent"))
    muts.append(("finding-bad-origin", G() + [(I(EX + "f1"), I(GKG + "origin"), I(GKG + "imagined"))],
                 "origin gkg:imagined is not asserted/derived"))
    muts.append(("finding-untyped-no-concept",
                 [t for t in G() if t[0] != EX + "f2"] + [(I(EX + "f2"), I(GKG + "status"), I(GKG + "present"))],
                 "an untyped gkg:hasFinding object without a concept"))
    muts.append(("finding-orphan-no-concept", G() + [(I(EX + "f9"), I(RDFT), I(GKG + "PatientFinding")),
                                                      (I(EX + "f9"), I(GKG + "status"), I(GKG + "present"))],
                 "a typed PatientFinding not linked to the patient, without a concept"))
    muts.append(("vital-no-value", without(G(), "v1", GKG + "value"), "vital sign without a value"))
    muts.append(("vital-no-unit", without(G(), "v1", GKG + "unit"), "vital sign without a unit"))
    muts.append(("vital-hr-no-unit", without(G(), "v2", GKG + "unit"), "heart rate without a unit"))
    muts.append(("vital-no-measurement", without(G(), "v1", GKG + "measurement"), "vital sign without measurement"))
    muts.append(("vital-unknown-measurement", replace(G(), "v1", GKG + "measurement", I(LNC + "0000-0")),
                 "measurement LOINC 0000-0 is not a known measurement"))
    muts.append(("vital-plain-string", G(temp_value=L("38.2")), "value is the plain string \"38.2\""))
    muts.append(("vital-typed-string", G(temp_value=L("38.2", XSD + "string")), "value is \"38.2\"^^xsd:string"))
    muts.append(("vital-lang-string", G(temp_value=L("38.2", lang="en")), "value is the language string \"38.2\"@en"))
    muts.append(("vital-ill-typed-decimal", G(temp_value=L("38,2", XSD + "decimal")),
                 "\"38,2\"^^xsd:decimal is ill-typed"))
    muts.append(("vital-ill-typed-word", G(temp_value=L("hot", XSD + "decimal")), "\"hot\"^^xsd:decimal is ill-typed"))
    muts.append(("vital-value-iri", G(temp_value=I(EX + "thirty-eight")), "value is an IRI"))
    muts.append(("vital-value-date", G(temp_value=L("2025-03-10", XSD + "date")), "value is an xsd:date"))
    muts.append(("vital-two-values", replace(G(), "v1", GKG + "value", dec("37.2"), dec("38.9")),
                 "vital sign with two values"))
    muts.append(("vital-two-units", replace(G(), "v1", GKG + "unit", L("Cel"), L("[degF]")),
                 "vital sign with two units"))
    muts.append(("vital-unit-degf", replace(G(temp_value=dec("100.4")), "v1", GKG + "unit", L("[degF]")),
                 "temperature given in [degF] in a patient graph: must be in Cel"))
    muts.append(("vital-unit-kelvin", replace(G(temp_value=dec("310.15")), "v1", GKG + "unit", L("K")),
                 "temperature in K"))
    muts.append(("vital-hr-unit-cel", replace(G(), "v2", GKG + "unit", L("Cel")), "heart rate in Cel"))
    muts.append(("vital-unit-iri", replace(G(), "v1", GKG + "unit", I("http://unitsofmeasure.org/Cel")),
                 "unit is an IRI, not a string"))
    muts.append(("vital-unit-lang", replace(G(), "v1", GKG + "unit", L("Cel", lang="en")),
                 "unit is a language-tagged string"))
    muts.append(("vital-unit-zero-width", replace(G(), "v1", GKG + "unit", L("Cel\u200b")),
                 "unit 'Cel' followed by a zero-width space"))
    # a unit the message template names ({?value}): re.sub-style filling read its backslashes as escapes
    for slug, unit in (("group-reference", "Cel\\1"), ("named-group", "Cel\\g<0>"), ("escape", "a\\b"),
                       ("double", "x\\\\y"), ("unknown-escape", "\\q"), ("trailing", "Cel\\"),
                       ("placeholder", "{?label}")):
        muts.append((f"vital-unit-backslash-{slug}" if "\\" in unit else f"vital-unit-{slug}",
                     replace(G(), "v1", GKG + "unit", L(unit)),
                     f"temperature unit {unit!r}: named as given in the Violation"))
    for slug, lex, dt in (("46", "46.0", "decimal"), ("20", "20", "integer"), ("minus-5", "-5.0", "decimal"),
                          ("45-001", "45.001", "decimal"), ("1e308", "1e308", "double"),
                          ("inf", "INF", "double"), ("minus-inf", "-INF", "double"), ("0", "0", "integer")):
        muts.append((f"temp-out-of-range-{slug}", G(temp_value=L(lex, XSD + dt)),
                     f"body temperature {lex} Cel outside 25-45"))
    for slug, lex, dt in (("0", "0", "integer"), ("301", "301", "integer"), ("10000", "10000", "integer"),
                          ("19-5", "19.5", "decimal"), ("minus-1", "-1", "integer")):
        muts.append((f"hr-out-of-range-{slug}", G(hr_value=L(lex, XSD + dt)),
                     f"heart rate {lex} /min outside 20-300"))
    img = [(I(EX + "p"), I(GKG + "hasImagingResult"), I(EX + "r1")),
           (I(EX + "r1"), I(RDFT), I(GKG + "ImagingResult"))]
    muts.append(("imaging-no-study", G() + img + [(I(EX + "r1"), I(GKG + "shows"), I(EX + "s1")),
                                                   (I(EX + "s1"), I(GKG + "concept"), I(CON + "spinal-metastasis"))],
                 "imaging result without a study"))
    muts.append(("imaging-unknown-study", G() + img + [(I(EX + "r1"), I(GKG + "study"), I(CON + "no-such-key"))],
                 "imaging result whose study is not a concept"))
    muts.append(("imaging-conclusion-no-concept",
                 G() + img + [(I(EX + "r1"), I(GKG + "study"), I(CON + "mri-lumbar-wo-w-contrast")),
                              (I(EX + "r1"), I(GKG + "shows"), I(EX + "s1"))],
                 "imaging conclusion node without a concept"))
    muts.append(("imaging-conclusion-unknown",
                 G() + img + [(I(EX + "r1"), I(GKG + "study"), I(CON + "mri-lumbar-wo-w-contrast")),
                              (I(EX + "r1"), I(GKG + "shows"), I(EX + "s1")),
                              (I(EX + "s1"), I(GKG + "concept"), I(CON + "no-such-key"))],
                 "imaging conclusion with an unknown concept"))
    # refused at once (contract: input hygiene): ill-typed literals, measured values that are not finite
    refused_at_once = {"vital-ill-typed-decimal", "vital-ill-typed-word", "temp-out-of-range-inf",
                       "temp-out-of-range-minus-inf"}
    for slug, g, why in muts:
        for kind, ser in RDF_KINDS:
            case(kind, "refused" if slug in refused_at_once else N, slug, ser(g), why)
    # the same, with unicode around: still a Violation
    g = without(G(), "f1", GKG + "concept") + [(I(EX + "f1"), I(GKG + "note"), L("\u202e\u200b\u0000 odd"))]
    case("turtle", N, "finding-no-concept-unicode-note", to_turtle(g), "finding without concept, with a NUL/RTL note")


def gen_rdf_refused() -> None:
    R = "refused"
    good_ttl = to_turtle(patient_graph())
    good_nt = to_ntriples(patient_graph())
    good_jsonld = to_jsonld(patient_graph())
    # ---------------- Turtle ----------------
    case("turtle", R, "empty", "", "empty file")
    case("turtle", R, "whitespace-only", "\n \t\n", "only whitespace")
    case("turtle", R, "comments-only", "# a patient\n# nothing else\n", "only comments: no patient node")
    case("turtle", R, "prefixes-only", "\n".join(good_ttl.splitlines()[:5]) + "\n", "only prefixes: no patient")
    case("turtle", R, "truncated", good_ttl[: len(good_ttl) * 2 // 3], "truncated mid-statement")
    case("turtle", R, "missing-final-dot", good_ttl.rstrip()[:-1], "last statement has no final dot")
    case("turtle", R, "undefined-prefix", good_ttl.replace("@prefix gkg:", "@prefix gkgx:", 1),
         "gkg: used but never declared")
    case("turtle", R, "prefix-no-dot", good_ttl.replace(f"<{GKG}> .", f"<{GKG}>", 1), "@prefix without dot")
    case("turtle", R, "iri-with-space", good_ttl.replace("ex:p a", "<http://example.org/hos tile/p> a", 1),
         "IRI with a space")
    case("turtle", R, "iri-with-angle", good_ttl.replace("ex:p a", "<http://example.org/<p>> a", 1),
         "IRI containing '<'")
    case("turtle", R, "iri-with-quote", good_ttl.replace("ex:p a", '<http://example.org/"p"> a', 1),
         "IRI containing '\"'")
    case("turtle", R, "iri-unterminated", good_ttl.replace("ex:p a", "<http://example.org/p a", 1),
         "IRI never closed")
    case("turtle", R, "bad-escape", good_ttl.replace('"HOSTILE-RDF-1"', '"HOSTILE\\q"', 1), "string escape \\q")
    case("turtle", R, "unterminated-string", good_ttl.replace('"HOSTILE-RDF-1"', '"HOSTILE-RDF-1', 1),
         "string literal never closed")
    case("turtle", R, "unterminated-long-string", good_ttl.replace('"HOSTILE-RDF-1"', '"""HOSTILE', 1),
         "long string never closed")
    case("turtle", R, "bad-language-tag", good_ttl.replace('"HOSTILE-RDF-1"', '"x"@123', 1), "language tag @123")
    case("turtle", R, "bad-unicode-escape", good_ttl.replace('"HOSTILE-RDF-1"', '"\\uZZZZ"', 1), "escape \\uZZZZ")
    case("turtle", R, "latin1-byte", good_ttl.encode("utf-8").replace(b"HOSTILE", b"HOST\xe9LE", 1),
         "a Latin-1 byte: not UTF-8")
    case("turtle", R, "raw-nul", good_ttl.replace("ex:p a", "ex:p\x00 a", 1), "raw NUL byte between terms")
    case("turtle", R, "n3-formula", good_ttl + "{ ex:p gkg:x ex:y } => { ex:p gkg:z ex:w } .\n",
         "N3 formulas/implication are not Turtle")
    case("turtle", R, "n3-variable", good_ttl + "?x gkg:concept c:fever .\n", "N3 variable in Turtle")
    case("turtle", R, "rdfxml-in-ttl", RDFXML_PATIENT, "RDF/XML content in a .ttl file")
    case("turtle", R, "jsonld-in-ttl", good_jsonld, "JSON-LD content in a .ttl file")
    case("turtle", R, "mixed-turtle-xml", good_ttl + "\n<rdf:RDF xmlns:rdf=\"x\"/>\n", "Turtle followed by XML")
    case("turtle", R, "sparql-in-ttl", "SELECT * WHERE { ?s ?p ?o }\n", "a SPARQL query, not Turtle")
    case("turtle", R, "doctype", '<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>\n' + good_ttl,
         "an XML DOCTYPE with an external entity before Turtle")
    case("turtle", R, "binary", bytes(random.Random(7).randrange(256) for _ in range(2048)), "random bytes")
    case("turtle", R, "literal-subject", good_ttl + '"lit" gkg:concept c:fever .\n', "a literal as subject")
    case("turtle", R, "unbalanced-brackets", good_ttl + "ex:p gkg:hasFinding [ gkg:concept c:fever .\n",
         "blank node bracket never closed")
    case("turtle", R, "unbalanced-parens", good_ttl + "ex:p gkg:list ( c:fever c:fever .\n",
         "collection never closed")
    # no patient node
    no_pat = [t for t in patient_graph() if t[2] != GKG + "Patient"]
    case("turtle", R, "no-patient-type", to_turtle(no_pat), "findings but no node typed gkg:Patient")
    case("turtle", R, "patient-type-lowercase",
         to_turtle([(s, p, I(GKG + "patient") if o == GKG + "Patient" else o) for s, p, o in patient_graph()]),
         "typed gkg:patient (lowercase), not gkg:Patient")
    case("turtle", R, "patient-type-fhir",
         to_turtle([(s, p, I("http://hl7.org/fhir/Patient") if o == GKG + "Patient" else o)
                    for s, p, o in patient_graph()]), "typed fhir:Patient, not gkg:Patient")
    case("turtle", R, "patient-type-as-string",
         to_turtle([(s, p, L("gkg:Patient") if o == GKG + "Patient" else o) for s, p, o in patient_graph()]),
         "rdf:type given as the string \"gkg:Patient\"")
    case("turtle", R, "wrong-gkg-namespace",
         good_ttl.replace(f"@prefix gkg: <{GKG}>", "@prefix gkg: <https://w3id.org/guideline-kg/vocab/>", 1),
         "gkg: bound to .../vocab/ (no #): no gkg:Patient node")
    case("turtle", R, "patient-type-zero-width",
         good_ttl.replace("ex:p a gkg:Patient", f"ex:p a <{GKG}Pati\u200bent>", 1),
         "type IRI with a zero-width space: no gkg:Patient")
    case("turtle", R, "only-unrelated-triples", "@prefix ex: <http://example.org/> .\nex:a ex:b ex:c .\n",
         "valid Turtle without any patient")
    # ---------------- N-Triples ----------------
    case("ntriples", R, "empty", "", "empty file")
    case("ntriples", R, "comments-only", "# nothing\n", "only a comment")
    case("ntriples", R, "prefixed-names", good_ttl.split("\n\n", 1)[1], "prefixed names are not N-Triples")
    case("ntriples", R, "turtle-with-prefixes", good_ttl, "Turtle @prefix in a .nt file")
    case("ntriples", R, "missing-dot", good_nt.replace(" .\n", "\n", 1), "a triple without its dot")
    case("ntriples", R, "relative-iri", good_nt.replace(f"<{EX}p>", "<p>", 1), "relative IRI <p>")
    case("ntriples", R, "truncated", good_nt[: len(good_nt) // 2], "truncated mid-line")
    case("ntriples", R, "bad-escape", good_nt.replace('"HOSTILE-RDF-1"', '"HOSTILE\\q"', 1), "escape \\q")
    case("ntriples", R, "a-keyword", good_nt.replace(f"<{RDFT}>", "a", 1), "Turtle 'a' keyword in N-Triples")
    case("ntriples", R, "latin1-byte", good_nt.encode("utf-8").replace(b"HOSTILE", b"HOST\xe9LE", 1),
         "a Latin-1 byte: not UTF-8")
    case("ntriples", R, "no-patient", to_ntriples(no_pat), "valid N-Triples without a gkg:Patient")
    case("ntriples", R, "four-terms", good_nt.replace(" .\n", f" <{EX}g> .\n", 1), "an N-Quads line")
    # ---------------- JSON-LD ----------------
    g = patient_graph()
    case("jsonld", R, "remote-context-loopback", to_jsonld(g, "http://127.0.0.1:9/ctx"),
         "remote @context http://127.0.0.1:9/ctx: refused, never fetched")
    case("jsonld", R, "remote-context-file", to_jsonld(g, "file:///etc/passwd"),
         "@context file:///etc/passwd: refused, never read")
    case("jsonld", R, "remote-context-https", to_jsonld(g, "https://w3id.org/guideline-kg/context.jsonld"),
         "remote https @context: refused, never fetched")
    case("jsonld", R, "remote-context-metadata", to_jsonld(g, "http://169.254.169.254/latest/meta-data/"),
         "cloud metadata address as @context")
    case("jsonld", R, "remote-context-relative", to_jsonld(g, "../../../../etc/passwd"),
         "relative @context (resolves to a file)")
    case("jsonld", R, "remote-context-in-list", to_jsonld(g, [dict(PREFIXES), "http://127.0.0.1:9/ctx"]),
         "inline context followed by a remote one")
    case("jsonld", R, "context-import", to_jsonld(g, dict(PREFIXES, **{"@import": "http://127.0.0.1:9/ctx"})),
         "@import of a remote context (JSON-LD 1.1)")
    case("jsonld", R, "context-import-file", to_jsonld(g, dict(PREFIXES, **{"@version": 1.1,
                                                                            "@import": "file:///etc/passwd"})),
         "@import of file:///etc/passwd")
    scoped = dict(PREFIXES, **{"gkg:hasFinding": {"@context": "http://127.0.0.1:9/scoped"}})
    case("jsonld", R, "scoped-remote-context", to_jsonld(g, scoped), "a property-scoped remote @context")
    nested = json.loads(good_jsonld)
    nested["@graph"][0]["@context"] = "file:///etc/passwd"
    case("jsonld", R, "node-level-remote-context", dumps(nested), "a remote @context inside a node object")
    case("jsonld", R, "empty", "", "empty file")
    case("jsonld", R, "truncated", good_jsonld[: len(good_jsonld) // 2], "truncated JSON")
    case("jsonld", R, "not-json", good_ttl, "Turtle in a .jsonld file")
    case("jsonld", R, "empty-object", "{}", "an empty object: no patient node")
    case("jsonld", R, "empty-array", "[]", "an empty array: no patient node")
    case("jsonld", R, "array-of-strings", '["gkg:Patient"]', "an array of strings")
    case("jsonld", R, "json-null", "null", "JSON null")
    case("jsonld", R, "json-number", "42", "JSON number")
    case("jsonld", R, "no-patient", to_jsonld(no_pat), "a graph without a gkg:Patient node")
    nop = json.loads(good_jsonld)
    nop["@context"] = {"ex": EX}
    case("jsonld", R, "undeclared-gkg-prefix", dumps(nop), "gkg: not in the context: no gkg:Patient IRI")
    nop = json.loads(good_jsonld)
    nop["@graph"][0]["@type"] = ["Patient"]
    case("jsonld", R, "type-without-vocab", dumps(nop), "@type 'Patient' with no @vocab: not gkg:Patient")
    case("jsonld", R, "deep-nesting-10000", '{"@context": {}, "@graph": ' + "[" * 10000 + "]" * 10000 + "}",
         "nested 10,000 levels deep")
    case("jsonld", R, "nan-literal", good_jsonld.replace('"37.2"', "NaN", 1), "NaN is not JSON")
    case("jsonld", R, "latin1-byte", good_jsonld.encode("utf-8").replace(b"HOSTILE", b"HOST\xe9LE", 1),
         "a Latin-1 byte: not UTF-8")
    bad = json.loads(good_jsonld)
    bad["@graph"][0]["@id"] = 42
    case("jsonld", R, "id-number", dumps(bad), "@id is a number: invalid JSON-LD")
    bad = json.loads(good_jsonld)
    bad["@context"] = 42
    case("jsonld", R, "context-number", dumps(bad), "@context is a number: invalid JSON-LD")
    # ---------------- RDF/XML (never accepted: entity expansion) ----------------
    case("rdfxml", R, "billion-laughs", BILLION_LAUGHS, "entity expansion bomb (DOCTYPE/ENTITY)")
    case("rdfxml", R, "xxe-file", XXE.format(sys='SYSTEM "file:///etc/passwd"'),
         "external entity file:///etc/passwd")
    case("rdfxml", R, "xxe-http", XXE.format(sys='SYSTEM "http://127.0.0.1:9/x"'), "external entity over http")
    case("rdfxml", R, "xxe-parameter",
         '<?xml version="1.0"?>\n<!DOCTYPE r [<!ENTITY % p SYSTEM "http://127.0.0.1:9/dtd"> %p;]>\n'
         + RDFXML_PATIENT.split("\n", 1)[1], "external parameter entity")
    case("rdfxml", R, "external-dtd",
         '<?xml version="1.0"?>\n<!DOCTYPE rdf:RDF SYSTEM "file:///etc/passwd">\n' + RDFXML_PATIENT.split("\n", 1)[1],
         "external DTD file:///etc/passwd")
    case("rdfxml", R, "quadratic-blowup",
         '<?xml version="1.0"?>\n<!DOCTYPE r [<!ENTITY a "' + "A" * 20000 + '">]>\n'
         + RDFXML_PATIENT.split("\n", 1)[1].replace("HOSTILE-RDF-1", "&a;" * 2000), "quadratic entity blowup")
    case("rdfxml", R, "xinclude", RDFXML_PATIENT.replace(
        "<gkg:identifier>", '<gkg:identifier xmlns:xi="http://www.w3.org/2001/XInclude">'
        '<xi:include href="file:///etc/passwd" parse="text"/>', 1).replace("HOSTILE-RDF-1</gkg", "</gkg", 1),
         "XInclude of file:///etc/passwd")
    case("rdfxml", R, "valid-patient", RDFXML_PATIENT,
         "a well-formed RDF/XML patient: RDF/XML is not an accepted patient syntax (Turtle, JSON-LD)")
    case("rdfxml", R, "truncated", RDFXML_PATIENT[: len(RDFXML_PATIENT) // 2], "truncated XML")
    case("rdfxml", R, "empty", "", "empty file")
    case("rdfxml", R, "not-xml", good_ttl, "Turtle in an .rdf file")
    case("rdfxml", R, "no-rdf-root", '<?xml version="1.0"?>\n<patient id="p"/>\n', "XML without rdf:RDF")


RDFXML_PATIENT = f"""<?xml version="1.0" encoding="utf-8"?>
<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns:gkg="{GKG}">
  <gkg:Patient rdf:about="{EX}p">
    <gkg:identifier>HOSTILE-RDF-1</gkg:identifier>
    <gkg:hasFinding>
      <gkg:PatientFinding rdf:about="{EX}f1">
        <gkg:concept rdf:resource="{CON}back-pain"/>
        <gkg:status rdf:resource="{GKG}present"/>
      </gkg:PatientFinding>
    </gkg:hasFinding>
  </gkg:Patient>
</rdf:RDF>
"""

BILLION_LAUGHS = ('<?xml version="1.0"?>\n<!DOCTYPE rdf:RDF [\n <!ENTITY lol "lol">\n'
                  + "".join(f' <!ENTITY lol{i} "' + (f"&lol{i - 1};" if i > 1 else "&lol;") * 10 + '">\n'
                            for i in range(1, 10))
                  + "]>\n" + RDFXML_PATIENT.split("\n", 1)[1].replace("HOSTILE-RDF-1", "&lol9;"))

XXE = ('<?xml version="1.0"?>\n<!DOCTYPE rdf:RDF [<!ENTITY xxe {sys}>]>\n'
       + RDFXML_PATIENT.split("\n", 1)[1].replace("HOSTILE-RDF-1", "&xxe;"))


def gen_rdf_benign() -> None:
    g = patient_graph()
    benign("turtle", "baseline", to_turtle(g), "a conforming patient graph")
    benign("jsonld", "baseline", to_jsonld(g), "a conforming patient graph, inline context")
    benign("ntriples", "baseline", to_ntriples(g), "a conforming patient graph in N-Triples")
    extra = g + [(I(EX + "p"), I(GKG + "nickname"), L("\u202eevil\u202c \u200b\u0000 \U0001F600")),
                 (I(EX + "p"), I(EX + "unknownProperty"), L("x" * 100000))]
    benign("turtle", "unicode-and-huge-literal", to_turtle(extra),
           "unknown properties with RTL/zero-width/NUL text and a 100 kB literal")
    benign("turtle", "crlf", to_turtle(g).replace("\n", "\r\n"), "CRLF line endings")
    benign("turtle", "file-iri-object", to_turtle(g + [(I(EX + "p"), I(EX + "sameAs"), I("file:///etc/passwd"))]),
           "a file: IRI as an object is just a name (never dereferenced)")
    benign("turtle", "boundary-values", to_turtle(patient_graph(dec("45.0"), L("20", XSD + "integer"))),
           "45.0 Cel and 20 /min are inside the ranges")
    benign("turtle", "contradictory-findings",
           to_turtle(g + [(I(EX + "p"), I(GKG + "hasFinding"), I(EX + "f3")),
                          (I(EX + "f3"), I(RDFT), I(GKG + "PatientFinding")),
                          (I(EX + "f3"), I(GKG + "concept"), I(CON + "back-pain")),
                          (I(EX + "f3"), I(GKG + "status"), I(GKG + "absent"))]),
           "back pain both present and absent")


# ======================================================================
# SPARQL (read-only endpoint)
# ======================================================================

Q_PROLOGUE = f"PREFIX gkg: <{GKG}>\nPREFIX c: <{CON}>\n"


def gen_sparql() -> None:
    R = "refused"
    sel = Q_PROLOGUE + "SELECT ?p WHERE { ?p a gkg:Patient }\n"
    qs = [
        ("service-loopback", Q_PROLOGUE + "SELECT * WHERE { SERVICE <http://127.0.0.1:9/> { ?s ?p ?o } }\n",
         "SERVICE to a loopback endpoint"),
        ("service-silent", Q_PROLOGUE + "SELECT * WHERE { SERVICE SILENT <http://127.0.0.1:9/> { ?s ?p ?o } }\n",
         "SERVICE SILENT"),
        ("service-variable", Q_PROLOGUE + "SELECT * WHERE { VALUES ?e { <http://127.0.0.1:9/> } "
         "SERVICE ?e { ?s ?p ?o } }\n", "SERVICE with a variable endpoint"),
        ("service-file", Q_PROLOGUE + "SELECT * WHERE { SERVICE <file:///etc/passwd> { ?s ?p ?o } }\n",
         "SERVICE with a file URL"),
        ("service-metadata", Q_PROLOGUE + "SELECT * WHERE { SERVICE <http://169.254.169.254/latest/meta-data/> "
         "{ ?s ?p ?o } }\n", "SERVICE to a cloud metadata address"),
        ("service-ipv6-loopback", Q_PROLOGUE + "SELECT * WHERE { SERVICE <http://[::1]:9/> { ?s ?p ?o } }\n",
         "SERVICE to IPv6 loopback"),
        ("service-nested-optional", Q_PROLOGUE + "SELECT * WHERE { ?p a gkg:Patient OPTIONAL { { SERVICE "
         "<http://localhost:9/> { ?p ?q ?r } } } }\n", "SERVICE hidden inside OPTIONAL"),
        ("service-in-exists", Q_PROLOGUE + "SELECT * WHERE { ?p a gkg:Patient FILTER EXISTS { SERVICE "
         "<http://127.0.0.1:9/> { ?p ?q ?r } } }\n", "SERVICE inside FILTER EXISTS"),
        ("service-in-subquery", Q_PROLOGUE + "SELECT * WHERE { { SELECT ?s WHERE { SERVICE <http://127.0.0.1:9/> "
         "{ ?s ?p ?o } } } }\n", "SERVICE inside a subquery"),
        ("service-lowercase", Q_PROLOGUE + "select * where { service <http://127.0.0.1:9/> { ?s ?p ?o } }\n",
         "lowercase service keyword"),
        ("from-loopback", Q_PROLOGUE + "SELECT * FROM <http://127.0.0.1:9/x> WHERE { ?s ?p ?o }\n",
         "FROM a loopback URL"),
        ("from-file", Q_PROLOGUE + "SELECT * FROM <file:///etc/passwd> WHERE { ?s ?p ?o }\n", "FROM file:///etc/passwd"),
        ("from-named-file", Q_PROLOGUE + "SELECT * FROM NAMED <file:///etc/shadow> WHERE { GRAPH ?g { ?s ?p ?o } }\n",
         "FROM NAMED file:///etc/shadow"),
        ("from-named-loopback", Q_PROLOGUE + "SELECT * FROM NAMED <http://127.0.0.1:9/x> WHERE "
         "{ GRAPH ?g { ?s ?p ?o } }\n", "FROM NAMED loopback"),
        ("from-proc", Q_PROLOGUE + "SELECT * FROM <file:///proc/self/environ> WHERE { ?s ?p ?o }\n",
         "FROM /proc/self/environ"),
        ("construct-from", Q_PROLOGUE + "CONSTRUCT { ?s ?p ?o } FROM <http://127.0.0.1:9/x> WHERE { ?s ?p ?o }\n",
         "CONSTRUCT with FROM"),
        ("ask-from", Q_PROLOGUE + "ASK FROM <file:///etc/hosts> { ?s ?p ?o }\n", "ASK with FROM"),
        ("describe-from", Q_PROLOGUE + "DESCRIBE ?s FROM <http://127.0.0.1:9/x> WHERE { ?s ?p ?o }\n",
         "DESCRIBE with FROM"),
        ("load-file", "LOAD <file:///etc/passwd>\n", "LOAD a file"),
        ("load-silent-into", "LOAD SILENT <http://127.0.0.1:9/x> INTO GRAPH <urn:g>\n", "LOAD SILENT INTO GRAPH"),
        ("insert-data", Q_PROLOGUE + "INSERT DATA { <urn:x> gkg:concept c:fever }\n", "INSERT DATA"),
        ("insert-data-graph", Q_PROLOGUE + "INSERT DATA { GRAPH <urn:g> { <urn:x> gkg:concept c:fever } }\n",
         "INSERT DATA into a graph"),
        ("insert-where", Q_PROLOGUE + "INSERT { ?p gkg:hasFinding <urn:f> } WHERE { ?p a gkg:Patient }\n",
         "INSERT ... WHERE"),
        ("delete-data", Q_PROLOGUE + "DELETE DATA { <urn:x> gkg:concept c:fever }\n", "DELETE DATA"),
        ("delete-where", Q_PROLOGUE + "DELETE WHERE { ?s ?p ?o }\n", "DELETE WHERE"),
        ("delete-insert-with", Q_PROLOGUE + "WITH <urn:g> DELETE { ?s ?p ?o } INSERT { ?s ?p 1 } "
         "WHERE { ?s ?p ?o }\n", "WITH ... DELETE ... INSERT"),
        ("clear-all", "CLEAR ALL\n", "CLEAR ALL"),
        ("clear-default", "CLEAR DEFAULT\n", "CLEAR DEFAULT"),
        ("clear-silent-graph", "CLEAR SILENT GRAPH <urn:g>\n", "CLEAR SILENT GRAPH"),
        ("drop-all", "DROP ALL\n", "DROP ALL"),
        ("drop-graph", "DROP GRAPH <https://w3id.org/guideline-kg/mid-lumbar-mass/statements>\n", "DROP GRAPH"),
        ("create-graph", "CREATE GRAPH <urn:g>\n", "CREATE GRAPH"),
        ("copy", "COPY DEFAULT TO <urn:g>\n", "COPY"),
        ("move", "MOVE <urn:a> TO <urn:b>\n", "MOVE"),
        ("add", "ADD <urn:a> TO <urn:b>\n", "ADD"),
        ("update-sequence", "CLEAR ALL ; LOAD <file:///etc/passwd> ; DROP ALL\n", "several updates"),
        ("query-then-update", sel + "; INSERT DATA { <urn:a> <urn:b> <urn:c> }\n", "a SELECT followed by an update"),
        ("update-after-comment", "# SELECT * WHERE { ?s ?p ?o }\nDELETE WHERE { ?s ?p ?o }\n",
         "an update hidden after a comment line"),
        ("insert-lowercase", "insert data { <urn:a> <urn:b> <urn:c> }\n", "lowercase insert data"),
        ("syntax-selec", "SELEC * WHERE { ?s ?p ?o }\n", "misspelled keyword"),
        ("syntax-no-where-brace", "SELECT * WHERE ?s ?p ?o\n", "group pattern without braces"),
        ("syntax-missing-dot-var", "SELECT ? WHERE { ?s ?p ?o }\n", "empty variable name"),
        ("syntax-bad-iri", "SELECT * WHERE { <http://ex ample/> ?p ?o }\n", "IRI with a space"),
        ("syntax-unterminated-string", 'SELECT * WHERE { ?s ?p "abc }\n', "string never closed"),
        ("syntax-trailing-garbage", sel + "garbage garbage\n", "text after the query"),
        ("unbalanced-open", "SELECT * WHERE { { ?s ?p ?o }\n", "one '{' too many"),
        ("unbalanced-close", "SELECT * WHERE { ?s ?p ?o } }\n", "one '}' too many"),
        ("unbalanced-parens", "SELECT * WHERE { ?s ?p ?o FILTER((?o > 1) }\n", "one '(' too many"),
        ("deep-parens-100000", "SELECT * WHERE { ?s ?p ?o FILTER(" + "(" * 100000 + "true" + ")" * 100000
         + ") }\n", "100,000-deep nested parentheses"),
        ("deep-groups-100000", "SELECT * WHERE " + "{" * 100000 + " ?s ?p ?o " + "}" * 100000 + "\n",
         "100,000-deep nested group patterns"),
        ("deep-unclosed-groups", "SELECT * WHERE " + "{" * 100000 + "\n", "100,000 unclosed braces"),
        ("unknown-prefix", "SELECT * WHERE { ?s foo:bar ?o }\n", "undeclared prefix foo:"),
        ("empty", "", "an empty query"),
        ("whitespace-only", "  \n\t\n", "only whitespace"),
        ("comment-only", "# nothing here\n", "only a comment"),
        ("prologue-only", Q_PROLOGUE, "PREFIX declarations and no query"),
        ("zero-width-keyword", "SEL\u200bECT * WHERE { ?s ?p ?o }\n", "zero-width space inside SELECT"),
        ("rtl-variable", "SELECT ?\u202es WHERE { ?s ?p ?o }\n", "RTL override in a variable name"),
        ("nul-byte", "SELECT * WHERE { ?s ?p ?o }\x00 DROP ALL\n", "NUL byte then an update"),
        ("turtle-not-query", to_turtle(patient_graph()), "Turtle data, not a query"),
    ]
    for slug, text, why in qs:
        case("sparql", R, slug, text, why)
    case("sparql", R, "binary-garbage", bytes(random.Random(42).randrange(256) for _ in range(8192)),
         "random bytes (seeded)")
    case("sparql", R, "latin1-bytes", b"SELECT * WHERE { ?s ?p \"caf\xe9\" }\n", "a Latin-1 byte: not UTF-8")
    case("sparql", R, "utf16", "SELECT * WHERE { ?s ?p ?o }\n".encode("utf-16"), "UTF-16 encoded query")
    # 1.5 MB: a syntactically valid query whose only fault is its size
    values = " ".join(f'"v{i:07d}"' for i in range(150000))
    big = "SELECT * WHERE { VALUES ?x { " + values + " } }\n"
    assert 1_400_000 < len(big) < 1_900_000, len(big)
    case("sparql", R, "huge-1-5mb", big, "a 1.5 MB query (size limit)")


# ======================================================================
# Guideline encodings
# ======================================================================

G_HEAD = ("@prefix owl: <http://www.w3.org/2002/07/owl#> .\n"
          "@prefix gkg: <https://w3id.org/guideline-kg/vocab#> .\n"
          "@prefix g: <https://w3id.org/guideline-kg/mid-lumbar-mass/> .\n"
          "@prefix dcterms: <http://purl.org/dc/terms/> .\n\n")
G_BODY = ("g:guideline a gkg:Guideline ;\n"
          '    dcterms:title "Evaluation and Management of Mid-Lumbar Mass with Back Pain"@en ;\n'
          '    owl:versionInfo "1.0.0" .\n')


def onto(imports: str) -> str:
    return (G_HEAD + "<https://w3id.org/guideline-kg/mid-lumbar-mass/statements> a owl:Ontology ;\n"
            f"    owl:imports {imports} ;\n" + '    owl:versionInfo "1.0.0" .\n\n' + G_BODY)


def gen_guideline() -> None:
    R = "refused"
    good = G_HEAD + "<https://w3id.org/guideline-kg/mid-lumbar-mass/statements> a owl:Ontology .\n\n" + G_BODY
    for slug, target, why in (
            ("imports-loopback", "<http://127.0.0.1:9/x>", "owl:imports a loopback URL: refused, not fetched"),
            ("imports-file-passwd", "<file:///etc/passwd>", "owl:imports file:///etc/passwd: refused, not read"),
            ("imports-localhost", "<http://localhost:9/x>", "owl:imports localhost"),
            ("imports-ipv6", "<http://[::1]:9/x>", "owl:imports IPv6 loopback"),
            ("imports-metadata", "<http://169.254.169.254/latest/meta-data/>", "owl:imports cloud metadata"),
            ("imports-proc", "<file:///proc/self/environ>", "owl:imports /proc/self/environ"),
            ("imports-relative", "<../../../../etc/passwd>", "owl:imports a relative path"),
            ("imports-ftp", "<ftp://127.0.0.1:9/x>", "owl:imports over ftp"),
            ("imports-two", "<http://127.0.0.1:9/a>, <file:///etc/hostname>", "two hostile owl:imports")):
        case("guideline", R, slug, onto(target), why)
    case("guideline", R, "empty", "", "empty guideline file")
    case("guideline", R, "comments-only", "# nothing\n", "only a comment")
    case("guideline", R, "truncated", good[: len(good) // 2], "truncated Turtle")
    case("guideline", R, "undefined-prefix", good.replace("@prefix gkg:", "@prefix gkh:", 1), "undeclared prefix")
    case("guideline", R, "unterminated-string", good.replace('"1.0.0" .', '"1.0.0 .', 1), "string never closed")
    case("guideline", R, "bad-iri", good.replace("g:guideline a", "<http://ex ample/g> a", 1), "IRI with a space")
    case("guideline", R, "rdfxml-in-ttl", RDFXML_PATIENT, "RDF/XML in a Turtle guideline")
    case("guideline", R, "doctype-xxe", '<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>\n' + good,
         "XML DOCTYPE/ENTITY in a Turtle guideline")
    case("guideline", R, "latin1-byte", good.encode("utf-8").replace(b"Mid-Lumbar", b"Mid-Lumb\xe4r", 1),
         "a Latin-1 byte: not UTF-8")
    case("guideline", R, "binary", bytes(random.Random(99).randrange(256) for _ in range(4096)), "random bytes")
    case("guideline", R, "n3-rule", good + "{ ?x a gkg:Guideline } => { ?x a gkg:Evil } .\n",
         "N3 rule syntax is not Turtle")


# ======================================================================
# Input hygiene: cases the contract's final section decides (they were uncertain before)
# ======================================================================

def gen_hygiene() -> None:
    b = base(temp(37.0))
    benign("fhir", "utf8-bom", b"\xef\xbb\xbf" + dumps(b).encode("utf-8"),
           "UTF-8 BOM before the JSON: RFC 8259 lets a parser ignore it or treat it as an error")
    for btype in ("history", "batch", "message", None):
        bb = base(temp(37.0))
        if btype is None:
            del bb["type"]
        else:
            bb["type"] = btype
        case("fhir", "refused", f"bundle-type-{btype or 'missing'}", dumps(bb),
               f"Bundle.type {btype!r}: the contract lists collection/searchset/transaction/document")
    bb = base(back_pain("dup"), back_pain("dup"))
    benign("fhir", "duplicate-condition-ids", dumps(bb), "two Condition/dup resources in one bundle")
    bb = base()
    bb["entry"][1]["resource"]["id"] = "bad id with spaces!"
    case("fhir", "refused", "invalid-fhir-id", dumps(bb), "a resource id that is not a FHIR id")
    p = patient()
    del p["id"]
    p["identifier"] = []
    case("fhir", "refused", "patient-unnamed", dumps(bundle(p, full_urls=False)),
           "Patient with neither identifier nor id: cannot be named")
    p = patient()
    p["identifier"][0]["value"] = "MRN\ud800"
    text = dumps(bundle(p, back_pain())).replace("MRN\ud800", "MRN\\ud800")
    case("fhir", "refused", "identifier-lone-surrogate", text,
           "Patient identifier with a \\ud800 escape: it ends up in the report, which cannot encode it")
    p = patient()
    text = dumps(bundle(p, back_pain())).replace("HOSTILE-0001", "HOSTILE\\u0000-0001")
    c = condition("pain", {"coding": [{"system": SCT, "code": "279039007", "display": "@@SURR@@"}]})
    case("fhir", "refused", "display-lone-surrogate", dumps(bundle(patient(), c, mass_condition())).replace(
        "@@SURR@@", "\\ud800 and \\udfff alone"), "lone surrogate escapes in a display string: syntactically JSON, "
           "not Unicode text (I-JSON forbids them); the display is not read by the mapping")
    case("fhir", "refused", "identifier-nul-escape", text, "Patient identifier with a \\u0000 escape")
    o = temp(46.0, status="entered-in-error")
    o["valueQuantity"]["value"] = "not a number"
    benign("fhir", "entered-in-error-broken-value", dumps(base(o)),
           "entered-in-error Observation whose value is a string: ignored, or refused as broken?")
    benign("fhir", "temp-unit-degree-sign-only", dumps(base(dict(temp(37.0), valueQuantity={
        "value": 37.0, "unit": "\u00b0C"}))), "only unit '°C' (no UCUM code)")
    benign("fhir", "hr-unit-bpm", dumps(base(hr(80, "bpm"))), "'bpm' is common but not UCUM")
    benign("fhir", "hr-unit-per-second", dumps(base(hr(1.5, "/s"))), "'/s' is convertible to /min (x60)")
    case("fhir", "refused", "subject-group", dumps(base(dict(back_pain("g"), subject={"reference": "Group/g1"}))),
           "subject is a Group not in the bundle")
    case("fhir", "refused", "allergy-patient-ghost", dumps(base({
        "resourceType": "AllergyIntolerance", "id": "a", "patient": {"reference": "Patient/ghost"}})),
           "AllergyIntolerance.patient (not subject) names a missing patient")
    case("fhir", "refused", "duplicate-json-keys", dumps(base(temp(37.0))).replace(
        '"value": 37.0', '"value": "x", "value": 37.0', 1), "duplicate keys: the last one (a number) wins in most parsers")
    bb = base(temp(37.0, extension="@@D@@"))
    case("fhir", "refused", "deep-extension-100", dumps(bb).replace('"@@D@@"', "[" * 100 + "]" * 100),
           "an ignored extension nested 100 levels deep (implementation depth limit 64)")
    # RDF
    g = patient_graph()
    bn = [(I("_:b0") if s == EX + "p" else s, p, o) for s, p, o in g]
    case("turtle", "refused", "patient-blank-node",
           to_turtle(bn).replace("<_:b0>", "_:b0"), "the patient is a blank node")
    two = g + [(I(EX + "q"), I(RDFT), I(GKG + "Patient"))]
    case("turtle", "refused", "two-patients", to_turtle(two), "two gkg:Patient nodes in one graph")
    ax = g + [(I(CON + "fever"), I("http://www.w3.org/2000/01/rdf-schema#subClassOf"), I(CON + "back-pain"))]
    case("turtle", "refused", "schema-axiom", to_turtle(ax), "the patient graph adds an axiom about c:fever")
    imp = g + [(I(EX + "p"), I("http://www.w3.org/2002/07/owl#imports"), I("http://127.0.0.1:9/x"))]
    case("turtle", "refused", "owl-imports-in-patient", to_turtle(imp), "owl:imports in a patient graph (never fetch)")
    case("turtle", "refused", "temp-nan", to_turtle(patient_graph(L("NaN", XSD + "double")))
           , "\"NaN\"^^xsd:double: a number, but no range comparison is true")
    deep = to_turtle(g) + "ex:p gkg:x " + "[ gkg:x " * 20000 + "1" + " ]" * 20000 + " .\n"
    case("turtle", "refused", "deep-blank-nodes-20000", deep, "valid Turtle nested 20,000 blank nodes deep")
    case("turtle", "refused", "surrogate-escape", to_turtle(g).replace('"HOSTILE-RDF-1"', '"\\uD800"', 1),
           "\\uD800 escape in Turtle: the grammar allows it, but it is not a Unicode scalar value")
    case("sparql", "refused", "gkg-prefix-undeclared", "SELECT * WHERE { ?p a gkg:Patient }\n",
           "gkg: without PREFIX: refused unless the endpoint pre-declares project prefixes")
    benign("turtle", "base-file", "@base <file:///etc/> .\n" + to_turtle(g) + "ex:p ex:x <passwd> .\n",
           "@base file:///etc/ with a relative IRI: an IRI, never read")


def gen_decisions() -> None:
    """The contract's "Decisions on cases the first version left open" and the robustness issue's inputs."""
    # resourceType: only FHIR R4's, spelled exactly; none reaches the reader's own methods
    for rtype in ("Fact", "_Init__", "Record", "Keys", "condition", "__class__", "Observation "):
        slug = "".join(ch if ch.isalnum() else "_" for ch in rtype).strip("_").lower() or "blank"
        case("fhir", "refused", f"resource-type-{slug}", dumps(base({"resourceType": rtype, "id": "x1",
             "subject": dict(PREF)})), f"resourceType {rtype!r} is not a FHIR R4 resource type (exact spelling)")
    case("fhir", "refused", "status-upper-case", dumps(base(temp(37.0, status="ENTERED-IN-ERROR"))),
         "status 'ENTERED-IN-ERROR': FHIR codes are case-sensitive")
    case("fhir", "refused", "report-status-unknown-code", dumps(base({
        "resourceType": "DiagnosticReport", "id": "r1", "status": "Final", "subject": dict(PREF),
        "code": cc(LOINC, "24967-2")})), "DiagnosticReport status 'Final' is not a FHIR code")
    # dates that overflow once converted to UTC
    for slug, when in (("date-overflow-9999", "9999-12-31T23:59:59-01:00"),
                       ("date-underflow-0001", "0001-01-01T00:00:00+01:00")):
        case("fhir", "refused", slug, dumps(base(temp(37.0, effectiveDateTime=when))),
             f"effectiveDateTime {when} falls outside years 0001-9999 in UTC: a clean refusal, never a crash")
    # duplicates: identical merged (benign above), different content refused naming the resource
    changed = back_pain("dup")
    changed["clinicalStatus"] = cc("http://terminology.hl7.org/CodeSystem/condition-clinical", "resolved")
    case("fhir", "refused", "duplicate-id-different-content", dumps(base(back_pain("dup"), changed)),
         "Condition/dup twice with different content")
    # references
    case("fhir", "refused", "subject-foreign-server", dumps(base(dict(back_pain("f"), subject={
        "reference": "https://other.example.org/r4/Patient/p1"}))),
         "an absolute reference to another server never resolves to the local Patient")
    case("fhir", "refused", "subject-reference-control-char", dumps(base(dict(back_pain("c"), subject={
        "reference": "Patient/p1\u0007"}))).replace("\\u0007", "\u0007"), "a control character in a reference")
    case("fhir", "refused", "comparator-not-fhir", dumps(base(temp(38.5, valueQuantity={
        "value": 38.5, "comparator": "~", "unit": "Cel", "system": UCUM, "code": "Cel"}))),
         "valueQuantity.comparator '~' is not a FHIR comparator")
    # numbers of any magnitude are numbers: outside the plausible range a Violation (exit 1)
    case("fhir", "nonconforming", "temp-1e499", dumps(base(temp(0))).replace('"value": 0', '"value": 1e499', 1),
         "1e499 Cel is a number far outside 25-45 Cel: a Violation, not a refusal")
    case("fhir", "nonconforming", "temp-4000-digits", dumps(base(temp(0))).replace(
        '"value": 0', '"value": ' + "9" * 4000, 1), "a 4,000-digit body temperature: a Violation")
    case("fhir", "nonconforming", "temp-45-004", dumps(base(temp(0))).replace('"value": 0', '"value": 45.004', 1),
         "45.004 Cel is outside the range 25-45 Cel: compared unrounded")
    # RDF: refused at once (no slow path)
    case("turtle", "refused", "decimal-snan", to_turtle(patient_graph(L("sNaN", XSD + "decimal"))),
         '"sNaN"^^xsd:decimal is not an xsd:decimal')
    case("turtle", "refused", "double-inf", to_turtle(patient_graph(L("INF", XSD + "double"))),
         '"INF"^^xsd:double: a measured value must be a finite number')
    case("turtle", "refused", "integer-ill-typed", to_turtle(patient_graph(None, L("eighty", XSD + "integer"))),
         '"eighty"^^xsd:integer is ill-typed')
    case("turtle", "refused", "date-time-ill-typed", to_turtle(patient_graph()) +
         'ex:v1 gkg:effective "yesterday"^^xsd:dateTime .\n', '"yesterday"^^xsd:dateTime is ill-typed')
    g = patient_graph()
    case("turtle", "refused", "nested-65", to_turtle(g) + "ex:p gkg:x " + "[ gkg:x " * 65 + "1" + " ]" * 65 + " .\n",
         "blank nodes nested 65 deep: over the 64 levels every format allows")
    case("jsonld", "refused", "nested-65", dumps({"@context": {"gkg": GKG}, "@id": EX + "p",
                                                  "@type": GKG + "Patient", "gkg:x": _nest(65)}),
         "JSON-LD nested 65 deep")
    benign("turtle", "nested-40", to_turtle(g) + "ex:p gkg:x " + "[ gkg:x " * 40 + "1" + " ]" * 40 + " .\n",
           "blank nodes nested 40 deep: within the limit")
    # accepted, with a Warning
    benign("fhir", "temp-kelvin", dumps(base(temp(310.15, "K"))), "310.15 K converts exactly to 37 Cel")
    benign("fhir", "hr-beat-per-min", dumps(base(hr(80, "{beat}/min"))), "{beat}/min is an accepted UCUM code")
    benign("fhir", "temp-future", dumps(base(temp(39.0, effectiveDateTime="2999-01-01"))),
           "a time far after the reasoning time: Warning, treated as undated")
    benign("fhir", "temp-bound-undecided", dumps(base(temp(38.5, valueQuantity={
        "value": 38.5, "comparator": "<", "unit": "Cel", "system": UCUM, "code": "Cel"}))),
           "<38.5 Cel decides no threshold: left out with a Warning")


def _nest(depth: int) -> object:
    node: object = 1
    for _ in range(depth):
        node = {"gkg:x": node}
    return node


def main() -> None:
    if CASES.exists():
        shutil.rmtree(CASES)
    CASES.mkdir(parents=True)
    gen_fhir_structure()
    gen_fhir_datatypes()
    gen_fhir_references()
    gen_fhir_nonconforming()
    gen_rdf_nonconforming()
    gen_rdf_refused()
    gen_sparql()
    gen_guideline()
    gen_fhir_benign()
    gen_rdf_benign()
    gen_hygiene()
    gen_decisions()
    for name, rows in (("manifest.json", MANIFEST), ("benign.json", BENIGN)):
        (HERE / name).write_text(json.dumps(rows, indent=1, ensure_ascii=True) + "\n", encoding="utf-8")
    total = sum(f.stat().st_size for f in CASES.iterdir())
    if total >= 15 * 1024 * 1024:
        raise SystemExit(f"corpus is {total} bytes, over 15 MB")
    counts: dict[tuple[str, str], int] = {}
    for row in MANIFEST:
        counts[row["kind"], row["expect"]] = counts.get((row["kind"], row["expect"]), 0) + 1
    for (kind, expect), n in sorted(counts.items()):
        print(f"{kind:10s} {expect:14s} {n}")
    print(f"manifest {len(MANIFEST)}, benign {len(BENIGN)}, {total} bytes")


if __name__ == "__main__":
    main()
