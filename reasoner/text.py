"""The text report: what a clinician reads in ten seconds."""

from __future__ import annotations

import unicodedata
from typing import Any

from reasoner.examination import Examination

EXAM_SHAPE = "/ExamDocumented-item"  # the shape of shapes/patient-inferred.ttl whose Warnings list undocumented items

URGENCY_WORD = {"emergent": "EMERGENT", "immediate": "IMMEDIATELY", "routine": "routine"}


# Characters a terminal acts on or a reader cannot see: controls (C0, DEL, C1: ESC starts an ANSI
# sequence, CR and LF start a line), format characters (bidirectional overrides) and line separators.
_UNPRINTABLE = {"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"}


def printable(text: str) -> str:
    """``text`` safe for one line of a terminal: every control, format or separator character written as
    an escape (``\\x1b``, ``\\n``, ``\\u202e``), so input can neither colour, move the cursor nor start a line."""
    if text.isprintable() and text.isascii():
        return text
    out = []
    for char in text:
        if char == " " or unicodedata.category(char) not in _UNPRINTABLE:
            out.append(char)
        elif char == "\n":
            out.append("\\n")
        elif char == "\r":
            out.append("\\r")
        elif char == "\t":
            out.append("\\t")
        elif ord(char) < 0x100:
            out.append(f"\\x{ord(char):02x}")
        elif ord(char) < 0x10000:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(f"\\U{ord(char):08x}")
    return "".join(out)


def _refs(item: dict[str, Any]) -> str:
    return f"[{', '.join(item['statements'])}; refs {', '.join(item['citations'])}]"


def render_text(data: dict[str, Any], exam: Examination) -> str:
    """The report as lines of text; every line escaped with ``printable``, so no value from the input
    (an identifier, a resource id in a message) can end a line early or forge one. ``exam`` is the encoding's
    focused examination (``reasoner.examination``), which names the undocumented items' statements."""
    return "".join(printable(line) + "\n" for line in _lines(data, exam))


def _lines(data: dict[str, Any], exam: Examination) -> list[str]:
    lines: list[str] = []
    g = data["guideline"]
    patient = data["patient"].get("identifier") or data["patient"]["iri"]
    lines.append(f"{g['title']} (encoding {g['version']})")
    lines.append(f"Patient {patient}")
    lines.append("")
    violations = [v for v in data["violations"] if v["severity"] == "Violation"]
    if not data["conforms"]:
        lines.append("NOT EVALUATED: the patient record has errors that must be fixed first:")
        lines.extend(f"  ! {v['message']} ({v['focus']})" for v in violations)
        return lines
    if not data["applicable"]:
        lines.append(f"GUIDELINE DOES NOT APPLY: {data.get('not_applicable_reason', '')}")
        lines.append("")
    flags = data["red_flags"]
    asserted = {f["key"] for f in data["findings"] if f["origin"] == "asserted" or f.get("derived_from", [""])[0].startswith("http")}
    shown = [f for f in flags if f["key"] in asserted] or flags
    lines.append("RED FLAGS" + ("" if flags else ": none documented"))
    for flag in shown:
        suggests = f" -> suggests {', '.join(flag['suggests'])}" if flag.get("suggests") else ""
        lines.append(f"  * {flag.get('label', flag['key'])}{suggests} {_refs(flag)}")
    recs = data["recommendations"]
    do = [r for r in recs if r["direction"] == "for"]
    dont = [r for r in recs if r["direction"] == "against"]
    if do:
        lines.append("")
        lines.append("DO")
        for r in do:
            urgency = URGENCY_WORD.get(r.get("urgency", ""), "")
            strength = f" ({r['strength']})" if r.get("strength") else ""
            lines.append(f"  {urgency + ': ' if urgency else ''}{r['action'].get('label', r['action']['key'])}{strength} {_refs(r)}")
            if r.get("condition"):
                lines.append(f"      when: {r['condition']}")
    if dont:
        lines.append("")
        lines.append("DO NOT")
        for r in dont:
            lines.append(f"  {r['action'].get('label', r['action']['key'])} - {r.get('condition', '')} {_refs(r)}")
    if data["differential"]:
        lines.append("")
        lines.append("DIFFERENTIAL")
        for d in data["differential"]:
            nature = f" ({d['nature']})" if d.get("nature") else ""
            support = f" - supported by {', '.join(d['supported_by'])}" if d.get("supported_by") else ""
            lines.append(f"  - {d.get('label', d['key'])}{nature}{support} {_refs(d)}")
    if data.get("imaging_results"):
        lines.append("")
        lines.append("IMAGING DONE")
        for result in data["imaging_results"]:
            lines.append(f"  - {result['study']}: {', '.join(result['conclusions']) or 'no usable conclusion'}")
    if data.get("not_documented"):
        lines.append("")
        lines.append(f"NOT DOCUMENTED ({exam.label.lower()}, {exam.statements}): " + ", ".join(data["not_documented"]))
    # the undocumented items are listed above: their Warnings (one per item) are not repeated
    warnings = [v for v in data["violations"] if v["severity"] == "Warning" and not v["shape"].endswith(EXAM_SHAPE)]
    if warnings:
        lines.append("")
        lines.append("WARNINGS")
        lines.extend(f"  ! {w['message']}" for w in warnings)
    return lines
