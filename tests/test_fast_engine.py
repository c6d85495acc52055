"""The fast engine against the reference engine, the definition of correct: byte-identical JSON reports.

Inputs: every example and the first patient of every cohort branch (benchmarks.reference.reference_inputs),
chosen to reach every stage (vital sign thresholds, documented absence, contradictions, a Violation, MRI
contraindicated, follow-up on CT, an unmatched conclusion, a mass without a lumbar site ...). The reference
costs seconds a patient, so its outcomes (report and derived triples) are stored in tests/reference-reports/
under a key of everything they depend on (the reference's code, the encoding, library versions; the patient's
text names the file): the fast engine runs here, the reference's answers are read. When the key changes, these
tests fail and say what changed; ``python3 tools/reference_reports.py`` stores the new answers (~3 minutes with
2 jobs). One stored report is checked against the reference run here. The 1,000-patient agreement runs in the
benchmark (benchmarks/bench.py).
"""

from __future__ import annotations

import json
import shutil
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest
from rdflib import Literal

from benchmarks import reference
from benchmarks.cohort import BY_NAME, branch_of, generate
from reasoner.engine import ReferenceEngine
from reasoner.fast import FastEngine, TBox, closed_guideline
from reasoner.guideline import Guideline
from reasoner.patient import parse_patient
from reasoner.report import build_report
from conftest import ROOT

INPUTS = reference.reference_inputs()


@lru_cache(maxsize=1)
def stored_folder() -> Path:
    """The folder of the stored outcomes for the current key; the test fails, saying what changed, when there is none."""
    reason = reference.stale_reason()
    if reason is not None:
        pytest.fail(f"{reason}. Run `{reference.REGENERATE}` (about 3 minutes with 2 jobs) and commit "
                    f"tests/reference-reports/", pytrace=False)
    return reference.STORED / reference.reference_key()


def stored(name: str) -> reference.Outcome:
    found = reference.read(stored_folder(), INPUTS[name])
    if found is None:
        pytest.fail(f"{name}: no stored reference outcome under the current key. Run `{reference.REGENERATE}`",
                    pytrace=False)
    return found


@lru_cache(maxsize=1)
def fast_outcomes() -> dict[str, tuple[str, Any]]:
    """Each input's fast JSON report and its triples about resources (None: refused by a Violation)."""
    guideline = Guideline.load()
    engine = FastEngine(guideline)
    out = {}
    for name, text in INPUTS.items():
        reasoned = engine.reason(parse_patient(guideline, text, "json", name, reference.reasoning_time()))
        triples = reference.about_resources(reasoned.graph) if reasoned.graph is not None else None
        out[name] = (build_report(guideline, reasoned).to_json(), triples)
    return out


@lru_cache(maxsize=1)
def closed_by_reference() -> frozenset:
    return frozenset(reference.closed_guideline_by_reference(Guideline.load()))


def test_every_example_and_every_cohort_branch_is_compared() -> None:
    assert {n.removeprefix("cohort/") for n in INPUTS if n.startswith("cohort/")} == set(BY_NAME)
    assert {n.removeprefix("example/") for n in INPUTS if n.startswith("example/")} == {
        p.stem for p in (ROOT / "examples").glob("*.json")}
    assert all(branch_of(json.loads(INPUTS[f"cohort/{b}"])) == b for b in BY_NAME)


@pytest.mark.parametrize("name", sorted(INPUTS))
def test_fast_engine_report_is_byte_identical_to_the_reference(name: str) -> None:
    assert fast_outcomes()[name][0] == stored(name).report


@pytest.mark.parametrize("name", sorted(INPUTS))
def test_fast_engine_derives_the_triples_the_reference_derives(name: str) -> None:
    fast = fast_outcomes()[name][1]
    derived = stored(name).derived
    assert (fast is None) == (derived is None)
    if fast is not None and derived is not None:
        expected = closed_by_reference() | reference.parse_turtle(derived)
        assert fast - expected == set()
        assert expected - fast == set()


def test_a_stored_reference_report_is_the_one_the_reference_computes_now() -> None:
    """The key is honest for one input at least: the reference, run here, writes the stored bytes."""
    name = "example/palpable-mass-fever"
    guideline = Guideline.load()
    reasoned = ReferenceEngine(guideline).reason(parse_patient(guideline, INPUTS[name], "json", name, reference.reasoning_time()))
    assert build_report(guideline, reasoned).to_json() == stored(name).report


def _tree(tmp_path: Path) -> Path:
    root = tmp_path / "checkout"
    for folder in ("reasoner", "ontology", "shapes", "queries"):
        shutil.copytree(ROOT / folder, root / folder, ignore=shutil.ignore_patterns("__pycache__"))
    return root


