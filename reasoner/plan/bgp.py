"""Basic graph patterns: Python loops generated per call shape over the two indexes, and the table of their code."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from reasoner.plan.bindings import Bindings
from reasoner.plan.data import EMPTY, Data, Index


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
