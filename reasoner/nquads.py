"""N-Quads of a report graph: one named graph, one statement a line, sorted (the same graph, the same text).

The text is rdflib's N-Triples row (``rdflib.plugins.serializers.nt._nt_row``) with the graph name put
before the final dot, byte for byte, written without a call per term: an IRI is ``<iri>`` (rdflib refuses
one holding any of ``<>" {}|\\^``` with an exception, and so does this), a blank node ``_:label``, a literal
rdflib's ``_quoteLiteral`` of it. A batch writes this for every patient.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

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


__all__ = ["nquads"]