def test_the_reference_key_changes_with_the_reference_code_and_the_encoding_only(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    key = reference.reference_key(root)
    modules = {p.relative_to(root).as_posix() for p in reference.reference_modules(root)}
    assert {"reasoner/engine.py", "reasoner/report.py", "reasoner/patient.py", "reasoner/fhir.py",
            "reasoner/validate.py", "reasoner/__init__.py"} <= modules
    assert not any(m.startswith(("reasoner/fast/", "reasoner/plan/")) for m in modules)
    for fast_only in ("reasoner/fast/engine.py", "reasoner/plan/query.py", "reasoner/plan/bgp.py"):  # the fast engine's code: same key
        with (root / fast_only).open("a", encoding="utf-8") as f:
            f.write("\n# changed\n")
        assert reference.reference_key(root) == key, fast_only
    for other in ("queries/diagram/stages.rq", "queries/html/not-documented.rq"):  # queries the reference never reads
        with (root / other).open("a", encoding="utf-8") as f:
            f.write("\n# changed\n")
        assert reference.reference_key(root) == key, other
    for part in ("reasoner/report.py", "ontology/concepts.ttl", "shapes/patient.ttl", "queries/report/findings.rq",
                 "queries/rules/red-flags.rq", "queries/engine/measurements.rq"):
        path = root / part
        before = path.read_bytes()
        path.write_bytes(before + b"\n# changed\n")
        assert reference.reference_key(root) != key, part
        path.write_bytes(before)
    assert reference.reference_key(root) == key


def test_the_closed_guideline_is_cached_by_fingerprint_and_rebuilt_when_missing(tmp_path: Path,
                                                                                 monkeypatch: pytest.MonkeyPatch,
                                                                                 loaded_guideline: Guideline) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    first = closed_guideline(loaded_guideline)
    cached = list((tmp_path / "guideline-kg").glob(f"inputs-*-{loaded_guideline.fingerprint}.pickle"))
    assert len(cached) == 1
    assert set(closed_guideline(loaded_guideline)) == set(first)


def test_an_unwritable_cache_still_gives_the_closed_guideline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              loaded_guideline: Guideline) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x", encoding="utf-8")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    triples = closed_guideline(loaded_guideline)
    assert set(loaded_guideline.graph) <= set(triples)


def test_the_guideline_uses_only_owl_constructs_the_fast_closure_compiles(loaded_guideline: Guideline) -> None:
    assert TBox.of(closed_guideline(loaded_guideline)).unsupported == []


def test_a_tbox_with_a_functional_property_is_reported_unsupported() -> None:
    from rdflib import OWL, RDF, URIRef

    p = URIRef("https://example.org/p")
    assert TBox.of([(p, RDF.type, OWL.FunctionalProperty)]).unsupported
    assert TBox.of([(p, RDF.type, OWL.ObjectProperty), (Literal(1), RDF.type, p)]).unsupported == []


# ---- skipping a rule whose inputs did not change ----


def _closures(engine: FastEngine, guideline: Guideline, texts: list[str]) -> list[frozenset]:
    out = []
    for i, text in enumerate(texts):
        patient = parse_patient(guideline, text, "json", f"patient {i}")
        own = engine.own(patient)
        if any(r.severity == "Violation" for r in engine.validate_asserted(patient, own)):
            continue
        triples, side = engine.load(patient, own)
        out.append(frozenset(engine.infer(triples, side)))
    return out


def test_skipping_unchanged_rules_gives_the_closure_of_evaluating_every_rule_every_pass(
        loaded_guideline: Guideline) -> None:
    """Every branch of the cohort: the read keys (guards included) never skip a rule that would conclude more."""
    from benchmarks.cohort import BRANCHES as ALL_BRANCHES

    texts, seen = [], set()
    for bundle in generate(4000, seed=11):
        if branch_of(bundle) not in seen:
            seen.add(branch_of(bundle))
            texts.append(json.dumps(bundle))
    assert {b.name for b in ALL_BRANCHES} <= seen
    skipping = FastEngine(loaded_guideline)
    assert any(skipping.rule_guards.values())  # the guideline's rules do read guarded patterns
    everything = FastEngine(loaded_guideline)
    everything.reads = {name: None for name in everything.reads}  # None: evaluated on every pass
    assert _closures(skipping, loaded_guideline, texts) == _closures(everything, loaded_guideline, texts)


