"""How sure a difference between two families is, from both of its noise sources: seeds and test images.

Seeds are independent training runs: seed 0 of one family shares nothing with seed 0 of another, so families
are never paired by seed. Test images are shared: every run of a study is scored on the same images in the
same order, so the image-by-image differences of two families are truly paired, and most of the evidence is
there.

The likelihoods have a value per test image (per_image.csv.gz): a hierarchical bootstrap resamples both
sources. Each replicate draws the test images once for every family (shared counts: the pairing is kept)
and each family's seeds on their own. A bootstrap over S values underestimates their variance by (S - 1)/S,
badly at S = 3, so each run's deviation from its family's per-image seed mean is first scaled by
sqrt(S/(S - 1)); a family with one seed has only its images resampled. The measures with one number per run
(Fréchet distances, sharpness, kNN accuracy, epochs_to_95, ...) get Welch's unpaired t-test across seeds.
Either way every pair of runs of the two families is compared too (`runs_ahead`). The p-values of one
measure and latent size are Holm-corrected together. docs/statistics.md says what all this assumes.
numpy, scipy and pandas: no torch.
"""

import itertools
import math
import warnings
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as sps

from vaebench import stats
from vaebench.layout import parse_per_image_column
from vaebench.results import OK, per_image_runs

REPLICATES = 20_000  # bootstrap replicates: a p-value's resolution is 1/(REPLICATES + 1)
BOOTSTRAP_SEED = 20_250_917  # fixed, so the same runs give the same tables
CHUNK = 250  # replicates whose image counts are held at once: [CHUNK, images] floats
CONFIDENCE = 0.95  # of every interval here

# how a pair was tested (tests.csv's method); "" where it was not
METHOD_BOOTSTRAP = "hierarchical bootstrap (seeds and test images)"
METHOD_IMAGES = "bootstrap over test images (1 seed)"
METHOD_WELCH = "Welch t-test across seeds"

TEST_COLUMNS = (
    "metric",
    "latent_dim",
    "family_a",
    "family_b",
    "n_a",
    "n_b",
    "n_images",
    "method",
    "mean_a",
    "mean_b",
    "diff_mean",
    "diff_ci95_low",
    "diff_ci95_high",
    "p",
    "p_holm",
    "significant",
    "better",
    "runs_ahead",
    "run_pairs",
    "gap_min",
    "gap_max",
    "note",
)


# -- the resample ---------------------------------------------------------------------------------------
def _counts(rng: np.random.Generator, rows: int, size: int) -> np.ndarray:
    """[rows, size] floats: how often each of `size` items is drawn when `size` are drawn with replacement."""
    drawn = rng.integers(0, size, (rows, size)) + size * np.arange(rows)[:, None]
    return np.bincount(drawn.ravel(), minlength=rows * size).reshape(rows, size).astype(float)


def image_counts(
    n_images: int, replicates: int = REPLICATES, bootstrap_seed: int = BOOTSTRAP_SEED
) -> Iterator[np.ndarray]:
    """The test-image resample every family shares, CHUNK replicates at a time: [chunk, images] counts of each
    image. It depends on the number of images and bootstrap_seed only: every family gets the same draws."""
    rng = np.random.default_rng([bootstrap_seed, 0])
    for start in range(0, replicates, CHUNK):
        yield _counts(rng, min(CHUNK, replicates - start), n_images)


def seed_counts(
    family: str, n_seeds: int, replicates: int = REPLICATES, bootstrap_seed: int = BOOTSTRAP_SEED
) -> np.ndarray:
    """[replicates, seeds] counts of each of a family's runs: drawn apart from every other family's (seeds are
    independent runs) by a generator of the family's own, so adding a family changes no other's draws. All
    ones with one seed: there is nothing to resample."""
    if n_seeds == 1:
        return np.ones((replicates, 1))
    return _counts(
        np.random.default_rng([bootstrap_seed, 1, zlib.crc32(family.encode())]), replicates, n_seeds
    )


def inflate_seed_deviations(values: np.ndarray) -> np.ndarray:
    """[seeds, images] with each run's deviation from the family's per-image seed mean scaled by
    sqrt(S/(S - 1)): resampling S runs then spreads their mean as much as S new seeds would, not (S - 1)/S
    of it. One run is returned as it is."""
    n_seeds = values.shape[0]
    if n_seeds < 2:
        return values
    centre = values.mean(axis=0)
    return centre + (values - centre) * math.sqrt(n_seeds / (n_seeds - 1))


