"""The report for one patient: JSON (shared/contract/report.schema.json), text, and RDF with PROV-O."""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from typing import Any

from rdflib import Graph, Literal, Namespace, URIRef
from rdflib.namespace import PROV, RDF, XSD

from reasoner.clock import format_instant
from reasoner.guideline import Guideline
from reasoner.namespaces import GKG
from reasoner.reasoned import Reasoned

REPORT_VERSION = "1"



def _citation_key(c: str) -> tuple[int, str]:
    return (int(c), c) if c.isdigit() else (10**6, c)


def _sorted(values: set[str], key=None) -> list[str]:
    return sorted(values, key=key)


@dataclass
class Report:
    """A patient's report; ``data`` is the JSON object, ``graph`` the RDF report graph (None when nothing was derived)."""

    data: dict[str, Any]
    reasoned: Reasoned
    graph: Graph | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def conforms(self) -> bool:
        return bool(self.data["conforms"])

    def to_json(self) -> str:
        return dumps(self.data)


def dumps(data: Any) -> str:
    """``json.dumps(data, indent=2, ensure_ascii=False) + "\\n"``, byte for byte, without the encoder's generators.

    The standard library writes indented JSON in pure Python (its C encoder is used only
    without ``indent``); this writes the same text for the str/int/bool/None/list/dict values a
    report holds, and hands anything else to ``json.dumps``.
    """
    parts: list[str] = []
    try:
        _dump(data, "\n", parts)
    except _Other:
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    parts.append("\n")
    return "".join(parts)


class _Other(Exception):
    """A value _dump does not write itself."""


_STRING = json.encoder.encode_basestring  # the C version when the accelerator is present, as json.dumps uses


def _dump(value: Any, newline: str, out: list[str]) -> None:
    if isinstance(value, str):
        out.append(_STRING(value))
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif value is None:
        out.append("null")
    elif type(value) is int:
        out.append(int.__repr__(value))
    elif type(value) is dict or type(value) is list:
        mapping = type(value) is dict
        if not value:
            out.append("{}" if mapping else "[]")
            return
        inner = newline + "  "
        out.append("{" if mapping else "[")
        first = True
        for key, item in (value.items() if mapping else zip(itertools.repeat(None), value)):
            out.append(inner if first else "," + inner)
            first = False
            if mapping:
                if type(key) is not str:
                    raise _Other
                out.append(_STRING(key))
                out.append(": ")
            _dump(item, inner, out)
        out.append(newline + ("}" if mapping else "]"))
    else:
        raise _Other


def _rows(guideline: Guideline, reasoned: Reasoned, name: str) -> list[dict[str, Any]]:
    assert reasoned.graph is not None
    query = guideline.queries[f"report/{name}"].prepared()
    result = reasoned.graph.query(query, initBindings={"patient": reasoned.patient.patient})
    names = [str(v) for v in result.vars or []]
    return [{name: (str(value) if value is not None else None) for name, value in zip(names, row)} for row in result]


def _findings(guideline: Guideline, reasoned: Reasoned) -> tuple[list[dict[str, Any]], list[str]]:
    merged: dict[str, dict[str, Any]] = {}
    context: set[str] = set()
    for row in _rows(guideline, reasoned, "findings"):
        key = row["key"]
        if row["kind"] == "context":
            if row["status"] == "present":
                context.add(key)
            continue
        entry = merged.setdefault(key, {"key": key, "label": row["label"], "facts": {}})
        fact = entry["facts"].setdefault(row["fact"], {"status": row["status"], "origin": row["origin"] or "asserted",
                                                       "from": set(), "source": set()})
        if row["source"]:
            fact["source"].add(row["source"])
        if row["fromKey"]:
            fact["from"].add(row["fromKey"])
        elif row["fromMeasurement"]:
            fact["from"].add(f"{row['fromSystem']}|{row['fromMeasurement']}")
        if row["fromSource"]:
            fact["source"].add(row["fromSource"])
    findings = []
    for key in sorted(merged):
        facts = list(merged[key]["facts"].values())
        present = [f for f in facts if f["status"] == "present"]
        chosen = present or facts  # presence wins
        asserted = [f for f in chosen if f["origin"] == "asserted"]
        winners = asserted or chosen
        item: dict[str, Any] = {"key": key, "label": merged[key]["label"],
                                "status": winners[0]["status"], "origin": winners[0]["origin"]}
        derived_from = set().union(*(f["from"] for f in winners))
        if item["origin"] == "derived":
            item["derived_from"] = sorted(derived_from)
        sources = set().union(*(f["source"] for f in winners))
        if sources:
            item["source"] = sorted(sources)
        findings.append(item)
    return findings, sorted(context)


