"""``guideline-kg spark``: the batch as an Apache Spark job, with the single-machine batch's reports.

Input, as for ``recommend`` in batch mode:

* a folder of patient files: listed on the driver exactly as the batch lists it, each file read and
  reasoned over on an executor (the folder must be one every executor can read: local mode, or a
  shared file system);
* an NDJSON file of Bundles (a path or any Hadoop URI: ``hdfs://``, ``s3a://``): one line a patient,
  named ``line-0000001`` after its line;
* a FHIR Bulk Data export folder (``Patient.ndjson`` and one NDJSON per resource type; a path or a
  Hadoop URI): each resource is keyed by the patient its ``subject``/``patient`` names and the
  patients are gathered by a shuffle (``groupByKey``). The batch's rule (``reasoner.bulk``), in its
  words: a patient id that resources name but ``Patient.ndjson`` does not hold is one refused input,
  a line that fails the checks and names no patient is one too, and a resource naming no patient
  (a Practitioner) is counted (``resources_without_patient``), never read.

Every Python worker loads the guideline and the engine once (a lazy module-level singleton, taken
out of the garbage collector's way like a batch worker) and reasons over its partitions with the
batch's per-patient code. Anything a patient raises ends as a ``refused`` row with a one-line
reason; the job goes on.

Output, a folder (a path or a Hadoop URI) that must not hold anything yet: the Parquet datasets
``reports`` (one row per patient; ``report_json`` is byte for byte the file ``recommend --out``
writes), ``recommendations``, ``red_flags`` and ``differential`` (one row per entry of the
reports), then ``summary.json`` with the counts, written last: a folder with ``summary.json`` is a
complete run. The datasets are written to a staging folder inside the output and moved into place
only when all are written; a failed run leaves nothing behind.

Exit codes as for a batch: 0 every patient reported and conforming, 1 some nonconforming, 2 some
refused (or the input or command line refused), 3 an output or environment error.
"""

from __future__ import annotations

if __name__ == "__main__":  # run as a file by spark-submit: its own folder is no place to import from (html.py)
    import os as _os
    import sys as _sys

    _HERE = _os.path.dirname(_os.path.abspath(__file__))
    _sys.path[:] = [p for p in _sys.path if _os.path.abspath(p or ".") != _HERE]

import argparse
import contextlib
import functools
import hashlib
import json
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from reasoner.clock import instant_argument
from reasoner.errors import GuidelineError, InputError

TABLES = ("reports", "recommendations", "red_flags", "differential")
STAGING_PREFIX = ".guideline-kg-spark-"
LOCAL_HOSTS = ("127.0.0.1", "localhost", "[::1]")
PARTITIONS_PER_CORE = 4
DEFAULT_MASTER = "local[*]"
GLOB = set("\\[]{}*?")

# One row of the reports table: seq (input order), source, patient_identifier, status, reason, report_json.
Row = tuple[int, str, "str | None", str, "str | None", "str | None"]


class OutputError(Exception):
    """The output cannot be written, or Spark itself failed (exit 3)."""


# ---- the executor side: one guideline and engine per Python worker ----

_WORKER: dict[str | None, tuple[Any, Any]] = {}


def worker_engine(engine_name: str | None) -> tuple[Any, Any, bool]:
    """The guideline and engine of this Python worker, loaded on first use and kept for its life.

    The third item says whether this call loaded them.
    """
    loaded = _WORKER.get(engine_name)
    if loaded is not None:
        return loaded[0], loaded[1], False
    from reasoner.engines import make_engine, settle
    from reasoner.guideline import Guideline

    guideline = Guideline.load()
    loaded = (guideline, make_engine(guideline, engine_name))
    settle()
    _WORKER[engine_name] = loaded
    return loaded[0], loaded[1], True


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200]


