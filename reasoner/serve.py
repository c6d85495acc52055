"""A read-only SPARQL 1.1 Protocol endpoint over the guideline and patient reports.

The dataset
    Named graphs: the asserted guideline (:data:`GUIDELINE_GRAPH`), what the OWL-RL
    closure adds to it (:data:`INFERRED_GRAPH`, the entailed triples only) and one
    graph per patient report (:func:`report_graph_name`, ``<patient>/report``).
    The default graph is the union of all named graphs (``sd:UnionDefaultGraph``),
    as with Oxigraph's ``--union-default-graph`` and Fuseki's ``unionDefaultGraph``.

The protocol
    ``/sparql``: GET ``?query=``, POST form ``query=`` and POST
    ``application/sparql-query``. SELECT and ASK answer in SPARQL results JSON,
    XML, CSV or TSV; CONSTRUCT and DESCRIBE in Turtle, N-Triples, JSON-LD or
    RDF/XML, chosen by the Accept header (406 when none of them is acceptable).
    ``/sparql`` with no query gives the SPARQL 1.1 Service Description.
    ``/queries`` lists the named queries (``queries/*.rq``), ``/queries/{name}``
    runs one with parameters from the query string bound as RDF terms.
    ``/`` is a query page (nothing from a CDN). The HTTP side is :mod:`reasoner.endpoint`
    on the shared layer :mod:`reasoner.http`; this module is the backend it calls.

Safe defaults
    Read-only (an update is refused with 403); FROM, FROM NAMED, the
    ``default-graph-uri``/``named-graph-uri`` parameters and SERVICE are refused
    with 400, so no query reads outside the dataset; each query runs in a worker
    process that is killed when it exceeds the time limit (rdflib cannot cancel a
    query), so a slow query never holds up the other clients. The server binds
    127.0.0.1; another address needs a bearer token, and then every request but
    the static query page must carry it (401 otherwise). CORS is off unless an
    origin is configured.
"""

from __future__ import annotations

import json
import multiprocessing
import multiprocessing.connection
import os
import queue
import signal
import threading
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any
from collections.abc import Mapping

from rdflib import BNode, Dataset, Graph, Literal, Namespace, URIRef
from rdflib.namespace import RDF, XSD
from rdflib.plugins.sparql.algebra import translateQuery
from rdflib.plugins.sparql.parser import parseQuery, parseUpdate
from rdflib.plugins.sparql.sparql import Query as PreparedQuery
from rdflib.query import Result
from rdflib.term import Node

from reasoner import resources
from reasoner.errors import InputError
from reasoner.guideline import Guideline
from reasoner.namespaces import BASE, GKG
from reasoner.queries import QueryFile, load_folder, local_only_problem

GUIDELINE_GRAPH = URIRef(BASE + "graph/guideline")
INFERRED_GRAPH = URIRef(BASE + "graph/guideline-inferred")
SD = Namespace("http://www.w3.org/ns/sparql-service-description#")
VOID = Namespace("http://rdfs.org/ns/void#")
FORMATS = Namespace("http://www.w3.org/ns/formats/")

MAX_BODY_BYTES = 1024 * 1024
REPORT_SUFFIXES = {".ttl": "turtle", ".jsonld": "json-ld", ".nt": "nt"}

# Media types a result can be written in, most preferred first; the value is the serializer's name.
SOLUTION_TYPES: dict[str, str] = {
    "application/sparql-results+json": "json",
    "application/sparql-results+xml": "xml",
    "text/csv": "csv",
    "text/tab-separated-values": "tsv",
    "application/json": "json",
    "application/xml": "xml",
    "text/xml": "xml",
}
GRAPH_TYPES: dict[str, str] = {
    "text/turtle": "turtle",
    "application/n-triples": "nt",
    "application/ld+json": "json-ld",
    "application/rdf+xml": "xml",
    "application/json": "json-ld",
}
# The Graph Store Protocol's dump of the whole dataset (every named graph).
DATASET_TYPES: dict[str, str] = {"application/n-quads": "nquads", "application/trig": "trig"}
# The W3C format IRIs the service description lists (sd:resultFormat).
FORMAT_IRIS = [FORMATS.SPARQL_Results_JSON, FORMATS.SPARQL_Results_XML, FORMATS.SPARQL_Results_CSV,
               FORMATS.SPARQL_Results_TSV, FORMATS.Turtle, FORMATS["N-Triples"], FORMATS["JSON-LD"], FORMATS.RDF_XML]


