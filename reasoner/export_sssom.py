"""``guideline-kg export --format sssom``: the concepts' mappings to standard codes as an SSSOM mapping set.

One row per code of the terminology (``queries/export/sssom.rq``), so exactly the mappings the
graph states with SKOS: subject the concept, predicate the SKOS property of the code's match
kind, object the code under its code system's CURIE prefix. The metadata block (curie map,
mapping set id, version, licence) comes from the umbrella ontology and the code systems of
the graph. Concepts without a standard code are not rows: SSSOM has no row for "no mapping";
the graph states why (``gkg:withoutStandardCode``).
"""

from __future__ import annotations

import csv
import io

from reasoner import resources
from reasoner.errors import GuidelineError
from reasoner.guideline import Guideline
from reasoner.namespaces import C
from reasoner.queries import load_query

SUBJECT_PREFIX = "GKGC"  # the CURIE prefix of the guideline's concepts
JUSTIFICATION = "semapv:ManualMappingCuration"  # every code was curated by hand from a published source
COLUMNS = ("subject_id", "subject_label", "predicate_id", "object_id", "object_label",
           "mapping_justification", "comment")
FIXED_PREFIXES = {"skos": "http://www.w3.org/2004/02/skos/core#", "semapv": "https://w3id.org/semapv/vocab/"}


def _select(guideline: Guideline, name: str) -> list[dict[str, object]]:
    query = load_query(resources.queries_dir() / "export" / f"{name}.rq")
    result = guideline.graph.query(query.prepared())
    return [{str(k): v for k, v in row.asdict().items()} for row in result]


def metadata(guideline: Guideline) -> dict[str, str]:
    """The umbrella ontology's IRI, title, version, licence (one row, or a one-line error)."""
    rows = _select(guideline, "metadata")
    if len(rows) != 1:
        raise GuidelineError(f"the export needs one umbrella ontology header with title, version and licence; found {len(rows)}")
    return {k: str(v) for k, v in rows[0].items() if v is not None}


def _curie(predicate: str, prefixes: dict[str, str]) -> str:
    for prefix, namespace in prefixes.items():
        if predicate.startswith(namespace):
            return f"{prefix}:{predicate[len(namespace):]}"
    raise GuidelineError(f"mapping predicate <{predicate}> is in no namespace of the SSSOM curie map")


def _yaml_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def sssom_export(guideline: Guideline) -> str:
    rows = _select(guideline, "sssom")
    meta = metadata(guideline)
    prefixes = {SUBJECT_PREFIX: str(C), **FIXED_PREFIXES}
    for row in rows:
        prefix, namespace = str(row["prefix"]), str(row["iriPrefix"])
        if prefixes.setdefault(prefix, namespace) != namespace:
            raise GuidelineError(f"CURIE prefix {prefix} names two IRI schemes: {prefixes[prefix]} and {namespace}")
    head = ["curie_map:"]
    head += [f"  {prefix}: {_yaml_string(namespace)}" for prefix, namespace in sorted(prefixes.items())]
    head += [f"mapping_set_id: {_yaml_string(meta['ontology'] + '/mappings')}",
             f"mapping_set_version: {_yaml_string(meta['version'])}",
             f"mapping_set_title: {_yaml_string(meta['title'] + ': concept mappings')}",
             f"license: {_yaml_string(meta['license'])}",
             f"subject_source: {_yaml_string(meta['ontology'])}",
             f"mapping_set_description: {_yaml_string('One mapping per verified standard code of a concept; the predicate follows the code match kind (exact, close, narrow, broad; a code that needs a lumbar body site is narrowMatch, its condition in the comment).')}"]
    if "creator" in meta:
        head += ["creator_label:", f"  - {_yaml_string(meta['creator'])}"]
    if "modified" in meta:
        head.append(f"mapping_date: {_yaml_string(meta['modified'])}")
    out = io.StringIO()
    out.write("".join(f"#{line}\n" for line in head))
    writer = csv.writer(out, delimiter="\t", lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in rows:
        comment = "; ".join([f"match: {row['match']}",
                             *([f"maps {row['condition']}"] if row.get("condition") else []),
                             *([f"note: {row['note']}"] if row.get("note") else [])])
        writer.writerow([f"{SUBJECT_PREFIX}:{row['key']}", str(row["label"]), _curie(str(row["predicate"]), prefixes),
                         f"{row['prefix']}:{row['code']}", str(row.get("display") or ""), JUSTIFICATION, comment])
    return out.getvalue()
