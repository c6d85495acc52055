"""Property-based fuzzing of FHIR input: a mutated valid bundle is refused cleanly or reasoned over, never a crash.

Mutations of ``examples/palpable-mass-fever.json`` (a bundle that reaches every part of the
mapping: conditions with body sites, observations with quantities, vital signs, statuses):
deleted fields, swapped types, huge strings and numbers, unpaired surrogates, control and
bidi characters, deep nesting, duplicated entries. Every outcome is an ``InputError``
(exit 2) or a patient graph whose report can be written as UTF-8 JSON (exit 0 or 1).
The examples are derandomized, so the suite sees the same cases on every run.
"""

from __future__ import annotations

import copy
import io
import json
import logging
import sys
from functools import lru_cache
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import EXAMPLES, guideline
from reasoner import engines
from reasoner.cli import main
from reasoner.errors import InputError
from reasoner.patient import parse_patient
from reasoner.report import build_report

SEED = json.loads((EXAMPLES / "palpable-mass-fever.json").read_text(encoding="utf-8"))
ENGINE = "fast" if "fast" in engines.available() else "reference"
SETTINGS = settings(max_examples=100, deadline=None, database=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
# Raw number tokens json.dumps cannot write (over Python's 4300-digit int limit, or out of double range).
RAW_NUMBERS = ["1" * 5000, "9" * 100_000, "1e999999999", "-1e99999999999999999999", "1e-999999999",
               "0." + "0" * 10_000 + "1", "1E+308", "-0", "1" + "0" * 400]
HOSTILE_TEXT = ["\ud800", "x\udfffy", "\u202eevil", "\x00", "\u200b", "\ufeff", "a\r\nb", "\U0001F600",
                "A" * 200_000, "<script>alert(1)</script>", "../../etc/passwd", "file:///etc/passwd",
                "http://127.0.0.1:9/", "urn:uuid:", "Patient/", "%00", "\\u0000", ""]


def _nested(depth: int) -> Any:
    value: Any = "deep"
    for _ in range(depth):
        value = [value]
    return value


scalar = st.one_of(
    st.none(), st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
    st.sampled_from(HOSTILE_TEXT),
    st.sampled_from([f"\x01RAW{i}\x01" for i in range(len(RAW_NUMBERS))]),
)
value = st.recursive(scalar, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)), max_leaves=8)
value = st.one_of(value, st.integers(min_value=30, max_value=200).map(_nested))


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(doc, dict):
        for key, item in doc.items():
            found.extend(_paths(item, (*prefix, key)))
    elif isinstance(doc, list):
        for index, item in enumerate(doc):
            found.extend(_paths(item, (*prefix, index)))
    return found


def _apply(doc: Any, path: tuple[Any, ...], operation: str, new: Any) -> Any:
    if not path:
        return new if operation == "replace" else doc
    parent = doc
    for step in path[:-1]:
        parent = parent[step]
    last = path[-1]
    if operation == "delete":
        del parent[last]
    elif operation == "replace":
        parent[last] = new
    elif operation == "duplicate" and isinstance(parent, list):
        parent.insert(last, copy.deepcopy(parent[last]))
    elif operation == "rename" and isinstance(parent, dict):
        parent[str(new)[:20] if not isinstance(new, str) else new[:20]] = parent.pop(last)
    elif operation == "wrap":
        parent[last] = [parent[last]]
    return doc


@st.composite
def mutated_bundles(draw: st.DrawFn) -> str:
    doc = copy.deepcopy(SEED)
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        paths = _paths(doc)
        path = paths[draw(st.integers(min_value=0, max_value=len(paths) - 1))]
        operation = draw(st.sampled_from(["delete", "replace", "replace", "replace", "duplicate", "rename", "wrap"]))
        doc = _apply(doc, path, operation, draw(value))
    text = json.dumps(doc)  # ensure_ascii: unpaired surrogates travel as \ud800 escapes, as they would on the wire
    for i, raw in enumerate(RAW_NUMBERS):
        text = text.replace(json.dumps(f"\x01RAW{i}\x01"), raw)
    return text


@lru_cache(maxsize=1)
def _engine() -> Any:
    return engines.make_engine(guideline(), ENGINE)


@SETTINGS
@given(mutated_bundles())
def test_a_mutated_bundle_is_refused_with_an_input_error_or_reported(text: str) -> None:
    try:
        patient = parse_patient(guideline(), text, "json", "fuzzed.json")
    except InputError as exc:
        message = str(exc)
        assert message and "\n" not in message and len(message) < 1000
        message.encode("utf-8")  # printable on a UTF-8 stderr
        return
    for triple in patient.graph:
        for term in triple:
            str(term).encode("utf-8")
    report = build_report(guideline(), _engine().reason(patient))
    report.to_json().encode("utf-8")


@settings(max_examples=15, deadline=None, database=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture])
@given(text=mutated_bundles())
def test_the_command_line_answers_every_mutated_bundle_with_0_1_or_2(text: str, tmp_path_factory) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "bundle.json"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    out = path.parent / "report.json"
    with pytest.MonkeyPatch.context() as patch:
        stderr = io.StringIO()
        patch.setattr(sys, "stderr", stderr)
        as_outside = logging.StreamHandler(stderr)  # a logged warning reaches stderr outside pytest
        as_outside.setLevel(logging.WARNING)
        logging.getLogger().addHandler(as_outside)
        try:
            code = main(["recommend", str(path), "--engine", ENGINE, "--out", str(out)])
        finally:
            logging.getLogger().removeHandler(as_outside)
    err = stderr.getvalue()
    assert code in (0, 1, 2), err
    assert "Traceback" not in err
    if code == 2:
        assert err.count("\n") == 1 and not out.exists(), err
        assert "could not process the input" not in err, f"a crash, not a refusal: {err}"
    else:
        assert json.loads(out.read_text(encoding="utf-8"))["conforms"] is (code == 0)
