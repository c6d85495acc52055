"""python -m reasoner: the guideline-kg command line."""

from reasoner.cli import main

raise SystemExit(main())
