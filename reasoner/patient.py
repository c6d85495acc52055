"""Reading one patient: a FHIR R4 Bundle (JSON), or a patient graph in Turtle or JSON-LD.

Nothing in the input may make the process read a file or open a connection:
JSON-LD contexts must be inline (a remote or file context is refused, never
fetched), and RDF/XML, whose entities can expand without bound, is not accepted.
"""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyoxigraph as ox
from rdflib import OWL, RDF, RDFS, XSD, BNode, Graph, Literal, URIRef

from reasoner.errors import InputError
from reasoner.fhir import MAX_DEPTH, BundleReader, PatientGraph, encodes_as_utf8, load_json, read_bundle
from reasoner.guideline import Guideline
from reasoner.namespaces import BASE, GKG, PATIENT_PREFIX

MAX_INPUT_BYTES = 20 * 1024 * 1024
MAX_TRIPLES = 200_000
MAX_CONTEXT_TERMS = 1_000
INPUT_BASE = "urn:guideline-kg:input:"
# Turtle and N-Triples are read with pyoxigraph: exactly the W3C grammars (rdflib lets bad
# escapes through), and linear in the input (rdflib's N-Triples reader is quadratic in the
# length of a line, and each @prefix costs it time in proportion to all the ones before).
STRICT_FORMATS = {"turtle": ox.RdfFormat.TURTLE, "nt": ox.RdfFormat.N_TRIPLES}
RDF_FORMATS = {".ttl": "turtle", ".jsonld": "json-ld", ".nt": "nt"}


def read_text(path: Path) -> str:
    try:
        size = path.stat().st_size
        if size > MAX_INPUT_BYTES:
            raise InputError(f"{path.name}: {size} bytes is over the {MAX_INPUT_BYTES} byte input limit")
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, a file is required") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror}") from None
    return decode_input(data, path.name)


def decode_input(data: bytes, name: str) -> str:
    """The text of one input (a file, an NDJSON line, a Bulk Data resource or patient): the same limit
    and the same strict UTF-8 for every kind (invalid bytes are refused, never replaced)."""
    if len(data) > MAX_INPUT_BYTES:
        raise InputError(f"{name}: {len(data)} bytes is over the {MAX_INPUT_BYTES} byte input limit")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{name}: not UTF-8 text (byte {exc.start})") from None


def sniff(path: Path, text: str) -> str:
    """``fhir``, ``turtle``, ``json-ld`` or ``nt``, from the file name and its first character."""
    suffix = path.suffix.lower()
    if suffix in RDF_FORMATS:
        return RDF_FORMATS[suffix]
    if suffix == ".json" or text.lstrip()[:1] in ("{", "["):
        return "json"
    if suffix in (".rdf", ".owl", ".xml"):
        raise InputError(f"{path.name}: RDF/XML is not accepted (entity expansion); use Turtle or JSON-LD")
    return "turtle"


def read_patient(guideline: Guideline, path: Path | str, now: datetime | None = None) -> PatientGraph:
    """One patient from a file, reasoned at ``now`` (the current time when None)."""
    path = Path(path)
    text = read_text(path)
    return parse_patient(guideline, text, sniff(path, text), path.name, now)


def parse_patient(guideline: Guideline, text: str, syntax: str, name: str = "input",
                  now: datetime | None = None) -> PatientGraph:
    if not text.strip():
        raise InputError(f"{name}: the file is empty")
    if syntax == "json":
        data = load_json(text, name)
        if isinstance(data, dict) and "resourceType" in data:
            return BundleReader(guideline, now).read(data)  # the JSON read once
        if isinstance(data, (dict, list)) and _looks_like_jsonld(data):
            return _with_time(_read_rdf(text, "json-ld", name, data), now)
        raise InputError(f"{name}: not a FHIR R4 Bundle (no resourceType) and not JSON-LD")
    if syntax == "json-ld":
        return _with_time(_read_rdf(text, "json-ld", name, load_json(text, name)), now)
    if syntax == "fhir":
        return read_bundle(guideline, text, now)
    return _with_time(_read_rdf(text, syntax, name), now)


def _with_time(patient: PatientGraph, now: datetime | None) -> PatientGraph:
    if now is not None:
        patient.reasoning_time = now
    return patient


def _looks_like_jsonld(data: Any) -> bool:
    if isinstance(data, list):
        return all(isinstance(item, dict) for item in data)
    return any(k in data for k in ("@context", "@graph", "@id", "@type"))


