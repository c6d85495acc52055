"""Patient reports as one on-disk Oxigraph store: reading reports in any format the batch writes, and loading.

The dataset
    Named graphs: the asserted guideline (``GUIDELINE_GRAPH``), what its OWL-RL closure
    adds without tautologies (``INFERRED_GRAPH``) and one graph per patient report,
    ``<patient>/report``. The default graph is the union of the named graphs, kept
    materialized by ``load`` (each triple is written to its named graph and to the
    default graph; replacing a graph removes from the default graph only the triples no
    other graph holds): Oxigraph answers over its default graph 5-7x faster than with
    ``use_default_graph_as_union``, for the same answers.

Report files
    ``.nq`` (N-Quads, one graph ``<patient>/report``: ``recommend --format nquads``, and
    what a JSON batch keeps beside each ``.json`` report), ``.ttl``, ``.jsonld`` and
    ``.nt`` (one gkg:Patient each; the graph is named after it) and ``.json`` (the JSON
    report: its graph is the ``.nq`` file of the same name beside it, written by the
    same reasoning, so its IRIs and PROV-O are those of the RDF report). A folder with no
    readable report is an error, never an empty dataset.

Loading
    ``guideline-kg load REPORTS... --store DIR``: the guideline graphs are replaced, then each
    patient graph is replaced whole (a patient loaded again has its old graph removed first), so
    loading is incremental and idempotent per patient. Graphs new to the store (the usual case) go
    in with one ``Store.bulk_load`` fed report by report, each report's N-Quads followed by the
    same triples in the default graph: no check per triple against the store, and the N-Quads a
    batch writes are handled as text (bytes operations, checked by Oxigraph's parser), with no
    Python work per quad (:func:`load_reports`). ``bulk_load`` is not a transaction: an
    interrupted load is repaired by loading the same reports again.
"""

from __future__ import annotations

import collections
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyoxigraph as ox
from rdflib import BNode, Graph, Literal, URIRef
from rdflib.namespace import OWL, RDF, RDFS

from reasoner.errors import InputError
from reasoner.nquads import nquads  # the writer of report graphs, kept importable from here
from reasoner.namespaces import BASE, GKG

GUIDELINE_GRAPH = URIRef(BASE + "graph/guideline")
INFERRED_GRAPH = URIRef(BASE + "graph/guideline-inferred")
INPUT_BASE = "urn:guideline-kg:input:"
PATIENT_CLASS = ox.NamedNode(str(GKG.Patient))
RDF_TYPE = ox.NamedNode(str(RDF.type))

RDF_SUFFIXES = {".nq": ox.RdfFormat.N_QUADS, ".ttl": ox.RdfFormat.TURTLE, ".jsonld": ox.RdfFormat.JSON_LD,
                ".nt": ox.RdfFormat.N_TRIPLES}
REPORT_SUFFIXES = (*RDF_SUFFIXES, ".json")


def report_graph_name(patient: str) -> str:
    """The named graph a patient's report is kept in: ``<patient>/report``."""
    return f"{patient}/report"


# --- tautologies --------------------------------------------------------------------------------

_REFLEXIVE = {RDFS.subClassOf, RDFS.subPropertyOf, OWL.sameAs, OWL.equivalentClass, OWL.equivalentProperty}


def is_tautology(triple: tuple[Any, Any, Any]) -> bool:
    """What every OWL-RL closure says of every class or property, and so says nothing about the guideline:
    ``X ⊑ X``, ``owl:Nothing ⊑ X``, ``X ⊑ owl:Thing`` and reflexive sameAs/equivalentClass/equivalentProperty
    (and the same for properties: ``P ⊑ P``, ``owl:bottom*Property ⊑ P``, ``P ⊑ owl:top*Property``)."""
    s, p, o = triple
    if p in _REFLEXIVE and s == o:
        return True
    if p == RDFS.subClassOf:
        return s == OWL.Nothing or o == OWL.Thing
    if p == RDFS.subPropertyOf:
        return s in (OWL.bottomObjectProperty, OWL.bottomDataProperty) or \
            o in (OWL.topObjectProperty, OWL.topDataProperty)
    return False


# --- reading report files ----------------------------------------------------------------------


