"""A CDS Hooks 2.0 service: the guideline's advice where clinicians order imaging.

``GET /cds-services`` is the discovery document; ``POST /cds-services/{id}`` answers the
hooks ``patient-view``, ``order-select`` and ``order-sign``; ``POST
/cds-services/{id}/feedback`` records what the clinician did with a card.

The patient is read only from the prefetched resources (Patient, and the patient's
Condition, Observation, Flag and DiagnosticReport resources), merged into one Bundle
and read through the same FHIR mapping as ``recommend``. The service never calls the
client's ``fhirServer``: input must not make the process open connections. So when a
prefetch key is missing the service answers 412 Precondition Failed, as the
specification requires of a service that cannot obtain the data it needs.

Draft ``ServiceRequest``s (``context.draftOrders``) are the orders being checked,
never patient facts. What a card says comes from the patient's report: an order whose
code (``Guideline.code_map``) names an action the guideline recommends against for
this patient gets a card citing that recommendation's statements and references.
No clinical table lives here.

HTTP comes from the layer both servers share (:mod:`reasoner.http`). The service binds
127.0.0.1 by default, where no authentication is needed; any other address needs CDS Hooks 2.0
authentication configured (:mod:`reasoner.cdsauth`: the EHR's signed JWT, trusted issuers with
their JWKS, the service's public URL as the audience). CORS is allowed only for the origin given
with ``--cors``. Reasoning runs in the server's thread pool outside any lock (the lock guards
only the cache), so one large patient never holds up the other hook calls.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import signal
import sys
import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cached_property, lru_cache
from pathlib import Path
from http import HTTPStatus
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from reasoner import resources
from reasoner.cdsauth import AuthError, JwtVerifier
from reasoner.engine import Engine
from reasoner.engines import make_engine, settle
from reasoner.foreground import serve_until_stopped
from reasoner.errors import GuidelineError, InputError
from reasoner.fhir import BundleReader, load_json
from reasoner.guideline import Guideline
from reasoner.http import HttpServer, HttpSettings, build_app, check_binding, in_thread, read_body
from reasoner.namespaces import LOCAL_SYSTEM
from reasoner.queries import load_folder
from reasoner.report import Report, build_report

BASE_PATH = "/cds-services"
SPEC_VERSION = "2.0"
MAX_BODY_BYTES = 20 * 1024 * 1024
MAX_PREFETCH_RESOURCES = 1000  # one patient's record as a CDS client prefetches it; more is refused at once (413)
FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")  # FHIR R4 id datatype
SUMMARY_LIMIT = 139  # the specification: "<140-character summary"
CACHE_SIZE = 64
# Engines that may reason in several threads at once. The reference engine runs owlrl and pySHACL, which
# parse SPARQL as they go (rdflib's parser is not thread-safe): its patients are reasoned one at a time.
PARALLEL_ENGINES = frozenset({"fast"})
TOPIC_SYSTEM = "https://w3id.org/guideline-kg/cds-topic"

# prefetch key -> (template, resource type it holds). The patient's own resources only:
# draft orders come in the hook's context, never through prefetch.
PREFETCH = {
    "patient": ("Patient/{{context.patientId}}", "Patient"),
    "conditions": ("Condition?patient={{context.patientId}}", "Condition"),
    "observations": ("Observation?patient={{context.patientId}}", "Observation"),
    "flags": ("Flag?patient={{context.patientId}}", "Flag"),
    "reports": ("DiagnosticReport?patient={{context.patientId}}", "DiagnosticReport"),
}


@dataclass(frozen=True)
class Hook:
    """One service of the discovery document (read from the graph: ontology/additions.ttl); its id is the hook."""

    id: str
    title: str
    description: str
    alternatives_kind: str = ""  # concept kind whose argued-against orders get same-kind alternatives suggested
    override_kind: str = ""  # concept kind whose concepts are offered as override reasons
    documentation_prompt: str = ""  # the summary of the card listing what the record does not document
    unnamed_suggestion: str = ""  # the concept key a red flag card names when the encoding names nothing suggested


def hook_services(guideline: Guideline) -> dict[str, Hook]:
    """The services the graph describes (gkg:CdsService), by hook."""
    query = load_folder(resources.queries_dir() / "cds")["services"]
    rows = [tuple(str(v) if v is not None else "" for v in row) for row in guideline.graph.query(query.prepared())]
    return {row[0]: Hook(*row) for row in rows}


def card_indicators(guideline: Guideline) -> dict[str, str]:
    """Urgency notation -> the CDS Hooks card indicator the graph gives it."""
    query = load_folder(resources.queries_dir() / "cds")["indicators"]
    return {str(urgency): str(indicator) for urgency, indicator in guideline.graph.query(query.prepared())}


@dataclass(frozen=True)
class Quoted:
    """A statement of the guideline as the source words it."""

    id: str
    text: str
    section: str
    references: tuple[str, ...]


def guideline_statements(guideline: Guideline) -> dict[str, Quoted]:
    """Statement id -> its verbatim text, section and references, read from the graph."""
    query = load_folder(resources.queries_dir() / "cds")["statements"]
    merged: dict[str, dict[str, Any]] = {}
    for row in guideline.graph.query(query.prepared()):
        sid, text, section, reference = (str(v) if v is not None else "" for v in row)
        entry = merged.setdefault(sid, {"text": text, "section": section, "refs": set()})
        if reference:
            entry["refs"].add(reference)
    return {sid: Quoted(sid, e["text"], e["section"], tuple(sorted(e["refs"], key=_number)))
            for sid, e in merged.items()}


def _number(text: str) -> tuple[int, str]:
    return (int(text), text) if text.isdigit() else (10**6, text)


@dataclass
class Answer:
    """An HTTP answer: status and JSON body."""

    status: int
    body: dict[str, Any]


class HookError(Exception):
    """A request the service refuses; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class DraftOrder:
    """A draft ServiceRequest being checked, with the guideline concept its code names."""

    reference: str | None  # "ServiceRequest/<id>" when the draft has an id
    key: str
    label: str


