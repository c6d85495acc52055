"""The fast engine: the reference pipeline's results with the per-patient work cut to what the patient can trigger.

The reference engine (``reasoner.engine``) closes guideline + patient with owlrl three or
four times per patient and runs every query in rdflib over ~10,000 triples. Here:

* what the engine reads of the encoding (the owlrl closure of the guideline, its asserted
  triples, the patient shapes) is computed once and kept on disk by ``Guideline.fingerprint``
  (``guideline_inputs``; ``$XDG_CACHE_HOME/guideline-kg``, else ``~/.cache/guideline-kg``; an
  unwritable cache only costs the work on every start);
* the OWL-RL rules a patient's triples can fire are compiled from the closed T-box at load
  time (``TBox``): subclass, subproperty, domain, range, inverse, symmetric and transitive
  properties, plus what owlrl adds for every triple (``owl:sameAs`` reflexivity) and every
  typed literal (datatype typing, subsumption, disjointness). A T-box using any other OWL
  construct makes the engine close each patient with owlrl as the reference does;
* the rule files of ``queries/rules/`` run in the reference's stratified fixpoint order as
  compiled plans (``reasoner.plan``: rdflib's own algebra of each query, evaluated step for step
  as rdflib evaluates it, expressions by rdflib's operators) over two indexes: the closed
  guideline, built once, and the patient's triples. A rule is evaluated again only when a triple
  was added since that can complete one of its patterns (its predicate or class, and the other
  edges the pattern's subject and object must have: ``_reads``); a query the compiler does not
  cover runs in rdflib;
* the shapes are parsed once into direct checks (``ShapeChecker``: targets, core constraints,
  SPARQL constraints as compiled plans, messages filled in as pySHACL fills them); shapes using
  SHACL beyond that subset are validated with pySHACL on the patient's triples plus the guideline
  triples the shapes can read;
* the report's SELECT queries run as compiled plans; everything else sees an ordinary rdflib
  ``Graph`` (guideline store shared, patient triples on top), so explain and the RDF report
  work unchanged;
* every term is held as one object (``FastEngine.interned``), so index lookups match by
  identity rather than by rdflib's ``__eq__``;
* a patient with an ill-typed literal is handed to the reference engine whole.

The reference engine is the definition of correct: the differential tests compare the
JSON reports byte for byte (tests/test_fast_engine.py, tests/test_plan.py), the benchmark
on 1,000 patients on every run.
"""

from __future__ import annotations

import atexit
import datetime
import importlib.util
import itertools
import marshal
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from types import CodeType
from typing import Any

from owlrl.XsdDatatypes import OWL_Datatype_Subsumptions
from owlrl.XsdDatatypes import OWL_RL_Datatypes as _OWL_RL_DATATYPE_LIST
from owlrl.AxiomaticTriples import OWLRL_Datatypes_Disjointness
from rdflib import OWL, RDF, RDFS, XSD, BNode, Graph, Literal, URIRef, Variable
from rdflib.plugins.stores.memory import Memory
from rdflib.query import Result
from rdflib.store import Store

from reasoner import cache
from reasoner.cache import cache_dir
from reasoner.engine import ANNOTATED, Reasoned, ReferenceEngine, closure
from reasoner.fhir import PatientGraph
from reasoner.guideline import Guideline, Rule
from reasoner.namespaces import GKG
from reasoner.plan import COMPILED, Data, Index, Plan, Unsupported
from reasoner.queries import prepare_text
from reasoner.validate import SH, ShapeResult, unique, validate

Triple = tuple[Any, Any, Any]
XSD_STRING = "http://www.w3.org/2001/XMLSchema#string"
XSD_STRING_IRI = XSD.string
CACHE_VERSION = "3"  # 3: one object per term

# T-box vocabulary the compiled rules understand; a closed guideline that uses any other
# OWL term as a predicate or a type (functional properties, restrictions, property chains,
# keys, sameAs ...) is closed per patient with owlrl instead.
SUPPORTED_TYPES = {OWL.Class, OWL.ObjectProperty, OWL.DatatypeProperty, OWL.AnnotationProperty, OWL.Ontology,
                   OWL.Thing, OWL.Nothing, OWL.SymmetricProperty, OWL.TransitiveProperty, RDFS.Datatype,
                   RDFS.Class, RDF.Property, OWL.NamedIndividual}
SUPPORTED_PREDICATES = {RDFS.subClassOf, RDFS.subPropertyOf, RDFS.domain, RDFS.range, OWL.equivalentClass,
                        OWL.equivalentProperty, OWL.inverseOf, OWL.differentFrom, OWL.disjointWith,
                        OWL.versionInfo, OWL.versionIRI, OWL.imports, OWL.sameAs}
SCHEMA_NAMESPACES = (str(OWL), str(RDFS))


# ---- the closed guideline, cached ----


def closed_guideline(guideline: Guideline) -> list[Triple]:
    """The owlrl closure of the guideline graph, from the disk cache when the encoding is unchanged."""
    return guideline_inputs(guideline)["closed"]


def guideline_inputs(guideline: Guideline) -> dict[str, Any]:
    """What the engine reads of the encoding, from the disk cache when the encoding is unchanged.

    ``closed``: the owlrl closure of the guideline graph; ``asserted``: the guideline graph's
    triples; ``shapes``: the patient shapes graphs' triples by name. Keyed by
    ``Guideline.fingerprint`` (every ontology, rule and shape file): a cache hit parses no Turtle.
    """
    path = cache_dir() / f"inputs-{CACHE_VERSION}-{guideline.fingerprint}.pickle"
    entry = cache.read(path)
    if isinstance(entry, dict) and {"closed", "asserted", "shapes"} <= entry.keys():
        return entry
    graph = Graph()
    graph += guideline.graph
    closure(graph)
    terms: dict[Any, Any] = {}

    def shared(triples: Iterable[Triple]) -> list[Triple]:
        """One object per term: pickled once, read back as one object (the engine's lookups then match by identity)."""
        return [(terms.setdefault(s, s), terms.setdefault(p, p), terms.setdefault(o, o)) for s, p, o in triples]

    entry = {"closed": shared(graph), "asserted": shared(guideline.graph),
             "shapes": {name: shared(guideline.shape_graph(name)) for name in SHAPE_GRAPHS}}
    cache.write(path, entry)  # an unwritable cache costs the closure on every start, nothing else
    return entry


