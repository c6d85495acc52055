"""The recommend and explain commands as a user runs them: exit codes, formats, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from rdflib import Graph, Namespace
from rdflib.namespace import PROV, RDF

from conftest import EXAMPLES, ROOT, report_schema
from reasoner.cli import main

GKG = Namespace("https://w3id.org/guideline-kg/vocab#")
FEVER = EXAMPLES / "palpable-mass-fever.json"


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def fever_json() -> dict:
    completed = subprocess.run([sys.executable, "-m", "reasoner", "recommend", str(FEVER)],
                               capture_output=True, text=True, cwd=ROOT, check=False)
    assert completed.returncode == 0, completed.stderr
    assert completed.stderr == ""
    return json.loads(completed.stdout)


def test_palpable_mass_orders_mri_with_and_without_contrast_immediately(fever_json: dict) -> None:
    jsonschema.validate(fever_json, report_schema())
    mri = [r for r in fever_json["recommendations"]
           if r["action"]["key"] == "mri-lumbar-wo-w-contrast" and r["direction"] == "for"]
    assert len(mri) == 1
    assert mri[0]["urgency"] == "immediate"
    assert {"S01", "S09", "S10"} <= set(mri[0]["statements"])
    assert "palpable-lumbar-mass" in mri[0]["because"]


def test_fever_from_temperature_is_a_derived_red_flag_suggesting_infection(fever_json: dict) -> None:
    fever = next(f for f in fever_json["findings"] if f["key"] == "fever")
    assert fever["status"] == "present" and fever["origin"] == "derived" and fever["derived_from"]
    flag = next(f for f in fever_json["red_flags"] if f["key"] == "fever")
    assert flag["statements"] == ["S05"] and "infection" in flag["suggests"]


def test_recommendations_against_appear_with_their_reasons(fever_json: dict) -> None:
    against = {r["action"]["key"]: r for r in fever_json["recommendations"] if r["direction"] == "against"}
    assert {"bone-scan-spect", "mri-lumbar-wo-contrast", "physical-therapy", "conservative-management"} <= set(against)
    assert against["bone-scan-spect"]["statements"] == ["S22"]
    assert against["physical-therapy"]["condition"]


def test_one_entry_per_action_and_direction(fever_json: dict) -> None:
    pairs = [(r["action"]["key"], r["direction"]) for r in fever_json["recommendations"]]
    assert len(pairs) == len(set(pairs))


def test_every_example_report_validates_against_the_schema(capsys) -> None:
    for example in sorted(EXAMPLES.glob("*.json")):
        code, out, err = run(capsys, "recommend", str(example))
        assert code == 0, (example.name, err)
        jsonschema.validate(json.loads(out), report_schema())


def test_not_applicable_patient_gets_no_recommendations_and_a_reason(capsys) -> None:
    code, out, _ = run(capsys, "recommend", str(EXAMPLES / "not-applicable.json"))
    report = json.loads(out)
    assert code == 0 and report["applicable"] is False
    assert report["recommendations"] == [] and report["not_applicable_reason"]
    assert report["red_flags"], "red flags are still listed"
    assert any(v["shape"].endswith("MassWithoutLumbarSite-site") for v in report["violations"])
    code, text, _ = run(capsys, "recommend", str(EXAMPLES / "not-applicable.json"), "--format", "text")
    assert "DOES NOT APPLY" in text


def test_text_format_names_urgency_and_statements(capsys) -> None:
    code, text, _ = run(capsys, "recommend", str(EXAMPLES / "cauda-equina.json"), "--format", "text")
    assert code == 0
    assert "EMERGENT: MRI lumbar spine without and with IV contrast" in text
    assert "EMERGENT: Surgical consultation" in text and "S34" in text
    assert "DO NOT" in text


@pytest.mark.parametrize("fmt,parser", [("turtle", "turtle"), ("jsonld", "json-ld")])
def test_rdf_report_carries_prov(capsys, fmt: str, parser: str) -> None:
    code, out, _ = run(capsys, "recommend", str(FEVER), "--format", fmt)
    assert code == 0
    graph = Graph().parse(data=out, format=parser)
    activities = set(graph.subjects(RDF.type, PROV.Activity))
    assert len(activities) == 1
    activity = activities.pop()
    assert (activity, PROV.used, None) in graph and (activity, PROV.endedAtTime, None) in graph
    applied = set(graph.subjects(RDF.type, GKG.AppliedRecommendation))
    assert applied
    for node in applied:
        assert (node, PROV.wasGeneratedBy, activity) in graph
        derived = set(graph.objects(node, PROV.wasDerivedFrom))
        assert any("/mid-lumbar-mass/rec-" in str(d) for d in derived), "derived from its guideline recommendation"
        assert any("/fact/" in str(d) for d in derived), "derived from the patient's facts"


def test_nonconforming_patient_exits_1_with_violations_and_nothing_derived(capsys, tmp_path: Path) -> None:
    bundle = json.loads(FEVER.read_text())
    for entry in bundle["entry"]:
        r = entry["resource"]
        if r["resourceType"] == "Observation" and r.get("valueQuantity", {}).get("code") == "Cel":
            r["valueQuantity"]["value"] = 47
    path = tmp_path / "hot.json"
    path.write_text(json.dumps(bundle))
    code, out, err = run(capsys, "recommend", str(path))
    report = json.loads(out)
    assert code == 1 and err == ""
    assert report["conforms"] is False and report["applicable"] is None
    assert report["recommendations"] == [] and report["differential"] == []
    assert any(v["severity"] == "Violation" and v["shape"].endswith("VitalSign-plausible") for v in report["violations"])
    jsonschema.validate(report, report_schema())


@pytest.mark.parametrize("content,needle", [
    ("not json at all", "not JSON"),
    ('{"resourceType": "Patient"}', "Bundle"),
    ('{"resourceType": "Bundle", "type": "collection", "entry": []}', "exactly one Patient"),
    ('{"resourceType": "Bundle", "type": "collection", "entry": [{"resource": {"resourceType": "Patient", "id": "a"}},'
     ' {"resource": {"resourceType": "Observation", "id": "o1", "status": "final", "subject": {"reference": "Patient/a"},'
     ' "code": {"coding": [{"system": "http://loinc.org", "code": "8310-5"}]}, "valueQuantity": {"value": "hot", "code": "Cel"}}}]}',
     "Observation/o1: valueQuantity.value"),
    ('{"resourceType": "Bundle", "type": "collection", "entry": [{"resource": {"resourceType": "Patient", "id": "a"}},'
     ' {"resource": {"resourceType": "Observation", "id": "o1", "status": "final", "subject": {"reference": "Patient/a"},'
     ' "code": {"coding": [{"system": "http://loinc.org", "code": "8310-5"}]}, "valueQuantity": {"value": 300, "code": "K"}}}]}',
     "cannot be converted"),
    ('{"resourceType": "Bundle", "type": "collection", "entry": [{"resource": {"resourceType": "Patient", "id": "a"}},'
     ' {"resource": {"resourceType": "Condition", "id": "c1", "subject": {"reference": "Patient/zz"},'
     ' "code": {"coding": [{"system": "http://snomed.info/sct", "code": "386661006"}]}}}]}', "Condition/c1: subject.reference"),
    ('{"resourceType": "Bundle", "type": "collection", "entry": [{"resource": {"resourceType": "Patient", "id": "a"}},'
     ' {"resource": {"resourceType": "Condition", "id": "c1", "bodySite": "lumbar",'
     ' "code": {"coding": [{"system": "http://snomed.info/sct", "code": "443607001"}]}}}]}', "Condition/c1: bodySite"),
])
def test_refused_input_gets_one_line_naming_the_problem_and_exit_2(capsys, tmp_path: Path, content: str, needle: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    code, out, err = run(capsys, "recommend", str(path))
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and needle in err and "Traceback" not in err


@pytest.mark.parametrize("name,content", [
    ("broken.ttl", "@prefix gkg: <https://w3id.org/guideline-kg/vocab#> . <urn:p> a gkg:Patient"),
    ("nopatient.ttl", "<urn:a> <urn:b> <urn:c> ."),
    ("remote.jsonld", '{"@context": "http://127.0.0.1:9/ctx", "@id": "urn:p"}'),
    ("axiom.ttl", "@prefix gkg: <https://w3id.org/guideline-kg/vocab#> . @prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> ."
                  " <urn:p> a gkg:Patient . <https://w3id.org/guideline-kg/concept/fever> rdfs:subClassOf <urn:x> ."),
])
def test_refused_patient_graphs(capsys, tmp_path: Path, name: str, content: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    code, out, err = run(capsys, "recommend", str(path))
    assert code == 2 and out == "" and err.count("\n") == 1


def test_subprocess_error_has_no_traceback(tmp_path: Path) -> None:
    path = tmp_path / "empty.json"
    path.write_text("")
    completed = subprocess.run([sys.executable, "-m", "reasoner", "recommend", str(path)],
                               capture_output=True, text=True, cwd=ROOT, check=False)
    assert completed.returncode == 2 and completed.stdout == ""
    assert "Traceback" not in completed.stderr and completed.stderr.count("\n") == 1


@pytest.mark.parametrize("key,kind", [("mri-lumbar-wo-w-contrast", "recommendation"), ("fever", "red flag"),
                                      ("discitis", "differential")])
def test_explain_walks_from_conclusion_to_facts_statements_and_citations(capsys, key: str, kind: str) -> None:
    code, out, err = run(capsys, "explain", str(FEVER), key)
    assert code == 0, err
    assert f"{kind} for this patient" in out
    assert "rule " in out and "reference " in out and "from Observation/" in out or "from Condition/" in out
    code, out, _ = run(capsys, "explain", str(FEVER), key, "--format", "json")
    tree = json.loads(out)
    kinds: set[str] = set()

    def walk(node: dict) -> None:
        kinds.add(node["kind"])
        for child in node["children"]:
            walk(child)

    walk(tree)
    assert {"conclusion", "inference", "guideline", "statement", "citation", "fact"} <= kinds


def test_explain_unknown_key_is_refused(capsys) -> None:
    code, out, err = run(capsys, "explain", str(FEVER), "no-such-key")
    assert code == 2 and out == "" and "no-such-key" in err


def test_recommend_without_input_is_refused_with_exit_2(capsys) -> None:
    code, out, err = run(capsys, "recommend")
    assert code == 2 and out == "" and "needs an input file" in err


SAFETY = ROOT / "tests" / "cases" / "against-physical-therapy"


def _explained_criteria(capsys, case: str) -> dict[str, tuple[str, list[str]]]:
    """criterion notation (a, b, c) -> (holds/fails, labels of the evidence under it) in explain's JSON tree."""
    code, out, err = run(capsys, "explain", str(SAFETY / case / "bundle.json"), "physical-therapy", "--format", "json")
    assert code == 0, err
    found: dict[str, tuple[str, list[str]]] = {}

    def walk(node: dict) -> None:
        label = node["label"]
        if label.startswith("(") and label.endswith(("holds", "fails")):
            found[label[1]] = (label.rsplit(": ", 1)[1], [child["label"] for child in node["children"]])
        for child in node["children"]:
            walk(child)

    walk(json.loads(out))
    return found


