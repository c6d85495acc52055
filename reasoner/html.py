"""``recommend --format html``: one self-contained page explaining a patient's report.

Red flags, what to do now and how urgently, what not to do, follow-up, the
differential and the patient's facts; every item opens (``<details>``) onto its
explanation: the patient facts with the FHIR resource each came from, the rule that
fired, the guideline recommendation, its statements quoted from the graph and their
citations. The page loads nothing: no script, no external style, no image, and a
Content-Security-Policy that forbids any request.
"""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any

from reasoner.errors import InputError
from reasoner.explain import Node, explain
from reasoner.guideline import Guideline
from reasoner.report import Report

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src 'none'; base-uri 'none'; form-action 'none'"

STYLE = """
:root { --ink:#1d2530; --muted:#5b6675; --line:#d9dee5; --crit:#a4161a; --warn:#9a5b00; --ok:#1b6e3a; --bg:#f6f8fa; }
* { box-sizing: border-box; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--ink); margin: 0 auto; max-width: 62rem; padding: 1.5rem; }
header { border-bottom: 2px solid var(--ink); margin-bottom: 1rem; }
h1 { font-size: 1.35rem; margin: 0 0 .25rem; }
h2 { font-size: 1.1rem; margin: 1.6rem 0 .5rem; border-bottom: 1px solid var(--line); padding-bottom: .2rem; }
.meta { color: var(--muted); margin: .2rem 0 .8rem; }
.banner { padding: .6rem .8rem; border-radius: 4px; background: var(--bg); border-left: 4px solid var(--muted); margin: .6rem 0; }
.banner.bad { border-color: var(--crit); }
details { border: 1px solid var(--line); border-radius: 4px; margin: .35rem 0; background: #fff; }
details > summary { cursor: pointer; padding: .45rem .7rem; list-style-position: outside; margin-left: 1rem; }
details[open] > summary { border-bottom: 1px solid var(--line); background: var(--bg); }
details > .body { padding: .5rem .9rem .7rem; }
.tag { display: inline-block; font-size: .78rem; font-weight: 600; text-transform: uppercase; letter-spacing: .03em;
       padding: 0 .4rem; border-radius: 3px; margin-right: .4rem; border: 1px solid currentColor; }
.tag.emergent { color: var(--crit); } .tag.immediate { color: var(--warn); } .tag.routine, .tag.for { color: var(--ok); }
.tag.against { color: var(--crit); } .tag.flag { color: var(--warn); }
.cond { color: var(--muted); }
ul.tree { list-style: none; padding-left: 1.1rem; margin: .2rem 0; border-left: 1px dotted var(--line); }
ul.tree > li { margin: .25rem 0; }
.kind { font-size: .72rem; color: var(--muted); text-transform: uppercase; letter-spacing: .04em; margin-right: .35rem; }
blockquote { margin: .2rem 0 .2rem .2rem; padding: .1rem .6rem; border-left: 3px solid var(--line); font-style: italic; }
table { border-collapse: collapse; width: 100%; font-size: .92rem; }
th, td { text-align: left; border-bottom: 1px solid var(--line); padding: .25rem .4rem; vertical-align: top; }
code { font-size: .85em; }
footer { margin-top: 2rem; color: var(--muted); font-size: .85rem; }
@media print { details > .body { display: block; } body { max-width: none; } }
"""


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def render_html(guideline: Guideline, report: Report) -> str:
    """The report of one patient as a self-contained HTML page."""
    data = report.data
    info = data["guideline"]
    parts: list[str] = [
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(info['title'])}: patient {_e(data['patient']['identifier'])}</title>",
        f"<style>{STYLE}</style>", "</head>", "<body>",
        "<header>", f"<h1>{_e(info['title'])}</h1>",
        f'<p class="meta">Encoding {_e(info["version"])} &middot; Patient <strong id="patient">'
        f'{_e(data["patient"]["identifier"])}</strong></p>', "</header>",
    ]
    parts += _status(data)
    if data["conforms"] and report.reasoned.graph is not None:
        explainer = _Explainer(guideline, report)
        fors = [r for r in data["recommendations"] if r["direction"] == "for"]
        parts += _section("red-flags", "Red flags", [explainer.red_flag(f) for f in data["red_flags"]],
                          "No red flag is documented.")
        parts += _section("do-now", "Do now", [explainer.recommendation(r) for r in fors if r.get("urgency")],
                          "Nothing to order now.")
        parts += _section("do-not", "Do not", [explainer.recommendation(r) for r in data["recommendations"]
                                               if r["direction"] == "against"], "The guideline advises against nothing here.")
        parts += _section("follow-up", "Follow-up", [*(_imaging(guideline, i) for i in data.get("imaging_results", [])),
                                                     *(explainer.recommendation(r) for r in fors if not r.get("urgency"))],
                          "No imaging result and no follow-up step yet: follow-up depends on the imaging result.")
        parts += _section("differential", "Differential diagnosis",
                          [explainer.differential(d) for d in data["differential"]], "No differential diagnosis.")
        parts += _findings(data)
    parts += ["<footer>",
              f"Guideline <code>{_e(info['iri'])}</code>, encoding {_e(info['version'])}. Statements are quoted verbatim "
              "from the guideline; references are cited by number only, as in the source. Decision support, not a "
              "substitute for clinical judgment.", "</footer>", "</body>", "</html>"]
    return "\n".join(parts) + "\n"