def reason_one(guideline: Any, engine: Any, name: str, kind: str, payload: Any, now: Any = None) -> Row:
    """One patient through the batch's own process_unit at reasoning time ``now`` (the run's, fixed on the driver):
    a row of the reports table, never an exception."""
    from reasoner.unit import Context, Status, Unit, process_unit

    context = _CONTEXTS.get((id(engine), now))
    if context is None:
        context = _CONTEXTS.setdefault((id(engine), now), Context(guideline, engine, "json", now))
    if kind == "path":
        unit = Unit(0, name, Path(payload).name, path=payload)
    elif kind == "line":
        unit = Unit(0, name, name, data=bytes(payload))
    elif kind == "bundle":
        try:
            unit = Unit(0, name, f"Patient/{name}", data=bulk_bundle(payload).encode("utf-8"))
        except InputError as exc:
            unit = Unit(0, name, f"Patient/{name}", problem=str(exc))
    else:
        unit = Unit(0, name, name, problem=str(payload))
    outcome = process_unit(unit, context)
    if outcome.status == Status.REFUSED:
        return (0, name, outcome.identifier, "refused", outcome.reason, None)
    status = "report" if outcome.status == Status.REPORTED else "nonconforming"
    return (0, name, outcome.identifier, status, None, outcome.report.decode("utf-8"))


_CONTEXTS: dict[tuple[int, Any], Any] = {}


def _decode(data: bytes, what: str) -> str:
    """A line's text as a single file's is read: strict UTF-8 (the single file's message)."""
    try:
        return bytes(data).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{what}: not UTF-8 text (byte {exc.start})") from None


def bulk_bundle(lines: list[tuple[str, int, bytes]]) -> str:
    """The Bundle of one Bulk Data patient, as the batch builds it: its Patient, then its resources in export order.

    ``lines`` are (file, line number, raw line); the Patient.ndjson lines first, then the other files
    in name order, each in line order. Over the single-file limit in all: refused in the batch's words.
    """
    from reasoner.bulk import oversize_problem
    from reasoner.patient import MAX_INPUT_BYTES

    texts = []
    size = 0
    seen: set[tuple[str, str]] = set()
    for file_name, number, raw in sorted(lines, key=lambda item: (item[0] != "Patient.ndjson", item[0], item[1])):
        text = _decode(raw, f"{file_name} line {number}").strip()
        identity = _identity(text)
        if identity is not None and identity in seen:
            continue  # the same resource again, identical: one resource (contract: duplicates)
        if identity is not None:
            seen.add(identity)  # different content under the same type and id goes to the reader, which decides
        size += len(raw)
        if size > MAX_INPUT_BYTES:
            raise InputError(oversize_problem())
        texts.append(text)
    return ('{"resourceType":"Bundle","type":"collection","entry":['
            + ",".join('{"resource":' + text + "}" for text in texts) + "]}")


def _identity(text: str) -> tuple[str, str] | None:
    """A resource's type and id with a digest of its content (whatever its key order or spacing), or None."""
    try:
        data = json.loads(text, parse_float=str, parse_int=str, parse_constant=str)
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("id"), str):
        return None
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    digest = hashlib.sha256(canonical.encode("utf-8", errors="surrogatepass")).hexdigest()
    return f"{data.get('resourceType')}/{data['id']}", digest


def reason_partition(engine_name: str | None, allow_paths: tuple[str, ...], loads: Any,
                     units: Iterable[tuple[int, str, str, Any]], busy: Any = None, now: Any = None) -> Iterator[Row]:
    """What each partition runs (bound with functools.partial, so that it is pickled by reference):
    (seq, name, kind, payload) units in, report rows out. ``loads`` counts guideline loads, ``busy`` the
    seconds spent reasoning (both accumulators; approximate when Spark runs a task again)."""
    from reasoner import guard

    guideline, engine, loaded = worker_engine(engine_name)  # before isolation: it may fill the disk cache
    if loaded and loads is not None:
        loads.add(1)
    with guard.isolated(allow_paths=allow_paths):  # the patient's input reaches no file and no host
        for seq, name, kind, payload in units:
            started = time.monotonic()
            row = reason_one(guideline, engine, name, kind, payload, now)
            if busy is not None:
                busy.add(time.monotonic() - started)
            yield (seq,) + row[1:]