def _imaging(guideline: Guideline, reasoned: Reasoned) -> list[dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {}
    for row in _rows(guideline, reasoned, "imaging-results"):
        entry = results.setdefault(row["result"], {"study": row["study"], "conclusions": set(), "source": row["source"]})
        if row["conclusion"]:
            entry["conclusions"].add(row["conclusion"])
    items = []
    for entry in sorted(results.values(), key=lambda e: (e["study"], e["source"] or "")):
        item = {"study": entry["study"], "conclusions": sorted(entry["conclusions"])}
        if entry["source"]:
            item["source"] = entry["source"]
        items.append(item)
    return items


def _red_flags(guideline: Guideline, reasoned: Reasoned) -> list[dict[str, Any]]:
    flags: dict[str, dict[str, Any]] = {}
    for row in _rows(guideline, reasoned, "red-flags"):
        entry = flags.setdefault(row["key"], {"key": row["key"], "label": row["label"], "statements": set(),
                                              "citations": set(), "suggests": set(), "findings": set()})
        for field_name, column in (("statements", "statement"), ("citations", "citation"),
                                   ("suggests", "suggests"), ("findings", "because")):
            if row[column]:
                entry[field_name].add(row[column])
    return [{"key": e["key"], "label": e["label"], "statements": sorted(e["statements"]),
             "citations": sorted(e["citations"], key=_citation_key), "suggests": sorted(e["suggests"]),
             "findings": sorted(e["findings"])}
            for e in (flags[k] for k in sorted(flags))]


def _recommendations(guideline: Guideline, reasoned: Reasoned) -> list[dict[str, Any]]:
    patient = str(reasoned.patient.patient)
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    for row in _rows(guideline, reasoned, "recommendations"):
        key = (row["action"], row["direction"])
        entry = merged.setdefault(key, {
            "action": row["action"], "label": row["actionLabel"], "direction": row["direction"],
            "strengths": {}, "urgencies": {}, "conditions": set(), "texts": {}, "statements": set(),
            "citations": set(), "because": set(), "from": set()})
        entry["from"].add(row["id"])
        entry["texts"][row["id"]] = row["text"]
        if row["strength"]:
            entry["strengths"][row["strength"]] = int(row["strengthRank"])
        if row["urgency"]:
            entry["urgencies"][row["urgency"]] = int(row["rank"])
        if row["condition"]:
            entry["conditions"].add((row["id"], row["condition"]))
        for field_name, column in (("statements", "statement"), ("citations", "citation"), ("because", "because")):
            if row[column]:
                entry[field_name].add(row[column])
    items: list[tuple[int, dict[str, Any]]] = []
    for entry in merged.values():
        # the strongest strength and the most urgent urgency of the merged recommendations (gkg:rank)
        urgency = max(entry["urgencies"], key=entry["urgencies"].__getitem__) if entry["urgencies"] else None
        item: dict[str, Any] = {
            "iri": f"{patient}/recommendation/{entry['action']}/{entry['direction']}",
            "action": {"key": entry["action"], "label": entry["label"]},
            "direction": entry["direction"],
        }
        codes = guideline.codings_by_key.get(entry["action"], [])
        if codes:
            item["action"]["codes"] = _codes(codes)
        if entry["strengths"]:
            item["strength"] = max(entry["strengths"], key=entry["strengths"].__getitem__)
        if urgency:
            item["urgency"] = urgency
        if entry["conditions"]:
            item["condition"] = "; ".join(c for _, c in sorted(entry["conditions"]))
        item["statements"] = sorted(entry["statements"])
        item["citations"] = sorted(entry["citations"], key=_citation_key)
        item["because"] = sorted(entry["because"])
        item["text"] = " ".join(sorted(set(entry["texts"][i] + "." for i in sorted(entry["from"]))))
        item["guideline_recommendations"] = sorted(entry["from"])
        items.append((entry["urgencies"].get(urgency, 0), item))
    # for before against, the most urgent first (no urgency last), then by action
    return [item for _, item in sorted(items, key=lambda ri: (0 if ri[1]["direction"] == "for" else 1, -ri[0],
                                                             ri[1]["action"]["key"]))]


# The match kinds the report schema's `codes[].match` enum names. codes.tsv's newer `narrow` grade is not among
# them yet: such a code is listed without `match` (the field is optional) and `explain` still names its grade.
SCHEMA_MATCH_KINDS = frozenset({"exact", "close", "broad", "needs-lumbar-site", "local"})


def _codes(codes: list[Any]) -> list[dict[str, str]]:
    out = []
    for c in sorted(codes, key=lambda c: (c.system, c.code)):
        entry = {"system": c.system, "code": c.code, "display": c.display}
        if c.match in SCHEMA_MATCH_KINDS:
            entry["match"] = c.match
        out.append(entry)
    return out


def _differential(guideline: Guideline, reasoned: Reasoned) -> list[dict[str, Any]]:
    entries: dict[str, dict[str, Any]] = {}
    for row in _rows(guideline, reasoned, "differential"):
        entry = entries.setdefault(row["key"], {"key": row["key"], "label": row["label"], "order": int(row["order"]),
                                                "nature": row["nature"], "statements": set(), "citations": set(),
                                                "supported_by": set()})
        for field_name, column in (("statements", "statement"), ("citations", "citation"), ("supported_by", "supportedBy")):
            if row[column]:
                entry[field_name].add(row[column])
    items = []
    for e in sorted(entries.values(), key=lambda e: e["order"]):
        item: dict[str, Any] = {"key": e["key"], "label": e["label"]}
        codes = guideline.codings_by_key.get(e["key"], [])
        if codes:
            item["codes"] = _codes(codes)
        item["statements"] = sorted(e["statements"])
        item["citations"] = sorted(e["citations"], key=_citation_key)
        item["supported_by"] = sorted(e["supported_by"])
        if e["nature"]:
            item["nature"] = e["nature"]
        items.append(item)
    return items


def build_report(guideline: Guideline, reasoned: Reasoned) -> Report:
    patient = reasoned.patient
    data: dict[str, Any] = {
        "report_version": REPORT_VERSION,
        "guideline": dict(guideline.info),
        "patient": {"iri": str(patient.patient), "identifier": patient.identifier},
        "x-reasoning-time": format_instant(patient.reasoning_time),
        "conforms": reasoned.conforms,
        "violations": [r.as_json() for r in reasoned.results],
    }
    if not reasoned.conforms or reasoned.graph is None:
        data.update({"applicable": None, "findings": [], "red_flags": [], "recommendations": [], "differential": []})
        return Report(data, reasoned)
    graph = reasoned.graph
    applicable = (patient.patient, URIRef(str(GKG._NS) + "meetsEntryCriterion"), Literal(True)) in graph
    findings, context = _findings(guideline, reasoned)
    data["applicable"] = applicable
    if not applicable:
        data["not_applicable_reason"] = str(guideline.select("report/not-applicable")[0]["text"])
    data["findings"] = findings
    data["context"] = context
    data["imaging_results"] = _imaging(guideline, reasoned)
    data["red_flags"] = _red_flags(guideline, reasoned)
    data["recommendations"] = _recommendations(guideline, reasoned) if applicable else []
    data["differential"] = _differential(guideline, reasoned)
    exam_shape = "https://w3id.org/guideline-kg/shapes/ExamDocumented-item"
    keys = {guideline_key(guideline, r.value) for r in reasoned.results if r.shape == exam_shape and r.value}
    data["not_documented"] = sorted(k for k in keys if k)
    return Report(data, reasoned)


def guideline_key(guideline: Guideline, iri: str) -> str | None:
    for key, concept in guideline.concepts.items():
        if str(concept.iri) == iri:
            return key
    return None


Triple = tuple[Any, Any, Any]


def _report_parts(guideline: Guideline, report: Report, engine: str) -> tuple[set[Triple], list[Triple]]:
    """The report graph in two parts: what report-graph.rq constructs, and the PROV-O and reported
    recommendations added to it, in the order they are added (a triple may come twice)."""
    reasoned = report.reasoned
    patient = reasoned.patient.patient
    source = reasoned.graph if reasoned.graph is not None else reasoned.patient.graph
    query = guideline.queries["report/report-graph"].prepared()
    construct = getattr(source, "construct_triples", None)  # the fast engine's compiled plan: a set, no rdflib Graph
    produced = construct(query, {"patient": patient}) if construct is not None else None
    if produced is None:
        constructed = source.query(query, initBindings={"patient": patient}).graph
        assert constructed is not None
        produced = set(constructed)
    added: list[Triple] = []
    add = added.append
    activity = URIRef(f"{patient}/reasoning")
    guideline_iri = URIRef(guideline.info["iri"])
    add((activity, RDF.type, PROV.Activity))
    add((activity, PROV.used, guideline_iri))
    add((activity, PROV.used, patient))
    # the reasoning time (now, or --now), not the wall clock: the same input and time give the same report
    add((activity, PROV.endedAtTime, Literal(format_instant(reasoned.patient.reasoning_time), datatype=XSD.dateTime)))
    add((activity, _GKG_GUIDELINE, guideline_iri))
    add((guideline_iri, _OWL_VERSION_INFO, Literal(guideline.info["version"])))
    add((activity, PROV.wasAssociatedWith, URIRef(f"https://w3id.org/guideline-kg/engine/{engine}")))
    add((activity, _GKG_FINGERPRINT, Literal(guideline.fingerprint)))
    add((activity, _GKG_CONFORMS, Literal(report.conforms, datatype=XSD.boolean)))
    for entry in report.data["recommendations"]:
        node = URIRef(entry["iri"])
        add((node, RDF.type, _GKG_REPORTED))
        add((node, _GKG_ABOUT, patient))
        add((node, _GKG_ACTION, guideline.concepts[entry["action"]["key"]].iri))
        add((node, _GKG_DIRECTION, URIRef(_GKG + entry["direction"])))
        if entry.get("urgency"):
            add((node, _GKG_URGENCY, URIRef(_GKG + entry["urgency"])))
        for rec_id in entry["guideline_recommendations"]:
            add((node, PROV.wasDerivedFrom, URIRef(f"{patient}/recommendation/{rec_id}")))
    # every conclusion about the patient, and each derived finding, was generated by the reasoning
    conclusions: dict[Any, None] = {}
    findings: dict[Any, None] = {}
    derived: set[Any] = set()
    for part in (produced, added):
        for s, p, o in part:
            if p == _GKG_ABOUT and o == patient:
                conclusions[s] = None
            elif p == _GKG_HAS_FINDING and s == patient:
                findings[o] = None
            elif p == _GKG_ORIGIN and o == _GKG_DERIVED:
                derived.add(s)
    generated = PROV.wasGeneratedBy
    added.extend((c, generated, activity) for c in conclusions)
    added.extend((f, generated, activity) for f in findings if f in derived)
    return produced, added


# the prefixes a report is written with (Turtle, JSON-LD); rdflib binds owl, rdfs and xsd in every graph already
REPORT_PREFIXES: dict[str, str] = {
    "gkg": str(GKG._NS),
    "prov": str(PROV),
    "g": "https://w3id.org/guideline-kg/mid-lumbar-mass/",
    "c": "https://w3id.org/guideline-kg/concept/",
    "rule": "https://w3id.org/guideline-kg/rule/",
    "owl": "http://www.w3.org/2002/07/owl#",
    "rdfs": "http://www.w3.org/2000/01/rdf-schema#",
    "xsd": "http://www.w3.org/2001/XMLSchema#",
}


def report_triples(guideline: Guideline, report: Report, engine: str = "reference") -> set[Triple]:
    """The RDF report's triples: what :func:`report_graph` holds, without an rdflib Graph (for N-Quads)."""
    produced, added = _report_parts(guideline, report, engine)
    return produced.union(added)


def report_graph(guideline: Guideline, report: Report, engine: str = "reference") -> Graph:
    """The RDF report: the patient's facts and conclusions, with PROV-O for the reasoning that made them."""
    out = Graph()
    for prefix, namespace in REPORT_PREFIXES.items():
        out.bind(prefix, namespace)
    produced, added = _report_parts(guideline, report, engine)
    # the constructed triples first, then the added ones, in that order (the Turtle writer's ties follow it)
    out.addN((s, p, o, out) for s, p, o in produced)
    out.addN((s, p, o, out) for s, p, o in added)
    return out


_GKG = str(GKG._NS)
_GKG_ABOUT = URIRef(_GKG + "about")
_GKG_ACTION = URIRef(_GKG + "action")
_GKG_CONFORMS = URIRef(_GKG + "conforms")
_GKG_DERIVED = URIRef(_GKG + "derived")
_GKG_DIRECTION = URIRef(_GKG + "direction")
_GKG_FINGERPRINT = URIRef(_GKG + "fingerprint")
_GKG_GUIDELINE = URIRef(_GKG + "guideline")
_GKG_HAS_FINDING = URIRef(_GKG + "hasFinding")
_GKG_ORIGIN = URIRef(_GKG + "origin")
_GKG_REPORTED = URIRef(_GKG + "ReportedRecommendation")
_GKG_URGENCY = URIRef(_GKG + "urgency")
_OWL_VERSION_INFO = URIRef("http://www.w3.org/2002/07/owl#versionInfo")


__all__ = ["REPORT_PREFIXES", "Report", "build_report", "report_graph", "report_triples", "Namespace"]
