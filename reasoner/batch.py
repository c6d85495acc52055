"""``guideline-kg recommend`` over many patients: a folder, an NDJSON file of Bundles, or a FHIR Bulk Data export.

Inputs, one patient each:

* a folder of patient files (``*.json``, ``*.ttl``, ``*.jsonld``, ``*.nt``): the report is named after the file;
* an ``.ndjson`` file, one Bundle a line: the report is named ``line-0000001`` after its line;
* a FHIR Bulk Data export folder (``Patient.ndjson``, ``Condition.ndjson``, ...; recognised by
  ``Patient.ndjson``): resources are grouped by the patient their ``subject``/``patient`` names through
  an on-disk SQLite index, never the whole export in memory; the report is named after the Patient id.

Outputs: ``--out DIR`` (one file per patient in ``--format``, each written atomically; a rerun skips the
patients whose report is there, so a killed batch resumes and ends with every report exactly once) or
``--ndjson`` (one compact JSON report a line on stdout, in input order). ``--jobs N`` spreads the
patients over N processes with a bounded window of work in flight, so memory does not grow with the
input. On a terminal stderr shows a progress bar; a summary line ends every run.

A refused patient gets one stderr line naming it and the batch goes on. Exit code: 2 if some patient
was refused, else 1 if some did not conform, else 0.
"""

from __future__ import annotations

import argparse
import collections
import json
import multiprocessing
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from reasoner.errors import GuidelineError, InputError
from reasoner.output import write_atomic

PATIENT_SUFFIXES = (".json", ".ttl", ".jsonld", ".nt")
EXTENSIONS = {"json": ".json", "turtle": ".ttl", "jsonld": ".jsonld", "nquads": ".nq", "text": ".txt", "html": ".html",
              "fhir": ".fhir.json"}
WINDOW_PER_JOB = 64
CHUNK = 16  # patients a task
WORKDIR_PREFIX = ".guideline-kg-batch-"


@dataclass(frozen=True)
class Unit:
    """One patient to reason over: its name (the report's file stem) and where its input is."""

    index: int
    name: str
    path: str | None = None  # a file to read
    text: str | None = None  # or the Bundle itself


@dataclass(frozen=True)
class Outcome:
    index: int
    name: str
    status: str  # "conforms", "nonconforming", "refused", "skipped"
    message: str = ""
    line: str | None = None  # the compact JSON report, for --ndjson


# ---- inputs ----


def is_bulk_export(folder: Path) -> bool:
    return (folder / "Patient.ndjson").is_file()


def folder_units(folder: Path) -> list[Unit]:
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in PATIENT_SUFFIXES
                   and not p.name.startswith("."))
    stems = collections.Counter(p.stem for p in files)
    return [Unit(i, p.stem if stems[p.stem] == 1 else p.name, path=str(p)) for i, p in enumerate(files)]


