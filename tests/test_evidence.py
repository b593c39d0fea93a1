"""The evidence engine: the hierarchical bootstrap against a plain loop and against known truths, Welch's test
against scipy, and a study written before the engine still read and judged."""

import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from vaebench import analysis, evidence, stats
from vaebench.results import METHOD_PAIRED_T, Study

ROOT = Path(__file__).resolve().parents[1]
OLD_STUDY = ROOT / "results" / "fashion-6-epochs"  # its tests.csv has the paired t-test's columns


def runs_table(values: dict[str, list[float]], metric: str = "fd_samples_mean", dim: int = 4) -> pd.DataFrame:
    """metrics.csv's rows: one per (family, seed) with `metric` = values[family][seed], all ok."""
    rows = [
        {"family": f, "latent_dim": dim, "seed": s, metric: v, "status": "ok"}
        for f, vs in values.items()
        for s, v in enumerate(vs)
    ]
    return pd.DataFrame(rows)


# -- the statistic and its resample ---------------------------------------------------------------------
@pytest.mark.parametrize("n_seeds", [1, 2, 3])
def test_with_every_count_one_the_statistic_is_the_plain_mean(n_seeds):
    rng = np.random.default_rng(n_seeds)
    runs = {"a": rng.normal(1.5, 0.3, (n_seeds, 40)), "b": rng.normal(2.0, 0.3, (3, 40))}
    means = evidence.replicate_means(
        runs, np.ones((2, 40)), {f: np.ones((2, v.shape[0])) for f, v in runs.items()}
    )
    for family, values in runs.items():
        np.testing.assert_allclose(means[family], values.mean(), rtol=1e-13)


def test_the_draws_resample_every_image_and_seed_with_replacement():
    images = np.concatenate(list(evidence.image_counts(7, replicates=600, bootstrap_seed=3)))
    seeds = evidence.seed_counts("gaussian", 3, replicates=600, bootstrap_seed=3)
    assert images.shape == (600, 7) and (images.sum(axis=1) == 7).all()
    assert seeds.shape == (600, 3) and (seeds.sum(axis=1) == 3).all()
    assert images.max() > 1 and (images == 0).any()  # with replacement
    assert images.mean() == pytest.approx(1, abs=0.05) and seeds.mean(axis=0) == pytest.approx(
        [1] * 3, abs=0.1
    )
    assert (
        evidence.seed_counts("laplace", 3, replicates=600, bootstrap_seed=3) != seeds
    ).any()  # each family its own
    assert (evidence.seed_counts("gaussian", 1, replicates=5) == 1).all()


def test_the_inflation_gives_the_bootstrap_the_variance_of_new_seeds():
    """Seed noise only (every image alike): the bootstrap variance of the mean is the sample variance / S,
    not (S - 1)/S of it as a plain bootstrap over S values would give."""
    offsets = np.array([-0.2, 0.05, 0.15])
    runs = {"a": 1.0 + offsets[:, None] + np.zeros((3, 20))}
    boot = evidence.bootstrap(runs, replicates=20_000)
    expected = offsets.var(ddof=1) / 3
    assert boot.replicates["a"].var() == pytest.approx(expected, rel=0.05)
    assert boot.replicates["a"].var() > 1.3 * offsets.var(ddof=0) / 3  # the uninflated bootstrap's
    inflated = evidence.inflate_seed_deviations(runs["a"])
    np.testing.assert_allclose(inflated.mean(axis=0), runs["a"].mean(axis=0))  # the seed mean stays


