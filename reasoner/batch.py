"""``guideline-kg recommend`` over many patients: a folder, an NDJSON file of Bundles, or a FHIR Bulk Data export.

Inputs, one patient each (a :class:`Unit`):

* a folder of patient files (``*.json``, ``*.ttl``, ``*.jsonld``, ``*.nt``): the report is named after the
  file's stem (``a.json`` gives ``a.json`` in JSON, ``a.ttl`` in Turtle); a symbolic link to anything outside
  the folder (``/proc/self/...`` included), or an entry that is not a regular file, is refused unread;
* an ``.ndjson`` file, one Bundle a line: the report is named ``line-0000001`` after its line;
* a FHIR Bulk Data export folder (``Patient.ndjson``, ``Condition.ndjson``, ...; recognised by
  ``Patient.ndjson``): resources are grouped by the patient their ``subject``/``patient`` names through
  an on-disk SQLite index, never the whole export in memory; the report is named after the Patient id.

Every file, line, resource and patient passes the single-file checks (``reasoner.patient.decode_input``
then the reader): the same size limit, strict UTF-8, nesting, surrogates, numbers.

:func:`reasoner.unit.process_unit` reasons over one unit and never raises for a patient's sake: whatever
goes wrong (a refusal or any unexpected exception) makes that patient ``refused`` with a one-line reason.
It is the library entry point for other drivers (e.g. Spark executors); it writes nothing. The Bulk Data
index is ``reasoner.bulk``.

Outputs: ``--out DIR`` (one file per patient in ``--format``, written atomically; a manifest,
``.guideline-kg-manifest.jsonl``, records for each report the SHA-256 of the input it was made from, so
a rerun skips exactly the patients whose report of that same input is there) or ``--ndjson`` (one compact
JSON report a line on stdout, in input order). ``--jobs N`` spreads the patients over N processes with a
bounded window of work in flight, so memory does not grow with the input. On a terminal stderr shows a
progress bar (tqdm); a summary ends every run and names every refused and nonconforming input.

Exit code (the contract's table for many patients): 0 every patient reported and conforming; 1 some
patient not conforming, none refused; 2 some patient refused (the others still reported); 3 an output or
environment error (full disk, unwritable or unsafe output folder, two inputs sharing one report name:
found before any reasoning). The highest applies. SIGTERM stops the workers, removes the work folder
and partial files, and exits 143.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import fcntl
import hashlib
import json
import multiprocessing
import os
import shutil
import signal
import sqlite3
import sys
import tempfile
import time
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from reasoner.bulk import BulkIndex, is_bulk_export, patient_of, without_patient_note
from reasoner.errors import InputError, OutputError, Terminated
from reasoner.output import write_atomic
from reasoner.text import printable
from reasoner.unit import (NDJSON, Context, Outcome, Status, Unit, bounded_lines, one_line, outside_problem,
                           process_unit, read_input_file, too_long)

PATIENT_SUFFIXES = (".json", ".ttl", ".jsonld", ".nt")
EXTENSIONS = {"json": ".json", "turtle": ".ttl", "jsonld": ".jsonld", "nquads": ".nq", "text": ".txt",
              "html": ".html", "fhir": ".fhir.json"}
WINDOW_PER_JOB = 64
CHUNK = 16  # patients a task
WORKDIR_PREFIX = ".guideline-kg-batch-"
MANIFEST_NAME = ".guideline-kg-manifest.jsonl"
EXIT_TERMINATED = 143  # 128 + SIGTERM


# ---- inputs ----

def folder_units(folder: Path) -> list[Unit]:
    """Every patient file of a folder, in name order; the report of ``a.json`` is named ``a``."""
    entries = sorted((p for p in folder.iterdir()
                      if p.suffix.lower() in PATIENT_SUFFIXES and not p.name.startswith(".")),
                     key=lambda p: p.name)
    units = []
    for index, entry in enumerate(entries):
        problem = outside_problem(folder, entry)
        path = None if problem else str(entry.resolve())
        units.append(Unit(index, entry.stem, entry.name, path=path, problem=problem))
    return units

def ndjson_units(path: Path) -> Iterator[Unit]:
    for number, line, length in bounded_lines(path):
        name = f"line-{number:07d}"
        if line is None:
            yield Unit(number, name, name, problem=too_long(name, length))
        elif line.strip():
            yield Unit(number, name, name, data=line)


def count_lines(path: Path) -> int:
    return sum(1 for _, line, _ in bounded_lines(path) if line is None or line.strip())

# ---- the output folder ----


def report_path(out: Path, name: str, fmt: str) -> Path:
    return out / f"{name}{EXTENSIONS[fmt]}"


def check_output_folder(source: Path, out: Path) -> None:
    """Refuse (exit 3) an output folder that is the input folder or inside it, or that is not a folder."""
    if out.exists() and not out.is_dir():
        raise OutputError(f"{printable(str(out))}: --out must be a folder in batch mode")
    if source.is_dir():
        resolved_out, resolved_in = out.resolve(), source.resolve()
        if resolved_out == resolved_in or resolved_out.is_relative_to(resolved_in):
            raise OutputError(f"{printable(str(out))}: the output folder is the input folder or inside it; "
                              "reports would be read as inputs on the next run")


def check_report_names(named: Iterable[tuple[str, str]], fmt: str, fold_case: bool) -> None:
    """Two inputs that would share one report file stop the run before any reasoning, naming both (exit 3)."""
    seen: dict[str, str] = {}
    for name, source in named:
        if not name:
            continue
        key = unicodedata.normalize("NFC", name + EXTENSIONS.get(fmt, ""))
        key = key.casefold() if fold_case else key
        if key in seen:
            raise OutputError(f"{printable(seen[key])} and {printable(source)} would both be reported as "
                              f"{printable(name + EXTENSIONS.get(fmt, ''))}; rename one")
        seen[key] = source


def _folds_case(folder: Path) -> bool:
    """Whether the output folder's file system ignores case (the work folder's name is lower case)."""
    probe = next(folder.glob(WORKDIR_PREFIX + "*"), None)
    return probe is not None and (folder / probe.name.upper()).exists()


class Manifest:
    """``.guideline-kg-manifest.jsonl`` in the output folder: for each report, the SHA-256 of its input and its size.

    Workers append one line each right after a report's atomic rename (an ``O_APPEND`` write of one
    line is not interleaved); a line cut by a kill is ignored. A report counts as done only when the
    manifest names it with the hash of the input at hand and its size on disk matches.
    """

    def __init__(self, out: Path) -> None:
        self.path = out / MANIFEST_NAME
        self.entries: dict[str, tuple[str, int]] = {}
        try:
            with self.path.open("rb") as handle:
                for raw in handle:
                    try:
                        entry = json.loads(raw)
                        if entry.get("input") is None:
                            self.entries.pop(entry["report"], None)
                        else:
                            self.entries[str(entry["report"])] = (str(entry["input"]), int(entry["bytes"]))
                    except (ValueError, KeyError, TypeError, AttributeError):
                        continue
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise OutputError(f"{printable(str(self.path))}: cannot read: {exc.strerror}") from None
        live = {}
        for report, (digest, size) in self.entries.items():
            try:
                if (out / report).stat().st_size == size:
                    live[report] = (digest, size)
            except OSError:
                continue
        self.entries = live
        try:  # compacted: one line a report still there
            write_atomic(self.path, "".join(_manifest_line(r, d, s) for r, (d, s) in sorted(live.items())))
        except OSError as exc:
            raise OutputError(f"{printable(str(self.path))}: cannot write: {exc.strerror}") from None

    def done(self, report: str, digest: str) -> bool:
        return self.entries.get(report, ("", -1))[0] == digest

    def forget(self, out: Path, report: str, beside: Iterable[str] = ()) -> str | None:
        """A report made from an earlier version of an input that is now refused: removed, not left to mislead.

        Returns the output error (naming the path) when it cannot be removed or unrecorded, else None.
        """
        if report not in self.entries:
            return None
        try:
            for stale in (report, *beside):
                with contextlib.suppress(FileNotFoundError):
                    (out / stale).unlink()
            append_line(self.path, json.dumps({"report": report, "input": None}) + "\n")
        except OSError as exc:
            return f"{printable(str(out / report))}: cannot remove a stale report: {exc.strerror or exc}"
        del self.entries[report]
        return None


def _manifest_line(report: str, digest: str, size: int) -> str:
    # ASCII: a file name that is not UTF-8 (a lone surrogate in Python) is kept as a \\udcxx escape
    return json.dumps({"report": report, "input": digest, "bytes": size}) + "\n"


def append_line(path: Path, line: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode("utf-8"))
    finally:
        os.close(fd)


def _clean_partial_writes(out: Path) -> None:
    """Remove what a killed run left: write_atomic's ``.<name>.<random>.tmp`` files and its work folder."""
    for leftover in out.glob(".*.tmp"):
        with contextlib.suppress(OSError):
            leftover.unlink()
    for folder in out.glob(WORKDIR_PREFIX + "*"):
        shutil.rmtree(folder, ignore_errors=True)


