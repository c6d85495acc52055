"""The CDS Hooks service: discovery, the three hooks, feedback and missing prefetch, with
request bodies shaped like the CDS Hooks 2.0 examples and every card checked against the
specification's rules (checked here, independently of the service's own checker)."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
import uuid
from functools import lru_cache
from typing import Any

import pytest

from conftest import EXAMPLES, engine, guideline
from reasoner.cds import PREFETCH, CdsService, make_server

LOINC, SNOMED, LOCAL = "http://loinc.org", "http://snomed.info/sct", "urn:guideline-kg:concept"
MRI_WO_W, MRI_WO, CT_W = (LOINC, "24967-2"), (LOINC, "30679-5"), (LOINC, "24964-9")
BONE_SCAN, ULTRASOUND, PHYSICAL_THERAPY = (LOINC, "39879-2"), (LOCAL, "us-back-soft-tissue"), (SNOMED, "91251008")
TITLE = "Evaluation and Management of Mid-Lumbar Mass with Back Pain"


@lru_cache(maxsize=1)
def service() -> CdsService:
    return CdsService(guideline(), engine())


@lru_cache(maxsize=None)
def prefetch_of(example: str) -> tuple[str, str]:
    """(patientId, prefetch JSON) for an example bundle, split the way a CDS client fills the templates."""
    bundle = json.loads((EXAMPLES / example).read_text(encoding="utf-8"))
    by_type: dict[str, list[dict[str, Any]]] = {}
    for entry in bundle["entry"]:
        by_type.setdefault(entry["resource"]["resourceType"], []).append(entry)
    patient = by_type["Patient"][0]["resource"]

    def searchset(kind: str) -> dict[str, Any] | None:
        entries = [{**e, "search": {"mode": "match"}} for e in by_type.get(kind, [])]
        if not entries:
            return None  # the spec: a template the client had no data for is null
        return {"resourceType": "Bundle", "type": "searchset", "total": len(entries), "entry": entries}

    prefetch: dict[str, Any] = {"patient": patient}
    for key, (_, kind) in PREFETCH.items():
        if kind != "Patient":
            prefetch[key] = searchset(kind)
    return patient["id"], json.dumps(prefetch)


def request(hook: str, example: str = "palpable-mass-fever.json", **context: Any) -> dict[str, Any]:
    patient_id, prefetch = prefetch_of(example)
    return {"hookInstance": str(uuid.uuid4()), "hook": hook, "fhirServer": "https://ehr.example.org/r4",
            "context": {"userId": "Practitioner/example", "patientId": patient_id, "encounterId": "enc-1", **context},
            "prefetch": json.loads(prefetch)}


def draft(rid: str, coding: tuple[str, str], patient_id: str) -> dict[str, Any]:
    return {"resource": {"resourceType": "ServiceRequest", "id": rid, "status": "draft", "intent": "order",
                         "code": {"coding": [{"system": coding[0], "code": coding[1]}]},
                         "subject": {"reference": f"Patient/{patient_id}"}}}


def order_request(hook: str, orders: list[tuple[str, tuple[str, str]]], selected: list[str] | None = None,
                  example: str = "palpable-mass-fever.json") -> dict[str, Any]:
    patient_id, _ = prefetch_of(example)
    context: dict[str, Any] = {"draftOrders": {"resourceType": "Bundle", "type": "collection",
                                               "entry": [draft(rid, coding, patient_id) for rid, coding in orders]}}
    if hook == "order-select":
        context["selections"] = [f"ServiceRequest/{rid}" for rid in (selected or [rid for rid, _ in orders])]
    return request(hook, example, **context)


def post(path: str, body: dict[str, Any] | bytes) -> tuple[int, dict[str, Any]]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    answer = service().handle("POST", path, data)
    json.dumps(answer.body)  # the answer is JSON
    return answer.status, answer.body


def cards_for(hook: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    status, answer = post(f"/cds-services/{hook}", body)
    assert status == 200, answer
    assert set(answer) <= {"cards", "systemActions"} and isinstance(answer["cards"], list)
    for card in answer["cards"]:
        assert_card_follows_spec(card)
    return answer["cards"]


def _no_empty(value: Any, path: str) -> None:
    assert value is not None and value != "" and value != [] and value != {}, f"{path} is null or empty"
    if isinstance(value, dict):
        for key, item in value.items():
            _no_empty(item, f"{path}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _no_empty(item, f"{path}[{i}]")


def assert_card_follows_spec(card: dict[str, Any]) -> None:
    """CDS Hooks 2.0, Card attributes, Suggestion and Action."""
    _no_empty(card, "card")
    assert isinstance(card["summary"], str) and 0 < len(card["summary"]) < 140
    assert card["indicator"] in ("info", "warning", "critical")
    assert card["source"]["label"] == TITLE
    uuid.UUID(card["uuid"])
    assert isinstance(card.get("detail", ""), str)
    if "suggestions" in card:
        assert card["selectionBehavior"] in ("at-most-one", "any")
        if card["selectionBehavior"] == "at-most-one":
            assert sum(bool(s.get("isRecommended")) for s in card["suggestions"]) <= 1
        for suggestion in card["suggestions"]:
            assert suggestion["label"]
            uuid.UUID(suggestion["uuid"])
            for action in suggestion.get("actions", []):
                assert action["type"] in ("create", "update", "delete") and action["description"]
                if action["type"] in ("create", "update"):
                    assert action["resource"]["resourceType"]
                else:
                    assert action["resourceId"].startswith("ServiceRequest/")
    for reason in card.get("overrideReasons", []):
        assert reason["display"] and reason["code"]
    assert set(card) <= {"uuid", "summary", "detail", "indicator", "source", "suggestions", "selectionBehavior",
                         "overrideReasons", "links"}


def created_codes(card: dict[str, Any]) -> set[tuple[str, str]]:
    return {(c["system"], c["code"]) for s in card.get("suggestions", []) for a in s.get("actions", [])
            if a["type"] == "create" for c in a["resource"]["code"]["coding"]}


# ---- discovery ----

def test_discovery_lists_the_three_hooks_with_prefetch_for_patient_conditions_observations_flags_reports():
    answer = service().handle("GET", "/cds-services")
    assert answer.status == 200
    services = {s["id"]: s for s in answer.body["services"]}
    assert set(services) == {"patient-view", "order-select", "order-sign"}
    for sid, entry in services.items():
        assert entry["hook"] == sid and entry["title"] and entry["description"]
        assert entry["prefetch"]["patient"] == "Patient/{{context.patientId}}"
        kinds = {template.split("?")[0] for template in entry["prefetch"].values()}
        assert kinds == {"Patient/{{context.patientId}}", "Condition", "Observation", "Flag", "DiagnosticReport"}
        assert all("patient={{context.patientId}}" in t for k, t in entry["prefetch"].items() if k != "patient")


def test_service_answers_over_http_on_localhost_with_cors_for_the_origin_given():
    with make_server(CdsService(guideline(), engine()), "127.0.0.1", 0, cors="https://sandbox.example.org") as server:
        host, port = server.address
        discovery = urllib.request.Request(f"http://{host}:{port}/cds-services",
                                           headers={"Origin": "https://sandbox.example.org"})
        with urllib.request.urlopen(discovery, timeout=30) as response:
            assert response.status == 200
            assert response.headers["Access-Control-Allow-Origin"] == "https://sandbox.example.org"
            assert response.headers["Content-Type"].startswith("application/json")
            assert {s["id"] for s in json.load(response)["services"]} == {"patient-view", "order-select", "order-sign"}
        body = json.dumps(order_request("order-select", [("sr1", MRI_WO)])).encode()
        req = urllib.request.Request(f"http://{host}:{port}/cds-services/order-select", data=body,
                                     headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(req, timeout=120) as response:
            cards = json.load(response)["cards"]
        assert [c["indicator"] for c in cards] == ["warning"]


# ---- patient-view ----

@pytest.fixture(scope="module")
def patient_view() -> list[dict[str, Any]]:
    return cards_for("patient-view", request("patient-view"))


def test_patient_view_orders_mri_with_and_without_contrast_immediately(patient_view):
    order = [c for c in patient_view if created_codes(c) == {MRI_WO_W}]
    assert len(order) == 1
    card = order[0]
    assert card["indicator"] == "warning" and "immediate" in card["summary"]
    assert "S10" in card["detail"] and "Order MRI lumbar spine without and with IV contrast immediately" in card["detail"]
    assert "Condition/mass" in card["detail"]  # the patient fact with its FHIR source
    create = card["suggestions"][0]["actions"][0]
    assert create["resource"]["subject"]["reference"] == f"Patient/{prefetch_of('palpable-mass-fever.json')[0]}"


def test_patient_view_names_the_red_flags_with_their_statements(patient_view):
    flags = [c for c in patient_view if c["summary"].startswith("Red flags")]
    assert len(flags) == 1
    assert {"Fever", "Tachycardia", "Palpable mid-lumbar mass"} <= set(flags[0]["summary"][len("Red flags: "):].split(", "))
    assert "S05" in flags[0]["detail"] and "Observation/temp-1" in flags[0]["detail"]


def test_a_red_flag_naming_nothing_it_suggests_gets_the_graphs_unnamed_suggestion_and_the_others_their_own():
    flags = [c for c in cards_for("patient-view", request("patient-view", "cauda-equina.json"))
             if c["summary"].startswith("Red flags")]
    unnamed = next(str(key) for key, in guideline().graph.query("""
        PREFIX gkg: <https://w3id.org/guideline-kg/vocab#>
        SELECT ?key WHERE { ?s a gkg:CdsService ; gkg:hook "patient-view" ; gkg:unnamedSuggestion/gkg:key ?key }"""))
    suggested = {line.split("** suggests ")[0].strip("*"): line.split("** suggests ")[1]
                 for line in flags[0]["detail"].splitlines() if "** suggests " in line}
    assert suggested["Bladder dysfunction"] == unnamed  # a cauda equina feature: its flag names nothing suggested
    assert suggested["Palpable mid-lumbar mass"] == "infection, malignancy, other-serious-pathology"


def test_patient_view_lists_what_not_to_order_and_sorts_cards_by_urgency(patient_view):
    avoid = [c for c in patient_view if c["summary"].startswith("Do not order")]
    assert len(avoid) == 1 and "Bone scan with SPECT" in avoid[0]["detail"]
    rank = {"critical": 0, "warning": 1, "info": 2}
    assert [rank[c["indicator"]] for c in patient_view] == sorted(rank[c["indicator"]] for c in patient_view)
    assert len({c["uuid"] for c in patient_view}) == len(patient_view)


def test_patient_view_of_a_patient_the_guideline_does_not_apply_to_has_no_cards():
    assert cards_for("patient-view", request("patient-view", "not-applicable.json")) == []


# ---- order-select and order-sign ----

def test_mri_without_contrast_alone_with_a_palpable_mass_warns_and_suggests_mri_without_and_with_contrast():
    cards = cards_for("order-select", order_request("order-select", [("sr1", MRI_WO)]))
    assert len(cards) == 1
    card = cards[0]
    assert card["indicator"] == "warning"
    assert card["selectionBehavior"] == "at-most-one"
    replace = card["suggestions"][0]
    assert replace["isRecommended"] is True
    assert [a["type"] for a in replace["actions"]] == ["delete", "create"]
    assert replace["actions"][0]["resourceId"] == "ServiceRequest/sr1"
    assert created_codes(card) == {MRI_WO_W}
    for cited in ("S13", "S37", "References:** 1, 5"):
        assert cited in card["detail"]


@pytest.mark.parametrize("name, coding", [("bone scan", BONE_SCAN), ("ultrasound", ULTRASOUND)])
def test_bone_scan_or_ultrasound_as_the_evaluating_study_warns(name, coding):
    cards = cards_for("order-select", order_request("order-select", [("sr1", coding)]))
    assert [c["indicator"] for c in cards] == ["warning"], name
    assert created_codes(cards[0]) == {MRI_WO_W}
    assert ("S22" if coding == BONE_SCAN else "S23") in cards[0]["detail"]


def test_physical_therapy_before_serious_pathology_is_excluded_warns():
    cards = cards_for("order-select", order_request("order-select", [("sr1", PHYSICAL_THERAPY)]))
    assert [c["indicator"] for c in cards] == ["warning"]
    assert "S31" in cards[0]["detail"] and "physical therapy" in cards[0]["summary"].lower()
    assert created_codes(cards[0]) == set()  # no imaging put in its place; cancelling is offered
    assert cards[0]["suggestions"][0]["actions"] == [
        {"type": "delete", "description": "Remove the draft order ServiceRequest/sr1", "resourceId": "ServiceRequest/sr1"}]


def test_ct_with_contrast_while_mri_is_possible_is_an_info_card_suggesting_mri():
    cards = cards_for("order-select", order_request("order-select", [("sr1", CT_W)]))
    assert [c["indicator"] for c in cards] == ["info"]
    assert created_codes(cards[0]) == {MRI_WO_W}
    assert "S21" in cards[0]["detail"]
    assert {r["code"] for r in cards[0]["overrideReasons"]} == {"mri-contraindicated", "mri-unavailable"}


def test_ct_with_contrast_when_mri_is_contraindicated_is_not_argued_against():
    cards = cards_for("order-select", order_request("order-select", [("sr1", CT_W)],
                                                   example="mri-contraindicated-deficit.json"))
    assert [c["summary"].split(":")[0] for c in cards] == ["Appropriate"]
    assert cards[0]["indicator"] == "info"


def test_an_appropriate_order_gets_an_info_card_on_select_and_no_card_on_sign():
    selected = cards_for("order-select", order_request("order-select", [("sr1", MRI_WO_W)]))
    assert [c["indicator"] for c in selected] == ["info"] and selected[0]["summary"].startswith("Appropriate")
    assert cards_for("order-sign", order_request("order-sign", [("sr1", MRI_WO_W)])) == []


def test_order_select_checks_only_the_selected_orders_and_order_sign_checks_them_all():
    orders = [("sr1", MRI_WO_W), ("sr2", BONE_SCAN), ("sr3", PHYSICAL_THERAPY)]
    selected = cards_for("order-select", order_request("order-select", orders, selected=["sr2"]))
    assert len(selected) == 1 and "Bone scan" in selected[0]["summary"]
    signed = cards_for("order-sign", order_request("order-sign", orders))
    by_order = {c["suggestions"][-1]["actions"][0]["resourceId"]: c for c in signed}
    assert set(by_order) == {"ServiceRequest/sr2", "ServiceRequest/sr3"}
    # Beside the MRI the guideline recommends, the bone scan is only redundant (info); physical
    # therapy before serious pathology is excluded stays a warning.
    assert by_order["ServiceRequest/sr2"]["indicator"] == "info"
    assert "Ordered together with MRI lumbar spine without and with IV contrast" in by_order["ServiceRequest/sr2"]["detail"]
    assert by_order["ServiceRequest/sr3"]["indicator"] == "warning"


def test_a_draft_order_is_never_a_patient_fact():
    # Were the draft MRI read as done, the guideline would stop recommending it.
    body = order_request("order-select", [("sr1", MRI_WO_W)])
    body["prefetch"]["reports"] = {"resourceType": "Bundle", "type": "searchset",
                                   "entry": [body["context"]["draftOrders"]["entry"][0]]}
    cards = cards_for("order-select", body)
    assert [c["summary"].split(":")[0] for c in cards] == ["Appropriate"]


def test_orders_outside_the_guideline_get_no_card():
    assert cards_for("order-sign", order_request("order-sign", [("sr1", (LOINC, "2345-7"))])) == []


# ---- missing prefetch, bad requests, feedback ----

@pytest.mark.parametrize("key", sorted(PREFETCH))
def test_missing_prefetch_without_fhir_access_is_412(key):
    body = request("patient-view")
    del body["prefetch"][key]
    status, answer = post("/cds-services/patient-view", body)
    assert status == 412 and key in answer["error"]


def test_no_prefetch_at_all_and_no_fhir_server_is_412():
    body = request("patient-view")
    del body["prefetch"], body["fhirServer"]
    assert post("/cds-services/patient-view", body)[0] == 412


def test_a_prefetch_the_client_failed_to_fill_with_an_operation_outcome_is_412():
    body = request("patient-view")
    body["prefetch"]["conditions"] = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "timeout"}]}
    assert post("/cds-services/patient-view", body)[0] == 412


@pytest.mark.parametrize("path, body, status", [
    ("/cds-services/patient-view", b"{not json", 400),
    ("/cds-services/patient-view", b"[]", 400),
    ("/cds-services/nope", b"{}", 404),
    ("/cds-services/order-sign", None, 400),  # the hook named in the body is not the service's
])
def test_bad_requests_get_a_4xx_with_a_message(path, body, status):
    got, answer = post(path, body if body is not None else request("patient-view"))
    assert got == status and answer["error"]


def test_serving_beyond_localhost_without_cds_authentication_is_refused(monkeypatch, capsys):
    monkeypatch.delenv("GUIDELINE_KG_TOKEN", raising=False)
    from reasoner.cli import main

    assert main(["serve", "--cds-hooks", "--host", "0.0.0.0", "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--trusted-issuer" in err
    # a static token is not CDS Hooks authentication
    assert main(["serve", "--cds-hooks", "--host", "0.0.0.0", "--port", "0", "--token", "s3cret"]) == 2
    assert "JWT" in capsys.readouterr().err


# ---- the patient of the request ----

def _with_patient(patient: Any) -> dict[str, Any]:
    body = request("patient-view")
    body["prefetch"]["patient"] = patient
    return body


def test_a_prefetched_patient_without_id_or_with_another_id_is_refused_never_answered():
    body = request("patient-view")
    patient = dict(body["prefetch"]["patient"])
    del patient["id"]
    for wrong in (patient, {**patient, "id": "someone-else"}):
        status, answer = post("/cds-services/patient-view", _with_patient(wrong))
        assert status == 400 and "cards" not in answer and "context.patientId" in answer["error"]
    assert post("/cds-services/patient-view", request("patient-view"))[0] == 200


@pytest.mark.parametrize("patient", [
    {"resourceType": "Bundle", "type": "searchset", "entry": []},
    {"resourceType": "Bundle", "type": "searchset"},
])
def test_an_empty_patient_prefetch_is_a_4xx_not_a_500(patient):
    status, answer = post("/cds-services/patient-view", _with_patient(patient))
    assert status == 400 and "Patient" in answer["error"]


@pytest.mark.parametrize("rid, kept", [("sr-1.a", True), ("a" * 64, True), ("a" * 65, False), ("../x", False),
                                       ("sr 1", False), ("sr1/_history/2", False), ("", False)])
def test_a_draft_id_becomes_a_resource_id_only_when_it_is_a_valid_fhir_id(rid, kept):
    cards = cards_for("order-sign", order_request("order-sign", [(rid, BONE_SCAN)]))
    named = {a["resourceId"] for c in cards for s in c.get("suggestions", []) for a in s["actions"]
             if a["type"] == "delete"}
    assert len(cards) == 1  # the order is checked either way
    assert named == ({f"ServiceRequest/{rid}"} if kept else set())


def _temperature(body: dict[str, Any], value: Any) -> dict[str, Any]:
    for entry in body["prefetch"]["observations"]["entry"]:
        if entry["resource"]["code"]["coding"][0]["code"] == "8310-5":
            entry["resource"]["valueQuantity"]["value"] = value
    return body


def test_the_cache_keys_on_the_exact_json_so_a_refused_input_is_never_answered_from_it():
    fresh = CdsService(guideline(), engine())
    number = _temperature(request("patient-view"), 38.6)
    text = _temperature(request("patient-view"), "38.6")
    first = fresh.handle("POST", "/cds-services/patient-view", json.dumps(number).encode())
    refused = fresh.handle("POST", "/cds-services/patient-view", json.dumps(text).encode())
    assert first.status == 200 and first.body["cards"]
    assert refused.status == 400 and "cards" not in refused.body
    # and the other way round, on a service whose cache saw the refused one first
    other = CdsService(guideline(), engine())
    assert other.handle("POST", "/cds-services/patient-view", json.dumps(text).encode()).status == 400
    assert other.handle("POST", "/cds-services/patient-view", json.dumps(number).encode()).status == 200


# ---- CDS Hooks 2.0 authentication (JWT signed by the EHR) ----

ISS, BASE = "https://ehr.example.org", "https://cds.example.org"


@lru_cache(maxsize=1)
def keys() -> dict[str, Any]:
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from jwt.algorithms import ECAlgorithm, RSAAlgorithm

    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP384R1())
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwks = {"keys": [{**json.loads(RSAAlgorithm.to_jwk(rsa_key.public_key())), "kid": "rsa-1", "alg": "RS384"},
                     {**json.loads(ECAlgorithm.to_jwk(ec_key.public_key())), "kid": "ec-1", "alg": "ES384"}]}
    return {"rsa": rsa_key, "ec": ec_key, "other": other, "jwks": jwks}


@pytest.fixture(scope="module")
def guarded(tmp_path_factory) -> CdsService:
    from reasoner.cdsauth import JwtVerifier, parse_issuer

    path = tmp_path_factory.mktemp("jwks") / "ehr.json"
    path.write_text(json.dumps(keys()["jwks"]))
    issuer = parse_issuer(f"{ISS}={path}")
    return CdsService(guideline(), engine(), JwtVerifier({ISS: issuer}, BASE))


def token(path: str = "/cds-services", key: str = "rsa", alg: str = "RS384", kid: str | None = None,
          **claims: Any) -> str:
    import time
    import jwt

    now = int(time.time())
    own_jku = claims.pop("jku", None)
    payload = {"iss": ISS, "aud": BASE + path, "iat": now, "exp": now + 120, "jti": str(uuid.uuid4()), **claims}
    payload = {k: v for k, v in payload.items() if v is not None}
    headers = {"kid": kid or {"rsa": "rsa-1", "ec": "ec-1", "other": "rsa-1"}[key]}
    if own_jku:
        headers["jku"] = "https://attacker.example.org/jwks.json"
    secret = "not-a-key-" * 8 if alg == "HS384" else keys()[key]
    return jwt.encode(payload, secret, algorithm=alg, headers=headers)


def test_a_jwt_of_a_trusted_issuer_for_this_service_is_accepted_rs384_and_es384(guarded):
    assert guarded.handle("GET", "/cds-services", authorization=f"Bearer {token()}").status == 200
    assert guarded.handle("GET", "/cds-services", authorization=f"Bearer {token(key='ec', alg='ES384')}").status == 200
    body = json.dumps(request("patient-view")).encode()
    answer = guarded.handle("POST", "/cds-services/patient-view", body,
                            f"Bearer {token('/cds-services/patient-view')}")
    assert answer.status == 200 and answer.body["cards"]


def test_the_same_jwt_twice_is_a_replay_and_refused(guarded):
    once = f"Bearer {token()}"
    assert guarded.handle("GET", "/cds-services", authorization=once).status == 200
    again = guarded.handle("GET", "/cds-services", authorization=once)
    assert again.status == 401 and "replay" in again.body["error"]


@pytest.mark.parametrize("why, authorization", [
    ("no token", lambda: None),
    ("a static token", lambda: "Bearer s3cret"),
    ("another service's aud", lambda: f"Bearer {token('/cds-services/order-sign')}"),
    ("another host's aud", lambda: f"Bearer {token(aud='https://elsewhere.example.org/cds-services')}"),
    ("an untrusted issuer", lambda: f"Bearer {token(iss='https://evil.example.org')}"),
    ("a key the issuer does not have", lambda: f"Bearer {token(key='other')}"),
    ("HMAC instead of a signature", lambda: f"Bearer {token(alg='HS384')}"),
    ("RS256", lambda: f"Bearer {token(alg='RS256')}"),
    ("expired", lambda: f"Bearer {token(iat=1_700_000_000, exp=1_700_000_100)}"),
    ("issued in the future", lambda: f"Bearer {token(iat=4_000_000_000, exp=4_000_000_100)}"),
    ("living over five minutes", lambda: f"Bearer {token(exp=int(__import__('time').time()) + 3600)}"),
    ("no jti", lambda: f"Bearer {token(jti=None)}"),
    ("no exp", lambda: f"Bearer {token(exp=None)}"),
    ("a jku of its own", lambda: f"Bearer {token(jku=True)}"),
])
def test_a_jwt_that_is_not_exactly_right_gets_401(guarded, why, authorization):
    answer = guarded.handle("GET", "/cds-services", authorization=authorization())
    assert answer.status == 401 and answer.body["error"], why


def test_over_http_on_loopback_the_jwt_is_checked_when_configured_and_not_needed_otherwise(guarded):
    def get(server, authorization=None) -> int:
        host, port = server.address
        headers = {"Authorization": authorization} if authorization else {}
        req = urllib.request.Request(f"http://{host}:{port}/cds-services", headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=30) as response:
                return response.status
        except urllib.error.HTTPError as exc:
            return exc.code

    with make_server(guarded) as server:
        assert get(server) == 401
        assert get(server, f"Bearer {token()}") == 200
    with make_server(service()) as server:
        assert get(server) == 200


def test_feedback_is_accepted_and_recorded():
    card, suggestion = str(uuid.uuid4()), str(uuid.uuid4())
    status, answer = post("/cds-services/order-select/feedback", {"feedback": [
        {"card": card, "outcome": "accepted", "acceptedSuggestions": [{"id": suggestion}],
         "outcomeTimestamp": "2026-11-25T10:00:00Z"},
        {"card": str(uuid.uuid4()), "outcome": "overridden", "outcomeTimestamp": "2026-11-25T10:01:00Z",
         "overrideReason": {"reason": {"system": LOCAL, "code": "mri-unavailable", "display": "MRI unavailable"},
                            "userComment": "scanner down"}}]})
    assert status == 200 and answer == {}
    assert any(f["card"] == card and f["service"] == "order-select" for f in service().feedback_log)


def test_feedback_without_an_outcome_is_refused():
    status, answer = post("/cds-services/order-select/feedback", {"feedback": [{"card": "x"}]})
    assert status == 400 and "outcome" in answer["error"]


# ---- one large patient does not hold up the others ----

def _padded(extra: int) -> bytes:
    """A patient-view request whose Conditions and Observations are repeated (new ids) ``extra`` times in all."""
    body = request("patient-view")
    for key in ("conditions", "observations"):
        entries = body["prefetch"][key]["entry"]
        copies = []
        for i in range(extra // 2):
            entry = json.loads(json.dumps(entries[i % len(entries)]))
            entry["resource"]["id"] = f"{key}-copy-{i}"
            entry.pop("fullUrl", None)
            copies.append(entry)
        body["prefetch"][key]["entry"] = entries + copies
    return json.dumps(body).encode()


class _Held:
    """The suite's engine, with the first reasoning after ``hold()`` kept waiting until the test lets it go.

    Whether other calls are answered while one patient is being reasoned is then an order of events,
    not a race of timings: with reasoning under one lock the ordinary call below could not finish first."""

    def __init__(self, real: Any) -> None:
        self.name = real.name
        self._real = real
        self._armed = False
        self._count = threading.Lock()
        self.calls = 0
        self.entered, self.release = threading.Event(), threading.Event()
        self.released_by_the_test: bool | None = None

    def hold(self) -> None:
        self._armed = True

    def reason(self, patient: Any) -> Any:
        with self._count:
            self.calls += 1
            held, self._armed = self._armed, False
        if held:
            self.entered.set()
            self.released_by_the_test = self.release.wait(120)  # never set: the ordinary call waited behind it
        return self._real.reason(patient)


def _post(url: str, body: bytes, out: dict[str, Any]) -> None:
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=300) as response:
            out["status"] = response.status
            out["body"] = json.load(response)
    except urllib.error.HTTPError as exc:
        out["status"] = exc.code
        out["body"] = json.load(exc)


def test_a_large_prefetch_does_not_hold_up_an_ordinary_call_and_an_oversized_one_is_refused_at_once():
    from reasoner.cds import MAX_PREFETCH_RESOURCES

    held = _Held(engine())
    large, ordinary = _padded(400), json.dumps(request("patient-view", "negative-mri.json")).encode()
    with make_server(CdsService(guideline(), held)) as server:  # type: ignore[arg-type]
        url = f"http://127.0.0.1:{server.address[1]}/cds-services/patient-view"
        slow: dict[str, Any] = {}
        held.hold()
        thread = threading.Thread(target=_post, args=(url, large, slow))
        thread.start()
        assert held.entered.wait(120), "the large patient never reached reasoning"
        meanwhile: dict[str, Any] = {}
        _post(url, ordinary, meanwhile)  # answered while the large patient is still inside reasoning
        large_still_held = thread.is_alive() and not held.release.is_set()
        held.release.set()
        thread.join()
        calls = held.calls
        oversized: dict[str, Any] = {}
        _post(url, _padded(MAX_PREFETCH_RESOURCES + 10), oversized)
    assert meanwhile["status"] == 200 and meanwhile["body"]["cards"]
    assert large_still_held and held.released_by_the_test is True
    assert slow["status"] == 200 and slow["body"]["cards"]
    assert calls == 2
    assert oversized["status"] == 413 and str(MAX_PREFETCH_RESOURCES) in oversized["body"]["error"]
    assert held.calls == calls  # refused before any reasoning


# ---- the card schema ----

@pytest.mark.parametrize("break_it, expected", [
    (lambda c: c.update(summary="x" * 140), "summary"),
    (lambda c: c.update(indicator="urgent"), "indicator"),
    (lambda c: c.pop("source"), "source"),
    (lambda c: c.update(uuid="not-a-uuid"), "uuid"),
    (lambda c: c.pop("selectionBehavior"), "selectionBehavior"),
    (lambda c: c["suggestions"].append(dict(c["suggestions"][0])), "at most 1"),
    (lambda c: c["suggestions"][0]["actions"][-1].pop("resource"), "resource"),
    (lambda c: c.update(detail=""), "detail"),
    (lambda c: c.update(extra=1), "extra"),
])
def test_the_card_schema_catches_what_breaks_the_specification(patient_view, break_it, expected):
    from reasoner.cds import spec_problems

    card = json.loads(json.dumps(next(c for c in patient_view if c.get("suggestions"))))
    assert spec_problems(card) == []
    break_it(card)
    problems = spec_problems(card)
    assert problems and any(expected in p for p in problems), problems


def test_service_titles_and_card_indicators_come_from_the_graph():
    from rdflib import Literal, URIRef

    from reasoner.cds import card_indicators, hook_services

    g = guideline()
    assert card_indicators(g) == {"emergent": "critical", "immediate": "warning", "routine": "info"}
    services = hook_services(g)
    assert set(services) == {"patient-view", "order-select", "order-sign"}
    assert services["order-sign"].alternatives_kind == "imaging" and services["order-sign"].override_kind == "context"
    title = g.graph.value(URIRef("https://w3id.org/guideline-kg/mid-lumbar-mass/cds-order-select"),
                          URIRef("http://purl.org/dc/terms/title"))
    assert isinstance(title, Literal) and services["order-select"].title == str(title)


def test_the_documentation_card_opens_with_the_prompt_the_graph_gives(patient_view):
    from reasoner.cds import hook_services

    prompt = hook_services(guideline())["patient-view"].documentation_prompt
    assert prompt == "Document the focused examination"
    documentation = [c for c in patient_view if c["source"]["topic"]["code"] == "documentation"]
    assert len(documentation) == 1 and documentation[0]["summary"].startswith(prompt + ": ")


def test_the_command_line_service_reads_the_jwks_file_it_is_given_and_checks_jwts(tmp_path):
    import os
    import re
    import signal
    import subprocess
    import sys

    from conftest import ROOT

    jwks = tmp_path / "ehr-jwks.json"
    jwks.write_text(json.dumps(keys()["jwks"]))
    server = subprocess.Popen([sys.executable, "-m", "reasoner", "serve", "--cds-hooks", "--port", "0",
                               "--trusted-issuer", f"{ISS}={jwks}", "--public-url", BASE],
                              stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        banner = server.stderr.readline()
        match = re.search(r"http://127\.0\.0\.1:(\d+)/cds-services", banner)
        assert match, banner + server.stderr.read() if server.poll() is not None else banner
        url = f"http://127.0.0.1:{match.group(1)}/cds-services"

        def status(authorization: str | None) -> int:
            req = urllib.request.Request(url, headers={"Authorization": authorization} if authorization else {})
            try:
                with urllib.request.urlopen(req, timeout=30) as response:
                    return response.status
            except urllib.error.HTTPError as exc:
                return exc.code

        assert status(None) == 401
        assert status(f"Bearer {token()}") == 200
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
