"""The same input at the same reasoning time gives byte-identical JSON: run after run, process after process,
whatever the hash seed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import EXAMPLES, ROOT, TEST_NOW
from reasoner import engines
from reasoner.cli import main

ENGINE = "fast" if "fast" in engines.available() else "reference"
# A derived finding (fever from a temperature), an imaging result and a Turtle patient graph.
INPUTS = [EXAMPLES / "palpable-mass-fever.json", EXAMPLES / "mri-malignancy-result.json",
          ROOT / "tests" / "hostile" / "cases" / "ttl-ok-contradictory-findings.ttl"]


def in_process(capsys: pytest.CaptureFixture[str], path: Path, fmt: str = "json") -> str:
    code = main(["recommend", str(path), "--engine", ENGINE, "--format", fmt, "--now", TEST_NOW])
    captured = capsys.readouterr()
    assert code in (0, 1), captured.err
    return captured.out


def in_subprocess(path: Path, seed: str) -> str:
    env = {**os.environ, "PYTHONHASHSEED": seed}
    completed = subprocess.run([sys.executable, "-m", "reasoner", "recommend", str(path), "--engine", ENGINE,
                                "--now", TEST_NOW], capture_output=True, text=True, cwd=ROOT, env=env, check=False)
    assert completed.returncode in (0, 1), completed.stderr
    return completed.stdout


@pytest.mark.parametrize("path", INPUTS, ids=lambda p: p.name)
def test_two_runs_in_one_process_give_byte_identical_json(capsys, path: Path) -> None:
    first = in_process(capsys, path)
    assert first and in_process(capsys, path) == first


def test_another_process_with_another_hash_seed_gives_byte_identical_json(capsys) -> None:
    path = INPUTS[0]
    expected = in_process(capsys, path)
    assert in_subprocess(path, "1") == expected
    assert in_subprocess(path, "4242") == expected


def test_reading_order_of_a_patient_graph_does_not_change_the_report(capsys, tmp_path: Path) -> None:
    """The same triples written in reverse order are the same patient."""
    source = INPUTS[2]
    lines = source.read_text(encoding="utf-8").splitlines()
    prefixes = [line for line in lines if line.startswith("@prefix")]
    body = [line for line in lines if line and not line.startswith("@prefix")]
    reversed_path = tmp_path / "reversed.ttl"
    reversed_path.write_text("\n".join(prefixes + body[::-1]) + "\n", encoding="utf-8")
    assert in_process(capsys, reversed_path) == in_process(capsys, source)