@dataclass
class CdsService:
    """The service itself, independent of HTTP: ``handle`` maps a request to an Answer."""

    guideline: Guideline
    engine: Engine
    auth: JwtVerifier | None = None  # when set, every request must carry a JWT of a trusted CDS client
    feedback_log: list[dict[str, Any]] = field(default_factory=list)
    _cache: OrderedDict[str, Report] = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _serial: threading.Lock = field(default_factory=threading.Lock)  # reasoning, for engines not safe in threads

    @classmethod
    def load(cls, engine: str | None = None, auth: JwtVerifier | None = None) -> CdsService:
        guideline = Guideline.load()
        return cls(guideline, make_engine(guideline, engine), auth)

    # ---- HTTP-level dispatch ----

    def handle(self, method: str, path: str, body: bytes = b"", authorization: str | None = None) -> Answer:
        """Answer one request. Never raises for bad input: errors are 4xx answers."""
        path = path.split("?", 1)[0].rstrip("/")
        try:
            if self.auth is not None:
                try:
                    self.auth.verify(authorization, path)
                except AuthError as exc:
                    raise HookError(HTTPStatus.UNAUTHORIZED, str(exc)) from None
            if path == BASE_PATH:
                if method != "GET":
                    raise HookError(HTTPStatus.METHOD_NOT_ALLOWED, f"{method} is not allowed on {BASE_PATH}")
                return Answer(200, self.discovery())
            match = re.fullmatch(re.escape(BASE_PATH) + r"/([A-Za-z0-9._-]+)(/feedback)?", path)
            if not match or match.group(1) not in self.services:
                raise HookError(HTTPStatus.NOT_FOUND, f"no CDS service at {path[:100]}")
            if method != "POST":
                raise HookError(HTTPStatus.METHOD_NOT_ALLOWED, f"{method} is not allowed on {path}; use POST")
            if len(body) > MAX_BODY_BYTES:
                raise HookError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"the request is over {MAX_BODY_BYTES} bytes")
            request = _json_object(body)
            if match.group(2):
                return Answer(200, self.feedback(match.group(1), request))
            return Answer(200, self.call(match.group(1), request))
        except HookError as exc:
            return Answer(int(exc.status), {"error": str(exc)})
        except InputError as exc:
            return Answer(400, {"error": str(exc)})
        except GuidelineError as exc:
            return Answer(500, {"error": f"the guideline encoding cannot be used: {exc}"})
        except Exception as exc:  # a bug here must not reach the client as a broken connection
            sys.stderr.write(f"guideline-kg: CDS service error: {type(exc).__name__}: {str(exc)[:200]}\n")
            return Answer(500, {"error": "internal error; the service log has the cause"})

    def discovery(self) -> dict[str, Any]:
        prefetch = {key: template for key, (template, _) in PREFETCH.items()}
        return {"services": [{"hook": hook.id, "id": hook.id, "title": hook.title, "description": hook.description,
                              "prefetch": prefetch,
                              "usageRequirements": "Send every prefetch key: the service does not query the "
                                                   "FHIR server and answers 412 when one is missing."}
                             for hook in self.services.values()]}

    # ---- hooks ----

    def call(self, service_id: str, request: dict[str, Any]) -> dict[str, Any]:
        hook = self.services[service_id]
        if request.get("hook") != hook.id:
            raise HookError(HTTPStatus.BAD_REQUEST, f"hook must be {hook.id!r} for this service")
        if not isinstance(request.get("hookInstance"), str) or not request["hookInstance"]:
            raise HookError(HTTPStatus.BAD_REQUEST, "hookInstance is missing")
        if "fhirAuthorization" in request and "fhirServer" not in request:
            raise HookError(HTTPStatus.BAD_REQUEST, "fhirAuthorization is given without fhirServer")
        context = request.get("context")
        if not isinstance(context, dict) or not isinstance(context.get("patientId"), str):
            raise HookError(HTTPStatus.BAD_REQUEST, "context.patientId is missing")
        report = self.report(self._bundle(request, context["patientId"]))
        patient_ref = f"Patient/{context['patientId']}"
        cards = (self._patient_view(report, patient_ref) if hook.id == "patient-view"
                 else self._order_cards(report, _drafts(self.guideline, context, hook.id), hook.id, patient_ref))
        for card in cards:
            check_card(card)
        return {"cards": cards}

    def feedback(self, service_id: str, request: dict[str, Any]) -> dict[str, Any]:
        items = request.get("feedback")
        if not isinstance(items, list) or not items:
            raise HookError(HTTPStatus.BAD_REQUEST, "feedback must be a non-empty array")
        for i, item in enumerate(items):
            if not isinstance(item, dict) or not isinstance(item.get("card"), str):
                raise HookError(HTTPStatus.BAD_REQUEST, f"feedback[{i}].card is missing")
            if item.get("outcome") not in ("accepted", "overridden"):
                raise HookError(HTTPStatus.BAD_REQUEST, f"feedback[{i}].outcome must be accepted or overridden")
            if not isinstance(item.get("outcomeTimestamp"), str):
                raise HookError(HTTPStatus.BAD_REQUEST, f"feedback[{i}].outcomeTimestamp is missing")
            accepted = item.get("acceptedSuggestions")
            if item["outcome"] == "accepted" and not (isinstance(accepted, list) and accepted and all(
                    isinstance(s, dict) and isinstance(s.get("id"), str) for s in accepted)):
                raise HookError(HTTPStatus.BAD_REQUEST, f"feedback[{i}]: an accepted outcome needs acceptedSuggestions")
        with self._lock:
            self.feedback_log.extend({"service": service_id, **item} for item in items)
        return {}

    # ---- the patient ----

    def _bundle(self, request: dict[str, Any], patient_id: str) -> dict[str, Any]:
        prefetch = request.get("prefetch")
        if prefetch is not None and not isinstance(prefetch, dict):
            raise HookError(HTTPStatus.BAD_REQUEST, "prefetch is not an object")
        prefetch = prefetch or {}
        missing = [key for key, (_, kind) in PREFETCH.items()
                   if key not in prefetch or _is_outcome(prefetch[key]) or (kind == "Patient" and prefetch[key] is None)]
        if missing:
            raise HookError(HTTPStatus.PRECONDITION_FAILED,
                            f"prefetch {', '.join(missing)} missing; this service reads only prefetched data "
                            "and never queries the FHIR server")
        entries: list[dict[str, Any]] = []
        seen: set[tuple[str, str]] = set()
        for key, (_, kind) in PREFETCH.items():
            found = _entries(prefetch[key], key, kind)
            if kind == "Patient":
                if len(found) != 1:
                    raise HookError(HTTPStatus.BAD_REQUEST, f"prefetch.{key} holds {len(found)} Patient resources; "
                                                            "it must hold exactly the patient of context.patientId")
                if found[0]["resource"].get("id") != patient_id:
                    raise HookError(HTTPStatus.BAD_REQUEST, "the prefetched Patient's id is not context.patientId "
                                                            "(a Patient without id is refused too)")
            for entry in found:
                resource = entry["resource"]
                rid = resource.get("id")
                if isinstance(rid, str):
                    if (kind, rid) in seen:
                        continue
                    seen.add((kind, rid))
                entries.append(entry)
            if len(entries) > MAX_PREFETCH_RESOURCES:
                raise HookError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                                f"the prefetch holds more than {MAX_PREFETCH_RESOURCES} resources; this service reasons "
                                "over one patient's record of at most that many")
        return {"resourceType": "Bundle", "type": "collection", "entry": entries}

    def report(self, bundle: dict[str, Any]) -> Report:
        """The patient's report, reasoned once per distinct record (hooks repeat while a clinician orders).

        The cache key is the exact JSON (a number and a string of the same digits differ); reasoning
        runs outside the lock, so calls for other patients go on meanwhile; a refused record is never cached."""
        digest = hashlib.sha256(repr(_canonical(bundle)).encode("utf-8")).hexdigest()
        with self._lock:
            if digest in self._cache:
                self._cache.move_to_end(digest)
                return self._cache[digest]
        patient = BundleReader(self.guideline).read(bundle)
        if self.engine.name in PARALLEL_ENGINES:
            report = build_report(self.guideline, self.engine.reason(patient))
        else:
            with self._serial:
                report = build_report(self.guideline, self.engine.reason(patient))
        with self._lock:
            self._cache[digest] = report
            while len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)
        return report

    # ---- cards ----

    def warm(self) -> None:
        """Read the graph's tables now, before requests come in threads (rdflib's SPARQL parser is not thread-safe)."""
        for table in (self.services, self.indicators, self.statements, self.alternatives):
            assert table is not None

    @cached_property
    def services(self) -> dict[str, Hook]:
        return hook_services(self.guideline)

    @cached_property
    def indicators(self) -> dict[str, str]:
        return card_indicators(self.guideline)

    @cached_property
    def statements(self) -> dict[str, Quoted]:
        return guideline_statements(self.guideline)

    @cached_property
    def alternatives(self) -> dict[str, list[str]]:
        """Action key -> the conditions under which the guideline recommends it."""
        query = load_folder(resources.queries_dir() / "cds")["alternative-actions"]
        table: dict[str, list[str]] = {}
        for key, _, condition in self.guideline.graph.query(query.prepared()):
            table.setdefault(str(key), []).append(str(condition) if condition is not None else "")
        return table

    def _source(self, topic: str, display: str) -> dict[str, Any]:
        return {"label": self.guideline.info["title"],
                "topic": {"system": TOPIC_SYSTEM, "code": topic, "display": display}}

    def _card(self, summary: str, indicator: str, detail: str, topic: tuple[str, str],
              suggestions: list[dict[str, Any]] | None = None, override: list[dict[str, str]] | None = None
              ) -> dict[str, Any]:
        card: dict[str, Any] = {"uuid": str(uuid.uuid4()), "summary": shorten(summary), "indicator": indicator,
                                "detail": detail, "source": self._source(*topic)}
        if suggestions:
            card["suggestions"] = suggestions
            card["selectionBehavior"] = "at-most-one"
        if override:
            card["overrideReasons"] = override
        return card

    def _cite(self, statement_ids: list[str], citations: list[str]) -> str:
        lines = ["**Guideline statements**", ""]
        for sid in statement_ids:
            quoted = self.statements.get(sid)
            if quoted is None:
                continue
            refs = f" (refs {', '.join(quoted.references)})" if quoted.references else ""
            lines.append(f"- **{sid}** ({quoted.section}): \u201c{_md(quoted.text)}\u201d{refs}")
        if citations:
            lines += ["", f"**References:** {', '.join(citations)} (the guideline cites them by number only)"]
        return "\n".join(lines)

    def _facts(self, report: Report, keys: list[str]) -> str:
        findings = {f["key"]: f for f in report.data.get("findings", [])}
        lines = []
        for key in keys:
            finding = findings.get(key)
            if finding is None:
                label = self.guideline.concepts[key].label if key in self.guideline.concepts else key
                lines.append(f"- {_md(label)}")
                continue
            sources = ", ".join(finding.get("source", [])) or "the record"
            how = f"derived from {', '.join(finding['derived_from'])}" if finding.get("derived_from") else "documented"
            lines.append(f"- {_md(finding['label'])}: {finding['status']}, {how} ({sources})")
        return "\n".join(lines)

    def _recommendation_detail(self, report: Report, rec: dict[str, Any], lead: str) -> str:
        parts = [lead, ""]
        facts = self._facts(report, rec.get("because", []))
        if facts:
            parts += ["**Because this patient has**", "", facts, ""]
        strength = f" Strength: {rec['strength']}." if rec.get("strength") else ""
        parts += [f"**Guideline recommendation** ({', '.join(rec['guideline_recommendations'])}): "
                  f"{_md(rec['text'])} Applies {_md(rec.get('condition', 'as stated'))}.{strength}", ""]
        parts.append(self._cite(rec["statements"], rec["citations"]))
        return "\n".join(parts)

    def _patient_view(self, report: Report, patient_ref: str) -> list[dict[str, Any]]:
        data = report.data
        if not data["conforms"]:
            problems = "\n".join(f"- {_md(v['message'])}" for v in data["violations"] if v["severity"] == "Violation")
            return [self._card("Guideline not applied: the patient record breaks the data rules", "info",
                               "The record was not evaluated against the guideline because:\n\n" + problems,
                               ("data-quality", "Data quality"))]
        if not data["applicable"]:
            return []
        cards = []
        fors = [r for r in data["recommendations"] if r["direction"] == "for"]
        for rec in fors:
            urgency = rec.get("urgency")
            indicator = self.indicators.get(urgency or "", "info")
            when = f" ({urgency})" if urgency else ""
            verb = "Order now" if urgency else "Next step"
            suggestion = self._create_suggestion(rec["action"], patient_ref, urgency)
            cards.append(self._card(
                f"{verb}{when}: {rec['action']['label']}", indicator,
                self._recommendation_detail(report, rec, f"The guideline recommends **{_md(rec['action']['label'])}**"
                                            + (f", {urgency}." if urgency else ".")),
                ("order-now" if urgency else "follow-up", "What to order now" if urgency else "Follow-up"),
                [suggestion]))
        if data["red_flags"]:
            labels = ", ".join(f["label"] for f in data["red_flags"])
            lines = []
            unnamed = self.services["patient-view"].unnamed_suggestion  # when the encoding names nothing
            for flag in data["red_flags"]:
                suggests = ", ".join(flag["suggests"]) or unnamed
                lines += [f"**{_md(flag['label'])}**" + (f" suggests {suggests}" if suggests else ""),
                          "", self._facts(report, flag["findings"]), "",
                          self._cite(flag["statements"], flag["citations"]), ""]
            cards.append(self._card(f"Red flags: {labels}", "warning", "\n".join(lines).strip(),
                                    ("red-flags", "Red flags")))
        against = [r for r in data["recommendations"] if r["direction"] == "against"]
        if against:
            lines = [f"- **{_md(r['action']['label'])}**: {_md(r.get('condition', ''))} "
                     f"({', '.join(r['statements'])}; refs {', '.join(r['citations'])})" for r in against]
            cards.append(self._card(f"Do not order: {', '.join(r['action']['label'] for r in against)}", "info",
                                    "The guideline recommends against, for this patient:\n\n" + "\n".join(lines),
                                    ("avoid", "What not to order")))
        if data.get("not_documented"):
            keys = data["not_documented"]
            labels = [self.guideline.concepts[k].label if k in self.guideline.concepts else k for k in keys]
            messages = [v["message"] for v in data["violations"]
                        if v["severity"] == "Warning" and any(k in v["message"] for k in keys)]
            prompt = self.services["patient-view"].documentation_prompt or "Document"
            cards.append(self._card(f"{prompt}: {', '.join(labels)}", "info",
                                    "The record documents these neither present nor absent:\n\n"
                                    + "\n".join(f"- {_md(m)}" for m in messages or labels),
                                    ("documentation", "Documentation")))
        order = {"critical": 0, "warning": 1, "info": 2}
        return sorted(cards, key=lambda c: order[c["indicator"]])

    def _create_suggestion(self, action: dict[str, Any], patient_ref: str,
                           urgency: str | None = None, replace: str | None = None) -> dict[str, Any]:
        codings = [{"system": c["system"], "code": c["code"], "display": c["display"]}
                   for c in action.get("codes", []) if c.get("match") == "exact"] or \
                  [{"system": LOCAL_SYSTEM, "code": action["key"], "display": action["label"]}]
        resource = {"resourceType": "ServiceRequest", "status": "draft", "intent": "order",
                    "code": {"coding": codings, "text": action["label"]}, "subject": {"reference": patient_ref}}
        actions: list[dict[str, Any]] = []
        if replace:
            actions.append({"type": "delete", "description": f"Remove the draft order {replace}", "resourceId": replace})
        actions.append({"type": "create", "description": f"Order {action['label']}"
                        + (f" ({urgency})" if urgency else ""), "resource": resource})
        label = f"Replace with {action['label']}" if replace else f"Order {action['label']}"
        return {"label": shorten(label, 80), "uuid": str(uuid.uuid4()), "isRecommended": True, "actions": actions}

    def _order_cards(self, report: Report, drafts: list[DraftOrder], hook: str,
                     patient_ref: str) -> list[dict[str, Any]]:
        data = report.data
        if not data["conforms"] or not data["applicable"] or not drafts:
            return []
        recs = data["recommendations"]
        service = self.services[hook]
        recommended_imaging = [r for r in recs if r["direction"] == "for"
                               and self._kind(r["action"]["key"]) == service.alternatives_kind]
        drafted = {d.key for d in drafts}
        cards = []
        for draft in drafts:
            against = next((r for r in recs if r["direction"] == "against" and r["action"]["key"] == draft.key), None)
            chosen = next((r for r in recs if r["direction"] == "for" and r["action"]["key"] == draft.key), None)
            if against is not None:
                cards.append(self._against_card(report, draft, against, recommended_imaging, drafted, patient_ref,
                                                service))
            elif chosen is not None and hook == "order-select":
                urgency = f", {chosen['urgency']}" if chosen.get("urgency") else ""
                cards.append(self._card(
                    f"Appropriate: {chosen['action']['label']}{urgency}", "info",
                    self._recommendation_detail(report, chosen, f"The order matches the guideline's recommendation "
                                                f"for this patient{urgency}."),
                    ("appropriate", "Order consistent with the guideline")))
        return cards

    def _against_card(self, report: Report, draft: DraftOrder, rec: dict[str, Any],
                      recommended_imaging: list[dict[str, Any]], drafted: set[str], patient_ref: str,
                      service: Hook) -> dict[str, Any]:
        imaging = bool(service.alternatives_kind) and self._kind(draft.key) == service.alternatives_kind
        alternatives = [a for a in recommended_imaging if a["action"]["key"] != draft.key]
        alongside = [a for a in alternatives if a["action"]["key"] in drafted]
        indicator = "warning"
        notes = []
        if draft.key in self.alternatives:
            indicator = "info"
            conditions = "; ".join(c for c in self.alternatives[draft.key] if c)
            notes.append(f"The guideline recommends {_md(draft.label)} {conditions}: if that holds but is not in the "
                         "record, document it and the advice changes.")
        if imaging and alongside:
            indicator = "info"
            notes.append(f"Ordered together with {', '.join(a['action']['label'] for a in alongside)}, "
                         "which the guideline recommends for this patient.")
        suggestions = []
        if imaging and not alongside:
            suggestions = [self._create_suggestion(a["action"], patient_ref, a.get("urgency"), draft.reference)
                           for a in alternatives]
        if draft.reference:
            suggestions.append({"label": shorten(f"Cancel the order for {draft.label}", 80), "uuid": str(uuid.uuid4()),
                                "actions": [{"type": "delete", "description": f"Remove the draft order {draft.reference}",
                                             "resourceId": draft.reference}]})
        instead = ""
        if alternatives:
            instead = "\n\n**Instead:** " + "; ".join(
                f"{_md(a['action']['label'])}" + (f" ({a['urgency']})" if a.get("urgency") else "") for a in alternatives)
        lead = (f"The guideline recommends **against {_md(draft.label)}** for this patient "
                f"{_md(rec.get('condition', ''))}.{instead}" + ("\n\n" + "\n\n".join(notes) if notes else ""))
        # The context concepts (MRI contraindicated, unavailable) are what the record may lack: the reasons to override.
        override = [{"system": LOCAL_SYSTEM, "code": key, "display": concept.label}
                    for key, concept in sorted(self.guideline.concepts.items())
                    if concept.kind == service.override_kind and imaging]
        return self._card(rec["text"], indicator, self._recommendation_detail(report, rec, lead),
                          ("order-check", "Order check"), suggestions, override)

    def _kind(self, key: str) -> str:
        concept = self.guideline.concepts.get(key)
        return concept.kind if concept else ""


