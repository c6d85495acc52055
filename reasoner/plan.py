"""SPARQL queries compiled once into Python closures over one patient's triples and the closed guideline.

The rule, report and shape-constraint queries are written in SPARQL; here rdflib's algebra of each
(``prepareQuery``) is compiled at load time into nested closures that evaluate the query the way
rdflib's own evaluator (``rdflib.plugins.sparql.evaluate``) does it, step for step: lazy joins
push bindings into their right side, non-lazy joins hash the right side, OPTIONAL re-checks
without outer bindings, FILTER and BIND forget the bindings pushed in from outside their
group, (NOT) EXISTS sees the bindings of its filter. What changes is the data access: patterns
are matched against two dictionary indexes (the closed guideline, built once, and the
patient's side, grown as rules conclude) instead of an rdflib store, by Python loops generated
per basic graph pattern and call shape (``_BGP``), and no FrozenBindings or QueryContext is
built per step. Expressions are evaluated by rdflib's own operators, or where re-implemented
(BOUND, IF, STR, CONCAT, IRI, &&, ||, !, comparisons) with the same argument evaluation and
error cases, so a comparison, a cast or an error means here what it means in the reference engine.

Anything the compiler does not cover (aggregates, GRAPH, SERVICE, property paths, blank nodes in
a CONSTRUCT template) raises ``Unsupported`` at load time; the caller then evaluates that query
with rdflib itself.
"""

from __future__ import annotations

import itertools
import operator
import pickle
from collections.abc import Callable, Iterable, Iterator
from types import MethodType
from typing import Any

from rdflib import BNode, Literal, URIRef, Variable
from rdflib.paths import Path, SequencePath
from pyparsing import ParseResults
from rdflib.plugins.sparql.evalutils import _val
from rdflib.plugins.sparql.operators import EBV, XSD_DTs, _compatibleStrings, string
from rdflib.plugins.sparql.parserutils import CompValue, Expr, value
from rdflib.plugins.sparql.sparql import FrozenBindings, NotBoundError, QueryContext, SPARQLError
from rdflib.term import _NUMERIC_LITERAL_TYPES, Node

import reasoner.algebra  # noqa: F401  (registers the reducers copy.deepcopy and pickle need)

Triple = tuple[Any, Any, Any]
Bindings = dict[Any, Any]


class Unsupported(Exception):
    """The query uses SPARQL the compiler does not cover; evaluate it with rdflib instead."""


# ---- the data: two indexes ----


class Index:
    """Triples indexed by subject then predicate, and by predicate then object."""

    __slots__ = ("spo", "pos", "per_predicate", "size", "memo", "_nodes")

    def __init__(self, triples: Iterable[Triple] = ()) -> None:
        self.memo: dict[Any, list[tuple[Any, ...]]] = {}  # see _BGP: answers that read only this index
        self._nodes: set[Any] | None = None
        self.spo: dict[Any, dict[Any, set[Any]]] = {}
        self.pos: dict[Any, dict[Any, set[Any]]] = {}
        self.per_predicate: dict[Any, int] = {}
        self.size = 0
        self.update(triples)

    def update(self, triples: Iterable[Triple]) -> None:
        """``add`` for each triple, with the lookups of the loop done once."""
        spo, pos, per_predicate = self.spo, self.pos, self.per_predicate
        added = 0
        for s, p, o in triples:
            by_p = spo.get(s)
            if by_p is None:
                spo[s] = {p: {o}}
            else:
                objects = by_p.get(p)
                if objects is None:
                    by_p[p] = {o}
                elif o in objects:
                    continue
                else:
                    objects.add(o)
            by_o = pos.get(p)
            if by_o is None:
                pos[p] = {o: {s}}
                per_predicate[p] = 1
            else:
                subjects = by_o.get(o)
                if subjects is None:
                    by_o[o] = {s}
                else:
                    subjects.add(s)
                per_predicate[p] += 1
            added += 1
        if added:
            self._nodes = None
            self.size += added

    def add(self, t: Triple) -> None:
        self.update((t,))

    def objects(self, s: Any, p: Any) -> Iterable[Any]:
        by_p = self.spo.get(s)
        return by_p.get(p, EMPTY) if by_p else EMPTY

    def subjects(self, p: Any, o: Any) -> Iterable[Any]:
        by_o = self.pos.get(p)
        return by_o.get(o, EMPTY) if by_o else EMPTY

    def pairs(self, p: Any) -> Iterable[tuple[Any, Any]]:
        by_o = self.pos.get(p)
        return [(s, o) for o, subjects in by_o.items() for s in subjects] if by_o else ()

    def has(self, s: Any, p: Any, o: Any) -> bool:
        by_p = self.spo.get(s)
        return bool(by_p) and o in by_p.get(p, EMPTY)

    def nodes(self) -> set[Any]:
        """Every subject and object (computed once: for the shared index, never added to after its first use)."""
        if self._nodes is None:
            nodes = set(self.spo)
            for by_o in self.pos.values():
                nodes.update(by_o)
            self._nodes = nodes
        return self._nodes

    def count(self, s: Any, p: Any, o: Any) -> int:
        """How many triples match a pattern (None is a wildcard), from the index sizes."""
        if p is not None:
            if s is not None:
                by_p = self.spo.get(s)
                objects = by_p.get(p) if by_p else None
                if not objects:
                    return 0
                if o is not None:
                    return 1 if o in objects else 0
                return len(objects)
            by_o = self.pos.get(p)
            if not by_o:
                return 0
            if o is not None:
                subjects = by_o.get(o)
                return len(subjects) if subjects else 0
            return self.per_predicate[p]
        if s is not None:
            by_p = self.spo.get(s)
            if not by_p:
                return 0
            if o is not None:
                return sum(1 for objects in by_p.values() if o in objects)
            return sum(map(len, by_p.values()))
        return self.size

    def match(self, s: Any, p: Any, o: Any) -> Iterator[Triple]:
        """Triples matching a pattern; None is a wildcard."""
        if s is not None:
            by_p = self.spo.get(s)
            if not by_p:
                return
            if p is not None:
                objects = by_p.get(p)
                if not objects:
                    return
                if o is not None:
                    if o in objects:
                        yield (s, p, o)
                else:
                    for x in objects:
                        yield (s, p, x)
                return
            for pp, objects in by_p.items():
                if o is not None:
                    if o in objects:
                        yield (s, pp, o)
                else:
                    for x in objects:
                        yield (s, pp, x)
            return
        if p is not None:
            by_o = self.pos.get(p)
            if not by_o:
                return
            if o is not None:
                for x in by_o.get(o, ()):
                    yield (x, p, o)
            else:
                for oo, subjects in by_o.items():
                    for x in subjects:
                        yield (x, p, oo)
            return
        for pp, by_o in self.pos.items():
            if o is not None:
                for x in by_o.get(o, ()):
                    yield (x, pp, o)
            else:
                for oo, subjects in by_o.items():
                    for x in subjects:
                        yield (x, pp, oo)


