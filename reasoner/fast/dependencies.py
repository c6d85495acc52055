"""Rule-dependency analysis: which added triples can change a query's answer (its read keys).

The engine evaluates a rule again only when a triple was added since its last evaluation that
matches one of the rule's read keys; every other rule's answer, already added, cannot have changed.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from rdflib import RDF, BNode, URIRef, Variable

from reasoner.plan import Index

Triple = tuple[Any, Any, Any]
TYPE = RDF.type
ANY_TYPE = "any rdf:type"


def read_keys(algebra: Any, terms: dict[Any, Any] | None = None,
           keys_seen: dict[Any, Any] | None = None) -> frozenset[Any] | None:
    """What a query's triple patterns can match, as read keys; None when a pattern can match anything.

    A key is a predicate, an (rdf:type, class) pair, ANY_TYPE for ``?s a ?class``, or a guarded
    pattern ``(GUARDED, predicate, subject guard, object guard)`` when every match of its
    variable subject or object must also have other edges (see ``_guards``). An added triple
    changes a guarded key only when its subject and object have the edges of one alternative
    of their guards: a concept or a type given to a new recommendation then does not send
    every rule reading the concepts or types of findings round again. Sound because the
    guarding edges are read by the same query: one added later changes its own key.

    With ``terms``, every IRI in the keys is that dict's object for it, and each key the one
    object ``keys_seen`` holds for it (shared across queries).
    """
    keys: set[Any] = set()
    try:
        _walk_reads(algebra, {}, keys)
    except _ReadsAnything:
        return None
    if terms is None:
        return frozenset(keys)
    keys_seen = {} if keys_seen is None else keys_seen
    return frozenset(keys_seen.setdefault(k, _intern_key(k, terms)) for k in keys)


def _intern_key(key: Any, terms: dict[Any, Any]) -> Any:
    def term(x: Any) -> Any:
        return terms.get(x, x)

    def guard(g: Guard | None) -> Guard | None:
        return None if g is None else frozenset(frozenset((term(p), pos) for p, pos in alt) for alt in g)

    if not isinstance(key, tuple):
        return term(key)
    if key[0] == GUARDED:
        return (GUARDED, term(key[1]), guard(key[2]), guard(key[3]))
    return (term(key[0]), term(key[1]))


GUARDED = "guarded rdf:type"
Guard = frozenset[frozenset[tuple[Any, str]]]  # alternatives, each the edges (predicate, "s" or "o") a node has


class _ReadsAnything(Exception):
    pass


def _walk_reads(node: Any, context: dict[Any, Guard], keys: set[Any]) -> None:
    """Add the read keys of ``node``; ``context`` holds guards from conjunctive siblings (not under negation)."""
    name = getattr(node, "name", None)
    get = dict.get
    if name == "BGP":
        triples = get(node, "triples") or []
        for i, (s, p, o) in enumerate(triples):
            if not isinstance(p, URIRef):
                raise _ReadsAnything
            if p == TYPE and isinstance(o, URIRef):
                keys.add((TYPE, o))
                continue
            # the other patterns of the BGP (else the siblings') guard the subject and the object
            local = _bgp_guards(triples[:i] + triples[i + 1:])
            on_s = (local.get(s) or context.get(s)) if isinstance(s, (Variable, BNode)) else None
            on_o = (local.get(o) or context.get(o)) if isinstance(o, (Variable, BNode)) and p != TYPE else None
            if p == TYPE:
                keys.add((GUARDED, TYPE, on_s, None) if on_s else ANY_TYPE)
            else:
                keys.add((GUARDED, p, on_s, on_o) if on_s or on_o else p)
    elif name == "Join":
        p1, p2 = get(node, "p1"), get(node, "p2")
        _walk_reads(p1, {**context, **_guards(p2)}, keys)
        _walk_reads(p2, {**context, **_guards(p1)}, keys)
    elif name == "Union":
        _walk_reads(get(node, "p1"), context, keys)
        _walk_reads(get(node, "p2"), context, keys)
    elif name in ("LeftJoin", "Minus"):  # the right side may only remove or keep: no outside guard applies
        _walk_reads(get(node, "p1"), context, keys)
        _walk_reads(get(node, "p2"), {}, keys)
        _walk_expression(get(node, "expr"), keys)
    elif name in ("Filter", "Extend", "Project", "Distinct", "Reduced", "Slice", "OrderBy", "ToMultiSet",
                  "SelectQuery", "ConstructQuery", "AskQuery"):
        _walk_reads(get(node, "p"), context, keys)
        _walk_expression(get(node, "expr"), keys)
    elif name == "values" or node is None:
        pass
    else:  # anything else: every pattern in it, a type pattern with a variable class reading any type
        for s, p, o in patterns(node):
            if not isinstance(p, URIRef):
                raise _ReadsAnything
            keys.add(((TYPE, o) if isinstance(o, URIRef) else ANY_TYPE) if p == TYPE else p)


def _walk_expression(expression: Any, keys: set[Any]) -> None:
    """The read keys of the (NOT) EXISTS patterns inside an expression (walked without outside guards)."""
    stack = [expression]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if getattr(item, "name", None) in ("Builtin_EXISTS", "Builtin_NOTEXISTS"):
                # rdflib keeps the translated pattern as an attribute, the parsed one as an item
                _walk_reads(item.__dict__.get("graph", dict.get(item, "graph")), {}, keys)
                continue
            stack.extend(dict.values(item))
        elif isinstance(item, (list, tuple)):
            stack.extend(item)


def _bgp_guards(triples: list[Any]) -> dict[Any, Guard]:
    """Per variable of a BGP, the one alternative of its edges by a named predicate other than rdf:type."""
    edges: dict[Any, set[tuple[Any, str]]] = {}
    for s, p, o in triples:
        if isinstance(p, URIRef) and p != TYPE:
            if isinstance(s, (Variable, BNode)):
                edges.setdefault(s, set()).add((p, "s"))
            if isinstance(o, (Variable, BNode)):
                edges.setdefault(o, set()).add((p, "o"))
    return {v: frozenset({frozenset(e)}) for v, e in edges.items()}


def _guards(node: Any) -> dict[Any, Guard]:
    """Per variable, edges the node it is bound to has in every solution of ``node`` (no entry: unknown)."""
    name = getattr(node, "name", None)
    get = dict.get
    if name == "BGP":
        return _bgp_guards(get(node, "triples") or [])
    if name == "Union":
        left, right = _guards(get(node, "p1")), _guards(get(node, "p2"))
        return {v: left[v] | right[v] for v in left.keys() & right.keys()}
    if name == "Join":
        return {**_guards(get(node, "p2")), **_guards(get(node, "p1"))}
    if name in ("LeftJoin", "Minus"):
        return _guards(get(node, "p1"))
    if name in ("Filter", "Extend", "Distinct", "Reduced", "Slice", "OrderBy", "ToMultiSet"):
        return _guards(get(node, "p"))
    return {}


def satisfies(node: Any, guard: Guard, base: Index, side: Index) -> bool:
    """Has ``node`` the edges of one of the guard's alternatives, in either index?"""
    for alternative in guard:
        for p, position in alternative:
            subject = position == "s"
            for index in (base, side):
                edges = index.spo.get(node) if subject else index.pos.get(p)
                if edges is not None and (p if subject else node) in edges:
                    break
            else:  # neither index has the edge: not this alternative
                break
        else:
            return True
    return False


def patterns(node: Any) -> Iterator[Triple]:
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if "triples" in item and isinstance(item["triples"], list):
                for triple in item["triples"]:
                    if isinstance(triple, tuple) and len(triple) == 3:
                        yield triple
                    elif isinstance(triple, list) and len(triple) % 3 == 0:  # a pattern inside (NOT) EXISTS
                        yield from (tuple(triple[i:i + 3]) for i in range(0, len(triple), 3))
                    else:
                        yield (None, None, None)  # not understood: reads anything
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)