def _drafts(guideline: Guideline, context: dict[str, Any], hook: str) -> list[DraftOrder]:
    """The draft ServiceRequests to check: for order-select the newly selected ones, for order-sign all."""
    bundle = context.get("draftOrders")
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle" or not isinstance(bundle.get("entry"), list):
        raise HookError(HTTPStatus.BAD_REQUEST, "context.draftOrders must be a Bundle")
    selections = context.get("selections")
    if hook == "order-select" and selections is not None and not (
            isinstance(selections, list) and all(isinstance(s, str) for s in selections)):
        raise HookError(HTTPStatus.BAD_REQUEST, "context.selections must be an array of references")
    drafts = []
    for i, entry in enumerate(bundle["entry"]):
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict) or resource.get("resourceType") != "ServiceRequest":
            continue
        rid = resource.get("id")
        # only a valid FHIR id of this draft becomes a reference a card's action may name
        reference = f"ServiceRequest/{rid}" if isinstance(rid, str) and FHIR_ID.fullmatch(rid) else None
        if hook == "order-select" and selections and reference not in selections:
            continue
        keys = [guideline.code_map[pair][0] for pair in _codings(resource.get("code"), f"draftOrders.entry[{i}]")
                if pair in guideline.code_map]
        if keys:
            drafts.append(DraftOrder(reference, keys[0], guideline.concepts[keys[0]].label))
    return drafts