def brute_force(runs: dict[str, np.ndarray], a: str, b: str, replicates: int, bootstrap_seed: int) -> tuple:
    """The bootstrap written out replicate by replicate, from the same draws: (p, interval) of a - b."""
    images = np.concatenate(list(evidence.image_counts(runs[a].shape[1], replicates, bootstrap_seed)))
    seeds = {f: evidence.seed_counts(f, v.shape[0], replicates, bootstrap_seed) for f, v in runs.items()}
    diffs = []
    for r in range(replicates):
        means = {}
        for family in (a, b):
            values = runs[family]
            n_seeds, n_images = values.shape
            scale = math.sqrt(n_seeds / (n_seeds - 1)) if n_seeds > 1 else 1.0
            drawn_images = [n for n in range(n_images) for _ in range(int(images[r, n]))]
            drawn_seeds = [s for s in range(n_seeds) for _ in range(int(seeds[family][r, s]))]
            total = 0.0
            for s in drawn_seeds:
                for n in drawn_images:
                    centre = sum(values[t, n] for t in range(n_seeds)) / n_seeds
                    total += centre + scale * (values[s, n] - centre)
            means[family] = total / (len(drawn_seeds) * len(drawn_images))
        diffs.append(means[a] - means[b])
    below = sum(d <= 0 for d in diffs)
    above = sum(d >= 0 for d in diffs)
    p = min(1.0, (1 + 2 * min(below, above)) / (replicates + 1))
    return p, tuple(np.percentile(diffs, [2.5, 97.5]))


def test_the_bootstrap_p_and_interval_match_a_loop_over_replicates():
    rng = np.random.default_rng(7)
    shared = rng.normal(0, 0.5, 6)
    runs = {
        "a": 1.0 + shared + rng.normal(0, 0.2, (3, 6)),
        "b": 1.1 + shared + rng.normal(0, 0.2, (2, 6)),
        "c": 1.0 + rng.normal(0, 0.2, (1, 6)),
    }
    boot = evidence.bootstrap(runs, replicates=300, bootstrap_seed=11)
    for a, b in (("a", "b"), ("b", "c")):
        row = evidence.compare(boot, a, b)
        p, (low, high) = brute_force(runs, a, b, 300, 11)
        assert 1 / 301 < p < 1  # replicates on both sides of zero: the count matters
        assert row["p"] == pytest.approx(p)
        assert (row["diff_ci95_low"], row["diff_ci95_high"]) == pytest.approx((low, high))
        assert row["diff_mean"] == pytest.approx(runs[a].mean() - runs[b].mean())


def test_the_bootstrap_p_counts_both_sides_of_zero():
    assert evidence.bootstrap_p(np.array([1.0, 2.0, 3.0, 4.0])) == pytest.approx(1 / 5)
    assert evidence.bootstrap_p(np.array([-1.0, 0.5, 1.0, 2.0])) == pytest.approx(3 / 5)
    assert evidence.bootstrap_p(np.array([-1.0, 0.0, 1.0, 2.0])) == 1.0  # (1 + 2 * 2) / 5, capped


def test_the_bootstrap_is_reproducible_and_a_family_added_changes_no_other():
    rng = np.random.default_rng(0)
    runs = {f: rng.normal(1, 0.1, (3, 50)) for f in ("a", "b")}
    first = evidence.bootstrap(runs)
    assert all((evidence.bootstrap(runs).replicates[f] == first.replicates[f]).all() for f in runs)
    more = evidence.bootstrap({**runs, "c": rng.normal(1, 0.1, (2, 50))})
    assert all((more.replicates[f] == first.replicates[f]).all() for f in runs)
    with pytest.raises(ValueError, match="different numbers of test images"):
        evidence.bootstrap({"a": np.zeros((1, 5)), "b": np.zeros((1, 6))})


def test_the_interval_covers_a_known_difference_about_95_percent_of_the_time():
    """200 simulated studies: two families, 3 seeds each, 100 test images whose difficulty every run shares
    plus each family's own take on each image; the true difference of the family means is 0.05."""
    rng = np.random.default_rng(2024)
    covered = 0
    for study in range(200):
        difficulty = rng.normal(0, 1.0, 100)
        runs = {
            family: mean + difficulty + rng.normal(0, 0.3, 100) + rng.normal(0, 0.03, (3, 1))
            for family, mean in (("a", 1.30), ("b", 1.25))
        }
        row = evidence.compare(evidence.bootstrap(runs, replicates=400, bootstrap_seed=study), "a", "b")
        covered += row["diff_ci95_low"] <= 0.05 <= row["diff_ci95_high"]
    assert 0.90 <= covered / 200 <= 0.99


