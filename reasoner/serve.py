"""A read-only SPARQL 1.1 Protocol endpoint over the guideline and patient reports.

The dataset
    An on-disk Oxigraph store (``guideline-kg load REPORTS --store DIR``; ``serve
    --reports DIR`` makes a temporary one), opened read-only. Named graphs: the
    asserted guideline (:data:`GUIDELINE_GRAPH`), what the OWL-RL closure adds to it
    without tautologies (:data:`INFERRED_GRAPH`) and one graph per patient report
    (:func:`report_graph_name`, ``<patient>/report``). The default graph is the union
    of all named graphs (``sd:UnionDefaultGraph``; kept materialized in the store by
    ``load``), as with ``oxigraph serve --union-default-graph`` and Fuseki's
    ``unionDefaultGraph``.

The protocol
    ``/sparql``: GET ``?query=``, POST form ``query=`` and POST
    ``application/sparql-query``. SELECT and ASK answer in SPARQL results JSON,
    XML, CSV or TSV; CONSTRUCT and DESCRIBE in Turtle, N-Triples, JSON-LD or
    RDF/XML, chosen by the Accept header (406 when none of them is acceptable).
    ``/sparql`` with no query gives the SPARQL 1.1 Service Description.
    ``/queries`` lists the named queries (``queries/*.rq``), ``/queries/{name}``
    runs one with parameters from the query string bound as RDF terms.
    ``/`` is a query page (YASGUI, nothing from a CDN). The HTTP side is
    :mod:`reasoner.endpoint` on the layer both servers share (:mod:`reasoner.http`);
    this module is the backend its routes call.

Safe defaults
    Read-only (an update is refused with 403); FROM, FROM NAMED, the
    ``default-graph-uri``/``named-graph-uri`` parameters and SERVICE are refused
    with 400, so no query reads outside the dataset. Each query is parsed and
    evaluated in a worker process (:mod:`reasoner.workers`) that is killed when it
    exceeds the time limit, whose address space is capped, and which opened the
    store read-only; a query that runs long moves to a separate long lane, so slow
    queries never hold up the quick ones; waiting for a worker is bounded (503 with
    Retry-After). The server binds 127.0.0.1; another address needs a bearer token,
    and then every request but the static query page must carry it (401 otherwise).
    CORS is off unless an origin is configured.
"""

from __future__ import annotations

import collections
import hashlib
import threading
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any
from collections.abc import Mapping

from rdflib import BNode, Dataset, Graph, Literal, Namespace, URIRef
from rdflib.namespace import RDF, XSD
from rdflib.plugins.sparql.sparql import Query as PreparedQuery
from rdflib.query import Result
from rdflib.term import Node

from reasoner import population, resources, workers
from reasoner.errors import InputError
from reasoner.guideline import Guideline
from reasoner.queries import QueryFile, load_folder, local_only_problem

GUIDELINE_GRAPH = population.GUIDELINE_GRAPH
INFERRED_GRAPH = population.INFERRED_GRAPH
SD = Namespace("http://www.w3.org/ns/sparql-service-description#")
VOID = Namespace("http://rdfs.org/ns/void#")
FORMATS = Namespace("http://www.w3.org/ns/formats/")

MAX_BODY_BYTES = 1024 * 1024

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
    return URIRef(population.report_graph_name(str(patient)))


def guideline_graphs(guideline: Guideline) -> list[NamedGraph]:
    """The asserted guideline, and the triples its OWL-RL closure adds: only those, only RDF ones (the closure
    also makes generalized triples with a literal subject, which no store accepts) and no tautology
    (:func:`reasoner.population.is_tautology`), so ``?c rdfs:subClassOf+ c:infection`` lists real subclasses."""
    return [NamedGraph(GUIDELINE_GRAPH, guideline.graph, "the guideline as encoded (asserted)"),
            NamedGraph(INFERRED_GRAPH, population.inferred_triples(guideline),
                       "what the OWL-RL closure of the guideline adds to it (no tautologies)")]


def _as_named_graph(report: population.ReportGraph) -> NamedGraph:
    import pyoxigraph as ox

    graph = Graph()
    data = ox.serialize([ox.Triple(q.subject, q.predicate, q.object) for q in report.quads],
                        format=ox.RdfFormat.N_TRIPLES)
    graph.parse(data=data or b"", format="nt")
    patient = report.name[: -len("/report")]
    return NamedGraph(URIRef(report.name), graph, f"the report of {patient}")


def read_report(path: Path) -> NamedGraph:
    """One report file (JSON with its .nq beside it, N-Quads, Turtle, N-Triples or JSON-LD) as a named graph."""
    return _as_named_graph(population.read_report_graph(path))


