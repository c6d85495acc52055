"""A deterministic synthetic cohort of FHIR R4 patient Bundles for benchmarking guideline-kg.

Every patient is drawn from one *branch*: a scenario of the guideline (no mass, a mass
without a lumbar site, a lumbar mass with each red flag, cauda equina features, MRI
contraindicated or unavailable, each kind of imaging result, documented absences,
a contradiction, an implausible vital sign) chosen by weight from a seeded
``random.Random``. Around the branch's facts each record gets realistic noise: vital
sign series in Cel or [degF] with dates in several time zones, unrelated conditions,
medications, encounters, procedures, laboratory results, entered-in-error and resolved
entries, and documented absences that agree with the branch. Records hold 5 to 60
resources.

Guideline concepts are coded only with the codes the guideline graph gives them (from
``shared/terminology/codes.tsv``) or with the local system ``urn:guideline-kg:concept`` and
a concept key; codes, labels, concept parents, lumbar body sites, the vital signs and their
thresholds, the red-flag findings, the cauda equina features, the examined neurologic
deficits and the contexts are read from the graph (``Guideline.load``, ``queries/benchmark/``),
never copied here: a red flag added to the Turtle enters the cohort with no change here.
Codes used for noise match no concept.

Determinism: patient *i* of seed *s* depends on (s, i) only, so ``generate(1000)`` is a
prefix of ``generate(100000)`` and the same arguments give byte-identical output.
Generation streams: one patient is in memory at a time (plus a bounded shuffle buffer
for ``--bulk``).

The branch and the expected exit code of ``guideline-kg`` (0, or 1 for the ~0.5% of
patients with a vital sign outside the plausible range) are recorded in ``meta.tag`` of
the Bundle and of the Patient (systems ``urn:guideline-kg:benchmark-branch`` and
``urn:guideline-kg:benchmark-expect``); ``branch_of`` and ``expected_exit`` read them.

    python -m benchmarks.cohort --n 1000 --seed 1 --out DIR      # one <patient-id>.json per Bundle
    python -m benchmarks.cohort --n 1000 --seed 1 --ndjson FILE  # one Bundle per line ("-": stdout)
    python -m benchmarks.cohort --n 1000 --seed 1 --bulk DIR     # FHIR Bulk Data export folder
    python -m benchmarks.cohort --list                           # the branches, weights and summaries

``--bulk`` writes ``<ResourceType>.ndjson`` (one resource a line; Patient, Condition,
Observation, Flag and DiagnosticReport always, other types as they occur) and a
``manifest.json``. Resources pass through a seeded shuffle buffer per type, so a
patient's resources are scattered among other patients': a consumer must group them by
``subject``/``patient`` itself.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TextIO

Resource = dict[str, Any]
Code = tuple[str, str, str]  # system, code, display

SNOMED = "http://snomed.info/sct"
ICD10 = "http://hl7.org/fhir/sid/icd-10-cm"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
LOCAL = "urn:guideline-kg:concept"
INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
CLINICAL_STATUS = "http://terminology.hl7.org/CodeSystem/condition-clinical"
VERIFICATION_STATUS = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
CONDITION_CATEGORY = "http://terminology.hl7.org/CodeSystem/condition-category"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
REPORT_CATEGORY = "http://terminology.hl7.org/CodeSystem/v2-0074"
FLAG_CATEGORY = "http://terminology.hl7.org/CodeSystem/flag-category"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
ALLERGY_CLINICAL = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"
ALLERGY_VERIFICATION = "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification"

BRANCH_SYSTEM = "urn:guideline-kg:benchmark-branch"
EXPECT_SYSTEM = "urn:guideline-kg:benchmark-expect"
MRN_SYSTEM = "urn:example:mrn"
BASE_URL = "https://fhir.example.org/r4"
OUT_OF_RANGE_SHARE = 0.005
MIN_RESOURCES, MAX_RESOURCES = 5, 60
BULK_BUFFER = 2000
BULK_TYPES = ("Patient", "Condition", "Observation", "Flag", "DiagnosticReport")

# ---- terminology, from the guideline graph ----


@dataclass(frozen=True)
class Terminology:
    """What the generator codes patients with, read from the guideline graph."""

    codes: dict[str, tuple[Code, ...]]  # concept key -> its codes, exact matches first (the first is the usual one)
    labels: dict[str, str]  # concept key -> label
    parents: dict[str, tuple[str, ...]]  # concept key -> the keys of its direct parents
    lumbar_sites: tuple[Code, ...]  # the body sites that make a palpable mass a lumbar one
    vitals: dict[str, dict[str, Any]]  # finding key -> a row of queries/benchmark/vital-thresholds.rq
    red_flags: tuple[str, ...]  # queries/benchmark/red-flag-findings.rq: in statement order, then by key
    examined: frozenset[str]  # of those, what an examination finds (the rest is taken from the history)
    history: frozenset[str]  # of those, what stays history (never resolved)
    cauda_equina_features: tuple[str, ...]
    examined_deficits: tuple[str, ...]
    contexts: tuple[str, ...]


def read_terminology(ontology: Path | None = None) -> Terminology:
    """What the generator codes patients with, from the shipped encoding or from an ``ontology`` folder."""
    from rdflib import RDFS

    from reasoner import resources
    from reasoner.guideline import Guideline
    from reasoner.queries import load_folder

    guideline = Guideline.load(ontology=ontology)
    codes = {key: tuple((c.system, c.code, c.display)
                        for c in sorted(codings, key=lambda c: (c.match != "exact", c.system, c.code)))
             for key, codings in guideline.codings_by_key.items()}
    labels = {key: concept.label for key, concept in guideline.concepts.items()}
    key_of = {concept.iri: key for key, concept in guideline.concepts.items()}
    graph = guideline.graph
    parents = {key: tuple(sorted(key_of[p] for p in graph.objects(concept.iri, RDFS.subClassOf) if p in key_of))
               for key, concept in guideline.concepts.items()}
    queries = load_folder(resources.queries_dir() / "benchmark")
    sites = tuple((str(r["system"]), str(r["code"]), str(r["display"]))
                  for r in graph.query(queries["lumbar-sites"].prepared()))
    vitals = {str(row["key"]): {k: (v.toPython() if v is not None else None) for k, v in row.asdict().items()}
              for row in graph.query(queries["vital-thresholds"].prepared())}
    flags = [(str(r["key"]), bool(r["exam"].toPython()), bool(r["history"].toPython()))
             for r in graph.query(queries["red-flag-findings"].prepared())]

    def keys(name: str) -> tuple[str, ...]:
        return tuple(str(r["key"]) for r in graph.query(queries[name].prepared()))

    return Terminology(codes, labels, parents, sites, vitals, red_flags=tuple(k for k, _, _ in flags),
                       examined=frozenset(k for k, exam, _ in flags if exam),
                       history=frozenset(k for k, _, history in flags if history),
                       cauda_equina_features=keys("cauda-equina-features"),
                       examined_deficits=keys("examined-deficits"), contexts=keys("contexts"))


TERMINOLOGY = read_terminology()
CODES = TERMINOLOGY.codes
LABELS = TERMINOLOGY.labels
PARENTS = TERMINOLOGY.parents
LUMBAR_SITES = TERMINOLOGY.lumbar_sites
BACK_SITE: Code = (SNOMED, "77568009", "Back")
EXAM_CODE: Code = (SNOMED, "5880005", "Physical examination procedure")

RED_FLAG_KEYS = TERMINOLOGY.red_flags
CAUDA_EQUINA_FEATURES = TERMINOLOGY.cauda_equina_features
NEURO_DEFICITS = TERMINOLOGY.examined_deficits
HISTORY_KEYS = frozenset(RED_FLAG_KEYS) - TERMINOLOGY.examined  # asked about rather than examined
CONTEXT_KEYS = TERMINOLOGY.contexts

CONCLUSION_TEXT: dict[str, str] = {
    "spinal-metastasis": "Enhancing destructive lesion of L2 with paraspinal soft tissue extension: metastasis.",
    "ependymoma": "Enhancing intradural mass at L1-L2 with cystic components, most consistent with ependymoma.",
    "osteoid-osteoma": "Small lucent nidus with surrounding sclerosis in the L3 posterior elements: osteoid osteoma.",
    "benign-tumor": "Well-circumscribed non-aggressive lesion of the L3 vertebral body, benign appearance.",
    "discitis": "Disc space narrowing with endplate enhancement at L3-L4, in keeping with discitis.",
    "paraspinal-abscess": "Rim-enhancing fluid collection in the left paraspinal muscles at L2-L3: abscess.",
    "imaging-negative": "No mass, infection or destructive lesion identified.",
    "unknown": "Findings as described; see impression.",
}
# SNOMED codes outside codes.tsv: a final report concluding only these must give a Warning.
UNKNOWN_CONCLUSIONS: tuple[Code, ...] = ((SNOMED, "76107001", "Spinal stenosis"),
                                         (SNOMED, "274152003", "Spondylolisthesis"),
                                         (SNOMED, "77547008", "Degeneration of intervertebral disc"))

# ---- noise tables (codes that match no concept) ----

NOISE_CONDITIONS: tuple[Code, ...] = (
    (SNOMED, "38341003", "Hypertensive disorder, systemic arterial"), (SNOMED, "44054006", "Diabetes mellitus type 2"),
    (SNOMED, "55822004", "Hyperlipidemia"), (SNOMED, "195967001", "Asthma"),
    (SNOMED, "235595009", "Gastroesophageal reflux disease"), (SNOMED, "35489007", "Depressive disorder"),
    (SNOMED, "40930008", "Hypothyroidism"), (SNOMED, "396275006", "Osteoarthritis"),
    (SNOMED, "13645005", "Chronic obstructive lung disease"), (SNOMED, "271737000", "Anemia"),
    (ICD10, "I10", "Essential (primary) hypertension"),
    (ICD10, "E11.9", "Type 2 diabetes mellitus without complications"),
    (ICD10, "E78.5", "Hyperlipidemia, unspecified"),
    (ICD10, "K21.9", "Gastro-esophageal reflux disease without esophagitis"),
)
NOISE_MEDICATIONS: tuple[Code, ...] = (
    (RXNORM, "5640", "Ibuprofen"), (RXNORM, "161", "Acetaminophen"), (RXNORM, "29046", "Lisinopril"),
    (RXNORM, "6809", "Metformin"), (RXNORM, "83367", "Atorvastatin"), (RXNORM, "7646", "Omeprazole"),
    (RXNORM, "10689", "Tramadol"), (RXNORM, "10582", "Levothyroxine"),
)
NOISE_PROCEDURES: tuple[Code, ...] = (
    (SNOMED, "80146002", "Appendectomy"), (SNOMED, "38102005", "Cholecystectomy"), (SNOMED, "73761001", "Colonoscopy"),
    (SNOMED, "33879002", "Administration of vaccine to produce active immunity"),
)
NOISE_ALLERGIES: tuple[Code, ...] = (
    (SNOMED, "91936005", "Allergy to penicillin"), (SNOMED, "300916003", "Latex allergy"),
    (SNOMED, "91935009", "Allergy to peanuts"),
)


@dataclass(frozen=True)
class Measure:
    """An unrelated quantitative observation used as noise."""

    loinc: str
    display: str
    unit: str
    low: float
    high: float
    decimals: int
    category: str


NOISE_MEASURES: tuple[Measure, ...] = (
    Measure("29463-7", "Body weight", "kg", 48, 120, 1, "vital-signs"),
    Measure("8302-2", "Body height", "cm", 150, 195, 0, "vital-signs"),
    Measure("39156-5", "Body mass index (BMI) [Ratio]", "kg/m2", 18, 38, 1, "vital-signs"),
    Measure("9279-1", "Respiratory rate", "/min", 12, 22, 0, "vital-signs"),
    Measure("59408-5", "Oxygen saturation in Arterial blood by Pulse oximetry", "%", 93, 100, 0, "vital-signs"),
    Measure("718-7", "Hemoglobin [Mass/volume] in Blood", "g/dL", 10.5, 16.5, 1, "laboratory"),
    Measure("6690-2", "Leukocytes [#/volume] in Blood by Automated count", "10*3/uL", 4, 13, 1, "laboratory"),
    Measure("1988-5", "C reactive protein [Mass/volume] in Serum or Plasma", "mg/L", 0.5, 40, 1, "laboratory"),
    Measure("4537-7", "Erythrocyte sedimentation rate by Westergren method", "mm/h", 2, 60, 0, "laboratory"),
)


@dataclass(frozen=True)
class Vital:
    """A vital sign the guideline derives a finding from, with the value ranges drawn per unit."""

    loinc: str
    display: str
    units: tuple[tuple[str, str, float], ...]  # UCUM code, human unit, weight
    normal: dict[str, tuple[float, float]]
    high: dict[str, tuple[float, float]]
    threshold: dict[str, float | int]
    implausible: tuple[tuple[str, float], ...]
    decimals: int
    system: str


def _vital(key: str, units: tuple[tuple[str, str, float], ...], lowest: dict[str, float], highest: dict[str, float],
           implausible: tuple[tuple[str, float], ...], decimals: int) -> Vital:
    """A vital sign series around the graph's threshold for finding ``key``, in each unit (converted by the graph)."""
    from reasoner.guideline import Guideline

    row = TERMINOLOGY.vitals[key]
    conversions = Guideline.load().conversions
    step = 10 ** -decimals
    inclusive = row.get("minInclusive") is not None
    canonical = float(row["minInclusive"] if inclusive else row["minExclusive"])

    def number(value: float) -> float | int:
        return round(value, decimals) if decimals else round(value)

    threshold: dict[str, float | int] = {}
    for unit, _, _ in units:
        conversion = conversions[unit]  # canonical = (value + offset) * factor [/ divisor]: the threshold in this unit
        divisor = float(getattr(conversion, "divisor", 1))
        threshold[unit] = number(canonical * divisor / float(conversion.factor) - float(conversion.offset))
    return Vital(str(row["code"]), str(row["display"]), units,
                 normal={u: (lowest[u], number(t - step)) for u, t in threshold.items()},
                 high={u: (number(t if inclusive else t + step), highest[u]) for u, t in threshold.items()},
                 threshold=threshold, implausible=implausible, decimals=decimals, system=str(row["system"]))


