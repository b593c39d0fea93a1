"""Statistics across seeds: confidence intervals, paired tests between families, a ranking with ties.

Why paired: every family is trained with the same seeds, and a seed fixes the weight
initialisation, batch order and noise, so the seed-to-seed variation is partly shared;
pairing by seed removes the shared part. Per latent dimension and metric, every pair of
families gets a paired t-test (from MIN_PAIRS_T seeds on) and a Wilcoxon signed-rank test
(from MIN_PAIRS_WILCOXON seeds on, the first n at which its exact two-sided p-value can fall
below ALPHA at all). Each test's p-values are Holm-corrected over the pairs of that latent
dimension. The t-test decides `significant`; the Wilcoxon test is a check that does not
assume normal differences.

With fewer seeds than the t-test needs, the only noise a run can measure is that of its test
images: the standard error over images of each estimate. A difference then counts only when it
exceeds NOISE_SE standard errors of the difference (`beyond_noise`); seed-to-seed variation,
which one seed cannot measure, is usually several test-set standard errors, hence the high bar.
"""

import itertools
import math

import numpy as np
import pandas as pd
from scipy import stats as sps

ALPHA = 0.05
MIN_PAIRS_T = 3  # with 2 pairs a t-test has 1 degree of freedom: its p-value means next to nothing
# the smallest p-value the exact test can reach with n pairs is 2/2^n: 6 pairs at ALPHA = 0.05
MIN_PAIRS_WILCOXON = next(n for n in range(1, 64) if 2.0 / 2**n < ALPHA)
NOISE_SE = 10  # below MIN_PAIRS_T seeds a difference counts beyond this many test-set standard errors

TEST_COLUMNS = (
    "metric",
    "latent_dim",
    "family_a",
    "family_b",
    "n_pairs",
    "seeds",
    "mean_a",
    "mean_b",
    "diff_mean",
    "diff_ci95_low",
    "diff_ci95_high",
    "cohens_dz",
    "rank_biserial",
    "t_stat",
    "t_p",
    "t_p_holm",
    "wilcoxon_stat",
    "wilcoxon_p",
    "wilcoxon_p_holm",
    "significant",
    "better",
    "note",
)


def t_interval(values) -> dict[str, float]:
    """Mean, sample standard deviation and the t-based 95% confidence interval of the mean.

    With n = 1 the standard deviation and the interval are undefined (NaN), not zero.
    """
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    n = x.size
    mean = float(x.mean()) if n else math.nan
    std = float(x.std(ddof=1)) if n > 1 else math.nan
    half = float(sps.t.ppf(0.975, n - 1) * std / math.sqrt(n)) if n > 1 else math.nan
    return {"mean": mean, "std": std, "ci95_low": mean - half, "ci95_high": mean + half, "n": n}


def se_of_mean(standard_errors) -> float:
    """Standard error of the mean of independent estimates with these errors (NaN if one lacks it)."""
    se = np.asarray(standard_errors, dtype=float)
    return float(math.sqrt(np.sum(se**2)) / se.size) if se.size and np.isfinite(se).all() else math.nan


def se_of_difference(se_a: float, se_b: float) -> float:
    """Standard error of a - b as if the two estimates were independent. Two families scored on the same test
    images err together (positively correlated), so the true one is smaller: a conservative bar."""
    return math.hypot(se_a, se_b)


def beyond_noise(diff: float, se_a: float, se_b: float) -> tuple[bool, float]:
    """(the difference exceeds NOISE_SE standard errors of the difference, how many it is); (False, NaN) where
    a standard error is missing."""
    se = se_of_difference(se_a, se_b)
    if not (math.isfinite(se) and se > 0 and math.isfinite(diff)):
        return False, math.nan
    ratio = abs(diff) / se
    return ratio > NOISE_SE, ratio


