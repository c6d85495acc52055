"""SPARQL graph patterns compiled into closures evaluated step for step as rdflib's evaluator does (the compiler)."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from rdflib import BNode, URIRef
from rdflib.paths import Path, SequencePath
from rdflib.plugins.sparql.evalutils import _val
from rdflib.plugins.sparql.parserutils import CompValue, value
from rdflib.plugins.sparql.sparql import SPARQLError
from rdflib.term import Node

from reasoner.plan.bgp import _BGP
from reasoner.plan.bindings import (_MISSING, Bindings, Op, State, _compatible, _distinct_list, _forget, _forgets,
                                    _frozen, _hash_join, _thaw)
from reasoner.plan.data import Triple
from reasoner.plan.expressions import Expressions
from reasoner.plan.nodes import OrderedDictGet, Unsupported, _branches, _is_var, _pattern_vars


class Compiler(Expressions):
    """Compiles one query's algebra (a private deep copy) into closures.

    Graph patterns are compiled here, expressions by the base class (reasoner.plan.expressions).
    """

    def __init__(self, interned: dict[Any, Any] | None = None, sets: bool = False) -> None:
        self.fresh = itertools.count()
        self.variables: dict[Any, Any] = {}
        self.interned = interned or {}  # constants as the data's own objects: dict lookups then skip __eq__
        # only which solutions exist matters (CONSTRUCT, ASK), not how often: a join's right side
        # need not be made distinct first (it changes only how many times a joined solution comes)
        self.distinct: Callable[[Iterable[Bindings]], list[Bindings]] = list if sets else _distinct_list
        self.substitutes: dict[int, Op] = {}  # algebra nodes (by id) compiled as a given op (_Factored)

    PATTERNS = {"BGP", "Filter", "Join", "LeftJoin", "Union", "Minus", "Extend", "ToMultiSet", "values",
                "Project", "Distinct", "Reduced", "Slice", "OrderBy"}

    def part(self, node: Any) -> Op:
        substitute = self.substitutes.get(id(node))
        if substitute is not None:
            return substitute
        name = getattr(node, "name", None)
        if name not in self.PATTERNS:
            raise Unsupported(f"SPARQL algebra {name}")
        return getattr(self, "_" + name.lower())(node)

    # -- graph patterns --

    def _bgp(self, node: Any) -> Op:
        patterns: list[Triple] = []
        for s, p, o in node.triples:
            if isinstance(p, SequencePath) and all(isinstance(a, URIRef) for a in p.args):
                # rdflib evaluates a/b as one solution per intermediate node: a chain through a fresh variable
                chain = [s, *(BNode(f"gkg-path-{next(self.fresh)}") for _ in p.args[1:]), o]
                patterns.extend((self.term(chain[i]), self.term(a), self.term(chain[i + 1]))
                                for i, a in enumerate(p.args))
            elif all(isinstance(x, Node) for x in (s, p, o)) and not isinstance(p, Path):
                patterns.append((self.term(s), self.term(p), self.term(o)))
            else:
                raise Unsupported(f"property path {p}")
        if not patterns:
            return lambda st, inp: iter((dict(inp),))
        bgp = _BGP(tuple((s, p, o, _is_var(s), _is_var(p), _is_var(o)) for s, p, o in patterns))
        return lambda st, inp: bgp.run(st.data, inp)

    def _filter(self, node: Any) -> Op:
        p = self.part(node.p)
        test = self.ebv(OrderedDictGet(node, "expr"))
        keep = self.var_set(OrderedDictGet(node, "_vars"))
        isolated = not node.__dict__.get("no_isolated_scope", False)
        reads = self.reads(OrderedDictGet(node, "expr"))

        def run(st: State, inp: Bindings) -> Iterator[Bindings]:
            # forgetting bindings from outside changes the answer only if the expression reads one of them
            forget = isolated and _forgets(st, inp, keep, reads)
            for c in p(st, inp):
                if test(st, _forget(st, c, inp, keep) if forget else c):
                    yield c
        return run

    def _join(self, node: Any) -> Op:
        p1, p2 = self.part(node.p1), self.part(node.p2)
        distinct = self.distinct
        sets = distinct is list
        if OrderedDictGet(node, "lazy"):
            def lazy(st: State, inp: Bindings) -> Iterator[Bindings]:
                for a in p1(st, inp):
                    for b in p2(st, _thaw(st, a)):
                        yield {**b, **a}
            return lazy

        if _pure(node.p2):
            # rdflib evaluates the right side once and joins its distinct solutions with each left one. A
            # right side of patterns only (no FILTER, BIND, OPTIONAL...) evaluated with the bindings every
            # left solution shares pushed in gives exactly the right solutions those could join with.
            branches = [_pattern_vars(b) for b in _branches(node.p2)]

            def shared(st: State, inp: Bindings) -> Iterator[Bindings]:
                left = list(p1(st, inp))
                if not left:
                    return
                common = dict(left[0])
                for x in left[1:]:
                    for k in [k for k, v in common.items() if (w := x.get(k, _MISSING)) is not v and w != v]:
                        del common[k]
                if len(left) > 1 and all(any(k in vs and k not in common for k in left[0]) for vs in branches):
                    # every branch reads a variable the left solutions differ in: evaluate it per left solution
                    for x in left:
                        for y in distinct(p2(st, _thaw(st, x))):
                            yield {**x, **y}
                    return
                if len(left) == 1 and sets:
                    # one left solution, every binding of it pushed in, no right solution made distinct first:
                    # the right ones stream in their order (an EXISTS stops at the first, not after all)
                    (x,) = left
                    for y in p2(st, _thaw(st, {**inp, **common})):
                        if _compatible(x, y):
                            yield {**x, **y}
                    return
                right = distinct(p2(st, _thaw(st, {**inp, **common})))
                yield from _hash_join(left, right)
            return shared

        def hashed(st: State, inp: Bindings) -> Iterator[Bindings]:
            right = distinct(p2(st, inp))
            for x in p1(st, inp):
                for y in right:
                    if _compatible(x, y):
                        yield {**x, **y}
        return hashed

    def _leftjoin(self, node: Any) -> Op:
        p1, p2 = self.part(node.p1), self.part(node.p2)
        condition = OrderedDictGet(node, "expr")
        test = self.ebv(condition)
        p1_vars = self.var_set(OrderedDictGet(node.p1, "_vars")) if isinstance(node.p1, CompValue) else None
        # rdflib re-evaluates a failed OPTIONAL with only the left side's own variables bound. With no
        # filter and a right side of patterns only, that can find something only when the right side
        # reads a variable the solution binds beyond those: otherwise the re-check is skipped.
        p2_vars = frozenset(self.var(v) for v in _pattern_vars(OrderedDictGet(node, "p2")))
        simple = getattr(condition, "name", None) == "TrueFilter" and _pure(OrderedDictGet(node, "p2"))

        always = getattr(condition, "name", None) == "TrueFilter"
        reads = self.reads(condition)

        def run(st: State, inp: Bindings) -> Iterator[Bindings]:
            forget = not always and _forgets(st, inp, None, reads)
            for a in p1(st, inp):
                ok = False
                for b in p2(st, _thaw(st, a)):
                    if always or test(st, _forget(st, b, inp, None) if forget else b):
                        ok = True
                        yield {**b, **a}
                if not ok:
                    if p1_vars is None or (simple and all(k in p1_vars for k in p2_vars if k in a)):
                        yield a
                        continue
                    remembered = _thaw(st, {k: v for k, v in a.items() if k in p1_vars})
                    if not any(test(st, b) for b in p2(st, remembered)):
                        yield a
        return run

    def _union(self, node: Any) -> Op:
        p1, p2 = self.part(node.p1), self.part(node.p2)
        return lambda st, inp: [*p1(st, inp), *p2(st, inp)]

    def _minus(self, node: Any) -> Op:
        p1, p2 = self.part(node.p1), self.part(node.p2)

        def run(st: State, inp: Bindings) -> Iterator[Bindings]:
            right = _distinct_list(p2(st, inp))
            for x in p1(st, inp):
                if all((not _compatible(x, y)) or not (x.keys() & y.keys()) for y in right):
                    yield x
        return run

    def _extend(self, node: Any) -> Op:
        p = self.part(node.p)
        compute = self.expr(OrderedDictGet(node, "expr"))
        var = self.var(OrderedDictGet(node, "var"))
        keep = self.var_set(OrderedDictGet(node, "_vars"))
        reads = self.reads(OrderedDictGet(node, "expr"))

        def run(st: State, inp: Bindings) -> Iterator[Bindings]:
            forget = _forgets(st, inp, keep, reads)
            for c in p(st, inp):
                try:
                    e = compute(st, _forget(st, c, inp, keep) if forget else c)
                except SPARQLError:
                    yield c
                else:
                    yield {**c, var: e}
        return run

    def _tomultiset(self, node: Any) -> Op:
        if getattr(node.p, "name", None) == "values":
            return self._values(node.p)
        return self.part(node.p)

    def _values(self, node: Any) -> Op:
        rows = [{self.var(k): (v if v == "UNDEF" else self.term(v)) for k, v in r.items()} for r in node.res]

        def run(st: State, inp: Bindings) -> Iterator[Bindings]:
            for r in rows:
                c = dict(inp)
                for k, v in r.items():
                    if v != "UNDEF":
                        if k in c and c[k] != v:
                            break
                        c[k] = v
                else:
                    yield c
        return run

    def _project(self, node: Any) -> Op:
        p = self.part(node.p)
        keep = {self.var(v) for v in OrderedDictGet(node, "PV")}
        return lambda st, inp: ({k: v for k, v in row.items() if k in keep} for row in p(st, inp))

    def _distinct(self, node: Any) -> Op:
        p = self.part(node.p)
        return lambda st, inp: _distinct_list(p(st, inp))

    def _reduced(self, node: Any) -> Op:
        p = self.part(node.p)

        def run(st: State, inp: Bindings) -> Iterator[Bindings]:
            last = None
            for row in p(st, inp):
                key = frozenset(row.items())
                if key != last:
                    yield row
                last = key
        return run

    def _slice(self, node: Any) -> Op:
        p = self.part(node.p)
        start, length = node.start, node.length
        return lambda st, inp: itertools.islice(p(st, inp), start, start + length if length is not None else None)

    def _orderby(self, node: Any) -> Op:
        p = self.part(node.p)
        conditions = [(OrderedDictGet(e, "expr"), bool(OrderedDictGet(e, "order") == "DESC"))
                      for e in OrderedDictGet(node, "expr")]
        for expr, _ in conditions:
            self._patch_exists(expr) if isinstance(expr, CompValue) else None

        def run(st: State, inp: Bindings) -> list[Bindings]:
            rows = list(p(st, inp))
            for expr, reverse in reversed(conditions):
                rows = sorted(rows, key=lambda x: _val(value(_frozen(st, x), expr, variables=True)), reverse=reverse)
            return rows
        return run


PURE = {"BGP", "Union", "Join", "ToMultiSet", "values"}


def _pure(node: Any) -> bool:
    """A pattern whose answer under pushed-in bindings is its answer filtered by them: no FILTER, BIND, OPTIONAL..."""
    if not isinstance(node, CompValue) or node.name not in PURE:
        return False
    if node.name == "BGP":
        return True
    if node.name == "values":
        return True
    if node.name == "ToMultiSet":
        return _pure(OrderedDictGet(node, "p"))
    return _pure(OrderedDictGet(node, "p1")) and _pure(OrderedDictGet(node, "p2"))
