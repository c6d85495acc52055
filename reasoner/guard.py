"""Process-wide isolation: input can make the process neither open a connection nor read a file.

Every entry point runs its work inside :func:`isolated` (or calls :func:`install`).
While a policy is active, a Python audit hook (PEP 578) refuses:

- network: ``urllib.Request``, ``http.client.connect``, ``socket.connect``,
  ``socket.sendto`` and host-name look-ups (``socket.getaddrinfo``,
  ``socket.gethostbyname``) for any host but those the user configured
  (``--endpoint``, ``--graph-store``); loopback is not trusted by default;
- files: ``open`` of anything but the paths the user named (files, or folders
  and everything under them), the package's own code and data, the installed
  Python, files and folders this process created itself (temporary and output
  files), ``/proc/self`` and a few device files.

A refusal raises :class:`IsolationError` (a ``PermissionError``) from the
audited call, so it ends as a one-line error like any other refused input.
The rdflib setting ``SPARQL_LOAD_GRAPHS`` is switched off as well, so
``FROM``, ``FROM NAMED`` and ``LOAD`` never fetch. The checks in
``reasoner.patient`` (inline JSON-LD contexts only, no RDF/XML) and
``reasoner.queries`` (no SERVICE, FROM, FROM NAMED) refuse such input first,
with a clearer message; this hook is the net under them.

Python cannot remove an audit hook, so the hook stays for the life of the
process and does nothing while no policy is active. The policy is process-wide:
it applies to every thread, and to children forked while it is active.
"""

from __future__ import annotations

import argparse
import importlib.machinery
import ipaddress
import os
import socket
import sys
import threading
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, NoReturn
from urllib.parse import urlsplit

_PACKAGE = Path(__file__).resolve().parent
# Folders of the data root the package reads (see reasoner.resources).
DATA_FOLDERS = ("ontology", "shapes", "queries", "examples")
# Read-only files of the system that the standard library may read on its own.
SYSTEM_READ = ("/etc/mime.types", "/etc/localtime", "/usr/share/zoneinfo", "/etc/ssl/certs", "/usr/lib/ssl")
DEVICES = ("/dev/null", "/dev/urandom", "/dev/random", "/dev/tty", "/dev/shm")
CODE_SUFFIXES = tuple({*importlib.machinery.all_suffixes(), ".pyc", ".pth", ".zip", ".egg", ".typed"})
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC
_EXCLUSIVE = os.O_CREAT | os.O_EXCL
_LOOKUP_FREE = {"", "localhost", "localhost.localdomain"}


class IsolationError(PermissionError):
    """An operation the isolation policy refuses (exit 2 on the command line)."""

    def __init__(self, message: str) -> None:
        super().__init__(13, message)
        self.message = message

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class Host:
    """An allowed host, with its port or any port (``port is None``)."""

    name: str
    port: int | None = None

    @classmethod
    def parse(cls, text: str) -> "Host":
        """``host``, ``host:port``, ``[v6]:port`` or a URL (its scheme's default port when none is given)."""
        if "://" in text:
            parts = urlsplit(text)
            if not parts.hostname:
                raise ValueError(f"{text!r} names no host")
            default = {"http": 80, "https": 443}.get(parts.scheme.lower())
            return cls(_norm_host(parts.hostname), parts.port or default)
        parts = urlsplit("//" + text)
        if not parts.hostname:
            raise ValueError(f"{text!r} names no host")
        return cls(_norm_host(parts.hostname), parts.port)

    def allows(self, name: str, port: int | None) -> bool:
        return self.name == name and (self.port is None or port is None or self.port == port)