class Data:
    """What a query reads: a shared index (the guideline) and the patient's own, disjoint from it."""

    __slots__ = ("indexes", "_first", "_second")

    def __init__(self, *indexes: Index) -> None:
        self.indexes = indexes
        self._first = indexes[0] if indexes else Index()
        self._second = indexes[1] if len(indexes) == 2 else None

    def match(self, s: Any, p: Any, o: Any) -> Iterator[Triple]:
        for index in self.indexes:
            yield from index.match(s, p, o)

    def count(self, s: Any, p: Any, o: Any) -> int:
        n = 0
        for index in self.indexes:
            n += index.count(s, p, o)
        return n

    # the lookups of the generated pattern loops (_BGP): each index's answer, one after the other

    def objects(self, s: Any, p: Any) -> Iterable[Any]:
        if self._second is None:
            return [x for index in self.indexes for x in index.objects(s, p)]
        return _both(self._first.spo, self._second.spo, s, p)

    def subjects(self, p: Any, o: Any) -> Iterable[Any]:
        if self._second is None:
            return [x for index in self.indexes for x in index.subjects(p, o)]
        return _both(self._first.pos, self._second.pos, p, o)

    def pairs(self, p: Any) -> Iterable[tuple[Any, Any]]:
        return [pair for index in self.indexes for pair in index.pairs(p)]

    def has(self, s: Any, p: Any, o: Any) -> bool:
        return any(index.has(s, p, o) for index in self.indexes)


EMPTY: frozenset[Any] = frozenset()


def _both(first: dict[Any, dict[Any, set[Any]]], second: dict[Any, dict[Any, set[Any]]], key: Any, inner: Any
          ) -> Iterable[Any]:
    """The set at ``[key][inner]`` of two indexes' dicts (spo or pos), one after the other; no copy if one is empty."""
    by_key = first.get(key)
    x = by_key.get(inner) if by_key else None
    by_key = second.get(key)
    y = by_key.get(inner) if by_key else None
    if not y:
        return x or EMPTY
    return [*x, *y] if x else y


# ---- evaluation state ----


class State:
    """One evaluation: the data, the initial bindings, and the rdflib context expressions are evaluated in."""

    __slots__ = ("data", "init", "prologue", "_qctx")

    def __init__(self, data: Data, init: Bindings, prologue: Any) -> None:
        self.data = data
        self.init = init
        self.prologue = prologue
        self._qctx: QueryContext | None = None

    @property
    def qctx(self) -> QueryContext:
        """rdflib's query context, for the expressions rdflib evaluates; made when first needed."""
        if self._qctx is None:
            self._qctx = QueryContext(None, initBindings=self.init)
            self._qctx.prologue = self.prologue
            self._qctx._gkg_state = self  # type: ignore[attr-defined]  # read by (NOT) EXISTS
        return self._qctx


Op = Callable[[State, Bindings], Iterable[Bindings]]


def _frozen(st: State, b: Bindings) -> FrozenBindings:
    return FrozenBindings(st.qctx, b)


def _forget(st: State, c: Bindings, before: Bindings, keep: Any) -> Bindings:
    """rdflib's FrozenBindings.forget: drop what was bound before, unless kept or initial."""
    init = st.init
    keep = keep or ()
    return {k: v for k, v in c.items() if k in keep or k in init or k not in before}


def _forgets(st: State, inp: Bindings, keep: Any, reads: frozenset[Any]) -> bool:
    """Would _forget drop a binding the expression reads? (If not, the solution can be passed as it is.)"""
    keep = keep or ()
    init = st.init
    return any(k in reads and k not in keep and k not in init for k in inp)


def _thaw(st: State, b: Bindings) -> Bindings:
    """rdflib's QueryContext.thaw: the bindings of a solution, initial bindings on top."""
    if not st.init:
        return b
    return {**b, **st.init}


def _is_var(term: Any) -> bool:
    return isinstance(term, (Variable, BNode))


def _compatible(x: Bindings, y: Bindings) -> bool:
    for k, v in x.items():
        w = y.get(k, _MISSING)
        if w is not _MISSING and w is not v and v != w:
            return False
    return True


_MISSING = object()
COMPARISONS: dict[str, Callable[[Any, Any], Any]] = {
    ">": lambda x, y: x.__gt__(y), "<": lambda x, y: x.__lt__(y), "=": lambda x, y: x.eq(y),
    "!=": lambda x, y: x.neq(y), ">=": lambda x, y: x.__ge__(y), "<=": lambda x, y: x.__le__(y)}