@pytest.mark.parametrize("case,failing,evidence", [
    ("in-newer-mri-without-coded-conclusion", "a", "shows nothing matched"),
    ("in-negative-mri-newer-radiograph-metastasis", "b", "xr-lumbar shows spinal-metastasis"),
    ("in-negative-mri-confirmed-lumbar-discitis", "c", "discitis present"),
])
def test_explain_says_which_exclusion_criterion_keeps_physical_therapy_advised_against(
        capsys, case: str, failing: str, evidence: str) -> None:
    criteria = _explained_criteria(capsys, case)
    assert set(criteria) == {"a", "b", "c"}
    assert {k for k, (verdict, _) in criteria.items() if verdict == "fails"} == {failing}
    assert any(evidence in label for label in criteria[failing][1])


def test_explain_shows_every_criterion_holding_when_physical_therapy_lapsed(capsys) -> None:
    criteria = _explained_criteria(capsys, "out-newer-negative-mri-supersedes-older-metastasis")
    assert {k: verdict for k, (verdict, _) in criteria.items()} == {"a": "holds", "b": "holds", "c": "holds"}
    code, out, _ = run(capsys, "explain", str(SAFETY / "out-newer-negative-mri-supersedes-older-metastasis" / "bundle.json"),
                       "physical-therapy")
    assert code == 0 and "recommendation lapsed for this patient" in out
    assert "DiagnosticReport/mri-january" in out and "superseded" in out
