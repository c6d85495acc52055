"""The start-up caches: prepared queries on disk, and the guideline loaded without parsing its Turtle
when this exact encoding loaded before. A cache can only make a start faster, never change what is
loaded or hide an error of a broken encoding."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from rdflib import Graph, Literal, URIRef
from rdflib.compare import isomorphic
from rdflib.plugins.sparql import prepareQuery

from conftest import EXAMPLES, ROOT
from reasoner import cache, queries, resources
from reasoner.errors import GuidelineError
from reasoner.guideline import TABLES, Guideline
from reasoner.patient import read_patient
from reasoner.queries import QueryFile, cache_path, load_folder, load_query

G = "https://w3id.org/guideline-kg/mid-lumbar-mass/"


@pytest.fixture(autouse=True)
def _fresh_caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private, empty disk cache, and no query prepared in this process yet."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(queries, "_PREPARED", {})
    return tmp_path / "xdg" / "guideline-kg"


def forget_prepared(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(queries, "_PREPARED", {})


def no_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the query was parsed, not read from the cache")

    monkeypatch.setattr(queries, "prepareQuery", refuse)


def rows(graph: Graph, prepared: object, **bindings: object) -> list[tuple[object, ...]]:
    return sorted((tuple(row) for row in graph.query(prepared, initBindings=bindings)), key=repr)  # type: ignore[arg-type]


def shipped_queries() -> dict[str, QueryFile]:
    root = resources.queries_dir()
    found = {f"rules/{k}": v for k, v in load_folder(root / "rules").items()}
    found.update({f"engine/{k}": v for k, v in load_folder(root / "engine").items()})
    found.update({f"report/{k}": v for k, v in load_folder(root / "report").items()})
    found.update(load_folder(root))  # the competency queries
    return found


def copy_encoding(tmp_path: Path) -> tuple[Path, Path]:
    ontology, query_dir = tmp_path / "ontology", tmp_path / "queries"
    shutil.copytree(resources.ontology_dir(), ontology)
    shutil.copytree(resources.queries_dir(), query_dir)
    return ontology, query_dir


def tables(guideline: Guideline) -> dict[str, object]:
    return {name: getattr(guideline, name) for name in TABLES}


######## Prepared queries ########

def test_a_cached_query_gives_the_same_rows_as_a_freshly_parsed_one(_fresh_caches: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    found = shipped_queries()
    fresh = {name: q.prepared() for name, q in found.items()}  # parsed, and written to the cache
    for name, query in found.items():
        assert cache_path(query.text).is_file(), f"{name} was not cached"
    forget_prepared(monkeypatch)
    no_parsing(monkeypatch)
    cached = {name: q.prepared() for name, q in found.items()}
    assert all(cached[name] is not fresh[name] for name in found)  # read from disk, not from memory

    guideline = Guideline.load()
    patient = read_patient(guideline, EXAMPLES / "palpable-mass-fever.json")
    data = Graph()
    data += guideline.graph
    data += patient.graph
    compared = 0
    for name in found:
        assert cached[name].algebra.name == fresh[name].algebra.name
        if cached[name].algebra.name == "ConstructQuery":
            made = [data.query(q, initBindings={"patient": patient.patient}).graph for q in (fresh[name], cached[name])]
            assert isomorphic(made[0], made[1]), name
            compared += bool(len(made[0]))
        else:
            bindings = {"patient": patient.patient} if name.startswith("report/") else {}
            expected = rows(data, fresh[name], **bindings)
            assert rows(data, cached[name], **bindings) == expected, name
            compared += bool(expected)
            assert expected or not name.startswith("engine/"), f"{name} found nothing to compare"
    assert compared >= 15  # the comparison saw real results, not only empty ones


def test_a_corrupt_cache_file_is_ignored_and_rewritten(monkeypatch: pytest.MonkeyPatch) -> None:
    query = load_query(resources.queries_dir() / "engine" / "concepts.rq")
    path = cache_path(query.text)
    path.parent.mkdir(parents=True)
    for garbage in (b"", b"not a pickle", pickle.dumps({"a": "dict, not a query"}), b"\x80\x05\x95truncated"):
        path.write_bytes(garbage)
        forget_prepared(monkeypatch)
        prepared = query.prepared()
        assert prepared.algebra.name == "SelectQuery"
        with path.open("rb") as handle:
            rewritten = pickle.load(handle)
        assert type(rewritten) is type(prepared) and rewritten.algebra.name == "SelectQuery"


def test_an_unwritable_cache_still_prepares_every_query(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "a-file-not-a-folder"
    blocker.write_text("x")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    found = shipped_queries()
    for query in found.values():
        assert query.prepared().algebra.name in ("SelectQuery", "ConstructQuery", "AskQuery")
    assert not cache_path(found["engine/concepts"].text).exists()
    guideline = Guideline.load()  # no cache entry can be written: parsed at load, every time
    assert guideline.parsed
    assert Guideline.load().parsed
    assert guideline.info["title"]


def test_a_query_refused_or_not_parsed_is_never_cached(tmp_path: Path) -> None:
    service = tmp_path / "service.rq"
    service.write_text("SELECT * WHERE { SERVICE <http://example.org/sparql> { ?s ?p ?o } }", encoding="utf-8")
    broken = tmp_path / "broken.rq"
    broken.write_text("SELECT * WHERE { ?s ?p }", encoding="utf-8")
    for path, message in ((service, "service.rq: SERVICE is not allowed"), (broken, "broken.rq: not valid SPARQL")):
        query = load_query(path)
        with pytest.raises(GuidelineError, match=message):
            query.prepared()
        assert not cache_path(query.text).exists()


def test_a_planted_cache_entry_cannot_smuggle_in_a_refused_query(tmp_path: Path) -> None:
    path = tmp_path / "from.rq"
    path.write_text("SELECT * FROM <http://example.org/g> WHERE { ?s ?p ?o }", encoding="utf-8")
    query = load_query(path)
    assert cache.write(cache_path(query.text), prepareQuery(query.text))  # as if cached by an older version
    with pytest.raises(GuidelineError, match="from.rq: FROM and FROM NAMED are not allowed"):
        query.prepared()


######## The guideline, lazily ########

def test_a_warm_start_parses_no_turtle_and_runs_no_sparql_for_the_tables(_fresh_caches: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    eager = Guideline.load()
    assert eager.parsed  # first load: parsed and checked, then remembered
    assert list(_fresh_caches.glob("guideline-*.pickle"))
    eager_tables = tables(eager)

    with monkeypatch.context() as patched:
        forget_prepared(patched)
        patched.setattr(Guideline, "select", lambda self, name: pytest.fail(f"ran {name}"))
        no_parsing(patched)
        lazy = Guideline.load()
        assert not lazy.parsed
        assert tables(lazy) == eager_tables
        assert lazy.info == {"iri": G + "guideline", "title": eager.info["title"], "version": eager.info["version"]}
        assert len(lazy.concepts) > 50 and len(lazy.code_map) > len(lazy.concepts)
        assert [(r.name, r.stratum, r.query.text) for r in lazy.rules] == [(r.name, r.stratum, r.query.text)
                                                                            for r in eager.rules]
        assert lazy.queries.keys() == eager.queries.keys()
        assert lazy.fingerprint == eager.fingerprint == Guideline.fingerprint.func(lazy)  # type: ignore[attr-defined]
        assert not lazy.parsed

    assert len(lazy.graph) == len(eager.graph) > 1000  # parsed now, on first use
    assert lazy.parsed
    assert set(lazy.graph) == set(eager.graph)  # the encoding has no blank nodes: equal as sets
    assert dict(lazy.graph.namespaces()) == dict(eager.graph.namespaces())
    assert lazy.graph is lazy.graph


def test_a_changed_ontology_file_changes_the_fingerprint_and_is_parsed_again(tmp_path: Path) -> None:
    ontology, query_dir = copy_encoding(tmp_path)
    first = Guideline.load(ontology=ontology, queries=query_dir)
    second = Guideline.load(ontology=ontology, queries=query_dir)
    assert first.parsed and not second.parsed
    assert second.fingerprint == first.fingerprint

    added = URIRef(G + "added-by-the-test")
    with (ontology / "additions.ttl").open("a", encoding="utf-8") as handle:
        handle.write(f'\n<{added}> <http://www.w3.org/2000/01/rdf-schema#label> "changed" .\n')
    changed = Guideline.load(ontology=ontology, queries=query_dir)
    assert changed.parsed  # not the encoding that loaded before
    assert changed.fingerprint != first.fingerprint
    assert (added, None, Literal("changed")) in changed.graph
    assert not Guideline.load(ontology=ontology, queries=query_dir).parsed  # and remembered in turn

    with (ontology / "additions.ttl").open("a", encoding="utf-8") as handle:
        handle.write("\nthis is not Turtle .\n")
    with pytest.raises(GuidelineError, match=r"^additions\.ttl: not valid Turtle"):
        Guideline.load(ontology=ontology, queries=query_dir)


def test_the_same_files_elsewhere_are_parsed_again(tmp_path: Path) -> None:
    """Relative IRIs resolve against a file's place: the place is part of what loaded before."""
    one, query_dir = copy_encoding(tmp_path / "one")
    other = tmp_path / "other"
    shutil.copytree(one, other)
    Guideline.load(ontology=one, queries=query_dir)
    assert not Guideline.load(ontology=one, queries=query_dir).parsed
    assert Guideline.load(ontology=other, queries=query_dir).parsed


