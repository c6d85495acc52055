"""Running an HTTP server in the foreground until it is interrupted."""

from __future__ import annotations

from collections.abc import Callable
from socketserver import BaseServer


def serve_until_stopped(server: BaseServer, *cleanups: Callable[[], object]) -> None:
    """Serve until Ctrl-C (a command may map SIGTERM to it); then close the socket and run ``cleanups``."""
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        for cleanup in cleanups:
            cleanup()