SHAPE_GRAPHS = ("patient", "patient-inferred")
MAX_GENERATED = 20_000  # code objects kept on disk (a few hundred for this guideline)
_generated_known: list[int] = []  # how many were on disk when this process read them; empty: not read yet


def _generated_path() -> Path:
    return cache_dir() / f"generated-code-{importlib.util.MAGIC_NUMBER.hex()}.pickle"


def load_generated_code() -> None:
    """The plans' generated code from the disk cache (marshalled, per interpreter), once per process.

    What this process compiles beyond it is written back when the process exits normally
    (batch workers leave with ``os._exit`` and write nothing: a single-patient run fills it).
    """
    if _generated_known:
        return
    entry = cache.read(_generated_path())
    if isinstance(entry, bytes):
        try:
            table = marshal.loads(entry)
        except (EOFError, ValueError, TypeError):
            table = None
        if isinstance(table, dict):
            for text, code in table.items():
                if isinstance(text, str) and isinstance(code, CodeType):
                    COMPILED.setdefault(text, code)
    _generated_known.append(len(COMPILED))
    atexit.register(_save_generated_code)


def _save_generated_code() -> None:
    if _generated_known and _generated_known[0] < len(COMPILED) <= MAX_GENERATED:
        cache.write(_generated_path(), marshal.dumps(dict(COMPILED)))


def _graph(triples: Iterable[Triple]) -> Graph:
    graph = Graph()
    for t in triples:
        graph.add(t)
    return graph


# ---- OWL-RL over the patient's triples, compiled from the closed T-box ----


@dataclass
class TBox:
    """Lookup tables of the closed guideline for the OWL-RL rules patient triples can fire."""

    superclasses: dict[Any, set[Any]] = field(default_factory=dict)
    superproperties: dict[Any, set[Any]] = field(default_factory=dict)
    domains: dict[Any, set[Any]] = field(default_factory=dict)
    ranges: dict[Any, set[Any]] = field(default_factory=dict)
    inverses: dict[Any, set[Any]] = field(default_factory=dict)
    symmetric: set[Any] = field(default_factory=set)
    transitive: set[Any] = field(default_factory=set)
    disjoint: set[tuple[Any, Any]] = field(default_factory=set)
    unsupported: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, closed: Iterable[Triple]) -> "TBox":
        box = cls()
        tables = {RDFS.subClassOf: box.superclasses, RDFS.subPropertyOf: box.superproperties,
                  RDFS.domain: box.domains, RDFS.range: box.ranges, OWL.inverseOf: box.inverses}
        annotations = {RDFS.label, RDFS.comment, RDFS.seeAlso, RDFS.isDefinedBy}
        by_predicate: dict[Any, list[tuple[Any, Any]]] = {}
        for s, p, o in closed:  # grouped first: a few hundred predicates, not every triple, are compared
            by_predicate.setdefault(p, []).append((s, o))
        for p, pairs in by_predicate.items():
            if p in tables:
                for s, o in pairs:
                    tables[p].setdefault(s, set()).add(o)
                    if p == OWL.inverseOf:
                        box.inverses.setdefault(o, set()).add(s)
            elif p == OWL.disjointWith:
                box.disjoint.update(pairs)
            elif p == RDF.type:
                for s, o in pairs:
                    if o == OWL.SymmetricProperty:
                        box.symmetric.add(s)
                    elif o == OWL.TransitiveProperty:
                        box.transitive.add(s)
                    elif str(o).startswith(SCHEMA_NAMESPACES) and o not in SUPPORTED_TYPES:
                        box.unsupported.append(f"{s} a {o}")
            elif str(p).startswith(SCHEMA_NAMESPACES) and p not in SUPPORTED_PREDICATES and p not in annotations:
                box.unsupported.extend(f"{s} {p} {o}" for s, o in pairs)
            elif p == OWL.sameAs:
                box.unsupported.extend(f"{s} owl:sameAs {o}" for s, o in pairs if s != o)
        for table in (box.superclasses, box.superproperties):
            for key, values in table.items():
                values.discard(key)
        return box


TYPE, SAME_AS, DATATYPE = RDF.type, OWL.sameAs, RDFS.Datatype
OWL_RL_Datatypes = frozenset(_OWL_RL_DATATYPE_LIST)  # owlrl's is a list: ``in`` compared every item
BY_RULE = GKG.byRule


def _no_literals(terms: Iterable[Any]) -> tuple[Any, ...]:
    return tuple(t for t in terms if not isinstance(t, Literal))


@dataclass
class Closing:
    """One patient's closure state: the datatypes in use (the guideline's included) and the terms given eq-ref."""

    used: set[Any]
    reflexive: set[Any]
    literals: set[int]  # ids of the literal objects whose datatype triples were given
    disjoint_given: bool = False
    applied: set[tuple[Any, int]] = field(default_factory=set)  # (node, id of a type tuple of DeltaClosure.flat) given


