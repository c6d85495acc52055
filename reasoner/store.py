"""External SPARQL 1.1 stores: load the guideline and reports into one, and reason over a patient it holds.

A store is a SPARQL endpoint (queries) and a Graph Store Protocol URL (writes).
Every graph is written whole with an HTTP PUT to ``?graph=<name>``, so pushing
again replaces rather than duplicates. The graph names are those of
``guideline-kg serve`` (:mod:`reasoner.serve`): the asserted guideline, its
OWL-RL inferences, and ``<patient>/report`` per patient.

Tested against the Oxigraph server (``oxigraph serve --union-default-graph``) and
Virtuoso (``/sparql`` and ``/sparql-graph-crud-auth`` with HTTP Digest). Results
are asked for with an explicit Accept header: rdflib's default one is unordered
and makes Virtuoso answer a SELECT with RDF/XML. The queries read the store's
default graph as the union of its graphs (Virtuoso's default; Oxigraph with
``--union-default-graph``; Fuseki with ``unionDefaultGraph``).

A parameter of a query sent to a store is bound by a trailing ``VALUES`` row
holding the term's N-Triples form, after :meth:`reasoner.queries.Param.term`
has checked it: the remote form of ``initBindings``; the query's own text is
never edited. Virtuoso accepts a trailing ``VALUES`` only on a SELECT that
projects the variable, so the queries sent to stores are written that way
(``queries/store/patient-graph.rq`` is a SELECT of triples, not a CONSTRUCT).
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from urllib.parse import urlencode, urlsplit, urlunsplit

from rdflib import Graph, URIRef
from rdflib.query import Result
from rdflib.term import Node

from reasoner import resources
from reasoner.errors import InputError
from reasoner.queries import QueryFile, load_query
from reasoner.serve import NamedGraph

TIMEOUT_SECONDS = 120
# Attempts at one request whose connection breaks under it (reset, or closed while the body is sent). Every request
# sent is idempotent (a query, or a PUT or DELETE of a whole graph), so sending it again is safe.
ATTEMPTS = 3
UNION_NEEDED = ("the store must read its default graph as the union of its named graphs: Virtuoso does; "
                "Oxigraph with 'oxigraph serve --union-default-graph'; Fuseki with unionDefaultGraph")
SOLUTIONS_ACCEPT = "application/sparql-results+json"


def default_graph_store(endpoint: str, authenticated: bool) -> str:
    """The Graph Store Protocol URL that goes with a query endpoint, for the servers we know."""
    parts = urlsplit(endpoint)
    path = parts.path.rstrip("/")
    if path.endswith("/query"):  # Oxigraph: /query and /store; Fuseki: /ds/query and /ds/data
        base = path[: -len("/query")]
        guess = base + ("/data" if base else "/store")
    elif path.endswith("/sparql-auth") or path.endswith("/sparql"):  # Virtuoso, Fuseki's /ds/sparql
        base = path.rsplit("/", 1)[0]
        if base:  # Fuseki
            guess = base + "/data"
        else:
            guess = "/sparql-graph-crud-auth" if authenticated else "/sparql-graph-crud"
    else:
        raise InputError(f"cannot tell the Graph Store Protocol URL of {endpoint}; give --graph-store")
    return urlunsplit((parts.scheme, parts.netloc, guess, "", ""))


@dataclass(frozen=True)
class Store:
    """A SPARQL 1.1 store: its query endpoint, its Graph Store Protocol URL and the credentials for them."""

    endpoint: str
    graph_store: str
    auth: tuple[str, str] | None = None
    _checked: set[str] = field(default_factory=set, compare=False, repr=False)  # URLs whose store took the credentials

    @classmethod
    def from_options(cls, endpoint: str, graph_store: str | None = None, auth: str | None = None) -> Store:
        for url in (endpoint, graph_store):
            if url and urlsplit(url).scheme not in ("http", "https"):
                raise InputError(f"{url}: a store is reached over http or https")
        credentials = None
        if auth:
            user, sep, password = auth.partition(":")
            if not sep or not user:
                raise InputError("--auth must be user:password")
            credentials = (user, password)
        return cls(endpoint, graph_store or default_graph_store(endpoint, credentials is not None), credentials)

    def _opener(self) -> urllib.request.OpenerDirector:
        handlers: list[urllib.request.BaseHandler] = []
        if self.auth:
            passwords = self._passwords()
            handlers += [urllib.request.HTTPDigestAuthHandler(passwords), urllib.request.HTTPBasicAuthHandler(passwords)]
        return urllib.request.build_opener(*handlers)

    def _passwords(self) -> urllib.request.HTTPPasswordMgrWithDefaultRealm:
        passwords = urllib.request.HTTPPasswordMgrWithDefaultRealm()
        if self.auth:
            for url in (self.endpoint, self.graph_store):
                passwords.add_password(None, url, *self.auth)
        return passwords

    def _challenge(self, url: str) -> str:
        """What the store asks of a request to ``url``: its WWW-Authenticate challenge, or "" (from a HEAD)."""
        try:
            with urllib.request.build_opener().open(urllib.request.Request(url, method="HEAD"),
                                                    timeout=TIMEOUT_SECONDS):
                return ""
        except urllib.error.HTTPError as exc:
            return (exc.headers.get("WWW-Authenticate", "") or "?") if exc.code == 401 else ""
        except (urllib.error.URLError, OSError):
            return ""  # the request itself will say what is wrong

    def _authorization(self, request: urllib.request.Request, challenge: str,
                       digest: urllib.request.HTTPDigestAuthHandler) -> str:
        scheme, _, rest = challenge.strip().partition(" ")
        if scheme.lower() == "digest":
            fields = urllib.request.parse_keqv_list(filter(None, urllib.request.parse_http_list(rest)))
            value = digest.get_authorization(request, fields)
            return f"Digest {value}" if value else ""
        if scheme.lower() == "basic" and self.auth:
            return "Basic " + base64.b64encode(":".join(self.auth).encode("utf-8")).decode("ascii")
        return ""

    def _sign(self, request: urllib.request.Request) -> None:
        """A PUT goes out with the credentials the store asks for, or not at all.

        urllib sends a body first without credentials and answers the 401 with a second request. A store may
        close the connection on a 401 before the body is all sent (Virtuoso does, for a graph of a few hundred
        kilobytes: "Broken pipe" 3 times in 10 PUTs of the guideline graph), and the client then sees a broken
        pipe instead of the refusal. So the store's challenge is first asked for with a HEAD of the same URL (no
        body): a store asking for credentials that were not given is a refusal named at once; credentials are
        checked once per store with a signed HEAD (a refusal is named, no body sent); then the request goes out
        signed. When the store asks for nothing, or the challenge is not one urllib can answer, the request goes
        out as it is and urllib's own handling follows."""
        url = request.full_url
        challenge = self._challenge(url)
        if not challenge:
            return
        where = url.split("?")[0]
        if not self.auth:
            raise InputError(f"{where} answered 401 Unauthorized: the store asks for credentials (--auth user:password)")
        digest = urllib.request.HTTPDigestAuthHandler(self._passwords())
        if where not in self._checked:
            check = urllib.request.Request(url, method="HEAD")
            header = self._authorization(check, challenge, digest)
            if not header:
                return
            check.add_unredirected_header("Authorization", header)
            try:
                with urllib.request.build_opener().open(check, timeout=TIMEOUT_SECONDS):
                    pass
            except urllib.error.HTTPError as exc:
                if exc.code in (401, 403):
                    raise InputError(f"{where} answered {exc.code} {exc.reason}: the credentials were refused") from None
            except (urllib.error.URLError, OSError):
                pass  # the request itself will say what is wrong
            self._checked.add(where)
            challenge = self._challenge(url) or challenge  # a fresh nonce for the request itself
        header = self._authorization(request, challenge, digest)
        if header:
            request.add_unredirected_header("Authorization", header)

    def _send(self, request: urllib.request.Request) -> tuple[str, bytes]:
        if request.get_method() == "PUT":  # a graph: the body worth not sending to be refused (a query's is small)
            self._sign(request)
        for attempt in range(1, ATTEMPTS + 1):
            try:
                with self._opener().open(request, timeout=TIMEOUT_SECONDS) as response:
                    return response.headers.get_content_type(), response.read()
            except urllib.error.HTTPError as exc:
                detail = " ".join(exc.read(400).decode("utf-8", "replace").split())
                raise InputError(f"{request.full_url.split('?')[0]} answered {exc.code} {exc.reason}: "
                                 f"{detail[:200]}") from None
            except (urllib.error.URLError, OSError) as exc:
                reason = getattr(exc, "reason", exc)
                broken = isinstance(reason, (BrokenPipeError, ConnectionResetError))  # RemoteDisconnected too
                if broken and attempt < ATTEMPTS:
                    time.sleep(0.2 * attempt)
                    continue
                tries = f" (after {attempt} attempts)" if attempt > 1 else ""
                raise InputError(f"cannot reach {request.full_url.split('?')[0]}: {reason}{tries}") from None
        raise AssertionError("unreachable")  # the loop returns or raises

    def _query(self, query: QueryFile, bindings: dict[str, Node] | None) -> tuple[str, bytes]:
        query.prepared()  # valid SPARQL, and no SERVICE, FROM or FROM NAMED
        text = query.text
        if bindings:  # the remote form of initBindings: one VALUES row of checked terms
            names = " ".join(f"?{name}" for name in bindings)
            terms = " ".join(term.n3() for term in bindings.values())
            text = f"{text.rstrip()}\nVALUES ({names}) {{ ({terms}) }}\n"
        body = urlencode({"query": text}).encode("utf-8")
        request = urllib.request.Request(self.endpoint, data=body, method="POST", headers={
            "Content-Type": "application/x-www-form-urlencoded", "Accept": SOLUTIONS_ACCEPT})
        return self._send(request)

    def select(self, query: QueryFile, bindings: dict[str, Node] | None = None) -> Result:
        """A SELECT or ASK answered by the store, as an rdflib Result (from SPARQL results JSON)."""
        content_type, data = self._query(query, bindings)
        if content_type not in (SOLUTIONS_ACCEPT, "application/json"):
            raise InputError(f"{self.endpoint} answered a SELECT with {content_type}, not SPARQL results JSON")
        try:
            return Result.parse(io.StringIO(data.decode("utf-8")), format="json")
        except (ValueError, KeyError, json.JSONDecodeError) as exc:
            raise InputError(f"{self.endpoint}: not SPARQL results JSON: {exc}") from None

    def put(self, name: URIRef, graph: Graph) -> None:
        """Replace one named graph (Graph Store Protocol PUT): done whole, and again gives the same store."""
        url = f"{self.graph_store}?{urlencode({'graph': str(name)})}"
        # N-Triples is Turtle too, and every store's Turtle parser reads it; Virtuoso 7 does not know its media type
        data = graph.serialize(format="nt", encoding="utf-8")
        request = urllib.request.Request(url, data=data, method="PUT",
                                         headers={"Content-Type": "text/turtle; charset=utf-8"})
        self._send(request)


    def delete(self, name: URIRef) -> None:
        """Remove one named graph (Graph Store Protocol DELETE)."""
        url = f"{self.graph_store}?{urlencode({'graph': str(name)})}"
        self._send(urllib.request.Request(url, method="DELETE"))


