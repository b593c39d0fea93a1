"""The study's analysis: every decision the findings and the report state, made once, as plain data.

How sure a difference is comes from one rule, `judge`: the Holm-corrected test of tests.csv where the pair
has one (`vaebench.evidence`: the hierarchical bootstrap over seeds and test images, with one seed over the
test images only; Welch's t-test across seeds for the measures without per-image values); else the
test-set noise (stats.NOISE_SE standard errors of the difference); else the order of the means only.
Which family leads a column (`ranking`, `leaders`),
which are worse than the uniform density, where likelihood and picture quality disagree,
which runs were still improving (`still_rising`), whether K, the test subset,
the training set or the architecture fall short of the protocol, which chosen settings sit at the
edge of their grid and whether a claim of the seed post holds (`compare`, `claim_verdict`) are decided
here too. The findings (`vaebench.findings`) put these into sentences
and the report (`vaebench.report`) into tables; neither decides them again. Which way a measure is
better comes from results.MEASURES.
"""

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace

import pandas as pd

from vaebench import select, stats
from vaebench.evidence import METHOD_BOOTSTRAP, METHOD_IMAGES, METHOD_WELCH
from vaebench.results import MEASURES, METHOD_PAIRED_T, OK, UNIFORM_BPD, Study
from vaebench.stopping import CONVERGED, EPOCH_CAP
from vaebench.units import nats_to_bpd
from vaebench.utils import finite
from vaebench.words import holm_p, seeds

PAPER_K = 5000  # Burda et al.'s protocol: importance samples per test image
SEED_ARCH = "conv"  # the seed post's network (16/32/128 channels); the mlp is a smaller, different model
RISING_SHARE = 0.01  # a learning curve still rises when its last epoch added at least this share of its gain
SMALL_TRAIN = 10_000  # fewer training images than this is a small training set (MNIST has 60,000)
# a claim's verdict: every comparison decided in its favour; against it only; decided both ways; not every
# comparison decided; or a design that cannot tell (a measure the study lacks or truncates)
SUPPORTED, CONTRADICTED, MIXED, UNDECIDED = "supported", "contradicted", "mixed", "undecided"
NOT_TESTABLE = "not testable here"
VERDICTS = (SUPPORTED, CONTRADICTED, MIXED, UNDECIDED, NOT_TESTABLE)
K_FRACTIONS = ("_k_sixteenth", "_k_quarter")  # the estimate's columns at K/16 and K/4 samples
# how `against_references` tests a family against a baseline's fixed value
METHOD_ONE_SAMPLE = "one-sample t-test across seeds"
# what Evidence carries from the test behind it (a tests.csv row), beside the Holm-corrected p
TEST_DETAIL = ("p", "method", "runs_ahead", "run_pairs", "gap_min", "gap_max")


# -- the one evidence rule ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Evidence:
    """How sure the difference a - b of two means is (`judge`): `separated` when the rule says it is real; the
    test behind it, where the pair has a row in tests.csv, for the report to show."""

    diff: float
    separated: bool
    words: str
    p: float = math.nan  # the test's p-value, before Holm
    p_holm: float = math.nan
    method: str = ""  # how the pair was tested (tests.csv's method); "" where no test ran
    how: str = ""  # the same in a few words with its sample sizes (`tested_how`)
    runs_ahead: float = math.nan  # of the run_pairs pairs of runs (every run of a against every run of b),
    run_pairs: float = math.nan  # those with a's run ahead in the measure's direction
    gap_min: float = math.nan  # the smallest and largest run-against-run gap a - b
    gap_max: float = math.nan

    def better(self, metric: str) -> int:
        """+1 when a is better on `metric` by the rule, -1 when b is, 0 when the rule cannot tell."""
        if not self.separated or not finite(self.diff) or self.diff == 0:
            return 0
        lower = MEASURES[metric].lower_is_better if metric in MEASURES else True
        return 1 if (self.diff < 0) == lower else -1


def tested_how(test: Mapping) -> str:
    """How a pair was tested, in a few words: 'hierarchical bootstrap, 3 seeds × 2,000 images', '1 seed: test
    images only, 2,000 images', 'Welch t-test across 3 seeds'."""
    n_a, n_b = int(test["n_a"]), int(test["n_b"])
    runs = seeds(n_a) if n_a == n_b else f"{n_a} and {n_b} seeds"
    images = f"{int(test['n_images']):,} images" if finite(test.get("n_images")) else ""
    method = test["method"]
    if method == METHOD_BOOTSTRAP:
        return f"hierarchical bootstrap, {runs} × {images}"
    if method == METHOD_IMAGES:
        return (
            f"1 seed: test images only, {images}" if n_a == n_b else f"{runs}: one family's test images only"
        )
    if method == METHOD_WELCH:
        return f"Welch t-test across {runs}"
    if method == METHOD_PAIRED_T:
        return f"paired t-test across {runs}"
    if method == METHOD_ONE_SAMPLE:
        return f"one-sample t-test across {seeds(n_a)}"
    return f"across {runs}"


