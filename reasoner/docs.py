"""``guideline-kg docs``: HTML documentation of a vocabulary file, drawn from its Turtle.

The ontology header (title, version, licence, description), then its classes, object and
datatype properties and named individuals, each with its label, definition, comment, type,
superclasses, domain, range, notation and where it is used; terms link to each other.
The page (reasoner/templates/vocabulary.html) loads nothing, as the report page.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rdflib import Graph, Literal

from reasoner import resources
from reasoner.errors import InputError
from reasoner.guideline import parse_rdf_file
from reasoner.html import CSP, style, templates
from reasoner.queries import load_folder

PREFIXES = {
    "http://www.w3.org/2002/07/owl#": "owl:", "http://www.w3.org/2000/01/rdf-schema#": "rdfs:",
    "http://www.w3.org/1999/02/22-rdf-syntax-ns#": "rdf:", "http://www.w3.org/2001/XMLSchema#": "xsd:",
    "http://purl.org/dc/terms/": "dcterms:", "http://www.w3.org/ns/prov#": "prov:",
    "http://www.w3.org/2004/02/skos/core#": "skos:", "http://purl.org/spar/cito/": "cito:",
}
RDFS_NS = "http://www.w3.org/2000/01/rdf-schema#"
SKOS_NS = "http://www.w3.org/2004/02/skos/core#"
OWL_NS = "http://www.w3.org/2002/07/owl#"
DCTERMS_NS = "http://purl.org/dc/terms/"
RDF_TYPE = "http://www.w3.org/1999/02/22-rdf-syntax-ns#type"
SECTIONS = (("classes", "Classes", {OWL_NS + "Class"}),
            ("object-properties", "Object properties", {OWL_NS + "ObjectProperty"}),
            ("datatype-properties", "Datatype properties", {OWL_NS + "DatatypeProperty"}))
SHOWN = (("rdfs:subClassOf", RDFS_NS + "subClassOf"), ("rdfs:subPropertyOf", RDFS_NS + "subPropertyOf"),
         ("rdfs:domain", RDFS_NS + "domain"), ("rdfs:range", RDFS_NS + "range"),
         ("skos:notation", SKOS_NS + "notation"), ("rdfs:seeAlso", RDFS_NS + "seeAlso"))


def render_vocabulary(path: Path) -> str:
    """HTML documentation of a vocabulary file: its header, classes, properties and named individuals."""
    graph = Graph()
    parse_rdf_file(path, graph)
    queries = load_folder(resources.queries_dir() / "docs")
    header: dict[str, list[str]] = {}
    ontology = ""
    for row in graph.query(queries["ontology"].prepared()):
        ontology = str(row[0])
        header.setdefault(str(row[1]), []).append(str(row[2]))
    if not ontology:
        raise InputError(f"{path.name}: no owl:Ontology header")
    ns = ontology + ("#" if not ontology.endswith(("#", "/")) else "")
    terms: dict[str, dict[str, list[str]]] = {}
    for term, p, o in graph.query(queries["terms"].prepared(), initBindings={"ns": Literal(ns)}):
        terms.setdefault(str(term), {}).setdefault(str(p), []).append(str(o))
    local = {iri: iri[len(ns):] for iri in terms}
    prefix = next((f"{p}:" for p, n in graph.namespaces() if str(n) == ns and p), "")

    def ref(iri: str) -> dict[str, str | None]:
        if iri in local:
            return {"anchor": local[iri], "text": prefix + local[iri]}
        for base, known in PREFIXES.items():
            if iri.startswith(base):
                return {"anchor": None, "text": known + iri[len(base):]}
        return {"anchor": None, "text": iri}

    def documented(iri: str) -> dict[str, Any]:
        term = terms[iri]
        rows = [("type", [ref(t) for t in sorted(term.get(RDF_TYPE, []))])]
        rows += [(name, [ref(v) if v.startswith(("http://", "https://")) and name != "skos:notation"
                         else {"anchor": None, "text": v} for v in sorted(term[key])])
                 for name, key in SHOWN if term.get(key)]
        used = sorted(other for other, t in terms.items()
                      if iri in t.get(RDFS_NS + "domain", []) or iri in t.get(RDFS_NS + "range", []))
        if used:
            rows.append(("used by", [ref(u) for u in used]))
        members = sorted(other for other, t in terms.items() if iri in t.get(RDF_TYPE, []))
        if members:
            rows.append(("members", [ref(m) for m in members]))
        return {"anchor": local[iri], "name": prefix + local[iri], "label": (term.get(RDFS_NS + "label") or [""])[0],
                "texts": [*term.get(SKOS_NS + "definition", []), *term.get(RDFS_NS + "comment", [])], "rows": rows}

    grouped: dict[str, list[str]] = {sid: [] for sid, _, _ in SECTIONS}
    grouped["individuals"] = []
    for iri, term in sorted(terms.items(), key=lambda kv: local[kv[0]].lower()):
        types = set(term.get(RDF_TYPE, []))
        section = next((sid for sid, _, kinds in SECTIONS if types & kinds), "individuals" if types else None)
        if section:
            grouped[section].append(iri)
    titles = {sid: title for sid, title, _ in SECTIONS} | {"individuals": "Named individuals"}
    doc = {
        "title": " ".join(header.get(DCTERMS_NS + "title", [local.get(ontology, ontology)])),
        "ontology": ontology, "source": path.name,
        "meta": [(label, header[key][0]) for label, key in (("version", OWL_NS + "versionInfo"),
                                                            ("licence", DCTERMS_NS + "license")) if header.get(key)],
        "description": " ".join(header.get(DCTERMS_NS + "description", [])),
        "sections": [{"id": sid, "title": titles[sid], "terms": [documented(i) for i in iris]}
                     for sid, iris in grouped.items() if iris],
    }
    return templates().get_template("vocabulary.html").render(doc=doc, csp=CSP, style=style())


__all__ = ["render_vocabulary"]