@dataclass(frozen=True)
class ReportGraph:
    """One patient's report graph: its name, its quads (in that graph) and the file it came from."""

    name: str
    quads: list[ox.Quad]
    path: Path


def _fresh_blank_nodes(quads: list[ox.Quad]) -> list[ox.Quad]:
    """A file's blank nodes, renamed so that two files never share one in the store."""
    if not any(isinstance(q.subject, ox.BlankNode) or isinstance(q.object, ox.BlankNode) for q in quads):
        return quads
    fresh: dict[str, ox.BlankNode] = {}

    def term(t: Any) -> Any:
        return fresh.setdefault(t.value, ox.BlankNode()) if isinstance(t, ox.BlankNode) else t

    return [ox.Quad(term(q.subject), q.predicate, term(q.object), q.graph_name) for q in quads]


def _parse(path: Path, fmt: ox.RdfFormat) -> list[ox.Quad]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if fmt == ox.RdfFormat.JSON_LD:
        from reasoner.patient import check_jsonld_contexts

        try:
            check_jsonld_contexts(json.loads(data), path.name)  # no remote context is ever fetched
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InputError(f"{path.name}: not JSON: {exc}") from None
    try:
        return list(ox.parse(data, format=fmt, base_iri=INPUT_BASE))
    except (SyntaxError, ValueError, OSError) as exc:
        raise InputError(f"{path.name}: cannot be parsed as {fmt.name}: {' '.join(str(exc).split())[:200]}") from None


def _json_graph(path: Path) -> Path:
    """The report graph a JSON report stands for: the ``.nq`` file of the same name beside it."""
    beside = path.with_suffix(".nq")
    if not beside.is_file():
        raise InputError(f"{path.name}: a JSON report without its report graph {beside.name} beside it "
                         "(a batch with --out writes both; or write RDF with --format nquads|turtle|jsonld)")
    return beside


def read_report_graph(path: Path) -> ReportGraph:
    """The report graph of one file (see the module's notes on formats); raises InputError naming the file."""
    suffix = path.suffix.lower()
    if suffix == ".json":
        path, suffix = _json_graph(path), ".nq"
    fmt = RDF_SUFFIXES.get(suffix)
    if fmt is None:
        raise InputError(f"{path.name}: a report must be JSON (.json), N-Quads (.nq), Turtle (.ttl), "
                         "N-Triples (.nt) or JSON-LD (.jsonld)")
    quads = _parse(path, fmt)
    patients = sorted({q.subject.value for q in quads if q.predicate == RDF_TYPE and q.object == PATIENT_CLASS
                       and isinstance(q.subject, ox.NamedNode)})
    if len(patients) != 1:
        raise InputError(f"{path.name}: a report is about exactly one gkg:Patient; this file has {len(patients)}")
    name = report_graph_name(patients[0])
    graph = ox.NamedNode(name)
    if fmt == ox.RdfFormat.N_QUADS:
        others = {str(q.graph_name) for q in quads if q.graph_name != graph}
        if others:
            raise InputError(f"{path.name}: an N-Quads report holds only the graph <{name}>; "
                             f"this file also writes {sorted(others)[0]}")
    else:
        quads = [ox.Quad(q.subject, q.predicate, q.object, graph) for q in quads]
    return ReportGraph(name, _fresh_blank_nodes(quads), path)


def report_files(folder: Path) -> list[Path]:
    """The report files of a folder, one per patient report: a ``.json`` report stands for the ``.nq`` beside it."""
    if not folder.is_dir():
        if folder.is_file() and folder.suffix.lower() in REPORT_SUFFIXES:
            return [folder]
        raise InputError(f"{folder}: not a folder of reports (nor a report file)")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in REPORT_SUFFIXES and p.is_file()
                   and not p.name.startswith("."))
    present = set(files)
    # a batch's "name.json" + "name.nq" is one report: read it once, through the .nq
    files = [p for p in files if not (p.suffix.lower() == ".json" and p.with_suffix(".nq") in present)]
    for path in files:  # refused here, before anything is written
        if path.suffix.lower() == ".json":
            _json_graph(path)
    if not files:
        raise InputError(f"{folder}: no report in this folder (expected .json reports with their .nq graphs, "
                         ".nq, .ttl, .jsonld or .nt report files)")
    return files


