"""The fast engine: the reference pipeline's results with the per-patient work cut to what the patient can trigger.

The reference engine (``reasoner.engine``) closes guideline + patient with owlrl about
seven times per patient. Here:

* the guideline is closed once with owlrl and cached on disk, keyed by
  ``Guideline.fingerprint`` (``$XDG_CACHE_HOME/guideline-kg``, else ``~/.cache/guideline-kg``;
  an unwritable cache only costs the closure on every start);
* the OWL-RL rules a patient's triples can fire are compiled from the closed T-box at load
  time (``TBox``): subclass, subproperty, domain, range, inverse, symmetric and transitive
  properties, plus what owlrl adds for every triple (``owl:sameAs`` reflexivity) and every
  typed literal (datatype typing, subsumption, disjointness). A T-box using any other OWL
  construct makes the engine close each patient with owlrl as the reference does;
* the rule files of ``queries/rules/`` run unchanged, in the reference's stratified fixpoint
  order, in pyoxigraph over the cached guideline plus the patient's named graph;
* the shapes are parsed once into direct checks (``ShapeChecker``: targets, core constraints,
  SPARQL constraints run in pyoxigraph, messages filled in as pySHACL fills them); shapes using
  SHACL beyond that subset are validated with pySHACL on the patient's triples plus the guideline
  triples the shapes can read;
* the report's SELECT queries run in pyoxigraph; everything else sees an ordinary rdflib
  ``Graph`` (guideline store shared, patient triples on top), so explain and the RDF
  report work unchanged;
* a patient with a number pyoxigraph cannot hold as rdflib reads it (``1e308`` as xsd:decimal)
  or an ill-typed literal is handed to the reference engine whole.

The reference engine is the definition of correct: the differential tests compare the
JSON reports byte for byte (tests/test_fast_engine.py), the benchmark on every run.
"""

from __future__ import annotations

import itertools
import os
import pickle
import re
import tempfile
import weakref
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyoxigraph as ox
from owlrl.XsdDatatypes import OWL_Datatype_Subsumptions, OWL_RL_Datatypes
from owlrl.AxiomaticTriples import OWLRL_Datatypes_Disjointness
from rdflib import OWL, RDF, RDFS, BNode, Graph, Literal, URIRef, Variable
from rdflib.plugins.sparql import prepareQuery
from rdflib.plugins.stores.memory import Memory
from rdflib.store import Store

from reasoner.engine import ANNOTATED, Reasoned, ReferenceEngine, closure
from reasoner.fhir import PatientGraph
from reasoner.errors import GuidelineError
from reasoner.guideline import Guideline, Rule
from reasoner.namespaces import GKG
from reasoner.validate import SH, ShapeResult, unique, validate

Triple = tuple[Any, Any, Any]
XSD_STRING = "http://www.w3.org/2001/XMLSchema#string"
CACHE_VERSION = "1"
RECYCLE = 500  # patients between two fresh pyoxigraph stores (see FastEngine._recycle)

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


def cache_dir() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "guideline-kg"


def closed_guideline(guideline: Guideline) -> list[Triple]:
    """The owlrl closure of the guideline graph, from the disk cache when the encoding is unchanged."""
    path = cache_dir() / f"closed-{CACHE_VERSION}-{guideline.fingerprint}.pickle"
    try:
        with path.open("rb") as handle:
            triples = pickle.load(handle)
        if isinstance(triples, list):
            return triples
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ValueError):
        pass
    graph = Graph()
    graph += guideline.graph
    closure(graph)
    triples = list(graph)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".closed-", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as handle:
            pickle.dump(triples, handle, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)
    except OSError:
        pass  # an unwritable cache costs the closure on every start, nothing else
    return triples


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
        for s, p, o in closed:
            if p in tables:
                tables[p].setdefault(s, set()).add(o)
                if p == OWL.inverseOf:
                    box.inverses.setdefault(o, set()).add(s)
            elif p == OWL.disjointWith:
                box.disjoint.add((s, o))
            elif p == RDF.type and o == OWL.SymmetricProperty:
                box.symmetric.add(s)
            elif p == RDF.type and o == OWL.TransitiveProperty:
                box.transitive.add(s)
            elif p == RDF.type and str(o).startswith(SCHEMA_NAMESPACES) and o not in SUPPORTED_TYPES:
                box.unsupported.append(f"{s} a {o}")
            elif str(p).startswith(SCHEMA_NAMESPACES) and p not in SUPPORTED_PREDICATES and p not in (
                    RDFS.label, RDFS.comment, RDFS.seeAlso, RDFS.isDefinedBy):
                box.unsupported.append(f"{s} {p} {o}")
            elif p == OWL.sameAs and s != o:
                box.unsupported.append(f"{s} owl:sameAs {o}")
        for table in (box.superclasses, box.superproperties):
            for key, values in table.items():
                values.discard(key)
        return box


