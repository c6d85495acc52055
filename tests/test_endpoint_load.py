"""Many clients at once: every request of a fixed mixed workload is answered, none fails."""

from __future__ import annotations

import statistics
import threading
import time
import urllib.error
import urllib.request
from urllib.parse import urlencode

from serving import running_endpoint

CLIENTS = 32
REQUESTS_PER_CLIENT = 6
PATIENTS = """PREFIX gkg: <https://w3id.org/guideline-kg/vocab#>
SELECT ?patient ?identifier WHERE { ?patient a gkg:Patient ; gkg:identifier ?identifier } ORDER BY ?identifier"""
FLAGS = """PREFIX gkg: <https://w3id.org/guideline-kg/vocab#>
CONSTRUCT { ?flag gkg:about ?patient } WHERE { ?flag a gkg:PatientRedFlag ; gkg:about ?patient }"""
WORKLOAD = [
    ("/sparql?" + urlencode({"query": PATIENTS}), "application/sparql-results+json"),
    ("/sparql?" + urlencode({"query": PATIENTS}), "text/csv"),
    ("/sparql?" + urlencode({"query": "ASK { ?s a <https://w3id.org/guideline-kg/vocab#Patient> }"}),
     "application/sparql-results+xml"),
    ("/sparql?" + urlencode({"query": FLAGS}), "text/turtle"),
    ("/queries/red-flags-by-frequency", "text/tab-separated-values"),
    ("/queries/patients-with-recommendations-against?action=xr-lumbar", "application/sparql-results+json"),
]


def test_thirty_two_concurrent_clients_get_every_answer_with_no_error() -> None:
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()

    with running_endpoint(timeout=120.0) as base:
        def client(number: int) -> None:
            for i in range(REQUESTS_PER_CLIENT):
                path, accept = WORKLOAD[(number + i) % len(WORKLOAD)]
                started = time.perf_counter()
                try:
                    request = urllib.request.Request(base + path, headers={"Accept": accept})
                    with urllib.request.urlopen(request, timeout=300) as response:
                        body = response.read()
                        ok = response.status == 200 and len(body) > 0
                except (urllib.error.URLError, OSError) as exc:
                    ok, body = False, str(exc).encode()
                with lock:
                    latencies.append(time.perf_counter() - started)
                    if not ok:
                        errors.append(f"{path}: {body[:200]!r}")

        threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    ordered = sorted(latencies)
    p99 = ordered[max(0, int(len(ordered) * 0.99) - 1)]
    print(f"\n{len(latencies)} requests from {CLIENTS} clients: median {statistics.median(ordered) * 1000:.0f} ms, "
          f"p99 {p99 * 1000:.0f} ms, max {ordered[-1] * 1000:.0f} ms")
    assert errors == []
    assert len(latencies) == CLIENTS * REQUESTS_PER_CLIENT
