"""The HTTP layer both servers share, attacked with raw sockets on 127.0.0.1: half-sent requests, short
bodies, a malformed Host and clients that hang up. Each scenario runs against the SPARQL endpoint and the
CDS Hooks service; every loop is bounded."""

from __future__ import annotations

import logging
import resource
import socket
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator

import pytest

from conftest import engine, guideline
from reasoner import cds, endpoint
from reasoner.http import HttpSettings, is_loopback
from reasoner.serve import Service, Settings
from serving import dataset_graphs

HEADER_TIMEOUT, BODY_TIMEOUT = 2.0, 2.0
OK_PATH = {"sparql": "/sparql?query=ASK%7B%7D", "cds": "/cds-services"}
POST_PATH = {"sparql": "/sparql", "cds": "/cds-services/patient-view"}


def settings() -> HttpSettings:
    return HttpSettings(host="127.0.0.1", port=0, header_timeout=HEADER_TIMEOUT, body_timeout=BODY_TIMEOUT)


@pytest.fixture(scope="module", params=["sparql", "cds"])
def server(request) -> Iterator[tuple[str, int]]:
    if request.param == "sparql":
        service = Service.start(list(dataset_graphs()), Settings(host="127.0.0.1", port=0, timeout=10, workers=1))
        try:
            with endpoint.make_server(service, settings()) as running:
                yield request.param, running.address[1]
        finally:
            service.close()
    else:
        with cds.make_server(cds.CdsService(guideline(), engine()), settings=settings()) as running:
            yield request.param, running.address[1]


