"""``guideline-kg push`` (a SPARQL 1.1 store over HTTP) and ``guideline-kg load`` (an on-disk Oxigraph store)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("push", help="load the guideline and patient reports into a SPARQL 1.1 store",
                       description="Writes each graph whole with a Graph Store Protocol PUT (pushing again replaces, "
                                   "never duplicates): the asserted guideline, its OWL-RL inferences and, with "
                                   "--reports, one graph <patient>/report per report. The store must read its "
                                   "default graph as the union of its named graphs (Virtuoso does; Oxigraph with "
                                   "'oxigraph serve --union-default-graph'; Fuseki with unionDefaultGraph).")
    p.add_argument("--endpoint", required=True, help="the store's SPARQL query endpoint, e.g. "
                   "http://127.0.0.1:7878/query (Oxigraph) or http://127.0.0.1:8890/sparql (Virtuoso)")
    p.add_argument("--graph-store", help="its Graph Store Protocol URL (default: guessed from --endpoint for "
                   "Oxigraph, Fuseki and Virtuoso)")
    p.add_argument("--auth", help="user:password, sent with HTTP Digest or Basic as the store asks")
    p.add_argument("--reports", type=Path, help="a folder of reports: JSON (with the .nq graph a batch writes "
                   "beside each), N-Quads, Turtle or JSON-LD")
    p.set_defaults(func=run_push)

    load = sub.add_parser("load", help="load the guideline and patient reports into an on-disk Oxigraph store",
                          description="Replaces the guideline graphs (asserted, and what OWL-RL adds without "
                                      "tautologies) and each patient's report graph <patient>/report: loading "
                                      "again is incremental and idempotent per patient. 'serve --store DIR' and "
                                      "'query NAME --store DIR' read the store; their default graph is the union "
                                      "of the named graphs.")
    load.add_argument("reports", type=Path, nargs="+", metavar="REPORTS",
                      help="folders (or files) of reports: JSON with their .nq graphs, N-Quads, Turtle, JSON-LD")
    load.add_argument("--store", type=Path, required=True, metavar="DIR", help="the store's folder (made if new)")
    load.set_defaults(func=run_load)


def run_push(args: argparse.Namespace) -> int:
    from reasoner.guideline import Guideline
    from reasoner.serve import guideline_graphs, read_reports
    from reasoner.store import Store, push

    store = Store.from_options(args.endpoint, args.graph_store, args.auth)
    graphs = guideline_graphs(Guideline.load())
    if args.reports is not None:
        graphs += read_reports(args.reports)
    for pushed in push(store, graphs):
        sys.stdout.write(f"{pushed.name}\t{pushed.triples} triples\n")
    sys.stderr.write(f"guideline-kg: {len(graphs)} graphs written to {store.graph_store}\n")
    return 0


def run_load(args: argparse.Namespace) -> int:
    from reasoner.guideline import Guideline
    from reasoner.population import load, store_size

    loaded = load(args.store, args.reports, Guideline.load())
    seconds = max(loaded.seconds, 1e-9)
    replaced = f" ({loaded.replaced} replaced)" if loaded.replaced else ""
    sys.stderr.write(f"guideline-kg: {loaded.reports} reports{replaced}, {loaded.quads:,} quads (and their copies in "
                     f"the default graph) loaded into {args.store} in {loaded.seconds:.1f} s ("
                     f"{loaded.reports / seconds:,.0f} reports/s, {loaded.quads / seconds:,.0f} quads/s); "
                     f"store {store_size(args.store) / 1e6:,.1f} MB\n")
    return 0
