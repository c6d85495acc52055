"""FHIR R4 Bundle (JSON) to a patient graph, as ``shared/contract/fhir-input.md`` describes.

Which code means which concept, which unit converts how, which value or interpretation says
present or absent, and every threshold are read from the knowledge graph (``Guideline``), never
from a table here; this module names only FHIR's own structure (resource types, elements,
status codes). Anything the mapping reads that is broken refuses the whole input with an
InputError naming the resource and field; a measurement the contract cannot read (an unknown
unit, a bound that decides nothing, a time in the future) is left out with a Warning instead.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal, localcontext, MAX_EMAX, MIN_EMIN
from fractions import Fraction
from typing import Any, Callable

from rdflib import RDF, XSD, Graph, Literal, URIRef

from reasoner.clock import format_instant, current_instant
from reasoner.errors import InputError
from reasoner.guideline import Guideline, Measurement
from reasoner.namespaces import GKG, LOINC, PATIENT_PREFIX

BUNDLE_TYPES = {"collection", "searchset", "transaction", "document"}
# FHIR R4 resource types (https://hl7.org/fhir/R4/resourcelist.html): a resourceType is one of these,
# spelled exactly, or the input is refused. Only the types of READERS are read.
RESOURCE_TYPES = frozenset("""
Account ActivityDefinition AdverseEvent AllergyIntolerance Appointment AppointmentResponse AuditEvent Basic Binary
BiologicallyDerivedProduct BodyStructure Bundle CapabilityStatement CarePlan CareTeam CatalogEntry ChargeItem
ChargeItemDefinition Claim ClaimResponse ClinicalImpression CodeSystem Communication CommunicationRequest
CompartmentDefinition Composition ConceptMap Condition Consent Contract Coverage CoverageEligibilityRequest
CoverageEligibilityResponse DetectedIssue Device DeviceDefinition DeviceMetric DeviceRequest DeviceUseStatement
DiagnosticReport DocumentManifest DocumentReference EffectEvidenceSynthesis Encounter Endpoint EnrollmentRequest
EnrollmentResponse EpisodeOfCare EventDefinition Evidence EvidenceVariable ExampleScenario ExplanationOfBenefit
FamilyMemberHistory Flag Goal GraphDefinition Group GuidanceResponse HealthcareService ImagingStudy Immunization
ImmunizationEvaluation ImmunizationRecommendation ImplementationGuide InsurancePlan Invoice Library Linkage List
Location Measure MeasureReport Media Medication MedicationAdministration MedicationDispense MedicationKnowledge
MedicationRequest MedicationStatement MedicinalProduct MedicinalProductAuthorization MedicinalProductContraindication
MedicinalProductIndication MedicinalProductIngredient MedicinalProductInteraction MedicinalProductManufactured
MedicinalProductPackaged MedicinalProductPharmaceutical MedicinalProductUndesirableEffect MessageDefinition
MessageHeader MolecularSequence NamingSystem NutritionOrder Observation ObservationDefinition OperationDefinition
OperationOutcome Organization OrganizationAffiliation Parameters Patient PaymentNotice PaymentReconciliation Person
PlanDefinition Practitioner PractitionerRole Procedure Provenance Questionnaire QuestionnaireResponse RelatedPerson
RequestGroup ResearchDefinition ResearchElementDefinition ResearchStudy ResearchSubject RiskAssessment
RiskEvidenceSynthesis Schedule SearchParameter ServiceRequest Slot Specimen SpecimenDefinition StructureDefinition
StructureMap Subscription Substance SubstanceNucleicAcid SubstancePolymer SubstanceProtein
SubstanceReferenceInformation SubstanceSourceMaterial SubstanceSpecification SupplyDelivery SupplyRequest Task
TerminologyCapabilities TestReport TestScript ValueSet VerificationResult VisionPrescription
""".split())
# FHIR R4 status value sets of the elements the mapping reads (codes are case-sensitive)
OBSERVATION_STATUS = {"registered", "preliminary", "final", "amended", "corrected", "cancelled", "entered-in-error",
                      "unknown"}
REPORT_STATUS = {"registered", "partial", "preliminary", "final", "amended", "corrected", "appended", "cancelled",
                 "entered-in-error", "unknown"}
FLAG_STATUS = {"active", "inactive", "entered-in-error"}
CLINICAL_SYSTEM = "http://terminology.hl7.org/CodeSystem/condition-clinical"
VERIFICATION_SYSTEM = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
CLINICAL_STATUS = {"active", "recurrence", "relapse", "inactive", "remission", "resolved"}
VERIFICATION_STATUS = {"unconfirmed", "provisional", "differential", "confirmed", "refuted", "entered-in-error"}
COMPARATORS = {"<", "<=", ">=", ">"}
IGNORED_STATUS = {"entered-in-error", "cancelled"}
NOT_NOW = {"resolved", "inactive", "remission"}
REPORT_COUNTS = {"final", "amended", "corrected", "appended"}
FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
FHIR_DATETIME = re.compile(r"\d{4}(-\d{2}(-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?)?)?)?")
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
HISTORY = re.compile(r"/_history/[^/]+$")
RELATIVE = re.compile(r"([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})")
ABSOLUTE = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:\S+")
FUTURE_MARGIN = timedelta(hours=24)
MAX_DEPTH = 64
EXACT_DIGITS = 2000  # a value of up to this many digits and exponent converts exactly; beyond, far outside any range
PLACES = 12  # extra decimal places of a conversion that does not terminate (a 1/9): comparisons stay exact
Triple = tuple[Any, Any, Any]


class PatientGraph:
    """A patient graph in the project's vocabulary, with where it came from and the reasoning time.

    Made from an rdflib ``Graph`` or from a set of triples (the FHIR reader's): ``triples`` and
    ``graph`` each give the same triples, the other form built on first use.
    """

    def __init__(self, graph: Graph | None, patient: URIRef, identifier: str, origin: str,
                 sources: dict[str, str] | None = None, triples: set[Triple] | None = None,
                 reasoning_time: datetime | None = None) -> None:
        if graph is None and triples is None:
            raise ValueError("a patient graph needs a graph or triples")
        self._graph = graph
        self._triples = triples
        self.patient = patient
        self.identifier = identifier
        self.origin = origin  # "fhir" or "rdf"
        self.sources = sources if sources is not None else {}
        self.reasoning_time = reasoning_time if reasoning_time is not None else current_instant()

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


def mint_patient_iri(identifier: str) -> URIRef:
    """A deterministic IRI that does not spell out the identifier (it may be a medical record number)."""
    return URIRef(PATIENT_PREFIX + str(uuid.uuid5(uuid.NAMESPACE_URL, "urn:guideline-kg:patient:" + identifier)))


def _reject_constant(name: str) -> Any:
    raise InputError(f"input: {name} is not a JSON number")


def _integer(text: str) -> int | Decimal:
    """A JSON integer; one too long for Python's int parsing is still a number (a Decimal)."""
    return int(text) if len(text) <= 4000 else Decimal(text)  # int() reads at most 4,300 digits


class _DuplicateKey(Exception):
    pass


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return obj


def load_json(text: str, what: str = "input") -> Any:
    if text.startswith("\ufeff"):  # a UTF-8 byte-order mark before the JSON is accepted (RFC 8259 lets a parser)
        text = text[1:]
    try:
        value = json.loads(text, parse_float=Decimal, parse_int=_integer, parse_constant=_reject_constant,
                           object_pairs_hook=_object)
    except _DuplicateKey as exc:
        key = str(exc.args[0])
        raise InputError(f"{what}: the key {_show(key)} appears twice in one JSON object") from None
    except RecursionError:
        raise InputError(f"{what}: JSON nested too deeply") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{what}: not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except (ValueError, ArithmeticError):
        raise InputError(f"{what}: a number in the JSON cannot be read") from None
    # a surrogate can only come from the text itself or from a \\ud800-\\udfff escape in it
    if _SURROGATE_ESCAPE.search(text) is not None or not encodes_as_utf8(text):
        _check_strings(value, what)
    if isinstance(value, (dict, list)):
        _check_nesting(value, 0, what)
        if _CONTROL_ESCAPE.search(text) is not None:  # JSON writes a control character only as an escape
            _check_names(value, what)
    return value


_CONTROL_ESCAPE = re.compile(r"\\(u00[01][0-9a-fA-F]|u007[fF]|[bfnrt])")
NAMING_KEYS = ("reference", "id", "fullUrl")


def _check_names(value: Any, what: str) -> None:
    """No control character in a reference, an id or a fullUrl, wherever it stands (identifiers: see _identifier)."""
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key in NAMING_KEYS:
                text = item.get(key)
                if isinstance(text, str) and CONTROL.search(text):
                    raise InputError(f"{what}: {key} {_show(text)} holds a control character")
            stack.extend(v for v in item.values() if isinstance(v, (dict, list)))
        elif isinstance(item, list):
            stack.extend(v for v in item if isinstance(v, (dict, list)))


def _show(text: str, limit: int = 40) -> str:
    """A value from the input, quoted for a one-line message (control characters escaped by repr)."""
    return repr(text[:limit])


def _plain(text: str, limit: int = 40) -> str:
    """A value from the input for a Warning's text: quoted, with every character that is not printable shown as
    U+FFFD (a backslash is kept: messages are filled literally, ``validate.fill_message``)."""
    return "'" + "".join(ch if ch.isprintable() else "\ufffd" for ch in text[:limit]) + "'"


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def encodes_as_utf8(text: str) -> bool:
    """False for text holding a lone surrogate (it cannot be written as UTF-8)."""
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


def _canonical(data: Any) -> str:
    """The content of a resource as one string: two entries are identical exactly when these are equal."""
    return json.dumps(data, sort_keys=True, ensure_ascii=True, separators=(",", ":"),
                      default=lambda d: {"decimal": str(d)})


class _Resource:
    """One resource of the bundle with the name used in messages (``Observation/o3``)."""

    def __init__(self, data: dict[str, Any], index: int) -> None:
        self.data = data
        self.type = data["resourceType"]
        rid = data.get("id")
        self.id = rid if isinstance(rid, str) and FHIR_ID.fullmatch(rid) else None
        self.name = f"{self.type}/{self.id}" if self.id else f"Bundle.entry[{index}]"
        self.slug = f"{self.type}/{self.id}" if self.id else f"{self.type}/entry{index}"
        self.full_url: str | None = None

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

    def status_code(self, field_name: str, system: str, allowed: set[str]) -> str | None:
        """A Condition status (a CodeableConcept): its code in FHIR's system, spelled exactly as FHIR does."""
        value = self.data.get(field_name)
        if value is None:
            return None
        pairs = self.codeable(field_name, value)
        found = None
        for pair_system, code in pairs:
            if pair_system == system:
                if code not in allowed:
                    raise self.fail(field_name, f"{_show(code)} is not a FHIR code of {system}")
                found = found or code
        return found if found is not None else (pairs[0][1] if pairs else None)

    def plain_status(self, allowed: set[str]) -> str | None:
        status = self.data.get("status")
        if status is None:
            return None
        if not isinstance(status, str):
            raise self.fail("status", "is not a code")
        if status not in allowed:
            raise self.fail("status", f"{_show(status)} is not a FHIR {self.type} status code")
        return status


def _entered_in_error(data: dict[str, Any]) -> bool:
    """A resource marked entered-in-error (its status, or a Condition's verificationStatus), read leniently:
    such a resource is ignored whole, whatever else in it is broken."""
    if data.get("status") == "entered-in-error":
        return True
    verification = data.get("verificationStatus")
    if isinstance(verification, dict) and isinstance(verification.get("coding"), list):
        return any(isinstance(c, dict) and c.get("code") == "entered-in-error" for c in verification["coding"])
    return False


def _without_version(reference: str) -> str:
    return HISTORY.sub("", reference)


class BundleReader:
    """Turns one Bundle into a patient graph, at a reasoning time (now unless given)."""

    def __init__(self, guideline: Guideline, now: datetime | None = None) -> None:
        self.guideline = guideline
        self.codes = guideline.code_map
        self.kinds = {key: c.kind for key, c in guideline.concepts.items()}
        self.now = now if now is not None else current_instant()

    def read(self, bundle: Any) -> PatientGraph:
        resources = self._resources(bundle)
        patients = [r for r in resources if r.type == "Patient"]
        if len(patients) != 1:
            raise InputError(f"Bundle: holds {len(patients)} Patient resources; exactly one Patient is required")
        patient = patients[0]
        identifier = self._identifier(patient)
        self._by_id = {(r.type, r.id): r for r in resources if r.id}
        self._by_url = {_without_version(r.full_url): r for r in resources if r.full_url}
        iri = mint_patient_iri(identifier)
        graph = _Triples()
        graph.add((iri, RDF.type, GKG.Patient))
        graph.add((iri, GKG.identifier, Literal(identifier)))
        graph.add((iri, GKG.source, Literal(patient.name)))
        self.iri = iri
        self.graph = graph
        self._status: dict[URIRef, URIRef] = {}
        self._vitals: dict[URIRef, list[tuple[bool, _Resource]]] = {}
        for resource in resources:
            if resource.type == "Patient":
                continue
            self._check_subject(resource, patient)
            handler = READERS.get(resource.type)
            if handler is not None:
                handler(self, resource)
        self._note_undated_vitals()
        return PatientGraph(None, iri, identifier, "fhir", triples=graph, reasoning_time=self.now)

    # ---- structure ----

    def _resources(self, bundle: Any) -> list[_Resource]:
        if not isinstance(bundle, dict):
            raise InputError("input: not a FHIR R4 Bundle (the JSON is not an object)")
        if bundle.get("resourceType") != "Bundle":
            raise InputError(f"input: resourceType is {_show(str(bundle.get('resourceType')))}, "
                             "a FHIR R4 Bundle is required")
        bundle_type = bundle.get("type")
        if not isinstance(bundle_type, str) or bundle_type not in BUNDLE_TYPES:
            raise InputError(f"Bundle: type {_show(str(bundle_type))} is not one of {', '.join(sorted(BUNDLE_TYPES))}")
        entries = bundle.get("entry")
        if not isinstance(entries, list):
            raise InputError("Bundle: entry is missing or not a list")
        resources = []
        seen: dict[tuple[str, str], tuple[_Resource, str | None]] = {}
        for index, entry in enumerate(entries):
            if not isinstance(entry, dict) or not isinstance(entry.get("resource"), dict):
                raise InputError(f"Bundle.entry[{index}]: resource is missing or not an object")
            data = entry["resource"]
            rtype = data.get("resourceType")
            if not isinstance(rtype, str):
                raise InputError(f"Bundle.entry[{index}]: resourceType is missing or not a string")
            if rtype not in RESOURCE_TYPES:
                raise InputError(f"Bundle.entry[{index}]: resourceType {_show(rtype)} is not a FHIR R4 resource type "
                                 "(spelled exactly, case-sensitive)")
            if _entered_in_error(data):
                continue  # ignored whole, whatever else in it is broken
            if "id" in data and not (isinstance(data["id"], str) and FHIR_ID.fullmatch(data["id"])):
                raise InputError(f"Bundle.entry[{index}]: id {_show(str(data['id']))} is not a FHIR id")
            resource = _Resource(data, index)
            full_url = entry.get("fullUrl")
            if full_url is not None:
                if not isinstance(full_url, str) or CONTROL.search(full_url):
                    raise InputError(f"Bundle.entry[{index}]: fullUrl is not a URI")
                resource.full_url = full_url
            if resource.id:
                key = (resource.type, resource.id)
                if key in seen:
                    first, first_text = seen[key]
                    text = first_text if first_text is not None else _canonical(first.data)
                    if _canonical(data) != text:
                        raise InputError(f"{resource.name}: appears twice in the bundle with different content")
                    seen[key] = (first, text)
                    if first.full_url is None:
                        first.full_url = resource.full_url
                    continue  # identical: one resource
                seen[key] = (resource, None)
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
            if value and CONTROL.search(value):
                raise patient.fail(f"identifier[{i}].value", "holds a control character")
            if value:
                return value
        if patient.id:
            return patient.id
        raise patient.fail("identifier", "and id are both missing: the patient cannot be named")

    def _resolve(self, reference: str) -> _Resource | None:
        """The entry a reference names inside the bundle, as FHIR R4 resolves it; None when none."""
        plain = _without_version(reference)
        relative = RELATIVE.fullmatch(plain)
        if relative is not None:
            return self._by_id.get((relative.group(1), relative.group(2)))
        if ABSOLUTE.fullmatch(plain):  # an absolute URL or urn:uuid:/urn:oid: only against a fullUrl
            return self._by_url.get(plain)
        return None

    def _check_subject(self, resource: _Resource, patient: _Resource) -> None:
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
            if CONTROL.search(ref):
                raise resource.fail(f"{field_name}.reference", "holds a control character")
            target = self._resolve(ref)
            if target is patient:
                continue
            if target is None:
                raise resource.fail(f"{field_name}.reference", f"{_show(ref, 80)} names no Patient of the bundle")
            raise resource.fail(f"{field_name}.reference", f"{_show(ref, 80)} is {target.name}, not the bundle's "
                                "Patient: a resource of another subject is not this patient's")

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
        before = self._status.get(fact)
        if before is None:
            g.add((fact, GKG.status, status))
            self._status[fact] = status
        elif before != GKG.present and status == GKG.present:  # presence wins within one resource
            g.discard((fact, GKG.status, before))
            g.add((fact, GKG.status, GKG.present))
            self._status[fact] = GKG.present
        if verification:
            g.add((fact, GKG.verification, Literal(verification)))

    def _note(self, resource: _Resource, kind: URIRef, detail: str) -> None:
        suffix = "" if kind in (GKG.MassWithoutLumbarSite, GKG.UnmatchedConclusion) else "/" + kind.split("#")[-1]
        note = URIRef(f"{self.iri}/note/{resource.slug}{suffix}")
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
                verification: str | None = None, statuses: dict[str, URIRef] | None = None) -> None:
        for key, match in self._keys(pairs):
            if match == "needs-lumbar-site" and not self._lumbar(resource):
                self._note(resource, GKG.MassWithoutLumbarSite,
                           "a palpable mass is documented without a lumbar body site; it counts as the guideline's "
                           "mid-lumbar mass only with a lumbar bodySite")
                continue
            self._fact(resource, key, (statuses or {}).get(key, status), verification)

    # ---- time ----

    def _time(self, r: _Resource, field_name: str, value: Any) -> str | None:
        """A time of the resource in the graph's form, or None (with a Warning) when it is more than
        24 hours after the reasoning time: such a resource is treated as undated."""
        moment = _instant(r, field_name, value)
        if moment > self.now + FUTURE_MARGIN:
            self._note(r, GKG.FutureTime, f"{field_name} {value} is more than 24 hours after the reasoning time "
                       f"{format_instant(self.now)}; the resource is treated as undated")
            return None
        return format_instant(moment)

    def _effective(self, r: _Resource, issued: bool = False) -> str | None:
        """effective[x] (a Period's start), else, for a DiagnosticReport, issued."""
        for field_name in ("effectiveDateTime", "effectiveInstant"):
            if field_name in r.data:
                return self._time(r, field_name, r.data[field_name])
        if "effectivePeriod" in r.data:
            period = r.data["effectivePeriod"]
            if not isinstance(period, dict):
                raise r.fail("effectivePeriod", "is not a Period")
            if "start" in period:
                return self._time(r, "effectivePeriod.start", period["start"])
        if issued and "issued" in r.data:
            return self._time(r, "issued", r.data["issued"])
        return None

    # ---- resources ----

    def _condition(self, r: _Resource) -> None:
        pairs = r.codeable("code", r.data.get("code", {}))
        verification = r.status_code("verificationStatus", VERIFICATION_SYSTEM, VERIFICATION_STATUS)
        clinical = r.status_code("clinicalStatus", CLINICAL_SYSTEM, CLINICAL_STATUS)
        r.codeables("bodySite")  # validates the datatype even where no mass is coded
        if verification == "entered-in-error":
            return
        status = GKG.absent if verification == "refuted" else GKG.present
        if clinical in NOT_NOW and status == GKG.present:
            history = self.guideline.history_by_nature
            pairs = [p for p in pairs if self.codes.get(p, ("",))[0] in history]
        self._record(r, pairs, status, verification)

    def _flag(self, r: _Resource) -> None:
        status = r.plain_status(FLAG_STATUS)
        pairs = r.codeable("code", r.data.get("code", {}))
        period = r.data.get("period")
        if period is not None and not isinstance(period, dict):
            raise r.fail("period", "is not a Period")
        start = _instant(r, "period.start", period["start"]) if period and "start" in period else None
        end = _instant(r, "period.end", period["end"]) if period and "end" in period else None
        if status != "active":
            return
        if start is not None and self.now < start or end is not None and self.now > end:
            return  # a flag counts only while the reasoning time lies within its period (bounds inclusive)
        self._record(r, pairs, GKG.present)

    def _observation(self, r: _Resource) -> None:
        status = r.plain_status(OBSERVATION_STATUS)
        code_pairs = r.codeable("code", r.data.get("code", {}))
        r.codeables("bodySite")
        if status in IGNORED_STATUS:
            return
        if "valueQuantity" in r.data:
            for pair in code_pairs:
                measurement = self.guideline.measurements.get(pair)
                if measurement is not None:
                    self._vital_sign(r, measurement)
                    return
        if "valueBoolean" in r.data and not isinstance(r.data["valueBoolean"], bool):
            raise r.fail("valueBoolean", "is not a boolean")
        interpretations = self.guideline.interpretations
        absent = r.data.get("valueBoolean") is False or any(
            interpretations.get(pair) == "absent" for pair in r.codeables("interpretation"))
        status_iri = GKG.absent if absent else GKG.present
        value_pairs = (r.codeable("valueCodeableConcept", r.data["valueCodeableConcept"])
                       if "valueCodeableConcept" in r.data else [])
        said = {self.guideline.value_qualifiers[p] for p in value_pairs if p in self.guideline.value_qualifiers}
        qualified: dict[str, URIRef] = {}
        if said:  # a value that says present or absent, for finding and diagnosis codes only
            qualifier = GKG.present if "present" in said else GKG.absent
            qualified = {key: qualifier for key, _ in self._keys(code_pairs)
                         if self.kinds.get(key) in ("finding", "diagnosis")}
        self._record(r, code_pairs, status_iri, statuses=qualified)
        if value_pairs:
            self._record(r, value_pairs, status_iri)

    def _vital_sign(self, r: _Resource, measurement: Measurement) -> None:
        quantity = r.data["valueQuantity"]
        if not isinstance(quantity, dict):
            raise r.fail("valueQuantity", "is not a Quantity")
        value = quantity.get("value")
        if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
            raise r.fail("valueQuantity.value", f"{_show(str(value))} is not a number")
        if isinstance(value, Decimal) and not value.is_finite():
            raise r.fail("valueQuantity.value", "is not a finite number")
        comparator = quantity.get("comparator")
        if comparator is not None and comparator not in COMPARATORS:
            raise r.fail("valueQuantity.comparator", f"{_show(str(comparator))} is not a FHIR comparator "
                         f"({', '.join(sorted(COMPARATORS))})")
        code, unit_text = quantity.get("code"), quantity.get("unit")
        if code is not None and not isinstance(code, str):
            raise r.fail("valueQuantity.code", "is not a string")
        if unit_text is not None and not isinstance(unit_text, str):
            raise r.fail("valueQuantity.unit", "is not a string")
        conversions = self.guideline.conversions
        # the UCUM code; without one, the human-readable unit only when it is exactly one of the accepted codes
        unit = code if code is not None else (unit_text if unit_text in conversions else None)
        conversion = conversions.get(unit) if unit is not None else None
        label = measurement.label
        if conversion is None or conversion.to_unit != measurement.unit:
            shown = unit if unit is not None else (unit_text if unit_text is not None else "none")
            accepted = ", ".join(sorted(k for k, c in conversions.items() if c.to_unit == measurement.unit))
            self._note(r, GKG.UnreadableMeasurement,
                       f"unit {_plain(shown)} is not one the contract accepts for {label} ({accepted}); "
                       "the measurement is left out of reasoning")
            return
        converted = _convert(value, conversion.offset, conversion.factor, conversion.divisor)
        if comparator is not None and not self._bound_decides(measurement, comparator, converted):
            self._note(r, GKG.UnreadableMeasurement,
                       f"the bound {comparator}{value} {unit} decides no threshold of {label}; "
                       "the measurement is left out of reasoning and the next most recent one counts")
            return
        vital = URIRef(f"{self.iri}/vital/{r.slug}")
        g = self.graph
        g.add((self.iri, GKG.hasVitalSign, vital))
        g.add((vital, RDF.type, GKG.VitalSign))
        g.add((vital, GKG.measurement, measurement.iri))
        g.add((vital, GKG.value, _decimal_literal(converted)))
        g.add((vital, GKG.unit, Literal(measurement.unit)))
        g.add((vital, GKG.originalValue, Literal(str(value))))
        g.add((vital, GKG.originalUnit, Literal(unit)))
        g.add((vital, GKG.source, Literal(r.name)))
        if comparator is not None:
            g.add((vital, GKG.comparator, Literal(comparator)))
        effective = self._effective(r)
        if effective is not None:
            g.add((vital, GKG.effective, Literal(effective, datatype=XSD.dateTime)))
        self._vitals.setdefault(measurement.iri, []).append((effective is not None, r))

    def _bound_decides(self, measurement: Measurement, comparator: str, bound: Fraction | Decimal) -> bool:
        """Whether every value the bound allows lies on one side of each threshold of the measurement."""
        for threshold in self.guideline.thresholds:
            if threshold.measurement != measurement.iri:
                continue
            for limit, inclusive in ((threshold.at_or_above, True), (threshold.above, False)):
                if limit is None:
                    continue
                t = Fraction(limit)
                if comparator == ">":  # (bound, inf): all at or above/above the limit when bound >= limit
                    decides = bound >= t
                elif comparator == ">=":  # [bound, inf)
                    decides = bound >= t if inclusive else bound > t
                elif comparator == "<":  # (-inf, bound): all below when bound <= limit
                    decides = bound <= t
                else:  # "<=": (-inf, bound]
                    decides = bound < t if inclusive else bound <= t
                if not decides:
                    return False
        return True

    def _note_undated_vitals(self) -> None:
        for readings in self._vitals.values():
            if any(dated for dated, _ in readings):
                for dated, r in readings:
                    if not dated:
                        self._note(r, GKG.UndatedMeasurement,
                                   "the measurement has no usable time while others of its kind do; "
                                   "the most recent dated one counts")

    def _diagnosticreport(self, r: _Resource) -> None:
        status = r.plain_status(REPORT_STATUS)
        pairs = r.codeable("code", r.data.get("code", {}))
        conclusions = r.codeables("conclusionCode")
        studies = [k for k, _ in self._keys(pairs) if self.kinds.get(k) == "imaging"]
        if not studies:
            return
        if status == "unknown":
            self._note(r, GKG.UnknownReportStatus, "the imaging report's status is unknown; it is not used")
            return
        if status not in REPORT_COUNTS:
            return
        effective = self._effective(r, issued=True)
        result = URIRef(f"{self.iri}/result/{r.slug}")
        g = self.graph
        g.add((self.iri, GKG.hasImagingResult, result))
        g.add((result, RDF.type, GKG.ImagingResult))
        g.add((result, GKG.study, self.guideline.concepts[studies[0]].iri))
        g.add((result, GKG.source, Literal(r.name)))
        if effective is not None:
            g.add((result, GKG.effective, Literal(effective, datatype=XSD.dateTime)))
        matched = self._keys(conclusions)
        for key, _ in matched:
            node = URIRef(f"{result}/shows/{key}")
            g.add((result, GKG.shows, node))
            g.add((node, GKG.concept, self.guideline.concepts[key].iri))
        unmatched = [_plain(f"{s}|{c}", 120)[1:-1] for s, c in conclusions if (s, c) not in self.codes]
        if unmatched or not matched:
            what = ", ".join(unmatched) if unmatched else "no conclusionCode"
            self._note(r, GKG.UnmatchedConclusion,
                       f"the imaging report's conclusions match no concept of the guideline ({what[:200]}); "
                       "it counts as done but its result is not used")


