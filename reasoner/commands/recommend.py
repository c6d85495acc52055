"""``guideline-kg recommend`` and ``guideline-kg explain``."""

from __future__ import annotations

import argparse
from pathlib import Path

from reasoner.errors import InputError
from reasoner.engines import available, make_engine
from reasoner.guideline import Guideline
from reasoner.output import emit
from reasoner.patient import read_patient
from reasoner.report import Report, build_report, report_graph

FORMATS = ("json", "turtle", "jsonld", "nquads", "text", "html", "fhir")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("recommend", help="what the guideline recommends for a patient, and why")
    p.add_argument("input", type=Path, nargs="?", help="a FHIR R4 Bundle (JSON), a patient graph (Turtle, JSON-LD), "
                   "or for batch mode a folder of bundles, an NDJSON file of bundles or a FHIR Bulk Data export folder")
    p.add_argument("--format", choices=FORMATS, default="json")
    p.add_argument("--engine", choices=sorted(available()), default=None,
                   help="reasoning engine (default: fast when available; reference is the definition of correct)")
    p.add_argument("--out", type=Path, help="write here instead of stdout (batch mode: a folder)")
    p.add_argument("--jobs", type=int, default=1, help="batch mode: worker processes")
    p.add_argument("--ndjson", action="store_true", help="batch mode: one JSON report per line on stdout")
    p.add_argument("--endpoint", help="read the patient from a SPARQL store and write the report back")
    p.add_argument("--patient", help="with --endpoint: the patient's IRI")
    p.add_argument("--graph-store", help="with --endpoint: Graph Store Protocol URL")
    p.add_argument("--auth", help="with --endpoint: user:password (HTTP Digest or Basic)")
    p.set_defaults(func=run_recommend)

    e = sub.add_parser("explain", help="the derivation of one conclusion, as a tree")
    e.add_argument("input", type=Path)
    e.add_argument("key", help="a recommendation's action key, a red flag or a diagnosis key")
    e.add_argument("--format", choices=("text", "json", "turtle"), default="text")
    e.add_argument("--engine", choices=sorted(available()), default=None)
    e.set_defaults(func=run_explain)


def render(guideline: Guideline, report: Report, fmt: str, engine: str) -> str:
    if fmt == "json":
        return report.to_json()
    if fmt == "text":
        from reasoner.text import render_text

        return render_text(report.data)
    if fmt == "fhir":  # the CPG $apply result: a RequestGroup of ServiceRequest proposals
        from reasoner.export_fhir import fhir_request_group

        return fhir_request_group(guideline, report.data)
    if fmt == "html":
        from reasoner.html import render_html

        return render_html(guideline, report)
    graph = report_graph(guideline, report, engine)
    if fmt == "nquads":  # one named graph, <patient>/report, as the store and the endpoint name it
        from reasoner.population import nquads, report_graph_name

        return nquads(graph, report_graph_name(report.data["patient"]["iri"]))
    return graph.serialize(format="json-ld" if fmt == "jsonld" else "turtle")


def run_recommend(args: argparse.Namespace) -> int:
    if args.endpoint:
        from reasoner.store import recommend_from_store

        return recommend_from_store(args)
    if args.input is None:
        raise InputError("recommend needs an input file (or --endpoint and --patient)")
    if args.input.is_dir() or args.input.suffix.lower() == ".ndjson":
        from reasoner.batch import run_batch

        return run_batch(args)
    guideline = Guideline.load()
    engine = make_engine(guideline, args.engine)
    patient = read_patient(guideline, args.input)
    report = build_report(guideline, engine.reason(patient))
    emit(render(guideline, report, args.format, engine.name), args.out)
    return 0 if report.conforms else 1


def run_explain(args: argparse.Namespace) -> int:
    from reasoner.explain import explain, render_explanation

    guideline = Guideline.load()
    engine = make_engine(guideline, args.engine)
    patient = read_patient(guideline, args.input)
    reasoned = engine.reason(patient)
    report = build_report(guideline, reasoned)
    tree = explain(guideline, report, args.key)
    emit(render_explanation(guideline, tree, args.format, report))
    return 0 if report.conforms else 1
