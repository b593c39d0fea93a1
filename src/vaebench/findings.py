"""The study's findings as plain text: sentences built by fixed rules from one results directory's tables.

Three lists, in the order of the page: `verdict` (what to use, right after the question), `limits`
(what not to trust in this run: each line only when it applies) and `findings` (the details). Each
rule reads the Study (summary means, tests.csv, run statuses, history, the references) and writes
what the numbers allow, never more. How sure a difference is comes from one rule, `judge`: with
stats.MIN_PAIRS_T paired seeds or more the Holm-corrected paired t-test; with fewer, the test-set
noise (stats.NOISE_SE standard errors of the difference); else the order of the means only, and
every finding says which in the same words. Which families a rule compares comes from the
catalog's properties (`scored_as`, `everyday_loss`, `distribution`, `real_line`, `discrete`) and
which way a measure is better from results.MEASURES, never from ids typed here. A finding is plain
text without markup: the HTML report escapes it and prints its title in bold; a README or a
terminal can print `str(finding)`.
"""

import math
from dataclasses import dataclass

import pandas as pd

from vaebench import catalog, stats
from vaebench.results import DIVERGED, MEASURES, METRIC_NAMES, OK, UNIFORM_BPD, Study, nats_to_bpd
from vaebench.utils import finite

SEED_QUOTE = (
    "The seed post says squared error “doesn't seem to work at all” next to BCE, which gives "
    "“a nicer latent space” and “much sharper reconstructions”."
)
PAPER_K = 5000  # Burda et al.'s protocol: importance samples per test image
SEED_ARCH = "conv"  # the seed post's network (16/32/128 channels); the mlp is a smaller, different model
RISING_SHARE = 0.01  # a learning curve still rises when its last epoch added at least this share of its gain
RISE_SE = 2  # the estimate still rises when it grew from K/4 to K by more than this many standard errors
NAMED_RUNS = 4  # up to this many such runs are named one by one; more are summed up per family
SETTING_NAMES = {"lr": "learning rate", "sigma": "sigma", "laplace_b": "b"}  # a chosen setting, in words
SMALL_TRAIN = 10_000  # fewer training images than this is a small training set (MNIST has 60,000)
SUPPORTED, CONTRADICTED, UNDECIDED = "supported", "contradicted", "undecided"


@dataclass(frozen=True)
class Finding:
    """One finding. `key` names the rule that wrote it; `title` is its lead (the report prints it in bold),
    empty where there is none; `title + " " + text` is the whole finding. A claim of the seed post has
    its `verdict`: SUPPORTED, CONTRADICTED or UNDECIDED."""

    key: str
    title: str
    text: str
    verdict: str = ""

    def __str__(self) -> str:
        return f"{self.title} {self.text}" if self.title else self.text


# -- numbers and names in words ------------------------------------------------------------------------


def fmt(x, digits: int = 3) -> str:
    return f"{x:.{digits}f}" if finite(x) else "n/a"


def fmt_p(p) -> str:
    if not finite(p):
        return "not tested"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def holm_p(p) -> str:
    """'Holm p = 0.024' or 'Holm p < 0.001'."""
    text = fmt_p(p)
    return f"Holm p {text}" if text.startswith("<") else f"Holm p = {text}"


def fmt_value(metric: str, x) -> str:
    """A measure's value as the tables show it: bits/dim, accuracies and coverages (fractions) to 3 decimals,
    epochs as a whole number where it is one, other numbers to 3 significant digits."""
    if not finite(x):
        return "n/a"
    if metric.startswith(("bpd_", "coverage")) or "acc" in metric:
        return f"{x:.3f}"
    if float(x).is_integer():
        return str(int(x))
    return f"{x:.3g}" if abs(x) < 1000 else f"{x:.0f}"


def label(study: Study, family: str) -> str:
    return study.labels.get(family, catalog.label(family))


def labels(study: Study, families, sep: str = ", ") -> str:
    return sep.join(label(study, f) for f in families)


def seeds(n: int) -> str:
    return stats.count(n, "seed")


def families(n: int) -> str:
    return f"{n} {'family' if n == 1 else 'families'}"


def value(study: Study, family: str, dim: int, metric: str = "bpd_disc") -> str:
    """'1.329 ± 0.012 bits/dim (3 seeds)': the mean over ok seeds with the half-width of its 95% interval, or
    with fewer seeds its test-set standard error: '1.329 bits/dim (test-set SE 0.006, 1 seed)'."""
    s = study.stat(family, dim, metric)
    if finite(s["high"]):
        return f"{fmt(s['mean'])} ± {fmt(s['high'] - s['mean'])} bits/dim ({seeds(s['n'])})"
    se = f"test-set SE {fmt(s['se'])}, " if finite(s["se"]) else ""
    return f"{fmt(s['mean'])} bits/dim ({se}{seeds(s['n'])})"


def ranking(study: Study, metric: str = "bpd_disc") -> pd.DataFrame:
    """stats.ranking of the study: per latent dimension the families by mean, with their ties. The one place
    a column's winner is decided: the headline's bold cell and its ties, the winner findings, the ranking."""
    return stats.ranking(study.metrics, study.tests, metric, study.families)


def not_comparable(study: Study) -> list[str]:
    """Families with a run trained on v/255 without dequantization: their likelihoods are not comparable."""
    marked = []
    for family in study.families:
        runs = study.metrics[study.metrics["family"] == family]
        flags = [runs[c] for c in ("dequantize", "ll_comparable") if c in runs.columns]
        if any((f.astype(str).str.lower() == "false").any() for f in flags):
            marked.append(family)
    return marked


