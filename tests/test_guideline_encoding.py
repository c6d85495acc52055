"""The encoding holds the guideline as received: every statement verbatim, every concept and code
of the terminology, the references by number only, and a recommendation for every actionable
statement. The shared tables are read at test time; the graph may say more, never less."""

from __future__ import annotations

import csv
import subprocess
import sys
from decimal import Decimal

import pytest
from rdflib import RDF, RDFS, Graph, Literal, Namespace, URIRef
from rdflib.namespace import DCTERMS, SKOS

from conftest import ROOT, guideline, shared_path

V = Namespace("https://w3id.org/guideline-kg/vocab#")
G = Namespace("https://w3id.org/guideline-kg/mid-lumbar-mass/")
C = Namespace("https://w3id.org/guideline-kg/concept/")
CITO = Namespace("http://purl.org/spar/cito/")
STANDARD_IRI = {"http://snomed.info/sct": "http://snomed.info/id/", "http://loinc.org": "https://loinc.org/rdf/"}

# Statements that carry no recommendation of their own, each with the way it is encoded instead.
NON_ACTIONABLE = {
    "S02": ("lead-in", "introduces the focused examination S03-S08"),
    "S11": ("lead-in", "introduces why MRI is the definitive study, S12-S15"),
    "S25": ("lead-in", "introduces the differential S26-S30"),
    "S33": ("lead-in", "introduces the urgent interventions S34-S35"),
    "S40": ("lead-in", "introduces the follow-up on MRI results S41-S44"),
    "S03": ("red flag", "neurologic deficits, suggesting nerve root or spinal cord compromise"),
    "S04": ("red flag", "gait abnormalities, suggesting neurological involvement or mechanical instability"),
    "S05": ("red flag", "fever or tachycardia, suggesting infection"),
    "S06": ("red flag", "abnormal spinal curvature, suggesting structural pathology"),
    "S07": ("red flag", "lymphadenopathy, suggesting malignancy or systemic infection"),
    "S08": ("red flag", "constitutional symptoms, raising concern for malignancy"),
    "S26": ("differential", "the tumors of the differential"),
    "S29": ("differential", "the infections of the differential"),
    "S27": ("risk", "history of cancer raises the probability of malignancy from 0.7 % to 9 %"),
    "S12": ("rationale", "why MRI is the primary modality"),
    "S15": ("rationale", "what MRI visualises better than any other modality"),
    "S16": ("rationale", "why radiographs are insensitive"),
    "S20": ("rationale", "what CT with contrast does and does not do"),
    "S28": ("rationale", "why benign tumors still need a diagnosis"),
    "S30": ("rationale", "why epidural abscess needs MRI"),
    "S32": ("rationale", "the harms of physical therapy and delayed diagnosis"),
}
ENCODED_AS = {"red flag": V.RedFlag, "differential": V.DifferentialEntry, "risk": V.RiskEstimate}


def read_table(*parts: str) -> list[dict[str, str]]:
    with shared_path(*parts).open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def graph() -> Graph:
    return guideline().graph


def statement(sid: str) -> URIRef:
    found = list(graph().subjects(V.statementId, Literal(sid)))
    assert len(found) == 1, f"{sid}: expected one statement, found {len(found)}"
    return found[0]  # type: ignore[return-value]


def concept(key: str) -> URIRef:
    found = list(graph().subjects(V.key, Literal(key)))
    assert len(found) == 1, f"{key}: expected one concept, found {len(found)}"
    return found[0]  # type: ignore[return-value]


def ids(nodes: object) -> set[str]:
    return {str(graph().value(n, V.statementId)) for n in nodes}  # type: ignore[attr-defined]


def numbers(nodes: object) -> set[str]:
    return {str(graph().value(n, V.referenceNumber)) for n in nodes}  # type: ignore[attr-defined]


def section_path(section: URIRef) -> str:
    parts = []
    node: URIRef | None = section
    while node is not None:
        parts.append(str(graph().value(node, RDFS.label)))
        node = graph().value(node, DCTERMS.isPartOf)  # type: ignore[assignment]
    return " / ".join(reversed(parts))