class DeltaClosure:
    """What owlrl adds to (closed guideline + patient triples) beyond the closed guideline, computed from the patient side."""

    def __init__(self, base: frozenset[Triple], tbox: TBox) -> None:
        self.base = base
        self.tbox = tbox
        self.base_types: dict[Any, set[Any]] = {}
        objects: set[Any] = set()
        for s, p, o in base:
            objects.add(o)
            if p is TYPE or p == TYPE:
                self.base_types.setdefault(s, set()).add(o)
        base_types = {o for types in self.base_types.values() for o in types if o in OWL_RL_Datatypes}
        base_literals = {o.datatype for o in objects if isinstance(o, Literal) and o.datatype in OWL_RL_Datatypes}
        self.base_datatypes = frozenset(base_types | base_literals)
        self._disjoint_memo: dict[frozenset[Any], list[Triple]] = {}
        # per predicate, the T-box side of the property rules: one lookup per triple instead of six
        self.by_predicate: dict[Any, tuple[Any, ...]] = {}
        for q in {*tbox.superproperties, *tbox.domains, *tbox.ranges, *tbox.inverses, *tbox.symmetric,
                  *tbox.transitive}:
            # a literal never stands as a predicate (owlrl drops such triples): kept out of the tables
            self.by_predicate[q] = (_no_literals(tbox.superproperties.get(q, ())), tuple(tbox.domains.get(q, ())),
                                    tuple(tbox.ranges.get(q, ())), _no_literals(tbox.inverses.get(q, ())),
                                    q in tbox.symmetric, q in tbox.transitive)
        # prp-dom and prp-rng with cax-sco after them: a domain or range class with its superclasses
        self.closed_types: dict[Any, tuple[tuple[Any, ...], tuple[Any, ...]]] = {
            q: tuple(tuple(dict.fromkeys(x for c in classes for x in (c, *tbox.superclasses.get(c, ()))))
                     for classes in (rules[1], rules[2]))
            for q, rules in self.by_predicate.items()}
        # per predicate with no inverse, symmetric or transitive rule up its superproperties: every
        # triple prp-spo1, prp-dom, prp-rng and cax-sco derive from one of its triples, closed, as
        # (superproperties, the subject's types, the object's types); ``extend`` adds them at once.
        # The closed T-box's superproperties are transitive (scm-spo), as its superclasses are.
        self.flat: dict[Any, tuple[tuple[Any, ...], tuple[Any, ...], tuple[Any, ...]]] = {}
        type_tuples: dict[tuple[Any, ...], tuple[Any, ...]] = {}
        for q, rules in self.by_predicate.items():
            supers = rules[0]
            chain = (q, *supers)
            if any(r == TYPE or tbox.inverses.get(r) or r in tbox.symmetric or r in tbox.transitive for r in chain):
                continue
            subject_types, object_types = (tuple(dict.fromkeys(c for r in chain for c in self.closed_types.get(r, ((), ()))[i]))
                                           for i in (0, 1))
            # one object per distinct tuple: Closing.applied knows a node's types by the tuple's id
            self.flat[q] = (supers, type_tuples.setdefault(subject_types, subject_types),
                            type_tuples.setdefault(object_types, object_types))
        # the terms whose eq-ref triple (x owl:sameAs x) the closed guideline holds
        self.reflexive = frozenset(s for s, p, o in base if p == SAME_AS and s == o)
        # eq-ref as triples come in, or once at the end (see eq_ref); set by the engine
        self.eq_ref_now = True
        self.disjoint: dict[Any, set[Any]] = {}
        for a, b in tbox.disjoint:
            self.disjoint.setdefault(a, set()).add(b)

    def _fire(self, t: Triple, have: set[Triple], types: bool = True) -> list[Triple]:
        """What owlrl's property and class rules derive from one triple (eq-ref is added by ``extend``).

        The closed T-box's side of each rule is looked up per predicate; ``types=False`` leaves
        out prp-dom and prp-rng (``extend`` adds those with their superclasses at once).
        """
        s, p, o = t
        out: list[Triple] = []
        rules = self.by_predicate.get(p)
        if rules is not None:
            supers, domains, ranges, inverses, symmetric, transitive = rules
            out.extend((s, q, o) for q in supers)  # prp-spo1 (prp-eqp via scm-eqp in the closed T-box)
            if types:
                out.extend((s, TYPE, c) for c in domains)  # prp-dom
                out.extend((o, TYPE, c) for c in ranges)  # prp-rng
            out.extend((o, q, s) for q in inverses)  # prp-inv1, prp-inv2
            if symmetric:  # prp-symp
                out.append((o, p, s))
            if transitive:  # prp-trp, both ways round
                for x, pp, y in list(have):
                    if pp == p and y == s:
                        out.append((x, p, o))
                    if pp == p and x == o:
                        out.append((s, p, y))
        if p is TYPE:  # cax-sco (cax-eqc via scm-eqc in the closed T-box); every rdf:type here is TYPE itself
            out.extend((s, TYPE, d) for d in self.tbox.superclasses.get(o, ()))
        return out

    def _datatypes(self, added: Iterable[Triple], state: "Closing") -> Iterator[Triple]:
        """owlrl's one-time datatype rules (dt-type2, subsumption, disjointness) for the patient's literals.

        ``state.used`` (the datatypes in use so far, guideline's included) grows as literals come
        in; a literal object already seen, or a disjointness set already given, is not gone over again.
        """
        used, seen = state.used, state.literals
        before = len(used)
        for s, p, o in added:
            if isinstance(o, Literal) and o.datatype in OWL_RL_Datatypes:
                if id(o) in seen:  # the same object: its triples were given (it is alive, in the triples)
                    continue
                seen.add(id(o))
                used.add(o.datatype)
                yield (o, TYPE, o.datatype)
                for wider in OWL_Datatype_Subsumptions.get(o.datatype, ()):
                    yield (o, TYPE, wider)
                    yield (wider, TYPE, DATATYPE)
                    used.add(wider)
            elif p is TYPE and o in OWL_RL_Datatypes:
                used.add(o)
        if state.disjoint_given and len(used) == before:
            return  # no new datatype: its disjointness triples are there already
        state.disjoint_given = True
        key = frozenset(used)
        disjoint = self._disjoint_memo.get(key)
        if disjoint is None:
            disjoint = [t for t in OWLRL_Datatypes_Disjointness if t[0] in key and t[2] in key]
            if len(self._disjoint_memo) < 1024:
                self._disjoint_memo[key] = disjoint
        yield from disjoint

    def start(self) -> "Closing":
        """The state one patient's closure carries from one ``extend`` to the next."""
        return Closing(set(self.base_datatypes), set(), set())

    def extend(self, triples: set[Triple], new: Iterable[Triple], state: "Closing") -> set[Triple]:
        """Close ``triples`` (the patient side, grown in place) after ``new`` were added; returns what was derived."""
        derived: set[Triple] = set()
        base = self.base
        reflexive, seen = self.reflexive, state.reflexive
        superclasses, type_rules = self.tbox.superclasses, self.by_predicate.get(TYPE)
        eq_ref_now = self.eq_ref_now
        settled = type_rules is None and not eq_ref_now  # a type triple needs no round of its own
        closed_types, flat_rules, by_predicate = self.closed_types, self.flat, self.by_predicate
        applied = state.applied
        queue = list(new)
        added = list(queue)

        def add(d: Triple) -> None:
            if d not in triples and d not in base:
                triples.add(d)
                derived.add(d)
                queue.append(d)
                added.append(d)

        def keep(found: list[Triple]) -> None:
            """Add what is new of what a triple derives, without a round of its own (it fires nothing further)."""
            for d in found:
                if d not in triples and d not in base:
                    triples.add(d)
                    derived.add(d)
                    added.append(d)

        for _ in range(100):
            while queue:
                t = queue.pop()
                for x in t if eq_ref_now else ():  # eq-ref: x owl:sameAs x, once per term (fires nothing new)
                    if x not in reflexive and x not in seen:
                        seen.add(x)
                        d = (x, SAME_AS, x)
                        if d not in triples and d not in base:
                            triples.add(d)
                            derived.add(d)
                if t[1] is TYPE and type_rules is None:
                    # cax-sco: the closed T-box's superclasses are transitive, so a type it derives derives no
                    # further type, and rdf:type has no property rule here: added without going round again
                    s = t[0]
                    for c in superclasses.get(t[2], ()):
                        d = (s, TYPE, c)
                        if d not in triples and d not in base:
                            triples.add(d)
                            derived.add(d)
                            added.append(d)
                            if eq_ref_now and c not in reflexive and c not in seen:
                                queue.append(d)  # for its eq-ref
                    continue
                if settled:
                    flat = flat_rules.get(t[1])
                    if flat is not None:  # everything its triples derive, at once (see __init__)
                        s, o = t[0], t[2]
                        supers, subject_types, object_types = flat
                        found = [(s, q, o) for q in supers]
                        for node, types in ((s, subject_types), (o, object_types)):
                            if types and (node, id(types)) not in applied:  # a node's types from another triple
                                applied.add((node, id(types)))
                                found.extend([(node, TYPE, c) for c in types])
                        keep(found)
                        continue
                    if t[1] not in by_predicate:
                        continue
                    # prp-dom, prp-rng and cax-sco at once: their types derive no further type (as above)
                    domains_ranges = closed_types.get(t[1])
                    if domains_ranges is not None:
                        keep([(subject, TYPE, c) for subject, classes in zip((t[0], t[2]), domains_ranges)
                              for c in classes])
                for d in self._fire(t, triples, types=not settled):
                    add(d)
            queue = [d for d in set(self._datatypes(added, state)) if d not in triples and d not in base]
            added = list(queue)
            for d in queue:
                triples.add(d)
                derived.add(d)
            if not queue:
                break
        return derived

    def eq_ref(self, triples: set[Triple]) -> list[Triple]:
        """eq-ref (x owl:sameAs x) for every term of ``triples`` the closed guideline does not give it to.

        When nothing reads owl:sameAs while the rules run (``eq_ref_now`` false), ``extend``
        leaves these out and they are added once, here, at the end: an eq-ref triple fires no
        OWL-RL rule the engine compiles (owl:sameAs has no property rule in the T-box tables).
        """
        terms = {x for t in triples for x in t}
        terms.difference_update(self.reflexive)
        return [d for d in ((x, SAME_AS, x) for x in terms) if d not in triples]

    def disjointness_clash(self, triples: set[Triple]) -> bool:
        """Would owlrl report a cax-dw inconsistency (it then adds error triples we do not compute)?"""
        if not self.disjoint:
            return False
        types: dict[Any, set[Any]] = {}
        for s, p, o in triples:
            if p == TYPE:
                types.setdefault(s, set()).add(o)
        for s, ts in types.items():
            ts |= self.base_types.get(s, set())
            if any(self.disjoint.get(a, set()) & ts for a in ts):
                return True
        return False


