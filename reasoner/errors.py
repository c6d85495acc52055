"""Errors that end a run with a one-line message and an exit code."""

from __future__ import annotations


class InputError(Exception):
    """The input is refused (exit 2): the message names the resource and field that are wrong."""


class GuidelineError(Exception):
    """The guideline encoding (or a query or shape file) cannot be loaded (exit 2)."""


class OutputError(Exception):
    """An output or environment error (exit 3): an output cannot be written (full disk, unwritable or
    unsafe folder) or two inputs would share one report. The message names the path or the inputs."""


class Terminated(BaseException):
    """The process was sent SIGTERM (exit 143). A BaseException, so no ``except Exception`` takes it for a
    patient's own failure."""
