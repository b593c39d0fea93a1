"""Statistics across seeds: t-intervals, the test-set noise rule, Holm's correction, a ranking with ties.

The pairwise tests between families (tests.csv) are `vaebench.evidence`'s: a hierarchical bootstrap over
seeds and test images for the likelihoods, Welch's t-test across seeds for the other measures. Each
metric's p-values are Holm-corrected over the pairs of one latent dimension (`holm`), and `ranking` turns
them into ranks with ties.

Where no test ran (one seed and no per-image values), the only noise a run can measure is that of its test
images: the standard error over images of each estimate. A difference then counts only when it exceeds
NOISE_SE standard errors of the difference (`beyond_noise`); seed-to-seed variation, which one seed cannot
measure, is usually several test-set standard errors, hence the high bar.
"""

import math

import numpy as np
import pandas as pd
from scipy import stats as sps

ALPHA = 0.05
# a family against a baseline's fixed value: a one-sample t-test needs this many seeds (with 2 it has 1 degree
# of freedom: its p-value means next to nothing); fewer seeds than this are few for any test across seeds
MIN_SEEDS_T = 3
NOISE_SE = 10  # untested, a difference counts beyond this many test-set standard errors


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
    number); NaN below MIN_SEEDS_T values or when every value is the same."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if x.size < MIN_SEEDS_T or np.ptp(x) == 0:
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


def count(n: int, noun: str) -> str:
    """'1 seed', '2 seeds'."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def ranking(metrics: pd.DataFrame, tests: pd.DataFrame, metric: str, families: list[str]) -> pd.DataFrame:
    """Per latent dimension: families ordered by mean (lower is better), with ties made visible.

    rank = 1 + the number of families significantly better (Holm-corrected, tests.csv's p_holm), so
    families that no test separates share a rank. Where no pair could be tested the rank is
    the order of the means and `tested` is False. `tied_with` lists the families a test could not
    separate from this one, `untested_with` those it could not be tested against (too few seeds):
    a shared rank can come from either, and the table says which.
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
        tested = bool(pairs["p_holm"].notna().any())
        by_mean = sorted(means, key=means.get)
        for position, family in enumerate(by_mean, start=1):
            mine = pairs[(pairs["family_a"] == family) | (pairs["family_b"] == family)]
            others = np.where(mine["family_a"] == family, mine["family_b"], mine["family_a"])
            beaten_by = int(((mine["better"] != "") & (mine["better"] != family)).sum())
            tied = [
                o
                for o, sig, p in zip(others, mine["significant"], mine["p_holm"], strict=True)
                if not sig and np.isfinite(p)
            ]
            untested = [o for o, p in zip(others, mine["p_holm"], strict=True) if not np.isfinite(p)]
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