# The resource types the mapping reads, each with its reader: an explicit table, so that no
# resourceType in the input can name any other method.
READERS: dict[str, Callable[[BundleReader, _Resource], None]] = {
    "Condition": BundleReader._condition,
    "Observation": BundleReader._observation,
    "Flag": BundleReader._flag,
    "DiagnosticReport": BundleReader._diagnosticreport,
}


class _Triples(set):  # type: ignore[type-arg]
    """What the FHIR reader writes to: Graph.add's signature, a set's cost."""

    def add(self, triple: Triple) -> None:  # type: ignore[override]
        set.add(self, triple)


def _instant(r: _Resource, field_name: str, value: Any) -> datetime:
    """A FHIR date, dateTime or instant as an aware UTC datetime; a partial date is its first instant."""
    if not isinstance(value, str) or not FHIR_DATETIME.fullmatch(value):
        raise r.fail(field_name, f"{_show(str(value))} is not a FHIR dateTime")
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
        raise r.fail(field_name, f"{_show(value)} is not a valid date") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    try:
        return moment.astimezone(timezone.utc)
    except OverflowError:
        raise r.fail(field_name, f"{_show(value)} falls outside the years 0001-9999 in UTC") from None


def _convert(value: int | Decimal, offset: Decimal, factor: Decimal, divisor: Decimal) -> Fraction | Decimal:
    """(value + offset) * factor / divisor: exact (a Fraction) for a value of up to EXACT_DIGITS digits; beyond,
    a Decimal to 60 digits (such a value lies far outside every plausible range, so no comparison changes)."""
    number = Decimal(value)
    sign_digits_exponent = number.as_tuple()
    if len(sign_digits_exponent.digits) <= EXACT_DIGITS and abs(int(sign_digits_exponent.exponent)) <= EXACT_DIGITS:
        return (Fraction(number) + Fraction(offset)) * Fraction(factor) / Fraction(divisor)
    with localcontext() as context:
        context.prec, context.Emax, context.Emin = 60, MAX_EMAX, MIN_EMIN
        return (number + offset) * factor / divisor