TRUE, FALSE = Literal(True), Literal(False)
# rdflib's Literal comparisons of two well-typed numeric literals come down to these on their values
# (__gt__ and eq compare values; __lt__ is neither, __ge__ and __le__ either or equal)
NUMERIC_TYPES = frozenset(_NUMERIC_LITERAL_TYPES)
NUMERIC_COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    ">": lambda a, b: a > b, "=": lambda a, b: a == b, "!=": lambda a, b: not a == b,
    "<": lambda a, b: not a > b and not a == b, ">=": lambda a, b: a > b or a == b,
    "<=": lambda a, b: (not a > b and not a == b) or a == b}


# ---- the compiler ----


class Compiler:
    """Compiles one query's algebra (a private deep copy) into closures."""

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

    # -- expressions --

    def expr(self, e: Any) -> Callable[[State, Bindings], Any]:
        """A closure giving the expression's value under bindings, raising SPARQLError where rdflib's value is an error.

        BOUND, IF, STR, CONCAT, IRI, &&, ||, ! and (NOT) EXISTS are evaluated here the way
        rdflib's operators evaluate them (same argument evaluation, same error cases); any other
        expression is handed to rdflib's own operator, with compiled (NOT) EXISTS inside.
        """
        if isinstance(e, (Variable, BNode)):
            var = self.var(e)

            def variable(st: State, b: Bindings) -> Any:
                r = b.get(var)
                if r is None:
                    r = st.init.get(var)
                    if r is None:
                        raise NotBoundError(f"Variable {var} is not bound")
                return r
            return variable
        if isinstance(e, ParseResults) and len(e) == 1:
            return self.expr(e[0])
        if not isinstance(e, CompValue):
            if isinstance(e, (list, ParseResults)):
                raise Unsupported("a list where an expression was expected")
            constant = self.term(e)
            return lambda st, b: constant
        if not isinstance(e, Expr):
            raise Unsupported(f"expression {e.name}")
        name = e.name
        if name.startswith("Aggregate_"):
            raise Unsupported(f"aggregate {name}")
        if name in ("Builtin_EXISTS", "Builtin_NOTEXISTS"):
            graph = e.__dict__.get("graph", OrderedDictGet(e, "graph"))
            op = self.part(graph)
            e.__dict__["_gkg_op"] = op
            e._evalfn = MethodType(_exists, e)  # for an EXISTS inside an expression rdflib evaluates
            exists = name == "Builtin_EXISTS"
            true, false = Literal(exists), Literal(not exists)

            def run_exists(st: State, b: Bindings) -> Any:
                for _ in op(st, _thaw(st, dict(b))):
                    return true
                return false
            return run_exists
        if name == "TrueFilter":  # the condition of an OPTIONAL without FILTER: rdflib's answers Literal(True)
            return lambda st, b: TRUE
        arg = OrderedDictGet(e, "arg")
        if name == "Builtin_BOUND" and isinstance(arg, Variable):
            var = self.var(arg)
            return lambda st, b: TRUE if b.get(var) is not None or st.init.get(var) is not None else FALSE
        if name == "Builtin_STR":
            inner = self.expr(arg)
            return lambda st, b: Literal(str(inner(st, b)))
        if name == "Builtin_STRSTARTS":
            first, second = self.expr(OrderedDictGet(e, "arg1")), self.expr(OrderedDictGet(e, "arg2"))

            def strstarts(st: State, b: Bindings) -> Any:
                # rdflib's Builtin_STRSTARTS: both strings compatible (else an error), then str.startswith
                x, y = first(st, b), second(st, b)
                _compatibleStrings(x, y)
                return TRUE if x.startswith(y) else FALSE
            return strstarts
        if name == "Builtin_IRI" and getattr(arg, "name", None) == "Builtin_CONCAT" \
                and isinstance(OrderedDictGet(arg, "arg"), list):
            return self._iri_of_concat(e, arg)
        if name == "Builtin_IRI":
            return _iri(self.expr(arg))
        if name == "Builtin_CONCAT" and isinstance(arg, list):
            parts = [self.expr(a) for a in arg]

            def concat(st: State, b: Bindings) -> Any:
                values = [f(st, b) for f in parts]
                dts = {x.datatype for x in values if isinstance(x, Literal)}
                langs = {x.language for x in values if isinstance(x, Literal)}
                return Literal("".join(string(x) for x in values), datatype=dts.pop() if len(dts) == 1 else None,
                               lang=langs.pop() if len(langs) == 1 else None)
            return concat
        if name == "Builtin_IF":
            a1, a2, a3 = (self.expr(OrderedDictGet(e, k)) for k in ("arg1", "arg2", "arg3"))
            return lambda st, b: a2(st, b) if _ebv_value(a1(st, b)) else a3(st, b)
        if name == "RelationalExpression" and OrderedDictGet(e, "op") in COMPARISONS \
                and OrderedDictGet(e, "other") is not None:
            left, right = self.expr(OrderedDictGet(e, "expr")), self.expr(OrderedDictGet(e, "other"))
            op = OrderedDictGet(e, "op")
            compare = COMPARISONS[op]
            equality = op in ("=", "!=")

            def relational(st: State, b: Bindings) -> Any:
                # rdflib's RelationalExpression for one comparison, step by step
                x, y = left(st, b), right(st, b)
                if equality and type(x) is URIRef and type(y) is URIRef:
                    # two IRIs: eq and neq are rdflib's Identifier.__eq__, the equality of their texts
                    return TRUE if str.__eq__(x, y) is equal else FALSE
                if not equality:
                    if not isinstance(x, Literal) or not isinstance(y, Literal):
                        raise SPARQLError("Compare other than =, != of non-literals is an error")
                elif not isinstance(x, Node) or not isinstance(y, Node):
                    raise SPARQLError("I cannot compare this non-node")
                if isinstance(x, Literal) and isinstance(y, Literal) and not equality and (
                        x.datatype is not None and x.datatype not in XSD_DTs
                        and y.datatype is not None and y.datatype not in XSD_DTs):
                    raise SPARQLError("Can only do =,!= comparisons of non-XSD Literals")
                try:
                    if type(x) is Literal and type(y) is Literal and x.datatype in NUMERIC_TYPES \
                            and y.datatype in NUMERIC_TYPES and not x.ill_typed and not y.ill_typed \
                            and x.value is not None and y.value is not None:
                        r = numeric(x.value, y.value)  # Literal's own numeric fast path, without its tuple scans
                    else:
                        r = compare(x, y)
                    if r == NotImplemented:
                        raise SPARQLError("Error when comparing")
                except TypeError as te:
                    raise SPARQLError(*te.args) from None
                return TRUE if r else FALSE
            numeric = NUMERIC_COMPARISONS[op]
            equal = op == "="
            return relational
        if name == "UnaryNot":
            inner = self.expr(OrderedDictGet(e, "expr"))
            return lambda st, b: FALSE if _ebv_value(_captured(inner, st, b)) else TRUE
        if name in ("ConditionalAndExpression", "ConditionalOrExpression"):
            first = OrderedDictGet(e, "expr")
            other = OrderedDictGet(e, "other")
            if other is None:
                return self.expr(first)
            children = [(isinstance(x, (Variable, BNode)), self.expr(x)) for x in [first, *other]]
            conjunction = name == "ConditionalAndExpression"
            # rdflib evaluates every operand first (an unbound variable raises at once, an erroring
            # expression becomes an error value), then folds left to right. Past the last bare
            # variable no operand can raise while evaluated: those are evaluated as the fold reaches
            # them, and the ones after the fold's answer are not needed.
            eager = max((i + 1 for i, (is_var, _) in enumerate(children) if is_var), default=0)
            prefix = children[:eager]
            rest = [f for _, f in children[eager:]]

            if not prefix and conjunction:
                def conjoined(st: State, b: Bindings) -> Any:
                    # logical below, for a conjunction of no bare variable: each operand as the fold reaches it
                    for f in rest:
                        if not _ebv_value(_captured(f, st, b)):
                            return FALSE
                    return TRUE
                return conjoined

            def values(st: State, b: Bindings) -> Iterator[Any]:
                yield from [f(st, b) if is_var else _captured(f, st, b) for is_var, f in prefix]
                for f in rest:
                    yield _captured(f, st, b)

            def logical(st: State, b: Bindings) -> Any:
                if conjunction:
                    for x in values(st, b):
                        if not _ebv_value(x):
                            return FALSE
                    return TRUE
                error = None
                for x in values(st, b):
                    try:
                        if _ebv_value(x):
                            return TRUE
                    except SPARQLError as err:
                        error = err
                if error is not None:
                    raise error
                return FALSE
            return logical
        # anything else: rdflib's operator, (NOT) EXISTS inside it compiled
        self._patch_exists(e)

        def delegated(st: State, b: Bindings) -> Any:
            r = e.eval(FrozenBindings(st.qctx, b))
            if isinstance(r, SPARQLError):
                raise r
            return r
        return delegated

    def _iri_of_concat(self, e: Any, concat: Any) -> Callable[[State, Bindings], Any]:
        """IRI(CONCAT(...)), the rules' way of minting IRIs, without the intermediate Literals.

        CONCAT of plain literals is a plain literal of the joined text, and IRI of a literal reads
        only its text: when every operand is a plain literal (STR(x) always is), the IRI is made
        from the joined text directly; otherwise the operators run one by one as rdflib runs them.
        """
        generic = _iri(self.expr(concat))

        parts: list[tuple[bool, Callable[[State, Bindings], Any]]] = []
        for operand in OrderedDictGet(concat, "arg"):
            if getattr(operand, "name", None) == "Builtin_STR":
                parts.append((True, self.expr(OrderedDictGet(operand, "arg"))))
            else:
                parts.append((False, self.expr(operand)))

        def fused(st: State, b: Bindings) -> Any:
            pieces = []
            for is_str, f in parts:
                v = f(st, b)
                if not is_str and (type(v) is not Literal or v.datatype is not None or v.language is not None):
                    return generic(st, b)
                pieces.append(str(v))
            return st.prologue.absolutize(URIRef("".join(pieces)))
        return fused

    def _patch_exists(self, e: Any) -> None:
        stack = [e]
        while stack:
            n = stack.pop()
            if isinstance(n, CompValue):
                if n.name in ("Builtin_EXISTS", "Builtin_NOTEXISTS"):
                    self.expr(n)
                    continue
                if not isinstance(n, Expr) or n.name.startswith("Aggregate_"):
                    raise Unsupported(f"expression {n.name}")
                stack.extend(dict.values(n))
            elif isinstance(n, (list, tuple)):
                stack.extend(n)

    def ebv(self, e: Any) -> Callable[[State, Bindings], bool]:
        """rdflib's _ebv: the effective boolean value, an error being false."""
        f = self.expr(e)

        def run(st: State, b: Bindings) -> bool:
            try:
                return _ebv_value(f(st, b))
            except SPARQLError:
                return False
        return run

    def reads(self, e: Any) -> frozenset[Any]:
        """The variables an expression can read, those of its (NOT) EXISTS patterns included."""
        return frozenset(self.var(v) for v in _pattern_vars(e))

    def var_set(self, names: Any) -> frozenset[Any] | None:
        return None if names is None else frozenset(self.var(v) for v in names)

    def var(self, v: Any) -> Any:
        return self.variables.setdefault(v, v)

    def term(self, t: Any) -> Any:
        if isinstance(t, (Variable, BNode)):
            return self.var(t)
        return self.interned.get(t, t) if isinstance(t, Node) else t

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


