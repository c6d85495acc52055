"""Patient shapes, each with data that passes and data that fails: focus node and source shape are checked."""

from __future__ import annotations

import pytest
from rdflib import Graph

from conftest import guideline
from reasoner.validate import validate

SHAPES = "https://w3id.org/guideline-kg/shapes/"
PREFIXES = """@prefix gkg: <https://w3id.org/guideline-kg/vocab#> .
@prefix c: <https://w3id.org/guideline-kg/concept/> .
@prefix loinc: <https://loinc.org/rdf/> .
@prefix xsd: <http://www.w3.org/2001/XMLSchema#> .
@prefix ex: <http://example.org/> .
ex:p a gkg:Patient .
"""


def results(turtle: str, shapes: str = "patient"):
    data = Graph()
    data += guideline().graph
    data.parse(data=PREFIXES + turtle, format="turtle")
    return validate(data, guideline().shape_graph(shapes))


def failing(turtle: str, shapes: str = "patient") -> set[tuple[str, str, str]]:
    return {(r.severity, r.focus.rsplit("/", 1)[-1], r.shape.removeprefix(SHAPES)) for r in results(turtle, shapes)}


GOOD = """ex:p gkg:hasFinding ex:f . ex:f a gkg:PatientFinding ; gkg:concept c:fever ; gkg:status gkg:present .
ex:p gkg:hasVitalSign ex:v . ex:v a gkg:VitalSign ; gkg:measurement loinc:8310-5 ; gkg:value 38.2 ; gkg:unit "Cel" .
ex:p gkg:hasImagingResult ex:r . ex:r a gkg:ImagingResult ; gkg:study c:mri-lumbar-wo-w-contrast ; gkg:shows ex:x .
ex:x gkg:concept c:discitis .
"""


def test_a_usable_patient_graph_conforms() -> None:
    assert failing(GOOD) == set()


@pytest.mark.parametrize("turtle,expected", [
    ("ex:p gkg:hasFinding ex:f . ex:f a gkg:PatientFinding ; gkg:status gkg:present .",
     ("Violation", "f", "Finding-concept")),
    ("ex:p gkg:hasFinding ex:f . ex:f gkg:concept c:no-such-key ; gkg:status gkg:present .",
     ("Violation", "f", "Finding-known-concept")),
    ("ex:p gkg:hasFinding ex:f . ex:f gkg:concept c:fever .",
     ("Violation", "f", "Finding-status")),
    ("ex:p gkg:hasFinding ex:f . ex:f gkg:concept c:fever ; gkg:status gkg:maybe .",
     ("Violation", "f", "Finding-status")),
    ("ex:p gkg:hasVitalSign ex:v . ex:v gkg:measurement loinc:8310-5 ; gkg:value 38.2 .",
     ("Violation", "v", "VitalSign-unit")),
    ("ex:p gkg:hasVitalSign ex:v . ex:v gkg:measurement loinc:8310-5 ; gkg:unit \"Cel\" .",
     ("Violation", "v", "VitalSign-value")),
    ("ex:p gkg:hasVitalSign ex:v . ex:v gkg:measurement loinc:8310-5 ; gkg:value \"38.2\" ; gkg:unit \"Cel\" .",
     ("Violation", "v", "VitalSign-value")),
    ("ex:p gkg:hasVitalSign ex:v . ex:v gkg:measurement loinc:8310-5 ; gkg:value 45.5 ; gkg:unit \"Cel\" .",
     ("Violation", "v", "VitalSign-plausible")),
    ("ex:p gkg:hasVitalSign ex:v . ex:v gkg:measurement loinc:8867-4 ; gkg:value 301 ; gkg:unit \"/min\" .",
     ("Violation", "v", "VitalSign-plausible")),
    ("ex:p gkg:hasVitalSign ex:v . ex:v gkg:measurement loinc:8310-5 ; gkg:value 101.0 ; gkg:unit \"[degF]\" .",
     ("Violation", "v", "VitalSign-canonical-unit")),
    ("ex:p gkg:hasVitalSign ex:v . ex:v gkg:measurement loinc:1234-5 ; gkg:value 1.0 ; gkg:unit \"Cel\" .",
     ("Violation", "v", "VitalSign-measurement")),
    ("ex:p gkg:hasImagingResult ex:r . ex:r gkg:study c:no-such-study .",
     ("Violation", "r", "ImagingResult-study")),
    ("ex:p gkg:hasNote ex:n . ex:n a gkg:MassWithoutLumbarSite ; gkg:source \"Condition/c1\" .",
     ("Warning", "n", "MassWithoutLumbarSite-site")),
    ("ex:p gkg:hasNote ex:n . ex:n a gkg:UnmatchedConclusion ; gkg:source \"DiagnosticReport/d1\" .",
     ("Warning", "n", "UnmatchedConclusion-report")),
])
def test_each_patient_shape_fails_on_its_case(turtle: str, expected: tuple[str, str, str]) -> None:
    assert expected in failing(turtle)


def test_plausible_range_edges_conform() -> None:
    edges = """ex:p gkg:hasVitalSign ex:a, ex:b .
    ex:a gkg:measurement loinc:8310-5 ; gkg:value 25.0 ; gkg:unit "Cel" .
    ex:b gkg:measurement loinc:8867-4 ; gkg:value 300 ; gkg:unit "/min" ."""
    assert failing(edges) == set()


def test_exam_items_neither_present_nor_absent_are_warnings() -> None:
    documented = "ex:p gkg:hasFinding ex:f . ex:f gkg:concept c:fever ; gkg:status gkg:absent ; gkg:origin gkg:asserted ."
    found = failing(documented, "patient-inferred")
    assert ("Warning", "p", "ExamDocumented-item") in found
    messages = {r.message for r in results(documented, "patient-inferred")}
    assert not any(" fever " in m for m in messages)
    assert any(" night-pain " in m for m in messages)


def test_contradicting_sources_give_a_warning() -> None:
    contradiction = """ex:p gkg:hasFinding ex:a, ex:b .
    ex:a gkg:concept c:fever ; gkg:status gkg:absent ; gkg:origin gkg:asserted ; gkg:source "Condition/c1" .
    ex:b gkg:concept c:fever ; gkg:status gkg:present ; gkg:origin gkg:derived ."""
    assert ("Warning", "p", "NoContradiction-finding") in failing(contradiction, "patient-inferred")
    agreeing = contradiction.replace("gkg:absent", "gkg:present")
    assert ("Warning", "p", "NoContradiction-finding") not in failing(agreeing, "patient-inferred")
