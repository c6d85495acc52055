"""guideline-kg: a clinical practice guideline as a knowledge graph, and a reasoner that applies it.

Public API::

    from reasoner import Guideline, recommend, read_patient
    guideline = Guideline.load()
    report = recommend(guideline, read_patient(path))
    print(report.to_json())
"""

from importlib.metadata import PackageNotFoundError, version

from reasoner.errors import InputError
from reasoner.guideline import Guideline
from reasoner.patient import read_patient
from reasoner.engine import recommend

try:
    __version__ = version("guideline-kg")
except PackageNotFoundError:  # running from a source checkout
    __version__ = "0+unknown"

__all__ = ["Guideline", "InputError", "read_patient", "recommend"]
