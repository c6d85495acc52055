"""What reasoner/plan/ and reasoner/algebra.py assume of rdflib's internals, checked one by one.

The plan package evaluates rdflib's SPARQL algebra the way ``rdflib.plugins.sparql.evaluate`` does, step for step;
it calls private helpers, replaces an expression's ``_evalfn`` and keeps its state on a ``QueryContext``.
pyproject.toml pins rdflib to one minor version for that reason. When an upgrade (or a pin moved by
hand) breaks one of these assumptions, the test that fails names it: read reasoner/plan/ against the new rdflib
before changing the pin. The differential tests (tests/test_fast_engine.py, tests/test_plan.py) check
the answers; these check the seams, so a break is named rather than seen as a differing report.
"""

from __future__ import annotations

import ast
import hashlib
import importlib
import inspect
import re
import tomllib
from collections import OrderedDict
from types import MethodType

import pytest
import rdflib
from rdflib import Literal, URIRef, Variable

from conftest import ROOT

# name -> why reasoner/plan/ (or algebra.py) needs it
PRIVATE_NAMES = {
    "rdflib.plugins.sparql.evalutils:_val": "ORDER BY keys, as rdflib's evalOrderBy sorts",
    "rdflib.term:_NUMERIC_LITERAL_TYPES": "which literals compare as numbers",
    "rdflib.plugins.sparql.operators:XSD_DTs": "which datatypes a comparison knows",
    "rdflib.plugins.sparql.operators:EBV": "effective boolean values",
    "rdflib.plugins.sparql.operators:string": "CONCAT's argument check",
    "rdflib.plugins.sparql.operators:_compatibleStrings": "STRSTARTS's argument check",
    "rdflib.plugins.sparql.parserutils:value": "expressions evaluated by rdflib",
    "rdflib.plugins.sparql.parserutils:CompValue": "the algebra's nodes",
    "rdflib.plugins.sparql.parserutils:Expr": "the algebra's expressions",
    "rdflib.plugins.sparql.sparql:FrozenBindings": "bindings handed to rdflib's expressions",
    "rdflib.plugins.sparql.sparql:QueryContext": "the context rdflib's expressions read",
    "rdflib.plugins.sparql.sparql:NotBoundError": "an unbound variable",
    "rdflib.plugins.sparql.sparql:SPARQLError": "an expression's error value",
    "rdflib.plugins.sparql.algebra:TrueFilter": "the condition of an OPTIONAL without FILTER",
}

# reasoner/plan/ compiles these algebra nodes as the evaluator's functions of the same step evaluate them
EVALUATOR_STEPS = ("evalBGP", "evalFilter", "evalJoin", "evalLazyJoin", "evalLeftJoin", "evalUnion", "evalMinus",
                   "evalExtend", "evalMultiset", "evalValues", "evalProject", "evalDistinct", "evalReduced",
                   "evalSlice", "evalOrderBy", "evalPart", "evalSelectQuery", "evalConstructQuery", "evalAskQuery")

# rdflib/plugins/sparql/evaluate.py as reasoner/plan/ was last read against, by rdflib version
EVALUATOR_READ = {"7.6.0": "991944f756398773c4ddf0da0bf5a3c2285f2a67140c9976a8a806ba5d8402be"}


def _pinned_rdflib() -> str:
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["dependencies"]
    (pin,) = [d for d in dependencies if re.match(r"rdflib\b", d)]
    return pin


def test_rdflib_is_pinned_to_one_minor_version_and_the_installed_one_is_in_it() -> None:
    pin = _pinned_rdflib()
    found = re.fullmatch(r"rdflib>=(\d+)\.(\d+)(?:\.\d+)?,<(\d+)\.(\d+)", pin)
    assert found, f"pyproject.toml pins {pin!r}: reasoner/plan/ needs rdflib>=X.Y,<X.(Y+1) (it reads rdflib internals)"
    major, minor, upper_major, upper_minor = map(int, found.groups())
    assert (upper_major, upper_minor) == (major, minor + 1), f"{pin!r} allows more than one minor version"
    installed = tuple(int(x) for x in re.findall(r"\d+", rdflib.__version__)[:2])
    assert installed == (major, minor), f"rdflib {rdflib.__version__} is installed, outside the pin {pin!r}"


def _rdflib_internals_imported() -> set[str]:
    """Every name reasoner/plan/ and reasoner/algebra.py import from rdflib's SPARQL modules, or private to rdflib."""
    found = set()
    for path in [*sorted((ROOT / "reasoner" / "plan").glob("*.py")), ROOT / "reasoner" / "algebra.py"]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("rdflib"):
                found |= {f"{node.module}:{a.name}" for a in node.names
                          if node.module.startswith("rdflib.plugins.sparql") or a.name.startswith("_")}
    return found


def test_every_rdflib_internal_the_plan_imports_is_listed_here() -> None:
    imported = _rdflib_internals_imported()
    assert "rdflib.plugins.sparql.sparql:QueryContext" in imported and "rdflib.term:_NUMERIC_LITERAL_TYPES" in imported
    assert imported - PRIVATE_NAMES.keys() == set(), "rdflib internals imported but not checked by this file"