# ---- workers ----


@dataclass(frozen=True)
class Settings:
    """What a worker process needs to set itself up: the engine's name, the format, the output folder."""

    engine: str | None = None
    fmt: str = "json"
    out: str | None = None
    workdir: str | None = None  # where workers record the patient at hand (jobs > 1)
    now: Any = None  # the run's reasoning time, one for every patient
    lock_fd: int | None = None  # the parent's lock on the output folder, which a worker must not hold


_STATE: dict[str, Any] = {}


def _init_worker(settings: Settings) -> None:
    # a JSON batch keeps each report's graph (N-Quads) beside it, so SPARQL (query, serve, load, push) reads it
    beside = ("nquads",) if settings.fmt == "json" and settings.out is not None else ()
    _STATE.update(context=Context.load(settings.engine, settings.fmt, settings.now, beside), out=settings.out)


def _init_settled_worker(settings: Settings) -> None:
    """A worker process: stops at once and quietly on SIGTERM, leaves Ctrl-C to the parent, then loads the
    engine and keeps it out of the garbage collector's way for the worker's life."""
    from reasoner.engines import settle

    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if settings.lock_fd is not None:  # a worker orphaned by a killed parent must not keep the folder locked
        with contextlib.suppress(OSError):
            os.close(settings.lock_fd)
    _init_worker(settings)
    settle()


