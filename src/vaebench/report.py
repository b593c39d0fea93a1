"""`vaebench report`: one self-contained HTML page (figures embedded, opens offline) answering the study's question.

Everything on the page comes from the results directory (the tables of `vaebench aggregate`,
which carry every run.json / metrics.json field, and the PNGs of `vaebench figures`) and,
when given, the study config. The findings are sentences built by fixed rules from those
numbers (`findings`), so the text never claims more than the tests allow. The page layout
lives in templates/report.html; this module fills in its sections.
"""

import argparse
import base64
import datetime as dt
import html
import math
from collections import Counter
from importlib import resources
from pathlib import Path
from string import Template

import numpy as np
import pandas as pd
import yaml

from vaebench import stats
from vaebench.aggregate import DIVERGED, OK, ResultsError
from vaebench.figures import BPD_LABEL, CAPTIONS, FIGURES, METRIC_NAMES, Study
from vaebench.utils import atomic_write

PAPER_K = 5000  # Burda et al.'s protocol


def esc(value) -> str:
    return html.escape(str(value))


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

    def __init__(self, study: Study, config: dict | None, figures_dir: Path):
        self.study, self.config, self.figures_dir = study, config or {}, figures_dir
        self.summary = study.summary.set_index(["family", "latent_dim"])
        self.footnotes: dict[str, int] = {}

    # -- small lookups ------------------------------------------------------------------------------
    def label(self, family: str) -> str:
        return esc(self.study.labels.get(family, family))

    def stat(self, family: str, dim: int, metric: str) -> dict:
        """mean / ci95_low / ci95_high / n / note of one metric, NaN when the family has no row there."""
        key = (family, dim)
        row = self.summary.loc[key] if key in self.summary.index else None
        get = (lambda k, d=math.nan: row[k] if row is not None and k in row.index else d)
        return {"mean": get(f"{metric}_mean"), "low": get(f"{metric}_ci95_low"), "high": get(f"{metric}_ci95_high"),
                "n": int(get(f"{metric}_n", 0) or 0), "note": get(f"{metric}_note", "") or ""}

    def value(self, family: str, dim: int, metric: str = "bpd_disc") -> str:
        s = self.stat(family, dim, metric)
        ci = f" ± {fmt(s['high'] - s['mean'])}" if finite(s["high"]) else ""
        return f"{fmt(s['mean'])}{ci} bits/dim (n = {s['n']})"

    def test(self, metric: str, dim: int, a: str, b: str):
        """The tests.csv row comparing a and b (either order), oriented so that diff_mean = a - b; None if absent."""
        t = self.study.tests
        hit = t[(t["metric"] == metric) & (t["latent_dim"] == dim)
                & (((t["family_a"] == a) & (t["family_b"] == b)) | ((t["family_a"] == b) & (t["family_b"] == a)))]
        if hit.empty:
            return None
        row = hit.iloc[0].copy()
        if row["family_a"] != a:
            row["diff_mean"] = -row["diff_mean"]
        return row

    def evidence(self, row) -> str:
        """A test result in words: significant or not, with p, or why there was no test."""
        if row is None:
            return "no test: the two families share no ok seed"
        if not finite(row["t_p_holm"]):
            return f"not tested: {stats.count(int(row['n_pairs']), 'paired seed')}"
        verdict = "significant" if row["significant"] else "not significant"
        return f"{verdict}: paired t-test over {int(row['n_pairs'])} seeds, {p_holm(row['t_p_holm'])}"

    def footnote(self, note: str) -> str:
        number = self.footnotes.setdefault(note, len(self.footnotes) + 1)
        return f"<sup>{number}</sup>"

    def column(self, name: str) -> pd.Series:
        metrics = self.study.metrics
        return metrics[name] if name in metrics.columns else pd.Series([], dtype=object)

    # -- sections -----------------------------------------------------------------------------------
    def headline(self) -> str:
        """Families x latent dimensions: bits/dim with 95% CI, the best per column in bold, ties marked."""
        dims, families = self.study.dims, self.study.families
        best, tied = {}, {}
        for dim in dims:
            for metric in METRIC_NAMES:
                means = {f: self.stat(f, dim, metric)["mean"] for f in families}
                means = {f: m for f, m in means.items() if finite(m)}
                if means:
                    best[dim, metric] = winner = min(means, key=means.get)
                    tied[dim, metric] = {f for f in means if f != winner and (t := self.test(metric, dim, winner, f))
                                         is not None and finite(t["t_p_holm"]) and not t["significant"]}
        rows = []
        for family in families:
            cells = [self.label(family) + self.comparability_mark(family)]
            for dim in dims:
                for metric in METRIC_NAMES:
                    cells.append(self.headline_cell(family, dim, metric, best.get((dim, metric)),
                                                    tied.get((dim, metric), set())))
            rows.append(cells)
        top = "<tr><th rowspan='2'>family</th>" + "".join(
            f"<th colspan='2'>latent dimension {d}</th>" for d in dims) + "</tr>"
        sub = "<tr>" + "".join(
            f"<th><a href='#likelihoods'>{name}</a><br><span class='small'>mean ± 95% CI, lower is better</span></th>"
            for _ in dims for name in METRIC_NAMES.values()) + "</tr>"
        body = "\n".join("<tr>" + "".join(f"<td>{c}</td>" if i == 0 else c for i, c in enumerate(r)) + "</tr>"
                         for r in rows)
        notes = "".join(f"<li value='{n}'>{esc(text)}</li>" for text, n in self.footnotes.items())
        legend = ("<p class='small'><b>Bold</b>: the lowest mean in its column. <sup>=</sup>: not significantly "
                  "worse than the bold one (paired t-test over seeds, Holm-corrected, p_holm ≥ 0.05). The CI is the "
                  "t-interval across ok seeds (none with one seed); n counts ok seeds. Diverged, missing and "
                  "unevaluated runs are counted under the value, never averaged. bits/dim = −log2 likelihood "
                  "per sub-pixel; <a href='#likelihoods'>how each is defined</a>.</p>")
        return (f"<table id='headline'><thead>{top}{sub}</thead><tbody>\n{body}\n</tbody></table>{legend}"
                + (f"<ol class='small'>{notes}</ol>" if notes else ""))

    def headline_cell(self, family: str, dim: int, metric: str, best: str | None, tied: set) -> str:
        s = self.stat(family, dim, metric)
        counts = self.status_counts(family, dim)
        note = self.footnote(s["note"]) if s["note"] else ""
        if not finite(s["mean"]):
            detail = counts or ("no ok run" if not note else "")
            return f"<td class='num'>n/a{note}<br><span class='small'>{detail}</span></td>"
        ci = f" ± {fmt(s['high'] - s['mean'])}" if finite(s["high"]) else ""
        mark = "<sup>=</sup>" if family in tied else ""
        css = "num best" if family == best else "num"
        detail = f"n = {s['n']}" + (f"; {counts}" if counts else "")
        return f"<td class='{css}'>{fmt(s['mean'])}{ci}{mark}{note}<br><span class='small'>{detail}</span></td>"

    def status_counts(self, family: str, dim: int) -> str:
        runs = self.study.metrics[(self.study.metrics["family"] == family) & (self.study.metrics["latent_dim"] == dim)]
        counts = runs.loc[runs["status"] != OK, "status"].value_counts()
        return ", ".join(f"{n} {status}" for status, n in counts.items())

    def comparability_mark(self, family: str) -> str:
        """† where a run of this family trained without dequantization: its likelihoods are not comparable."""
        runs = self.study.metrics[self.study.metrics["family"] == family]
        flags = [runs[c] for c in ("dequantize", "ll_comparable") if c in runs.columns]
        bad = any(((f.astype(str).str.lower() == "false")).any() for f in flags)
        why = "trained on v/255 without dequantization: likelihoods not comparable"
        return f" <span title='{why}'>†</span>" if bad else ""

    def ranking(self) -> str:
        ranks = stats.ranking(self.study.metrics, self.study.tests, "bpd_disc", self.study.families)
        if ranks.empty:
            return "<p>No ok run has a discretized bits/dim yet.</p>"
        blocks = []
        for dim, at in ranks.groupby("latent_dim"):
            shared = at["rank"].duplicated(keep=False)
            header = ["rank", "family", BPD_LABEL["bpd_disc"]]
            rows = [[f"{'=' if sh else ''}{int(r['rank'])}", self.label(r["family"]), (fmt(r["mean"]), "num")]
                    for (_, r), sh in zip(at.iterrows(), shared)]
            if at["tested"].iloc[0]:
                how = "rank = 1 + the number of families significantly better; = marks a shared rank"
                header.append("not separable from")
                for row, (_, r) in zip(rows, at.iterrows()):
                    row.append(", ".join([self.label(f) for f in r["tied_with"].split()]
                                         + [f"{self.label(f)} (no test)" for f in r["untested_with"].split()]) or "—")
            else:
                how = "no pair could be tested (too few paired seeds): the order of the means only"
            blocks.append(f"<div><b>latent dimension {dim}</b><br><span class='small'>{how}</span>"
                          + table(header, rows) + "</div>")
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
            ("families", families + self.config_note("losses", self.study.families)),
            ("latent dimensions", dims + self.config_note("latent_dims", self.study.dims)),
            ("seeds", ", ".join(map(str, seeds)) + self.config_note("seeds", seeds)),
            ("architecture", self.values("arch") + ", hidden width " + self.values("hidden")),
            ("epochs", self.values("epochs")),
            ("batch size, learning rate", self.values("batch_size") + ", " + self.values("lr")),
            ("training input", self.values("dequantize", rename={"True": "dequantized, x = (v + u)/256",
                                                                  "False": "v/255, not dequantized (†)"})),
            ("importance samples K", self.values("k") + self.protocol_note()),
            ("test images scored", self.values("n_test")),
            ("evaluation noise seed", self.values("eval_seed")),
            ("per-pixel likelihood math", self.values("family_dtype") + ", summed in float64; "
             + self.values("compiled", rename={"True": "one fused torch.compile kernel", "False": "eager"})),
            ("training device", self.values("device", detail="device_name")),
            ("evaluation device", self.values("eval_device", detail="eval_device_name")),
            ("python / torch / numpy", " / ".join(self.values(f"{p}_version", f"eval_{p}_version")
                                                 for p in ("python", "torch", "numpy"))),
            ("vaebench version", self.values("vaebench_version", "eval_vaebench_version")),
            ("git commit", self.values("git_commit", "eval_git_commit", short=12)),
            ("host", self.values("hostname", "eval_hostname")),
            ("runs trained", self.date_range()),
            ("runs", ", ".join(f"{n} {s}" for s, n in m["status"].value_counts().items())),
            ("report written", dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")),
        ]
        cells = [[esc(k), (v, "varies" if "varies:" in v else "")] for k, v in rows]
        return table(["", "value (from the runs' run.json / metrics.json)"], cells, "id='setup-table'") + (
            "<p class='small'>Highlighted rows differ between runs: each value is followed by the number of run "
            "records (run.json and metrics.json each count) that have it.</p>")

    def values(self, *columns: str, detail: str | None = None, short: int | None = None,
               rename: dict | None = None) -> str:
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
            return f" <span class='small'>(fewer than the paper protocol's {PAPER_K}: a looser estimate)</span>"
        return ""

    def date_range(self) -> str:
        start, end = self.column("started_at").dropna(), self.column("finished_at").dropna()
        if start.empty:
            return "unknown"
        return f"{esc(min(start))} to {esc(max(end) if not end.empty else '?')}"

    def findings(self) -> str:
        items = (self.sample_size_finding() + self.status_finding() + self.winner_findings()
                 + self.edge_bin_finding() + self.bernoulli_finding() + self.fixed_gaussian_finding()
                 + self.calibration_finding()
                 + self.comparability_finding())
        return "<ul class='findings'>" + "".join(f"<li>{i}</li>" for i in items) + "</ul>"

    def sample_size_finding(self) -> list[str]:
        ok = self.study.ok
        n = int(ok.groupby(["family", "latent_dim"]).size().max()) if not ok.empty else 0
        if n < stats.MIN_PAIRS_T:
            return [f"<b>Too few seeds for statistics.</b> At most {stats.count(n, 'ok seed')} per family and "
                    "latent dimension: no test can tell a real difference from seed-to-seed variation (the paired "
                    f"t-test needs {stats.MIN_PAIRS_T} seeds), so every comparison below is between means only."]
        if n < stats.MIN_PAIRS_WILCOXON:
            return [f"Up to {n} seeds per family and latent dimension: paired t-tests only (the Wilcoxon "
                    f"signed-rank test cannot reach p &lt; {stats.ALPHA} before {stats.MIN_PAIRS_WILCOXON} seeds), "
                    "and their normality assumption cannot be checked with so few differences."]
        return [f"Up to {n} seeds per family and latent dimension: paired t-tests and Wilcoxon signed-rank tests, "
                "Holm-corrected within each latent dimension."]

    def status_finding(self) -> list[str]:
        bad = self.study.metrics[self.study.metrics["status"] != OK]
        if bad.empty:
            n = len(self.study.metrics)
            return ["The one run finished and was evaluated." if n == 1 else
                    f"{'Both' if n == 2 else f'All {n}'} runs finished and were evaluated."]
        listed = [f"{self.label(r['family'])} z = {r['latent_dim']} seed {r['seed']} ({esc(r['status'])}"
                  + (f": {esc(r['note'])}" if r["note"] and r["status"] != DIVERGED else "") + ")"
                  for _, r in bad.head(12).iterrows()]
        more = f" and {len(bad) - 12} more (see every run below)" if len(bad) > 12 else ""
        return [f"<b>{len(bad)} of {len(self.study.metrics)} runs are not in the means and tests</b>, but counted "
                f"in the table: {'; '.join(listed)}{more}."]

    def winner_findings(self, metric: str = "bpd_disc") -> list[str]:
        items = []
        for dim in self.study.dims:
            means = {f: self.stat(f, dim, metric)["mean"] for f in self.study.families}
            order = sorted((f for f in means if finite(means[f])), key=means.get)
            if not order:
                items.append(f"At latent dimension {dim} no ok run has a {METRIC_NAMES[metric]} yet.")
                continue
            best = order[0]
            text = (f"<b>Latent dimension {dim}: {self.label(best)} has the lowest {METRIC_NAMES[metric]}</b>, "
                    f"{self.value(best, dim, metric)}")
            if len(order) == 1:
                items.append(text + "; it is the only family with a value.")
                continue
            runner = order[1]
            text += (f"; next is {self.label(runner)} at {fmt(means[runner])} "
                     f"(+{fmt(means[runner] - means[best])}).")
            tests = {f: self.test(metric, dim, best, f) for f in order[1:]}
            tested = {f: t for f, t in tests.items() if t is not None and finite(t["t_p_holm"])}
            wins = [f for f, t in tested.items() if t["significant"] and t["diff_mean"] < 0]
            ties = [f for f, t in tested.items() if not t["significant"]]
            losses = [f for f, t in tested.items() if t["significant"] and t["diff_mean"] > 0]
            untested = [f for f in order[1:] if f not in tested]
            if not tested:
                text += (" No test was possible (too few paired seeds), so this is the order of the means, "
                         "not a significant win.")
            elif len(wins) == len(order) - 1:
                worst_p = max(t["t_p_holm"] for t in tested.values())
                bound = p_holm(worst_p).replace("=", "≤")
                text += (" The win is significant against every other family (paired t-test over seeds, "
                         f"Holm-corrected, {bound}).")
            else:
                if wins:
                    text += f" It is significantly better than {len(wins)} famil{'y' if len(wins) == 1 else 'ies'}"
                    text += "." if not ties else ","
                if ties:
                    named = ", ".join(f"{self.label(f)} ({p_holm(tests[f]['t_p_holm'])})" for f in ties)
                    text += (" but" if wins else " It is") + f" not significantly better than {named}: they tie."
                if losses:
                    text += (" On the seeds both have, " + ", ".join(self.label(f) for f in losses)
                             + " is significantly better (its mean is pulled up by seeds the winner lacks).")
                if untested:
                    names = ", ".join(self.label(f) for f in untested)
                    text += f" Not tested against {names} (too few paired seeds)."
            items.append(text)
        return items

    def bernoulli_finding(self) -> list[str]:
        have = set(self.study.ok["family"])
        if not {"bernoulli", "continuous_bernoulli"} <= have:
            return ["BCE read as a continuous Bernoulli against the continuous Bernoulli trained properly: not "
                    "compared here, the study lacks ok runs of " + " or ".join(
                        f for f in ("bernoulli", "continuous_bernoulli") if f not in have) + "."]
        parts = []
        for dim in self.study.dims:
            b, cb = (self.stat(f, dim, "bpd_disc")["mean"] for f in ("bernoulli", "continuous_bernoulli"))
            if not (finite(b) and finite(cb)):
                continue
            better = "the properly trained continuous Bernoulli" if cb < b else "BCE read as CB"
            parts.append(f"at latent dimension {dim}, {fmt(b)} (BCE read as CB) against {fmt(cb)} (continuous "
                         f"Bernoulli): {better} is better by {fmt(abs(b - cb))} bits/dim "
                         f"({self.evidence(self.test('bpd_disc', dim, 'bernoulli', 'continuous_bernoulli'))})")
        return ["<b>BCE read as a continuous Bernoulli vs the continuous Bernoulli trained with its normaliser</b> "
                "(both scored through the same CB density of the decoder's logits; only the training objective "
                "differs), discretized bits/dim: " + "; ".join(parts) + "."] if parts else []

    def fixed_gaussian_finding(self) -> list[str]:
        """The seed's claim: squared error (a fixed-scale Gaussian) fails next to BCE. Judged per latent
        dimension on three means against BCE: likelihood, kNN accuracy, reconstruction MSE."""
        have = set(self.study.ok["family"])
        reference = next((f for f in ("bernoulli", "continuous_bernoulli") if f in have), None)
        if "gaussian_fixed" not in have or reference is None:
            return ["The seed's claim that a fixed-scale Gaussian (squared error) fails: not testable here, the "
                    "study lacks ok runs of gaussian_fixed or of a Bernoulli family."]
        criteria = (("bpd_disc", "bits/dim", 1), ("knn_acc", "kNN accuracy", -1),
                    ("recon_mse", "reconstruction MSE", 1))
        parts, learned = [], []
        for dim in self.study.dims:
            worse, not_worse = [], []
            for metric, name, sign in criteria:
                g, r = self.stat("gaussian_fixed", dim, metric)["mean"], self.stat(reference, dim, metric)["mean"]
                if finite(g) and finite(r):
                    (worse if sign * (g - r) > 0 else not_worse).append(f"{name} {fmt(g)} vs {fmt(r)}")
            if not worse and not not_worse:
                continue
            verdict = ("fails as the seed says" if not not_worse else
                       "does not fail as the seed says" if not worse else "fails only in part")
            parts.append(f"at latent dimension {dim} it {verdict} (worse: {', '.join(worse) or 'none'}"
                         + (f"; not worse: {', '.join(not_worse)}" if not_worse else "") + ")")
            g, r = (self.stat(f, dim, "bpd_disc")["mean"] for f in ("gaussian_fixed", reference))
            if finite(g) and finite(r) and g > r:  # the fixed scale loses on likelihood: does a learned one?
                learned += [(f, dim, m, m <= r) for f in ("gaussian", "gaussian_shared")
                            if finite(m := self.stat(f, dim, "bpd_disc")["mean"])]
        if not parts:
            return []
        text = (f"<b>The fixed-scale Gaussian.</b> The seed post says squared error “doesn't seem to work at all” "
                f"next to BCE, which gives “a nicer latent space” and “much sharper reconstructions”. Against "
                f"{self.label(reference)}, means over seeds: " + "; ".join(parts) + ".")
        rescued = [f"{self.label(f)} {fmt(m)} at z = {dim}" for f, dim, m, ok in learned if ok]
        not_rescued = [f"{self.label(f)} {fmt(m)} at z = {dim}" for f, dim, m, ok in learned if not ok]
        if rescued:
            text += (" Where it loses on likelihood, a learned scale does not (" + ", ".join(rescued) + " bits/dim): "
                     "the fixed scale, not the Gaussian shape, is what costs likelihood there.")
        if not_rescued:
            text += (" Not every learned scale rescues it: " + ", ".join(not_rescued) + " bits/dim is still worse "
                     f"than {self.label(reference)}.")
        diverged = int(((self.study.metrics["family"] == "gaussian_fixed")
                        & (self.study.metrics["status"] == DIVERGED)).sum())
        return [text + (f" {stats.count(diverged, 'gaussian_fixed run')} diverged." if diverged else "")]

    def edge_bin_finding(self) -> list[str]:
        """Where the two likelihood columns disagree on the winner, say why: the real line's edge bins."""
        items = []
        for dim in self.study.dims:
            means = {m: {f: self.stat(f, dim, m)["mean"] for f in self.study.families} for m in ("bpd_disc", "bpd_deq")}
            means = {m: {f: v for f, v in vals.items() if finite(v)} for m, vals in means.items()}
            if not means["bpd_disc"] or not means["bpd_deq"]:
                continue
            best = {m: min(vals, key=vals.get) for m, vals in means.items()}
            gaps = {f: means["bpd_deq"][f] - means["bpd_disc"][f] for f in means["bpd_disc"] if f in means["bpd_deq"]}
            widest = max(gaps, key=gaps.get)
            if best["bpd_disc"] == best["bpd_deq"] and gaps[widest] < 1:
                continue
            ranks = (f"both columns rank {self.label(best['bpd_disc'])} first" if best["bpd_disc"] == best["bpd_deq"]
                     else f"the discretized column ranks {self.label(best['bpd_disc'])} first, the dequantized "
                          f"column {self.label(best['bpd_deq'])}")
            items.append(
                f"Latent dimension {dim}: {ranks}. The widest gap between the two columns is "
                f"{self.label(widest)}'s ({fmt(means['bpd_deq'][widest])} vs {fmt(means['bpd_disc'][widest])} "
                "bits/dim). A family on the whole real line (gaussian*, laplace*, discretized_logistic) gives the "
                "edge bins v = 0 and v = 255 all its mass below 0 and above 1, which the discretized likelihood "
                "counts and the density of dequantized values in (0, 1) does not; on images with much black or "
                "white background that mass is a large share of the score. Families on (0, 1) have no such "
                "mass, so read the two columns together.")
        return items

    def calibration_finding(self) -> list[str]:
        rows = [(f, d, self.stat(f, d, "coverage90")["mean"]) for f in self.study.families for d in self.study.dims]
        rows = [r for r in rows if finite(r[2])]
        if not rows:
            return []
        text = "Calibration: the central 90% predictive interval (0.90 is ideal) covers "
        if len({f for f, _, _ in rows}) == 1:
            return [text + f"{fmt(min(r[2] for r in rows))} to {fmt(max(r[2] for r in rows))} of the test "
                           f"sub-pixels for {self.label(rows[0][0])}, the one family here with a learned scale."]
        closest = min(rows, key=lambda r: abs(r[2] - 0.9))
        worst = max(rows, key=lambda r: abs(r[2] - 0.9))
        return [text + f"between {fmt(min(r[2] for r in rows))} and {fmt(max(r[2] for r in rows))} of the test "
                       f"sub-pixels; closest to 0.90 is {self.label(closest[0])} at z = {closest[1]} "
                       f"({fmt(closest[2])}), furthest {self.label(worst[0])} at z = {worst[1]} ({fmt(worst[2])})."]

    def comparability_finding(self) -> list[str]:
        marked = [f for f in self.study.families if self.comparability_mark(f)]
        if not marked:
            return []
        return ["<b>Not comparable (†):</b> " + ", ".join(self.label(f) for f in marked) + " were trained without "
                "dequantization (x = v/255, clamped where the family needs the open interval), as the seed did; "
                "their likelihoods are not on the same footing as the others'."]

    def figures(self) -> str:
        blocks = []
        for number, name in enumerate(FIGURES, start=1):
            title, caption = CAPTIONS[name]
            path = self.figures_dir / f"{name}.png"
            if path.exists():
                data = base64.b64encode(path.read_bytes()).decode("ascii")
                body = f"<img src='data:image/png;base64,{data}' alt='{esc(title)}'>"
            else:
                body = f"<p class='warn'>{esc(path)} does not exist: run <code>vaebench figures</code>.</p>"
            blocks.append(f"<figure id='fig-{name}'>{body}<figcaption><b>Figure {number}. {esc(title)}.</b> "
                          f"{esc(caption)}</figcaption></figure>")
        return "\n".join(blocks)

    def fixed_options(self) -> str:
        options = sorted({o for o in self.column("family_options").dropna().astype(str) if o not in ("{}", "")})
        return esc(", ".join(options)) or "none recorded"

    def runs(self) -> str:
        m = self.study.metrics
        columns = [("bpd_disc", "bits/dim disc ↓"), ("bpd_deq", "bits/dim deq ↓"),
                   ("ll_disc_nats", "LL disc, nats ↑"), ("ll_deq_nats", "LL deq, nats ↑"),
                   ("elbo_nats", "ELBO, nats ↑"), ("kl_nats", "KL, nats"), ("recon_mse", "recon MSE ↓"),
                   ("knn_acc", "kNN acc ↑"), ("active_units", "active units"), ("coverage90", "coverage 90%"),
                   ("k", "K"), ("n_test", "test images"), ("epochs_completed", "epochs done"),
                   ("train_seconds", "train s"), ("eval_seconds", "eval s")]
        columns = [(c, h) for c, h in columns if c in m.columns]
        text = (lambda r, c, cut=None: esc(str(r[c])[:cut]) if c in r.index and pd.notna(r[c]) else "")
        rows = []
        for _, r in m.iterrows():
            status_css = "status-ok" if r["status"] == OK else "status-bad"
            cells = [self.label(r["family"]), esc(r["latent_dim"]), esc(r["seed"]), (esc(r["status"]), status_css),
                     esc(r["note"])]
            cells += [(fmt(r[c], 4 if c in ("bpd_disc", "bpd_deq", "recon_mse") else 2), "num") for c, _ in columns]
            cells += [text(r, "device"), text(r, "git_commit", 10), text(r, "started_at"), esc(r["run_dir"])]
            rows.append(cells)
        header = ["family", "z", "seed", "status", "note"] + [h for _, h in columns] + [
            "device", "commit", "started", "run directory"]
        tests = self.study.tests
        test_rows = [[esc(t["metric"]), esc(t["latent_dim"]), self.label(t["family_a"]), self.label(t["family_b"]),
                      esc(t["n_pairs"]), (f"{fmt(t['diff_mean'])} [{fmt(t['diff_ci95_low'])}, "
                                          f"{fmt(t['diff_ci95_high'])}]", "num"),
                      (fmt(t["cohens_dz"], 2), "num"), (fmt(t["rank_biserial"], 2), "num"),
                      (fmt_p(t["t_p"]), "num"), (fmt_p(t["t_p_holm"]), "num"), (fmt_p(t["wilcoxon_p"]), "num"),
                      (fmt_p(t["wilcoxon_p_holm"]), "num"), "yes" if t["significant"] else "no", esc(t["note"])]
                     for _, t in tests.iterrows()]
        return (f"<details class='runs'><summary>Every run ({len(m)}): status, numbers, provenance</summary>"
                + table(header, rows, "id='runs-table'") + "</details>"
                + f"<details class='runs'><summary>Every pairwise test ({len(tests)})</summary>"
                + table(["metric", "z", "a", "b", "n", "a − b, bits/dim [95% CI]", "Cohen's dz", "rank-biserial",
                         "t-test p", "p_holm", "Wilcoxon p", "p_holm", "significant", "note"], test_rows)
                + "</details>")

    def render(self) -> str:
        dataset = self.values("dataset")
        template = Template(resources.files("vaebench").joinpath("templates/report.html").read_text("utf-8"))
        headline = self.headline()  # before findings: it numbers the footnotes
        return template.substitute(
            title=f"vaebench: output distributions for image VAEs on {dataset}",
            subtitle=(f"{len(self.study.families)} families × latent dimensions {', '.join(map(str, self.study.dims))}"
                      f" × seeds; {len(self.study.metrics)} runs. Lower bits/dim is better."),
            setup=self.setup(), headline=headline, ranking=self.ranking(), findings=self.findings(),
            figures=self.figures(), runs=self.runs(), fixed_options=self.fixed_options(), alpha=stats.ALPHA,
            min_pairs_t=stats.MIN_PAIRS_T, min_pairs_wilcoxon=stats.MIN_PAIRS_WILCOXON)


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


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--results", required=True, type=Path,
                   help="results/DATASET, after `vaebench aggregate` and `vaebench figures`")
    p.add_argument("--out", type=Path, default=Path("report/index.html"), help="the HTML file (default: %(default)s)")
    p.add_argument("--config", type=Path, default=None, help="the study config (YAML), to show what it asked for")
    p.add_argument("--figures", type=Path, default=None, help="folder of the figures (default: RESULTS/figures)")


def run(args: argparse.Namespace) -> int:
    study = Study.load(args.results)
    report = Report(study, load_config(args.config), args.figures or args.results / "figures")
    page = report.render()
    atomic_write(args.out, lambda tmp: tmp.write_text(page, encoding="utf-8"))
    print(f"report ({len(page) // 1024} KiB, {len(study.metrics)} runs) -> {args.out}")
    return 0