def judge(
    diff: float,
    n: int,
    p_holm: float = math.nan,
    se_a: float = math.nan,
    se_b: float = math.nan,
    test: Mapping | None = None,
) -> Evidence:
    """The evidence rule every finding uses, for a difference of means over n seeds.

    With a test (a finite Holm-corrected p; `test`: its tests.csv row or the like, with method, n_a, n_b,
    n_images, p and the run pairs) the test decides, with one seed too. Without one, a difference larger than
    NOISE_SE standard errors of the difference over test images counts ("beyond the test-set noise");
    without standard errors, or within them, it is the order of the means only.
    """
    known = [k for k in TEST_DETAIL if test is not None and k in test]
    detail = {k: test[k] if k == "method" else float(test[k]) for k in known}
    if not finite(diff):
        return Evidence(math.nan, False, "no value to compare")
    if finite(p_holm):
        significant = p_holm < stats.ALPHA
        how = tested_how(test) if test is not None else f"across {seeds(n)}"
        verdict = "significant" if significant else "not significant"
        words = f"{verdict} ({how}, {holm_p(p_holm)})"
        return Evidence(diff, significant, words, p_holm=p_holm, how=how, **detail)
    beyond, ratio = stats.beyond_noise(diff, se_a, se_b)
    if beyond:
        words = f"larger than {stats.NOISE_SE} test-set standard errors, {seeds(n)}"
        return Evidence(diff, True, words, **detail)
    if finite(ratio):
        words = f"order of means only: {ratio:.1f} test-set standard errors, {seeds(n)}"
        return Evidence(diff, False, words, **detail)
    return Evidence(diff, False, f"order of means only, {seeds(n)}", **detail)


def evidence(study: Study, metric: str, dim: int, a: str, b: str) -> Evidence:
    """`judge` on two families' means at one latent dimension: their test from tests.csv, else the test-set
    standard errors of their means."""
    sa, sb = study.stat(a, dim, metric), study.stat(b, dim, metric)
    if not (finite(sa["mean"]) and finite(sb["mean"])):
        return judge(math.nan, 0)
    row = study.test(metric, dim, a, b)
    n = int(min(row["n_a"], row["n_b"])) if row is not None else min(sa["n"], sb["n"])
    if row is not None and finite(row["p_holm"]):
        return judge(float(row["diff_mean"]), n, float(row["p_holm"]), test=row)
    return judge(sa["mean"] - sb["mean"], n, se_a=sa["se"], se_b=sb["se"], test=row)


def test_methods(study: Study, metric: str | None = None) -> set[str]:
    """How the study's pairs were tested (on `metric`, else on any measure): tests.csv's methods, without ""
    (not tested)."""
    tests = study.tests
    if "method" not in tests.columns:
        return set()
    return set(tests["method"] if metric is None else tests.loc[tests["metric"] == metric, "method"]) - {""}


def images_resampled(study: Study) -> int | None:
    """The test images the likelihoods' bootstrap resampled; None where it did not run (no per-image data)."""
    if "n_images" not in study.tests.columns:
        return None
    images = pd.to_numeric(study.tests["n_images"], errors="coerce").dropna()
    return int(images.max()) if not images.empty else None


def seed_values(study: Study, family: str, dim: int, metric: str) -> pd.Series:
    runs = study.ok[(study.ok["family"] == family) & (study.ok["latent_dim"] == dim)]
    return pd.to_numeric(runs[metric], errors="coerce").dropna() if metric in runs.columns else pd.Series()


def against_references(
    study: Study, dim: int, reference: dict, metric: str = "bpd_disc"
) -> dict[str, Evidence]:
    """`judge` of each family's mean minus a baseline's value (a fixed model, no seeds): with enough seeds
    a one-sample t-test, Holm-corrected over the families; else the test-set noise of both."""
    ref, ref_se = (
        reference.get(metric),
        nats_to_bpd(reference.get("ll_disc_se") or math.nan, (study.baselines or {}).get("dims") or math.nan),
    )
    families = [f for f in study.families if finite(study.stat(f, dim, metric)["mean"])]
    p = [stats.one_sample_p(seed_values(study, f, dim, metric), ref) for f in families]
    out = {}
    for family, p_raw, p_holm in zip(families, p, stats.holm(p), strict=True):
        s = study.stat(family, dim, metric)
        test = (
            {"method": METHOD_ONE_SAMPLE, "n_a": s["n"], "n_b": s["n"], "p": p_raw} if finite(p_raw) else None
        )
        out[family] = judge(s["mean"] - ref, s["n"], p_holm, s["se"], ref_se, test)
    return out


