"""The page's answers: "What to use" (a few lines and the leaders' table), "Does the verdict hold?" (one row
per check) and the findings (a table of claims and questions, then one short paragraph each). The words
come from `vaebench.findings`; here they become tables."""

from vaebench import findings
from vaebench.findings import Finding
from vaebench.findings.finding import BETWEEN_SIZES
from vaebench.findings.hold import hold
from vaebench.findings.use import Leader, leaders_table, picture_measure
from vaebench.report.html import esc, family_label, finding_html, findings_list, table
from vaebench.results import MEASURES, Study
from vaebench.utils import finite
from vaebench.words import fmt_value

VERDICT_CSS = {  # a verdict's or a check's cell colour class (templates/report.html)
    "supported": "v-good",
    "holds": "v-good",
    "contradicted": "v-bad",
    "fragile": "v-bad",
    "mixed": "v-mixed",
}


def per_line(text: str) -> str:
    """A cell's answers per latent size, one per line, so the cell stays narrow."""
    return "<br>".join(esc(part) for part in text.split(BETWEEN_SIZES)) if text else "–"


def verdict_cell(word: str) -> tuple[str, str]:
    return per_line(word), f"verdict {VERDICT_CSS.get(word, '')}".strip()


def leader_cells(study: Study, lead: Leader | None) -> list[str]:
    """The best family with its value, its lead over the runner-up, and the evidence words."""
    if lead is None:
        return ["n/a", "", ""]
    best = f"{family_label(study, lead.best)} {fmt_value(lead.metric, lead.value)}"
    if lead.runner_up is None:
        return [best, "", esc(lead.words)]
    ahead = f"{fmt_value(lead.metric, lead.lead)} ahead of {family_label(study, lead.runner_up)}"
    if finite(lead.run_pairs) and lead.run_pairs > 1:  # one run each: the lead itself
        low, high = (fmt_value(lead.metric, m) for m in lead.margins)
        ahead += (
            f"<br><span class='small'>ahead in {lead.runs_ahead:.0f} of {lead.run_pairs:.0f} pairs of runs, "
            f"by {low} to {high}</span>"
        )
    return [best, ahead, esc(lead.words)]


def use(study: Study) -> str:
    """The lines of "What to use", then the table they read from."""
    pictures = picture_measure(study)
    header = ["latent size", "best likelihood (discretized bits/dim)", "lead", "how sure"]
    if pictures is not None:
        header += [f"best-looking: {esc(MEASURES[pictures].name)}", "lead", "how sure"]
    rows = []
    for dim, (likelihood, looks) in zip(study.dims, leaders_table(study), strict=True):
        row = [f"z = {dim}", *leader_cells(study, likelihood)]
        if pictures is not None:
            row += leader_cells(study, looks)
        rows.append(row)
    return findings_list(findings.verdict(study), "verdict") + table(header, rows, "id='leaders'")


def hold_section(study: Study) -> str:
    """One row per check: its question, holds / fragile / not possible here, and its numbers."""
    rows = [[esc(f.title), verdict_cell(f.verdict), esc(f.text)] for f in hold(study)]
    return table(["check", "result", "what it rests on"], rows, "id='hold'")


def findings_table(items: list[Finding]) -> str:
    """The claims and questions at a glance: what stands for each word, the measure, the evidence, the
    verdict; each links to its paragraph below."""
    rows = [
        [
            f"<a href='#{esc(f.key)}'>{esc(f.title)}</a>"
            + (f"<br><span class='small'>{esc(f.stands_for)}</span>" if f.stands_for else ""),
            esc(f.measure) or "–",
            per_line(f.evidence),
            verdict_cell(f.verdict),
        ]
        for f in items
    ]
    return table(["claim or question", "measure", "evidence", "verdict"], rows, "id='findings-table'")


def findings_section(study: Study) -> str:
    """The table of the findings with a verdict, then every finding as one short paragraph."""
    items = findings.findings(study)
    judged = [f for f in items if f.verdict]
    paragraphs = "".join(f"<p id='{esc(f.key)}'>{finding_html(f)}</p>" for f in items)
    return (findings_table(judged) if judged else "") + paragraphs