def _hash_join(left: list[Bindings], right: list[Bindings]) -> Iterator[Bindings]:
    """rdflib's _join (each left solution with each compatible right one, in that order), through hash buckets.

    Right solutions are grouped by which of the variables every left solution binds they bind,
    and bucketed on those values; a left solution meets only the right ones that agree on them,
    in the right side's order.
    """
    if len(left) > 1:
        everywhere = set(left[0]).intersection(*left[1:])
        in_all_left = tuple(k for k in left[0] if k in everywhere)
    else:
        in_all_left = tuple(left[0])
    all_keys = frozenset(in_all_left)
    groups: dict[tuple[Any, ...], dict[Any, list[tuple[int, Bindings]]]] = {}
    getters: dict[tuple[Any, ...], Callable[[Bindings], Any]] = {}
    for i, y in enumerate(right):
        keys = in_all_left if y.keys() >= all_keys else tuple(k for k in in_all_left if k in y)
        getter = getters.get(keys)
        if getter is None:
            getter = getters[keys] = operator.itemgetter(*keys) if keys else _nothing
        groups.setdefault(keys, {}).setdefault(getter(y), []).append((i, y))
    if len(groups) == 1:
        ((keys, buckets),) = groups.items()
        getter = getters[keys]
        for x in left:
            for _, y in buckets.get(getter(x), ()):
                if _compatible(x, y):
                    yield {**x, **y}
        return
    for x in left:
        candidates = []
        for keys, buckets in groups.items():
            candidates.extend(buckets.get(getters[keys](x), ()))
        candidates.sort(key=_first)
        for _, y in candidates:
            if _compatible(x, y):
                yield {**x, **y}


