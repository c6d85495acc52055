"""Build ontology/guideline.ttl, concepts.ttl, the umbrella ontology and its catalog from the shared tables.

The shared folder (guideline text, statements.tsv, concepts.tsv, codes.tsv) is
the one editable source for statements, sections, references, concept keys,
parents and codes; these two Turtle files are built from it and committed so
that the package ships without the shared folder. The umbrella ontology
(mid-lumbar-mass.ttl: one IRI that owl:imports every module of ontology/) and
catalog-v001.xml (each module IRI to its file, so that OWL tools never fetch
one) are built from the module headers. Run after a change to the
tables:

    python tools/build_ontology.py [--shared ../shared] [--check]

``--check`` exits 1 when the committed files differ from what the tables give.
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VERSION = "1.0.0"
ISSUED = "2026-11-25"  # the first release of the encoding
MODIFIED = "2026-12-05"  # set by hand when a release changes the encoding
LICENSE = "https://spdx.org/licenses/MIT"  # pyproject.toml's licence, as its SPDX IRI; the text is LICENSE
CREATOR = "guideline-kg contributors"
PUBLISHER = "The guideline-kg project"
VOCAB = "https://w3id.org/guideline-kg/vocab"
UMBRELLA = "https://w3id.org/guideline-kg/mid-lumbar-mass"
UMBRELLA_FILE = "mid-lumbar-mass.ttl"
CATALOG_FILE = "catalog-v001.xml"
G = "https://w3id.org/guideline-kg/mid-lumbar-mass/"
C = "https://w3id.org/guideline-kg/concept/"
SOURCE_FILE = "000_02c86c3bdb927671.txt"

PREFIXES = """@prefix gkg:     <https://w3id.org/guideline-kg/vocab#> .
@prefix g:       <https://w3id.org/guideline-kg/mid-lumbar-mass/> .
@prefix c:       <https://w3id.org/guideline-kg/concept/> .
@prefix owl:     <http://www.w3.org/2002/07/owl#> .
@prefix rdfs:    <http://www.w3.org/2000/01/rdf-schema#> .
@prefix xsd:     <http://www.w3.org/2001/XMLSchema#> .
@prefix dcterms: <http://purl.org/dc/terms/> .
@prefix prov:    <http://www.w3.org/ns/prov#> .
@prefix skos:    <http://www.w3.org/2004/02/skos/core#> .
@prefix cito:    <http://purl.org/spar/cito/> .
@prefix coding:  <https://w3id.org/guideline-kg/coding/> .
"""

KIND_CLASS = {
    "finding": "gkg:Finding",
    "context": "gkg:Context",
    "concern": "gkg:Concern",
    "imaging": "gkg:Imaging",
    "imaging-result": "gkg:ImagingResultConcept",
    "diagnosis": "gkg:Diagnosis",
    "harm": "gkg:Harm",
    "action": "gkg:Action",
}
SYSTEM_SLUG = {
    "http://snomed.info/sct": "snomed",
    "http://loinc.org": "loinc",
    "http://hl7.org/fhir/sid/icd-10-cm": "icd10cm",
}


@dataclass(frozen=True)
class CodeSystem:
    uri: str  # the FHIR system URI
    label: str
    iri_prefix: str  # a code's IRI is iri_prefix + code
    curie_prefix: str  # the prefix of its CURIEs in SSSOM mapping sets
    comment: str


CODE_SYSTEMS = (
    CodeSystem("http://snomed.info/sct", "SNOMED CT", "http://snomed.info/id/", "SNOMEDCT",
               "SNOMED International's RDF IRIs: http://snomed.info/id/{code}."),
    CodeSystem("http://loinc.org", "LOINC", "https://loinc.org/rdf/", "LOINC",
               "Regenstrief's LOINC RDF IRIs: https://loinc.org/rdf/{code}."),
    CodeSystem("http://hl7.org/fhir/sid/icd-10-cm", "ICD-10-CM", "http://purl.bioontology.org/ontology/ICD10CM/", "ICD10CM",
               "ICD-10-CM has no official RDF IRI. The mappings name a code by the IRI scheme of the NCBO BioPortal "
               "edition of ICD-10-CM, http://purl.bioontology.org/ontology/ICD10CM/{code} with the code as written, dot "
               "included (e.g. .../ICD10CM/R22.2); FHIR codings keep the system URI and the code."),
)
MATCH = {"exact": "gkg:exact", "close": "gkg:close", "broad": "gkg:broad", "narrow": "gkg:narrow", "needs-lumbar-site": "gkg:needsLumbarSite"}
# The SKOS mapping property of each match kind; the vocabulary states the same as gkg:mappingPredicate
# of each gkg:MatchKind (a test compares them). A code that needs a lumbar body site, with that
# site, is a kind of the concept: skos:narrowMatch, the condition stated on its gkg:Coding.
SKOS_MATCH = {"exact": "skos:exactMatch", "close": "skos:closeMatch", "broad": "skos:broadMatch", "narrow": "skos:narrowMatch", "needs-lumbar-site": "skos:narrowMatch"}


def standard_iri(system: str, code: str) -> str | None:
    """The standard IRI of a code, where its system has one (ICD-10-CM has none)."""
    if system == "http://snomed.info/sct":
        return f"http://snomed.info/id/{code}"
    if system == "http://loinc.org":
        return f"https://loinc.org/rdf/{code}"
    return None


def mapping_iri(system: str, code: str) -> str:
    """The IRI the SKOS and SSSOM mappings name a code by (the documented scheme where there is no standard one)."""
    for cs in CODE_SYSTEMS:
        if cs.uri == system:
            return cs.iri_prefix + code
    raise SystemExit(f"codes.tsv: no IRI scheme for code system {system!r}")


def lit(text: str, lang: str | None = None) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"@{lang}' if lang else f'"{escaped}"'


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


RIGHTS = "Statement texts are quoted verbatim from the guideline as received; the source states no licence of its own."


def header(iri: str, title: str, description: str, sources: list[str], imports: list[str]) -> str:
    return f"""{PREFIXES}
