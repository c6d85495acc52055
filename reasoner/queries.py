"""Query files: one SPARQL query per ``.rq`` file, its name the file stem, its header in comments.

A header is a block of ``#+ key: value`` lines (grlc style), which keeps the file
valid SPARQL. Parameters are declared ``#+ param: name type [description]`` and
bound as RDF terms through ``initBindings``, never spliced into the query text.

Parsing SPARQL with rdflib is slow (~10 ms a query), so prepared queries are kept in the
disk cache (``reasoner.cache``, pickled with ``reasoner.algebra``'s reducers); a query that
fails to parse or is refused by ``local_only_problem`` is never cached.
"""

from __future__ import annotations

import hashlib
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import rdflib
from rdflib import Literal, URIRef
from rdflib.plugins.sparql import prepareQuery
from rdflib.plugins.sparql.sparql import Query as PreparedQuery

from reasoner import algebra, cache
from reasoner.errors import GuidelineError

algebra.register()  # (done on import already) prepared queries pickle to the disk cache and back

_HEADER = re.compile(r"^#\+\s*([A-Za-z_-]+)\s*:\s*(.*?)\s*$")


@dataclass(frozen=True)
class Param:
    """A typed query parameter: ``iri``, ``string``, ``integer``, ``decimal`` or ``boolean``."""

    name: str
    type: str
    description: str = ""

    def term(self, text: str) -> URIRef | Literal:
        """The RDF term for a value given as text; raises ValueError naming the parameter."""
        if self.type == "iri":
            if not re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*:[^\s<>\"{}|\\^`]*", text):
                raise ValueError(f"parameter {self.name}: {text!r} is not an IRI")
            return URIRef(text)
        if self.type == "integer":
            try:
                return Literal(int(text))
            except ValueError:
                raise ValueError(f"parameter {self.name}: {text!r} is not an integer") from None
        if self.type == "decimal":
            from decimal import Decimal, InvalidOperation

            try:
                return Literal(Decimal(text))
            except InvalidOperation:
                raise ValueError(f"parameter {self.name}: {text!r} is not a decimal") from None
        if self.type == "boolean":
            if text not in ("true", "false"):
                raise ValueError(f"parameter {self.name}: {text!r} is not true or false")
            return Literal(text == "true")
        return Literal(text)


@dataclass(frozen=True)
class QueryFile:
    """A query file with its header and its parsed, prepared query."""

    name: str
    path: Path
    text: str
    header: dict[str, list[str]]
    params: tuple[Param, ...] = field(default=())

    @property
    def summary(self) -> str:
        return " ".join(self.header.get("summary", []))

    @property
    def statements(self) -> list[str]:
        return [s for line in self.header.get("statements", []) for s in line.split()]

    def first(self, key: str, default: str = "") -> str:
        values = self.header.get(key)
        return values[0] if values else default

    def prepared(self) -> PreparedQuery:
        return _prepare(self)


_PREPARED: dict[tuple[str, str], PreparedQuery] = {}

# Bump when what a cached prepared query holds changes (reasoner.algebra's reducers, or _prepare).
CACHE_VERSION = "1"


def _prepare(query: QueryFile) -> PreparedQuery:
    key = (str(query.path), query.text)
    if key not in _PREPARED:
        cached = cache_path(query.text)
        prepared = _from_cache(cached)
        if prepared is None or local_only_problem(prepared):  # only queries that passed the check are cached
            try:
                prepared = prepareQuery(query.text)
            except Exception as exc:  # rdflib raises pyparsing errors of several kinds
                raise GuidelineError(f"{query.path.name}: not valid SPARQL: {str(exc).splitlines()[0]}") from None
            problem = local_only_problem(prepared)
            if problem:
                raise GuidelineError(f"{query.path.name}: {problem}")
            cache.write(cached, prepared)
        _PREPARED[key] = prepared
    return _PREPARED[key]


def prepare_text(text: str, init_ns: Mapping[str, str] | None = None) -> PreparedQuery:
    """``prepareQuery(text, initNs=init_ns)`` through the disk cache; rdflib's errors propagate as they are.

    No check of what the query may reach: for queries the package itself holds (SHACL constraints).
    """
    cached = cache_path(text, init_ns)
    prepared = _from_cache(cached)
    if prepared is None:
        prepared = prepareQuery(text, initNs=dict(init_ns or {}))
        cache.write(cached, prepared)
    return prepared


