"""SHACL validation of patient graphs with pySHACL, results as plain dataclasses."""

from __future__ import annotations

from dataclasses import dataclass

from rdflib import RDF, BNode, Graph, Literal, Namespace, URIRef

SH = Namespace("http://www.w3.org/ns/shacl#")
SEVERITY = {SH.Violation: "Violation", SH.Warning: "Warning", SH.Info: "Info"}


@dataclass(frozen=True)
class ShapeResult:
    """One SHACL validation result, as the report lists it."""

    severity: str
    focus: str
    path: str | None
    message: str
    shape: str
    value: str | None = None

    @property
    def sort_key(self) -> tuple[str, ...]:
        return (self.severity, self.focus, self.path or "", self.message, self.shape, self.value or "")

    def __lt__(self, other: "ShapeResult") -> bool:
        return self.sort_key < other.sort_key

    def as_json(self) -> dict[str, str | None]:
        return {"severity": self.severity, "focus": self.focus, "path": self.path,
                "message": self.message, "shape": self.shape}


def _path_text(graph: Graph, node: object) -> str | None:
    if node is None:
        return None
    if isinstance(node, URIRef):
        return str(node)
    items = list(graph.items(node)) if isinstance(node, BNode) and graph.value(node, RDF.first) is not None else []
    if items:
        return " / ".join(str(i) for i in items)
    return str(node)


def results_of(report: Graph) -> list[ShapeResult]:
    results = []
    for result in report.subjects(RDF.type, SH.ValidationResult):
        source = report.value(result, SH.sourceShape)
        constraint = report.value(result, SH.sourceConstraint)
        shape = constraint if isinstance(constraint, URIRef) else source
        messages = sorted(str(m) for m in report.objects(result, SH.resultMessage))
        value = report.value(result, SH.value)
        results.append(ShapeResult(
            severity=SEVERITY.get(report.value(result, SH.resultSeverity), "Violation"),
            focus=str(report.value(result, SH.focusNode)),
            path=_path_text(report, report.value(result, SH.resultPath)),
            message=messages[0] if messages else "does not conform",
            shape=str(shape) if isinstance(shape, URIRef) else "_:anonymous-shape",
            value=str(value) if isinstance(value, (URIRef, Literal)) else None,
        ))
    return unique(results)


def unique(results: list[ShapeResult]) -> list[ShapeResult]:
    """Sorted, one result per (severity, focus, path, message, shape): the report lists each once."""
    seen: dict[tuple[object, ...], ShapeResult] = {}
    for result in sorted(results):
        seen.setdefault((result.severity, result.focus, result.path, result.message, result.shape), result)
    return list(seen.values())


def validate(data: Graph, shapes: Graph) -> list[ShapeResult]:
    """Validate ``data`` (never mutated) against ``shapes``."""
    from pyshacl import validate as shacl_validate  # ~15 ms to import; most runs never call it

    _conforms, report, _text = shacl_validate(
        data, shacl_graph=shapes, inference="none",
        advanced=True, allow_warnings=True, inplace=False,
    )
    return results_of(report)
