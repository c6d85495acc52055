"""The compiled plans' generated code, kept on disk (marshalled, per interpreter) across processes."""

from __future__ import annotations

import atexit
import importlib.util
import marshal
from pathlib import Path
from types import CodeType

from reasoner import cache
from reasoner.cache import cache_dir
from reasoner.plan import COMPILED

MAX_GENERATED = 20_000  # code objects kept on disk (a few hundred for this guideline)
known: list[int] = []  # how many were on disk when this process read them; empty: not read yet


def _path() -> Path:
    return cache_dir() / f"generated-code-{importlib.util.MAGIC_NUMBER.hex()}.pickle"


def load() -> None:
    """The plans' generated code from the disk cache (marshalled, per interpreter), once per process.

    What this process compiles beyond it is written back when the process exits normally
    (batch workers leave with ``os._exit`` and write nothing: a single-patient run fills it).
    """
    if known:
        return
    entry = cache.read(_path())
    if isinstance(entry, bytes):
        try:
            table = marshal.loads(entry)
        except (EOFError, ValueError, TypeError):
            table = None
        if isinstance(table, dict):
            for text, code in table.items():
                if isinstance(text, str) and isinstance(code, CodeType):
                    COMPILED.setdefault(text, code)
    known.append(len(COMPILED))
    atexit.register(_save)


def _save() -> None:
    if known and known[0] < len(COMPILED) <= MAX_GENERATED:
        cache.write(_path(), marshal.dumps(dict(COMPILED)))