# ---- the patient's view: an rdflib Graph over the shared guideline store ----


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

    def __init__(self, engine: "FastEngine", triples: set[Triple], side: Index) -> None:
        super().__init__(store=_Overlay(lambda: engine.base_store, triples))
        self._engine = engine
        self._triples = triples
        self._data = Data(engine.base_index, side)

    def __contains__(self, triple: Any) -> bool:
        if isinstance(triple, tuple) and len(triple) == 3 and None not in triple:
            return triple in self._triples or triple in self._engine.base
        return super().__contains__(triple)

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


# ---- the engine ----


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
        self.patient_shapes = _graph(inputs["shapes"]["patient"])
        self.inferred_shapes = _graph(inputs["shapes"]["patient-inferred"])
        try:
            self.asserted_checker: ShapeChecker | None = ShapeChecker(self.patient_shapes, self.asserted_index, self)
            self.inferred_checker: ShapeChecker | None = ShapeChecker(self.inferred_shapes, self.base_index, self)
        except Unsupported:
            self.asserted_checker = self.inferred_checker = None
        self.asserted_needs = _shape_reads(self.patient_shapes)
        self.inferred_needs = _shape_reads(self.inferred_shapes)
        self.asserted_guideline = _needed(asserted, self.asserted_needs)
        self.inferred_guideline = _needed(closed, self.inferred_needs)
        self._reference: ReferenceEngine | None = None
        # read keys with the engine's term objects, one object per key (lookups by identity)
        one: dict[Any, Any] = {}
        self.reads = {r.name: _reads(r.query.prepared().algebra, self.interned, one) for r in self.rules}
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
        evaluated again only when a triple that can complete one of its patterns (see ``_reads``)
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
            """Mark the read keys (see _reads) the added triples match as changed now."""
            known: dict[tuple[Any, Any], bool] = {}  # (node, guard) -> satisfied, for this batch

            def satisfies(node: Any, guard: Guard | None) -> bool:
                if guard is None:
                    return True
                found = known.get((node, guard))
                if found is None:
                    found = known[(node, guard)] = _satisfies(node, guard, base, side)
                return found

            for s, p, o in added:
                if p is TYPE:  # the engine's triples hold TYPE itself
                    changed[(TYPE, o)] = clock
                    changed[ANY_TYPE] = clock
                else:
                    changed[p] = clock
                for key in guarded.get(p, ()):
                    if changed.get(key) != clock and satisfies(s, key[2]) and satisfies(o, key[3]):
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
        from reasoner.engine import run_rules

        graph = Graph()
        graph += self.guideline.graph
        graph += patient.graph
        run_rules(self.guideline, graph)
        return {self._intern(t) for t in graph if t not in self.base}