def _decimal_literal(value: Fraction | Decimal) -> Literal:
    """An xsd:decimal literal of the value: exact when the value terminates; otherwise to PLACES more places
    than any terminating neighbour could need, so that no comparison with a threshold or range changes."""
    if isinstance(value, Decimal):
        value = Fraction(value)
    denominator, twos, fives = value.denominator, 0, 0
    while denominator % 2 == 0:
        denominator //= 2
        twos += 1
    while denominator % 5 == 0:
        denominator //= 5
        fives += 1
    if denominator == 1:
        places = max(twos, fives)
    else:  # a repeating decimal: rounded far below any difference a threshold of the graph can make
        places = len(str(value.denominator)) + PLACES
    digits = round(value * 10 ** places)
    sign = "-" if digits < 0 else ""
    text = str(abs(digits)).rjust(places + 1, "0")
    # the canonical form (XSD 1.1), which every serialization keeps: a point and at least one digit after it
    lexical = f"{sign}{text[:-places]}.{text[-places:]}" if places else f"{sign}{text}.0"
    return Literal(lexical, datatype=XSD.decimal)


def read_bundle(guideline: Guideline, text: str, now: datetime | None = None) -> PatientGraph:
    return BundleReader(guideline, now).read(load_json(text))


__all__ = ["PatientGraph", "read_bundle", "mint_patient_iri", "load_json", "LOINC"]
