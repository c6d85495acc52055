"""Copying and pickling rdflib's SPARQL algebra.

rdflib's parsed queries (``CompValue`` and ``Expr`` trees) cannot be rebuilt by pickle or
``copy.deepcopy`` as they are: ``CompValue.__init__`` needs a name and ``Expr`` keeps its
evaluation function as a bound method. The reducers registered here rebuild them, naming each
evaluation function by module and qualified name. An evaluation function that cannot be named
that way (a lambda other than rdflib's own TrueFilter) makes pickling fail with
``pickle.PicklingError``: the caller then parses the query again rather than caching it.
"""

from __future__ import annotations

import copyreg
import importlib
import pickle
from collections import OrderedDict
from types import MethodType
from typing import Any

from rdflib.plugins.sparql.parserutils import CompValue, Expr

_TRUE_FILTER = "TrueFilter"


def _function_name(function: Any, node_name: str) -> tuple[str, str] | None:
    if function is None:
        return None
    qualname = getattr(function, "__qualname__", "")
    if "<lambda>" in qualname or "<locals>" in qualname:
        if node_name == _TRUE_FILTER:
            return ("", _TRUE_FILTER)
        raise pickle.PicklingError(f"cannot name the evaluation function of {node_name}")
    return (function.__module__, qualname)


def _function(reference: tuple[str, str] | None) -> Any:
    if reference is None:
        return None
    module, qualname = reference
    if not module and qualname == _TRUE_FILTER:
        from rdflib.plugins.sparql.algebra import TrueFilter

        return TrueFilter._evalfn.__func__
    target: Any = importlib.import_module(module)
    for part in qualname.split("."):
        target = getattr(target, part)
    return target


def _rebuild(cls: type, name: str, function: tuple[str, str] | None, state: dict[str, Any]) -> CompValue:
    node = cls.__new__(cls)
    OrderedDict.__init__(node)
    node.__dict__.update(state)  # no BUILD step: CompValue answers None for any missing attribute, __setstate__ too
    node.name = name
    if issubclass(cls, Expr):
        evalfn = _function(function)
        node._evalfn = MethodType(evalfn, node) if evalfn is not None else None
    return node


def _reduce(node: CompValue) -> tuple[Any, ...]:
    state = {k: v for k, v in node.__dict__.items() if k not in ("name", "_evalfn", "ctx")}
    evalfn = node.__dict__.get("_evalfn")
    function = _function_name(evalfn.__func__ if evalfn is not None else None, node.name)
    return (_rebuild, (type(node), node.name, function, state), None, None, iter(list(OrderedDict.items(node))))


def register() -> None:
    """Teach pickle and copy how to rebuild rdflib's algebra nodes (idempotent)."""
    copyreg.pickle(CompValue, _reduce)
    copyreg.pickle(Expr, _reduce)


register()
