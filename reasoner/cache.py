"""The disk cache: ``$XDG_CACHE_HOME/guideline-kg``, else ``~/.cache/guideline-kg``.

Everything kept here can be recomputed: a missing, unreadable, corrupt or stale entry is a miss,
an unwritable folder only costs the work on every start. Entries are pickles, written
atomically (a temporary file in the same folder, then ``os.replace``), so a reader never sees
half a file and concurrent writers of the same entry leave one whole copy. Entry names carry
a content hash of everything the value depends on; nothing is ever updated in place.
"""

from __future__ import annotations

import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

MISSING: Any = object()


def cache_dir() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "guideline-kg"


def read(path: Path) -> Any:
    """The unpickled value at ``path``, or ``MISSING`` when there is none that can be read."""
    try:
        with path.open("rb") as handle:
            return pickle.load(handle)
    except Exception:  # OSError (incl. isolation refusals), and whatever a truncated or foreign pickle raises
        return MISSING


def write(path: Path, value: Any) -> bool:
    """Pickle ``value`` to ``path`` atomically; False (and nothing left behind) when it cannot be."""
    try:
        data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    except (pickle.PicklingError, TypeError, AttributeError, RecursionError):
        return False  # a value pickle cannot rebuild is simply not cached
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
        return True
    except OSError:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
        return False