THIS = Variable("this")
ANY_TYPE = "any rdf:type"


def _reads(algebra: Any, terms: dict[Any, Any] | None = None,
           keys_seen: dict[Any, Any] | None = None) -> frozenset[Any] | None:
    """What a query's triple patterns can match, as read keys; None when a pattern can match anything.

    A key is a predicate, an (rdf:type, class) pair, ANY_TYPE for ``?s a ?class``, or a guarded
    pattern ``(GUARDED, predicate, subject guard, object guard)`` when every match of its
    variable subject or object must also have other edges (see ``_guards``). An added triple
    changes a guarded key only when its subject and object have the edges of one alternative
    of their guards: a concept or a type given to a new recommendation then does not send
    every rule reading the concepts or types of findings round again. Sound because the
    guarding edges are read by the same query: one added later changes its own key.

    With ``terms``, every IRI in the keys is that dict's object for it, and each key the one
    object ``keys_seen`` holds for it (shared across queries).
    """
    keys: set[Any] = set()
    try:
        _walk_reads(algebra, {}, keys)
    except _ReadsAnything:
        return None
    if terms is None:
        return frozenset(keys)
    keys_seen = {} if keys_seen is None else keys_seen
    return frozenset(keys_seen.setdefault(k, _intern_key(k, terms)) for k in keys)


def _intern_key(key: Any, terms: dict[Any, Any]) -> Any:
    def term(x: Any) -> Any:
        return terms.get(x, x)

    def guard(g: Guard | None) -> Guard | None:
        return None if g is None else frozenset(frozenset((term(p), pos) for p, pos in alt) for alt in g)

    if not isinstance(key, tuple):
        return term(key)
    if key[0] == GUARDED:
        return (GUARDED, term(key[1]), guard(key[2]), guard(key[3]))
    return (term(key[0]), term(key[1]))


GUARDED = "guarded rdf:type"
Guard = frozenset[frozenset[tuple[Any, str]]]  # alternatives, each the edges (predicate, "s" or "o") a node has


class _ReadsAnything(Exception):
    pass


def _walk_reads(node: Any, context: dict[Any, Guard], keys: set[Any]) -> None:
    """Add the read keys of ``node``; ``context`` holds guards from conjunctive siblings (not under negation)."""
    name = getattr(node, "name", None)
    get = dict.get
    if name == "BGP":
        triples = get(node, "triples") or []
        for i, (s, p, o) in enumerate(triples):
            if not isinstance(p, URIRef):
                raise _ReadsAnything
            if p == TYPE and isinstance(o, URIRef):
                keys.add((TYPE, o))
                continue
            # the other patterns of the BGP (else the siblings') guard the subject and the object
            local = _bgp_guards(triples[:i] + triples[i + 1:])
            on_s = (local.get(s) or context.get(s)) if isinstance(s, (Variable, BNode)) else None
            on_o = (local.get(o) or context.get(o)) if isinstance(o, (Variable, BNode)) and p != TYPE else None
            if p == TYPE:
                keys.add((GUARDED, TYPE, on_s, None) if on_s else ANY_TYPE)
            else:
                keys.add((GUARDED, p, on_s, on_o) if on_s or on_o else p)
    elif name == "Join":
        p1, p2 = get(node, "p1"), get(node, "p2")
        _walk_reads(p1, {**context, **_guards(p2)}, keys)
        _walk_reads(p2, {**context, **_guards(p1)}, keys)
    elif name == "Union":
        _walk_reads(get(node, "p1"), context, keys)
        _walk_reads(get(node, "p2"), context, keys)
    elif name in ("LeftJoin", "Minus"):  # the right side may only remove or keep: no outside guard applies
        _walk_reads(get(node, "p1"), context, keys)
        _walk_reads(get(node, "p2"), {}, keys)
        _walk_expression(get(node, "expr"), keys)
    elif name in ("Filter", "Extend", "Project", "Distinct", "Reduced", "Slice", "OrderBy", "ToMultiSet",
                  "SelectQuery", "ConstructQuery", "AskQuery"):
        _walk_reads(get(node, "p"), context, keys)
        _walk_expression(get(node, "expr"), keys)
    elif name == "values" or node is None:
        pass
    else:  # anything else: every pattern in it, a type pattern with a variable class reading any type
        for s, p, o in _patterns(node):
            if not isinstance(p, URIRef):
                raise _ReadsAnything
            keys.add(((TYPE, o) if isinstance(o, URIRef) else ANY_TYPE) if p == TYPE else p)


def _walk_expression(expression: Any, keys: set[Any]) -> None:
    """The read keys of the (NOT) EXISTS patterns inside an expression (walked without outside guards)."""
    stack = [expression]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if getattr(item, "name", None) in ("Builtin_EXISTS", "Builtin_NOTEXISTS"):
                # rdflib keeps the translated pattern as an attribute, the parsed one as an item
                _walk_reads(item.__dict__.get("graph", dict.get(item, "graph")), {}, keys)
                continue
            stack.extend(dict.values(item))
        elif isinstance(item, (list, tuple)):
            stack.extend(item)


def _bgp_guards(triples: list[Any]) -> dict[Any, Guard]:
    """Per variable of a BGP, the one alternative of its edges by a named predicate other than rdf:type."""
    edges: dict[Any, set[tuple[Any, str]]] = {}
    for s, p, o in triples:
        if isinstance(p, URIRef) and p != TYPE:
            if isinstance(s, (Variable, BNode)):
                edges.setdefault(s, set()).add((p, "s"))
            if isinstance(o, (Variable, BNode)):
                edges.setdefault(o, set()).add((p, "o"))
    return {v: frozenset({frozenset(e)}) for v, e in edges.items()}