def _codings(code: Any, where: str) -> list[tuple[str, str]]:
    """The (system, code) pairs of a ServiceRequest.code; refuses one that is not a CodeableConcept."""
    if code is None:
        return []
    codings = code.get("coding", []) if isinstance(code, dict) else None
    if not isinstance(codings, list) or not all(isinstance(c, dict) for c in codings):
        raise HookError(HTTPStatus.BAD_REQUEST, f"{where}: code is not a CodeableConcept")
    return [(c["system"], c["code"]) for c in codings if isinstance(c.get("system"), str) and isinstance(c.get("code"), str)]


def _entries(value: Any, key: str, kind: str) -> list[dict[str, Any]]:
    """The resources of one prefetch value (a resource, a searchset Bundle or null) as Bundle entries."""
    if value is None:
        return []
    if not isinstance(value, dict):
        raise HookError(HTTPStatus.BAD_REQUEST, f"prefetch.{key} is not a FHIR resource")
    if value.get("resourceType") == kind:
        return [{"resource": value}]
    if value.get("resourceType") != "Bundle":
        raise HookError(HTTPStatus.BAD_REQUEST, f"prefetch.{key} is neither a {kind} nor a Bundle")
    out = []
    for i, entry in enumerate(value.get("entry") or []):
        if not isinstance(entry, dict) or not isinstance(entry.get("resource"), dict):
            raise HookError(HTTPStatus.BAD_REQUEST, f"prefetch.{key}.entry[{i}] has no resource")
        if entry["resource"].get("resourceType") != kind:
            continue  # e.g. an OperationOutcome with search.mode "outcome"
        kept = {"resource": entry["resource"]}
        if isinstance(entry.get("fullUrl"), str):
            kept["fullUrl"] = entry["fullUrl"]
        out.append(kept)
    return out