def read_reports(folder: Path) -> list[NamedGraph]:
    """Every report of a folder, one named graph per patient (two reports for one patient are refused, and a
    folder without a report is an error)."""
    return [_as_named_graph(report) for report in population.iter_reports([folder])]


def build_dataset(graphs: list[NamedGraph]) -> Dataset:
    """The graphs as an in-memory rdflib Dataset (for comparisons; the endpoint itself reads an Oxigraph store)."""
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
    """A request answered with an HTTP error status, a one-line message and maybe headers (Retry-After)."""

    def __init__(self, status: HTTPStatus, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})


@dataclass(frozen=True)
class Checked:
    """A query that may run: its text and its form (SELECT, ASK, CONSTRUCT or DESCRIBE)."""

    text: str
    form: str


_FORMS = {"SelectQuery": "SELECT", "AskQuery": "ASK", "ConstructQuery": "CONSTRUCT", "DescribeQuery": "DESCRIBE"}
_SCAN_STATUS = {"update": HTTPStatus.FORBIDDEN, "outside": HTTPStatus.BAD_REQUEST, "invalid": HTTPStatus.BAD_REQUEST}


def check_query(text: str) -> Checked:
    """A query's form from its words, without parsing it here (parsing happens in a worker, inside the time
    limit, with Oxigraph's re-entrant parser); raise Refused: 403 for an update, 400 for FROM, SERVICE or no
    query form."""
    try:
        return Checked(text, workers.scan_query(text))
    except workers.ScanProblem as problem:
        raise Refused(_SCAN_STATUS[problem.kind], str(problem)) from None


def _form(prepared: PreparedQuery) -> str:
    problem = local_only_problem(prepared)
    if problem:
        raise Refused(HTTPStatus.BAD_REQUEST, problem)
    return _FORMS[prepared.algebra.name]


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


# --- the service -------------------------------------------------------------------------------


@dataclass
class Settings:
    host: str = "127.0.0.1"
    port: int = 7878
    timeout: float = 30.0
    token: str | None = None
    cors: str | None = None
    workers: int = 2
    long_workers: int = 2  # queries at a time in the long lane (0: none, every query has the whole time limit)
    lane_seconds: float = 1.0  # how long a query runs as a quick one before it needs a long-lane slot
    wait: float = 10.0  # how long a query may wait for a free worker before a 503 with Retry-After
    memory_mb: int = 1024  # address space a worker may add while it runs a query (RLIMIT_AS)
    cache_mb: int = 64  # answers kept in the server process (the store is read-only: an answer never goes stale)


@dataclass(frozen=True)
class Answer:
    """A query's result as sent: its media type (with charset) and its bytes."""

    content_type: str
    body: bytes


@dataclass(frozen=True)
class GraphInfo:
    """A named graph as the service description lists it."""

    name: str
    triples: int | None
    label: str


