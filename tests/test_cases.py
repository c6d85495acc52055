"""One folder per recommendation (and per red flag), with cases where it must fire (in-*) and must not (out-*).

The expected outcome of each case is data (expected.json) and every field of it is asserted.
"""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from rdflib import Namespace

from conftest import CASES, guideline, report_for, report_schema

G = Namespace("https://w3id.org/guideline-kg/mid-lumbar-mass/")
GKG = Namespace("https://w3id.org/guideline-kg/vocab#")
CASE_DIRS = sorted(p.parent for p in CASES.glob("*/*/expected.json"))


def _fired(report: dict) -> set[str]:
    return {rec_id for rec in report["recommendations"] for rec_id in rec["guideline_recommendations"]}


@pytest.mark.parametrize("case", CASE_DIRS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_case_outcome_matches_expected(case: Path) -> None:
    expected = json.loads((case / "expected.json").read_text(encoding="utf-8"))
    report = report_for(str(case / "bundle.json"))
    jsonschema.validate(report, report_schema())
    code = 0 if report["conforms"] else 1
    assert code == expected.get("exit_code", 0), expected["description"]
    if "applicable" in expected:
        assert report["applicable"] is expected["applicable"], expected["description"]
    fired = _fired(report)
    for rec_id in expected.get("fires", []):
        assert rec_id in fired, f"{rec_id} must fire: {expected['description']}"
    for rec_id in expected.get("does_not_fire", []):
        assert rec_id not in fired, f"{rec_id} must not fire: {expected['description']}"
    entries = {(r["action"]["key"], r["direction"]): r for r in report["recommendations"]}
    for want in expected.get("recommendations_include", []):
        entry = entries.get((want["action"], want["direction"]))
        assert entry is not None, f"{want} missing: {expected['description']}"
        if "urgency" in want:
            assert entry.get("urgency") == want["urgency"], expected["description"]
    for unwanted in expected.get("recommendations_exclude", []):
        assert (unwanted["action"], unwanted["direction"]) not in entries, expected["description"]
    flags = {f["key"] for f in report["red_flags"]}
    assert set(expected.get("red_flags_include", [])) <= flags, expected["description"]
    assert not set(expected.get("red_flags_exclude", [])) & flags, expected["description"]
    findings = {(f["key"], f["status"]) for f in report["findings"]}
    for want in expected.get("findings_include", []):
        assert (want["key"], want["status"]) in findings, f"{want}: {expected['description']}"
    assert set(expected.get("context_include", [])) <= set(report.get("context", [])), expected["description"]
    assert set(expected.get("differential_include", [])) <= {d["key"] for d in report["differential"]}
    warnings = [v for v in report["violations"] if v["severity"] == "Warning"]
    for want in expected.get("warnings_include", []):
        assert any(v["shape"].endswith("/" + want["shape"]) and want["names"] in v["message"] for v in warnings), \
            f"a Warning of {want['shape']} naming {want['names']}: {expected['description']}"
    for unwanted in expected.get("warnings_exclude", []):
        assert not any(v["shape"].endswith("/" + unwanted["shape"]) for v in warnings), \
            f"no Warning of {unwanted['shape']}: {expected['description']}"


def _recommendation_ids() -> list[str]:
    g = guideline().graph
    return sorted(str(i) for i in g.objects(None, GKG.recommendationId))


@pytest.mark.parametrize("rec_id", _recommendation_ids())
def test_every_recommendation_has_cases_where_it_fires_and_where_it_does_not(rec_id: str) -> None:
    folder = CASES / rec_id
    ins = [p for p in folder.glob("in-*") if (p / "expected.json").exists()]
    outs = [p for p in folder.glob("out-*") if (p / "expected.json").exists()]
    assert ins and outs, f"tests/cases/{rec_id} needs in-* and out-* cases"
    for case in ins:
        assert rec_id in json.loads((case / "expected.json").read_text())["fires"]
    for case in outs:
        assert rec_id in json.loads((case / "expected.json").read_text())["does_not_fire"]
