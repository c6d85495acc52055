"""Clinical knowledge lives in the graph, not in Python: no string constant of reasoner/ is a concept key, a
code, a code system, a statement id or a piece of the encoding's wording (a label, text or comment of the
guideline's resources). The check reads what counts as clinical from the graph itself, so a new label in the
Turtle is checked too; its own test shows it catches the kinds of strings that once lived in Python."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

from rdflib import Graph, Literal

from conftest import ROOT

VOCAB = "https://w3id.org/guideline-kg/vocab#"
GKG_KEY, GKG_CODE, GKG_SYSTEM_URI = VOCAB + "key", VOCAB + "code", VOCAB + "systemUri"
STATEMENT_ID = re.compile(r"\bS(0[1-9]|[1-3]\d|4[0-4])\b")
# substrings of the standard code systems' URIs (as ../shared/tools/house_figures.py looks for them)
SYSTEM_PARTS = ("loinc.org", "snomed.info", "icd-10", "ObservationInterpretation")


@dataclass(frozen=True)
class Clinical:
    """What counts as clinical, read from the encoding."""

    keys: frozenset[str]
    codes: frozenset[str]
    systems: frozenset[str]
    wording: frozenset[str]  # language-tagged literals about the guideline's resources (not the vocabulary's terms),
    # lower-cased: a heading in capitals or a label in lower case is the same words


def clinical_of(graph: Graph) -> Clinical:
    keys, codes, systems, wording = set(), set(), set(), set()
    for s, p, o in graph:
        if not isinstance(o, Literal):
            continue
        if str(p) == GKG_KEY:
            keys.add(str(o))
        elif str(p) == GKG_CODE:
            codes.add(str(o))
        elif str(p) == GKG_SYSTEM_URI:
            systems.add(str(o))
        elif o.language and not str(s).startswith(VOCAB):
            wording.add(str(o).lower())
    return Clinical(frozenset(keys), frozenset(codes), frozenset(systems), frozenset(wording))


def _bare(text: str) -> str:
    """The words of a literal without the punctuation and spaces that join it to others ("when: " -> "when")."""
    return text.strip(" \t\n:;,.-\u2013\u2014")


@dataclass(frozen=True)
class Hit:
    name: str
    line: int
    why: str
    value: str

    def __str__(self) -> str:
        return f"{self.name}:{self.line} {self.why} {self.value[:50]!r}"


def clinical_literals(source: str, clinical: Clinical, name: str = "<source>") -> list[Hit]:
    """Each string constant of ``source`` (docstrings and ``__all__`` aside) that is clinical."""
    tree = ast.parse(source)
    docs = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant)}
    for node in ast.walk(tree):  # __all__ lists Python names, not knowledge
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            docs |= {id(n) for n in ast.walk(node.value)}
    hits = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Constant) and isinstance(node.value, str)) or id(node) in docs:
            continue
        v = node.value
        why = ("concept key" if v in clinical.keys else "code" if v in clinical.codes else
               "statement id" if STATEMENT_ID.search(v) else
               "code system" if v in clinical.systems or any(s in v for s in SYSTEM_PARTS) else
               "wording" if _bare(v) and _bare(v).lower() in clinical.wording else None)
        if why:
            hits.append(Hit(name, node.lineno, why, v))
    return hits


# Structure or presentation that happens to equal a word of the encoding, each with why it may stay.
NOT_CLINICAL = {
    ("reasoner/diagram.py", "fallback"): "a box style (the CSS class the SVG gives a fallback study's box)",
    ("reasoner/cds.py", "red flags"): "a CDS card's summary and topic display (presentation of the service)",
    ("reasoner/text.py", "when"): "how the text report introduces a recommendation's condition",
    ("reasoner/text.py", "red flags"): "a section heading of the text report",
    ("reasoner/text.py", "do not"): "a section heading of the text report",
    ("reasoner/text.py", "do"): "a section heading of the text report",
    ("reasoner/html.py", "red flags"): "a section heading of the explanation page",
    ("reasoner/html.py", "do not"): "a section heading of the explanation page",
}


def _graph() -> Graph:
    graph = Graph()
    for path in sorted((ROOT / "ontology").glob("*.ttl")):
        graph.parse(path)
    return graph


def test_no_python_module_of_the_reasoner_holds_clinical_knowledge_as_a_literal() -> None:
    clinical = clinical_of(_graph())
    assert len(clinical.keys) > 60 and len(clinical.codes) > 70 and len(clinical.wording) > 300
    hits = []
    for path in sorted((ROOT / "reasoner").rglob("*.py")):
        if path.name == "namespaces.py":  # namespace bindings are names, not knowledge
            continue
        hits += clinical_literals(path.read_text(encoding="utf-8"), clinical, str(path.relative_to(ROOT)))
    def where(hit: Hit) -> tuple[str, str]:
        return hit.name, _bare(hit.value).lower()

    assert [str(h) for h in hits if where(h) not in NOT_CLINICAL] == []
    # every exception is still needed (a stale one would let a new literal of the same text through)
    assert {where(h) for h in hits} == set(NOT_CLINICAL)


def test_the_check_catches_keys_codes_systems_statement_ids_and_wording_but_not_structure() -> None:
    clinical = clinical_of(_graph())
    caught = '''
"""A docstring may name S10 and fever."""
title = "Do not"
fallback = "serious pathology"  # a concept's label, in lower case
arrows = ["examine", "fallback", "instead of", "if present"]
box = f"Look for (any one is a red flag): {x}"
key, code, system, statement = "fever", "443607001", "http://snomed.info/sct", "S02-S08"
'''
    hits = clinical_literals(caught, clinical)
    kinds = [f"{h.why} {h.value!r}" for h in hits]
    assert sorted(kinds) == sorted([
        "wording 'Do not'", "wording 'examine'", "wording 'fallback'", "wording 'instead of'",
        "wording 'if present'", "wording 'Look for (any one is a red flag): '", "concept key 'fever'",
        "code '443607001'", "code system 'http://snomed.info/sct'", "statement id 'S02-S08'",
        "wording 'serious pathology'"])
    structural = '''
kinds = ("resourceType", "Observation", "valueBoolean", "status", "final", "svg", "mermaid")
role = words["to-fallback"]
'''
    assert clinical_literals(structural, clinical) == []
