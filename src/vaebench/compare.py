"""`vaebench compare`: what changed between two studies of the same question (an earlier and a later one,
say the 6-epoch Fashion-MNIST study and its converged rerun): each family's bits/dim before and after, the
ranking's agreement (Kendall's tau per latent size) and the verdict on each of the seed post's claims
before and after, as Markdown tables for a README or a note. It reads both studies' tables only."""

import argparse
import math
from dataclasses import dataclass

import pandas as pd
from scipy import stats as sps

from vaebench.findings.seed_claims import claims
from vaebench.readme import markdown_table
from vaebench.results import Study
from vaebench.utils import finite
from vaebench.words import fmt, label

METRIC = "bpd_disc"  # the verdict's measure


@dataclass(frozen=True)
class Changes:
    """Per family and latent size the two means (`values`: family, latent_dim, before, after, change), the
    rankings' Kendall's tau per latent size both studies have, and each claim's two verdicts."""

    values: pd.DataFrame
    taus: dict[int, float]
    verdicts: pd.DataFrame  # claim, before, after, evidence_before, evidence_after


def means(study: Study, metric: str = METRIC) -> pd.Series:
    """(family, latent_dim) -> the mean over ok seeds, where there is one."""
    found = {
        (family, dim): m
        for family in study.families
        for dim in study.dims
        if finite(m := study.stat(family, dim, metric)["mean"])
    }
    return pd.Series(found, dtype=float)


def changes(before: Study, after: Study, metric: str = METRIC) -> Changes:
    a, b = means(before, metric), means(after, metric)
    keys = sorted(set(a.index) | set(b.index), key=lambda k: (after.families + before.families).index(k[0]))
    values = pd.DataFrame(
        [(f, d, a.get((f, d), math.nan), b.get((f, d), math.nan)) for f, d in keys],
        columns=["family", "latent_dim", "before", "after"],
    )
    values["change"] = values["after"] - values["before"]
    taus = {}
    for dim, at in values.dropna(subset=["before", "after"]).groupby("latent_dim"):
        if len(at) >= 2:
            taus[int(dim)] = float(sps.kendalltau(at["before"], at["after"]).statistic)
    earlier = {f.key: f for f in claims(before)}
    rows = [
        (
            f.title,
            earlier[f.key].verdict if f.key in earlier else "",
            f.verdict,
            earlier[f.key].evidence if f.key in earlier else "",
            f.evidence,
        )
        for f in claims(after)
    ]
    verdicts = pd.DataFrame(rows, columns=["claim", "before", "after", "evidence_before", "evidence_after"])
    return Changes(values, taus, verdicts)


def markdown(before: Study, after: Study, found: Changes) -> str:
    """The three tables, as Markdown."""
    dims = sorted(found.values["latent_dim"].unique())
    rows = []
    for family, at in found.values.groupby("family", sort=False):
        cells = []
        for dim in dims:
            row = at[at["latent_dim"] == dim]
            if row.empty:
                cells.append("")
                continue
            r = row.iloc[0]
            change = f" ({r['change']:+.3f})" if finite(r["change"]) else ""
            cells.append(f"{fmt(r['before'])} → {fmt(r['after'])}{change}")
        rows.append([label(after if family in after.families else before, family), *cells])
    header = ["family", *(f"z = {d}: before → after (change)" for d in dims)]
    taus = "; ".join(f"z = {d}: {t:.2f}" for d, t in found.taus.items()) or "no latent size in both"
    claims_rows = [
        [r.claim, r.before or "–", r.after, r.evidence_after or "–"] for r in found.verdicts.itertuples()
    ]
    return "\n".join(
        [
            markdown_table(header, rows),
            f"Kendall's tau of the two rankings, families in both: {taus}.\n",
            markdown_table(["claim", "before", "after", "evidence after"], claims_rows, numeric=False),
        ]
    )


def run(args: argparse.Namespace) -> int:
    before, after = Study.load(args.before), Study.load(args.after)
    print(markdown(before, after, changes(before, after)), end="")
    return 0
