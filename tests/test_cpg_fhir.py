"""The guideline as CPG-on-FHIR knowledge artifacts (export --format fhir) and a result as $apply output (recommend --format fhir).

Both are parsed with fhir.resources' R4B models (structure and value sets of FHIR's own codes);
their content is compared with the graph and the JSON report.
"""

from __future__ import annotations

import base64
import json
import shutil
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest
from rdflib import Literal, Namespace

from conftest import EXAMPLES, guideline, report_for
from reasoner.cli import main
from reasoner.export_fhir import Artifacts
from reasoner.guideline import Guideline

ROOT = Path(__file__).resolve().parents[1]
GKG = Namespace("https://w3id.org/guideline-kg/vocab#")
BASE = "https://w3id.org/guideline-kg/mid-lumbar-mass/fhir"
PRIORITY = {"emergent": "stat", "immediate": "asap", "routine": "routine"}  # the CPG IG's mapping, as the issue states it
REQUEST_PRIORITY = {"routine", "urgent", "asap", "stat"}  # FHIR's request-priority codes (the models check no code values)


@lru_cache(maxsize=1)
def bundle_json() -> dict[str, Any]:
    return Artifacts(guideline()).bundle()


def resources(kind: str) -> dict[str, dict[str, Any]]:
    return {e["resource"]["id"]: e["resource"] for e in bundle_json()["entry"] if e["resource"]["resourceType"] == kind}


def recommendations() -> list[dict[str, Any]]:
    rows = guideline().graph.query("""
        PREFIX gkg: <https://w3id.org/guideline-kg/vocab#>
        PREFIX skos: <http://www.w3.org/2004/02/skos/core#>
        SELECT ?id ?key ?direction ?urgency WHERE {
          ?r a gkg:Recommendation ; gkg:recommendationId ?id ; gkg:action/gkg:key ?key ; gkg:direction/skos:notation ?direction .
          OPTIONAL { ?r gkg:urgency/skos:notation ?urgency }
        }""")
    return [{"id": str(r.id), "key": str(r.key), "direction": str(r.direction),
             "urgency": str(r.urgency) if r.urgency is not None else None} for r in rows]


######## export --format fhir ########

def test_export_fhir_writes_a_bundle_the_r4b_models_accept(tmp_path: Path) -> None:
    from fhir.resources.R4B.bundle import Bundle

    out = tmp_path / "guideline.json"
    assert main(["export", "--format", "fhir", "--out", str(out)]) == 0
    bundle = Bundle.model_validate(json.loads(out.read_text(encoding="utf-8")))
    kinds = [type(e.resource).__name__ for e in bundle.entry]
    assert kinds.count("Library") == 1 and "PlanDefinition" in kinds and "ValueSet" in kinds
    assert all(e.fullUrl == e.resource.url for e in bundle.entry)


def test_one_plan_definition_per_recommendation_carrying_its_rule_and_priority() -> None:
    plans = resources("PlanDefinition")
    recs = recommendations()
    assert set(plans) == {r["id"] for r in recs} and len(plans) >= 20
    rules = {r.name: r.query.text for r in guideline().rules}
    for rec in recs:
        plan = plans[rec["id"]]
        assert plan["meta"]["profile"] == ["http://hl7.org/fhir/uv/cpg/StructureDefinition/cpg-recommendationdefinition"]
        (action,) = plan["action"]
        (condition,) = action["condition"]
        assert condition["kind"] == "applicability"
        expression = condition["expression"]
        assert expression["language"] == "application/sparql-query"
        assert expression["expression"] in rules.values() and "CONSTRUCT" in expression["expression"]
        assert action.get("priority") == (PRIORITY[rec["urgency"]] if rec["urgency"] else None), rec["id"]
        activity = resources("ActivityDefinition")[action["definitionCanonical"].rsplit("/", 1)[1]]
        assert activity["doNotPerform"] is True if rec["direction"] == "against" else "doNotPerform" not in activity
        assert any(c["code"] == rec["key"] for c in activity["code"]["coding"])


def test_plan_definitions_cite_statements_verbatim_and_references_by_number() -> None:
    plan = resources("PlanDefinition")["mri-immediate"]
    statements = {a["label"]: a["citation"] for a in plan["relatedArtifact"] if a["type"] == "justification"}
    references = [a["label"] for a in plan["relatedArtifact"] if a["type"] == "citation"]
    s01 = str(guideline().graph.value(Namespace("https://w3id.org/guideline-kg/mid-lumbar-mass/")["S01"], GKG.text))
    assert statements["S01"] == s01 and s01.startswith("A palpable mid-lumbar mass")
    assert references == ["1", "2", "3", "4", "5"]


def test_activity_definitions_are_service_requests_with_their_loinc_code() -> None:
    activities = resources("ActivityDefinition")
    mri = activities["mri-lumbar-wo-w-contrast"]
    assert mri["kind"] == "ServiceRequest" and mri["intent"] == "proposal"
    assert {"system": "http://loinc.org", "code": "24967-2", "display": "MR Lumbar spine WO and W contrast IV"} in mri["code"]["coding"]
    against = {r["key"] for r in recommendations() if r["direction"] == "against"}
    assert {a for a in activities if a.endswith("-do-not-perform")} == {f"{k}-do-not-perform" for k in against}


