"""A compiled SELECT, CONSTRUCT or ASK query (``Plan``): compiled once, evaluated over a patient's data."""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from typing import Any

from rdflib import BNode, Variable

import reasoner.algebra  # noqa: F401  (registers the reducers copy.deepcopy and pickle need)
from reasoner.plan.bindings import Bindings, State
from reasoner.plan.compiler import Compiler
from reasoner.plan.construct import _Factored, _fill_template
from reasoner.plan.data import Data, Triple
from reasoner.plan.nodes import OrderedDictGet, Unsupported


def _private_copy(algebra: Any) -> Any:
    """A deep copy of a query's algebra (compiling marks its nodes).

    A pickle round trip: twice as fast as ``copy.deepcopy``, through the same reducers
    (``reasoner.algebra``), so what one cannot copy the other cannot either.
    """
    return pickle.loads(pickle.dumps(algebra, protocol=pickle.HIGHEST_PROTOCOL))  # noqa: S301  (our own bytes)


class Plan:
    """A compiled SELECT, CONSTRUCT or ASK query."""

    def __init__(self, query: Any, interned: dict[Any, Any] | None = None) -> None:
        algebra = _private_copy(query.algebra)
        self.prologue = query.prologue
        self.kind = algebra.name
        compiler = Compiler(interned, sets=algebra.name in ("ConstructQuery", "AskQuery"))
        if self.kind not in ("SelectQuery", "ConstructQuery", "AskQuery"):
            raise Unsupported(f"query form {self.kind}")
        if OrderedDictGet(algebra, "datasetClause"):
            raise Unsupported("FROM / FROM NAMED")
        self.op = compiler.part(algebra.p)
        self.variables = [compiler.var(v) for v in OrderedDictGet(algebra, "PV") or []]
        self._canonical = compiler.variables  # each variable as the one object the compiled query holds
        template = OrderedDictGet(algebra, "template")
        if self.kind == "ConstructQuery":
            if not template:
                raise Unsupported("CONSTRUCT WHERE")
            template = [tuple(compiler.term(x) for x in t) for t in template]
            if any(isinstance(x, BNode) for t in template for x in t):
                raise Unsupported("blank nodes in a CONSTRUCT template")
        self.template: list[Triple] = template or []
        # select and construct read only the projected variables of each solution (the template's
        # are among them): a projection at the top is left out, not a dict per solution built
        self._rows = self.op
        top = algebra.p
        if getattr(top, "name", None) == "Project":
            projected = {compiler.var(v) for v in OrderedDictGet(top, "PV") or []}
            if all(x in projected for t in self.template for x in t if isinstance(x, Variable)):
                self._rows = compiler.part(OrderedDictGet(top, "p"))
        # the template with where each variable stands, for construct without initial bindings
        self._fill = _fill_template(self.template, {})
        # a WHERE that is a product of parts sharing only a hub, evaluated part by part (a CONSTRUCT is a set)
        self._factored: _Factored | None = None
        if self.kind == "ConstructQuery" and self._rows is not self.op:
            self._factored = _Factored.build(compiler, OrderedDictGet(top, "p"), self.template)

    def _init(self, bindings: Bindings | None) -> Bindings:
        """The initial bindings keyed by the compiled query's own variable objects (lookups by identity)."""
        if not bindings:
            return {}
        canonical = self._canonical
        return {canonical.get(k, k): v for k, v in bindings.items()}

    def solutions(self, data: Data, bindings: Bindings | None = None) -> Iterator[Bindings]:
        init = self._init(bindings)
        st = State(data, init, self.prologue)
        return iter(self.op(st, dict(init)))

    def select(self, data: Data, bindings: Bindings | None = None) -> list[tuple[Any, ...]]:
        """Rows of the projected variables, None where unbound (rdflib's ResultRow order)."""
        init = self._init(bindings)
        variables = self.variables
        rows = self._rows(State(data, init, self.prologue), dict(init))
        if not any(v in init for v in variables):
            return [tuple(map(row.get, variables)) for row in rows]
        return [tuple(row.get(v, init.get(v)) for v in variables) for row in rows]

    def construct(self, data: Data, bindings: Bindings | None = None) -> set[Triple]:
        """rdflib's evalConstructQuery + _fillTemplate: a template triple with an unbound variable is left out."""
        out: set[Triple] = set()
        init = self._init(bindings)
        fill = _fill_template(self.template, init) if init else self._fill
        if self._factored is not None:
            for representative, lists, where in self._factored.rows(State(data, init, self.prologue), dict(init)):
                for (t, slots), k in zip(fill, where):
                    rows = (representative,) if k < 0 else ({**representative, **found} for found in lists[k])
                    for c in rows:
                        get = c.get
                        filled = list(t)
                        for i in slots:
                            x = get(t[i])
                            if x is None:
                                break
                            filled[i] = x
                        else:
                            out.add((filled[0], filled[1], filled[2]))
            return out
        for c in self._rows(State(data, init, self.prologue), dict(init)):
            get = c.get
            for t, slots in fill:
                if not slots:
                    out.add(t)
                    continue
                filled = list(t)
                for i in slots:
                    x = get(t[i])
                    if x is None:
                        break
                    filled[i] = x
                else:
                    out.add((filled[0], filled[1], filled[2]))
        return out

    def ask(self, data: Data, bindings: Bindings | None = None) -> bool:
        for _ in self.solutions(data, bindings):
            return True
        return False
