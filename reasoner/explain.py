"""``explain``: the derivation of one conclusion as a tree.

patient facts (with the FHIR resource they came from) -> inferences (OWL-RL or a rule
file) -> guideline recommendation, red flag or differential entry -> statements
(verbatim) -> citations.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from rdflib import RDF, RDFS, Graph, URIRef
from rdflib.namespace import PROV

from reasoner.errors import InputError
from reasoner.guideline import Guideline
from reasoner.namespaces import CITO, GKG
from reasoner.report import Report, report_graph

V = str(GKG._NS)
RECOMMENDATION, RED_FLAG, DIFFERENTIAL = URIRef(V + "recommendation"), URIRef(V + "redFlag"), URIRef(V + "differentialEntry")
ABOUT, BECAUSE, FROM_STATEMENT = URIRef(V + "about"), URIRef(V + "because"), URIRef(V + "fromStatement")
KEY, ACTION, DIRECTION, STATEMENT_ID, TEXT = (URIRef(V + n) for n in ("key", "action", "direction", "statementId", "text"))
REFERENCE_NUMBER, DERIVED_FROM, RULE_OF = URIRef(V + "referenceNumber"), URIRef(V + "derivedFrom"), URIRef(V + "rule")
FLAG_CONCEPT = URIRef(V + "flagConcept")
UNTIL, LAPSES_WITH, BLOCKED_WITH = URIRef(V + "until"), URIRef(V + "lapsesWith"), URIRef(V + "blockedWith")
CRITERION, EVIDENCE, ORDER, SUPERSEDED_BY = URIRef(V + "criterion"), URIRef(V + "evidence"), URIRef(V + "order"), URIRef(V + "supersededBy")
DEFINITION = URIRef("http://www.w3.org/2004/02/skos/core#definition")


@dataclass
class Node:
    """One step of an explanation."""

    kind: str  # conclusion, fact, inference, guideline, statement, citation
    label: str
    iri: str | None = None
    detail: str | None = None
    children: list["Node"] = field(default_factory=list)


def _key(g: Graph, concept: object) -> str:
    return str(g.value(concept, KEY) or concept)


def _statements(g: Graph, element: URIRef) -> list[Node]:
    nodes = []
    for statement in sorted(g.objects(element, FROM_STATEMENT), key=str):
        sid = str(g.value(statement, STATEMENT_ID))
        cites = sorted((str(g.value(r, REFERENCE_NUMBER)) for r in g.objects(statement, CITO.cites)), key=int)
        nodes.append(Node("statement", sid, str(statement), str(g.value(statement, TEXT)),
                          [Node("citation", f"reference {c}", None, "cited by number only") for c in cites]))
    return nodes


def _fact(g: Graph, fact: URIRef, depth: int = 0) -> Node:
    concept = g.value(fact, GKG.concept)
    if concept is None and (fact, RDF.type, GKG.ImagingResult) in g:
        study = _key(g, g.value(fact, GKG.study))
        shows = ", ".join(sorted(_key(g, g.value(x, GKG.concept)) for x in g.objects(fact, GKG.shows)))
        return Node("fact", f"imaging result: {study} shows {shows or 'nothing matched'}", str(fact),
                    f"from {g.value(fact, GKG.source)}")
    if concept is None and (fact, RDF.type, GKG.VitalSign) in g:
        return Node("fact", f"{g.value(g.value(fact, GKG.measurement), RDFS.label)} {g.value(fact, GKG.value)} "
                    f"{g.value(fact, GKG.unit)} (as received: {g.value(fact, GKG.originalValue)} {g.value(fact, GKG.originalUnit)})",
                    str(fact), f"from {g.value(fact, GKG.source)}")
    status = str(g.value(g.value(fact, GKG.status), URIRef("http://www.w3.org/2004/02/skos/core#notation")) or "present")
    origin = g.value(fact, GKG.origin)
    node = Node("fact", f"{_key(g, concept)} {status}", str(fact))
    if origin == GKG.derived:
        rule = g.value(fact, GKG.byRule)
        node.detail = "derived"
        step = Node("inference", f"rule {str(rule).rsplit('/', 1)[-1]}.rq" if rule else "OWL-RL", str(rule) if rule else None)
        for source in sorted(g.objects(fact, DERIVED_FROM), key=str):
            child = _fact(g, source, depth + 1) if depth < 6 else Node("fact", str(source), str(source))
            source_concept = g.value(source, GKG.concept)
            if source_concept is not None and source_concept != concept and (source_concept, RDFS.subClassOf, concept) in g:
                child = Node("inference", f"OWL-RL: {_key(g, source_concept)} rdfs:subClassOf {_key(g, concept)}",
                             None, "cax-sco: an instance of a class is an instance of its superclasses", [child])
            step.children.append(child)
        node.children.append(step)
    else:
        sources = sorted(str(s) for s in g.objects(fact, GKG.source))
        node.detail = "asserted" + (f", from {', '.join(sources)}" if sources else "")
    return node


def _conclusion(g: Graph, conclusion: URIRef, element: URIRef, kind: str) -> Node:
    rule = g.value(conclusion, GKG.byRule)
    label = str(g.value(element, RDFS.label) or element)
    guideline_node = Node("guideline", f"{kind}: {label}", str(element))
    if kind == "recommendation":
        direction = str(g.value(element, DIRECTION)).rsplit("#", 1)[-1]
        guideline_node.detail = f"{direction} {_key(g, g.value(element, ACTION))}; condition: {g.value(element, URIRef(V + 'condition'))}"
    guideline_node.children = _statements(g, element)
    facts = []
    for fact in sorted(g.objects(conclusion, BECAUSE), key=str):
        fact_node = _fact(g, fact)
        if kind == "red flag":
            concept = g.value(fact, GKG.concept)
            flagged = sorted(_key(g, c) for c in g.objects(element, FLAG_CONCEPT) if (concept, RDFS.subClassOf, c) in g)
            if flagged and concept is not None and _key(g, concept) not in flagged:
                fact_node = Node("inference", f"OWL-RL: {_key(g, concept)} rdfs:subClassOf {', '.join(flagged)}", None,
                                 "cax-sco", [fact_node])
        facts.append(fact_node)
    rule_node = Node("inference", f"rule {str(rule).rsplit('/', 1)[-1]}.rq", str(rule) if rule else None,
                     "queries/rules/", facts)
    children = [rule_node, guideline_node]
    patient = g.value(conclusion, ABOUT)
    for until in sorted(g.objects(element, UNTIL), key=str):
        children.insert(1, _kept(g, patient, until))
    return Node("conclusion", f"{kind} for this patient", str(conclusion), None, children)


def _criteria(g: Graph, until: URIRef) -> list[URIRef]:
    return sorted(g.objects(until, CRITERION), key=lambda c: (int(g.value(c, ORDER) or 0), str(c)))


def _kept(g: Graph, patient: URIRef, until: URIRef) -> Node:
    """Why a recommendation that stands 'until' something still stands: each criterion that fails, with its evidence."""
    blocks = {g.value(b, CRITERION): b for p in g.objects(until, BLOCKED_WITH) for b in g.objects(patient, p)}
    node = Node("inference", f"stands: '{g.value(until, RDFS.label)}' does not hold", str(until),
                "it holds only when every criterion holds")
    for criterion in _criteria(g, until):
        block = blocks.get(criterion)
        if block is None:
            node.children.append(Node("inference", f"{g.value(criterion, RDFS.label)}: holds", str(criterion)))
            continue
        evidence = [_fact(g, e) for e in sorted(g.objects(block, EVIDENCE), key=str)]
        node.children.append(Node("inference", f"{g.value(criterion, RDFS.label)}: fails", str(criterion),
                                  str(g.value(criterion, DEFINITION)), evidence or [Node("fact", "no such study on record")]))
    return node


def _lapsed(g: Graph, patient: URIRef, element: URIRef, until: URIRef) -> Node | None:
    """A recommendation that stood 'until' something, which now holds for the patient: every criterion, and why."""
    witnesses = [w for p in g.objects(until, LAPSES_WITH) for w in g.objects(patient, p)]
    if not witnesses:
        return None
    holds = Node("inference", f"lapsed: '{g.value(until, RDFS.label)}' holds", str(until),
                 "every criterion holds", [_fact(g, w) for w in sorted(witnesses, key=str)])
    for criterion in _criteria(g, until):
        holds.children.append(Node("inference", f"{g.value(criterion, RDFS.label)}: holds", str(criterion),
                                   str(g.value(criterion, DEFINITION))))
    for older, newer in sorted(g.subject_objects(SUPERSEDED_BY), key=str):
        holds.children.append(Node("inference", "superseded by a newer negative qualifying study", str(older), None,
                                   [_fact(g, older), _fact(g, newer)]))
    guideline_node = Node("guideline", f"recommendation: {g.value(element, RDFS.label) or element}", str(element),
                          f"condition: {g.value(element, URIRef(V + 'condition'))}", _statements(g, element))
    return Node("conclusion", "recommendation lapsed for this patient", None, None, [holds, guideline_node])


def explain(guideline: Guideline, report: Report, key: str) -> Node:
    g = report.reasoned.graph
    if g is None:
        raise InputError("the patient graph does not conform: nothing was derived to explain")
    patient = report.reasoned.patient.patient
    roots = []
    for conclusion in sorted(g.subjects(ABOUT, patient), key=str):
        for link, kind in ((RECOMMENDATION, "recommendation"), (RED_FLAG, "red flag"), (DIFFERENTIAL, "differential")):
            for element in sorted(g.objects(conclusion, link), key=str):
                target = g.value(element, ACTION) if kind == "recommendation" else g.value(conclusion, GKG.concept)
                if _key(g, target) == key:
                    roots.append(_conclusion(g, conclusion, element, kind))
    if not roots:
        for element in sorted(g.subjects(UNTIL, None), key=str):
            if _key(g, g.value(element, ACTION)) == key:
                lapsed = [_lapsed(g, patient, element, until) for until in sorted(g.objects(element, UNTIL), key=str)]
                roots.extend(node for node in lapsed if node is not None)
    if not roots:
        raise InputError(f"{key}: no recommendation, red flag or diagnosis with this key was derived for the patient")
    return Node("conclusion", key, None, f"{len(roots)} derivation(s)", roots)


def _lines(node: Node, prefix: str = "", last: bool = True, top: bool = True) -> list[str]:
    text = node.label + (f" — {node.detail}" if node.detail else "")
    lines = [text] if top else [prefix + ("└─ " if last else "├─ ") + text]
    child_prefix = "" if top else prefix + ("   " if last else "│  ")
    for i, child in enumerate(node.children):
        lines.extend(_lines(child, child_prefix, i == len(node.children) - 1, False))
    return lines


def render_explanation(guideline: Guideline, tree: Node, fmt: str, report: Report | None = None) -> str:
    if fmt == "json":
        return json.dumps(asdict(tree), indent=2, ensure_ascii=False) + "\n"
    if fmt == "turtle":
        if report is None:
            raise InputError("turtle explanation needs the report")
        full = report_graph(guideline, report)
        keep = Graph()
        for prefix, ns in full.namespaces():
            keep.bind(prefix, ns)
        todo = [URIRef(n.iri) for n in _walk(tree) if n.iri]
        for node in todo:
            for triple in full.triples((node, None, None)):
                keep.add(triple)
        for triple in full.triples((None, PROV.used, None)):
            keep.add(triple)
        return keep.serialize(format="turtle")
    return "\n".join(_lines(tree)) + "\n"


def _walk(node: Node) -> list[Node]:
    out = [node]
    for child in node.children:
        out.extend(_walk(child))
    return out


__all__ = ["Node", "explain", "render_explanation", "Any"]
