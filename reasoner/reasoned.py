"""What an engine hands the report: the patient, its reasoned graph and the shape results (the engines' contract)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from rdflib import Graph

from reasoner.fhir import PatientGraph
from reasoner.validate import ShapeResult


@dataclass
class Reasoned:
    """What reasoning leaves for the report: the closed graph and the shape results."""

    patient: PatientGraph
    graph: Graph | None
    results: list[ShapeResult]

    @property
    def conforms(self) -> bool:
        return not any(r.severity == "Violation" for r in self.results)


class Engine(Protocol):
    """An engine: built from a Guideline, it reasons over one patient at a time."""

    name: str

    def reason(self, patient: PatientGraph) -> Reasoned: ...