TEMPERATURE = _vital("fever", (("Cel", "°C", 0.75), ("[degF]", "°F", 0.25)), lowest={"Cel": 35.9, "[degF]": 96.6},
                     highest={"Cel": 40.4, "[degF]": 104.7},
                     implausible=(("Cel", 385.0), ("Cel", 3.8), ("[degF]", 37.9), ("Cel", 46.5), ("Cel", 24.0)),
                     decimals=1)
HEART_RATE = _vital("tachycardia", (("/min", "beats/minute", 1.0),), lowest={"/min": 52}, highest={"/min": 168},
                    implausible=(("/min", 0), ("/min", 12), ("/min", 310), ("/min", 1020)), decimals=0)

GIVEN = {"female": ("Maria", "Anna", "Giulia", "Sofia", "Aisha", "Mei", "Laura", "Fatima", "Elena", "Grace"),
         "male": ("Samir", "Piotr", "Luca", "James", "Kenji", "Omar", "David", "Mateo", "Jonas", "Ravi")}
FAMILY = ("Haddad", "Kowalski", "Rossi", "Smith", "Tanaka", "Okafor", "Garcia", "Nguyen", "Müller", "Silva",
          "Ivanova", "Khan", "Dubois", "Andersen", "Cohen", "Papadopoulos")