def one_sample_p(values, reference: float) -> float:
    """Two-sided p of a one-sample t-test of the values' mean against a fixed reference (a baseline's
    number); NaN below MIN_PAIRS_T values or when every value is the same."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if x.size < MIN_PAIRS_T or np.ptp(x) == 0:
        return math.nan
    return float(sps.ttest_1samp(x, reference).pvalue)


def holm(pvalues) -> np.ndarray:
    """Holm's step-down adjusted p-values; NaN entries stay NaN and do not count as hypotheses."""
    p = np.asarray(pvalues, dtype=float)
    adjusted = np.full_like(p, np.nan)
    tested = np.flatnonzero(np.isfinite(p))
    m = tested.size
    order = tested[np.argsort(p[tested], kind="stable")]
    running = 0.0
    for i, idx in enumerate(order):
        running = max(running, min(1.0, (m - i) * p[idx]))
        adjusted[idx] = running
    return adjusted


def rank_biserial(diffs) -> float:
    """Matched-pairs rank-biserial correlation (R+ - R-) / (R+ + R-), zero differences dropped.

    +1: every difference positive (a larger than b); -1: every difference negative.
    """
    d = np.asarray(diffs, dtype=float)
    d = d[d != 0]
    if d.size == 0:
        return math.nan
    ranks = sps.rankdata(np.abs(d))
    return float((ranks[d > 0].sum() - ranks[d < 0].sum()) / ranks.sum())


