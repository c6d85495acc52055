"""Guideline shapes and QC queries, each tested both ways: the shipped encoding passes, and a copy
broken on purpose fails with the right focus node and source shape (or QC check and entity)."""

from __future__ import annotations

import json
import os
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Callable

import pyshacl
import pytest
from rdflib import RDF, RDFS, Graph, Literal, Namespace, URIRef
from rdflib.namespace import DCTERMS, OWL, SKOS

from conftest import guideline
from reasoner.checks import check_encoding, check_graph, qc_queries, rule_files_graph, run_qc
from reasoner.cli import main
from reasoner.validate import SH, validate

V = Namespace("https://w3id.org/guideline-kg/vocab#")
G = Namespace("https://w3id.org/guideline-kg/mid-lumbar-mass/")
C = Namespace("https://w3id.org/guideline-kg/concept/")
CODING = Namespace("https://w3id.org/guideline-kg/coding/")
RULE = Namespace("https://w3id.org/guideline-kg/rule/")
SHAPE = Namespace("https://w3id.org/guideline-kg/shapes/")
CITO = Namespace("http://purl.org/spar/cito/")
XSD = Namespace("http://www.w3.org/2001/XMLSchema#")
LOINC = Namespace("https://loinc.org/rdf/")

Edit = Callable[[Graph], None]


def drop(s: URIRef, p: URIRef) -> Edit:
    return lambda g: g.remove((s, p, None))


def add(s: URIRef, p: URIRef, o: URIRef | Literal) -> Edit:
    return lambda g: g.add((s, p, o))


def adds(*triples: tuple[URIRef, URIRef, URIRef | Literal]) -> Edit:
    def edit(g: Graph) -> None:
        for triple in triples:
            g.add(triple)
    return edit


def put(s: URIRef, p: URIRef, o: URIRef | Literal) -> Edit:
    return lambda g: g.set((s, p, o))


