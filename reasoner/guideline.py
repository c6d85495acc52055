"""The guideline knowledge graph as loaded once: ontology, rules, shapes and the tables read from them."""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from decimal import Decimal
from functools import cached_property
from pathlib import Path
from typing import Any

from rdflib import Graph, URIRef

from reasoner import cache, namespaces, resources
from reasoner.errors import GuidelineError
from reasoner.namespaces import RULE
from reasoner.queries import QueryFile, decode_text, load_folder, load_query, read_folder


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
    """canonical = (value + offset) * factor / divisor, computed exactly."""

    to_unit: str
    offset: Decimal
    factor: Decimal
    divisor: Decimal


@dataclass(frozen=True)
class Measurement:
    iri: URIRef
    system: str
    code: str
    unit: str  # the canonical UCUM unit
    label: str


@dataclass(frozen=True)
class Threshold:
    """A threshold in its measurement's canonical unit: at or above ``at_or_above``, or above ``above``."""

    measurement: URIRef
    at_or_above: Decimal | None
    above: Decimal | None


def parse_rdf_file(path: Path, graph: Graph) -> None:
    """Parse one Turtle file of an encoding, with a one-line error naming file and line."""
    source = _read_source(path)
    _parse_source(source, graph)


@dataclass(frozen=True)
class _Source:
    """An ontology file as read at load time: what the graph is parsed from, later if at all."""

    path: Path
    uri: str  # the base IRI relative IRIs in the file resolve against
    data: bytes
    text: str


def _read_source(path: Path) -> _Source:
    try:
        data = path.read_bytes()
        text = decode_text(data)
    except (OSError, UnicodeDecodeError) as exc:
        raise GuidelineError(f"{path}: cannot read: {exc}") from None
    return _Source(path, path.resolve().as_uri(), data, text)


def _parse_source(source: _Source, graph: Graph) -> None:
    try:
        graph.parse(data=source.text, format="turtle", publicID=source.uri)
    except Exception as exc:  # rdflib's parsers raise several unrelated types
        message = " ".join(str(exc).split())
        raise GuidelineError(f"{source.path.name}: not valid Turtle: {message[:300]}") from None


def _parse_sources(sources: list[_Source]) -> Graph:
    graph = Graph()
    for source in sources:
        _parse_source(source, graph)
    return graph


# ---- the disk cache of loaded encodings ----
#
# One entry per ontology (file names, base IRIs and bytes, under one rdflib version): that it
# exists says the files parsed before, so ``load`` may leave the Turtle unparsed until ``graph``
# is first used. Rules are checked on every load either way (cheap with the prepared-query cache).
# The entry also holds the tables SPARQL reads from the graph, valid for the engine queries and
# the code they were computed with (``tables_key``).

CACHE_VERSION = "2"  # bump when the entry's layout or the meaning of a table changes
TABLES = ("info", "concepts", "code_map", "codings_by_key", "conversions", "measurements", "lumbar_sites",
          "thresholds", "value_qualifiers", "interpretations", "history_by_nature")


def _ontology_key(sources: list[_Source]) -> str:
    import rdflib

    digest = hashlib.sha256(f"guideline-kg encoding {CACHE_VERSION} rdflib {rdflib.__version__}\0".encode())
    for source in sources:
        digest.update(f"{len(source.uri)}:{source.uri}{len(source.data)}:".encode("utf-8", "surrogatepass"))
        digest.update(source.data)
    return digest.hexdigest()


def _code_digest() -> str:
    """The source of the code the tables are computed with; a developer's edit makes cached tables stale."""
    digest = hashlib.sha256()
    for module in (__file__, namespaces.__file__):
        try:
            digest.update(Path(module).read_bytes())
        except (OSError, TypeError):
            return ""
    return digest.hexdigest()


def _tables_key(named: dict[str, QueryFile]) -> str | None:
    code = _code_digest()
    if not code:
        return None
    digest = hashlib.sha256(f"tables {CACHE_VERSION} {code}\0".encode())
    for name in sorted(named):
        text = named[name].text.encode("utf-8", "surrogatepass")
        digest.update(f"{len(name)}:{name}{len(text)}:".encode("utf-8", "surrogatepass"))
        digest.update(text)
    return digest.hexdigest()


def _entry_path(ontology_key: str) -> Path:
    return cache.cache_dir() / f"guideline-{CACHE_VERSION}-{ontology_key}.pickle"


