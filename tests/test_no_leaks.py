"""No connection and no file read caused by input: a loopback listener hears nothing, a secret file stays unread.

Two layers are tested. Through the command line, input that names a remote JSON-LD context,
an owl:imports, a SERVICE or a FROM graph is refused (or, for an encoding, reported) while
the listener on 127.0.0.1 receives zero connections and the secret file is never opened.
Straight at ``reasoner.guard``, the audit hook that every entry point installs stops the
same requests even when a library is asked to make them directly.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rdflib import Graph

from conftest import ROOT
from reasoner import engines, guard
from reasoner.cli import main
from reasoner.errors import InputError

BASELINE_JSONLD = ROOT / "tests" / "hostile" / "cases" / "jsonld-ok-baseline.jsonld"
SHIPPED_GUIDELINE = ROOT / "ontology" / "guideline.ttl"
ENGINE = "fast" if "fast" in engines.available() else "reference"


class Listener:
    """A TCP listener on 127.0.0.1 that counts the connections it accepts."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port: int = self.sock.getsockname()[1]
        self.connections = 0
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            conn.close()

    def close(self) -> None:
        # close() alone leaves a thread blocked in accept() asleep; shutdown() wakes it with an error at once
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self._thread.join(timeout=5)
        assert not self._thread.is_alive(), "the listener's accept() did not wake"



# Files opened for real, past the guard (a hook added after the guard's sees only what it lets through).
_OPENED: list[str] = []
with guard.isolated():
    pass  # the guard's hook is registered first


def _record_opens(event: str, args: tuple[Any, ...]) -> None:
    if event == "open" and isinstance(args[0], (str, bytes, Path)):
        # os.fsdecode: a bytes path need not be UTF-8 (another test opens b"caf\xe9.json"); the hook never raises
        _OPENED.append(str(Path(os.fsdecode(args[0])).resolve()))


sys.addaudithook(_record_opens)


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = Listener()
    yield server
    server.close()


@pytest.fixture
def secret(tmp_path: Path) -> Iterator[Path]:
    """A file outside every input, in Turtle so that any parser would take it."""
    path = tmp_path / "elsewhere" / "secret.ttl"
    path.parent.mkdir()
    path.write_text('<urn:x:s> <urn:x:p> "SECRET-PHI" .\n', encoding="utf-8")
    _OPENED.clear()
    yield path
    assert str(path.resolve()) not in _OPENED, f"{path} was opened"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    as_outside = logging.StreamHandler(sys.stderr)  # a logged warning reaches stderr outside pytest
    as_outside.setLevel(logging.WARNING)
    logging.getLogger().addHandler(as_outside)
    try:
        code = main(list(argv))
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 2
    finally:
        logging.getLogger().removeHandler(as_outside)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_refused(code: int, out: str, err: str) -> None:
    assert code == 2, err
    assert out == "" and "SECRET" not in err and "Traceback" not in err
    assert err.count("\n") == 1, err


def jsonld_patient(tmp_path: Path, context: Any) -> Path:
    data = json.loads(BASELINE_JSONLD.read_text(encoding="utf-8"))
    data["@context"] = context
    path = tmp_path / "patient.jsonld"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


######## through the command line ########

@pytest.mark.parametrize("context", ["{url}/ctx", ["{url}/ctx"], {"@import": "{url}/ctx"}, {"@version": 1.1,
                         "gkg": {"@id": "https://w3id.org/guideline-kg/vocab#", "@context": "{url}/scoped"}}],
                         ids=["string", "list", "import", "scoped"])
def test_patient_with_a_remote_jsonld_context_is_refused_without_a_request(
        capsys, tmp_path: Path, listener: Listener, context: Any) -> None:
    context = json.loads(json.dumps(context).replace("{url}", listener.url))
    assert_refused(*run(capsys, "recommend", str(jsonld_patient(tmp_path, context)), "--engine", ENGINE))
    assert listener.connections == 0


def test_patient_with_a_file_jsonld_context_is_refused_and_the_file_never_read(
        capsys, tmp_path: Path, secret: Path) -> None:
    for context in (secret.as_uri(), str(secret), [{"@import": secret.as_uri()}]):
        assert_refused(*run(capsys, "recommend", str(jsonld_patient(tmp_path, context)), "--engine", ENGINE))