def _status(data: dict[str, Any]) -> list[str]:
    out = []
    violations = [v for v in data["violations"] if v["severity"] == "Violation"]
    warnings = [v for v in data["violations"] if v["severity"] != "Violation"]
    if not data["conforms"]:
        out.append('<div class="banner bad" id="not-conforming"><strong>The patient record does not conform</strong>: '
                   "nothing was derived. Fix the record and run again.<ul>"
                   + "".join(f"<li>{_e(v['message'])}</li>" for v in violations) + "</ul></div>")
        return out
    if data.get("applicable") is False:
        out.append(f'<div class="banner" id="not-applicable">{_e(data.get("not_applicable_reason", ""))}</div>')
    else:
        out.append('<div class="banner" id="applicable">The guideline applies to this patient: its entry criterion holds.</div>'
                   if data.get("applicable") else "")
    if warnings or data.get("not_documented"):
        items = "".join(f"<li>{_e(w['message'])}</li>" for w in warnings)
        out.append(f'<details id="warnings"><summary>{len(warnings)} data warning(s)</summary>'
                   f'<div class="body"><ul>{items}</ul></div></details>')
    return [o for o in out if o]


def _section(ident: str, title: str, items: list[str], empty: str) -> list[str]:
    body = "\n".join(items) if items else f'<p class="cond">{_e(empty)}</p>'
    return [f'<section id="{ident}">', f"<h2>{_e(title)}</h2>", body, "</section>"]


def _imaging(guideline: Guideline, result: dict[str, Any]) -> str:
    def label(key: str) -> str:
        concept = guideline.concepts.get(key)
        return concept.label if concept else key

    conclusions = ", ".join(label(c) for c in result["conclusions"]) or "no conclusion matched"
    source = f" <span class=\"cond\">({_e(result['source'])})</span>" if result.get("source") else ""
    return (f'<details class="imaging"><summary><span class="tag routine">result</span>{_e(label(result["study"]))}: '
            f"{_e(conclusions)}{source}</summary><div class=\"body\">An imaging report in the record; the follow-up "
            "below acts on it.</div></details>")


