"""guideline-kg: a clinical practice guideline as a knowledge graph, and a reasoner that applies it.

Public API::

    from reasoner import Guideline, recommend, read_patient
    guideline = Guideline.load()
    report = recommend(guideline, read_patient(path))
    print(report.to_json())
"""

from importlib.metadata import PackageNotFoundError, version

from reasoner.engine import ReferenceEngine
from reasoner.errors import InputError
from reasoner.fhir import PatientGraph
from reasoner.guideline import Guideline
from reasoner.patient import read_patient
from reasoner.reasoned import Engine
from reasoner.report import Report, build_report

try:
    __version__ = version("guideline-kg")
except PackageNotFoundError:  # running from a source checkout
    __version__ = "0+unknown"


def recommend(guideline: Guideline, patient: PatientGraph, engine: Engine | None = None) -> Report:
    """Reason over one patient (with the reference engine unless another is given) and return its Report."""
    return build_report(guideline, (engine or ReferenceEngine(guideline)).reason(patient))


__all__ = ["Guideline", "InputError", "read_patient", "recommend"]