def test_patient_graph_with_owl_imports_is_refused_without_a_request(
        capsys, tmp_path: Path, listener: Listener, secret: Path) -> None:
    path = tmp_path / "patient.ttl"
    path.write_text("@prefix owl: <http://www.w3.org/2002/07/owl#> .\n"
                    "@prefix gkg: <https://w3id.org/guideline-kg/vocab#> .\n"
                    "<urn:guideline-kg:patient:x> a gkg:Patient ;\n"
                    f"    owl:imports <{listener.url}/x>, <{secret.as_uri()}> .\n",
                    encoding="utf-8")
    assert_refused(*run(capsys, "recommend", str(path), "--engine", ENGINE))
    assert listener.connections == 0


def test_bundle_references_to_urls_are_never_followed(capsys, tmp_path: Path, listener: Listener, secret: Path) -> None:
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [
        {"fullUrl": f"{listener.url}/Patient/p1",
         "resource": {"resourceType": "Patient", "id": "p1", "identifier": [{"value": "LEAK-1"}]}},
        {"fullUrl": f"{listener.url}/Condition/c1",
         "resource": {"resourceType": "Condition", "id": "c1", "subject": {"reference": f"{listener.url}/Patient/p1"},
                      "code": {"coding": [{"system": secret.as_uri(), "code": "x"}]},
                      "evidence": [{"detail": [{"reference": secret.as_uri()}]}]}},
        {"resource": {"resourceType": "Observation", "id": "o1", "status": "final",
                      "subject": {"reference": "Patient/p1"}, "code": {"coding": [], "text": "x"},
                      "derivedFrom": [{"reference": f"{listener.url}/Observation/o0"}]}},
    ]}
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(bundle), encoding="utf-8")
    code, _out, err = run(capsys, "recommend", str(path), "--engine", ENGINE)
    assert code in (0, 1, 2) and "Traceback" not in err
    assert listener.connections == 0


def test_guideline_encoding_with_owl_imports_is_checked_without_fetching(
        capsys, tmp_path: Path, listener: Listener, secret: Path) -> None:
    path = tmp_path / "guideline.ttl"
    text = SHIPPED_GUIDELINE.read_text(encoding="utf-8")
    path.write_text(text + "\n<urn:x:ontology> a <http://www.w3.org/2002/07/owl#Ontology> ;\n"
                    f"    <http://www.w3.org/2002/07/owl#imports> <{listener.url}/x>, <{secret.as_uri()}> .\n",
                    encoding="utf-8")
    code, out, err = run(capsys, "check-guideline", str(path))
    assert code in (1, 2), err
    assert "Traceback" not in err and "SECRET" not in out
    assert listener.connections == 0


@pytest.mark.parametrize("template", [
    "SELECT * WHERE {{ SERVICE <{url}/sparql> {{ ?s ?p ?o }} }}",
    "SELECT * WHERE {{ SERVICE SILENT <{url}/sparql> {{ ?s ?p ?o }} }}",
    "SELECT * WHERE {{ ?s ?p ?o OPTIONAL {{ SERVICE <{url}/sparql> {{ ?s ?q ?r }} }} }}",
    "SELECT * FROM <{url}/g> WHERE {{ ?s ?p ?o }}",
    "SELECT * FROM NAMED <{url}/g> WHERE {{ GRAPH ?g {{ ?s ?p ?o }} }}",
    "SELECT * FROM <{secret}> WHERE {{ ?s ?p ?o }}",
    "SELECT * FROM NAMED <{secret}> WHERE {{ GRAPH ?g {{ ?s ?p ?o }} }}",
    "ASK FROM <{secret}> {{ ?s ?p \"SECRET-PHI\" }}",
    "LOAD <{secret}>",
    "LOAD <{url}/g>",
], ids=["service", "service-silent", "service-in-optional", "from-url", "from-named-url", "from-file",
        "from-named-file", "ask-from-file", "load-file", "load-url"])
def test_queries_reaching_outside_are_refused_without_a_request_or_a_read(
        capsys, tmp_path: Path, listener: Listener, secret: Path, template: str) -> None:
    path = tmp_path / "hostile.rq"
    path.write_text(template.format(url=listener.url, secret=secret.as_uri()), encoding="utf-8")
    assert_refused(*run(capsys, "query", str(path)))
    assert listener.connections == 0


