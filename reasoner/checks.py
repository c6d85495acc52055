"""Checking a guideline encoding: the guideline shapes (``shapes/guideline.ttl``) and the QC queries.

A QC query is a file ``queries/qc/<name>-violation.rq``: a SELECT whose empty result is a
pass, each row naming the offending ``?entity`` and its ``?value``. Its ``#+ severity:``
header (Violation unless it says Warning) decides whether a row fails the check.

The encoding is read with the same safe Turtle parsing as the guideline loader (text
only: nothing it names, owl:imports included, is ever fetched). The rule files the
encoding is applied with are described beside it, as ``rule:<name> dcterms:source
"queries/rules/<name>.rq"``, so that a QC query can find a rule with no file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rdflib import Graph, Literal
from rdflib.namespace import DCTERMS

from reasoner import resources
from reasoner.errors import GuidelineError
from reasoner.guideline import Guideline
from reasoner.queries import QueryFile, load_folder
from reasoner.validate import ShapeResult, validate

SEVERITIES = ("Violation", "Warning", "Info")

@dataclass(frozen=True, order=True)
class QcResult:
    """One row of a QC query: the offending entity and value."""

    check: str
    severity: str
    entity: str
    value: str | None
    summary: str

    def as_json(self) -> dict[str, str | None]:
        return {"check": self.check, "severity": self.severity, "entity": self.entity,
                "value": self.value, "summary": self.summary}


@dataclass
class CheckReport:
    """The outcome of checking one encoding. It conforms when nothing has severity Violation."""

    source: str
    files: list[Path]
    triples: int
    shapes: list[ShapeResult] = field(default_factory=list)
    qc: list[QcResult] = field(default_factory=list)
    checks_run: list[str] = field(default_factory=list)

    @property
    def conforms(self) -> bool:
        return not any(r.severity == "Violation" for r in [*self.shapes, *self.qc])

    def count(self, severity: str) -> int:
        return sum(1 for r in [*self.shapes, *self.qc] if r.severity == severity)

    def as_json(self) -> dict[str, object]:
        return {
            "source": self.source,
            "files": [str(p) for p in self.files],
            "triples": self.triples,
            "conforms": self.conforms,
            "checks": self.checks_run,
            "shapes": [{**r.as_json(), "value": r.value} for r in self.shapes],
            "qc": [r.as_json() for r in self.qc],
        }


def qc_queries(queries: Path | None = None) -> dict[str, QueryFile]:
    """The QC queries of ``queries/qc/``, by name (file stem)."""
    folder = (queries or resources.queries_dir()) / "qc"
    found = load_folder(folder)
    for name, query in found.items():
        if not name.endswith("-violation"):
            raise GuidelineError(f"qc/{name}.rq: a QC query is named <check>-violation.rq")
        if not query.summary:
            raise GuidelineError(f"qc/{name}.rq: a QC query needs a '#+ summary:' header")
        if query.first("severity", "Violation") not in SEVERITIES:
            raise GuidelineError(f"qc/{name}.rq: '#+ severity:' must be one of {', '.join(SEVERITIES)}")
        if query.prepared().algebra.name != "SelectQuery":
            raise GuidelineError(f"qc/{name}.rq: a QC query must be a SELECT")
    return found


def rule_files_graph(guideline: Guideline) -> Graph:
    """The rule files the encoding is applied with, one ``dcterms:source`` triple each."""
    graph = Graph()
    for rule in guideline.rules:
        graph.add((rule.iri, DCTERMS.source, Literal(f"queries/rules/{rule.query.path.name}")))
    return graph


def run_qc(data: Graph, queries: dict[str, QueryFile]) -> list[QcResult]:
    """Run every QC query over ``data`` (not mutated); one result per row."""
    results: list[QcResult] = []
    for name, query in sorted(queries.items()):
        check = name.removesuffix("-violation")
        severity = query.first("severity", "Violation")
        for row in data.query(query.prepared()):
            values = row.asdict()
            entity = values.get("entity")
            value = values.get("value")
            results.append(QcResult(check, severity, str(entity) if entity is not None else "",
                                    str(value) if value is not None else None, query.summary))
    return sorted(set(results), key=lambda r: (r.check, r.severity, r.entity, r.value or "", r.summary))


def check_graph(data: Graph, guideline: Guideline, source: str = "", files: list[Path] | None = None) -> CheckReport:
    """Shapes and QC over an encoding graph (not mutated), the rule files taken from ``guideline``."""
    shapes = validate(data, guideline.shape_graph("guideline"))
    queries = qc_queries()
    described = Graph()
    described += data
    described += rule_files_graph(guideline)
    return CheckReport(
        source=source, files=files or [], triples=len(data), shapes=shapes,
        qc=run_qc(described, queries), checks_run=[f"qc/{name}" for name in sorted(queries)],
    )


def check_encoding(path: Path | None = None) -> CheckReport:
    """Check the shipped encoding, or the Turtle file or folder of Turtle files at ``path``.

    Raises GuidelineError (one line, naming the file) when a file cannot be read or parsed.
    """
    if path is not None and not path.exists():
        raise GuidelineError(f"{path}: no such file or folder")
    guideline = Guideline.load(ontology=path)
    if len(guideline.graph) == 0:
        raise GuidelineError(f"{path}: holds no triples; there is no encoding to check")
    source = str(path) if path is not None else "the shipped encoding"
    return check_graph(guideline.graph, guideline, source, guideline.files)
