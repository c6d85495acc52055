"""Errors that end a run with a one-line message and an exit code."""

from __future__ import annotations


class InputError(Exception):
    """The input is refused (exit 2): the message names the resource and field that are wrong."""


class GuidelineError(Exception):
    """The guideline encoding (or a query or shape file) cannot be loaded (exit 2)."""