<{iri}> a owl:Ontology ;
    dcterms:title {lit(title, "en")} ;
    dcterms:description {lit(description, "en")} ;
    owl:versionIRI <{iri}/{VERSION}> ;
    owl:versionInfo {lit(VERSION)} ;
    owl:imports {", ".join(f"<{i}>" for i in imports)} ;
    dcterms:isPartOf <{UMBRELLA}> ;
    dcterms:source {", ".join(sources)} ;
    dcterms:license <{LICENSE}> ;
    dcterms:rights {lit(RIGHTS, "en")} ;
    skos:editorialNote {lit("Built by tools/build_ontology.py from the shared tables; edit the tables, not this file.", "en")} .
"""


@dataclass(frozen=True)
class Statement:
    id: str
    line: int
    section: str
    kind: str
    citations: tuple[str, ...]
    text: str


def read_tsv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def read_statements(shared: Path) -> list[Statement]:
    return [
        Statement(
            id=row["id"],
            line=int(row["line"]),
            section=row["section"],
            kind=row["kind"],
            citations=tuple(c for c in row["citations"].split(";") if c),
            text=row["text"],
        )
        for row in read_tsv(shared / "guideline" / "statements.tsv")
    ]


def section_paths(source_lines: list[str], statements: list[Statement]) -> list[str]:
    """Every section path in source order, with the headings that hold no statement."""
    stated = {s.line for s in statements}
    known = [s.section for s in statements]
    paths: list[str] = []
    current_top = ""
    for number, line in enumerate(source_lines, start=1):
        text = line.strip()
        if not text or number in stated or text.startswith("- "):
            continue
        if number == 1:
            path = text
        else:
            nested = [p for p in known if p.endswith(" / " + text)]
            if nested:
                path = nested[0]
            elif any(p == text or p.startswith(text + " / ") for p in known):
                path = text
            else:
                # A heading no statement is filed under: a subsection of the current top section.
                path = f"{current_top} / {text}"
            current_top = path.split(" / ")[0]
        if path not in paths:
            paths.append(path)
    for path in known:
        if path not in paths:
            raise SystemExit(f"section {path!r} of statements.tsv not found in the source text")
    return paths


def introduced(statements: list[Statement], source_lines: list[str]) -> dict[str, list[str]]:
    """A lead-in introduces the list items that follow it (headings between them allowed)."""
    by_line: dict[int, list[Statement]] = {}
    for s in statements:
        by_line.setdefault(s.line, []).append(s)
    result: dict[str, list[str]] = {}
    for s in statements:
        if s.kind != "lead-in":
            continue
        items: list[str] = []
        for number in range(s.line + 1, len(source_lines) + 1):
            text = source_lines[number - 1].strip()
            if number not in by_line:
                continue  # a heading or blank line
            inside = [x for x in by_line[number] if x.section == s.section or x.section.startswith(s.section + " / ")]
            if not text.startswith("- ") or not inside:
                break
            items.extend(x.id for x in inside)
        result[s.id] = items
    return result


def build_guideline(shared: Path) -> str:
    statements = read_statements(shared)
    source_lines = (shared / "guideline" / SOURCE_FILE).read_text(encoding="utf-8").splitlines()
    title = source_lines[0].strip()
    paths = section_paths(source_lines, statements)
    used = {p for p in (s.section for s in statements)}
    out = [header(
        "https://w3id.org/guideline-kg/mid-lumbar-mass/statements",
        "Evaluation and Management of Mid-Lumbar Mass with Back Pain: statements and citations",
        "The guideline, its sections, its statements S01-S44 verbatim with their citations, and the references it cites by number.",
        ["g:guideline"], [VOCAB],
    )]
    out.append(f"""