# (what is broken, focus node, source shape, the edit): one case per constraint of shapes/guideline.ttl.
SHAPE_CASES: list[tuple[str, URIRef, URIRef, Edit]] = [
    ("guideline without title", G.guideline, SHAPE["Guideline-title"], drop(G.guideline, DCTERMS.title)),
    ("guideline with two versions", G.guideline, SHAPE["Guideline-version"], add(G.guideline, OWL.versionInfo, Literal("2.0.0"))),
    ("guideline without sections", G.guideline, SHAPE["Guideline-section"], drop(G.guideline, V.hasSection)),
    ("section without heading", G["section-common-pitfalls-to-avoid"], SHAPE["Section-label"],
     drop(G["section-common-pitfalls-to-avoid"], RDFS.label)),
    ("section order as a string", G["section-critical-management-principles"], SHAPE["Section-order"],
     put(G["section-critical-management-principles"], V.order, Literal("12"))),
    ("section without guideline", G["section-follow-up-based-on-imaging-results"], SHAPE["Section-guideline"],
     drop(G["section-follow-up-based-on-imaging-results"], V.guideline)),
    ("section with two parents", G["section-differential-diagnosis-considerations-infection"], SHAPE["Section-parent"],
     add(G["section-differential-diagnosis-considerations-infection"], DCTERMS.isPartOf, G["section-imaging-algorithm"])),
    ("empty flag not a boolean", G["section-differential-diagnosis-considerations-other-pathology"],
     SHAPE["Section-empty-in-source"],
     put(G["section-differential-diagnosis-considerations-other-pathology"], V.isEmptyInSource, Literal("yes"))),
    ("statement id not like S01", G.S02, SHAPE["Statement-id"], put(G.S02, V.statementId, Literal("2"))),
    ("statement without text", G.S04, SHAPE["Statement-text"], drop(G.S04, V.text)),
    ("statement in something not a section", G.S06, SHAPE["Statement-section"], put(G.S06, V.inSection, G.guideline)),
    ("statement without order", G.S07, SHAPE["Statement-order"], drop(G.S07, V.order)),
    ("statement of an unknown kind", G.S08, SHAPE["Statement-kind"], put(G.S08, V.kind, V.Finding)),
    ("statement citing something not a reference", G.S10, SHAPE["Statement-citation"], add(G.S10, CITO.cites, G.S01)),
    ("lead-in introducing nothing", G.S33, SHAPE["LeadIn-introduces"], drop(G.S33, V.introduces)),
    ("statement citing nothing", G.S44, SHAPE["CitedStatement-cites"], drop(G.S44, CITO.cites)),
    ("reference number not digits", G["reference-8"], SHAPE["Reference-number"],
     put(G["reference-8"], V.referenceNumber, Literal("eight"))),
    ("reference without label", G["reference-7"], SHAPE["Reference-label"], drop(G["reference-7"], RDFS.label)),
    ("concept key not lower-case words", C.fever, SHAPE["Concept-key"], put(C.fever, V.key, Literal("Fever"))),
    ("concept without label", C["night-pain"], SHAPE["Concept-label"], drop(C["night-pain"], RDFS.label)),
    ("concept under no concept kind", C.sepsis, SHAPE["Concept-kind"], drop(C.sepsis, RDFS.subClassOf)),
    ("concept named in an unknown statement", C["back-pain"], SHAPE["Concept-named-in"], add(C["back-pain"], V.namedIn, G.S99)),
    ("concept with a coding that is none", C.tachycardia, SHAPE["Concept-coding"], add(C.tachycardia, V.coding, CODING.fake)),
    ("tumor nature neither benign nor malignant", C.ependymoma, SHAPE["Concept-nature"], put(C.ependymoma, V.nature, V.present)),
    ("coding without system", CODING["back-pain-snomed-161891005"], SHAPE["Coding-system"],
     drop(CODING["back-pain-snomed-161891005"], V.system)),
    ("coding with an empty code", CODING["back-pain-snomed-279039007"], SHAPE["Coding-code"],
     put(CODING["back-pain-snomed-279039007"], V.code, Literal(""))),
    ("concept coding without match", CODING["back-pain-icd10cm-M54_9"], SHAPE["ConceptCoding-match"],
     drop(CODING["back-pain-icd10cm-M54_9"], V.match)),
    ("recommendation id not lower-case words", G["rec-against-bone-scan"], SHAPE["Recommendation-id"],
     put(G["rec-against-bone-scan"], V.recommendationId, Literal("Bone Scan"))),
    ("recommendation without label", G["rec-against-ultrasound"], SHAPE["Recommendation-label"],
     drop(G["rec-against-ultrasound"], RDFS.label)),
    ("recommendation of an unknown action", G["rec-biopsy-if-malignancy"], SHAPE["Recommendation-action"],
     put(G["rec-biopsy-if-malignancy"], V.action, C["no-such-action"])),
    ("recommendation without direction", G["rec-oncology-referral-if-malignancy"], SHAPE["Recommendation-direction"],
     drop(G["rec-oncology-referral-if-malignancy"], V.direction)),
    ("recommendation of an unknown strength", G["rec-antimicrobial-therapy-if-infection"], SHAPE["Recommendation-strength"],
     put(G["rec-antimicrobial-therapy-if-infection"], V.strength, V.moderate)),
    ("recommendation without strength basis", G["rec-surgical-drainage-if-abscess"], SHAPE["Recommendation-strength-basis"],
     drop(G["rec-surgical-drainage-if-abscess"], V.strengthBasis)),
    ("recommendation with two urgencies", G["rec-cauda-equina-surgical-consultation"], SHAPE["Recommendation-urgency"],
     add(G["rec-cauda-equina-surgical-consultation"], V.urgency, V.immediate)),
    ("condition without language", G["rec-surgical-excision-if-benign-tumor"], SHAPE["Recommendation-condition"],
     put(G["rec-surgical-excision-if-benign-tumor"], V.condition, Literal("depending on size"))),
    ("recommendation from no statement", G["rec-reassess-if-imaging-negative"], SHAPE["Recommendation-statement"],
     drop(G["rec-reassess-if-imaging-negative"], V.fromStatement)),
    ("recommendation citing nothing", G["rec-against-ct-myelography"], SHAPE["Recommendation-citation"],
     drop(G["rec-against-ct-myelography"], CITO.citesAsAuthority)),
    ("recommendation without rule", G["rec-against-physical-therapy"], SHAPE["Recommendation-rule"],
     drop(G["rec-against-physical-therapy"], V.rule)),
    ("imaging preference below 1", G["rec-ct-when-mri-contraindicated-or-unavailable"], SHAPE["Recommendation-preference"],
     put(G["rec-ct-when-mri-contraindicated-or-unavailable"], V.preference, Literal(0))),
    ("rationale not among the statements", G["rec-against-radiographs-alone"], SHAPE["Recommendation-rationale"],
     add(G["rec-against-radiographs-alone"], V.rationale, G.S44)),
    ("red flag without label", G["red-flag-tachycardia"], SHAPE["RedFlag-label"], drop(G["red-flag-tachycardia"], RDFS.label)),
    ("red flag of an unknown concept", G["red-flag-fever"], SHAPE["RedFlag-concept"],
     add(G["red-flag-fever"], V.flagConcept, C["no-such-flag"])),
    ("red flag suggesting an unknown concept", G["red-flag-lymphadenopathy"], SHAPE["RedFlag-suggests"],
     add(G["red-flag-lymphadenopathy"], V.suggests, C["no-such-concern"])),
    ("red flag from no statement", G["red-flag-gait-abnormality"], SHAPE["RedFlag-statement"],
     drop(G["red-flag-gait-abnormality"], V.fromStatement)),
    ("red flag citing nothing", G["red-flag-constitutional-symptom"], SHAPE["RedFlag-citation"],
     drop(G["red-flag-constitutional-symptom"], CITO.citesAsAuthority)),
    ("differential entry without diagnosis", G["differential-discitis"], SHAPE["DifferentialEntry-diagnosis"],
     drop(G["differential-discitis"], V.diagnosis)),
    ("differential order not an integer", G["differential-ependymoma"], SHAPE["DifferentialEntry-order"],
     put(G["differential-ependymoma"], V.order, Literal("5.5", datatype=XSD.decimal))),
    ("differential entry from no statement", G["differential-paraspinal-abscess"], SHAPE["DifferentialEntry-statement"],
     drop(G["differential-paraspinal-abscess"], V.fromStatement)),
    ("differential entry citing nothing", G["differential-vertebral-osteomyelitis"], SHAPE["DifferentialEntry-citation"],
     drop(G["differential-vertebral-osteomyelitis"], CITO.citesAsAuthority)),
    ("risk without factor", G["harm-physical-therapy-malignancy"], SHAPE["RiskEstimate-factor"],
     drop(G["harm-physical-therapy-malignancy"], V.riskFactor)),
    ("risk with an unknown outcome", G["harm-delayed-infection-diagnosis"], SHAPE["RiskEstimate-outcome"],
     add(G["harm-delayed-infection-diagnosis"], V.outcome, C["no-such-outcome"])),
    ("probability above 1", G["risk-history-of-cancer"], SHAPE["RiskEstimate-probability-without"],
     put(G["risk-history-of-cancer"], V.probabilityWithout, Literal(Decimal("7.0")))),
    ("probability as a string", G["risk-history-of-cancer"], SHAPE["RiskEstimate-probability-with"],
     put(G["risk-history-of-cancer"], V.probabilityWith, Literal("0.09"))),
    ("risk from no statement", G["harm-physical-therapy-malignancy"], SHAPE["RiskEstimate-statement"],
     drop(G["harm-physical-therapy-malignancy"], V.fromStatement)),
    ("risk citing nothing", G["harm-delayed-infection-diagnosis"], SHAPE["RiskEstimate-citation"],
     drop(G["harm-delayed-infection-diagnosis"], CITO.citesAsAuthority)),
    ("citation outside the statements' citations", G["rec-against-ultrasound"], SHAPE["Authority-within-statements"],
     add(G["rec-against-ultrasound"], CITO.citesAsAuthority, G["reference-7"])),
    ("decision without label", G["decision-strength"], SHAPE["EncodingDecision-label"], drop(G["decision-strength"], RDFS.label)),
    ("decision not written down", G["decision-urgency-inherited"], SHAPE["EncodingDecision-comment"],
     drop(G["decision-urgency-inherited"], RDFS.comment)),
    # a bare threshold: no concept, measurement, unit, rule or source, its bound in words
    ("threshold without concept", G["threshold-bare"], SHAPE["Threshold-derives"], add(G["threshold-bare"], RDF.type, V.Threshold)),
    ("threshold without measurement", G["threshold-bare"], SHAPE["Threshold-measurement"], add(G["threshold-bare"], RDF.type, V.Threshold)),
    ("threshold without unit", G["threshold-bare"], SHAPE["Threshold-unit"], add(G["threshold-bare"], RDF.type, V.Threshold)),
    ("threshold without rule", G["threshold-bare"], SHAPE["Threshold-rule"], add(G["threshold-bare"], RDF.type, V.Threshold)),
    ("addition without source", G["threshold-bare"], SHAPE["Addition-source"], add(G["threshold-bare"], RDF.type, V.Threshold)),
    ("threshold above a bound in words", G["threshold-bare"], SHAPE["Threshold-min-exclusive"],
     add(G["threshold-bare"], V.minExclusive, Literal("hundred"))),
    ("threshold at or above a bound in words", G["threshold-fever"], SHAPE["Threshold-min-inclusive"],
     put(G["threshold-fever"], V.minInclusive, Literal("thirty-eight"))),
    ("threshold outside the plausible range", G["threshold-tachycardia"], SHAPE["Threshold-plausible"],
     put(G["threshold-tachycardia"], V.minExclusive, Literal(Decimal("1000.0")))),
    ("plausible minimum as a string", LOINC["8310-5"], SHAPE["Measurement-min"], put(LOINC["8310-5"], V.plausibleMin, Literal("25"))),
    ("measurement with two maxima", LOINC["8867-4"], SHAPE["Measurement-max"], add(LOINC["8867-4"], V.plausibleMax, Literal(Decimal("400.0")))),
    ("measurement with two units", LOINC["8310-5"], SHAPE["Measurement-unit"], add(LOINC["8310-5"], V.unit, Literal("[degF]"))),
    ("conversion from no unit", G["conversion-degF-Cel"], SHAPE["UnitConversion-from"], drop(G["conversion-degF-Cel"], V.fromUnit)),
    ("conversion to no unit", G["conversion-Cel-Cel"], SHAPE["UnitConversion-to"], drop(G["conversion-Cel-Cel"], V.toUnit)),
    ("conversion offset as a string", G["conversion-per-min"], SHAPE["UnitConversion-offset"],
     put(G["conversion-per-min"], V.offset, Literal("0"))),
    ("conversion factor zero", G["conversion-beats-per-min"], SHAPE["UnitConversion-factor"],
     put(G["conversion-beats-per-min"], V.factor, Literal(Decimal("0.0")))),
]

