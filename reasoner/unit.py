"""One patient of a run over many: what it is (:class:`Unit`), what became of it (:class:`Outcome`), and
:func:`process_unit`, which reads, checks, reasons over and renders it and never raises for its sake.

This is the library entry point for any driver of many patients (``reasoner.batch``, Spark executors):
load a :class:`Context` once per process, then call ``process_unit(unit, context)`` for each patient. It
writes nothing. Every input passes the single-file checks (``reasoner.patient.decode_input``, then the
reader): the same size limit, strict UTF-8, nesting, surrogates, numbers.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from reasoner.engine import Engine
from reasoner.errors import GuidelineError, InputError
from reasoner.formats import render
from reasoner.guideline import Guideline
from reasoner.patient import MAX_INPUT_BYTES, decode_input, parse_patient, sniff
from reasoner.report import build_report
from reasoner.text import printable

NDJSON = "ndjson"  # the format of a report as one compact JSON line (``--ndjson``)
REASON_CHARS = 300


class Status(str, Enum):
    """What became of one patient."""

    REPORTED = "reported"  # a report; the patient graph conforms
    NONCONFORMING = "nonconforming"  # a report listing Violations (nothing derived)
    REFUSED = "refused"  # no report; ``reason`` says why in one line
    OUTPUT_ERROR = "output-error"  # the report was made but could not be written (batch runs only)


@dataclass(frozen=True)
class Unit:
    """One patient to reason over.

    ``name`` is the report's file stem, ``source`` names the input in messages. The input is a file
    (``path``), or its bytes (``data``: an NDJSON line, a Bulk Data patient as a Bundle); ``problem``,
    when set, refuses the unit unread (a symbolic link out of the folder, an over-long line).
    """

    index: int
    name: str
    source: str
    path: str | None = None
    data: bytes | None = None
    problem: str | None = None


@dataclass(frozen=True)
class Outcome:
    """The result of :func:`process_unit`: the report (bytes in the context's format) or the reason it was refused."""

    index: int
    name: str
    source: str
    status: Status
    reason: str = ""
    identifier: str | None = None  # the patient's identifier, once read
    report: bytes | None = None
    input_sha256: str | None = None  # of the bytes read, for the manifest
    beside: tuple[tuple[str, bytes], ...] = ()  # (format, bytes) of each of the context's ``beside`` formats


@dataclass(frozen=True)
class Context:
    """What reasoning over a patient needs, loaded once per process: the guideline, an engine, the output format."""

    guideline: Guideline
    engine: Engine
    fmt: str = "json"  # one of reasoner.formats.FORMATS, or NDJSON
    now: Any = None  # the run's reasoning time (``--now``), passed to the reader when set
    beside: tuple[str, ...] = ()  # formats rendered too (a JSON batch keeps the report graph, nquads, beside)

    @classmethod
    def load(cls, engine_name: str | None = None, fmt: str = "json", now: Any = None,
             beside: tuple[str, ...] = ()) -> "Context":
        from reasoner.engines import make_engine

        guideline = Guideline.load()
        return cls(guideline, make_engine(guideline, engine_name), fmt, now, beside)


# ---- one patient ----


def one_line(text: str) -> str:
    """A reason fit for one stderr line: whitespace collapsed, controls escaped, bounded."""
    flat = printable(" ".join(text.split()))
    return flat if len(flat) <= REASON_CHARS else flat[:REASON_CHARS - 3] + "..."


def read_input_file(path: Path, name: str) -> bytes:
    """A patient file's bytes: never through a symbolic link, only a regular file, within the input limit."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise InputError(f"{name}: no such file") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise InputError(f"{name}: is a symbolic link; not read") from None
        raise InputError(f"{name}: cannot read: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise InputError(f"{name}: not a regular file; not read")
        if info.st_size > MAX_INPUT_BYTES:
            raise InputError(f"{name}: {info.st_size} bytes is over the {MAX_INPUT_BYTES} byte input limit")
        with os.fdopen(fd, "rb", closefd=False) as handle:
            data = handle.read(MAX_INPUT_BYTES + 1)
    except OSError as exc:
        raise InputError(f"{name}: cannot read: {exc.strerror}") from None
    finally:
        os.close(fd)
    return data


def process_unit(unit: Unit, context: Context) -> Outcome:
    """Read, check, reason over and render one patient; never raises for the patient's sake.

    Any refusal (``InputError``) and any unexpected exception while reading, reasoning or rendering
    makes the outcome ``REFUSED`` with a one-line reason and no traceback; other patients are untouched.
    Only ``KeyboardInterrupt`` and ``Terminated`` (the process is being stopped) pass through.
    """
    digest: str | None = None
    identifier: str | None = None
    try:
        if unit.problem is not None:
            raise InputError(unit.problem)
        if unit.path is not None:
            data = read_input_file(Path(unit.path), unit.source)
        else:
            data = unit.data if unit.data is not None else b""
        digest = hashlib.sha256(data).hexdigest()
        text = decode_input(data, unit.source)
        syntax = sniff(Path(unit.path), text) if unit.path is not None else "json"
        if context.now is None:
            patient = parse_patient(context.guideline, text, syntax, unit.source)
        else:
            patient = parse_patient(context.guideline, text, syntax, unit.source, context.now)
        identifier = patient.identifier
        report = build_report(context.guideline, context.engine.reason(patient))
        if context.fmt == NDJSON:
            body = json.dumps(report.data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        else:
            body = render(context.guideline, report, context.fmt, context.engine.name).encode("utf-8")
        beside = tuple((fmt, render(context.guideline, report, fmt, context.engine.name).encode("utf-8"))
                       for fmt in context.beside)
        status = Status.REPORTED if report.conforms else Status.NONCONFORMING
        return Outcome(unit.index, unit.name, unit.source, status, identifier=identifier, report=body,
                       input_sha256=digest, beside=beside)
    except (InputError, GuidelineError) as exc:
        reason = str(exc)
    except RecursionError:
        reason = "input nested too deeply"
    except (Exception, SystemExit) as exc:  # a defect met on this patient: it is refused, the batch goes on
        reason = f"could not be reasoned over ({type(exc).__name__}: {exc})"
    if reason.startswith(unit.source + ": "):
        reason = reason[len(unit.source) + 2:]
    return Outcome(unit.index, unit.name, unit.source, Status.REFUSED, one_line(reason), identifier,
                   input_sha256=digest)


# ---- reading inputs safely ----


def outside_problem(folder: Path, entry: Path) -> str | None:
    """Why ``entry`` (a name in ``folder``) may not be read, or None: a link out of the folder, not a file."""
    try:
        info = entry.lstat()
    except OSError as exc:
        return f"cannot be examined: {exc.strerror}"
    if stat.S_ISLNK(info.st_mode):
        try:
            target = entry.resolve(strict=True)
        except (OSError, RuntimeError):
            return "a symbolic link to nothing readable (dangling or a loop); not read"
        if not target.is_relative_to(folder.resolve()):
            return f"a symbolic link to {printable(str(target))}, outside the input folder; not read"
        info = target.stat()
    if stat.S_ISDIR(info.st_mode):
        return "a folder, not a patient file; not read"
    if not stat.S_ISREG(info.st_mode):
        return "not a regular file (a device, pipe or socket); not read"
    return None


def bounded_lines(path: Path) -> Iterator[tuple[int, bytes | None, int]]:
    """(line number, the line's bytes without its end, or None when over the input limit, its length in bytes).

    A line is never held whole past ``MAX_INPUT_BYTES``: the rest of an over-long line is skipped in pieces.
    """
    with path.open("rb") as handle:
        number = 0
        while True:
            chunk = handle.readline(MAX_INPUT_BYTES + 1)
            if not chunk:
                return
            number += 1
            if len(chunk) > MAX_INPUT_BYTES and not chunk.endswith(b"\n"):
                length = len(chunk)
                while chunk and not chunk.endswith(b"\n"):
                    chunk = handle.readline(1 << 20)
                    length += len(chunk.rstrip(b"\r\n"))
                yield number, None, length
                continue
            line = chunk.rstrip(b"\r\n")
            yield number, line, len(line)


def too_long(where: str, length: int) -> str:
    """The refusal of an input over the single-file limit."""
    return f"{where}: {length} bytes is over the {MAX_INPUT_BYTES} byte input limit"


__all__ = ["Status", "Unit", "Outcome", "Context", "process_unit", "read_input_file", "bounded_lines",
           "outside_problem", "one_line", "NDJSON"]
