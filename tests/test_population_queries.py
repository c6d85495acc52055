"""Population queries from the shell: `query NAME --reports DIR` over the report graphs of many patients."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import EXAMPLES
from reasoner.cli import main


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("reports")
    for name in ("palpable-mass-fever", "cauda-equina", "negative-mri"):
        assert main(["recommend", str(EXAMPLES / f"{name}.json"), "--format", "turtle",
                     "--out", str(folder / f"{name}.ttl")]) == 0
    return folder


def test_red_flags_by_frequency_counts_patients(reports: Path, capsys) -> None:
    assert main(["query", "red-flags-by-frequency", "--reports", str(reports), "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)["results"]["bindings"]
    counts = {row["redFlag"]["value"].rsplit("/", 1)[-1]: int(row["patients"]["value"]) for row in rows}
    assert counts["palpable-lumbar-mass"] == 3
    assert counts["fever"] == 1 and counts["saddle-anesthesia"] == 1


def test_population_query_without_reports_finds_no_patients(capsys) -> None:
    assert main(["query", "red-flags-by-frequency", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)["results"]["bindings"]
    assert not [row for row in rows if "redFlag" in row]


def test_missing_reports_folder_is_refused(tmp_path: Path, capsys) -> None:
    assert main(["query", "red-flags-by-frequency", "--reports", str(tmp_path / "none")]) == 2
    assert capsys.readouterr().err.count("\n") == 1
