"""What the compiler reads of rdflib's algebra: node items as stored, the variables and UNION branches of a
pattern; ``Unsupported`` for what it does not cover."""

from __future__ import annotations

from typing import Any

from rdflib import BNode, Variable


class Unsupported(Exception):
    """The query uses SPARQL the compiler does not cover; evaluate it with rdflib instead."""


def _is_var(term: Any) -> bool:
    return isinstance(term, (Variable, BNode))


def _branches(node: Any) -> list[Any]:
    """The operands of a (nested) UNION, or the pattern itself."""
    if getattr(node, "name", None) == "Union":
        return _branches(OrderedDictGet(node, "p1")) + _branches(OrderedDictGet(node, "p2"))
    return [node]


def _pattern_vars(node: Any) -> frozenset[Any]:
    found: set[Any] = set()
    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, (Variable, BNode)):
            found.add(n)
        elif isinstance(n, dict):
            stack.extend(dict.values(n))
        elif isinstance(n, (list, tuple)):
            stack.extend(n)
    return frozenset(found)


def OrderedDictGet(node: Any, key: str) -> Any:
    """An item of an algebra node as stored, without rdflib's evaluate-on-read."""
    return dict.get(node, key)