# ---- the reports' tables ----

def _rec_rows(source: str, data: dict[str, Any]) -> Iterator[tuple[Any, ...]]:
    patient = data.get("patient", {}).get("identifier")
    for rec in data.get("recommendations", []):
        yield (source, patient, rec["action"]["key"], rec["direction"], rec.get("urgency"), rec.get("strength"),
               list(rec["statements"]), list(rec["citations"]), list(rec.get("because", [])), rec["iri"])


def _flag_rows(source: str, data: dict[str, Any]) -> Iterator[tuple[Any, ...]]:
    patient = data.get("patient", {}).get("identifier")
    for flag in data.get("red_flags", []):
        yield (source, patient, flag["key"], list(flag["statements"]), list(flag["citations"]),
               list(flag.get("suggests", [])))


def _differential_rows(source: str, data: dict[str, Any]) -> Iterator[tuple[Any, ...]]:
    patient = data.get("patient", {}).get("identifier")
    for entry in data.get("differential", []):
        yield (source, patient, entry["key"], list(entry["statements"]), list(entry["citations"]),
               list(entry.get("supported_by", [])), entry.get("nature"))


def _schemas() -> dict[str, Any]:
    from pyspark.sql.types import ArrayType, LongType, StringType, StructField, StructType

    def strings(*names: str) -> list[StructField]:
        return [StructField(n, StringType(), True) for n in names]

    def arrays(*names: str) -> list[StructField]:
        return [StructField(n, ArrayType(StringType(), False), True) for n in names]

    return {
        "reports": StructType([StructField("seq", LongType(), False),
                               *strings("source", "patient_identifier", "status", "reason", "report_json")]),
        "recommendations": StructType([*strings("source", "patient_identifier", "action", "direction", "urgency",
                                                "strength"), *arrays("statements", "citations", "because"),
                                       *strings("iri")]),
        "red_flags": StructType([*strings("source", "patient_identifier", "key"),
                                 *arrays("statements", "citations", "suggests")]),
        "differential": StructType([*strings("source", "patient_identifier", "key"),
                                    *arrays("statements", "citations", "supported_by"), *strings("nature")]),
    }


ENTRY_ROWS = {"recommendations": _rec_rows, "red_flags": _flag_rows, "differential": _differential_rows}


def entry_rows(reports: Iterable[Any]) -> Iterator[tuple[str, tuple[Any, ...]]]:
    """(table, row) for every entry of the entry tables, from (source, report_json) pairs: each report parsed once."""
    for source, report_json in reports:
        data = json.loads(report_json)
        for table, rows_of in ENTRY_ROWS.items():
            for row in rows_of(source, data):
                yield table, row


def _of_table(table: str, entry: tuple[str, Any]) -> bool:
    return entry[0] == table


def _row(entry: tuple[str, Any]) -> Any:
    return entry[1]


# ---- the driver side ----

def is_uri(text: str) -> bool:
    return "://" in text


def as_uri(text: str) -> str:
    """A Hadoop URI for a path or URI the user gave: a bare path is a local file, never the cluster's default FS.

    Not percent-encoded: Hadoop's Path takes the characters as they are.
    """
    return text if is_uri(text) else "file://" + str(Path(text).resolve())


def literal(uri: str) -> str:
    """A URI for Spark's readers, which expand glob patterns: every glob character escaped, one file or folder."""
    return "".join("\\" + c if c in GLOB else c for c in uri)