def test_a_broken_encoding_fails_at_load_as_before_even_when_its_ontology_loaded_before(tmp_path: Path) -> None:
    ontology, query_dir = copy_encoding(tmp_path)
    Guideline.load(ontology=ontology, queries=query_dir)
    rules = query_dir / "rules"
    original = (rules / "mri-immediate.rq").read_text(encoding="utf-8")
    broken_rules = {
        "#+ stratum: x\n" + original: r"^mri-immediate\.rq: '#\+ stratum:' must be a whole number$",
        "SELECT * WHERE { ?s ?p ?o }": r"^mri-immediate\.rq: a rule must be a CONSTRUCT query$",
        "CONSTRUCT { ?s ?p ?o } WHERE { SERVICE <http://example.org/> { ?s ?p ?o } }":
            r"^mri-immediate\.rq: SERVICE is not allowed",
        "CONSTRUCT { ?s ?p ?o } FROM <http://example.org/g> WHERE { ?s ?p ?o }":
            r"^mri-immediate\.rq: FROM and FROM NAMED are not allowed",
        "CONSTRUCT { ?s ?p ?o } WHERE { ?s ?p": r"^mri-immediate\.rq: not valid SPARQL",
    }
    for text, message in broken_rules.items():
        (rules / "mri-immediate.rq").write_text(text, encoding="utf-8")
        with pytest.raises(GuidelineError, match=message):
            Guideline.load(ontology=ontology, queries=query_dir)
    (rules / "mri-immediate.rq").write_text(original, encoding="utf-8")
    assert not Guideline.load(ontology=ontology, queries=query_dir).parsed


