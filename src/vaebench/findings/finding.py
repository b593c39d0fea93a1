"""A finding: a question or statement with its short answer and one paragraph of plain text, and the one
way the findings name a group of families or of latent sizes."""

from dataclasses import dataclass

from vaebench.results import Study
from vaebench.words import label

BETWEEN_SIZES = "; "  # between the answers of a table cell for different latent sizes (`per_size`)


@dataclass(frozen=True)
class Finding:
    """One finding. `key` names the rule that wrote it; `title` is its lead (the report prints it in bold),
    empty where there is none; `title + " " + text` is the whole finding. A claim, a question or a check has
    its `verdict` (a claim's analysis.VERDICTS, a check's robustness status, a question's short answer), the
    `measure` it was judged on, the `evidence` in short (counts or the evidence rule's words, not sentences)
    and what `stands_for` each of its words."""

    key: str
    title: str
    text: str
    verdict: str = ""
    measure: str = ""
    evidence: str = ""
    stands_for: str = ""

    def __str__(self) -> str:
        return f"{self.title} {self.text}" if self.title else self.text


def where(study: Study, dims: list[int]) -> str:
    return "at every latent size" if dims == study.dims else f"at z = {', '.join(map(str, dims))}"


def listed(study: Study, chosen: list[str]) -> str:
    """'A, B and C': the families' labels, with ';' between them where a label has a comma of its own."""
    names = [label(study, f) for f in chosen]
    sep = "; " if any("," in name for name in names) else ", "
    return f"{sep.join(names[:-1])} and {names[-1]}" if len(names) > 1 else "".join(names)


def named(study: Study, chosen: list[str]) -> str:
    """The families chosen, by name while they are the fewer, else as every family but the rest."""
    ordered = [f for f in study.families if f in chosen]
    rest = [f for f in study.families if f not in chosen]
    if len(ordered) > len(study.families) / 2:
        return f"every family but {listed(study, rest)}" if rest else "every family"
    return listed(study, ordered)


def sizes_of(answers: dict[int, str]) -> dict[str, list[int]]:
    """The latent sizes of each distinct answer, in the order the answers first appear."""
    grouped: dict[str, list[int]] = {}
    for dim, answer in answers.items():
        grouped.setdefault(answer, []).append(dim)
    return grouped


def per_size(study: Study, answers: dict[int, str]) -> str:
    """A table cell's answer per latent size: 'A' where one answer holds at every latent size, else
    'z = 2: A; z = 8, 16: B' (the report puts each on a line of its own, BETWEEN_SIZES)."""
    grouped = sizes_of(answers)
    if list(grouped.values()) == [study.dims]:
        return next(iter(grouped))
    return BETWEEN_SIZES.join(
        f"z = {', '.join(map(str, dims))}: {answer}" for answer, dims in grouped.items()
    )


def said_per_size(study: Study, clauses: dict[int, str]) -> str:
    """A sentence per clause, the latent sizes that share it said once: 'At every latent size, A.' or
    'At z = 2, A. At z = 8, 16, B.'"""
    return " ".join(sentence(f"{where(study, dims)}, {clause}") for clause, dims in sizes_of(clauses).items())


def sentence(text: str) -> str:
    return f"{text[:1].upper()}{text[1:]}."
