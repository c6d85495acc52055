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

import re
from dataclasses import dataclass, field
from pathlib import Path

from rdflib import Graph, Literal, URIRef
from rdflib.namespace import DCTERMS, RDF

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


@dataclass(frozen=True)
class Location:
    """Where an offending triple is written: a file, and its line when it can be found in the text."""

    file: str
    line: int | None

    def __str__(self) -> str:
        return f"{self.file}:{self.line}" if self.line is not None else self.file


class Locator:
    """Finds the file (and line) that states a subject, or a subject's predicate.

    rdflib's Turtle parser keeps no line numbers of triples, so each file is parsed on its own
    (to know which file states the triple) and its text searched for the subject written at
    the start of a line, in full or as a prefixed name, then for the predicate within that
    subject's statement.
    """

    def __init__(self, files: list[Path]) -> None:
        self.files: list[tuple[Path, Graph, list[str]]] = []
        for path in files:
            graph = Graph()
            try:
                text = path.read_text(encoding="utf-8")
                graph.parse(data=text, format="turtle", publicID=path.resolve().as_uri())
            except Exception:  # noqa: BLE001 - a file that did not parse again is simply not located
                continue
            self.files.append((path, graph, text.splitlines()))

    def locate(self, subject: str, predicate: str | None = None, value: str | None = None) -> Location | None:
        """The first file stating ``subject`` with ``predicate`` (or with some predicate to the IRI ``value``),
        else the first stating ``subject`` at all."""
        s = URIRef(subject)
        p = URIRef(predicate) if predicate and predicate.startswith(("http://", "https://", "urn:")) else None
        o = URIRef(value) if value and value.startswith(("http://", "https://", "urn:")) else None
        if p is None and o is not None:
            for path, graph, lines in self.files:
                for found in graph.predicates(s, o):
                    return Location(str(path), self._line(graph, lines, s, URIRef(found)))
        for wanted in ((s, p), (s, None)) if p is not None else ((s, None),):
            for path, graph, lines in self.files:
                if (wanted[0], wanted[1], None) in graph:
                    return Location(str(path), self._line(graph, lines, s, wanted[1]))
        return None

    @staticmethod
    def _forms(graph: Graph, iri: URIRef) -> list[str]:
        forms = [f"<{iri}>"]
        for prefix, namespace in graph.namespaces():
            if str(iri).startswith(str(namespace)) and len(str(iri)) > len(str(namespace)):
                forms.append(f"{prefix}:{str(iri)[len(str(namespace)):]}")
        if iri == RDF.type:
            forms.append("a")
        return forms

    def _line(self, graph: Graph, lines: list[str], subject: URIRef, predicate: URIRef | None) -> int | None:
        subjects = [re.compile(rf"^\s*{re.escape(f)}(\s|$)") for f in self._forms(graph, subject)]
        predicates = ([re.compile(rf"(^|[\s;]){re.escape(f)}(\s|$)") for f in self._forms(graph, predicate)]
                      if predicate is not None else [])
        for number, line in enumerate(lines):
            if not any(pattern.search(line) for pattern in subjects):
                continue
            if not predicates:
                return number + 1
            for offset, text in enumerate(lines[number:], start=number):
                # the subject itself is written first: look for the predicate after it on that line
                probe = text if offset > number else subjects_removed(text, subjects)
                if any(pattern.search(probe) for pattern in predicates):
                    return offset + 1
                if text.rstrip().endswith(" .") or text.rstrip() == ".":
                    break
        return None


def subjects_removed(line: str, patterns: list[re.Pattern[str]]) -> str:
    for pattern in patterns:
        line = pattern.sub(" ", line, count=1)
    return line


@dataclass
class CheckReport:
    """The outcome of checking one encoding. It conforms when nothing has severity Violation."""

    source: str
    files: list[Path]
    triples: int
    shapes: list[ShapeResult] = field(default_factory=list)
    qc: list[QcResult] = field(default_factory=list)
    checks_run: list[str] = field(default_factory=list)
    locator: Locator | None = None

    def where(self, subject: str, predicate: str | None = None, value: str | None = None) -> Location | None:
        """The file (and line) of an offending triple, when the encoding was read from files."""
        return self.locator.locate(subject, predicate, value) if self.locator is not None and subject else None

    def _located(self, entry: dict[str, object], subject: str, predicate: str | None,
                 value: str | None = None) -> dict[str, object]:
        place = self.where(subject, predicate, value)
        return {**entry, "file": place.file if place else None, "line": place.line if place else None}

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
            "shapes": [self._located({**r.as_json(), "value": r.value}, r.focus, r.path) for r in self.shapes],
            "qc": [self._located(dict(r.as_json()), r.entity, None, r.value) for r in self.qc],
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
    report = check_graph(guideline.graph, guideline, source, guideline.files)
    if report.shapes or report.qc:
        report.locator = Locator(guideline.files)
    return report
