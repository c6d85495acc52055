"""``guideline-kg check-guideline``, ``query`` and ``export``: the guideline encoding itself.

``check-guideline`` exits 0 when the encoding conforms (warnings allowed), 1 when a shape
or QC query finds a Violation, 2 when a file cannot be read or parsed. ``query`` and
``export --inferred`` work on the OWL-RL closure of the guideline, computed once per
process, without owlrl's generalized-RDF triples (literal subjects, non-IRI predicates).
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

from rdflib import BNode, Graph, Literal, Namespace, URIRef, Variable
from rdflib.query import Result

from reasoner import resources
from reasoner.errors import GuidelineError, InputError
from reasoner.guideline import Guideline, load_named_query
from reasoner.namespaces import BASE, CITO, GKG, RULE, SHAPES, C, G
from reasoner.output import emit
from reasoner.queries import QueryFile, load_folder

if TYPE_CHECKING:
    from reasoner.checks import CheckReport

# reasoner.checks and reasoner.fast are imported in the commands that use them: every command
# line registers these commands, most never run them.

QUERY_FORMATS = ("table", "csv", "json")
EXPORT_FORMATS = {"turtle": "turtle", "jsonld": "json-ld", "nt": "nt"}
# Formats written by their own module: one merged OWL ontology (RDF/XML), an SSSOM mapping set,
# the guideline as a FHIR R4 Bundle of CPG knowledge artifacts.
EXPORT_OTHER = ("owl", "sssom", "fhir")
CODING = Namespace(BASE + "coding/")
_IRI = re.compile(r"https?://[^\s<>\"{}|\\^`]+[^\s<>\"{}|\\^`.,;:)]")


def register(sub: argparse._SubParsersAction) -> None:
    c = sub.add_parser("check-guideline", help="check a guideline encoding: guideline shapes and QC queries",
                       description="Validate an encoding against shapes/guideline.ttl and run every "
                       "queries/qc/*-violation.rq. Exit 0 conforms, 1 does not, 2 cannot be read.")
    c.add_argument("path", type=Path, nargs="?",
                   help="a Turtle file or a folder of Turtle files (default: the shipped encoding); "
                   "rule names are checked against the shipped queries/rules/")
    c.add_argument("--format", choices=("text", "json"), default="text")
    c.set_defaults(func=run_check)

    q = sub.add_parser("query", help="run a query over the guideline with OWL-RL inference",
                       description="Run a competency query (queries/<name>.rq), a QC query (qc/<name>) or a "
                       ".rq file over the OWL-RL closure of the guideline.")
    q.add_argument("query", nargs="?", help="a query name (see --list), the path of a .rq file, or - to read it from stdin")
    q.add_argument("--format", choices=QUERY_FORMATS, default="table")
    q.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                   help="bind a parameter the query declares ('#+ param:'); a parameter left out matches anything")
    q.add_argument("--list", action="store_true", help="list the shipped queries with their summaries and parameters")
    q.add_argument("--reports", type=Path, metavar="DIR",
                   help="also query the reports in DIR (JSON with their .nq graphs, N-Quads, Turtle or JSON-LD), "
                   "loaded into a temporary store, for population queries")
    q.add_argument("--store", type=Path, metavar="DIR",
                   help="query an Oxigraph store made by 'guideline-kg load' (its default graph: the union of its graphs)")
    q.set_defaults(func=run_query)

    e = sub.add_parser("export", help="the guideline graph (as asserted or inferred), as one OWL ontology, "
                       "as SSSOM mappings or as FHIR CPG knowledge artifacts",
                       description="turtle, jsonld, nt: the guideline graph (--inferred: its OWL-RL closure). "
                       "owl: the modules merged into one OWL 2 DL ontology named by the umbrella IRI (RDF/XML). "
                       "sssom: the concepts' mappings to standard codes as an SSSOM TSV mapping set. "
                       "fhir: the guideline as a FHIR R4 Bundle after the HL7 CPG IG (PlanDefinitions, "
                       "ActivityDefinitions, a Library of the rules, ValueSets).")
    e.add_argument("--inferred", action="store_true", help="the OWL-RL closure (without generalized-RDF triples); "
                   "turtle, jsonld and nt only")
    e.add_argument("--format", choices=sorted([*EXPORT_FORMATS, *EXPORT_OTHER]), default="turtle")
    e.add_argument("--out", type=Path, help="write here instead of stdout")
    e.set_defaults(func=run_export)


######## check-guideline ########

def run_check(args: argparse.Namespace) -> int:
    from reasoner.checks import check_encoding

    report = check_encoding(args.path)
    if args.format == "json":
        emit(json.dumps(report.as_json(), indent=2) + "\n")
    else:
        emit(render_check(report))
    return 0 if report.conforms else 1


def render_check(report: CheckReport) -> str:
    names = _namespaces()
    files = f"{len(report.files)} file{'s' if len(report.files) != 1 else ''}"
    lines = [f"check-guideline: {report.source} ({files}, {report.triples} triples)",
             f"checked against shapes/guideline.ttl and {len(report.checks_run)} QC queries", ""]
    for r in report.shapes:
        lines.append(f"{r.severity}  {_short(names, r.focus)}")
        path = f" (path {_short(names, r.path)})" if r.path else ""
        lines.append(f"  shape:   {_short(names, r.shape)}{path}")
        if r.value is not None:
            lines.append(f"  value:   {_short(names, r.value)}")
        lines.append(f"  message: {_short_all(names, r.message)}")
        place = report.where(r.focus, r.path)
        if place is not None:
            lines.append(f"  at:      {place}")
    for q in report.qc:
        lines.append(f"{q.severity}  {_short(names, q.entity)}")
        lines.append(f"  check:   qc/{q.check}-violation.rq")
        if q.value is not None:
            lines.append(f"  value:   {_short(names, q.value)}")
        lines.append(f"  message: {q.summary}")
        place = report.where(q.entity, None, q.value)
        if place is not None:
            lines.append(f"  at:      {place}")
    if report.shapes or report.qc:
        lines.append("")
    violations, warnings = report.count("Violation"), report.count("Warning")
    verdict = "PASS" if report.conforms else "FAIL"
    lines.append(f"{verdict}: {violations} violation{'s' if violations != 1 else ''}, "
                 f"{warnings} warning{'s' if warnings != 1 else ''}")
    return "\n".join(lines) + "\n"


######## The guideline with inference ########

_INFERRED: dict[str, Graph] = {}
_QUERYABLE: dict[str, Graph] = {}


def _is_rdf(s: object, p: object) -> bool:
    """Plain RDF: an IRI or blank-node subject and an IRI predicate (owlrl also writes literal subjects)."""
    return isinstance(s, (URIRef, BNode)) and isinstance(p, URIRef)


def without_generalized_rdf(graph: Graph) -> Graph:
    """A copy of ``graph`` keeping only RDF triples: IRI or blank-node subject, IRI predicate."""
    kept = Graph()
    for prefix, namespace in graph.namespaces():
        kept.bind(prefix, namespace, override=True)
    for s, p, o in graph:
        if _is_rdf(s, p):
            kept.add((s, p, o))
    return kept


def _with_prefixes(guideline: Guideline) -> Graph:
    """An empty graph bound to the guideline's prefixes."""
    graph = Graph()
    for prefix, namespace in guideline.graph.namespaces():
        graph.bind(prefix, namespace, override=True)
    return graph


