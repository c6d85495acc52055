"""A picture of the guideline's decision pathway, drawn from the knowledge graph.

entry criterion -> red flags -> imaging algorithm (first line, fallbacks, what not to
order) -> urgent branches -> follow-up by result. Every box and arrow comes from
the SPARQL files of ``queries/diagram/`` run over the loaded guideline, so the
picture changes when the encoding does. Three renderings: SVG (laid out here, no
Graphviz needed), Mermaid and Graphviz DOT. The words it adds to the encoding's own
labels (box titles, arrow labels) are data too (``gkg:PathwayWording`` in ontology/pathway.ttl).
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from html import escape
from typing import Any

from reasoner import resources
from reasoner.errors import GuidelineError
from reasoner.guideline import Guideline
from reasoner.queries import load_folder

FORMATS = ("svg", "mermaid", "dot")
# The roles of the diagram's own words (gkg:PathwayWording, by skos:notation): structure, not wording.
WORDING_ROLES = ("red-flags-box", "against-box", "entry-to-red-flags", "to-fallback", "to-against", "to-urgent",
                 "condition", "no-strength", "no-urgency")
WRAP = 44


@dataclass
class Box:
    """One box of the pathway."""

    id: str
    stage: str
    title: str
    lines: list[str] = field(default_factory=list)
    style: str = "step"  # entry, flag, first, fallback, avoid, urgent, follow-up, step


@dataclass(frozen=True)
class Arrow:
    source: str
    target: str
    label: str = ""


@dataclass(frozen=True)
class Stage:
    id: str
    title: str


@dataclass
class Pathway:
    """The decision pathway: stages top to bottom, boxes within them, arrows between boxes."""

    title: str
    version: str
    stages: list[Stage]
    boxes: list[Box]
    arrows: list[Arrow]

    def in_stage(self, stage: str) -> list[Box]:
        return [b for b in self.boxes if b.stage == stage]


def _rows(guideline: Guideline, name: str) -> list[dict[str, Any]]:
    query = load_folder(resources.queries_dir() / "diagram")[name]
    result = guideline.graph.query(query.prepared())
    names = [str(v) for v in result.vars or []]
    return [{n: (str(v) if v is not None else None) for n, v in zip(names, row, strict=True)} for row in result]


def _wording(guideline: Guideline) -> dict[str, str]:
    """The diagram's own words by role (queries/diagram/wording.rq); GuidelineError naming a missing role."""
    found = {row["role"]: row["text"] for row in _rows(guideline, "wording")}
    missing = sorted(set(WORDING_ROLES) - set(found))
    if missing:
        raise GuidelineError("the encoding gives no gkg:PathwayWording for the diagram's role(s) "
                             + ", ".join(missing))
    return found


def _ids(statements: set[str]) -> str:
    return ", ".join(sorted(statements))