def recommendations_from(sid: str, as_rationale: bool = False) -> set[URIRef]:
    s = statement(sid)
    recs = {r for r in graph().subjects(V.fromStatement, s) if (r, RDF.type, V.Recommendation) in graph()}
    if not as_rationale:
        recs = {r for r in recs if (r, V.rationale, s) not in graph()}
    return recs  # type: ignore[return-value]


######## Statements, sections, references ########

def test_every_statement_is_present_verbatim_with_section_order_kind_and_citations() -> None:
    rows = read_table("guideline", "statements.tsv")
    assert [r["id"] for r in rows] == [f"S{i:02d}" for i in range(1, 45)]
    kinds = {"statement": V.StatementProper, "lead-in": V.LeadIn}
    problems = []
    for order, row in enumerate(rows, start=1):
        s = statement(row["id"])
        expected = {
            "text": Literal(row["text"], lang="en"),
            "section": row["section"],
            "order": order,
            "source line": int(row["line"]),
            "kind": kinds[row["kind"]],
            "citations": {c for c in row["citations"].split(";") if c},
        }
        found = {
            "text": graph().value(s, V.text),
            "section": section_path(graph().value(s, V.inSection)),  # type: ignore[arg-type]
            "order": graph().value(s, V.order).toPython(),  # type: ignore[union-attr]
            "source line": graph().value(s, V.sourceLine).toPython(),  # type: ignore[union-attr]
            "kind": graph().value(s, V.kind),
            "citations": numbers(graph().objects(s, CITO.cites)),
        }
        problems += [f"{row['id']} {k}: {found[k]!r} != {expected[k]!r}" for k in expected if found[k] != expected[k]]
        if len(list(graph().objects(s, V.text))) != 1:
            problems.append(f"{row['id']}: more than one text")
    assert problems == []


def test_the_eight_references_are_cited_by_number_only() -> None:
    references = set(graph().subjects(RDF.type, V.Reference))
    assert numbers(references) == {str(n) for n in range(1, 9)}
    allowed = {RDF.type, V.referenceNumber, RDFS.label, RDFS.comment}
    invented = {(r, p) for r in references for p in graph().predicates(r) if p not in allowed}
    assert invented == set(), "the source gives no bibliographic details; none may be added"


def test_other_pathology_section_is_present_and_empty() -> None:
    sections = [s for s in graph().subjects(RDF.type, V.Section) if str(graph().value(s, RDFS.label)) == "Other Pathology"]
    assert len(sections) == 1
    other = sections[0]
    assert section_path(other) == "Differential Diagnosis Considerations / Other Pathology"
    assert graph().value(other, V.isEmptyInSource) == Literal(True)
    assert list(graph().subjects(V.inSection, other)) == []


######## Concepts and codes ########

def test_every_concept_has_its_key_label_parents_and_naming_statements() -> None:
    kind_class = {str(graph().value(k, SKOS.notation)): k for k in graph().subjects(RDFS.subClassOf, V.Concept)}
    problems = []
    for row in read_table("terminology", "concepts.tsv"):
        c = concept(row["key"])
        if graph().value(c, RDFS.label) != Literal(row["label"], lang="en"):
            problems.append(f"{row['key']}: label {graph().value(c, RDFS.label)!r} != {row['label']!r}")
        parents = {kind_class[row["kind"]], *(C[p] for p in row["parent"].split(";") if p)}
        missing = parents - set(graph().objects(c, RDFS.subClassOf))
        if missing:
            problems.append(f"{row['key']}: missing subclass axioms to {sorted(missing)}")
        named = {s for s in row["statements"].split(";") if s}
        lost = named - ids(graph().objects(c, V.namedIn))
        if lost:
            problems.append(f"{row['key']}: not linked to the statements that name it: {sorted(lost)}")
    assert problems == []


