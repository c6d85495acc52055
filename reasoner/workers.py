"""Queries over an on-disk Oxigraph store, evaluated in worker processes that can be killed.

Each worker is a fresh process (forked from a clean fork server) that opens the store read-only, lowers
its own address-space limit (``RLIMIT_AS``: what it needs to start plus the per-query
budget) and then runs one query at a time: parsing and evaluation both happen there, so
both are inside the time limit, and a query over the limit has its worker killed and
replaced. Oxigraph parses with its own (re-entrant) parser; the server process only
scans the query's words (:func:`scan_query`) to refuse updates, FROM and SERVICE and to
know the query's form before any worker sees it.

Two lanes keep slow queries from starving quick ones: every query starts in the quick
lane; one still running after ``lane_seconds`` goes on in one of the few long-lane slots
(nothing is redone) while a new quick worker takes its place, or is stopped when they are
all taken. Texts that were stopped are remembered and, sent again, wait for a long-lane
slot instead of a quick worker. Waiting for a worker is bounded (``Busy``, answered 503
with Retry-After).
"""

from __future__ import annotations

import collections
import hashlib
import multiprocessing
import multiprocessing.connection
import os
import queue
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# --- scanning a query's words ---------------------------------------------------------------------

_TOKEN = re.compile(r"""
    (?P<comment>\#[^\n]*)
  | (?P<string>'''(?:[^'\\]|\\.|'(?!''))*(?:'''|$) | \"\"\"(?:[^"\\]|\\.|"(?!""))*(?:\"\"\"|$)
              | '(?:[^'\\\n]|\\.)*'? | "(?:[^"\\\n]|\\.)*"?)
  | (?P<iri><[^<>"{}|^`\\\x00-\x20]*>)
  | (?P<var>[?$][\w\u00B7-\uFFFF]*)
  | (?P<pname>(?:[A-Za-z\u00C0-\uFFFF](?:[\w.\-\u00B7-\uFFFF]*[\w\-\u00B7-\uFFFF])?)?:(?:[\w\-.:%\\\u00B7-\uFFFF]*[\w\-:%\u00B7-\uFFFF])?)
  | (?P<bnode>_:[\w\-.\u00B7-\uFFFF]*)
  | (?P<lang>@[A-Za-z]+(?:-[A-Za-z0-9]+)*)
  | (?P<word>[A-Za-z_][\w]*)
  | (?P<other>\S)
  | \s+
""", re.VERBOSE | re.DOTALL)

QUERY_FORMS = {"SELECT", "ASK", "CONSTRUCT", "DESCRIBE"}
UPDATE_WORDS = {"INSERT", "DELETE", "LOAD", "CLEAR", "DROP", "CREATE", "ADD", "MOVE", "COPY", "WITH"}


class ScanProblem(Exception):
    """Why a query text is refused before it is parsed: ``kind`` is "update", "outside" or "invalid"."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def words(text: str) -> list[str]:
    """The keywords of a SPARQL text (upper case): what is left once comments, strings, IRIs, variables,
    prefixed names, blank nodes and language tags are set aside."""
    return [m.group("word").upper() for m in _TOKEN.finditer(text) if m.lastgroup == "word"]


def scan_query(text: str) -> str:
    """The form of a query (SELECT, ASK, CONSTRUCT, DESCRIBE); raises ScanProblem for an update, a FROM or
    SERVICE (which would read outside the dataset: Oxigraph itself would fetch a SERVICE) or no query form."""
    found = words(text)
    for word in found:
        if word in QUERY_FORMS:
            break
        if word in UPDATE_WORDS:
            raise ScanProblem("update", "this endpoint is read-only: SPARQL Update (including LOAD) is not accepted")
    else:
        raise ScanProblem("invalid", "not a valid SPARQL query: no SELECT, ASK, CONSTRUCT or DESCRIBE")
    if "SERVICE" in found:
        raise ScanProblem("outside", "SERVICE is not allowed: queries never call other endpoints")
    if "FROM" in found:
        raise ScanProblem("outside", "FROM and FROM NAMED are not allowed: queries run only over the loaded graphs")
    return word


# --- the worker process ------------------------------------------------------------------------------

RESULT_FORMATS = {"json": "JSON", "xml": "XML", "csv": "CSV", "tsv": "TSV"}
GRAPH_FORMATS = {"turtle": "TURTLE", "nt": "N_TRIPLES", "json-ld": "JSON_LD", "xml": "RDF_XML", "nquads": "N_QUADS",
                 "trig": "TRIG"}


@dataclass(frozen=True)
class Job:
    """A query to run: its text, bindings (name -> ("iri", value) | ("literal", value, datatype, language)),
    its form and the serializer's name (see RESULT_FORMATS and GRAPH_FORMATS)."""

    text: str
    bindings: dict[str, tuple[str | None, ...]]
    form: str
    fmt: str


def _term(spec: tuple[str | None, ...]) -> Any:
    import pyoxigraph as ox

    if spec[0] == "iri":
        return ox.NamedNode(str(spec[1]))
    _, value, datatype, language = spec
    if language:
        return ox.Literal(str(value), language=language)
    return ox.Literal(str(value), datatype=ox.NamedNode(datatype) if datatype else None)


