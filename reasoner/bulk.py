"""A FHIR Bulk Data export read patient by patient: an on-disk SQLite index, never the whole export in memory.

Every line passes the single-file checks as it is indexed. Resources are grouped by the patient their
``subject``/``patient`` names (``Patient/<id>``, version-specific or not); identical repeats of a resource
are one resource, different content under one type and id goes to the reader, which refuses it.

One rule for every driver (this index for the batch, ``reasoner.spark`` for Spark), as the contract has it for
a Bundle (a ``subject`` that resolves to no Patient of the bundle is refused): resources naming a patient that
``Patient.ndjson`` does not hold make that patient id one refused input (``orphan_problem``); a line that fails
the checks and says no patient is a refused input of its own; a resource naming no patient at all (a
Practitioner) is counted and not read (``without_patient_note``). ``file_line`` files one line that way.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from reasoner.errors import InputError
from reasoner.fhir import FHIR_ID, load_json
from reasoner.patient import MAX_INPUT_BYTES, decode_input
from reasoner.unit import Unit, bounded_lines, outside_problem, too_long


def is_bulk_export(folder: Path) -> bool:
    """A folder holding ``Patient.ndjson`` (a link too: it is then refused unread, as any link out of the folder)."""
    return (folder / "Patient.ndjson").is_file() or (folder / "Patient.ndjson").is_symlink()


_PATIENT_REFERENCE = re.compile(r"Patient/([A-Za-z0-9\-.]{1,64})(?:/_history/[A-Za-z0-9\-.]{1,64})?")


def orphan_problem(count: int) -> str:
    """Why a patient id that resources name but ``Patient.ndjson`` does not hold is refused."""
    return f"{count} resource(s) name this patient but Patient.ndjson does not hold it"


def oversize_problem() -> str:
    """Why a patient whose resources add up to more than a single file may hold is refused."""
    return f"the patient's resources are over the {MAX_INPUT_BYTES} byte input limit"


def without_patient_note(count: int) -> str:
    """The summary's line for the resources that name no patient (counted, not read)."""
    return f"guideline-kg: {count} resource(s) name no patient (e.g. Practitioner); not read\n"


def check_line(raw: bytes, where: str) -> tuple[Any, str | None]:
    """One Bulk Data line through the single-file checks: (resource, None), or (what a refused line may still
    tell about whose it is, never used as data, or None; the problem)."""
    try:
        data = load_json(decode_input(raw, where), where)
        if not isinstance(data, dict) or not isinstance(data.get("resourceType"), str):
            raise InputError(f"{where}: not a FHIR resource (no resourceType)")
        rid = data.get("id")
        if rid is not None and not (isinstance(rid, str) and FHIR_ID.fullmatch(rid)):
            raise InputError(f"{where}: id {str(rid)[:40]!r} is not a FHIR id")
    except InputError as exc:
        return _salvage(raw), str(exc)
    return data, None


def file_line(file_name: str, where: str, data: Any, problem: str | None) -> tuple[str | None, str | None]:
    """(patient id, problem) of a checked line: whose it is, and why it refuses that patient (or itself).

    A ``Patient.ndjson`` line without a usable id is a patient of its own, ``#<where>``. Patient id None: the
    line names no patient; with a problem it is a refused input of its own, without one it is not read.
    """
    if file_name == "Patient.ndjson":
        pid = data.get("id") if isinstance(data, dict) else None
        return (pid if isinstance(pid, str) and FHIR_ID.fullmatch(pid) else f"#{where}"), problem
    try:
        return (patient_of(data) if isinstance(data, dict) else None), problem
    except InputError as exc:
        return None, problem or f"{where}: {exc}"


