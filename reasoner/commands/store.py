"""``guideline-kg push``: load the guideline and patient reports into a SPARQL 1.1 store."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("push", help="load the guideline and patient reports into a SPARQL 1.1 store",
                       description="Writes each graph whole with a Graph Store Protocol PUT (pushing again replaces, "
                                   "never duplicates): the asserted guideline, its OWL-RL inferences and, with "
                                   "--reports, one graph <patient>/report per report file.")
    p.add_argument("--endpoint", required=True, help="the store's SPARQL query endpoint, e.g. "
                   "http://127.0.0.1:7878/query (Oxigraph) or http://127.0.0.1:8890/sparql (Virtuoso)")
    p.add_argument("--graph-store", help="its Graph Store Protocol URL (default: guessed from --endpoint for "
                   "Oxigraph, Fuseki and Virtuoso)")
    p.add_argument("--auth", help="user:password, sent with HTTP Digest or Basic as the store asks")
    p.add_argument("--reports", type=Path, help="a folder of report graphs written by 'recommend --format turtle|jsonld'")
    p.set_defaults(func=run_push)


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