# What the edits above break besides their own case (each a consequence named here, not noise).
SIDE_EFFECTS = {
    (G.S01, SHAPE["Reference-number"]),  # S10 cites S01 as if it were a reference
    *((G.guideline, SHAPE[f"Section-{p}"]) for p in ("label", "order", "guideline")),  # S06 is "in" the guideline
    # a recommendation, red flag or risk naming a concept without a key: sh:node reports the concept as detail
    *((C[name], SHAPE["KnownConcept-key"]) for name in ("no-such-action", "no-such-flag", "no-such-concern",
                                                        "no-such-outcome")),
    *((G.S99, SHAPE[f"Statement-{p}"]) for p in ("id", "text", "section", "order", "kind")),  # unknown statement
    (CODING.fake, SHAPE["Coding-system"]), (CODING.fake, SHAPE["Coding-code"]), (CODING.fake, SHAPE["ConceptCoding-match"]),
    (G["rec-reassess-if-imaging-negative"], SHAPE["Authority-within-statements"]),  # no statements: no citation allowed
    (G["red-flag-gait-abnormality"], SHAPE["Authority-within-statements"]),
    (G["differential-paraspinal-abscess"], SHAPE["Authority-within-statements"]),
    (G["harm-physical-therapy-malignancy"], SHAPE["Authority-within-statements"]),
}
HELPER_SHAPES = {SHAPE["KnownConcept-key"]}  # has no target: reached through sh:node from the shapes that use it


