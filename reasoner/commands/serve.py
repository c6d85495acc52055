"""``guideline-kg serve``: the read-only SPARQL endpoint (or, with ``--cds-hooks``, the CDS Hooks service)."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

from reasoner.errors import InputError
from reasoner.foreground import serve_until_stopped

TOKEN_VARIABLE = "GUIDELINE_KG_TOKEN"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="a read-only SPARQL 1.1 endpoint over the guideline and patient reports",
                       description="Serves /sparql (SPARQL 1.1 Protocol), /queries/{name} (named queries) and a "
                                   "query page at /. Binds 127.0.0.1 unless told otherwise; another address "
                                   f"needs a bearer token (--token or ${TOKEN_VARIABLE}).")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=7878, help="port (default 7878; 0 picks a free one)")
    p.add_argument("--reports", type=Path, help="a folder of report graphs written by "
                   "'recommend --format turtle|jsonld'; one named graph per patient")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds a query may run (default 30)")
    p.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1),
                   help="query worker processes (default: the number of CPUs, at most 4)")
    p.add_argument("--token", default=None, help=f"bearer token every request must carry (or ${TOKEN_VARIABLE})")
    p.add_argument("--cors", metavar="ORIGIN", help="allow this origin to query from a browser (CORS is off by default)")
    p.add_argument("--cds-hooks", action="store_true", help="serve CDS Hooks instead of SPARQL (see reasoner.cds)")
    p.add_argument("--trusted-issuer", action=_TrustedIssuer, metavar="ISSUER=JWKS",
                   help="CDS Hooks: a CDS client (EHR) whose signed JWTs are accepted, with its public keys: a JWKS "
                        "file or its https URL (the only URL ever fetched for it); repeatable. Needed beyond loopback")
    p.add_argument("--public-url", metavar="URL", help="CDS Hooks: this service's base URL as the EHR calls it "
                   "(e.g. https://cds.example.org); a JWT's aud must be this URL + the service's path")
    p.set_defaults(func=run_serve)


class _TrustedIssuer(argparse.Action):
    """Collects ``ISSUER=JWKS`` values, and their JWKS sources apart (``jwks_sources``: a file as a Path, a URL as
    text), so that the process isolation lets the service read exactly those files and reach exactly those hosts."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: object,
                 option_string: str | None = None) -> None:
        spec = str(values)
        namespace.trusted_issuer = [*(getattr(namespace, "trusted_issuer", None) or []), spec]
        source = spec.partition("=")[2]
        named: str | Path = source if source.lower().startswith(("http://", "https://")) else Path(source)
        namespace.jwks_sources = [*(getattr(namespace, "jwks_sources", None) or []), named]


def run_serve(args: argparse.Namespace) -> int:
    if args.cds_hooks:
        import reasoner.cds

        return reasoner.cds.serve_cds(args)
    from reasoner.guideline import Guideline
    from reasoner.endpoint import check_settings, make_server
    from reasoner.serve import Service, Settings, guideline_graphs, read_reports

    if args.timeout <= 0:
        raise InputError("--timeout must be a positive number of seconds")
    if args.workers < 1:
        raise InputError("--workers must be at least 1")
    token = args.token or os.environ.get(TOKEN_VARIABLE) or None
    settings = Settings(host=args.host, port=args.port, timeout=args.timeout, token=token, cors=args.cors,
                        workers=args.workers)
    check_settings(settings)
    graphs = guideline_graphs(Guideline.load())
    if args.reports is not None:
        graphs += read_reports(args.reports)
    service = Service.start(graphs, settings)
    try:
        server = make_server(service)
    except OSError as exc:
        service.close()
        raise InputError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}") from None
    except InputError:
        service.close()
        raise
    sys.stderr.write(f"guideline-kg: SPARQL endpoint at {server.url}/sparql "
                     f"({len(graphs)} named graphs, {args.timeout:g} s per query); Ctrl-C stops\n")
    sys.stderr.flush()
    signal.signal(signal.SIGTERM, _stop)
    serve_until_stopped(server, service.close)
    return 0


def _stop(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM ends the server as Ctrl-C does: workers stopped, socket closed
