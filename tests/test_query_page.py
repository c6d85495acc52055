"""The query page at / in a real browser (headless Chromium): it runs a query and shows the rows, with no internet."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from html import unescape
from urllib.parse import urlencode

import pytest

from serving import running_endpoint

PATIENTS = """PREFIX gkg: <https://w3id.org/guideline-kg/vocab#>
SELECT ?patient ?identifier WHERE { ?patient a gkg:Patient ; gkg:identifier ?identifier } ORDER BY ?identifier"""


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.fail("headless Chromium is needed for this test: apt-get install -y chromium")


def page_dom(url: str) -> str:
    """The page's DOM after its scripts ran; every host but 127.0.0.1 is unresolvable, as with no internet."""
    with tempfile.TemporaryDirectory(prefix="guideline-kg-chromium-") as profile:
        run = subprocess.run(
            [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--no-first-run", "--disable-extensions", f"--user-data-dir={profile}",
             "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1", "--virtual-time-budget=30000",
             "--dump-dom", url],
            capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stderr[-2000:]
    return run.stdout


def cells(dom: str) -> list[list[str]]:
    table = re.search(r'<table id="results">(.*?)</table>', dom, re.DOTALL)
    assert table, dom[-3000:]
    return [[unescape(c) for c in re.findall(r"<t[dh]>(.*?)</t[dh]>", row)]
            for row in re.findall(r"<tr>(.*?)</tr>", table.group(1))]


@pytest.fixture(scope="module")
def base() -> str:
    with running_endpoint() as url:
        yield url


def test_the_page_runs_a_query_and_shows_its_rows_as_a_table(base: str) -> None:
    rows = cells(page_dom(f"{base}/?{urlencode({'query': PATIENTS})}"))
    assert rows[0] == ["patient", "identifier"]
    assert len(rows) == 1 + 4
    assert all(r[0].startswith("<urn:guideline-kg:patient:") and r[1].startswith("MRN") for r in rows[1:])
    assert [r[1] for r in rows[1:]] == sorted(r[1] for r in rows[1:])


def test_the_page_shows_the_endpoint_refusal_of_an_update(base: str) -> None:
    dom = page_dom(f"{base}/?{urlencode({'query': 'DROP ALL'})}")
    error = re.search(r'<p class="error" id="error">(.*?)</p>', dom, re.DOTALL)
    assert error and error.group(1).startswith("403 ")


def test_the_page_loads_nothing_from_another_host(base: str) -> None:
    dom = page_dom(f"{base}/")
    assert not re.search(r'(src|href)="(https?:)?//', dom)
    assert '<textarea id="query"' in dom
