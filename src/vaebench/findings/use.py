"""What to use: the verdict right after the question, from the analysis of one study.

Best likelihood, best-looking pictures, what to avoid and what the latent size changes; each lead says
how sure it is in the words of the one evidence rule (`analysis.judge`).
"""

from vaebench import catalog
from vaebench.analysis import against_references, best_by, evidence, has_measure, worse_than_uniform
from vaebench.findings.finding import Finding
from vaebench.layout import METRICS
from vaebench.results import MEASURES, UNIFORM_BPD, Study
from vaebench.words import fmt, fmt_value, label, labels


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
                f"sharpness in {METRICS}), so likelihood is all "
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
    uniform = worse_than_uniform(study)
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
