"""What the fast engine reads of the encoding, computed once and kept on disk.

The owlrl closure of the guideline, its asserted triples and the patient shapes' triples, keyed by
``Guideline.fingerprint`` (every ontology, rule and shape file) in ``$XDG_CACHE_HOME/guideline-kg``
(else ``~/.cache/guideline-kg``); an unwritable cache only costs the work on every start.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rdflib import Graph

from reasoner import cache
from reasoner.cache import cache_dir
from reasoner.engine import closure
from reasoner.guideline import Guideline

Triple = tuple[Any, Any, Any]
CACHE_VERSION = "3"  # 3: one object per term
SHAPE_GRAPHS = ("patient", "patient-inferred")


def closed_guideline(guideline: Guideline) -> list[Triple]:
    """The owlrl closure of the guideline graph, from the disk cache when the encoding is unchanged."""
    return guideline_inputs(guideline)["closed"]


def guideline_inputs(guideline: Guideline) -> dict[str, Any]:
    """What the engine reads of the encoding, from the disk cache when the encoding is unchanged.

    ``closed``: the owlrl closure of the guideline graph; ``asserted``: the guideline graph's
    triples; ``shapes``: the patient shapes graphs' triples by name. Keyed by
    ``Guideline.fingerprint`` (every ontology, rule and shape file): a cache hit parses no Turtle.
    """
    path = cache_dir() / f"inputs-{CACHE_VERSION}-{guideline.fingerprint}.pickle"
    entry = cache.read(path)
    if isinstance(entry, dict) and {"closed", "asserted", "shapes"} <= entry.keys():
        return entry
    graph = Graph()
    graph += guideline.graph
    closure(graph)
    terms: dict[Any, Any] = {}

    def shared(triples: Iterable[Triple]) -> list[Triple]:
        """One object per term: pickled once, read back as one object (the engine's lookups then match by identity)."""
        return [(terms.setdefault(s, s), terms.setdefault(p, p), terms.setdefault(o, o)) for s, p, o in triples]

    entry = {"closed": shared(graph), "asserted": shared(guideline.graph),
             "shapes": {name: shared(guideline.shape_graph(name)) for name in SHAPE_GRAPHS}}
    cache.write(path, entry)  # an unwritable cache costs the closure on every start, nothing else
    return entry


def triples_graph(triples: Iterable[Triple]) -> Graph:
    graph = Graph()
    for t in triples:
        graph.add(t)
    return graph
