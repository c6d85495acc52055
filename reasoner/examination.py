"""The focused examination as the encoding states it (S02-S08): its label, how a report introduces the items a
record leaves undocumented, and the statements it comes from (``queries/html/not-documented.rq``)."""

from __future__ import annotations

from dataclasses import dataclass

from reasoner import resources
from reasoner.errors import InputError
from reasoner.guideline import Guideline
from reasoner.queries import load_folder


@dataclass(frozen=True)
class Examination:
    label: str
    not_documented_text: str
    first_statement: str
    last_statement: str

    @property
    def statements(self) -> str:
        """``S02-S08`` (or the one statement)."""
        if self.first_statement == self.last_statement:
            return self.first_statement
        return f"{self.first_statement}-{self.last_statement}"


def examination(guideline: Guideline) -> Examination:
    query = load_folder(resources.queries_dir() / "html")["not-documented"]
    rows = list(guideline.graph.query(query.prepared()))
    if not rows:
        raise InputError("the encoding has no gkg:Examination with a label and a gkg:notDocumentedText")
    label, text, first, last = rows[0]
    return Examination(str(label), str(text), str(first), str(last))
