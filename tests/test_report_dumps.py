"""The report's JSON writer gives exactly what ``json.dumps(indent=2, ensure_ascii=False)`` gives."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from reasoner.report import dumps

leaves = st.none() | st.booleans() | st.integers() | st.text() | st.floats(allow_nan=True)
values = st.recursive(leaves, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=30)


@settings(max_examples=300, deadline=None)
@given(values)
def test_dumps_is_json_dumps_indented(value) -> None:
    assert dumps(value) == json.dumps(value, indent=2, ensure_ascii=False) + "\n"


def test_values_it_does_not_write_itself_go_to_json_dumps() -> None:
    value = {"a": (1, 2), "b": 1.5}
    assert dumps(value) == json.dumps(value, indent=2, ensure_ascii=False) + "\n"
    assert dumps({1: "x"}) == '{\n  "1": "x"\n}\n'