TYPE, SAME_AS, DATATYPE = RDF.type, OWL.sameAs, RDFS.Datatype
BY_RULE = GKG.byRule


class DeltaClosure:
    """What owlrl adds to (closed guideline + patient triples) beyond the closed guideline, computed from the patient side."""

    def __init__(self, base: frozenset[Triple], tbox: TBox) -> None:
        self.base = base
        self.tbox = tbox
        base_types = {o for s, p, o in base if p == TYPE and o in OWL_RL_Datatypes}
        base_literals = {o.datatype for s, p, o in base if isinstance(o, Literal) and o.datatype in OWL_RL_Datatypes}
        self.base_datatypes = frozenset(base_types | base_literals)
        self.base_types: dict[Any, set[Any]] = {}
        for s, p, o in base:
            if p == TYPE:
                self.base_types.setdefault(s, set()).add(o)
        self.disjoint: dict[Any, set[Any]] = {}
        for a, b in tbox.disjoint:
            self.disjoint.setdefault(a, set()).add(b)

    def _fire(self, t: Triple, have: set[Triple]) -> Iterator[Triple]:
        s, p, o = t
        box = self.tbox
        yield (s, SAME_AS, s)  # eq-ref
        yield (o, SAME_AS, o)
        yield (p, SAME_AS, p)
        for q in box.superproperties.get(p, ()):  # prp-spo1 (prp-eqp via scm-eqp in the closed T-box)
            yield (s, q, o)
        for c in box.domains.get(p, ()):  # prp-dom
            yield (s, TYPE, c)
        for c in box.ranges.get(p, ()):  # prp-rng
            yield (o, TYPE, c)
        for q in box.inverses.get(p, ()):  # prp-inv1, prp-inv2
            yield (o, q, s)
        if p in box.symmetric:  # prp-symp
            yield (o, p, s)
        if p in box.transitive:  # prp-trp, both ways round
            for x, pp, y in list(have):
                if pp == p and y == s:
                    yield (x, p, o)
                if pp == p and x == o:
                    yield (s, p, y)
        if p == TYPE:  # cax-sco (cax-eqc via scm-eqc in the closed T-box)
            for d in box.superclasses.get(o, ()):
                yield (s, TYPE, d)

    def _datatypes(self, added: Iterable[Triple], used: set[Any]) -> Iterator[Triple]:
        """owlrl's one-time datatype rules (dt-type2, subsumption, disjointness) for the patient's literals.

        ``used`` (the datatypes in use so far, guideline's included) grows as literals come in.
        """
        for s, p, o in added:
            if isinstance(o, Literal) and o.datatype in OWL_RL_Datatypes:
                used.add(o.datatype)
                yield (o, TYPE, o.datatype)
                for wider in OWL_Datatype_Subsumptions.get(o.datatype, ()):
                    yield (o, TYPE, wider)
                    yield (wider, TYPE, DATATYPE)
                    used.add(wider)
            elif p == TYPE and o in OWL_RL_Datatypes:
                used.add(o)
        for t in OWLRL_Datatypes_Disjointness:
            if t[0] in used and t[2] in used:
                yield t

    def extend(self, triples: set[Triple], new: Iterable[Triple], used: set[Any]) -> set[Triple]:
        """Close ``triples`` (the patient side, grown in place) after ``new`` were added; returns what was derived.

        ``used`` carries the datatypes in use from one call to the next for the same patient.
        """
        derived: set[Triple] = set()
        base = self.base
        queue = list(new)
        added = list(queue)
        for _ in range(100):
            while queue:
                t = queue.pop()
                for d in self._fire(t, triples):
                    if d in triples or d in base or isinstance(d[1], Literal):
                        continue
                    triples.add(d)
                    derived.add(d)
                    queue.append(d)
                    added.append(d)
            queue = [d for d in set(self._datatypes(added, used)) if d not in triples and d not in base]
            added = list(queue)
            for d in queue:
                triples.add(d)
                derived.add(d)
            if not queue:
                break
        return derived

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


# ---- pyoxigraph terms ----

NUMERIC = {"http://www.w3.org/2001/XMLSchema#" + name for name in (
    "decimal", "integer", "double", "float", "int", "long", "short", "byte", "nonNegativeInteger",
    "positiveInteger", "nonPositiveInteger", "negativeInteger", "unsignedInt", "unsignedLong", "unsignedShort",
    "unsignedByte")}