def has_measure(study: Study, metric: str) -> bool:
    return metric in study.ok.columns and pd.to_numeric(study.ok[metric], errors="coerce").notna().any()


# -- the one evidence rule ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Evidence:
    """How sure the difference a - b of two means is (`judge`): `separated` when the rule says it is real."""

    diff: float
    separated: bool
    words: str

    def better(self, metric: str) -> int:
        """+1 when a is better on `metric` by the rule, -1 when b is, 0 when the rule cannot tell."""
        if not self.separated or not finite(self.diff) or self.diff == 0:
            return 0
        lower = MEASURES[metric].lower_is_better if metric in MEASURES else True
        return 1 if (self.diff < 0) == lower else -1


def judge(
    diff: float, n: int, p_holm: float = math.nan, se_a: float = math.nan, se_b: float = math.nan
) -> Evidence:
    """The evidence rule every finding uses, for a difference of means over n seeds.

    With MIN_PAIRS_T seeds or more and a test: the Holm-corrected t-test decides. With fewer, a difference
    larger than NOISE_SE standard errors of the difference over test images counts ("beyond the test-set
    noise"); without standard errors, or within them, it is the order of the means only.
    """
    if not finite(diff):
        return Evidence(math.nan, False, "no value to compare")
    if n >= stats.MIN_PAIRS_T and finite(p_holm):
        significant = p_holm < stats.ALPHA
        return Evidence(
            diff,
            significant,
            f"{'significant' if significant else 'not significant'} across {n} seeds ({holm_p(p_holm)})",
        )
    beyond, ratio = stats.beyond_noise(diff, se_a, se_b)
    if beyond:
        return Evidence(diff, True, f"larger than {stats.NOISE_SE} test-set standard errors, {seeds(n)}")
    if finite(ratio):
        return Evidence(diff, False, f"order of means only: {ratio:.1f} test-set standard errors, {seeds(n)}")
    return Evidence(diff, False, f"order of means only, {seeds(n)}")


def evidence(study: Study, metric: str, dim: int, a: str, b: str) -> Evidence:
    """`judge` on two families' means at one latent dimension: their paired test from tests.csv, else the
    test-set standard errors of their means."""
    sa, sb = study.stat(a, dim, metric), study.stat(b, dim, metric)
    if not (finite(sa["mean"]) and finite(sb["mean"])):
        return judge(math.nan, 0)
    row = study.test(metric, dim, a, b)
    if row is not None and finite(row["t_p_holm"]):
        return judge(float(row["diff_mean"]), int(row["n_pairs"]), float(row["t_p_holm"]))
    n = int(row["n_pairs"]) if row is not None else min(sa["n"], sb["n"])
    return judge(sa["mean"] - sb["mean"], n, se_a=sa["se"], se_b=sb["se"])


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
    p = stats.holm([stats.one_sample_p(seed_values(study, f, dim, metric), ref) for f in families])
    out = {}
    for family, p_holm in zip(families, p, strict=True):
        s = study.stat(family, dim, metric)
        out[family] = judge(s["mean"] - ref, s["n"], p_holm, s["se"], ref_se)
    return out


def grouped(study: Study, items: list[tuple[str, str, Evidence]]) -> str:
    """'A 1.2, B 1.3 (order of means only, 1 seed)': families with their values, the evidence words once per
    group of equal words."""
    groups: dict[str, list[str]] = {}
    for family, shown, ev in items:
        groups.setdefault(ev.words, []).append(f"{label(study, family)} {shown}")
    return "; ".join(f"{', '.join(names)} ({words})" for words, names in groups.items())


# -- what to use: the verdict, right after the question -----------------------------------------------
def best_by(study: Study, metric: str, dim: int) -> list[str]:
    """The families with a value of `metric` at `dim`, best mean first."""
    means = {f: m for f in study.families if finite(m := study.stat(f, dim, metric)["mean"])}
    lower = MEASURES[metric].lower_is_better
    return sorted(means, key=lambda f: means[f] if lower else -means[f])


def lead(study: Study, metric: str, dim: int) -> str:
    """'logit-normal 1.898 bits/dim, ahead of gaussian by 0.052 (larger than 10 test-set standard errors, 1
    seed)': the best family at one latent size and how sure its lead is over the runner-up."""
    order = best_by(study, metric, dim)
    if not order:
        return ""
    best = order[0]
    unit = " bits/dim" if metric.startswith("bpd_") else ""
    text = f"{label(study, best)} {fmt_value(metric, study.stat(best, dim, metric)['mean'])}{unit}"
    if len(order) == 1:
        return text + " (the only family with a value)"
    ev = evidence(study, metric, dim, best, order[1])
    return text + f", ahead of {label(study, order[1])} by {fmt_value(metric, abs(ev.diff))} ({ev.words})"


def verdict_likelihood(study: Study) -> list[Finding]:
    parts = [f"at z = {dim}, {text}" for dim in study.dims if (text := lead(study, "bpd_disc", dim))]
    if not parts:
        return [Finding("use_likelihood", "Best likelihood:", "no ok run has a discretized bits/dim yet.")]
    return [
        Finding(
            "use_likelihood",
            "Best likelihood (discretized bits/dim, lower is better):",
            "; ".join(parts) + ".",
        )
    ]


