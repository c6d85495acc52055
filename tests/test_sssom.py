"""Mappings: every concept mapped (or said why not), SKOS predicates by codes.tsv's match, the SSSOM export."""

from __future__ import annotations

import csv
import importlib.util
import sys
from collections import Counter
from functools import lru_cache
from pathlib import Path

import pytest
from rdflib import Graph, Namespace, URIRef
from rdflib.namespace import SKOS

from conftest import guideline, shared_path
from reasoner.cli import main

ROOT = Path(__file__).resolve().parents[1]
GKG = Namespace("https://w3id.org/guideline-kg/vocab#")
C = "https://w3id.org/guideline-kg/concept/"
MAPPINGS = (SKOS.exactMatch, SKOS.closeMatch, SKOS.narrowMatch, SKOS.broadMatch)
ICD = "http://purl.bioontology.org/ontology/ICD10CM/"


@lru_cache(maxsize=1)
def codes() -> list[dict[str, str]]:
    with shared_path("terminology", "codes.tsv").open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def skos_mappings() -> set[tuple[str, str, str]]:
    g = guideline().graph
    return {(str(s), str(p), str(o)) for p in MAPPINGS for s, o in g.subject_objects(p)}


@pytest.fixture(scope="module")
def sssom_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sssom") / "mappings.sssom.tsv"
    assert main(["export", "--format", "sssom", "--out", str(out)]) == 0
    return out


######## SKOS in the graph ########

def test_every_concept_has_a_mapping_or_a_stated_reason_for_none() -> None:
    g = guideline().graph
    rows = g.query("""
        PREFIX gkg: <https://w3id.org/guideline-kg/vocab#>
        PREFIX skos: <http://www.w3.org/2004/02/skos/core#>
        SELECT ?key ?mapped ?reason WHERE {
          ?c gkg:key ?key .
          BIND (EXISTS { ?c skos:exactMatch|skos:closeMatch|skos:narrowMatch|skos:broadMatch ?t } AS ?mapped)
          OPTIONAL { ?c gkg:withoutStandardCode/skos:definition ?reason }
        }""")
    table = {str(r.key): (r.mapped.toPython(), r.reason) for r in rows}
    assert len(table) == 67
    keys_with_codes = {row["key"] for row in codes()}
    for key, (mapped, reason) in table.items():
        assert mapped == (key in keys_with_codes), key
        assert (reason is None) == mapped, key  # a reason exactly where there is no mapping
    assert any(reason for _, reason in table.values())


def test_skos_predicates_follow_the_match_column_one_per_code() -> None:
    expected = {"exact": SKOS.exactMatch, "close": SKOS.closeMatch, "narrow": SKOS.narrowMatch,
                "broad": SKOS.broadMatch, "needs-lumbar-site": SKOS.narrowMatch}
    prefixes = {"http://snomed.info/sct": "http://snomed.info/id/", "http://loinc.org": "https://loinc.org/rdf/",
                "http://hl7.org/fhir/sid/icd-10-cm": ICD}
    wanted = {(C + r["key"], str(expected[r["match"]]), prefixes[r["system"]] + r["code"]) for r in codes()}
    assert skos_mappings() == wanted
    assert len(wanted) == len(codes())


def test_at_most_one_exact_match_per_concept_and_code_system() -> None:
    per = Counter((s, o.rsplit("/", 1)[0]) for s, p, o in skos_mappings() if p == str(SKOS.exactMatch))
    assert per and max(per.values()) == 1


def test_icd10cm_codes_are_skos_mappings_by_the_documented_iri_scheme() -> None:
    g = guideline().graph
    mass = URIRef(C + "palpable-lumbar-mass")
    assert (mass, SKOS.narrowMatch, URIRef(ICD + "R22.2")) in g
    icd = [s for s, o in g.subject_objects(GKG.iriPrefix) if str(o) == ICD]
    assert len(icd) == 1 and "no official RDF IRI" in str(g.value(icd[0], URIRef("http://www.w3.org/2000/01/rdf-schema#comment")))


def test_a_site_dependent_code_states_its_condition_on_the_coding() -> None:
    g = guideline().graph
    rows = list(g.query("""
        PREFIX gkg: <https://w3id.org/guideline-kg/vocab#>
        SELECT ?coding ?note WHERE { ?coding gkg:match gkg:needsLumbarSite ; gkg:codingNote ?note . }"""))
    assert len(rows) == sum(1 for r in codes() if r["match"] == "needs-lumbar-site") == 2
    assert all("lumbar" in str(r.note).lower() for r in rows)
    condition = g.value(GKG.needsLumbarSite, GKG.mappingCondition)
    assert condition is not None and "lumbar body site" in str(condition)


def test_the_build_tool_and_the_vocabulary_agree_on_the_mapping_predicates() -> None:
    spec = importlib.util.spec_from_file_location("build_ontology", ROOT / "tools" / "build_ontology.py")
    assert spec is not None and spec.loader is not None
    tool = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = tool  # its dataclasses look their module up
    try:
        spec.loader.exec_module(tool)
    finally:
        del sys.modules[spec.name]
    g = guideline().graph
    in_graph = {str(g.value(kind, SKOS.notation)): g.qname(pred) for kind, pred in g.subject_objects(GKG.mappingPredicate)}
    assert in_graph == tool.SKOS_MATCH


######## The SSSOM export ########

def test_sssom_export_is_a_valid_mapping_set(sssom_file: Path) -> None:
    from sssom.parsers import parse_sssom_table
    from sssom.validators import validate

    msdf = parse_sssom_table(sssom_file)
    reports = validate(msdf, fail_on_error=False)
    assert reports and all(not report.results for report in reports.values()), reports
    assert msdf.metadata["license"] == "https://spdx.org/licenses/MIT"
    assert msdf.metadata["mapping_set_version"] == "1.0.0"
    assert {"SNOMEDCT", "LOINC", "ICD10CM", "skos", "semapv"} <= set(msdf.converter.prefix_map)


def test_sssom_holds_exactly_the_skos_mappings(sssom_file: Path) -> None:
    from sssom.parsers import parse_sssom_table

    msdf = parse_sssom_table(sssom_file)
    expand = msdf.converter.expand
    rows = {(expand(r.subject_id), expand(r.predicate_id), expand(r.object_id)) for r in msdf.df.itertuples()}
    assert len(msdf.df) == len(rows) == len(skos_mappings())
    assert rows == skos_mappings()
    assert set(msdf.df["mapping_justification"]) == {"semapv:ManualMappingCuration"}
    site = msdf.df[msdf.df["object_id"] == "SNOMEDCT:443607001"]
    assert list(site["predicate_id"]) == ["skos:narrowMatch"]
    assert "maps only together with a lumbar body site" in site["comment"].iloc[0]


def test_sssom_validation_rejects_an_undeclared_prefix(sssom_file: Path, tmp_path: Path) -> None:
    from sssom.parsers import parse_sssom_table
    from sssom.validators import validate

    text = sssom_file.read_text(encoding="utf-8").replace("\tSNOMEDCT:", "\tSNOMEDXX:", 1)
    broken = tmp_path / "broken.sssom.tsv"
    broken.write_text(text, encoding="utf-8")
    reports = validate(parse_sssom_table(broken), fail_on_error=False)
    assert any(report.results for report in reports.values())