def copy_of_encoding() -> Graph:
    graph = Graph()
    graph += guideline().graph
    return graph


@lru_cache(maxsize=1)
def shipped_report():
    return check_encoding()


@lru_cache(maxsize=1)
def broken_shape_results() -> frozenset[tuple[URIRef, URIRef, str]]:
    broken = copy_of_encoding()
    for _what, _focus, _shape, edit in SHAPE_CASES:
        edit(broken)
    return frozenset((URIRef(r.focus), URIRef(r.shape), r.severity)
                     for r in validate(broken, guideline().shape_graph("guideline")))


def shape_constraints() -> set[URIRef]:
    shapes = guideline().shape_graph("guideline")
    found = {s for s in shapes.subjects(RDF.type, SH.PropertyShape)}
    found |= {s for s in shapes.subjects(RDF.type, SH.SPARQLConstraint)}
    return found  # type: ignore[return-value]


######## Shapes ########

def test_guideline_shapes_conform_to_shacl_shacl() -> None:
    shacl_shacl = Graph().parse(os.path.join(os.path.dirname(pyshacl.__file__), "assets", "shacl-shacl.ttl"))
    conforms, _graph, text = pyshacl.validate(guideline().shape_graph("guideline"), shacl_graph=shacl_shacl)
    assert conforms, text


