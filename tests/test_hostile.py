"""The hostile corpus (tests/hostile/): every case is refused or reported, never a crash, never partial output.

Each case of ``manifest.json`` gets what the FHIR contract assigns it: ``refused`` is exit 2,
exactly one line on stderr, no traceback, nothing on stdout and no output file;
``nonconforming`` is exit 1 with a report whose ``conforms`` is false and which lists a
Violation. ``benign.json`` holds odd but valid input: exit 0. SPARQL cases go through
``guideline-kg query FILE``, guideline encodings through ``guideline-kg check-guideline``.

Everything runs in-process through ``reasoner.cli.main``. Loading the guideline and the
engine does not depend on the input, so it is done once for the module (see
``_loaded_once``); the input is still read, checked and reasoned over on every run.
"""

from __future__ import annotations

import json
import logging
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest
from rdflib.plugins.sparql import prepareQuery

from conftest import ROOT, TEST_NOW, guideline
from reasoner.clock import parse_instant
from reasoner import engines
from reasoner.cli import build_parser, main
from reasoner.guideline import Guideline
from reasoner.queries import local_only_problem

HOSTILE = ROOT / "tests" / "hostile"
ENGINE = "fast" if "fast" in engines.available() else "reference"
PATIENT_KINDS = {"fhir", "turtle", "jsonld", "ntriples", "rdfxml"}
EXIT = {"refused": 2, "nonconforming": 1, "ok": 0}
# The reference engine takes seconds per conforming patient: then only a few benign cases run.
BENIGN_WITH_REFERENCE = 10
# What reasoner.cli.main prints for an unexpected exception: a crash kept from the user, not a refusal.
MASKED_CRASH = "could not process the input"


def _cases(name: str) -> list[dict[str, str]]:
    return json.loads((HOSTILE / name).read_text(encoding="utf-8"))


MANIFEST = _cases("manifest.json")
BENIGN = _cases("benign.json")
if ENGINE == "reference":
    BENIGN = BENIGN[:BENIGN_WITH_REFERENCE]