def test_the_library_holds_every_rule_file() -> None:
    library = resources("Library")["rules"]
    files = {c["title"]: base64.b64decode(c["data"]).decode("utf-8") for c in library["content"]}
    assert {c["contentType"] for c in library["content"]} == {"application/sparql-query"}
    on_disk = {p.name: p.read_text(encoding="utf-8") for p in (ROOT / "queries" / "rules").glob("*.rq")}
    assert files == on_disk


def test_a_value_set_per_concept_with_its_standard_and_local_codes() -> None:
    value_sets = resources("ValueSet")
    assert set(value_sets) == set(guideline().concepts)
    mass = {(i["system"], c["code"]) for i in value_sets["palpable-lumbar-mass"]["compose"]["include"] for c in i["concept"]}
    assert mass == {("http://snomed.info/sct", "443607001"), ("http://hl7.org/fhir/sid/icd-10-cm", "R22.2"),
                    ("urn:guideline-kg:concept", "palpable-lumbar-mass")}


######## recommend --format fhir ########

def request_group(path: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    code = main(["recommend", str(path), "--format", "fhir"])
    assert code in (0, 1)
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("name", ["cauda-equina.json", "palpable-mass-fever.json", "mri-malignancy-result.json"])
def test_recommend_fhir_is_a_request_group_of_proposals_matching_the_report(
        name: str, capsys: pytest.CaptureFixture[str]) -> None:
    from fhir.resources.R4B.requestgroup import RequestGroup

    data = request_group(EXAMPLES / name, capsys)
    group = RequestGroup.model_validate(data)
    report = report_for(str(EXAMPLES / name))
    assert group.intent == "proposal" and len(group.action) == len(group.contained) == len(report["recommendations"])
    plans = set(resources("PlanDefinition"))
    by_id = {r["id"]: r for r in data["contained"]}
    for rec, action in zip(report["recommendations"], data["action"]):
        request = by_id[action["resource"]["reference"].lstrip("#")]
        assert request["resourceType"] == "ServiceRequest" and request["intent"] == "proposal"
        assert request.get("priority") == (PRIORITY[rec["urgency"]] if rec.get("urgency") else None)
        assert request.get("priority", "routine") in REQUEST_PRIORITY and request["status"] == "draft"
        assert request.get("doNotPerform", False) is (rec["direction"] == "against")
        linked = [u.rsplit("/", 1)[1] for u in request["instantiatesCanonical"] if "/PlanDefinition/" in u]
        assert linked == rec["guideline_recommendations"] and set(linked) <= plans
        assert {a["label"] for a in action["documentation"] if a["type"] == "justification"} == set(rec["statements"])
        assert [a["label"] for a in action["documentation"] if a["type"] == "citation"] == rec["citations"]
        assert {c["coding"][-1]["code"] for c in request.get("reasonCode", [])} == set(rec["because"])
    assert any(r.get("doNotPerform") for r in data["contained"]) == any(
        r["direction"] == "against" for r in report["recommendations"])


def test_recommend_fhir_for_a_patient_outside_the_guideline_proposes_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    from fhir.resources.R4B.requestgroup import RequestGroup

    data = request_group(EXAMPLES / "not-applicable.json", capsys)
    group = RequestGroup.model_validate(data)
    assert not group.action and not group.contained
    assert "entry criterion" in data["note"][0]["text"]


def test_the_r4b_model_rejects_a_proposal_without_its_subject(capsys: pytest.CaptureFixture[str]) -> None:
    from fhir.resources.R4B.requestgroup import RequestGroup

    data = request_group(EXAMPLES / "cauda-equina.json", capsys)
    del data["contained"][0]["subject"]
    with pytest.raises(Exception, match="subject"):
        RequestGroup.model_validate(data)


def test_the_urgency_to_priority_mapping_is_read_from_the_graph(tmp_path: Path) -> None:
    folder = tmp_path / "ontology"
    shutil.copytree(ROOT / "ontology", folder)
    vocabulary = folder / "vocabulary.ttl"
    text = vocabulary.read_text(encoding="utf-8")
    assert 'gkg:immediate gkg:requestPriority "asap" .' in text
    vocabulary.write_text(text.replace('gkg:immediate gkg:requestPriority "asap" .',
                                       'gkg:immediate gkg:requestPriority "urgent" .'), encoding="utf-8")
    changed = Artifacts(Guideline.load(ontology=folder))
    report = report_for(str(EXAMPLES / "palpable-mass-fever.json"))
    group = changed.request_group(report)
    immediate = [r for r in report["recommendations"] if r.get("urgency") == "immediate"]
    assert immediate
    priorities = {r["priority"] for r in group["contained"] if "priority" in r}
    assert "urgent" in priorities and "asap" not in priorities
    assert changed.guideline.graph.value(GKG.immediate, GKG.requestPriority) == Literal("urgent")


def test_a_batch_writes_one_request_group_per_patient(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from fhir.resources.R4B.requestgroup import RequestGroup

    patients = tmp_path / "patients"
    patients.mkdir()
    for name in ("cauda-equina.json", "not-applicable.json"):
        shutil.copy(EXAMPLES / name, patients / name)
    assert main(["recommend", str(patients), "--out", str(tmp_path / "out"), "--format", "fhir"]) == 0
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == ["cauda-equina.fhir.json", "not-applicable.fhir.json"]
    groups = {p.name: RequestGroup.model_validate_json(p.read_text(encoding="utf-8")) for p in (tmp_path / "out").iterdir()}
    assert groups["cauda-equina.fhir.json"].action and not groups["not-applicable.fhir.json"].action
