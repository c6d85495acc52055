"""Benchmark the population path: batch -> ``load`` -> ``serve --store`` on a generated cohort.

    python -m benchmarks.population --n 2000 --jobs 2

In one run, in a temporary folder (free disk is checked first; ``--dir`` to choose where):

* the batch, four ways: JSON only (``--ndjson``, nothing written but the JSON), ``--format json --out``
  (the JSON report and its N-Quads graph beside it), ``--format nquads --out`` (the graph only) and
  ``--format turtle --out``;
  the ratios to the JSON-only batch (target: RDF at most 1.5x);
* ``guideline-kg load`` of the JSON batch into an on-disk Oxigraph store: load time (wall and CPU), reports/s
  and quads/s, the time 100,000 reports would take at that rate (an extrapolation), store size;
* ``guideline-kg serve --store``: start time (until it answers), RSS of the server and its workers;
* the stored answers ``load`` worked out for the queries marked ``#+ precompute: yes`` (reasoner.views):
  the time to work them out again over the loaded store, and their size;
* each population named query (and the two with a parameter, with one), sequential requests, on a server
  without answer cache (``--cache-mb 0``): ``/queries/{name}`` (the stored answer) and the same query
  text with a comment appended sent to ``/sparql`` (no stored answer matches it: a worker evaluates it),
  first answer, p50 and p99 of each;
* the long lane: ordinary clients sending population queries, alone and then with two pathological
  clients sending cartesian products, p50/p99 of the ordinary requests in both phases.

Targets (issue 15) are printed beside the figures; they are checked here, never in the tests. The
server binds 127.0.0.1 only (``--port``, default a free one).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlencode

from benchmarks.cohort import generate

POPULATION_QUERIES = ("red-flags-by-frequency", "patients-with-recommendations-against",
                      "patients-mass-without-completed-mri", "recommendations-by-citation")
CARTESIAN = "SELECT (COUNT(*) AS ?n) WHERE { ?a ?b ?c . ?d ?e ?f . ?g ?h ?i . ?j ?k ?l }"
# Disk a patient takes (bytes): input Bundle, JSON report, its .nq, the nquads and turtle batches and the store, with room.
DISK_PER_PATIENT = 700_000


CPU: dict[str, float] = {}  # CPU seconds of the last cli() call, with its worker processes


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def cli(*args: str, stdout: int | None = subprocess.DEVNULL) -> tuple[float, str]:
    started = time.monotonic()
    cpu = _children_cpu()
    done = subprocess.run([sys.executable, "-m", "reasoner", *args], stdout=stdout, stderr=subprocess.PIPE,
                          text=True, check=False)
    seconds = time.monotonic() - started
    CPU["last"] = _children_cpu() - cpu
    if done.returncode not in (0, 1):
        raise SystemExit(f"guideline-kg {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()[-400:]}")
    return seconds, done.stderr.strip().splitlines()[-1] if done.stderr.strip() else ""


def folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def tree_rss_mb(pid: int) -> float:
    """RSS of a process and its children (the query workers), MB."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                parents[int(entry.name)] = int(fields[1])
            except (OSError, IndexError, ValueError):
                continue
    family, frontier = {pid}, [pid]
    while frontier:
        current = frontier.pop()
        for child, parent in parents.items():
            if parent == current and child not in family:
                family.add(child)
                frontier.append(child)
    total = 0
    for member in family:
        try:
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fetch(url: str, accept: str = "application/sparql-results+json", timeout: float = 300) -> tuple[int, float]:
    started = time.monotonic()
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers={"Accept": accept}), timeout=timeout) as r:
            r.read()
            status = r.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (urllib.error.URLError, OSError):
        status = 0
    return status, time.monotonic() - started


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(q * len(ordered))) - 1))]


def line(label: str, value: str, target: str = "") -> None:
    print(f"{label:<46} {value:<28} {target}", flush=True)


def concurrent_requests(clients: int, requests: int, ask: Callable[[int], int]) -> tuple[list[float], list[int]]:
    """``clients`` threads at once, each making ``requests`` calls ``ask(k)`` (k = client number + call number;
    ``ask`` returns the HTTP status): every call's seconds and status."""
    latencies: list[float] = []
    statuses: list[int] = []
    lock = threading.Lock()

    def client(number: int) -> None:
        for i in range(requests):
            started = time.monotonic()
            status = ask(number + i)
            with lock:
                latencies.append(time.monotonic() - started)
                statuses.append(status)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, statuses