def test_every_guideline_constraint_has_name_message_and_explicit_severity() -> None:
    shapes = guideline().shape_graph("guideline")
    missing = [(str(c), str(p)) for c in shape_constraints() for p in (SH.message, SH.severity)
               if shapes.value(c, p) is None]
    missing += [(str(c), "sh:name") for c in shapes.subjects(RDF.type, SH.PropertyShape) if shapes.value(c, SH.name) is None]
    missing += [(str(s), p) for s in shapes.subjects(RDF.type, SH.NodeShape)
                for p in (SH.name, SH.description) if shapes.value(s, p) is None]
    assert missing == []


def test_the_shipped_encoding_conforms_to_the_guideline_shapes_and_qc() -> None:
    report = shipped_report()
    assert report.shapes == []
    assert report.qc == []
    assert report.conforms


def test_every_guideline_constraint_has_a_failing_case() -> None:
    assert shape_constraints() - HELPER_SHAPES == {shape for _w, _f, shape, _e in SHAPE_CASES}


@pytest.mark.parametrize("what,focus,shape,edit", SHAPE_CASES, ids=[c[0] for c in SHAPE_CASES])
def test_each_guideline_shape_fails_on_its_broken_copy(what: str, focus: URIRef, shape: URIRef, edit: Edit) -> None:
    assert (focus, shape) in {(f, s) for f, s, _sev in broken_shape_results()}
    assert not any(r.focus == str(focus) and r.shape == str(shape) for r in shipped_report().shapes)


def test_the_broken_copy_fails_with_nothing_but_its_cases_and_their_named_consequences() -> None:
    expected = {(focus, shape) for _w, focus, shape, _e in SHAPE_CASES} | SIDE_EFFECTS
    assert {(f, s) for f, s, _sev in broken_shape_results()} == expected


