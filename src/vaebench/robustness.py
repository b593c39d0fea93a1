"""Does the verdict hold? Four checks of the likelihood ranking (discretized bits/dim) against what a study
already has, no new training: the importance samples (would a larger K reorder it?), the training length
(was the ranking still moving when the runs stopped?), the seeds (does it survive leaving one out?) and the
test images (does it survive resampling them?). Each check is plain data with its status; the findings
(`vaebench.findings.hold`) put it into words.

"The gap the verdict rests on" is the smallest lead of the best family over the runner-up
(`analysis.lead`): a check holds when what it measures stays well inside that gap.
"""

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as sps

from vaebench import analysis, evidence
from vaebench.results import Study
from vaebench.utils import finite

HOLDS, FRAGILE, VOID = "holds", "fragile", "not possible here"
METRIC = "bpd_disc"  # the verdict's measure
LENGTH_FRACTIONS = (0.5, 0.75)  # the shares of each run's epochs whose ranking is compared with the last's
TAU_HOLDS = 0.8  # two rankings agree when Kendall's tau is at least this
DRIFT_SHARE = 0.1  # the drift left at the stop is negligible below this share of the gap
KEEPS_ORDER = 0.95  # a bootstrap keeps an order when at least this share of its replicates do


@dataclass(frozen=True)
class Check:
    """One check: its `status` (HOLDS, FRAGILE or VOID), the numbers it rests on (`values`, by name) and,
    where it is VOID, why."""

    name: str
    status: str
    values: dict
    why: str = ""


def verdict_gap(study: Study) -> tuple[int, float] | None:
    """(latent size, bits/dim): the smallest lead of the best family over the runner-up."""
    return analysis.lead(study, METRIC)


def remaining_bias(trend: list[float | None]) -> float | None:
    """How much further the estimate would fall with unlimited samples, in bits/dim, from its values at K/16,
    K/4 and K: each fourfold K shrank the fall by the ratio r of the last two steps, so what is left is the
    geometric series of the last step, d * r / (1 - r) (d / 3 for the 1/K law of the bias). 0 when the
    estimate stopped falling; NaN when it fell faster at the end (no ratio below 1 to extrapolate by); None
    without the estimates at K/16 and K/4."""
    sixteenth, quarter, full = trend
    if sixteenth is None or quarter is None:
        return None
    first, last = sixteenth - quarter, quarter - full
    if last <= 0:
        return 0.0
    if first <= 0 or last >= first:
        return math.nan
    ratio = last / first
    return last * ratio / (1 - ratio)


def k_check(study: Study) -> Check:
    """Extrapolate each family's estimate to unlimited K: does the leader stay the leader, and how large is
    the largest remaining bias against the gap?"""
    gap = verdict_gap(study)
    rows = []
    for dim in study.dims:
        for family in analysis.best_by(study, METRIC, dim):
            trend = analysis.estimate_trend(study, family, dim)
            if trend is not None and (remaining := remaining_bias(trend)) is not None:
                rows.append((dim, family, trend[-1], remaining))
    table = pd.DataFrame(rows, columns=["latent_dim", "family", "mean", "remaining"])
    if gap is None or table.empty:
        return Check("K", VOID, {}, "no estimates at K/16 and K/4 to extrapolate from")
    if table["remaining"].isna().any():
        unknown = table[table["remaining"].isna()].iloc[0]
        return Check(
            "K",
            FRAGILE,
            {"family": unknown["family"], "latent_dim": int(unknown["latent_dim"]), "gap": gap[1]},
            "the estimate fell faster from K/4 to K than from K/16 to K/4: no trend to extrapolate",
        )
    table["extrapolated"] = table["mean"] - table["remaining"]
    leaders_kept = all(
        at.loc[at["mean"].idxmin(), "family"] == at.loc[at["extrapolated"].idxmin(), "family"]
        for _, at in table.groupby("latent_dim")
    )
    top = table.loc[table["remaining"].idxmax()]
    values = {
        "remaining": float(top["remaining"]),
        "family": top["family"],
        "latent_dim": int(top["latent_dim"]),
        "gap": gap[1],
        "leaders_kept": leaders_kept,
    }
    return Check("K", HOLDS if leaders_kept and top["remaining"] < gap[1] else FRAGILE, values)


def curve_column(history: pd.DataFrame) -> str:
    """The ELBO the runs were judged by: the validation split's where they had one, else the test set's."""
    if "val_elbo_nats" in history.columns and history["val_elbo_nats"].notna().any():
        return "val_elbo_nats"
    return "test_elbo_nats"


def best_at(history: pd.DataFrame, column: str, fraction: float) -> pd.Series:
    """Per run, the best ELBO within the first `fraction` of its epochs (at least one)."""

    def best(run: pd.DataFrame) -> float:
        run = run.sort_values("epoch")
        shown = max(1, math.ceil(fraction * len(run)))
        return pd.to_numeric(run[column].iloc[:shown], errors="coerce").max()

    return history.groupby(["family", "latent_dim", "seed"]).apply(best, include_groups=False)


def tau(a: pd.Series, b: pd.Series) -> float:
    """Kendall's tau of two scores of the same families (1 = the same order)."""
    both = pd.concat([a, b], axis=1).dropna()
    if len(both) < 2:
        return math.nan
    return float(sps.kendalltau(both.iloc[:, 0], both.iloc[:, 1]).statistic)