@dataclass
class Policy:
    """What the process may reach while the policy is active."""

    hosts: tuple[Host, ...] = ()
    roots: tuple[str, ...] = ()  # user-named paths: the path itself and everything under it
    read_roots: tuple[str, ...] = ()  # package, data, Python, system files: read only
    created: set[str] = field(default_factory=set)  # files and folders this process created
    addresses: set[tuple[str, int | None]] = field(default_factory=set)  # resolved allowed hosts
    allowed_cache: dict[tuple[str, bool], bool] = field(default_factory=dict)
    refusals: deque[str] = field(default_factory=lambda: deque(maxlen=200))

    def allowances(self) -> tuple[list[str], list[str]]:
        """The hosts and paths the policy was made from: ``install(*policy.allowances())`` in a spawned worker."""
        hosts = [(f"[{h.name}]" if ":" in h.name else h.name) + (f":{h.port}" if h.port else "") for h in self.hosts]
        return hosts, list(self.roots)

    # ---- files ----

    def check_open(self, target: Any, mode: Any, flags: Any) -> None:
        if isinstance(target, int):
            return  # an already open file descriptor
        write = isinstance(flags, int) and bool(flags & _WRITE_FLAGS) or isinstance(mode, str) and any(
            c in mode for c in "wax+")
        raw = os.fsdecode(os.fspath(target))
        key = (raw, write)
        if key in self.allowed_cache:
            return
        try:
            path = os.path.realpath(raw)
        except (ValueError, OSError):
            self.refuse(f"opening {raw[:120]!r} is not allowed: not a plain path")
        if isinstance(flags, int) and flags & _EXCLUSIVE == _EXCLUSIVE:
            if not os.path.lexists(path):  # an exclusive open of an existing file fails: nothing created
                self.created.add(path)  # a new file cannot leak what was there before
        elif not self._may_open(path, write) and not os.path.isdir(path):
            # (a folder is "opened" by NamedTemporaryFile before its opener creates the file, audited itself)
            verb = "writing" if write else "reading"
            self.refuse(f"{verb} {raw[:200]} is not allowed: only files named on the command line "
                        "and the package's own data may be opened")
        if len(self.allowed_cache) < 8192 and os.path.isabs(raw):
            self.allowed_cache[key] = True

    def _may_open(self, path: str, write: bool) -> bool:
        if path in self.created or _under(path, self.roots):
            return True
        if path == "/dev/null" or _under(path, tuple(self.created)):
            return True
        if write:
            return False
        if _under(path, self.read_roots) or _under(path, (f"/proc/{os.getpid()}", "/proc/self")):
            return True
        return path.endswith(CODE_SUFFIXES) and _under(path, _code_roots())

    # ---- network ----

    def check_url(self, url: Any) -> None:
        text = url if isinstance(url, str) else str(url)
        parts = urlsplit(text)
        scheme = parts.scheme.lower()
        if scheme == "data":
            return
        if scheme == "file":
            from urllib.request import url2pathname

            self.check_open(url2pathname(parts.path), "r", 0)
            return
        if scheme in ("http", "https") and parts.hostname:
            try:
                port = parts.port or (443 if scheme == "https" else 80)
            except ValueError:
                self.refuse(f"request to {text[:120]} is not allowed: the port is not a number")
            self.check_host(parts.hostname, port, text)
            return
        self.refuse(f"request to {text[:120]} is not allowed: only the configured store may be contacted")

    def check_host(self, host: Any, port: Any, what: str | None = None) -> None:
        name = _norm_host(host)
        number = port if isinstance(port, int) else None
        if not any(h.allows(name, number) for h in self.hosts):
            self.refuse(f"connecting to {what or name} is not allowed: only the configured store may be contacted")

    def check_lookup(self, host: Any, port: Any) -> None:
        if host is None:
            return
        name = _norm_host(host)
        if name in _LOOKUP_FREE or _is_ip(name):
            return
        number = port if isinstance(port, int) else None
        if not any(h.allows(name, number) for h in self.hosts):
            self.refuse(f"looking up {name[:120]} is not allowed: only the configured store may be contacted")
        self._resolve(name, number)

    def _resolve(self, name: str, port: int | None) -> None:
        """Record the addresses of an allowed host name so that connecting to them passes."""
        _local.busy = True
        try:
            for info in socket.getaddrinfo(name, port, proto=socket.IPPROTO_TCP):
                self.addresses.add((_norm_host(info[4][0]), port))
        except OSError:
            pass  # the caller's own look-up reports the failure
        finally:
            _local.busy = False

    def check_address(self, address: Any) -> None:
        if not isinstance(address, tuple) or len(address) < 2:
            return  # AF_UNIX and other local sockets: process plumbing, not network
        ip, port = _norm_host(address[0]), address[1]
        if any(h.allows(ip, port) for h in self.hosts):
            return
        if (ip, port) in self.addresses or (ip, None) in self.addresses:
            return
        self.refuse(f"connecting to {ip}:{port} is not allowed: only the configured store may be contacted")

    def refuse(self, message: str) -> NoReturn:
        self.refusals.append(message)
        raise IsolationError(message)


def _under(path: str, roots: tuple[str, ...]) -> bool:
    for root in roots:
        if path == root or path.startswith(root if root.endswith(os.sep) else root + os.sep):
            return True
    return False


_code_cache: tuple[tuple[str, ...], tuple[str, ...]] = ((), ())


def _code_roots() -> tuple[str, ...]:
    """The import path, normalised (it changes, e.g. under pytest)."""
    global _code_cache
    current = tuple(sys.path)
    if current != _code_cache[0]:
        _code_cache = (current, tuple(os.path.realpath(p or os.curdir) for p in current))
    return _code_cache[1]