def check_jsonld_contexts(data: Any, name: str) -> None:
    """Refuse any context that is not inline: a string or an @import would be fetched."""
    stack = [data]
    terms = 0
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, value in item.items():
                if key == "@context":
                    contexts = value if isinstance(value, list) else [value]
                    for ctx in contexts:
                        if isinstance(ctx, str):
                            raise InputError(f"{name}: @context {ctx[:60]!r} is remote; only inline contexts are accepted")
                        if isinstance(ctx, dict) and "@import" in ctx:
                            raise InputError(f"{name}: @context @import is not accepted; only inline contexts")
                        terms += len(ctx) if isinstance(ctx, dict) else 0
                        if terms > MAX_CONTEXT_TERMS:  # rdflib binds each, in time growing with all before
                            raise InputError(f"{name}: @context defines over {MAX_CONTEXT_TERMS} terms")
                stack.append(value)
        elif isinstance(item, list):
            stack.extend(item)


def _read_rdf(text: str, syntax: str, name: str, data: Any = None) -> PatientGraph:
    if syntax == "turtle":
        _check_turtle_nesting(text, name)
    if syntax in STRICT_FORMATS:
        graph = _parse_strict(text, syntax, name)
    else:
        check_jsonld_contexts(data, name)
        graph = Graph()
        try:
            graph.parse(data=text, format=syntax, publicID=INPUT_BASE)
        except InputError:
            raise
        except Exception as exc:  # rdflib raises many unrelated exception types
            message = " ".join(str(exc).split())[:200]
            raise InputError(f"{name}: cannot be parsed as {syntax}: {message}") from None
    if len(graph) > MAX_TRIPLES:
        raise InputError(f"{name}: over {MAX_TRIPLES} triples; a patient graph is far smaller")
    _refuse_malformed_terms(graph, name)
    _refuse_guideline_changes(graph, name)
    patients = sorted(set(graph.subjects(RDF.type, GKG.Patient)), key=str)
    if len(patients) != 1:
        raise InputError(f"{name}: holds {len(patients)} nodes of type gkg:Patient, exactly one is required")
    patient = patients[0]
    if isinstance(patient, BNode) or not isinstance(patient, URIRef):
        raise InputError(f"{name}: the gkg:Patient node must be an IRI, not a blank node")
    identifier = next((str(o) for o in graph.objects(patient, GKG.identifier)), str(patient))
    if _CONTROL.search(identifier):
        raise InputError(f"{name}: the patient's gkg:identifier holds a control character")
    return PatientGraph(graph, patient, identifier, "rdf")


def _parse_strict(text: str, syntax: str, name: str) -> Graph:
    """Turtle or N-Triples read by pyoxigraph into an rdflib graph; blank nodes numbered in reading order."""
    graph = Graph()
    bnodes: dict[str, BNode] = {}

    def term(node: Any) -> URIRef | BNode | Literal:
        if isinstance(node, ox.NamedNode):
            return URIRef(node.value)
        if isinstance(node, ox.BlankNode):
            return bnodes.setdefault(node.value, BNode(f"input-b{len(bnodes)}"))
        if isinstance(node, ox.Literal):
            if node.language:
                return Literal(node.value, lang=node.language)
            datatype = URIRef(node.datatype.value)
            form = LEXICAL.get(datatype)  # checked before rdflib rewrites a lexical form Python can read ("1e3")
            if form is not None and not form.fullmatch(node.value.strip(" \t\n\r")):
                raise InputError(f"{name}: {node.value[:20]!r}^^<{datatype}> is ill-typed: not a valid value of its "
                                 "datatype")
            return Literal(node.value) if datatype == XSD.string else Literal(node.value, datatype=datatype)
        raise InputError(f"{name}: a triple term (RDF 1.2) is not accepted in a patient graph")

    try:
        for count, triple in enumerate(ox.parse(text.encode("utf-8"), format=STRICT_FORMATS[syntax],
                                                base_iri=INPUT_BASE), 1):
            if count > MAX_TRIPLES:
                raise InputError(f"{name}: over {MAX_TRIPLES} triples; a patient graph is far smaller")
            graph.add((term(triple.subject), term(triple.predicate), term(triple.object)))
    except SyntaxError as exc:
        message = " ".join(str(exc).split())[:200]
        raise InputError(f"{name}: cannot be parsed as {syntax}: {message}") from None
    return graph


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_BAD_IRI = re.compile(r'[\x00-\x20<>"{}|\\^`]')
_NUMBER = r"[+-]?(\d+(\.\d*)?|\.\d+)"
# The lexical forms of the XSD datatypes a patient graph holds (XML Schema 1.1 Part 2): a literal of one of
# these datatypes whose text is not of that form is ill-typed and refused (rdflib would read "sNaN" as a decimal).
LEXICAL = {
    XSD.decimal: re.compile(_NUMBER),
    XSD.integer: re.compile(r"[+-]?\d+"),
    XSD.int: re.compile(r"[+-]?\d+"),
    XSD.long: re.compile(r"[+-]?\d+"),
    XSD.nonNegativeInteger: re.compile(r"\+?\d+|-0+"),
    XSD.double: re.compile(_NUMBER + r"([eE][+-]?\d+)?|[+-]?INF|NaN"),
    XSD.float: re.compile(_NUMBER + r"([eE][+-]?\d+)?|[+-]?INF|NaN"),
    XSD.boolean: re.compile(r"true|false|1|0"),
    XSD.dateTime: re.compile(r"-?\d{4,}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})?"),
    XSD.date: re.compile(r"-?\d{4,}-\d{2}-\d{2}(Z|[+-]\d{2}:\d{2})?"),
}
MEASURED = (GKG.value,)