def _read_entry(path: Path) -> dict[str, Any] | None:
    entry = cache.read(path)
    if isinstance(entry, dict) and entry.get("parsed") is True:
        return entry
    return None


class Guideline:
    """Everything loaded from the encoding. ``graph`` is the asserted guideline; nothing mutates it.

    ``Guideline.load`` reads every file of the encoding and checks the rules; the Turtle is
    parsed at load unless this exact ontology parsed before (see the cache above), else on the
    first use of ``graph``. Every error a broken encoding can raise at load is raised at load.
    """

    def __init__(self, graph: Graph | None, rules: list[Rule], queries: dict[str, QueryFile], shapes_dir: Path,
                 files: list[Path] | None = None) -> None:
        self._graph = graph
        self._sources: list[_Source] | None = None  # what graph is parsed from when it is still None
        self._lock = threading.Lock()
        self.rules = rules
        self.queries = queries
        self.shapes_dir = shapes_dir
        self.files = files if files is not None else []

    @property
    def graph(self) -> Graph:
        graph = self._graph
        if graph is None:
            with self._lock:
                if self._graph is None:
                    if self._sources is None:
                        raise GuidelineError("the guideline has no graph")
                    self._graph = _parse_sources(self._sources)
                    self._sources = None
                graph = self._graph
        return graph

    @graph.setter
    def graph(self, value: Graph) -> None:
        self._graph = value

    @property
    def parsed(self) -> bool:
        """Whether the Turtle has been parsed (``graph`` parses it on first use)."""
        return self._graph is not None

    def __repr__(self) -> str:
        return f"Guideline(files={[str(f) for f in self.files]!r}, rules={len(self.rules)}, parsed={self.parsed})"

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    @classmethod
    def load(cls, ontology: Path | None = None, queries: Path | None = None, shapes: Path | None = None) -> "Guideline":
        ontology = ontology or resources.ontology_dir()
        queries = queries or resources.queries_dir()
        shapes = shapes or resources.shapes_dir()
        files = sorted(ontology.glob("*.ttl")) if ontology.is_dir() else [ontology]
        if not files:
            raise GuidelineError(f"{ontology}: no Turtle files found")
        sources: list[_Source] = []
        for path in files:
            try:
                sources.append(_read_source(path))
            except GuidelineError:
                _parse_sources(sources)  # a broken earlier file is reported first, as when each is parsed as read
                raise
        entry_path = _entry_path(_ontology_key(sources))
        entry = _read_entry(entry_path)
        graph = None if entry is not None else _parse_sources(sources)  # every Turtle error, now
        rules = []
        rule_bytes: dict[str, bytes] = {}
        for name, (query, data) in read_folder(queries / "rules").items():
            try:
                stratum = int(query.first("stratum", "1"))
            except ValueError:
                raise GuidelineError(f"{name}.rq: '#+ stratum:' must be a whole number") from None
            if query.prepared().algebra.name != "ConstructQuery":
                raise GuidelineError(f"{name}.rq: a rule must be a CONSTRUCT query")
            rules.append(Rule(name, RULE[name], stratum, query))
            rule_bytes[name] = data
        rules.sort(key=lambda r: (r.stratum, r.name))
        named = {**{f"engine/{k}": v for k, v in load_folder(queries / "engine").items()},
                 **{f"report/{k}": v for k, v in load_folder(queries / "report").items()}}
        guideline = cls(graph=graph, rules=rules, queries=named, shapes_dir=shapes, files=files)
        guideline._sources = sources if graph is None else None
        fingerprint = _fingerprint([(s.path.name, s.data) for s in sources]
                                   + [(r.query.path.name, rule_bytes[r.name]) for r in rules], shapes)
        if fingerprint is not None:
            guideline.__dict__["fingerprint"] = fingerprint
        guideline._use_tables(entry, entry_path)
        return guideline

    def _use_tables(self, entry: dict[str, Any] | None, entry_path: Path) -> None:
        """Take the tables from the cache entry, or compute them and write the entry for the next load."""
        key = _tables_key(self.queries)
        if entry is not None and key is not None and entry.get("tables_key") == key:
            cached = entry.get("tables")
            if cached is None:
                return  # they could not be computed: each is computed (and raises) on first use, as uncached
            if isinstance(cached, dict) and all(name in cached for name in TABLES):
                self.__dict__.update({name: cached[name] for name in TABLES})
                return
        tables: dict[str, Any] | None
        try:
            tables = {name: getattr(self, name) for name in TABLES}
        except Exception:  # noqa: BLE001 - raised again, as before, when the table is first used
            if self._graph is None:
                return  # the Turtle did not parse again: nothing to remember
            tables = None
        cache.write(entry_path, {"parsed": True, "tables_key": key, "tables": tables if key is not None else None})

    def select(self, name: str) -> list[dict[str, object]]:
        """Run a named engine/report query over the guideline graph; rows as dicts of Python values."""
        result = self.graph.query(self.queries[name].prepared())
        return [{str(k): (v.toPython() if v is not None else None) for k, v in row.asdict().items()} for row in result]

    @cached_property
    def fingerprint(self) -> str:
        """A content hash of every file the reasoning depends on (``load`` hashes the bytes it read)."""
        paths = [*self.files, *(r.query.path for r in self.rules), *sorted(self.shapes_dir.glob("*.ttl"))]
        return _digest([(path.name, path.read_bytes()) for path in paths])

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
        return {str(r["from"]): Conversion(str(r["to"]), Decimal(str(r["offset"])), Decimal(str(r["factor"])),
                                           Decimal(str(r["divisor"])))
                for r in self.select("engine/unit-conversions")}

    @cached_property
    def measurements(self) -> dict[tuple[str, str], Measurement]:
        """(code system, code) -> the measurement and its canonical unit."""
        table = {}
        for r in self.select("engine/measurements"):
            m = Measurement(URIRef(str(r["measurement"])), str(r["system"]), str(r["code"]), str(r["unit"]),
                            str(r["label"]))
            table[(m.system, m.code)] = m
        return table

    @cached_property
    def thresholds(self) -> list[Threshold]:
        def number(value: object) -> Decimal | None:
            return None if value is None else Decimal(str(value))

        return [Threshold(URIRef(str(r["measurement"])), number(r.get("atOrAbove")), number(r.get("above")))
                for r in self.select("engine/thresholds")]

    def _qualifiers(self, kind: str) -> dict[tuple[str, str], str]:
        return {(str(r["system"]), str(r["code"])): str(r["status"]) for r in self.select("engine/qualifiers")
                if str(r["kind"]).endswith("#" + kind)}

    @cached_property
    def value_qualifiers(self) -> dict[tuple[str, str], str]:
        """(system, code) -> "present" or "absent", for an Observation's valueCodeableConcept."""
        return self._qualifiers("ValueQualifier")

    @cached_property
    def interpretations(self) -> dict[tuple[str, str], str]:
        """(system, code) -> "absent", for an Observation's interpretation."""
        return self._qualifiers("InterpretationQualifier")

    @cached_property
    def history_by_nature(self) -> frozenset[str]:
        return frozenset(str(r["key"]) for r in self.select("engine/history-by-nature"))

    @cached_property
    def lumbar_sites(self) -> set[tuple[str, str]]:
        return {(str(r["system"]), str(r["code"])) for r in self.select("engine/lumbar-sites")}

    def shape_graph(self, name: str) -> Graph:
        graph = Graph()
        parse_rdf_file(self.shapes_dir / f"{name}.ttl", graph)
        return graph


