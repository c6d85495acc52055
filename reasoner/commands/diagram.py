"""``guideline-kg diagram`` (the decision pathway as a picture) and ``guideline-kg docs`` (the vocabulary as HTML)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from reasoner.guideline import Guideline
from reasoner.output import emit, write_atomic


def register(sub: argparse._SubParsersAction) -> None:
    from reasoner.diagram import FORMATS

    d = sub.add_parser("diagram", help="draw the guideline's decision pathway from the knowledge graph")
    d.add_argument("--format", choices=FORMATS, default="svg")
    d.add_argument("--ontology", type=Path, help="an ontology folder or file to draw instead of the shipped one")
    d.add_argument("--out", type=Path, help="write here instead of stdout")
    d.set_defaults(func=run_diagram)

    o = sub.add_parser("docs", help="HTML documentation of the vocabulary (ontology/vocabulary.ttl)")
    o.add_argument("--out", type=Path, default=Path("docs/vocabulary"),
                   help="folder to write index.html into (default: docs/vocabulary)")
    o.add_argument("--ontology", type=Path, help="the vocabulary file (default: the shipped ontology/vocabulary.ttl)")
    o.set_defaults(func=run_docs)


def run_diagram(args: argparse.Namespace) -> int:
    from reasoner.diagram import build_pathway, render

    guideline = Guideline.load(ontology=args.ontology)
    emit(render(build_pathway(guideline), args.format), args.out)
    return 0


def run_docs(args: argparse.Namespace) -> int:
    from reasoner import resources
    from reasoner.docs import render_vocabulary

    source = args.ontology or resources.ontology_dir() / "vocabulary.ttl"
    out = args.out / "index.html"
    write_atomic(out, render_vocabulary(source))
    sys.stderr.write(f"guideline-kg: wrote {out}\n")
    return 0
