"""SPARQL expressions compiled into closures that answer as rdflib's operators do (the compiler's first half)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from types import MethodType
from typing import Any

from pyparsing import ParseResults
from rdflib import BNode, Literal, URIRef, Variable
from rdflib.plugins.sparql.operators import EBV, XSD_DTs, _compatibleStrings, string
from rdflib.plugins.sparql.parserutils import CompValue, Expr
from rdflib.plugins.sparql.sparql import FrozenBindings, NotBoundError, SPARQLError
from rdflib.term import _NUMERIC_LITERAL_TYPES, Node

from reasoner.plan.bindings import Bindings, Op, State, _thaw
from reasoner.plan.nodes import OrderedDictGet, Unsupported, _pattern_vars

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


class Expressions:
    """The expression half of ``Compiler`` (reasoner.plan.compiler): expressions, variables and constants.

    A (NOT) EXISTS compiles its pattern with the compiler's ``part``; the variables and the
    interned constants are the compiler's tables.
    """

    variables: dict[Any, Any]
    interned: dict[Any, Any]
    part: Callable[[Any], Op]

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
