"""The reference engine's outcomes, kept under a key of everything they depend on.

A reference report is a function of the patient's text, the encoding (ontology, shapes, queries),
the code the reference pipeline can run (the modules ``reasoner.engine``, ``reasoner.report`` and
``reasoner.patient`` import, directly or inside functions) and the versions of rdflib, owlrl and
pySHACL: nothing else. ``reference_key`` digests all but the text, and each stored outcome is
named by the digest of its text, so an outcome kept under the current key is the one the
reference would compute now. tests/test_fast_engine.py compares the fast engine with the
outcomes stored in the repository (``STORED``); ``tools/reference_reports.py`` computes them.

An outcome is the JSON report (bytes as the reference writes them) and, for a patient that
reaches reasoning, the triples the reference derives beyond its own closure of the guideline
(about resources: owlrl's typing of literals as subjects is left out, as no query reads it), as Turtle.
"""

from __future__ import annotations

import ast
import hashlib
import json
import multiprocessing
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rdflib import Graph, Literal

ROOT = Path(__file__).resolve().parents[1]
STORED = ROOT / "tests" / "reference-reports"
ENTRY_MODULES = ("reasoner.engine", "reasoner.report", "reasoner.patient")
# the encoding files the reference reads: Guideline.load reads the ontology, the shapes and these query folders
ENCODING = (("ontology", "*.ttl"), ("shapes", "*.ttl"), ("queries/rules", "*.rq"), ("queries/engine", "*.rq"),
            ("queries/report", "*.rq"))
LIBRARIES = ("rdflib", "owlrl", "pyshacl")
MANIFEST = "manifest.json"
REGENERATE = "python3 tools/reference_reports.py"
# Every reference outcome is reasoned at this one instant (input decisions depend on the reasoning time: a time more
# than 24 hours after it is treated as undated, a Flag's period is read against it), so it is part of the key.
REFERENCE_NOW = "2026-01-15T12:00:00Z"
# The cases of tests/cases/ compared too: one of each input decision (units, exact thresholds, comparators, time order,
# value qualifiers, references, status filters) and every case of the serious-pathology exclusion, follow-up
# supersession, CT-when-MRI-cannot-be-had and substitute-urgency decisions, and a unit whose backslashes a message
# names (SHACL message templates are filled literally by both engines).
CASES = (
    "against-conservative-management/in-older-negative-mri-newer-metastasis",
    "against-conservative-management/out-newer-negative-mri-supersedes-older-metastasis",
    "against-physical-therapy/in-dated-negative-mri-undated-pathologic-fracture",
    "against-physical-therapy/in-negative-ct-mri-unavailable",
    "against-physical-therapy/in-negative-mri-confirmed-lumbar-discitis",
    "against-physical-therapy/in-negative-mri-newer-radiograph-metastasis",
    "against-physical-therapy/in-negative-mri-provisional-malignancy",
    "against-physical-therapy/in-negative-mri-sepsis",
    "against-physical-therapy/in-newer-mri-without-coded-conclusion",
    "against-physical-therapy/in-older-negative-mri-newer-metastasis",
    "against-physical-therapy/in-undated-negative-and-positive-mri",
    "against-physical-therapy/out-newer-negative-mri-supersedes-older-metastasis",
    "antimicrobial-therapy-if-infection/in-ct-abscess-mri-unavailable",
    "antimicrobial-therapy-if-infection/out-abscess-gone-on-newer-mri",
    "biopsy-if-malignancy/in-ct-metastasis-mri-unavailable",
    "biopsy-if-malignancy/out-metastasis-superseded-by-newer-negative-mri",
    "cauda-equina-emergent-ct-myelography/in-mri-contraindicated",
    "cauda-equina-emergent-ct-myelography/out-mri-unavailable",
    "cauda-equina-emergent-ct-myelography/out-myelography-done",
    "cauda-equina-emergent-ct/in-mri-contraindicated",
    "cauda-equina-emergent-ct/in-mri-unavailable",
    "cauda-equina-emergent-ct/out-ct-done",
    "cauda-equina-emergent-ct/out-mri-possible",
    "ct-myelography-when-mri-contraindicated-with-deficit/in-progressive-deficit-immediate",
    "ct-when-mri-contraindicated-or-unavailable/out-flag-period-ended",
    "oncology-referral-if-malignancy/out-metastasis-superseded-by-newer-negative-mri",
    "reassess-if-imaging-negative/in-negative-mri-dated-in-the-future",
    "reassess-if-imaging-negative/in-newer-negative-mri-supersedes-older-metastasis",
    "reassess-if-imaging-negative/out-negative-ct-mri-unavailable",
    "reassess-if-imaging-negative/out-negative-mri-confirmed-lumbar-discitis",
    "reassess-if-imaging-negative/out-negative-mri-status-unknown",
    "reassess-if-imaging-negative/out-older-negative-mri-newer-metastasis",
    "red-flag-fever/in-comparator-undecided-next-most-recent-counts",
    "red-flag-fever/in-future-reading-treated-as-undated",
    "red-flag-fever/in-partial-date-is-its-first-instant",
    "red-flag-fever/in-subject-urn-uuid",
    "red-flag-fever/in-temperature-311-15-kelvin",
    "red-flag-fever/out-mixed-dated-afebrile-undated-febrile",
    "red-flag-fever/out-observation-value-absent",
    "red-flag-fever/out-temperature-37-996-cel",
    "red-flag-fever/out-temperature-45-004-cel-violation",
    "red-flag-fever/out-unit-with-backslashes-left-out",
    "red-flag-tachycardia/in-comparator-above-100",
    "red-flag-tachycardia/in-heart-rate-per-second",
    "red-flag-tachycardia/out-unit-bpm-left-out",
    "surgical-excision-if-benign-tumor/in-ct-benign-mri-unavailable",
    "surgical-excision-if-benign-tumor/in-older-negative-newer-benign",
    "surgical-excision-if-benign-tumor/out-benign-superseded-by-newer-negative-mri",
)

