"""CONSTRUCT: the template filled, and a WHERE that is a product of parts evaluated part by part (``_Factored``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from pyparsing import ParseResults
from rdflib import Variable
from rdflib.paths import Path
from rdflib.plugins.sparql.parserutils import CompValue

from reasoner.plan.bindings import Bindings, Op, State
from reasoner.plan.data import Triple
from reasoner.plan.nodes import OrderedDictGet, _branches, _is_var

if TYPE_CHECKING:
    from reasoner.plan.compiler import Compiler


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
