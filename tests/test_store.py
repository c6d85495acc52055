"""External triple stores: push the guideline and reports, query them there, and reason over a patient a store holds.

Oxigraph (PyPI ``oxigraph``) is started by the tests on 127.0.0.1 and a free port. Virtuoso is the one
``scripts/virtuoso.sh`` starts (the test runs the script when Virtuoso does not answer); it needs HTTP
Digest authentication for writes.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from functools import lru_cache
from pathlib import Path
from collections.abc import Iterator

import pytest
from rdflib import Dataset, URIRef
from rdflib.namespace import RDF

from conftest import EXAMPLES, ROOT, TEST_NOW, guideline, report_for
from reasoner.cli import main
from reasoner.errors import InputError
from reasoner.fhir import read_bundle
from reasoner.namespaces import GKG
from reasoner.queries import QueryFile, load_query
from reasoner.serve import GUIDELINE_GRAPH, INFERRED_GRAPH, build_dataset, read_report
from reasoner.store import ATTEMPTS, Store
from serving import REPORT_EXAMPLES, dataset_graphs, report_folder

POPULATION_QUERIES = ("patients-mass-without-completed-mri", "red-flags-by-frequency",
                      "patients-with-recommendations-against", "recommendations-by-citation")
VIRTUOSO_ENDPOINT = f"http://127.0.0.1:{os.environ.get('VIRTUOSO_HTTP_PORT', '8891')}/sparql"
VIRTUOSO_AUTH = f"dba:{os.environ.get('VIRTUOSO_PASSWORD', 'guideline-kg')}"
COUNT_QUADS = "SELECT (COUNT(*) AS ?n) WHERE { GRAPH ?g { ?s ?p ?o } }"


def query(name: str) -> QueryFile:
    return load_query(ROOT / "queries" / f"{name}.rq")


@lru_cache(maxsize=1)
def local_dataset() -> Dataset:
    return build_dataset(list(dataset_graphs()))


def local_rows(q: QueryFile, bindings: dict | None = None) -> list[tuple]:
    return [tuple(row) for row in local_dataset().query(q.prepared(), initBindings=bindings or {})]


def store_rows(store: Store, q: QueryFile, bindings: dict | None = None) -> list[tuple]:
    return [tuple(row) for row in store.select(q, bindings)]


def count_quads(store: Store) -> int:
    q = QueryFile("count", Path("count.rq"), COUNT_QUADS, {})
    return int(store_rows(store, q)[0][0])


def answers(url: str) -> bool:
    request = urllib.request.Request(f"{url}?query=ASK%7B%7D", headers={"Accept": "application/sparql-results+json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def push(endpoint: str, *extra: str) -> None:
    assert main(["push", "--endpoint", endpoint, "--reports", str(report_folder()), *extra]) == 0


def store_input_patient(store: Store, example: str) -> URIRef:
    """Put a patient's facts (read from an example bundle) into the store as a graph of its own."""
    patient = read_bundle(guideline(), (EXAMPLES / f"{example}.json").read_text(encoding="utf-8"))
    store.put(URIRef(f"urn:guideline-kg:test:input:{example}"), patient.graph)
    return patient.patient


def recommend_from(endpoint: str, patient: URIRef, tmp_path: Path, *extra: str) -> dict:
    out = tmp_path / "report.json"
    code = main(["recommend", "--endpoint", endpoint, "--patient", str(patient), "--format", "json",
                 "--out", str(out), "--now", TEST_NOW, *extra])
    assert code in (0, 1)
    return json.loads(out.read_text(encoding="utf-8"))


def written_back(store: Store, patient: URIRef) -> set[tuple[str, str]]:
    """(action key, direction) of the report entries the store holds in the patient's report graph."""
    text = f"""PREFIX gkg: <https://w3id.org/guideline-kg/vocab#>
    PREFIX skos: <http://www.w3.org/2004/02/skos/core#>
    SELECT DISTINCT ?action ?direction WHERE {{
      GRAPH <{patient}/report> {{ ?entry a gkg:ReportedRecommendation ; gkg:about ?patient ;
                                   gkg:action ?concept ; gkg:direction ?d }}
      ?concept gkg:key ?action . ?d skos:notation ?direction }}"""
    q = QueryFile("written", Path("written.rq"), text, {})
    return {(str(a), str(d)) for a, d in store_rows(store, q)}


