"""Statistics across seeds, checked against scipy called directly and against Holm's procedure as defined."""

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from vaebench import stats


def runs_table(values: dict[str, list[float]], dim: int = 4, status: dict | None = None) -> pd.DataFrame:
    """One row per (family, seed) with bpd_disc = values[family][seed]."""
    rows = [
        {"family": f, "latent_dim": dim, "seed": s, "bpd_disc": v, "status": (status or {}).get((f, s), "ok")}
        for f, vs in values.items()
        for s, v in enumerate(vs)
    ]
    return pd.DataFrame(rows)


def test_t_interval_matches_scipy():
    x = np.array([1.31, 1.29, 1.35, 1.30, 1.33])
    ci = stats.t_interval(x)
    low, high = sps.t.interval(0.95, len(x) - 1, loc=x.mean(), scale=sps.sem(x))
    assert ci["mean"] == pytest.approx(x.mean())
    assert ci["std"] == pytest.approx(x.std(ddof=1))
    assert (ci["ci95_low"], ci["ci95_high"]) == pytest.approx((low, high))
    assert ci["n"] == 5


def test_t_interval_of_one_value_is_undefined_not_zero():
    ci = stats.t_interval([1.5, np.nan])
    assert ci["n"] == 1 and ci["mean"] == 1.5
    assert math.isnan(ci["std"]) and math.isnan(ci["ci95_low"]) and math.isnan(ci["ci95_high"])


def test_holm_textbook_example():
    assert stats.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])


def holm_rejects(p: np.ndarray, alpha: float) -> np.ndarray:
    """Holm's step-down procedure as stated: reject the k smallest while p_(j) <= alpha / (m - j + 1)."""
    order = np.argsort(p, kind="stable")
    reject = np.zeros(p.size, bool)
    for j, idx in enumerate(order):
        if p[idx] > alpha / (p.size - j):
            break
        reject[idx] = True
    return reject


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(1e-6, 1.0), min_size=1, max_size=12), st.sampled_from([0.01, 0.05, 0.1]))
def test_holm_adjusted_p_rejects_exactly_what_the_procedure_rejects(pvalues, alpha):
    p = np.array(pvalues)
    adjusted = stats.holm(p)
    np.testing.assert_array_equal(adjusted <= alpha, holm_rejects(p, alpha))
    assert np.all(adjusted >= p) and np.all(adjusted <= 1)


def test_holm_leaves_untested_out_of_the_count():
    adjusted = stats.holm([0.01, np.nan, 0.02])
    assert math.isnan(adjusted[1])
    assert adjusted[[0, 2]] == pytest.approx([0.02, 0.02])  # m = 2, not 3


def test_wilcoxon_threshold_is_where_scipy_first_allows_significance():
    for n in (stats.MIN_PAIRS_WILCOXON - 1, stats.MIN_PAIRS_WILCOXON):
        smallest = sps.wilcoxon(np.arange(1, n + 1, dtype=float)).pvalue  # every difference positive
        assert smallest == pytest.approx(2 / 2**n)
        assert (smallest < stats.ALPHA) == (n == stats.MIN_PAIRS_WILCOXON)


def test_paired_comparison_matches_scipy():
    rng = np.random.default_rng(3)
    a = pd.Series(1.4 + rng.normal(0, 0.02, 8))
    b = pd.Series(1.45 + rng.normal(0, 0.02, 8))
    row = stats.paired_comparison(a, b)
    t = sps.ttest_rel(a, b)
    w = sps.wilcoxon(a, b)
    d = a - b
    assert row["n_pairs"] == 8 and row["note"] == ""
    assert (row["t_stat"], row["t_p"]) == pytest.approx((t.statistic, t.pvalue))
    assert (row["wilcoxon_stat"], row["wilcoxon_p"]) == pytest.approx((w.statistic, w.pvalue))
    assert row["diff_mean"] == pytest.approx(d.mean())
    assert row["cohens_dz"] == pytest.approx(d.mean() / d.std(ddof=1))
    low, high = sps.t.interval(0.95, 7, loc=d.mean(), scale=sps.sem(d))
    assert (row["diff_ci95_low"], row["diff_ci95_high"]) == pytest.approx((low, high))
    r_plus = sps.wilcoxon(d, alternative="greater").statistic  # sum of ranks of positive differences
    total = 8 * 9 / 2
    assert row["rank_biserial"] == pytest.approx((2 * r_plus - total) / total)


def test_pairs_only_the_seeds_both_families_have():
    a = pd.Series([1.0, 1.1, 1.2, 1.3], index=[0, 1, 2, 3])
    b = pd.Series([2.0, np.nan, 2.2, 2.9], index=[0, 1, 2, 5])
    row = stats.paired_comparison(a, b)
    assert row["n_pairs"] == 2 and row["seeds"] == "0 2"
    assert row["mean_a"] == pytest.approx(1.1) and row["mean_b"] == pytest.approx(2.1)


@pytest.mark.parametrize(
    "n, t_run, w_run, words",
    [
        (1, False, False, "too few for any test"),
        (2, False, False, "too few for any test"),
        (3, True, False, "t-test only"),
        (6, True, True, ""),
    ],
)
def test_small_n_says_so_and_runs_no_test_it_cannot_support(n, t_run, w_run, words):
    rng = np.random.default_rng(n)
    row = stats.paired_comparison(pd.Series(rng.normal(0, 1, n)), pd.Series(rng.normal(1, 1, n)))
    assert np.isfinite(row["t_p"]) == t_run
    assert np.isfinite(row["wilcoxon_p"]) == w_run
    assert words in row["note"]