def _number(text: str) -> Any:
    from decimal import Decimal, InvalidOperation

    try:
        return Decimal(text.strip())
    except InvalidOperation:
        return text


class Terms:
    """rdflib <-> pyoxigraph term conversion, remembering the rdflib term each pyoxigraph term came from."""

    def __init__(self) -> None:
        self.to_ox: dict[Any, Any] = {}
        self.from_ox: dict[Any, Any] = {}
        self.by_value: dict[tuple[str, Any], Any] = {}
        self.local: dict[tuple[str, Any], Any] = {}  # the numbers of the patient at hand, preferred
        self.limit = 200_000
        self._kept: tuple[dict[Any, Any], dict[Any, Any], dict[tuple[str, Any], Any]] | None = None

    def keep(self) -> None:
        """Remember the terms known now (the guideline's); ``trim`` goes back to them."""
        self._kept = (dict(self.to_ox), dict(self.from_ox), dict(self.by_value))

    def trim(self) -> None:
        """Forget the terms of past patients once they are many, so memory stays flat over a long batch."""
        if self._kept is not None and (len(self.to_ox) > len(self._kept[0]) + 50_000
                                       or len(self.from_ox) > len(self._kept[1]) + 50_000):
            self.to_ox, self.from_ox, self.by_value = (dict(d) for d in self._kept)

    def ox(self, term: Any) -> Any:
        hit = self.to_ox.get(term)
        if hit is not None:
            return hit
        if isinstance(term, URIRef):
            value = ox.NamedNode(str(term))
        elif isinstance(term, BNode):
            value = ox.BlankNode(str(term))
        elif isinstance(term, Literal):
            if term.language:
                value = ox.Literal(str(term), language=term.language)
            elif term.datatype is not None:
                value = ox.Literal(str(term), datatype=ox.NamedNode(str(term.datatype)))
            else:
                value = ox.Literal(str(term))
        else:
            raise TypeError(f"not an RDF term: {term!r}")
        if len(self.to_ox) < self.limit:
            self.to_ox[term] = value
            self.from_ox.setdefault(value, term)
            if isinstance(term, Literal) and str(term.datatype) in NUMERIC:
                self.by_value.setdefault((str(term.datatype), _number(str(term))), term)
        return value

    def rdf(self, term: Any) -> Any:
        if term is None:
            return None
        if isinstance(term, ox.Literal) and term.datatype.value in NUMERIC:
            # pyoxigraph stores numbers in canonical form ("20.0" comes back as "20"); rdflib keeps the
            # lexical form the data had, and so must we
            key = (term.datatype.value, _number(term.value))
            hit = self.local.get(key)
            if hit is None:  # (a Literal of zero is false: no ``or`` here)
                hit = self.by_value.get(key)
            if hit is not None:
                return hit
        hit = self.from_ox.get(term)
        if hit is not None:
            return hit
        value = self.fresh(term)
        if len(self.from_ox) < self.limit and not (isinstance(term, ox.Literal) and term.datatype.value in NUMERIC):
            self.from_ox[term] = value
        return value

    @staticmethod
    def fresh(term: Any) -> Any:
        """The rdflib term of a pyoxigraph term as pyoxigraph gives it (numbers in canonical form: 20.0 is 20)."""
        if isinstance(term, ox.NamedNode):
            return URIRef(term.value)
        if isinstance(term, ox.BlankNode):
            return BNode(term.value)
        if isinstance(term, ox.Literal):
            if term.language:
                return Literal(term.value, lang=term.language)
            if term.datatype.value == XSD_STRING:
                return Literal(term.value)
            return Literal(term.value, datatype=URIRef(term.datatype.value))
        raise TypeError(f"not an RDF term: {term!r}")

    def quad(self, t: Triple, graph: Any) -> Any | None:
        if isinstance(t[0], Literal) or isinstance(t[1], (Literal, BNode)):
            return None  # owlrl's literal-subject triples: pyoxigraph refuses them and no rule reads them
        return ox.Quad(self.ox(t[0]), self.ox(t[1]), self.ox(t[2]), graph)