class _Explainer:
    """Items of the page with their explanation trees (``reasoner.explain``)."""

    def __init__(self, guideline: Guideline, report: Report) -> None:
        self.guideline = guideline
        self.report = report
        self._trees: dict[str, Node | None] = {}

    def _roots(self, key: str, kind: str, direction: str | None = None) -> list[Node]:
        if key not in self._trees:
            try:
                self._trees[key] = explain(self.guideline, self.report, key)
            except InputError:
                self._trees[key] = None
        tree = self._trees[key]
        if tree is None:
            return []
        roots = []
        for root in tree.children:
            element = next((c for c in root.children if c.kind == "guideline"), None)
            if element is None or not element.label.startswith(kind + ":"):
                continue
            if direction and not (element.detail or "").startswith(direction + " "):
                continue
            roots.append(root)
        return roots

    def _details(self, css: str, summary: str, lead: str, roots: list[Node]) -> str:
        trees = "".join(_tree(r) for r in roots) or '<p class="cond">No derivation was recorded.</p>'
        return (f'<details class="{css}"><summary>{summary}</summary><div class="body">{lead}'
                f"<p><strong>Why</strong>: patient facts &rarr; rule &rarr; guideline recommendation &rarr; statements "
                f"&rarr; citations</p>{trees}</div></details>")

    def recommendation(self, rec: dict[str, Any]) -> str:
        key, direction = rec["action"]["key"], rec["direction"]
        urgency = rec.get("urgency")
        tag = (f'<span class="tag {_e(urgency)}">{_e(urgency)}</span>' if urgency
               else f'<span class="tag {_e(direction)}">{"do" if direction == "for" else "do not"}</span>')
        condition = f' <span class="cond">&mdash; {_e(rec["condition"])}</span>' if rec.get("condition") else ""
        summary = f"{tag}{_e(rec['action']['label'])}{condition}"
        codes = ", ".join(f"{c['system'].rsplit('/', 1)[-1]} {c['code']}" for c in rec["action"].get("codes", []))
        lead = (f"<p>{_e(rec['text'])}</p><p class=\"cond\">Strength {_e(rec.get('strength', 'not graded'))} "
                f"&middot; statements {_e(', '.join(rec['statements']))}"
                f" &middot; references {_e(', '.join(rec['citations']))}"
                + (f" &middot; codes {_e(codes)}" if codes else "") + "</p>")
        return self._details(f"recommendation {direction}", summary, lead, self._roots(key, "recommendation", direction))

    def red_flag(self, flag: dict[str, Any]) -> str:
        summary = (f'<span class="tag flag">red flag</span>{_e(flag["label"])} <span class="cond">&mdash; suggests '
                   f"{_e(', '.join(flag['suggests']))}</span>")
        lead = f"<p class=\"cond\">Statements {_e(', '.join(flag['statements']))} &middot; references {_e(', '.join(flag['citations']))}</p>"
        return self._details("red-flag", summary, lead, self._roots(flag["key"], "red flag"))

    def differential(self, entry: dict[str, Any]) -> str:
        nature = f' <span class="cond">({_e(entry["nature"])})</span>' if entry.get("nature") else ""
        summary = f"{_e(entry['label'])}{nature}"
        support = ", ".join(entry.get("supported_by", []))
        lead = (f"<p class=\"cond\">Supported by {_e(support or 'nothing documented')} &middot; statements "
                f"{_e(', '.join(entry['statements']))} &middot; references {_e(', '.join(entry['citations']))}</p>")
        return self._details("differential", summary, lead, self._roots(entry["key"], "differential"))


KIND_NAMES = {"conclusion": "conclusion", "fact": "patient fact", "inference": "via", "guideline": "guideline",
              "statement": "statement", "citation": "citation"}


def _tree(node: Node) -> str:
    return f'<ul class="tree">{_item(node)}</ul>'


def _item(node: Node) -> str:
    kind = f'<span class="kind">{_e(KIND_NAMES.get(node.kind, node.kind))}</span>'
    if node.kind == "statement":
        body = f"{kind}<strong>{_e(node.label)}</strong><blockquote>{_e(node.detail or '')}</blockquote>"
    else:
        detail = f' <span class="cond">&mdash; {_e(node.detail)}</span>' if node.detail else ""
        body = f"{kind}{_e(node.label)}{detail}"
    children = "".join(_item(child) for child in node.children)
    return f'<li class="{_e(node.kind)}">{body}' + (f'<ul class="tree">{children}</ul>' if children else "") + "</li>"