def verdict_quality(study: Study) -> list[Finding]:
    """The best-looking samples and reconstructions by the Fréchet distances, else by sharpness."""
    measures = [m for m in ("fd_samples_mean", "fd_recon_mean") if has_measure(study, m)]
    measures = measures or [m for m in ("sharpness_mean",) if has_measure(study, m)]
    if not measures:
        return [
            Finding(
                "use_quality",
                "Best-looking:",
                "not measured in these runs (no Fréchet distance or "
                "sharpness in metrics.json), so likelihood is all "
                "this page can rank by.",
            )
        ]
    what = {
        "fd_samples_mean": "samples (Fréchet distance to the test images, mean image, lower is better)",
        "fd_recon_mean": "reconstructions (the same distance)",
        "sharpness_mean": "reconstructions (sharpness, mean image, higher is sharper)",
    }
    parts = []
    for metric in measures:
        per_dim = [f"at z = {dim}, {text}" for dim in study.dims if (text := lead(study, metric, dim))]
        parts.append(f"{what[metric]}: " + "; ".join(per_dim))
    text = ". ".join(p[:1].upper() + p[1:] for p in parts) + "."
    differ = [
        dim
        for dim in study.dims
        if best_by(study, "bpd_disc", dim)[:1]
        and best_by(study, measures[0], dim)[:1]
        and best_by(study, "bpd_disc", dim)[0] != best_by(study, measures[0], dim)[0]
    ]
    if differ:
        text += (
            f" At z = {', '.join(map(str, differ))} the best likelihood and the best-looking "
            "pictures come from different families: see the findings."
        )
    return [Finding("use_quality", "Best-looking:", text)]


def verdict_avoid(study: Study) -> list[Finding]:
    """What not to use: a density worse than uniform noise, a loss that is no density (catalog `scored_as`),
    families that no latent-free baseline loses to."""
    parts = []
    uniform = {
        f: [
            (d, m) for d in study.dims if finite(m := study.stat(f, d, "bpd_deq")["mean"]) and m > UNIFORM_BPD
        ]
        for f in study.families
    }
    if any(uniform.values()):
        named = ", ".join(
            f"{label(study, f)} ({', '.join(f'{fmt(m)} at z = {d}' for d, m in at)})"
            for f, at in uniform.items()
            if at
        )
        parts.append(
            f"as a density of the images, {named} dequantized bits/dim: worse than uniform noise "
            f"({UNIFORM_BPD:g})"
        )
    have = set(study.ok["family"])
    for entry in (e for e in catalog.CATALOG if e.scored_as and e.id in have):
        loss = entry.everyday_loss or label(study, entry.id)
        parts.append(
            f"{loss} as a likelihood: it is no density on [0, 1], so its number here reads the same "
            f"decoder outputs as a {label(study, entry.scored_as)}; train that family instead if "
            "you need a likelihood"
        )
    histogram = study.baseline("histogram")
    if histogram is not None:
        worse = {
            dim: [
                f for f, ev in against_references(study, dim, histogram).items() if ev.better("bpd_disc") < 0
            ]
            for dim in study.dims
        }
        same = len(set(map(tuple, worse.values()))) == 1 and len(study.dims) > 1
        for dim, families_ in (
            [("every latent size", worse[study.dims[0]])]
            if same
            else [(f"z = {d}", w) for d, w in worse.items()]
        ):
            if families_:
                parts.append(
                    f"at {dim}, {labels(study, families_)}: worse than a per-pixel histogram "
                    f"without a latent ({fmt(histogram['bpd_disc'])} bits/dim)"
                )
    if not parts:
        return []
    return [Finding("use_avoid", "Avoid:", "; ".join(parts) + ".")]


def verdict_latent(study: Study) -> list[Finding]:
    """What changes with the latent size: the best likelihood and the best picture quality, smallest to
    largest latent dimension."""
    if len(study.dims) < 2:
        return []
    low, high = study.dims[0], study.dims[-1]
    lines = []
    for metric in ("bpd_disc", "fd_samples_mean"):
        first, last = best_by(study, metric, low)[:1], best_by(study, metric, high)[:1]
        if not first or not last:
            continue
        a, b = (study.stat(f, d, metric)["mean"] for f, d in ((first[0], low), (last[0], high)))
        who = (
            f"{label(study, first[0])} stays best"
            if first == last
            else f"the best family changes from {label(study, first[0])} to {label(study, last[0])}"
        )
        lines.append(
            f"{MEASURES[metric].name}: {who}, {fmt_value(metric, a)} at z = {low} to "
            f"{fmt_value(metric, b)} at z = {high}"
        )
    if not lines:
        return []
    return [Finding("use_latent", f"From z = {low} to z = {high}:", "; ".join(lines) + ".")]


def verdict(study: Study) -> list[Finding]:
    """The "What to use" section: best likelihood, best-looking, what to avoid, what latent size changes."""
    return verdict_likelihood(study) + verdict_quality(study) + verdict_avoid(study) + verdict_latent(study)


# -- what not to trust: the limits of this run ---------------------------------------------------------
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


def column_values(study: Study, column: str) -> pd.Series:
    return (
        pd.to_numeric(study.ok[column], errors="coerce").dropna()
        if column in study.ok.columns
        else pd.Series(dtype=float)
    )


def limit_epochs(study: Study) -> list[Finding]:
    rising = still_rising(study)
    if rising.empty:
        return []
    top = rising.sort_values("share", ascending=False).iloc[0]
    epochs = ", ".join(map(str, sorted(set(rising["epochs"]))))
    runs, counts = study.ok.groupby("family").size(), rising.groupby("family").size()
    per_family = ", ".join(
        f"{label(study, family)} {counts[family]} of {runs[family]}"
        for family in study.families
        if family in counts
    )
    text = (
        f"the test ELBO of {len(rising)} of {len(study.ok)} ok runs still rose in the last epoch "
        f"(of {epochs}): that epoch added up to {100 * top['share']:.0f}% of a run's total gain "
        f"({label(study, top['family'])} z = {top['latent_dim']} seed {top['seed']}; median "
        f"{100 * rising['share'].median():.0f}%). Still rising, per family: {per_family}. Longer training "
        "would change these numbers, and not for every family alike."
    )
    return [Finding("limit_epochs", "Training had not converged:", text)]