@dataclass(frozen=True)
class Pushed:
    name: URIRef
    triples: int


def push(store: Store, graphs: list[NamedGraph]) -> list[Pushed]:
    """PUT every graph into the store; returns what was written."""
    written = []
    for named in graphs:
        store.put(named.name, named.graph)
        written.append(Pushed(named.name, len(named.graph)))
    return written


def store_query(name: str) -> QueryFile:
    """A query of ``queries/store/`` (those ``push`` and ``recommend --endpoint`` send to a store)."""
    return load_query(resources.queries_dir() / "store" / f"{name}.rq")


def recommend_from_store(args: argparse.Namespace) -> int:
    """``recommend --endpoint URL --patient IRI``: read the patient from the store, reason, write the report back."""
    from reasoner.formats import render
    from reasoner.engines import make_engine
    from reasoner.guideline import Guideline
    from reasoner.output import emit
    from reasoner.patient import parse_patient
    from reasoner.queries import Param
    from reasoner.report import build_report, report_graph
    from reasoner.serve import report_graph_name

    if not args.patient:
        raise InputError("--endpoint needs --patient IRI (the patient to read from the store)")
    if args.input is not None:
        raise InputError("give either an input file or --endpoint and --patient, not both")
    store = Store.from_options(args.endpoint, args.graph_store, args.auth)
    try:
        patient = Param("patient", "iri").term(args.patient)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    guideline = Guideline.load()
    facts = Graph()
    for row in store.select(store_query("patient-graph"), {"patient": patient}):
        facts.add((row["s"], row["p"], row["o"]))  # type: ignore[call-overload, index]
    if len(facts) == 0:
        raise InputError(f"{store.endpoint} holds no gkg:Patient {patient.n3()} in its default graph ({UNION_NEEDED})")
    patient_graph = parse_patient(guideline, facts.serialize(format="nt"), "nt", str(patient),
                                  getattr(args, "now", None))
    engine = make_engine(guideline, args.engine)
    report = build_report(guideline, engine.reason(patient_graph))
    graph = report_graph(guideline, report, engine.name)
    store.put(report_graph_name(patient_graph.patient), graph)
    emit(render(guideline, report, args.format, engine.name), args.out)
    return 0 if report.conforms else 1
