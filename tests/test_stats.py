"""Statistics across seeds, checked against scipy called directly and against Holm's procedure as defined; the
ranking on the tests of `vaebench.evidence`."""

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from vaebench import evidence, stats


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


def test_welch_tests_holm_correct_within_a_latent_dimension_and_skip_bad_runs():
    rng = np.random.default_rng(0)
    values = {f: list(base + rng.normal(0, 0.05, 6)) for f, base in (("a", 1.0), ("b", 1.02), ("c", 1.5))}
    table = runs_table(values, status={("c", 5): "diverged"})
    tests = evidence.pairwise_tests(table, "bpd_disc", ["a", "b", "c"])
    pairs = list(zip(tests["family_a"], tests["family_b"], strict=True))
    assert pairs == [("a", "b"), ("a", "c"), ("b", "c")]
    assert list(tests["n_b"]) == [6, 5, 5]  # the diverged run is left out
    np.testing.assert_allclose(tests["p_holm"], stats.holm(tests["p"]))
    ac = tests.iloc[1]
    direct = sps.ttest_ind(values["a"], values["c"][:5], equal_var=False)  # unpaired: seeds are independent
    assert ac["p"] == pytest.approx(direct.pvalue)
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
    tests = evidence.pairwise_tests(table, "bpd_disc", list(values))
    ranks = stats.ranking(table, tests, "bpd_disc", list(values)).set_index("family")
    assert ranks.loc["a", "rank"] == ranks.loc["b", "rank"] == 1
    assert ranks.loc["c", "rank"] == 3
    assert ranks.loc["a", "tied_with"] == "b" and ranks.loc["c", "tied_with"] == ""
    assert ranks["tested"].all()


def test_ranking_without_tests_is_the_order_of_the_means():
    table = runs_table({"a": [1.2], "b": [1.1], "c": [1.3]})
    tests = evidence.pairwise_tests(table, "bpd_disc", ["a", "b", "c"])
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
    tests = evidence.pairwise_tests(table, "bpd_disc", ["a", "b", "c"])
    ranks = stats.ranking(table, tests, "bpd_disc", ["a", "b", "c"])
    for dim, at in ranks.groupby("latent_dim"):
        means = table[table["latent_dim"] == dim].groupby("family")["bpd_disc"].mean()
        assert list(at["family"]) == list(means.sort_values().index)
        assert list(at["rank_by_mean"]) == [1, 2, 3]


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