def _canonical(value: Any) -> Any:
    """A value with every JSON type kept apart (Decimal 38.6, float 38.6, "38.6" and True/1 all differ)."""
    if isinstance(value, dict):
        return ("object", tuple(sorted((str(k), _canonical(v)) for k, v in value.items())))
    if isinstance(value, list):
        return ("array", tuple(_canonical(v) for v in value))
    if isinstance(value, Decimal):
        return ("number", str(value))
    return (type(value).__name__, value)


def _is_outcome(value: Any) -> bool:
    """CDS Hooks 2.0 lets a client send an OperationOutcome for a prefetch it could not fill."""
    return isinstance(value, dict) and value.get("resourceType") == "OperationOutcome"


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise HookError(HTTPStatus.BAD_REQUEST, "the request body is not UTF-8") from None
    value = load_json(text, "request")
    if not isinstance(value, dict):
        raise HookError(HTTPStatus.BAD_REQUEST, "the request body is not a JSON object")
    return value


def _md(text: str) -> str:
    """Text safe inside Markdown: no markup or links can come from the data."""
    return re.sub(r"([\\`*_\[\]<>#|])", r"\\\1", " ".join(str(text).split()))


def shorten(text: str, limit: int = SUMMARY_LIMIT) -> str:
    """At most ``limit`` characters, cut at a word with an ellipsis."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1].rsplit(" ", 1)[0].rstrip(",;:")
    return cut + "\u2026"


CARD_SCHEMA = Path(__file__).parent / "schemas" / "cds-hooks-card.schema.json"


@lru_cache(maxsize=1)
def _card_validator() -> Any:
    from jsonschema import Draft202012Validator

    schema = json.loads(CARD_SCHEMA.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def check_card(card: dict[str, Any]) -> None:
    """The specification's rules for a card; a broken card is a bug here, never sent."""
    problems = spec_problems(card)
    if problems:
        raise AssertionError("card breaks the CDS Hooks specification: " + "; ".join(problems))