class Storage:
    """The Hadoop file system of a URI, through the JVM: the same calls for a local folder and for HDFS or S3."""

    def __init__(self, spark: Any, uri: str) -> None:
        self.jvm = spark.sparkContext._jvm
        self.conf = spark.sparkContext._jsc.hadoopConfiguration()
        self.root = self.jvm.org.apache.hadoop.fs.Path(uri)
        self.fs = self.root.getFileSystem(self.conf)
        self.fs.setWriteChecksum(False)  # no .crc beside summary.json on a local disk

    def path(self, *parts: str) -> Any:
        path = self.root
        for part in parts:
            path = self.jvm.org.apache.hadoop.fs.Path(path, part)
        return path

    def exists(self, *parts: str) -> bool:
        return bool(self.fs.exists(self.path(*parts)))

    def is_dir(self, *parts: str) -> bool:
        return self.exists(*parts) and bool(self.fs.getFileStatus(self.path(*parts)).isDirectory())

    def names(self, *parts: str) -> list[str]:
        return sorted(str(status.getPath().getName()) for status in self.fs.listStatus(self.path(*parts)))

    def uri(self, *parts: str) -> str:
        return str(self.path(*parts).toString())

    def write_text(self, name: str, text: str) -> None:
        stream = self.fs.create(self.path(name), True)
        try:
            stream.write(bytearray(text.encode("utf-8")))
        finally:
            stream.close()

    def rename(self, source: Any, target: Any) -> None:
        if not self.fs.rename(source, target):
            raise OutputError(f"{target.toString()}: could not move the finished dataset into place")

    def delete(self, *parts: str) -> None:
        self.fs.delete(self.path(*parts), True)


def _log4j_config(folder: Path) -> Path:
    """Spark's own logging off: stderr holds the run's lines, a failure is one line of the driver's."""
    path = folder / "log4j2.properties"
    path.write_text("rootLogger.level = off\nrootLogger.appenderRef.stderr.ref = console\n"
                    "appender.console.type = Console\nappender.console.name = console\n"
                    "appender.console.target = SYSTEM_ERR\nappender.console.layout.type = PatternLayout\n"
                    "appender.console.layout.pattern = spark: %p %c{1}: %m%n\n", encoding="utf-8")
    return path


def session_builder(master: str | None, scratch: Path, app_name: str = "guideline-kg") -> Any:
    """A SparkSession builder: Spark's scratch, warehouse and JVM temporary folders inside ``scratch``.

    A local master binds 127.0.0.1 only, with no web UI, and runs this Python in its workers.
    Under ``spark-submit`` (``master`` None) the cluster's settings stand.
    """
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName(app_name)
    java_tmp = scratch / "java"
    java_tmp.mkdir(parents=True, exist_ok=True)
    java_options = f"-Djava.io.tmpdir={java_tmp} -Dlog4j2.configurationFile={_log4j_config(scratch).as_uri()}"
    builder = (builder.config("spark.local.dir", str(scratch / "local"))
               .config("spark.sql.warehouse.dir", (scratch / "warehouse").as_uri())
               .config("spark.driver.extraJavaOptions", java_options)
               .config("spark.executor.extraJavaOptions", java_options)
               .config("spark.ui.showConsoleProgress", "false")
               .config("spark.python.worker.reuse", "true")  # a worker keeps its loaded guideline for the next task
               .config("spark.sql.parquet.compression.codec", "zstd"))
    if master is not None:
        builder = builder.master(master)
        if master.startswith("local"):
            os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
            os.environ["PYSPARK_PYTHON"] = sys.executable  # the workers import this very package
            builder = (builder.config("spark.driver.host", "127.0.0.1")
                       .config("spark.driver.bindAddress", "127.0.0.1")
                       .config("spark.ui.enabled", "false")
                       .config("spark.pyspark.python", sys.executable)
                       .config("spark.pyspark.driver.python", sys.executable))
    return builder


# A Bulk Data run's inputs in the batch's order (``reasoner.bulk.BulkIndex.units``): the patients of Patient.ndjson,
# then the patient ids only other files name, then the lines that name no patient and fail the checks.
PATIENTS, ORPHANS, STRAYS = 0, 1, 2


def _seq(group: int, file_index: int, number: int) -> int:
    """An input's place in that order: its group, then the file (Patient.ndjson first, then by name), then the line."""
    return (group << 56) | (file_index << 36) | number


BulkLine = tuple[str, int, bytes, "str | None", int]  # file, line number, raw line, problem, file index