def _nothing(_: Any) -> tuple[()]:
    return ()


def _first(pair: tuple[int, Any]) -> int:
    return pair[0]


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


def _distinct_list(rows: Iterable[Bindings]) -> list[Bindings]:
    seen: set[frozenset[Any]] = set()
    out = []
    for row in rows:
        key = frozenset(row.items())
        if key not in seen:
            seen.add(key)
            out.append(row)
    return out


class _BGP:
    """A basic graph pattern's triple patterns, each (s, p, o, s is a variable, p is one, o is one), and its join plans.

    rdflib's evalBGP matches the patterns one after the other, each solution so far pushed into
    the next pattern. Here the order is chosen per call shape and the loops are generated as
    Python source, once per shape (which variables are bound on entry, and which patterns no
    triple of the patient's side can match). The order changes nothing in the answer (a BGP's
    solutions are the same multiset in any order); a pattern with no match ends the call at once.

    The patterns no patient triple can match under the entry bindings (binding more can only
    narrow them) read only the shared guideline index: they are matched last, and their answer
    for the values bound by then is kept on that index (``Index.memo``) and reused for every
    later patient, when those values are guideline terms.
    """

    __slots__ = ("patterns", "variables", "_plans", "_probes")

    def __init__(self, patterns: tuple[tuple[Any, ...], ...]) -> None:
        self.patterns = patterns
        names: dict[Any, None] = {}
        for pattern in patterns:
            for x, is_var in zip(pattern[:3], pattern[3:]):
                if is_var:
                    names.setdefault(x, None)
        self.variables = tuple(names)
        self._plans: dict[tuple[Any, ...], Callable[[Bindings, Data], Iterator[Bindings]]] = {}
        self._probes: dict[tuple[bool, ...], Callable[[Bindings, Index, Index], int]] = {}

    def run(self, data: Data, b: Bindings) -> Iterable[Bindings]:
        bound = tuple(map(b.__contains__, self.variables))
        indexes = data.indexes
        if len(indexes) != 2:
            plan = self._plans.get((bound, -1))
            if plan is None:
                plan = self._plans[(bound, -1)] = self._compile(bound, 0, self._counts(data, b))
            return plan(b, data)
        probe = self._probes.get(bound)
        if probe is None:
            probe = self._probes[bound] = self._probe(bound)
        guideline = probe(b, indexes[0], indexes[1])
        if guideline < 0:  # a pattern without a match
            return ()
        plan = self._plans.get((bound, guideline))
        if plan is None:
            plan = self._plans[(bound, guideline)] = self._compile(bound, guideline, self._counts(data, b))
        return plan(b, data)

    def _probe(self, bound: tuple[bool, ...]) -> Callable[[Bindings, Index, Index], int]:
        """Generated: -1 if some pattern has no match under the entry bindings, else the mask of those no patient triple matches."""
        source = _Source(self.variables)
        entry = {v for v, is_bound in zip(self.variables, bound) if is_bound}
        lines = ["def probe(b, base, side):", "    bs, bp, ss, sp = base.spo, base.pos, side.spo, side.pos",
                 "    mask = 0"]
        lines += [f"    {source.local(v)} = b[{source.name(v)}]" for v in self.variables if v in entry]

        def ref(x: Any, is_var: bool) -> str | None:
            if not is_var:
                return source.constant(x)
            return source.local(x) if x in entry else None

        for i, (s, p, o, sv, pv, ov) in enumerate(self.patterns):
            rs, rp, ro = ref(s, sv), ref(p, pv), ref(o, ov)
            if rp is None or (s == o and sv and rs is None):
                args = f"{rs or 'None'}, None, {ro or 'None'}" if rp is None else f"{rs or 'None'}, {rp}, None"
                here, there = f"side.count({args})", f"base.count({args})"
            elif rs is not None and ro is not None:
                here, there = (f"({ro} in x.get({rp}, EMPTY) if (x := {index}.get({rs})) else False)"
                               for index in ("ss", "bs"))
            elif rs is not None:
                here, there = (f"({rp} in x if (x := {index}.get({rs})) else False)" for index in ("ss", "bs"))
            elif ro is not None:
                here, there = (f"({ro} in x if (x := {index}.get({rp})) else False)" for index in ("sp", "bp"))
            else:
                here, there = f"{rp} in sp", f"{rp} in bp"
            lines += [f"    if not {here}:", f"        if not {there}:", "            return -1",
                      f"        mask |= {1 << i}"]
        lines.append("    return mask")
        source.globals["EMPTY"] = EMPTY
        return source.function("\n".join(lines), "probe")

    def _counts(self, data: Data, b: Bindings) -> list[int]:
        """How many triples match each pattern under the entry bindings (what the join order starts from)."""
        return [data.count(b.get(s) if sv else s, b.get(p) if pv else p, b.get(o) if ov else o)
                for s, p, o, sv, pv, ov in self.patterns]

    def _compile(self, bound: tuple[bool, ...], guideline: int, counts: list[int]
                 ) -> Callable[[Bindings, Data], Iterator[Bindings]]:
        """The generated loops for one call shape."""
        entry = {v for v, is_bound in zip(self.variables, bound) if is_bound}
        everything = range(len(self.patterns))
        side_part = self._order([i for i in everything if not guideline >> i & 1], set(entry), counts)
        after = entry | {x for i in side_part for x in self._vars_of(i)}
        guideline_part = self._order([i for i in everything if guideline >> i & 1], set(after), counts)
        source = _Source(self.variables)
        lines = ["def run(b, data):", "    objects, subjects, pairs, has, match = data.objects, data.subjects, "
                 "data.pairs, data.has, data.match"]
        lines += [f"    {source.local(v)} = b[{source.name(v)}]" for v in self.variables if v in entry]
        known = set(entry)
        depth = 1
        for i in side_part:
            depth = source.pattern(lines, self.patterns[i], known, depth)
        if guideline_part:
            reads = [v for v in self.variables if v in known and any(v in self._vars_of(i) for i in guideline_part)]
            suffix = self._suffix(guideline_part, reads)
            free = [v for v in self.variables if v not in known and any(v in self._vars_of(i) for i in guideline_part)]
            pad = "    " * depth
            values = "".join(source.local(v) + ", " for v in reads)
            targets = "".join(source.local(v) + ", " for v in free)
            lines.append(f"{pad}for ({targets}) in _guideline_answers({source.constant(suffix)}, ({values}), "
                         "data.indexes[0]):")
            depth += 1
            known.update(free)
        added = ", ".join(f"{source.name(v)}: {source.local(v)}" for v in self.variables if v in known - entry)
        lines.append("    " * depth + ("yield {**b, " + added + "}" if added else "yield dict(b)"))
        return source.function("\n".join(lines), "run")

    def _suffix(self, order: list[int], reads: list[Any]) -> Callable[..., Iterator[tuple[Any, ...]]]:
        """The generated loops of the guideline-only patterns over the guideline index alone: tuples of what they bind."""
        source = _Source(self.variables)
        args = "".join(", " + source.local(v) for v in reads)
        lines = [f"def suffix(data{args}):",
                 "    objects, subjects, pairs, has, match = data.objects, data.subjects, data.pairs, data.has, "
                 "data.match"]
        known = set(reads)
        depth = 1
        for i in order:
            depth = source.pattern(lines, self.patterns[i], known, depth)
        free = [v for v in self.variables if v in known and v not in reads]
        lines.append("    " * depth + "yield (" + "".join(source.local(v) + ", " for v in free) + ")")
        return source.function("\n".join(lines), "suffix")

    def _vars_of(self, i: int) -> list[Any]:
        pattern = self.patterns[i]
        return [x for x, is_var in zip(pattern[:3], pattern[3:]) if is_var]

    def _order(self, todo: list[int], known: set[Any], counts: list[int]) -> list[int]:
        """Greedy: next the pattern with the fewest matches expected (entry counts, narrowed per position bound since)."""
        order: list[int] = []
        todo = list(todo)
        while todo:
            def cost(i: int) -> tuple[float, int]:
                variables = self._vars_of(i)
                narrowed = sum(1 for v in variables if v in known)
                free = sum(1 for v in variables if v not in known)
                return counts[i] / (20 ** narrowed), free
            best = min(todo, key=cost)
            todo.remove(best)
            order.append(best)
            known.update(self._vars_of(best))
        return order