Triple = tuple[Any, Any, Any]


# ---- the key ----


def _module_file(name: str, root: Path) -> Path | None:
    path = root.joinpath(*name.split("."))
    if (path / "__init__.py").is_file():
        return path / "__init__.py"
    return path.with_suffix(".py") if path.with_suffix(".py").is_file() else None


def _imported(name: str, path: Path) -> set[str]:
    """Every ``reasoner`` module a module imports, at its head or inside a function."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_bytes())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names)
    return {m for m in found if m.split(".")[0] == "reasoner"}


def reference_modules(root: Path = ROOT) -> list[Path]:
    """The source files of the modules the reference pipeline can run, with the packages they sit in."""
    seen: dict[str, Path] = {}
    todo = list(ENTRY_MODULES)
    while todo:
        name = todo.pop()
        path = _module_file(name, root)
        if name in seen or path is None:
            continue
        seen[name] = path
        parts = name.split(".")
        todo.extend(".".join(parts[:i]) for i in range(1, len(parts)))  # a module's packages run first
        todo.extend(_imported(name, path))
    return sorted(seen.values())


def key_parts(root: Path = ROOT) -> dict[str, str]:
    """What a reference report depends on (its patient's text aside), each part by its digest."""
    from importlib.metadata import version

    parts = {f"library {name}": version(name) for name in LIBRARIES}
    parts["reasoning time"] = REFERENCE_NOW
    files = reference_modules(root) + sorted(p for folder, pattern in ENCODING for p in (root / folder).glob(pattern))
    for path in files:
        parts[path.relative_to(root).as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    return parts


def reference_key(root: Path = ROOT) -> str:
    digest = hashlib.sha256(json.dumps(key_parts(root), sort_keys=True).encode())
    return digest.hexdigest()[:24]


def reasoning_time() -> Any:
    from reasoner.clock import parse_instant

    return parse_instant(REFERENCE_NOW)


def text_name(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# ---- the inputs ----


def reference_inputs(root: Path = ROOT) -> dict[str, str]:
    """The inputs the fast engine is compared on: every example, and the first patient of every cohort branch."""
    from benchmarks.cohort import BY_NAME, branch_of, generate

    named = {f"example/{p.stem}": p.read_text(encoding="utf-8") for p in sorted((root / "examples").glob("*.json"))}
    found: dict[str, str] = {}
    for bundle in generate(5000, seed=7):
        branch = branch_of(bundle)
        found.setdefault(f"cohort/{branch}", json.dumps(bundle))
        if len(found) == len(BY_NAME):
            break
    missing = sorted(set(BY_NAME) - {k.removeprefix("cohort/") for k in found})
    if missing:
        raise RuntimeError(f"no patient of cohort branch(es) {missing} among the first 5,000 of seed 7")
    named.update(sorted(found.items()))
    named.update({f"cases/{c}": (root / "tests" / "cases" / c / "bundle.json").read_text(encoding="utf-8") for c in CASES})
    return named


# ---- outcomes ----


@dataclass(frozen=True)
class Outcome:
    """The reference's JSON report, and what it derived as Turtle (None: the patient was refused by a Violation)."""

    report: str
    derived: str | None


def about_resources(triples: Iterable[Triple]) -> set[Triple]:
    """The triples whose subject is an IRI or a blank node (owlrl types literals too, more with each closure)."""
    return {t for t in triples if not isinstance(t[0], Literal)}


def turtle(triples: Iterable[Triple], prefixes: Iterable[tuple[str, Any]]) -> str:
    """The triples as Turtle with the guideline's prefixes (rdflib writes subjects and objects sorted)."""
    graph = Graph(bind_namespaces="none")
    for prefix, namespace in prefixes:
        graph.bind(prefix, namespace)
    for t in triples:
        graph.add(t)
    return graph.serialize(format="turtle")


def parse_turtle(text: str) -> set[Triple]:
    return set(Graph().parse(data=text, format="turtle"))


def closed_guideline_by_reference(guideline: Any) -> set[Triple]:
    """The reference's own closure of the guideline alone (what a patient's derivations are stored beyond)."""
    from reasoner.engine import closure

    graph = Graph()
    graph += guideline.graph
    closure(graph)
    return about_resources(graph)


_WORKER: dict[str, Any] = {}


def _init_worker() -> None:
    from reasoner.engine import ReferenceEngine
    from reasoner.guideline import Guideline

    guideline = Guideline.load()
    _WORKER.update(guideline=guideline, engine=ReferenceEngine(guideline),
                   base=closed_guideline_by_reference(guideline))


def _outcome(item: tuple[str, str]) -> tuple[str, Outcome]:
    from reasoner.patient import parse_patient
    from reasoner.report import build_report

    name, text = item
    guideline, base = _WORKER["guideline"], _WORKER["base"]
    reasoned = _WORKER["engine"].reason(parse_patient(guideline, text, "json", name, reasoning_time()))
    report = build_report(guideline, reasoned).to_json()
    if reasoned.graph is None:
        return name, Outcome(report, None)
    triples = about_resources(reasoned.graph)
    if not base <= triples:  # the stored form (derived beyond the guideline's closure) would lose these
        raise RuntimeError(f"{name}: the reference's graph lacks {len(base - triples)} triples of the guideline's closure")
    return name, Outcome(report, turtle(triples - base, guideline.graph.namespaces()))


def compute(inputs: dict[str, str], jobs: int) -> Iterator[tuple[str, Outcome]]:
    """The reference's outcome of each input, with ``jobs`` worker processes, as they finish."""
    with multiprocessing.get_context("fork").Pool(max(jobs, 1), initializer=_init_worker) as pool:
        yield from pool.imap_unordered(_outcome, sorted(inputs.items()), chunksize=1)


# ---- the stored set ----


def write(folder: Path, text: str, outcome: Outcome) -> None:
    """One outcome, its files written whole (a temporary name, then renamed)."""
    folder.mkdir(parents=True, exist_ok=True)
    name = text_name(text)
    files = {f"{name}.report.json": outcome.report}
    if outcome.derived is not None:
        files[f"{name}.derived.ttl"] = outcome.derived
    for file, content in files.items():
        tmp = folder / (file + ".tmp")
        tmp.write_text(content, encoding="utf-8")
        tmp.replace(folder / file)


def read(folder: Path, text: str) -> Outcome | None:
    """The stored outcome of a text, None when it is not stored."""
    name = text_name(text)
    try:
        report = (folder / f"{name}.report.json").read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    derived_file = folder / f"{name}.derived.ttl"
    derived = derived_file.read_text(encoding="utf-8") if derived_file.exists() else None
    return Outcome(report, derived)


def write_manifest(folder: Path, inputs: dict[str, str], parts: dict[str, str]) -> None:
    """Written last: a folder with a manifest holds every input's outcome."""
    manifest = {"key": reference_key(), "key_parts": parts,
                "inputs": {name: text_name(text) for name, text in sorted(inputs.items())}}
    tmp = folder / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(folder / MANIFEST)


def stale_reason(stored: Path = STORED, root: Path = ROOT) -> str | None:
    """Why the stored outcomes are not those of the current key (what changed), None when they are."""
    key = reference_key(root)
    if (stored / key / MANIFEST).is_file():
        return None
    others = sorted(p for p in stored.glob(f"*/{MANIFEST}"))
    if not others:
        return f"no stored reference outcomes (key {key}) in {stored.relative_to(root)}"
    before = json.loads(others[-1].read_text(encoding="utf-8")).get("key_parts", {})
    now = key_parts(root)
    changed = sorted(k for k in before.keys() | now.keys() if before.get(k) != now.get(k))
    shown = ", ".join(changed[:8]) + (f" and {len(changed) - 8} more" if len(changed) > 8 else "")
    return (f"the stored reference outcomes ({others[-1].parent.name}) are for another reference: "
            f"changed since: {shown or 'nothing named (the key scheme)'}")


def regenerate(jobs: int, stored: Path = STORED, root: Path = ROOT, log: Any = None) -> tuple[Path, int]:
    """Store the reference outcome of every input under the current key; other keys' folders go. (folder, computed)"""
    key, parts = reference_key(root), key_parts(root)
    folder = stored / key
    inputs = reference_inputs(root)
    todo = {name: text for name, text in inputs.items() if read(folder, text) is None}
    for done, (name, outcome) in enumerate(compute(todo, jobs), 1):
        write(folder, inputs[name], outcome)
        if log is not None:
            print(f"  {done}/{len(todo)} {name}", file=log, flush=True)
    write_manifest(folder, inputs, parts)
    kept = {text_name(t) for t in inputs.values()}
    for path in folder.iterdir():
        if path.name != MANIFEST and path.name.split(".")[0] not in kept:
            path.unlink()
    for other in stored.iterdir():
        if other.is_dir() and other.name != key:
            shutil.rmtree(other)
    return folder, len(todo)
