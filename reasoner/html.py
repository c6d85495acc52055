"""``recommend --format html``: one self-contained page explaining a patient's report.

Red flags, what to do now and how urgently, what not to do, follow-up, the
differential and the patient's facts; every item opens (``<details>``) onto its
explanation: the patient facts with the FHIR resource each came from, the rule that
fired, the guideline recommendation, its statements quoted from the graph and their
citations. The page loads nothing: no script, no external style, no image, and a
Content-Security-Policy that forbids any request.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from reasoner import resources
from reasoner.errors import InputError
from reasoner.explain import Node, explain
from reasoner.examination import examination
from reasoner.guideline import Guideline
from reasoner.queries import load_folder
from reasoner.report import Report

# the page loads nothing: no script, no external style, no image (our constant, put in the page as it is)
CSP = Markup("default-src 'none'; style-src 'unsafe-inline'; img-src 'none'; base-uri 'none'; form-action 'none'")
KIND_NAMES = {"conclusion": "conclusion", "fact": "patient fact", "inference": "via", "guideline": "guideline",
              "statement": "statement", "citation": "citation"}


@cache
def templates() -> Environment:
    """The package's templates (reasoner/templates), every value escaped unless marked safe."""
    return Environment(loader=PackageLoader("reasoner", "templates"), autoescape=select_autoescape(default=True),
                       undefined=StrictUndefined, keep_trailing_newline=True)


def style() -> Markup:
    """The pages' style sheet (our own file, not data): put in the page as it is."""
    return Markup(templates().loader.get_source(templates(), "page.css")[0])  # noqa: S704


def render_html(guideline: Guideline, report: Report) -> str:
    """The report of one patient as a self-contained HTML page."""
    data = report.data
    info = data["guideline"]
    page: dict[str, Any] = {
        "title": info["title"], "version": info["version"], "iri": info["iri"],
        "identifier": data["patient"]["identifier"], "conforms": data["conforms"],
        "violations": [v["message"] for v in data["violations"] if v["severity"] == "Violation"],
        "warnings": [v["message"] for v in data["violations"] if v["severity"] != "Violation"],
        "applicable": data.get("applicable"), "not_applicable_reason": data.get("not_applicable_reason", ""),
        "not_documented": data.get("not_documented"), "sections": [], "facts": None,
    }
    if data["conforms"] and report.reasoned.graph is not None:
        explainer = _Explainer(guideline, report)
        fors = [r for r in data["recommendations"] if r["direction"] == "for"]
        page["sections"] = [
            _section("red-flags", "Red flags", [explainer.red_flag(f) for f in data["red_flags"]],
                     "No red flag is documented."),
            _section("do-now", "Do now", [explainer.recommendation(r) for r in fors if r.get("urgency")],
                     "Nothing to order now."),
            _section("do-not", "Do not", [explainer.recommendation(r) for r in data["recommendations"]
                                          if r["direction"] == "against"], "The guideline advises against nothing here."),
            _section("follow-up", "Follow-up", [*(_imaging(guideline, i) for i in data.get("imaging_results", [])),
                                                *(explainer.recommendation(r) for r in fors if not r.get("urgency"))],
                     "No imaging result and no follow-up step yet: follow-up depends on the imaging result."),
            _section("differential", "Differential diagnosis",
                     [explainer.differential(d) for d in data["differential"]], "No differential diagnosis."),
        ]
        page["facts"] = _facts(guideline, data)
    return templates().get_template("report.html").render(page=page, csp=CSP, style=style(), kind_names=KIND_NAMES)


def _section(ident: str, title: str, entries: list[dict[str, Any]], empty: str) -> dict[str, Any]:
    return {"id": ident, "title": title, "entries": entries, "empty": empty}


def _imaging(guideline: Guideline, result: dict[str, Any]) -> dict[str, Any]:
    def label(key: str) -> str:
        concept = guideline.concepts.get(key)
        return concept.label if concept else key

    return {"kind": "imaging", "study": label(result["study"]),
            "conclusions": ", ".join(label(c) for c in result["conclusions"]) or "no conclusion matched",
            "source": result.get("source")}


class _Explainer:
    """Items of the page with their explanation trees (``reasoner.explain``)."""

    def __init__(self, guideline: Guideline, report: Report) -> None:
        self.guideline = guideline
        self.report = report
        self._trees: dict[str, Node | None] = {}

    def _roots(self, key: str, kind: str, direction: str | None = None) -> list[Node]:
        if key not in self._trees:
            try:
                self._trees[key] = explain(self.guideline, self.report, key)
            except InputError:
                self._trees[key] = None
        tree = self._trees[key]
        if tree is None:
            return []
        roots = []
        for root in tree.children:
            element = next((c for c in root.children if c.kind == "guideline"), None)
            if element is None or not element.label.startswith(kind + ":"):
                continue
            if direction and not (element.detail or "").startswith(direction + " "):
                continue
            roots.append(root)
        return roots

    def recommendation(self, rec: dict[str, Any]) -> dict[str, Any]:
        key, direction = rec["action"]["key"], rec["direction"]
        return {"kind": "recommendation", "css": f"recommendation {direction}", "direction": direction,
                "urgency": rec.get("urgency"), "label": rec["action"]["label"], "condition": rec.get("condition"),
                "text": rec["text"], "strength": rec.get("strength", "not graded"),
                "statements": ", ".join(rec["statements"]), "citations": ", ".join(rec["citations"]),
                "codes": ", ".join(f"{c['system'].rsplit('/', 1)[-1]} {c['code']}" for c in rec["action"].get("codes", [])),
                "roots": self._roots(key, "recommendation", direction)}

    def red_flag(self, flag: dict[str, Any]) -> dict[str, Any]:
        return {"kind": "red-flag", "css": "red-flag", "label": flag["label"], "suggests": ", ".join(flag["suggests"]),
                "statements": ", ".join(flag["statements"]), "citations": ", ".join(flag["citations"]),
                "roots": self._roots(flag["key"], "red flag")}

    def differential(self, entry: dict[str, Any]) -> dict[str, Any]:
        return {"kind": "differential", "css": "differential", "label": entry["label"], "nature": entry.get("nature"),
                "support": ", ".join(entry.get("supported_by", [])) or "nothing documented",
                "statements": ", ".join(entry["statements"]), "citations": ", ".join(entry["citations"]),
                "roots": self._roots(entry["key"], "differential")}


def _facts(guideline: Guideline, data: dict[str, Any]) -> dict[str, Any]:
    findings = [{"label": f["label"], "status": f["status"],
                 "origin": f["origin"] + (f" from {', '.join(f['derived_from'])}" if f.get("derived_from") else ""),
                 "source": ", ".join(f.get("source", []))} for f in data.get("findings", [])]
    facts: dict[str, Any] = {"findings": findings, "context": data.get("context", []),
                             "not_documented": ", ".join(data.get("not_documented", [])), "not_documented_text": ""}
    if facts["not_documented"]:
        facts["not_documented_text"] = not_documented_text(guideline)
    return facts


def not_documented_text(guideline: Guideline) -> str:
    """How the page introduces the examination items left undocumented, with their statements (from the graph)."""
    exam = examination(guideline)
    return f"{exam.not_documented_text} ({exam.statements})"


__all__ = ["render_html", "templates", "style", "CSP"]