def _guards(node: Any) -> dict[Any, Guard]:
    """Per variable, edges the node it is bound to has in every solution of ``node`` (no entry: unknown)."""
    name = getattr(node, "name", None)
    get = dict.get
    if name == "BGP":
        return _bgp_guards(get(node, "triples") or [])
    if name == "Union":
        left, right = _guards(get(node, "p1")), _guards(get(node, "p2"))
        return {v: left[v] | right[v] for v in left.keys() & right.keys()}
    if name == "Join":
        return {**_guards(get(node, "p2")), **_guards(get(node, "p1"))}
    if name in ("LeftJoin", "Minus"):
        return _guards(get(node, "p1"))
    if name in ("Filter", "Extend", "Distinct", "Reduced", "Slice", "OrderBy", "ToMultiSet"):
        return _guards(get(node, "p"))
    return {}


def _satisfies(node: Any, guard: Guard, base: Index, side: Index) -> bool:
    """Has ``node`` the edges of one of the guard's alternatives, in either index?"""
    for alternative in guard:
        for p, position in alternative:
            subject = position == "s"
            for index in (base, side):
                edges = index.spo.get(node) if subject else index.pos.get(p)
                if edges is not None and (p if subject else node) in edges:
                    break
            else:  # neither index has the edge: not this alternative
                break
        else:
            return True
    return False


# ---- SHACL checks compiled from the shapes ----


SHAPE_TERMS = {RDF.type, SH.targetClass, SH.targetObjectsOf, SH.targetSubjectsOf, SH.targetNode, SH.property,
               SH.sparql, SH.severity, SH.message, SH.name, SH.description, SH.path, SH.minCount, SH.maxCount,
               SH.nodeKind, SH["in"], SH.datatype, SH["or"], SH.node, SH.order, SH.group, RDFS.seeAlso,
               RDFS.label, RDFS.comment}
SPARQL_TERMS = {RDF.type, SH.select, SH.message, SH.prefixes, SH.severity, SH.name, SH.description, RDFS.comment}
NODE_KINDS = {
    SH.IRI: lambda v: isinstance(v, URIRef), SH.BlankNode: lambda v: isinstance(v, BNode),
    SH.Literal: lambda v: isinstance(v, Literal), SH.BlankNodeOrIRI: lambda v: isinstance(v, (BNode, URIRef)),
    SH.BlankNodeOrLiteral: lambda v: isinstance(v, (BNode, Literal)),
    SH.IRIOrLiteral: lambda v: isinstance(v, (URIRef, Literal))}
SEVERITY_NAMES = {SH.Violation: "Violation", SH.Warning: "Warning", SH.Info: "Info"}


PYTHON_TYPES = {XSD.string: (str, bytes), RDF.langString: (str, bytes), XSD.integer: int, XSD.float: float,
                XSD.decimal: Decimal, XSD.boolean: bool, XSD.date: datetime.date, XSD.time: datetime.time,
                XSD.dateTime: datetime.datetime}


def _datatype_matches(value: Any, datatype: Any) -> bool:
    """pySHACL's sh:datatype test (DatatypeConstraintComponent), for one value node."""
    if not isinstance(value, Literal):
        return False
    if value.datatype == datatype:
        if getattr(value, "ill_typed", None) is True:
            return False
    elif datatype == RDFS.Literal or (datatype == RDFS.Datatype and value.datatype):
        return True
    elif not (value.datatype is None and value.language is None and datatype == XSD_STRING_IRI) and not (
            datatype == RDF.langString and value.language):
        return False
    kind = PYTHON_TYPES.get(datatype)
    return kind is None or isinstance(value.value, kind)


@dataclass
class _Shape:
    node: Any
    severity: str
    messages: list[Literal]
    path: Any = None  # a predicate, or a tuple of predicates (a sequence path); None for a node shape
    path_text: str | None = None
    min_count: int | None = None
    max_count: int | None = None
    node_kind: Any = None
    allowed: frozenset[Any] | None = None
    datatype: Any = None
    any_of: list["_Shape"] = field(default_factory=list)
    nodes: list["_Shape"] = field(default_factory=list)
    properties: list["_Shape"] = field(default_factory=list)
    sparql: list[tuple[Any, Plan, list[Literal]]] = field(default_factory=list)
    target_classes: list[Any] = field(default_factory=list)
    target_objects_of: list[Any] = field(default_factory=list)
    target_subjects_of: list[Any] = field(default_factory=list)
    target_nodes: list[Any] = field(default_factory=list)


def _values(data: Data, focus: Any, path: Any) -> set[Any]:
    """The value nodes of a predicate or sequence path from ``focus``."""
    nodes = {focus}
    for p in path if isinstance(path, tuple) else (path,):
        nodes = {o for n in nodes for o in data.objects(n, p)}
    return nodes