def _patient_key(seq: int, raw: bytes, file_name: str, file_index: int = 0) -> tuple[Any, BulkLine]:
    """A Bulk Data line keyed by its patient, checked and filed as the batch's index files it (``reasoner.bulk``).

    The key is None for a resource that names no patient (counted, not read), and ``(file index, line number)``
    for a line that fails the checks and names no patient (a refused input of its own).
    """
    from reasoner.bulk import check_line, file_line

    number = seq + 1
    raw = bytes(raw)
    where = f"{file_name} line {number}"
    data, problem = check_line(raw, where)
    pid, problem = file_line(file_name, where, data, problem)
    key: Any = pid if pid is not None or problem is None else (file_index, number)
    return key, (file_name, number, raw, problem, file_index)


def gather(key: Any, lines: Iterable[BulkLine]) -> tuple[int, str, str, Any]:
    """One input of a Bulk Data run, (seq, name, kind, payload), from the lines filed under one key: a patient's
    Bundle, or a refusal in the batch's words (the first bad line of the patient, a patient id Patient.ndjson
    does not hold, a bad line of no patient)."""
    from reasoner.bulk import bulk_name, orphan_problem

    ordered = sorted(lines, key=lambda line: (line[4], line[1]))
    file_name, number, _raw, problem, file_index = ordered[0]
    if isinstance(key, tuple):
        return _seq(STRAYS, file_index, number), f"{file_name} line {number}", "problem", problem
    name = bulk_name(key)
    if file_name != "Patient.ndjson":
        return _seq(ORPHANS, file_index, number), name, "problem", orphan_problem(len(ordered))
    seq = _seq(PATIENTS, file_index, number)
    problem = next((line[3] for line in ordered if line[3] is not None), None)
    if problem is not None:
        return seq, name, "problem", problem
    return seq, name, "bundle", [(line[0], line[1], line[2]) for line in ordered]


def _lines(spark: Any, uri: str) -> Any:
    """The lines of a text file with their 0-based line numbers, as raw bytes: (number, bytes) pairs."""
    from pyspark.sql import functions as F

    frame = spark.read.text(literal(uri)).select(F.col("value").cast("binary").alias("value"))
    return frame.rdd.map(lambda row: bytes(row[0])).zipWithIndex().map(lambda pair: (pair[1], pair[0]))


def _blank(raw: bytes) -> bool:
    return not raw.strip()


class Job:
    """One run: where the input is, which kind it is, and the units the executors reason over."""

    def __init__(self, spark: Any, source: str, engine_name: str | None) -> None:
        self.spark = spark
        self.sc = spark.sparkContext
        self.source = source
        self.engine_name = engine_name
        self.kind = ""
        self.allow_paths: tuple[str, ...] = ()
        self.target = max(self.sc.defaultParallelism * PARTITIONS_PER_CORE, 1)

    def units(self) -> Any:
        """An RDD of (seq, name, kind, payload)."""
        if not is_uri(self.source):
            path = Path(self.source)
            if not path.exists():
                raise InputError(f"{self.source}: no such file or folder")
            if path.is_dir() and not (path / "Patient.ndjson").is_file():
                return self._folder(path)
        storage = Storage(self.spark, as_uri(self.source))
        if not storage.exists():
            raise InputError(f"{self.source}: no such file or folder")
        if storage.is_dir():
            if not storage.exists("Patient.ndjson"):
                raise InputError(f"{self.source}: a folder on a cluster file system must be a Bulk Data export "
                                 "(Patient.ndjson); put a folder of bundles where every executor reads it")
            return self._bulk(storage)
        return self._ndjson(storage.uri())

    def _folder(self, folder: Path) -> Any:
        from reasoner.batch import folder_units

        self.kind = "folder"
        self.allow_paths = (str(folder.resolve()),)
        units = [(u.index, u.name, "path", str(Path(u.path).resolve())) if u.path is not None
                 else (u.index, u.name, "problem", getattr(u, "problem", None) or "not read")
                 for u in folder_units(folder)]
        return self.sc.parallelize(units, max(1, min(len(units), self.target)))

    def _ndjson(self, uri: str) -> Any:
        self.kind = "ndjson"
        lines = _lines(self.spark, uri).filter(lambda pair: not _blank(pair[1]))
        return lines.map(lambda pair: (pair[0] + 1, f"line-{pair[0] + 1:07d}", "line", pair[1])).repartition(
            self.target)

    def _bulk(self, storage: Storage) -> Any:
        self.kind = "bulk"
        names = sorted((n for n in storage.names() if n.endswith(".ndjson") and not n.startswith(".")),
                       key=lambda n: (n != "Patient.ndjson", n))  # the batch's file order
        keyed = []
        for file_index, file_name in enumerate(names):
            lines = _lines(self.spark, storage.uri(file_name)).filter(lambda pair: not _blank(pair[1]))
            keyed.append(lines.map(lambda pair, f=file_name, i=file_index: _patient_key(pair[0], pair[1], f, i)))
        everything = self.sc.union(keyed)
        without = self.sc.accumulator(0)

        def attached(item: tuple[Any, BulkLine]) -> bool:
            if item[0] is None:
                without.add(1)
                return False
            return True

        self._without = without
        return everything.filter(attached).groupByKey(self.target).map(lambda group: gather(group[0], group[1]))

    def bulk_counts(self) -> dict[str, int]:
        """Resources that name no patient, counted and not read (an accumulator: a task Spark runs again counts
        again)."""
        if self.kind != "bulk":
            return {}
        return {"resources_without_patient": int(self._without.value)}


