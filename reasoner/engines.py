"""The engines a patient can be reasoned with, by name. ``reference`` is the definition of correct."""

from __future__ import annotations

import contextlib
import gc
import importlib
from collections.abc import Iterator

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


def settle() -> None:
    """In a process that reasons over many patients: keep what is loaded out of the cyclic GC's way.

    The guideline, the engine and their caches (some 100,000 objects) live as long as the
    process; every full collection walks them all again (~50 ms, ~0.3 ms a patient over a
    batch). ``gc.freeze`` moves them, once collected, to a generation no collection walks.
    For worker and server processes; in-process callers use ``settled``.
    """
    gc.collect()
    gc.freeze()


@contextlib.contextmanager
def settled() -> Iterator[None]:
    """``settle`` for the duration of a block, the frozen objects handed back to the collector after."""
    settle()
    try:
        yield
    finally:
        gc.unfreeze()