def _norm_host(host: Any) -> str:
    text = os.fsdecode(host) if isinstance(host, (bytes, bytearray)) else str(host)
    text = text.strip("[]").lower().rstrip(".")
    try:
        return ipaddress.ip_address(text.split("%")[0]).compressed
    except ValueError:
        return text


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        return False


# ---- the hook ----

_active: Policy | None = None
_installed = False
_install_lock = threading.Lock()
_local = threading.local()
_EVENTS = frozenset({
    "open", "urllib.Request", "http.client.connect", "socket.connect", "socket.sendto",
    "socket.getaddrinfo", "socket.gethostbyname", "tempfile.mkdtemp",
})


def _hook(event: str, args: tuple[Any, ...]) -> None:
    if event not in _EVENTS:
        return
    policy = _active
    if policy is None or getattr(_local, "busy", False):
        return
    if event == "open":
        policy.check_open(*args[:3])
    elif event == "urllib.Request":
        policy.check_url(args[0])
    elif event == "http.client.connect":
        policy.check_host(args[1], args[2])
    elif event in ("socket.connect", "socket.sendto"):
        policy.check_address(args[1])
    elif event == "socket.getaddrinfo":
        policy.check_lookup(args[0], args[1])
    elif event == "socket.gethostbyname":
        policy.check_lookup(args[0], None)
    elif event == "tempfile.mkdtemp":
        policy.created.add(os.path.realpath(os.fsdecode(args[0])))


def _ensure_hook() -> None:
    global _installed
    with _install_lock:
        if not _installed:
            sys.addaudithook(_hook)
            _installed = True


def make_policy(allow_hosts: Iterable[str] = (), allow_paths: Iterable[str | os.PathLike[str]] = ()) -> Policy:
    """A policy allowing the given hosts and paths, plus what the package and Python need to run."""
    from reasoner import resources

    hosts = tuple(Host.parse(h) for h in allow_hosts)
    roots = tuple(sorted({os.path.realpath(os.fspath(p)) for p in allow_paths}))
    data = resources.data_root()
    reads = {str(_PACKAGE), *(str(data / name) for name in DATA_FOLDERS), *SYSTEM_READ, *DEVICES,
             sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix, _cache_dir()}
    read_roots = tuple(sorted({os.path.realpath(p) for p in reads}))
    return Policy(hosts=hosts, roots=roots, read_roots=read_roots)


def _cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "guideline-kg")


def install(allow_hosts: Iterable[str] = (), allow_paths: Iterable[str | os.PathLike[str]] = ()) -> Policy:
    """Isolate the process from now on: only these hosts, only these paths (and the package's own).

    Raises ValueError for a host that cannot be parsed. Returns the active policy.
    """
    global _active
    policy = make_policy(allow_hosts, allow_paths)
    _ensure_hook()
    _set_rdflib_loading(False)
    _active = policy
    return policy


def active() -> Policy | None:
    """The policy in force, or None."""
    return _active


@contextmanager
def isolated(allow_hosts: Iterable[str] = (), allow_paths: Iterable[str | os.PathLike[str]] = ()) -> Iterator[Policy]:
    """Isolate the process for the duration of the block, then restore what was before."""
    global _active
    import rdflib.plugins.sparql as sparql

    previous, previous_loading = _active, sparql.SPARQL_LOAD_GRAPHS
    policy = install(allow_hosts, allow_paths)
    try:
        yield policy
    finally:
        _active = previous
        _set_rdflib_loading(previous_loading)


def _set_rdflib_loading(enabled: bool) -> None:
    """rdflib's own switch: with it off, FROM, FROM NAMED and LOAD read only graphs already in the dataset."""
    import rdflib.plugins.sparql as sparql

    sparql.SPARQL_LOAD_GRAPHS = enabled


def policy_from_args(args: argparse.Namespace) -> tuple[list[str], list[Path]]:
    """The hosts and paths a parsed command line names: URLs are hosts, paths are paths.

    Every option value that is a ``Path``, or a string naming an existing file or
    folder, is a path the user named; every ``http(s)://`` string is a host.
    """
    hosts: list[str] = []
    paths: list[Path] = []
    values: list[Any] = []
    for value in vars(args).values():
        values.extend(value if isinstance(value, (list, tuple)) else [value])
    for value in values:
        if isinstance(value, Path):
            paths.append(value)
        elif isinstance(value, str) and value:
            if value.lower().startswith(("http://", "https://")):
                try:
                    Host.parse(value)
                except ValueError:
                    continue  # no host to allow: the command reports the URL itself
                hosts.append(value)
            elif "\0" not in value and os.path.exists(value):
                paths.append(Path(value))
    return hosts, paths


__all__ = ["IsolationError", "Policy", "install", "isolated", "active", "make_policy", "policy_from_args"]