def _findings(data: dict[str, Any]) -> list[str]:
    rows = []
    for f in data.get("findings", []):
        origin = f["origin"] + (f" from {', '.join(f['derived_from'])}" if f.get("derived_from") else "")
        rows.append(f"<tr><td>{_e(f['label'])}</td><td>{_e(f['status'])}</td><td>{_e(origin)}</td>"
                    f"<td>{_e(', '.join(f.get('source', [])))}</td></tr>")
    context = "".join(f"<li>{_e(c)}</li>" for c in data.get("context", []))
    not_documented = ", ".join(data.get("not_documented", []))
    out = ['<section id="facts">', "<h2>Patient facts</h2>",
           '<details><summary>Findings used (with the FHIR resource each came from)</summary><div class="body">',
           "<table><thead><tr><th>Finding</th><th>Status</th><th>Origin</th><th>FHIR source</th></tr></thead>",
           "<tbody>" + "".join(rows) + "</tbody></table>"]
    if context:
        out.append(f"<p>Context:</p><ul>{context}</ul>")
    out.append("</div></details>")
    if not_documented:
        out.append(f'<p class="cond" id="not-documented">Focused examination items documented neither present nor '
                   f"absent (S02-S08): {_e(not_documented)}</p>")
    out.append("</section>")
    return out


# ---- vocabulary documentation (``guideline-kg docs``) ----

PREFIXES = {
    "http://www.w3.org/2002/07/owl#": "owl:", "http://www.w3.org/2000/01/rdf-schema#": "rdfs:",
    "http://www.w3.org/1999/02/22-rdf-syntax-ns#": "rdf:", "http://www.w3.org/2001/XMLSchema#": "xsd:",
    "http://purl.org/dc/terms/": "dcterms:", "http://www.w3.org/ns/prov#": "prov:",
    "http://www.w3.org/2004/02/skos/core#": "skos:", "http://purl.org/spar/cito/": "cito:",
}
RDFS_NS = "http://www.w3.org/2000/01/rdf-schema#"
SKOS_NS = "http://www.w3.org/2004/02/skos/core#"
OWL_NS = "http://www.w3.org/2002/07/owl#"
RDF_TYPE = "http://www.w3.org/1999/02/22-rdf-syntax-ns#type"
SECTIONS = (("classes", "Classes", {OWL_NS + "Class"}),
            ("object-properties", "Object properties", {OWL_NS + "ObjectProperty"}),
            ("datatype-properties", "Datatype properties", {OWL_NS + "DatatypeProperty"}))
SHOWN = (("rdfs:subClassOf", RDFS_NS + "subClassOf"), ("rdfs:subPropertyOf", RDFS_NS + "subPropertyOf"),
         ("rdfs:domain", RDFS_NS + "domain"), ("rdfs:range", RDFS_NS + "range"),
         ("skos:notation", SKOS_NS + "notation"), ("rdfs:seeAlso", RDFS_NS + "seeAlso"))