def limit_k(study: Study) -> list[Finding]:
    ks = column_values(study, "k")
    if ks.empty or ks.max() >= PAPER_K:
        return []
    text = (
        f"K = {int(ks.max())} importance samples per test image, not the protocol's {PAPER_K}: the "
        "estimate is a lower bound on the log-likelihood that tightens as K grows, so every bits/dim "
        "here is too high, by more for families whose posterior fits worse."
    )
    return [Finding("limit_k", "Few importance samples:", text)]


def limit_convergence(study: Study) -> list[Finding]:
    """Runs whose estimate still rose from K/4 to K by more than RISE_SE standard errors."""
    flagged = []
    for _, run in study.ok.iterrows():
        for kind in ("disc", "deq"):
            rise, se = run.get(f"ll_{kind}_rise_nats"), run.get(f"ll_{kind}_rise_se")
            if finite(rise) and finite(se) and rise > RISE_SE * se:
                flagged.append((run, kind, rise, se))
    if not flagged:
        return []
    n_runs = len({r["run_dir"] for r, *_ in flagged})
    if n_runs <= NAMED_RUNS:
        named = "; ".join(
            f"{label(study, r['family'])} z = {r['latent_dim']} seed {r['seed']} "
            f"({'discretized' if kind == 'disc' else 'dequantized'}: "
            f"+{fmt(nats_to_bpd(rise, r['dims']), 4)} bits/dim, {rise / se:.1f} standard errors)"
            for r, kind, rise, se in flagged
        )
    else:  # one clause per family: its flagged runs and the largest rise among them
        rows = pd.DataFrame(
            [
                (r["family"], r["run_dir"], nats_to_bpd(rise, r["dims"]), rise / se)
                for r, _, rise, se in flagged
            ],
            columns=["family", "run", "bpd", "se"],
        )
        order = {family: i for i, family in enumerate(study.families)}
        rows = rows.sort_values("family", key=lambda f: f.map(order), kind="stable")
        runs = study.ok.groupby("family").size()
        clauses = []
        for family, mine in rows.groupby("family", sort=False):
            top = mine.loc[mine["bpd"].idxmax()]
            clauses.append(
                f"{label(study, family)} {mine['run'].nunique()} of {runs[family]}, up to "
                f"+{fmt(top['bpd'], 4)} bits/dim ({top['se']:.1f} standard errors)"
            )
        named = "per family, " + "; ".join(clauses)
    text = (
        f"from K/4 to K samples the estimate still rose by more than {RISE_SE} standard errors in "
        f"{stats.count(n_runs, 'run')}: {named}. A larger K would lower these bits/dim further (see the "
        "convergence table)."
    )
    return [Finding("limit_convergence", "The likelihood estimate has not converged:", text)]


def split_size(study: Study, key: str) -> int | None:
    """The dataset split's size (n_train, n_test) from the manifest, else from baselines.json."""
    in_baselines = "n_test_split" if key == "n_test" else key
    for record, name in ((study.manifest, key), (study.baselines, in_baselines)):
        if record and finite(record.get(name)):
            return int(record[name])
    return None


def limit_subset(study: Study) -> list[Finding]:
    scored, split = column_values(study, "n_test"), split_size(study, "n_test")
    if scored.empty or split is None or scored.max() >= split:
        return []
    text = (
        f"scored on the first {int(scored.max()):,} of the {split:,} test images: the standard errors "
        "shown are those of this subset."
    )
    return [Finding("limit_subset", "A subset of the test split:", text)]


def limit_seeds(study: Study) -> list[Finding]:
    n = study.n_seeds
    if n == 0 or n >= stats.MIN_PAIRS_T:
        return []
    text = (
        f"{seeds(n)} per family and latent size: the variation from one training run to the next is not "
        f"measured, so a difference counts only beyond {stats.NOISE_SE} test-set standard errors, and "
        f"even then a new seed could reorder close families (the tests need {stats.MIN_PAIRS_T} seeds)."
    )
    return [Finding("limit_seeds", "One training run each:" if n == 1 else "Too few seeds for tests:", text)]


def tried_values(record: dict) -> dict[str, list[float]]:
    """Each chosen setting of a selection record: the values tried, in increasing order."""
    return {key: sorted({t[key] for t in record["tried"]}) for key in record["settings"]}


def at_grid_edge(record: dict) -> list[str]:
    """The chosen settings of a selection record that are the smallest or largest value tried."""
    return [
        f"{SETTING_NAMES.get(key, key)} {record['settings'][key]:g}"
        for key, tried in tried_values(record).items()
        if len(tried) > 1 and record["settings"][key] in (tried[0], tried[-1])
    ]


