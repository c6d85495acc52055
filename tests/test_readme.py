"""The README's architecture section is true: one line for every module of ``reasoner/``, none for a module that is gone."""

from __future__ import annotations

import re

from conftest import ROOT


def _architecture() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("## Architecture")
    return text[start:text.index("\n## ", start + 1)]


def test_every_module_of_the_package_has_its_line_in_the_architecture_section() -> None:
    listed = set(re.findall(r"^\| `(reasoner/[^`]+\.py)` \|", _architecture(), re.M))
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "reasoner").rglob("*.py") if "_data" not in p.parts}
    assert modules - listed == set(), "modules without a line in README's Architecture section"
    assert listed - modules == set(), "lines in README's Architecture section for modules that do not exist"


def test_the_architecture_section_names_only_files_that_exist() -> None:
    named = set(re.findall(r"`((?:reasoner|benchmarks|tools|scripts)/[^`]+)`", _architecture()))
    assert named and {n for n in named if not (ROOT / n).exists()} == set()