def _work(unit: Unit) -> Outcome:
    """``process_unit``, then the report written to the output folder (and recorded in the manifest)."""
    context: Context = _STATE["context"]
    outcome = process_unit(unit, context)
    out = _STATE["out"]
    if out is None or outcome.report is None:
        return outcome
    path = report_path(Path(out), unit.name, context.fmt)
    try:
        for fmt, body in outcome.beside:  # first: a report on disk has what goes beside it
            path = report_path(Path(out), unit.name, fmt)
            write_atomic(path, body)
        path = report_path(Path(out), unit.name, context.fmt)
        write_atomic(path, outcome.report)
        append_line(Path(out) / MANIFEST_NAME, _manifest_line(path.name, outcome.input_sha256 or "",
                                                               len(outcome.report)))
    except OSError as exc:
        return replace(outcome, status=Status.OUTPUT_ERROR, report=None,
                       reason=f"{printable(str(path))}: cannot write: {exc.strerror or exc}")
    except Exception as exc:  # nothing escapes a worker: an output it cannot write stops the run, named
        return replace(outcome, status=Status.OUTPUT_ERROR, report=None,
                       reason=f"{printable(str(path))}: cannot write: {one_line(f'{type(exc).__name__}: {exc}')}")
    return replace(outcome, report=None, beside=())


def _work_chunk(task: int, units: list[Unit], track: str) -> list[Outcome]:
    """A worker's task: the patients of one chunk, each recorded before it is begun in the worker's own
    file of ``track`` (``task unit``), so that the parent can name the patient a dead worker was on."""
    fd = _STATE.get("track_fd")
    if fd is None:
        fd = _STATE["track_fd"] = os.open(os.path.join(track, f"worker-{os.getpid()}"),
                                          os.O_WRONLY | os.O_CREAT, 0o600)
    outcomes = []
    for unit in units:
        os.pwrite(fd, f"{task} {unit.index}".ljust(40).encode(), 0)
        outcomes.append(_work(unit))
    os.pwrite(fd, f"{task} -1".ljust(40).encode(), 0)
    return outcomes


class _Cell:
    """One task's outcomes to come: a pool result, outcomes already known, or a dead task's recovery (parts)."""

    def __init__(self, value: Any, task: int) -> None:
        self.value = value  # AsyncResult | list[Outcome | _Cell]
        self.task = task

    def tasks(self) -> Iterator[int]:
        yield self.task
        if isinstance(self.value, list):
            for part in self.value:
                if isinstance(part, _Cell):
                    yield from part.tasks()

    def ready(self) -> bool:
        if isinstance(self.value, list):
            return all(part.ready() for part in self.value if isinstance(part, _Cell))
        return bool(self.value.ready())

    def get(self) -> list[Outcome]:
        if isinstance(self.value, list):
            return [o for part in self.value for o in (part.get() if isinstance(part, _Cell) else [part])]
        return list(self.value.get())