def test_every_command_runs_inside_the_guard(capsys, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                             secret: Path) -> None:
    """``main`` isolates the command it runs: the input is readable, a file beside it is not."""
    import reasoner.commands.recommend as recommend

    seen: list[guard.Policy | None] = []

    def read_patient(_guideline: Any, path: Path, _now: Any = None) -> Any:
        seen.append(guard.active())
        with pytest.raises(guard.IsolationError):
            secret.read_text(encoding="utf-8")
        path.read_text(encoding="utf-8")
        raise InputError("stop here")

    monkeypatch.setattr(recommend, "read_patient", read_patient)
    patient = tmp_path / "patient.json"
    patient.write_text("{}", encoding="utf-8")
    code, _out, err = run(capsys, "recommend", str(patient), "--engine", ENGINE)
    assert (code, err) == (2, "guideline-kg: stop here\n")
    assert seen and seen[0] is not None
    assert guard.active() is None, "the guard is lifted when main returns"


######## straight at the guard ########

def test_guard_stops_what_rdflib_would_fetch_or_read(listener: Listener, secret: Path) -> None:
    attempts = {
        "jsonld remote context": lambda: Graph().parse(
            data=json.dumps({"@context": f"{listener.url}/ctx", "@id": "urn:x:a", "p": "v"}), format="json-ld"),
        "jsonld file context": lambda: Graph().parse(
            data=json.dumps({"@context": secret.as_uri(), "@id": "urn:x:a", "p": "v"}), format="json-ld"),
        "SERVICE": lambda: list(Graph().query(f"SELECT * WHERE {{ SERVICE <{listener.url}/s> {{ ?s ?p ?o }} }}")),
        "parse(location=url)": lambda: Graph().parse(f"{listener.url}/x.ttl", format="turtle"),
        "parse(location=file)": lambda: Graph().parse(str(secret), format="turtle"),
        "urlopen": lambda: urllib.request.urlopen(f"{listener.url}/x", timeout=5),
        "socket": lambda: socket.create_connection(("127.0.0.1", listener.port), timeout=5),
        "open": lambda: secret.read_bytes(),
    }
    with guard.isolated() as policy:
        for name, attempt in attempts.items():
            with pytest.raises(Exception) as caught:
                attempt()
            refused = "not allowed" in str(caught.value) or isinstance(caught.value.__context__, guard.IsolationError)
            assert refused, f"{name}: {caught.value!r}"
        # FROM and LOAD read nothing: rdflib's own switch is off while isolated
        assert list(Graph().query(f"SELECT * FROM <{secret.as_uri()}> WHERE {{ ?s ?p ?o }}")) == []
    assert len(policy.refusals) >= len(attempts)
    assert listener.connections == 0


def test_guard_lets_through_the_configured_store_and_the_named_files(listener: Listener, tmp_path: Path) -> None:
    named = tmp_path / "named.json"
    named.write_text("{}", encoding="utf-8")
    out_dir = tmp_path / "reports"
    with guard.isolated(allow_hosts=[f"{listener.url}/sparql"], allow_paths=[named, out_dir]):
        socket.create_connection(("127.0.0.1", listener.port), timeout=5).close()
        assert named.read_text(encoding="utf-8") == "{}"
        out_dir.mkdir()
        (out_dir / "r.json").write_text("[]", encoding="utf-8")
        with pytest.raises(guard.IsolationError):  # the same host on another port is not the store
            socket.create_connection(("127.0.0.1", listener.port + 1 if listener.port < 65535 else 1), timeout=5)
        import tempfile

        with tempfile.NamedTemporaryFile("w+", encoding="utf-8") as scratch:  # temporary files still work
            scratch.write("x")
            scratch.flush()
            assert Path(scratch.name).read_text(encoding="utf-8") == "x"
        assert Path("/proc/self/status").read_text(encoding="utf-8")  # memory use can still be read
    for _ in range(50):
        if listener.connections:
            break
        threading.Event().wait(0.05)
    assert listener.connections == 1


def test_guard_host_names_are_never_looked_up_unless_configured() -> None:
    with guard.isolated(allow_hosts=["store.invalid:7200"]):
        with pytest.raises(guard.IsolationError):
            socket.getaddrinfo("leak-phi-mrn12345.example.org", 80)


def test_guard_is_lifted_after_the_block(secret: Path) -> None:
    with guard.isolated():
        with pytest.raises(guard.IsolationError):
            secret.read_text(encoding="utf-8")
    assert guard.active() is None
    _OPENED.clear()  # this read is the test's own
    assert "SECRET" in secret.read_text(encoding="utf-8")
    _OPENED.clear()


def test_a_spawned_worker_can_install_the_same_policy(tmp_path: Path) -> None:
    with guard.isolated(allow_hosts=["https://store.example.org/sparql", "[::1]:7200"], allow_paths=[tmp_path]) as policy:
        again = guard.make_policy(*policy.allowances())
    assert (again.hosts, again.roots) == (policy.hosts, policy.roots)
