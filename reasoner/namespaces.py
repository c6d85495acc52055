"""The namespaces guideline-kg writes in. Terms Python uses are declared, so a typo is an error."""

from __future__ import annotations

from rdflib import Namespace, URIRef
from rdflib.namespace import DefinedNamespace

BASE = "https://w3id.org/guideline-kg/"
G = Namespace(BASE + "mid-lumbar-mass/")
C = Namespace(BASE + "concept/")
RULE = Namespace(BASE + "rule/")
SHAPES = Namespace(BASE + "shapes/")
LOINC = Namespace("https://loinc.org/rdf/")
CITO = Namespace("http://purl.org/spar/cito/")
LOCAL_SYSTEM = "urn:guideline-kg:concept"
PATIENT_PREFIX = "urn:guideline-kg:patient:"


class GKG(DefinedNamespace):
    """The guideline-kg vocabulary (ontology/vocabulary.ttl)."""

    _NS = Namespace(BASE + "vocab#")
    _fail = True

    Patient: URIRef
    PatientFinding: URIRef
    VitalSign: URIRef
    ImagingResult: URIRef
    Note: URIRef
    MassWithoutLumbarSite: URIRef
    UnmatchedConclusion: URIRef
    AppliedRecommendation: URIRef
    PatientRedFlag: URIRef
    PatientDifferential: URIRef
    Conclusion: URIRef
    Rule: URIRef
    Guideline: URIRef
    hasFinding: URIRef
    hasVitalSign: URIRef
    hasImagingResult: URIRef
    hasNote: URIRef
    concept: URIRef
    status: URIRef
    origin: URIRef
    present: URIRef
    absent: URIRef
    asserted: URIRef
    derived: URIRef
    verification: URIRef
    source: URIRef
    identifier: URIRef
    measurement: URIRef
    value: URIRef
    unit: URIRef
    originalValue: URIRef
    originalUnit: URIRef
    effective: URIRef
    study: URIRef
    shows: URIRef
    detail: URIRef
    byRule: URIRef
    comparator: URIRef
    UnreadableMeasurement: URIRef
    FutureTime: URIRef
    UndatedMeasurement: URIRef
    UnknownReportStatus: URIRef
    guideline: URIRef
