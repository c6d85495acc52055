"""The patient shapes as direct checks (a subset of SHACL Core and SHACL-SPARQL) giving pySHACL's results.

Shapes using SHACL beyond the subset raise ``Unsupported`` when the checker is built: the engine
then validates with pySHACL on the patient's triples plus the guideline triples the shapes can
read (``shape_reads``, ``needed``).
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from rdflib import RDF, RDFS, XSD, BNode, Graph, Literal, URIRef, Variable

from reasoner.fast.dependencies import patterns
from reasoner.plan import Data, Index, Plan, Unsupported
from reasoner.queries import prepare_text
from reasoner.validate import SH, ShapeResult, fill_message

Triple = tuple[Any, Any, Any]
TYPE = RDF.type
THIS = Variable("this")
XSD_STRING_IRI = XSD.string

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
    with SPARQL SELECT constraints (compiled plans with $this bound, messages filled by
    fill_message, as the reference fills them). Anything else raises Unsupported at load time.
    """

    def __init__(self, shapes: Graph, guideline: Index, terms: dict[Any, Any]) -> None:
        """``terms``: the data's one object per term (index lookups then match by identity)."""
        self.terms = terms
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
        return self.terms.get(x, x)

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
            text = Plan(prepare_text(declared + str(g.value(constraint, SH.select))), self.terms)
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
            texts = [fill_message(str(m), fill) for m in [*messages, *shape.messages]]
            results.append(self._result(shape, focus if this is None else this, value,
                                        min(texts, default="does not conform"),
                                        constraint))
        return results


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, Literal) else None


# ---- what the shapes read ----


@dataclass(frozen=True)
class ShapeReads:
    """The predicates and classes a shapes graph can read; ``None`` among the predicates: any."""

    predicates: frozenset[Any]
    classes: frozenset[Any]


def shape_reads(shapes: Graph) -> ShapeReads:
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
        for s, p, o in patterns(algebra):
            if isinstance(p, URIRef):
                predicates.add(p)
                if p == RDF.type and isinstance(o, URIRef):
                    classes.add(o)
            else:
                return ShapeReads(frozenset({None}), frozenset())  # a variable predicate reads everything
    return ShapeReads(frozenset(predicates), frozenset(classes))


def needed(triples: Iterable[Triple], reads: ShapeReads) -> list[Triple]:
    """The guideline triples a shape can read; every triple when a shape reads any predicate."""
    if None in reads.predicates:
        return list(triples)
    return [t for t in triples if t[1] in reads.predicates and not isinstance(t[0], Literal)]