def limit_selection(study: Study) -> list[Finding]:
    """How the training settings were chosen: not at all, or on runs shorter than the study's, or at the edge
    of a grid; nothing when they were chosen on full-length runs inside their grids."""
    if not study.selection:
        lrs = sorted(set(column_values(study, "lr")))
        if len(study.families) < 2 or not lrs:
            return []
        held_out = column_values(study, "validation")
        validated = not held_out.empty and held_out.max() > 0
        text = (
            f"every family trained with the learning rate {', '.join(f'{lr:g}' for lr in lrs)} and the fixed "
            "scales as set: a family that needs another learning rate or scale is at a disadvantage"
            + (
                " (only the epoch kept was chosen, on the validation split)."
                if validated
                else "; with no validation split, the epoch scored is the last, not the best."
            )
        )
        return [Finding("limit_selection", "Nothing was tuned:", text)]
    first = next(iter(study.selection.values()))
    epochs = sorted(set(column_values(study, "epochs").astype(int)))
    edges = {f: at_grid_edge(r) for f, r in study.selection.items()}
    edges = {f: e for f, e in edges.items() if e}
    short = bool(epochs) and first["epochs"] < max(epochs)
    if not (short or edges):
        return []
    text = f"each family's settings were chosen on {first['epochs']}-epoch runs (seed {first['seed']}, " + (
        f"z = {first['latent_dim']}), shorter than the study's ({', '.join(map(str, epochs))} epochs): a "
        "short horizon favours what learns fast, larger learning rates among them."
        if short
        else f"z = {first['latent_dim']}), used at every latent size."
    )
    if edges:
        named = "; ".join(f"{label(study, f)} ({', '.join(e)})" for f, e in edges.items())
        text += f" At the edge of its grid, so the best value may lie beyond it: {named}."
    title = "Settings chosen on short runs:" if short else "Settings at the edge of their grid:"
    return [Finding("limit_selection", title, text)]


def limit_arch(study: Study) -> list[Finding]:
    archs = sorted(set(study.ok["arch"].dropna().astype(str))) if "arch" in study.ok.columns else []
    other = [a for a in archs if a != SEED_ARCH]
    if not other:
        return []
    text = (
        f"the {', '.join(other)} network, not the seed post's {SEED_ARCH} decoder: families can rank "
        "differently with another decoder."
    )
    return [Finding("limit_arch", "Another architecture:", text)]


def limit_train_size(study: Study) -> list[Finding]:
    n = split_size(study, "n_train")
    if n is None or n >= SMALL_TRAIN:
        return []
    dataset = ", ".join(sorted(set(study.metrics["dataset"].astype(str))))
    text = (
        f"{n:,} training images ({dataset}): models this size can overfit them, and a family that needs "
        "more data to fit its scale is at a disadvantage."
    )
    return [Finding("limit_train_size", "A small training set:", text)]


def limits(study: Study) -> list[Finding]:
    """The "Limits of this run" box: each line only where it applies."""
    return (
        limit_epochs(study)
        + limit_selection(study)
        + limit_k(study)
        + limit_convergence(study)
        + limit_subset(study)
        + limit_seeds(study)
        + limit_arch(study)
        + limit_train_size(study)
    )


# -- the findings, in the order of the page -------------------------------------------------------------
def sample_size(study: Study) -> list[Finding]:
    n = study.n_seeds
    if n < stats.MIN_PAIRS_T:
        text = (
            f"At most {seeds(n)} per family and latent dimension: no test can tell a real difference "
            f"from seed-to-seed variation (the paired t-test needs {stats.MIN_PAIRS_T} seeds), so a "
            f"difference below counts only when it is larger than {stats.NOISE_SE} test-set standard "
            "errors of the difference (the noise of the test images, the only noise one seed measures); "
            "otherwise it is the order of the means only."
        )
        return [Finding("sample_size", "Too few seeds for statistics.", text)]
    if n < stats.MIN_PAIRS_WILCOXON:
        text = (
            f"Up to {n} seeds per family and latent dimension: paired t-tests only (the Wilcoxon "
            f"signed-rank test cannot reach p < {stats.ALPHA} before {stats.MIN_PAIRS_WILCOXON} "
            "seeds), and their normality assumption cannot be checked with so few differences."
        )
        return [Finding("sample_size", "", text)]
    text = (
        f"Up to {n} seeds per family and latent dimension: paired t-tests and Wilcoxon signed-rank "
        "tests, Holm-corrected within each latent dimension."
    )
    return [Finding("sample_size", "", text)]


def statuses(study: Study) -> list[Finding]:
    metrics = study.metrics
    bad = metrics[metrics["status"] != OK]
    if bad.empty:
        n = len(metrics)
        text = (
            "The one run finished and was evaluated."
            if n == 1
            else f"{'Both' if n == 2 else f'All {n}'} runs finished and were evaluated."
        )
        return [Finding("status", "", text)]
    listed = [
        f"{label(study, r['family'])} z = {r['latent_dim']} seed {r['seed']} ({r['status']}"
        + (f": {r['note']}" if r["note"] and r["status"] != DIVERGED else "")
        + ")"
        for _, r in bad.head(12).iterrows()
    ]
    more = f" and {len(bad) - 12} more (see every run below)" if len(bad) > 12 else ""
    return [
        Finding(
            "status",
            f"{len(bad)} of {len(metrics)} runs are not in the means and tests,",
            f"but counted in the table: {'; '.join(listed)}{more}.",
        )
    ]


def winner_at(study: Study, order: list[str], dim: int, metric: str) -> str:
    """One latent dimension of the winners finding: the best, the runner-up, and what the evidence says."""
    best = order[0]
    text = f"at z = {dim}, {label(study, best)} {value(study, best, dim, metric)}"
    if len(order) == 1:
        return text + ", the only family with a value"
    judged = {f: evidence(study, metric, dim, best, f) for f in order[1:]}
    wins = [(f, f"+{fmt(-ev.diff)}", ev) for f, ev in judged.items() if ev.better(metric) > 0]
    ties = [(f, f"+{fmt(-ev.diff)}", ev) for f, ev in judged.items() if not ev.separated]
    losses = [f for f, ev in judged.items() if ev.better(metric) < 0]
    if ties:
        text += f"; not separable from {grouped(study, ties)}"
    if wins:
        text += (
            f"; ahead of {'every other family' if len(wins) == len(order) - 1 else families(len(wins))} "
            f"({'; '.join(sorted({ev.words for _, _, ev in wins}))})"
        )
    if losses:
        text += (
            f"; on the seeds both have, {labels(study, losses)} is better (its mean is pulled up by "
            "seeds the winner lacks)"
        )
    return text