def compare(study: Study, claimant: str, rivals: list[str], metrics) -> tuple[list, list, list]:
    """Every (metric, dim, rival, Evidence) of claimant against each rival: (wins, losses, undecided). A claim
    stands on all its comparisons at once, so the tested ones are Holm-corrected across them (`across_claim`),
    not within one measure as in tests.csv."""
    found = [
        (metric, dim, rival, ev)
        for metric in (m for m in metrics if has_measure(study, m))
        for dim in study.dims
        for rival in rivals
        if finite((ev := evidence(study, metric, dim, claimant, rival)).diff)
    ]
    wins, losses, open_ = [], [], []
    for metric, dim, rival, ev in across_claim(found):
        side = ev.better(metric)
        (wins if side > 0 else losses if side < 0 else open_).append((metric, dim, rival, ev))
    return wins, losses, open_


def across_claim(found: list[tuple]) -> list[tuple]:
    """The comparisons with a test, judged again on their p-values Holm-corrected across all of them."""
    tested = [i for i, (*_, ev) in enumerate(found) if finite(ev.p)]
    out = list(found)
    for i, p_claim in zip(tested, stats.holm([found[i][3].p for i in tested]), strict=True):
        metric, dim, rival, ev = found[i]
        significant = bool(p_claim < stats.ALPHA)
        words = (
            f"{'significant' if significant else 'not significant'} ({ev.how}, {holm_p(p_claim)} across the "
            f"claim's {len(tested)} tested comparisons)"
        )
        out[i] = (metric, dim, rival, replace(ev, separated=significant, p_holm=p_claim, words=words))
    return out


def claim_verdict(wins: list, losses: list, open_: list) -> str:
    """MIXED when the evidence rule decides comparisons both ways, CONTRADICTED when it decides some against
    the claim and none for it, SUPPORTED when it decides every comparison for it, else UNDECIDED."""
    if wins and losses:
        return MIXED
    if losses:
        return CONTRADICTED
    return SUPPORTED if wins and not open_ else UNDECIDED


# -- who leads ------------------------------------------------------------------------------------------
def ranking(study: Study, metric: str = "bpd_disc") -> pd.DataFrame:
    """stats.ranking of the study: per latent dimension the families by mean, with their ties. The one place
    a column's winner is decided: the headline's bold cell and its ties, the winner findings, the ranking."""
    return stats.ranking(study.metrics, study.tests, metric, study.families)


def leaders(study: Study, metric: str) -> dict[int, tuple[str, set[str]]]:
    """Per latent dimension: the ranking's first family and the families tied with it."""
    return {
        int(dim): (at["family"].iloc[0], set(at["tied_with"].iloc[0].split()))
        for dim, at in ranking(study, metric).groupby("latent_dim")
    }


def best_by(study: Study, metric: str, dim: int) -> list[str]:
    """The families with a value of `metric` at `dim`, best mean first."""
    means = {f: m for f in study.families if finite(m := study.stat(f, dim, metric)["mean"])}
    lower = MEASURES[metric].lower_is_better
    return sorted(means, key=lambda f: means[f] if lower else -means[f])


def has_measure(study: Study, metric: str) -> bool:
    return metric in study.ok.columns and pd.to_numeric(study.ok[metric], errors="coerce").notna().any()


def not_comparable(study: Study) -> list[str]:
    """Families with a run trained on v/255 without dequantization: their likelihoods are not comparable."""
    marked = []
    for family in study.families:
        runs = study.metrics[study.metrics["family"] == family]
        flags = [runs[c] for c in ("dequantize", "ll_comparable") if c in runs.columns]
        if any((f.astype(str).str.lower() == "false").any() for f in flags):
            marked.append(family)
    return marked


def worse_than_uniform(study: Study) -> dict[str, list[tuple[int, float]]]:
    """Per family, the (latent dimension, mean) where its dequantized bits/dim is worse than the uniform
    density's: as a density of the images, it is worse than noise there."""
    means = {(f, d): study.stat(f, d, "bpd_deq")["mean"] for f in study.families for d in study.dims}
    return {
        f: [(d, means[f, d]) for d in study.dims if finite(means[f, d]) and means[f, d] > UNIFORM_BPD]
        for f in study.families
    }