def ndjson_units(path: Path) -> Iterator[Unit]:
    with path.open("r", encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                yield Unit(number, f"line-{number:07d}", text=line)


def count_lines(path: Path) -> int:
    with path.open("rb") as handle:
        return sum(1 for line in handle if line.strip())


def _patient_of(resource: dict[str, Any]) -> str | None:
    """The id of the patient a bulk resource belongs to (``subject`` or ``patient`` reference)."""
    for field_name in ("subject", "patient"):
        value = resource.get(field_name)
        if isinstance(value, dict) and isinstance(value.get("reference"), str):
            ref = value["reference"]
            if "Patient/" in ref:
                return ref.rsplit("Patient/", 1)[1].split("/")[0] or None
    return None


class BulkIndex:
    """An on-disk index of a Bulk Data export: each resource line under its patient, read back patient by patient."""

    def __init__(self, folder: Path, workdir: Path) -> None:
        self.folder = folder
        self.db_path = workdir / "bulk-index.sqlite"
        self.db = sqlite3.connect(self.db_path)
        self.db.execute("PRAGMA journal_mode=OFF")
        self.db.execute("PRAGMA synchronous=OFF")
        self.db.execute("CREATE TABLE patient (id TEXT PRIMARY KEY, seq INTEGER, line TEXT)")
        self.db.execute("CREATE TABLE resource (patient TEXT, seq INTEGER, line TEXT)")
        self.unattached = 0
        self._load()

    def _lines(self, path: Path) -> Iterator[tuple[int, str, dict[str, Any] | None]]:
        with path.open("r", encoding="utf-8", errors="replace") as handle:
            for number, line in enumerate(handle, start=1):
                line = line.strip()
                if not line:
                    continue
                try:
                    data = json.loads(line)
                except ValueError:
                    data = None
                yield number, line, data if isinstance(data, dict) else None

    def _load(self) -> None:
        patients = []
        for number, line, data in self._lines(self.folder / "Patient.ndjson"):
            pid = data.get("id") if data else None
            if not isinstance(pid, str) or not pid:
                pid = f"Patient.ndjson-line-{number}"
            patients.append((pid, number, line))
            if len(patients) >= 10_000:
                self.db.executemany("INSERT OR IGNORE INTO patient VALUES (?, ?, ?)", patients)
                patients.clear()
        self.db.executemany("INSERT OR IGNORE INTO patient VALUES (?, ?, ?)", patients)
        seq = 0
        for path in sorted(self.folder.glob("*.ndjson")):
            if path.name == "Patient.ndjson":
                continue
            rows = []
            for _number, line, data in self._lines(path):
                seq += 1
                pid = _patient_of(data) if data else None
                if pid is None:
                    self.unattached += 1
                    continue
                rows.append((pid, seq, line))
                if len(rows) >= 10_000:
                    self.db.executemany("INSERT INTO resource VALUES (?, ?, ?)", rows)
                    rows.clear()
            self.db.executemany("INSERT INTO resource VALUES (?, ?, ?)", rows)
        self.db.execute("CREATE INDEX resource_patient ON resource (patient, seq)")
        self.db.commit()

    def __len__(self) -> int:
        return int(self.db.execute("SELECT count(*) FROM patient").fetchone()[0])

    def units(self) -> Iterator[Unit]:
        reader = sqlite3.connect(self.db_path)
        try:
            patients = reader.execute("SELECT id, line FROM patient ORDER BY seq")
            for index, (pid, patient_line) in enumerate(patients):
                lines = [patient_line] + [row[0] for row in self.db.execute(
                    "SELECT line FROM resource WHERE patient = ? ORDER BY seq", (pid,))]
                bundle = ('{"resourceType":"Bundle","type":"collection","entry":['
                          + ",".join('{"resource":' + line + "}" for line in lines) + "]}")
                yield Unit(index, pid, text=bundle)
        finally:
            reader.close()

    def close(self) -> None:
        self.db.close()


# ---- one patient ----

_STATE: dict[str, Any] = {}


def _init_worker(engine_name: str | None, fmt: str, out: str | None) -> None:
    from reasoner.engines import make_engine
    from reasoner.guideline import Guideline

    guideline = Guideline.load()
    _STATE.update(guideline=guideline, engine=make_engine(guideline, engine_name), fmt=fmt, out=out)


def _init_settled_worker(engine_name: str | None, fmt: str, out: str | None) -> None:
    """A worker process: the engine loaded, then out of the garbage collector's way for the worker's life."""
    from reasoner.engines import settle

    _init_worker(engine_name, fmt, out)
    settle()


def report_path(out: Path, name: str, fmt: str) -> Path:
    return out / f"{name}{EXTENSIONS[fmt]}"


def _process(unit: Unit) -> Outcome:
    from reasoner.commands.recommend import render
    from reasoner.patient import parse_patient, read_patient
    from reasoner.report import build_report

    guideline, engine, fmt, out = _STATE["guideline"], _STATE["engine"], _STATE["fmt"], _STATE["out"]
    try:
        if unit.path is not None:
            patient = read_patient(guideline, Path(unit.path))
        else:
            patient = parse_patient(guideline, unit.text or "", "json", unit.name)
        report = build_report(guideline, engine.reason(patient))
        status = "conforms" if report.conforms else "nonconforming"
        if out is None:
            line = json.dumps(report.data, ensure_ascii=False, separators=(",", ":"))
            return Outcome(unit.index, unit.name, status, line=line)
        if fmt == "json":  # the report graph beside the JSON report, so SPARQL (query, serve, load, push) reads it
            write_atomic(report_path(Path(out), unit.name, "nquads"), render(guideline, report, "nquads", engine.name))
        write_atomic(report_path(Path(out), unit.name, fmt), render(guideline, report, fmt, engine.name))
        return Outcome(unit.index, unit.name, status)
    except (InputError, GuidelineError) as exc:
        return Outcome(unit.index, unit.name, "refused", str(exc))
    except RecursionError:
        return Outcome(unit.index, unit.name, "refused", "input nested too deeply")


# ---- the run ----


class Progress:
    """A progress bar with rate and ETA on stderr, drawn only when stderr is a terminal."""

    def __init__(self, total: int | None, stream: TextIO) -> None:
        self.total = total
        self.stream = stream
        self.enabled = stream.isatty()
        self.start = time.monotonic()
        self.last = 0.0
        self.done = 0

    def step(self) -> None:
        self.done += 1
        now = time.monotonic()
        if self.enabled and (now - self.last > 0.2 or self.done == self.total):
            self.last = now
            elapsed = max(now - self.start, 1e-9)
            rate = self.done / elapsed
            if self.total:
                width = 30
                filled = int(width * self.done / self.total)
                eta = (self.total - self.done) / rate if rate else 0
                text = (f"\r[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} "
                        f"{rate:,.0f} patients/s ETA {eta:,.0f} s ")
            else:
                text = f"\r{self.done} patients {rate:,.0f} patients/s "
            self.stream.write(text)
            self.stream.flush()

    def close(self) -> None:
        if self.enabled and self.done:
            self.stream.write("\n")
            self.stream.flush()


def _clean_partial_writes(out: Path) -> None:
    """Remove what a killed run left: write_atomic's ``.<name>.<random>.tmp`` files and its work folder."""
    for leftover in out.glob(".*.tmp"):
        try:
            leftover.unlink()
        except OSError:
            pass
    for folder in out.glob(WORKDIR_PREFIX + "*"):
        shutil.rmtree(folder, ignore_errors=True)


def _process_chunk(units: list[Unit]) -> list[Outcome]:
    return [_process(unit) for unit in units]


def _chunks(units: Iterator[Unit], size: int) -> Iterator[list[Unit]]:
    chunk: list[Unit] = []
    for unit in units:
        chunk.append(unit)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _results(units: Iterator[Unit], jobs: int, init: tuple[Any, ...]) -> Iterator[Outcome]:
    """Outcomes in input order; at most ``jobs * WINDOW_PER_JOB`` patients in flight.

    Patients go to the workers ``CHUNK`` at a time: one task per patient costs the parent (which
    shares the cores with the workers) a round of pickling, pipe and result-thread work each.
    """
    if jobs <= 1:
        from reasoner.engines import settled

        _init_worker(*init)
        with settled():
            for unit in units:
                yield _process(unit)
        return
    context = multiprocessing.get_context("fork" if sys.platform.startswith("linux") else "spawn")
    with context.Pool(jobs, initializer=_init_settled_worker, initargs=init) as pool:
        pending: collections.deque[Any] = collections.deque()
        for chunk in _chunks(units, CHUNK):
            pending.append(pool.apply_async(_process_chunk, (chunk,)))
            if len(pending) * CHUNK >= jobs * WINDOW_PER_JOB:
                yield from pending.popleft().get()
        while pending:
            yield from pending.popleft().get()


def run_batch(args: argparse.Namespace) -> int:
    source: Path = args.input
    fmt: str = args.format
    jobs = max(1, int(getattr(args, "jobs", 1) or 1))
    to_stdout = bool(getattr(args, "ndjson", False))
    if to_stdout and args.out is not None:
        raise InputError("batch mode: give either --out DIR or --ndjson, not both")
    if to_stdout and fmt != "json":
        raise InputError("batch mode: --ndjson writes JSON reports; --format must be json")
    if not to_stdout and args.out is None:
        raise InputError("batch mode needs --out DIR (one report per patient) or --ndjson (reports on stdout)")
    if not source.exists():
        raise InputError(f"{source}: no such file or folder")
    out: Path | None = None
    if args.out is not None:
        out = args.out
        if out.exists() and not out.is_dir():
            raise InputError(f"{out}: --out must be a folder in batch mode")
        out.mkdir(parents=True, exist_ok=True)
        _clean_partial_writes(out)

    started = time.monotonic()
    counts: collections.Counter[str] = collections.Counter()
    # the bulk index lives in the output folder when there is one: the only place a run may write
    workdir = tempfile.TemporaryDirectory(prefix=WORKDIR_PREFIX, dir=out)
    index: BulkIndex | None = None
    try:
        if source.is_dir() and is_bulk_export(source):
            index = BulkIndex(source, Path(workdir.name))
            total: int | None = len(index)
            units: Iterator[Unit] = index.units()
        elif source.is_dir():
            listed = folder_units(source)
            total, units = len(listed), iter(listed)
        else:
            total, units = count_lines(source), ndjson_units(source)

        progress = Progress(total, sys.stderr)

        def todo() -> Iterator[Unit]:
            """The patients still to do: a report already written is complete (written atomically)."""
            for unit in units:
                if out is not None and report_path(out, unit.name, fmt).exists():
                    counts["skipped"] += 1
                    progress.step()
                    continue
                yield unit

        engine_name = getattr(args, "engine", None)
        for outcome in _results(todo(), jobs, (engine_name, fmt, str(out) if out is not None else None)):
            counts[outcome.status] += 1
            if outcome.status == "refused":
                if progress.enabled:
                    sys.stderr.write("\r")
                sys.stderr.write(f"guideline-kg: {outcome.name}: {outcome.message}\n")
            elif outcome.line is not None:
                sys.stdout.write(outcome.line + "\n")
            progress.step()
        sys.stdout.flush()
        progress.close()
    finally:
        if index is not None:
            index.close()
        workdir.cleanup()

    seconds = time.monotonic() - started
    done = counts["conforms"] + counts["nonconforming"] + counts["refused"]
    rate = done / seconds if seconds > 0 else 0.0
    skipped = f", {counts['skipped']} already done" if counts["skipped"] else ""
    sys.stderr.write(f"guideline-kg: {done} patients, {counts['conforms']} conforming, "
                     f"{counts['nonconforming']} not conforming, {counts['refused']} refused{skipped}; "
                     f"{seconds:.1f} s ({rate:,.1f} patients/s)\n")
    if counts["refused"]:
        return 2
    return 1 if counts["nonconforming"] else 0


__all__ = ["run_batch", "BulkIndex", "Unit", "Outcome"]
