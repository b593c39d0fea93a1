"""The results' tables: the headline (families x latent dimensions), the convergence of the likelihood
estimate, the other measures and the ranking. Each reads the Study and its analysis; none decides again
who leads or what still rose."""

import pandas as pd

from vaebench import analysis, stats
from vaebench.report.html import Footnotes, esc, family_label, scroll_box, table
from vaebench.results import BPD_LABEL, MEASURES, METRIC_NAMES, OK, UNIFORM_BPD, Study
from vaebench.robustness import remaining_bias
from vaebench.units import nats_to_bpd
from vaebench.utils import finite
from vaebench.words import fmt, fmt_value

# the measures table beside the headline, in its column order; coverage90 is no Measure: 0.90 is ideal
TABLE_MEASURES = (
    "knn_acc",
    "recon_mse",
    "coverage90",
    "epochs_to_95",
    "fd_samples_mean",
    "fd_recon_mean",
    "sharpness_mean",
    "recon_class_acc_mean",
)
COVERAGE_HEADER = "recon. calibration: coverage 90%"
QUALITY_REFERENCES = {  # resources/quality/DATASET.json: key -> (row label, the columns it is read against)
    "test_accuracy": ("the classifier on the test images", "recon_class_acc_"),
    "fd_train_vs_test": ("training vs test images (the floor)", "fd_"),
    "fd_blurred": ("blurred test images (sigma 1 pixel)", "fd_"),
    "fd_noise": ("uniform noise", "fd_"),
    "sharpness_blurred": ("blurred test images (the data: 1.0)", "sharpness_"),
}
COMPARABILITY_MARK = (
    " <span title='trained on v/255 without dequantization: likelihoods not comparable'>†</span>"
)


def headline(study: Study, footnotes: Footnotes) -> str:
    """Families x latent dimensions: bits/dim with 95% CI across seeds and the test-set standard error,
    the best per column in bold, ties marked; the baselines below as reference rows."""
    dims, marked = study.dims, set(analysis.not_comparable(study))
    leaders = {metric: analysis.leaders(study, metric) for metric in METRIC_NAMES}
    uniform = {f: {d for d, _ in at} for f, at in analysis.worse_than_uniform(study).items()}
    rows = []
    for family in study.families:
        cells = [family_label(study, family) + (COMPARABILITY_MARK if family in marked else "")]
        for dim in dims:
            for metric in METRIC_NAMES:
                best, tied = leaders[metric].get(dim, (None, set()))
                shaded = metric == "bpd_deq" and dim in uniform[family]
                cells.append(headline_cell(study, footnotes, family, dim, metric, best, tied, shaded))
        rows.append(cells)
    top = (
        "<tr><th rowspan='2'>family</th>"
        + "".join(f"<th colspan='2'>latent dimension {d}</th>" for d in dims)
        + "</tr>"
    )
    kinds = {
        "bpd_disc": ("headline", "the headline: probability of the 8-bit values"),
        "bpd_deq": ("", f"density of dequantized images; uniform = {UNIFORM_BPD:g}"),
    }
    sub = (
        "<tr>"
        + "".join(
            f"<th class='{kinds[metric][0]}'><a href='#likelihoods'>{name}</a><br>"
            f"<span class='small'>{kinds[metric][1]}; lower is better</span></th>"
            for _ in dims
            for metric, name in METRIC_NAMES.items()
        )
        + "</tr>"
    )
    body = "\n".join(
        "<tr>" + "".join(f"<td>{c}</td>" if i == 0 else c for i, c in enumerate(r)) + "</tr>" for r in rows
    )
    body += baseline_rows(study)
    legend = (
        "<p class='small'>The headline is the <b>discretized</b> column; the dequantized one is an "
        "upper bound on it, read second. <b>Bold</b>: the lowest mean in its column. "
        "<sup>=</sup>: not significantly worse than the bold one (the pair's test in tests.csv, "
        "Holm-corrected, p ≥ 0.05: a bootstrap over seeds and test images where the runs kept each "
        "image's likelihood). ± is the 95% t-interval across ok seeds where there are two or more. SE "
        "is the standard error of the mean: over seeds and test images (the same bootstrap) where the "
        "runs kept each image's likelihood, else over the test images alone (the test-set noise, the "
        f"only uncertainty one seed measures). <span class='worse-uniform'>Shaded</span>: worse than "
        f"the uniform density ({UNIFORM_BPD:g} bits/dim). Reference rows: models without a latent, "
        "fitted on the training split and scored on the same test images (their two columns are "
        "equal: a density constant within each bin). Diverged, missing and unevaluated runs are "
        "counted under the value, never averaged. bits/dim = −log2 likelihood per sub-pixel; "
        "<a href='#likelihoods'>how each is defined</a>.</p>"
    )
    return (
        scroll_box(f"<table id='headline'><thead>{top}{sub}</thead><tbody>\n{body}\n</tbody></table>")
        + legend
        + footnotes.listed()
    )


