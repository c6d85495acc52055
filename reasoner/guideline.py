"""The guideline knowledge graph as loaded once: ontology, rules, shapes and the tables read from them."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cached_property
from pathlib import Path

from rdflib import Graph, URIRef

from reasoner import resources
from reasoner.errors import GuidelineError
from reasoner.namespaces import RULE
from reasoner.queries import QueryFile, load_folder, load_query


@dataclass(frozen=True)
class Rule:
    """A rule file of ``queries/rules/``: a CONSTRUCT run to a fixpoint within its stratum."""

    name: str
    iri: URIRef
    stratum: int
    query: QueryFile


@dataclass(frozen=True)
class Coding:
    system: str
    code: str
    match: str
    display: str


@dataclass(frozen=True)
class Concept:
    iri: URIRef
    key: str
    label: str
    kind: str


@dataclass(frozen=True)
class Conversion:
    to_unit: str
    offset: Decimal
    factor: Decimal


def parse_rdf_file(path: Path, graph: Graph) -> None:
    """Parse one Turtle file of an encoding, with a one-line error naming file and line."""
    try:
        data = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise GuidelineError(f"{path}: cannot read: {exc}") from None
    try:
        graph.parse(data=data, format="turtle", publicID=path.resolve().as_uri())
    except Exception as exc:  # rdflib's parsers raise several unrelated types
        message = " ".join(str(exc).split())
        raise GuidelineError(f"{path.name}: not valid Turtle: {message[:300]}") from None


@dataclass
class Guideline:
    """Everything loaded from the encoding. ``graph`` is the asserted guideline; nothing mutates it."""

    graph: Graph
    rules: list[Rule]
    queries: dict[str, QueryFile]
    shapes_dir: Path
    files: list[Path] = field(default_factory=list)

    @classmethod
    def load(cls, ontology: Path | None = None, queries: Path | None = None, shapes: Path | None = None) -> "Guideline":
        ontology = ontology or resources.ontology_dir()
        queries = queries or resources.queries_dir()
        shapes = shapes or resources.shapes_dir()
        files = sorted(ontology.glob("*.ttl")) if ontology.is_dir() else [ontology]
        if not files:
            raise GuidelineError(f"{ontology}: no Turtle files found")
        graph = Graph()
        for path in files:
            parse_rdf_file(path, graph)
        rules = []
        for name, query in load_folder(queries / "rules").items():
            try:
                stratum = int(query.first("stratum", "1"))
            except ValueError:
                raise GuidelineError(f"{name}.rq: '#+ stratum:' must be a whole number") from None
            if query.prepared().algebra.name != "ConstructQuery":
                raise GuidelineError(f"{name}.rq: a rule must be a CONSTRUCT query")
            rules.append(Rule(name, RULE[name], stratum, query))
        rules.sort(key=lambda r: (r.stratum, r.name))
        named = {**{f"engine/{k}": v for k, v in load_folder(queries / "engine").items()},
                 **{f"report/{k}": v for k, v in load_folder(queries / "report").items()}}
        return cls(graph=graph, rules=rules, queries=named, shapes_dir=shapes, files=files)

    def select(self, name: str) -> list[dict[str, object]]:
        """Run a named engine/report query over the guideline graph; rows as dicts of Python values."""
        result = self.graph.query(self.queries[name].prepared())
        return [{str(k): (v.toPython() if v is not None else None) for k, v in row.asdict().items()} for row in result]

    @cached_property
    def fingerprint(self) -> str:
        """A content hash of every file the reasoning depends on."""
        digest = hashlib.sha256()
        for path in [*self.files, *(r.query.path for r in self.rules), *sorted(self.shapes_dir.glob("*.ttl"))]:
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
        return digest.hexdigest()

    @cached_property
    def info(self) -> dict[str, str]:
        rows = self.select("engine/guideline")
        if len(rows) != 1:
            raise GuidelineError("the encoding must hold exactly one gkg:Guideline with a title and owl:versionInfo")
        row = rows[0]
        return {"iri": str(row["guideline"]), "title": str(row["title"]), "version": str(row["version"])}

    @cached_property
    def concepts(self) -> dict[str, Concept]:
        return {str(r["key"]): Concept(URIRef(str(r["concept"])), str(r["key"]), str(r["label"]), str(r["kind"]))
                for r in self.select("engine/concepts")}

    @cached_property
    def code_map(self) -> dict[tuple[str, str], tuple[str, Coding]]:
        """(system, code) -> (concept key, coding); local codes are the keys themselves."""
        from reasoner.namespaces import LOCAL_SYSTEM

        table: dict[tuple[str, str], tuple[str, Coding]] = {}
        for key in self.concepts:
            table[(LOCAL_SYSTEM, key)] = (key, Coding(LOCAL_SYSTEM, key, "local", self.concepts[key].label))
        for r in self.select("engine/code-map"):
            coding = Coding(str(r["system"]), str(r["code"]), str(r["match"]), str(r["display"] or ""))
            table[(coding.system, coding.code)] = (str(r["key"]), coding)
        return table

    @cached_property
    def codings_by_key(self) -> dict[str, list[Coding]]:
        table: dict[str, list[Coding]] = {}
        for key, coding in self.code_map.values():
            if coding.match != "local":
                table.setdefault(key, []).append(coding)
        return table

    @cached_property
    def conversions(self) -> dict[str, Conversion]:
        return {str(r["from"]): Conversion(str(r["to"]), Decimal(str(r["offset"])), Decimal(str(r["factor"])))
                for r in self.select("engine/unit-conversions")}

    @cached_property
    def measurements(self) -> dict[str, tuple[URIRef, str]]:
        """LOINC code -> (measurement IRI, canonical unit)."""
        return {str(r["code"]): (URIRef(str(r["measurement"])), str(r["unit"])) for r in self.select("engine/measurements")}

    @cached_property
    def lumbar_sites(self) -> set[tuple[str, str]]:
        return {(str(r["system"]), str(r["code"])) for r in self.select("engine/lumbar-sites")}

    def shape_graph(self, name: str) -> Graph:
        graph = Graph()
        parse_rdf_file(self.shapes_dir / f"{name}.ttl", graph)
        return graph


def load_named_query(name_or_path: str) -> QueryFile:
    """A competency query by name (``queries/<name>.rq``) or a path to a ``.rq`` file."""
    path = Path(name_or_path)
    if path.suffix == ".rq" and path.exists():
        return load_query(path)
    candidate = resources.queries_dir() / f"{name_or_path}.rq"
    if not candidate.exists():
        raise GuidelineError(f"no query named {name_or_path!r} (see 'guideline-kg query --list')")
    return load_query(candidate)