def inferred_graph(guideline: Guideline) -> Graph:
    """The OWL-RL closure of the guideline as plain RDF (the disk-cached closure of the fast engine). Do not mutate it."""
    from reasoner.fast import closed_guideline

    key = guideline.fingerprint
    if key not in _INFERRED:
        graph = _with_prefixes(guideline)
        for s, p, o in closed_guideline(guideline):  # computed once per encoding, kept on disk
            if _is_rdf(s, p):
                graph.add((s, p, o))
        _INFERRED[key] = graph
    return _INFERRED[key]


def queryable_graph(guideline: Guideline) -> Graph:
    """What queries run over: the inferred guideline and the rule files it is applied with."""
    from reasoner.checks import rule_files_graph

    key = guideline.fingerprint
    if key not in _QUERYABLE:
        graph = _with_prefixes(guideline)
        graph += inferred_graph(guideline)
        graph += rule_files_graph(guideline)
        _QUERYABLE[key] = graph
    return _QUERYABLE[key]


######## query ########

def listed_queries() -> dict[str, QueryFile]:
    """The shipped competency queries by name, then the QC queries as ``qc/<name>``."""
    from reasoner.checks import qc_queries

    found = dict(load_folder(resources.queries_dir()))
    found.update({f"qc/{name}": query for name, query in qc_queries().items()})
    return found


def bindings(query: QueryFile, params: list[str]) -> dict[Variable, URIRef | Literal]:
    """``--param name=value`` pairs as RDF terms for the parameters the query declares."""
    declared = {p.name: p for p in query.params}
    bound: dict[Variable, URIRef | Literal] = {}
    for item in params:
        name, sep, text = item.partition("=")
        if not sep:
            raise InputError(f"--param {item!r}: expected NAME=VALUE")
        if name not in declared:
            known = ", ".join(sorted(declared)) or "none"
            raise InputError(f"--param {name}: query {query.name} has no such parameter (its parameters: {known})")
        try:
            bound[Variable(name)] = declared[name].term(text)
        except ValueError as exc:
            raise InputError(str(exc)) from None
    return bound


