"""The reference pipeline: validate, infer to a fixpoint, validate again, report.

Per patient: guideline + patient graph; OWL-RL closure (owlrl) and the rule files
of ``queries/rules/`` alternate until nothing new is derived, stratum by stratum
(a rule's NOT EXISTS reads only what earlier strata settled). This is the
definition of correct that any faster engine is compared against.
"""

from __future__ import annotations

from rdflib import RDF, Graph

from reasoner.fhir import PatientGraph
from reasoner.guideline import Guideline, Rule
from reasoner.namespaces import GKG
from reasoner.reasoned import Engine, Reasoned
from reasoner.validate import unique, validate

ANNOTATED = {GKG.PatientFinding, GKG.AppliedRecommendation, GKG.PatientRedFlag, GKG.PatientDifferential}


def closure(graph: Graph) -> None:
    import owlrl  # imported when first needed: the fast engine closes the guideline once, from a disk cache

    owlrl.DeductiveClosure(owlrl.OWLRL_Semantics, rdfs_closure=False, axiomatic_triples=False,
                           datatype_axioms=False).expand(graph)


def apply_rule(rule: Rule, graph: Graph) -> int:
    """Add what one rule constructs; returns how many triples were new."""
    before = len(graph)
    produced = graph.query(rule.query.prepared()).graph
    assert produced is not None
    typed = {s for s, o in produced.subject_objects(RDF.type) if o in ANNOTATED}
    for triple in produced:
        graph.add(triple)
    for subject in typed:
        graph.add((subject, GKG.byRule, rule.iri))
    return len(graph) - before


def run_rules(guideline: Guideline, graph: Graph, close=closure) -> None:
    """Stratum by stratum: closure, then every rule of the stratum, until a pass adds nothing."""
    closed_size = -1
    for stratum in sorted({r.stratum for r in guideline.rules}):
        rules = [r for r in guideline.rules if r.stratum == stratum]
        while True:
            if len(graph) != closed_size:  # a closure of an unchanged graph adds nothing
                close(graph)
                closed_size = len(graph)
            if sum(apply_rule(rule, graph) for rule in rules) == 0:
                break


class ReferenceEngine:
    """Straightforward per patient: owlrl closure + rule files + pyshacl. Slow and plainly correct."""

    name = "reference"

    def __init__(self, guideline: Guideline) -> None:
        self.guideline = guideline
        self.patient_shapes = guideline.shape_graph("patient")
        self.inferred_shapes = guideline.shape_graph("patient-inferred")

    def reason(self, patient: PatientGraph) -> Reasoned:
        data = Graph()
        data += self.guideline.graph
        data += patient.graph
        results = validate(data, self.patient_shapes)
        if any(r.severity == "Violation" for r in results):
            return Reasoned(patient, None, results)
        graph = Graph()
        graph += self.guideline.graph
        graph += patient.graph
        run_rules(self.guideline, graph)
        results += validate(graph, self.inferred_shapes)
        return Reasoned(patient, graph, unique(results))


__all__ = ["ReferenceEngine", "Reasoned", "Engine", "run_rules", "closure", "apply_rule", "ANNOTATED"]
