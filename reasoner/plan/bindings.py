"""Solutions as dicts: one evaluation's state, and what rdflib's evaluator does with solutions (forget, thaw,
compatible, join, distinct)."""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from rdflib.plugins.sparql.sparql import FrozenBindings, QueryContext

from reasoner.plan.data import Data

Bindings = dict[Any, Any]


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


def _compatible(x: Bindings, y: Bindings) -> bool:
    for k, v in x.items():
        w = y.get(k, _MISSING)
        if w is not _MISSING and w is not v and v != w:
            return False
    return True


_MISSING = object()


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


def _distinct_list(rows: Iterable[Bindings]) -> list[Bindings]:
    seen: set[frozenset[Any]] = set()
    out = []
    for row in rows:
        key = frozenset(row.items())
        if key not in seen:
            seen.add(key)
            out.append(row)
    return out