def test_pairwise_tests_holm_correct_within_a_latent_dimension_and_skip_bad_runs():
    rng = np.random.default_rng(0)
    values = {f: list(base + rng.normal(0, 0.05, 6)) for f, base in (("a", 1.0), ("b", 1.02), ("c", 1.5))}
    table = runs_table(values, status={("c", 5): "diverged"})
    tests = stats.pairwise_tests(table, "bpd_disc", ["a", "b", "c"])
    pairs = list(zip(tests["family_a"], tests["family_b"], strict=True))
    assert pairs == [("a", "b"), ("a", "c"), ("b", "c")]
    assert list(tests["n_pairs"]) == [6, 5, 5]  # the diverged seed is not paired
    np.testing.assert_allclose(tests["t_p_holm"], stats.holm(tests["t_p"]))
    ac = tests.iloc[1]
    direct = sps.ttest_rel(values["a"][:5], values["c"][:5])
    assert ac["t_p"] == pytest.approx(direct.pvalue)
    assert ac["significant"] and ac["better"] == "a"


def test_ranking_shows_ties():
    rng = np.random.default_rng(1)
    noise = rng.normal(0, 0.05, 6)
    values = {
        "a": list(1.00 + noise + rng.normal(0, 0.05, 6)),
        "b": list(1.01 + noise + rng.normal(0, 0.05, 6)),
        "c": list(2.0 + noise),
    }
    table = runs_table(values)
    tests = stats.pairwise_tests(table, "bpd_disc", list(values))
    ranks = stats.ranking(table, tests, "bpd_disc", list(values)).set_index("family")
    assert ranks.loc["a", "rank"] == ranks.loc["b", "rank"] == 1
    assert ranks.loc["c", "rank"] == 3
    assert ranks.loc["a", "tied_with"] == "b" and ranks.loc["c", "tied_with"] == ""
    assert ranks["tested"].all()


def test_ranking_without_tests_is_the_order_of_the_means():
    table = runs_table({"a": [1.2], "b": [1.1], "c": [1.3]})
    tests = stats.pairwise_tests(table, "bpd_disc", ["a", "b", "c"])
    ranks = stats.ranking(table, tests, "bpd_disc", ["a", "b", "c"])
    assert list(ranks["family"]) == ["b", "a", "c"] and list(ranks["rank"]) == [1, 2, 3]
    assert not ranks["tested"].any()
    assert ranks.iloc[0]["untested_with"] == "a c"


def test_ranking_lists_each_dimension_by_mean_its_first_row_the_winner():
    """The report's headline bolds the first row of each latent dimension and marks its tied_with."""
    rng = np.random.default_rng(2)
    bases = {2: {"a": 1.5, "b": 1.0, "c": 1.2}, 8: {"a": 0.9, "b": 1.3, "c": 2.0}}
    table = pd.concat(
        [
            runs_table({f: list(m + rng.normal(0, 0.05, 4)) for f, m in means.items()}, dim=dim)
            for dim, means in bases.items()
        ]
    )
    tests = stats.pairwise_tests(table, "bpd_disc", ["a", "b", "c"])
    ranks = stats.ranking(table, tests, "bpd_disc", ["a", "b", "c"])
    for dim, at in ranks.groupby("latent_dim"):
        means = table[table["latent_dim"] == dim].groupby("family")["bpd_disc"].mean()
        assert list(at["family"]) == list(means.sort_values().index)
        assert list(at["rank_by_mean"]) == [1, 2, 3]


@pytest.mark.parametrize("n", [1, 2])
def test_effect_sizes_are_undefined_below_three_pairs_like_the_test(n):
    row = stats.paired_comparison(pd.Series([1.0, 1.5][:n]), pd.Series([2.0, 2.1][:n]))
    assert math.isnan(row["cohens_dz"]) and math.isnan(row["rank_biserial"]) and math.isnan(row["t_p"])
    assert row["diff_mean"] == pytest.approx(np.mean(np.array([1.0, 1.5][:n]) - np.array([2.0, 2.1][:n])))


def test_a_difference_counts_beyond_the_noise_bar_of_independent_errors():
    se_a, se_b = 0.003, 0.004  # se of the difference: 0.005
    bar = stats.NOISE_SE * 0.005
    assert stats.beyond_noise(bar * 1.01, se_a, se_b) == (True, pytest.approx(stats.NOISE_SE * 1.01))
    assert stats.beyond_noise(-bar * 0.99, se_a, se_b)[0] is False  # the sign does not matter, the size does
    beyond, ratio = stats.beyond_noise(0.1, math.nan, se_b)
    assert not beyond and math.isnan(ratio)


def test_one_sample_p_matches_scipy_and_needs_three_values():
    x = [1.31, 1.29, 1.35, 1.30]
    assert stats.one_sample_p(x, 1.25) == pytest.approx(sps.ttest_1samp(x, 1.25).pvalue)
    assert math.isnan(stats.one_sample_p(x[:2], 1.25)) and math.isnan(stats.one_sample_p([1.0] * 4, 1.25))


def test_better_follows_the_measure_direction():
    rng = np.random.default_rng(4)
    values = {"a": list(0.9 + rng.normal(0, 0.01, 4)), "b": list(0.5 + rng.normal(0, 0.01, 4))}  # accuracies
    table = runs_table(values).rename(columns={"bpd_disc": "knn_acc"})
    higher = stats.pairwise_tests(table, "knn_acc", ["a", "b"], lower_is_better=False).iloc[0]
    lower = stats.pairwise_tests(table, "knn_acc", ["a", "b"]).iloc[0]
    assert higher["significant"] and higher["better"] == "a" and lower["better"] == "b"