def _from_cache(path: Path) -> PreparedQuery | None:
    prepared = cache.read(path)
    return prepared if isinstance(prepared, PreparedQuery) else None


def cache_path(text: str, init_ns: Mapping[str, str] | None = None) -> Path:
    """Where the prepared form of a query text is cached: parsing one costs ~10 ms, unpickling ~0.1 ms.

    Keyed by the text (a prepared query does not depend on the file's name or place), the
    prefixes it is prepared with, the rdflib and Python versions and CACHE_VERSION; one small
    file per query (as fast to read as one file per folder: ~6 ms for the 49 engine queries).
    """
    parts = [rdflib.__version__, f"{sys.version_info[0]}.{sys.version_info[1]}", CACHE_VERSION, text]
    for prefix, namespace in sorted((init_ns or {}).items()):
        parts += [prefix, str(namespace)]
    digest = hashlib.sha256()
    for part in parts:
        data = part.encode("utf-8", "surrogatepass")
        digest.update(b"%d:" % len(data))
        digest.update(data)
    return cache.cache_dir() / "queries" / f"{digest.hexdigest()}.pickle"


def parse_header(text: str) -> dict[str, list[str]]:
    header: dict[str, list[str]] = {}
    for line in text.splitlines():
        match = _HEADER.match(line)
        if match:
            header.setdefault(match.group(1).lower(), []).append(match.group(2))
    return header


def local_only_problem(query: PreparedQuery) -> str | None:
    """Why a parsed query could reach outside the loaded graphs (SERVICE, FROM, FROM NAMED), or None."""
    if query.algebra.get("datasetClause"):
        return "FROM and FROM NAMED are not allowed: queries run only over the loaded graphs"
    stack = [query.algebra]
    while stack:
        node = stack.pop()
        if getattr(node, "name", None) == "ServiceGraphPattern":
            return "SERVICE is not allowed: queries never call other endpoints"
        if isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, (list, tuple)):
            stack.extend(node)
    return None


# The longest shipped query is under 3 kB; rdflib's parser takes seconds per 100 kB.
MAX_QUERY_BYTES = 64 * 1024


def load_query(path: Path) -> QueryFile:
    return read_query(path)[0]


def read_query(path: Path) -> tuple[QueryFile, bytes]:
    """A query file and the bytes it was read from (for content hashes of exactly what was loaded)."""
    try:
        size = path.stat().st_size
        if size > MAX_QUERY_BYTES:
            raise GuidelineError(f"{path.name}: {size} bytes is over the {MAX_QUERY_BYTES} byte limit for a query")
        data = path.read_bytes()
    except OSError as exc:
        raise GuidelineError(f"{path}: cannot read query: {exc}") from None
    return query_from_bytes(path.stem, path, data), data


def query_from_bytes(name: str, path: Path, data: bytes) -> QueryFile:
    """A query from its bytes (a file's, or standard input's for ``query -``)."""
    if len(data) > MAX_QUERY_BYTES:
        raise GuidelineError(f"{path.name}: {len(data)} bytes is over the {MAX_QUERY_BYTES} byte limit for a query")
    try:
        text = decode_text(data)
    except UnicodeDecodeError as exc:
        raise GuidelineError(f"{path}: cannot read query: {exc}") from None
    header = parse_header(text)
    params = []
    for line in header.get("param", []):
        parts = line.split(None, 2)
        if len(parts) < 2:
            raise GuidelineError(f"{path.name}: '#+ param: {line}' needs a name and a type")
        params.append(Param(parts[0], parts[1], parts[2] if len(parts) > 2 else ""))
    return QueryFile(name, path, text, header, tuple(params))


def decode_text(data: bytes) -> str:
    """``data`` as ``Path.read_text(encoding="utf-8")`` reads it: strict UTF-8, universal newlines."""
    return data.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")


def load_folder(folder: Path) -> dict[str, QueryFile]:
    return {p.stem: load_query(p) for p in sorted(folder.glob("*.rq"))}


def read_folder(folder: Path) -> dict[str, tuple[QueryFile, bytes]]:
    return {p.stem: read_query(p) for p in sorted(folder.glob("*.rq"))}