def run_query(args: argparse.Namespace) -> int:
    if args.list:
        emit(render_list(listed_queries()))
        return 0
    if not args.query:
        raise InputError("query needs a query name or a .rq file (see 'guideline-kg query --list')")
    query = load_named_query(args.query)
    bound = bindings(query, args.param)
    guideline = Guideline.load()
    prepared = query.prepared()
    target: Graph = queryable_graph(guideline)
    if args.reports is not None or args.store is not None:
        from reasoner.population import query_population

        if args.reports is not None and args.store is not None:
            raise InputError("give either --reports DIR or --store DIR, not both")
        result = query_population(query, bound, store=args.store, reports=args.reports, guideline=guideline)
        emit(render_result(result, args.format, _namespaces()))
        return 0
    try:
        result = target.query(prepared, initBindings=bound)
        text = render_result(result, args.format, _namespaces())
    except Exception as exc:  # rdflib raises several unrelated types while evaluating
        message = " ".join(str(exc).split())
        raise GuidelineError(f"{query.path.name}: the query failed: {message[:300]}") from None
    emit(text)
    return 0


def render_list(queries: dict[str, QueryFile]) -> str:
    width = max((len(name) for name in queries), default=0)
    lines = []
    for name, query in queries.items():
        lines.append(f"{name.ljust(width)}  {query.summary}")
        for p in query.params:
            lines.append(f"{''.ljust(width)}    --param {p.name}=<{p.type}>  {p.description}".rstrip())
    return "\n".join(lines) + "\n"


def render_result(result: Result, fmt: str, names: Graph) -> str:
    if result.type in ("CONSTRUCT", "DESCRIBE"):
        assert result.graph is not None
        return result.graph.serialize(format="turtle")
    if fmt == "json":
        return _text(result.serialize(format="json")) + "\n"
    if result.type == "ASK":
        return ("true" if result.askAnswer else "false") + "\n"
    if fmt == "csv":
        return _text(result.serialize(format="csv"))
    return render_table(result, names)


def render_table(result: Result, names: Graph) -> str:
    header = [str(v) for v in result.vars or []]
    rows = [[_cell(names, row[i]) for i in range(len(header))] for row in result]
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip(),
             "  ".join("-" * w for w in widths)]
    lines.extend("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)
    lines.append(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
    return "\n".join(lines) + "\n"


def _cell(names: Graph, term: object) -> str:
    if term is None:
        return ""
    if isinstance(term, URIRef):
        return _short(names, str(term))
    return str(term)


def _text(data: bytes | str) -> str:
    return data.decode("utf-8") if isinstance(data, bytes) else data


######## export ########

def run_export(args: argparse.Namespace) -> int:
    guideline = Guideline.load()
    if args.format in EXPORT_OTHER:
        if args.inferred:
            raise InputError(f"--inferred applies to turtle, jsonld and nt, not to --format {args.format}")
        emit(export_other(guideline, args.format), args.out)
        return 0
    graph = inferred_graph(guideline) if args.inferred else guideline.graph
    fmt = EXPORT_FORMATS[args.format]
    if fmt == "json-ld":  # a local context of the prefixes in use: nothing to fetch, nothing unused
        text = graph.serialize(format="json-ld", context=used_prefixes(graph))
    else:
        text = graph.serialize(format=fmt)
    emit(text, args.out)
    return 0


def export_other(guideline: Guideline, fmt: str) -> str:
    if fmt == "owl":
        from reasoner.export_owl import owl_export

        return owl_export(guideline.graph)
    if fmt == "sssom":
        from reasoner.export_sssom import sssom_export

        return sssom_export(guideline)
    from reasoner.export_fhir import fhir_export

    return fhir_export(guideline)


def used_prefixes(graph: Graph) -> dict[str, str]:
    """The graph's prefixes whose namespace some IRI or datatype in it starts with."""
    iris = {str(t) for triple in graph for t in triple if isinstance(t, URIRef)}
    iris |= {str(o.datatype) for o in graph.objects() if isinstance(o, Literal) and o.datatype}
    return {prefix: str(ns) for prefix, ns in graph.namespaces()
            if prefix and any(iri.startswith(str(ns)) for iri in iris)}


######## IRIs as prefixed names ########

def _namespaces() -> Graph:
    names = Graph(bind_namespaces="rdflib")
    for prefix, namespace in (("gkg", GKG._NS), ("g", G), ("c", C), ("rule", RULE), ("shape", SHAPES),
                              ("cito", CITO), ("coding", CODING)):
        names.bind(prefix, namespace, override=True)
    return names


def _short_all(names: Graph, text: str) -> str:
    """Every IRI in a message as a prefixed name."""
    return _IRI.sub(lambda m: _short(names, m.group(0)), text)


def _short(names: Graph, text: str) -> str:
    if not text.startswith(("http://", "https://", "urn:")):
        return text
    try:
        return names.namespace_manager.normalizeUri(URIRef(text))
    except Exception:  # rdflib refuses some IRIs as prefixed names; show them whole
        return f"<{text}>"