def baseline_rows(study: Study) -> str:
    """The baselines as reference rows of the headline: one value per column, the same at every z."""
    rows = study.baseline_rows
    if not rows:
        return ""
    span = 1 + 2 * len(study.dims)
    out = [f"<tr class='reference'><th colspan='{span}'>models without a latent (references)</th></tr>"]
    dims = (study.baselines or {}).get("dims")
    for row in rows:
        se = nats_to_bpd(row["ll_disc_se"], dims) if finite(row.get("ll_disc_se")) and dims else None
        detail = f"SE {fmt(se)}" if se else "exact"
        cells = "".join(
            f"<td class='num'>{fmt(row.get(metric))}<br><span class='small'>{detail}</span></td>"
            for _ in study.dims
            for metric in METRIC_NAMES
        )
        out.append(
            f"<tr class='reference' title='{esc(row.get('description', ''))}'>"
            f"<td>{esc(row.get('label', row.get('id')))}</td>{cells}</tr>"
        )
    return "\n" + "\n".join(out)


def spread(s: dict) -> tuple[str, str]:
    """A headline value as shown, 'mean ± half the 95% t-interval across seeds' (kind 'interval'), else
    'mean ± the test-set SE' with one seed ('se'), else the mean alone (''); `s` is Study.stat's."""
    if finite(s["high"]):
        return f"{fmt(s['mean'])} ± {fmt(s['high'] - s['mean'])}", "interval"
    if finite(s["se"]):
        return f"{fmt(s['mean'])} ± {fmt(s['se'])}", "se"
    return fmt(s["mean"]), ""


def headline_cell(
    study: Study,
    footnotes: Footnotes,
    family: str,
    dim: int,
    metric: str,
    best: str | None,
    tied: set,
    worse_than_uniform: bool,
) -> str:
    """mean ± the 95% interval across seeds (two or more), else ± the test-set SE (one seed); shaded where
    the analysis finds it worse than the uniform density."""
    s = study.stat(family, dim, metric)
    counts = status_counts(study, family, dim)
    note = footnotes.mark(s["note"]) if s["note"] else ""
    if not finite(s["mean"]):
        detail = counts or ("no ok run" if not note else "")
        return f"<td class='num'>n/a{note}<br><span class='small'>{detail}</span></td>"
    seeds = stats.count(s["n"], "seed")
    shown, kind = spread(s)
    detail = {
        "interval": [f"95% CI, {seeds}"] + ([f"SE {fmt(s['se'])}"] if finite(s["se"]) else []),
        "se": [f"± test-set SE, {seeds}"],
        "": [seeds],
    }[kind]
    css = "num best" if family == best else "num"
    if worse_than_uniform:
        css += " worse-uniform"
        detail.append("worse than uniform")
    detail += [counts] if counts else []
    mark = "<sup>=</sup>" if family in tied else ""
    return f"<td class='{css}'>{shown}{mark}{note}<br><span class='small'>{'; '.join(detail)}</span></td>"


def status_counts(study: Study, family: str, dim: int) -> str:
    metrics = study.metrics
    runs = metrics[(metrics["family"] == family) & (metrics["latent_dim"] == dim)]
    counts = runs.loc[runs["status"] != OK, "status"].value_counts()
    return ", ".join(f"{n} {status}" for status, n in counts.items())


def convergence(study: Study) -> str:
    """Per family and latent dimension: the discretized bits/dim at K/16, K/4 and K samples, and how much
    further it would fall with unlimited samples (robustness.remaining_bias: the fall's ratio per fourfold K,
    extrapolated)."""
    summary, ok = study.summary, study.ok
    if summary.get("ll_disc_nats_k_quarter_mean", pd.Series(dtype=float)).notna().sum() == 0:
        return (
            "<p class='small'>The runs do not record the estimate at K/16 and K/4 samples "
            "(<code>ll_disc_nats_k_quarter</code>), so its convergence is not shown.</p>"
        )
    sizes = " / ".join(
        ", ".join(str(int(v)) for v in sorted(ok[k].dropna().unique())) or "?"
        for k in ("k_sixteenth", "k_quarter", "k")
        if k in ok.columns
    )
    rows = []
    for family in study.families:
        cells = [family_label(study, family)]
        for dim in study.dims:
            trend = analysis.estimate_trend(study, family, dim)
            if trend is None:
                cells += [("n/a", "num"), ""]
                continue
            remaining = remaining_bias(trend)
            left = (
                "n/a"
                if remaining is None
                else "faster at the end"
                if not finite(remaining)
                else fmt(remaining, 4)
            )
            cells += [(" → ".join("?" if bpd is None else fmt(bpd) for bpd in trend), "num"), (left, "num")]
        rows.append(cells)
    header = ["family"] + [h for dim in study.dims for h in (f"z = {dim}: K/16 → K/4 → K", "still to fall")]
    return (
        table(header, rows, "id='convergence'")
        + "<p class='small'>Discretized bits/dim of the same estimate from the first K/16, the "
        f"first K/4 and all K samples (K/16, K/4, K = {esc(sizes)}), mean over ok seeds; lower is "
        "better. The estimate is a lower bound on the log-likelihood that tightens as K grows, so "
        "the bits/dim fall; “still to fall”: how much further, extrapolated to unlimited K from how the "
        "fall shrank per fourfold K (<a href='#hold-section'>Does the verdict hold?</a> weighs it against "
        "the lead).</p>"
    )


