#!/usr/bin/env python3
"""Compute and store the reference engine's outcomes the tests compare the fast engine with.

    python3 tools/reference_reports.py [--jobs 2]

Run it when tests/test_fast_engine.py says the stored outcomes are for another reference (the
reference's code, the encoding or a library version changed), then commit tests/reference-reports/.
Outcomes already stored under the current key are kept; other keys' folders are removed. Every
example and one patient of every cohort branch: about 3 minutes with 2 jobs on the 2-core machine.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.reference import STORED, regenerate  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=2, help="worker processes (default 2)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    folder, computed = regenerate(args.jobs, log=sys.stderr)
    print(f"{folder.relative_to(STORED.parents[1])}: {computed} outcomes computed in "
          f"{time.perf_counter() - start:.0f} s; commit tests/reference-reports/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
