"""The fast engine: the reference pipeline's stages (validate, infer to a fixpoint, validate again) per patient,
with the work cut to what the patient's facts can trigger."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rdflib import Graph, Literal
from rdflib.plugins.stores.memory import Memory

from reasoner.engine import ANNOTATED, Reasoned, ReferenceEngine, run_rules
from reasoner.fast.generated import load as load_generated_code
from reasoner.fast.closure import DATATYPE, SAME_AS, TYPE, DeltaClosure, TBox
from reasoner.fast.dependencies import ANY_TYPE, GUARDED, Guard, read_keys, satisfies
from reasoner.fast.inputs import guideline_inputs, triples_graph
from reasoner.fast.shapes import ShapeChecker, needed, shape_reads
from reasoner.fast.view import PatientView
from reasoner.fhir import PatientGraph
from reasoner.guideline import Guideline, Rule
from reasoner.namespaces import GKG
from reasoner.plan import Data, Index, Plan, Unsupported
from reasoner.validate import ShapeResult, unique, validate

Triple = tuple[Any, Any, Any]
BY_RULE = GKG.byRule


class FastEngine:
    """Same contract and same reports as ReferenceEngine; per patient, only what the patient's facts can trigger."""

    name = "fast"

    def __init__(self, guideline: Guideline) -> None:
        self.guideline = guideline
        load_generated_code()
        inputs = guideline_inputs(guideline)
        # one object per term: set and dict lookups then match by identity, without rdflib's __eq__.
        # The module's own constants (rdf:type, owl:sameAs, ...) are the objects kept.
        self.interned: dict[Any, Any] = {x: x for x in (TYPE, SAME_AS, DATATYPE, BY_RULE, *ANNOTATED)}
        self._local: dict[Any, Any] = {}  # the patient at hand's terms (see _intern)
        closed = [self._intern_base(t) for t in inputs["closed"]]
        self.base = frozenset(closed)
        self.tbox = TBox.of(closed)
        self.delta = DeltaClosure(self.base, self.tbox)
        self.base_index = Index(closed)
        asserted = [self._intern(t) for t in inputs["asserted"]]
        self.asserted_base = frozenset(asserted)
        self.asserted_index = Index(asserted)
        self._closed = closed
        self._base_store: Memory | None = None
        self.rules = list(guideline.rules)
        self.strata = sorted({r.stratum for r in self.rules})
        self.plans: dict[str, Plan | None] = {}
        for rule in self.rules:
            try:
                self.plans[rule.name] = Plan(rule.query.prepared(), self.interned)
            except Unsupported:
                self.plans[rule.name] = None  # evaluated by rdflib over the patient's view
        self.select_plans: dict[int, tuple[Plan, frozenset[str]]] = {}
        for q in guideline.queries.values():
            prepared = q.prepared()
            if prepared.algebra.name in ("SelectQuery", "ConstructQuery"):
                try:
                    self.select_plans[id(prepared)] = (Plan(prepared, self.interned),
                                                       frozenset(p.name for p in q.params) | {"patient"})
                except Unsupported:
                    pass
        self.patient_shapes = triples_graph(inputs["shapes"]["patient"])
        self.inferred_shapes = triples_graph(inputs["shapes"]["patient-inferred"])
        try:
            self.asserted_checker: ShapeChecker | None = ShapeChecker(self.patient_shapes, self.asserted_index, self.interned)
            self.inferred_checker: ShapeChecker | None = ShapeChecker(self.inferred_shapes, self.base_index, self.interned)
        except Unsupported:
            self.asserted_checker = self.inferred_checker = None
        self.asserted_needs = shape_reads(self.patient_shapes)
        self.inferred_needs = shape_reads(self.inferred_shapes)
        self.asserted_guideline = needed(asserted, self.asserted_needs)
        self.inferred_guideline = needed(closed, self.inferred_needs)
        self._reference: ReferenceEngine | None = None
        # read keys with the engine's term objects, one object per key (lookups by identity)
        one: dict[Any, Any] = {}
        self.reads = {r.name: read_keys(r.query.prepared().algebra, self.interned, one) for r in self.rules}
        # eq-ref triples can wait for the end of the rules unless a rule reads owl:sameAs (or anything)
        self.delta.eq_ref_now = SAME_AS in self.delta.by_predicate or any(
            keys is None or any(k == SAME_AS or (isinstance(k, tuple) and k[1] == SAME_AS) for k in keys)
            for keys in self.reads.values())
        self.rule_guards = {name: sorted((k for k in keys or () if isinstance(k, tuple) and k[0] == GUARDED), key=repr)
                            for name, keys in self.reads.items()}

    def _intern_base(self, t: Triple) -> Triple:
        setdefault = self.interned.setdefault
        return (setdefault(t[0], t[0]), setdefault(t[1], t[1]), setdefault(t[2], t[2]))

    def _intern(self, t: Triple) -> Triple:
        """The triple with the guideline's term objects, else the patient's first object for each term."""
        get, local = self.interned.get, self._local
        s, p, o = t
        s = get(s) or local.setdefault(s, s)
        p = get(p) or local.setdefault(p, p)
        o = get(o)
        if o is None:
            o = local.setdefault(t[2], t[2])
        return (s, p, o)

    @property
    def base_store(self) -> Memory:
        """The closed guideline as an rdflib store, shared by every PatientView; built on first use."""
        if self._base_store is None:
            store = Memory()
            for t in self._closed:
                store.add(t, None)
            store.bind = lambda *a, **k: None  # type: ignore[method-assign]
            self._base_store = store
        return self._base_store

    # -- stages --

    def own(self, patient: PatientGraph) -> set[Triple]:
        """The patient's triples with the engine's term objects (read from the rdflib graph once per patient)."""
        self._local = {}
        intern = self._intern
        return {intern(t) for t in patient.triples}

    def load(self, patient: PatientGraph, own: set[Triple] | None = None) -> tuple[set[Triple], Index]:
        """The patient's own triples (those not in the closed guideline), and their index."""
        base = self.base
        triples = {t for t in (own if own is not None else self.own(patient)) if t not in base}
        return triples, Index(triples)

    def validate_asserted(self, patient: PatientGraph, own: set[Triple] | None = None) -> list[ShapeResult]:
        """The patient shapes on the asserted guideline + the patient."""
        if self.asserted_checker is not None:
            own = own if own is not None else self.own(patient)
            side = [t for t in own if t not in self.asserted_base]
            return unique(self.asserted_checker.check(Index(side)))
        data = Graph()
        for t in self.asserted_guideline:
            data.add(t)
        for t in patient.graph:
            data.add(t)
        return validate(data, self.patient_shapes)

    def validate_inferred(self, triples: set[Triple], side: Index) -> list[ShapeResult]:
        if self.inferred_checker is not None:
            return unique(self.inferred_checker.check(side))
        data = Graph()
        for t in self.inferred_guideline:
            data.add(t)
        for t in triples:
            data.add(t)
        return validate(data, self.inferred_shapes)

    def infer(self, triples: set[Triple], side: Index) -> set[Triple]:
        """The reference's run_rules: per stratum, closure then every rule, until a pass adds nothing.

        ``triples`` (the patient's, indexed in ``side``) grows in place and is returned. A rule is
        evaluated again only when a triple that can complete one of its patterns (see ``dependencies.read_keys``)
        was added since its last evaluation: otherwise its answer, already added, cannot have changed.
        """
        data = Data(self.base_index, side)
        state = self.delta.start()
        clock = 0  # counts the batches of added triples
        changed: dict[Any, int] = {}  # read key -> the batch that last added a triple it matches
        seen_at: dict[str, int] = {}

        base = self.base_index
        # the guarded keys worth working out: those of the rules of this stratum evaluated so far (a
        # change before a rule's first evaluation, or to a rule of a stratum done, decides nothing)
        guarded: dict[Any, list[tuple[Any, ...]]] = {}
        live: set[tuple[Any, ...]] = set()

        def note(added: Iterable[Triple]) -> None:
            """Mark the read keys (see dependencies.read_keys) the added triples match as changed now."""
            known: dict[tuple[Any, Any], bool] = {}  # (node, guard) -> satisfied, for this batch

            def has(node: Any, guard: Guard | None) -> bool:
                if guard is None:
                    return True
                found = known.get((node, guard))
                if found is None:
                    found = known[(node, guard)] = satisfies(node, guard, base, side)
                return found

            for s, p, o in added:
                if p is TYPE:  # the engine's triples hold TYPE itself
                    changed[(TYPE, o)] = clock
                    changed[ANY_TYPE] = clock
                else:
                    changed[p] = clock
                for key in guarded.get(p, ()):
                    if changed.get(key) != clock and has(s, key[2]) and has(o, key[3]):
                        changed[key] = clock

        note(triples)
        pending: set[Triple] = set(triples)
        for stratum in self.strata:
            rules = [r for r in self.rules if r.stratum == stratum]
            guarded.clear()
            live.clear()
            while True:
                if pending:
                    clock += 1
                    derived = self.delta.extend(triples, pending, state)
                    side.update(derived)
                    note(derived)
                    pending = set()
                added = 0
                for rule in rules:
                    since = seen_at.get(rule.name)
                    reads = self.reads[rule.name]
                    if since is not None and reads is not None and all(changed.get(k, -1) < since for k in reads):
                        continue
                    if since is None:
                        for key in self.rule_guards[rule.name]:
                            if key not in live:
                                live.add(key)
                                guarded.setdefault(key[1], []).append(key)
                    clock += 1
                    seen_at[rule.name] = clock
                    new = self._apply(rule, data, triples, side)
                    note(new)
                    pending |= new
                    added += len(new)
                if added == 0:
                    break
        if not self.delta.eq_ref_now:
            reflexive = self.delta.eq_ref(triples)
            triples.update(reflexive)
            side.update(reflexive)
        return triples

    def _apply(self, rule: Rule, data: Data, triples: set[Triple], side: Index) -> set[Triple]:
        """The reference's apply_rule: add what the rule constructs, and gkg:byRule on each conclusion it types."""
        plan = self.plans[rule.name]
        if plan is not None:
            produced = {self._intern(t) for t in plan.construct(data)}
        else:
            view = PatientView(self, triples, side)
            produced = {self._intern(t) for t in Graph.query(view, rule.query.prepared()).graph}
        typed = {s for s, p, o in produced if p is TYPE and o in ANNOTATED}
        base = self.base
        new = {t for t in produced if t not in triples and t not in base}
        iri = self.interned.setdefault(rule.iri, rule.iri)
        for subject in typed:
            triple = (subject, BY_RULE, iri)
            if triple not in triples and triple not in base:
                new.add(triple)
        if new:
            triples |= new
            side.update(new)
        return new

    def reason(self, patient: PatientGraph) -> Reasoned:
        if any(getattr(o, "ill_typed", False) for _, _, o in patient.triples if isinstance(o, Literal)):
            # owlrl's handling of ill-typed literals is not compiled here: the reference reasons whole
            if self._reference is None:
                self._reference = ReferenceEngine(self.guideline)
            return self._reference.reason(patient)
        own = self.own(patient)
        results = self.validate_asserted(patient, own)
        if any(r.severity == "Violation" for r in results):
            return Reasoned(patient, None, results)
        if self.tbox.unsupported:
            triples = self._owlrl_fallback(patient)
            side = Index(triples)
        else:
            triples, side = self.load(patient, own)
            triples = self.infer(triples, side)
            if self.delta.disjointness_clash(triples):
                triples = self._owlrl_fallback(patient)
                side = Index(triples)
        results += self.validate_inferred(triples, side)
        return Reasoned(patient, PatientView(self, triples, side), unique(results))

    def _owlrl_fallback(self, patient: PatientGraph) -> set[Triple]:
        """The reference's reasoning for a T-box (or a patient) the compiled rules do not cover."""
        graph = Graph()
        graph += self.guideline.graph
        graph += patient.graph
        run_rules(self.guideline, graph)
        return {self._intern(t) for t in graph if t not in self.base}