class _Source:
    """Python source of generated pattern loops: names for variables (locals) and constants (globals)."""

    def __init__(self, variables: tuple[Any, ...]) -> None:
        self.numbers = {v: n for n, v in enumerate(variables)}
        self.globals: dict[str, Any] = {"_guideline_answers": _guideline_answers}
        self.constants: dict[int, str] = {}

    def local(self, v: Any) -> str:
        return f"v{self.numbers[v]}"

    def name(self, v: Any) -> str:
        return self.constant(v)

    def constant(self, x: Any) -> str:
        name = self.constants.get(id(x))
        if name is None:
            name = self.constants[id(x)] = f"k{len(self.constants)}"
            self.globals[name] = x
        return name

    def pattern(self, lines: list[str], pattern: tuple[Any, ...], known: set[Any], depth: int) -> int:
        """Append the loop (or test) matching one pattern; returns the new depth. ``known`` grows by what it binds."""
        s, p, o, sv, pv, ov = pattern
        pad = "    " * depth

        def ref(x: Any, is_var: bool) -> str | None:
            if not is_var:
                return self.constant(x)
            return self.local(x) if x in known else None

        rs, rp, ro = ref(s, sv), ref(p, pv), ref(o, ov)
        if rp is not None and rs is not None and ro is not None:
            lines.append(f"{pad}if has({rs}, {rp}, {ro}):")
            return depth + 1
        if rp is not None and rs is not None:
            lines.append(f"{pad}for {self.local(o)} in objects({rs}, {rp}):")
            known.add(o)
            return depth + 1
        if rp is not None and ro is not None:
            lines.append(f"{pad}for {self.local(s)} in subjects({rp}, {ro}):")
            known.add(s)
            return depth + 1
        if rp is not None and s != o:
            lines.append(f"{pad}for {self.local(s)}, {self.local(o)} in pairs({rp}):")
            known.update((s, o))
            return depth + 1
        # a variable predicate, or the same variable as subject and object: every triple, bound position by position
        lines.append(f"{pad}for _s, _p, _o in match({rs or 'None'}, {rp or 'None'}, {ro or 'None'}):")
        depth += 1
        pad = "    " * depth
        for x, is_free, found in ((s, rs is None, "_s"), (p, rp is None, "_p"), (o, ro is None, "_o")):
            if not is_free:
                continue
            if x in known:  # bound earlier in this same pattern: the values must agree
                lines.append(f"{pad}if {self.local(x)} != {found}:")
                lines.append(f"{pad}    continue")
            else:
                lines.append(f"{pad}{self.local(x)} = {found}")
                known.add(x)
        return depth

    def function(self, text: str, name: str) -> Any:
        namespace = dict(self.globals)
        code = COMPILED.get(text)
        if code is None:
            code = COMPILED[text] = compile(text, f"<bgp {name}>", "exec")
        exec(code, namespace)  # noqa: S102  (source generated above, no input text)
        return namespace[name]