@pytest.fixture(autouse=True)
def _loaded_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The shipped guideline and the engine, loaded once; every input is still processed in full."""
    shipped = guideline()  # loaded (once per session) before load is replaced
    real_load = Guideline.load.__func__  # type: ignore[attr-defined]

    def load(cls: type[Guideline], ontology: Path | None = None, queries: Path | None = None,
             shapes: Path | None = None) -> Guideline:
        if ontology is None and queries is None and shapes is None:
            return shipped
        return real_load(cls, ontology, queries, shapes)

    monkeypatch.setattr(Guideline, "load", classmethod(load))
    real_make = engines.make_engine
    made: dict[str | None, Any] = {}

    def make_engine(g: Guideline, name: str | None = None) -> Any:
        if g is not shipped:
            return real_make(g, name)
        if name not in made:
            made[name] = _engine(name)
        return made[name]

    import reasoner.commands.recommend as recommend

    monkeypatch.setattr(recommend, "make_engine", make_engine)


@lru_cache(maxsize=None)
def _engine(name: str | None) -> Any:
    return engines.make_engine(guideline(), name)


def _command(case: dict[str, str], *extra: str) -> list[str]:
    path = str(HOSTILE / case["file"])
    if case["kind"] == "sparql":
        return ["query", path, *extra]
    if case["kind"] == "guideline":
        return ["check-guideline", path, *extra]
    return ["recommend", path, "--engine", ENGINE, "--now", TEST_NOW, *extra]


def _run(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, str, str]:
    # Outside pytest a library's logged warning reaches stderr (logging's last resort handler);
    # pytest's log capture would hide it, so it is sent to the captured stderr here as it would be.
    as_outside = logging.StreamHandler(sys.stderr)
    as_outside.setLevel(logging.WARNING)
    logging.getLogger().addHandler(as_outside)
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse and a few commands exit this way; the code still counts
        code = exc.code if isinstance(exc.code, int) else 2
    finally:
        logging.getLogger().removeHandler(as_outside)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _assert_refused(code: int, out: str, err: str, why: str) -> None:
    assert code == 2, f"{why}: exit {code}, stderr {err[:300]!r}"
    assert "Traceback" not in err, f"{why}: {err}"
    assert out == "", f"{why}: something on stdout: {out[:200]!r}"
    assert err.endswith("\n") and err.count("\n") == 1, f"{why}: stderr is not one line: {err[:400]!r}"
    assert MASKED_CRASH not in err, f"{why}: a crash, not a refusal: {err[:300]!r}"


def _id(case: dict[str, str]) -> str:
    return Path(case["file"]).name


def test_the_commands_the_corpus_needs_are_registered() -> None:
    commands = build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert {"recommend", "query", "check-guideline"} <= set(commands)


def test_the_corpus_is_large_and_covers_every_input_kind() -> None:
    assert len(MANIFEST) >= 300
    kinds = {c["kind"] for c in MANIFEST}
    assert {"fhir", "turtle", "jsonld", "ntriples", "sparql", "guideline"} <= kinds
    for case in [*MANIFEST, *BENIGN]:
        assert (HOSTILE / case["file"]).is_file(), case["file"]


@pytest.mark.parametrize("case", [c for c in MANIFEST if c["expect"] == "refused"], ids=_id)
def test_refused_input_exits_2_with_one_line_and_writes_nothing(
        case: dict[str, str], capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, err = _run(capsys, _command(case))
    if case["kind"] == "guideline":  # an encoding may also be read and found not to conform
        assert code in (1, 2), f"{case['why']}: exit {code}, stderr {err[:300]!r}"
        assert "Traceback" not in err
        if code == 2:
            _assert_refused(code, out, err, case["why"])
        return
    _assert_refused(code, out, err, case["why"])
    if case["kind"] in PATIENT_KINDS:
        target = tmp_path / "out" / "report.json"
        code, out, err = _run(capsys, _command(case, "--out", str(target)))
        _assert_refused(code, out, err, case["why"])
        leftovers = sorted(p.name for p in target.parent.iterdir()) if target.parent.exists() else []
        assert leftovers == [], f"{case['why']}: an output or temporary file was written: {leftovers}"


REACHING_OUT = [c for c in MANIFEST if c["kind"] == "sparql" and any(
    word in Path(c["file"]).stem.split("-") for word in ("service", "from"))]


@pytest.mark.parametrize("case", REACHING_OUT, ids=_id)
def test_queries_naming_a_service_or_a_graph_are_caught_by_the_query_check(case: dict[str, str]) -> None:
    """Straight at ``local_only_problem``: SERVICE, FROM and FROM NAMED anywhere in a query."""
    text = (HOSTILE / case["file"]).read_text(encoding="utf-8")
    try:
        prepared = prepareQuery(text)
    except Exception:  # rdflib cannot parse it at all: refused before the check
        return
    assert local_only_problem(prepared) is not None, case["why"]


@pytest.mark.parametrize("case", [c for c in MANIFEST if c["expect"] == "nonconforming"], ids=_id)
def test_nonconforming_input_exits_1_with_violations_listed(
        case: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys, _command(case, "--format", "json"))
    assert code == 1, f"{case['why']}: exit {code}, stderr {err[:300]!r}"
    assert "Traceback" not in err
    report = json.loads(out)
    assert report["conforms"] is False
    assert any(v["severity"] == "Violation" for v in report["violations"]), case["why"]


@pytest.mark.parametrize("case", BENIGN, ids=_id)
def test_odd_but_valid_input_is_reasoned_over(case: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys, _command(case, "--format", "json"))
    assert code == 0, f"{case['why']}: exit {code}, stderr {err[:300]!r}"
    assert err == ""
    assert json.loads(out)["conforms"] is True


def test_the_process_is_still_healthy_after_the_corpus(capsys: pytest.CaptureFixture[str]) -> None:
    """Runs last in this module: the same benign input gives the same report as before any hostile case."""
    baseline = BENIGN[0]
    code, out, err = _run(capsys, _command(baseline, "--format", "json"))
    assert code == 0, err
    fresh = engines.make_engine(guideline(), ENGINE)
    from reasoner.patient import read_patient
    from reasoner.report import build_report

    expected = build_report(guideline(), fresh.reason(read_patient(guideline(), HOSTILE / baseline["file"],
                                                                   parse_instant(TEST_NOW))))
    assert out == expected.to_json()