TIME_ZONES = (0, 0, 0, 60, 120, -300, -240, 330)  # minutes east of UTC

# ---- one patient under construction ----


@dataclass
class _Patient:
    rng: random.Random
    index: int
    branch: str
    visit: datetime
    resources: list[Resource] = field(default_factory=list)
    present: set[str] = field(default_factory=set)
    temperature: str = "normal"  # plan: none, normal, high, high-earlier, threshold, implausible
    temperature_dated: bool = True
    heart_rate: str = "normal"
    serial: int = 0

    @property
    def pid(self) -> str:
        return f"p{self.index:06d}"

    @property
    def subject(self) -> dict[str, str]:
        return {"reference": f"Patient/{self.pid}"}

    def add(self, resource_type: str, body: Resource) -> Resource:
        self.serial += 1
        resource = {"resourceType": resource_type, "id": f"{self.pid}-{self.serial:02d}"}
        resource.update(body)
        self.resources.append(resource)
        return resource

    def chance(self, probability: float) -> bool:
        return self.rng.random() < probability

    def pick(self, options: dict[str, float]) -> str:
        return self.rng.choices(list(options), weights=list(options.values()))[0]


# ---- datatypes ----


def _coding(code: Code) -> dict[str, str]:
    return {"system": code[0], "code": code[1], "display": code[2]}


def _concept(*codes: Code, text: str | None = None) -> Resource:
    cc: Resource = {"coding": [_coding(c) for c in codes]}
    if text:
        cc["text"] = text
    return cc


def _local(key: str) -> Code:
    return (LOCAL, key, LABELS[key])


def _concept_code(p: _Patient, key: str, local_share: float = 0.12) -> Code:
    """A code for a guideline concept: usually the first of codes.tsv, else another, else the local system."""
    codes = CODES.get(key, ())
    if not codes or p.chance(local_share):
        return _local(key)
    return codes[0] if p.chance(0.55) else p.rng.choice(codes)


def _status(system: str, code: str) -> Resource:
    return {"coding": [{"system": system, "code": code, "display": code.replace("-", " ").capitalize()}]}


def _category(system: str, code: str) -> list[Resource]:
    return [{"coding": [{"system": system, "code": code}]}]


def _stamp(p: _Patient, moment: datetime) -> str:
    """A FHIR dateTime in one of several UTC offsets: lexical order is not time order."""
    offset = p.rng.choice(TIME_ZONES)
    local = moment.astimezone(timezone(timedelta(minutes=offset)))
    text = local.isoformat(timespec="seconds")
    return text[:-6] + "Z" if offset == 0 and p.chance(0.7) else text


def _before(p: _Patient, low_hours: float, high_hours: float) -> datetime:
    minutes = int(p.rng.uniform(low_hours, high_hours) * 60)
    return p.visit - timedelta(minutes=minutes)


# ---- resources ----


def _condition(p: _Patient, code: Code, *, clinical: str = "active", verification: str = "confirmed",
               category: str = "problem-list-item", site: Code | None = None) -> Resource:
    body: Resource = {}
    if verification != "entered-in-error":  # FHIR con-5: no clinicalStatus on an entered-in-error Condition
        body["clinicalStatus"] = _status(CLINICAL_STATUS, clinical)
    body["verificationStatus"] = _status(VERIFICATION_STATUS, verification)
    body["category"] = _category(CONDITION_CATEGORY, category)
    body["code"] = _concept(code)
    if site is not None:
        body["bodySite"] = [_concept(site)]
    body["subject"] = p.subject
    onset = _before(p, 24, 24 * 200)
    body["onsetDateTime"] = onset.date().isoformat() if p.chance(0.4) else _stamp(p, onset)
    body["recordedDate"] = _stamp(p, _before(p, 0.2, 20))
    return p.add("Condition", body)


def _observation(p: _Patient, code: Resource, value: Resource, *, category: str = "exam", status: str = "final",
                 interpretation: str | None = None, site: Code | None = None,
                 when: datetime | None = None, dated: bool = True) -> Resource:
    body: Resource = {"status": status, "category": _category(OBSERVATION_CATEGORY, category), "code": code,
                      "subject": p.subject}
    if dated:
        body["effectiveDateTime"] = _stamp(p, when or _before(p, 0.1, 3))
    body.update(value)
    if interpretation:
        body["interpretation"] = [{"coding": [{"system": INTERPRETATION, "code": interpretation}]}]
    if site is not None:
        body["bodySite"] = _concept(site)
    return p.add("Observation", body)


def _flag(p: _Patient, code: Code, *, status: str = "active", text: str | None = None) -> Resource:
    return p.add("Flag", {"status": status, "category": _category(FLAG_CATEGORY, "safety"),
                          "code": _concept(code, text=text), "subject": p.subject,
                          "period": {"start": _stamp(p, _before(p, 1, 24 * 30))}})


def _report(p: _Patient, study: str, conclusion: str | None, *, status: str | None = None) -> Resource:
    """An imaging DiagnosticReport; conclusion is a concept key, "unknown" (no concept) or None."""
    codes = CODES[study]
    study_code = codes[0] if len(codes) == 1 or p.chance(0.85) else codes[1]
    moment = _before(p, 2, 24 * 5)
    body: Resource = {"status": status or p.pick({"final": 0.85, "amended": 0.1, "corrected": 0.05}),
                      "category": _category(REPORT_CATEGORY, "RAD"), "code": _concept(study_code),
                      "subject": p.subject, "effectiveDateTime": _stamp(p, moment),
                      "issued": _stamp(p, moment + timedelta(hours=p.rng.uniform(1, 30)))}
    if conclusion is not None:
        code = p.rng.choice(UNKNOWN_CONCLUSIONS) if conclusion == "unknown" else _concept_code(p, conclusion, 0.0)
        body["conclusion"] = CONCLUSION_TEXT.get(conclusion, CONCLUSION_TEXT["unknown"])
        body["conclusionCode"] = [_concept(code)]
    return p.add("DiagnosticReport", body)