class _Workers:
    """The pool, its tasks in flight, and what a worker that died mid-task (killed, out of memory) was on."""

    DIED = ("the worker process died while reasoning over it (killed by a signal, e.g. out of memory); "
            "not reported")

    def __init__(self, pool: Any, track: str) -> None:
        self.pool = pool
        self.track = track
        self.tasks: dict[int, tuple[list[Unit], _Cell]] = {}
        self.next_task = 0

    def submit(self, units: list[Unit]) -> _Cell:
        task = self.next_task
        self.next_task += 1
        cell = _Cell(self.pool.apply_async(_work_chunk, (task, units, self.track)), task)
        self.tasks[task] = (units, cell)
        return cell

    def collect(self, cell: _Cell) -> list[Outcome]:
        """The cell's outcomes; while waiting, a task whose worker died is started again without the patient
        it died on, which is refused (the pool itself replaces the worker)."""
        while not cell.ready():
            if isinstance(cell.value, list):
                time.sleep(0.05)
            else:
                cell.value.wait(0.5)
            if not cell.ready():
                self._recover()
        for task in cell.tasks():
            self.tasks.pop(task, None)
        return cell.get()

    def _recover(self) -> None:
        for entry in os.scandir(self.track):
            if not entry.name.startswith("worker-"):
                continue
            try:
                os.kill(int(entry.name[len("worker-"):]), 0)
                continue  # alive
            except ProcessLookupError:
                pass
            except (ValueError, PermissionError):
                continue
            with contextlib.suppress(OSError):
                record = Path(entry.path).read_text(encoding="ascii").split()
                os.unlink(entry.path)
                task, index = int(record[0]), int(record[1])
                if index < 0 or task not in self.tasks:
                    continue
                units, cell = self.tasks.pop(task)
                if not isinstance(cell.value, list) and cell.value.ready():
                    continue
                at = next(i for i, unit in enumerate(units) if unit.index == index)
                dead = units[at]
                parts: list[Any] = []
                if units[:at]:
                    parts.append(self.submit(units[:at]))  # reports already written are written again, alike
                parts.append(Outcome(dead.index, dead.name, dead.source, Status.REFUSED, self.DIED))
                if units[at + 1:]:
                    parts.append(self.submit(units[at + 1:]))
                cell.value = parts


def _chunks(units: Iterator[Unit], size: int) -> Iterator[list[Unit]]:
    chunk: list[Unit] = []
    for unit in units:
        chunk.append(unit)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _results(units: Iterator[Unit], jobs: int, settings: Settings) -> Iterator[Outcome]:
    """Outcomes in input order; at most ``jobs * WINDOW_PER_JOB`` patients in flight.

    Patients go to the workers ``CHUNK`` at a time: one task per patient costs the parent (which
    shares the cores with the workers) a round of pickling, pipe and result-thread work each.
    Closing the generator early (an output error, SIGTERM) terminates the workers.
    """
    if jobs <= 1:
        from reasoner.engines import settled

        _init_worker(settings)
        with settled():
            for unit in units:
                yield _work(unit)
        return
    context = multiprocessing.get_context("fork" if sys.platform.startswith("linux") else "spawn")
    with contextlib.ExitStack() as stack:
        # worker files straight in the work folder: shutil.rmtree opens a nested folder by a relative name,
        # which reasoner.guard cannot place, so the clean-up of a killed run would leave it
        track = settings.workdir or stack.enter_context(tempfile.TemporaryDirectory(prefix=WORKDIR_PREFIX))
        pool = stack.enter_context(context.Pool(jobs, initializer=_init_settled_worker, initargs=(settings,)))
        workers = _Workers(pool, track)
        pending: collections.deque[_Cell] = collections.deque()
        for chunk in _chunks(units, CHUNK):
            pending.append(workers.submit(chunk))
            if len(pending) * CHUNK >= jobs * WINDOW_PER_JOB:
                yield from workers.collect(pending.popleft())
        while pending:
            yield from workers.collect(pending.popleft())


# ---- the run ----


