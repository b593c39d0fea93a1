"""The study's findings as plain text: sentences built by fixed rules from one results directory's tables.

Each rule reads the Study (summary means, tests.csv, run statuses) and writes what the numbers
and tests allow, never more: a win no test supports is called the order of the means. Which
families a rule compares comes from the catalog's properties (`scored_as`, `everyday_loss`,
`distribution`, `real_line`, `discrete`), never from ids typed here. A finding is plain text
without markup: the HTML report escapes it and prints its title in bold; a README or a terminal
can print `str(finding)`.
"""

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from vaebench import catalog, stats
from vaebench.results import DIVERGED, METRIC_NAMES, OK, Study

SEED_QUOTE = ("The seed post says squared error “doesn't seem to work at all” next to BCE, which gives "
              "“a nicer latent space” and “much sharper reconstructions”.")


@dataclass(frozen=True)
class Finding:
    """One finding. `key` names the rule that wrote it; `title` is its lead (the report prints it in bold),
    empty where there is none; `title + " " + text` is the whole finding."""
    key: str
    title: str
    text: str

    def __str__(self) -> str:
        return f"{self.title} {self.text}" if self.title else self.text


# -- numbers and names in words ------------------------------------------------------------------------
def finite(x) -> bool:
    return isinstance(x, (int, float, np.number)) and not isinstance(x, bool) and math.isfinite(x)


def fmt(x, digits: int = 3) -> str:
    return f"{x:.{digits}f}" if finite(x) else "n/a"


def fmt_p(p) -> str:
    if not finite(p):
        return "not tested"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def p_holm(p) -> str:
    """'p_holm = 0.024' or 'p_holm < 0.001'."""
    text = fmt_p(p)
    return f"p_holm {text}" if text.startswith("<") else f"p_holm = {text}"


def label(study: Study, family: str) -> str:
    return study.labels.get(family, catalog.label(family))


def labels(study: Study, families, sep: str = ", ") -> str:
    return sep.join(label(study, f) for f in families)


def value(study: Study, family: str, dim: int, metric: str = "bpd_disc") -> str:
    """'1.329 ± 0.012 bits/dim (n = 3)': the mean over ok seeds with the half-width of its 95% interval."""
    s = study.stat(family, dim, metric)
    ci = f" ± {fmt(s['high'] - s['mean'])}" if finite(s["high"]) else ""
    return f"{fmt(s['mean'])}{ci} bits/dim (n = {s['n']})"


def evidence(row) -> str:
    """A test result in words: significant or not, with p, or why there was no test."""
    if row is None:
        return "no test: the two families share no ok seed"
    if not finite(row["t_p_holm"]):
        return f"not tested: {stats.count(int(row['n_pairs']), 'paired seed')}"
    verdict = "significant" if row["significant"] else "not significant"
    return f"{verdict}: paired t-test over {int(row['n_pairs'])} seeds, {p_holm(row['t_p_holm'])}"


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


# -- the rules, in the order of the page ----------------------------------------------------------------
def sample_size(study: Study) -> list[Finding]:
    ok = study.ok
    n = int(ok.groupby(["family", "latent_dim"]).size().max()) if not ok.empty else 0
    if n < stats.MIN_PAIRS_T:
        text = (f"At most {stats.count(n, 'ok seed')} per family and latent dimension: no test can tell a "
                "real difference from seed-to-seed variation (the paired t-test needs "
                f"{stats.MIN_PAIRS_T} seeds), so every comparison below is between means only.")
        return [Finding("sample_size", "Too few seeds for statistics.", text)]
    if n < stats.MIN_PAIRS_WILCOXON:
        text = (f"Up to {n} seeds per family and latent dimension: paired t-tests only (the Wilcoxon "
                f"signed-rank test cannot reach p < {stats.ALPHA} before {stats.MIN_PAIRS_WILCOXON} seeds), "
                "and their normality assumption cannot be checked with so few differences.")
        return [Finding("sample_size", "", text)]
    text = (f"Up to {n} seeds per family and latent dimension: paired t-tests and Wilcoxon signed-rank "
            "tests, Holm-corrected within each latent dimension.")
    return [Finding("sample_size", "", text)]