# ---- guideline facts ----


def _finding(p: _Patient, key: str, *, form: str | None = None, verification: str = "confirmed",
             clinical: str = "active") -> None:
    """A present finding, as a Condition, a coded Observation, or an exam Observation whose value is the finding."""
    code = _concept_code(p, key)
    history = key in HISTORY_KEYS
    forms = {"condition": 0.5, "observation": 0.3} if history else {"condition": 0.45, "observation": 0.3, "exam": 0.25}
    form = form or p.pick(forms)
    if form == "condition":
        _condition(p, code, clinical=clinical, verification=verification,
                   category=p.pick({"problem-list-item": 0.5, "encounter-diagnosis": 0.5}))
    elif form == "observation":
        value = {"valueBoolean": True} if p.chance(0.6) else {}
        _observation(p, _concept(code), value, category="survey" if history else "exam")
    else:
        _observation(p, _concept(EXAM_CODE), {"valueCodeableConcept": _concept(code)})
    p.present.add(key)


def _absent(p: _Patient, key: str) -> None:
    """A documented absence: valueBoolean false, interpretation NEG/ND, or a refuted Condition."""
    code = _concept_code(p, key)
    category = "survey" if key in HISTORY_KEYS else "exam"
    form = p.pick({"false": 0.45, "NEG": 0.3, "ND": 0.05, "refuted": 0.2})
    if form == "false":
        _observation(p, _concept(code), {"valueBoolean": False}, category=category)
    elif form in ("NEG", "ND"):
        _observation(p, _concept(code), {}, category=category, interpretation=form)
    else:
        _condition(p, code, clinical="inactive", verification="refuted", category="encounter-diagnosis")


def _mass(p: _Patient, site: str | None) -> None:
    """A palpable mass coded 443607001 or R22.2, with a lumbar site, the "Back" site, or none."""
    code = p.rng.choice(CODES["palpable-lumbar-mass"])
    body_site = None if site is None else BACK_SITE if site == "back" else p.rng.choice(LUMBAR_SITES)
    form = p.pick({"condition": 0.6, "observation": 0.25, "exam": 0.15})
    if form == "condition":
        _condition(p, code, site=body_site, category="encounter-diagnosis")
    elif form == "observation":
        _observation(p, _concept(code), {"valueBoolean": True} if p.chance(0.5) else {}, site=body_site)
    else:
        _observation(p, _concept(EXAM_CODE), {"valueCodeableConcept": _concept(code)}, site=body_site)
    if site == "lumbar":
        p.present.add("palpable-lumbar-mass")


CONTEXT_TEXT = {"mri-contraindicated": ("non-MR-conditional cardiac pacemaker", "cochlear implant",
                                        "metallic foreign body in the orbit", "severe claustrophobia"),
                "mri-unavailable": ("MRI scanner out of service", "no MRI access at this site",
                                    "MRI waiting list beyond the clinically acceptable delay")}


def _context(p: _Patient, key: str) -> None:
    """MRI contraindicated or unavailable, as a Flag, a Condition or an Observation (local code)."""
    code = _local(key)
    form = p.pick({"flag": 0.5, "condition": 0.25, "observation": 0.25})
    if form == "flag":
        reasons = CONTEXT_TEXT.get(key)
        _flag(p, code, text=f"{LABELS[key]}: {p.rng.choice(reasons)}" if reasons else LABELS[key])
    elif form == "condition":
        _condition(p, code)
    else:
        _observation(p, _concept(code), {"valueBoolean": True} if p.chance(0.5) else {}, category="survey")
    p.present.add(key)


# ---- vital sign series ----


def _vital_value(p: _Patient, vital: Vital, unit: str, state: str) -> float | int:
    if state == "threshold":
        return vital.threshold[unit]
    low, high = (vital.high if state == "high" else vital.normal)[unit]
    value = p.rng.uniform(low, high)
    return round(value, vital.decimals) if vital.decimals else round(value)


def _series_states(p: _Patient, plan: str) -> list[str]:
    """Chronological states of one series; the last decides when dated, the highest when not."""
    rng = p.rng
    if plan == "normal":
        return ["normal"] * rng.randint(1, 3)
    if plan == "threshold":
        return ["normal"] * rng.randint(0, 2) + ["threshold"]
    if plan == "high":
        middle = [rng.choice(("normal", "high")) for _ in range(rng.randint(0, 3))]
        return ["normal", *middle, "high"]
    if plan == "high-earlier":
        earlier = [rng.choice(("normal", "high")) for _ in range(rng.randint(1, 3))]
        earlier[rng.randrange(len(earlier))] = "high"
        return [*earlier, "normal"]
    if plan == "implausible":
        states = ["normal"] * rng.randint(1, 3)
        states.insert(rng.randint(0, len(states)), "implausible")
        return states
    return []


def _series(p: _Patient, vital: Vital, plan: str, dated: bool) -> None:
    states = _series_states(p, plan)
    units = [u for u, _, _ in vital.units]
    main_unit = p.rng.choices(units, weights=[w for _, _, w in vital.units])[0]
    moment = _before(p, 0.1, 1.0)
    moments = []
    for _ in states:
        moments.append(moment)
        moment -= timedelta(minutes=p.rng.randint(45, 8 * 60))
    for state, when in zip(states, reversed(moments), strict=True):
        unit = main_unit if p.chance(0.9) else p.rng.choice(units)
        if state == "implausible":
            unit, value = p.rng.choice(vital.implausible)
        else:
            value = _vital_value(p, vital, unit, state)
        human = next(h for u, h, _ in vital.units if u == unit)
        quantity = {"valueQuantity": {"value": value, "unit": human, "system": UCUM, "code": unit}}
        _observation(p, _concept((vital.system, vital.loinc, vital.display), text=vital.display), quantity,
                     category="vital-signs", when=when, dated=dated)


def _vitals(p: _Patient) -> None:
    _series(p, TEMPERATURE, p.temperature, p.temperature_dated)
    _series(p, HEART_RATE, p.heart_rate, True)
    if p.temperature in ("high", "threshold"):
        p.present.add("fever")
    if p.heart_rate == "high":
        p.present.add("tachycardia")


# ---- noise ----


def _ancestors(key: str) -> set[str]:
    found, stack = {key}, [key]
    while stack:
        for parent in PARENTS.get(stack.pop(), ()):
            if parent not in found:
                found.add(parent)
                stack.append(parent)
    return found


def _unrelated(p: _Patient, keys: Iterable[str]) -> list[str]:
    """Keys neither an ancestor nor a descendant of anything present (safe to document absent or resolved)."""
    present = set(p.present)
    if p.temperature == "high-earlier":
        present.add("fever")
    if p.heart_rate == "high-earlier":
        present.add("tachycardia")
    return [k for k in keys if not any(k in _ancestors(x) or x in _ancestors(k) for x in present)]


def _noise_condition(p: _Patient) -> None:
    _condition(p, p.rng.choice(NOISE_CONDITIONS), clinical=p.pick({"active": 0.75, "resolved": 0.15, "inactive": 0.1}))


