"""``guideline-kg query`` and ``export``: competency queries over the guideline with OWL-RL inference,
by name or by file, in every format, with parameters bound as RDF terms; exports as plain RDF."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from rdflib import Graph, Literal, Namespace, URIRef

from conftest import guideline
from reasoner import resources
from reasoner.cli import main
from reasoner.commands.guideline import inferred_graph, without_generalized_rdf
from reasoner.queries import load_query

G = Namespace("https://w3id.org/guideline-kg/mid-lumbar-mass/")
COMPETENCY = ("red-flags", "recommendations-against", "cites-reference", "statements-of-section",
              "codes-of-concept", "imaging-algorithm")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def rows(capsys: pytest.CaptureFixture[str], *argv: str) -> list[dict[str, str]]:
    """The result of a query as CSV, one dict per row."""
    code, out, err = run(capsys, "query", *argv, "--format", "csv")
    assert code == 0, err
    return list(csv.DictReader(io.StringIO(out)))


@pytest.fixture(scope="module", autouse=True)
def _inferred_once() -> None:
    inferred_graph(guideline())  # the OWL-RL closure, computed once for the whole module


######## Competency queries ########

@pytest.mark.parametrize("name", COMPETENCY)
def test_each_competency_query_states_its_summary_and_statements(name: str) -> None:
    query = load_query(resources.queries_dir() / f"{name}.rq")
    assert query.summary
    assert query.statements and all(s.startswith("S") for s in query.statements)


def test_red_flags_say_what_each_suggests(capsys: pytest.CaptureFixture[str]) -> None:
    found = {r["redFlag"]: r for r in rows(capsys, "red-flags")}
    assert len(found) == 10
    fever = found[str(G["red-flag-fever"])]
    assert fever["statements"] == "S05" and fever["citations"] == "1 3"
    assert "Infection" in fever["suggests"].split("; ")
    assert found[str(G["red-flag-abnormal-spinal-curvature"])]["suggests"] == "Structural pathology"
    assert found[str(G["red-flag-neurologic-deficit"])]["suggests"] == "Nerve root or spinal cord compromise"


def test_recommendations_against_give_the_source_words_as_reason(capsys: pytest.CaptureFixture[str]) -> None:
    found = {r["recommendation"]: r for r in rows(capsys, "recommendations-against")}
    bone_scan = found[str(G["rec-against-bone-scan"])]
    assert bone_scan["reason"].startswith("S22: Bone scan with SPECT will not adequately evaluate")
    assert bone_scan["strength"] == "strong" and bone_scan["citations"] == "1"
    assert str(G["rec-mri-immediate"]) not in found


def test_cites_reference_lists_statements_and_what_cites_it_as_authority(capsys: pytest.CaptureFixture[str]) -> None:
    found = {(r["entity"], r["how"]) for r in rows(capsys, "cites-reference", "--param", "number=6")}
    assert found == {(str(G.S23), "cites"), (str(G["rec-against-ultrasound"]), "cites as authority")}


def test_statements_of_a_section_include_its_subsections_in_order(capsys: pytest.CaptureFixture[str]) -> None:
    assert [r["id"] for r in rows(capsys, "statements-of-section", "--param", "section=Malignancy")] == ["S26", "S27", "S28"]
    imaging = [r["id"] for r in rows(capsys, "statements-of-section", "--param", "section=imaging algorithm")]
    assert imaging == [f"S{i}" for i in range(10, 25)]


def test_the_other_pathology_section_has_no_statements(capsys: pytest.CaptureFixture[str]) -> None:
    assert rows(capsys, "statements-of-section", "--param", "section=Other Pathology") == []


def test_a_parameter_left_out_matches_anything(capsys: pytest.CaptureFixture[str]) -> None:
    assert len(rows(capsys, "statements-of-section")) == 44


def test_codes_of_a_concept_with_match_standard_iri_and_local_code(capsys: pytest.CaptureFixture[str]) -> None:
    found = {(r["system"], r["code"]): r for r in rows(capsys, "codes-of-concept", "--param", "key=back-pain")}
    snomed = found[("http://snomed.info/sct", "161891005")]
    assert snomed["match"] == "exact" and snomed["iri"] == "http://snomed.info/id/161891005"
    assert found[("urn:guideline-kg:concept", "back-pain")]["match"] == "local"


def test_imaging_algorithm_in_order_of_preference_with_conditions(capsys: pytest.CaptureFixture[str]) -> None:
    found = rows(capsys, "imaging-algorithm")
    assert [(r["preference"], r["key"]) for r in found] == [
        ("1", "mri-lumbar-wo-w-contrast"), ("2", "ct-lumbar-w-contrast"), ("3", "ct-myelography-lumbar")]
    assert "contraindicated or unavailable" in found[1]["condition"]
    assert "not merely unavailable" in found[2]["condition"] and "neurologic deficit" in found[2]["condition"]
    assert "S10" in found[0]["statements"].split() and found[2]["statements"] == "S24"


######## Query by file, inference, formats ########

def test_query_by_file_runs_over_the_owl_rl_closure(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "derived-from-S22.rq"
    path.write_text("PREFIX prov: <http://www.w3.org/ns/prov#>\n"
                    "SELECT ?entity WHERE { ?entity prov:wasDerivedFrom <https://w3id.org/guideline-kg/mid-lumbar-mass/S22> }\n",
                    encoding="utf-8")
    # gkg:fromStatement is a subproperty of prov:wasDerivedFrom: only inference makes this true
    assert [r["entity"] for r in rows(capsys, str(path))] == [str(G["rec-against-bone-scan"])]


def test_table_format_shows_prefixed_names_and_a_row_count(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _err = run(capsys, "query", "imaging-algorithm")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["preference", "study", "key"]
    assert "g:rec-mri-immediate" in out and lines[-1] == "(3 rows)"


def test_json_format_is_sparql_results_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _err = run(capsys, "query", "cites-reference", "--param", "number=6", "--format", "json")
    assert code == 0
    data = json.loads(out)
    assert data["head"]["vars"][:2] == ["number", "entity"]
    assert {b["entity"]["value"] for b in data["results"]["bindings"]} == {str(G.S23), str(G["rec-against-ultrasound"])}


def test_ask_queries_answer_true_or_false(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "ask.rq"
    path.write_text("ASK { ?s <https://w3id.org/guideline-kg/vocab#statementId> \"S44\" }\n", encoding="utf-8")
    assert run(capsys, "query", str(path))[1] == "true\n"


def test_list_shows_every_competency_query_with_its_parameters(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _err = run(capsys, "query", "--list")
    assert code == 0
    listed = {line.split()[0] for line in out.splitlines() if line and not line.startswith(" ")}
    assert set(COMPETENCY) <= listed
    assert "qc/statement-without-encoding-violation" in listed
    assert "--param number=<string>" in out


######## Refusals: one line, exit 2 ########

@pytest.mark.parametrize("argv,message", [
    (("query", "cites-reference", "--param", "nummer=6"), "has no such parameter"),
    (("query", "cites-reference", "--param", "number"), "expected NAME=VALUE"),
    (("query", "no-such-query"), "no query named 'no-such-query'"),
    (("query",), "needs a query name"),
])
def test_bad_query_arguments_are_refused_with_one_line(argv: tuple[str, ...], message: str,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert message in err and err.count("\n") == 1


def test_a_typed_parameter_refuses_a_value_of_the_wrong_type(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "order.rq"
    path.write_text("#+ param: order integer\nSELECT ?s WHERE { ?s <https://w3id.org/guideline-kg/vocab#order> ?order }\n",
                    encoding="utf-8")
    code, _out, err = run(capsys, "query", str(path), "--param", "order=three")
    assert code == 2 and "is not an integer" in err
    assert len(rows(capsys, str(path), "--param", "order=44")) == 1


def test_a_query_file_that_reaches_outside_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "service.rq"
    path.write_text("SELECT * WHERE { SERVICE <http://127.0.0.1:9/sparql> { ?s ?p ?o } }\n", encoding="utf-8")
    code, _out, err = run(capsys, "query", str(path))
    assert code == 2 and "SERVICE is not allowed" in err


def test_a_query_file_that_is_not_sparql_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "broken.rq"
    path.write_text("SELECT ?s WHERE { ?s ?p \n", encoding="utf-8")
    code, _out, err = run(capsys, "query", str(path))
    assert code == 2 and "not valid SPARQL" in err and err.count("\n") == 1


######## Export ########

@pytest.mark.parametrize("fmt,parse_as", [("turtle", "turtle"), ("nt", "nt"), ("jsonld", "json-ld")])
def test_export_in_each_format_round_trips_the_asserted_guideline(fmt: str, parse_as: str,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _err = run(capsys, "export", "--format", fmt)
    assert code == 0
    exported = Graph().parse(data=out, format=parse_as)
    assert len(exported) == len(guideline().graph)


def test_jsonld_export_has_a_local_context_only(capsys: pytest.CaptureFixture[str]) -> None:
    data = json.loads(run(capsys, "export", "--format", "jsonld")[1])
    assert isinstance(data["@context"], dict)
    assert all(isinstance(v, str) for v in data["@context"].values())
    assert "brick" not in data["@context"]  # only the prefixes in use


def test_inferred_export_adds_entailments_and_has_no_generalized_rdf(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    out_file = tmp_path / "inferred.nt"
    assert run(capsys, "export", "--inferred", "--format", "nt", "--out", str(out_file))[0] == 0
    exported = Graph().parse(out_file, format="nt")
    assert len(exported) > len(guideline().graph)
    assert (G["rec-against-bone-scan"], URIRef("http://www.w3.org/ns/prov#wasDerivedFrom"), G.S22) in exported
    assert not any(isinstance(s, Literal) for s in exported.subjects())
    assert all(isinstance(p, URIRef) for p in exported.predicates())


def test_generalized_rdf_triples_are_dropped() -> None:
    raw = Graph()
    raw.add((G.S01, G.p, Literal("x")))
    raw.add((Literal("x"), G.p, G.S01))  # owlrl writes such triples (e.g. a literal typed with its datatype)
    assert set(without_generalized_rdf(raw)) == {(G.S01, G.p, Literal("x"))}