# The generated code by its source text. A code object depends on nothing but that text and the
# interpreter, so the engine keeps this table on disk (reasoner.fast.generated): a new
# process then compiles only the call shapes no earlier process met.
COMPILED: dict[str, Any] = {}


def _guideline_answers(suffix: Callable[..., Iterator[tuple[Any, ...]]], values: tuple[Any, ...],
                       guideline: Index) -> list[tuple[Any, ...]]:
    """The guideline-only patterns' answer for these values, kept on the guideline index when they are its terms."""
    key = (suffix, values)
    found = guideline.memo.get(key)
    if found is None:
        found = list(suffix(guideline, *values))
        nodes = guideline.nodes()
        if all(x in nodes for x in values):  # keyed by guideline terms only: reused for every patient
            if len(guideline.memo) > MEMO_LIMIT:
                guideline.memo.clear()
            guideline.memo[key] = found
    return found


MEMO_LIMIT = 100_000  # answers kept per shared index before it starts again


def _iri(inner: Callable[[State, Bindings], Any]) -> Callable[[State, Bindings], Any]:
    """rdflib's Builtin_IRI over a compiled argument."""
    def iri(st: State, b: Bindings) -> Any:
        a = inner(st, b)
        if isinstance(a, URIRef):
            return a
        if isinstance(a, Literal):
            return st.prologue.absolutize(URIRef(a))
        raise SPARQLError("IRI function only accepts URIRefs or Literals/Strings!")
    return iri


def _ebv_value(rt: Any) -> bool:
    """rdflib's EBV, our own true and false answered first."""
    if rt is TRUE:
        return True
    if rt is FALSE:
        return False
    return EBV(rt)


def _captured(f: Callable[[State, Bindings], Any], st: State, b: Bindings) -> Any:
    """The value of an operand as rdflib passes it to its operator: an error becomes an error value."""
    try:
        return f(st, b)
    except SPARQLError as err:
        return err


def _exists(self: Any, ctx: FrozenBindings) -> Literal:
    """rdflib's Builtin_EXISTS over the compiled pattern: the filter's visible bindings pushed in."""
    st: State = ctx.ctx._gkg_state
    inp = _thaw(st, dict(ctx.items()))
    exists = self.name == "Builtin_EXISTS"
    for _ in self.__dict__["_gkg_op"](st, inp):
        return Literal(exists)
    return Literal(not exists)


# ---- compiled queries ----


# functions that give a new value on each call: a BIND of one per solution is not one per hub solution
_FRESH = {"Builtin_BNODE", "Builtin_RAND", "Builtin_UUID", "Builtin_STRUUID"}


def _has_node(node: Any, names: set[str]) -> bool:
    """Whether an algebra (or expression) holds a node of one of these names anywhere (EXISTS patterns included)."""
    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, CompValue):
            if n.name in names:
                return True
            stack.extend(dict.values(n))
        elif isinstance(n, (list, tuple, ParseResults)):
            stack.extend(n)
        elif isinstance(n, dict):
            stack.extend(dict.values(n))
    return False


def _fill_template(template: list[Triple], init: Bindings) -> list[tuple[Triple, list[int]]]:
    """Each template triple with the initial bindings put in, and the positions of the variables left."""
    filled = [tuple(init.get(x, x) if isinstance(x, Variable) else x for x in t) for t in template]
    return [(t, [i for i, x in enumerate(t) if isinstance(x, Variable)]) for t in filled]


def _private_copy(algebra: Any) -> Any:
    """A deep copy of a query's algebra (compiling marks its nodes).

    A pickle round trip: twice as fast as ``copy.deepcopy``, through the same reducers
    (``reasoner.algebra``), so what one cannot copy the other cannot either.
    """
    return pickle.loads(pickle.dumps(algebra, protocol=pickle.HIGHEST_PROTOCOL))  # noqa: S301  (our own bytes)


class _Hub:
    """One hub solution of a factored WHERE: its branch and, per component, the component's solutions under it."""

    __slots__ = ("branch", "lists")

    def __init__(self, branch: int, lists: list[list[Bindings]]) -> None:
        self.branch, self.lists = branch, lists


_HUB = object()  # the key a representative solution carries its _Hub under