def _noise_medication(p: _Patient) -> None:
    start = _before(p, 24, 24 * 400)
    p.add("MedicationStatement", {"status": p.pick({"active": 0.6, "completed": 0.3, "stopped": 0.1}),
                                  "medicationCodeableConcept": _concept(p.rng.choice(NOISE_MEDICATIONS)),
                                  "subject": p.subject, "effectivePeriod": {"start": _stamp(p, start)},
                                  "dosage": [{"text": p.rng.choice(("once daily", "twice daily", "as needed"))}]})


def _noise_encounter(p: _Patient) -> None:
    start = _before(p, 1, 24 * 300)
    cls = p.pick({"AMB": 0.7, "EMER": 0.2, "IMP": 0.1})
    p.add("Encounter", {"status": "finished", "class": {"system": ACT_CODE, "code": cls}, "subject": p.subject,
                        "period": {"start": _stamp(p, start),
                                   "end": _stamp(p, start + timedelta(minutes=p.rng.randint(15, 240)))}})


def _noise_procedure(p: _Patient) -> None:
    p.add("Procedure", {"status": "completed", "code": _concept(p.rng.choice(NOISE_PROCEDURES)), "subject": p.subject,
                        "performedDateTime": _stamp(p, _before(p, 24 * 30, 24 * 3000))})


def _noise_measure(p: _Patient) -> None:
    m = p.rng.choice(NOISE_MEASURES)
    value = p.rng.uniform(m.low, m.high)
    number: float | int = round(value, m.decimals) if m.decimals else round(value)
    _observation(p, _concept((LOINC, m.loinc, m.display)),
                 {"valueQuantity": {"value": number, "unit": m.unit, "system": UCUM, "code": m.unit}},
                 category=m.category, when=_before(p, 0.1, 24 * 60))


def _noise_blood_pressure(p: _Patient) -> None:
    def component(code: str, display: str, value: int) -> Resource:
        return {"code": _concept((LOINC, code, display)),
                "valueQuantity": {"value": value, "unit": "mmHg", "system": UCUM, "code": "mm[Hg]"}}
    systolic = p.rng.randint(100, 165)
    _observation(p, _concept((LOINC, "85354-9", "Blood pressure panel with all children optional")),
                 {"component": [component("8480-6", "Systolic blood pressure", systolic),
                                component("8462-4", "Diastolic blood pressure", systolic - p.rng.randint(30, 60))]},
                 category="vital-signs")


def _noise_other_report(p: _Patient) -> None:
    """A final report that is not lumbar imaging (it must neither count as a study nor warn)."""
    moment = _before(p, 2, 24 * 90)
    if p.chance(0.5):
        category, code, text = "LAB", (LOINC, "58410-2", "CBC panel - Blood by Automated count"), None
    else:
        category, code, text = "RAD", (LOINC, "36643-5", "XR Chest 2 Views"), "No acute cardiopulmonary process."
    body: Resource = {"status": "final", "category": _category(REPORT_CATEGORY, category), "code": _concept(code),
                      "subject": p.subject, "effectiveDateTime": _stamp(p, moment), "issued": _stamp(p, moment)}
    if text:
        body["conclusion"] = text
    p.add("DiagnosticReport", body)


def _noise_allergy(p: _Patient) -> None:
    p.add("AllergyIntolerance", {"clinicalStatus": _status(ALLERGY_CLINICAL, "active"),
                                 "verificationStatus": _status(ALLERGY_VERIFICATION, "confirmed"),
                                 "code": _concept(p.rng.choice(NOISE_ALLERGIES)), "patient": p.subject})


def _noise_entered_in_error(p: _Patient) -> None:
    """Something a careless reader would count: a mass, a red flag, a fever or a context entered in error."""
    kind = p.pick({"condition": 0.35, "observation": 0.25, "temperature": 0.2, "mass": 0.1, "flag": 0.1})
    if kind == "condition":
        _condition(p, _concept_code(p, p.rng.choice(RED_FLAG_KEYS)), verification="entered-in-error")
    elif kind == "observation":
        _observation(p, _concept(_concept_code(p, p.rng.choice(RED_FLAG_KEYS))), {"valueBoolean": True},
                     status=p.pick({"entered-in-error": 0.7, "cancelled": 0.3}))
    elif kind == "temperature":
        quantity = {"valueQuantity": {"value": round(p.rng.uniform(38.5, 40.0), 1), "unit": "°C", "system": UCUM,
                                      "code": "Cel"}}
        _observation(p, _concept((TEMPERATURE.system, TEMPERATURE.loinc, TEMPERATURE.display)), quantity, category="vital-signs",
                     status="entered-in-error", when=p.visit - timedelta(minutes=p.rng.randint(0, 5)))
    elif kind == "mass":
        _condition(p, CODES["palpable-lumbar-mass"][0], verification="entered-in-error", site=LUMBAR_SITES[0])
    else:
        key = p.rng.choice(CONTEXT_KEYS)
        _flag(p, _local(key), status=p.pick({"entered-in-error": 0.5, "inactive": 0.5}))


def _noise_resolved(p: _Patient) -> None:
    keys = _unrelated(p, [k for k in RED_FLAG_KEYS if k not in TERMINOLOGY.history])  # a history stays a history
    if not keys:
        return _noise_condition(p)
    _condition(p, _concept_code(p, p.rng.choice(keys)), clinical=p.pick({"resolved": 0.7, "inactive": 0.3}))


def _noise_absence(p: _Patient) -> None:
    keys = _unrelated(p, RED_FLAG_KEYS)
    if not keys:
        return _noise_condition(p)
    _absent(p, p.rng.choice(keys))


NOISE: dict[Callable[[_Patient], None], float] = {
    _noise_condition: 18, _noise_medication: 14, _noise_encounter: 6, _noise_procedure: 5, _noise_measure: 20,
    _noise_blood_pressure: 5, _noise_other_report: 4, _noise_allergy: 3, _noise_entered_in_error: 6,
    _noise_resolved: 6, _noise_absence: 10,
}


def _noise(p: _Patient, count: int) -> None:
    makers, weights = list(NOISE), list(NOISE.values())
    for _ in range(count):
        p.rng.choices(makers, weights=weights)[0](p)


# ---- branches ----


def _core(p: _Patient) -> None:
    """The entry criterion: a palpable lumbar mass with back pain."""
    _mass(p, "lumbar")
    _finding(p, "back-pain")


def _red_flag(p: _Patient, key: str) -> None:
    """One red flag, as a code or (fever, tachycardia) sometimes as measurements only."""
    if key == "fever" and p.chance(0.5):
        p.temperature = "high"
    elif key == "tachycardia" and p.chance(0.5):
        p.heart_rate = "high"
    else:
        _finding(p, key)


def _some_red_flags(p: _Patient, low: int, high: int) -> None:
    for key in p.rng.sample(RED_FLAG_KEYS, p.rng.randint(low, high)):
        _red_flag(p, key)


def _b_no_mass(p: _Patient) -> None:
    if p.chance(0.75):
        _finding(p, "back-pain")
    if p.chance(0.3):
        _some_red_flags(p, 1, 2)
    if p.chance(0.1):
        _report(p, "xr-lumbar", "imaging-negative")


