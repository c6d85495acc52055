"""SPARQL queries compiled once into Python closures over one patient's triples and the closed guideline.

The rule, report and shape-constraint queries are written in SPARQL; here rdflib's algebra of each
(``prepareQuery``) is compiled at load time into nested closures that evaluate the query the way
rdflib's own evaluator (``rdflib.plugins.sparql.evaluate``) does it, step for step: lazy joins
push bindings into their right side, non-lazy joins hash the right side, OPTIONAL re-checks
without outer bindings, FILTER and BIND forget the bindings pushed in from outside their
group, (NOT) EXISTS sees the bindings of its filter. What changes is the data access: patterns
are matched against two dictionary indexes (the closed guideline, built once, and the
patient's side, grown as rules conclude) instead of an rdflib store, by Python loops generated
per basic graph pattern and call shape (``_BGP``), and no FrozenBindings or QueryContext is
built per step. Expressions are evaluated by rdflib's own operators, or where re-implemented
(BOUND, IF, STR, CONCAT, IRI, &&, ||, !, comparisons) with the same argument evaluation and
error cases, so a comparison, a cast or an error means here what it means in the reference engine.

Anything the compiler does not cover (aggregates, GRAPH, SERVICE, property paths, blank nodes in
a CONSTRUCT template) raises ``Unsupported`` at load time; the caller then evaluates that query
with rdflib itself.

One job per module: ``data`` (the two indexes), ``nodes`` (what is read of rdflib's algebra),
``bindings`` (solutions and one evaluation's state), ``bgp`` (the generated pattern loops),
``expressions`` and ``compiler`` (expressions, then graph patterns, into closures), ``construct``
(a CONSTRUCT's template and its factored WHERE) and ``query`` (``Plan``, what callers use).
"""

from reasoner.plan.bgp import COMPILED
from reasoner.plan.data import Data, Index
from reasoner.plan.nodes import Unsupported
from reasoner.plan.query import Plan

__all__ = ["Plan", "Index", "Data", "Unsupported", "COMPILED"]