def _fingerprint(files: list[tuple[str, bytes]], shapes_dir: Path) -> str | None:
    """``Guideline.fingerprint`` of the bytes load read; None when a shapes file cannot be read now."""
    try:
        shapes = [(path.name, path.read_bytes()) for path in sorted(shapes_dir.glob("*.ttl"))]
    except OSError:
        return None  # the property reads the files again, and fails, when the fingerprint is asked for
    return _digest(files + shapes)


def _digest(files: list[tuple[str, bytes]]) -> str:
    digest = hashlib.sha256()
    for name, data in files:
        digest.update(name.encode())
        digest.update(data)
    return digest.hexdigest()


def load_named_query(name_or_path: str) -> QueryFile:
    """A competency query by name (``queries/<name>.rq``), a path to a ``.rq`` file, or ``-``: standard input."""
    if name_or_path == "-":
        import sys

        from reasoner.queries import MAX_QUERY_BYTES, query_from_bytes

        return query_from_bytes("stdin", Path("<stdin>"), sys.stdin.buffer.read(MAX_QUERY_BYTES + 1))
    path = Path(name_or_path)
    if path.suffix == ".rq" and path.exists():
        return load_query(path)
    candidate = resources.queries_dir() / f"{name_or_path}.rq"
    if not candidate.exists():
        raise GuidelineError(f"no query named {name_or_path!r} (see 'guideline-kg query --list')")
    return load_query(candidate)