def _mass_elsewhere(p: _Patient, site: str | None) -> None:
    _mass(p, site)
    if p.chance(0.9):
        _finding(p, "back-pain")
    if p.chance(0.2):
        _some_red_flags(p, 1, 1)


def _with(*steps: Callable[[_Patient], None]) -> Callable[[_Patient], None]:
    def build(p: _Patient) -> None:
        for step in steps:
            step(p)
    return build


def _set(**plan: Any) -> Callable[[_Patient], None]:
    def step(p: _Patient) -> None:
        for name, value in plan.items():
            setattr(p, name, value)
    return step


def _find(key: str, **options: Any) -> Callable[[_Patient], None]:
    return lambda p: _finding(p, key, **options)


def _imaging(study: str, conclusion: str | None, status: str | None = None) -> Callable[[_Patient], None]:
    def step(p: _Patient) -> None:
        _report(p, study, conclusion, status=status)
    return step


def _ctx(key: str) -> Callable[[_Patient], None]:
    return lambda p: _context(p, key)


def _one_of(keys: tuple[str, ...]) -> Callable[[_Patient], None]:
    return lambda p: _finding(p, p.rng.choice(keys))


def _maybe(probability: float, step: Callable[[_Patient], None]) -> Callable[[_Patient], None]:
    def maybe(p: _Patient) -> None:
        if p.chance(probability):
            step(p)
    return maybe


def _fever_condition(p: _Patient) -> None:
    _finding(p, "fever", form="condition")
    p.temperature = p.pick({"high": 0.5, "none": 0.5})


def _tachycardia_code(p: _Patient) -> None:
    _finding(p, "tachycardia", form=p.pick({"condition": 0.6, "observation": 0.4}))
    p.heart_rate = p.pick({"high": 0.5, "none": 0.5})


def _history_of_cancer(p: _Patient) -> None:
    clinical = p.pick({"active": 0.4, "inactive": 0.2, "remission": 0.2, "resolved": 0.2})
    _finding(p, "history-of-cancer", form="condition", clinical=clinical)


def _cauda_equina_features(p: _Patient) -> None:
    for key in p.rng.sample(CAUDA_EQUINA_FEATURES, p.rng.randint(1, 3)):
        _finding(p, key)


def _cauda_equina_suspected(p: _Patient) -> None:
    verification = p.pick({"provisional": 0.5, "differential": 0.3, "unconfirmed": 0.2})
    _finding(p, "cauda-equina-syndrome", form="condition", verification=verification)


def _progressive_deficit(p: _Patient) -> None:
    _finding(p, "progressive-neurologic-deficit")
    if p.chance(0.6):
        _finding(p, "motor-weakness")


def _documented_absences(p: _Patient) -> None:
    for key in p.rng.sample(RED_FLAG_KEYS, p.rng.randint(5, 10)):
        _absent(p, key)


def _contradiction(p: _Patient) -> None:
    code = _concept_code(p, "fever")
    _condition(p, code, clinical="inactive", verification="refuted", category="encounter-diagnosis")
    p.temperature = "high"


def _implausible_vital(p: _Patient) -> None:
    if p.chance(0.5):
        p.temperature = "implausible"
    else:
        p.heart_rate = "implausible"



@dataclass(frozen=True)
class Branch:
    """One scenario of the cohort: its name, how often it is drawn, how it is built, and what it tests."""

    name: str
    weight: float
    build: Callable[[_Patient], None]
    summary: str
    expected_exit: int = 0