def test_an_uncited_statement_is_a_warning_and_everything_else_a_violation() -> None:
    severities = {shape: severity for _f, shape, severity in broken_shape_results()}
    assert severities.pop(SHAPE["CitedStatement-cites"]) == "Warning"
    assert set(severities.values()) == {"Violation"}


######## QC queries ########

# (check, offending entity, edit): each QC query fails on a copy broken for it.
QC_CASES: list[tuple[str, URIRef, Edit]] = [
    ("statement-without-encoding", G.S45,
     adds((G.S45, RDF.type, V.Statement), (G.S45, V.statementId, Literal("S45")))),
    ("citation-unused", G["reference-9"],
     adds((G["reference-9"], RDF.type, V.Reference), (G["reference-9"], V.referenceNumber, Literal("9")))),
    ("concept-not-named", C["night-pain"], drop(C["night-pain"], V.namedIn)),
    ("concept-undefined", C.fevr, add(C.fevr, RDF.type, V.ExamItem)),
    ("rule-file-missing", G["rec-against-bone-scan"], put(G["rec-against-bone-scan"], V.rule, RULE["no-such-rule"])),
    ("recommendation-rule-name", G["rec-against-ultrasound"], put(G["rec-against-ultrasound"], V.rule, RULE["against-bone-scan"])),
    ("red-flag-finding-without-definition", C["new-flag"],
     adds((C["new-flag"], RDFS.subClassOf, C["red-flag-finding"]), (C["new-flag"], V.key, Literal("new-flag")),
          (C["new-flag"], V.namedIn, G.S09))),
    ("section-empty-undeclared", G["section-differential-diagnosis-considerations-other-pathology"],
     drop(G["section-differential-diagnosis-considerations-other-pathology"], V.isEmptyInSource)),
    ("section-declared-empty-has-statements", G["section-differential-diagnosis-considerations-infection"],
     add(G["section-differential-diagnosis-considerations-infection"], V.isEmptyInSource, Literal(True))),
    ("duplicate-key", C.sepsis, put(C.sepsis, V.key, Literal("pathologic-fracture"))),
    ("duplicate-id", G["reference-8"], put(G["reference-8"], V.referenceNumber, Literal("7"))),
    ("duplicate-code", C.fever, add(C.fever, V.coding, CODING["back-pain-icd10cm-M54_9"])),
    ("coding-without-standard-iri", CODING["motor-weakness-snomed-713514005"],
     drop(CODING["motor-weakness-snomed-713514005"], RDFS.seeAlso)),
    ("concept-parent-cycle", C["neurologic-deficit"], add(C["neurologic-deficit"], RDFS.subClassOf, C["motor-weakness"])),
    ("concept-without-mapping", C["oncology-referral"], drop(C["oncology-referral"], SKOS.exactMatch)),
    ("exact-match-twice", C["xr-lumbar"], add(C["xr-lumbar"], SKOS.exactMatch, URIRef("http://snomed.info/id/999999999"))),
]


@lru_cache(maxsize=1)
def broken_qc_results() -> frozenset[tuple[str, URIRef, str]]:
    broken = copy_of_encoding()
    for _check, _entity, edit in QC_CASES:
        edit(broken)
    broken += rule_files_graph(guideline())
    return frozenset((r.check, URIRef(r.entity), r.severity) for r in run_qc(broken, qc_queries()))


def test_every_qc_query_has_a_failing_case() -> None:
    assert {name.removesuffix("-violation") for name in qc_queries()} == {check for check, _e, _edit in QC_CASES}


@pytest.mark.parametrize("check,entity,edit", QC_CASES, ids=[c[0] for c in QC_CASES])
def test_each_qc_query_passes_on_the_encoding_and_fails_on_its_broken_copy(check: str, entity: URIRef, edit: Edit) -> None:
    assert not [r for r in shipped_report().qc if r.check == check]
    assert (check, entity) in {(c, e) for c, e, _sev in broken_qc_results()}


