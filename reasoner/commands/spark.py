"""``guideline-kg spark``: the batch over many patients as an Apache Spark job (pyspark, the ``spark`` extra)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    from reasoner.spark import add_arguments

    p = sub.add_parser("spark", help="reason over many patients as an Apache Spark job; Parquet reports out")
    add_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from reasoner.spark import run_spark

    return run_spark(args)