def test_a_changed_engine_query_is_not_answered_from_cached_tables(tmp_path: Path) -> None:
    ontology, query_dir = copy_encoding(tmp_path)
    before = Guideline.load(ontology=ontology, queries=query_dir)
    assert "fever" in before.concepts
    concepts = query_dir / "engine" / "concepts.rq"
    text = concepts.read_text(encoding="utf-8")
    concepts.write_text(text.replace('FILTER (?kindClass != gkg:Concept)',
                                     'FILTER (?kindClass != gkg:Concept && ?key != "fever")'), encoding="utf-8")
    after = Guideline.load(ontology=ontology, queries=query_dir)
    assert "fever" not in after.concepts
    assert set(before.concepts) - set(after.concepts) == {"fever"}
    assert not Guideline.load(ontology=ontology, queries=query_dir).parsed  # the new tables are remembered
    assert "fever" not in Guideline.load(ontology=ontology, queries=query_dir).concepts


def test_an_encoding_whose_tables_fail_still_loads_and_fails_where_it_did(tmp_path: Path) -> None:
    """Two gkg:Guideline nodes: load works, ``info`` raises when asked for, on a cold and a warm start."""
    ontology, query_dir = copy_encoding(tmp_path)
    with (ontology / "additions.ttl").open("a", encoding="utf-8") as handle:
        handle.write(f'\n<{G}second> a <https://w3id.org/guideline-kg/vocab#Guideline> ; '
                     '<http://purl.org/dc/terms/title> "Another" ; '
                     '<http://www.w3.org/2002/07/owl#versionInfo> "2" .\n')
    for warm in (False, True):
        loaded = Guideline.load(ontology=ontology, queries=query_dir)
        assert loaded.parsed is not warm  # the Turtle parsed before: left unparsed, the tables computed on use
        with pytest.raises(GuidelineError, match="exactly one gkg:Guideline"):
            loaded.info
        assert "fever" in loaded.concepts


