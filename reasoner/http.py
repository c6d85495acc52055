"""The HTTP layer both servers share (the SPARQL endpoint and the CDS Hooks service).

Starlette routes on Uvicorn's asyncio server: an open connection costs a coroutine, not a
thread, so a thousand half-sent requests hold no thread. What this module adds to them:

- :func:`is_loopback` and :func:`check_binding`: one loopback test (``localhost``, 127/8, ``::1``)
  for both servers; binding anywhere else needs the server's authentication configured.
- Deadlines: the request line and headers must arrive within ``header_timeout`` seconds of the
  connection (or of the previous answer on a kept-alive connection), else the connection is
  closed; a body must arrive within ``body_timeout`` (408, even when it is shorter than its
  ``Content-Length``); an idle kept-alive connection closes after ``keep_alive`` seconds.
- Limits: a body over ``max_body`` bytes is refused with 413 before it is read.
- A ``Host`` header that is not a host name or address (with an optional port) is a 400.
- A static bearer token (compared in constant time), CORS for one configured origin (off by default).
- :class:`HttpServer`: binds the socket itself (so a busy port is an error before anything starts),
  serves in the foreground until SIGINT or SIGTERM, or in a thread for tests; shutdown waits at most
  ``grace`` seconds for requests in flight.

A client that hangs up early, a malformed request or a refused one never logs a traceback:
Uvicorn answers malformed HTTP with 400 itself, and the app's errors are one-line answers.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import h11
import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from reasoner.errors import InputError


@dataclass
class HttpSettings:
    """How a server listens and what it lets in."""

    host: str = "127.0.0.1"
    port: int = 0
    token: str | None = None  # a static bearer token every request (but the open paths) must carry
    cors: str | None = None  # the one browser origin allowed to call; None: CORS off
    max_body: int = 1024 * 1024
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    keep_alive: float = 5.0
    grace: float = 5.0  # seconds shutdown waits for requests in flight


class Refused(Exception):
    """A request answered with an HTTP error status and a one-line message."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = HTTPStatus(status)
        self.message = message
        self.headers = headers or {}


ErrorResponder = Callable[[Refused], Response]


def text_error(refused: Refused) -> Response:
    """An error as one line of plain text (the SPARQL endpoint's way)."""
    return Response(refused.message + "\n", int(refused.status), refused.headers, "text/plain; charset=utf-8")


# --- who may listen where ---------------------------------------------------------------------


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and every loopback address, IPv4 or IPv6 (with or without brackets)."""
    host = host.strip()
    if host.lower() == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1 (whatever the Python version says)
    return address.is_loopback


def check_binding(host: str, secured: bool, what: str, how: str) -> None:
    """Refuse to listen beyond this machine unless the server's authentication is configured."""
    if not is_loopback(host) and not secured:
        raise InputError(f"binding {host} exposes {what} beyond this machine: configure {how} or bind 127.0.0.1")


# --- requests ---------------------------------------------------------------------------------

_HOST = re.compile(r"(?:[A-Za-z0-9_](?:[A-Za-z0-9._-]{0,252})|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?")


def valid_host(value: str) -> bool:
    """A Host header a URL can be built from: a name or an address, optionally a port."""
    return bool(_HOST.fullmatch(value))