def length_check(study: Study) -> Check:
    """The ranking of the families by their best ELBO within 50% and 75% of each run's epochs against the
    ranking at 100% (Kendall's tau, the smallest over latent sizes), and the largest drift a converged run
    still had at its stop against the gap."""
    history = study.history
    ok = history[history["status"] == "ok"] if not history.empty else history
    if ok.empty:
        return Check("training length", VOID, {}, "no ok run has a learning curve")
    column = curve_column(ok)
    last = best_at(ok, column, 1.0).groupby(["family", "latent_dim"]).mean()
    dims = sorted(set(last.index.get_level_values("latent_dim")))
    taus = {}
    for fraction in LENGTH_FRACTIONS:
        earlier = best_at(ok, column, fraction).groupby(["family", "latent_dim"]).mean()
        per_dim = [tau(earlier.xs(d, level=1), last.xs(d, level=1)) for d in dims]
        taus[fraction] = min((t for t in per_dim if finite(t)), default=math.nan)
    gap = verdict_gap(study)
    ended = analysis.stops(study)
    drift = float(ended.drift["drift_bpd"].max()) if ended is not None and not ended.drift.empty else math.nan
    values = {"taus": taus, "column": column, "drift": drift, "gap": gap[1] if gap else math.nan}
    if not finite(taus[LENGTH_FRACTIONS[-1]]):
        return Check("training length", VOID, values, "fewer than two families with a learning curve")
    settled = taus[LENGTH_FRACTIONS[-1]] >= TAU_HOLDS
    small_drift = not finite(drift) or not finite(values["gap"]) or drift < DRIFT_SHARE * values["gap"]
    capped = ended is not None and not ended.capped.empty
    values["capped"] = len(ended.capped) if ended is not None else None
    return Check("training length", HOLDS if settled and small_drift and not capped else FRAGILE, values)


def seed_means(runs: pd.DataFrame) -> pd.DataFrame:
    """Per latent size and family, the mean of METRIC over the given runs."""
    values = runs.assign(value=pd.to_numeric(runs[METRIC], errors="coerce")).dropna(subset=["value"])
    return values.groupby(["latent_dim", "family"])["value"].mean()


def seeds_check(study: Study) -> Check:
    """Leave each seed out in turn: is the leader the same at every latent size, and how far does the ranking
    move (the smallest Kendall's tau against the full ranking)?"""
    seeds = sorted(int(s) for s in study.ok["seed"].unique())
    if study.n_seeds < 2:
        return Check("seeds", VOID, {"seeds": len(seeds)}, "one seed per family: nothing to leave out")
    full = seed_means(study.ok)
    changed, taus = [], []
    for seed in seeds:
        left = seed_means(study.ok[study.ok["seed"] != seed])
        for dim in study.dims:
            if dim not in left.index.get_level_values(0):
                continue
            a, b = full.xs(dim), left.xs(dim)
            taus.append(tau(a, b))
            if a.idxmin() != b.idxmin():
                changed.append((seed, dim, b.idxmin()))
    smallest = min((t for t in taus if finite(t)), default=1.0)
    values = {"seeds": len(seeds), "changed": changed, "tau": smallest}
    return Check("seeds", HOLDS if not changed and values["tau"] >= TAU_HOLDS else FRAGILE, values)


def images_check(study: Study, replicates) -> Check:
    """From the bootstrap's replicates of every family's mean (`replicates(dim)` -> {family: array [B]} or
    None): the share of replicates in which the leader stays first (the smallest over latent sizes) and in
    which each pair of families adjacent in the ranking keeps its order (the least stable pair)."""
    kept, pairs = [], []
    for dim in study.dims:
        reps = replicates(dim)
        if not reps:
            continue
        order = sorted(reps, key=lambda f: study.stat(f, dim, METRIC)["mean"])
        matrix = np.vstack([reps[f] for f in order])  # [families, B], lower is better
        kept.append((dim, float(np.mean(matrix.argmin(axis=0) == 0))))
        for i, (a, b) in enumerate(zip(order, order[1:], strict=False)):
            pairs.append((dim, a, b, float(np.mean(matrix[i] < matrix[i + 1]))))
    if not kept:
        return Check("test images", VOID, {}, "no per-image log-likelihoods in these tables")
    dim, leader = min(kept, key=lambda k: k[1])
    steady = sum(share >= KEEPS_ORDER for *_, share in pairs)
    weakest = min(pairs, key=lambda p: p[3]) if pairs else None
    values = {"leader": leader, "latent_dim": dim, "pairs": len(pairs), "steady": steady, "weakest": weakest}
    return Check("test images", HOLDS if leader >= KEEPS_ORDER else FRAGILE, values)


def study_replicates(study: Study):
    """dim -> the hierarchical bootstrap's replicates of every family's mean there (evidence.bootstrap on the
    study's per-image values), or None where the study has none."""

    def at(dim: int) -> dict[str, np.ndarray] | None:
        runs = study.per_image(METRIC, dim)
        return evidence.bootstrap(runs).replicates if runs else None

    return at


def checks(study: Study, replicates=None) -> list[Check]:
    """The four checks, in the order the page shows them; `replicates` (dim -> {family: array}) defaults to
    the study's own bootstrap."""
    replicates = replicates or study_replicates(study)
    return [k_check(study), length_check(study), seeds_check(study), images_check(study, replicates)]