class ShapeChecker:
    """The shapes of one shapes graph as direct checks, giving the ShapeResults pySHACL gives.

    Covered: targets (class with subclasses, objects of, subjects of, node), property shapes with a
    predicate or sequence path and minCount, maxCount, nodeKind, in, datatype, or, node; node shapes
    with SPARQL SELECT constraints (compiled plans with $this bound, messages filled in as
    pySHACL fills them). Anything else raises Unsupported at load time.
    """

    def __init__(self, shapes: Graph, guideline: Index, engine: "FastEngine") -> None:
        self.engine = engine
        self.shapes_graph = shapes
        self.base = guideline
        self.subclasses: dict[Any, set[Any]] = {}
        for o, subjects in self.base.pos.get(RDFS.subClassOf, {}).items():
            self.subclasses.setdefault(o, set()).update(subjects)
        self._built: dict[Any, _Shape] = {}
        self._classes: dict[Any, set[Any]] = {}
        roots = set(shapes.subjects(RDF.type, SH.NodeShape))
        for target in (SH.targetClass, SH.targetObjectsOf, SH.targetSubjectsOf, SH.targetNode):
            roots.update(shapes.subjects(target, None))
        self.roots = [self._shape(n) for n in sorted(roots, key=str) if self._has_targets(n)]
        for shape in self.roots:
            if any(self._focus_nodes(shape, [self.base])):
                raise Unsupported(f"{shape.node}: the guideline itself holds focus nodes")

    def _term(self, x: Any) -> Any:
        return self.engine.interned.get(x, x)

    def _has_targets(self, node: Any) -> bool:
        return any(True for t in (SH.targetClass, SH.targetObjectsOf, SH.targetSubjectsOf, SH.targetNode)
                   for _ in self.shapes_graph.objects(node, t))

    def _shape(self, node: Any) -> _Shape:
        if node in self._built:
            return self._built[node]
        g = self.shapes_graph
        for p in set(g.predicates(node, None)):
            if p not in SHAPE_TERMS:
                raise Unsupported(f"{node}: {p}")
        shape = _Shape(node, SEVERITY_NAMES.get(g.value(node, SH.severity), "Violation"),
                       [m for m in g.objects(node, SH.message) if isinstance(m, Literal)])
        self._built[node] = shape
        path = g.value(node, SH.path)
        if path is not None:
            if isinstance(path, URIRef):
                shape.path, shape.path_text = self._term(path), str(path)
            elif g.value(path, RDF.first) is not None and all(isinstance(i, URIRef) for i in g.items(path)):
                items = tuple(g.items(path))
                shape.path, shape.path_text = tuple(map(self._term, items)), " / ".join(str(i) for i in items)
            else:
                raise Unsupported(f"{node}: path {path}")
        shape.min_count = _int(g.value(node, SH.minCount))
        shape.max_count = _int(g.value(node, SH.maxCount))
        shape.node_kind = g.value(node, SH.nodeKind)
        if shape.node_kind is not None and shape.node_kind not in NODE_KINDS:
            raise Unsupported(f"{node}: nodeKind {shape.node_kind}")
        allowed = g.value(node, SH["in"])
        shape.allowed = frozenset(map(self._term, g.items(allowed))) if allowed is not None else None
        shape.datatype = g.value(node, SH.datatype)
        for alternatives in g.objects(node, SH["or"]):
            shape.any_of.extend(self._shape(n) for n in g.items(alternatives))
        shape.nodes = [self._shape(n) for n in g.objects(node, SH.node)]
        shape.properties = [self._shape(n) for n in g.objects(node, SH.property)]
        for constraint in g.objects(node, SH.sparql):
            for p in set(g.predicates(constraint, None)):
                if p not in SPARQL_TERMS:
                    raise Unsupported(f"{constraint}: {p}")
            if shape.path is not None:
                raise Unsupported(f"{node}: SPARQL constraints on property shapes")
            prefixes = {str(g.value(d, SH.prefix)): str(g.value(d, SH.namespace))
                        for source in g.objects(constraint, SH.prefixes) for d in g.objects(source, SH.declare)}
            declared = "".join(f"PREFIX {k}: <{v}>\n" for k, v in sorted(prefixes.items()))
            text = Plan(prepare_text(declared + str(g.value(constraint, SH.select))), self.engine.interned)
            shape.sparql.append((constraint, text, [m for m in g.objects(constraint, SH.message)
                                                    if isinstance(m, Literal)]))
        # the data's own term objects: index lookups then match by identity
        shape.target_classes = [self._term(c) for c in g.objects(node, SH.targetClass)]
        shape.target_objects_of = [self._term(p) for p in g.objects(node, SH.targetObjectsOf)]
        shape.target_subjects_of = [self._term(p) for p in g.objects(node, SH.targetSubjectsOf)]
        shape.target_nodes = [self._term(n) for n in g.objects(node, SH.targetNode)]
        if shape.path is not None and (shape.properties or not shape.messages):
            raise Unsupported(f"{node}: nested property shapes or no sh:message")
        return shape

    def _target_classes(self, shape: _Shape) -> set[Any]:
        """The target classes with their subclasses in the guideline, worked out once per shape."""
        found = self._classes.get(shape.node)
        if found is None:
            found = set()
            for c in shape.target_classes:
                found.add(c)
                stack = [c]
                while stack:
                    for sub in self.subclasses.get(stack.pop(), ()):
                        if sub not in found:
                            found.add(sub)
                            stack.append(sub)
            self._classes[shape.node] = found
        return found

    def _focus_nodes(self, shape: _Shape, indexes: Iterable[Index]) -> Iterator[Any]:
        seen: set[Any] = set()
        indexes = list(indexes)
        classes = self._target_classes(shape)
        for index in indexes:
            typed = index.pos.get(TYPE)
            if typed and classes:
                for c in sorted(classes, key=str):
                    for s in typed.get(c, ()):
                        if s not in seen:
                            seen.add(s)
                            yield s
        for p in shape.target_objects_of:
            for index in indexes:
                for o in index.pos.get(p, ()):
                    if o not in seen:
                        seen.add(o)
                        yield o
        for p in shape.target_subjects_of:
            for index in indexes:
                for subjects in index.pos.get(p, {}).values():
                    for s in subjects:
                        if s not in seen:
                            seen.add(s)
                            yield s
        for n in shape.target_nodes:
            if n not in seen:
                seen.add(n)
                yield n

    def check(self, side: Index) -> list[ShapeResult]:
        """The results for a patient's triples (``side``) over this checker's guideline index."""
        data = Data(self.base, side)
        results: list[ShapeResult] = []
        for shape in self.roots:  # the guideline holds no focus node (checked when built): the patient's side only
            for focus in list(self._focus_nodes(shape, [side])):
                results.extend(self._validate(shape, focus, data))
        return results

    def _conforms(self, shape: _Shape, focus: Any, data: Data) -> bool:
        return not self._validate(shape, focus, data)

    def _validate(self, shape: _Shape, focus: Any, data: Data) -> list[ShapeResult]:
        results: list[ShapeResult] = []
        if shape.path is None:
            for prop in shape.properties:
                results.extend(self._validate(prop, focus, data))
            for node in shape.nodes:
                if not self._conforms(node, focus, data):
                    results.append(self._result(shape, focus, focus))
            if shape.datatype is not None and not _datatype_matches(focus, shape.datatype):
                results.append(self._result(shape, focus, focus))
            if shape.node_kind is not None and not NODE_KINDS[shape.node_kind](focus):
                results.append(self._result(shape, focus, focus))
            if shape.allowed is not None and focus not in shape.allowed:
                results.append(self._result(shape, focus, focus))
            if shape.any_of and not any(self._conforms(a, focus, data) for a in shape.any_of):
                results.append(self._result(shape, focus, focus))
            for constraint, text, messages in shape.sparql:
                results.extend(self._sparql(shape, constraint, text, messages, focus, data))
            return results
        values = _values(data, focus, shape.path)
        if shape.min_count is not None and len(values) < shape.min_count:
            results.append(self._result(shape, focus, None))
        if shape.max_count is not None and len(values) > shape.max_count:
            results.append(self._result(shape, focus, None))
        for value in sorted(values, key=str):
            if shape.node_kind is not None and not NODE_KINDS[shape.node_kind](value):
                results.append(self._result(shape, focus, value))
            if shape.allowed is not None and value not in shape.allowed:
                results.append(self._result(shape, focus, value))
            if shape.datatype is not None and not _datatype_matches(value, shape.datatype):
                results.append(self._result(shape, focus, value))
            if shape.any_of and not any(self._conforms(a, value, data) for a in shape.any_of):
                results.append(self._result(shape, focus, value))
            for node in shape.nodes:
                if not self._conforms(node, value, data):
                    results.append(self._result(shape, focus, value))
        return results

    def _result(self, shape: _Shape, focus: Any, value: Any, message: str | None = None,
                constraint: Any = None) -> ShapeResult:
        if message is None:
            message = min((str(m) for m in shape.messages), default="does not conform")
        source = constraint if isinstance(constraint, URIRef) else shape.node
        return ShapeResult(severity=shape.severity, focus=str(focus), path=shape.path_text, message=message,
                           shape=str(source) if isinstance(source, URIRef) else "_:anonymous-shape",
                           value=str(value) if isinstance(value, (URIRef, Literal)) else None)

    def _sparql(self, shape: _Shape, constraint: Any, text: Plan, messages: list[Literal], focus: Any,
                data: Data) -> list[ShapeResult]:
        """A SPARQL SELECT constraint, its rows turned into results the way pySHACL does."""
        rows = text.select(data, {THIS: focus})
        names = [str(v) for v in text.variables]
        seen: list[tuple[Any, ...]] = []
        results = []
        for row in rows:
            bound = {n: row[i] for i, n in enumerate(names) if row[i] is not None}
            path, value, this = bound.pop("path", None), bound.pop("value", None), bound.pop("this", None)
            bound.pop("failure", None)
            key = (this, path, value, tuple(sorted(bound.items())))
            if key in seen or (path is None and value is None and this is None):
                continue
            seen.append(key)
            value = value if value is not None else focus
            fill = {**bound}
            if this is not None:
                fill["this"] = this
            if path is not None:
                fill["path"] = path
            fill["value"] = value
            texts = [_fill(str(m), fill) for m in messages] + [_fill(str(m), fill) for m in shape.messages]
            results.append(self._result(shape, focus if this is None else this, value,
                                        min(texts, default="does not conform"),
                                        constraint))
        return results


