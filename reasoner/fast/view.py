"""One patient's reasoned graph as an ordinary rdflib ``Graph``, over the guideline store shared by every patient.

Explain and the RDF report read it as any graph; the guideline's own SELECT queries (the report's)
run as the engine's compiled plans over its indexes, any other query in rdflib.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from rdflib import Graph, Variable
from rdflib.plugins.stores.memory import Memory
from rdflib.query import Result
from rdflib.store import Store

from reasoner.plan import Data, Index, Plan

Triple = tuple[Any, Any, Any]


class Shared(Protocol):
    """What every patient's view shares (``FastEngine`` has it): the closed guideline and the report's plans."""

    base: frozenset[Triple]  # the closed guideline's triples
    base_index: Index  # the same, indexed
    select_plans: dict[int, tuple[Plan, frozenset[str]]]  # id of a prepared SELECT or CONSTRUCT -> (plan, parameters)

    @property
    def base_store(self) -> Memory: ...  # the same, as an rdflib store


class _Overlay(Store):
    """A store reading the shared, never modified guideline store and one patient's own triples.

    The patient's rdflib store is filled on first use: the JSON report never needs it.
    """

    context_aware = False
    formula_aware = False
    transaction_aware = False
    graph_aware = False

    def __init__(self, base: Callable[[], Memory], triples: set[Triple]) -> None:
        super().__init__()
        self._base = base
        self._pending: set[Triple] | None = triples
        self._top: Memory | None = None

    @property
    def base(self) -> Memory:
        return self._base()

    @property
    def top(self) -> Memory:
        if self._top is None:
            self._top = Memory()
            for t in self._pending or ():
                self._top.add(t, None)
            self._pending = None
        return self._top

    def add(self, triple, context, quoted=False):  # type: ignore[override]
        if not any(True for _ in self.base.triples(triple, None)):
            self.top.add(triple, context, quoted)

    def remove(self, triple, context=None):  # type: ignore[override]
        self.top.remove(triple, None)

    def triples(self, triple_pattern, context=None):  # type: ignore[override]
        yield from self.base.triples(triple_pattern, None)
        yield from self.top.triples(triple_pattern, None)

    def __len__(self, context=None):  # type: ignore[override]
        return self.base.__len__(None) + self.top.__len__(None)

    def contexts(self, triple=None):  # type: ignore[override]
        return iter(())

    def bind(self, prefix, namespace, override=True):  # type: ignore[override]
        self.top.bind(prefix, namespace, override=override)

    def namespace(self, prefix):  # type: ignore[override]
        found = self.top.namespace(prefix)
        return found if found is not None else self.base.namespace(prefix)

    def prefix(self, namespace):  # type: ignore[override]
        found = self.top.prefix(namespace)
        return found if found is not None else self.base.prefix(namespace)

    def namespaces(self):  # type: ignore[override]
        seen = set()
        for prefix, ns in itertools.chain(self.top.namespaces(), self.base.namespaces()):
            if prefix not in seen:
                seen.add(prefix)
                yield prefix, ns


class _Solutions:
    """A SELECT result shaped like rdflib's: ``vars`` and rows of rdflib terms."""

    def __init__(self, variables: list[Variable], rows: list[tuple[Any, ...]]) -> None:
        self.vars = variables
        self.rows = rows
        self.type = "SELECT"

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)


class PatientView(Graph):
    """The closed guideline plus one patient's reasoned triples, as an rdflib Graph.

    The guideline's store is shared, not copied. The guideline's own SELECT queries (the
    report's) run as compiled plans over the engine's indexes; any other query runs in rdflib.
    """

    def __init__(self, engine: Shared, triples: set[Triple], side: Index) -> None:
        super().__init__(store=_Overlay(lambda: engine.base_store, triples))
        self._engine = engine
        self._triples = triples
        self._data = Data(engine.base_index, side)

    def __contains__(self, triple: Any) -> bool:
        if isinstance(triple, tuple) and len(triple) == 3 and None not in triple:
            return triple in self._triples or triple in self._engine.base
        return super().__contains__(triple)

    def construct_triples(self, query_object: Any, bindings: dict[str, Any]) -> set[Triple] | None:
        """A guideline CONSTRUCT's triples from its compiled plan (a fresh set), or None when it has no plan."""
        known = self._engine.select_plans.get(id(query_object))
        if known is None or known[0].kind != "ConstructQuery" or not set(bindings) <= known[1]:
            return None
        return known[0].construct(self._data, {Variable(k): v for k, v in bindings.items()})

    def query(self, query_object, processor="sparql", result="sparql", initNs=None, initBindings=None,
              use_store_provided=True, **kwargs):  # type: ignore[override]
        known = self._engine.select_plans.get(id(query_object))
        bindings = dict(initBindings or {})
        if known is None or kwargs or not set(map(str, bindings)) <= known[1]:
            return super().query(query_object, processor, result, initNs, initBindings, use_store_provided, **kwargs)
        plan = known[0]
        if plan.kind == "ConstructQuery":  # the RDF report's graph
            constructed = Result("CONSTRUCT")
            constructed.graph = Graph()
            for triple in plan.construct(self._data, {Variable(str(k)): v for k, v in bindings.items()}):
                constructed.graph.add(triple)
            return constructed
        rows = plan.select(self._data, {Variable(str(k)): v for k, v in bindings.items()})
        return _Solutions(plan.variables, rows)

