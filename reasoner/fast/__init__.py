"""The fast engine: the reference pipeline's results with the per-patient work cut to what the patient can trigger.

The reference engine (``reasoner.engine``) closes guideline + patient with owlrl three or
four times per patient and runs every query in rdflib over ~10,000 triples. Here:

* what the engine reads of the encoding (the owlrl closure of the guideline, its asserted
  triples, the patient shapes) is computed once and kept on disk by ``Guideline.fingerprint``
  (``guideline_inputs``; ``$XDG_CACHE_HOME/guideline-kg``, else ``~/.cache/guideline-kg``; an
  unwritable cache only costs the work on every start);
* the OWL-RL rules a patient's triples can fire are compiled from the closed T-box at load
  time (``TBox``): subclass, subproperty, domain, range, inverse, symmetric and transitive
  properties, plus what owlrl adds for every triple (``owl:sameAs`` reflexivity) and every
  typed literal (datatype typing, subsumption, disjointness). A T-box using any other OWL
  construct makes the engine close each patient with owlrl as the reference does;
* the rule files of ``queries/rules/`` run in the reference's stratified fixpoint order as
  compiled plans (``reasoner.plan``: rdflib's own algebra of each query, evaluated step for step
  as rdflib evaluates it, expressions by rdflib's operators) over two indexes: the closed
  guideline, built once, and the patient's triples. A rule is evaluated again only when a triple
  was added since that can complete one of its patterns (its predicate or class, and the other
  edges the pattern's subject and object must have: ``dependencies.read_keys``); a query the compiler does not
  cover runs in rdflib;
* the shapes are parsed once into direct checks (``ShapeChecker``: targets, core constraints,
  SPARQL constraints as compiled plans, messages filled by ``validate.fill_message`` as the reference
  fills them); shapes using SHACL beyond that subset are validated with pySHACL on the patient's
  triples plus the guideline triples the shapes can read;
* the report's SELECT queries run as compiled plans; everything else sees an ordinary rdflib
  ``Graph`` (guideline store shared, patient triples on top), so explain and the RDF report
  work unchanged;
* every term is held as one object (``FastEngine.interned``), so index lookups match by
  identity rather than by rdflib's ``__eq__``;
* a patient with an ill-typed literal is handed to the reference engine whole.

The reference engine is the definition of correct: the differential tests compare the
JSON reports byte for byte (tests/test_fast_engine.py, tests/test_plan.py), the benchmark
on 1,000 patients on every run.

Modules, one job each:

* ``inputs``: what the engine reads of the encoding (closed guideline, asserted triples, shapes), cached on disk;
* ``generated``: the compiled plans' generated code, cached on disk;
* ``closure``: OWL-RL over a patient's triples from the closed T-box (``TBox``, ``DeltaClosure``);
* ``dependencies``: which added triples can change a rule's answer (read keys and their guards);
* ``shapes``: the patient shapes as direct checks (``ShapeChecker``) and what shapes read;
* ``view``: a patient's reasoned graph as an rdflib ``Graph`` over the shared guideline store;
* ``engine``: ``FastEngine``, the stages put together.
"""

from reasoner.fast.closure import DeltaClosure, TBox
from reasoner.fast.engine import FastEngine
from reasoner.fast.inputs import closed_guideline
from reasoner.fast.view import PatientView

__all__ = ["FastEngine", "PatientView", "TBox", "DeltaClosure", "closed_guideline"]