def statuses(study: Study) -> list[Finding]:
    metrics = study.metrics
    bad = metrics[metrics["status"] != OK]
    if bad.empty:
        n = len(metrics)
        text = ("The one run finished and was evaluated." if n == 1 else
                f"{'Both' if n == 2 else f'All {n}'} runs finished and were evaluated.")
        return [Finding("status", "", text)]
    listed = [f"{label(study, r['family'])} z = {r['latent_dim']} seed {r['seed']} ({r['status']}"
              + (f": {r['note']}" if r["note"] and r["status"] != DIVERGED else "") + ")"
              for _, r in bad.head(12).iterrows()]
    more = f" and {len(bad) - 12} more (see every run below)" if len(bad) > 12 else ""
    return [Finding("status", f"{len(bad)} of {len(metrics)} runs are not in the means and tests,",
                    f"but counted in the table: {'; '.join(listed)}{more}.")]


def winners(study: Study, metric: str = "bpd_disc") -> list[Finding]:
    """Per latent dimension: the family with the lowest mean, and what the tests say about its lead."""
    ranks, items = ranking(study, metric), []
    for dim in study.dims:
        order = list(ranks.loc[ranks["latent_dim"] == dim, "family"])
        if not order:
            items.append(Finding("winner", "", f"At latent dimension {dim} no ok run has a "
                                               f"{METRIC_NAMES[metric]} yet."))
            continue
        best = order[0]
        title = f"Latent dimension {dim}: {label(study, best)} has the lowest {METRIC_NAMES[metric]},"
        text = value(study, best, dim, metric)
        if len(order) == 1:
            items.append(Finding("winner", title, text + "; it is the only family with a value."))
            continue
        runner = order[1]
        mean = {f: study.stat(f, dim, metric)["mean"] for f in (best, runner)}
        text += (f"; next is {label(study, runner)} at {fmt(mean[runner])} "
                 f"(+{fmt(mean[runner] - mean[best])}).")
        tests = {f: study.test(metric, dim, best, f) for f in order[1:]}
        tested = {f: t for f, t in tests.items() if t is not None and finite(t["t_p_holm"])}
        wins = [f for f, t in tested.items() if t["significant"] and t["diff_mean"] < 0]
        ties = [f for f, t in tested.items() if not t["significant"]]
        losses = [f for f, t in tested.items() if t["significant"] and t["diff_mean"] > 0]
        untested = [f for f in order[1:] if f not in tested]
        if not tested:
            text += (" No test was possible (too few paired seeds), so this is the order of the means, "
                     "not a significant win.")
        elif len(wins) == len(order) - 1:
            bound = p_holm(max(t["t_p_holm"] for t in tested.values())).replace("=", "≤")
            text += (" The win is significant against every other family (paired t-test over seeds, "
                     f"Holm-corrected, {bound}).")
        else:
            if wins:
                families = "family" if len(wins) == 1 else "families"
                text += f" It is significantly better than {len(wins)} {families}"
                text += "." if not ties else ","
            if ties:
                named = ", ".join(f"{label(study, f)} ({p_holm(tests[f]['t_p_holm'])})" for f in ties)
                text += (" but" if wins else " It is") + f" not significantly better than {named}: they tie."
            if losses:
                text += (f" On the seeds both have, {labels(study, losses)} is significantly better (its "
                         "mean is pulled up by seeds the winner lacks).")
            if untested:
                text += f" Not tested against {labels(study, untested)} (too few paired seeds)."
        items.append(Finding("winner", title, text))
    return items


