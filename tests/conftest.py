"""Shared fixtures: the guideline loaded once, the shared contract, and reports computed once per input."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest

from reasoner.clock import parse_instant
from reasoner.engines import make_engine
from reasoner.guideline import Guideline
from reasoner.patient import read_patient
from reasoner.report import build_report

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
CASES = ROOT / "tests" / "cases"
EXAMPLES = ROOT / "examples"


def shared_path(*parts: str) -> Path:
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.fail(f"the shared contract is expected beside the repository at {SHARED}; {path} is missing")
    return path


@lru_cache(maxsize=1)
def guideline() -> Guideline:
    return Guideline.load()


@lru_cache(maxsize=1)
def engine():
    return make_engine(guideline())


# The reasoning time tests use unless a case gives its own: reports stay the same from day to day.
TEST_NOW = "2026-01-15T12:00:00Z"


@lru_cache(maxsize=None)
def report_for(path: str, now: str = TEST_NOW) -> dict[str, Any]:
    """The JSON report of one input file with the default engine at a fixed reasoning time, computed once."""
    g = guideline()
    return build_report(g, engine().reason(read_patient(g, Path(path), parse_instant(now)))).data


@lru_cache(maxsize=1)
def report_schema() -> dict[str, Any]:
    return json.loads(shared_path("contract", "report.schema.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def loaded_guideline() -> Guideline:
    return guideline()