def test_consistent_image_differences_are_significant_with_one_seed_and_seed_noise_alone_is_not():
    rng = np.random.default_rng(5)
    difficulty = rng.normal(1.5, 0.8, 500)
    one_seed = {"a": difficulty[None, :], "b": (difficulty + 0.02 + rng.normal(0, 0.01, 500))[None, :]}
    row = evidence.compare(evidence.bootstrap(one_seed), "a", "b")
    assert row["p"] == pytest.approx(1 / (evidence.REPLICATES + 1)) and row["diff_mean"] < 0
    assert row["method"] == evidence.METHOD_IMAGES and "1 seed each" in row["note"]
    assert (row["runs_ahead"], row["run_pairs"]) == (1, 1)
    # the same images scored alike by both; the seeds' offsets differ by 0.01 on average and spread by 0.05
    seed_noise = {
        "a": difficulty + np.array([-0.05, 0.0, 0.05])[:, None],
        "b": difficulty + np.array([-0.04, 0.01, 0.06])[:, None],
    }
    row = evidence.compare(evidence.bootstrap(seed_noise), "a", "b")
    assert row["p"] > 0.3 and row["method"] == evidence.METHOD_BOOTSTRAP and row["note"] == ""
    assert (row["runs_ahead"], row["run_pairs"]) == (6, 9)
    assert (row["gap_min"], row["gap_max"]) == pytest.approx((-0.11, 0.09))


def test_family_means_give_the_bootstrap_standard_error_and_interval():
    rng = np.random.default_rng(1)
    boot = evidence.bootstrap({"a": rng.normal(2, 0.5, (3, 200)), "b": rng.normal(2, 0.5, (1, 200))})
    means = evidence.family_means(boot)
    assert list(means.index) == ["a", "b"] and list(means["n_seeds"]) == [3, 1]
    assert means.loc["a", "se"] == pytest.approx(boot.replicates["a"].std(ddof=1))
    assert means.loc["b", "se"] == pytest.approx(0.5 / math.sqrt(200), rel=0.15)  # images only: sd / sqrt(N)
    assert means.loc["a", "ci95_low"] < means.loc["a", "mean"] < means.loc["a", "ci95_high"]


# -- one number per run ---------------------------------------------------------------------------------
def test_welch_matches_scipy_and_needs_two_seeds_a_side():
    a, b = [10.2, 11.0, 10.7, 10.4], [12.1, 11.3, 12.8]
    row = evidence.welch(a, b)
    direct = sps.ttest_ind(a, b, equal_var=False)
    assert row["p"] == pytest.approx(direct.pvalue) and row["method"] == evidence.METHOD_WELCH
    low, high = direct.confidence_interval(0.95)
    assert (row["diff_ci95_low"], row["diff_ci95_high"]) == pytest.approx((low, high))
    assert row["diff_mean"] == pytest.approx(np.mean(a) - np.mean(b)) and (row["n_a"], row["n_b"]) == (4, 3)
    alone = evidence.welch([1.0], [2.0, 2.5])
    assert math.isnan(alone["p"]) and alone["method"] == "" and "needs 2 of each" in alone["note"]
    flat = evidence.welch([1.0, 1.0], [2.0, 2.0])
    assert math.isnan(flat["p"]) and "same value" in flat["note"]