def spec_problems(card: dict[str, Any]) -> list[str]:
    """What in a card breaks CDS Hooks 2.0, by the card schema (reasoner/schemas/cds-hooks-card.schema.json;
    empty list: nothing), plus what a schema cannot say: no null or empty value anywhere."""
    problems = [f"{'/'.join(str(p) for p in error.absolute_path) or 'card'}: {error.message}"
                for error in sorted(_card_validator().iter_errors(card), key=lambda e: list(map(str, e.absolute_path)))]
    return problems + [f"{path} is null or empty" for path in _empty_paths(card, "card")]


def _empty_paths(value: Any, path: str) -> list[str]:
    if value is None or value == "" or value == [] or value == {}:
        return [path]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _empty_paths(v, f"{path}.{k}")]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _empty_paths(v, f"{path}[{i}]")]
    return []


def make_app(service: CdsService, settings: HttpSettings) -> Any:
    """The service's HTTP routes on the shared layer; ``handle`` answers, in the thread pool."""

    service.warm()

    async def endpoint(request: Request) -> Response:
        body = b""
        if request.method == "POST":
            body = await read_body(request, settings.max_body, settings.body_timeout)
        answer = await in_thread(service.handle, request.method, request.url.path, body,
                                 request.headers.get("authorization"))
        return json_answer(answer)

    routes = [Route(BASE_PATH, endpoint, methods=["GET", "POST"]),
              Route(BASE_PATH + "/{rest:path}", endpoint, methods=["GET", "POST"])]
    return build_app(routes, settings, error=lambda refused: json_answer(
        Answer(int(refused.status), {"error": refused.message}), refused.headers))


