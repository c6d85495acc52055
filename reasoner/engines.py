"""The engines a patient can be reasoned with, by name. ``reference`` is the definition of correct."""

from __future__ import annotations

import importlib

from reasoner.engine import Engine, ReferenceEngine
from reasoner.guideline import Guideline

# name -> "module:Class"; each takes the Guideline and has reason(patient) -> Reasoned.
ENGINES = {
    "reference": "reasoner.engine:ReferenceEngine",
    "fast": "reasoner.fast:FastEngine",
}


def available() -> list[str]:
    names = []
    for name, target in ENGINES.items():
        try:
            importlib.import_module(target.split(":")[0])
            names.append(name)
        except ModuleNotFoundError:
            pass
    return names


def default_engine() -> str:
    return "fast" if "fast" in available() else "reference"


def make_engine(guideline: Guideline, name: str | None = None) -> Engine:
    name = name or default_engine()
    if name == "reference":
        return ReferenceEngine(guideline)
    module_name, class_name = ENGINES[name].split(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    return cls(guideline)
