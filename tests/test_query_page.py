"""The query page at / (YASGUI, served from the package) in a real browser (headless Chromium): the editor
loads, a query runs, its rows render, named queries are offered, and no request leaves 127.0.0.1."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
import urllib.request
from html import unescape
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import pytest

from reasoner.page import ASSETS
from serving import running_endpoint

PATIENTS = """PREFIX gkg: <https://w3id.org/guideline-kg/vocab#>
SELECT ?patient ?identifier WHERE { ?patient a gkg:Patient ; gkg:identifier ?identifier } ORDER BY ?identifier"""


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.fail("headless Chromium is needed for this test: apt-get install -y chromium")


def browse(url: str) -> tuple[str, list[str]]:
    """The page's DOM after its scripts ran, and the URLs the page itself requested (from Chromium's network
    log; the browser's own background requests are not the page's). Every host but 127.0.0.1 is
    unresolvable, as with no internet."""
    with tempfile.TemporaryDirectory(prefix="guideline-kg-chromium-") as profile:
        netlog = Path(profile) / "netlog.json"
        run = subprocess.run(
            [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--no-first-run", "--disable-extensions", f"--user-data-dir={profile}",
             "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1", f"--log-net-log={netlog}",
             "--virtual-time-budget=30000", "--dump-dom", url],
            capture_output=True, text=True, timeout=180)
        assert run.returncode == 0, run.stderr[-2000:]
        log = json.loads(netlog.read_text(encoding="utf-8"))
    names = {number: name for name, number in log["constants"]["logEventTypes"].items()}
    requested = []
    for event in log["events"]:
        params = event.get("params") or {}
        if names.get(event["type"]) != "URL_REQUEST_START_JOB" or "url" not in params:
            continue
        initiator, cookies = params.get("initiator", ""), params.get("site_for_cookies", "")
        if initiator.startswith("http") or "site=http://127.0.0.1" in cookies:  # the page's, or the page itself
            requested.append(params["url"])
    return run.stdout, requested


def rows(dom: str) -> list[list[str]]:
    """The result table YASR rendered: header, then rows (the row-number column dropped)."""
    table = re.search(r'<table id="DataTables_Table_0".*?</table>', dom, re.DOTALL)
    assert table, dom[-3000:]
    head = [unescape(t) for t in re.findall(r'<span class="dt-column-title">(.*?)</span>', table.group(0))]
    body = re.search(r"<tbody>(.*?)</tbody>", table.group(0), re.DOTALL)
    assert body
    out = [head[1:]]
    for row in re.findall(r"<tr>(.*?)</tr>", body.group(1), re.DOTALL):
        cells = [unescape(re.sub(r"<[^>]+>", "", c)) for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.DOTALL)]
        out.append(cells[1:])
    return out


@pytest.fixture(scope="module")
def base() -> str:
    with running_endpoint() as url:
        yield url


@pytest.fixture(scope="module")
def patients_page(base: str) -> tuple[str, list[str]]:
    return browse(f"{base}/?{urlencode({'query': PATIENTS})}")


def test_the_page_runs_a_query_and_renders_its_rows(patients_page: tuple[str, list[str]]) -> None:
    dom, _ = patients_page
    assert 'class="CodeMirror' in dom  # the editor loaded
    table = rows(dom)
    assert table[0] == ["patient", "identifier"]
    assert len(table) == 1 + 4
    assert all(r[0].startswith("<urn:guideline-kg:patient:") and r[1].startswith("MRN") for r in table[1:])
    assert [r[1] for r in table[1:]] == sorted(r[1] for r in table[1:])


def test_the_editor_completes_only_from_this_endpoint(patients_page: tuple[str, list[str]]) -> None:
    dom, _ = patients_page
    active = re.search(r'id="yasgui"[^>]*data-autocompleters="([^"]*)"', dom)
    assert active, dom[:2000]
    assert active.group(1).split() == ["project-prefixes", "variables"]  # LOV's class/property lookups are off


def test_no_request_of_the_page_leaves_this_server(base: str, patients_page: tuple[str, list[str]]) -> None:
    _, requested = patients_page
    here = urlsplit(base).netloc
    assert {urlsplit(u).netloc for u in requested} == {here}, requested
    paths = {urlsplit(u).path for u in requested}
    assert {"/assets/yasgui/yasgui.min.js", "/assets/yasgui/yasgui.min.css", "/sparql", "/queries", "/prefixes"} <= paths


def test_the_page_offers_the_named_queries_and_the_project_prefixes(patients_page: tuple[str, list[str]],
                                                                    base: str) -> None:
    dom, _ = patients_page
    offered = set(re.findall(r'<option value="([^"]+)"', dom))
    assert {"red-flags-by-frequency", "patients-with-recommendations-against", "qc/duplicate-id-violation"} <= offered
    with urllib.request.urlopen(f"{base}/prefixes", timeout=30) as response:
        prefixes = json.load(response)["prefixes"]
    assert prefixes["gkg"] == "https://w3id.org/guideline-kg/vocab#" and "brick" not in prefixes


def test_the_page_shows_the_endpoint_refusal_of_an_update(base: str) -> None:
    dom, _ = browse(f"{base}/?{urlencode({'query': 'DROP ALL'})}")
    error = re.search(r'<div class="errorResult">.*?<pre>(.*?)</pre>', dom, re.DOTALL)
    assert error and "read-only" in error.group(1)


def test_the_vendored_assets_ship_with_their_licence_and_load_nothing_from_a_cdn() -> None:
    vendored = ASSETS / "yasgui"
    assert (vendored / "LICENSE.txt").read_text(encoding="utf-8").startswith("The MIT License")
    assert "THIRD-PARTY" in (vendored / "README.md").read_text(encoding="utf-8")
    page = (ASSETS / "query.html").read_text(encoding="utf-8")
    assert not re.search(r'(src|href)="(https?:)?//', page)
