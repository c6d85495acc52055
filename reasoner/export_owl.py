"""``guideline-kg export --format owl``: the encoding as one OWL 2 DL ontology for OWL tools.

The encoding is written as modules (one ``owl:Ontology`` header per file of ``ontology/``) under
an umbrella ontology that ``owl:imports`` them; ``ontology/catalog-v001.xml`` resolves those
imports to the files for tools that follow them. This export is the other way in: the modules
merged into one ontology named by the umbrella's IRI (its version IRI and metadata kept, its
imports dropped since their content is inside), written as RDF/XML, the exchange syntax every
OWL 2 tool reads. Nothing is fetched and nothing is inferred: the asserted axioms only.
"""

from __future__ import annotations

from rdflib import Graph, URIRef
from rdflib.namespace import OWL, RDF

from reasoner.errors import GuidelineError


def umbrella(graph: Graph) -> URIRef:
    """The one ontology header of the encoding that no other header imports."""
    heads = {h for h in graph.subjects(RDF.type, OWL.Ontology) if isinstance(h, URIRef)}
    imported = set(graph.objects(None, OWL.imports))
    roots = sorted(h for h in heads if h not in imported)
    if len(roots) != 1:
        names = ", ".join(f"<{r}>" for r in roots) or "none"
        raise GuidelineError(f"the OWL export needs exactly one ontology header that no other imports "
                             f"(the umbrella), found {len(roots)}: {names}")
    return roots[0]


def merged_ontology(graph: Graph) -> Graph:
    """``graph`` (not mutated) as one ontology: the umbrella's header, no module headers, no imports."""
    root = umbrella(graph)
    modules = {h for h in graph.subjects(RDF.type, OWL.Ontology) if h != root}
    for module in sorted(modules):
        other = sorted(str(t) for t in graph.objects(module, RDF.type) if t != OWL.Ontology)
        if other:  # its triples would be dropped with the header
            raise GuidelineError(f"<{module}> is both an ontology header and a {', '.join(other)}; give one of them another IRI")
    merged = Graph()
    for prefix, namespace in graph.namespaces():
        merged.bind(prefix, namespace, override=True)
    for s, p, o in graph:
        if s in modules or p == OWL.imports:
            continue
        merged.add((s, p, o))
    return merged


def owl_export(graph: Graph) -> str:
    """The merged ontology as RDF/XML."""
    return merged_ontology(graph).serialize(format="pretty-xml")