def replicate_means(
    runs: dict[str, np.ndarray], images: np.ndarray, seeds: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """Every family's mean in each replicate: its [seeds, images] values, inflated, weighted by the
    replicates' [B, images] image counts (shared) and its own [B, seeds] seed counts -> [B]. One matrix
    product for the runs of every family: many small ones cost more than the arithmetic. With every count 1
    it is the plain mean."""
    inflated = np.concatenate([inflate_seed_deviations(values) for values in runs.values()])
    run_means = images @ inflated.T / inflated.shape[1]  # [B, every run]
    out, first = {}, 0
    for family, values in runs.items():
        n_seeds = values.shape[0]
        out[family] = np.einsum("bs,bs->b", run_means[:, first : first + n_seeds], seeds[family]) / n_seeds
        first += n_seeds
    return out


@dataclass(frozen=True)
class Bootstrap:
    """The families of one measure at one latent size: their runs' values per test image and their means in
    every replicate of one shared image resample (`bootstrap`)."""

    runs: dict[str, np.ndarray]  # family -> [seeds, images]
    replicates: dict[str, np.ndarray]  # family -> [replicates] its mean in each

    @property
    def n_images(self) -> int:
        return next(iter(self.runs.values())).shape[1]

    def n_seeds(self, family: str) -> int:
        return self.runs[family].shape[0]

    def mean(self, family: str) -> float:
        return float(self.runs[family].mean())

    def run_means(self, family: str) -> np.ndarray:
        return self.runs[family].mean(axis=1)


def bootstrap(
    runs: dict[str, np.ndarray], replicates: int = REPLICATES, bootstrap_seed: int = BOOTSTRAP_SEED
) -> Bootstrap:
    """Every family's mean in `replicates` replicates: the test images resampled once for all of them, each
    family's seeds on their own. `runs`: family -> [seeds, images] values, the same images for every family.
    A caller can count in `replicates` how often a leader stays the leader."""
    sizes = {values.shape[1] for values in runs.values()}
    if len(sizes) != 1:
        raise ValueError(f"the families were scored on different numbers of test images: {sorted(sizes)}")
    seeds = {
        family: seed_counts(family, values.shape[0], replicates, bootstrap_seed)
        for family, values in runs.items()
    }
    chunks, start = [], 0
    for images in image_counts(sizes.pop(), replicates, bootstrap_seed):
        stop = start + len(images)
        chunks.append(replicate_means(runs, images, {f: counts[start:stop] for f, counts in seeds.items()}))
        start = stop
    return Bootstrap(dict(runs), {family: np.concatenate([c[family] for c in chunks]) for family in runs})


def percentile_interval(replicates: np.ndarray) -> tuple[float, float]:
    tail = (1 - CONFIDENCE) / 2
    low, high = np.quantile(replicates, [tail, 1 - tail])
    return float(low), float(high)


def bootstrap_p(differences: np.ndarray) -> float:
    """Two-sided p of a difference from its replicates: how often they fall on either side of zero,
    (1 + 2 min(#<= 0, #>= 0)) / (B + 1), at most 1."""
    below, above = np.count_nonzero(differences <= 0), np.count_nonzero(differences >= 0)
    return min(1.0, float(1 + 2 * min(below, above)) / (differences.size + 1))


# -- per family and per pair ----------------------------------------------------------------------------
def family_means(boot: Bootstrap) -> pd.DataFrame:
    """Per family (the index): n_seeds, n_images, mean, and its bootstrap standard error and 95% percentile
    interval (se, ci95_low, ci95_high)."""
    rows = {}
    for family, replicates in boot.replicates.items():
        low, high = percentile_interval(replicates)
        rows[family] = {
            "n_seeds": boot.n_seeds(family),
            "n_images": boot.n_images,
            "mean": boot.mean(family),
            "se": float(replicates.std(ddof=1)),
            "ci95_low": low,
            "ci95_high": high,
        }
    return pd.DataFrame.from_dict(rows, orient="index")


def run_pairs(values_a, values_b, lower_is_better: bool = True) -> dict:
    """Every run of a against every run of b (seeds are independent: every pair, not seed-matched): how many
    pairs have a ahead in the measure's direction (`runs_ahead` of `run_pairs`), and the smallest and the
    largest gap a - b."""
    gaps = (np.asarray(values_a, float)[:, None] - np.asarray(values_b, float)[None, :]).ravel()
    if gaps.size == 0:
        return {"runs_ahead": 0, "run_pairs": 0, "gap_min": math.nan, "gap_max": math.nan}
    ahead = gaps < 0 if lower_is_better else gaps > 0
    return {
        "runs_ahead": int(ahead.sum()),
        "run_pairs": int(gaps.size),
        "gap_min": float(gaps.min()),
        "gap_max": float(gaps.max()),
    }


def compare(boot: Bootstrap, a: str, b: str, lower_is_better: bool = True) -> dict:
    """a against b from their bootstrap replicates: the difference of means a - b, its 95% percentile interval
    and two-sided p, and the run pairs. A family with one seed has only its test images resampled: the
    method and the note say so."""
    differences = boot.replicates[a] - boot.replicates[b]
    low, high = percentile_interval(differences)
    single = [family for family in (a, b) if boot.n_seeds(family) == 1]
    if len(single) == 2:
        note = "1 seed each: only the test images are resampled, the seed-to-seed variation is not measured"
    elif single:
        note = f"1 seed of {single[0]}: only its test images are resampled, its seed noise is unknown"
    else:
        note = ""
    return {
        "n_a": boot.n_seeds(a),
        "n_b": boot.n_seeds(b),
        "n_images": boot.n_images,
        "method": METHOD_IMAGES if single else METHOD_BOOTSTRAP,
        "mean_a": boot.mean(a),
        "mean_b": boot.mean(b),
        "diff_mean": boot.mean(a) - boot.mean(b),
        "diff_ci95_low": low,
        "diff_ci95_high": high,
        "p": bootstrap_p(differences),
        **run_pairs(boot.run_means(a), boot.run_means(b), lower_is_better),
        "note": note,
    }


def welch(values_a, values_b, lower_is_better: bool = True) -> dict:
    """a against b from one value per run: Welch's unpaired t-test across seeds and its 95% interval of the
    difference a - b; untested (NaN) with fewer than 2 seeds on either side or no spread on both."""
    a, b = (np.asarray(values, float) for values in (values_a, values_b))
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    row = {
        "n_a": a.size,
        "n_b": b.size,
        "n_images": math.nan,
        "method": "",
        "mean_a": float(a.mean()) if a.size else math.nan,
        "mean_b": float(b.mean()) if b.size else math.nan,
        "diff_ci95_low": math.nan,
        "diff_ci95_high": math.nan,
        "p": math.nan,
        **run_pairs(a, b, lower_is_better),
        "note": "",
    }
    row["diff_mean"] = row["mean_a"] - row["mean_b"]
    if min(a.size, b.size) < 2:
        row["note"] = f"{a.size} and {b.size} seeds: the t-test needs 2 of each; compare the means only"
    elif np.ptp(a) == 0 and np.ptp(b) == 0:
        row["note"] = "every run of both families has the same value: no spread to test against"
    else:
        with warnings.catch_warnings():  # one family without spread: scipy warns, the test is still defined
            warnings.simplefilter("ignore", RuntimeWarning)
            test = sps.ttest_ind(a, b, equal_var=False)
            low, high = test.confidence_interval(CONFIDENCE)
        row.update(
            method=METHOD_WELCH, p=float(test.pvalue), diff_ci95_low=float(low), diff_ci95_high=float(high)
        )
    return row


# -- tests.csv ------------------------------------------------------------------------------------------
def bootstraps(metrics: pd.DataFrame, per_image: pd.DataFrame | None) -> dict[tuple[str, int], Bootstrap]:
    """(metric, latent size) -> the bootstrap of the families whose ok runs all have per-image values there
    (`results.per_image_runs`); {} without a per-image table."""
    if per_image is None:
        return {}
    ok = metrics[metrics["status"] == OK]
    measures = sorted({parsed[0] for c in per_image.columns if (parsed := parse_per_image_column(c))})
    out = {}
    for metric in measures:
        for dim in sorted(int(d) for d in ok["latent_dim"].unique()):
            runs = per_image_runs(per_image, ok, metric, dim)
            if runs:
                out[metric, dim] = bootstrap(runs)
    return out


def pairwise_tests(
    metrics: pd.DataFrame,
    metric: str,
    families: list[str],
    lower_is_better: bool = True,
    boots: dict[tuple[str, int], Bootstrap] | None = None,
) -> pd.DataFrame:
    """Every pair of `families` (in that order) at every latent size, for one metric: by the hierarchical
    bootstrap where both families are in `boots`, else by Welch's t-test across seeds. p_holm: Holm over the
    pairs of this metric and latent size; `better` names the significant winner in the metric's direction.

    `metrics` has one row per run with columns family, latent_dim, seed, status and `metric`; only status
    "ok" rows take part.
    """
    ok = metrics[metrics["status"] == OK]
    rows = []
    for dim in sorted(int(d) for d in ok["latent_dim"].unique()):
        at_dim = ok[ok["latent_dim"] == dim]
        values = {
            f: pd.to_numeric(at_dim.loc[at_dim["family"] == f, metric], errors="coerce").dropna().to_numpy()
            for f in families
        }
        boot = (boots or {}).get((metric, dim))
        block = []
        for a, b in itertools.combinations([f for f in families if values[f].size], 2):
            if boot is not None and a in boot.runs and b in boot.runs:
                test = compare(boot, a, b, lower_is_better)
            else:
                test = welch(values[a], values[b], lower_is_better)
            block.append({"metric": metric, "latent_dim": dim, "family_a": a, "family_b": b, **test})
        for row, p_holm in zip(block, stats.holm([r["p"] for r in block]), strict=True):
            row["p_holm"] = p_holm
            row["significant"] = bool(p_holm < stats.ALPHA)
            a_better = row["diff_mean"] < 0 if lower_is_better else row["diff_mean"] > 0
            row["better"] = (row["family_a"] if a_better else row["family_b"]) if row["significant"] else ""
        rows += block
    return pd.DataFrame(rows, columns=list(TEST_COLUMNS))


def all_tests(
    metrics: pd.DataFrame,
    families: list[str],
    tested: dict[str, bool],
    boots: dict[tuple[str, int], Bootstrap] | None = None,
) -> pd.DataFrame:
    """pairwise_tests for every metric of `tested` (metric -> lower is better) that the table has, stacked:
    tests.csv."""
    tables = [
        pairwise_tests(metrics, metric, families, lower, boots)
        for metric, lower in tested.items()
        if metric in metrics.columns
    ]
    tables = [t for t in tables if not t.empty]
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=list(TEST_COLUMNS))
