"""N-Quads of a report graph: one named graph, one statement a line, sorted (the same graph, the same text).

The text is rdflib's N-Triples row (``rdflib.plugins.serializers.nt._nt_row``) with the graph name put
before the final dot, byte for byte, written without a call per term: an IRI is ``<iri>`` (rdflib refuses
one holding any of ``<>" {}|\\^``` with an exception, and so does this), a blank node ``_:label``, a literal
rdflib's ``_quoteLiteral`` of it. A batch writes this for every patient.

Turtle is pyoxigraph's writer, given the triples sorted (subjects grouped, the same graph, the same text) and the
report's prefixes: about a tenth of rdflib's Turtle serializer, which works out prefixed names for every graph
again. A term pyoxigraph refuses (an IRI rdflib accepted but RFC 3987 does not) leaves the choice to rdflib.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pyoxigraph as ox
from rdflib import BNode, Literal, URIRef
from rdflib.plugins.serializers.nt import _nt_row, _quoteLiteral
from rdflib.term import _invalid_uri_chars


def nquads(graph: Iterable[tuple[Any, Any, Any]], name: str) -> str:
    """A report graph as N-Quads in the graph ``name``, one statement a line, sorted (the same graph, the same text)."""
    if not isinstance(graph, (set, frozenset, list, tuple)):
        graph = list(graph)  # read twice when an IRI is refused
    suffix = f" <{name}> .\n"
    rows: list[str] = []
    iris: list[str] = []  # every IRI written, checked at once below
    row = rows.append
    iri = iris.append
    literal_type, iri_type, blank_type = Literal, URIRef, BNode
    for s, p, o in graph:
        ts, to = type(s), type(o)
        if type(p) is not iri_type or (ts is not iri_type and ts is not blank_type):
            row(_nt_row((s, p, o))[:-3] + suffix)  # anything unusual: rdflib's own row
            continue
        subject = "".join(("<", s, ">")) if ts is iri_type else "".join(("_:", s))
        if ts is iri_type:
            iri(s)
        iri(p)
        if to is iri_type:
            iri(o)
            row("".join((subject, " <", p, "> <", o, ">", suffix)))
        elif to is literal_type:
            row("".join((subject, " <", p, "> ", _quoteLiteral(o), suffix)))
        elif to is blank_type:
            row("".join((subject, " <", p, "> _:", o, suffix)))
        else:
            row(_nt_row((s, p, o))[:-3] + suffix)
    if iris:
        joined = "".join(iris)
        if any(c in joined for c in _invalid_uri_chars):  # rdflib's exception, for the first such IRI
            for t in graph:
                _nt_row(t)
    return "".join(sorted(rows))


def _ox(term: Any) -> Any:
    kind = type(term)
    if kind is URIRef:
        return ox.NamedNode(term)
    if kind is BNode:
        return ox.BlankNode(term)
    if kind is Literal:
        if term.language:
            return ox.Literal(term, language=term.language)
        return ox.Literal(term, datatype=ox.NamedNode(term.datatype) if term.datatype is not None else None)
    raise ValueError(f"{kind.__name__} is not an RDF term of a report")


def turtle(graph: Iterable[tuple[Any, Any, Any]], prefixes: dict[str, str]) -> str | None:
    """A report graph as Turtle with ``prefixes``, its statements sorted; None when pyoxigraph refuses a term."""
    try:
        triples = sorted((ox.Triple(_ox(s), _ox(p), _ox(o)) for s, p, o in graph), key=str)
        return ox.serialize(triples, format=ox.RdfFormat.TURTLE, prefixes=prefixes).decode("utf-8")
    except (ValueError, TypeError):
        return None


__all__ = ["nquads", "turtle"]