def count(n: int, noun: str) -> str:
    """'1 paired seed', '2 paired seeds'."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def sample_size_note(n_pairs: int) -> str:
    """What a comparison of n seed-paired runs can and cannot say, in plain words."""
    if n_pairs == 0:
        return "no seed has an ok run of both families: nothing to compare"
    if n_pairs < MIN_PAIRS_T:
        return (
            f"n = {count(n_pairs, 'paired seed')}: too few for any test to mean "
            f"something (needs {MIN_PAIRS_T} for the t-test); compare the means only"
        )
    if n_pairs < MIN_PAIRS_WILCOXON:
        return (
            f"n = {n_pairs}: t-test only; the Wilcoxon test cannot reach p < {ALPHA} "
            f"before n = {MIN_PAIRS_WILCOXON}, and the t-test's normality cannot be checked"
        )
    return ""


def paired_comparison(a: pd.Series, b: pd.Series) -> dict:
    """Compare two families' values paired by seed (Series indexed by seed), over the seeds both have.

    Difference is a - b: negative means a has the lower (better) bits/dim. The effect sizes (Cohen's dz,
    rank-biserial) are left undefined below MIN_PAIRS_T pairs, like the t-test: with one pair the
    rank-biserial is always +-1, which reads as a perfect effect.
    """
    both = pd.concat({"a": a, "b": b}, axis=1).dropna()
    n = len(both)
    d = (both["a"] - both["b"]).to_numpy(float)
    diff = t_interval(d)
    row = {
        "n_pairs": n,
        "seeds": " ".join(str(int(s)) for s in both.index),
        "mean_a": float(both["a"].mean()) if n else math.nan,
        "mean_b": float(both["b"].mean()) if n else math.nan,
        "diff_mean": diff["mean"],
        "diff_ci95_low": diff["ci95_low"],
        "diff_ci95_high": diff["ci95_high"],
        "cohens_dz": diff["mean"] / diff["std"] if n >= MIN_PAIRS_T and diff["std"] > 0 else math.nan,
        "rank_biserial": rank_biserial(d) if n >= MIN_PAIRS_T else math.nan,
        "t_stat": math.nan,
        "t_p": math.nan,
        "wilcoxon_stat": math.nan,
        "wilcoxon_p": math.nan,
        "note": sample_size_note(n),
    }
    if n >= MIN_PAIRS_T:
        if np.ptp(d) == 0:
            row["note"] = "the difference is the same for every seed: the t-test is undefined"
        else:
            t = sps.ttest_rel(both["a"], both["b"])
            row.update(t_stat=float(t.statistic), t_p=float(t.pvalue))
    if n >= MIN_PAIRS_WILCOXON and np.any(d != 0):
        w = sps.wilcoxon(both["a"], both["b"])
        row.update(wilcoxon_stat=float(w.statistic), wilcoxon_p=float(w.pvalue))
    return row


def pairwise_tests(
    metrics: pd.DataFrame, metric: str, families: list[str], lower_is_better: bool = True
) -> pd.DataFrame:
    """Every pair of `families` (in that order) at every latent dimension, for one metric.

    `metrics` has one row per run with columns family, latent_dim, seed, status and `metric`;
    only status "ok" rows take part. `better` names the significant winner in the metric's direction.
    """
    ok = metrics[metrics["status"] == "ok"]
    rows = []
    for dim in sorted(ok["latent_dim"].unique()):
        at_dim = ok[ok["latent_dim"] == dim]
        values = {f: at_dim[at_dim["family"] == f].set_index("seed")[metric].astype(float) for f in families}
        present = [f for f in families if values[f].notna().any()]
        block = [
            {
                "metric": metric,
                "latent_dim": int(dim),
                "family_a": fa,
                "family_b": fb,
                **paired_comparison(values[fa], values[fb]),
            }
            for fa, fb in itertools.combinations(present, 2)
        ]
        for test in ("t", "wilcoxon"):
            adjusted = holm([r[f"{test}_p"] for r in block])
            for r, p in zip(block, adjusted, strict=True):
                r[f"{test}_p_holm"] = p
        for r in block:
            r["significant"] = bool(r["t_p_holm"] < ALPHA)
            a_better = r["diff_mean"] < 0 if lower_is_better else r["diff_mean"] > 0
            r["better"] = (r["family_a"] if a_better else r["family_b"]) if r["significant"] else ""
        rows += block
    return pd.DataFrame(rows, columns=list(TEST_COLUMNS))


def all_tests(metrics: pd.DataFrame, families: list[str], tested: dict[str, bool]) -> pd.DataFrame:
    """pairwise_tests for every metric of `tested` (metric -> lower is better) that the table has, stacked."""
    tables = [
        pairwise_tests(metrics, metric, families, lower)
        for metric, lower in tested.items()
        if metric in metrics.columns
    ]
    tables = [t for t in tables if not t.empty]
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=list(TEST_COLUMNS))


def ranking(metrics: pd.DataFrame, tests: pd.DataFrame, metric: str, families: list[str]) -> pd.DataFrame:
    """Per latent dimension: families ordered by mean (lower is better), with ties made visible.

    rank = 1 + the number of families significantly better (Holm-corrected paired t-test), so
    families that no test separates share a rank. Where no pair could be tested the rank is
    the order of the means and `tested` is False. `tied_with` lists the families a test could not
    separate from this one, `untested_with` those it could not be tested against (too few paired
    seeds): a shared rank can come from either, and the table says which.
    """
    ok = metrics[(metrics["status"] == "ok") & metrics[metric].notna()]
    rows = []
    for dim in sorted(ok["latent_dim"].unique()):
        at_dim = ok[ok["latent_dim"] == dim]
        means = {
            f: float(at_dim.loc[at_dim["family"] == f, metric].mean())
            for f in families
            if (at_dim["family"] == f).any()
        }
        pairs = tests[(tests["metric"] == metric) & (tests["latent_dim"] == dim)]
        tested = bool(pairs["t_p_holm"].notna().any())
        by_mean = sorted(means, key=means.get)
        for position, family in enumerate(by_mean, start=1):
            mine = pairs[(pairs["family_a"] == family) | (pairs["family_b"] == family)]
            others = np.where(mine["family_a"] == family, mine["family_b"], mine["family_a"])
            beaten_by = int(((mine["better"] != "") & (mine["better"] != family)).sum())
            tied = [
                o
                for o, sig, p in zip(others, mine["significant"], mine["t_p_holm"], strict=True)
                if not sig and np.isfinite(p)
            ]
            untested = [o for o, p in zip(others, mine["t_p_holm"], strict=True) if not np.isfinite(p)]
            rows.append(
                {
                    "metric": metric,
                    "latent_dim": int(dim),
                    "family": family,
                    "mean": means[family],
                    "rank_by_mean": position,
                    "rank": 1 + beaten_by if tested else position,
                    "tested": tested,
                    "tied_with": " ".join(sorted(tied, key=by_mean.index)),
                    "untested_with": " ".join(sorted(untested, key=by_mean.index)),
                }
            )
    return pd.DataFrame(
        rows,
        columns=[
            "metric",
            "latent_dim",
            "family",
            "mean",
            "rank_by_mean",
            "rank",
            "tested",
            "tied_with",
            "untested_with",
        ],
    )
