"""The findings, in the order of the page: how many seeds, which runs failed, the winners, the baselines,
the two likelihood columns, a loss read as another family's density, the seed post's claims, likelihood
against picture quality, the calibration and what is not comparable.

Each rule reads the Study and the analysis (`vaebench.analysis`) and writes what the numbers allow, never
more. Which families a rule compares comes from the catalog's properties (`scored_as`, `real_line`,
`discrete`), never from ids typed here.
"""

from vaebench import analysis, catalog, stats
from vaebench.analysis import against_references, evidence, has_measure, not_comparable, ranking
from vaebench.evidence import METHOD_WELCH
from vaebench.findings.finding import Finding, grouped
from vaebench.findings.seed_claims import claims
from vaebench.results import DIVERGED, MEASURES, METHOD_PAIRED_T, METRIC_NAMES, OK, Study
from vaebench.utils import finite
from vaebench.words import families, fmt, fmt_value, label, labels, seeds, value


def sample_size(study: Study) -> list[Finding]:
    """How the pairs of families were tested, and what the number of seeds allows (docs/statistics.md)."""
    n, methods, images = study.n_seeds, analysis.test_methods(study), analysis.images_resampled(study)
    if not methods:
        text = (
            f"At most {seeds(n)} per family and latent dimension and no per-image values: no test can tell "
            "a real difference from seed-to-seed variation, so a difference below counts only when it is "
            f"larger than {stats.NOISE_SE} test-set standard errors of the difference (the noise of the test "
            "images, the only noise one seed measures); otherwise it is the order of the means only."
        )
        return [Finding("sample_size", "Too few seeds for statistics.", text)]
    how = []
    if images is not None and n == 1:
        how.append(
            f"the likelihoods by a bootstrap over the {images:,} test images every family shares (with one "
            "seed the variation from one training run to the next is not measured: a significant difference "
            "is beyond the noise of the test images only)"
        )
    elif images is not None:
        how.append(
            f"the likelihoods by a hierarchical bootstrap over the seeds and the {images:,} test images "
            "every family shares (paired image by image)"
        )
    if METHOD_WELCH in methods:
        how.append(f"{'the other measures' if how else 'every measure'} by Welch's t-test across seeds")
    elif n == 1:
        how.append("the other measures not at all (one seed: the order of the means only)")
    if METHOD_PAIRED_T in methods:
        how.append("paired t-tests across seeds (tables written before the hierarchical bootstrap)")
    text = (
        f"Up to {seeds(n)} per family and latent dimension. Tests: {'; '.join(how)}; p-values "
        "Holm-corrected over the pairs of each measure and latent dimension."
    )
    return [Finding("sample_size", "One seed per family:" if n == 1 else "", text)]


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


def likelihood_vs_pictures(study: Study) -> list[Finding]:
    """Where likelihood and picture quality disagree: a family in the top third on likelihood and in the
    bottom half on the Fréchet distance of its samples, with its median image's score where it has one."""
    metric = "fd_samples_mean"
    if not has_measure(study, metric):
        return []
    parts, medians = [], False
    for d in analysis.likelihood_vs_pictures(study, metric):
        part = (
            f"at z = {d.latent_dim}, {label(study, d.family)} is {d.likelihood_place} of {d.of} on "
            f"likelihood but {d.pictures_place} of {d.of} on the {MEASURES[metric].name} "
            f"({fmt_value(metric, study.stat(d.family, d.latent_dim, metric)['mean'])})"
        )
        median = study.stat(d.family, d.latent_dim, "fd_samples_median")["mean"]
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
