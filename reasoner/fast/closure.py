"""OWL-RL over one patient's triples, compiled from the closed T-box of the guideline.

The rules a patient's triples can fire: subclass, subproperty, domain, range, inverse, symmetric
and transitive properties, plus what owlrl adds for every triple (``owl:sameAs`` reflexivity) and
every typed literal (datatype typing, subsumption, disjointness). ``TBox.unsupported`` lists any
other OWL construct the closed guideline uses: the engine then closes each patient with owlrl.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from owlrl.AxiomaticTriples import OWLRL_Datatypes_Disjointness
from owlrl.XsdDatatypes import OWL_Datatype_Subsumptions
from owlrl.XsdDatatypes import OWL_RL_Datatypes as _OWL_RL_DATATYPE_LIST
from rdflib import OWL, RDF, RDFS, Literal

Triple = tuple[Any, Any, Any]

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

