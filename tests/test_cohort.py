"""The benchmark cohort draws its red flags, cauda equina features, examined deficits and contexts from the
graph (queries/benchmark/), so a red flag added to the Turtle enters the cohort with no change in Python."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

from benchmarks import cohort
from conftest import ROOT, shared_path

NEW_SIGN = """
c:test-new-sign a owl:Class ; rdfs:subClassOf gkg:Finding, c:red-flag-finding ;
    rdfs:label "Test-only sign"@en ; skos:prefLabel "Test-only sign"@en ; gkg:key "test-new-sign" ;
    skos:inScheme g:concept-scheme ; gkg:namedIn g:S05 ; gkg:withoutStandardCode gkg:noVerifiedCode .
g:red-flag-test-new-sign a gkg:RedFlag ; rdfs:label "Test-only sign"@en ; gkg:flagConcept c:test-new-sign ;
    gkg:suggests c:infection ; gkg:fromStatement g:S05 ; cito:citesAsAuthority g:reference-1 .
"""


def _concepts() -> dict[str, dict[str, str]]:
    with shared_path("terminology", "concepts.tsv").open(encoding="utf-8") as f:
        return {row["key"]: row for row in csv.DictReader(f, delimiter="\t")}


def _ancestors(key: str, concepts: dict[str, dict[str, str]]) -> set[str]:
    found, stack = set(), [key]
    while stack:
        for parent in filter(None, concepts[stack.pop()]["parent"].split(";")):
            if parent not in found:
                found.add(parent)
                stack.append(parent)
    return found


def test_the_red_flags_of_the_cohort_are_every_coded_red_flag_finding_of_the_terminology_and_the_risk_factor() -> None:
    concepts = _concepts()
    parents = {p for row in concepts.values() for p in row["parent"].split(";") if p}
    below_red_flags = {k for k in concepts if "red-flag-finding" in _ancestors(k, concepts)}
    leaves = {k for k in below_red_flags if k not in parents} - {"palpable-lumbar-mass"}  # the mass: entry criterion
    drawn = set(cohort.RED_FLAG_KEYS)
    assert len(cohort.RED_FLAG_KEYS) == len(drawn)
    assert leaves <= drawn
    risk_factors = {k for k, row in concepts.items() if row["statements"] == "S27"}  # history of cancer
    assert drawn - below_red_flags == risk_factors
    assert not drawn & {"palpable-lumbar-mass", "red-flag-finding", "back-pain"}
    # in the order of the first statement naming each
    first = [min(int(s[1:]) for s in concepts[k]["statements"].split(";")) for k in cohort.RED_FLAG_KEYS]
    assert first == sorted(first)


def test_cauda_equina_features_and_examined_deficits_are_the_terminologys() -> None:
    concepts = _concepts()
    assert set(cohort.CAUDA_EQUINA_FEATURES) == {k for k, r in concepts.items()
                                                 if "cauda-equina-feature" in r["parent"].split(";")}
    assert set(cohort.NEURO_DEFICITS) == {k for k, r in concepts.items() if r["parent"] == "neurologic-deficit"}
    assert set(cohort.CONTEXT_KEYS) == {k for k, r in concepts.items() if r["kind"] == "context"}
    assert cohort.HISTORY_KEYS and cohort.HISTORY_KEYS < set(cohort.RED_FLAG_KEYS)


def test_a_red_flag_added_to_the_turtle_enters_the_cohort_without_a_python_change(tmp_path: Path) -> None:
    folder = tmp_path / "ontology"
    shutil.copytree(ROOT / "ontology", folder)
    with (folder / "assessment.ttl").open("a", encoding="utf-8") as f:
        f.write(NEW_SIGN)
    shipped, changed = cohort.TERMINOLOGY, cohort.read_terminology(folder)
    assert "test-new-sign" not in shipped.red_flags
    fever = changed.red_flags.index("tachycardia")
    assert changed.red_flags[fever + 1] == "test-new-sign"  # named in S05, after tachycardia by key
    assert [k for k in changed.red_flags if k != "test-new-sign"] == list(shipped.red_flags)
    assert "test-new-sign" not in changed.examined  # neither an examination item nor a deficit: asked about


def test_the_cohort_stays_the_same_for_the_same_seed_and_codes_every_red_flag_of_the_graph() -> None:
    first = [json.dumps(b, sort_keys=True) for b in cohort.generate(40, seed=3)]
    assert first == [json.dumps(b, sort_keys=True) for b in cohort.generate(40, seed=3)]
    codes = {(c[0], c[1]): key for key in cohort.RED_FLAG_KEYS
             for c in (*cohort.CODES.get(key, ()), (cohort.LOCAL, key, ""))}
    seen = set()
    for bundle in cohort.generate(400, seed=3):
        for entry in bundle["entry"]:
            code = entry["resource"].get("code", {})
            seen |= {codes[(c["system"], c["code"])] for c in code.get("coding", [])
                     if (c["system"], c["code"]) in codes}
    assert seen == set(cohort.RED_FLAG_KEYS)