def ordinary(kind: str, port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{OK_PATH[kind]}", timeout=30) as response:
        response.read()
        return response.status


def exchange(port: int, data: bytes, wait: float = 10.0) -> bytes:
    """Send raw bytes, then read until the server closes the connection (or ``wait`` seconds pass)."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as sock:
        sock.sendall(data)
        chunks = []
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)


def closed_by_server(sock: socket.socket) -> bool:
    try:
        return sock.recv(1) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False


@pytest.fixture()
def logged(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger="uvicorn")
    caplog.set_level(logging.DEBUG, logger="uvicorn.error")
    return caplog


def no_traceback(caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> None:
    err = capfd.readouterr().err
    assert "Traceback" not in err, err[-2000:]
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR], caplog.text[-2000:]


def test_a_thousand_half_sent_requests_hold_no_thread_and_are_closed_after_the_header_deadline(server) -> None:
    kind, port = server
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 2600:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(4096, hard), hard))
    threads_before = threading.active_count()
    sockets = []
    try:
        for _ in range(1000):
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")  # never finished
            sockets.append(sock)
        assert ordinary(kind, port) == 200  # a client with a whole request is answered meanwhile
        assert threading.active_count() - threads_before < 50
        time.sleep(HEADER_TIMEOUT + 1.0)
        for sock in sockets:
            sock.settimeout(0.01)  # closed ones answer at once; the whole check stays bounded
        closed = sum(closed_by_server(sock) for sock in sockets)
    finally:
        for sock in sockets:
            sock.close()
    assert closed == 1000


def test_a_body_shorter_than_its_content_length_gets_408_and_the_connection_closes(server) -> None:
    kind, port = server
    started = time.monotonic()
    answer = exchange(port, f"POST {POST_PATH[kind]} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                            "Content-Length: 100\r\n\r\n{\"a\": 1}".encode(), wait=BODY_TIMEOUT + 60)
    took = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
    assert took > BODY_TIMEOUT - 0.5  # a lower bound: the server gave the body its whole deadline first


def test_a_body_over_the_limit_is_refused_before_it_is_read(server) -> None:
    kind, port = server
    answer = exchange(port, f"POST {POST_PATH[kind]} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                            "Content-Length: 99999999999\r\n\r\n".encode())
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]


@pytest.mark.parametrize("host", [b"[bad", b"a b", b"x:y:z", b"\xff\xfe", b"[::1", b"exa mple.org:80"])
def test_a_malformed_host_header_is_a_400_with_no_traceback(server, host: bytes, logged, capfd) -> None:
    kind, port = server
    answer = exchange(port, b"GET " + OK_PATH[kind].encode() + b" HTTP/1.1\r\nHost: " + host + b"\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:200]
    assert ordinary(kind, port) == 200
    no_traceback(logged, capfd)


def test_a_client_hanging_up_early_logs_no_traceback(server, logged, capfd) -> None:
    kind, port = server
    # hangs up in the middle of the headers, of the body, and while the answer is being made
    for data in (b"GET / HTTP/1.1\r\nHo", f"POST {POST_PATH[kind]} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                 "Content-Length: 50\r\n\r\n{".encode(), f"GET {OK_PATH[kind]} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()):
        for _ in range(5):
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            sock.sendall(data)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # RST
            sock.close()
    time.sleep(0.5)
    assert ordinary(kind, port) == 200
    no_traceback(logged, capfd)


def test_garbage_instead_of_http_is_a_400(server, logged, capfd) -> None:
    kind, port = server
    assert exchange(port, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 not http\r\n\r\n").startswith(b"HTTP/1.1 400")
    no_traceback(logged, capfd)


@pytest.mark.parametrize("host, loopback", [("127.0.0.1", True), ("127.8.9.10", True), ("localhost", True),
                                            ("::1", True), ("[::1]", True), ("0:0:0:0:0:0:0:1", True),
                                            ("::ffff:127.0.0.1", True), ("::ffff:10.0.0.1", False), ("0.0.0.0", False), ("::", False),
                                            ("10.0.0.1", False), ("example.org", False), ("", False)])
def test_one_loopback_check_for_both_servers(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_the_endpoint_listens_on_ipv6_loopback_without_a_token() -> None:
    if not socket.has_ipv6:
        pytest.fail("this machine has no IPv6")
    service = Service.start(list(dataset_graphs()), Settings(host="::1", port=0, workers=1))
    try:
        with endpoint.make_server(service) as running:
            assert running.url.startswith("http://[::1]:")
            with urllib.request.urlopen(running.url + "/sparql?query=ASK%7B%7D", timeout=30) as response:
                assert response.status == 200
    finally:
        service.close()


@pytest.mark.parametrize("kind", ["sparql", "cds"])
def test_sigterm_stops_the_server_cleanly_even_with_a_request_in_flight(kind: str) -> None:
    import os
    import re
    import signal
    import subprocess
    import sys

    from conftest import ROOT

    args = ["serve", "--port", "0"] + (["--workers", "1", "--timeout", "60"] if kind == "sparql" else ["--cds-hooks"])
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    server = subprocess.Popen([sys.executable, "-m", "reasoner", *args], stderr=subprocess.PIPE, text=True, env=env)
    try:
        banner = server.stderr.readline()
        match = re.search(r"http://127\.0\.0\.1:(\d+)/", banner)
        assert match, banner
        port = int(match.group(1))
        assert ordinary(kind, port) == 200
        if kind == "sparql":  # a slow query holds a worker while the signal comes
            slow = socket.create_connection(("127.0.0.1", port), timeout=30)
            query = "SELECT (COUNT(*) AS ?n) WHERE { ?a ?b ?c . ?d ?e ?f . ?g ?h ?i }"
            slow.sendall(f"GET /sparql?query={urllib.parse.quote(query)} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
            time.sleep(2.0)  # the query has a 60 s limit: it is still running when the signal comes
        server.send_signal(signal.SIGTERM)
        code = server.wait(timeout=120)
        rest = server.stderr.read()
        if kind == "sparql":  # the request in flight was answered, not dropped, and cut by the shutdown (not its limit)
            answer = slow.recv(65536)
            slow.close()
            assert answer.startswith(b"HTTP/1.1 503 ") and b"shutting down" in answer, answer[:400]
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    assert code == 0 and "Traceback" not in rest, rest[-2000:]
    assert rest.count("\n") <= 1, rest  # at most the one line saying a request was cut short
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()


@pytest.mark.parametrize("host", [b"localhost:7878", b"127.0.0.1", b"[::1]:7878", b"my_service", b"cds.example.org"])
def test_a_well_formed_host_header_is_served(server, host: bytes) -> None:
    kind, port = server
    answer = exchange(port, b"GET " + OK_PATH[kind].encode() + b" HTTP/1.1\r\nHost: " + host + b"\r\nConnection: close\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200 "), answer[:200]