def edge_bins(study: Study) -> list[Finding]:
    """Where the two likelihood columns disagree on the winner, or lie far apart, say why."""
    entries = {f: catalog.BY_ID[f] for f in study.families if f in catalog.BY_ID}
    real = [f for f, e in entries.items() if e.real_line and not e.discrete]
    discrete = [f for f, e in entries.items() if e.discrete]
    if real:
        why = (f"A family on the whole real line ({labels(study, real, '; ')}) gives the edge bins v = 0 and "
               "v = 255 all its mass below 0 and above 1, which the discretized likelihood counts and the "
               "density of dequantized values in (0, 1) does not; on images with much black or white "
               "background that mass is a large share of the score. Families on (0, 1) have no such mass, "
               "so read the two columns together.")
    else:
        why = ("No family here is on the whole real line, so the gap is not edge-bin mass: the dequantized "
               "bits/dim is an upper bound on the discretized one, and the two can rank families "
               "differently; read the two columns together.")
    if discrete:
        why += (f" For {labels(study, discrete, '; ')}, scored on the 8-bit bins in both columns, the two "
                "columns agree by construction.")
    items = []
    for dim in study.dims:
        disc, deq = ({f: v for f in study.families if finite(v := study.stat(f, dim, m)["mean"])}
                     for m in ("bpd_disc", "bpd_deq"))
        if not disc or not deq:
            continue
        best_disc, best_deq = min(disc, key=disc.get), min(deq, key=deq.get)
        gaps = {f: deq[f] - disc[f] for f in disc if f in deq}
        widest = max(gaps, key=gaps.get)
        if best_disc == best_deq and gaps[widest] < 1:
            continue
        ranks = (f"both columns rank {label(study, best_disc)} first" if best_disc == best_deq else
                 f"the discretized column ranks {label(study, best_disc)} first, the dequantized column "
                 f"{label(study, best_deq)}")
        text = (f"Latent dimension {dim}: {ranks}. The widest gap between the two columns is "
                f"{label(study, widest)}'s ({fmt(deq[widest])} vs {fmt(disc[widest])} bits/dim). {why}")
        items.append(Finding("edge_bin", "", text))
    return items


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
            mean_a, mean_b = (study.stat(f, dim, "bpd_disc")["mean"] for f in (a, b))
            if not (finite(mean_a) and finite(mean_b)):
                continue
            better = name_b if mean_b < mean_a else name_a
            parts.append(f"at latent dimension {dim}, {name_a} {fmt(mean_a)} against {name_b} {fmt(mean_b)}: "
                         f"{better} is better by {fmt(abs(mean_a - mean_b))} bits/dim "
                         f"({evidence(study.test('bpd_disc', dim, a, b))})")
        if parts:
            text = (f"(both scored through the same {name_b} density of the decoder's outputs; only the "
                    "training objective differs), discretized bits/dim: " + "; ".join(parts) + ".")
            items.append(Finding("scored_as", title, text))
    return items


