"""The guideline as HL7 CPG-on-FHIR knowledge artifacts, and a patient's result as CPG ``$apply`` output.

``guideline-kg export --format fhir``: a FHIR R4 Bundle (type collection) of
  - one PlanDefinition per recommendation, in the CPG IG's recommendation-definition style: one
    action whose condition (kind applicability) carries the recommendation's SPARQL rule
    (language application/sparql-query), its priority (the urgency's ``gkg:requestPriority``), its
    strength (cqf-strengthOfRecommendation), and the statements (verbatim) and references (by number)
    it rests on as relatedArtifact;
  - one ActivityDefinition per action and direction: kind ServiceRequest, the action's codes,
    ``doNotPerform`` for an action recommended against;
  - one Library holding every rule file;
  - one ValueSet per concept: its standard codes and its local code.
``guideline-kg recommend FILE --format fhir``: a RequestGroup (intent proposal) with one contained
ServiceRequest proposal per recommendation of the report, each with its priority, ``doNotPerform``
for one against, the patient facts behind it (reasonCode), the statements and citations
(documentation) and the PlanDefinitions and ActivityDefinition it instantiates.

Everything clinical (concepts, codes, statements, urgency to priority) is read from the graph;
only FHIR's own structure is written here. The canonical URLs are the umbrella ontology's IRI
followed by ``/fhir/<ResourceType>/<id>``.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any

from reasoner import resources
from reasoner.cds import guideline_statements
from reasoner.guideline import Guideline
from reasoner.namespaces import LOCAL_SYSTEM
from reasoner.queries import load_query

SPARQL = "application/sparql-query"
CPG = "http://hl7.org/fhir/uv/cpg/StructureDefinition/"
STRENGTH_EXTENSION = "http://hl7.org/fhir/StructureDefinition/cqf-strengthOfRecommendation"
STRENGTH_SYSTEM = "http://terminology.hl7.org/CodeSystem/recommendation-strength"
PLAN_TYPE = {"system": "http://terminology.hl7.org/CodeSystem/plan-definition-type", "code": "eca-rule"}
# The codes a CodeableConcept carries beside the local code: the ones that mean the concept (exact) or
# nearly so (close). A narrow, broad or site-dependent code is not another coding of the same thing;
# the ValueSets carry every code that counts on input.
CODEABLE_MATCHES = ("exact", "close")
LIBRARY_TYPE = {"system": "http://terminology.hl7.org/CodeSystem/library-type", "code": "logic-library"}


def _select(guideline: Guideline, name: str) -> list[dict[str, Any]]:
    query = load_query(resources.queries_dir() / "export" / f"{name}.rq")
    return [{str(k): (str(v) if v is not None else None) for k, v in row.asdict().items()}
            for row in guideline.graph.query(query.prepared())]


def _name(text: str) -> str:
    """A FHIR computable name (``[A-Z][A-Za-z0-9_]*``) from a kebab-case id."""
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[^A-Za-z0-9]+", text) if part) or "X"


class Artifacts:
    """What the FHIR outputs read of the guideline, read once."""

    def __init__(self, guideline: Guideline) -> None:
        from reasoner.export_sssom import metadata

        self.guideline = guideline
        self.meta = metadata(guideline)
        self.base = self.meta["ontology"] + "/fhir"
        self.version = self.meta["version"]
        self.recommendations = _select(guideline, "fhir-recommendations")
        self.evidence: dict[str, list[dict[str, Any]]] = {}
        for row in _select(guideline, "fhir-evidence"):
            self.evidence.setdefault(str(row["id"]), []).append(row)
        self.priority = {str(r["urgency"]): str(r["priority"]) for r in _select(guideline, "urgency-priority")}
        self.not_met = [str(r["text"]) for r in _select(guideline, "not-met")]
        self.statements = guideline_statements(guideline)
        self.rules = {str(rule.iri): rule for rule in guideline.rules}

    def url(self, resource_type: str, resource_id: str) -> str:
        return f"{self.base}/{resource_type}/{resource_id}"

    def concept(self, key: str) -> dict[str, Any]:
        """A concept as a CodeableConcept: its standard codes, then its local code."""
        label = self.guideline.concepts[key].label if key in self.guideline.concepts else key
        codings = [{"system": c.system, "code": c.code, **({"display": c.display} if c.display else {})}
                   for c in self.guideline.codings_by_key.get(key, []) if c.match in CODEABLE_MATCHES]
        codings.append({"system": LOCAL_SYSTEM, "code": key, "display": label})
        return {"coding": codings, "text": label}

    @staticmethod
    def activity_id(action_key: str, direction: str) -> str:
        return action_key if direction == "for" else f"{action_key}-do-not-perform"

    def statement_artifacts(self, statement_ids: list[str]) -> list[dict[str, Any]]:
        found = []
        for sid in statement_ids:
            quoted = self.statements.get(sid)
            if quoted is not None:
                found.append({"type": "justification", "label": sid, "display": f"Statement {sid}",
                              "citation": quoted.text})
        return found

    @staticmethod
    def reference_artifacts(numbers: list[str]) -> list[dict[str, Any]]:
        return [{"type": "citation", "label": n, "display": f"Reference {n} of the guideline (cited by number only)"}
                for n in numbers]

    # ---- the knowledge artifacts ----

    def plan_definition(self, rec: dict[str, Any]) -> dict[str, Any]:
        rid = str(rec["id"])
        rule = self.rules.get(str(rec["rule"]))
        evidence = self.evidence.get(rid, [])
        statements = [str(e["label"]) for e in evidence if e["kind"] == "statement"]
        references = [str(e["label"]) for e in evidence if e["kind"] == "reference"]
        action: dict[str, Any] = {"title": rec["label"]}
        if rec.get("condition"):
            action["description"] = f"Applies when: {rec['condition']}"
        if rec.get("priority"):
            action["priority"] = rec["priority"]
        if rule is not None:
            action["condition"] = [{"kind": "applicability", "expression": {
                "description": f"The rule queries/rules/{rule.query.path.name}: it concludes the recommendation "
                               "for a patient graph when the condition holds.",
                "name": _name(rule.name), "language": SPARQL, "expression": rule.query.text,
                "reference": f"{self.url('Library', 'rules')}#{rule.query.path.name}"}}]
        action["definitionCanonical"] = self.url("ActivityDefinition", self.activity_id(str(rec["actionKey"]),
                                                                                          str(rec["direction"])))
        if rec.get("strength"):
            action["extension"] = [{"url": STRENGTH_EXTENSION, "valueCodeableConcept": {
                "coding": [{"system": STRENGTH_SYSTEM, "code": rec["strength"]}]}}]
        return {
            "resourceType": "PlanDefinition", "id": rid,
            "meta": {"profile": [CPG + "cpg-recommendationdefinition"]},
            "url": self.url("PlanDefinition", rid), "version": self.version,
            "identifier": [{"system": self.meta["ontology"], "value": rid}],
            "name": _name(rid), "title": rec["label"], "type": {"coding": [PLAN_TYPE]},
            "status": "active", "experimental": False,
            "description": f"Recommendation {rec['direction']} {rec['actionLabel']}"
                           + (f" ({rec['strength']})" if rec.get("strength") else "") + f". {rec['label']}.",
            "relatedArtifact": self.statement_artifacts(statements) + self.reference_artifacts(references),
            "library": [self.url("Library", "rules")],
            "action": [action],
        }

    def activity_definition(self, action_key: str, action_label: str, direction: str) -> dict[str, Any]:
        aid = self.activity_id(action_key, direction)
        resource: dict[str, Any] = {
            "resourceType": "ActivityDefinition", "id": aid, "url": self.url("ActivityDefinition", aid),
            "version": self.version, "name": _name(aid),
            "title": action_label if direction == "for" else f"Do not perform: {action_label}",
            "status": "active", "experimental": False, "kind": "ServiceRequest", "intent": "proposal",
            "code": self.concept(action_key),
        }
        if direction == "against":
            resource["doNotPerform"] = True
        return resource

    def library(self) -> dict[str, Any]:
        content = [{"contentType": SPARQL, "title": rule.query.path.name,
                    "data": base64.b64encode(rule.query.text.encode("utf-8")).decode("ascii")}
                   for rule in sorted(self.guideline.rules, key=lambda r: r.name)]
        return {"resourceType": "Library", "id": "rules", "url": self.url("Library", "rules"), "version": self.version,
                "name": "GuidelineRules", "title": f"{self.meta['title']}: rules", "status": "active",
                "experimental": False, "type": {"coding": [LIBRARY_TYPE]},
                "description": "The SPARQL CONSTRUCT rules that apply the recommendations to a patient graph, one "
                               "attachment per file of queries/rules/.",
                "content": content}

    def value_set(self, key: str) -> dict[str, Any]:
        concept = self.guideline.concepts[key]
        include: dict[str, list[dict[str, str]]] = {}
        for c in self.guideline.codings_by_key.get(key, []):
            include.setdefault(c.system, []).append({"code": c.code, **({"display": c.display} if c.display else {})})
        include.setdefault(LOCAL_SYSTEM, []).append({"code": key, "display": concept.label})
        description = f"The codes that stand for '{concept.label}' on input: its standard codes and its local code."
        return {"resourceType": "ValueSet", "id": key, "url": self.url("ValueSet", key), "version": self.version,
                "name": _name(key), "title": concept.label, "status": "active", "experimental": False,
                "description": description,
                "compose": {"include": [{"system": system, "concept": codes} for system, codes in include.items()]}}

    def bundle(self) -> dict[str, Any]:
        resources_: list[dict[str, Any]] = [self.library()]
        actions: dict[tuple[str, str], str] = {}
        for rec in self.recommendations:
            resources_.append(self.plan_definition(rec))
            actions.setdefault((str(rec["actionKey"]), str(rec["direction"])), str(rec["actionLabel"]))
        for (key, direction), label in sorted(actions.items()):
            resources_.append(self.activity_definition(key, label, direction))
        for key in sorted(self.guideline.concepts):
            resources_.append(self.value_set(key))
        return {"resourceType": "Bundle", "id": "guideline-kg-cpg", "type": "collection",
                "entry": [{"fullUrl": r["url"], "resource": r} for r in resources_]}

    # ---- one patient's result ----

    def request_group(self, report: dict[str, Any]) -> dict[str, Any]:
        patient = report["patient"]
        subject: dict[str, Any] = {"reference": patient["iri"]}
        if patient.get("identifier"):
            subject["identifier"] = {"value": patient["identifier"]}
        contained: list[dict[str, Any]] = []
        actions: list[dict[str, Any]] = []
        instantiated: list[str] = []
        for number, rec in enumerate(report.get("recommendations", []), start=1):
            key, direction = rec["action"]["key"], rec["direction"]
            plans = [self.url("PlanDefinition", rid) for rid in rec.get("guideline_recommendations", [])]
            instantiated += [p for p in plans if p not in instantiated]
            request: dict[str, Any] = {
                "resourceType": "ServiceRequest", "id": f"proposal-{number}", "status": "draft", "intent": "proposal",
                "instantiatesCanonical": [self.url("ActivityDefinition", self.activity_id(key, direction)), *plans],
                "code": self.concept(key), "subject": subject,
            }
            priority = self.priority.get(rec.get("urgency") or "")
            if priority:
                request["priority"] = priority
            if direction == "against":
                request["doNotPerform"] = True
            reasons = [self.concept(k) for k in rec.get("because", [])]
            if reasons:
                request["reasonCode"] = reasons
            contained.append(request)
            action: dict[str, Any] = {
                "title": ("Do not perform: " if direction == "against" else "") + rec["action"]["label"],
                "description": rec.get("text") or rec["action"]["label"],
                "documentation": self.statement_artifacts(rec.get("statements", []))
                + self.reference_artifacts(rec.get("citations", [])),
                "resource": {"reference": f"#{request['id']}"},
            }
            if priority:
                action["priority"] = priority
            actions.append(action)
        group: dict[str, Any] = {
            "resourceType": "RequestGroup", "id": "result", "contained": contained,
            "instantiatesCanonical": instantiated, "status": "draft", "intent": "proposal", "subject": subject,
        }
        if not contained:
            del group["contained"]
        if not instantiated:
            del group["instantiatesCanonical"]
        if not report.get("applicable", True) and self.not_met:
            group["note"] = [{"text": text} for text in self.not_met]
        if actions:
            group["action"] = actions
        return group


_ARTIFACTS: dict[str, Artifacts] = {}  # by the encoding's fingerprint: a batch reads the graph once


def artifacts(guideline: Guideline) -> Artifacts:
    key = guideline.fingerprint
    if key not in _ARTIFACTS:
        _ARTIFACTS[key] = Artifacts(guideline)
    return _ARTIFACTS[key]


def fhir_export(guideline: Guideline) -> str:
    return json.dumps(artifacts(guideline).bundle(), indent=2, ensure_ascii=False) + "\n"


def fhir_request_group(guideline: Guideline, report: dict[str, Any]) -> str:
    return json.dumps(artifacts(guideline).request_group(report), indent=2, ensure_ascii=False) + "\n"