def check_local_output(out: str, source: str) -> None:
    if not is_uri(out) and not is_uri(source):
        target, origin = Path(out).resolve(), Path(source).resolve()
        if target == origin or origin in target.parents:
            raise InputError(f"{out}: the output folder may not be the input or inside it")


def check_output(storage: Storage, out: str, source: str) -> None:
    check_local_output(out, source)
    if storage.exists():
        if not storage.is_dir():
            raise OutputError(f"{out}: --out must be a folder")
        if storage.names():
            raise OutputError(f"{out}: the output folder is not empty; give a new or empty folder")


def run_job(spark: Any, source: str, out: str, engine_name: str | None, master: str,
            now: Any = None) -> tuple[int, dict[str, Any]]:
    """The whole run on a started session: reports and their tables written, the summary returned. Every executor
    reasons at the same instant: ``now`` (``--now``), else the driver's clock when the run starts."""
    from reasoner.clock import current_instant

    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    started = time.monotonic()
    storage = Storage(spark, as_uri(out))
    check_output(storage, out, source)
    # the guideline is loaded (and checked) once on the driver first: a broken encoding stops here
    from reasoner.guideline import Guideline
    from reasoner.engines import make_engine

    make_engine(Guideline.load(), engine_name)

    job = Job(spark, source, engine_name)
    units = job.units()
    loads = spark.sparkContext.accumulator(0)
    busy = spark.sparkContext.accumulator(0.0)
    now = now or current_instant()
    rows = units.mapPartitions(functools.partial(reason_partition, engine_name, job.allow_paths, loads, busy=busy,
                                                 now=now))
    schemas = _schemas()
    staging = STAGING_PREFIX + uuid.uuid4().hex
    created = not storage.exists()
    try:
        spark.createDataFrame(rows, schemas["reports"]).write.parquet(storage.uri(staging, "reports"))
        reports = spark.read.parquet(literal(storage.uri(staging, "reports")))
        reported = reports.where(F.col("status") != "refused").select("source", "report_json").rdd
        entries = reported.mapPartitions(entry_rows).persist(StorageLevel.MEMORY_AND_DISK)  # small rows, kept once
        try:
            for table in TABLES[1:]:
                rows = entries.filter(functools.partial(_of_table, table)).map(_row)
                spark.createDataFrame(rows, schemas[table]).write.parquet(storage.uri(staging, table))
        finally:
            entries.unpersist()
        statuses = {row["status"]: int(row["count"]) for row in reports.groupBy("status").count().collect()}
        named = sorted(reports.where(F.col("status") != "report").select("seq", "source", "status", "reason")
                       .collect(), key=lambda row: row["seq"])
        sizes = {table: 0 for table in TABLES[1:]}
        counted = None
        for table in TABLES[1:]:  # one job counts the three (from the Parquet footers)
            frame = spark.read.parquet(literal(storage.uri(staging, table))).select(F.lit(table).alias("table"))
            counted = frame if counted is None else counted.unionByName(frame)
        sizes.update({row["table"]: int(row["count"]) for row in counted.groupBy("table").count().collect()})
        for table in TABLES:
            storage.rename(storage.path(staging, table), storage.path(table))
        storage.delete(staging)
    except BaseException:
        storage.delete(staging)
        if created:
            storage.delete()
        raise
    seconds = time.monotonic() - started
    counts = {"report": statuses.get("report", 0), "nonconforming": statuses.get("nonconforming", 0),
              "refused": statuses.get("refused", 0)}
    patients = sum(counts.values())
    summary = {
        "input": source, "input_kind": job.kind, "master": master, "engine": make_engine_name(engine_name),
        "patients": patients, **counts, **job.bulk_counts(),
        "rows": {"reports": patients, **sizes},
        "partitions": units.getNumPartitions(), "guideline_loads": int(loads.value),
        "reasoning_seconds": round(float(busy.value), 3),  # summed over the workers: how busy they were
        "seconds": round(seconds, 3), "patients_per_second": round(patients / seconds, 2) if seconds > 0 else None,
        "refused_inputs": [{"source": r["source"], "reason": r["reason"]} for r in named if r["status"] == "refused"],
        "nonconforming_inputs": [r["source"] for r in named if r["status"] == "nonconforming"],
    }
    storage.write_text("summary.json", json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    code = 2 if counts["refused"] else 1 if counts["nonconforming"] else 0
    return code, summary


def make_engine_name(engine_name: str | None) -> str:
    from reasoner.engines import default_engine

    return engine_name or default_engine()


def _summary_line(summary: dict[str, Any]) -> str:
    """The batch's summary: the same line, and the same line for the resources that name no patient."""
    from reasoner.bulk import without_patient_note

    rate = summary["patients_per_second"] or 0.0
    without = summary.get("resources_without_patient", 0)
    line = (f"guideline-kg: {summary['patients']} patients, {summary['report']} conforming, "
            f"{summary['nonconforming']} not conforming, {summary['refused']} refused; "
            f"{summary['seconds']:.1f} s ({rate:,.1f} patients/s)\n")
    return line + (without_patient_note(without) if without else "")


def start_session(builder: Any, log: Path) -> Any:
    """Start the JVM with its standard error in ``log``: its banner lines stay off the user's stderr.

    The JVM (and the Python workers it starts) keep that file as their stderr; when the start fails,
    its last line says why (no Java, a bad master URL).
    """
    saved = os.dup(2)
    target = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        sys.stderr.flush()
        os.dup2(target, 2)
        try:
            return builder.getOrCreate()
        finally:
            os.dup2(saved, 2)
    except Exception as exc:
        lines = [line.strip() for line in log.read_text(encoding="utf-8", errors="replace").splitlines()
                 if line.strip()]
        detail = f" ({' '.join(lines[-1].split())[:200]})" if lines else ""
        raise OutputError(f"Spark could not start: {_spark_message(exc)}{detail}") from None
    finally:
        os.close(target)
        os.close(saved)


def _hosts(master: str) -> list[str]:
    """What the driver's Python may connect to: its own JVM (loopback) and the master's host."""
    from urllib.parse import urlsplit

    hosts = list(LOCAL_HOSTS)
    for part in master.split(","):
        if "://" in part:
            host = urlsplit(part).hostname
            if host:
                hosts.append(host)
    return hosts


def run_spark(args: argparse.Namespace) -> int:
    """``guideline-kg spark INPUT --out OUT``: start (or join) the session, run, print the summary line."""
    from reasoner import guard

    try:
        import pyspark  # noqa: F401
    except ModuleNotFoundError:
        raise InputError("the spark command needs pyspark: pip install 'guideline-kg[spark]'") from None
    source, out = str(args.input), str(args.out)
    if not is_uri(source) and not Path(source).exists():
        raise InputError(f"{source}: no such file or folder")
    check_local_output(out, source)
    master = master_of(args)
    scratch = Path(tempfile.mkdtemp(prefix="guideline-kg-spark-"))
    allowed = [scratch, *(Path(p) for p in (source, out) if not is_uri(p))]
    try:
        # the driver's Python talks to its JVM on loopback; patients are parsed only in the executors
        with guard.isolated(allow_hosts=_hosts(master or ""), allow_paths=allowed):
            from pyspark.sql import SparkSession

            active = SparkSession.getActiveSession()  # a session this process already runs (a notebook, a test)
            spark = active or start_session(session_builder(master, scratch), scratch / "spark.log")
            try:
                code, summary = run_job(spark, source, out, args.engine, spark.sparkContext.master,
                                        getattr(args, "now", None))
            finally:
                if active is None:
                    spark.stop()
    except (InputError, GuidelineError, guard.IsolationError):
        raise
    except OutputError as exc:
        sys.stderr.write(f"guideline-kg: {exc}\n")
        return 3
    except Exception as exc:  # Spark's own failures: an environment error, in one line
        sys.stderr.write(f"guideline-kg: the Spark job failed: {type(exc).__name__}: {_spark_message(exc)}\n")
        return 3
    finally:
        remove_tree(scratch)
    for item in summary["refused_inputs"]:
        sys.stderr.write(f"guideline-kg: {item['source']}: {item['reason']}\n")
    sys.stderr.write(_summary_line(summary))
    return code


def remove_tree(root: Path) -> None:
    """Remove a folder this run made, bottom up by name: shutil.rmtree opens folders by descriptor, which the
    isolation guard (still on around the command) cannot place and refuses."""
    for folder, dirs, files in os.walk(root, topdown=False):
        for name in files:
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(folder, name))
        for name in dirs:
            with contextlib.suppress(OSError):
                os.rmdir(os.path.join(folder, name))
    with contextlib.suppress(OSError):
        os.rmdir(root)