@contextlib.contextmanager
def _terminate_on_sigterm() -> Iterator[None]:
    """While a batch runs, SIGTERM raises ``Terminated`` in the main thread, so the run cleans up and exits 143."""
    parent = os.getpid()

    def handler(signum: int, frame: Any) -> None:
        if os.getpid() != parent:  # a worker forked before it set SIG_DFL: die as SIG_DFL would, quietly
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
            return
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM does not break the clean-up
        raise Terminated()

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave the signal alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class _Progress:
    """tqdm on stderr, drawn only when stderr is a terminal; messages go above the bar."""

    def __init__(self, total: int | None) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=total, file=sys.stderr, unit=" patients", disable=not sys.stderr.isatty(),
                        mininterval=0.2, dynamic_ncols=True, leave=True)

    def step(self) -> None:
        self.bar.update(1)

    def say(self, line: str) -> None:
        if self.bar.disable:
            sys.stderr.write(line + "\n")
        else:
            self.bar.write(line, file=sys.stderr)

    def close(self) -> None:
        self.bar.close()


def _check_arguments(args: argparse.Namespace) -> tuple[Path, Path | None, str, bool]:
    source: Path = args.input
    fmt: str = args.format
    to_stdout = bool(getattr(args, "ndjson", False))
    if to_stdout and args.out is not None:
        raise InputError("batch mode: give either --out DIR or --ndjson, not both")
    if to_stdout and fmt != "json":
        raise InputError("batch mode: --ndjson writes JSON reports; --format must be json")
    if not to_stdout and args.out is None:
        raise InputError("batch mode needs --out DIR (one report per patient) or --ndjson (reports on stdout)")
    if not source.exists():
        raise InputError(f"{printable(str(source))}: no such file or folder")
    return source, args.out, fmt, to_stdout


def run_batch(args: argparse.Namespace) -> int:
    source, out, fmt, to_stdout = _check_arguments(args)
    jobs = max(1, int(getattr(args, "jobs", 1) or 1))
    if out is not None:
        check_output_folder(source, out)
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"{printable(str(out))}: cannot create the output folder: {exc.strerror}") from None
    lock = _lock_output(out) if out is not None else None
    try:
        if out is not None:
            _clean_partial_writes(out)
        return _run(args, source, out, fmt, to_stdout, jobs, lock)
    finally:
        if lock is not None:
            os.close(lock)


