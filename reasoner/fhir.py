"""FHIR R4 Bundle (JSON) to a patient graph, as ``shared/contract/fhir-input.md`` describes.

Which code means which concept is read from the knowledge graph (``Guideline.code_map``),
never from a table here. Anything the mapping reads that is broken refuses the whole
input with an InputError naming the resource and field.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import datetime, timezone
from decimal import Decimal, localcontext
from typing import Any

from rdflib import RDF, XSD, Graph, Literal, URIRef

from reasoner.errors import InputError
from reasoner.guideline import Guideline
from reasoner.namespaces import GKG, LOINC, PATIENT_PREFIX

BUNDLE_TYPES = {"collection", "searchset", "transaction", "document"}
IGNORED_STATUS = {"entered-in-error", "cancelled"}
NOT_NOW = {"resolved", "inactive", "remission"}
ABSENT_INTERPRETATIONS = {"NEG", "ND"}
INTERPRETATION_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
REPORT_FINAL = {"final", "amended", "corrected"}
HISTORY_BY_NATURE = {"history-of-cancer"}
FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
FHIR_DATETIME = re.compile(r"\d{4}(-\d{2}(-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?)?)?)?")
MAX_DEPTH = 64
Triple = tuple[Any, Any, Any]


class PatientGraph:
    """A patient graph in the project's vocabulary, with where it came from.

    Made from an rdflib ``Graph`` or from a set of triples (the FHIR reader's): ``triples`` and
    ``graph`` each give the same triples, the other form built on first use.
    """

    def __init__(self, graph: Graph | None, patient: URIRef, identifier: str, origin: str,
                 sources: dict[str, str] | None = None, triples: set[Triple] | None = None) -> None:
        if graph is None and triples is None:
            raise ValueError("a patient graph needs a graph or triples")
        self._graph = graph
        self._triples = triples
        self.patient = patient
        self.identifier = identifier
        self.origin = origin  # "fhir" or "rdf"
        self.sources = sources if sources is not None else {}

    @property
    def graph(self) -> Graph:
        if self._graph is None:
            graph = Graph()
            for t in self._triples or ():
                graph.add(t)
            self._graph = graph
        return self._graph

    @property
    def triples(self) -> set[Triple]:
        if self._triples is None:
            self._triples = set(self.graph)
        return self._triples

    def __repr__(self) -> str:
        return f"PatientGraph({self.patient}, {self.origin})"


class _Triples(set):  # type: ignore[type-arg]
    """What the FHIR reader writes to: Graph.add's signature, a set's cost."""

    def add(self, triple: Triple) -> None:  # type: ignore[override]
        set.add(self, triple)

    def remove(self, pattern: tuple[Any, Any, Any]) -> None:  # type: ignore[override]
        """Graph.remove: every triple matching the pattern, None a wildcard."""
        for t in [t for t in self if all(x is None or x == y for x, y in zip(pattern, t))]:
            self.discard(t)


def mint_patient_iri(identifier: str) -> URIRef:
    """A deterministic IRI that does not spell out the identifier (it may be a medical record number)."""
    return URIRef(PATIENT_PREFIX + str(uuid.uuid5(uuid.NAMESPACE_URL, "urn:guideline-kg:patient:" + identifier)))


def _reject_constant(name: str) -> Any:
    raise InputError(f"input: {name} is not a JSON number")


def load_json(text: str, what: str = "input") -> Any:
    try:
        value = json.loads(text, parse_float=Decimal, parse_constant=_reject_constant)
    except RecursionError:
        raise InputError(f"{what}: JSON nested too deeply") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{what}: not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except (ValueError, ArithmeticError):  # an integer over 4300 digits, a decimal exponent out of range
        raise InputError(f"{what}: a number in the JSON is too large to read") from None
    # a surrogate can only come from the text itself or from a \\ud800-\\udfff escape in it
    if _SURROGATE_ESCAPE.search(text) is not None or not _encodes(text):
        _check_strings(value, what)
    if isinstance(value, (dict, list)):
        _check_nesting(value, 0, what)
    return value


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _encodes(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check_nesting(item: dict[str, Any] | list[Any], depth: int, what: str) -> None:
    """Nesting within MAX_DEPTH, walked over containers only: a leaf cannot be deeper than its container's
    depth + 1 (the recursion stops at MAX_DEPTH)."""
    children = item.values() if isinstance(item, dict) else item
    if children and depth + 1 > MAX_DEPTH:  # a key or a value one level down (keys come with values)
        raise InputError(f"{what}: JSON nested deeper than {MAX_DEPTH} levels")
    for child in children:
        if isinstance(child, (dict, list)):
            _check_nesting(child, depth + 1, what)


def _check_strings(value: Any, what: str) -> None:
    """Every string Unicode text (a lone surrogate escape such as \\ud800 is not)."""
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError as exc:
                code = ord(item[exc.start])
                raise InputError(f"{what}: a string holds \\u{code:04x}, an unpaired surrogate, not text") from None
        elif isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


class _Resource:
    """One resource of the bundle with the name used in messages (``Observation/o3``)."""

    def __init__(self, data: dict[str, Any], index: int) -> None:
        self.data = data
        self.type = data["resourceType"]
        rid = data.get("id")
        self.id = rid if isinstance(rid, str) and FHIR_ID.fullmatch(rid) else None
        self.name = f"{self.type}/{self.id}" if self.id else f"Bundle.entry[{index}]"
        self.slug = f"{self.type}/{self.id}" if self.id else f"{self.type}/entry{index}"

    def fail(self, field_name: str, problem: str) -> InputError:
        return InputError(f"{self.name}: {field_name} {problem}")

    def codeable(self, field_name: str, value: Any) -> list[tuple[str, str]]:
        """The (system, code) pairs of a CodeableConcept; refuses one that is not."""
        if not isinstance(value, dict):
            raise self.fail(field_name, "is not a CodeableConcept")
        codings = value.get("coding", [])
        if not isinstance(codings, list):
            raise self.fail(field_name + ".coding", "is not a list")
        pairs = []
        for i, coding in enumerate(codings):
            if not isinstance(coding, dict):
                raise self.fail(f"{field_name}.coding[{i}]", "is not a Coding")
            system, code = coding.get("system"), coding.get("code")
            if system is not None and not isinstance(system, str) or code is not None and not isinstance(code, str):
                raise self.fail(f"{field_name}.coding[{i}]", "has a system or code that is not a string")
            if system and code:
                pairs.append((system, code))
        return pairs

    def codeables(self, field_name: str) -> list[tuple[str, str]]:
        """A field that may hold one CodeableConcept or a list of them (bodySite, conclusionCode)."""
        value = self.data.get(field_name)
        if value is None:
            return []
        items = value if isinstance(value, list) else [value]
        return [pair for i, item in enumerate(items) for pair in self.codeable(
            f"{field_name}[{i}]" if isinstance(value, list) else field_name, item)]

    def status_code(self, field_name: str) -> str | None:
        value = self.data.get(field_name)
        if value is None:
            return None
        pairs = self.codeable(field_name, value)
        return pairs[0][1] if pairs else None

    def plain_status(self) -> str | None:
        status = self.data.get("status")
        if status is not None and not isinstance(status, str):
            raise self.fail("status", "is not a code")
        return status


class BundleReader:
    """Turns one Bundle into a patient graph."""

    def __init__(self, guideline: Guideline) -> None:
        self.guideline = guideline
        self.codes = guideline.code_map
        self.kinds = {key: c.kind for key, c in guideline.concepts.items()}

    def read(self, bundle: Any) -> PatientGraph:
        resources = self._resources(bundle)
        patients = [r for r in resources if r.type == "Patient"]
        if len(patients) != 1:
            raise InputError(f"Bundle: holds {len(patients)} Patient resources; exactly one Patient is required")
        patient = patients[0]
        identifier = self._identifier(patient)
        references = self._patient_references(bundle, patient)
        iri = mint_patient_iri(identifier)
        graph = _Triples()
        graph.add((iri, RDF.type, GKG.Patient))
        graph.add((iri, GKG.identifier, Literal(identifier)))
        graph.add((iri, GKG.source, Literal(patient.name)))
        self.iri = iri
        self.graph = graph
        for resource in resources:
            if resource.type == "Patient":
                continue
            self._check_subject(resource, references)
            handler = getattr(self, "_" + resource.type.lower(), None)
            if handler is not None:
                handler(resource)
        return PatientGraph(None, iri, identifier, "fhir", triples=graph)

    # ---- structure ----

    def _resources(self, bundle: Any) -> list[_Resource]:
        if not isinstance(bundle, dict):
            raise InputError("input: not a FHIR R4 Bundle (the JSON is not an object)")
        if bundle.get("resourceType") != "Bundle":
            raise InputError(f"input: resourceType is {str(bundle.get('resourceType'))[:40]!r}, a FHIR R4 Bundle is required")
        bundle_type = bundle.get("type")
        if not isinstance(bundle_type, str) or bundle_type not in BUNDLE_TYPES:
            raise InputError(f"Bundle: type {str(bundle_type)[:40]!r} is not one of {', '.join(sorted(BUNDLE_TYPES))}")
        entries = bundle.get("entry")
        if not isinstance(entries, list):
            raise InputError("Bundle: entry is missing or not a list")
        resources = []
        seen: set[str] = set()
        for index, entry in enumerate(entries):
            if not isinstance(entry, dict) or not isinstance(entry.get("resource"), dict):
                raise InputError(f"Bundle.entry[{index}]: resource is missing or not an object")
            data = entry["resource"]
            if not isinstance(data.get("resourceType"), str):
                raise InputError(f"Bundle.entry[{index}]: resourceType is missing or not a string")
            if "id" in data and not (isinstance(data["id"], str) and FHIR_ID.fullmatch(data["id"])):
                raise InputError(f"Bundle.entry[{index}]: id {str(data['id'])[:40]!r} is not a FHIR id")
            resource = _Resource(data, index)
            if resource.id:
                if resource.name in seen:
                    raise InputError(f"{resource.name}: id is used twice in the bundle")
                seen.add(resource.name)
            resources.append(resource)
        return resources

    @staticmethod
    def _identifier(patient: _Resource) -> str:
        identifiers = patient.data.get("identifier", [])
        if not isinstance(identifiers, list):
            raise patient.fail("identifier", "is not a list")
        for i, ident in enumerate(identifiers):
            if not isinstance(ident, dict):
                raise patient.fail(f"identifier[{i}]", "is not an Identifier")
            value = ident.get("value")
            if value is not None and not isinstance(value, str):
                raise patient.fail(f"identifier[{i}].value", "is not a string")
            if value:
                return value
        if patient.id:
            return patient.id
        raise patient.fail("identifier", "and id are both missing: the patient cannot be named")

    @staticmethod
    def _patient_references(bundle: dict[str, Any], patient: _Resource) -> set[str]:
        refs = {patient.name} if patient.id else set()
        for entry in bundle["entry"]:
            if entry["resource"] is patient.data and isinstance(entry.get("fullUrl"), str):
                refs.add(entry["fullUrl"])
        return refs

    def _check_subject(self, resource: _Resource, references: set[str]) -> None:
        for field_name in ("subject", "patient"):
            value = resource.data.get(field_name)
            if value is None:
                continue
            if not isinstance(value, dict):
                raise resource.fail(field_name, "is not a Reference")
            ref = value.get("reference")
            if ref is None:
                continue
            if not isinstance(ref, str):
                raise resource.fail(f"{field_name}.reference", "is not a string")
            if ref not in references:  # "Patient/<id>" or the Patient entry's fullUrl, exactly
                raise resource.fail(f"{field_name}.reference", f"{ref[:80]!r} names a patient that is not in the bundle")

    # ---- graph writing ----

    def _fact(self, resource: _Resource, key: str, status: URIRef, verification: str | None = None) -> None:
        fact = URIRef(f"{self.iri}/fact/{resource.slug}/{key}")
        concept = self.guideline.concepts[key].iri
        g = self.graph
        g.add((self.iri, GKG.hasFinding, fact))
        g.add((fact, RDF.type, GKG.PatientFinding))
        g.add((fact, GKG.concept, concept))
        g.add((fact, GKG.origin, GKG.asserted))
        g.add((fact, GKG.source, Literal(resource.name)))
        if (fact, GKG.status, GKG.present) in g or status == GKG.present:
            g.remove((fact, GKG.status, None))
            g.add((fact, GKG.status, GKG.present))
        else:
            g.add((fact, GKG.status, status))
        if verification:
            g.add((fact, GKG.verification, Literal(verification)))

    def _note(self, resource: _Resource, kind: URIRef, detail: str) -> None:
        note = URIRef(f"{self.iri}/note/{resource.slug}")
        self.graph.add((self.iri, GKG.hasNote, note))
        self.graph.add((note, RDF.type, kind))
        self.graph.add((note, GKG.source, Literal(resource.name)))
        self.graph.add((note, GKG.detail, Literal(detail)))

    def _keys(self, pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """(key, match) for every coding that stands for a concept, in order, once per key."""
        found: dict[str, str] = {}
        for pair in pairs:
            hit = self.codes.get(pair)
            if hit and hit[0] not in found:
                found[hit[0]] = hit[1].match
        return list(found.items())

    def _lumbar(self, resource: _Resource) -> bool:
        return any(pair in self.guideline.lumbar_sites for pair in resource.codeables("bodySite"))

    def _record(self, resource: _Resource, pairs: list[tuple[str, str]], status: URIRef,
                verification: str | None = None) -> None:
        for key, match in self._keys(pairs):
            if match == "needs-lumbar-site" and not self._lumbar(resource):
                self._note(resource, GKG.MassWithoutLumbarSite,
                           "a palpable mass is documented without a lumbar body site; it counts as the guideline's "
                           "mid-lumbar mass only with bodySite SNOMED 52612000 or 122496007")
                continue
            self._fact(resource, key, status, verification)

    # ---- resources ----

    def _condition(self, r: _Resource) -> None:
        pairs = r.codeable("code", r.data.get("code", {}))
        verification = r.status_code("verificationStatus")
        clinical = r.status_code("clinicalStatus")
        r.codeables("bodySite")  # validates the datatype even where no mass is coded
        if verification == "entered-in-error":
            return
        status = GKG.absent if verification == "refuted" else GKG.present
        if clinical in NOT_NOW and status == GKG.present:
            pairs = [p for p in pairs if self.codes.get(p, ("",))[0] in HISTORY_BY_NATURE]
        self._record(r, pairs, status, verification)

    def _flag(self, r: _Resource) -> None:
        status = r.plain_status()
        if status in IGNORED_STATUS or status == "inactive":
            return
        self._record(r, r.codeable("code", r.data.get("code", {})), GKG.present)

    def _observation(self, r: _Resource) -> None:
        status = r.plain_status()
        code_pairs = r.codeable("code", r.data.get("code", {}))
        r.codeables("bodySite")
        if status in IGNORED_STATUS:
            return
        for system, code in code_pairs:
            if system == "http://loinc.org" and code in self.guideline.measurements and "valueQuantity" in r.data:
                self._vital_sign(r, code)
                return
        absent = r.data.get("valueBoolean") is False or any(
            code in ABSENT_INTERPRETATIONS for _, code in r.codeables("interpretation"))
        if "valueBoolean" in r.data and not isinstance(r.data["valueBoolean"], bool):
            raise r.fail("valueBoolean", "is not a boolean")
        self._record(r, code_pairs, GKG.absent if absent else GKG.present)
        if "valueCodeableConcept" in r.data:
            value_pairs = r.codeable("valueCodeableConcept", r.data["valueCodeableConcept"])
            self._record(r, value_pairs, GKG.absent if absent else GKG.present)

    def _vital_sign(self, r: _Resource, loinc: str) -> None:
        quantity = r.data["valueQuantity"]
        if not isinstance(quantity, dict):
            raise r.fail("valueQuantity", "is not a Quantity")
        value = quantity.get("value")
        if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
            raise r.fail("valueQuantity.value", f"{str(value)[:40]!r} is not a number")
        unit = quantity.get("code", quantity.get("unit"))
        if not isinstance(unit, str):
            raise r.fail("valueQuantity.code", "is missing: the unit cannot be read")
        measurement, canonical = self.guideline.measurements[loinc]
        conversion = self.guideline.conversions.get(unit)
        if conversion is None or conversion.to_unit != canonical:
            raise r.fail("valueQuantity.code", f"{unit[:40]!r} cannot be converted to {canonical}")
        try:  # exact up to 1e400 (past any double, e.g. 1e308, which the plausible-range shape then reports)
            with localcontext() as context:
                context.prec = 500
                converted = ((Decimal(value) + conversion.offset) * conversion.factor).quantize(Decimal("0.01"))
        except ArithmeticError:
            raise r.fail("valueQuantity.value", "is out of range") from None
        vital = URIRef(f"{self.iri}/vital/{r.slug}")
        g = self.graph
        g.add((self.iri, GKG.hasVitalSign, vital))
        g.add((vital, RDF.type, GKG.VitalSign))
        g.add((vital, GKG.measurement, measurement))
        g.add((vital, GKG.value, Literal(converted, datatype=XSD.decimal)))
        g.add((vital, GKG.unit, Literal(canonical)))
        g.add((vital, GKG.originalValue, Literal(str(value))))
        g.add((vital, GKG.originalUnit, Literal(unit)))
        g.add((vital, GKG.source, Literal(r.name)))
        effective = self._effective(r)
        if effective is not None:
            g.add((vital, GKG.effective, Literal(effective, datatype=XSD.dateTime)))

    @staticmethod
    def _effective(r: _Resource) -> str | None:
        for field_name in ("effectiveDateTime", "effectiveInstant"):
            if field_name in r.data:
                return _datetime(r, field_name, r.data[field_name])
        period = r.data.get("effectivePeriod")
        if isinstance(period, dict) and "start" in period:
            return _datetime(r, "effectivePeriod.start", period["start"])
        return None

    def _diagnosticreport(self, r: _Resource) -> None:
        status = r.plain_status()
        pairs = r.codeable("code", r.data.get("code", {}))
        conclusions = r.codeables("conclusionCode")
        if status not in REPORT_FINAL:
            return
        studies = [k for k, _ in self._keys(pairs) if self.kinds.get(k) == "imaging"]
        if not studies:
            return
        result = URIRef(f"{self.iri}/result/{r.slug}")
        g = self.graph
        g.add((self.iri, GKG.hasImagingResult, result))
        g.add((result, RDF.type, GKG.ImagingResult))
        g.add((result, GKG.study, self.guideline.concepts[studies[0]].iri))
        g.add((result, GKG.source, Literal(r.name)))
        effective = self._effective(r) or (_datetime(r, "issued", r.data["issued"]) if "issued" in r.data else None)
        if effective is not None:
            g.add((result, GKG.effective, Literal(effective, datatype=XSD.dateTime)))
        matched = self._keys(conclusions)
        for key, _ in matched:
            node = URIRef(f"{result}/shows/{key}")
            g.add((result, GKG.shows, node))
            g.add((node, GKG.concept, self.guideline.concepts[key].iri))
        unmatched = [f"{s}|{c}" for s, c in conclusions if (s, c) not in self.codes]
        if unmatched or not matched:
            what = ", ".join(unmatched) if unmatched else "no conclusionCode"
            self._note(r, GKG.UnmatchedConclusion,
                       f"the imaging report's conclusions match no concept of the guideline ({what[:200]}); "
                       "it counts as done but its result is not used")


def _datetime(r: _Resource, field_name: str, value: Any) -> str:
    if not isinstance(value, str) or not FHIR_DATETIME.fullmatch(value):
        raise r.fail(field_name, f"{str(value)[:40]!r} is not a FHIR dateTime")
    text = value
    if len(text) == 4:
        text += "-01-01"
    elif len(text) == 7:
        text += "-01"
    if "T" not in text:
        text += "T00:00:00"
    text = text.replace("Z", "+00:00")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise r.fail(field_name, f"{value[:40]!r} is not a valid date") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S") + "Z"


def read_bundle(guideline: Guideline, text: str) -> PatientGraph:
    return BundleReader(guideline).read(load_json(text))


__all__ = ["PatientGraph", "read_bundle", "mint_patient_iri", "load_json", "LOINC"]