def _salvage(raw: bytes) -> Any:
    """What a refused line may still tell about whose it is (never used as data)."""
    try:
        value = json.loads(raw.decode("utf-8", errors="replace"))
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def patient_of(resource: dict[str, Any]) -> str | None:
    """The id of the Bulk Data patient a resource belongs to, None when it names none (a Practitioner).

    Only a relative ``Patient/<id>`` (version-specific or not) names a patient of the export; a
    ``subject``/``patient`` that is anything else (a Group, another server's Patient) is refused.
    """
    for field_name in ("subject", "patient"):
        value = resource.get(field_name)
        if value is None:
            continue
        ref = value.get("reference") if isinstance(value, dict) else None
        if not isinstance(ref, str):
            raise InputError(f"{field_name}.reference is missing or not a string")
        match = _PATIENT_REFERENCE.fullmatch(ref)
        if match is None:
            raise InputError(f"{field_name}.reference {ref[:80]!r} names no Patient of the export")
        return match.group(1)
    return None


class BulkIndex:
    """An on-disk index of a Bulk Data export: each resource line under its patient, read back patient by patient.

    Every line passes the single-file checks as it is indexed. A line that fails them, or names its
    patient in a way no export patient can match, is kept as a refusal: under its patient when the
    line says which, else as an input of its own. Resources that name no patient (a Practitioner) are
    counted and not read further.
    """

    def __init__(self, folder: Path, workdir: Path) -> None:
        self.folder = folder
        self.db_path = workdir / "bulk-index.sqlite"
        self.db = sqlite3.connect(self.db_path)
        self.db.execute("PRAGMA journal_mode=OFF")
        self.db.execute("PRAGMA synchronous=OFF")
        self.db.execute("CREATE TABLE patient (id TEXT, seq INTEGER, line BLOB, digest TEXT, problem TEXT)")
        self.db.execute("CREATE TABLE resource (patient TEXT, seq INTEGER, rkey TEXT, line BLOB, digest TEXT, "
                        "problem TEXT)")
        self.db.execute("CREATE TABLE stray (seq INTEGER, source TEXT, problem TEXT)")
        self.without_patient = 0
        self._load()

    def _checked(self, path: Path) -> Iterator[tuple[int, str, bytes | None, Any, str | None]]:
        """(line number, source name, raw line, parsed resource or None, problem or None) for each line."""
        for number, raw, length in bounded_lines(path):
            where = f"{path.name} line {number}"
            if raw is None:
                yield number, where, None, None, too_long(where, length)
                continue
            if not raw.strip():
                continue
            data, problem = check_line(raw, where)
            yield number, where, raw, data, problem

    def _load(self) -> None:
        folder = self.folder.resolve()
        seq = 0
        strays: list[tuple[int, str, str]] = []
        patients: list[tuple[str, int, bytes | None, str | None, str | None]] = []
        rows: list[tuple[str, int, str, bytes | None, str | None, str | None]] = []
        files = sorted(self.folder.glob("*.ndjson"), key=lambda p: (p.name != "Patient.ndjson", p.name))
        for path in files:
            problem = outside_problem(self.folder, path)
            if problem is not None:
                seq += 1
                strays.append((seq, path.name, problem))
                continue
            is_patient_file = path.name == "Patient.ndjson"
            for number, where, raw, data, problem in self._checked(folder / path.name):
                seq += 1
                digest = _canonical_digest(data) if problem is None else None
                pid, problem = file_line(path.name, where, data, problem)
                if is_patient_file:
                    patients.append((pid, seq, raw if problem is None else None, digest, problem))
                    continue
                if pid is None:
                    if problem is not None:
                        strays.append((seq, where, problem))
                    else:
                        self.without_patient += 1
                    continue
                rid = data.get("id") if isinstance(data, dict) else None
                rkey = f"{data.get('resourceType')}/{rid}" if isinstance(rid, str) else f"#{seq}"
                rows.append((pid, seq, rkey, raw if problem is None else None, digest, problem))
                if len(rows) >= 10_000:
                    self.db.executemany("INSERT INTO resource VALUES (?, ?, ?, ?, ?, ?)", rows)
                    rows.clear()
            self.db.executemany("INSERT INTO patient VALUES (?, ?, ?, ?, ?)", patients)
            patients.clear()
        self.db.executemany("INSERT INTO resource VALUES (?, ?, ?, ?, ?, ?)", rows)
        self.db.executemany("INSERT INTO stray VALUES (?, ?, ?)", strays)
        self.db.execute("CREATE INDEX patient_id ON patient (id, seq)")
        self.db.execute("CREATE INDEX resource_patient ON resource (patient, seq)")
        self.db.commit()

    def __len__(self) -> int:
        patients = self.db.execute("SELECT count(DISTINCT id) FROM patient").fetchone()[0]
        orphans = self.db.execute("SELECT count(DISTINCT patient) FROM resource WHERE patient NOT IN "
                                  "(SELECT id FROM patient)").fetchone()[0]
        strays = self.db.execute("SELECT count(*) FROM stray").fetchone()[0]
        return int(patients + orphans + strays)

    def names(self) -> list[tuple[str, str]]:
        """(report name, source) of every patient, for the report-name check before any reasoning."""
        return [(bulk_name(pid), bulk_source(pid)) for (pid,) in
                self.db.execute("SELECT id FROM patient GROUP BY id ORDER BY min(seq)")]

    def units(self) -> Iterator[Unit]:
        reader = sqlite3.connect(self.db_path)
        index = 0
        try:
            for (pid,) in reader.execute("SELECT id FROM patient GROUP BY id ORDER BY min(seq)"):
                yield self._patient_unit(index, pid)
                index += 1
            for pid, count in reader.execute(
                    "SELECT patient, count(*) FROM resource WHERE patient NOT IN (SELECT id FROM patient) "
                    "GROUP BY patient ORDER BY min(seq)"):
                yield Unit(index, bulk_name(pid), f"Patient/{pid}", problem=orphan_problem(count))
                index += 1
            for _seq, source, problem in reader.execute("SELECT seq, source, problem FROM stray ORDER BY seq"):
                yield Unit(index, "", source, problem=problem)
                index += 1
        finally:
            reader.close()

    def _patient_unit(self, index: int, pid: str) -> Unit:
        name, source = bulk_name(pid), bulk_source(pid)
        lines: list[bytes] = []
        seen: dict[str, set[str | None]] = {}
        size = 0
        query = ("SELECT 'Patient', line, digest, problem FROM patient WHERE id = ? ORDER BY seq",
                 "SELECT rkey, line, digest, problem FROM resource WHERE patient = ? ORDER BY seq")
        for sql in query:
            for rkey, line, digest, problem in self.db.execute(sql, (pid,)):
                if problem is not None:
                    return Unit(index, name, source, problem=problem)
                digests = seen.setdefault(rkey, set())
                if digest in digests:
                    continue  # the same resource again, identical: one resource (contract: duplicates)
                digests.add(digest)  # a different content under the same id goes to the reader, which refuses it
                size += len(line)
                if size > MAX_INPUT_BYTES:
                    return Unit(index, name, source, problem=oversize_problem())
                lines.append(bytes(line))
        data = (b'{"resourceType":"Bundle","type":"collection","entry":['
                + b",".join(b'{"resource":' + line + b"}" for line in lines) + b"]}")
        return Unit(index, name, source, data=data)

    def close(self) -> None:
        self.db.close()


def bulk_name(pid: str) -> str:
    """A patient's report name: its id, or for a Patient.ndjson line without one, the line (``Patient.ndjson-line-3``)."""
    return pid if not pid.startswith("#") else pid[1:].replace(" ", "-")


def bulk_source(pid: str) -> str:
    return f"Patient/{pid}" if not pid.startswith("#") else pid[1:]


def _canonical_digest(value: Any) -> str:
    """The same for the same content whatever the key order or spacing (decimals compared as written)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8", errors="surrogatepass")).hexdigest()


__all__ = ["BulkIndex", "is_bulk_export", "patient_of", "check_line", "file_line", "orphan_problem",
           "oversize_problem", "without_patient_note", "bulk_name"]
