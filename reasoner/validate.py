"""SHACL validation of patient graphs with pySHACL, results as plain dataclasses."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rdflib import RDF, BNode, Graph, Literal, Namespace, URIRef

SH = Namespace("http://www.w3.org/ns/shacl#")
SEVERITY = {SH.Violation: "Violation", SH.Warning: "Warning", SH.Info: "Info"}
# {?name} or {$name} in an sh:message (SHACL 5.3.2)
PLACEHOLDER = re.compile(r"\{[?$]([^{}]*)\}")


def fill_message(template: str, bound: Mapping[str, Any]) -> str:
    """An sh:message with each {?name}/{$name} of a bound variable replaced by the variable's value as text,
    in one pass: a value is copied as it is (a backslash, or a placeholder inside a value, is not read again).
    A placeholder of an unbound variable is left as written. Both engines fill messages with this."""
    return PLACEHOLDER.sub(lambda m: str(bound[m[1]]) if m[1] in bound else m[0], template)


def _format_sparql_based_result_message(self: Any, msg: str, bound_vars: Any) -> str:
    """pySHACL's ``ConstraintComponent._format_sparql_based_result_message`` with the same bindings, filled by
    ``fill_message``. pySHACL's own fills each variable with ``re.sub``, whose replacement text reads
    backslashes as escapes: a value holding ``\\1`` crashed validation, ``\\b`` became a backspace."""
    bound: dict[str, Any] = {}
    if isinstance(bound_vars, (tuple, list)):
        if len(bound_vars) == 4:
            bound.update(bound_vars[3])
            bound_vars = bound_vars[:3]
        if len(bound_vars) == 3:
            for name, node in zip(("this", "path", "value"), bound_vars):
                if node is not None:
                    bound[name] = node
    elif isinstance(bound_vars, dict):
        bound.update(bound_vars)
    else:
        return msg
    return fill_message(msg, bound)


def _fill_messages_literally() -> None:
    """Make pySHACL fill SPARQL-based messages with ``fill_message`` (its one method that does it replaced;
    pySHACL itself unchanged otherwise). Fails loudly if a pySHACL release no longer has that method."""
    from pyshacl.constraints.constraint_component import ConstraintComponent

    if not callable(getattr(ConstraintComponent, "_format_sparql_based_result_message", None)):
        raise RuntimeError("pySHACL has no ConstraintComponent._format_sparql_based_result_message: "
                           "read reasoner/validate.py against this pySHACL release")
    ConstraintComponent._format_sparql_based_result_message = _format_sparql_based_result_message


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

    _fill_messages_literally()
    _conforms, report, _text = shacl_validate(
        data, shacl_graph=shapes, inference="none",
        advanced=True, allow_warnings=True, inplace=False,
    )
    return results_of(report)