def build_pathway(guideline: Guideline) -> Pathway:
    """Read the pathway from the guideline graph."""
    info = guideline.info
    words = _wording(guideline)
    stages = [Stage(row["stage"], row["title"]) for row in _rows(guideline, "stages")]
    boxes: list[Box] = []
    arrows: list[Arrow] = []

    entry: dict[str, set[str]] = {}
    for row in _rows(guideline, "entry"):
        entry.setdefault(row["label"], set()).add(row["statement"])
    for i, (label, statements) in enumerate(sorted(entry.items())):
        boxes.append(Box(f"entry{i}", "entry", label, [_ids(statements)], "entry"))

    flags: dict[str, dict[str, Any]] = {}
    for row in _rows(guideline, "red-flags"):
        flags.setdefault(row["flag"], {"label": row["label"], "statements": set()})["statements"].add(row["statement"])
    urgent_of: dict[str, list[str]] = {}
    for row in _rows(guideline, "urgent-branches"):
        urgent_of.setdefault(row["flag"], []).append(row["recommendation"])

    recs: dict[str, dict[str, Any]] = {}
    for row in _rows(guideline, "recommendations"):
        rec = recs.setdefault(row["recommendation"], {**row, "statements": set(), "leads": {}})
        rec["statements"].add(row["statement"])
        if row["leadIn"]:
            rec["leads"].setdefault(row["leadIn"], set()).add(row["introducedId"])

    # Red flags: the ordinary ones in one box, each urgent one in its own box in the urgent stage.
    plain = [f for iri, f in flags.items() if iri not in urgent_of]
    if plain:
        statements = set().union(*(f["statements"] for f in plain))
        boxes.append(Box("flags", "red-flags", words["red-flags-box"],
                         [f["label"] for f in plain] + [_ids(statements)], "flag"))
    for entry_box in (b for b in boxes if b.stage == "entry"):
        arrows.append(Arrow(entry_box.id, "flags", words["entry-to-red-flags"]))

    # Imaging: one box per recommended action, first line (strongest, most urgent) then fallbacks.
    imaging_for = _by_action([r for r in recs.values() if r["stage"] == "imaging" and r["direction"] == "for"])
    ordered = sorted(imaging_for.items(), key=lambda kv: (kv[1]["preference"], -kv[1]["strength_rank"],
                                                          -kv[1]["rank"], kv[0]))
    first_id: str | None = None
    previous: str | None = None  # the action of the box before
    for i, (action, group) in enumerate(ordered):
        box_id = f"img-{action}"
        urgency = f" ({group['urgency']})" if group["urgency"] else ""
        lines = [f"{group['strength'] or words['no-strength']}{urgency}"]
        if i == 0:
            first_id = box_id
        lines += [f"{words['condition']}: {c}" for c in sorted(group["conditions"])]
        lines.append(_ids(group["statements"]))
        boxes.append(Box(box_id, "imaging", group["label"], lines, "first" if i == 0 else "fallback"))
        if i == 0 and plain:
            arrows.append(Arrow("flags", box_id, group["urgency"] or ""))
        elif first_id and previous:
            # With an order of preference in the encoding, each fallback follows the study before it.
            ranked = group["preference"] != float("inf") and imaging_for[previous]["preference"] != float("inf")
            arrows.append(Arrow(f"img-{previous}" if ranked else first_id, box_id, words["to-fallback"]))
        previous = action
    avoid = [r for r in recs.values() if r["direction"] == "against" and r["stage"] in ("imaging", "management")]
    if avoid:
        statements = set().union(*(r["statements"] for r in avoid))
        boxes.append(Box("avoid", "imaging", words["against-box"],
                         [f"{r['actionLabel']}: {r['condition']}" if r["condition"] else r["actionLabel"]
                          for r in sorted(avoid, key=lambda r: r["actionLabel"])] + [_ids(statements)], "avoid"))
        if first_id:
            arrows.append(Arrow(first_id, "avoid", words["to-against"]))

    # Urgent branches: a box per red flag that opens one, with what it calls for.
    for i, (flag_iri, rec_iris) in enumerate(sorted(urgent_of.items(), key=lambda kv: flags[kv[0]]["label"])):
        group = [recs[r] for r in rec_iris if r in recs]
        lines = [f"{(r['urgency'] or words['no-urgency']).upper()}: {r['actionLabel']}" for r in
                 sorted(group, key=lambda r: (-(int(r["rank"]) if r["rank"] else 0), r["actionLabel"]))]
        statements = set().union(flags[flag_iri]["statements"], *(r["statements"] for r in group))
        box_id = f"urgent{i}"
        boxes.append(Box(box_id, "urgent", flags[flag_iri]["label"], lines + [_ids(statements)], "urgent"))
        if plain:
            arrows.append(Arrow("flags", box_id, words["to-urgent"]))

    # Follow-up: a box per result the guideline acts on (recommendations grouped by their condition).
    follow = [r for r in recs.values() if r["stage"] == "follow-up"]
    leads = [lead for r in follow for lead in r["leads"]]
    lead_in = max(set(leads), key=leads.count) if leads else ""
    grouped: dict[str, list[dict[str, Any]]] = {}
    for r in follow:
        grouped.setdefault(min(r["leads"].get(lead_in) or r["statements"]), []).append(r)
    for statement, group in sorted(grouped.items()):
        box_id = f"follow-{statement}"
        title = min((r["label"] for r in group), key=len)
        conditions = sorted({r["condition"] for r in group if r["condition"]})
        boxes.append(Box(box_id, "follow-up", f"{statement}: {title}",
                         [f"{r['actionLabel']} ({r['strength']})" for r in sorted(group, key=lambda r: r["id"])]
                         + [f"{words['condition']}: {c}" for c in conditions]
                         + [_ids(set().union(*(r["statements"] for r in group)))], "follow-up"))
        if first_id:
            arrows.append(Arrow(first_id, box_id))
    if lead_in:
        stages = [Stage(s.id, f"{s.title}: {lead_in}") if s.id == "follow-up" else s for s in stages]
    return Pathway(info["title"], info["version"], [s for s in stages if any(b.stage == s.id for b in boxes)],
                   boxes, arrows)