def _nquads(triples: Iterable[Triple], graph: str | None) -> bytes:
    """N-Quads of the triples pyoxigraph can hold (no literal subjects), for a bulk load."""
    tail = f" <{graph}> .\n" if graph else " .\n"
    lines = [f"{s.n3()} {p.n3()} {o.n3()}{tail}" for s, p, o in triples
             if not isinstance(s, Literal) and isinstance(p, URIRef)]
    return "".join(lines).encode("utf-8")


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
    """A SELECT result from pyoxigraph shaped like rdflib's: ``vars`` and rows of rdflib terms."""

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

    The guideline's store is shared, not copied. SELECT queries of the guideline's query
    files run in pyoxigraph over the same triples; any other query runs in rdflib.
    """

    def __init__(self, engine: "FastEngine", triples: set[Triple], named: Any) -> None:
        super().__init__(store=_Overlay(lambda: engine.base_store, triples))
        self._engine = engine
        self._named = named
        self._triples = triples
        self._numbers = engine.terms.local
        self._finalizer = weakref.finalize(self, engine.store.remove_graph, named)

    def __contains__(self, triple: Any) -> bool:
        if isinstance(triple, tuple) and len(triple) == 3 and None not in triple:
            return triple in self._triples or triple in self._engine.base
        return super().__contains__(triple)

    def query(self, query_object, processor="sparql", result="sparql", initNs=None, initBindings=None,
              use_store_provided=True, **kwargs):  # type: ignore[override]
        known = self._engine.select_texts.get(id(query_object))
        bindings = dict(initBindings or {})
        if known is None or kwargs or not set(map(str, bindings)) <= known[1]:
            return super().query(query_object, processor, result, initNs, initBindings, use_store_provided, **kwargs)
        self._engine.terms.local = self._numbers
        return self._engine.select(known[0], self._named, bindings)


# ---- the engine ----


class FastEngine:
    """Same contract and same reports as ReferenceEngine; per patient, only what the patient's facts can trigger."""

    name = "fast"

    def __init__(self, guideline: Guideline) -> None:
        self.guideline = guideline
        closed = closed_guideline(guideline)
        self.base = frozenset(closed)
        self.tbox = TBox.of(closed)
        self.delta = DeltaClosure(self.base, self.tbox)
        self.terms = Terms()
        asserted_graph = ox.NamedNode("urn:guideline-kg:fast:asserted-guideline")
        self._guideline_nquads = _nquads(closed, None) + _nquads(guideline.graph, asserted_graph.value)
        self.store = self._new_store()
        self._views: weakref.WeakSet[PatientView] = weakref.WeakSet()
        self._served = 0
        for _, _, o in closed:
            if isinstance(o, Literal) and str(o.datatype) in NUMERIC:
                self.terms.by_value.setdefault((str(o.datatype), _number(str(o))), o)
        self._closed = closed
        self._base_store: Memory | None = None
        self.base_known = {q.triple for q in self.store.quads_for_pattern(None, None, None, ox.DefaultGraph())}
        self._known: set[Any] = set()
        self.rules = list(guideline.rules)
        self.strata = sorted({r.stratum for r in self.rules})
        self.patient_shapes = guideline.shape_graph("patient")
        self.inferred_shapes = guideline.shape_graph("patient-inferred")
        try:
            self.asserted_checker: ShapeChecker | None = ShapeChecker(
                self.patient_shapes, list(guideline.graph), self, asserted_graph)
            self.inferred_checker: ShapeChecker | None = ShapeChecker(
                self.inferred_shapes, closed, self, ox.DefaultGraph())
        except Unsupported:
            self.asserted_checker = self.inferred_checker = None
        self.asserted_needs = _shape_reads(self.patient_shapes)
        self.inferred_needs = _shape_reads(self.inferred_shapes)
        self.asserted_guideline = _needed(guideline.graph, self.asserted_needs)
        self.inferred_guideline = _needed(closed, self.inferred_needs)
        self.select_texts = {id(q.prepared()): (BindableQuery.of(q.text), frozenset(p.name for p in q.params))
                             for q in guideline.queries.values() if q.prepared().algebra.name == "SelectQuery"}
        self._counter = itertools.count()
        self._reference: ReferenceEngine | None = None
        self.annotated = {self.terms.ox(c) for c in ANNOTATED}
        self.rdf_type = self.terms.ox(RDF.type)
        self.terms.keep()
        self.reads = {r.name: _reads(r.query.prepared().algebra) for r in self.rules}

    def _new_store(self) -> Any:
        """A pyoxigraph store holding the closed guideline (default graph) and the asserted one (a named graph)."""
        store = ox.Store()
        store.load(self._guideline_nquads, format=ox.RdfFormat.N_QUADS)
        return store

    def _recycle(self) -> None:
        """Every RECYCLE patients, when no report still reads it, start again from a fresh store.

        Removing a patient's graph does not give all of its memory back to the process, so a
        long batch would grow; a fresh store costs a bulk load of the cached guideline.
        """
        self._served += 1
        if self._served % RECYCLE == 0 and not self._views:
            self.store = self._new_store()

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

    def load(self, patient: PatientGraph, named: Any) -> set[Triple]:
        """The patient's own triples, also put in the pyoxigraph graph ``named``."""
        self.terms.trim()
        self._recycle()
        triples = {t for t in patient.graph if t not in self.base}
        self.terms.local = {(str(o.datatype), _number(str(o))): o for _, _, o in triples
                            if isinstance(o, Literal) and str(o.datatype) in NUMERIC}
        self._known = set()
        self._add(triples, named)
        return triples

    def _add(self, triples: Iterable[Triple], named: Any) -> None:
        """Put the patient's new triples in its pyoxigraph graph, remembering them as pyoxigraph triples."""
        quads = [q for q in (self.terms.quad(t, named) for t in triples) if q is not None]
        self.store.extend(quads)
        self._known.update(q.triple for q in quads)

    def validate_asserted(self, patient: PatientGraph, named: Any) -> list[ShapeResult]:
        """The patient shapes on guideline + patient (``named`` must hold the patient's triples)."""
        if self.asserted_checker is not None:
            return unique(self.asserted_checker.check(patient.graph, named))
        data = Graph()
        for t in self.asserted_guideline:
            data.add(t)
        for t in patient.graph:
            data.add(t)
        return validate(data, self.patient_shapes)

    def validate_inferred(self, triples: set[Triple], named: Any) -> list[ShapeResult]:
        if self.inferred_checker is not None:
            return unique(self.inferred_checker.check(triples, named))
        data = Graph()
        for t in self.inferred_guideline:
            data.add(t)
        for t in triples:
            data.add(t)
        return validate(data, self.inferred_shapes)

    def infer(self, triples: set[Triple], named: Any) -> set[Triple]:
        """The reference's run_rules: per stratum, closure then every rule, until a pass adds nothing.

        ``triples`` (the patient's, already in ``named``) grows in place and is returned. A rule is
        evaluated again only when a triple it can read (by predicate, or by class for rdf:type) was
        added since its last evaluation: otherwise its answer, already added, cannot have changed.
        """
        store = self.store
        graphs = [ox.DefaultGraph(), named]
        used: set[Any] = set(self.delta.base_datatypes)
        clock = 0  # counts the batches of added triples
        changed: dict[Any, int] = {}  # read key -> the batch that last added a triple it matches
        seen_at: dict[str, int] = {}

        def note(added: Iterable[Triple]) -> None:
            for t in added:
                for key in _keys(t):
                    changed[key] = clock

        note(triples)
        pending: set[Triple] = set(triples)
        for stratum in self.strata:
            rules = [r for r in self.rules if r.stratum == stratum]
            while True:
                if pending:
                    clock += 1
                    derived = self.delta.extend(triples, pending, used)
                    self._add(derived, named)
                    note(derived)
                    pending = set()
                added = 0
                for rule in rules:
                    since = seen_at.get(rule.name)
                    reads = self.reads[rule.name]
                    if since is not None and reads is not None and all(changed.get(k, -1) < since for k in reads):
                        continue
                    clock += 1
                    seen_at[rule.name] = clock
                    new = self._apply(rule, graphs, named, triples)
                    note(new)
                    pending |= new
                    added += len(new)
                if added == 0:
                    break
        return triples

    def _apply(self, rule: Rule, graphs: list[Any], named: Any, triples: set[Triple]) -> set[Triple]:
        """The reference's apply_rule: add what the rule constructs, and gkg:byRule on each conclusion it types."""
        produced = list(self.store.query(rule.query.text, default_graph=graphs))
        rdf_type, annotated = self.rdf_type, self.annotated
        typed = {t.subject for t in produced if t.predicate == rdf_type and t.object in annotated}
        new: set[Triple] = set()
        rdf = self.terms.rdf
        base = self.base
        known, base_known = self._known, self.base_known
        for t in produced:
            if t in known or t in base_known:  # already there: no need to convert it
                continue
            triple = (rdf(t.subject), rdf(t.predicate), rdf(t.object))
            if triple not in triples and triple not in base:
                new.add(triple)
        iri = rule.iri
        for subject in typed:
            triple = (rdf(subject), BY_RULE, iri)
            if triple not in triples and triple not in base:
                new.add(triple)
        if new:
            triples |= new
            self._add(new, named)
        return new

    def select(self, query: "BindableQuery", named: Any, bindings: dict[str, Any]) -> _Solutions:
        text = query.bind({str(k): self.terms.ox(v) for k, v in bindings.items()})
        result = self.store.query(text, default_graph=[ox.DefaultGraph(), named])
        variables = [Variable(v.value) for v in result.variables]
        rdf = self.terms.rdf
        width = range(len(variables))
        rows = [tuple(rdf(solution[i]) for i in width) for solution in result]
        return _Solutions(variables, rows)

    def faithful(self, patient: PatientGraph) -> bool:
        """Does pyoxigraph read every number of the patient as rdflib does?

        pyoxigraph's xsd:decimal holds about 18 digits each side of the point: "1e308" quantized to
        0.01 is no number to it (no range check fires) while rdflib and pySHACL read it. Such a
        patient, and one with an ill-typed literal, is reasoned over by the reference engine.
        """
        numbers = [o for _, _, o in patient.graph if isinstance(o, Literal) and o.datatype is not None
                   and (str(o.datatype) in NUMERIC or getattr(o, "ill_typed", False))]
        if not numbers:
            return True
        if any(getattr(o, "ill_typed", False) for o in numbers):
            return False
        scratch = ox.NamedNode("urn:guideline-kg:fast:scratch")
        predicate = ox.NamedNode("urn:guideline-kg:fast:value")
        self.store.extend(ox.Quad(ox.NamedNode(f"urn:guideline-kg:fast:n{i}"), predicate, self.terms.ox(o), scratch)
                          for i, o in enumerate(numbers))
        try:
            rows = self.store.query("SELECT ?s ?v WHERE { ?s ?p ?v FILTER (isNumeric(?v)) }", default_graph=scratch)
            read = {row[0].value: row[1].value for row in rows}
        finally:
            self.store.clear_graph(scratch)
        for i, o in enumerate(numbers):
            value = read.get(f"urn:guideline-kg:fast:n{i}")
            if value is None or _number(value) != _number(str(o)):
                return False
        return True

    def reason(self, patient: PatientGraph) -> Reasoned:
        if not self.faithful(patient):
            if self._reference is None:
                self._reference = ReferenceEngine(self.guideline)
            return self._reference.reason(patient)
        named = ox.NamedNode(f"urn:guideline-kg:fast:patient:{next(self._counter)}")
        triples = self.load(patient, named)
        results = self.validate_asserted(patient, named)
        if any(r.severity == "Violation" for r in results):
            self.store.remove_graph(named)
            return Reasoned(patient, None, results)
        if self.tbox.unsupported:
            triples = self._owlrl_fallback(patient, named)
        else:
            triples = self.infer(triples, named)
            if self.delta.disjointness_clash(triples):
                self.store.remove_graph(named)
                triples = self._owlrl_fallback(patient, named)
        results += self.validate_inferred(triples, named)
        view = PatientView(self, triples, named)
        self._views.add(view)
        return Reasoned(patient, view, unique(results))

    def _owlrl_fallback(self, patient: PatientGraph, named: Any) -> set[Triple]:
        """The reference's reasoning for a T-box (or a patient) the compiled rules do not cover."""
        from reasoner.engine import run_rules

        graph = Graph()
        graph += self.guideline.graph
        graph += patient.graph
        run_rules(self.guideline, graph)
        triples = {t for t in graph if t not in self.base}
        self._known = set()
        self._add(triples, named)
        return triples