async def read_body(request: Request, limit: int, timeout: float) -> bytes:
    """The request body, at most ``limit`` bytes, all of it within ``timeout`` seconds (Refused otherwise)."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise Refused(HTTPStatus.BAD_REQUEST, "Content-Length is not a number", {"Connection": "close"})
        if int(declared) > limit:
            raise Refused(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"a request body is limited to {limit} bytes",
                          {"Connection": "close"})
    chunks: list[bytes] = []
    size = 0

    async def collect() -> None:
        nonlocal size
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise Refused(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"a request body is limited to {limit} bytes",
                              {"Connection": "close"})
            chunks.append(chunk)

    try:
        await asyncio.wait_for(collect(), timeout)
    except TimeoutError:
        raise Refused(HTTPStatus.REQUEST_TIMEOUT, f"the request body did not arrive within {timeout:g} s "
                      "(is it shorter than its Content-Length?)", {"Connection": "close"}) from None
    return b"".join(chunks)


def bearer(request_headers: Any) -> str:
    """The token of an ``Authorization: Bearer`` header ('' when there is none)."""
    scheme, _, value = (request_headers.get("authorization") or "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""


class _Guard:
    """ASGI middleware: Host check, the static bearer token, refusals as one-line answers."""

    def __init__(self, app: ASGIApp, settings: HttpSettings, open_paths: Callable[[str, str], bool],
                 error: ErrorResponder) -> None:
        self.app, self.settings, self.open_paths, self.error = app, settings, open_paths, error

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        refused = None
        host = headers.get("host")
        if host is not None and not valid_host(host):
            refused = Refused(HTTPStatus.BAD_REQUEST, "the Host header is not a host name or address",
                              {"Connection": "close"})
        elif self.settings.token and not self.open_paths(scope["method"], scope["path"]):
            if not hmac.compare_digest(bearer(headers).encode(), self.settings.token.encode()):
                refused = Refused(HTTPStatus.UNAUTHORIZED, "a bearer token is required (Authorization: Bearer …)",
                                  {"WWW-Authenticate": 'Bearer realm="guideline-kg"'})
        if refused is not None:
            await self.error(refused)(scope, receive, send)
            return
        started = False

        async def tracked(message: Any) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except asyncio.CancelledError:
            # shutdown ran out of grace with this request in flight: answer it, log no traceback
            if not started:
                await self.error(Refused(HTTPStatus.SERVICE_UNAVAILABLE, "the server is shutting down; try again",
                                         {"Connection": "close", "Retry-After": "5"}))(scope, receive, send)


def build_app(routes: Iterable[Any], settings: HttpSettings, error: ErrorResponder = text_error,
              open_paths: Callable[[str, str], bool] = lambda method, path: False,
              cors_headers: Iterable[str] = ("Accept", "Authorization", "Content-Type")) -> Starlette:
    """A Starlette app: the routes behind the guard (Host, token) and CORS for the configured origin only."""

    async def refused(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Refused)
        return error(exc)

    async def not_found(request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 404)
        return error(Refused(status, "not found" if status == 404 else HTTPStatus(status).phrase.lower()))

    async def gone(request: Request, exc: Exception) -> Response:
        return Response(b"", 400, {"Connection": "close"})  # the client hung up: nobody reads this

    app = Starlette(routes=list(routes), exception_handlers={Refused: refused, ClientDisconnect: gone,
                                                             404: not_found, 405: not_found})
    app.add_middleware(_Guard, settings=settings, open_paths=open_paths, error=error)
    if settings.cors:  # outermost: a preflight carries no token
        app.add_middleware(CORSMiddleware, allow_origins=[settings.cors], allow_methods=["GET", "POST", "OPTIONS"],
                           allow_headers=list(cors_headers), max_age=600)
    return app


# --- the server -------------------------------------------------------------------------------


class _Protocol(H11Protocol):
    """Uvicorn's HTTP/1.1 protocol with a deadline for the request line and headers."""

    _deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def _arm(self) -> None:
        self._disarm()
        timeout = getattr(self.config, "header_timeout", 10.0)
        self._deadline = self.loop.call_later(timeout, self._expire)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self) -> None:
        self._deadline = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()  # headers never completed: nothing to answer

    def handle_events(self) -> None:
        super().handle_events()
        if self.conn.their_state is not h11.IDLE:
            self._disarm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm()  # the next request on a kept-alive connection has the same deadline

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)


class HttpServer:
    """An app served by Uvicorn on a socket bound here (port 0 picks a free one)."""

    def __init__(self, app: ASGIApp, settings: HttpSettings) -> None:
        host = settings.host.strip("[]")
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.sock.bind((host, settings.port))
            self.sock.listen(1024)
        except OSError:
            self.sock.close()
            raise
        self.sock.set_inheritable(True)
        logged = bool(os.environ.get("GUIDELINE_KG_LOG"))  # request lines and statuses only, never a body
        config = uvicorn.Config(app, http=_Protocol, lifespan="off", access_log=logged,
                                log_level="info" if logged else "warning",
                                server_header=False, timeout_keep_alive=int(max(1, settings.keep_alive)),
                                timeout_graceful_shutdown=int(max(1, settings.grace)), backlog=1024)
        config.header_timeout = settings.header_timeout  # type: ignore[attr-defined]  # read by _Protocol
        self.server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.sock.getsockname()[:2]
        return host, port

    @property
    def url(self) -> str:
        host, port = self.address
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def serve_forever(self) -> None:
        """Serve in the foreground until SIGINT or SIGTERM (Uvicorn then re-raises the signal)."""
        try:
            self.server.run(sockets=[self.sock])
        finally:
            self.sock.close()

    def start(self) -> HttpServer:
        """Serve in a daemon thread (tests); returns once the server accepts connections."""
        self._thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the HTTP server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=30)
        self.sock.close()

    def __enter__(self) -> HttpServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


async def in_thread(function: Callable[..., Any], *args: Any) -> Any:
    """Run blocking work (a query, reasoning) in the thread pool, off the event loop."""
    return await run_in_threadpool(function, *args)


__all__ = ["HttpSettings", "HttpServer", "Refused", "build_app", "check_binding", "is_loopback", "read_body",
           "text_error", "bearer", "in_thread", "valid_host"]