def render_vocabulary(path: Path) -> str:
    """HTML documentation of a vocabulary file: its header, classes, properties and named individuals."""
    from rdflib import Graph, Literal

    from reasoner import resources
    from reasoner.guideline import parse_rdf_file
    from reasoner.queries import load_folder

    graph = Graph()
    parse_rdf_file(path, graph)
    queries = load_folder(resources.queries_dir() / "docs")
    header: dict[str, list[str]] = {}
    ontology = ""
    for row in graph.query(queries["ontology"].prepared()):
        ontology = str(row[0])
        header.setdefault(str(row[1]), []).append(str(row[2]))
    if not ontology:
        raise InputError(f"{path.name}: no owl:Ontology header")
    ns = ontology + ("#" if not ontology.endswith(("#", "/")) else "")
    terms: dict[str, dict[str, list[str]]] = {}
    for term, p, o in graph.query(queries["terms"].prepared(), initBindings={"ns": Literal(ns)}):
        terms.setdefault(str(term), {}).setdefault(str(p), []).append(str(o))
    local = {iri: iri[len(ns):] for iri in terms}
    prefix = next((f"{p}:" for p, n in graph.namespaces() if str(n) == ns and p), "")

    def ref(iri: str) -> str:
        if iri in local:
            return f'<a href="#{_e(local[iri])}"><code>{_e(prefix + local[iri])}</code></a>'
        for base, known in PREFIXES.items():
            if iri.startswith(base):
                return f"<code>{_e(known + iri[len(base):])}</code>"
        return f"<code>{_e(iri)}</code>"

    def first(term: dict[str, list[str]], iri: str) -> str:
        values = term.get(iri, [])
        return values[0] if values else ""

    grouped: dict[str, list[str]] = {sid: [] for sid, _, _ in SECTIONS}
    grouped["individuals"] = []
    for iri, term in sorted(terms.items(), key=lambda kv: local[kv[0]].lower()):
        types = set(term.get(RDF_TYPE, []))
        section = next((sid for sid, _, kinds in SECTIONS if types & kinds), "individuals" if types else None)
        if section:
            grouped[section].append(iri)
    titles = {sid: title for sid, title, _ in SECTIONS} | {"individuals": "Named individuals"}
    title = " ".join(header.get("http://purl.org/dc/terms/title", [local.get(ontology, ontology)]))
    parts = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
             f'<meta http-equiv="Content-Security-Policy" content="{CSP}">', f"<title>{_e(title)}</title>",
             f"<style>{STYLE} dl {{ margin: .3rem 0; }} dt {{ font-weight: 600; float: left; width: 10rem; clear: left; }}"
             " dd { margin-left: 10.5rem; } .term { border-top: 1px solid var(--line); padding: .5rem 0; }</style>",
             "</head>", "<body>", f"<header><h1>{_e(title)}</h1>", f'<p class="meta"><code>{_e(ontology)}</code>']
    for label, key in (("version", OWL_NS + "versionInfo"), ("licence", "http://purl.org/dc/terms/license")):
        if header.get(key):
            parts.append(f" &middot; {label} {_e(header[key][0])}")
    parts += ["</p>", f"<p>{_e(' '.join(header.get('http://purl.org/dc/terms/description', [])))}</p>",
              f'<p class="meta">Generated from <code>{_e(path.name)}</code> by <code>guideline-kg docs</code>; '
              "edit the Turtle file, not this page.</p></header>", "<nav><ul>"]
    parts += [f'<li><a href="#{sid}">{_e(titles[sid])}</a> ({len(grouped[sid])})</li>' for sid in grouped if grouped[sid]]
    parts.append("</ul></nav>")
    for sid, iris in grouped.items():
        if not iris:
            continue
        parts += [f'<section id="{sid}">', f"<h2>{_e(titles[sid])}</h2>"]
        for iri in iris:
            term = terms[iri]
            label = first(term, RDFS_NS + "label")
            parts.append(f'<div class="term" id="{_e(local[iri])}"><h3><code>{_e(prefix + local[iri])}</code>'
                         + (f" &mdash; {_e(label)}" if label else "") + "</h3>")
            for key in (SKOS_NS + "definition", RDFS_NS + "comment"):
                parts += [f"<p>{_e(text)}</p>" for text in term.get(key, [])]
            rows = [("type", ", ".join(ref(t) for t in sorted(term.get(RDF_TYPE, []))))]
            rows += [(name, ", ".join(ref(v) if v.startswith(("http://", "https://")) and name != "skos:notation"
                                      else f"<code>{_e(v)}</code>" for v in sorted(term[key])))
                     for name, key in SHOWN if term.get(key)]
            used = sorted(other for other, t in terms.items()
                          if iri in t.get(RDFS_NS + "domain", []) or iri in t.get(RDFS_NS + "range", []))
            if used:
                rows.append(("used by", ", ".join(ref(u) for u in used)))
            members = sorted(other for other, t in terms.items() if iri in t.get(RDF_TYPE, []))
            if members:
                rows.append(("members", ", ".join(ref(m) for m in members)))
            parts.append("<dl>" + "".join(f"<dt>{_e(n)}</dt><dd>{v}</dd>" for n, v in rows) + "</dl></div>")
        parts.append("</section>")
    parts += ["</body>", "</html>"]
    return "\n".join(parts) + "\n"


__all__ = ["render_html", "render_vocabulary"]