def _fill(message: str, bound: dict[str, Any]) -> str:
    for name, value in bound.items():
        message = re.sub("{{[?$]{}}}".format(name), str(value), message)
    return message


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, Literal) else None


# ---- what the shapes read ----


@dataclass(frozen=True)
class _Reads:
    predicates: frozenset[Any]
    classes: frozenset[Any]


def _shape_reads(shapes: Graph) -> _Reads:
    """The predicates and classes a shapes graph can read in a data graph: paths, targets and SPARQL patterns."""
    predicates: set[Any] = {RDF.type, RDFS.subClassOf}
    classes: set[Any] = set()
    for path in shapes.objects(None, SH.path):
        if isinstance(path, URIRef):
            predicates.add(path)
        else:
            predicates.update(n for n in shapes.items(path) if isinstance(n, URIRef))
            predicates.update(o for s, p, o in shapes.triples((path, None, None)) if isinstance(o, URIRef))
    for target_property in (SH.targetObjectsOf, SH.targetSubjectsOf):
        predicates.update(shapes.objects(None, target_property))
    classes.update(shapes.objects(None, SH.targetClass))
    classes.update(shapes.objects(None, SH["class"]))
    prefixes = {str(shapes.value(d, SH.prefix)): str(shapes.value(d, SH.namespace))
                for d in shapes.objects(None, SH.declare)}
    for select in shapes.objects(None, SH.select):
        algebra = prepare_text(str(select), prefixes).algebra
        for s, p, o in _patterns(algebra):
            if isinstance(p, URIRef):
                predicates.add(p)
                if p == RDF.type and isinstance(o, URIRef):
                    classes.add(o)
            else:
                return _Reads(frozenset({None}), frozenset())  # a variable predicate reads everything
    return _Reads(frozenset(predicates), frozenset(classes))


def _patterns(node: Any) -> Iterator[Triple]:
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if "triples" in item and isinstance(item["triples"], list):
                for triple in item["triples"]:
                    if isinstance(triple, tuple) and len(triple) == 3:
                        yield triple
                    elif isinstance(triple, list) and len(triple) % 3 == 0:  # a pattern inside (NOT) EXISTS
                        yield from (tuple(triple[i:i + 3]) for i in range(0, len(triple), 3))
                    else:
                        yield (None, None, None)  # not understood: reads anything
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)


def _needed(triples: Iterable[Triple], reads: _Reads) -> list[Triple]:
    """The guideline triples a shape can read; every triple when a shape reads any predicate."""
    if None in reads.predicates:
        return list(triples)
    return [t for t in triples if t[1] in reads.predicates and not isinstance(t[0], Literal)]


__all__ = ["FastEngine", "TBox", "DeltaClosure", "closed_guideline", "cache_dir"]
