"""`vaebench report`: one self-contained HTML page (figures embedded, opens offline) answering the question.

Everything on the page comes from the results directory (the tables of `vaebench aggregate`,
which carry every run.json / metrics.json field, and the PNGs of `vaebench figures`), the
figures' captions (workflow/report/NAME.rst, the ones Snakemake's report shows) and, when given,
the study config. The findings are plain sentences built by fixed rules from those numbers
(`vaebench.findings`), so the text never claims more than the tests allow; this module escapes
them. The page layout lives in templates/report.html; this module fills in its sections.
"""

import argparse
import base64
import datetime as dt
import html
import re
from collections import Counter
from importlib import resources
from pathlib import Path
from string import Template

import pandas as pd
import yaml

from vaebench import captions, catalog, findings, stats
from vaebench.findings import PAPER_K, Finding, finite, fmt, fmt_p, fmt_value
from vaebench.results import (
    BPD_LABEL,
    MEASURES,
    METRIC_NAMES,
    OK,
    UNIFORM_BPD,
    ResultsError,
    Study,
    nats_to_bpd,
)
from vaebench.utils import atomic_write

INTEGER_COLUMNS = ("latent_dim", "seed", "k", "n_test", "epochs_completed", "active_units", "epochs_to_95")
# the measures table beside the headline: measure -> its short header (results.MEASURES has the full name)
OTHER_MEASURES = {
    "knn_acc": "kNN accuracy",
    "recon_mse": "recon. MSE",
    "coverage90": "recon. calibration: coverage 90%",
    "epochs_to_95": "epochs to 95% of the gain",
    "fd_samples_mean": "FD of samples",
    "fd_recon_mean": "FD of recon.",
    "sharpness_mean": "sharpness of recon.",
    "recon_class_acc_mean": "classifier acc. on recon.",
}
QUALITY_REFERENCES = {  # resources/quality/DATASET.json: key -> (row label, the columns it is read against)
    "test_accuracy": ("the classifier on the test images", "recon_class_acc_"),
    "fd_train_vs_test": ("training vs test images (the floor)", "fd_"),
    "fd_blurred": ("blurred test images (sigma 1 pixel)", "fd_"),
    "fd_noise": ("uniform noise", "fd_"),
    "sharpness_blurred": ("blurred test images (the data: 1.0)", "sharpness_"),
}
MARK = "<meta name='vaebench-report' content='{written}'>"  # lets the index of studies find and date a report


def esc(value) -> str:
    return html.escape(str(value))


def finding_html(finding: Finding) -> str:
    """A finding on the page: its text escaped, its title in bold."""
    text = html.escape(finding.text, quote=False)
    return f"<b>{html.escape(finding.title, quote=False)}</b> {text}" if finding.title else text


def caption_html(text: str) -> str:
    """A caption's text escaped, its rst inline literals (``name``) as <code>."""
    return re.sub(r"``(.+?)``", r"<code>\1</code>", esc(text))


def table(header: list[str], rows: list[list[str]], attrs: str = "") -> str:
    """An HTML table from already-escaped cell HTML; a cell may be (html, css_class)."""

    def cell(c, tag="td"):
        text, css = c if isinstance(c, tuple) else (c, "")
        return f"<{tag}{f' class={css!r}' if css else ''}>{text}</{tag}>"

    head = "".join(cell(h, "th") for h in header)
    body = "\n".join("<tr>" + "".join(cell(c) for c in row) + "</tr>" for row in rows)
    return f"<table {attrs}><thead><tr>{head}</tr></thead><tbody>\n{body}\n</tbody></table>"