g:guideline a gkg:Guideline ;
    dcterms:title {lit(title, "en")} ;
    rdfs:comment {lit("The guideline text as the project received it: a title, sections, statements and reference numbers, with no authors, publisher, date or bibliographic details.", "en")} ;
    owl:versionInfo {lit(VERSION)} ;
    skos:editorialNote {lit("The source gives reference numbers 1-8 and no bibliographic details.", "en")} ;
    gkg:hasSection {", ".join("g:section-" + slug(p) for p in paths)} .
""")
    for order, path in enumerate(paths, start=1):
        parts = path.split(" / ")
        lines = [f"g:section-{slug(path)} a gkg:Section ;",
                 f"    rdfs:label {lit(parts[-1], 'en')} ;",
                 f"    gkg:order {order} ;",
                 f"    gkg:guideline g:guideline"]
        if len(parts) > 1:
            lines[-1] += " ;"
            lines.append(f"    dcterms:isPartOf g:section-{slug(' / '.join(parts[:-1]))}")
        if path not in used:
            lines[-1] += " ;"
            lines.append("    gkg:isEmptyInSource true ;")
            lines.append(f"    rdfs:comment {lit('The source gives this heading and no statement under it; it is left empty here, not filled.', 'en')}")
        out.append("\n".join(lines) + " .\n")
    refs = sorted({c for s in statements for c in s.citations}, key=int)
    for ref in refs:
        out.append(f"""g:reference-{ref} a gkg:Reference ;
    gkg:referenceNumber {lit(ref)} ;
    rdfs:label {lit("Reference " + ref, "en")} ;
    rdfs:comment {lit("Cited by number only; the source gives no bibliographic details.", "en")} .
""")
    leads = introduced(statements, source_lines)
    for order, s in enumerate(statements, start=1):
        kind = "gkg:LeadIn" if s.kind == "lead-in" else "gkg:StatementProper"
        lines = [f"g:{s.id} a gkg:Statement ;",
                 f"    gkg:statementId {lit(s.id)} ;",
                 f"    rdfs:label {lit(s.id)} ;",
                 f"    gkg:text {lit(s.text, 'en')} ;",
                 f"    gkg:inSection g:section-{slug(s.section)} ;",
                 f"    gkg:order {order} ;",
                 f"    gkg:sourceLine {s.line} ;",
                 f"    gkg:kind {kind} ;",
                 "    dcterms:isPartOf g:guideline"]
        if s.citations:
            lines[-1] += " ;"
            lines.append("    cito:cites " + ", ".join(f"g:reference-{c}" for c in s.citations))
        if leads.get(s.id):
            lines[-1] += " ;"
            lines.append("    gkg:introduces " + ", ".join(f"g:{i}" for i in leads[s.id]))
        out.append("\n".join(lines) + " .\n")
    return "\n".join(out)


def build_concepts(shared: Path) -> str:
    concepts = read_tsv(shared / "terminology" / "concepts.tsv")
    codes = read_tsv(shared / "terminology" / "codes.tsv")
    keys = {row["key"] for row in concepts}
    out = [header(
        "https://w3id.org/guideline-kg/mid-lumbar-mass/concepts",
        "Evaluation and Management of Mid-Lumbar Mass with Back Pain: concepts and codes",
        "Every concept key of the terminology as an OWL class (parents as subclass axioms, so presence implies every parent), its label, the statements that name it, its verified standard codes and their SKOS mappings, and why a concept has none.",
        ["g:guideline", "g:terminology"], [VOCAB, G + "statements"],
    )]
    out.append(f"""g:terminology a dcterms:BibliographicResource ;
    rdfs:label {lit("guideline-kg terminology: the concept keys of the guideline and their verified standard codes", "en")} ;
    rdfs:comment {lit("Every code was found next to its display text in a published value set or code system (HL7 IPS free set, VSAC eCQM expansions, DICOM context groups, OHDSI concept sets, the CMS ICD-10-CM tabular, LOINC/RSNA playbook codes as cited by vendors). A concept with no code has no verified standard code yet. CPT codes are left out on purpose (licensed).", "en")} .