# --- the dataset -------------------------------------------------------------------------------


@dataclass(frozen=True)
class NamedGraph:
    """One graph of the dataset, with what it holds in a few words."""

    name: URIRef
    graph: Graph
    label: str


def report_graph_name(patient: URIRef) -> URIRef:
    """The named graph a patient's report is kept in: ``<patient>/report``."""
    return URIRef(f"{patient}/report")


def guideline_graphs(guideline: Guideline) -> list[NamedGraph]:
    """The asserted guideline, and the triples its OWL-RL closure adds (only those, and only RDF ones:
    the closure also makes generalized triples with a literal subject, which no store accepts)."""
    from reasoner.fast import closed_guideline

    inferred = Graph()
    for triple in closed_guideline(guideline):
        if not isinstance(triple[0], Literal) and isinstance(triple[1], URIRef) and triple not in guideline.graph:
            inferred.add(triple)
    return [NamedGraph(GUIDELINE_GRAPH, guideline.graph, "the guideline as encoded (asserted)"),
            NamedGraph(INFERRED_GRAPH, inferred, "what the OWL-RL closure of the guideline adds to it")]


def read_report(path: Path) -> NamedGraph:
    """A report graph written by ``recommend --format turtle|jsonld``; its patient names the graph."""
    from reasoner.patient import check_jsonld_contexts, read_text

    syntax = REPORT_SUFFIXES.get(path.suffix.lower())
    if syntax is None:
        raise InputError(f"{path.name}: a report must be Turtle (.ttl), N-Triples (.nt) or JSON-LD (.jsonld)")
    text = read_text(path)
    if syntax == "json-ld":
        try:
            check_jsonld_contexts(json.loads(text), path.name)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path.name}: not JSON: {exc.msg} (line {exc.lineno})") from None
    graph = Graph()
    try:
        graph.parse(data=text, format=syntax, publicID="urn:guideline-kg:input:")
    except Exception as exc:  # rdflib's parsers raise several unrelated types
        raise InputError(f"{path.name}: cannot be parsed as {syntax}: {' '.join(str(exc).split())[:200]}") from None
    patients = sorted({p for p in graph.subjects(RDF.type, GKG.Patient) if isinstance(p, URIRef)}, key=str)
    if len(patients) != 1:
        raise InputError(f"{path.name}: a report is about exactly one gkg:Patient; this file has {len(patients)}")
    return NamedGraph(report_graph_name(patients[0]), graph, f"the report of {patients[0]}")


def read_reports(folder: Path) -> list[NamedGraph]:
    """Every report file of a folder, one named graph per patient (two files for one patient are refused)."""
    if not folder.is_dir():
        raise InputError(f"{folder}: not a folder of reports")
    reports: dict[URIRef, NamedGraph] = {}
    for path in sorted(p for p in folder.iterdir() if p.suffix.lower() in REPORT_SUFFIXES):
        report = read_report(path)
        if report.name in reports:
            raise InputError(f"{path.name}: a second report for the patient of {report.name}")
        reports[report.name] = report
    return list(reports.values())


def build_dataset(graphs: list[NamedGraph]) -> Dataset:
    dataset = Dataset(default_union=True)
    for named in graphs:
        target = dataset.graph(named.name)
        for prefix, namespace in named.graph.namespaces():
            dataset.bind(prefix, namespace, override=False)
        for triple in named.graph:
            target.add(triple)
    return dataset


# --- checking a request's query ----------------------------------------------------------------