@dataclass(frozen=True)
class BindableQuery:
    """A query text with a place, at the start of its WHERE group, for a VALUES block binding its parameters.

    pyoxigraph's ``substitutions`` applies bindings after evaluating the whole pattern (hundreds of
    times slower here); a leading VALUES block binds them first. The terms are written by pyoxigraph
    (``str`` of a NamedNode or Literal is its escaped N-Triples form), never copied from text.
    """

    head: str
    tail: str

    @classmethod
    def of(cls, text: str) -> "BindableQuery":
        match = re.search(r"\bSELECT\b|\bCONSTRUCT\b|\bASK\b", text, flags=re.IGNORECASE)
        brace = text.find("{", match.end() if match else 0)
        if match and match.group(0).upper() == "CONSTRUCT":
            brace = text.find("{", text.find("}", brace) + 1)  # the template first, then the WHERE group
        if brace < 0:
            raise GuidelineError("a query without a WHERE group cannot take parameters")
        return cls(text[:brace + 1], text[brace + 1:])

    def bind(self, bindings: dict[str, Any]) -> str:
        if not bindings:
            return self.head + self.tail
        names = " ".join(f"?{name}" for name in bindings)
        values = " ".join(str(term) for term in bindings.values())
        return f"{self.head} VALUES ({names}) {{ ({values}) }} {self.tail}"


