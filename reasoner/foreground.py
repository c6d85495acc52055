"""Running an HTTP server in the foreground until it is interrupted."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol


class Serving(Protocol):
    def serve_forever(self) -> None: ...


def serve_until_stopped(server: Serving, *cleanups: Callable[[], object]) -> None:
    """Serve until Ctrl-C or SIGTERM (the server stops taking requests, lets those in flight finish
    within its grace period and closes its socket); then run ``cleanups``."""
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        for cleanup in cleanups:
            cleanup()