def winners(study: Study, metric: str = "bpd_disc") -> list[Finding]:
    """Per latent dimension, merged into one paragraph: the family with the lowest mean and how sure its lead
    is over each other family (`evidence`)."""
    ranks, parts = ranking(study, metric), []
    for dim in study.dims:
        order = list(ranks.loc[ranks["latent_dim"] == dim, "family"])
        parts.append(
            winner_at(study, order, dim, metric)
            if order
            else f"at z = {dim} no ok run has a {METRIC_NAMES[metric]} yet"
        )
    if not parts:
        return []
    return [Finding("winner", f"Lowest {METRIC_NAMES[metric]}:", "; ".join(parts) + ".")]


def baselines(study: Study) -> list[Finding]:
    """Which families beat the per-pixel histogram (no latent) at each latent size, and the two masses."""
    histogram, masses = study.baseline("histogram"), study.baseline("two_masses")
    if histogram is None:
        return []
    parts = []
    for dim in study.dims:
        judged = against_references(study, dim, histogram)
        if not judged:
            continue
        beat = [
            (f, fmt(study.stat(f, dim, "bpd_disc")["mean"]), ev)
            for f, ev in judged.items()
            if ev.better("bpd_disc") > 0
        ]
        close = [f for f, ev in judged.items() if not ev.separated]
        part = f"at z = {dim}, {len(beat)} of {len(judged)} families beat it"
        part += f": {grouped(study, beat)}" if beat else ""
        if close:
            part += f"; not separable from it: {labels(study, close)}"
        if masses is not None:
            lost = [
                f for f, ev in against_references(study, dim, masses).items() if ev.better("bpd_disc") < 0
            ]
            if lost:
                part += (
                    f"; even the two-mass model ({fmt(masses['bpd_disc'])}) beats "
                    f"{families(len(lost))}: {labels(study, lost)}"
                )
        parts.append(part)
    if not parts:
        return []
    text = (
        f"a 256-bin histogram per pixel fitted on the training split, with no latent at all, scores "
        f"{fmt(histogram['bpd_disc'])} bits/dim on the same test images: " + "; ".join(parts) + "."
    )
    return [Finding("baselines", "Against a model without a latent:", text)]


def edge_bins(study: Study) -> list[Finding]:
    """Where the two likelihood columns disagree on the winner, or lie far apart, say why: one paragraph."""
    entries = {f: catalog.BY_ID[f] for f in study.families if f in catalog.BY_ID}
    real = [f for f, e in entries.items() if e.real_line and not e.discrete]
    discrete = [f for f, e in entries.items() if e.discrete]
    parts = []
    for dim in study.dims:
        disc, deq = (
            {f: v for f in study.families if finite(v := study.stat(f, dim, m)["mean"])}
            for m in ("bpd_disc", "bpd_deq")
        )
        if not disc or not deq:
            continue
        best_disc, best_deq = min(disc, key=disc.get), min(deq, key=deq.get)
        gaps = {f: deq[f] - disc[f] for f in disc if f in deq}
        widest = max(gaps, key=gaps.get)
        if best_disc == best_deq and gaps[widest] < 1:
            continue
        ranks = (
            f"both columns rank {label(study, best_disc)} first"
            if best_disc == best_deq
            else f"the discretized column ranks {label(study, best_disc)} first, the dequantized column "
            f"{label(study, best_deq)}"
        )
        parts.append(
            f"at z = {dim}, {ranks}; the widest gap is {label(study, widest)}'s "
            f"({fmt(deq[widest])} vs {fmt(disc[widest])} bits/dim)"
        )
    if not parts:
        return []
    if real:
        why = (
            f"A family on the whole real line ({labels(study, real, '; ')}) gives the edge bins v = 0 and "
            "v = 255 all its mass below 0 and above 1, which the discretized likelihood counts and the "
            "density of dequantized values in (0, 1) does not; on images with much black or white "
            "background that mass is a large share of the score. Families on (0, 1) have no such mass, "
            "so read the two columns together."
        )
    else:
        why = (
            "No family here is on the whole real line, so the gap is not edge-bin mass: the dequantized "
            "bits/dim is an upper bound on the discretized one, and the two can rank families "
            "differently; read the two columns together."
        )
    if discrete:
        why += (
            f" For {labels(study, discrete, '; ')}, scored on the 8-bit bins in both columns, the two "
            "columns agree by construction."
        )
    return [Finding("edge_bin", "The two likelihood columns:", "; ".join(parts) + ". " + why)]