def test_the_graph_of_a_guideline_pickled_before_first_use_is_still_parsed_on_use() -> None:
    Guideline.load()
    lazy = Guideline.load()
    assert not lazy.parsed
    copy = pickle.loads(pickle.dumps(lazy))
    assert len(copy.graph) == len(Guideline.load().graph)


def test_the_disk_cache_writes_atomically_and_reports_what_it_could_not_write(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "entry.pickle"
    assert cache.write(path, {"x": 1})
    assert cache.read(path) == {"x": 1}
    assert [p.name for p in path.parent.iterdir()] == ["entry.pickle"]  # no temporary file left
    assert cache.write(path, lambda: 1) is False  # cannot be pickled: not cached, no error
    assert cache.read(path) == {"x": 1}
    assert cache.read(tmp_path / "missing.pickle") is cache.MISSING
    assert cache.write(path / "under-a-file.pickle", 1) is False


@pytest.mark.parametrize("data", [b"a\r\nb\rc\n", b"\xef\xbb\xbfbom first\r\n", b"caf\xc3\xa9\r", b"bad \xff byte", b"x" * 9000 + b"\xc3"])
def test_files_are_read_as_read_text_read_them(tmp_path: Path, data: bytes) -> None:
    """load hashes the bytes it read and decodes them itself: same text, same error, as Path.read_text."""
    path = tmp_path / "file.rq"
    path.write_bytes(data)
    try:
        expected: object = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        expected = str(exc)
    try:
        found: object = queries.decode_text(data)
    except UnicodeDecodeError as exc:
        found = str(exc)
    assert found == expected


######## The plans' generated code ########

_ONE_PATIENT = """
import json, sys
from reasoner.clock import parse_instant
from reasoner.fast import FastEngine
from reasoner.fast.generated import known as _generated_known
from reasoner.guideline import Guideline
from reasoner.patient import read_patient
from reasoner.plan import COMPILED
from reasoner.report import build_report
guideline = Guideline.load()
engine = FastEngine(guideline)
now = parse_instant("2026-01-15T12:00:00Z")  # one reasoning time, so the runs' reports compare byte for byte
report = build_report(guideline, engine.reason(read_patient(guideline, sys.argv[1], now))).to_json()
print(json.dumps({"report": report, "read": _generated_known[0], "compiled": len(COMPILED) - _generated_known[0]}))
"""


def test_the_generated_code_is_kept_on_disk_so_a_new_process_compiles_only_what_no_earlier_one_met(
        tmp_path: Path) -> None:
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "xdg")}

    def run(example: str) -> dict[str, object]:
        done = subprocess.run([sys.executable, "-c", _ONE_PATIENT, str(EXAMPLES / example)], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    first = run("palpable-mass-fever.json")
    assert first["read"] == 0 and first["compiled"] > 50  # nothing on disk yet: every call shape compiled
    (kept,) = (tmp_path / "xdg" / "guideline-kg").glob("generated-code-*.pickle")
    again = run("palpable-mass-fever.json")
    assert again["report"] == first["report"]
    assert again["read"] == first["compiled"] and again["compiled"] == 0  # all read back, nothing compiled

    kept.write_bytes(b"not a pickle of marshalled code")  # a corrupt entry is a miss, then written again
    after = run("palpable-mass-fever.json")
    assert after["report"] == first["report"] and after["read"] == 0 and after["compiled"] == first["compiled"]
    assert run("palpable-mass-fever.json")["compiled"] == 0
    # no kept entry names a module of the fast engine's code (the code table is keyed by source text, the plans are
    # never pickled): moving or splitting those modules cannot leave an entry a new version fails to read
    entries = list((tmp_path / "xdg" / "guideline-kg").rglob("*.pickle"))
    assert kept in entries and len(entries) > 3
    assert [e.name for e in entries if b"reasoner.plan" in e.read_bytes() or b"reasoner.fast" in e.read_bytes()] == []