def _spark_message(exc: BaseException) -> str:
    """The line of a Java or Spark error that says what failed: a Python worker's own last line, else the first."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    if any(line.startswith("Traceback") for line in lines):
        ends = [line for line in lines if not line.startswith(("at ", "File ", "SQLSTATE", "^", "~"))
                and not line.startswith("Traceback") and ": " in line and not line.startswith("[")]
        lines = ends[-1:] or lines
    return " ".join((lines[0] if lines else "").split())[:200]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from reasoner.engines import available

    parser.add_argument("input", help="a folder of bundles, an NDJSON file of bundles or a FHIR Bulk Data export "
                        "folder (a path, or for NDJSON and Bulk Data any Hadoop URI: hdfs://, s3a://)")
    parser.add_argument("--out", required=True, help="a new or empty folder (a path or Hadoop URI) for the Parquet "
                        "datasets and summary.json")
    parser.add_argument("--master", default=None, help=f"Spark master URL (default: {DEFAULT_MASTER}; under "
                        "spark-submit, the master spark-submit was given)")
    parser.add_argument("--engine", choices=sorted(available()), default=None,
                        help="reasoning engine (default: fast when available)")
    parser.add_argument("--now", type=instant_argument, default=None, metavar="INSTANT",
                        help="the reasoning time, an ISO 8601 instant such as 2026-01-31T09:30:00Z (default: when the "
                        "run starts, one instant for every executor)")


def master_of(args: argparse.Namespace) -> str | None:
    """The master to start: the one given, else none under spark-submit (its own), else local[*]."""
    if args.master:
        return str(args.master)
    return None if "PYSPARK_GATEWAY_PORT" in os.environ else DEFAULT_MASTER


def main(argv: list[str] | None = None) -> int:
    """``spark-submit .../reasoner/spark.py INPUT --out OUT`` (or ``python -m reasoner.spark``)."""
    from reasoner.cli import main as cli_main

    return cli_main(["spark", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