class AnswerCache:
    """Answers by (query text, bindings, result format), least recently used first out, at most ``limit`` bytes.

    The endpoint's store is opened read-only, so an answer stays true for the life of the server; a
    dashboard's population queries are answered once by a worker, then from here."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.size = 0
        self.hits = 0
        self._answers: collections.OrderedDict[bytes, Answer] = collections.OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def key(job: workers.Job) -> bytes:
        data = repr((job.text, sorted(job.bindings.items()), job.form, job.fmt))
        return hashlib.sha256(data.encode("utf-8", "surrogatepass")).digest()

    def get(self, key: bytes) -> Answer | None:
        with self._lock:
            answer = self._answers.get(key)
            if answer is not None:
                self._answers.move_to_end(key)
                self.hits += 1
            return answer

    def put(self, key: bytes, answer: Answer) -> None:
        if len(answer.body) > self.limit // 4:  # one answer never takes more than a quarter
            return
        with self._lock:
            if key in self._answers:
                return
            self._answers[key] = answer
            self.size += len(answer.body)
            while self.size > self.limit:
                _, old = self._answers.popitem(last=False)
                self.size -= len(old.body)


LISTED_GRAPHS = 1000  # beyond this many named graphs the service description gives their number, not each one


def _binding(term: Node) -> tuple[str | None, ...]:
    if isinstance(term, URIRef):
        return ("iri", str(term))
    if isinstance(term, Literal):
        return ("literal", str(term), str(term.datatype) if term.datatype else None, term.language)
    raise Refused(HTTPStatus.BAD_REQUEST, f"{term!r} cannot be bound")


@dataclass
class Service:
    """What the HTTP handler answers from: an Oxigraph store opened read-only, the named queries and the
    workers (two lanes) that evaluate queries over it."""

    store_path: Path
    queries: dict[str, QueryFile]
    pool: workers.WorkerPool
    settings: Settings
    forms: dict[str, str] = field(default_factory=dict)
    graphs: list[GraphInfo] = field(default_factory=list)
    graph_count: int = 0
    store: Any = None  # the server process's own read-only handle: description and Graph Store Protocol reads
    temporary: population.TemporaryStore | None = None
    cache: AnswerCache | None = None

    def __post_init__(self) -> None:
        if self.cache is None:
            self.cache = AnswerCache(self.settings.cache_mb * 1024 * 1024)

    @classmethod
    def open(cls, store_path: Path, settings: Settings, queries: dict[str, QueryFile] | None = None,
             temporary: population.TemporaryStore | None = None) -> Service:
        """A service over the store made by ``guideline-kg load``; workers open it read-only."""
        import pyoxigraph as ox

        store = population.open_store(store_path, read_only=True)
        if queries is None:  # the population queries, and the guideline's QC checks as qc/{name}
            queries = load_folder(resources.queries_dir())
            queries.update({f"qc/{name}": q for name, q in load_folder(resources.queries_dir() / "qc").items()})
        forms = {name: _form(query.prepared()) for name, query in queries.items()}
        names = sorted(str(g.value) for g in store.named_graphs() if isinstance(g, ox.NamedNode))
        labels = {str(GUIDELINE_GRAPH): "the guideline as encoded (asserted)",
                  str(INFERRED_GRAPH): "what the OWL-RL closure of the guideline adds to it (no tautologies)"}
        listed = [n for n in names if n in labels] + [n for n in names if n not in labels][:LISTED_GRAPHS]
        graphs = [GraphInfo(n, sum(1 for _ in store.quads_for_pattern(None, None, None, ox.NamedNode(n)))
                            if len(names) <= LISTED_GRAPHS or n in labels else None,
                            labels.get(n) or f"the report of {n.removesuffix('/report')}") for n in listed]
        try:
            pool = workers.WorkerPool(store_path, settings.workers, settings.memory_mb * 1024 * 1024,
                                      settings.timeout, settings.lane_seconds, settings.long_workers, settings.wait)
        except OSError as exc:
            raise InputError(f"{store_path}: {exc}") from None
        return cls(store_path, queries, pool, settings, forms, graphs, len(names), store, temporary)

    @classmethod
    def start(cls, graphs: list[NamedGraph], settings: Settings, queries: dict[str, QueryFile] | None = None) -> Service:
        """A service over in-memory graphs: written to a temporary store first (removed by close)."""
        holder = population.TemporaryStore.of_graphs([(str(g.name), g.graph) for g in graphs])
        try:
            return cls.open(holder.folder, settings, queries, holder)
        except BaseException:
            holder.close()
            raise

    def close(self) -> None:
        self.pool.close()
        self.store = None
        if self.temporary is not None:
            self.temporary.close()

    def answer(self, text: str, accept: str | None, bindings: dict[str, Node] | None = None,
               form: str | None = None) -> Answer:
        """Run a query in a worker, in the media type the Accept header prefers; raises Refused."""
        form = form or check_query(text).form
        offers = offers_for(form)
        media_type = negotiate(accept, list(offers))
        if media_type is None:
            raise Refused(HTTPStatus.NOT_ACCEPTABLE, f"a {form} result can be given as {', '.join(offers)}; "
                                                     f"none of them is acceptable ({accept})")
        job = workers.Job(text, {k: _binding(v) for k, v in (bindings or {}).items()}, form, offers[media_type])
        assert self.cache is not None
        key = self.cache.key(job)
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        textual = media_type.startswith("text/") or "json" in media_type or "xml" in media_type
        if form == "SELECT":  # a query marked '#+ precompute: yes', answered when the store was loaded
            stored = self.stored_answer(text, bindings, job.fmt)
            if stored is not None:  # read each time: it is checked against the store each time
                return Answer(media_type + ("; charset=utf-8" if textual else ""), stored)
        retry = {"Retry-After": str(max(1, int(self.settings.lane_seconds + 1)))}
        try:
            body = self.pool.run(job)
        except workers.Busy as exc:
            raise Refused(HTTPStatus.SERVICE_UNAVAILABLE, f"{exc}; retry later", retry) from None
        except workers.QueryTimeout as exc:
            raise Refused(HTTPStatus.SERVICE_UNAVAILABLE, str(exc), retry) from None
        except workers.QuerySyntax as exc:
            raise Refused(HTTPStatus.BAD_REQUEST, f"not a valid SPARQL query: {exc}") from None
        except workers.QueryFailed as exc:
            raise Refused(HTTPStatus.INTERNAL_SERVER_ERROR, f"the query failed: {exc}") from None
        except workers.WorkerEnded as exc:
            raise Refused(HTTPStatus.INTERNAL_SERVER_ERROR, str(exc)) from None
        answer = Answer(media_type + ("; charset=utf-8" if textual else ""), body)
        self.cache.put(key, answer)
        return answer

    def stored_answer(self, text: str, bindings: dict[str, Node] | None, fmt: str) -> bytes | None:
        """The answer ``load`` worked out for this text and bindings (:mod:`reasoner.views`), if it is current."""
        from reasoner import views

        terms = {k: population._ox_term(v) for k, v in (bindings or {}).items()}
        return views.answer(self.store_path, text, terms, fmt)

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

    # -- Graph Store Protocol reads (the server process's read-only handle; no query, no worker)

    def graph_store(self, name: str | None, default: bool, accept: str | None) -> Answer:
        """SPARQL 1.1 Graph Store Protocol, read side: one named graph, the default graph (the union of the
        named graphs), or with neither the whole dataset as N-Quads (or TriG); raises Refused."""
        import io

        offers = GRAPH_TYPES if name is not None or default else DATASET_TYPES
        media_type = negotiate(accept, list(offers))
        if media_type is None:
            raise Refused(HTTPStatus.NOT_ACCEPTABLE, f"this can be given as {', '.join(offers)}")
        buffer = io.BytesIO()
        if name is None and not default:
            self.write_dataset(buffer, offers[media_type])
        else:
            self.write_graph(buffer, None if default else name, offers[media_type])
        return Answer(media_type + "; charset=utf-8", buffer.getvalue())

    def prefixes(self) -> dict[str, str]:
        """The prefixes of the guideline graph whose namespace some IRI in it uses (for the query page)."""
        if "prefixes" not in self.__dict__.setdefault("_memo", {}):
            guideline = Guideline.load().graph
            bound = {p: str(n) for p, n in guideline.namespaces() if p}
            iris = {str(t) for triple in guideline for t in triple if isinstance(t, URIRef)}
            starts = {iri[: max(iri.rfind("#"), iri.rfind("/"), iri.rfind(":")) + 1] for iri in iris}
            self._memo["prefixes"] = {p: n for p, n in sorted(bound.items())
                                      if any(start.startswith(n) for start in starts)}
        return dict(self._memo["prefixes"])

    def has_graph(self, name: str) -> bool:
        import pyoxigraph as ox

        return bool(self.store.contains_named_graph(ox.NamedNode(name)))

    def write_graph(self, out: Any, name: str | None, fmt: str = "nt") -> None:
        """Write one named graph (``name``), or with None the default graph (the union of the named graphs, as
        triples), to the binary stream ``out`` in ``fmt`` (a name of reasoner.workers.GRAPH_FORMATS but nquads);
        raises Refused 404 for a graph the store does not hold."""
        import pyoxigraph as ox

        rdf_format = getattr(ox.RdfFormat, workers.GRAPH_FORMATS[fmt])
        if name is not None:
            if not self.has_graph(name):
                raise Refused(HTTPStatus.NOT_FOUND, f"no graph <{name}> in this dataset")
            self.store.dump(out, format=rdf_format, from_graph=ox.NamedNode(name))
            return
        self.store.dump(out, format=rdf_format, from_graph=ox.DefaultGraph())  # the union, materialized

    def write_dataset(self, out: Any, fmt: str = "nquads") -> None:
        """Write every named graph as N-Quads (or TriG) to the binary stream ``out``, streamed: the named
        graphs only (the default graph is their union, kept materialized in the store)."""
        import pyoxigraph as ox

        quads = (q for q in self.store.quads_for_pattern(None, None, None) if q.graph_name != ox.DefaultGraph())
        ox.serialize(quads, out, format=getattr(ox.RdfFormat, workers.GRAPH_FORMATS[fmt]))

    def graph_bytes(self, name: str | None, fmt: str = "nt") -> bytes:
        import io

        buffer = io.BytesIO()
        self.write_graph(buffer, name, fmt)
        return buffer.getvalue()

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
        sd.add((dataset, URIRef("http://purl.org/dc/terms/description"),
                Literal(f"{self.graph_count} named graphs; the default graph is their union")))
        default = BNode("default")
        sd.add((dataset, SD.defaultGraph, default))
        sd.add((default, RDF.type, SD.Graph))
        if all(g.triples is not None for g in self.graphs):
            sd.add((default, VOID.triples, Literal(sum(g.triples or 0 for g in self.graphs), datatype=XSD.integer)))
        for named in self.graphs:
            node, graph = BNode(), BNode()
            sd.add((dataset, SD.namedGraph, node))
            sd.add((node, RDF.type, SD.NamedGraph))
            sd.add((node, SD.name, URIRef(named.name)))
            sd.add((node, SD.graph, graph))
            sd.add((graph, RDF.type, SD.Graph))
            if named.triples is not None:
                sd.add((graph, VOID.triples, Literal(named.triples, datatype=XSD.integer)))
            sd.add((graph, URIRef("http://purl.org/dc/terms/description"), Literal(named.label)))
        return sd