def json_answer(answer: Answer, headers: dict[str, str] | None = None) -> Response:
    payload = json.dumps(answer.body, ensure_ascii=False, default=str).encode("utf-8")
    return Response(payload, answer.status, headers, "application/json; charset=utf-8")


def make_server(service: CdsService, host: str = "127.0.0.1", port: int = 0, cors: str | None = None,
                settings: HttpSettings | None = None) -> HttpServer:
    """An HTTP server for ``service`` (port 0 picks a free one: ``server.address``); refuses to listen beyond
    loopback unless the service authenticates its clients. ``settings`` overrides host, port and cors."""
    settings = settings or HttpSettings(host=host, port=port, cors=cors, max_body=MAX_BODY_BYTES)
    host = settings.host
    check_binding(host, service.auth is not None, "the CDS Hooks service",
                  "CDS Hooks authentication (--trusted-issuer ISSUER=JWKS and --public-url)")
    return HttpServer(make_app(service, settings), settings)


def serve_cds(args: argparse.Namespace) -> int:
    """``guideline-kg serve --cds-hooks``: serve until interrupted."""
    from reasoner.cdsauth import parse_issuer

    host = getattr(args, "host", None) or "127.0.0.1"
    port = getattr(args, "port", None)
    if getattr(args, "token", None):
        raise InputError("CDS Hooks clients authenticate with a signed JWT, not a static token: "
                         "give --trusted-issuer ISSUER=JWKS and --public-url instead of --token")
    issuers = [parse_issuer(spec) for spec in getattr(args, "trusted_issuer", None) or []]
    public_url = getattr(args, "public_url", None)
    if issuers and not public_url:
        raise InputError("--trusted-issuer needs --public-url (the service's URL as the EHR calls it: the JWT's aud)")
    auth = JwtVerifier({i.iss: i for i in issuers}, public_url) if issuers else None
    check_binding(host, auth is not None, "the CDS Hooks service",
                  "CDS Hooks authentication (--trusted-issuer ISSUER=JWKS and --public-url)")
    service = CdsService.load(getattr(args, "engine", None), auth)
    settle()  # the service process lives on: what it loaded stays out of the collector's way
    try:
        server = make_server(service, host, 8080 if port is None else int(port), getattr(args, "cors", None))
    except OSError as exc:
        raise InputError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sys.stderr.write(f"guideline-kg: CDS Hooks {SPEC_VERSION} service on {server.url}{BASE_PATH}\n")
    sys.stderr.flush()
    signal.signal(signal.SIGTERM, _stop)
    serve_until_stopped(server)
    return 0


def _stop(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM ends the service as Ctrl-C does


__all__ = ["CdsService", "Answer", "make_app", "make_server", "serve_cds", "spec_problems", "PREFETCH",
           "guideline_statements", "Quoted", "shorten"]