def test_every_code_is_linked_with_its_system_code_match_and_standard_iri() -> None:
    problems = []
    for row in read_table("terminology", "codes.tsv"):
        c = concept(row["key"])
        codings = [x for x in graph().objects(c, V.coding)
                   if str(graph().value(x, V.system)) == row["system"] and str(graph().value(x, V.code)) == row["code"]]
        if len(codings) != 1:
            problems.append(f"{row['key']}: {row['system']} {row['code']} linked {len(codings)} times")
            continue
        coding = codings[0]
        match = graph().value(graph().value(coding, V.match), SKOS.notation)
        if str(match) != row["match"]:
            problems.append(f"{row['key']} {row['code']}: match {match} != {row['match']}")
        if str(graph().value(coding, V.display)) != row["display"]:
            problems.append(f"{row['key']} {row['code']}: display {graph().value(coding, V.display)!r}")
        if row["system"] in STANDARD_IRI:
            iri = URIRef(STANDARD_IRI[row["system"]] + row["code"])
            if (coding, RDFS.seeAlso, iri) not in graph():
                problems.append(f"{row['key']} {row['code']}: no standard IRI {iri}")
    assert problems == []


def test_the_built_ontology_files_match_the_shared_tables() -> None:
    shared = shared_path()
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "build_ontology.py"), "--check", "--shared", str(shared)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


######## Recommendations ########

def test_non_actionable_statements_are_listed_with_ids_of_the_source() -> None:
    known = {r["id"] for r in read_table("guideline", "statements.tsv")}
    assert set(NON_ACTIONABLE) <= known


def test_every_actionable_statement_has_a_recommendation() -> None:
    actionable = [r["id"] for r in read_table("guideline", "statements.tsv") if r["id"] not in NON_ACTIONABLE]
    assert [sid for sid in actionable if not recommendations_from(sid)] == []


@pytest.mark.parametrize("sid", sorted(NON_ACTIONABLE))
def test_each_non_actionable_statement_is_encoded_as_what_it_is(sid: str) -> None:
    kind, _why = NON_ACTIONABLE[sid]
    s = statement(sid)
    if kind == "lead-in":
        assert graph().value(s, V.kind) == V.LeadIn
        assert list(graph().objects(s, V.introduces))
    elif kind == "rationale":
        assert any((r, RDF.type, V.Recommendation) in graph() for r in graph().subjects(V.rationale, s))
    else:
        assert any((x, RDF.type, ENCODED_AS[kind]) in graph() for x in graph().subjects(V.fromStatement, s))


def test_recommendation_citations_are_within_their_statements_citations() -> None:
    problems = []
    for rec in graph().subjects(RDF.type, V.Recommendation):
        cited = numbers(graph().objects(rec, CITO.citesAsAuthority))
        allowed = numbers(r for s in graph().objects(rec, V.fromStatement) for r in graph().objects(s, CITO.cites))
        if not cited or not cited <= allowed:
            problems.append(f"{rec}: cites {sorted(cited)}, its statements cite {sorted(allowed)}")
    assert problems == []


# (statements, action key, direction, urgency or None): the recommendations issue 2 lists.
REQUIRED = [
    ({"S01", "S09", "S10"}, "mri-lumbar-wo-w-contrast", "for", "immediate"),
    ({"S13", "S37"}, "mri-lumbar-wo-contrast", "against", None),
    ({"S14"}, "mri-lumbar-w-contrast", "against", None),
    ({"S16", "S17", "S36"}, "xr-lumbar", "against", None),
    ({"S18"}, "mri-lumbar-wo-w-contrast", "for", "immediate"),
    ({"S19"}, "ct-lumbar-w-contrast", "for", None),
    ({"S21"}, "ct-lumbar-w-contrast", "against", None),
    ({"S22"}, "bone-scan-spect", "against", None),
    ({"S23"}, "us-back-soft-tissue", "against", None),
    ({"S24"}, "ct-myelography-lumbar", "for", None),
    ({"S31", "S38"}, "conservative-management", "against", None),
    ({"S31"}, "physical-therapy", "against", None),
    ({"S34"}, "mri-lumbar-wo-w-contrast", "for", "emergent"),
    ({"S34"}, "surgical-consultation", "for", "emergent"),
    ({"S35"}, "mri-lumbar-wo-w-contrast", "for", "immediate"),
    ({"S35"}, "neurosurgical-evaluation", "for", "immediate"),
    ({"S39"}, "mri-lumbar-wo-w-contrast", "for", None),
    ({"S41"}, "biopsy", "for", None),
    ({"S41"}, "oncology-referral", "for", None),
    ({"S42"}, "antimicrobial-therapy", "for", None),
    ({"S42"}, "surgical-drainage", "for", None),
    ({"S43"}, "surgical-excision", "for", None),
    ({"S44"}, "clinical-reassessment", "for", None),
]