BRANCHES: tuple[Branch, ...] = (
    Branch("no-mass", 12, _b_no_mass, "back pain or red flags without any mass: not applicable"),
    Branch("mass-no-site", 4, lambda p: _mass_elsewhere(p, None), "mass without bodySite: not applicable, Warning"),
    Branch("mass-back-site", 4, lambda p: _mass_elsewhere(p, "back"),
           "mass at 'Back' 77568009: not applicable, Warning"),
    Branch("lumbar-mass-no-back-pain", 2, lambda p: _mass(p, "lumbar"), "lumbar mass without back pain"),
    Branch("lumbar-mass-only", 8, _core, "lumbar mass with back pain, no other red flag: MRI wo/w (S01, S10)"),
    Branch("fever-condition", 3, _with(_core, _fever_condition), "fever coded as a Condition"),
    Branch("fever-vitals", 4, _with(_core, _set(temperature="high")),
           "temperatures, some below 38.0, the most recent at or above"),
    Branch("fever-vitals-undated", 1.5, _with(_core, _set(temperature="high", temperature_dated=False)),
           "undated temperatures, the highest at or above 38.0"),
    Branch("fever-vitals-earlier-only", 2, _with(_core, _set(temperature="high-earlier")),
           "an earlier temperature at or above 38.0, the most recent below: no fever"),
    Branch("vitals-at-threshold", 1.5, _with(_core, _set(temperature="threshold", heart_rate="threshold")),
           "most recent temperature exactly 38.0 Cel / 100.4 [degF] (fever), heart rate exactly 100 (no tachycardia)"),
    Branch("tachycardia-code", 1.5, _with(_core, _tachycardia_code), "tachycardia coded"),
    Branch("tachycardia-vitals", 3, _with(_core, _set(heart_rate="high")), "most recent heart rate above 100"),
    Branch("tachycardia-vitals-earlier-only", 1, _with(_core, _set(heart_rate="high-earlier")),
           "an earlier heart rate above 100, the most recent not: no tachycardia"),
    Branch("motor-weakness", 2, _with(_core, _find("motor-weakness")), "neurologic deficit: motor weakness"),
    Branch("sensory-change", 2, _with(_core, _find("sensory-change")), "neurologic deficit: sensory change"),
    Branch("reflex-asymmetry", 1.5, _with(_core, _find("reflex-asymmetry")), "neurologic deficit: reflex asymmetry"),
    Branch("gait-abnormality", 2, _with(_core, _find("gait-abnormality")), "gait abnormality"),
    Branch("abnormal-spinal-curvature", 2, _with(_core, _find("abnormal-spinal-curvature")), "abnormal curvature"),
    Branch("lymphadenopathy", 2, _with(_core, _find("lymphadenopathy")), "palpable lymphadenopathy"),
    Branch("weight-loss", 2, _with(_core, _find("unintentional-weight-loss")), "unintentional weight loss"),
    Branch("night-pain", 2, _with(_core, _find("night-pain")), "night pain (local code)"),
    Branch("history-of-cancer", 3, _with(_core, _history_of_cancer),
           "history of cancer, clinicalStatus active/inactive/remission/resolved (history by nature)"),
    Branch("multiple-red-flags", 4, _with(_core, lambda p: _some_red_flags(p, 2, 4)), "two to four red flags"),
    Branch("cauda-equina-features", 3, _with(_core, _cauda_equina_features),
           "one to three cauda equina features: emergent MRI, surgical consultation (S34)"),
    Branch("cauda-equina-suspected", 2, _with(_core, _cauda_equina_suspected),
           "cauda equina syndrome provisional/differential/unconfirmed: still emergent (S34)"),
    Branch("cauda-equina-confirmed", 1, _with(_core, _find("cauda-equina-syndrome", form="condition")),
           "cauda equina syndrome confirmed (S34)"),
    Branch("progressive-deficit", 2, _with(_core, _progressive_deficit),
           "severe or progressive neurologic deficit: neurosurgical evaluation (S35)"),
    Branch("mri-contraindicated", 2, _with(_core, _ctx("mri-contraindicated")), "CT with contrast instead (S19)"),
    Branch("mri-contraindicated-deficit", 2, _with(_core, _ctx("mri-contraindicated"), _one_of(NEURO_DEFICITS)),
           "CT with contrast plus CT myelography (S19, S24)"),
    Branch("mri-unavailable", 2, _with(_core, _ctx("mri-unavailable")), "CT with contrast second line (S19)"),
    Branch("mri-unavailable-deficit", 1, _with(_core, _ctx("mri-unavailable"), _one_of(NEURO_DEFICITS)),
           "CT second line, no CT myelography (S24 names contraindication only)"),
    Branch("imaging-metastasis", 2.5, _with(_core, _maybe(0.5, _history_of_cancer),
                                            _imaging("mri-lumbar-wo-w-contrast", "spinal-metastasis")),
           "final MRI: spinal metastasis: biopsy, oncology referral (S41)"),
    Branch("imaging-ependymoma", 1.5, _with(_core, _imaging("mri-lumbar-wo-w-contrast", "ependymoma")),
           "final MRI: ependymoma (malignancy, S41)"),
    Branch("imaging-osteoid-osteoma", 1.5, _with(_core, _imaging("mri-lumbar-wo-w-contrast", "osteoid-osteoma")),
           "final MRI: osteoid osteoma (benign tumor, S43)"),
    Branch("imaging-benign-tumor", 1.5, _with(_core, _imaging("mri-lumbar-wo-w-contrast", "benign-tumor")),
           "final MRI: benign tumor (S43)"),
    Branch("imaging-discitis", 1.5, _with(_core, _maybe(0.5, _set(temperature="high")),
                                          _imaging("mri-lumbar-wo-w-contrast", "discitis")),
           "final MRI: discitis (infection, S42)"),
    Branch("imaging-paraspinal-abscess", 1.5, _with(_core, _maybe(0.5, _set(temperature="high")),
                                                    _imaging("mri-lumbar-wo-w-contrast", "paraspinal-abscess")),
           "final MRI: paraspinal abscess (infection with abscess: drainage, S42)"),
    Branch("imaging-negative-mri", 2, _with(_core, _imaging("mri-lumbar-wo-w-contrast", "imaging-negative")),
           "final negative MRI wo/w: reassess (S44)"),
    Branch("imaging-negative-mri-wo", 1.5, _with(_core, _imaging("mri-lumbar-wo-contrast", "imaging-negative")),
           "negative MRI without contrast: no S44, MRI wo/w still (S13, S37)"),
    Branch("imaging-negative-xr", 1.5, _with(_core, _imaging("xr-lumbar", "imaging-negative")),
           "negative radiograph: no S44, MRI still mandatory (S18, S36)"),
    Branch("imaging-negative-ct-mri-available", 1, _with(_core, _imaging("ct-lumbar-w-contrast", "imaging-negative")),
           "negative CT while MRI is possible: no S44"),
    Branch("imaging-ct-contraindicated-negative", 1, _with(_core, _ctx("mri-contraindicated"),
                                                           _imaging("ct-lumbar-w-contrast", "imaging-negative")),
           "MRI contraindicated, negative CT with contrast: S44"),
    Branch("imaging-ct-contraindicated-metastasis", 1, _with(_core, _ctx("mri-contraindicated"),
                                                             _imaging("ct-lumbar-w-contrast", "spinal-metastasis")),
           "MRI contraindicated, CT shows metastasis: S41 (marked addition)"),
    Branch("imaging-xr-negative-then-mri-metastasis", 1,
           _with(_core, _imaging("xr-lumbar", "imaging-negative"),
                 _imaging("mri-lumbar-wo-w-contrast", "spinal-metastasis")),
           "negative radiograph followed by an MRI showing metastasis"),
    Branch("imaging-unknown-conclusion", 1.5, _with(_core, _imaging("mri-lumbar-wo-w-contrast", "unknown")),
           "final MRI whose conclusion matches no concept: Warning"),
    Branch("imaging-preliminary", 1.5, _with(_core, _imaging("mri-lumbar-wo-w-contrast", "spinal-metastasis",
                                                             "preliminary")),
           "preliminary MRI report: not a result, MRI still ordered"),
    Branch("documented-absences", 3, _with(_core, _documented_absences),
           "five to ten red flags documented absent (valueBoolean false, NEG/ND, refuted)"),
    Branch("contradiction", 1.5, _with(_core, _contradiction),
           "refuted fever Condition and a febrile most recent temperature: presence wins, Warning"),
)
OUT_OF_RANGE = Branch("vital-out-of-range", 0, _with(_core, _implausible_vital),
                      "a temperature or heart rate outside the plausible range: conforms false, exit 1",
                      expected_exit=1)
BY_NAME: dict[str, Branch] = {b.name: b for b in (*BRANCHES, OUT_OF_RANGE)}


def _choose_branch(rng: random.Random) -> Branch:
    if rng.random() < OUT_OF_RANGE_SHARE:
        return OUT_OF_RANGE
    return rng.choices(BRANCHES, weights=[b.weight for b in BRANCHES])[0]


# ---- bundles ----


def _patient_resource(p: _Patient, tags: list[Resource]) -> Resource:
    gender = p.rng.choice(("female", "male"))
    age_days = p.rng.randint(18 * 365, 90 * 365)
    return {"resourceType": "Patient", "id": p.pid, "meta": {"tag": tags},
            "identifier": [{"system": MRN_SYSTEM, "value": f"MRN{p.index:06d}"}], "active": True,
            "name": [{"use": "official", "family": p.rng.choice(FAMILY), "given": [p.rng.choice(GIVEN[gender])]}],
            "gender": gender, "birthDate": (p.visit - timedelta(days=age_days)).date().isoformat()}


def _tags(branch: Branch) -> list[Resource]:
    return [{"system": BRANCH_SYSTEM, "code": branch.name},
            {"system": EXPECT_SYSTEM, "code": f"exit-{branch.expected_exit}"}]


def _size(rng: random.Random) -> int:
    """Resources in the record (Patient included): 5 to 60, most between 10 and 30."""
    return MIN_RESOURCES + int((MAX_RESOURCES - MIN_RESOURCES) * rng.betavariate(1.6, 3.2))