def squared_error(study: Study) -> list[Finding]:
    """The seed's claim: squared error fails next to binary cross-entropy (BCE). Judged per latent dimension
    on three means: likelihood, kNN accuracy, reconstruction MSE. The reference is BCE's family or, where the
    study lacks it, the family BCE is scored as; where squared error loses on likelihood, the same
    distribution with a learned scale says whether the scale or the shape is to blame."""
    squared = catalog.with_everyday_loss("squared error")
    bce = catalog.with_everyday_loss("binary cross-entropy")
    if squared is None or bce is None:
        return []
    have = set(study.ok["family"])
    candidates = [f for f in (bce, catalog.BY_ID[bce].scored_as) if f]
    reference = next((f for f in candidates if f in have), None)
    if squared not in have or reference is None:
        lacking = [squared] if squared not in have else []
        lacking += [" or ".join(candidates)] if reference is None else []
        text = (f"The seed's claim that squared error ({squared}) fails next to binary cross-entropy: not "
                f"testable here, the study lacks ok runs of {' and of '.join(lacking)}.")
        return [Finding("squared_error", "", text)]
    shape = catalog.BY_ID[squared].distribution
    learned_scale = [e.id for e in catalog.CATALOG if shape and e.distribution == shape and e.learned_scale]
    criteria = (("bpd_disc", "bits/dim", 1), ("knn_acc", "kNN accuracy", -1),
                ("recon_mse", "reconstruction MSE", 1))

    def mean(family: str, dim: int, metric: str) -> float:
        return study.stat(family, dim, metric)["mean"]

    parts, learned = [], []
    for dim in study.dims:
        worse, not_worse = [], []
        for metric, name, sign in criteria:
            s, r = mean(squared, dim, metric), mean(reference, dim, metric)
            if finite(s) and finite(r):
                (worse if sign * (s - r) > 0 else not_worse).append(f"{name} {fmt(s)} vs {fmt(r)}")
        if not worse and not not_worse:
            continue
        verdict = ("fails as the seed says" if not not_worse else
                   "does not fail as the seed says" if not worse else "fails only in part")
        parts.append(f"at latent dimension {dim} it {verdict} (worse: {', '.join(worse) or 'none'}"
                     + (f"; not worse: {', '.join(not_worse)}" if not_worse else "") + ")")
        s, r = mean(squared, dim, "bpd_disc"), mean(reference, dim, "bpd_disc")
        if finite(s) and finite(r) and s > r:  # the fixed scale loses on likelihood: does a learned one?
            learned += [(f, dim, m, m <= r) for f in learned_scale if finite(m := mean(f, dim, "bpd_disc"))]
    if not parts:
        return []
    text = (f"{SEED_QUOTE} Against {label(study, reference)}, means over seeds of {label(study, squared)}: "
            + "; ".join(parts) + ".")
    rescued = [f"{label(study, f)} {fmt(m)} at z = {dim}" for f, dim, m, ok in learned if ok]
    not_rescued = [f"{label(study, f)} {fmt(m)} at z = {dim}" for f, dim, m, ok in learned if not ok]
    if rescued:
        text += (" Where it loses on likelihood, a learned scale does not (" + ", ".join(rescued)
                 + f" bits/dim): the fixed scale, not the {shape} shape, is what costs likelihood there.")
    if not_rescued:
        text += (" Not every learned scale rescues it: " + ", ".join(not_rescued) + " bits/dim is still "
                 f"worse than {label(study, reference)}.")
    metrics = study.metrics
    diverged = int(((metrics["family"] == squared) & (metrics["status"] == DIVERGED)).sum())
    if diverged:
        text += f" {stats.count(diverged, f'{squared} run')} diverged."
    return [Finding("squared_error", "Squared error.", text)]


def calibration(study: Study) -> list[Finding]:
    rows = [(f, d, study.stat(f, d, "coverage90")["mean"]) for f in study.families for d in study.dims]
    rows = [r for r in rows if finite(r[2])]
    if not rows:
        return []
    text = "Calibration: the central 90% predictive interval (0.90 is ideal) covers "
    low, high = fmt(min(r[2] for r in rows)), fmt(max(r[2] for r in rows))
    if len({f for f, _, _ in rows}) == 1:
        text += (f"{low} to {high} of the test sub-pixels for {label(study, rows[0][0])}, the one family "
                 "here with a learned scale.")
        return [Finding("calibration", "", text)]
    closest = min(rows, key=lambda r: abs(r[2] - 0.9))
    worst = max(rows, key=lambda r: abs(r[2] - 0.9))
    text += (f"between {low} and {high} of the test sub-pixels; closest to 0.90 is "
             f"{label(study, closest[0])} at z = {closest[1]} ({fmt(closest[2])}), furthest "
             f"{label(study, worst[0])} at z = {worst[1]} ({fmt(worst[2])}).")
    return [Finding("calibration", "", text)]


def comparability(study: Study) -> list[Finding]:
    marked = not_comparable(study)
    if not marked:
        return []
    text = (f"{labels(study, marked)} were trained without dequantization (x = v/255, clamped where the "
            "family needs the open interval), as the seed did; their likelihoods are not on the same footing "
            "as the others'.")
    return [Finding("comparability", "Not comparable (†):", text)]


def findings(study: Study) -> list[Finding]:
    """Every finding of the study, in the order of the page."""
    return (sample_size(study) + statuses(study) + winners(study) + edge_bins(study) + scored_as(study)
            + squared_error(study) + calibration(study) + comparability(study))