def _first_of_its_patient(seen: dict[str, Path], name: str, path: Path) -> None:
    """Remember ``path`` as the report of graph ``name``; a second report of one patient is refused."""
    if name in seen:
        raise InputError(f"{path.name}: a second report for the patient of <{name}> (the first: {seen[name].name})")
    seen[name] = path


def iter_reports(sources: Iterable[Path]) -> Iterator[ReportGraph]:
    """Every report of the given folders and files, refusing two reports of one patient."""
    seen: dict[str, Path] = {}
    for source in sources:
        for path in report_files(source):
            report = read_report_graph(path)
            _first_of_its_patient(seen, report.name, path)
            yield report


def count_reports(sources: Iterable[Path]) -> int:
    return sum(len(report_files(source)) for source in sources)


# --- the guideline graphs ------------------------------------------------------------------------


def _ox_term(term: Any) -> Any:
    if isinstance(term, URIRef):
        return ox.NamedNode(str(term))
    if isinstance(term, BNode):
        return ox.BlankNode(str(term))
    assert isinstance(term, Literal)
    if term.language:
        return ox.Literal(str(term), language=term.language)
    return ox.Literal(str(term), datatype=ox.NamedNode(str(term.datatype)) if term.datatype else None)


def graph_quads(graph: Iterable[tuple[Any, Any, Any]], name: str) -> list[ox.Quad]:
    """An rdflib graph's triples as quads of the named graph ``name``."""
    target = ox.NamedNode(name)
    return [ox.Quad(_ox_term(s), _ox_term(p), _ox_term(o), target) for s, p, o in graph]


def inferred_triples(guideline: Any) -> Graph:
    """The triples the OWL-RL closure adds to the guideline: RDF ones only (no literal subject), no tautology."""
    from reasoner.fast import closed_guideline

    inferred = Graph()
    asserted = guideline.graph
    for triple in closed_guideline(guideline):
        if (not isinstance(triple[0], Literal) and isinstance(triple[1], URIRef) and triple not in asserted
                and not is_tautology(triple)):
            inferred.add(triple)
    return inferred


# --- the store -----------------------------------------------------------------------------------


def open_store(folder: Path, read_only: bool = False) -> ox.Store:
    """An on-disk store; read-only opening needs one made by ``load``."""
    try:
        if read_only:
            if not (folder / "CURRENT").is_file():
                raise InputError(f"{folder}: not an Oxigraph store (make one with 'guideline-kg load REPORTS --store {folder}')")
            return ox.Store.read_only(str(folder))
        folder.mkdir(parents=True, exist_ok=True)
        return ox.Store(str(folder))
    except OSError as exc:
        raise InputError(f"{folder}: cannot open the store: {' '.join(str(exc).split())[:200]}") from None


DEFAULT = ox.DefaultGraph()


def in_default_graph(quads: list[ox.Quad]) -> list[ox.Quad]:
    """The quads' triples in the default graph: the store keeps the union of its named graphs there."""
    return [ox.Quad(q.subject, q.predicate, q.object, DEFAULT) for q in quads]


_REMOVE = ("DELETE {{ ?s ?p ?o }} WHERE {{ GRAPH <{g}> {{ ?s ?p ?o }} "
           "FILTER NOT EXISTS {{ GRAPH ?other {{ ?s ?p ?o }} FILTER (?other != <{g}>) }} }} ;\n"
           "DROP SILENT GRAPH <{g}>")


def remove_graph(store: ox.Store, graph: ox.NamedNode) -> None:
    """Remove a named graph, and from the default graph (the union) each of its triples no other graph holds:
    one update, so one transaction (a crash leaves the graph whole or gone, never half)."""
    store.update(_REMOVE.format(g=graph.value))


def replace_graph(store: ox.Store, name: str, quads: list[ox.Quad]) -> None:
    graph = ox.NamedNode(name)
    if store.contains_named_graph(graph):
        remove_graph(store, graph)
    store.add_graph(graph)
    store.extend(quads)
    store.extend(in_default_graph(quads))


def load_guideline(store: ox.Store, guideline: Any) -> int:
    """Replace the asserted and the inferred guideline graphs."""
    asserted = graph_quads(guideline.graph, str(GUIDELINE_GRAPH))
    inferred = graph_quads(inferred_triples(guideline), str(INFERRED_GRAPH))
    replace_graph(store, str(GUIDELINE_GRAPH), asserted)
    replace_graph(store, str(INFERRED_GRAPH), inferred)
    return len(asserted) + len(inferred)


