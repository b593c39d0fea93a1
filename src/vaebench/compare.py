"""`vaebench compare`: what changed between two studies of the same question (an earlier and a later one,
say the 6-epoch Fashion-MNIST study and its converged rerun): the settings their configs differ in (the
reasons), each family's bits/dim before and after, the ranking's agreement (Kendall's tau per latent size)
and the verdict on each of the seed post's claims before and after, as Markdown tables for a README or a
note. It reads both studies' tables and their validated configs (study.yaml) only."""

import argparse
import math
from dataclasses import dataclass

import pandas as pd

from vaebench import analysis
from vaebench.findings.seed_claims import claims
from vaebench.readme import markdown_table
from vaebench.results import Study, saved_config
from vaebench.robustness import tau
from vaebench.utils import finite
from vaebench.words import fmt, label

METRIC = "bpd_disc"  # the verdict's measure
# config keys that say how the study was run on its machine, not what it measured
NOT_THE_DESIGN = (
    "budget",
    "resources",
    "study",
    "data_dir",
    "device",
    "evaluate.compile",
    "evaluate.compile_cache",
    "evaluate.batch",
    "evaluate.chunk",
)


@dataclass(frozen=True)
class Changes:
    """The design settings the two configs differ in (`setup`: setting, before, after), per family and latent
    size the two means (`values`: family, latent_dim, before, after, change), the rankings' Kendall's tau per
    latent size both studies have, and each claim's two verdicts."""

    setup: list[tuple[str, str, str]]
    unsaved: list[str]  # the results without a study.yaml: their configs are not compared
    values: pd.DataFrame
    taus: dict[int, float]
    verdicts: pd.DataFrame  # claim, before, after, evidence_before, evidence_after (why, if not testable)


def flat(config: dict, prefix: str = "") -> dict[str, object]:
    """A nested config as dotted keys (train.epochs)."""
    out = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        out.update(flat(value, f"{name}.") if isinstance(value, dict) else {name: value})
    return out


def shown(value) -> str:
    if value is None:
        return "–"
    return ", ".join(map(str, value)) if isinstance(value, list) else str(value)


def setup_changes(before: dict, after: dict) -> list[tuple[str, str, str]]:
    """(setting, before, after) for each design setting the two validated configs differ in; the families
    (`losses`) as those added and dropped."""
    a, b = flat(before), flat(after)
    rows = []
    for key in sorted(set(a) | set(b)):
        if key in NOT_THE_DESIGN or key.split(".")[0] in NOT_THE_DESIGN or a.get(key) == b.get(key):
            continue
        old, new = a.get(key), b.get(key)
        if key == "losses" and isinstance(old, list) and isinstance(new, list):
            if set(old) == set(new):
                continue  # the same families in another order
            added, dropped = [f for f in new if f not in old], [f for f in old if f not in new]
            change = [f"added {shown(added)}"] * bool(added) + [f"dropped {shown(dropped)}"] * bool(dropped)
            rows.append((key, f"{len(old)} families", f"{len(new)} families ({'; '.join(change)})"))
        else:
            rows.append((key, shown(old), shown(new)))
    return rows


def means(study: Study, metric: str = METRIC) -> pd.Series:
    """(family, latent_dim) -> the mean over ok seeds, where there is one."""
    found = {
        (family, dim): m
        for family in study.families
        for dim in study.dims
        if finite(m := study.stat(family, dim, metric)["mean"])
    }
    return pd.Series(found, dtype=float)


def recorded(study: Study) -> dict[str, str]:
    """What the tables record of how the study was made beyond its config: the code its runs were trained
    with and how its pairs of families were tested."""
    commits = study.metrics.get("git_commit", pd.Series(dtype=str)).dropna().astype(str).str[:7]
    return {
        "code (the runs' git commit)": ", ".join(sorted(set(commits))) or "not recorded",
        "pairwise tests": ", ".join(sorted(analysis.test_methods(study))) or "none",
    }


def changes(before: Study, after: Study, metric: str = METRIC) -> Changes:
    configs = saved_config(before.results), saved_config(after.results)
    setup = setup_changes(*configs) if None not in configs else []
    a, b = recorded(before), recorded(after)
    setup += [(key, a[key], b[key]) for key in a if a[key] != b[key]]
    unsaved = [str(s.results) for s, c in zip((before, after), configs, strict=True) if c is None]
    a, b = means(before, metric), means(after, metric)
    keys = sorted(set(a.index) | set(b.index), key=lambda k: (after.families + before.families).index(k[0]))
    values = pd.DataFrame(
        [(f, d, a.get((f, d), math.nan), b.get((f, d), math.nan)) for f, d in keys],
        columns=["family", "latent_dim", "before", "after"],
    )
    values["change"] = values["after"] - values["before"]
    taus = {
        int(dim): tau(at["before"], at["after"])
        for dim, at in values.dropna(subset=["before", "after"]).groupby("latent_dim")
        if len(at) >= 2
    }
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
    return Changes(setup, unsaved, values, taus, verdicts)


def verdict_said(verdict: str, evidence: str) -> str:
    """'supported: for 2, against 0 of 2 comparisons', or why the claim could not be tested."""
    return f"{verdict}: {evidence}" if verdict and evidence else verdict or "–"


def markdown(before: Study, after: Study, found: Changes) -> str:
    """The four tables, as Markdown."""
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
        [r.claim, verdict_said(r.before, r.evidence_before), verdict_said(r.after, r.evidence_after)]
        for r in found.verdicts.itertuples()
    ]
    unsaved = (
        f"Not compared: the settings of {' and '.join(found.unsaved)}, which has no study.yaml.\n"
        if found.unsaved
        else ""
    )
    settings = (
        markdown_table(["setting", "before", "after"], [list(r) for r in found.setup], left=3)
        if found.setup
        else "The two studies' designs do not differ in their configs.\n"
        if not found.unsaved
        else ""
    ) + unsaved
    return "\n".join(
        [
            settings,
            markdown_table(header, rows),
            f"Kendall's tau of the two rankings, families in both: {taus}.\n",
            markdown_table(["claim", "before", "after"], claims_rows, left=3),
        ]
    )


def run(args: argparse.Namespace) -> int:
    before, after = Study.load(args.before), Study.load(args.after)
    print(markdown(before, after, changes(before, after)), end="")
    return 0
