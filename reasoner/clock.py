"""The reasoning time: the instant a patient is reasoned at (now, or the one ``--now`` gives).

Every run has one; the report carries it (``x-reasoning-time``), and the same input with the same
reasoning time gives the same report, byte for byte (contract: "Reasoning time").
"""

from __future__ import annotations

import re
from datetime import datetime, timezone

from reasoner.errors import InputError

INSTANT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})")


def current_instant() -> datetime:
    """Now, in UTC, to the second."""
    return datetime.now(timezone.utc).replace(microsecond=0)


def parse_instant(text: str, what: str = "--now") -> datetime:
    """An ISO 8601 instant with its time zone (``2026-01-31T09:30:00Z``), as an aware UTC datetime."""
    if not isinstance(text, str) or not INSTANT.fullmatch(text):
        raise InputError(f"{what}: {str(text)[:40]!r} is not an instant such as 2026-01-31T09:30:00Z "
                         "(date, time to the second, and a time zone)")
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(timezone.utc)
    except (ValueError, OverflowError):
        raise InputError(f"{what}: {text[:40]!r} is not a valid instant") from None
    return moment


def format_instant(moment: datetime) -> str:
    """``YYYY-MM-DDThh:mm:ss[.ffffff]Z`` in UTC: the report's form of an instant."""
    moment = moment.astimezone(timezone.utc)
    text = (f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}"
            f"T{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}")
    if moment.microsecond:
        text += f".{moment.microsecond:06d}".rstrip("0")
    return text + "Z"


def instant_argument(text: str) -> datetime:
    """``--now`` as an argparse type: a bad instant is argparse's one-line usage error."""
    import argparse

    try:
        return parse_instant(text)
    except InputError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