def _by_action(recs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    groups: dict[str, dict[str, Any]] = {}
    for r in recs:
        g = groups.setdefault(r["action"], {"label": r["actionLabel"], "strength": None, "strength_rank": 0,
                                            "urgency": None, "rank": 0,
                                            "preference": float("inf"), "conditions": set(), "statements": set()})
        if r["preference"]:
            g["preference"] = min(g["preference"], int(r["preference"]))
        if r["strengthRank"] and int(r["strengthRank"]) > g["strength_rank"]:  # the strongest (gkg:rank)
            g["strength"], g["strength_rank"] = r["strength"], int(r["strengthRank"])
        if r["rank"] and int(r["rank"]) > g["rank"]:
            g["rank"], g["urgency"] = int(r["rank"]), r["urgency"]
        if r["condition"]:
            g["conditions"].add(r["condition"])
        g["statements"] |= r["statements"]
    return groups


def render(pathway: Pathway, fmt: str) -> str:
    if fmt == "mermaid":
        return render_mermaid(pathway)
    if fmt == "dot":
        return render_dot(pathway)
    return render_svg(pathway)


# ---- Mermaid ----

def _mermaid_text(text: str) -> str:
    return escape(text, quote=False).replace('"', "#quot;")


def render_mermaid(p: Pathway) -> str:
    out = ["---", f"title: {p.title} (encoding {p.version})", "---", "flowchart TD"]
    for stage in p.stages:
        out.append(f'  subgraph {stage.id.replace("-", "_")}["{_mermaid_text(stage.title)}"]')
        for box in p.in_stage(stage.id):
            text = "<br/>".join([f"<b>{_mermaid_text(box.title)}</b>", *(_mermaid_text(line) for line in box.lines)])
            out.append(f'    {_mid(box.id)}["{text}"]:::{box.style.replace("-", "_")}')
        out.append("  end")
    for a in p.arrows:
        label = f'|"{_mermaid_text(_short(a.label, 60))}"|' if a.label else ""
        out.append(f"  {_mid(a.source)} -->{label} {_mid(a.target)}")
    for style, (fill, stroke) in STYLES.items():
        out.append(f"  classDef {style.replace('-', '_')} fill:{fill},stroke:{stroke},color:#1d2530")
    return "\n".join(out) + "\n"


def _mid(box_id: str) -> str:
    return "n_" + "".join(ch if ch.isalnum() else "_" for ch in box_id)


# ---- DOT ----

def _dot(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def render_dot(p: Pathway) -> str:
    out = [f'digraph "{_dot(p.title)}" {{', "  rankdir=TB; compound=true; newrank=true;",
           f'  label="{_dot(p.title)} (encoding {_dot(p.version)})"; labelloc=t; fontname="Helvetica";',
           '  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=10];',
           '  edge [fontname="Helvetica", fontsize=9];']
    for stage in p.stages:
        out.append(f'  subgraph "cluster_{stage.id}" {{ label="{_dot(stage.title)}"; style=dashed; color="#9aa5b1";')
        for box in p.in_stage(stage.id):
            fill, stroke = STYLES[box.style]
            wrapped = [*_wrap(box.title), *(w for part in box.lines for w in _wrap(part))]
            label = "\\n".join(_dot(line) for line in wrapped)
            out.append(f'    "{box.id}" [label="{label}", fillcolor="{fill}", color="{stroke}"];')
        out.append("  }")
    for a in p.arrows:
        label = f' [label="{_dot(_short(a.label, 60))}"]' if a.label else ""
        out.append(f'  "{a.source}" -> "{a.target}"{label};')
    out.append("}")
    return "\n".join(out) + "\n"


# ---- SVG: a small layered layout, stages as bands, boxes left to right ----

STYLES = {"entry": ("#e8eef7", "#3b5b8c"), "flag": ("#fff4e0", "#9a5b00"), "first": ("#e6f4ea", "#1b6e3a"),
          "fallback": ("#f1f7ee", "#5c8a4a"), "avoid": ("#fdecec", "#a4161a"), "urgent": ("#fde2e2", "#a4161a"),
          "follow-up": ("#eef0fb", "#4a4f9c"), "step": ("#f6f8fa", "#5b6675")}
CHAR_W, LINE_H, PAD, GAP_X, GAP_Y, BAND_TITLE, MARGIN = 6.2, 15, 10, 52, 56, 22, 20


def _wrap(text: str, width: int = WRAP) -> list[str]:
    return textwrap.wrap(text, width) or [""]


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rsplit(" ", 1)[0] + "\u2026"


@dataclass
class _Placed:
    box: Box
    lines: list[tuple[str, bool]]
    x: float = 0
    y: float = 0
    w: float = 0
    h: float = 0


ROWS = (("entry",), ("red-flags", "urgent"), ("imaging",), ("follow-up",))  # stages sharing a row sit side by side
STAGE_GAP = 36


def render_svg(p: Pathway) -> str:
    placed: dict[str, _Placed] = {}
    frames: list[tuple[Stage, float, float, float, float]] = []
    stages = {s.id: s for s in p.stages}
    rows = [[stages[sid] for sid in row if sid in stages] for row in ROWS]
    rows += [[s] for s in p.stages if not any(s.id in row for row in ROWS)]
    y = MARGIN + 30.0
    width = 0.0
    for row in (r for r in rows if r):
        x = MARGIN
        height = 0.0
        row_frames = []
        for stage in row:
            left = x
            x += 10
            for box in p.in_stage(stage.id):
                lines = [(t, True) for t in _wrap(box.title)] + [(t, False) for line in box.lines for t in _wrap(line)]
                w = max(len(t) for t, _ in lines) * CHAR_W + 2 * PAD
                h = len(lines) * LINE_H + 2 * PAD
                placed[box.id] = _Placed(box, lines, x, y + BAND_TITLE, w, h)
                height = max(height, h)
                x += w + GAP_X
            row_frames.append((stage, left, x - GAP_X + 10))
            x += STAGE_GAP - GAP_X
        height += BAND_TITLE + 10
        frames += [(stage, left, y, right - left, height) for stage, left, right in row_frames]
        width = max(width, x)
        y += height + GAP_Y
    total_w, total_h = width + MARGIN, y - GAP_Y + MARGIN
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{total_w:.0f}" height="{total_h:.0f}" '
           f'viewBox="0 0 {total_w:.0f} {total_h:.0f}" font-family="Helvetica, Arial, sans-serif" font-size="11">',
           f"<title>{escape(p.title)}: decision pathway</title>",
           '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
           'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#5b6675"/></marker></defs>',
           '<rect width="100%" height="100%" fill="#ffffff"/>',
           f'<text x="{MARGIN}" y="{MARGIN + 12}" font-size="15" font-weight="bold">{escape(p.title)} '
           f'<tspan font-weight="normal" fill="#5b6675">(encoding {escape(p.version)})</tspan></text>']
    for stage, left, top, w, h in frames:
        out.append(f'<g class="stage" id="stage-{escape(stage.id)}"><rect x="{left:.0f}" y="{top:.0f}" '
                   f'width="{w:.0f}" height="{h:.0f}" rx="6" fill="#fbfcfd" stroke="#c9d1da" '
                   f'stroke-dasharray="4 3"/><text x="{left + 8:.0f}" y="{top + 15:.0f}" font-weight="bold" '
                   f'fill="#5b6675">{escape(stage.title)}</text></g>')
    arcs: dict[str, int] = {}
    for a in p.arrows:
        if a.source not in placed or a.target not in placed:
            continue
        s, t = placed[a.source], placed[a.target]
        if abs(s.y - t.y) < 1:
            between = [o for o in placed.values() if abs(o.y - s.y) < 1 and s.x + s.w <= o.x < t.x]
            if t.x > s.x and not between:  # neighbours: a straight arrow
                x1, y1, x2, y2 = s.x + s.w, s.y + min(s.h, t.h) / 2, t.x, t.y + min(s.h, t.h) / 2
                path = f"M {x1:.0f} {y1:.0f} L {x2:.0f} {y2:.0f}"
                lx, ly, anchor = (x1 + x2) / 2, y1 - 5, "middle"
            else:  # an arc over the boxes in between, higher for each further arc from the same box
                arcs[a.source] = arcs.get(a.source, 0) + 1
                lift = BAND_TITLE + 14 + 12 * arcs[a.source]
                x1, y1, x2, y2 = s.x + s.w * 0.8, s.y, t.x + t.w / 2, t.y
                up1, up2 = y1 - lift * 1.33, y2 - lift * 1.33
                path = f"M {x1:.0f} {y1:.0f} C {x1:.0f} {up1:.0f}, {x2:.0f} {up2:.0f}, {x2:.0f} {y2:.0f}"
                lx, ly, anchor = (x1 + x2) / 2, y1 - lift - 2, "middle"
        else:  # down to the gap above the target's row, across, and down into the target
            x1, y1, x2, y2 = s.x + s.w / 2, s.y + s.h, t.x + t.w / 2, t.y
            mid = y2 - BAND_TITLE - GAP_Y / 2
            r = min(8.0, abs(x2 - x1) / 2)
            if r < 1:
                path = f"M {x1:.0f} {y1:.0f} L {x2:.0f} {y2:.0f}"
            else:
                step = r if x2 > x1 else -r
                path = (f"M {x1:.0f} {y1:.0f} L {x1:.0f} {mid - r:.0f} Q {x1:.0f} {mid:.0f} {x1 + step:.0f} {mid:.0f} "
                        f"L {x2 - step:.0f} {mid:.0f} Q {x2:.0f} {mid:.0f} {x2:.0f} {mid + r:.0f} L {x2:.0f} {y2:.0f}")
            lx, ly, anchor = x1 + 5, (y1 + mid) / 2, "start"
        out.append(f'<g class="arrow" data-from="{escape(a.source)}" data-to="{escape(a.target)}">'
                   f'<path d="{path}" fill="none" stroke="#5b6675" stroke-width="1.2" marker-end="url(#arrow)"/>')
        if a.label:
            out.append(f'<text x="{lx:.0f}" y="{ly:.0f}" font-size="9.5" fill="#3b4654" text-anchor="{anchor}" '
                       f'paint-order="stroke" stroke="#ffffff" stroke-width="3">{escape(_short(a.label, 56))}</text>')
        out.append("</g>")
    for item in placed.values():
        fill, stroke = STYLES[item.box.style]
        out.append(f'<g class="box {escape(item.box.style)}" id="{escape(item.box.id)}">'
                   f'<rect x="{item.x:.0f}" y="{item.y:.0f}" width="{item.w:.0f}" height="{item.h:.0f}" rx="5" '
                   f'fill="{fill}" stroke="{stroke}" stroke-width="1.3"/>')
        for i, (text, bold) in enumerate(item.lines):
            weight = ' font-weight="bold"' if bold else ""
            out.append(f'<text x="{item.x + PAD:.0f}" y="{item.y + PAD + (i + 1) * LINE_H - 4:.0f}"{weight}>'
                       f"{escape(text)}</text>")
        out.append("</g>")
    out.append("</svg>")
    return "\n".join(out) + "\n"


__all__ = ["Pathway", "Box", "Arrow", "Stage", "build_pathway", "render", "render_svg", "render_mermaid",
           "render_dot", "FORMATS"]
