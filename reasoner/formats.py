"""A report in each output format: what ``recommend --format`` writes, shared by the CLI, batches and the store."""

from __future__ import annotations

import json
from typing import Any

from reasoner.guideline import Guideline
from reasoner.report import REPORT_PREFIXES, Report, report_graph, report_triples

FORMATS = ("json", "turtle", "jsonld", "nquads", "text", "html", "fhir")


def render(guideline: Guideline, report: Report, fmt: str, engine: str) -> str:
    """The report as text in ``fmt`` (one of ``FORMATS``)."""
    if fmt == "json":
        return report.to_json()
    if fmt == "text":
        from reasoner.examination import examination
        from reasoner.text import render_text

        return render_text(report.data, examination(guideline))
    if fmt == "fhir":  # the CPG $apply result: a RequestGroup of ServiceRequest proposals
        from reasoner.export_fhir import fhir_request_group

        return fhir_request_group(guideline, report.data)
    if fmt == "html":
        from reasoner.html import render_html

        return render_html(guideline, report)
    if fmt not in FORMATS:
        raise ValueError(f"{fmt!r} is not one of {', '.join(FORMATS)}")
    if fmt == "nquads":  # one named graph, <patient>/report, as the store and the endpoint name it
        from reasoner.nquads import nquads
        from reasoner.population import report_graph_name

        return nquads(report_triples(guideline, report, engine), report_graph_name(report.data["patient"]["iri"]))
    if fmt == "turtle":
        from reasoner.nquads import turtle

        written = turtle(report_triples(guideline, report, engine), REPORT_PREFIXES)
        if written is not None:
            return written
    graph = report_graph(guideline, report, engine)
    if fmt == "jsonld":
        return stable_jsonld(graph.serialize(format="json-ld"))
    return graph.serialize(format="turtle")


def stable_jsonld(text: str) -> str:
    """JSON-LD in one order whatever the run: rdflib writes the nodes, their keys and their values in the order of
    Python sets, which changes from process to process. The node objects, each one's keys and each property's
    values are sorted (their order means nothing in JSON-LD); the members of an ``@list`` keep theirs."""

    def ordered(value: Any, keep_order: bool = False) -> Any:
        if isinstance(value, dict):
            return {key: ordered(value[key], key == "@list") for key in sorted(value)}
        if isinstance(value, list):
            items = [ordered(item) for item in value]
            return items if keep_order else sorted(items, key=lambda item: json.dumps(item, ensure_ascii=False))
        return value

    return json.dumps(ordered(json.loads(text)), indent=2, ensure_ascii=False)


__all__ = ["FORMATS", "render", "stable_jsonld"]