ANY_TYPE = "any rdf:type"


def _reads(algebra: Any) -> frozenset[Any] | None:
    """What a query's triple patterns can match: predicates, (rdf:type, class) pairs, ANY_TYPE; None for anything."""
    keys: set[Any] = set()
    for s, p, o in _patterns(algebra):
        if not isinstance(p, URIRef):
            return None
        if p == TYPE:
            keys.add((TYPE, o) if isinstance(o, URIRef) else ANY_TYPE)
        else:
            keys.add(p)
    return frozenset(keys)


def _keys(t: Triple) -> tuple[Any, ...]:
    """The read keys a triple matches (see _reads)."""
    return ((TYPE, t[2]), ANY_TYPE) if t[1] == TYPE else (t[1],)


# ---- SHACL checks compiled from the shapes ----


class Unsupported(Exception):
    """The shapes use SHACL the compiled checks do not implement; pySHACL validates instead."""


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


def _datatype_matches(value: Any, datatype: Any) -> bool:
    """pySHACL's sh:datatype test (DatatypeConstraintComponent), for one value node."""
    import datetime as dt
    from decimal import Decimal

    from rdflib import XSD

    if not isinstance(value, Literal):
        return False
    python = {XSD.string: (str, bytes), RDF.langString: (str, bytes), XSD.integer: int, XSD.float: float,
              XSD.decimal: Decimal, XSD.boolean: bool, XSD.date: dt.date, XSD.time: dt.time,
              XSD.dateTime: dt.datetime}
    if value.datatype == datatype:
        if getattr(value, "ill_typed", None) is True:
            return False
    elif datatype == RDFS.Literal or (datatype == RDFS.Datatype and value.datatype):
        return True
    elif not (value.datatype is None and value.language is None and datatype == XSD.string) and not (
            datatype == RDF.langString and value.language):
        return False
    kind = python.get(datatype)
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
    sparql: list[tuple[Any, "BindableQuery", list[Literal]]] = field(default_factory=list)
    target_classes: list[Any] = field(default_factory=list)
    target_objects_of: list[Any] = field(default_factory=list)
    target_subjects_of: list[Any] = field(default_factory=list)
    target_nodes: list[Any] = field(default_factory=list)


