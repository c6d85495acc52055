"""Population data: reports in every format a batch writes are queryable, ``load`` into an on-disk Oxigraph
store (incremental, idempotent per patient), ``query --store``, the tautology-free inferred graph, the query
scanner that refuses updates, FROM and SERVICE, and the Graph Store Protocol reads of the service."""

from __future__ import annotations

import csv
import io
import shutil
from functools import lru_cache
from pathlib import Path

import pyoxigraph as ox
import pytest
from rdflib import Graph, URIRef
from rdflib.namespace import OWL, PROV, RDFS

from conftest import EXAMPLES, guideline
from reasoner import population
from reasoner.cli import main
from reasoner.errors import InputError
from reasoner.workers import ScanProblem, scan_query, words

PATIENTS = ("palpable-mass-fever", "negative-mri", "cauda-equina", "not-applicable", "mri-malignancy-result")
POPULATION = ("red-flags-by-frequency", "patients-with-recommendations-against", "patients-mass-without-completed-mri",
              "recommendations-by-citation")
C = "https://w3id.org/guideline-kg/concept/"


@lru_cache(maxsize=1)
def batches() -> Path:
    """One batch over the same patients per format, made once: ``<root>/<format>/``."""
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="guideline-kg-population-"))
    inputs = root / "in"
    inputs.mkdir()
    for name in PATIENTS:
        shutil.copy(EXAMPLES / f"{name}.json", inputs / f"{name}.json")
    for fmt in ("json", "turtle", "nquads", "jsonld"):
        assert main(["recommend", str(inputs), "--out", str(root / fmt), "--format", fmt]) in (0, 1)
    return root


