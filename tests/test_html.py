"""The explanation page (``recommend --format html``), rendered by headless Chromium.

Chromium writes a NetLog of every request it makes; requests the page makes carry the
page's origin as initiator, while Chromium's own (update, time, accounts) carry none.
A self-contained page must make no request: the NetLog must hold none from the page.
A page with one remote image proves that such a request would be seen. All traffic goes
to a closed port on 127.0.0.1 as proxy, so nothing leaves the machine.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from conftest import EXAMPLES, engine, guideline
from reasoner.html import render_html
from reasoner.patient import read_patient
from reasoner.report import build_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def render(path: Path, folder: Path) -> tuple[str, list[str]]:
    """The DOM Chromium builds from a file, and the URLs the page asked for while it did."""
    assert CHROMIUM, "headless Chromium is required: apt-get install -y chromium"
    netlog = folder / f"{path.stem}.netlog.json"
    result = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", "--disable-extensions", "--disable-sync",
         f"--user-data-dir={folder / (path.stem + '-profile')}", f"--log-net-log={netlog}",
         f"--proxy-server=http://127.0.0.1:{closed_port()}", "--dump-dom", path.as_uri()],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    log = json.loads(netlog.read_text(encoding="utf-8"))
    start_job = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    urls = [e["params"]["url"] for e in log["events"]
            if e["type"] == start_job and "url" in e.get("params", {})
            and e["params"].get("initiator") != "not an origin"]  # Chromium's own requests have no initiator
    return result.stdout, urls


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> dict[str, object]:
    g = guideline()
    report = build_report(g, engine().reason(read_patient(g, EXAMPLES / "palpable-mass-fever.json")))
    html = render_html(g, report)
    folder = tmp_path_factory.mktemp("page")
    path = folder / "report.html"
    path.write_text(html, encoding="utf-8")
    dom, requested = render(path, folder)
    (folder / "remote.html").write_text('<!DOCTYPE html><html><body><img src="https://example.org/x.png"></body></html>',
                                        encoding="utf-8")
    _, remote = render(folder / "remote.html", folder)
    return {"html": html, "dom": dom, "requested": requested, "remote": remote, "report": report.data}


class _Sections(HTMLParser):
    """Text of each <section id=...>, and of each <details> inside it."""

    def __init__(self) -> None:
        super().__init__()
        self.section: str | None = None
        self.text: dict[str, list[str]] = {}
        self.details: dict[str, int] = {}
        self.summaries: dict[str, list[str]] = {}
        self.in_summary = False
        self.urls: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for name in ("src", "href", "action", "data", "poster"):
            if attrs.get(name):
                self.urls.append(attrs[name])
        if tag == "section":
            self.section = attrs.get("id")
            self.text.setdefault(self.section, [])
            self.summaries.setdefault(self.section, [])
        elif tag == "details" and self.section:
            self.details[self.section] = self.details.get(self.section, 0) + 1
        elif tag == "summary" and self.section:
            self.in_summary = True
            self.summaries[self.section].append("")

    def handle_endtag(self, tag):
        if tag == "section":
            self.section = None
        elif tag == "summary":
            self.in_summary = False

    def handle_data(self, data):
        if self.section:
            self.text[self.section].append(data)
            if self.in_summary:
                self.summaries[self.section][-1] += data


@pytest.fixture(scope="module")
def sections(page) -> _Sections:
    parser = _Sections()
    parser.feed(str(page["dom"]))
    return parser


def text(sections: _Sections, section: str) -> str:
    return " ".join(" ".join(sections.text.get(section, [])).split())


def test_the_page_loads_nothing_from_the_network(page, sections):
    assert page["remote"] == ["https://example.org/x.png"]  # what a page loads is seen
    assert page["requested"] == []
    assert not [u for u in sections.urls if not u.startswith("#")]
    assert "Content-Security-Policy" in str(page["html"]) and "default-src 'none'" in str(page["html"])
    assert not re.search(r"<(script|link|img|iframe|object|embed)\b", str(page["html"]), re.I)


def test_the_page_shows_red_flags_each_expandable_to_its_explanation(sections):
    assert sections.details["red-flags"] == 3
    assert [s.split(" — ")[0].replace("red flag", "").strip() for s in sections.summaries["red-flags"]] == [
        "Fever", "Palpable mid-lumbar mass", "Tachycardia"]
    body = text(sections, "red-flags")
    assert "Fever or tachycardia suggesting infection (discitis, osteomyelitis, epidural abscess)" in body  # S05
    assert "Observation/temp-1" in body and "reference 3" in body


def test_the_page_says_what_to_do_now_and_how_urgently(sections):
    assert len(sections.summaries["do-now"]) == 1
    summary = sections.summaries["do-now"][0]
    assert summary.startswith("immediate") and "MRI lumbar spine without and with IV contrast" in summary
    body = text(sections, "do-now")
    for quoted in ("Order MRI lumbar spine without and with IV contrast immediately.",  # S10
                   "A palpable mid-lumbar mass with back pain is a red flag requiring immediate imaging"):  # S01
        assert quoted in body
    assert "mri-immediate.rq" in body and "asserted, from Condition/mass" in body


def test_the_page_lists_each_recommendation_against_with_its_statements(page, sections):
    against = [r for r in page["report"]["recommendations"] if r["direction"] == "against"]
    assert sections.details["do-not"] == len(against) == 9
    body = text(sections, "do-not")
    assert "Do not order MRI without contrast alone when a mass is present—contrast is essential" in body  # S37
    assert all(s.startswith("do not") for s in sections.summaries["do-not"])


def test_the_page_shows_the_differential_and_the_follow_up(page, sections):
    assert sections.details["differential"] == len(page["report"]["differential"])
    assert sections.summaries["differential"][0].startswith("Malignancy")
    assert "follow-up depends on the imaging result" in text(sections, "follow-up")
    facts = text(sections, "facts")
    assert "Condition/mass" in facts and "Observation/hr-1" in facts


def test_the_page_escapes_every_value_from_the_record_and_the_encoding() -> None:
    """Jinja2's autoescape: markup in a patient's identifier or a label is shown as text, never parsed."""
    g = guideline()
    report = build_report(g, engine().reason(read_patient(g, EXAMPLES / "palpable-mass-fever.json")))
    hostile = '<img src=x onerror="alert(1)">'
    report.data["patient"]["identifier"] = hostile
    report.data["red_flags"][0]["label"] = hostile
    html = render_html(g, report)
    assert "<img" not in html and "onerror=\"" not in html
    assert html.count("&lt;img src=x onerror=&#34;alert(1)&#34;&gt;") == 3  # the title, the header, the red flag


def test_the_undocumented_examination_items_are_introduced_in_the_encodings_words_and_statements(
        page, sections) -> None:
    from reasoner.html import not_documented_text

    g = guideline()
    assert page["report"]["not_documented"]  # the example leaves some items undocumented
    text = not_documented_text(g)
    # the wording and the statement range are the graph's (gkg:Examination), not the code's
    assert text == "Focused examination items documented neither present nor absent (S02-S08)"
    assert f'id="not-documented">{text}: {", ".join(page["report"]["not_documented"])}<' in page["html"]


def test_a_report_with_every_item_documented_has_no_undocumented_line() -> None:
    from reasoner.html import render_html as render_page

    g = guideline()
    report = build_report(g, engine().reason(read_patient(g, EXAMPLES / "palpable-mass-fever.json")))
    report.data["not_documented"] = []
    assert 'id="not-documented"' not in render_page(g, report)