# --- bulk loading --------------------------------------------------------------------------------

_PATIENT_TYPE = f"> <{RDF.type}> <{GKG.Patient}> <".encode()


@dataclass(frozen=True)
class BulkReport:
    """A report graph as ``Store.bulk_load`` reads it: N-Quads text of its quads in its graph, then of the
    same triples in the default graph (the union); ``quads`` counts the first half."""

    name: str
    text: bytes
    quads: int
    path: Path


def _canonical_nquads(path: Path) -> BulkReport | None:
    """The fast reading of an N-Quads report as the batch writes it (every line ``<...> ... <G> .`` in the graph
    ``G = <patient>/report`` of its one gkg:Patient, no blank node, no escape, no comment): bytes operations
    only, no Python work per quad. None for any other file.

    Exact: every line starts with ``<`` (no comment) and ends in `` <G> .``; with that suffix cut, each line
    must still be a triple (a triple whose object is <G> loses its object and fails) and the syntax is checked
    by Oxigraph's parser (one statement a line) before the report is handed on."""
    if path.suffix.lower() != ".nq":
        return None
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if not data.startswith(b"<") or not data.endswith(b"\n") or b"_:" in data or b"\\" in data or b"\r" in data:
        return None  # blank nodes (renamed per file) and escapes (which could spell a second patient): careful path
    at = data.find(_PATIENT_TYPE)
    if at < 0 or data.find(_PATIENT_TYPE, at + 1) >= 0:
        return None
    start = data.rfind(b"\n", 0, at) + 1
    subject = data[start:at + 1]
    if not subject.startswith(b"<") or b" " in subject or b">" in subject[:-1]:
        return None
    name = report_graph_name(subject[1:-1].decode("utf-8", "replace"))
    suffix = f" <{name}> .\n".encode()
    if not data.startswith(suffix, data.index(b"\n", at) + 1 - len(suffix)):
        return None  # the gkg:Patient triple is not in its graph
    lines = data.count(b"\n")
    if data.count(suffix) != lines or data.count(b"\n<") != lines - 1:
        return None
    default = data.replace(suffix, b" .\n")
    try:
        collections.deque(ox.parse(default, format=ox.RdfFormat.N_TRIPLES, base_iri=INPUT_BASE), maxlen=0)
    except (SyntaxError, ValueError):
        return None  # the careful reader says what is wrong
    return BulkReport(name, data + default, lines, path)


def bulk_report(path: Path) -> BulkReport:
    """Any report file ready for bulk loading; raises InputError naming the file. Blank nodes get fresh
    identifiers (labels no other report uses: ``bulk_load`` keeps one label one node within a load)."""
    fast = _canonical_nquads(path)
    if fast is not None:
        return fast
    report = read_report_graph(path)  # its blank nodes already renamed
    text = ox.serialize(report.quads + in_default_graph(report.quads), format=ox.RdfFormat.N_QUADS)
    assert text is not None
    return BulkReport(report.name, text, len(report.quads), report.path)


class _Stream:
    """What ``Store.bulk_load`` reads: the texts of reports, one after the other, as a binary file.

    An error while making the next text (a bad report, a second report of a patient) ends the stream
    at the end of the previous report, so the load commits whole reports only; the error is kept in
    ``error`` and raised once the load is over."""

    def __init__(self, reports: Iterator[BulkReport]) -> None:
        self.reports = reports
        self.buffer = memoryview(b"")
        self.error: BaseException | None = None
        self.quads = 0

    def read(self, size: int = -1) -> bytes:
        while not self.buffer:
            if self.error is not None:
                return b""
            try:
                report = next(self.reports)
            except StopIteration:
                return b""
            except BaseException as exc:  # noqa: BLE001 - raised by load_reports once the load is over
                self.error = exc
                return b""
            self.buffer = memoryview(report.text)
            self.quads += report.quads
        if size is None or size < 0 or size >= len(self.buffer):
            chunk, self.buffer = self.buffer, memoryview(b"")
        else:
            chunk, self.buffer = self.buffer[:size], self.buffer[size:]
        return bytes(chunk)