@pytest.mark.parametrize("name", sorted(PRIVATE_NAMES))
def test_the_rdflib_names_the_plan_imports_exist(name: str) -> None:
    module, attribute = name.split(":")
    assert hasattr(importlib.import_module(module), attribute), (
        f"rdflib {rdflib.__version__} has no {module}.{attribute}; reasoner/plan/ uses it for {PRIVATE_NAMES[name]}")


def test_the_evaluator_the_plan_mirrors_is_the_one_it_was_read_against() -> None:
    evaluate = importlib.import_module("rdflib.plugins.sparql.evaluate")
    missing = [f for f in EVALUATOR_STEPS if not callable(getattr(evaluate, f, None))]
    assert not missing, f"rdflib {rdflib.__version__}'s evaluator lost {missing}: reasoner/plan/ compiles those steps"
    digest = hashlib.sha256(inspect.getsource(evaluate).encode()).hexdigest()
    assert EVALUATOR_READ.get(rdflib.__version__) == digest, (
        f"rdflib {rdflib.__version__}'s rdflib/plugins/sparql/evaluate.py is not the one reasoner/plan/ was read "
        f"against ({', '.join(EVALUATOR_READ)}): compare the two, bring reasoner/plan/'s steps in line, then add "
        f"{rdflib.__version__!r}: {digest!r} to EVALUATOR_READ")


def test_an_expression_evaluates_through_its_replaceable_evalfn_with_the_context_it_is_given() -> None:
    from rdflib.plugins.sparql.parserutils import Expr
    from rdflib.plugins.sparql.sparql import FrozenBindings, QueryContext

    assert list(inspect.signature(Expr.__init__).parameters)[:3] == ["self", "name", "evalfn"], \
        f"Expr.__init__ is now {inspect.signature(Expr.__init__)}"
    context = QueryContext(None, initBindings={Variable("x"): Literal(1)})
    context._gkg_state = "state"  # reasoner/plan/ keeps its State here; QueryContext must take a new attribute
    expression = Expr("Builtin_EXISTS")
    seen = []
    expression._evalfn = MethodType(lambda self, ctx: seen.append(ctx.ctx._gkg_state) or Literal(True), expression)
    assert expression.eval(FrozenBindings(context, {Variable("y"): Literal(2)})) == Literal(True)
    assert seen == ["state"], "Expr.eval no longer calls _evalfn with FrozenBindings whose .ctx is the QueryContext"


def test_the_algebra_keeps_what_the_plan_and_algebra_py_read() -> None:
    from rdflib.plugins.sparql import prepareQuery
    from rdflib.plugins.sparql.algebra import TrueFilter
    from rdflib.plugins.sparql.parserutils import CompValue, Expr

    assert issubclass(CompValue, OrderedDict), "CompValue is no longer an OrderedDict (algebra.py rebuilds it as one)"
    assert issubclass(Expr, CompValue)
    assert callable(TrueFilter.__dict__.get("_evalfn")), "TrueFilter keeps no _evalfn (algebra.py pickles it by name)"
    query = prepareQuery("PREFIX ex: <http://example.org/> "
                         "ASK { ?s ex:p ?o OPTIONAL { ?o ex:q ?r } FILTER NOT EXISTS { ?s ex:r ?o } }")
    found: dict[str, CompValue] = {}
    stack = [query.algebra]
    while stack:
        node = stack.pop()
        if isinstance(node, CompValue):
            found.setdefault(node.name, node)
            stack.extend([*node.values(), *node.__dict__.values()])
        elif isinstance(node, (list, tuple)):
            stack.extend(node)
    for name in ("AskQuery", "LeftJoin", "Filter", "BGP", "Builtin_NOTEXISTS"):
        assert name in found, f"rdflib {rdflib.__version__}'s algebra has no {name} node for it"
    exists = found["Builtin_NOTEXISTS"]
    graph = exists.__dict__.get("graph", OrderedDict.get(exists, "graph"))
    assert isinstance(graph, CompValue) and graph.name in ("BGP", "Join", "Filter", "LeftJoin", "Union"), \
        "NOT EXISTS no longer keeps its translated pattern as 'graph'"
    assert query.prologue.absolutize(URIRef("http://example.org/x")) == URIRef("http://example.org/x")


def test_rdflib_sorts_and_compares_as_the_plan_expects() -> None:
    from rdflib import XSD
    from rdflib.plugins.sparql.evalutils import _val
    from rdflib.plugins.sparql.operators import XSD_DTs
    from rdflib.term import _NUMERIC_LITERAL_TYPES

    assert _val(Literal(1)) < _val(Literal(2)), "evalutils._val no longer gives an ordering key"
    assert XSD.integer in set(_NUMERIC_LITERAL_TYPES) and XSD.decimal in set(_NUMERIC_LITERAL_TYPES)
    assert XSD.string in XSD_DTs and XSD.dateTime in XSD_DTs
