"""check-guideline names the file and line of each offending triple; the numeric additions have shapes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from reasoner.checks import Locator
from reasoner.cli import main

ROOT = Path(__file__).resolve().parents[1]


def encoding_with(tmp_path: Path, old: str, new: str, name: str = "additions.ttl") -> tuple[Path, int]:
    """A copy of the shipped encoding with one edit in one file; the 1-based line of the edit."""
    folder = tmp_path / "ontology"
    shutil.copytree(ROOT / "ontology", folder)
    path = folder / name
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, old
    line = text[: text.index(old)].count("\n") + 1
    path.write_text(text.replace(old, new), encoding="utf-8")
    return folder, line


def test_a_threshold_in_words_is_a_shacl_violation_named_with_file_and_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder, line = encoding_with(tmp_path, "gkg:minInclusive 38.0 ;", 'gkg:minInclusive "thirty-eight" ;')
    assert main(["check-guideline", str(folder)]) == 1
    out = capsys.readouterr().out
    assert "shape:Threshold-min-inclusive" in out and "thirty-eight" in out
    assert f"  at:      {folder / 'additions.ttl'}:{line}" in out
    assert out.rstrip().endswith("FAIL: 1 violation, 0 warnings")


def test_json_results_carry_file_and_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder, line = encoding_with(tmp_path, "gkg:offset -32.0 ; gkg:factor 5.0 ;", "gkg:offset -32.0 ; gkg:factor -1.0 ;")
    assert main(["check-guideline", str(folder), "--format", "json"]) == 1
    data = json.loads(capsys.readouterr().out)
    (result,) = data["shapes"]
    assert result["shape"].endswith("UnitConversion-factor")
    assert result["file"] == str(folder / "additions.ttl") and result["line"] == line


def test_a_threshold_outside_its_measurements_plausible_range_is_a_violation(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder, _ = encoding_with(tmp_path, "gkg:minInclusive 38.0 ;", "gkg:minInclusive 380.0 ;")
    assert main(["check-guideline", str(folder)]) == 1
    out = capsys.readouterr().out
    assert "lies outside the plausible range" in out and "380.0" in out


def test_a_threshold_needs_exactly_one_bound(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder, _ = encoding_with(tmp_path, "gkg:minInclusive 38.0 ;", "gkg:minInclusive 38.0 ; gkg:minExclusive 38.0 ;")
    assert main(["check-guideline", str(folder)]) == 1
    assert "exactly one bound" in capsys.readouterr().out


def test_an_addition_without_its_source_is_a_violation(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder, line = encoding_with(tmp_path, "gkg:factor 5.0 ; gkg:divisor 9.0 ;\n    dcterms:source g:ucum .",
                                 "gkg:factor 5.0 ; gkg:divisor 9.0 .")
    assert main(["check-guideline", str(folder)]) == 1
    out = capsys.readouterr().out
    assert "g:conversion-degF-Cel" in out and "shape:Addition-source" in out
    assert f"{folder / 'additions.ttl'}:{line - 1}" in out  # the subject's line: the missing triple has none


def test_the_shipped_encoding_passes_the_new_shapes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-guideline"]) == 0
    assert "  at:" not in capsys.readouterr().out


def test_a_qc_finding_names_the_file_of_its_entity(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder, line = encoding_with(tmp_path, "gkg:rule rule:mri-immediate ;", "gkg:rule rule:no-such-rule ;",
                                 name="recommendations.ttl")
    assert main(["check-guideline", str(folder)]) == 1
    out = capsys.readouterr().out
    assert "qc/rule-file-missing-violation.rq" in out
    assert f"  at:      {folder / 'recommendations.ttl'}:{line}" in out  # the triple naming the missing rule


def test_the_locator_finds_subject_and_predicate_lines_and_nothing_elsewhere(tmp_path: Path) -> None:
    path = tmp_path / "x.ttl"
    path.write_text("@prefix ex: <https://example.org/> .\n\n"
                    "ex:a a ex:Thing ;\n    ex:p 1 ;\n    ex:q 2 .\n"
                    "<https://example.org/b> ex:p 3 .\n", encoding="utf-8")
    locator = Locator([path])
    assert str(locator.locate("https://example.org/a")) == f"{path}:3"
    assert str(locator.locate("https://example.org/a", "https://example.org/q")) == f"{path}:5"
    assert str(locator.locate("https://example.org/a", "http://www.w3.org/1999/02/22-rdf-syntax-ns#type")) == f"{path}:3"
    assert str(locator.locate("https://example.org/b", "https://example.org/p")) == f"{path}:6"
    assert locator.locate("https://example.org/c") is None
    assert str(locator.locate("https://example.org/a", value="https://example.org/Thing")) == f"{path}:3"