class Report:
    """The page's sections, each built from one Study (the results directory) and the config."""

    def __init__(
        self, study: Study, config: dict | None, figures_dir: Path, captions_dir: Path = captions.DEFAULT_DIR
    ):
        self.study, self.config = study, config or {}
        self.figures_dir, self.captions_dir = figures_dir, captions_dir
        self.footnotes: dict[str, int] = {}
        self.not_comparable = set(findings.not_comparable(study))

    # -- small lookups ------------------------------------------------------------------------------
    def label(self, family: str) -> str:
        return esc(self.study.labels.get(family, family))

    def footnote(self, note: str) -> str:
        number = self.footnotes.setdefault(note, len(self.footnotes) + 1)
        return f"<sup>{number}</sup>"

    def column(self, name: str) -> pd.Series:
        metrics = self.study.metrics
        return metrics[name] if name in metrics.columns else pd.Series([], dtype=object)

    # -- sections -----------------------------------------------------------------------------------
    def headline(self) -> str:
        """Families x latent dimensions: bits/dim with 95% CI across seeds and the test-set standard error,
        the best per column in bold, ties marked; the baselines below as reference rows."""
        dims, families = self.study.dims, self.study.families
        best, tied = {}, {}
        for metric in METRIC_NAMES:  # a column's winner and its ties: the ranking's first row per dimension
            for dim, at in findings.ranking(self.study, metric).groupby("latent_dim"):
                best[int(dim), metric] = at["family"].iloc[0]
                tied[int(dim), metric] = set(at["tied_with"].iloc[0].split())
        rows = []
        for family in families:
            cells = [self.label(family) + self.comparability_mark(family)]
            for dim in dims:
                for metric in METRIC_NAMES:
                    cells.append(
                        self.headline_cell(
                            family, dim, metric, best.get((dim, metric)), tied.get((dim, metric), set())
                        )
                    )
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
            "<tr>" + "".join(f"<td>{c}</td>" if i == 0 else c for i, c in enumerate(r)) + "</tr>"
            for r in rows
        )
        body += self.baseline_rows()
        notes = "".join(f"<li value='{n}'>{esc(text)}</li>" for text, n in self.footnotes.items())
        legend = (
            "<p class='small'>The headline is the <b>discretized</b> column; the dequantized one is an "
            "upper bound on it, read second. <b>Bold</b>: the lowest mean in its column. "
            "<sup>=</sup>: not significantly worse than the bold one (paired t-test over seeds, "
            "Holm-corrected, p ≥ 0.05). ± is the 95% t-interval across ok seeds where there are two "
            "or more; SE is the standard error over test images (the test-set noise), the only "
            f"uncertainty one seed measures. <span class='worse-uniform'>Shaded</span>: worse than "
            f"the uniform density ({UNIFORM_BPD:g} bits/dim). Reference rows: models without a latent, "
            "fitted on the training split and scored on the same test images (their two columns are "
            "equal: a density constant within each bin). Diverged, missing and unevaluated runs are "
            "counted under the value, never averaged. bits/dim = −log2 likelihood per sub-pixel; "
            "<a href='#likelihoods'>how each is defined</a>.</p>"
        )
        return f"<table id='headline'><thead>{top}{sub}</thead><tbody>\n{body}\n</tbody></table>{legend}" + (
            f"<ol class='small'>{notes}</ol>" if notes else ""
        )

    def baseline_rows(self) -> str:
        """The baselines as reference rows of the headline: one value per column, the same at every z."""
        rows = self.study.baseline_rows
        if not rows:
            return ""
        span = 1 + 2 * len(self.study.dims)
        out = [f"<tr class='reference'><th colspan='{span}'>models without a latent (references)</th></tr>"]
        dims = (self.study.baselines or {}).get("dims")
        for row in rows:
            se = nats_to_bpd(row["ll_disc_se"], dims) if finite(row.get("ll_disc_se")) and dims else None
            detail = f"SE {fmt(se)}" if se else "exact"
            cells = "".join(
                f"<td class='num'>{fmt(row.get(metric))}<br><span class='small'>{detail}</span></td>"
                for _ in self.study.dims
                for metric in METRIC_NAMES
            )
            out.append(
                f"<tr class='reference' title='{esc(row.get('description', ''))}'>"
                f"<td>{esc(row.get('label', row.get('id')))}</td>{cells}</tr>"
            )
        return "\n" + "\n".join(out)

    def headline_cell(self, family: str, dim: int, metric: str, best: str | None, tied: set) -> str:
        """mean ± the 95% interval across seeds (two or more), else ± the test-set SE (one seed)."""
        s = self.study.stat(family, dim, metric)
        counts = self.status_counts(family, dim)
        note = self.footnote(s["note"]) if s["note"] else ""
        if not finite(s["mean"]):
            detail = counts or ("no ok run" if not note else "")
            return f"<td class='num'>n/a{note}<br><span class='small'>{detail}</span></td>"
        seeds = stats.count(s["n"], "seed")
        if finite(s["high"]):
            shown = f"{fmt(s['mean'])} ± {fmt(s['high'] - s['mean'])}"
            detail = [f"95% CI, {seeds}"] + ([f"SE {fmt(s['se'])}"] if finite(s["se"]) else [])
        elif finite(s["se"]):
            shown, detail = f"{fmt(s['mean'])} ± {fmt(s['se'])}", [f"± test-set SE, {seeds}"]
        else:
            shown, detail = fmt(s["mean"]), [seeds]
        css = "num best" if family == best else "num"
        if metric == "bpd_deq" and s["mean"] > UNIFORM_BPD:
            css += " worse-uniform"
            detail.append("worse than uniform")
        detail += [counts] if counts else []
        mark = "<sup>=</sup>" if family in tied else ""
        return f"<td class='{css}'>{shown}{mark}{note}<br><span class='small'>{'; '.join(detail)}</span></td>"

    def verdict(self) -> str:
        items = "".join(f"<li>{finding_html(f)}</li>" for f in findings.verdict(self.study))
        return f"<ul class='verdict'>{items}</ul>"

    def limits(self) -> str:
        budget = self.config.get("budget")
        said = [findings.Finding("limit_budget", "What the budget forced:", str(budget))] if budget else []
        found = said + findings.limits(self.study)
        if not found:
            return "<p>None of the limits checked here applies to this run.</p>"
        return "<ul>" + "".join(f"<li>{finding_html(f)}</li>" for f in found) + "</ul>"

    def convergence(self) -> str:
        """Per family and latent dimension: the discretized bits/dim at K/16, K/4 and K samples, and whether
        the estimate still rose from K/4 to K by more than RISE_SE standard errors in some run."""
        summary, ok = self.study.summary, self.study.ok
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
        for family in self.study.families:
            cells = [self.label(family)]
            for dim in self.study.dims:
                runs = ok[(ok["family"] == family) & (ok["latent_dim"] == dim)]
                at_k = self.study.stat(family, dim, "bpd_disc")["mean"]
                lls = {
                    key: self.study.stat(family, dim, f"ll_disc_nats{key}")["mean"]
                    for key in ("_k_sixteenth", "_k_quarter", "")
                }
                dims = pd.to_numeric(runs.get("dims"), errors="coerce").dropna()
                if not finite(at_k) or dims.empty:
                    cells += [("n/a", "num"), ""]
                    continue
                trend = [
                    fmt(at_k + nats_to_bpd(lls[""] - lls[key], dims.iloc[0])) if finite(lls[key]) else "?"
                    for key in ("_k_sixteenth", "_k_quarter")
                ]
                rise = pd.to_numeric(runs.get("ll_disc_rise_nats"), errors="coerce")
                se = pd.to_numeric(runs.get("ll_disc_rise_se"), errors="coerce")
                flagged = int((rise > findings.RISE_SE * se).sum())
                cells += [
                    (" → ".join([*trend, fmt(at_k)]), "num"),
                    (
                        f"still rising ({flagged} of {len(runs)})" if flagged else "—",
                        "status-bad" if flagged else "",
                    ),
                ]
            rows.append(cells)
        header = ["family"] + [
            h
            for dim in self.study.dims
            for h in (f"z = {dim}: K/16 → K/4 → K", f"rose > {findings.RISE_SE} SE")
        ]
        return (
            table(header, rows, "id='convergence'")
            + "<p class='small'>Discretized bits/dim of the same estimate from the first K/16, the "
            f"first K/4 and all K samples (K/16, K/4, K = {esc(sizes)}), mean over ok seeds; lower is "
            "better. The estimate is a lower bound on the log-likelihood that tightens as K grows, so "
            "the bits/dim fall; “still rising”: in that many runs the log-likelihood rose from K/4 "
            f"to K by more than {findings.RISE_SE} standard errors of that rise, so K is not yet "
            "enough.</p>"
        )

    def measures(self) -> str:
        """Per latent dimension: every other measure per family (mean ± 95% CI across seeds), then the
        picture-quality references of the test images themselves."""
        summary = self.study.summary
        shown = [m for m in OTHER_MEASURES if f"{m}_mean" in summary and summary[f"{m}_mean"].notna().any()]
        if not shown:
            return ""
        refs = self.study.quality or {}
        header = ["family"] + [
            f"{esc(OTHER_MEASURES[m])}<br><span class='small'>{self.direction(m)}</span>" for m in shown
        ]
        blocks = []
        for dim in self.study.dims:
            rows = []
            for family in self.study.families:
                cells = [self.label(family)]
                for metric in shown:
                    s = self.study.stat(family, dim, metric)
                    text = fmt_value(metric, s["mean"]) if finite(s["mean"]) else "n/a"
                    if finite(s["high"]):
                        text += f" ± {fmt_value(metric, s['high'] - s['mean'])}"
                    if not finite(s["mean"]) and s["note"]:
                        text += self.footnote(s["note"])
                    median = self.study.stat(family, dim, metric.replace("_mean", "_median"))["mean"]
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
            f"{esc(OTHER_MEASURES[m])}: {esc(MEASURES[m].name.removesuffix(' (mean image)'))}"
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

    @staticmethod
    def direction(metric: str) -> str:
        if metric in MEASURES:
            return "lower is better" if MEASURES[metric].lower_is_better else "higher is better"
        return "0.90 is ideal"

    def status_counts(self, family: str, dim: int) -> str:
        metrics = self.study.metrics
        runs = metrics[(metrics["family"] == family) & (metrics["latent_dim"] == dim)]
        counts = runs.loc[runs["status"] != OK, "status"].value_counts()
        return ", ".join(f"{n} {status}" for status, n in counts.items())

    def comparability_mark(self, family: str) -> str:
        """† where a run of this family trained without dequantization: its likelihoods are not comparable."""
        why = "trained on v/255 without dequantization: likelihoods not comparable"
        return f" <span title='{why}'>†</span>" if family in self.not_comparable else ""

    def ranking(self) -> str:
        ranks = findings.ranking(self.study, "bpd_disc")
        if ranks.empty:
            return "<p>No ok run has a discretized bits/dim yet.</p>"
        blocks = []
        for dim, at in ranks.groupby("latent_dim"):
            shared = at["rank"].duplicated(keep=False)
            header = ["rank", "family", BPD_LABEL["bpd_disc"]]
            rows = [
                [f"{'=' if sh else ''}{int(r['rank'])}", self.label(r["family"]), (fmt(r["mean"]), "num")]
                for (_, r), sh in zip(at.iterrows(), shared, strict=True)
            ]
            if at["tested"].iloc[0]:
                how = "rank = 1 + the number of families significantly better; = marks a shared rank"
                header.append("not separable from")
                for row, (_, r) in zip(rows, at.iterrows(), strict=True):
                    names = [self.label(f) for f in r["tied_with"].split()] + [
                        f"{self.label(f)} (no test)" for f in r["untested_with"].split()
                    ]
                    row.append(", ".join(names) or "—")
            else:
                how = "no pair could be tested (too few paired seeds): the order of the means only"
            blocks.append(
                f"<div><b>latent dimension {dim}</b><br><span class='small'>{how}</span>"
                + table(header, rows)
                + "</div>"
            )
        return "<div class='rankings'>" + "".join(blocks) + "</div>"

    def setup(self) -> str:
        m = self.study.metrics
        families = ", ".join(self.label(f) for f in self.study.families)
        seeds = sorted(m["seed"].unique())
        dims = ", ".join(map(str, self.study.dims))
        rows = [
            ("dataset", self.values("dataset")),
            ("dataset sha256", self.values("dataset_sha256", short=12)),
            ("dataset source", self.values("dataset_source")),
            ("dimensions D per image", self.values("dims")),
            ("training / test images", self.split_sizes()),
            ("families", families + self.config_note("losses", self.study.families)),
            ("latent dimensions", dims + self.config_note("latent_dims", self.study.dims)),
            ("seeds", ", ".join(map(str, seeds)) + self.config_note("seeds", seeds)),
            ("architecture", self.values("arch") + ", hidden width " + self.values("hidden")),
            ("epochs", self.values("epochs")),
            ("batch size, learning rate", self.values("batch_size") + ", " + self.values("lr")),
            ("validation split, epoch kept", self.validation()),
            (
                "training input",
                self.values(
                    "dequantize",
                    rename={"True": "dequantized, x = (v + u)/256", "False": "v/255, not dequantized (†)"},
                ),
            ),
            ("importance samples K", self.values("k") + self.protocol_note()),
            ("test images scored", self.values("n_test")),
            ("evaluation noise seed", self.values("eval_seed")),
            (
                "per-pixel likelihood math",
                self.values("family_dtype")
                + ", summed in float64; "
                + self.values(
                    "compiled", rename={"True": "one fused torch.compile kernel", "False": "eager"}
                ),
            ),
            ("training device", self.values("device", detail="device_name")),
            ("evaluation device", self.values("eval_device", detail="eval_device_name")),
            (
                "python / torch / numpy",
                " / ".join(
                    self.values(f"{p}_version", f"eval_{p}_version") for p in ("python", "torch", "numpy")
                ),
            ),
            ("vaebench version", self.values("vaebench_version", "eval_vaebench_version")),
            ("git commit", self.values("git_commit", "eval_git_commit", short=12)),
            ("host", self.values("hostname", "eval_hostname")),
            ("runs trained", self.date_range()),
            ("runs", ", ".join(f"{n} {s}" for s, n in m["status"].value_counts().items())),
            ("report written", dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")),
        ]
        cells = [[esc(k), (v, "varies" if "varies:" in v else "")] for k, v in rows]
        return (
            table(["", "value (from the runs' run.json / metrics.json)"], cells, "id='setup-table'")
            + (
                "<p class='small'>Highlighted rows differ between runs: each value is followed by the number "
                "of run records (run.json and metrics.json each count) that have it.</p>"
            )
            + self.choices()
        )

    def validation(self) -> str:
        held_out = pd.to_numeric(self.column("validation"), errors="coerce").dropna()
        if held_out.empty or held_out.max() == 0:
            return "none: each run keeps its last epoch"
        return (
            f"{self.values('validation')} training images held out (the same for every run, never trained "
            "on); each run keeps the epoch with the best validation ELBO, epoch kept: "
            + self.values("best_epoch")
        )

    def choices(self) -> str:
        """The settings chosen per family on the validation split, with the grid each was chosen from."""
        chosen = self.study.selection
        if not chosen:
            return ""
        rows = []
        for family in catalog.family_order(chosen):
            record = chosen[family]
            settings = record["settings"]
            scale = [f"{findings.SETTING_NAMES[k]} = {v:g}" for k, v in settings.items() if k != "lr"]
            grid = findings.tried_values(record)
            edges = findings.at_grid_edge(record)
            rows.append(
                [
                    esc(self.label(family)),
                    f"{settings['lr']:g}",
                    esc(", ".join(scale)) or "none",
                    fmt(record["val_elbo_nats"], 2),
                    esc(" x ".join("{" + ", ".join(f"{v:g}" for v in vs) + "}" for vs in grid.values())),
                    (esc(", ".join(edges)), "varies") if edges else "",
                ]
            )
        first = next(iter(chosen.values()))
        return (
            "<h3 id='choices'>Choices made on the validation split</h3>"
            + table(
                [
                    "family",
                    "learning rate",
                    "fixed scale",
                    "validation ELBO, nats/image ↑",
                    "grid tried",
                    "at the grid's edge",
                ],
                rows,
                "id='choices-table'",
            )
            + (
                f"<p class='small'>Each grid point is one {first['epochs']}-epoch run of seed "
                f"{first['seed']} at z = {first['latent_dim']} on the training split less the validation "
                "images; the point with the best validation ELBO (over its epochs) is used for every seed "
                "and latent size. The test images play no part. gaussian_shared's sigma is not chosen: after "
                "each epoch it is set to the root-mean-square residual over the whole training split.</p>"
            )
        )

    def split_sizes(self) -> str:
        """'4,000 train / 1,000 test (500 scored)' from the dataset manifest (else baselines.json)."""
        train, test = (findings.split_size(self.study, key) for key in ("n_train", "n_test"))
        scored = pd.to_numeric(self.column("n_test"), errors="coerce").dropna()
        if train is None and test is None:
            return "unknown (pass the dataset manifest: <code>vaebench report --manifest</code>)"
        text = (
            f"{train:,} train / {test:,} test"
            if train is not None and test is not None
            else f"{train or test:,} {'train' if train is not None else 'test'}"
        )
        if len(scored) and (test is None or scored.max() < test):
            text += f"; the first {int(scored.max()):,} test images scored"
        return text

    def values(
        self, *columns: str, detail: str | None = None, short: int | None = None, rename: dict | None = None
    ) -> str:
        """The distinct values of the columns over all runs: one value, or 'varies: a (3), b (1)'.

        Several columns are pooled (training's and evaluation's copy of a version); `detail` names a
        column whose value is added in brackets (a device's name).
        """
        m, seen = self.study.metrics, Counter()
        for column in (c for c in columns if c in m.columns):
            for i, value in m[column].items():
                if value is None or value == "" or (not isinstance(value, str) and pd.isna(value)):
                    continue
                text = self.show(value, short, rename)
                extra = m.at[i, detail] if detail in m.columns else None
                if extra is not None and pd.notna(extra) and str(extra) not in ("", text):
                    text += f" ({extra})"
                seen[text] += 1
        if not seen:
            return "unknown"
        if len(seen) == 1:
            return esc(next(iter(seen)))
        return "varies: " + ", ".join(f"{esc(v)} ({n})" for v, n in seen.most_common())

    @staticmethod
    def show(value, short: int | None, rename: dict | None) -> str:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        text = str(value)
        if rename:
            text = rename.get(text, text)
        return text[:short] if short else text

    def config_note(self, key: str, found) -> str:
        """What the config asked for, where it differs from what the runs on disk cover."""
        wanted = self.config.get(key)
        if not wanted or {str(w) for w in wanted} == {str(f) for f in found}:
            return ""
        return f" <span class='small'>(the config asks for: {esc(', '.join(map(str, wanted)))})</span>"

    def protocol_note(self) -> str:
        ks = pd.to_numeric(self.column("k"), errors="coerce").dropna()
        if not ks.empty and ks.max() < PAPER_K:
            why = f"fewer than the paper protocol's {PAPER_K}: a looser estimate"
            return f" <span class='small'>({why})</span>"
        return ""

    def date_range(self) -> str:
        start, end = self.column("started_at").dropna(), self.column("finished_at").dropna()
        if start.empty:
            return "unknown"
        return f"{esc(min(start))} to {esc(max(end) if not end.empty else '?')}"

    def findings(self) -> str:
        items = "".join(f"<li>{finding_html(f)}</li>" for f in findings.findings(self.study))
        return f"<ul class='findings'>{items}</ul>"

    def caption(self, name: str) -> tuple[str, str]:
        """(title, caption HTML) of a figure from its .rst file; a missing file is said in the caption."""
        try:
            caption = captions.read_caption(self.captions_dir, name)
        except FileNotFoundError:
            path = captions.caption_path(self.captions_dir, name)
            return name, f"<span class='warn'>No caption: {esc(path)} does not exist.</span>"
        return caption.title, caption_html(caption.text)

    def figures(self) -> str:
        blocks = []
        for number, name in enumerate(captions.FIGURES, start=1):
            title, caption = self.caption(name)
            path = self.figures_dir / f"{name}.png"
            if path.exists():
                data = base64.b64encode(path.read_bytes()).decode("ascii")
                body = f"<img src='data:image/png;base64,{data}' alt='{esc(title)}'>"
            else:
                body = f"<p class='warn'>{esc(path)} does not exist: run <code>vaebench figures</code>.</p>"
            blocks.append(
                f"<figure id='fig-{name}'>{body}<figcaption><b>Figure {number}. {esc(title)}.</b> "
                f"{caption}</figcaption></figure>"
            )
        return "\n".join(blocks)

    def fixed_options(self) -> str:
        given = self.column("family_options").dropna().astype(str)
        options = sorted({o for o in given if o not in ("{}", "")})
        return esc(", ".join(options)) or "none recorded"

    @staticmethod
    def number(column: str, value) -> str:
        """A cell of the every-run table: counts as integers, bits/dim and MSE to 4 decimals, the rest 2."""
        if not finite(value):
            return ""
        if column in INTEGER_COLUMNS and float(value).is_integer():
            return str(int(value))
        if column.startswith(("fd_", "sharpness_")):
            return fmt_value(column, value)
        return fmt(value, 4 if column in ("bpd_disc", "bpd_deq", "recon_mse") else 2)

    def runs(self) -> str:
        m = self.study.metrics
        columns = [
            ("bpd_disc", "bits/dim disc ↓"),
            ("bpd_deq", "bits/dim deq ↓"),
            ("ll_disc_nats", "LL disc, nats ↑"),
            ("ll_deq_nats", "LL deq, nats ↑"),
            ("elbo_nats", "ELBO, nats ↑"),
            ("kl_nats", "KL, nats"),
            ("recon_mse", "recon MSE ↓"),
            ("knn_acc", "kNN acc ↑"),
            ("active_units", "active units"),
            ("coverage90", "recon. coverage 90%"),
            ("epochs_to_95", "epochs to 95% ↓"),
            ("fd_samples_mean", "FD samples ↓"),
            ("fd_recon_mean", "FD recon ↓"),
            ("sharpness_mean", "sharpness"),
            ("recon_class_acc_mean", "recon class acc ↑"),
            ("ll_disc_rise_nats", "LL rise K/4→K, nats"),
            ("k", "K"),
            ("n_test", "test images"),
            ("epochs_completed", "epochs done"),
            ("train_seconds", "train s"),
            ("eval_seconds", "eval s"),
        ]
        columns = [(c, h) for c, h in columns if c in m.columns]

        def text(r, c, cut=None):
            return esc(str(r[c])[:cut]) if c in r.index and pd.notna(r[c]) else ""

        rows = []
        for _, r in m.iterrows():
            status_css = "status-ok" if r["status"] == OK else "status-bad"
            cells = [
                self.label(r["family"]),
                esc(r["latent_dim"]),
                esc(r["seed"]),
                (esc(r["status"]), status_css),
                esc(r["note"]),
            ]
            cells += [(self.number(c, r[c]), "num") for c, _ in columns]
            cells += [text(r, "device"), text(r, "git_commit", 10), text(r, "started_at"), esc(r["run_dir"])]
            rows.append(cells)
        header = (
            ["family", "z", "seed", "status", "note"]
            + [h for _, h in columns]
            + ["device", "commit", "started", "run directory"]
        )
        tests = self.study.tests[self.study.tests["metric"].isin(list(METRIC_NAMES))]
        notes = tests["note"].value_counts()
        common = notes.index[0] if len(notes) and notes.iloc[0] > 1 else ""  # said once, above the table
        test_rows = [
            [
                esc(t["metric"]),
                esc(t["latent_dim"]),
                self.label(t["family_a"]),
                self.label(t["family_b"]),
                esc(t["n_pairs"]),
                (f"{fmt(t['diff_mean'])} [{fmt(t['diff_ci95_low'])}, {fmt(t['diff_ci95_high'])}]", "num"),
                (fmt(t["cohens_dz"], 2), "num"),
                (fmt(t["rank_biserial"], 2), "num"),
                (fmt_p(t["t_p"]), "num"),
                (fmt_p(t["t_p_holm"]), "num"),
                (fmt_p(t["wilcoxon_p"]), "num"),
                (fmt_p(t["wilcoxon_p_holm"]), "num"),
                "yes" if t["significant"] else "no",
                esc(t["note"] if t["note"] != common else ""),
            ]
            for _, t in tests.iterrows()
        ]
        said = f"<p class='small'>Unless a row says otherwise: {esc(common)}.</p>" if common else ""
        return (
            f"<details class='runs'><summary>Every run ({len(m)}): status, numbers, provenance</summary>"
            + table(header, rows, "id='runs-table'")
            + "</details>"
            + f"<details class='runs'><summary>Every pairwise test of the bits/dim ({len(tests)}; the "
            "other measures' tests are in tests.csv)</summary>"
            + said
            + table(
                [
                    "metric",
                    "z",
                    "a",
                    "b",
                    "n",
                    "a − b, bits/dim [95% CI]",
                    "Cohen's dz",
                    "rank-biserial",
                    "t-test p",
                    "p_holm",
                    "Wilcoxon p",
                    "p_holm",
                    "significant",
                    "note",
                ],
                test_rows,
            )
            + "</details>"
        )

    def subtitle(self) -> str:
        n = len(self.study.families)
        seeds = sorted(int(x) for x in self.study.metrics["seed"].unique())
        shown = f"{len(seeds)} seed{'s' if len(seeds) != 1 else ''} ({', '.join(map(str, seeds))})"
        return (
            f"{n} famil{'ies' if n != 1 else 'y'} × latent dimensions "
            f"{', '.join(map(str, self.study.dims))} × {shown}; {len(self.study.metrics)} runs. "
            "Lower bits/dim is better."
        )

    def render(self) -> str:
        dataset = self.values("dataset")
        template = Template(resources.files("vaebench").joinpath("templates/report.html").read_text("utf-8"))
        headline = self.headline()  # before the other tables and findings: it numbers the footnotes first
        written = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        return template.substitute(
            title=f"vaebench: output distributions for image VAEs on {dataset}",
            mark=MARK.format(written=written),
            subtitle=esc(self.subtitle()),
            verdict=self.verdict(),
            limits=self.limits(),
            setup=self.setup(),
            headline=headline,
            convergence=self.convergence(),
            measures=self.measures(),
            ranking=self.ranking(),
            findings=self.findings(),
            figures=self.figures(),
            runs=self.runs(),
            fixed_options=self.fixed_options(),
            alpha=stats.ALPHA,
            min_pairs_t=stats.MIN_PAIRS_T,
            min_pairs_wilcoxon=stats.MIN_PAIRS_WILCOXON,
            noise_se=stats.NOISE_SE,
        )


def write_index(index: Path) -> str:
    """The index of studies beside their reports: one line per INDEX_DIR/*/index.html written by `vaebench
    report`, with its title and date, newest first."""
    entries = []
    for path in sorted(index.parent.glob("*/index.html")):
        text = path.read_text(encoding="utf-8", errors="replace")[:4000]
        mark = re.search(r"<meta name='vaebench-report' content='([^']*)'>", text)
        if mark is None:
            continue
        title = re.search(r"<title>(.*?)</title>", text, re.S)
        entries.append((mark.group(1), path.parent.name, html.unescape(title.group(1)) if title else ""))
    entries.sort(reverse=True)
    items = "".join(
        f"<li><a href='{esc(name)}/index.html'>{esc(name)}</a>: {esc(title)} "
        f"<span class='small'>(written {esc(written)})</span></li>"
        for written, name, title in entries
    )
    page = (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'><title>vaebench reports</title>"
        "<style>body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;line-height:1.5}"
        ".small{color:#555;font-size:0.85rem}</style></head><body><h1>vaebench reports</h1>"
        "<p>One report per study (the config's <code>study</code> key), each a self-contained page.</p>"
        f"<ul>{items or '<li>no report yet</li>'}</ul></body></html>\n"
    )
    atomic_write(index, lambda tmp: tmp.write_text(page, encoding="utf-8"))
    return page


def load_config(path: Path | None) -> dict | None:
    if path is None:
        return None
    try:
        config = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ResultsError(f"config {path} does not exist") from None
    except yaml.YAMLError as err:
        raise ResultsError(f"config {path} is not valid YAML ({type(err).__name__})") from None
    return config if isinstance(config, dict) else None


def run(args: argparse.Namespace) -> int:
    study = Study.load(args.results, args.manifest, args.quality)
    figures = args.figures or args.results / "figures"
    if not figures.is_dir():  # else every figure would be left out without a word
        raise ResultsError(
            f"figures folder {figures} does not exist: run `vaebench figures --results "
            f"{args.results}` first, or point --figures at it"
        )
    report = Report(study, load_config(args.config), figures, args.captions)
    page = report.render()
    atomic_write(args.out, lambda tmp: tmp.write_text(page, encoding="utf-8"))
    if args.index is not None:
        write_index(args.index)
    print(f"report ({len(page) // 1024} KiB, {len(study.metrics)} runs) -> {args.out}")
    return 0
