"""``guideline-kg docs`` documents the guideline, not only its vocabulary: every concept of the terminology with
its parents, statements and codes (system, match kind, SKOS mapping), every recommendation, every statement S01-S44
with its section, text, citations and what encodes it, and every reference. The facts are compared with the shared
tables and the graph; the page is well-formed HTML whose links all stay inside it (or go to the vocabulary page)."""

from __future__ import annotations

import csv
import shutil
from collections import defaultdict
from html.parser import HTMLParser
from pathlib import Path

import pytest
from rdflib import Graph

from conftest import ROOT, guideline, shared_path
from reasoner.cli import main
from reasoner.docs import guideline_page, render_guideline

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
SKOS_MAPPING = {"exact": "skos:exactMatch", "close": "skos:closeMatch", "broad": "skos:broadMatch",
                "narrow": "skos:narrowMatch"}


class Page(HTMLParser):
    """A strict reading of the page: every element closed in order; ids, links and the text of each entry."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, str | None]] = []
        self.errors: list[str] = []
        self.ids: list[str] = []
        self.links: list[str] = []
        self.text: dict[str, list[str]] = defaultdict(list)  # entry id -> its text
        self.fields: dict[tuple[str, str], list[str]] = defaultdict(list)  # (entry id, class) -> text
        self.codes: dict[str, list[tuple[str, str, str, str]]] = defaultdict(list)  # entry id -> (system, code, ...)
        self.tags: set[str] = set()
        self._row: dict[str, str] | None = None

    def _entry(self) -> str | None:
        return next((ident for _, ident in reversed(self.stack) if ident and "-" in ident
                     and ident.split("-", 1)[0] in ("concept", "rec", "statement", "reference")), None)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        self.tags.add(tag)
        if found.get("id"):
            self.ids.append(str(found["id"]))
        if tag == "a" and found.get("href") is not None:
            self.links.append(str(found["href"]))
        if tag in ("script", "link", "img", "iframe") or any(k in ("src", "srcset") for k in found):
            self.errors.append(f"loads something: <{tag} {attrs}>")
        if tag == "tr" and found.get("data-code"):
            self._row = {"system": str(found["data-system"]), "code": str(found["data-code"]),
                         "match": "", "mapping": ""}
        if tag not in VOID:
            kind = str(found["class"]).split()[-1] if found.get("class") else None
            self.stack.append((tag, found.get("id") or kind))

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID:
            return
        if not self.stack or self.stack[-1][0] != tag:
            self.errors.append(f"</{tag}> closes <{self.stack[-1][0] if self.stack else None}>")
            return
        if tag == "tr" and self._row is not None:
            entry = self._entry()
            if entry:
                self.codes[entry].append((self._row["system"], self._row["code"], self._row["match"].strip(),
                                          self._row["mapping"].strip()))
            self._row = None
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        entry = self._entry()
        if entry is None:
            return
        self.text[entry].append(data)
        for _, name in self.stack:
            if name and name in ("kind", "parents", "children", "statements", "direction", "strength", "urgency",
                                 "action", "condition", "citations", "encodings", "text", "section", "citers"):
                self.fields[(entry, name)].append(data)
        if self._row is not None and self.stack and self.stack[-1][1] in ("match", "mapping"):
            self._row[str(self.stack[-1][1])] += data
        elif self._row is not None and len(self.stack) > 1 and self.stack[-2][1] == "mapping":
            self._row["mapping"] += data

    def field(self, entry: str, name: str) -> str:
        return " ".join("".join(self.fields.get((entry, name), [])).split())


def _tsv(*parts: str) -> list[dict[str, str]]:
    with shared_path(*parts).open(encoding="utf-8") as f:
        return list(csv.DictReader(f, delimiter="\t"))


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("docs")
    assert main(["docs", "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def page(written) -> Page:
    parsed = Page()
    parsed.feed((written / "guideline.html").read_text(encoding="utf-8"))
    parsed.close()
    return parsed


def _ids(text: str) -> list[str]:
    return [part.strip() for part in text.replace(";", ",").replace("(", ",").replace(")", ",").split(",")
            if part.strip().startswith("S")]


def test_the_page_is_well_formed_html_loading_nothing(written, page) -> None:
    assert page.errors == [] and page.stack == []
    html = (written / "guideline.html").read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>") and "default-src 'none'" in html
    assert not page.tags & {"script", "img", "iframe", "link", "object"}


def test_every_anchor_resolves_inside_the_page_or_to_the_vocabulary_page(written, page) -> None:
    assert len(page.ids) == len(set(page.ids))
    internal = [link for link in page.links if link.startswith("#")]
    assert len(internal) > 500
    assert sorted({link[1:] for link in internal} - set(page.ids)) == []
    assert {link for link in page.links if not link.startswith("#")} == {"index.html"}
    vocabulary = Page()
    vocabulary.feed((written / "index.html").read_text(encoding="utf-8"))
    assert vocabulary.errors == [] and vocabulary.stack == []
    assert {link for link in vocabulary.links if not link.startswith("#")} == {"guideline.html"}
    assert {link[1:] for link in vocabulary.links if link.startswith("#")} <= set(vocabulary.ids)


def test_every_concept_of_the_terminology_with_its_label_kind_parents_and_statements(page) -> None:
    concepts = _tsv("terminology", "concepts.tsv")
    documented = {i.removeprefix("concept-") for i in page.ids if i.startswith("concept-")}
    assert documented == {row["key"] for row in concepts}
    for row in concepts:
        entry = f"concept-{row['key']}"
        assert row["label"] in " ".join("".join(page.text[entry]).split()), row["key"]
        assert page.field(entry, "kind") == row["kind"], row["key"]
        parents = sorted(p for p in row["parent"].split(";") if p)
        assert sorted(page.field(entry, "parents").replace(",", " ").split()) == parents, row["key"]
        # the graph may link more statements, never fewer
        assert set(row["statements"].split(";")) <= set(_ids(page.field(entry, "statements"))), row["key"]
        for parent in parents:
            assert row["key"] in page.field(f"concept-{parent}", "children").replace(",", " ").split()


def test_every_code_of_the_terminology_with_its_system_match_kind_and_skos_mapping(page) -> None:
    documented = {(entry.removeprefix("concept-"), system, code): (match, mapping)
                  for entry, rows in page.codes.items() for system, code, match, mapping in rows}
    codes = _tsv("terminology", "codes.tsv")
    assert len(documented) == len(codes)
    kinds = Graph().parse(ROOT / "ontology" / "vocabulary.ttl")
    predicate_of = {str(notation): f"skos:{str(predicate).rsplit('#', 1)[1]}" for notation, predicate in kinds.query(
        """PREFIX gkg: <https://w3id.org/guideline-kg/vocab#> PREFIX skos: <http://www.w3.org/2004/02/skos/core#>
           SELECT ?n ?p WHERE { ?k a gkg:MatchKind ; skos:notation ?n ; gkg:mappingPredicate ?p }""")}
    for row in codes:
        match, mapping = documented[(row["key"], row["system"], row["code"])]
        assert match == row["match"], row
        assert mapping.split()[0] == predicate_of[row["match"]], row
        if row["match"] in SKOS_MAPPING:
            assert mapping.split()[0] == SKOS_MAPPING[row["match"]]  # as the terminology README says


def test_every_recommendation_with_direction_strength_action_statements_and_citations(page) -> None:
    rows = guideline().graph.query("""
        PREFIX gkg: <https://w3id.org/guideline-kg/vocab#> PREFIX skos: <http://www.w3.org/2004/02/skos/core#>
        PREFIX cito: <http://purl.org/spar/cito/>
        SELECT ?id ?direction ?strength ?action ?statement ?citation WHERE {
          ?r a gkg:Recommendation ; gkg:recommendationId ?id ; gkg:direction/skos:notation ?direction ;
             gkg:action/gkg:key ?action ; gkg:fromStatement/gkg:statementId ?statement .
          OPTIONAL { ?r gkg:strength/skos:notation ?strength }
          OPTIONAL { ?r cito:citesAsAuthority/gkg:referenceNumber ?citation } }""")
    expected: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for rid, direction, strength, action, statement, citation in rows:
        for name, value in (("direction", direction), ("strength", strength), ("action", action),
                            ("statements", statement), ("citations", citation)):
            if value is not None:
                expected[str(rid)][name].add(str(value))
    assert {i.removeprefix("rec-") for i in page.ids if i.startswith("rec-")} == set(expected)
    assert len(expected) > 20
    for rid, facts in expected.items():
        entry = f"rec-{rid}"
        assert {page.field(entry, "direction")} == facts["direction"] and facts["direction"] <= {"for", "against"}
        strength = page.field(entry, "strength").split(" ")[0]
        assert strength in facts["strength"] if facts["strength"] else strength == ""
        assert page.field(entry, "action").split(" ")[0] in facts["action"]
        assert set(_ids(page.field(entry, "statements"))) == facts["statements"]
        assert set(page.field(entry, "citations").replace("[", " ").replace("]", " ").split()) == facts["citations"]


def test_every_statement_s01_to_s44_with_section_text_citations_and_what_encodes_it(page) -> None:
    statements = _tsv("guideline", "statements.tsv")
    assert [row["id"] for row in statements] == [f"S{n:02d}" for n in range(1, 45)]
    documented = [i.removeprefix("statement-") for i in page.ids if i.startswith("statement-")]
    assert documented == [r["id"] for r in statements]
    for row in statements:
        entry = f"statement-{row['id']}"
        assert page.field(entry, "text") == " ".join(row["text"].split()), row["id"]
        assert page.field(entry, "section") == row["section"], row["id"]
        cited = page.field(entry, "citations").replace("[", " ").replace("]", " ").split()
        assert cited == sorted(c for c in row["citations"].split(";") if c), row["id"]
        assert page.field(entry, "encodings"), f"{row['id']}: nothing encodes it"
    # what encodes a statement is the graph's: each recommendation drawn from S10 is listed under S10
    s10 = page.field("statement-S10", "encodings")
    for label, in guideline().graph.query("""PREFIX gkg: <https://w3id.org/guideline-kg/vocab#>
            PREFIX rdfs: <http://www.w3.org/2000/01/rdf-schema#>
            SELECT ?label WHERE {
              ?r a gkg:Recommendation ; gkg:fromStatement/gkg:statementId "S10" ; rdfs:label ?label }"""):
        assert str(label) in s10


def test_every_reference_with_what_cites_it(page) -> None:
    cited = {c for row in _tsv("guideline", "statements.tsv") for c in row["citations"].split(";") if c}
    documented = {i.removeprefix("reference-") for i in page.ids if i.startswith("reference-")}
    assert cited <= documented
    for row in _tsv("guideline", "statements.tsv"):
        for c in filter(None, row["citations"].split(";")):
            assert row["id"] in page.field(f"reference-{c}", "citers").replace(";", " ").split(), (row["id"], c)


def test_the_pages_are_the_same_bytes_every_time(written, tmp_path) -> None:
    assert main(["docs", "--out", str(tmp_path)]) == 0
    for name in ("index.html", "guideline.html"):
        assert (tmp_path / name).read_bytes() == (written / name).read_bytes(), name


def test_markup_in_the_encoding_is_shown_as_text(tmp_path) -> None:
    folder = tmp_path / "ontology"
    shutil.copytree(ROOT / "ontology", folder)
    recommendations = folder / "recommendations.ttl"
    text = recommendations.read_text(encoding="utf-8")
    recommendations.write_text(text.replace('gkg:condition "a palpable mid-lumbar mass,',
                                            'gkg:condition "<script>alert(1)</script> a palpable mid-lumbar mass,', 1),
                               encoding="utf-8")
    from reasoner.guideline import Guideline

    html = render_guideline(Guideline.load(ontology=folder))
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_a_change_in_the_turtle_shows_on_the_page(tmp_path) -> None:
    folder = tmp_path / "ontology"
    shutil.copytree(ROOT / "ontology", folder)
    concepts = folder / "concepts.ttl"
    concepts.write_text(concepts.read_text(encoding="utf-8").replace('rdfs:label "Back pain"@en',
                                                                     'rdfs:label "Back pain (relabelled)"@en'),
                        encoding="utf-8")
    assert main(["docs", "--out", str(tmp_path / "out"), "--ontology", str(folder)]) == 0
    html = (tmp_path / "out" / "guideline.html").read_text(encoding="utf-8")
    assert "Back pain (relabelled)" in html
    from reasoner.guideline import Guideline

    assert "Back pain (relabelled)" not in str(guideline_page(Guideline.load()))


def test_a_vocabulary_file_alone_gives_the_vocabulary_page_only(tmp_path) -> None:
    assert main(["docs", "--out", str(tmp_path), "--ontology", str(ROOT / "ontology" / "vocabulary.ttl")]) == 0
    assert (tmp_path / "index.html").exists() and not (tmp_path / "guideline.html").exists()


def test_chromium_loads_the_page_without_a_single_request(written, tmp_path) -> None:
    from test_html import render  # headless Chromium with a network log (tests/test_html.py)

    dom, requested = render(written / "guideline.html", tmp_path)
    assert requested == []
    assert 'id="statement-S44"' in dom and 'id="concept-back-pain"' in dom