def scored_as(study: Study) -> list[Finding]:
    """Each family scored through another's density (BCE read as a continuous Bernoulli) against that other
    family trained on its own likelihood: the same density, only the training objective differs."""
    have, items = set(study.ok["family"]), []
    for entry in (e for e in catalog.CATALOG if e.scored_as):
        a, b = entry.id, entry.scored_as
        name_a, name_b = label(study, a), label(study, b)
        loss = entry.everyday_loss or f"{name_a}'s loss"
        title = f"{loss[:1].upper()}{loss[1:]} read as {name_b} vs {name_b} trained on its own likelihood"
        if not {a, b} <= have:
            missing = " or ".join(f for f in (a, b) if f not in have)
            text = f"{title}: not compared here, the study lacks ok runs of {missing}."
            items.append(Finding("scored_as", "", text))
            continue
        parts = []
        for dim in study.dims:
            ev = evidence(study, "bpd_disc", dim, a, b)
            if not finite(ev.diff):
                continue
            mean_a, mean_b = (study.stat(f, dim, "bpd_disc")["mean"] for f in (a, b))
            better = name_b if ev.diff > 0 else name_a
            parts.append(
                f"at z = {dim}, {name_a} {fmt(mean_a)} against {name_b} {fmt(mean_b)}: "
                f"{better} is better by {fmt(abs(ev.diff))} bits/dim ({ev.words})"
            )
        if parts:
            text = (
                f"(both scored through the same {name_b} density of the decoder's outputs; only the "
                "training objective differs), discretized bits/dim: " + "; ".join(parts) + "."
            )
            items.append(Finding("scored_as", title, text))
    return items


def compare(study: Study, claimant: str, rivals: list[str], metrics) -> tuple[list, list, list]:
    """Every (metric, dim, rival, Evidence) of claimant against each rival: (wins, losses, undecided)."""
    wins, losses, open_ = [], [], []
    for metric in (m for m in metrics if has_measure(study, m)):
        for dim in study.dims:
            for rival in rivals:
                ev = evidence(study, metric, dim, claimant, rival)
                if finite(ev.diff):
                    side = ev.better(metric)
                    (wins if side > 0 else losses if side < 0 else open_).append((metric, dim, rival, ev))
    return wins, losses, open_


def claim_verdict(wins: list, losses: list, open_: list) -> str:
    """SUPPORTED when every comparison made is a win by the evidence rule, CONTRADICTED when at least one is a
    loss by it, else UNDECIDED."""
    if losses:
        return CONTRADICTED
    return SUPPORTED if wins and not open_ else UNDECIDED


def describe(study: Study, claimant: str, outcomes: dict[str, list]) -> str:
    """Per measure one sentence; per latent dimension in it, the claimant's value, then the rivals it is
    better than, worse than and not separable from, with their values and the evidence words once a group."""
    keys = list(dict.fromkeys((m, d) for entries in outcomes.values() for m, d, _, _ in entries))
    sentences: dict[str, list[str]] = {}
    for metric, dim in keys:
        mine = fmt_value(metric, study.stat(claimant, dim, metric)["mean"])
        said = []
        for word, entries in outcomes.items():
            items = [
                (r, fmt_value(metric, study.stat(r, dim, metric)["mean"]), ev)
                for m, d, r, ev in entries
                if (m, d) == (metric, dim)
            ]
            if items:
                said.append(f"{word} {grouped(study, items)}")
        sentences.setdefault(metric, []).append(f"at z = {dim}, {mine}: " + "; ".join(said))
    return ". ".join(
        f"On {MEASURES[metric].name}, " + "; ".join(parts) for metric, parts in sentences.items()
    )


def claim(
    study: Study, key: str, quote: str, claimant: str | None, rivals: list[str], metrics, missing: str = ""
) -> Finding:
    """A claim of the seed post, "claimant is better than each rival on each metric", judged by `evidence`."""
    title = f"Seed claim “{quote}”:"
    have = set(study.ok["family"])
    present = [r for r in rivals if r in have and r != claimant]
    measured = [m for m in metrics if has_measure(study, m)]
    if claimant not in have or not present or not measured:
        lacking = [f for f in [claimant, *rivals] if f not in have]
        why = (
            f"the study lacks ok runs of {' and '.join(lacking)}"
            if lacking
            else f"{' and '.join(MEASURES[m].name for m in metrics)}: not measured in these runs"
        )
        return Finding(key, title + f" {UNDECIDED}.", f"Not testable here: {why}{missing}.", UNDECIDED)
    wins, losses, open_ = compare(study, claimant, present, measured)
    verdict = claim_verdict(wins, losses, open_)
    outcomes = {"better than": wins, "worse than": losses, "not separable from": open_}
    why = {
        SUPPORTED: "every comparison made favours it",
        CONTRADICTED: "at least one comparison goes against it",
        UNDECIDED: "no comparison goes against it, but not every one is decided",
    }[verdict]
    text = f"For {label(study, claimant)} {why}. " + describe(study, claimant, outcomes) + "."
    return Finding(key, f"{title} {verdict}.", text, verdict)


def claims(study: Study) -> list[Finding]:
    """The seed post's claims, each a testable statement with a verdict (catalog `everyday_loss` names BCE and
    squared error): BCE converges quicker than the other families; it gives a nicer latent space and sharper
    reconstructions than squared error; squared error does not work at all, on every measure."""
    bce = catalog.with_everyday_loss("binary cross-entropy")
    squared = catalog.with_everyday_loss("squared error")
    if bce is None or squared is None:
        return []
    others = [f for f in study.families if f != bce]
    items = [
        claim(study, "claim_converges", "BCE converges quicker", bce, others, ["epochs_to_95"]),
        claim(study, "claim_latent", "BCE gives a nicer latent space", bce, [squared], ["knn_acc"]),
        claim(
            study,
            "claim_sharper",
            "BCE gives much sharper reconstructions",
            bce,
            [squared],
            ["sharpness_mean", "fd_recon_mean"],
        ),
    ]
    return items + squared_error(study, bce, squared)