def test_a_pattern_read_beside_other_edges_is_guarded_by_them() -> None:
    from rdflib.plugins.sparql import prepareQuery

    from reasoner.fast.dependencies import ANY_TYPE, GUARDED, read_keys

    def reads(where: str) -> frozenset:
        query = prepareQuery("PREFIX ex: <http://example.org/> CONSTRUCT { ?s ex:out ?c } WHERE { " + where + " }")
        keys = read_keys(query.algebra)
        assert keys is not None
        return keys

    def guards(keys: frozenset, predicate: str) -> list:
        """(subject guard, object guard) of the guarded keys of a predicate, as sets of sets of (IRI, position)."""
        def plain(guard):
            return None if guard is None else {frozenset((str(p), pos) for p, pos in alt) for alt in guard}
        return [(plain(k[2]), plain(k[3])) for k in keys if k[0] == GUARDED and str(k[1]) == predicate]

    ex, rdf_type = "http://example.org/", "http://www.w3.org/1999/02/22-rdf-syntax-ns#type"
    has, shows, concept = {frozenset({(ex + "has", "o")})}, {frozenset({(ex + "shows", "o")})}, \
        {frozenset({(ex + "concept", "s")})}
    keys = reads("?p ex:has ?s . ?s a ?c ; ex:concept ?k")
    assert guards(keys, rdf_type) == [({frozenset({(ex + "has", "o"), (ex + "concept", "s")})}, None)]
    assert guards(keys, ex + "concept") == [(has, None)]
    assert guards(keys, ex + "has") == [(None, {frozenset({(ex + "concept", "s")})})]
    # through a join with a union: every branch must guard, one alternative each
    assert guards(reads("{ ?p ex:has ?s } UNION { ?r ex:shows ?s } ?s a ?c"), rdf_type) == [(has | shows, None)]
    # a branch that does not bind ?s, an OPTIONAL, NOT EXISTS or MINUS guards nothing outside itself
    assert ANY_TYPE in reads("{ ?p ex:has ?s } UNION { ?p ex:other ?q } ?s a ?c")
    assert ANY_TYPE in reads("?p ex:has ?x OPTIONAL { ?s a ?c } ?p ex:has ?s")
    assert ANY_TYPE in reads("?p ex:has ?s FILTER NOT EXISTS { ?s a ?c }")
    assert ANY_TYPE in reads("?p ex:has ?s MINUS { ?s a ?c }")
    assert ex + "concept" in {str(k) for k in reads("?p ex:has ?s FILTER NOT EXISTS { ?s ex:concept ?c }")}
    assert guards(reads("?p ex:has ?s FILTER NOT EXISTS { ?s ex:concept ?c . ?c ex:key ?k }"), ex + "concept") == [
        (None, {frozenset({(ex + "key", "s")})})]
    assert read_keys(prepareQuery("CONSTRUCT { ?s ?p ?o } WHERE { ?s ?p ?o }").algebra) is None


def test_the_closure_of_patient_triples_is_owlrls_with_and_without_the_flattened_property_rules() -> None:
    """A property chain (p < q < r, domain and range up it), an inverse and a transitive property: owlrl's answer."""
    from rdflib import OWL, RDF, RDFS, XSD, Graph, Namespace

    from reasoner.engine import closure
    from reasoner.fast.closure import DATATYPE, SAME_AS, TYPE, DeltaClosure

    ex = Namespace("http://example.org/")
    tbox = Graph()
    for t in [(ex.p, RDFS.subPropertyOf, ex.q), (ex.q, RDFS.subPropertyOf, ex.r), (ex.r, RDFS.domain, ex.C),
              (ex.C, RDFS.subClassOf, ex.D), (ex.q, RDFS.range, XSD.decimal), (ex.i, OWL.inverseOf, ex.j),
              (ex.i, RDFS.subPropertyOf, ex.k), (ex.k, RDFS.domain, ex.D), (ex.t, RDF.type, OWL.TransitiveProperty),
              (ex.t, RDFS.subPropertyOf, ex.r)]:
        tbox.add(t)
    closure(tbox)
    terms = {x: x for x in (TYPE, SAME_AS, DATATYPE)}  # the engine's rdf:type object, as FastEngine interns it

    def intern(t: tuple) -> tuple:
        return tuple(terms.setdefault(x, x) for x in t)

    closed = [intern(t) for t in tbox]
    patient = [intern(t) for t in [(ex.a, ex.p, Literal("1.5", datatype=XSD.decimal)), (ex.a, ex.i, ex.b),
                                   (ex.b, ex.t, ex.c), (ex.c, ex.t, ex.d), (ex.d, ex.p, Literal(2))]]
    full = Graph()
    for t in closed + patient:
        full.add(t)
    closure(full)
    expected = set(full) - set(closed)
    assert (ex.a, RDF.type, ex.D) in expected and (ex.b, ex.t, ex.d) in expected

    for flattened in (True, False):
        delta = DeltaClosure(frozenset(closed), TBox.of(closed))
        assert {ex.p, ex.q, ex.r} <= set(delta.flat) and not {ex.i, ex.t} & set(delta.flat)
        if not flattened:
            delta.flat = {}
        delta.eq_ref_now = False
        triples = set(patient)
        delta.extend(triples, set(triples), delta.start())
        triples.update(delta.eq_ref(triples))
        assert triples == expected, flattened
