"""Stored answers (reasoner.views): the named population queries marked ``#+ precompute: yes`` are worked out at
the end of ``load`` and answered from the store folder, byte for byte what evaluating them gives, in every results
format, with and without their parameters; never once the store has changed; other queries are evaluated."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import pyoxigraph as ox
import pytest

from benchmarks.cohort import generate
from reasoner import population, views
from reasoner.cli import main
from reasoner.queries import load_folder, query_from_bytes
from reasoner.resources import queries_dir

POPULATION = ("red-flags-by-frequency", "patients-with-recommendations-against", "patients-mass-without-completed-mri",
              "recommendations-by-citation")
FORMATS = ("json", "xml", "csv", "tsv")


@lru_cache(maxsize=1)
def batches() -> Path:
    """Two report folders of generated patients (different patients), made once: ``<root>/a`` and ``<root>/b``;
    removed when the tests end."""
    import atexit
    import shutil
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="guideline-kg-views-"))
    atexit.register(shutil.rmtree, root, True)
    bundles = list(generate(30, seed=3))
    for name, part in (("a", bundles[:20]), ("b", bundles[20:])):
        cohort = root / f"{name}.ndjson"
        cohort.write_text("".join(json.dumps(b) + "\n" for b in part), encoding="utf-8")
        assert main(["recommend", str(cohort), "--out", str(root / name), "--format", "nquads"]) in (0, 1)
    return root


def loaded(folder: Path, *sources: str) -> Path:
    for source in sources:
        assert main(["load", str(batches() / source), "--store", str(folder)]) == 0
    return folder


def evaluated(store_dir: Path, text: str, bindings: dict[str, object] | None = None, fmt: str = "json") -> bytes:
    """What evaluating the query on the store gives (as the endpoint's workers do it)."""
    store = ox.Store.read_only(str(store_dir))
    try:
        result = store.query(text, substitutions={ox.Variable(k): v for k, v in (bindings or {}).items()} or None)
        return result.serialize(format=getattr(ox.QueryResultsFormat, fmt.upper())) or b""
    finally:
        del store


def column_values(store_dir: Path, text: str, column: str) -> list[object]:
    return sorted({s[column] for s in ox.Store.read_only(str(store_dir)).query(text) if s[column] is not None},
                  key=str)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return loaded(tmp_path_factory.mktemp("views") / "store", "a")


def test_the_shipped_population_queries_are_marked_and_stored(store: Path) -> None:
    shipped = load_folder(queries_dir())
    for name in POPULATION:
        assert views.is_marked(shipped[name])
        assert views.lookup(store, shipped[name].text) is not None, name
    unmarked = [q for q in shipped.values() if not views.is_marked(q)]
    assert unmarked and all(views.lookup(store, q.text) is None for q in unmarked)


@pytest.mark.parametrize("name", POPULATION)
def test_a_stored_answer_is_the_evaluated_one_in_every_format_with_and_without_parameters(store: Path,
                                                                                         name: str) -> None:
    query = load_folder(queries_dir())[name]
    cases: list[dict[str, object]] = [{}]
    for param in views.column_params(query):
        values = column_values(store, query.text, param)
        assert values, f"{name}: no {param} in the answer to test with"
        cases += [{param: v} for v in values] + [{param: ox.Literal("no-such-value")}]
    assert len(cases) > 1 or not query.params
    for bindings in cases:
        for fmt in FORMATS:
            stored = views.answer(store, query.text, bindings, fmt)
            assert stored is not None and stored == evaluated(store, query.text, bindings, fmt), (name, bindings, fmt)


def test_the_parameters_of_the_shipped_queries_restrict_columns() -> None:
    shipped = load_folder(queries_dir())
    assert views.column_params(shipped["patients-with-recommendations-against"]) == ["action"]
    assert views.column_params(shipped["recommendations-by-citation"]) == ["citation"]


@pytest.mark.parametrize("text", [
    # the parameter is not an output column: binding it is no filter on the stored rows
    "#+ param: c iri\nSELECT ?s WHERE { ?s ?p ?c }",
    # aggregates without GROUP BY: one row even when nothing matches
    "#+ param: s iri\nSELECT ?s (COUNT(*) AS ?n) WHERE { ?s ?p ?o }",
    # a computed column
    "#+ param: s string\nSELECT ?s WHERE { ?x ?p ?o BIND(STR(?x) AS ?s) }",
    # a column that is not a GROUP BY key
    "#+ param: n integer\nSELECT ?s (COUNT(*) AS ?n) WHERE { ?s ?p ?o } GROUP BY ?s",
])
def test_a_parameter_that_is_not_a_plain_column_is_evaluated(text: str) -> None:
    query = query_from_bytes("q", Path("q.rq"), text.encode())
    assert views.column_params(query) == []


def test_a_column_parameter_is_found() -> None:
    text = b"#+ param: s iri\nSELECT ?s (COUNT(*) AS ?n) WHERE { ?s ?p ?o } GROUP BY ?s"
    query = query_from_bytes("q", Path("q.rq"), text)
    assert views.column_params(query) == ["s"]


def test_a_later_load_works_the_answers_out_again(tmp_path: Path) -> None:
    store = loaded(tmp_path / "store", "a")
    text = load_folder(queries_dir())["red-flags-by-frequency"].text
    first = views.answer(store, text)
    loaded(store, "b")
    second = views.answer(store, text)
    assert first is not None and second is not None and second != first
    assert second == evaluated(store, text)


def test_a_store_written_after_its_answers_are_worked_out_is_evaluated(tmp_path: Path, capsys) -> None:
    store_dir = loaded(tmp_path / "store", "a")
    text = load_folder(queries_dir())["red-flags-by-frequency"].text
    before = views.answer(store_dir, text)
    assert before is not None
    # another patient with a red flag, written to the store by other means than load
    patient, flag = ox.NamedNode("urn:x:patient"), ox.NamedNode("urn:x:flag")
    gkg = "https://w3id.org/guideline-kg/vocab#"
    concept = next(iter(ox.Store.read_only(str(store_dir)).query(
        f"SELECT ?c WHERE {{ ?f a <{gkg}PatientRedFlag> ; <{gkg}concept> ?c }} LIMIT 1")))["c"]
    writer = ox.Store(str(store_dir))
    writer.extend([ox.Quad(flag, ox.NamedNode("http://www.w3.org/1999/02/22-rdf-syntax-ns#type"),
                           ox.NamedNode(gkg + "PatientRedFlag")),
                   ox.Quad(flag, ox.NamedNode(gkg + "about"), patient),
                   ox.Quad(flag, ox.NamedNode(gkg + "concept"), concept)])
    writer.flush()
    del writer
    assert views.lookup(store_dir, text) is None  # stale: never served
    assert evaluated(store_dir, text) != before
    assert main(["query", "red-flags-by-frequency", "--store", str(store_dir), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == json.loads(evaluated(store_dir, text))


def test_query_store_prints_the_same_with_and_without_stored_answers(store: Path, tmp_path: Path, capsys) -> None:
    import shutil

    bare = tmp_path / "bare"
    shutil.copytree(store, bare)
    shutil.rmtree(bare / views.FOLDER)  # the same store, nothing stored: every query is evaluated
    assert views.lookup(bare, load_folder(queries_dir())["red-flags-by-frequency"].text) is None
    runs = [[name] for name in POPULATION] + [
        ["patients-with-recommendations-against", "--param", "action=xr-lumbar"],
        ["recommendations-by-citation", "--param", "citation=4"],
        ["recommendations-by-citation", "--param", "citation=999"]]
    for run in runs:
        for fmt in ("json", "csv", "table"):
            outputs = []
            for folder in (store, bare):
                assert main(["query", *run, "--store", str(folder), "--format", fmt]) == 0
                outputs.append(capsys.readouterr().out)
            assert outputs[0] == outputs[1], (run, fmt)


def test_query_reports_evaluates_the_one_query_without_working_out_every_stored_answer(
        monkeypatch: pytest.MonkeyPatch, capsys, store: Path) -> None:
    refreshed: list[Path] = []
    monkeypatch.setattr(views, "refresh", lambda folder, *a, **k: refreshed.append(folder))
    assert main(["query", "red-flags-by-frequency", "--reports", str(batches() / "a"), "--format", "csv"]) == 0
    answer = capsys.readouterr().out
    assert answer.startswith("redFlag,label,patients") and refreshed == []
    monkeypatch.undo()
    assert main(["query", "red-flags-by-frequency", "--store", str(store), "--format", "csv"]) == 0
    assert capsys.readouterr().out == answer  # the same answer as the loaded store's stored one


def test_refresh_keeps_only_marked_select_queries(tmp_path: Path, store: Path) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(store, copy)
    marked = query_from_bytes("m", Path("m.rq"), b"#+ precompute: yes\nSELECT (COUNT(*) AS ?n) WHERE { ?s ?p ?o }")
    plain = query_from_bytes("p", Path("p.rq"), b"SELECT (COUNT(*) AS ?n) WHERE { ?s ?p ?o }")
    ask = query_from_bytes("a", Path("a.rq"), b"#+ precompute: yes\nASK { ?s ?p ?o }")
    by_object = query_from_bytes("o", Path("o.rq"), b"#+ precompute: yes\n#+ param: o iri\n"
                                                     b"SELECT ?s WHERE { ?s a ?o } ORDER BY ?s LIMIT 3")
    refreshed = views.refresh(copy, {"m": marked, "p": plain, "a": ask, "o": by_object})
    assert refreshed.queries == 2
    assert views.answer(copy, marked.text) == evaluated(copy, marked.text)
    assert views.answer(copy, by_object.text) == evaluated(copy, by_object.text)
    # ?o is no output column: with it bound the query is evaluated, not read from the stored rows
    assert views.lookup(copy, by_object.text, {"o": ox.NamedNode("urn:x:none")}) is None
    assert views.lookup(copy, plain.text) is None and views.lookup(copy, ask.text) is None
    shipped = load_folder(queries_dir())["red-flags-by-frequency"].text
    assert views.lookup(copy, shipped) is None  # answers of the previous refresh are gone


def test_serve_answers_marked_queries_from_the_stored_answers(store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from reasoner.serve import Service, Settings
    from reasoner.workers import QueryFailed

    service = Service.open(store, Settings(workers=1, long_workers=0, cache_mb=0))
    try:
        expected = {}
        for accept, fmt in (("application/sparql-results+json", "json"), ("text/csv", "csv"),
                            ("text/tab-separated-values", "tsv"), ("application/sparql-results+xml", "xml")):
            for name, params, bindings in (("red-flags-by-frequency", {}, {}),
                                           ("patients-with-recommendations-against", {"action": ["xr-lumbar"]},
                                            {"action": ox.Literal("xr-lumbar")}),
                                           ("recommendations-by-citation", {}, {})):
                want = evaluated(store, service.queries[name].text, bindings, fmt)
                expected[(name, fmt)] = want
                assert service.run_named(name, params, accept).body == want, (name, fmt)
        ran: list[str] = []

        def no_worker(job: object) -> bytes:
            ran.append(getattr(job, "text", ""))
            raise QueryFailed("evaluated")

        monkeypatch.setattr(service.pool, "run", no_worker)
        # a marked query needs no worker, through /queries/{name} or its text sent to /sparql
        text = service.queries["red-flags-by-frequency"].text
        expected_json = expected[("red-flags-by-frequency", "json")]
        assert service.run_named("red-flags-by-frequency", {}, None).body == expected_json
        assert service.answer(text, "text/csv").body == expected[("red-flags-by-frequency", "csv")]
        assert not ran
        from reasoner.serve import Refused

        with pytest.raises(Refused):  # any other query goes to a worker
            service.answer(text.replace("DESC(?patients)", "?patients"), None)
        assert ran
    finally:
        service.close()


def test_the_endpoint_sends_the_stored_answers_over_http(store: Path) -> None:
    import urllib.request
    from urllib.parse import urlencode

    from reasoner import endpoint
    from reasoner.serve import Service, Settings

    service = Service.open(store, Settings(host="127.0.0.1", port=0, workers=1, long_workers=0, cache_mb=0))
    try:
        with endpoint.make_server(service) as running:
            base = f"http://127.0.0.1:{running.address[1]}"
            text = service.queries["patients-with-recommendations-against"].text
            for path, bindings in (("/queries/patients-with-recommendations-against?format=tsv", {}),
                                   ("/queries/patients-with-recommendations-against?action=xr-lumbar&format=xml",
                                    {"action": ox.Literal("xr-lumbar")}),
                                   ("/sparql?" + urlencode({"query": text, "format": "csv"}), {})):
                fmt = path.rsplit("format=", 1)[1]
                with urllib.request.urlopen(base + path, timeout=30) as response:
                    assert response.read() == evaluated(store, text, bindings, fmt), path
    finally:
        service.close()