def test_run_pairs_compare_every_run_with_every_run():
    pairs = evidence.run_pairs([1.0, 1.2], [1.1, 1.3, 0.9])  # gaps -0.1 -0.3 0.1 0.1 -0.1 0.3
    assert (pairs["runs_ahead"], pairs["run_pairs"]) == (3, 6)
    assert (pairs["gap_min"], pairs["gap_max"]) == pytest.approx((-0.3, 0.3))
    assert evidence.run_pairs([1.0, 1.2], [1.1, 1.3, 0.9], lower_is_better=False)["runs_ahead"] == 3
    assert evidence.run_pairs([2.0], [1.0], lower_is_better=False)["runs_ahead"] == 1


def test_pairwise_tests_use_the_bootstrap_where_there_are_per_image_values_and_welch_elsewhere():
    rng = np.random.default_rng(9)
    values = {"a": [1.0, 1.1, 0.9], "b": [2.0, 2.2, 1.9], "c": [1.5]}
    table = runs_table(values, metric="bpd_disc")
    per_image = {"a": rng.normal(1, 0.3, (3, 50)), "b": rng.normal(2, 0.3, (3, 50))}
    boots = {("bpd_disc", 4): evidence.bootstrap(per_image)}
    raw = evidence.pairwise_tests(table, "bpd_disc", ["a", "b", "c"], boots=boots)
    assert list(raw.columns) == list(evidence.TEST_COLUMNS)
    tests = raw.set_index(["family_a", "family_b"])
    assert (
        tests.loc[("a", "b"), "method"] == evidence.METHOD_BOOTSTRAP
        and tests.loc[("a", "b"), "n_images"] == 50
    )
    assert tests.loc[("a", "c"), "method"] == "" and math.isnan(
        tests.loc[("a", "c"), "p_holm"]
    )  # 1 seed of c
    assert tests.loc[("a", "b"), "p_holm"] == tests.loc[("a", "b"), "p"]  # the only pair tested: m = 1
    assert tests.loc[("a", "b"), "better"] == "a" and tests.loc[("a", "b"), "significant"]
    np.testing.assert_allclose(tests["p_holm"], stats.holm(tests["p"]))


def test_better_follows_the_measure_direction():
    table = runs_table({"a": [0.90, 0.91, 0.89, 0.9], "b": [0.50, 0.52, 0.49, 0.51]}, metric="knn_acc")
    higher = evidence.pairwise_tests(table, "knn_acc", ["a", "b"], lower_is_better=False).iloc[0]
    lower = evidence.pairwise_tests(table, "knn_acc", ["a", "b"]).iloc[0]
    assert higher["significant"] and higher["better"] == "a" and lower["better"] == "b"
    assert higher["runs_ahead"] == 16 and lower["runs_ahead"] == 0


# -- a study written before the engine ------------------------------------------------------------------
@pytest.fixture(scope="module")
def old_study(tmp_path_factory) -> Study:
    copy = tmp_path_factory.mktemp("old") / OLD_STUDY.name
    shutil.copytree(OLD_STUDY, copy)
    return Study.load(copy)


def test_a_tests_table_written_before_the_bootstrap_loads_and_is_judged(old_study):
    tests = old_study.tests
    assert {"p", "p_holm", "n_a", "n_b", "method"} <= set(tests.columns)
    tested = tests["p_holm"].notna()
    assert tested.any() and (tests.loc[tested, "method"] == METHOD_PAIRED_T).all()
    np.testing.assert_array_equal(tests["p_holm"], pd.read_csv(old_study.results / "tests.csv")["t_p_holm"])
    dim = old_study.dims[0]
    best, second = analysis.best_by(old_study, "bpd_disc", dim)[:2]
    ev = analysis.evidence(old_study, "bpd_disc", dim, best, second)
    assert ev.method == METHOD_PAIRED_T and math.isfinite(ev.p_holm) and ev.diff < 0
    assert f"paired t-test across {old_study.n_seeds} seeds, Holm p" in ev.words
    assert old_study.per_image("bpd_disc", dim) is None  # no per-image table was written then
    ranks = analysis.ranking(old_study)
    assert ranks["tested"].all() and ranks.groupby("latent_dim")["rank"].min().eq(1).all()