class Refused(Exception):
    """A request answered with an HTTP error status and a one-line message."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Checked:
    """A query that may run: its text and its form (SELECT, ASK, CONSTRUCT or DESCRIBE)."""

    text: str
    form: str


_FORMS = {"SelectQuery": "SELECT", "AskQuery": "ASK", "ConstructQuery": "CONSTRUCT", "DescribeQuery": "DESCRIBE"}


# rdflib's SPARQL parser (pyparsing) is not thread-safe: queries parsed at once in the server's threads
# fail at random. Every parse in this process holds this lock; workers are forked holding it too, so a
# worker never starts with a parse half done (and its own copy of the lock is free).
PARSE_LOCK = threading.Lock()


def prepare(text: str) -> PreparedQuery:
    """Parse a query (under PARSE_LOCK unless in a worker): prefixes must be declared, as SPARQL says
    (rdflib would quietly take rdf:, owl:, schema: … from its own table), and the CONSTRUCT WHERE short
    form gets its template (rdflib loses it under LIMIT, OFFSET or ORDER BY). Raises Refused or a parse error."""
    with PARSE_LOCK:
        return _prepare(text)


def _prepare(text: str, strict: bool = True) -> PreparedQuery:
    parsed = parseQuery(text)
    undeclared = _undeclared_prefixes(parsed) if strict else []
    if undeclared:
        raise Refused(HTTPStatus.BAD_REQUEST, f"prefix {', '.join(p + ':' for p in undeclared)} is used but not "
                                              "declared (add PREFIX lines)")
    prepared = translateQuery(parsed)
    algebra = prepared.algebra
    if algebra.name == "ConstructQuery" and not algebra.get("template"):
        node = algebra.p
        while node is not None and getattr(node, "name", None) != "BGP":
            node = node.get("p") if hasattr(node, "get") else None
        algebra["template"] = list(node.triples) if node is not None else []
    return prepared


def _undeclared_prefixes(parsed: Any) -> list[str]:
    declared, used = set(), set()
    stack = [parsed]
    while stack:
        node = stack.pop()
        name = getattr(node, "name", None)
        if name == "PrefixDecl":
            declared.add(node.get("prefix") or "")
        elif name == "pname":
            used.add(node.get("prefix") or "")
        if isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, (list, tuple)) or type(node).__name__ == "ParseResults":
            stack.extend(list(node))
    return sorted(used - declared)


def check_query(text: str) -> Checked:
    """Parse a query; raise Refused (403 for an update, 400 for anything reaching outside the dataset)."""
    try:
        prepared = prepare(text)
    except Refused:
        raise
    except Exception as exc:  # pyparsing and rdflib raise several types
        if _is_update(text):
            raise Refused(HTTPStatus.FORBIDDEN, "this endpoint is read-only: SPARQL Update (including LOAD) "
                                                "is not accepted") from None
        raise Refused(HTTPStatus.BAD_REQUEST, f"not a valid SPARQL query: {' '.join(str(exc).split())[:300]}") from None
    return Checked(text, _form(prepared))


def _form(prepared: PreparedQuery) -> str:
    problem = local_only_problem(prepared)
    if problem:
        raise Refused(HTTPStatus.BAD_REQUEST, problem)
    return _FORMS[prepared.algebra.name]


def _is_update(text: str) -> bool:
    try:
        with PARSE_LOCK:
            parseUpdate(text)
    except Exception:
        return False
    return True


# --- content negotiation -----------------------------------------------------------------------


def _media_ranges(accept: str) -> list[tuple[str, float]]:
    ranges = []
    for part in accept.split(","):
        pieces = [p.strip() for p in part.split(";")]
        if not pieces[0]:
            continue
        q = 1.0
        for param in pieces[1:]:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        ranges.append((pieces[0].lower(), q))
    return ranges


def _quality(offer: str, ranges: list[tuple[str, float]]) -> float:
    """The q of the most specific media range that matches the offer (0 when none does)."""
    kind = offer.split("/")[0]
    best_level, q = -1, 0.0
    for media_range, weight in ranges:
        level = 2 if media_range == offer else 1 if media_range == f"{kind}/*" else 0 if media_range == "*/*" else -1
        if level > best_level:
            best_level, q = level, weight
    return q


def negotiate(accept: str | None, offers: list[str]) -> str | None:
    """The offered media type the Accept header prefers (the earlier offer on a tie), or None (406)."""
    if not accept or not accept.strip():
        return offers[0]
    ranges = _media_ranges(accept)
    chosen, best = None, 0.0
    for offer in offers:
        q = _quality(offer, ranges)
        if q > best:
            chosen, best = offer, q
    return chosen


def offers_for(form: str) -> dict[str, str]:
    return SOLUTION_TYPES if form in ("SELECT", "ASK") else GRAPH_TYPES


# --- writing results ---------------------------------------------------------------------------


def _tsv_term(term: Node | None) -> str:
    if term is None:
        return ""
    if isinstance(term, BNode):
        return f"_:{term}"
    text = term.n3()
    return text.replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def serialize(result: Result, fmt: str) -> bytes:
    """A query result in one of the formats of SOLUTION_TYPES or GRAPH_TYPES."""
    if result.type in ("CONSTRUCT", "DESCRIBE"):
        assert result.graph is not None
        data = result.graph.serialize(format=fmt)
        return data.encode("utf-8") if isinstance(data, str) else data
    if fmt == "tsv":
        if result.type == "ASK":
            return f"?_askResult\n{'true' if result.askAnswer else 'false'}\n".encode()
        names = [str(v) for v in result.vars or []]
        lines = ["\t".join(f"?{n}" for n in names)]
        lines += ["\t".join(_tsv_term(row[i]) for i in range(len(names))) for row in result]  # type: ignore[index]
        return ("\n".join(lines) + "\n").encode("utf-8")
    if fmt == "csv" and result.type == "ASK":
        return f"_askResult\r\n{'true' if result.askAnswer else 'false'}\r\n".encode()
    return result.serialize(format=fmt) or b""


# --- worker processes with a time limit --------------------------------------------------------


@dataclass(frozen=True)
class Job:
    """What a worker runs: a checked query, its bindings and the serializer to write with."""

    text: str
    bindings: dict[str, Node]
    fmt: str


class QueryTimeout(Exception):
    pass


class QueryFailed(Exception):
    pass


def _close_inherited(keep: int) -> None:
    """Close what a forked worker inherited (the listening socket, other workers' pipes), so that
    when the server process ends every worker reads end-of-file and exits, and none holds the port."""
    try:
        fds = [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:
        fds = list(range(3, 1024))
    for fd in fds:
        if fd > 2 and fd != keep:
            try:
                os.close(fd)
            except OSError:
                pass


def _worker_main(dataset: Dataset, conn: multiprocessing.connection.Connection) -> None:
    import rdflib.plugins.sparql as sparql_settings

    _close_inherited(conn.fileno())
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the server's handlers: a worker just ends
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group; the server stops its workers
    sparql_settings.SPARQL_LOAD_GRAPHS = False  # FROM/FROM NAMED are refused before; never fetch regardless
    while True:
        try:
            job: Job = conn.recv()
        except EOFError:
            return
        try:
            result = dataset.query(_prepare(job.text, strict=False), initBindings=job.bindings or None)
            conn.send(("ok", serialize(result, job.fmt)))
        except Exception as exc:  # an evaluation error ends this query only
            conn.send(("error", f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"))


class _Worker:
    def __init__(self, context: Any, dataset: Dataset) -> None:
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_worker_main, args=(dataset, child), daemon=True)
        self.process.start()
        child.close()

    def stop(self) -> None:
        self.process.kill()
        self.process.join()
        self.conn.close()


class WorkerPool:
    """Worker processes, forked from the process that holds the dataset; one query at a time each.

    A query over its time limit has its worker killed and replaced: rdflib cannot
    stop a running query, but a process can be ended.
    """

    def __init__(self, dataset: Dataset, size: int, timeout: float) -> None:
        self.dataset = dataset
        self.timeout = timeout
        self._context = multiprocessing.get_context("fork")
        self._idle: queue.Queue[_Worker] = queue.Queue()
        self._all: set[_Worker] = set()
        self._lock = threading.Lock()
        self._closed = False
        for _ in range(size):
            self._add()

    def _add(self) -> None:
        with PARSE_LOCK:  # no parse half done in the copy the worker gets
            worker = _Worker(self._context, self.dataset)
        with self._lock:
            self._all.add(worker)
        self._idle.put(worker)

    def run(self, job: Job) -> bytes:
        worker = self._idle.get()
        try:
            worker.conn.send(job)
            if not worker.conn.poll(self.timeout):
                raise QueryTimeout(f"the query ran over the {self.timeout:g} s time limit and was stopped")
            status, payload = worker.conn.recv()
        except (QueryTimeout, EOFError, OSError):
            with self._lock:
                self._all.discard(worker)
                closed = self._closed
            worker.stop()
            if not closed:  # no new worker while the server shuts down
                self._add()
            raise
        self._idle.put(worker)
        if status != "ok":
            raise QueryFailed(payload)
        return payload

    def close(self) -> None:
        with self._lock:
            self._closed = True
            workers, self._all = list(self._all), set()
        for worker in workers:
            worker.stop()


# --- the service -------------------------------------------------------------------------------


@dataclass
class Settings:
    host: str = "127.0.0.1"
    port: int = 7878
    timeout: float = 30.0
    token: str | None = None
    cors: str | None = None
    workers: int = 2


@dataclass(frozen=True)
class Answer:
    """A query's result as sent: its media type (with charset) and its bytes."""

    content_type: str
    body: bytes


@dataclass
class Service:
    """What the HTTP handler answers from: the dataset, its graphs, the named queries and the workers."""

    graphs: list[NamedGraph]
    queries: dict[str, QueryFile]
    pool: WorkerPool
    settings: Settings
    forms: dict[str, str] = field(default_factory=dict)

    @classmethod
    def start(cls, graphs: list[NamedGraph], settings: Settings, queries: dict[str, QueryFile] | None = None) -> Service:
        if queries is None:  # the population queries, and the guideline's QC checks as qc/{name}
            queries = load_folder(resources.queries_dir())
            queries.update({f"qc/{name}": q for name, q in load_folder(resources.queries_dir() / "qc").items()})
        forms = {name: _form(query.prepared()) for name, query in queries.items()}
        pool = WorkerPool(build_dataset(graphs), settings.workers, settings.timeout)
        return cls(graphs, queries, pool, settings, forms)

    def close(self) -> None:
        """Stop the worker processes."""
        self.pool.close()

    def answer(self, text: str, accept: str | None, bindings: dict[str, Node] | None = None,
               form: str | None = None) -> Answer:
        """Run a query in a worker, in the media type the Accept header prefers; raises Refused."""
        form = form or check_query(text).form
        offers = offers_for(form)
        media_type = negotiate(accept, list(offers))
        if media_type is None:
            raise Refused(HTTPStatus.NOT_ACCEPTABLE, f"a {form} result can be given as {', '.join(offers)}; "
                                                     f"none of them is acceptable ({accept})")
        try:
            body = self.pool.run(Job(text, bindings or {}, offers[media_type]))
        except QueryTimeout as exc:
            raise Refused(HTTPStatus.SERVICE_UNAVAILABLE, str(exc)) from None
        except QueryFailed as exc:
            raise Refused(HTTPStatus.INTERNAL_SERVER_ERROR, f"the query failed: {exc}") from None
        except (EOFError, OSError):
            raise Refused(HTTPStatus.INTERNAL_SERVER_ERROR, "the query's worker process ended") from None
        textual = media_type.startswith("text/") or "json" in media_type or "xml" in media_type
        return Answer(media_type + ("; charset=utf-8" if textual else ""), body)

    def run_named(self, name: str, params: Mapping[str, list[str]], accept: str | None) -> Answer:
        query = self.queries.get(name)
        if query is None:
            raise Refused(HTTPStatus.NOT_FOUND, f"no query named {name!r}; /queries lists them")
        declared = {p.name: p for p in query.params}
        bindings: dict[str, Node] = {}
        for key, values in params.items():
            if key not in declared:
                names = ", ".join(declared) or "none"
                raise Refused(HTTPStatus.BAD_REQUEST, f"{name} has no parameter {key!r} (parameters: {names})")
            if len(values) != 1:
                raise Refused(HTTPStatus.BAD_REQUEST, f"parameter {key} is given {len(values)} times")
            try:
                bindings[key] = declared[key].term(values[0])
            except ValueError as exc:
                raise Refused(HTTPStatus.BAD_REQUEST, str(exc)) from None
        return self.answer(query.text, accept, bindings, self.forms[name])

    def query_list(self, base: str) -> list[dict[str, Any]]:
        return [{"name": name, "summary": q.summary, "statements": q.statements, "form": self.forms[name],
                 "url": f"{base}/queries/{name}",
                 "params": [{"name": p.name, "type": p.type, "description": p.description} for p in q.params]}
                for name, q in sorted(self.queries.items())]

    def prefixes(self) -> dict[str, str]:
        """The prefixes of the dataset's graphs whose namespace some IRI in them uses (for the query page)."""
        if "prefixes" not in self.__dict__.setdefault("_memo", {}):
            bound: dict[str, str] = {}
            for named in self.graphs[:2]:  # the guideline graphs: the reports use the same vocabulary
                bound.update({p: str(n) for p, n in named.graph.namespaces() if p and p not in bound})
            iris = {str(t) for named in self.graphs[:2] for triple in named.graph for t in triple
                    if isinstance(t, URIRef)}
            starts = {iri[: max(iri.rfind("#"), iri.rfind("/"), iri.rfind(":")) + 1] for iri in iris}
            self._memo["prefixes"] = {p: n for p, n in sorted(bound.items())
                                      if any(start.startswith(n) for start in starts)}
        return dict(self._memo["prefixes"])

    def graph_store(self, name: str | None, default: bool, accept: str | None) -> Answer:
        """SPARQL 1.1 Graph Store Protocol, read side: one named graph, the default graph (the union),
        or with neither the whole dataset as N-Quads (or TriG); raises Refused."""
        dataset = self.pool.dataset
        if name is None and not default:
            offers, graph = DATASET_TYPES, None
        else:
            offers = GRAPH_TYPES
            if default:
                graph = Graph()
                for prefix, namespace in dataset.namespaces():
                    graph.bind(prefix, namespace, override=False)
                for triple in dataset.triples((None, None, None)):
                    graph.add(triple)
            else:
                named = next((g for g in self.graphs if str(g.name) == name), None)
                if named is None:
                    raise Refused(HTTPStatus.NOT_FOUND, f"no graph named <{name[:200]}>; the service description "
                                                        "(/sparql) lists them")
                graph = named.graph
        media_type = negotiate(accept, list(offers))
        if media_type is None:
            raise Refused(HTTPStatus.NOT_ACCEPTABLE, f"this can be given as {', '.join(offers)}")
        data = (dataset if graph is None else graph).serialize(format=offers[media_type])
        return Answer(media_type + "; charset=utf-8", data.encode("utf-8") if isinstance(data, str) else data)

    def description(self, endpoint: str) -> Graph:
        """The SPARQL 1.1 Service Description of the endpoint."""
        sd = Graph()
        sd.bind("sd", SD)
        sd.bind("void", VOID)
        sd.bind("formats", FORMATS)
        service = BNode("service")
        sd.add((service, RDF.type, SD.Service))
        sd.add((service, SD.endpoint, URIRef(endpoint)))
        sd.add((service, SD.supportedLanguage, SD.SPARQL11Query))
        sd.add((service, SD.feature, SD.UnionDefaultGraph))
        for fmt in FORMAT_IRIS:
            sd.add((service, SD.resultFormat, fmt))
        dataset = BNode("dataset")
        sd.add((service, SD.defaultDataset, dataset))
        sd.add((dataset, RDF.type, SD.Dataset))
        default = BNode("default")
        sd.add((dataset, SD.defaultGraph, default))
        sd.add((default, RDF.type, SD.Graph))
        sd.add((default, VOID.triples, Literal(len(self.pool.dataset), datatype=XSD.integer)))
        for named in self.graphs:
            node, graph = BNode(), BNode()
            sd.add((dataset, SD.namedGraph, node))
            sd.add((node, RDF.type, SD.NamedGraph))
            sd.add((node, SD.name, named.name))
            sd.add((node, SD.graph, graph))
            sd.add((graph, RDF.type, SD.Graph))
            sd.add((graph, VOID.triples, Literal(len(named.graph), datatype=XSD.integer)))
            sd.add((graph, URIRef("http://purl.org/dc/terms/description"), Literal(named.label)))
        return sd