# --- Oxigraph --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def oxigraph() -> Iterator[str]:
    binary = shutil.which("oxigraph") or str(Path(sys.executable).parent / "oxigraph")
    if not Path(binary).exists():
        pytest.fail("the Oxigraph server is needed: pip install oxigraph")
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="guideline-kg-oxigraph-") as folder:
        process = subprocess.Popen([binary, "serve", "--location", folder, "--bind", f"127.0.0.1:{port}",
                                    "--union-default-graph"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        endpoint = f"http://127.0.0.1:{port}/query"
        try:
            for _ in range(300):
                if answers(endpoint) or process.poll() is not None:
                    break
                time.sleep(0.1)
            assert answers(endpoint), process.stderr.read().decode() if process.poll() is not None else "no answer"
            yield endpoint
        finally:
            process.terminate()
            process.wait(timeout=30)


@pytest.fixture(scope="module")
def oxigraph_pushed(oxigraph: str) -> tuple[Store, int, int]:
    store = Store.from_options(oxigraph)
    push(oxigraph)
    first = count_quads(store)
    push(oxigraph)
    return store, first, count_quads(store)


def test_push_writes_the_guideline_its_inferences_and_one_graph_per_report(oxigraph_pushed) -> None:
    store, first, _ = oxigraph_pushed
    expected = {g.name: len(g.graph) for g in dataset_graphs()}
    assert {GUIDELINE_GRAPH, INFERRED_GRAPH} <= set(expected) and len(expected) == 6
    text = "SELECT ?g (COUNT(*) AS ?n) WHERE { GRAPH ?g { ?s ?p ?o } } GROUP BY ?g"
    q = QueryFile("graphs", Path("graphs.rq"), text, {})
    assert {g: int(n) for g, n in store_rows(store, q)} == expected
    assert first == sum(expected.values())


def test_pushing_again_replaces_each_graph_and_duplicates_nothing(oxigraph_pushed) -> None:
    _, first, second = oxigraph_pushed
    assert second == first


@pytest.mark.parametrize("name", POPULATION_QUERIES)
def test_a_population_query_gives_the_same_rows_in_oxigraph_and_locally(oxigraph_pushed, name: str) -> None:
    store, _, _ = oxigraph_pushed
    rows = local_rows(query(name))
    assert rows, f"{name} finds nothing in the test reports"
    assert store_rows(store, query(name)) == rows


def test_a_parameter_binds_the_same_way_in_oxigraph_and_locally(oxigraph_pushed) -> None:
    store, _, _ = oxigraph_pushed
    q = query("patients-with-recommendations-against")
    bindings = {"action": q.params[0].term("xr-lumbar")}
    rows = local_rows(q, bindings)
    assert rows and {str(r[2]) for r in rows} == {"xr-lumbar"}
    assert store_rows(store, q, bindings) == rows


def test_recommend_reads_a_patient_from_oxigraph_and_writes_the_report_back(oxigraph_pushed, tmp_path: Path) -> None:
    store, _, _ = oxigraph_pushed
    patient = store_input_patient(store, "mri-malignancy-result")
    report = recommend_from(store.endpoint, patient, tmp_path)
    assert report == report_for(str(EXAMPLES / "mri-malignancy-result.json"))
    expected = {(r["action"]["key"], r["direction"]) for r in report["recommendations"]}
    assert expected and written_back(store, patient) == expected
    before = count_quads(store)
    recommend_from(store.endpoint, patient, tmp_path)
    assert count_quads(store) == before  # the report graph is replaced, not added to


def test_recommend_from_a_store_refuses_an_unknown_patient_with_exit_2(oxigraph_pushed, capsys) -> None:
    store, _, _ = oxigraph_pushed
    assert main(["recommend", "--endpoint", store.endpoint, "--patient", "urn:guideline-kg:patient:nobody"]) == 2
    err = capsys.readouterr().err
    assert "holds no gkg:Patient" in err and "union of its named graphs" in err and "--union-default-graph" in err
    assert main(["recommend", "--endpoint", store.endpoint, "--patient", "urn:x> } DROP ALL {"]) == 2


def test_push_reads_json_reports_and_the_population_queries_agree(oxigraph_pushed, tmp_path: Path) -> None:
    """A JSON batch (each report with its N-Quads graph beside it) pushes the same report graphs as Turtle."""
    store, _, _ = oxigraph_pushed
    inputs = tmp_path / "in"
    inputs.mkdir()
    for name in REPORT_EXAMPLES:
        shutil.copy(EXAMPLES / f"{name}.json", inputs / f"{name}.json")
    assert main(["recommend", str(inputs), "--out", str(tmp_path / "out")]) in (0, 1)
    before = {name: store_rows(store, query(name)) for name in POPULATION_QUERIES}  # pushed from Turtle
    quads = count_quads(store)
    assert main(["push", "--endpoint", store.endpoint, "--reports", str(tmp_path / "out")]) == 0
    assert count_quads(store) == quads  # the same report graphs, replaced
    for name in POPULATION_QUERIES:
        assert before[name] and store_rows(store, query(name)) == before[name], name
    assert main(["push", "--endpoint", store.endpoint, "--reports", str(inputs)]) == 2  # bundles are no reports


# --- Virtuoso --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def virtuoso() -> Store:
    if not answers(VIRTUOSO_ENDPOINT):
        script = subprocess.run([str(ROOT / "scripts" / "virtuoso.sh")], capture_output=True, text=True, timeout=900)
        assert script.returncode == 0, script.stdout + script.stderr
    store = Store.from_options(VIRTUOSO_ENDPOINT, None, VIRTUOSO_AUTH)
    # report graphs of patients other than the test's (an earlier run's) would change the population rows
    ours = {g.name for g in dataset_graphs()}
    q = QueryFile("reports", Path("reports.rq"), """PREFIX gkg: <https://w3id.org/guideline-kg/vocab#>
        SELECT DISTINCT ?g WHERE { GRAPH ?g { ?p a gkg:Patient } }""", {})
    for (name,) in store_rows(store, q):
        if name not in ours:
            store.delete(name)
    push(VIRTUOSO_ENDPOINT, "--auth", VIRTUOSO_AUTH)
    return store


def test_push_to_virtuoso_with_digest_auth_and_the_population_queries_agree(virtuoso: Store) -> None:
    assert virtuoso.graph_store.endswith("/sparql-graph-crud-auth")
    for name in POPULATION_QUERIES:
        assert store_rows(virtuoso, query(name)) == local_rows(query(name)), name


def test_virtuoso_refuses_a_push_without_credentials(virtuoso: Store, capsys) -> None:
    # the fixture has Virtuoso answering: the exit 2 must be its refusal (401), not a refused connection
    assert main(["push", "--endpoint", VIRTUOSO_ENDPOINT, "--graph-store",
                 VIRTUOSO_ENDPOINT.replace("/sparql", "/sparql-graph-crud-auth")]) == 2
    assert "answered 401" in capsys.readouterr().err


def test_recommend_reads_a_patient_from_virtuoso_and_writes_the_report_back(virtuoso: Store, tmp_path: Path) -> None:
    # the patient's facts are those of its pushed report graph: derived facts and conclusions are left out
    pushed = read_report(report_folder() / "palpable-mass-fever.ttl")
    patient = next(iter(pushed.graph.subjects(RDF.type, GKG.Patient)))
    report = recommend_from(VIRTUOSO_ENDPOINT, patient, tmp_path, "--auth", VIRTUOSO_AUTH)
    assert report == report_for(str(EXAMPLES / "palpable-mass-fever.json"))
    expected = {(r["action"]["key"], r["direction"]) for r in report["recommendations"]}
    assert expected and written_back(virtuoso, patient) == expected


# ---- a connection that breaks under a request ----

RESET = b"\x01\x00\x00\x00\x00\x00\x00\x00"  # SO_LINGER on, 0 s: close() sends a reset
NO_CONTENT = b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n"


class _Breaking:
    """A Graph Store on 127.0.0.1 that resets the first ``breaks`` requests with a body once it has read the
    request line and headers (as a store refusing an uncredentialed PUT may, before the body is all sent), then
    answers 204; it asks for no credentials (a HEAD gets 204). ``connections`` counts the requests with a body."""

    def __init__(self, breaks: int) -> None:
        self.breaks, self.connections, self.bodies = breaks, 0, []
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        """One request a connection: its head read, then answered by ``_answer``."""
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                head = b""
                while b"\r\n\r\n" not in head:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    head += chunk
                top, _, rest = head.partition(b"\r\n\r\n")
                lines = top.decode().split("\r\n")
                headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
                method, target, _ = lines[0].split(" ")
                self._answer(conn, method, target, headers, rest)

    @staticmethod
    def _body(conn: socket.socket, headers: dict[str, str], rest: bytes) -> bytes:
        while len(rest) < int(headers["content-length"]):
            rest += conn.recv(65536)
        return rest

    def _answer(self, conn: socket.socket, method: str, target: str, headers: dict[str, str], rest: bytes) -> None:
        if method == "HEAD":  # asks for no credentials
            conn.sendall(NO_CONTENT)
            return
        self.connections += 1
        if self.connections <= self.breaks:
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, RESET)
            return  # closed with a reset, the body unread
        self.bodies.append(self._body(conn, headers, rest))
        conn.sendall(NO_CONTENT)

    def close(self) -> None:
        # as tests/test_no_leaks.py learned: close() alone leaves the thread asleep in accept(); shutdown() wakes it
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self.thread.join(5)


def _big_graph() -> Dataset:
    graph = Dataset().graph(URIRef("urn:ex:g"))
    for i in range(20000):  # some megabytes: more than the socket takes before the peer's reset is seen
        graph.add((URIRef(f"urn:ex:s{i}"), RDF.value, URIRef(f"urn:ex:o{i}")))
    return graph


def test_a_put_whose_connection_breaks_is_sent_again_and_arrives_whole() -> None:
    server = _Breaking(breaks=1)
    try:
        graph = _big_graph()
        Store.from_options(server.url + "/sparql", server.url + "/store").put(URIRef("urn:ex:g"), graph)
    finally:
        server.close()
    assert server.connections == 2 and len(server.bodies) == 1
    assert server.bodies[0] == graph.serialize(format="nt", encoding="utf-8")


def test_a_connection_that_keeps_breaking_is_one_line_naming_the_url_and_the_attempts() -> None:

    server = _Breaking(breaks=1000)
    try:
        with pytest.raises(InputError) as refused:
            Store.from_options(server.url + "/sparql", server.url + "/store").put(URIRef("urn:ex:g"), _big_graph())
    finally:
        server.close()
    message = str(refused.value)
    assert server.connections == ATTEMPTS
    assert message.startswith(f"cannot reach {server.url}/store:") and f"after {ATTEMPTS} attempts" in message
    assert "\n" not in message


def test_a_refused_connection_is_not_tried_again() -> None:
    port = free_port()
    with pytest.raises(InputError, match=rf"cannot reach http://127.0.0.1:{port}/store: .*refused") as refused:
        Store.from_options(f"http://127.0.0.1:{port}/sparql", f"http://127.0.0.1:{port}/store").delete(URIRef("urn:ex:g"))
    assert "attempts" not in str(refused.value)


class _DigestStore(_Breaking):
    """A Graph Store asking for HTTP Digest that resets any request carrying a body but no credentials (as Virtuoso
    may, before reading the body), answers a HEAD with its challenge and accepts a PUT whose digest is right."""

    REALM, NONCE, USER, PASSWORD = "SPARQL", "4c25323dd918c682b15baf1d3efbb661", "dba", "secret"

    def __init__(self) -> None:
        self.heads, self.signed_heads, self.refused, self.unsigned = 0, 0, 0, 0
        super().__init__(breaks=0)

    def _answer(self, conn: socket.socket, method: str, target: str, headers: dict[str, str], rest: bytes) -> None:
        self.connections += 1
        authorization = headers.get("authorization", "")
        if not authorization:
            if method != "HEAD" and int(headers.get("content-length", "0")):
                self.unsigned += 1
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, RESET)
                return  # reset, the body unread
            self.heads += method == "HEAD"
            conn.sendall(b'HTTP/1.1 401 Unauthorized\r\nConnection: close\r\nContent-Length: 0\r\n'
                         b'WWW-Authenticate: Digest realm="' + self.REALM.encode() + b'", nonce="'
                         + self.NONCE.encode() + b'", qop="auth", algorithm="MD5"\r\n\r\n')
            return
        fields = dict(urllib.request.parse_keqv_list(urllib.request.parse_http_list(authorization[7:])))
        expected = _md5(":".join([_md5(f"{self.USER}:{self.REALM}:{self.PASSWORD}"), self.NONCE, fields["nc"],
                                  fields["cnonce"], fields["qop"], _md5(f"{method}:{target}")]))
        if fields.get("username") != self.USER or fields.get("response") != expected:
            self.refused += 1
            conn.sendall(b"HTTP/1.1 403 Forbidden\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
            return
        if method == "HEAD":
            self.signed_heads += 1
        else:
            self.bodies.append(self._body(conn, headers, rest))
        conn.sendall(NO_CONTENT)


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def test_a_put_to_a_store_asking_for_digest_goes_out_signed_and_never_sends_its_body_unsigned() -> None:
    server = _DigestStore()
    try:
        graph = _big_graph()
        store = Store.from_options(server.url + "/sparql", server.url + "/store", "dba:secret")
        for _ in range(3):
            store.put(URIRef("urn:ex:g"), graph)
    finally:
        server.close()
    assert (server.unsigned, server.refused) == (0, 0)
    assert server.bodies == [graph.serialize(format="nt", encoding="utf-8")] * 3
    # a challenge before each PUT, and the credentials checked once, before the first body was sent
    assert (server.heads, server.signed_heads, server.connections) == (4, 1, 8)


@pytest.mark.parametrize("auth, expected", [
    ("dba:wrong", "answered 403 Forbidden: the credentials were refused"),
    (None, "answered 401 Unauthorized: the store asks for credentials"),
])
def test_a_store_refusing_the_credentials_is_named_and_no_body_is_sent(auth: str | None, expected: str) -> None:
    server = _DigestStore()
    try:
        store = Store.from_options(server.url + "/sparql", server.url + "/store", auth)
        with pytest.raises(InputError) as refused:
            store.put(URIRef("urn:ex:g"), _big_graph())
    finally:
        server.close()
    assert str(refused.value).startswith(f"{server.url}/store {expected}"), str(refused.value)
    assert server.unsigned == 0 and server.bodies == []