""")
    for cs in CODE_SYSTEMS:
        out.append(f"""g:code-system-{SYSTEM_SLUG[cs.uri]} a gkg:CodeSystem ;
    rdfs:label {lit(cs.label, "en")} ;
    gkg:systemUri {lit(cs.uri)}^^xsd:anyURI ;
    gkg:iriPrefix {lit(cs.iri_prefix)} ;
    gkg:curiePrefix {lit(cs.curie_prefix)} ;
    rdfs:comment {lit(cs.comment, "en")} .
""")
    for row in concepts:
        key = row["key"]
        parents = [p for p in row["parent"].split(";") if p]
        for parent in parents:
            if parent not in keys:
                raise SystemExit(f"concepts.tsv: {key}: unknown parent {parent!r}")
        supers = [KIND_CLASS[row["kind"]]] + [f"c:{p}" for p in parents]
        named = [f"g:{s}" for s in row["statements"].split(";") if s]
        lines = [f"c:{key} a owl:Class ;",
                 f"    rdfs:subClassOf {', '.join(supers)} ;",
                 f"    rdfs:label {lit(row['label'], 'en')} ;",
                 f"    skos:prefLabel {lit(row['label'], 'en')} ;",
                 f"    gkg:key {lit(key)} ;",
                 "    skos:inScheme g:concept-scheme"]
        if named:
            lines[-1] += " ;"
            lines.append(f"    gkg:namedIn {', '.join(named)}")
        rows = [r for r in codes if r["key"] == key]
        exact = [(r["system"]) for r in rows if r["match"] == "exact"]
        for system in set(exact):
            if exact.count(system) > 1:
                raise SystemExit(f"codes.tsv: {key}: more than one exact code of {system}")
        for r in rows:
            lines[-1] += " ;"
            lines.append(f"    {SKOS_MATCH[r['match']]} <{mapping_iri(r['system'], r['code'])}>")
        if not rows:
            lines[-1] += " ;"
            lines.append("    gkg:withoutStandardCode gkg:noVerifiedCode")
        for r in rows:
            lines[-1] += " ;"
            lines.append(f"    gkg:coding coding:{key}-{SYSTEM_SLUG[r['system']]}-{r['code'].replace('.', '_')}")
        out.append("\n".join(lines) + " .\n")
    for r in codes:
        if r["key"] not in keys:
            raise SystemExit(f"codes.tsv: unknown key {r['key']!r}")
        lines = [f"coding:{r['key']}-{SYSTEM_SLUG[r['system']]}-{r['code'].replace('.', '_')} a gkg:Coding ;",
                 f"    gkg:system {lit(r['system'])}^^xsd:anyURI ;",
                 f"    gkg:code {lit(r['code'])} ;",
                 f"    gkg:display {lit(r['display'])} ;",
                 f"    gkg:match {MATCH[r['match']]}"]
        iri = standard_iri(r["system"], r["code"])
        if iri:
            lines[-1] += " ;"
            lines.append(f"    rdfs:seeAlso <{iri}>")
        if r["note"]:
            lines[-1] += " ;"
            lines.append(f"    gkg:codingNote {lit(r['note'])}")
        out.append("\n".join(lines) + " .\n")
    out.append(f"""g:concept-scheme a skos:ConceptScheme ;
    skos:prefLabel {lit("Concepts of the mid-lumbar mass guideline", "en")} ;
    skos:notation {lit("urn:guideline-kg:concept")} ;
    rdfs:comment {lit("The local code system urn:guideline-kg:concept: a concept's code is its key.", "en")} .
