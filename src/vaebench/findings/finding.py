"""A finding: a sentence of plain text, and the one way a group of families is named with its evidence."""

from dataclasses import dataclass

from vaebench.analysis import Evidence
from vaebench.results import Study
from vaebench.words import label


@dataclass(frozen=True)
class Finding:
    """One finding. `key` names the rule that wrote it; `title` is its lead (the report prints it in bold),
    empty where there is none; `title + " " + text` is the whole finding. A claim or a check has its
    `verdict` (analysis.VERDICTS, robustness's statuses), the `measure` it was judged on, the `evidence` in
    short (counts, not sentences) and what `stands_for` each of its words."""

    key: str
    title: str
    text: str
    verdict: str = ""
    measure: str = ""
    evidence: str = ""
    stands_for: str = ""

    def __str__(self) -> str:
        return f"{self.title} {self.text}" if self.title else self.text


def grouped(study: Study, items: list[tuple[str, str, Evidence]]) -> str:
    """'A 1.2, B 1.3 (order of means only, 1 seed)': families with their values, the evidence words once per
    group of equal words."""
    groups: dict[str, list[str]] = {}
    for family, shown, ev in items:
        groups.setdefault(ev.words, []).append(f"{label(study, family)} {shown}")
    return "; ".join(f"{', '.join(names)} ({words})" for words, names in groups.items())
