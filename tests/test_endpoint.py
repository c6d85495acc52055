"""The SPARQL endpoint as its clients see it: SPARQLWrapper in every format, refusals, time limit, tokens, named queries."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from email.message import Message
from urllib.parse import urlencode

import pytest
from rdflib import Graph, URIRef
from rdflib.namespace import RDF
from SPARQLWrapper import CSV, JSON, JSONLD, POST, POSTDIRECTLY, TSV, TURTLE, XML, SPARQLWrapper

from reasoner.serve import GUIDELINE_GRAPH, INFERRED_GRAPH, SD
from serving import running_endpoint

PATIENTS = """PREFIX gkg: <https://w3id.org/guideline-kg/vocab#>
SELECT ?patient ?identifier WHERE { ?patient a gkg:Patient ; gkg:identifier ?identifier } ORDER BY ?identifier"""
SLOW = "SELECT (COUNT(*) AS ?n) WHERE { ?a ?b ?c . ?d ?e ?f . ?g ?h ?i }"
TOKEN = "s3cret-token"


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with running_endpoint(timeout=4.0, workers=2) as base:
        yield base


def request(url: str, data: bytes | None = None, headers: dict[str, str] | None = None,
            method: str | None = None) -> tuple[int, Message, bytes]:
    req = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=60) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


def get(base: str, query: str, accept: str = "application/sparql-results+json", origin: str | None = None,
        **params: str):
    headers = {"Accept": accept, **({"Origin": origin} if origin else {})}
    return request(f"{base}/sparql?{urlencode({'query': query, **params})}", headers=headers)


def client(base: str, query: str, fmt: str, method: str | None = None) -> SPARQLWrapper:
    sparql = SPARQLWrapper(f"{base}/sparql")
    sparql.setQuery(query)
    sparql.setReturnFormat(fmt)
    if method == POSTDIRECTLY:
        sparql.setMethod(POST)
        sparql.setRequestMethod(POSTDIRECTLY)
    elif method == POST:
        sparql.setMethod(POST)
    return sparql


def patients_of(base: str) -> list[tuple[str, str]]:
    data = client(base, PATIENTS, JSON).queryAndConvert()
    return [(b["patient"]["value"], b["identifier"]["value"]) for b in data["results"]["bindings"]]


def test_select_gives_the_same_rows_in_json_xml_csv_and_tsv(endpoint: str) -> None:
    expected = patients_of(endpoint)
    assert len(expected) == 4

    xml = client(endpoint, PATIENTS, XML, POST).queryAndConvert()
    rows = []
    for result in xml.getElementsByTagName("result"):
        values = {b.getAttribute("name"): b.firstChild.firstChild.nodeValue for b in result.getElementsByTagName("binding")}
        rows.append((values["patient"], values["identifier"]))
    assert rows == expected

    text = client(endpoint, PATIENTS, CSV, POSTDIRECTLY).queryAndConvert().decode("utf-8")
    assert [tuple(r) for r in csv.reader(io.StringIO(text))] == [("patient", "identifier"), *expected]

    tsv = client(endpoint, PATIENTS, TSV).queryAndConvert().decode("utf-8").splitlines()
    assert tsv[0] == "?patient\t?identifier"
    assert tsv[1:] == [f'<{p}>\t"{i}"' for p, i in expected]


def test_ask_answers_in_json_xml_csv_and_tsv(endpoint: str) -> None:
    ask = "ASK { ?s a <https://w3id.org/guideline-kg/vocab#Patient> }"
    assert client(endpoint, ask, JSON).queryAndConvert() == {"head": {}, "boolean": True}
    xml = client(endpoint, ask, XML).queryAndConvert()
    assert xml.getElementsByTagName("boolean")[0].firstChild.nodeValue == "true"
    assert client(endpoint, ask, CSV).queryAndConvert().decode().splitlines()[-1] == "true"
    assert client(endpoint, ask, TSV).queryAndConvert().decode().splitlines()[-1] == "true"


def test_construct_and_describe_give_the_same_graph_in_turtle_ntriples_and_jsonld(endpoint: str) -> None:
    construct = """PREFIX gkg: <https://w3id.org/guideline-kg/vocab#>
    CONSTRUCT { ?p a gkg:Patient ; gkg:identifier ?i } WHERE { ?p a gkg:Patient ; gkg:identifier ?i }"""
    turtle = client(endpoint, construct, TURTLE).queryAndConvert()
    graph = Graph().parse(data=turtle, format="turtle")
    assert len(graph) == 8
    status, headers, body = get(endpoint, construct, "application/n-triples")
    assert status == 200 and headers["Content-Type"].startswith("application/n-triples")
    assert set(Graph().parse(data=body, format="nt")) == set(graph)
    jsonld = client(endpoint, construct, JSONLD).queryAndConvert()
    assert set(jsonld) == set(graph)

    patient = sorted(graph.subjects(RDF.type, None))[0]
    described = Graph().parse(data=client(endpoint, f"DESCRIBE <{patient}>", TURTLE).queryAndConvert(), format="turtle")
    assert (patient, RDF.type, URIRef("https://w3id.org/guideline-kg/vocab#Patient")) in described


def test_a_type_that_cannot_be_served_is_refused_with_406_not_replaced(endpoint: str) -> None:
    status, _, body = get(endpoint, PATIENTS, "text/turtle")
    assert status == 406 and b"application/sparql-results+json" in body
    status, _, _ = get(endpoint, "CONSTRUCT WHERE { ?s ?p ?o } LIMIT 1", "text/csv")
    assert status == 406
    status, headers, _ = get(endpoint, PATIENTS, "text/csv;q=0.5, application/sparql-results+xml")
    assert status == 200 and headers["Content-Type"].startswith("application/sparql-results+xml")
    status, headers, _ = get(endpoint, PATIENTS, "*/*")
    assert status == 200 and headers["Content-Type"].startswith("application/sparql-results+json")


@pytest.mark.parametrize("how", ["update parameter", "sparql-update body", "update as query", "LOAD", "SPARQLWrapper"])
def test_every_update_is_refused_with_403_and_changes_nothing(endpoint: str, how: str) -> None:
    update = "INSERT DATA { <urn:x:s> <urn:x:p> <urn:x:o> }"
    if how == "update parameter":
        status, _, _ = request(f"{endpoint}/sparql", urlencode({"update": update}).encode(),
                               {"Content-Type": "application/x-www-form-urlencoded"})
    elif how == "sparql-update body":
        status, _, _ = request(f"{endpoint}/sparql", b"DROP ALL", {"Content-Type": "application/sparql-update"})
    elif how == "update as query":
        status, _, _ = get(endpoint, "DROP ALL")
    elif how == "LOAD":
        status, _, _ = get(endpoint, "LOAD <file:///etc/passwd> INTO GRAPH <urn:x:g>")
    else:
        with pytest.raises(urllib.error.HTTPError) as refused:
            client(endpoint, update, JSON, POST).query()
        status = refused.value.code
    assert status == 403
    assert len(patients_of(endpoint)) == 4
    assert client(endpoint, "ASK { <urn:x:s> ?p ?o }", JSON).queryAndConvert()["boolean"] is False


@pytest.mark.parametrize("query,params", [
    ("SELECT * FROM <file:///etc/passwd> WHERE { ?s ?p ?o }", {}),
    ("SELECT * FROM NAMED <http://example.org/g> WHERE { GRAPH ?g { ?s ?p ?o } }", {}),
    ("SELECT * WHERE { SERVICE <http://example.org/sparql> { ?s ?p ?o } }", {}),
    ("SELECT * WHERE { ?s ?p ?o } LIMIT 1", {"default-graph-uri": "file:///etc/passwd"}),
    ("SELECT * WHERE { ?s ?p ?o } LIMIT 1", {"named-graph-uri": "http://example.org/g"}),
])
def test_queries_reaching_outside_the_dataset_are_refused_with_400(endpoint: str, query: str,
                                                                   params: dict[str, str]) -> None:
    status, _, body = get(endpoint, query, **params)
    assert status == 400, body


def test_a_query_that_is_not_sparql_is_refused_with_400(endpoint: str) -> None:
    status, _, body = get(endpoint, "SELECT WHERE {")
    assert status == 400 and body.startswith(b"not a valid SPARQL query")


def test_a_slow_query_is_cut_off_while_a_second_client_is_answered(endpoint: str) -> None:
    slow: dict[str, int] = {}
    started = threading.Event()

    def run_slow() -> None:
        started.set()
        slow["status"] = get(endpoint, SLOW)[0]

    thread = threading.Thread(target=run_slow)
    thread.start()
    started.wait()
    answered = patients_of(endpoint)  # a second client, while the slow query holds a worker
    still_running = thread.is_alive()
    thread.join()
    assert len(answered) == 4
    assert still_running
    assert slow["status"] == 503
    assert len(patients_of(endpoint)) == 4  # the killed worker was replaced


def test_the_service_description_names_the_endpoint_and_every_graph(endpoint: str) -> None:
    status, headers, body = request(f"{endpoint}/sparql", headers={"Accept": "text/turtle"})
    assert status == 200 and headers["Content-Type"].startswith("text/turtle")
    sd = Graph().parse(data=body, format="turtle")
    service = next(sd.subjects(RDF.type, SD.Service))
    assert (service, SD.endpoint, URIRef(f"{endpoint}/sparql")) in sd
    assert (service, SD.feature, SD.UnionDefaultGraph) in sd
    assert (service, SD.supportedLanguage, SD.SPARQL11Query) in sd
    names = set(sd.objects(None, SD.name))
    assert {GUIDELINE_GRAPH, INFERRED_GRAPH} <= names
    assert {URIRef(f"{p}/report") for p, _ in patients_of(endpoint)} <= names
    assert len(names) == 6


def test_the_default_graph_is_the_union_of_the_named_graphs(endpoint: str) -> None:
    query = """PREFIX gkg: <https://w3id.org/guideline-kg/vocab#>
    SELECT ?patient ?key WHERE { %s } ORDER BY ?patient ?key"""
    # a patient's red flag (its report graph) joined with the flag's key (the guideline graph)
    default = "?flag gkg:about ?patient ; gkg:concept ?c . ?c gkg:key ?key"
    named = "GRAPH ?report { ?flag gkg:about ?patient ; gkg:concept ?c } GRAPH ?guideline { ?c gkg:key ?key }"

    def rows(where: str) -> list[dict]:
        return client(endpoint, query % where, JSON).queryAndConvert()["results"]["bindings"]

    assert rows(default) == rows(named)
    assert len(rows(default)) >= 4


def test_named_queries_are_listed_with_summaries_and_parameters(endpoint: str) -> None:
    status, _, body = request(f"{endpoint}/queries", headers={"Accept": "application/json"})
    listed = {q["name"]: q for q in json.loads(body)["queries"]}
    assert status == 200
    for name in ("patients-mass-without-completed-mri", "red-flags-by-frequency",
                 "patients-with-recommendations-against", "recommendations-by-citation"):
        assert listed[name]["summary"]
        assert listed[name]["url"] == f"{endpoint}/queries/{name}"
    assert listed["patients-with-recommendations-against"]["params"][0]["name"] == "action"


def named(endpoint: str, path: str) -> tuple[int, list[dict[str, str]] | bytes]:
    status, _, body = request(f"{endpoint}/queries/{path}", headers={"Accept": "application/sparql-results+json"})
    if status != 200:
        return status, body
    rows = [{k: v["value"] for k, v in b.items()} for b in json.loads(body)["results"]["bindings"]]
    return status, rows


def test_a_named_query_parameter_is_bound_as_a_term_never_spliced(endpoint: str) -> None:
    status, everything = named(endpoint, "patients-with-recommendations-against")
    assert status == 200 and isinstance(everything, list)
    assert {r["action"] for r in everything} > {"xr-lumbar"}
    status, radiographs = named(endpoint, "patients-with-recommendations-against?action=xr-lumbar")
    assert status == 200 and isinstance(radiographs, list)
    assert radiographs and {r["action"] for r in radiographs} == {"xr-lumbar"}
    assert radiographs == [r for r in everything if r["action"] == "xr-lumbar"]
    # text that would change the query if it were spliced in is only an unmatched string
    status, nothing = named(endpoint, "patients-with-recommendations-against?action=" +
                            urllib.parse.quote('x" } UNION { ?entry ?p ?o } #'))
    assert status == 200 and nothing == []


def test_a_named_query_refuses_unknown_and_ill_typed_parameters(endpoint: str) -> None:
    assert named(endpoint, "patients-with-recommendations-against?patient=urn:x")[0] == 400
    assert named(endpoint, "no-such-query")[0] == 404


def test_population_queries_find_the_patients_with_a_mass_and_no_mri_and_count_red_flags(endpoint: str) -> None:
    # palpable-mass-fever and cauda-equina have a palpable mass and no MRI; negative-mri had its MRI;
    # the not-applicable patient's mass has no lumbar site
    status, without_mri = named(endpoint, "patients-mass-without-completed-mri")
    identifiers = dict(patients_of(endpoint))
    assert status == 200 and isinstance(without_mri, list)
    assert len(without_mri) == 2 and all(r["identifier"] == identifiers[r["patient"]] for r in without_mri)
    status, flags = named(endpoint, "red-flags-by-frequency")
    assert status == 200 and isinstance(flags, list)
    counts = [int(r["patients"]) for r in flags]
    assert dict(zip((r["redFlag"] for r in flags), counts))["palpable-lumbar-mass"] == 3
    assert counts == sorted(counts, reverse=True)


def test_cors_is_off_unless_an_origin_is_configured(endpoint: str) -> None:
    _, headers, _ = get(endpoint, "ASK {}", origin="https://tools.example.org")
    assert "Access-Control-Allow-Origin" not in headers
    with running_endpoint(cors="https://tools.example.org", token=TOKEN) as base:
        _, headers, _ = get(base, "ASK {}", origin="https://tools.example.org")
        assert headers["Access-Control-Allow-Origin"] == "https://tools.example.org"
        _, headers, _ = get(base, "ASK {}", origin="https://elsewhere.example.org")
        assert "Access-Control-Allow-Origin" not in headers
        # a preflight carries no token and is answered; the request it prepares still needs one
        status, headers, _ = request(f"{base}/sparql", method="OPTIONS",
                                     headers={"Origin": "https://tools.example.org",
                                              "Access-Control-Request-Method": "POST",
                                              "Access-Control-Request-Headers": "authorization, content-type"})
        assert status == 200 and "POST" in headers["Access-Control-Allow-Methods"]
        assert "authorization" in headers["Access-Control-Allow-Headers"].lower()


def test_with_a_token_every_request_without_it_gets_401(endpoint: str) -> None:
    with running_endpoint(token=TOKEN) as base:
        assert get(base, "ASK {}")[0] == 401
        assert get(base, "ASK {}")[1]["WWW-Authenticate"].startswith("Bearer")
        assert request(f"{base}/queries")[0] == 401
        assert request(f"{base}/sparql")[0] == 401
        wrong = request(f"{base}/sparql?query=ASK%7B%7D", headers={"Authorization": "Bearer nope"})
        assert wrong[0] == 401
        right = request(f"{base}/sparql?query=ASK%7B%7D", headers={"Authorization": f"Bearer {TOKEN}"})
        assert right[0] == 200
        assert request(f"{base}/")[0] == 200  # the static query page holds no data; its queries need the token


def test_binding_beyond_loopback_without_a_token_is_refused_with_exit_2() -> None:
    run = subprocess.run([sys.executable, "-m", "reasoner", "serve", "--host", "0.0.0.0", "--port", "0"],
                         capture_output=True, text=True, timeout=120, env={"PATH": "/usr/bin:/bin"})
    assert run.returncode == 2
    assert run.stderr.count("\n") == 1 and "token" in run.stderr


# ---- protocol: concurrency, short forms, prefixes, format=, Graph Store Protocol, QC queries ----

def test_queries_arriving_together_on_a_fresh_endpoint_all_parse() -> None:
    queries = [f"""PREFIX gkg: <https://w3id.org/guideline-kg/vocab#>
    SELECT ?p (COUNT(?i) AS ?n{n}) WHERE {{ ?p a gkg:Patient ; gkg:identifier ?i
      OPTIONAL {{ ?p gkg:x{n} ?y }} FILTER(STRLEN(STR(?i)) > {n % 3}) }} GROUP BY ?p ORDER BY ?p""" for n in range(24)]
    with running_endpoint(timeout=60.0, workers=2) as base:
        barrier = threading.Barrier(len(queries))
        statuses: list[tuple[int, bytes]] = [(0, b"")] * len(queries)

        def run(n: int) -> None:
            barrier.wait()
            status, _, body = get(base, queries[n])
            statuses[n] = (status, body[:200])

        threads = [threading.Thread(target=run, args=(n,)) for n in range(len(queries))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert [s for s, _ in statuses] == [200] * len(queries), [b for s, b in statuses if s != 200][:3]


@pytest.mark.parametrize("query, triples", [
    ("PREFIX gkg: <https://w3id.org/guideline-kg/vocab#> CONSTRUCT WHERE { ?p a gkg:Patient ; gkg:identifier ?i }", 8),
    ("CONSTRUCT WHERE { ?s a <https://w3id.org/guideline-kg/vocab#Patient> } LIMIT 3", 3),
    ("CONSTRUCT WHERE { ?s a <https://w3id.org/guideline-kg/vocab#Patient> } ORDER BY ?s OFFSET 1", 3),
])
def test_the_construct_where_short_form_works(endpoint: str, query: str, triples: int) -> None:
    status, headers, body = get(endpoint, query, "text/turtle")
    assert status == 200, body
    assert len(Graph().parse(data=body, format="turtle")) == triples


@pytest.mark.parametrize("prefix", ["gkg", "rdf", "owl", "schema", "xsd"])
def test_a_query_with_an_undeclared_prefix_is_refused_with_400(endpoint: str, prefix: str) -> None:
    status, _, body = get(endpoint, f"SELECT * WHERE {{ ?s {prefix}:type ?o }} LIMIT 1")
    assert status == 400 and b"prefix" in body.lower(), body
    declared = f"PREFIX {prefix}: <urn:x:> SELECT * WHERE {{ ?s {prefix}:type ?o }} LIMIT 1"
    assert get(endpoint, declared)[0] == 200


@pytest.mark.parametrize("fmt, media", [("json", "application/sparql-results+json"), ("csv", "text/csv"),
                                        ("tsv", "text/tab-separated-values"), ("xml", "application/sparql-results+xml"),
                                        ("text/csv", "text/csv")])
def test_the_format_parameter_wins_over_accept(endpoint: str, fmt: str, media: str) -> None:
    status, headers, _ = get(endpoint, PATIENTS, "application/sparql-results+json;q=0.1, text/turtle", format=fmt)
    assert status == 200 and headers["Content-Type"].startswith(media)


def test_the_format_parameter_for_a_graph_and_a_bad_one(endpoint: str) -> None:
    construct = "CONSTRUCT WHERE { ?s a <https://w3id.org/guideline-kg/vocab#Patient> }"
    for fmt, media in (("json", "application/ld+json"), ("turtle", "text/turtle"), ("xml", "application/rdf+xml"),
                       ("ntriples", "application/n-triples")):
        status, headers, _ = get(endpoint, construct, "text/csv", format=fmt)
        assert status == 200 and headers["Content-Type"].startswith(media), fmt
    assert get(endpoint, PATIENTS, format="yaml")[0] == 400
    assert get(endpoint, PATIENTS, format="turtle")[0] == 406  # a SELECT has no Turtle form


def test_the_graph_store_protocol_reads_one_graph_the_default_graph_and_the_whole_dataset(endpoint: str) -> None:
    status, headers, body = request(f"{endpoint}/store?{urlencode({'graph': str(GUIDELINE_GRAPH)})}",
                                    headers={"Accept": "text/turtle"})
    assert status == 200 and headers["Content-Type"].startswith("text/turtle")
    guideline_triples = len(Graph().parse(data=body, format="turtle"))
    assert guideline_triples > 1000
    status, headers, body = request(f"{endpoint}/store?graph={GUIDELINE_GRAPH}", method="HEAD")
    assert status == 200 and body == b"" and int(headers["Content-Length"]) > 0
    status, _, body = request(f"{endpoint}/store?default", headers={"Accept": "application/n-triples"})
    union = Graph().parse(data=body, format="nt")
    assert status == 200 and len(union) > guideline_triples
    status, headers, body = request(f"{endpoint}/store")
    assert status == 200 and headers["Content-Type"].startswith("application/n-quads")
    from rdflib import Dataset
    dataset = Dataset()
    dataset.parse(data=body, format="nquads")
    names = {g.identifier for g in dataset.graphs() if len(g)}
    assert {GUIDELINE_GRAPH, INFERRED_GRAPH} <= names and len(names) == 6
    assert len(set(dataset.graph(GUIDELINE_GRAPH))) == guideline_triples
    assert request(f"{endpoint}/store?graph=urn:x:nothing")[0] == 404
    assert request(f"{endpoint}/store?graph=urn:x:a&default")[0] == 400
    assert request(f"{endpoint}/store", data=b"<a> <b> <c> .", headers={"Content-Type": "text/turtle"})[0] == 405


def test_qc_queries_are_reachable_under_their_folder(endpoint: str) -> None:
    status, _, body = request(f"{endpoint}/queries", headers={"Accept": "application/json"})
    listed = {q["name"] for q in json.loads(body)["queries"]}
    assert "qc/duplicate-id-violation" in listed and "red-flags" in listed
    status, rows = named(endpoint, "qc/duplicate-id-violation")
    assert status == 200 and rows == []  # the shipped guideline passes its QC
    assert named(endpoint, "qc/no-such-check")[0] == 404
    assert named(endpoint, "qc/../red-flags")[0] == 404
