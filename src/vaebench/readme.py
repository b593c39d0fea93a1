"""`vaebench readme`: a study's results as Markdown, for a README or a note. The headline table (each family's
discretized bits/dim per latent size, with the models without a latent), What to use, Does the verdict
hold?, the seed post's claims, the limits and how the runs ended, all in the report's own words
(`vaebench.findings`, `vaebench.report`), so the README says what the report says; and, given the study's
benchmarks folder, the job time of each stage."""

import argparse
from pathlib import Path

import pandas as pd

from vaebench import analysis
from vaebench.errors import VaebenchError
from vaebench.findings import Finding, limits, verdict
from vaebench.findings.hold import hold
from vaebench.findings.seed_claims import claims
from vaebench.report.setup import ENDINGS_HEADER, ending_cells
from vaebench.report.tables import spread, status_counts
from vaebench.results import Study, read_config, saved_config
from vaebench.utils import finite
from vaebench.words import fmt, label

METRIC = "bpd_disc"  # the headline's measure
DATASET_RULES = ("data", "classifier")  # jobs per dataset (resources/DATASET...), which its studies share


def markdown_table(header: list[str], rows: list[list[str]], left: int = 1) -> str:
    """A Markdown table: its first `left` columns (text) aligned left, the rest (numbers) right."""
    rule = "|" + "---|" * left + "---:|" * (len(header) - left)
    return "\n".join([markdown_row(header), rule, *(markdown_row(r) for r in rows)]) + "\n"


def markdown_row(cells: list[str]) -> str:
    return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"


def headline_cell(study: Study, family: str, dim: int, leaders: tuple, notes: dict[str, int]) -> str:
    """As the report's headline shows it (report.tables.spread), bold for the best, '=' where the pair's test
    cannot tell it from the best, the runs that are not ok, and a numbered note where the tables give one."""
    best, tied = leaders
    s = study.stat(family, dim, METRIC)
    mark = f" [{notes.setdefault(s['note'], len(notes) + 1)}]" if s["note"] else ""
    counts = f" ({c})" if (c := status_counts(study, family, dim)) else ""
    if not finite(s["mean"]):
        return f"n/a{mark}{counts}"
    shown, _ = spread(s)
    shown = f"**{shown}**" if family == best else shown + (" =" if family in tied else "")
    return f"{shown}{mark}{counts}"


def headline(study: Study) -> str:
    leaders, notes = analysis.leaders(study, METRIC), {}
    marked = set(analysis.not_comparable(study))
    rows = [
        [label(study, family) + (" †" if family in marked else "")]
        + [headline_cell(study, family, dim, leaders.get(dim, (None, set())), notes) for dim in study.dims]
        for family in study.families
    ]
    rows += [
        [f"*{row.get('label', row.get('id'))}*"] + [fmt(row.get(METRIC))] * len(study.dims)
        for row in study.baseline_rows
    ]
    methods = "; ".join(sorted(analysis.test_methods(study, METRIC))) or "no test"
    legend = [
        "Discretized bits/dim of the test images (lower is better): the mean over the ok seeds ± the 95% "
        "t-interval across them (± the test-set standard error where there is one seed); the best in bold, "
        f"'=' where the pair's test ({methods}; Holm-corrected) cannot tell it from the best."
    ]
    if study.baseline_rows:
        legend.append(
            "In italics, models without a latent, fitted on the training split and scored on the same test "
            "images."
        )
    if marked:
        legend.append("†: trained on v/255 without dequantization, so its likelihoods are not comparable.")
    listed = "".join(f"\n[{n}] {text}" for text, n in notes.items())
    table = markdown_table(["family", *(f"z = {d}" for d in study.dims)], rows)
    return table + "\n" + " ".join(legend) + listed + "\n"


def bullets(found: list[Finding]) -> str:
    return "".join(f"- **{f.title}** {f.text}\n" if f.title else f"- {f.text}\n" for f in found)


def checks(study: Study) -> str:
    return "".join(f"- {f.title} **{f.verdict}**: {f.text}\n" for f in hold(study))


def claims_table(study: Study) -> str:
    rows = [[f.title, f.stands_for or "–", f.verdict, f.evidence or "–"] for f in claims(study)]
    return markdown_table(["claim", "what stands for its words", "verdict", "evidence"], rows, left=4)


def endings(study: Study) -> str:
    found = analysis.endings(study)
    if found is None or found.empty:
        return ""
    rows = [ending_cells(study, e) for e in found.itertuples()]
    folded = f"<details><summary><b>How the runs ended</b> ({len(rows)} rows)</summary>\n\n"
    return folded + markdown_table(ENDINGS_HEADER, rows, left=3) + "\n</details>\n"


def stage_times(benchmarks: Path, study: str, datasets: set[str]) -> str:
    """Per rule, the jobs of this study: their number, summed wall time, the longest and the largest peak
    memory, from Snakemake's TSVs benchmarks/RULE/NAME/... or benchmarks/RULE/NAME.tsv, where NAME is the
    study's, or for the rules of a dataset's own files (DATASET_RULES) its dataset's."""

    def ours(path: Path) -> bool:
        rule, name = path.relative_to(benchmarks).parts[:2]
        return name.removesuffix(".tsv") in ({study} | (datasets if rule in DATASET_RULES else set()))

    found = [path for path in sorted(benchmarks.glob("*/**/*.tsv")) if ours(path)]
    if not found:
        raise VaebenchError(f"no benchmark files (*.tsv) of study {study} under {benchmarks}")
    frames = []
    for path in found:
        try:
            table = pd.read_csv(path, sep="\t")
            frames.append(table.assign(rule=path.relative_to(benchmarks).parts[0])[["rule", "s", "max_rss"]])
        except (pd.errors.ParserError, pd.errors.EmptyDataError, KeyError) as err:
            raise VaebenchError(f"benchmark file {path} is not a Snakemake benchmark ({err})") from None
    jobs = pd.concat(frames)
    jobs["max_rss"] = pd.to_numeric(jobs["max_rss"], errors="coerce")
    rows = [
        [
            rule,
            str(len(at)),
            fmt(at["s"].sum() / 3600, 2),
            fmt(at["s"].max() / 60, 1),
            fmt(at["max_rss"].max(), 0),
        ]
        for rule, at in jobs.groupby("rule", sort=False)
    ]
    total = ["all of them", str(len(jobs)), fmt(jobs["s"].sum() / 3600, 2), "", ""]
    header = ["rule", "jobs", "job-hours", "longest job (min)", "peak memory (MB)"]
    return markdown_table(header, [*rows, total])


def markdown(study: Study, config: dict | None, benchmarks: Path | None = None) -> str:
    budget = (config or {}).get("budget")
    said = [Finding("limit_budget", "What the budget forced:", str(budget))] if budget else []
    parts = [
        headline(study),
        "**What to use**\n\n" + bullets(verdict(study)),
        "**Does the verdict hold?**\n\n" + checks(study),
        "**The seed post's claims**\n\n" + claims_table(study),
        "**Limits**\n\n" + (bullets(said + limits(study)) or "- none of the limits checked applies\n"),
    ]
    parts += [ended] if (ended := endings(study)) else []
    if benchmarks is not None:
        datasets = set(study.metrics["dataset"].dropna().astype(str))
        parts.append("**Job time per stage**\n\n" + stage_times(benchmarks, study.results.name, datasets))
    return "\n".join(parts)


def run(args: argparse.Namespace) -> int:
    study = Study.load(args.results, args.manifest, args.quality)
    config = read_config(args.config) if args.config else saved_config(args.results)
    print(markdown(study, config, args.benchmarks), end="")
    return 0
