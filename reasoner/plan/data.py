"""The data a compiled query reads: triples in dictionary indexes, the guideline's and the patient's."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

Triple = tuple[Any, Any, Any]


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
