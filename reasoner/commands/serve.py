"""``guideline-kg serve``: the read-only SPARQL endpoint (or, with ``--cds-hooks``, the CDS Hooks service)."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from reasoner.errors import InputError
from reasoner.foreground import serve_until_stopped

if TYPE_CHECKING:
    from reasoner.serve import Service, Settings

TOKEN_VARIABLE = "GUIDELINE_KG_TOKEN"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="a read-only SPARQL 1.1 endpoint over the guideline and patient reports",
                       description="Serves /sparql (SPARQL 1.1 Protocol), /queries/{name} (named queries) and a "
                                   "query page at /. Binds 127.0.0.1 unless told otherwise; another address "
                                   f"needs a bearer token (--token or ${TOKEN_VARIABLE}).")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=7878, help="port (default 7878; 0 picks a free one)")
    p.add_argument("--store", type=Path, metavar="DIR", help="an Oxigraph store made by 'guideline-kg load' "
                   "(opened read-only; starts in seconds whatever its size)")
    p.add_argument("--reports", type=Path, metavar="DIR", help="a folder of reports (JSON with their .nq graphs, "
                   "N-Quads, Turtle or JSON-LD), loaded into a temporary store; one named graph per patient")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds a query may run (default 30)")
    p.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1),
                   help="quick-lane query worker processes (default: the number of CPUs, at most 4)")
    p.add_argument("--long-workers", type=int, default=2,
                   help="queries at a time in the long lane, for those that run over --lane-seconds (default 2; "
                   "0: no long lane)")
    p.add_argument("--lane-seconds", type=float, default=1.0,
                   help="how long a query runs as a quick one before it needs a long-lane slot (default 1)")
    p.add_argument("--wait", type=float, default=10.0,
                   help="seconds a query may wait for a free worker before a 503 with Retry-After (default 10)")
    p.add_argument("--cache-mb", type=int, default=64,
                   help="answers kept for repeated queries, MB (the store is read-only; default 64, 0: none)")
    p.add_argument("--memory-mb", type=int, default=1024,
                   help="memory a worker may take for one query, MB (RLIMIT_AS over its start; default 1024)")
    p.add_argument("--token", default=None, help=f"bearer token every request must carry (or ${TOKEN_VARIABLE})")
    p.add_argument("--cors", metavar="ORIGIN", help="allow this origin to query from a browser (CORS is off by default)")
    p.add_argument("--cds-hooks", action="store_true", help="serve CDS Hooks instead of SPARQL (see reasoner.cds)")
    p.set_defaults(func=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    if args.cds_hooks:
        import reasoner.cds

        return reasoner.cds.serve_cds(args)
    import time

    from reasoner.serve import Settings, check_binding, make_server

    started = time.monotonic()
    if args.timeout <= 0:
        raise InputError("--timeout must be a positive number of seconds")
    if args.workers < 1:
        raise InputError("--workers must be at least 1")
    if args.long_workers < 0 or args.lane_seconds <= 0 or args.wait <= 0 or args.memory_mb < 0 or args.cache_mb < 0:
        raise InputError("--long-workers, --lane-seconds, --wait, --memory-mb and --cache-mb must not be negative")
    if args.store is not None and args.reports is not None:
        raise InputError("give either --store DIR or --reports DIR, not both")
    token = args.token or os.environ.get(TOKEN_VARIABLE) or None
    settings = Settings(host=args.host, port=args.port, timeout=args.timeout, token=token, cors=args.cors,
                        workers=args.workers, long_workers=args.long_workers, lane_seconds=args.lane_seconds,
                        wait=args.wait, memory_mb=args.memory_mb, cache_mb=args.cache_mb)
    check_binding(settings)
    service = open_service(args.store, [args.reports] if args.reports is not None else [], settings)
    try:
        server = make_server(service)
    except OSError as exc:
        service.close()
        raise InputError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}") from None
    except InputError:
        service.close()
        raise
    host, port = server.server_address[:2]
    settings.port = port
    shown = f"[{host}]" if ":" in str(host) else host
    sys.stderr.write(f"guideline-kg: SPARQL endpoint at http://{shown}:{port}/sparql "
                     f"({service.graph_count} named graphs, {args.timeout:g} s per query; "
                     f"started in {time.monotonic() - started:.1f} s); Ctrl-C stops\n")
    sys.stderr.flush()
    signal.signal(signal.SIGTERM, _stop)
    serve_until_stopped(server, service.close)
    return 0


def open_service(store: Path | None, reports: list[Path], settings: "Settings") -> "Service":
    """The service over ``--store DIR``, or over ``--reports DIR`` loaded into a temporary store (with neither:
    the guideline alone, in a temporary store)."""
    from reasoner.guideline import Guideline
    from reasoner.population import TemporaryStore
    from reasoner.serve import Service

    if store is not None:
        return Service.open(store, settings)
    temporary = TemporaryStore(reports, Guideline.load())
    try:
        return Service.open(temporary.folder, settings, temporary=temporary)
    except BaseException:
        temporary.close()
        raise


def _stop(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM ends the server as Ctrl-C does: workers stopped, socket closed