class _Factored:
    """A CONSTRUCT whose WHERE is a product, evaluated factor by factor for the very same triples.

    A WHERE of FILTERs and BINDs over a basic graph pattern (or over one joined with a UNION of
    basic graph patterns, taken branch by branch: a join distributes over a union) often joins
    parts that share only the variables the FILTERs and BINDs read (the hub: ``?patient``):
    ``?patient gkg:entryFinding ?mass . ?patient gkg:hasFinding ?a . ?a a X . ?patient gkg:hasFinding ?b
    . ?b a Y``. Its solutions are every combination of the parts' solutions under one hub solution,
    so their number is the product of the parts' sizes (a patient with 1,000 of each: 10^9), while a
    template triple that reads one part (``?applied gkg:because ?a``) takes only that part's values.
    Here each part (component) is evaluated once, the FILTERs and BINDs run once per hub solution on
    one representative combination (they read only the hub, so every combination gives the same), and
    each template triple is filled from its own component's solutions: work linear in the parts. The
    triples are those of the plain evaluation (a CONSTRUCT is a set); a WHERE of any other shape, or
    a template triple reading two components, is evaluated plainly.
    """

    def __init__(self, chain: Op, where: list[list[int]]) -> None:
        self.chain = chain  # the FILTERs and BINDs over one representative per hub solution
        self.where = where  # per branch, per template triple: the component it reads (-1: the hub's only)

    @staticmethod
    def build(compiler: "Compiler", node: Any, template: list[Triple]) -> "_Factored | None":
        chain: list[Any] = []
        while getattr(node, "name", None) in ("Filter", "Extend"):
            chain.append(node)
            node = OrderedDictGet(node, "p")
        reads: set[Any] = set()
        for c in chain:
            reads |= compiler.reads(OrderedDictGet(c, "expr"))
        if _has_node([OrderedDictGet(c, "expr") for c in chain], _FRESH):
            return None
        branches = _product_branches(node)
        if branches is None:
            return None
        specs: list[tuple[list[Op], list[tuple[Any, ...]]]] = []
        where: list[list[int]] = []
        for triples in branches:
            patterns = [tuple(compiler.term(x) for x in t) for t in triples]
            every = {x for t in patterns for x in t if _is_var(x)}
            hub = every & reads
            components = _components(patterns, hub)
            private = [{x for i in c for x in patterns[i] if _is_var(x)} - hub for c in components]
            if sum(1 for own in private if own) < 2:  # no product of parts to spare
                return None
            reads_of: list[int] = []
            for t in template:
                touched = [k for k, own in enumerate(private) if any(x in own for x in t)]
                if len(touched) > 1:
                    return None
                reads_of.append(touched[0] if touched else -1)
            ops = [compiler._bgp(CompValue("BGP", triples=[triples[i] for i in c])) for c in components]
            hubs = [tuple(v for v in sorted(hub, key=str)
                          if any(v in patterns[i] for i in c)) for c in components]
            specs.append((ops, hubs))
            where.append(reads_of)

        def representatives(st: State, inp: Bindings) -> Iterator[Bindings]:
            # component by component, the hub values found so far pushed into the next one
            for branch, (ops, hubs) in enumerate(specs):
                partial: list[tuple[Bindings, list[list[Bindings]]]] = [(inp, [])]
                for op, names in zip(ops, hubs):
                    grown: list[tuple[Bindings, list[list[Bindings]]]] = []
                    for bound, lists in partial:
                        group: dict[tuple[Any, ...], list[Bindings]] = {}
                        for solution in op(st, bound):
                            group.setdefault(tuple(solution[v] for v in names), []).append(solution)
                        grown.extend(({**bound, **dict(zip(names, key))}, [*lists, found])
                                     for key, found in group.items())
                    partial = grown
                for _, lists in partial:
                    representative = dict(inp)
                    for found in lists:
                        representative.update(found[0])
                    representative[_HUB] = _Hub(branch, lists)
                    yield representative

        compiler.substitutes[id(node)] = representatives
        top = chain[0] if chain else node
        try:
            return _Factored(compiler.part(top), where)
        finally:
            del compiler.substitutes[id(node)]

    def rows(self, st: State, inp: Bindings) -> Iterator[tuple[Bindings, list[list[Bindings]] | None, list[int]]]:
        """(a representative that passed the FILTERs, with the BINDs; its component solutions; where each
        template triple reads)."""
        for representative in self.chain(st, inp):
            hub = representative[_HUB]
            yield representative, hub.lists, self.where[hub.branch]


def _product_branches(node: Any) -> list[list[Any]] | None:
    """The basic graph patterns a WHERE core is the union of (a BGP, or a BGP joined with a UNION of BGPs), as
    triple lists; None for any other shape or a property path."""
    if getattr(node, "name", None) == "BGP":
        branches = [list(node.triples)]
    elif getattr(node, "name", None) == "Join" and getattr(OrderedDictGet(node, "p1"), "name", None) == "BGP":
        operands = _branches(OrderedDictGet(node, "p2"))
        if not all(getattr(b, "name", None) == "BGP" for b in operands):
            return None
        left = list(OrderedDictGet(node, "p1").triples)
        branches = [left + list(b.triples) for b in operands]
    else:
        return None
    if any(not b or any(isinstance(t[1], Path) for t in b) for b in branches):
        return None
    return branches


def _components(patterns: list[Triple], hub: set[Any]) -> list[list[int]]:
    """The patterns (indexes) in groups that share no variable outside the hub."""
    parent = list(range(len(patterns)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first: dict[Any, int] = {}
    for i, t in enumerate(patterns):
        for x in t:
            if _is_var(x) and x not in hub:
                j = first.setdefault(x, i)
                parent[root(i)] = root(j)
    groups: dict[int, list[int]] = {}
    for i in range(len(patterns)):
        groups.setdefault(root(i), []).append(i)
    return list(groups.values())


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


__all__ = ["Plan", "Index", "Data", "Unsupported"]