def _lock_output(out: Path) -> int:
    """The output folder for this run alone (``flock`` on the folder, released when the process ends, even
    by SIGKILL): a second batch started on it would remove the first's work as a killed run's leftovers."""
    try:
        fd = os.open(out, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError as exc:
        raise OutputError(f"{printable(str(out))}: cannot open the output folder: {exc.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise OutputError(f"{printable(str(out))}: another batch is writing to this folder; "
                          "let it finish or give another --out") from None
    return fd


def _run(args: argparse.Namespace, source: Path, out: Path | None, fmt: str, to_stdout: bool, jobs: int,
         lock: int | None) -> int:
    started = time.monotonic()
    counts: collections.Counter[Status | str] = collections.Counter()
    named: dict[Status, list[str]] = {Status.REFUSED: [], Status.NONCONFORMING: []}
    output_error: str | None = None
    try:  # the work folder (the bulk index) lives in the output folder when there is one: the only place a run writes
        workdir = tempfile.TemporaryDirectory(prefix=WORKDIR_PREFIX, dir=out)
    except OSError as exc:
        where = out if out is not None else Path(tempfile.gettempdir())
        raise OutputError(f"{printable(str(where))}: cannot write: {exc.strerror}") from None
    index: BulkIndex | None = None
    without_patient = 0  # Bulk Data resources that name no patient: counted, not read
    progress: _Progress | None = None
    try:
        with _terminate_on_sigterm():
            if source.is_dir() and is_bulk_export(source):
                try:
                    index = BulkIndex(source, Path(workdir.name))
                except (sqlite3.Error, OSError) as exc:
                    raise OutputError(f"{printable(workdir.name)}: cannot write the Bulk Data index: {exc}") from None
                total: int | None = len(index)
                named_inputs: Iterable[tuple[str, str]] = index.names()
                units: Iterator[Unit] = index.units()
                without_patient = index.without_patient
            elif source.is_dir():
                listed = folder_units(source)
                total, units, named_inputs = len(listed), iter(listed), [(u.name, u.source) for u in listed]
            else:
                # a pipe (a named FIFO) is read once: no count for the progress bar then
                total = count_lines(source) if source.is_file() else None
                units, named_inputs = ndjson_units(source), []
            manifest: Manifest | None = None
            if out is not None:
                check_report_names(named_inputs, fmt, _folds_case(out))
                manifest = Manifest(out)

            progress = _Progress(total)

            def todo() -> Iterator[Unit]:
                """The patients still to do: a report already written from this very input is done."""
                for unit in units:
                    if manifest is not None and unit.problem is None and unit.name:
                        report = report_path(out, unit.name, fmt).name  # type: ignore[arg-type]
                        # a JSON report is done with its graph beside it (population queries need both)
                        graph = fmt != "json" or report_path(out, unit.name, "nquads").exists()  # type: ignore[arg-type]
                        if report in manifest.entries and graph and manifest.done(report, _input_digest(unit)):
                            counts["skipped"] += 1
                            progress.step()  # type: ignore[union-attr]
                            continue
                    yield unit

            settings = Settings(getattr(args, "engine", None), NDJSON if to_stdout else fmt,
                                str(out) if out is not None else None, workdir.name, getattr(args, "now", None),
                                lock)
            results = _results(todo(), jobs, settings)
            try:
                for outcome in results:
                    counts[outcome.status] += 1
                    if outcome.status is Status.OUTPUT_ERROR:
                        output_error = outcome.reason
                        break
                    if outcome.status is Status.REFUSED:
                        named[Status.REFUSED].append(outcome.source)
                        progress.say(f"guideline-kg: {printable(outcome.source)}: {outcome.reason}")
                        if manifest is not None and out is not None and outcome.name:
                            output_error = manifest.forget(out, report_path(out, outcome.name, fmt).name,
                                                           [report_path(out, outcome.name, "nquads").name]
                                                           if fmt == "json" else [])
                            if output_error is not None:
                                break
                    elif outcome.status is Status.NONCONFORMING:
                        named[Status.NONCONFORMING].append(outcome.source)
                    if to_stdout and outcome.report is not None:
                        sys.stdout.buffer.write(outcome.report + b"\n")
                    progress.step()
                sys.stdout.flush()
            except OSError as exc:
                if isinstance(exc, BrokenPipeError):
                    raise
                output_error = f"stdout: cannot write: {exc.strerror or exc}"
            finally:
                results.close()  # the workers stop (terminated) when the run ends early
    finally:
        if progress is not None:
            progress.close()
        if index is not None:
            index.close()
        with contextlib.suppress(OSError):
            workdir.cleanup()
        if out is not None:
            _clean_partial_writes(out)

    _summary(counts, named, time.monotonic() - started, without_patient)
    if output_error is not None:
        sys.stderr.write(f"guideline-kg: output error, the run stopped: {output_error}\n")
        return 3
    if counts[Status.REFUSED]:
        return 2
    return 1 if counts[Status.NONCONFORMING] else 0


def _patient_of(resource: dict[str, Any]) -> str | None:
    """The Bulk Data patient a resource names, None when none or not a local one: what ``reasoner.spark``
    imported before ``reasoner.bulk.patient_of``, which refuses a reference that is not local."""
    try:
        return patient_of(resource)
    except InputError:
        return None


def _input_digest(unit: Unit) -> str:
    """The SHA-256 of a unit's input bytes, as ``process_unit`` records it ("" when it cannot be read)."""
    if unit.path is None:
        return hashlib.sha256(unit.data or b"").hexdigest()
    try:
        return hashlib.sha256(read_input_file(Path(unit.path), unit.source)).hexdigest()
    except InputError:
        return ""


def _summary(counts: collections.Counter[Status | str], named: dict[Status, list[str]], seconds: float,
             without_patient: int = 0) -> None:
    done = counts[Status.REPORTED] + counts[Status.NONCONFORMING] + counts[Status.REFUSED]
    rate = done / seconds if seconds > 0 else 0.0
    skipped = f", {counts['skipped']} already done" if counts["skipped"] else ""
    sys.stderr.write(f"guideline-kg: {done} patients, {counts[Status.REPORTED]} conforming, "
                     f"{counts[Status.NONCONFORMING]} not conforming, {counts[Status.REFUSED]} refused{skipped}; "
                     f"{seconds:.1f} s ({rate:,.1f} patients/s)\n")
    if without_patient:
        sys.stderr.write(without_patient_note(without_patient))
    for status, label in ((Status.REFUSED, "refused"), (Status.NONCONFORMING, "not conforming")):
        if named[status]:
            sys.stderr.write(f"guideline-kg: {label}: {', '.join(printable(s) for s in named[status])}\n")


__all__ = ["run_batch", "process_unit", "Context", "Unit", "Outcome", "Status", "BulkIndex", "Settings", "NDJSON"]