def csv_rows(capsys: pytest.CaptureFixture[str], *argv: str) -> list[dict[str, str]]:
    code = main(["query", *argv, "--format", "csv"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return list(csv.DictReader(io.StringIO(captured.out)))


# --- reports in every format -------------------------------------------------------------------------


def test_a_json_batch_keeps_each_reports_graph_beside_it() -> None:
    folder = batches() / "json"
    assert sorted(p.name for p in folder.iterdir() if p.suffix == ".json") == sorted(f"{n}.json" for n in PATIENTS)
    assert sorted(p.name for p in folder.iterdir() if p.suffix == ".nq") == sorted(f"{n}.nq" for n in PATIENTS)


@pytest.mark.parametrize("name", POPULATION)
def test_json_nquads_jsonld_and_turtle_reports_give_the_same_rows(capsys, name: str) -> None:
    answers = {fmt: csv_rows(capsys, name, "--reports", str(batches() / fmt))
               for fmt in ("json", "turtle", "nquads", "jsonld")}
    assert answers["json"] == answers["turtle"] == answers["nquads"] == answers["jsonld"]
    if name == "red-flags-by-frequency":  # a population answer, not an empty one
        assert {row["redFlag"] for row in answers["json"]} >= {"palpable-lumbar-mass", "fever"}


def test_an_nquads_report_is_the_turtle_report_in_one_named_graph() -> None:
    nq = population.read_report_graph(batches() / "nquads" / "palpable-mass-fever.nq")
    ttl = population.read_report_graph(batches() / "turtle" / "palpable-mass-fever.ttl")
    assert nq.name == ttl.name and nq.name.endswith("/report")
    assert {q.graph_name for q in nq.quads} == {ox.NamedNode(nq.name)}
    ended = ox.NamedNode(str(PROV.endedAtTime))  # the reasoning's time differs between the two runs
    assert {q for q in nq.quads if q.predicate != ended} == {q for q in ttl.quads if q.predicate != ended}
    assert any(q.predicate == ox.NamedNode(str(PROV.wasGeneratedBy)) for q in nq.quads)


def test_a_folder_without_reports_exits_2_naming_the_folder(capsys, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("no report here\n", encoding="utf-8")
    code = main(["query", "red-flags-by-frequency", "--reports", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and str(tmp_path) in err and "no report" in err


def test_a_json_report_without_its_graph_is_refused_by_name(capsys, tmp_path: Path) -> None:
    shutil.copy(batches() / "json" / "negative-mri.json", tmp_path / "negative-mri.json")
    code = main(["load", str(tmp_path), "--store", str(tmp_path / "store")])
    err = capsys.readouterr().err
    assert code == 2 and "negative-mri.json" in err and "negative-mri.nq" in err
    assert not (tmp_path / "store").exists()  # nothing half-written


def test_an_nquads_report_writing_another_graph_is_refused(tmp_path: Path) -> None:
    source = (batches() / "nquads" / "negative-mri.nq").read_text(encoding="utf-8")
    guideline_graph = f"<{population.GUIDELINE_GRAPH}>"
    (tmp_path / "bad.nq").write_text(source + f"<urn:x:a> <urn:x:b> <urn:x:c> {guideline_graph} .\n",
                                     encoding="utf-8")
    with pytest.raises(InputError, match="bad.nq"):
        population.read_report_graph(tmp_path / "bad.nq")


def test_two_reports_of_one_patient_are_refused(tmp_path: Path) -> None:
    shutil.copy(batches() / "turtle" / "negative-mri.ttl", tmp_path / "a.ttl")
    shutil.copy(batches() / "nquads" / "negative-mri.nq", tmp_path / "b.nq")
    with pytest.raises(InputError, match="second report"):
        list(population.iter_reports([tmp_path]))


# --- the on-disk store -------------------------------------------------------------------------------


def quads_of(store_dir: Path) -> set[str]:
    """The store's quads as N-Quads lines; checks on the way that its default graph is the union of its graphs."""
    store = population.open_store(store_dir, read_only=True)
    try:
        quads = list(store)
        default = {(q.subject, q.predicate, q.object) for q in quads if q.graph_name == ox.DefaultGraph()}
        named = {(q.subject, q.predicate, q.object) for q in quads if q.graph_name != ox.DefaultGraph()}
        assert default == named and named
        return {str(q) for q in quads if q.graph_name != ox.DefaultGraph()}
    finally:
        del store


def test_load_is_idempotent_and_query_store_answers_as_query_reports(capsys, tmp_path: Path) -> None:
    store = tmp_path / "store"
    assert main(["load", str(batches() / "json"), "--store", str(store)]) == 0
    err = capsys.readouterr().err
    assert f"{len(PATIENTS)} reports" in err and " s (" in err  # the time it took is printed
    first = quads_of(store)
    assert main(["load", str(batches() / "json"), "--store", str(store)]) == 0
    assert f"({len(PATIENTS)} replaced)" in capsys.readouterr().err
    assert quads_of(store) == first  # loading again duplicates nothing
    for name in POPULATION:
        assert csv_rows(capsys, name, "--store", str(store)) == csv_rows(capsys, name, "--reports", str(batches() / "json"))


def test_reloading_a_patient_replaces_its_graph_and_leaves_the_others(tmp_path: Path) -> None:
    store = tmp_path / "store"
    assert main(["load", str(batches() / "nquads"), "--store", str(store)]) == 0
    before = quads_of(store)
    changed = tmp_path / "changed"
    changed.mkdir()
    original = (batches() / "nquads" / "negative-mri.nq").read_text(encoding="utf-8").splitlines(keepends=True)
    kept = [line for line in original if "/red-flag/" not in line and "PatientRedFlag" not in line] or original[:-1]
    assert len(kept) < len(original)
    (changed / "negative-mri.nq").write_text("".join(kept), encoding="utf-8")
    assert main(["load", str(changed), "--store", str(store)]) == 0
    after = quads_of(store)
    graph = population.read_report_graph(changed / "negative-mri.nq").name
    mine = {q for q in after if q.endswith(f"<{graph}>")}
    assert len(mine) == len(kept)
    assert {q for q in after if not q.endswith(f"<{graph}>")} == {q for q in before if not q.endswith(f"<{graph}>")}


def test_a_store_holds_the_guideline_graphs_and_one_graph_per_patient(tmp_path: Path) -> None:
    store_dir = tmp_path / "store"
    population.load(store_dir, [batches() / "turtle"], guideline(), show_progress=False)
    store = population.open_store(store_dir, read_only=True)
    names = {g.value for g in store.named_graphs()}
    assert {str(population.GUIDELINE_GRAPH), str(population.INFERRED_GRAPH)} <= names
    assert len([n for n in names if n.endswith("/report")]) == len(PATIENTS)
    with pytest.raises(RuntimeError, match="read-write"):  # opened read-only: no write goes through
        store.add(ox.Quad(ox.NamedNode("urn:x:a"), ox.NamedNode("urn:x:b"), ox.NamedNode("urn:x:c")))


def test_query_store_refuses_a_folder_that_is_not_a_store(capsys, tmp_path: Path) -> None:
    code = main(["query", "red-flags-by-frequency", "--store", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and str(tmp_path) in err and "not an Oxigraph store" in err


# --- no tautologies in the inferred graph ------------------------------------------------------------


def test_the_inferred_graph_holds_no_tautology() -> None:
    inferred = population.inferred_triples(guideline())
    assert len(inferred) > 0
    assert not [t for t in inferred if population.is_tautology(t)]
    assert not list(inferred.triples((OWL.Nothing, RDFS.subClassOf, None)))
    assert not list(inferred.triples((None, RDFS.subClassOf, OWL.Thing)))
    for p in (RDFS.subClassOf, OWL.sameAs, OWL.equivalentClass, OWL.equivalentProperty):
        assert not [s for s, o in inferred.subject_objects(p) if s == o]


def test_is_tautology_keeps_what_says_something() -> None:
    x, y = URIRef(C + "discitis"), URIRef(C + "infection")
    assert population.is_tautology((x, RDFS.subClassOf, x))
    assert population.is_tautology((OWL.Nothing, RDFS.subClassOf, y))
    assert population.is_tautology((x, RDFS.subClassOf, OWL.Thing))
    assert population.is_tautology((x, OWL.sameAs, x))
    assert not population.is_tautology((x, RDFS.subClassOf, y))
    assert not population.is_tautology((x, OWL.sameAs, y))


def test_subclasses_of_infection_are_real_subclasses_only(tmp_path: Path) -> None:
    store_dir = tmp_path / "store"
    population.load(store_dir, [batches() / "nquads"], guideline(), show_progress=False)
    store = population.open_store(store_dir, read_only=True)
    found = {s["c"].value for s in store.query(
        f"SELECT DISTINCT ?c WHERE {{ ?c <{RDFS.subClassOf}>+ <{C}infection> }}")}  # the default graph: the union
    assert f"{C}discitis" in found and f"{C}epidural-abscess" in found
    assert f"{C}infection" not in found and str(OWL.Nothing) not in found


# --- the query scanner ------------------------------------------------------------------------------


@pytest.mark.parametrize("text, form", [
    ("SELECT * WHERE { ?s ?p ?o }", "SELECT"),
    ("PREFIX from: <urn:x:> SELECT ?service WHERE { ?service from:service ?from }", "SELECT"),
    ("# SERVICE FROM in a comment\nASK { ?s ?p 'FROM <urn:x> SERVICE' }", "ASK"),
    ('CONSTRUCT WHERE { ?s <urn:service> """a\nFROM""" }', "CONSTRUCT"),
    ("DESCRIBE <urn:x:from>", "DESCRIBE"),
    ("SELECT * { ?s ?p ?o FILTER(LANG(?o) = 'en') } # INSERT", "SELECT"),
])
def test_the_scanner_reads_the_form_and_ignores_words_in_names_strings_and_comments(text: str, form: str) -> None:
    assert scan_query(text) == form


@pytest.mark.parametrize("text, kind", [
    ("SELECT * WHERE { SERVICE <http://example.org/sparql> { ?s ?p ?o } }", "outside"),
    ("select * where { service silent <http://example.org/> { ?s ?p ?o } }", "outside"),
    ("SELECT * FROM <urn:x:g> WHERE { ?s ?p ?o }", "outside"),
    ("SELECT * FROM NAMED <urn:x:g> WHERE { GRAPH ?g { ?s ?p ?o } }", "outside"),
    ("INSERT DATA { <urn:x:a> <urn:x:b> <urn:x:c> }", "update"),
    ("PREFIX x: <urn:x:> DELETE WHERE { ?s ?p ?o }", "update"),
    ("LOAD <http://example.org/data.ttl>", "update"),
    ("hello", "invalid"),
])
def test_the_scanner_refuses_updates_from_and_service(text: str, kind: str) -> None:
    with pytest.raises(ScanProblem) as problem:
        scan_query(text)
    assert problem.value.kind == kind


def test_words_sets_aside_iris_variables_and_prefixed_names() -> None:
    assert words("SELECT ?from $service <urn:SERVICE> ex:FROM _:from 'from'@en-GB") == ["SELECT"]


def test_serve_refuses_a_folder_that_is_not_a_store_and_both_sources(capsys, tmp_path: Path) -> None:
    assert main(["serve", "--store", str(tmp_path), "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path) in err and "not an Oxigraph store" in err
    assert main(["serve", "--store", str(tmp_path), "--reports", str(tmp_path), "--port", "0"]) == 2
    assert "not both" in capsys.readouterr().err
