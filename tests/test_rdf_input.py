"""A patient graph given in Turtle or JSON-LD means the same as the FHIR bundle it was read from."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import EXAMPLES, guideline, report_for
from reasoner.fhir import read_bundle


@pytest.mark.parametrize("syntax,suffix", [("turtle", ".ttl"), ("json-ld", ".jsonld")])
def test_patient_graph_in_rdf_gives_the_same_report_as_its_bundle(tmp_path: Path, syntax: str, suffix: str) -> None:
    source = EXAMPLES / "mri-contraindicated-deficit.json"
    patient = read_bundle(guideline(), source.read_text(encoding="utf-8"))
    path = tmp_path / f"patient{suffix}"
    path.write_text(patient.graph.serialize(format=syntax), encoding="utf-8")
    assert report_for(str(path)) == report_for(str(source))