@dataclass(frozen=True)
class Disagreement:
    """A family near the top on likelihood and in the bottom half on the Fréchet distance of its samples:
    its places (1 = best) among the `of` families with both values at one latent dimension."""

    family: str
    latent_dim: int
    likelihood_place: int
    pictures_place: int
    of: int


def likelihood_vs_pictures(study: Study, metric: str = "fd_samples_mean") -> list[Disagreement]:
    """Each family in the top third on likelihood that is in the bottom half on `metric`, per latent
    dimension with three families or more that have both."""
    found = []
    for dim in study.dims:
        by_ll, by_fd = best_by(study, "bpd_disc", dim), best_by(study, metric, dim)
        both = [f for f in by_ll if f in by_fd]
        if len(both) < 3:
            continue
        by_ll, by_fd = [f for f in by_ll if f in both], [f for f in by_fd if f in both]
        for family in by_ll[: max(1, len(both) // 3)]:
            if by_fd.index(family) >= len(both) / 2:
                found.append(
                    Disagreement(family, dim, by_ll.index(family) + 1, by_fd.index(family) + 1, len(both))
                )
    return found


# -- what is still rising -------------------------------------------------------------------------------
def still_rising(study: Study) -> pd.DataFrame:
    """Per ok run: the last epoch's test-ELBO gain as a share of the run's total gain; the rising ones."""
    history, rows = study.history, []
    if history.empty:
        return pd.DataFrame(columns=["family", "latent_dim", "seed", "share", "epochs"])
    ok = history[history["status"] == OK]
    for (family, dim, seed), run in ok.groupby(["family", "latent_dim", "seed"], sort=False):
        elbo = pd.to_numeric(run.sort_values("epoch")["test_elbo_nats"], errors="coerce").dropna().to_numpy()
        if len(elbo) < 2 or elbo[-1] - elbo[0] <= 0:
            continue
        share = (elbo[-1] - elbo[-2]) / (elbo[-1] - elbo[0])
        if share >= RISING_SHARE:
            rows.append(
                {"family": family, "latent_dim": dim, "seed": seed, "share": share, "epochs": len(elbo)}
            )
    return pd.DataFrame(rows, columns=["family", "latent_dim", "seed", "share", "epochs"])


@dataclass(frozen=True)
class Stops:
    """How a study's ok runs ended under the stopping rule (vaebench.stopping)."""

    counts: dict[str, int]  # runs per stop reason
    capped: pd.DataFrame  # the runs the epoch cap ended: family, latent_dim, seed, epochs_completed
    drift: pd.DataFrame  # the converged runs' drift_bpd, largest first: family, latent_dim, seed, drift_bpd


def stops(study: Study) -> Stops | None:
    """How the ok runs ended; None for tables written before runs recorded a stop reason."""
    runs = study.ok
    if "stop_reason" not in runs.columns or runs["stop_reason"].isna().all():
        return None
    keys = ["family", "latent_dim", "seed"]
    capped = runs[runs["stop_reason"] == EPOCH_CAP][[*keys, "epochs_completed"]]
    converged = runs[runs["stop_reason"] == CONVERGED]
    drift = converged[[*keys, "drift_bpd"]].dropna().sort_values("drift_bpd", ascending=False)
    counts = runs["stop_reason"].value_counts().to_dict()
    return Stops(counts, capped.reset_index(drop=True), drift.reset_index(drop=True))


def numeric_column(runs: pd.DataFrame, name: str) -> pd.Series:
    """A column of the runs as numbers (NaN where a run has none); all NaN where no run recorded it."""
    return pd.to_numeric(runs.get(name, pd.Series(math.nan, index=runs.index)), errors="coerce")


def endings(study: Study) -> pd.DataFrame | None:
    """Per family and latent size, how its ok runs ended: `runs`, the stop reasons (`stopped_by`, counts by
    reason, most first), the epochs trained and the epoch kept (`epochs_min`/`_max`, `kept_min`/`_max`), the
    most learning-rate decays a run used and the largest drift (bits/dim); None before runs recorded a stop
    reason."""
    if stops(study) is None:
        return None
    runs = study.ok
    rows = []
    for family in study.families:
        for dim in study.dims:
            at = runs[(runs["family"] == family) & (runs["latent_dim"] == dim)]
            if at.empty:
                continue
            reasons = at["stop_reason"].fillna("unknown").value_counts()
            rows.append(
                {
                    "family": family,
                    "latent_dim": dim,
                    "runs": len(at),
                    "stopped_by": ", ".join(f"{n} {r.replace('_', ' ')}" for r, n in reasons.items()),
                    "epochs_min": numeric_column(at, "epochs_completed").min(),
                    "epochs_max": numeric_column(at, "epochs_completed").max(),
                    "kept_min": numeric_column(at, "best_epoch").min(),
                    "kept_max": numeric_column(at, "best_epoch").max(),
                    "decays_max": numeric_column(at, "lr_decays").max(),
                    "drift_max": numeric_column(at, "drift_bpd").max(),
                }
            )
    return pd.DataFrame(rows)


def lead(study: Study, metric: str = "bpd_disc") -> tuple[int, float] | None:
    """(latent size, gap): the smallest lead of the best family's mean over the runner-up's, across latent
    sizes: the gap the verdict on the best family rests on; None with fewer than two families."""
    gaps = []
    for dim in study.dims:
        means = sorted(
            m for family in study.families if finite(m := study.stat(family, dim, metric).get("mean"))
        )
        if len(means) >= 2:
            gaps.append((dim, means[1] - means[0]))
    return min(gaps, key=lambda g: g[1]) if gaps else None


def estimate_trend(study: Study, family: str, dim: int) -> list[float | None] | None:
    """The discretized bits/dim of the estimate from K/16, K/4 and K samples (mean over ok seeds; None where
    the runs did not record it), or None without a value at K."""
    ok = study.ok
    runs = ok[(ok["family"] == family) & (ok["latent_dim"] == dim)]
    at_k = study.stat(family, dim, "bpd_disc")["mean"]
    dims = pd.to_numeric(runs.get("dims"), errors="coerce").dropna()
    if not finite(at_k) or dims.empty:
        return None
    ll_at_k = study.stat(family, dim, "ll_disc_nats")["mean"]
    lls = [study.stat(family, dim, f"ll_disc_nats{key}")["mean"] for key in K_FRACTIONS]
    return [at_k + nats_to_bpd(ll_at_k - ll, dims.iloc[0]) if finite(ll) else None for ll in lls] + [at_k]


# -- the protocol and the data: where this study falls short -------------------------------------------
def ok_values(study: Study, column: str) -> pd.Series:
    """A column of the ok runs as numbers, without the runs that lack it."""
    return (
        pd.to_numeric(study.ok[column], errors="coerce").dropna()
        if column in study.ok.columns
        else pd.Series(dtype=float)
    )


def fewer_samples(study: Study) -> int | None:
    """The importance samples K of the runs, when fewer than the protocol's PAPER_K."""
    ks = ok_values(study, "k")
    return int(ks.max()) if not ks.empty and ks.max() < PAPER_K else None


def validated(study: Study) -> bool:
    """Whether the runs held out a validation split (and kept the epoch best on it)."""
    held_out = ok_values(study, "validation")
    return not held_out.empty and held_out.max() > 0


def split_size(study: Study, key: str) -> int | None:
    """The dataset split's size (n_train, n_test) from the manifest, else from baselines.json."""
    in_baselines = "n_test_split" if key == "n_test" else key
    for record, name in ((study.manifest, key), (study.baselines, in_baselines)):
        if record and finite(record.get(name)):
            return int(record[name])
    return None


def scored_images(study: Study) -> int | None:
    """The most test images an ok run was scored on."""
    scored = ok_values(study, "n_test")
    return int(scored.max()) if not scored.empty else None


def other_archs(study: Study) -> list[str]:
    """The networks of the ok runs other than the seed post's SEED_ARCH."""
    archs = sorted(set(study.ok["arch"].dropna().astype(str))) if "arch" in study.ok.columns else []
    return [a for a in archs if a != SEED_ARCH]


def small_train(study: Study) -> int | None:
    """The training split's size, when below SMALL_TRAIN images."""
    n = split_size(study, "n_train")
    return n if n is not None and n < SMALL_TRAIN else None


# -- the settings chosen on the validation split -------------------------------------------------------
def tried_values(record: dict) -> dict[str, list[float]]:
    """Each chosen setting of a selection record: the values tried, in increasing order."""
    return {key: sorted({t[key] for t in record["tried"]}) for key in record["settings"]}


def grid_edges(record: dict) -> list[str]:
    """The chosen settings of a selection record that are the smallest or largest value tried (after the
    grid's extensions, if it had any)."""
    return select.at_edge(record["settings"], record["tried"])