def _bulk_load(store: ox.Store, reports: Iterator[BulkReport]) -> int:
    """Bulk-load the reports' texts in one ``Store.bulk_load`` (Oxigraph parses in this thread and writes
    sorted files in others, a million quads at a time); the quads in named graphs loaded."""
    stream = _Stream(reports)
    try:
        # lenient: each text was parsed (IRIs checked) when it was made (_canonical_nquads, or ox.serialize of
        # what the careful reader parsed); Oxigraph's IRI checks are a tenth of a bulk load
        store.bulk_load(stream, ox.RdfFormat.N_QUADS, base_iri=INPUT_BASE, lenient=True)
    except SyntaxError as exc:  # every text was parsed before it was handed on: not a report's fault
        raise InputError(f"the store: bulk loading failed: {' '.join(str(exc).split())[:200]}") from None
    except OSError as exc:
        if stream.error is not None:
            raise stream.error from None
        raise InputError(f"the store: cannot write: {' '.join(str(exc).split())[:200]}") from None
    if stream.error is not None:
        raise stream.error
    return stream.quads


REPLACE_CHUNK = 500  # reports replaced at a time: their old graphs removed, then the new ones bulk-loaded


@dataclass
class Loaded:
    reports: int
    replaced: int
    quads: int
    seconds: float


def load_reports(store: ox.Store, sources: Iterable[Path], progress: Any = None) -> Loaded:
    """Every report of ``sources`` into the store, its graph replaced whole; two reports of one patient refused.

    A patient whose graph is not in the store yet (the usual case) is bulk-loaded: no check per triple,
    nothing to remove, one ``Store.bulk_load`` for all of them, fed report by report (:class:`_Stream`).
    A patient whose graph is there is replaced after that load (the careful path: the old graph removed
    with :func:`remove_graph`, which sees every other graph, then the new one bulk-loaded).

    ``Store.bulk_load`` is not a transaction: a crash (or a kill) in the middle leaves the batches of a
    million quads already written, so a report can be there in part. Loading the same reports again repairs
    it: a report whose graph is there, even in part, is replaced whole; one whose graph did not come in is
    loaded, and its default-graph triples written again (the default graph is a set)."""
    started = time.monotonic()
    seen: dict[str, Path] = {}
    again: list[Path] = []
    counts = {"reports": 0, "replaced": 0}

    def new_reports() -> Iterator[BulkReport]:
        for source in sources:
            for path in report_files(source):
                report = bulk_report(path)
                _first_of_its_patient(seen, report.name, path)
                counts["reports"] += 1
                if store.contains_named_graph(ox.NamedNode(report.name)):
                    again.append(path)
                    continue
                if progress is not None:
                    progress.update(1)
                yield report

    total = _bulk_load(store, new_reports())
    for start in range(0, len(again), REPLACE_CHUNK):
        chunk = [bulk_report(path) for path in again[start:start + REPLACE_CHUNK]]
        for report in chunk:
            remove_graph(store, ox.NamedNode(report.name))
        # after the chunk's removals: a triple an old graph shared with a new one is written again
        total += _bulk_load(store, iter(chunk))
        counts["replaced"] += len(chunk)
        if progress is not None:
            progress.update(len(chunk))
    store.optimize()
    return Loaded(counts["reports"], counts["replaced"], total, time.monotonic() - started)


def store_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def remove_unfinished(store_dir: Path) -> int:
    """Remove the files a killed ``Store.bulk_load`` left in the store's folder (``bulk-*.sst``: sorted files
    written before they were handed to RocksDB, which never knew them). Called with the store open read-write,
    so under RocksDB's lock: no other process is loading. The number removed."""
    removed = 0
    for leftover in store_dir.glob("bulk-*.sst"):
        leftover.unlink(missing_ok=True)
        removed += 1
    return removed