def squared_error(study: Study, bce: str, squared: str) -> list[Finding]:
    """ "Squared error doesn't work at all": the reference (BCE, or where the study lacks it the family BCE is
    scored as) better than squared error on every measure. Where squared error loses on likelihood, the same
    distribution with a learned scale says whether the scale or the shape is to blame."""
    have = set(study.ok["family"])
    reference = next((f for f in (bce, catalog.BY_ID[bce].scored_as) if f and f in have), bce)
    every = [m for m in MEASURES if not m.endswith("_median")]
    finding = claim(
        study, "claim_squared_error", "squared error doesn't work at all", reference, [squared], every
    )
    if squared not in have or reference not in have:
        return [finding]
    shape = catalog.BY_ID[squared].distribution
    learned_scale = [e.id for e in catalog.CATALOG if shape and e.distribution == shape and e.learned_scale]
    text, rescued, not_rescued = f"{SEED_QUOTE} {finding.text}", [], []
    for dim in study.dims:
        s, r = (study.stat(f, dim, "bpd_disc")["mean"] for f in (squared, reference))
        if finite(s) and finite(r) and s > r:  # the fixed scale loses on likelihood: does a learned one?
            for family in learned_scale:
                if finite(m := study.stat(family, dim, "bpd_disc")["mean"]):
                    shown = f"{label(study, family)} {fmt(m)} at z = {dim}"
                    (rescued if m <= r else not_rescued).append(shown)
    if rescued:
        text += (
            " Where it loses on likelihood, a learned scale does not ("
            + ", ".join(rescued)
            + f" bits/dim): the fixed scale, not the {shape} shape, is what costs likelihood there."
        )
    if not_rescued:
        text += (
            " Not every learned scale rescues it: " + ", ".join(not_rescued) + " bits/dim is still "
            f"worse than {label(study, reference)}."
        )
    diverged = int(((study.metrics["family"] == squared) & (study.metrics["status"] == DIVERGED)).sum())
    if diverged:
        text += f" {stats.count(diverged, f'{squared} run')} diverged."
    return [Finding(finding.key, finding.title, text, finding.verdict)]


def likelihood_vs_pictures(study: Study) -> list[Finding]:
    """Where likelihood and picture quality disagree: a family in the top third on likelihood and in the
    bottom half on the Fréchet distance of its samples, with its median image's score where it has one."""
    metric = "fd_samples_mean"
    if not has_measure(study, metric):
        return []
    parts, medians = [], False
    for dim in study.dims:
        by_ll, by_fd = best_by(study, "bpd_disc", dim), best_by(study, metric, dim)
        both = [f for f in by_ll if f in by_fd]
        if len(both) < 3:
            continue
        by_ll, by_fd = [f for f in by_ll if f in both], [f for f in by_fd if f in both]
        for family in by_ll[: max(1, len(both) // 3)]:
            if by_fd.index(family) < len(both) / 2:
                continue
            part = (
                f"at z = {dim}, {label(study, family)} is {by_ll.index(family) + 1} of {len(both)} on "
                f"likelihood but {by_fd.index(family) + 1} of {len(both)} on the "
                f"{MEASURES[metric].name} ({fmt_value(metric, study.stat(family, dim, metric)['mean'])})"
            )
            median = study.stat(family, dim, "fd_samples_median")["mean"]
            if finite(median):
                part += f", its median image {fmt_value(metric, median)}"
                medians = True
            parts.append(part)
    if not parts:
        return []
    why = (
        " Where a median image scores better, the mean of a broad per-pixel distribution is a flat grey "
        "that the median is not; the figures show the two side by side."
        if medians
        else ""
    )
    return [
        Finding(
            "likelihood_vs_pictures",
            "Likelihood and picture quality disagree:",
            "; ".join(parts) + "." + why + " A good likelihood does not make good-looking pictures, "
            "nor the other way round (Theis et al. 2016).",
        )
    ]


def calibration(study: Study) -> list[Finding]:
    rows = [(f, d, study.stat(f, d, "coverage90")["mean"]) for f in study.families for d in study.dims]
    rows = [r for r in rows if finite(r[2])]
    if not rows:
        return []
    text = (
        "the central 90% interval of p(x | z) at the posterior mean of z (0.90 is ideal; this is how "
        "well the decoder's distribution describes the reconstruction, not a predictive calibration) "
        "covers "
    )
    low, high = fmt(min(r[2] for r in rows)), fmt(max(r[2] for r in rows))
    if len({f for f, _, _ in rows}) == 1:
        text += f"{low} to {high} of the test sub-pixels for {label(study, rows[0][0])}, the one family here."
        return [Finding("calibration", "Reconstruction calibration:", text)]
    closest = min(rows, key=lambda r: abs(r[2] - 0.9))
    worst = max(rows, key=lambda r: abs(r[2] - 0.9))
    text += (
        f"between {low} and {high} of the test sub-pixels; closest to 0.90 is "
        f"{label(study, closest[0])} at z = {closest[1]} ({fmt(closest[2])}), furthest "
        f"{label(study, worst[0])} at z = {worst[1]} ({fmt(worst[2])})."
    )
    return [Finding("calibration", "Reconstruction calibration:", text)]


def comparability(study: Study) -> list[Finding]:
    marked = not_comparable(study)
    if not marked:
        return []
    text = (
        f"{labels(study, marked)} were trained without dequantization (x = v/255, clamped where the "
        "family needs the open interval), as the seed did; their likelihoods are not on the same footing "
        "as the others'."
    )
    return [Finding("comparability", "Not comparable (†):", text)]


def findings(study: Study) -> list[Finding]:
    """Every finding of the study, in the order of the page (the verdict and the limits have their own)."""
    return (
        sample_size(study)
        + statuses(study)
        + winners(study)
        + baselines(study)
        + edge_bins(study)
        + scored_as(study)
        + claims(study)
        + likelihood_vs_pictures(study)
        + calibration(study)
        + comparability(study)
    )
