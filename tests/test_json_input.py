"""The JSON reader's own limits: nesting depth and unpaired surrogates, at their boundaries."""

from __future__ import annotations

import json

import pytest

from reasoner.errors import InputError
from reasoner.fhir import MAX_DEPTH, load_json


def _nested(levels: int, innermost: str = "1") -> str:
    return "[" * levels + innermost + "]" * levels


def test_nesting_up_to_the_limit_is_read() -> None:
    value = load_json(_nested(MAX_DEPTH))
    for _ in range(MAX_DEPTH - 1):
        value = value[0]
    assert value == [1]


def test_one_level_more_is_refused_with_the_limit_named() -> None:
    with pytest.raises(InputError, match=f"nested deeper than {MAX_DEPTH} levels"):
        load_json(_nested(MAX_DEPTH + 1))
    with pytest.raises(InputError, match="nested deeper"):
        load_json(json.dumps({"a": json.loads(_nested(MAX_DEPTH))}))


def test_an_empty_container_one_level_down_holds_nothing_too_deep() -> None:
    assert load_json(_nested(MAX_DEPTH + 1, "")) is not None


def test_brackets_inside_strings_are_text_not_nesting() -> None:
    text = json.dumps({"note": "[" * (MAX_DEPTH * 2)})
    assert load_json(text)["note"].startswith("[[[")


@pytest.mark.parametrize("text", [
    '{"name": "\\ud800"}',  # an escaped lone high surrogate
    '{"name": "x\\uDC00y"}',  # a lone low one, upper case
    '["\ud800"]',  # the character itself in the text
])
def test_an_unpaired_surrogate_is_refused(text: str) -> None:
    with pytest.raises(InputError, match="unpaired surrogate"):
        load_json(text)


@pytest.mark.parametrize("text, expected", [
    ('{"name": "\\ud83d\\ude00"}', "\U0001f600"),  # an escaped pair is one character
    ('{"name": "Jos\u00e9 \U0001f600"}', "Jos\u00e9 \U0001f600"),  # non-ASCII text as such
])
def test_text_that_is_unicode_is_read(text: str, expected: str) -> None:
    assert load_json(text)["name"] == expected