def _refuse_malformed_terms(graph: Graph, name: str) -> None:
    """Refuse what lenient parsing lets through: IRIs with spaces or controls, literal subjects, non-IRI predicates,
    ill-typed literals, text that is not Unicode, and measured values that are not finite numbers."""
    for s, p, o in graph:
        if not isinstance(s, (URIRef, BNode)):
            raise InputError(f"{name}: a literal stands as a subject ({str(s)[:40]!r})")
        if not isinstance(p, URIRef):
            raise InputError(f"{name}: a predicate is not an IRI ({str(p)[:40]!r})")
        for term in (s, p, o):
            if isinstance(term, URIRef) and _BAD_IRI.search(str(term)):
                raise InputError(f"{name}: {str(term)[:60]!r} is not a valid IRI")
            if not encodes_as_utf8(str(term)):
                raise InputError(f"{name}: a term holds an unpaired surrogate, not Unicode text")
        if isinstance(o, Literal):
            _check_literal(o, p, name)


def _check_literal(o: Literal, p: URIRef, name: str) -> None:
    if p in MEASURED and isinstance(o.value, (float, Decimal)) and not _finite(o.value):
        raise InputError(f"{name}: {str(o)[:20]!r}^^{o.datatype} as a measured value is not a finite number")
    if _is_nan(o.value):  # rdflib's comparisons raise on NaN, as JSON refuses it
        raise InputError(f"{name}: {str(o)[:20]!r}^^{o.datatype} is not a number")
    form = LEXICAL.get(o.datatype) if o.datatype is not None else None
    text = str(o).strip(" \t\n\r")
    if o.datatype in (XSD.double, XSD.float) and text in ("inf", "-inf"):
        text = text.upper()  # rdflib's spelling of INF once it has read the literal
    if form is not None and not form.fullmatch(text) or getattr(o, "ill_typed", False):
        raise InputError(f"{name}: {str(o)[:20]!r}^^<{o.datatype}> is ill-typed: not a valid value of its datatype")
    if o.datatype in (XSD.dateTime, XSD.date) and (o.value is None or isinstance(o.value, str)):
        raise InputError(f"{name}: {str(o)[:20]!r}^^<{o.datatype}> is ill-typed: not a valid date")


def _finite(value: float | Decimal) -> bool:
    return value.is_finite() if isinstance(value, Decimal) else value not in (float("inf"), float("-inf"))


def _is_nan(value: object) -> bool:
    return isinstance(value, (float, Decimal)) and value != value


def _check_turtle_nesting(text: str, name: str) -> None:
    """Blank-node property lists and collections nested no deeper than MAX_DEPTH (strings, IRIs, comments skipped)."""
    depth, i, n = 0, 0, len(text)
    while i < n:
        ch = text[i]
        if ch in "[(":
            depth += 1
            if depth > MAX_DEPTH:
                raise InputError(f"{name}: Turtle nested deeper than {MAX_DEPTH} levels")
        elif ch in "])":
            depth = max(0, depth - 1)
        elif ch == "#":
            end = text.find("\n", i)
            i = n if end < 0 else end
        elif ch == "<":
            end = text.find(">", i + 1)
            i = n if end < 0 else end
        elif ch in "\"'":
            quote = ch * 3 if text.startswith(ch * 3, i) else ch
            i += len(quote)
            while i < n and not text.startswith(quote, i):
                i += 2 if text[i] == "\\" else 1
            i += len(quote) - 1
        i += 1


SCHEMA_NAMESPACES = (str(RDFS), str(OWL), "http://www.w3.org/ns/shacl#")


def _refuse_guideline_changes(graph: Graph, name: str) -> None:
    """A patient graph states facts about a patient; it may not add axioms or say things about the guideline."""
    for s, p, _o in graph:
        if str(p).startswith(SCHEMA_NAMESPACES) and p not in (RDFS.label, RDFS.comment, RDFS.seeAlso):
            raise InputError(f"{name}: the patient graph uses {p}: schema axioms are not accepted in a patient graph")
        if isinstance(s, URIRef) and str(s).startswith(BASE) and not str(s).startswith(PATIENT_PREFIX):
            raise InputError(f"{name}: the patient graph makes statements about {s}, a term of the guideline")