def clients_phase(base: str, clients: int, requests: int) -> tuple[list[float], list[int]]:
    """Ordinary clients asking the population named queries in turn."""
    return concurrent_requests(
        clients, requests, lambda k: fetch(f"{base}/queries/{POPULATION_QUERIES[k % len(POPULATION_QUERIES)]}")[0])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100_000, help="patients (default 100000)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=min(4, os.cpu_count() or 1), help="batch worker processes")
    parser.add_argument("--dir", type=Path, default=None, help="where the temporary folder goes (default: $TMPDIR)")
    parser.add_argument("--port", type=int, default=0, help="the endpoint's port on 127.0.0.1 (default: a free one)")
    parser.add_argument("--requests", type=int, default=20, help="sequential requests per population query")
    parser.add_argument("--clients", type=int, default=10, help="ordinary clients in the long-lane phase")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args(argv)

    parent = args.dir or Path(tempfile.gettempdir())
    needed = args.n * DISK_PER_PATIENT
    free = shutil.disk_usage(parent).free
    if free < needed:
        print(f"benchmarks.population: {args.n} patients need about {needed / 1e9:.1f} GB in {parent}; "
              f"{free / 1e9:.1f} GB is free (use --n or --dir)", file=sys.stderr)
        return 2
    root = Path(tempfile.mkdtemp(prefix="guideline-kg-population-bench-", dir=parent))
    server: subprocess.Popen[str] | None = None
    try:
        print(f"population benchmark: {args.n} patients, seed {args.seed}, --jobs {args.jobs}, in {root}")
        cohort = root / "cohort.ndjson"
        with cohort.open("w", encoding="utf-8") as out:
            for bundle in generate(args.n, args.seed):
                out.write(json.dumps(bundle, separators=(",", ":")) + "\n")
        jobs = ["--jobs", str(args.jobs)]

        json_only, _ = cli("recommend", str(cohort), "--ndjson", *jobs)
        json_cpu = CPU["last"]
        with_graph, _ = cli("recommend", str(cohort), "--out", str(root / "json"), *jobs)
        graph_cpu = CPU["last"]
        nquads, _ = cli("recommend", str(cohort), "--out", str(root / "nquads"), "--format", "nquads", *jobs)
        nquads_cpu = CPU["last"]
        turtle, _ = cli("recommend", str(cohort), "--out", str(root / "turtle"), "--format", "turtle", *jobs)
        turtle_cpu = CPU["last"]
        # wall time moves with what else the machine runs; CPU seconds (with the workers') much less
        line("batch, JSON only (--ndjson)", f"{json_only:.1f} s wall, {json_cpu:.1f} s CPU")
        line("batch, --format json (JSON + .nq beside)", f"{with_graph / json_only:.2f}x wall, "
             f"{graph_cpu / json_cpu:.2f}x CPU", "target <= 1.5x")
        line("batch, --format nquads", f"{nquads / json_only:.2f}x wall, {nquads_cpu / json_cpu:.2f}x CPU",
             "target <= 1.5x")
        line("batch, --format turtle", f"{turtle / json_only:.2f}x wall, {turtle_cpu / json_cpu:.2f}x CPU",
             "target <= 1.5x")

        store = root / "store"
        load_seconds, summary = cli("load", str(root / "json"), "--store", str(store))
        load_cpu = CPU["last"]
        # 100,000 at the same rate: a linear extrapolation (the README gives measured sizes)
        line("load (wall, with the guideline and stored answers)", f"{load_seconds:.1f} s ({args.n / load_seconds:,.0f} reports/s), "
             f"{load_cpu:.1f} s CPU", f"100,000 in minutes: ~{100_000 / args.n * load_seconds / 60:,.0f} min "
             "at this rate (extrapolated)")
        line("  load says", summary.replace("guideline-kg: ", "")[:200])
        line("store size", f"{folder_size(store) / 1e6:,.1f} MB ({folder_size(store) / args.n / 1e3:.1f} kB/patient)")

        port = args.port or free_port()
        base = f"http://127.0.0.1:{port}"

        def start(*extra: str) -> tuple[subprocess.Popen[str], float]:
            started = time.monotonic()
            process = subprocess.Popen([sys.executable, "-m", "reasoner", "serve", "--store", str(store), "--port",
                                        str(port), "--timeout", "10", *extra], stdout=subprocess.DEVNULL,
                                       stderr=subprocess.PIPE, text=True)
            while fetch(f"{base}/queries", "application/json", timeout=5)[0] != 200:
                if process.poll() is not None:
                    raise SystemExit(f"serve ended: {process.stderr.read() if process.stderr else ''}")
                time.sleep(0.05)
            return process, time.monotonic() - started

        def per_query(requests: int) -> None:
            from reasoner.queries import load_query
            from reasoner.resources import queries_dir

            cases = [(name, {}) for name in POPULATION_QUERIES] + [
                ("patients-with-recommendations-against", {"action": "xr-lumbar"}),
                ("recommendations-by-citation", {"citation": "4"})]
            for name, params in cases:
                text = load_query(queries_dir() / f"{name}.rq").text + "\n# evaluated, not the stored answer\n"
                label = name + "".join(f" {k}={v}" for k, v in params.items())
                bindings = {k: f'"{v}"' for k, v in params.items()}  # string parameters, as the server binds them
                evaluated = text.replace("WHERE {", "WHERE {\n  VALUES (" + " ".join(f"?{k}" for k in bindings)
                                         + ") { (" + " ".join(bindings.values()) + ") }", 1) if bindings else text
                for path, how in ((f"{base}/queries/{name}?{urlencode(params)}", "stored"),
                                  (f"{base}/sparql?{urlencode({'query': evaluated})}", "evaluated")):
                    times = []
                    for _ in range(requests if how == "stored" else max(3, requests // 4)):
                        status, seconds = fetch(path)
                        if status != 200:
                            print(f"  {label} ({how}): HTTP {status}", flush=True)
                        times.append(seconds)
                    line(f"  {label} ({how})", f"first {times[0] * 1000:,.0f} ms, p50 "
                         f"{statistics.median(times) * 1000:,.0f} ms, p99 {percentile(times, 0.99) * 1000:,.0f} ms",
                         "target p50 <= 1 s")

        started = time.monotonic()
        from reasoner import views

        refreshed = views.refresh(store)
        line("stored answers (load works them out)", f"{refreshed.queries} queries in "
             f"{time.monotonic() - started:.1f} s, {folder_size(store / views.FOLDER) / 1e6:,.1f} MB")
        server, start_seconds = start("--cache-mb", "0")
        line("serve --store start (until it answers)", f"{start_seconds:.1f} s", "target <= 5 s")
        line("serve RSS (server + workers), idle", f"{tree_rss_mb(server.pid):,.0f} MB", "target <= 1 GB")
        per_query(args.requests)
        line("serve RSS (server + workers), after queries", f"{tree_rss_mb(server.pid):,.0f} MB", "target <= 1 GB")

        alone, statuses = clients_phase(base, args.clients, 3)
        stop = threading.Event()
        rejected: list[int] = []

        def attacker() -> None:
            while not stop.is_set():
                rejected.append(fetch(f"{base}/sparql?{urlencode({'query': CARTESIAN})}")[0])

        attackers = [threading.Thread(target=attacker, daemon=True) for _ in range(2)]
        for thread in attackers:
            thread.start()
        time.sleep(2.0)
        loaded, loaded_statuses = clients_phase(base, args.clients, 3)
        stop.set()
        ok = statuses.count(200) + loaded_statuses.count(200)
        line(f"{args.clients} ordinary clients alone (no cache)", f"p50 {statistics.median(alone) * 1000:,.0f} ms, "
                                                       f"p99 {percentile(alone, 0.99) * 1000:,.0f} ms")
        line("  with 2 pathological clients", f"p50 {statistics.median(loaded) * 1000:,.0f} ms, "
                                              f"p99 {percentile(loaded, 0.99) * 1000:,.0f} ms", "target p99 <= 1 s")
        line("  ordinary answered 200", f"{ok}/{len(statuses) + len(loaded_statuses)}; pathological "
                                        f"stopped: {len(rejected)} (HTTP {sorted(set(rejected))})")
        for thread in attackers:
            thread.join(30)
        return 0
    finally:
        if server is not None and server.poll() is None:
            server.terminate()
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
