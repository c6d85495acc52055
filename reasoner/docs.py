"""``guideline-kg docs``: HTML documentation of the encoding, drawn from its Turtle.

Two pages, each loading nothing (as the report page):

- the vocabulary (reasoner/templates/vocabulary.html): the ontology header (title, version,
  licence, description), then its classes, object and datatype properties and named
  individuals, each with its label, definition, comment, type, superclasses, domain, range,
  notation and where it is used; terms link to each other;
- the guideline (reasoner/templates/guideline.html): every concept (key, label, kind, parents,
  children, the statements naming it, its codes with code system, match kind and SKOS
  mapping property), every recommendation (direction, strength, urgency, action, condition,
  statements, citations), every statement (section, kind, text, citations, what encodes it)
  and every reference with what cites it. Everything is read by the SPARQL files of
  ``queries/docs/``; a column a file names in its ``#+ lists:`` header is gathered into a
  sorted list per row of the other columns.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from rdflib import Graph, Literal

from reasoner import resources
from reasoner.errors import InputError
from reasoner.guideline import Guideline, parse_rdf_file
from reasoner.html import CSP, style, templates
from reasoner.queries import QueryFile, load_folder

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


def render_vocabulary(path: Path, guideline_page: bool = False) -> str:
    """HTML documentation of a vocabulary file: its header, classes, properties and named individuals
    (``guideline_page``: it links to the guideline page written beside it)."""
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
        "description": " ".join(header.get(DCTERMS_NS + "description", [])), "guideline_page": guideline_page,
        "sections": [{"id": sid, "title": titles[sid], "terms": [documented(i) for i in iris]}
                     for sid, iris in grouped.items() if iris],
    }
    return templates().get_template("vocabulary.html").render(doc=doc, csp=CSP, style=style())


def _natural(text: str) -> tuple[Any, ...]:
    """Sort key that orders "2" before "10" (reference numbers) and leaves other text alphabetical."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text))


def _records(graph: Graph, query: QueryFile) -> list[dict[str, Any]]:
    """The rows of ``query``, one record per distinct value of its other columns (in the query's order), with
    each column its ``#+ lists:`` header names gathered into a sorted list of the values it takes."""
    lists = query.first("lists").split()
    records: dict[tuple[Any, ...], dict[str, Any]] = {}
    for values in _rows(graph, query):
        names = list(values)
        single = tuple(values.get(n) for n in names if n not in lists)
        record = records.get(single)
        if record is None:
            record = records[single] = {**{n: values.get(n) for n in names if n not in lists},
                                        **{n: set() for n in lists}}
        for name in lists:
            if values.get(name) is not None:
                record[name].add(values[name])
    for record in records.values():
        for name in lists:
            record[name] = sorted(record[name], key=_natural)
    return list(records.values())


def _rows(graph: Graph, query: QueryFile) -> list[dict[str, str | None]]:
    result = graph.query(query.prepared())
    names = [str(v) for v in result.vars or []]
    return [{n: (str(v) if v is not None else None) for n, v in zip(names, row, strict=True)} for row in result]


def _link(kind: str, ident: str | None) -> str | None:
    return f"{kind}-{ident}" if ident else None


def guideline_page(guideline: Guideline) -> dict[str, Any]:
    """What the guideline page shows, read from the guideline graph by queries/docs/."""
    graph = guideline.graph
    queries = load_folder(resources.queries_dir() / "docs")
    concepts = _records(graph, queries["concepts"])
    by_key = {c["key"]: c for c in concepts}
    for concept in concepts:
        concept["children"], concept["codes"], concept["actions"] = [], [], []
    for concept in concepts:
        for parent in concept["parent"]:
            if parent in by_key:
                by_key[parent]["children"].append(concept["key"])
    for code in _rows(graph, queries["concept-codes"]):
        if code["key"] in by_key:  # (a concept lacking a label is not documented, nor are its codes)
            by_key[str(code["key"])]["codes"].append(code)
    recommendations = _records(graph, queries["recommendations"])
    for rec in recommendations:
        if rec["action"] in by_key:
            by_key[rec["action"]]["actions"].append(rec["id"])
    statements = _records(graph, queries["statements"])
    by_id = {s["id"]: s for s in statements}
    for statement in statements:
        statement["encodings"] = []
    for row in _rows(graph, queries["statement-encodings"]):
        if row["id"] not in by_id:
            continue
        anchor = (_link("rec", row["recommendation"]) or _link("concept", row["concept"])
                  or _link("statement", row["introduced"]))
        by_id[str(row["id"])]["encodings"].append({"how": row["how"], "type": row["type"], "label": row["label"],
                                                   "anchor": anchor})
    references = _records(graph, queries["references"])
    by_number = {r["number"]: r for r in references}
    for reference in references:
        reference["citers"] = []
    for row in _rows(graph, queries["reference-citers"]):
        if row["number"] in by_number:
            anchor = _link("statement", row["statement"]) or _link("rec", row["recommendation"])
            by_number[row["number"]]["citers"].append({"type": row["type"], "label": row["label"], "anchor": anchor})
    info = guideline.info
    return {"title": info["title"], "version": info["version"], "iri": info["iri"], "concepts": concepts,
            "recommendations": recommendations, "statements": statements, "references": references}


def render_guideline(guideline: Guideline) -> str:
    """HTML documentation of the guideline: its concepts and codes, recommendations, statements and references."""
    return templates().get_template("guideline.html").render(doc=guideline_page(guideline), csp=CSP, style=style())


__all__ = ["render_vocabulary", "render_guideline", "guideline_page"]
