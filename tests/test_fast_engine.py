"""The fast engine against the reference engine, the definition of correct: byte-identical JSON reports.

Inputs: the example bundles and one generated patient from each of a set of cohort branches
chosen to reach every stage (vital sign thresholds, documented absence, contradictions,
a Violation, MRI contraindicated, follow-up on CT, an unmatched conclusion, a mass without
a lumbar site). The 1,000-patient agreement runs in the benchmark (benchmarks/bench.py).
The reference costs seconds per patient, so both engines run once per input, on two processes.
"""

from __future__ import annotations

import json
import multiprocessing
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest
from rdflib import Literal

from benchmarks.cohort import branch_of, generate
from reasoner.engine import ReferenceEngine
from reasoner.fast import FastEngine, TBox, closed_guideline
from reasoner.guideline import Guideline
from reasoner.patient import parse_patient
from reasoner.report import build_report
from conftest import EXAMPLES

BRANCHES = ("fever-vitals", "vitals-at-threshold", "documented-absences", "contradiction", "vital-out-of-range",
            "mri-contraindicated-deficit", "imaging-ct-contraindicated-negative", "imaging-unknown-conclusion",
            "mass-no-site",
            # and one of each family the compiled plans evaluate differently (OPTIONAL, NOT EXISTS, UNION joins)
            "fever-vitals-undated", "tachycardia-vitals-earlier-only", "multiple-red-flags", "history-of-cancer",
            "cauda-equina-features", "progressive-deficit", "imaging-metastasis", "imaging-paraspinal-abscess",
            "imaging-xr-negative-then-mri-metastasis", "imaging-preliminary")


def cohort_inputs() -> dict[str, str]:
    """One generated Bundle per branch of BRANCHES (the first of seed 7 drawn from it)."""
    found: dict[str, str] = {}
    for bundle in generate(3000, seed=7):
        branch = branch_of(bundle)
        if branch in BRANCHES and branch not in found:
            found[branch] = json.dumps(bundle)
        if len(found) == len(BRANCHES):
            break
    return found


def inputs() -> dict[str, str]:
    named = {f"example/{p.stem}": p.read_text(encoding="utf-8") for p in sorted(EXAMPLES.glob("*.json"))}
    named.update({f"cohort/{k}": v for k, v in cohort_inputs().items()})
    return named


_STATE: dict[str, Any] = {}


def _init() -> None:
    guideline = Guideline.load()
    _STATE.update(guideline=guideline, fast=FastEngine(guideline), reference=ReferenceEngine(guideline))


def _both(item: tuple[str, str]) -> tuple[str, str, str, Any, Any]:
    name, text = item
    guideline = _STATE["guideline"]
    patient = parse_patient(guideline, text, "json", name)
    fast = _STATE["fast"].reason(patient)
    reference = _STATE["reference"].reason(patient)
    fast_triples = frozenset(fast.graph) if fast.graph is not None else None
    reference_triples = frozenset(reference.graph) if reference.graph is not None else None
    return (name, build_report(guideline, fast).to_json(), build_report(guideline, reference).to_json(),
            fast_triples, reference_triples)


@lru_cache(maxsize=1)
def outcomes() -> dict[str, tuple[str, str, Any, Any]]:
    with multiprocessing.get_context("fork").Pool(2, initializer=_init) as pool:
        return {name: rest for name, *rest in pool.map(_both, sorted(inputs().items()), chunksize=1)}


def test_every_chosen_branch_is_in_the_generated_cohort() -> None:
    assert sorted(cohort_inputs()) == sorted(BRANCHES)


@pytest.mark.parametrize("name", sorted(inputs()))
def test_fast_engine_report_is_byte_identical_to_the_reference(name: str) -> None:
    fast, reference, _, _ = outcomes()[name]
    assert fast == reference


def about_resources(triples: frozenset | None) -> set | None:
    """The triples whose subject is an IRI or a blank node.

    owlrl also types literals as subjects (``"R59.9" a rdfs:Datatype``), more of them with each
    further closure of the same graph; no query reads them and pyoxigraph cannot hold them.
    """
    return None if triples is None else {t for t in triples if not isinstance(t[0], Literal)}


@pytest.mark.parametrize("name", sorted(inputs()))
def test_fast_engine_derives_the_triples_the_reference_derives(name: str) -> None:
    _, _, fast_triples, reference_triples = outcomes()[name]
    fast, reference = about_resources(fast_triples), about_resources(reference_triples)
    assert (fast is None) == (reference is None)
    if fast is not None and reference is not None:
        assert fast - reference == set()
        assert reference - fast == set()


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
