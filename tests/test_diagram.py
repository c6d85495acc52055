"""The picture of the guideline is drawn from the knowledge graph: it shows the decision
pathway, and it changes when the encoding changes. Also the vocabulary documentation."""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from rdflib import OWL, RDF, Graph

from conftest import ROOT, guideline
from reasoner.cli import main
from reasoner.diagram import FORMATS, build_pathway, render
from reasoner.guideline import Guideline

SVG = "{http://www.w3.org/2000/svg}"

# A recommendation that is not in the guideline: added to a copy of the encoding only.
ADDED = """
g:rec-test-added-fallback a gkg:Recommendation ;
    gkg:recommendationId "test-added-fallback" ;
    rdfs:label "Test-only fallback imaging"@en ;
    gkg:action c:xr-lumbar ;
    gkg:direction gkg:for ;
    gkg:strength gkg:weak ;
    gkg:condition "only in the modified test encoding"@en ;
    gkg:fromStatement g:S18 ;
    gkg:rule rule:mri-immediate .
"""


@pytest.fixture(scope="module")
def pathway():
    return build_pathway(guideline())


@pytest.fixture(scope="module")
def modified(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("ontology")
    for path in (ROOT / "ontology").glob("*.ttl"):
        shutil.copy(path, folder / path.name)
    recommendations = folder / "recommendations.ttl"
    recommendations.write_text(recommendations.read_text(encoding="utf-8") + ADDED, encoding="utf-8")
    # and one red flag fewer: the constitutional symptoms flag is dropped
    assessment = folder / "assessment.ttl"
    text = assessment.read_text(encoding="utf-8")
    start = text.index("g:red-flag-constitutional-symptom a gkg:RedFlag")
    assessment.write_text(text[:start] + text[text.index(" .\n", start) + 3:], encoding="utf-8")
    return folder


def test_the_pathway_runs_from_entry_criterion_through_red_flags_imaging_and_urgent_branches_to_follow_up(pathway):
    assert [s.id for s in pathway.stages] == ["entry", "red-flags", "imaging", "urgent", "follow-up"]
    assert pathway.in_stage("entry")[0].title.startswith("Entry criterion")
    flags = pathway.in_stage("red-flags")[0].lines
    assert {"Palpable mid-lumbar mass", "Fever", "Tachycardia", "Constitutional symptoms"} <= set(flags)


def test_the_imaging_algorithm_starts_with_mri_and_falls_back_to_ct(pathway):
    imaging = pathway.in_stage("imaging")
    first, *fallbacks = [b for b in imaging if b.style in ("first", "fallback")]
    assert first.style == "first" and first.title == "MRI lumbar spine without and with IV contrast"
    assert [b.title for b in fallbacks][:2] == ["CT lumbar spine with IV contrast", "CT myelography of the lumbar spine"]
    assert ("img-mri-lumbar-wo-w-contrast", "img-ct-lumbar-w-contrast") in {(a.source, a.target) for a in pathway.arrows}
    avoid = next(b for b in imaging if b.style == "avoid")
    assert any(line.startswith("Bone scan with SPECT") for line in avoid.lines)


def test_urgent_branches_come_from_their_red_flags_and_follow_up_from_the_result(pathway):
    urgent = {b.title: b.lines for b in pathway.in_stage("urgent")}
    assert "EMERGENT: Surgical consultation" in urgent["Cauda equina syndrome or any of its features"]
    assert "IMMEDIATE: Neurosurgical evaluation" in urgent["Severe or progressive neurologic deficit"]
    follow = [b.id for b in pathway.in_stage("follow-up")]
    assert follow == ["follow-S41", "follow-S42", "follow-S43", "follow-S44"]
    assert next(s for s in pathway.stages if s.id == "follow-up").title.endswith("Once MRI results are available:")


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_changes_when_the_encoding_changes(fmt, modified, capsys):
    assert main(["diagram", "--format", fmt]) == 0
    shipped = capsys.readouterr().out
    assert main(["diagram", "--format", fmt, "--ontology", str(modified)]) == 0
    changed = capsys.readouterr().out
    assert "only in the modified test encoding" not in shipped and "Constitutional symptoms" in shipped
    assert "only in the modified test encoding" in changed and "Constitutional symptoms" not in changed
    assert "Radiographs of the lumbar spine" in changed.split("Do not")[0]  # the new fallback box


def test_the_added_recommendation_is_a_fallback_box_of_the_imaging_algorithm(modified):
    boxes = {b.id: b for b in build_pathway(Guideline.load(ontology=modified)).boxes}
    added = boxes["img-xr-lumbar"]
    assert added.stage == "imaging" and added.style == "fallback"
    assert "when: only in the modified test encoding" in added.lines


def test_the_svg_is_well_formed_and_draws_every_box_and_arrow(pathway):
    root = ET.fromstring(render(pathway, "svg"))
    assert root.tag == f"{SVG}svg"
    drawn = {g.get("id") for g in root.iter(f"{SVG}g") if "box" in (g.get("class") or "").split()}
    assert drawn == {b.id for b in pathway.boxes}
    arrows = {(g.get("data-from"), g.get("data-to")) for g in root.iter(f"{SVG}g") if g.get("class") == "arrow"}
    assert arrows == {(a.source, a.target) for a in pathway.arrows}
    assert not [e for e in root.iter() if e.tag in (f"{SVG}image", f"{SVG}script", f"{SVG}foreignObject")]


def test_mermaid_and_dot_name_every_box(pathway):
    mermaid, dot = render(pathway, "mermaid"), render(pathway, "dot")
    assert mermaid.splitlines()[3] == "flowchart TD" and dot.startswith("digraph ")
    assert dot.count("{") == dot.count("}")
    for box in pathway.boxes:
        assert f'"{box.id}" [label=' in dot
        assert box.title.split(":")[0] in mermaid


def test_docs_document_every_class_and_property_of_the_vocabulary(tmp_path, capsys):
    assert main(["docs", "--out", str(tmp_path)]) == 0
    page = (tmp_path / "index.html").read_text(encoding="utf-8")
    vocabulary = Graph().parse(ROOT / "ontology" / "vocabulary.ttl")
    ns = "https://w3id.org/guideline-kg/vocab#"
    terms = {str(s)[len(ns):] for kind in (OWL.Class, OWL.ObjectProperty, OWL.DatatypeProperty)
             for s in vocabulary.subjects(RDF.type, kind) if str(s).startswith(ns)}
    assert len(terms) > 50
    for term in terms:
        assert f'id="{term}"' in page, term
    assert "Reuses PROV-O, SKOS, DCTERMS and CiTO" in page  # the ontology header's description
    assert "default-src 'none'" in page and "<script" not in page
    assert 'href="http' not in page  # links stay inside the page


def _copy_with_pathway(tmp_path: Path, change) -> Path:
    folder = tmp_path / "ontology"
    shutil.copytree(ROOT / "ontology", folder)
    pathway = folder / "pathway.ttl"
    pathway.write_text(change(pathway.read_text(encoding="utf-8")), encoding="utf-8")
    return folder


def test_box_titles_and_arrow_labels_are_the_pathway_wording_of_the_encoding(pathway, tmp_path):
    graph = Graph().parse(ROOT / "ontology" / "pathway.ttl")
    words = {str(row.role): str(row.text) for row in graph.query(
        (ROOT / "queries" / "diagram" / "wording.rq").read_text(encoding="utf-8"))}
    boxes = {b.id: b for b in pathway.boxes}
    assert boxes["flags"].title == words["red-flags-box"] and boxes["avoid"].title == words["against-box"]
    labels = {(a.source, a.target): a.label for a in pathway.arrows}
    assert labels[("entry0", "flags")] == words["entry-to-red-flags"]
    assert labels[("flags", "urgent0")] == words["to-urgent"]
    assert labels[("img-mri-lumbar-wo-w-contrast", "avoid")] == words["to-against"]
    assert labels[("img-mri-lumbar-wo-w-contrast", "img-ct-lumbar-w-contrast")] == words["to-fallback"]
    # reworded in a copy of the Turtle: the picture follows, no Python changed
    changed = _copy_with_pathway(tmp_path, lambda text: text.replace('rdfs:label "Do not"@en',
                                                                     'rdfs:label "Avoid ordering"@en')
                                 .replace('rdfs:label "if present"@en', 'rdfs:label "when found"@en'))
    redrawn = build_pathway(Guideline.load(ontology=changed))
    assert {b.id: b for b in redrawn.boxes}["avoid"].title == "Avoid ordering"
    assert {(a.source, a.target): a.label for a in redrawn.arrows}[("flags", "urgent0")] == "when found"
    svg = render(redrawn, "svg")
    assert "Avoid ordering" in svg and ">Do not<" not in svg


def test_an_encoding_without_a_wording_the_diagram_needs_is_refused_in_one_line(tmp_path, capsys):
    def drop(text: str) -> str:
        start = text.index("g:wording-to-fallback a gkg:PathwayWording")
        return text[:start] + text[text.index(" .\n", start) + 3:]
    changed = _copy_with_pathway(tmp_path, drop)
    assert main(["diagram", "--ontology", str(changed)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "to-fallback" in err and "Traceback" not in err