def _limit_memory(budget: int) -> None:
    """RLIMIT_AS: what the process maps now plus ``budget`` bytes (an allocation past it fails, and ends
    the worker rather than the machine)."""
    import resource

    try:
        with open("/proc/self/status", encoding="ascii") as status:
            size = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize:"))
    except (OSError, StopIteration, ValueError):
        return
    limit = size + budget
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def worker_main(store_path: str, memory_budget: int, conn: multiprocessing.connection.Connection) -> None:
    """A worker: the store opened read-only, then one query at a time from ``conn`` until it closes."""
    import pyoxigraph as ox

    try:
        store = ox.Store.read_only(store_path)
        if memory_budget > 0:
            _limit_memory(memory_budget)
        store.query("ASK { ?s ?p ?o }")  # warm: the first query opens files
    except Exception as exc:  # the store cannot be opened: tell the pool and end
        conn.send(("failed", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("ready", os.getpid()))
    while True:
        try:
            job: Job = conn.recv()
        except (EOFError, OSError):
            return
        try:
            substitutions = {ox.Variable(name): _term(spec) for name, spec in job.bindings.items()}
            # the store's default graph is the union of its named graphs (materialized by reasoner.population)
            result = store.query(job.text, substitutions=substitutions or None)
            if job.form in ("SELECT", "ASK"):
                data = result.serialize(format=getattr(ox.QueryResultsFormat, RESULT_FORMATS[job.fmt]))
            else:
                data = result.serialize(format=getattr(ox.RdfFormat, GRAPH_FORMATS[job.fmt]))
            conn.send(("ok", data or b""))
        except SyntaxError as exc:
            conn.send(("syntax", " ".join(str(exc).split())[:300]))
        except MemoryError:
            conn.send(("memory", "the query ran out of its memory budget"))
        except Exception as exc:  # an evaluation error ends this query only
            conn.send(("error", f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"))


# --- pools and lanes ---------------------------------------------------------------------------------


class QueryTimeout(Exception):
    pass


class QueryFailed(Exception):
    pass


class QuerySyntax(Exception):
    pass


class WorkerEnded(Exception):
    pass


class Busy(Exception):
    """No worker became free within the wait: the client should retry later."""


class _Worker:
    def __init__(self, context: Any, store: str, memory_budget: int) -> None:
        self.conn, child = context.Pipe()
        self.process = context.Process(target=worker_main, args=(store, memory_budget, child), daemon=True)
        self.process.start()
        child.close()
        self._stopping = threading.Lock()
        self._stopped = False

    def ready(self, timeout: float) -> bool:
        if not self.conn.poll(timeout):
            return False
        try:
            status, _ = self.conn.recv()
        except (EOFError, OSError):
            return False
        return status == "ready"

    def stop(self) -> None:
        """Kill the process and close the pipe, once: a request's thread that timed out and the pool's ``close``
        may both stop one worker at the same moment (two closes of one pipe raced to EBADF)."""
        with self._stopping:
            if self._stopped:
                return
            self._stopped = True
            if self.process.is_alive():
                self.process.kill()
            self.process.join(5)
            self.conn.close()


def _context() -> Any:
    """Workers come from a fork server that has pyoxigraph loaded (a new worker is a fork of a clean,
    single-threaded process: milliseconds, not a new interpreter), or are spawned where there is none."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["pyoxigraph", "reasoner.workers"])
        return context
    return multiprocessing.get_context("spawn")


class WorkerPool:
    """``size`` worker processes over one store for the quick lane, and up to ``long_slots`` queries at a time
    in the long lane.

    A query runs in an idle worker. When it is still running after ``lane_seconds`` it takes a long-lane
    slot and goes on (nothing is redone), and a new worker is started for the quick lane at once; the
    worker is retired when the query ends. When no long-lane slot is free the query is stopped (503 with
    Retry-After). A query stopped at the time limit or for want of a slot is remembered (by its text and
    bindings): sent again, it waits for a long-lane slot first and never holds up a quick worker.
    """

    START_SECONDS = 60.0
    REMEMBERED = 1024

    def __init__(self, store: Path, size: int, memory_budget: int, timeout: float = 30.0, lane_seconds: float = 1.0,
                 long_slots: int = 1, wait: float = 10.0) -> None:
        self.store = str(store)
        self.memory_budget = memory_budget
        self.timeout = timeout
        self.lane_seconds = lane_seconds if long_slots > 0 and lane_seconds < timeout else timeout
        self.wait = wait
        self.long_slots = threading.BoundedSemaphore(max(long_slots, 1))
        self.has_long_lane = long_slots > 0 and lane_seconds < timeout
        self.slow: collections.OrderedDict[bytes, None] = collections.OrderedDict()
        self._context = _context()
        self._idle: queue.Queue[_Worker] = queue.Queue()
        self._all: set[_Worker] = set()
        self._long: set[_Worker] = set()  # workers moved to the long lane mid-query (close() stops them too)
        self._lock = threading.Lock()
        self._closed = False
        starting = [self._start() for _ in range(size)]
        for worker in starting:
            self._admit(worker)
        if self._idle.qsize() == 0 and size > 0:
            raise OSError(f"no query worker could open the store {store}")

    # -- workers
    def _start(self) -> _Worker:
        worker = _Worker(self._context, self.store, self.memory_budget)
        with self._lock:
            self._all.add(worker)
        return worker

    def _admit(self, worker: _Worker) -> None:
        if worker.ready(self.START_SECONDS) and not self._closed:
            self._idle.put(worker)
        else:
            self._drop(worker)

    def _drop(self, worker: _Worker) -> None:
        with self._lock:
            self._all.discard(worker)
        worker.stop()

    def _start_in_background(self) -> None:
        if not self._closed:
            fresh = self._start()
            threading.Thread(target=self._admit, args=(fresh,), daemon=True).start()

    def _replace(self, worker: _Worker) -> None:
        self._drop(worker)
        self._start_in_background()

    # -- remembered slow queries
    def _key(self, job: Job) -> bytes:
        return hashlib.sha256(repr((job.text, sorted(job.bindings.items()))).encode("utf-8", "surrogatepass")).digest()

    def _is_slow(self, key: bytes) -> bool:
        with self._lock:
            if key in self.slow:
                self.slow.move_to_end(key)
                return True
            return False

    def _remember(self, key: bytes) -> None:
        with self._lock:
            self.slow[key] = None
            while len(self.slow) > self.REMEMBERED:
                self.slow.popitem(last=False)

    # -- running a query
    def _take(self) -> _Worker:
        try:
            return self._idle.get(timeout=self.wait)
        except queue.Empty:
            raise Busy(f"every query worker stayed busy for {self.wait:g} s") from None

    def run(self, job: Job) -> bytes:
        key = self._key(job)
        if self.has_long_lane and self._is_slow(key):  # known to run long: the long lane straight away
            if not self.long_slots.acquire(timeout=self.wait):
                raise Busy(f"the long-query lane stayed full for {self.wait:g} s (this query ran long before)")
            try:
                worker = self._take()
                self._start_in_background()  # the quick lane keeps its number of workers
                return self._finish(worker, job, self.timeout, key, retire=True)
            finally:
                self.long_slots.release()
        worker = self._take()
        started = time.monotonic()
        try:
            worker.conn.send(job)
            if worker.conn.poll(self.lane_seconds):
                return self._result(worker, retire=False)
        except (EOFError, OSError):
            self._replace(worker)
            raise WorkerEnded("the query's worker process ended (over its memory limit?)") from None
        if not self.has_long_lane:
            self._replace(worker)
            raise QueryTimeout(f"the query ran over the {self.timeout:g} s time limit and was stopped")
        if not self.long_slots.acquire(blocking=False):
            self._remember(key)
            self._replace(worker)
            raise Busy(f"the query ran over {self.lane_seconds:g} s and the long-query lane is full")
        try:
            with self._lock:
                self._all.discard(worker)  # from now on a long-lane worker, retired when its query ends
                self._long.add(worker)
            self._start_in_background()
            return self._finish(worker, job, self.timeout - (time.monotonic() - started), key, retire=True,
                                sent=True)
        finally:
            self.long_slots.release()

    def _finish(self, worker: _Worker, job: Job, limit: float, key: bytes, retire: bool, sent: bool = False) -> bytes:
        try:
            if not sent:
                worker.conn.send(job)
            if not worker.conn.poll(max(limit, 0.1)):
                self._remember(key)
                worker.stop()
                with self._lock:
                    self._all.discard(worker)
                    self._long.discard(worker)
                raise QueryTimeout(f"the query ran over the {self.timeout:g} s time limit and was stopped")
        except (EOFError, OSError):
            worker.stop()
            with self._lock:
                self._all.discard(worker)
                self._long.discard(worker)
            raise WorkerEnded("the query's worker process ended (over its memory limit?)") from None
        return self._result(worker, retire)

    def _result(self, worker: _Worker, retire: bool) -> bytes:
        try:
            status, payload = worker.conn.recv()
        except (EOFError, OSError):
            if retire:
                worker.stop()
                with self._lock:
                    self._long.discard(worker)
            else:
                self._replace(worker)
            raise WorkerEnded("the query's worker process ended (over its memory limit?)") from None
        if retire:
            worker.stop()
            with self._lock:
                self._all.discard(worker)
                self._long.discard(worker)
        elif status == "memory":
            self._replace(worker)  # the allocator may be left in a poor state: start afresh
        else:
            self._idle.put(worker)
        if status == "syntax":
            raise QuerySyntax(payload)
        if status != "ok":
            raise QueryFailed(payload)
        return payload

    def close(self) -> None:
        self._closed = True
        with self._lock:
            workers, self._all, self._long = list(self._all | self._long), set(), set()
        for worker in workers:
            worker.stop()


Lanes = WorkerPool  # the quick and the long lane are one pool (see its notes)


__all__ = ["scan_query", "ScanProblem", "Job", "WorkerPool", "Lanes", "QueryTimeout", "QueryFailed", "QuerySyntax",
           "WorkerEnded", "Busy"]
