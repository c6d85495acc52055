"""SHACL message templates ({?var}/{$var}) are filled literally, the same way in both engines.

pySHACL (and the fast engine, which copied it) filled each variable with ``re.sub``, whose replacement text
reads backslashes as escapes: a patient value ``m\\1`` crashed validation ("invalid group reference"),
``a\\b`` became a backspace, ``x\\\\y`` lost a backslash and ``\\g<0>`` became the placeholder itself.
Both engines now fill with ``reasoner.validate.fill_message`` (the reference by replacing the one pySHACL
method that fills them), so a value is copied as it is and the two engines' reports stay byte-identical.
"""

from __future__ import annotations

import json

import pytest
from rdflib import Graph

from conftest import TEST_NOW, guideline
from reasoner.clock import parse_instant
from reasoner.engine import ReferenceEngine
from reasoner.fast import FastEngine
from reasoner.patient import parse_patient
from reasoner.report import build_report
from reasoner.validate import fill_message, validate

# values that re.sub's replacement syntax would read: a group reference, a named group, a known escape,
# an escaped backslash, an unknown escape, a trailing backslash, and a placeholder inside a value
HOSTILE = ["m\\1", "Cel\\g<0>", "a\\b", "x\\\\y", "\\q", "end\\", "{?label}"]


@pytest.mark.parametrize("value", HOSTILE)
def test_a_value_is_copied_into_the_message_as_it_is(value: str) -> None:
    assert fill_message("{?label} is given in {?value}; it must be in {$unit}.",
                        {"label": "Body temperature", "value": value, "unit": "Cel"}) \
        == f"Body temperature is given in {value}; it must be in Cel."


def test_a_placeholder_of_an_unbound_variable_stays_and_unknown_braces_are_text() -> None:
    assert fill_message("{?value}: {?detail} {x} {?} {$this}", {"value": "Observation/1", "this": "p"}) \
        == "Observation/1: {?detail} {x} {?} p"


SHAPES = """
@prefix sh: <http://www.w3.org/ns/shacl#> .
@prefix ex: <http://example.org/> .
ex:S a sh:NodeShape ; sh:targetClass ex:Thing ;
  sh:sparql [ a sh:SPARQLConstraint ;
    sh:message "{$this} has code {?value} ({?note})" ;
    sh:select "SELECT $this ?value ?note WHERE { $this <http://example.org/code> ?value . OPTIONAL { $this <http://example.org/note> ?note } }" ] .
"""


@pytest.mark.parametrize("value", HOSTILE)
def test_pyshacl_as_the_reference_runs_it_fills_a_backslash_value_literally(value: str) -> None:
    data = Graph()
    data.parse(data=f"""<http://example.org/t> a <http://example.org/Thing> ;
        <http://example.org/code> {json.dumps(value)} ; <http://example.org/note> "n\\\\2" .""", format="turtle")
    (result,) = validate(data, Graph().parse(data=SHAPES, format="turtle"))
    assert result.message == f"http://example.org/t has code {value} (n\\2)"
    assert result.value == value


# One patient (Turtle), one body-temperature reading per hostile unit: each is a Violation whose message
# names the unit as given (shape VitalSign-canonical-unit: "{?label} is given in {?value}; it must be in {?unit}.").
TURTLE = """@prefix gkg: <https://w3id.org/guideline-kg/vocab#> .
@prefix c: <https://w3id.org/guideline-kg/concept/> .
@prefix loinc: <https://loinc.org/rdf/> .
@prefix xsd: <http://www.w3.org/2001/XMLSchema#> .
@prefix ex: <http://example.org/hostile/> .
ex:p a gkg:Patient ; gkg:identifier "BACKSLASH-1" ; gkg:hasFinding ex:f1 .
ex:f1 a gkg:PatientFinding ; gkg:concept c:back-pain ; gkg:status gkg:present .
"""


def _turtle_patient() -> str:
    lines = [TURTLE]
    for i, unit in enumerate(HOSTILE):
        lines.append(f'ex:p gkg:hasVitalSign ex:v{i} .\nex:v{i} a gkg:VitalSign ; gkg:measurement loinc:8310-5 ; '
                     f'gkg:value "37"^^xsd:decimal ; gkg:unit {json.dumps(unit)} .\n')
    return "".join(lines)


def _reports(text: str, syntax: str) -> tuple[str, str]:
    g = guideline()
    now = parse_instant(TEST_NOW)
    fast = build_report(g, FastEngine(g).reason(parse_patient(g, text, syntax, "input", now))).to_json()
    reference = build_report(g, ReferenceEngine(g).reason(parse_patient(g, text, syntax, "input", now))).to_json()
    return fast, reference


def test_units_with_backslashes_are_named_as_given_and_both_engines_agree_byte_for_byte() -> None:
    fast, reference = _reports(_turtle_patient(), "turtle")
    assert fast == reference
    messages = sorted(v["message"] for v in json.loads(fast)["violations"])
    assert messages == sorted(f"Body temperature is given in {unit}; it must be in Cel." for unit in HOSTILE)


def test_a_fhir_unit_with_backslashes_is_named_in_the_warning_and_both_engines_agree() -> None:
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [
        {"resource": {"resourceType": "Patient", "id": "p"}},
        {"resource": {"resourceType": "Observation", "id": "t", "status": "final",
                      "code": {"coding": [{"system": "http://loinc.org", "code": "8310-5"}]},
                      "subject": {"reference": "Patient/p"}, "effectiveDateTime": "2026-01-15T08:00:00Z",
                      "valueQuantity": {"value": 39, "system": "http://unitsofmeasure.org", "code": "Cel\\1\\g<0>"}}},
    ]}
    fast, reference = _reports(json.dumps(bundle), "json")
    assert fast == reference
    (warning,) = [w for w in json.loads(fast)["violations"] if w["shape"].endswith("/UnreadableMeasurement-source")]
    assert warning["severity"] == "Warning"
    assert warning["message"].startswith("Observation/t is left out of reasoning: unit 'Cel\\1\\g<0>' is not one")