@pytest.mark.parametrize("statements,action,direction,urgency", REQUIRED,
                         ids=[f"{'-'.join(sorted(r[0]))}-{r[2]}-{r[1]}" for r in REQUIRED])
def test_each_recommendation_the_issue_lists_is_encoded(statements: set[str], action: str, direction: str,
                                                         urgency: str | None) -> None:
    candidates = [
        rec for rec in graph().subjects(V.action, concept(action))
        if str(graph().value(graph().value(rec, V.direction), SKOS.notation)) == direction
        and statements <= ids(graph().objects(rec, V.fromStatement))
    ]
    assert candidates, f"no recommendation {direction} {action} from {sorted(statements)}"
    if urgency is not None:
        urgencies = {str(graph().value(graph().value(r, V.urgency), SKOS.notation)) for r in candidates}
        assert urgency in urgencies


######## Red flags, differential, risk ########

@pytest.mark.parametrize("sid,flag,suggests", [
    ("S03", "neurologic-deficit", {"neural-compromise"}),
    ("S04", "gait-abnormality", {"neurological-involvement", "mechanical-instability"}),
    ("S05", "fever", {"infection"}),
    ("S05", "tachycardia", {"infection"}),
    ("S06", "abnormal-spinal-curvature", {"structural-pathology"}),
    ("S07", "lymphadenopathy", {"malignancy", "systemic-infection"}),
    ("S08", "constitutional-symptom", {"malignancy"}),
    ("S09", "palpable-lumbar-mass", {"infection", "malignancy"}),
])
def test_each_red_flag_says_what_it_suggests(sid: str, flag: str, suggests: set[str]) -> None:
    flags = [f for f in graph().subjects(V.flagConcept, concept(flag)) if sid in ids(graph().objects(f, V.fromStatement))]
    assert len(flags) == 1
    said = {str(graph().value(c, V.key)) for c in graph().objects(flags[0], V.suggests)}
    assert suggests <= said


@pytest.mark.parametrize("tumor", ["osteoid-osteoma", "osteoblastoma"])
def test_tumors_the_source_files_under_malignancy_are_benign_and_keep_the_source_grouping(tumor: str) -> None:
    c = concept(tumor)
    assert graph().value(c, V.nature) == V.benign
    assert (c, RDFS.subClassOf, concept("benign-tumor")) in graph()
    assert str(graph().value(graph().value(c, V.sourceGrouping), RDFS.label)) == "Malignancy"


def test_history_of_cancer_risk_is_data_with_its_citation() -> None:
    risks = list(graph().subjects(V.riskFactor, concept("history-of-cancer")))
    assert len(risks) == 1
    risk = risks[0]
    assert graph().value(risk, V.outcome) == concept("malignancy")
    assert graph().value(risk, V.probabilityWithout).toPython() == Decimal("0.007")  # type: ignore[union-attr]
    assert graph().value(risk, V.probabilityWith).toPython() == Decimal("0.09")  # type: ignore[union-attr]
    assert ids(graph().objects(risk, V.fromStatement)) == {"S27"}
    assert numbers(graph().objects(risk, CITO.citesAsAuthority)) == {"3"}
