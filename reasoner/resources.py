"""Where the shipped data (ontology, shapes, queries, examples) lives.

In a built wheel the data sits inside the package under ``_data``; in a source
checkout it is at the top of the repository. Both layouts are the same tree.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def data_root() -> Path:
    """The folder holding ``ontology/``, ``shapes/``, ``queries/`` and ``examples/``."""
    packaged = _PACKAGE / "_data"
    if (packaged / "ontology").is_dir():
        return packaged
    return _PACKAGE.parent


def ontology_dir() -> Path:
    return data_root() / "ontology"


def shapes_dir() -> Path:
    return data_root() / "shapes"


def queries_dir() -> Path:
    return data_root() / "queries"


def examples_dir() -> Path:
    return data_root() / "examples"