""")
    return "\n".join(out)


def module_iris(texts: dict[str, str]) -> list[tuple[str, str, str]]:
    """(file name, ontology IRI, version IRI) of every module, by file name."""
    from rdflib import Graph, URIRef
    from rdflib.namespace import OWL, RDF

    found = []
    for name, text in sorted(texts.items()):
        graph = Graph()
        graph.parse(data=text, format="turtle")
        heads = [s for s in graph.subjects(RDF.type, OWL.Ontology) if isinstance(s, URIRef)]
        if len(heads) != 1:
            raise SystemExit(f"ontology/{name}: a module has exactly one owl:Ontology header, found {len(heads)}")
        version = graph.value(heads[0], OWL.versionIRI)
        found.append((name, str(heads[0]), str(version) if version else ""))
    return found


def build_umbrella(modules: list[tuple[str, str, str]]) -> str:
    imports = ",\n        ".join(f"<{iri}>" for _, iri, _ in modules)
    return f"""# The guideline-kg encoding as one ontology: this header imports every module of ontology/.
# The imports resolve to the files beside it through catalog-v001.xml (Protege, ROBOT and the
# OWL API read it); nothing is fetched. 'guideline-kg export --format owl' writes the modules
# merged into one ontology of this IRI. Built by tools/build_ontology.py.
{PREFIXES}
<{UMBRELLA}> a owl:Ontology ;
    dcterms:title {lit("Evaluation and Management of Mid-Lumbar Mass with Back Pain: the guideline-kg encoding", "en")} ;
    dcterms:description {lit("A clinical practice guideline (mid-lumbar mass with back pain) as an OWL ontology and knowledge graph: its statements verbatim with their citations, its concepts with standard codes and SKOS mappings, red flags, differential diagnosis, recommendations with the rules that apply them, and the additions the encoding needs, each marked with its own source.", "en")} ;
    owl:versionIRI <{UMBRELLA}/{VERSION}> ;
    owl:versionInfo {lit(VERSION)} ;
    dcterms:creator {lit(CREATOR)} ;
    dcterms:publisher {lit(PUBLISHER)} ;
    dcterms:issued {lit(ISSUED)}^^xsd:date ;
    dcterms:modified {lit(MODIFIED)}^^xsd:date ;
    dcterms:license <{LICENSE}> ;
    dcterms:rights {lit(RIGHTS, "en")} ;
    dcterms:source g:guideline, g:terminology, g:contract, g:ucum ;
    owl:imports {imports} .
"""


def build_catalog(modules: list[tuple[str, str, str]]) -> str:
    """An OASIS XML catalog (Protege's catalog-v001.xml) from every module IRI and version IRI to its file."""
    from xml.sax.saxutils import quoteattr

    lines = ['<?xml version="1.0" encoding="UTF-8" standalone="no"?>',
             "<!-- Built by tools/build_ontology.py: the module IRIs of the encoding resolve to the files beside this one. -->",
             '<catalog prefer="public" xmlns="urn:oasis:names:tc:entity:xmlns:xml:catalog">']
    for name, iri, version in [(UMBRELLA_FILE, UMBRELLA, f"{UMBRELLA}/{VERSION}"), *modules]:
        for target in (iri, version):
            if target:
                lines.append(f"    <uri name={quoteattr(target)} uri={quoteattr(name)}/>")
    lines.append("</catalog>")
    return "\n".join(lines) + "\n"


def build_all(shared: Path) -> dict[Path, str]:
    """Every file this tool writes, by path."""
    folder = ROOT / "ontology"
    built = {"guideline.ttl": build_guideline(shared), "concepts.ttl": build_concepts(shared)}
    texts = {p.name: p.read_text(encoding="utf-8") for p in folder.glob("*.ttl") if p.name != UMBRELLA_FILE}
    texts.update(built)
    modules = module_iris(texts)
    built[UMBRELLA_FILE] = build_umbrella(modules)
    built[CATALOG_FILE] = build_catalog(modules)
    return {folder / name: text for name, text in built.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args(argv)
    outputs = build_all(args.shared)
    stale = [p for p, text in outputs.items() if not p.exists() or p.read_text(encoding="utf-8") != text]
    if args.check:
        for path in stale:
            print(f"{path.relative_to(ROOT)} is stale: run tools/build_ontology.py", file=sys.stderr)
        return 1 if stale else 0
    for path, text in outputs.items():
        path.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