def load(store_dir: Path, sources: list[Path], guideline: Any, show_progress: bool | None = None,
         precompute: bool = True) -> Loaded:
    """``guideline-kg load``: the guideline graphs and every report of ``sources`` into the store at ``store_dir``;
    then, with ``precompute``, the stored answers of the marked named queries (:mod:`reasoner.views`)."""
    total = count_reports(sources)  # every source is checked (and a folder without reports refused) before writing
    store = open_store(store_dir)
    try:
        remove_unfinished(store_dir)
        load_guideline(store, guideline)
        bar = None
        if show_progress is None:
            show_progress = sys.stderr.isatty()
        if show_progress:
            from tqdm import tqdm

            bar = tqdm(total=total, unit="report", file=sys.stderr, mininterval=0.5)
        try:
            loaded = load_reports(store, sources, bar)
        finally:
            if bar is not None:
                bar.close()
    finally:
        store.flush()
        del store
    if not precompute:
        return loaded
    from reasoner import views

    views.refresh(store_dir)  # the answers of the queries marked '#+ precompute: yes', for this store as loaded
    return loaded


class TemporaryStore:
    """A store in a temporary folder (``--reports DIR`` without ``--store``), removed on close."""

    def __init__(self, sources: list[Path], guideline: Any, precompute: bool = True) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="guideline-kg-store-"))
        try:
            self.loaded = load(self.folder, sources, guideline, show_progress=False, precompute=precompute)
        except BaseException:
            self.close()
            raise

    @classmethod
    def of_graphs(cls, graphs: Iterable[tuple[str, Iterable[tuple[Any, Any, Any]]]]) -> TemporaryStore:
        """A temporary store of rdflib graphs (name, triples), without the guideline unless given."""
        made = cls.__new__(cls)
        made.folder = Path(tempfile.mkdtemp(prefix="guideline-kg-store-"))
        try:
            from_graphs(made.folder, graphs)
        except BaseException:
            made.close()
            raise
        return made

    def close(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> TemporaryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def from_graphs(folder: Path, graphs: Iterable[tuple[str, Iterable[tuple[Any, Any, Any]]]]) -> None:
    """A store made of rdflib graphs (name, triples): the in-process form the endpoint's tests start from."""
    store = open_store(folder)
    for name, graph in graphs:
        replace_graph(store, name, graph_quads(graph, name))
    store.flush()
    del store


def free_disk(folder: Path) -> int:
    folder = folder if folder.exists() else folder.parent
    return shutil.disk_usage(folder).free


__all__ = ["GUIDELINE_GRAPH", "INFERRED_GRAPH", "load", "read_report_graph", "report_files", "iter_reports",
           "TemporaryStore", "open_store", "nquads", "is_tautology", "report_graph_name"]


# --- querying a store from the command line ------------------------------------------------------


def query_population(query: Any, bindings: dict[Any, Any], store: Path | None = None, reports: Path | None = None,
                     guideline: Any = None) -> Any:
    """``query NAME --store DIR`` (opened read-only) or ``--reports DIR`` (a temporary store): the query's
    answer as an rdflib Result, its default graph the union of the named graphs. The query has passed
    ``local_only_problem`` (no SERVICE, FROM or FROM NAMED) when it was prepared."""
    import io

    from rdflib.query import Result

    from reasoner.errors import GuidelineError

    query.prepared()
    # one query over a temporary store: evaluated, not worked out with every marked query first (that pays for serve)
    temporary = (TemporaryStore([reports], guideline, precompute=False)
                 if store is None and reports is not None else None)
    try:
        folder = temporary.folder if temporary is not None else store
        assert folder is not None
        from reasoner import views

        stored = views.answer(folder, query.text, {str(k): _ox_term(v) for k, v in bindings.items()})
        if stored is not None:  # worked out when the store was loaded, and the store has not changed since
            return Result.parse(io.BytesIO(stored), format="json")
        handle = open_store(folder, read_only=True)
        substitutions = {ox.Variable(str(k)): _ox_term(v) for k, v in bindings.items()}
        try:
            answer = handle.query(query.text, substitutions=substitutions or None)  # the default graph is the union
            if isinstance(answer, ox.QueryTriples):
                graph = Graph()
                graph.parse(data=answer.serialize(format=ox.RdfFormat.N_TRIPLES) or b"", format="nt")
                result = Result("CONSTRUCT")
                result.graph = graph
                return result
            data = answer.serialize(format=ox.QueryResultsFormat.JSON)
        except (SyntaxError, OSError, ValueError) as exc:
            raise GuidelineError(f"{query.path.name}: the query failed: {' '.join(str(exc).split())[:300]}") from None
        finally:
            del handle
        return Result.parse(io.BytesIO(data), format="json")
    finally:
        if temporary is not None:
            temporary.close()