def test_the_qc_broken_copy_fails_with_nothing_but_its_cases() -> None:
    expected = {(check, entity) for check, entity, _e in QC_CASES}
    expected |= {("recommendation-rule-name", G["rec-against-bone-scan"]), ("duplicate-key", C["pathologic-fracture"]),
                 ("duplicate-id", G["reference-7"]), ("duplicate-code", C["back-pain"]), ("concept-parent-cycle", C["motor-weakness"]),
                 ("concept-without-mapping", C["new-flag"])}  # the new red flag has no code either
    assert {(c, e) for c, e, _sev in broken_qc_results()} == expected


def test_a_rule_name_mismatch_is_a_warning() -> None:
    severities = {(c, sev) for c, _e, sev in broken_qc_results()}
    assert ("recommendation-rule-name", "Warning") in severities
    assert {sev for c, sev in severities if c != "recommendation-rule-name"} == {"Violation"}


def test_a_warning_alone_does_not_fail_the_check() -> None:
    data = copy_of_encoding()
    data.remove((G.S12, CITO.cites, None))
    report = check_graph(data, guideline())
    assert [(r.severity, r.shape) for r in report.shapes] == [("Warning", str(SHAPE["CitedStatement-cites"]))]
    assert report.conforms


######## check-guideline on the command line ########

def test_check_guideline_passes_on_the_shipped_encoding(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-guideline"]) == 0
    out = capsys.readouterr().out
    assert "PASS: 0 violations, 0 warnings" in out


def test_check_guideline_fails_on_a_broken_copy_naming_focus_shape_and_message(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = copy_of_encoding()
    broken.remove((G["rec-against-bone-scan"], V.direction, None))
    broken.set((G["rec-against-ultrasound"], V.rule, RULE["no-such-rule"]))
    path = tmp_path / "encoding.ttl"
    path.write_text(broken.serialize(format="turtle"), encoding="utf-8")
    assert main(["check-guideline", str(path)]) == 1
    out = capsys.readouterr().out
    assert "g:rec-against-bone-scan" in out and "shape:Recommendation-direction" in out
    assert "A recommendation must have exactly one gkg:direction" in out
    assert "g:rec-against-ultrasound" in out and "qc/rule-file-missing-violation.rq" in out
    assert out.rstrip().endswith("FAIL: 2 violations, 1 warning")


def test_check_guideline_reports_as_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "encoding.ttl"
    path.write_text("@prefix gkg: <https://w3id.org/guideline-kg/vocab#> .\n"
                    "<https://example.org/rec> a gkg:Recommendation ; gkg:rule <https://example.org/no-rule> .\n",
                    encoding="utf-8")
    assert main(["check-guideline", str(path), "--format", "json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["conforms"] is False and data["triples"] == 2
    assert ("https://example.org/rec", str(SHAPE["Recommendation-direction"])) in {(r["focus"], r["shape"]) for r in data["shapes"]}
    assert ("rule-file-missing", "https://example.org/rec") in {(r["check"], r["entity"]) for r in data["qc"]}


def test_check_guideline_refuses_unparseable_turtle_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "broken.ttl"
    path.write_text("@prefix g: <https://w3id.org/guideline-kg/mid-lumbar-mass/> .\ng:S01 g:text \"unclosed .\n",
                    encoding="utf-8")
    assert main(["check-guideline", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("guideline-kg: broken.ttl: not valid Turtle") and err.count("\n") == 1


def test_check_guideline_refuses_a_missing_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-guideline", str(tmp_path / "nowhere")]) == 2
    assert "no such file or folder" in capsys.readouterr().err


def test_check_guideline_never_fetches_owl_imports(tmp_path: Path) -> None:
    path = tmp_path / "encoding.ttl"
    path.write_text("@prefix owl: <http://www.w3.org/2002/07/owl#> .\n"
                    "<https://example.org/encoding> a owl:Ontology ; owl:imports <http://127.0.0.1:9/never-fetched.ttl> .\n",
                    encoding="utf-8")
    report = check_encoding(path)  # nothing listens on port 9: a fetch would fail or add triples
    assert report.triples == 2
