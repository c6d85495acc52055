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

    o = sub.add_parser("docs", help="HTML documentation of the vocabulary and of the guideline's concepts, codes, "
                                    "recommendations, statements and references")
    o.add_argument("--out", type=Path, default=Path("docs/vocabulary"),
                   help="folder to write index.html (the vocabulary) and guideline.html into "
                        "(default: docs/vocabulary)")
    o.add_argument("--ontology", type=Path,
                   help="an ontology folder to document instead of the shipped one, or a vocabulary file alone "
                        "(then only index.html is written)")
    o.set_defaults(func=run_docs)


def run_diagram(args: argparse.Namespace) -> int:
    from reasoner.diagram import build_pathway, render

    guideline = Guideline.load(ontology=args.ontology)
    emit(render(build_pathway(guideline), args.format), args.out)
    return 0


def run_docs(args: argparse.Namespace) -> int:
    from reasoner import resources
    from reasoner.docs import render_guideline, render_vocabulary

    source = args.ontology or resources.ontology_dir()
    pages = {"index.html": render_vocabulary(source / "vocabulary.ttl" if source.is_dir() else source,
                                             guideline_page=source.is_dir())}
    if source.is_dir():
        pages["guideline.html"] = render_guideline(Guideline.load(ontology=source))
    for name, page in pages.items():  # every page rendered before the first is written
        write_atomic(args.out / name, page)
        sys.stderr.write(f"guideline-kg: wrote {args.out / name}\n")
    return 0