def make_bundle(index: int, seed: int = 1) -> Resource:
    """Patient number ``index`` (from 1) of the cohort of ``seed``, as a FHIR R4 collection Bundle."""
    rng = random.Random(f"guideline-kg-cohort:{seed}:{index}")
    branch = _choose_branch(rng)
    start = datetime(2023, 1, 1, tzinfo=UTC)
    visit = start + timedelta(days=rng.randrange(730), minutes=rng.randrange(7 * 60, 19 * 60))
    p = _Patient(rng, index, branch.name, visit)
    p.temperature = p.pick({"normal": 0.8, "none": 0.2})
    p.heart_rate = p.pick({"normal": 0.8, "none": 0.2})
    branch.build(p)
    _vitals(p)
    target = max(_size(rng), len(p.resources) + 1 + 2)
    _noise(p, min(target, MAX_RESOURCES) - len(p.resources) - 1)
    rng.shuffle(p.resources)
    resources = list(p.resources)
    patient = _patient_resource(p, _tags(branch))
    resources.insert(0 if rng.random() < 0.9 else rng.randint(0, len(resources)), patient)
    return {"resourceType": "Bundle", "id": f"bundle-{p.pid}", "meta": {"tag": _tags(branch)}, "type": "collection",
            "timestamp": _stamp(p, visit + timedelta(hours=1)),
            "entry": [{"fullUrl": f"{BASE_URL}/{r['resourceType']}/{r['id']}", "resource": r} for r in resources]}


def generate(n: int, seed: int = 1) -> Iterator[Resource]:
    """Yield ``n`` patient Bundles (ids p000001...), one at a time, the same for the same seed."""
    for index in range(1, n + 1):
        yield make_bundle(index, seed)


def _tag(resource: Resource, system: str) -> str:
    for tag in resource.get("meta", {}).get("tag", []):
        if tag.get("system") == system:
            return str(tag["code"])
    raise ValueError(f"{resource.get('resourceType')}/{resource.get('id')}: no meta.tag of system {system}")


def branch_of(resource: Resource) -> str:
    """The branch a generated Bundle (or its Patient) was drawn from; ValueError when it has none."""
    return _tag(resource, BRANCH_SYSTEM)


def expected_exit(resource: Resource) -> int:
    """The exit code ``guideline-kg`` should give for a generated Bundle (or its Patient): 0, or 1."""
    return int(_tag(resource, EXPECT_SYSTEM).removeprefix("exit-"))


# ---- writers ----


def _dumps(resource: Resource, indent: int | None = None) -> str:
    separators = (",", ": ") if indent else (",", ":")
    return json.dumps(resource, ensure_ascii=False, indent=indent, separators=separators)


def write_files(bundles: Iterable[Resource], folder: Path) -> None:
    """One ``<patient-id>.json`` per Bundle."""
    folder.mkdir(parents=True, exist_ok=True)
    for bundle in bundles:
        patient = next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient")
        (folder / f"{patient['id']}.json").write_text(_dumps(bundle, indent=2) + "\n", encoding="utf-8")


def write_ndjson(bundles: Iterable[Resource], out: TextIO) -> None:
    """One Bundle per line."""
    for bundle in bundles:
        out.write(_dumps(bundle) + "\n")


class _Interleaver:
    """Per resource type a bounded shuffle buffer before ``<Type>.ndjson``: lines leave in a seeded random order."""

    def __init__(self, folder: Path, seed: int, capacity: int = BULK_BUFFER) -> None:
        self.folder, self.capacity = folder, capacity
        self.rng = random.Random(f"guideline-kg-cohort-bulk:{seed}")
        self.buffers: dict[str, list[str]] = {}
        self.files: dict[str, TextIO] = {}
        self.counts: Counter[str] = Counter()

    def _file(self, resource_type: str) -> TextIO:
        if resource_type not in self.files:
            self.files[resource_type] = (self.folder / f"{resource_type}.ndjson").open("w", encoding="utf-8")
        return self.files[resource_type]

    def put(self, resource: Resource) -> None:
        resource_type = resource["resourceType"]
        buffer = self.buffers.setdefault(resource_type, [])
        if len(buffer) >= self.capacity:
            j = self.rng.randrange(len(buffer))
            buffer[j], buffer[-1] = buffer[-1], buffer[j]
            self._file(resource_type).write(buffer.pop() + "\n")
        buffer.append(_dumps(resource))
        self.counts[resource_type] += 1

    def close(self) -> None:
        for resource_type in sorted(set(self.buffers) | set(BULK_TYPES)):
            buffer = self.buffers.get(resource_type, [])
            self.rng.shuffle(buffer)
            handle = self._file(resource_type)
            handle.writelines(line + "\n" for line in buffer)
            handle.close()


def write_bulk(bundles: Iterable[Resource], folder: Path, seed: int) -> None:
    """A FHIR Bulk Data export folder: ``<Type>.ndjson`` files, resources interleaved across patients, a manifest."""
    folder.mkdir(parents=True, exist_ok=True)
    sink = _Interleaver(folder, seed)
    for bundle in bundles:
        for entry in bundle["entry"]:
            sink.put(entry["resource"])
    sink.close()
    manifest = {"transactionTime": "2025-01-01T00:00:00Z", "request": f"{BASE_URL}/$export",
                "requiresAccessToken": False,
                "output": [{"type": t, "url": f"{t}.ndjson", "count": sink.counts[t]}
                           for t in sorted(set(sink.counts) | set(BULK_TYPES))],
                "error": []}
    (folder / "manifest.json").write_text(_dumps(manifest, indent=2) + "\n", encoding="utf-8")


# ---- command line ----


def _tally(bundles: Iterable[Resource], counts: Counter[str]) -> Iterator[Resource]:
    for bundle in bundles:
        counts[branch_of(bundle)] += 1
        yield bundle


def _print_branches(out: TextIO) -> None:
    total = sum(b.weight for b in BRANCHES)
    for b in BRANCHES:
        share = b.weight / total * (1 - OUT_OF_RANGE_SHARE)
        out.write(f"{b.name}\t{share:.2%}\texit {b.expected_exit}\t{b.summary}\n")
    out.write(f"{OUT_OF_RANGE.name}\t{OUT_OF_RANGE_SHARE:.2%}\texit 1\t{OUT_OF_RANGE.summary}\n")


def _print_counts(counts: Counter[str], n: int, out: TextIO) -> None:
    for name in BY_NAME:
        out.write(f"{name}\t{counts.get(name, 0)}\t{counts.get(name, 0) / max(n, 1):.2%}\n")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cohort", description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1000, help="number of patients (default 1000)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--out", type=Path, metavar="DIR", help="write one <patient-id>.json per Bundle")
    target.add_argument("--ndjson", metavar="FILE", help="write one Bundle per line ('-' for stdout)")
    target.add_argument("--bulk", type=Path, metavar="DIR", help="write a FHIR Bulk Data export folder")
    target.add_argument("--list", action="store_true", help="print the branches with their share and summary")
    parser.add_argument("--stats", action="store_true", help="print the branch distribution to stderr")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.list:
        _print_branches(sys.stdout)
        return 0
    if args.n < 0:
        print("cohort: --n must not be negative", file=sys.stderr)
        return 2
    counts: Counter[str] = Counter()
    bundles = _tally(generate(args.n, args.seed), counts)
    if args.out is not None:
        write_files(bundles, args.out)
    elif args.bulk is not None:
        write_bulk(bundles, args.bulk, args.seed)
    elif args.ndjson == "-":
        write_ndjson(bundles, sys.stdout)
    else:
        with open(args.ndjson, "w", encoding="utf-8") as out:
            write_ndjson(bundles, out)
    if args.stats:
        _print_counts(counts, args.n, sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