def measure_header(metric: str) -> str:
    return MEASURES[metric].short if metric in MEASURES else COVERAGE_HEADER


def direction(metric: str) -> str:
    if metric in MEASURES:
        return "lower is better" if MEASURES[metric].lower_is_better else "higher is better"
    return "0.90 is ideal"


def measures(study: Study, footnotes: Footnotes) -> str:
    """Per latent dimension: every other measure per family (mean ± 95% CI across seeds), then the
    picture-quality references of the test images themselves."""
    summary = study.summary
    shown = [m for m in TABLE_MEASURES if f"{m}_mean" in summary and summary[f"{m}_mean"].notna().any()]
    if not shown:
        return ""
    refs = study.quality or {}
    header = ["family"] + [
        f"{esc(measure_header(m))}<br><span class='small'>{direction(m)}</span>" for m in shown
    ]
    blocks = []
    for dim in study.dims:
        rows = []
        for family in study.families:
            cells = [family_label(study, family)]
            for metric in shown:
                s = study.stat(family, dim, metric)
                text = fmt_value(metric, s["mean"]) if finite(s["mean"]) else "n/a"
                if finite(s["high"]):
                    text += f" ± {fmt_value(metric, s['high'] - s['mean'])}"
                if not finite(s["mean"]) and s["note"]:
                    text += footnotes.mark(s["note"])
                median = study.stat(family, dim, metric.replace("_mean", "_median"))["mean"]
                if metric.endswith("_mean") and finite(median):
                    text += f"<br><span class='small'>median image {fmt_value(metric, median)}</span>"
                cells.append((text, "num"))
            rows.append(cells)
        for key, (what, columns) in QUALITY_REFERENCES.items():
            if finite(refs.get(key)):
                rows.append(
                    [f"<i>{esc(what)}</i>"]
                    + [(fmt_value(m, refs[key]) if m.startswith(columns) else "", "num") for m in shown]
                )
        blocks.append(f"<h4>latent dimension {dim}</h4>" + table(header, rows, "class='measures'"))
    names = "; ".join(
        f"{esc(measure_header(m))}: {esc(MEASURES[m].name.removesuffix(' (mean image)'))}"
        for m in shown
        if m in MEASURES
    )
    return (
        "".join(blocks) + f"<p class='small'>{names}. Italic rows: the test images' own values "
        "(resources/quality), for reference. Mean over ok seeds, ± the 95% interval across seeds "
        "where there are two or more. The picture-quality numbers are those of the family's mean "
        "image, and below them, where it differs, of its median image. The Fréchet distances (FD) "
        "are taken in the feature space of a small classifier trained on the dataset (not FID's "
        "Inception network) with the same number of images for every family; sharpness is the "
        "reconstructions' mean gradient magnitude over that of the test images (1.0: as sharp as the "
        "data). The reconstruction calibration is that of p(x | z) at the posterior mean, not a "
        "predictive calibration.</p>"
    )


def ranking(study: Study) -> str:
    ranks = analysis.ranking(study, "bpd_disc")
    if ranks.empty:
        return "<p>No ok run has a discretized bits/dim yet.</p>"
    blocks = []
    for dim, at in ranks.groupby("latent_dim"):
        shared = at["rank"].duplicated(keep=False)
        header = ["rank", "family", BPD_LABEL["bpd_disc"]]
        rows = [
            [
                f"{'=' if tie else ''}{int(r['rank'])}",
                family_label(study, r["family"]),
                (fmt(r["mean"]), "num"),
            ]
            for (_, r), tie in zip(at.iterrows(), shared, strict=True)
        ]
        if at["tested"].iloc[0]:
            how = "rank = 1 + the number of families significantly better; = marks a shared rank"
            header.append("not separable from")
            for row, (_, r) in zip(rows, at.iterrows(), strict=True):
                names = [family_label(study, f) for f in r["tied_with"].split()] + [
                    f"{family_label(study, f)} (no test)" for f in r["untested_with"].split()
                ]
                row.append(", ".join(names) or "—")
        else:
            how = "no pair could be tested (one seed, no per-image values): the order of the means only"
        blocks.append(
            f"<div><b>latent dimension {dim}</b><br><span class='small'>{how}</span>"
            + table(header, rows)
            + "</div>"
        )
    return "<div class='rankings'>" + "".join(blocks) + "</div>"
