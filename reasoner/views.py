"""Stored answers: named population queries worked out once when the store is loaded (materialized views).

Which queries
    A named query (``queries/*.rq``) whose header says ``#+ precompute: yes`` and that is a SELECT
    query. Nothing in Python names a query: marking one is a line in its file.

When
    At the end of ``guideline-kg load`` (and so of ``--reports DIR``, which loads a temporary
    store), :func:`refresh` opens the finished store read-only, evaluates every marked query
    without parameters and writes its answer (SPARQL results JSON, XML, CSV and TSV, as Oxigraph
    writes them) to the folder ``guideline-kg-answers`` inside the store folder. For each declared
    parameter that restricts an output column (the parameter is a projected variable, and a GROUP BY key when
    the query aggregates) the answer is also split by that column's value, each part written as
    Oxigraph writes it (at most ``MAX_PARTS`` values; more and that parameter is evaluated).
    Answers are written to a new folder that replaces the old one whole.

Never stale
    The answers are keyed by the query text and by a fingerprint of the store: the name, size and
    modification time of every file of the store folder (RocksDB writes new files, and appends to
    its manifest and log, on every write; opening it read-only changes nothing), with the
    Oxigraph version. Any later write to the store (another ``load``, or a program writing to it)
    changes the fingerprint, and the answers are then ignored until the next ``load`` works them
    out again. The fingerprint is checked on every use (a directory listing: well under a millisecond).

Use
    :func:`answer` gives the stored answer of a query text with its bindings (the whole answer, or
    the part whose column equals the bound term) in JSON, XML, CSV or TSV, or None: the caller then
    evaluates the query as before. Every format is written at load time by Oxigraph's own writers,
    so the bytes are those of evaluating the query and writing its solutions.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyoxigraph as ox

FOLDER = "guideline-kg-answers"
INDEX = "index.json"
MAX_PARTS = 1000  # column values an answer is split into, per parameter
FORMAT_VERSION = "1"
_JSON = ox.QueryResultsFormat.JSON
FORMATS = ("json", "xml", "csv", "tsv")  # as reasoner.workers.RESULT_FORMATS names them


def is_marked(query: Any) -> bool:
    """Whether a named query asks for its answer to be worked out at load time (``#+ precompute: yes``)."""
    return query.first("precompute").strip().lower() in ("yes", "true")


def text_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def term_key(term: Any) -> str:
    """A file name for an RDF term (Oxigraph's), by its N-Triples form: equal terms, equal names."""
    return hashlib.sha256(str(term).encode("utf-8", "surrogatepass")).hexdigest()[:32]


def fingerprint(folder: Path) -> str:
    """What identifies the store's content: every file of its folder (name, size, modification time)."""
    digest = hashlib.sha256(f"{FORMAT_VERSION} {ox.__version__}".encode())
    try:
        entries = sorted((e.name, e.stat().st_size, e.stat().st_mtime_ns) for e in os.scandir(folder)
                         if e.is_file(follow_symlinks=False))
    except OSError:
        return ""
    for name, size, mtime in entries:
        digest.update(f"\0{name}\0{size}\0{mtime}".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


# --- which parameters restrict a column ------------------------------------------------------------


def _nodes(node: Any) -> Any:
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, dict):
            yield current
            stack.extend(current.values())
        elif isinstance(current, (list, tuple)):
            stack.extend(current)


def column_params(query: Any) -> list[str]:
    """The parameters of a query that only restrict an output column: binding one keeps the rows whose
    column holds the bound term. A parameter qualifies when it is a projected variable that no
    expression assigns (BIND, ``AS``) and, in a query that aggregates, a GROUP BY key."""
    from rdflib import Variable

    algebra = query.prepared().algebra
    projected = {str(v) for v in algebra.get("PV") or []}
    groups = [n for n in _nodes(algebra) if getattr(n, "name", None) == "Group"]
    keys: set[str] | None = None
    if groups:
        if len(groups) > 1 or not groups[0].get("expr"):
            return []  # a subquery's grouping, or aggregates without GROUP BY (one row even for no match)
        keys = {str(e) for e in groups[0]["expr"] if isinstance(e, Variable)}
    assigned = {str(n["var"]) for n in _nodes(algebra) if getattr(n, "name", None) == "Extend"
                and not str(n.get("expr", "")).startswith("__agg_")}
    found = []
    for param in query.params:
        if param.name in projected and param.name not in assigned and (keys is None or param.name in keys):
            found.append(param.name)
    return found


# --- working answers out -------------------------------------------------------------------------


@dataclass(frozen=True)
class Refreshed:
    queries: int
    seconds: float


def _convert(base: Path) -> None:
    """``base.json`` written again in every other format, by Oxigraph, streamed from file to file."""
    for fmt in FORMATS[1:]:
        results = ox.parse_query_results(path=f"{base}.json", format=_JSON)
        results.serialize(f"{base}.{fmt}", format=getattr(ox.QueryResultsFormat, fmt.upper()))


def _write_part(base: Path, tsv: bytes) -> None:
    """Rows of an answer (SPARQL results TSV: a header line, one row a line) in every format, by Oxigraph."""
    ox.parse_query_results(tsv, ox.QueryResultsFormat.TSV).serialize(f"{base}.json", format=_JSON)
    _convert(base)


def _cell_term(header: bytes, width: int, index: int, cell: bytes) -> str:
    """The N-Triples form of a TSV cell (as Oxigraph reads it), for the name of its part."""
    row = b"\t" * index + cell + b"\t" * (width - index - 1)
    solution = next(iter(ox.parse_query_results(header + b"\n" + row + b"\n", ox.QueryResultsFormat.TSV)))
    return str(solution[index])


def _work_out(store: ox.Store, query: Any, target: Path) -> dict[str, Any]:
    """Evaluate a query, write its answer (file to file: the answer is never all in memory as objects) and
    split it by each column parameter's value (row order kept: a part is the rows that hold the value)."""
    key = text_key(query.text)
    base = target / key
    store.query(query.text).serialize(f"{base}.json", format=_JSON)
    _convert(base)
    entry: dict[str, Any] = {"name": query.name, "params": {}}
    columns = column_params(query)
    if not columns:
        return entry
    header, *rows = Path(f"{base}.tsv").read_bytes().split(b"\n")[:-1]
    names = [name.decode("utf-8")[1:] for name in header.split(b"\t")]
    for name in columns:
        index = names.index(name)
        parts: dict[bytes, list[bytes]] = {}
        for row in rows:
            cell = row.split(b"\t")[index]
            if cell:  # unbound: no binding of the parameter keeps the row
                parts.setdefault(cell, []).append(row)
            if len(parts) > MAX_PARTS:
                break
        if len(parts) > MAX_PARTS:
            continue  # that parameter is evaluated
        folder = target / key / name
        folder.mkdir(parents=True)
        for cell, part in parts.items():
            term = _cell_term(header, len(names), index, cell)
            _write_part(folder / term_key(term), b"\n".join([header, *part, b""]))
        _write_part(folder / "none", header + b"\n")
        entry["params"][name] = len(parts)
    return entry


def _remove(folder: Path) -> None:
    """Remove a folder of answers by full paths (``shutil.rmtree`` opens entries relative to a folder's file
    descriptor, which the process's file guard, reasoner.guard, cannot tell are under the store)."""
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            _remove(Path(entry.path))
        else:
            os.unlink(entry.path)
    os.rmdir(folder)


def refresh(store_dir: Path, queries: Mapping[str, Any] | None = None) -> Refreshed:
    """Work out the answers of every marked query over the (closed) store at ``store_dir`` and replace the
    stored answers with them; the old answers are removed first, so none outlives this load."""
    import time

    started = time.monotonic()
    if queries is None:
        from reasoner import resources
        from reasoner.queries import load_folder

        queries = load_folder(resources.queries_dir())
    marked = [q for _, q in sorted(queries.items()) if is_marked(q)]
    answers = store_dir / FOLDER
    _remove(answers)
    if not marked:
        return Refreshed(0, time.monotonic() - started)
    from reasoner.workers import scan_query

    before = fingerprint(store_dir)
    target = Path(tempfile.mkdtemp(prefix=f".{FOLDER}-", dir=store_dir))
    try:
        store = ox.Store.read_only(str(store_dir))
        index: dict[str, Any] = {}
        try:
            for query in marked:
                if scan_query(query.text) != "SELECT":
                    continue  # only solutions are stored
                index[text_key(query.text)] = _work_out(store, query, target)
        finally:
            del store
        after = fingerprint(store_dir)
        if before != after:  # written to while it was read: keep nothing
            _remove(target)
            return Refreshed(0, time.monotonic() - started)
        (target / INDEX).write_text(json.dumps({"fingerprint": after, "answers": index}, indent=1, sort_keys=True),
                                    encoding="utf-8")
        target.rename(answers)
    except BaseException:
        _remove(target)
        raise
    return Refreshed(len(index), time.monotonic() - started)


# --- using them ----------------------------------------------------------------------------------


_INDEXES: dict[str, tuple[tuple[int, int], dict[str, Any]]] = {}


def _index(store_dir: Path) -> dict[str, Any] | None:
    path = store_dir / FOLDER / INDEX
    try:
        stat = path.stat()
        stamp = (stat.st_mtime_ns, stat.st_ino)
        known = _INDEXES.get(str(path))
        if known is not None and known[0] == stamp:
            return known[1]
        index = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    _INDEXES[str(path)] = (stamp, index)
    return index


def lookup(store_dir: Path, text: str, bindings: Mapping[str, Any] | None = None) -> Path | None:
    """Where the stored answer (``<path>.json``, ``.xml``, ``.csv``, ``.tsv``) to ``text`` with ``bindings``
    (variable name -> Oxigraph term) is, or None when there is none that is current (the query is not marked,
    the store changed since it was worked out, or a binding is not a column the answer was split by)."""
    index = _index(store_dir)
    if index is None:
        return None
    key = text_key(text)
    entry = index.get("answers", {}).get(key)
    if entry is None or index.get("fingerprint") != fingerprint(store_dir):
        return None
    folder = store_dir / FOLDER
    if not bindings:
        path = folder / key
    elif len(bindings) == 1:
        ((name, term),) = bindings.items()
        if name not in entry.get("params", {}):
            return None
        path = folder / key / name / term_key(term)
        if not Path(f"{path}.json").is_file():
            path = folder / key / name / "none"  # no row holds it
    else:
        return None
    return path if Path(f"{path}.json").is_file() else None


def read(path: Path, fmt: str = "json") -> bytes | None:
    """A stored answer in ``fmt`` (json, xml, csv, tsv), or None when it cannot be read."""
    if fmt not in FORMATS:
        return None
    try:
        return Path(f"{path}.{fmt}").read_bytes()
    except OSError:
        return None


def answer(store_dir: Path, text: str, bindings: Mapping[str, Any] | None = None, fmt: str = "json") -> bytes | None:
    """The stored answer to a query text with its bindings, written in ``fmt``; None: evaluate it."""
    path = lookup(store_dir, text, bindings)
    return None if path is None else read(path, fmt)


__all__ = ["refresh", "lookup", "answer", "read", "fingerprint", "is_marked", "column_params", "FOLDER"]
