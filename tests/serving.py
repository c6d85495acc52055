"""Helpers for the endpoint and store tests: report graphs written once, and a running endpoint."""

from __future__ import annotations

import tempfile
import threading
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from collections.abc import Iterator

from conftest import EXAMPLES, engine, guideline
from reasoner.commands.recommend import render
from reasoner.patient import read_patient
from reasoner.report import build_report
from reasoner.serve import NamedGraph, Service, Settings, guideline_graphs, make_server, read_reports

# Patients whose reports the tests load: a mass with fever and no MRI yet, a negative MRI, a cauda equina
# presentation and a patient the guideline does not apply to.
REPORT_EXAMPLES = ("palpable-mass-fever", "negative-mri", "cauda-equina", "not-applicable")


@lru_cache(maxsize=1)
def report_folder() -> Path:
    """A folder of report graphs, as ``recommend --format turtle`` writes them, made once per session."""
    folder = Path(tempfile.mkdtemp(prefix="guideline-kg-reports-"))
    g, e = guideline(), engine()
    for name in REPORT_EXAMPLES:
        report = build_report(g, e.reason(read_patient(g, EXAMPLES / f"{name}.json")))
        (folder / f"{name}.ttl").write_text(render(g, report, "turtle", e.name), encoding="utf-8")
    return folder


@lru_cache(maxsize=1)
def dataset_graphs() -> tuple[NamedGraph, ...]:
    return tuple(guideline_graphs(guideline()) + read_reports(report_folder()))


@contextmanager
def running_endpoint(**settings: object) -> Iterator[str]:
    """A SPARQL endpoint on 127.0.0.1 and a free port, in this process; yields its base URL."""
    config = Settings(host="127.0.0.1", port=0, **settings)  # type: ignore[arg-type]
    service = Service.start(list(dataset_graphs()), config)
    server = make_server(service)
    config.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{config.port}"
    finally:
        server.shutdown()
        server.server_close()
        service.close()