class _Data:
    """The data graph of one validation: the guideline part (indexed once) and the patient's side."""

    def __init__(self, base: "_Index", side: Iterable[Triple]) -> None:
        self.base = base
        self.side = _Index(side)

    def objects(self, s: Any, p: Any) -> list[Any]:
        return self.base.sp.get((s, p), []) + self.side.sp.get((s, p), [])

    def values(self, focus: Any, path: Any) -> set[Any]:
        nodes = {focus}
        for p in path if isinstance(path, tuple) else (path,):
            nodes = {o for n in nodes for o in self.objects(n, p)}
        return nodes


class _Index:
    def __init__(self, triples: Iterable[Triple]) -> None:
        self.sp: dict[tuple[Any, Any], list[Any]] = {}
        self.p: dict[Any, list[tuple[Any, Any]]] = {}
        for s, p, o in triples:
            self.sp.setdefault((s, p), []).append(o)
            self.p.setdefault(p, []).append((s, o))


class ShapeChecker:
    """The shapes of one shapes graph as direct checks, giving the ShapeResults pySHACL gives.

    Covered: targets (class with subclasses, objects of, subjects of, node), property shapes with a
    predicate or sequence path and minCount, maxCount, nodeKind, in, datatype, or, node; node shapes
    with SPARQL SELECT constraints (run in pyoxigraph with $this substituted, messages filled in as
    pySHACL fills them). Anything else raises Unsupported at load time.
    """

    def __init__(self, shapes: Graph, guideline: list[Triple], engine: "FastEngine", graph: Any) -> None:
        self.engine = engine
        self.graph = graph  # the pyoxigraph graph holding this validation's guideline part
        self.shapes_graph = shapes
        self.base = _Index(t for t in guideline if not isinstance(t[0], Literal))
        self.subclasses: dict[Any, set[Any]] = {}
        for s, o in self.base.p.get(RDFS.subClassOf, []):
            self.subclasses.setdefault(o, set()).add(s)
        self._built: dict[Any, _Shape] = {}
        roots = set(shapes.subjects(RDF.type, SH.NodeShape))
        for target in (SH.targetClass, SH.targetObjectsOf, SH.targetSubjectsOf, SH.targetNode):
            roots.update(shapes.subjects(target, None))
        self.roots = [self._shape(n) for n in sorted(roots, key=str) if self._has_targets(n)]
        for shape in self.roots:
            if any(self._focus_nodes(shape, _Data(self.base, ()))):
                raise Unsupported(f"{shape.node}: the guideline itself holds focus nodes")

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
                shape.path, shape.path_text = path, str(path)
            elif g.value(path, RDF.first) is not None and all(isinstance(i, URIRef) for i in g.items(path)):
                items = tuple(g.items(path))
                shape.path, shape.path_text = items, " / ".join(str(i) for i in items)
            else:
                raise Unsupported(f"{node}: path {path}")
        shape.min_count = _int(g.value(node, SH.minCount))
        shape.max_count = _int(g.value(node, SH.maxCount))
        shape.node_kind = g.value(node, SH.nodeKind)
        if shape.node_kind is not None and shape.node_kind not in NODE_KINDS:
            raise Unsupported(f"{node}: nodeKind {shape.node_kind}")
        allowed = g.value(node, SH["in"])
        shape.allowed = frozenset(g.items(allowed)) if allowed is not None else None
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
            text = BindableQuery.of(declared + str(g.value(constraint, SH.select)))
            shape.sparql.append((constraint, text, [m for m in g.objects(constraint, SH.message)
                                                    if isinstance(m, Literal)]))
        shape.target_classes = list(g.objects(node, SH.targetClass))
        shape.target_objects_of = list(g.objects(node, SH.targetObjectsOf))
        shape.target_subjects_of = list(g.objects(node, SH.targetSubjectsOf))
        shape.target_nodes = list(g.objects(node, SH.targetNode))
        if shape.path is not None and (shape.properties or not shape.messages):
            raise Unsupported(f"{node}: nested property shapes or no sh:message")
        return shape

    def _focus_nodes(self, shape: _Shape, data: _Data) -> Iterator[Any]:
        seen: set[Any] = set()
        for c in shape.target_classes:
            classes = {c}
            stack = [c]
            while stack:
                for sub in self.subclasses.get(stack.pop(), ()):
                    if sub not in classes:
                        classes.add(sub)
                        stack.append(sub)
            for index in (data.base, data.side):
                for s, o in index.p.get(RDF.type, []):
                    if o in classes and s not in seen:
                        seen.add(s)
                        yield s
        for p in shape.target_objects_of:
            for index in (data.base, data.side):
                for _s, o in index.p.get(p, []):
                    if o not in seen:
                        seen.add(o)
                        yield o
        for p in shape.target_subjects_of:
            for index in (data.base, data.side):
                for s, _o in index.p.get(p, []):
                    if s not in seen:
                        seen.add(s)
                        yield s
        for n in shape.target_nodes:
            if n not in seen:
                seen.add(n)
                yield n

    def check(self, side: Iterable[Triple], named: Any) -> list[ShapeResult]:
        data = _Data(self.base, side)
        results: list[ShapeResult] = []
        for shape in self.roots:
            for focus in list(self._focus_nodes(shape, data)):
                results.extend(self._validate(shape, focus, data, named))
        return results

    def _conforms(self, shape: _Shape, focus: Any, data: _Data, named: Any) -> bool:
        return not self._validate(shape, focus, data, named)

    def _validate(self, shape: _Shape, focus: Any, data: _Data, named: Any) -> list[ShapeResult]:
        results: list[ShapeResult] = []
        if shape.path is None:
            for prop in shape.properties:
                results.extend(self._validate(prop, focus, data, named))
            for node in shape.nodes:
                if not self._conforms(node, focus, data, named):
                    results.append(self._result(shape, focus, focus))
            if shape.datatype is not None and not _datatype_matches(focus, shape.datatype):
                results.append(self._result(shape, focus, focus))
            if shape.node_kind is not None and not NODE_KINDS[shape.node_kind](focus):
                results.append(self._result(shape, focus, focus))
            if shape.allowed is not None and focus not in shape.allowed:
                results.append(self._result(shape, focus, focus))
            if shape.any_of and not any(self._conforms(a, focus, data, named) for a in shape.any_of):
                results.append(self._result(shape, focus, focus))
            for constraint, text, messages in shape.sparql:
                results.extend(self._sparql(shape, constraint, text, messages, focus, named))
            return results
        values = data.values(focus, shape.path)
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
            if shape.any_of and not any(self._conforms(a, value, data, named) for a in shape.any_of):
                results.append(self._result(shape, focus, value))
            for node in shape.nodes:
                if not self._conforms(node, value, data, named):
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

    def _sparql(self, shape: _Shape, constraint: Any, text: "BindableQuery", messages: list[Literal], focus: Any,
                named: Any) -> list[ShapeResult]:
        """A SPARQL SELECT constraint, its rows turned into results the way pySHACL does."""
        engine = self.engine
        rows = engine.store.query(text.bind({"this": engine.terms.ox(focus)}), default_graph=[self.graph, named])
        names = [v.value for v in rows.variables]
        seen: list[tuple[Any, ...]] = []
        results = []
        for row in rows:
            bound = {n: engine.terms.rdf(row[i]) for i, n in enumerate(names) if row[i] is not None}
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
        algebra = prepareQuery(str(select), initNs=prefixes).algebra
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
