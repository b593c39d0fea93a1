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

from vaebench import captions, findings, stats
from vaebench.findings import Finding, finite, fmt, fmt_p
from vaebench.results import BPD_LABEL, METRIC_NAMES, OK, ResultsError, Study
from vaebench.utils import atomic_write

PAPER_K = 5000  # Burda et al.'s protocol


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

    def __init__(self, study: Study, config: dict | None, figures_dir: Path,
                 captions_dir: Path = captions.DEFAULT_DIR):
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
        """Families x latent dimensions: bits/dim with 95% CI, the best per column in bold, ties marked."""
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
                    cells.append(self.headline_cell(family, dim, metric, best.get((dim, metric)),
                                                    tied.get((dim, metric), set())))
            rows.append(cells)
        top = "<tr><th rowspan='2'>family</th>" + "".join(
            f"<th colspan='2'>latent dimension {d}</th>" for d in dims) + "</tr>"
        sub = "<tr>" + "".join(
            f"<th><a href='#likelihoods'>{name}</a><br>"
            "<span class='small'>mean ± 95% CI, lower is better</span></th>"
            for _ in dims for name in METRIC_NAMES.values()) + "</tr>"
        body = "\n".join("<tr>" + "".join(f"<td>{c}</td>" if i == 0 else c for i, c in enumerate(r)) + "</tr>"
                         for r in rows)
        notes = "".join(f"<li value='{n}'>{esc(text)}</li>" for text, n in self.footnotes.items())
        legend = ("<p class='small'><b>Bold</b>: the lowest mean in its column. <sup>=</sup>: not "
                  "significantly worse than the bold one (paired t-test over seeds, Holm-corrected, "
                  "p_holm ≥ 0.05). The CI is the "
                  "t-interval across ok seeds (none with one seed); n counts ok seeds. Diverged, missing and "
                  "unevaluated runs are counted under the value, never averaged. bits/dim = −log2 likelihood "
                  "per sub-pixel; <a href='#likelihoods'>how each is defined</a>.</p>")
        return (f"<table id='headline'><thead>{top}{sub}</thead><tbody>\n{body}\n</tbody></table>{legend}"
                + (f"<ol class='small'>{notes}</ol>" if notes else ""))

    def headline_cell(self, family: str, dim: int, metric: str, best: str | None, tied: set) -> str:
        s = self.study.stat(family, dim, metric)
        counts = self.status_counts(family, dim)
        note = self.footnote(s["note"]) if s["note"] else ""
        if not finite(s["mean"]):
            detail = counts or ("no ok run" if not note else "")
            return f"<td class='num'>n/a{note}<br><span class='small'>{detail}</span></td>"
        ci = f" ± {fmt(s['high'] - s['mean'])}" if finite(s["high"]) else ""
        mark = "<sup>=</sup>" if family in tied else ""
        css = "num best" if family == best else "num"
        detail = f"n = {s['n']}" + (f"; {counts}" if counts else "")
        small = f"<br><span class='small'>{detail}</span>"
        return f"<td class='{css}'>{fmt(s['mean'])}{ci}{mark}{note}{small}</td>"

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
            rows = [[f"{'=' if sh else ''}{int(r['rank'])}", self.label(r["family"]), (fmt(r["mean"]), "num")]
                    for (_, r), sh in zip(at.iterrows(), shared, strict=True)]
            if at["tested"].iloc[0]:
                how = "rank = 1 + the number of families significantly better; = marks a shared rank"
                header.append("not separable from")
                for row, (_, r) in zip(rows, at.iterrows(), strict=True):
                    names = ([self.label(f) for f in r["tied_with"].split()]
                             + [f"{self.label(f)} (no test)" for f in r["untested_with"].split()])
                    row.append(", ".join(names) or "—")
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
            "<p class='small'>Highlighted rows differ between runs: each value is followed by the number of "
            "run records (run.json and metrics.json each count) that have it.</p>")

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
            blocks.append(f"<figure id='fig-{name}'>{body}<figcaption><b>Figure {number}. {esc(title)}.</b> "
                          f"{caption}</figcaption></figure>")
        return "\n".join(blocks)

    def fixed_options(self) -> str:
        given = self.column("family_options").dropna().astype(str)
        options = sorted({o for o in given if o not in ("{}", "")})
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

        def text(r, c, cut=None):
            return esc(str(r[c])[:cut]) if c in r.index and pd.notna(r[c]) else ""

        rows = []
        for _, r in m.iterrows():
            status_css = "status-ok" if r["status"] == OK else "status-bad"
            cells = [self.label(r["family"]), esc(r["latent_dim"]), esc(r["seed"]),
                     (esc(r["status"]), status_css), esc(r["note"])]
            cells += [(fmt(r[c], 4 if c in ("bpd_disc", "bpd_deq", "recon_mse") else 2), "num")
                      for c, _ in columns]
            cells += [text(r, "device"), text(r, "git_commit", 10), text(r, "started_at"), esc(r["run_dir"])]
            rows.append(cells)
        header = ["family", "z", "seed", "status", "note"] + [h for _, h in columns] + [
            "device", "commit", "started", "run directory"]
        tests = self.study.tests
        test_rows = [[esc(t["metric"]), esc(t["latent_dim"]), self.label(t["family_a"]),
                      self.label(t["family_b"]), esc(t["n_pairs"]),
                      (f"{fmt(t['diff_mean'])} [{fmt(t['diff_ci95_low'])}, "
                       f"{fmt(t['diff_ci95_high'])}]", "num"),
                      (fmt(t["cohens_dz"], 2), "num"), (fmt(t["rank_biserial"], 2), "num"),
                      (fmt_p(t["t_p"]), "num"), (fmt_p(t["t_p_holm"]), "num"),
                      (fmt_p(t["wilcoxon_p"]), "num"), (fmt_p(t["wilcoxon_p_holm"]), "num"),
                      "yes" if t["significant"] else "no", esc(t["note"])]
                     for _, t in tests.iterrows()]
        return (f"<details class='runs'><summary>Every run ({len(m)}): status, numbers, provenance</summary>"
                + table(header, rows, "id='runs-table'") + "</details>"
                + f"<details class='runs'><summary>Every pairwise test ({len(tests)})</summary>"
                + table(["metric", "z", "a", "b", "n", "a − b, bits/dim [95% CI]", "Cohen's dz",
                         "rank-biserial", "t-test p", "p_holm", "Wilcoxon p", "p_holm", "significant",
                         "note"], test_rows)
                + "</details>")

    def render(self) -> str:
        dataset = self.values("dataset")
        template = Template(resources.files("vaebench").joinpath("templates/report.html").read_text("utf-8"))
        headline = self.headline()  # before findings: it numbers the footnotes
        return template.substitute(
            title=f"vaebench: output distributions for image VAEs on {dataset}",
            subtitle=(f"{len(self.study.families)} families × latent dimensions "
                      f"{', '.join(map(str, self.study.dims))}"
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
    p.add_argument("--out", type=Path, default=Path("report/index.html"),
                   help="the HTML file (default: %(default)s)")
    p.add_argument("--config", type=Path, default=None,
                   help="the study config (YAML), to show what it asked for")
    p.add_argument("--figures", type=Path, default=None,
                   help="folder of the figures (default: RESULTS/figures)")
    p.add_argument("--captions", type=Path, default=captions.DEFAULT_DIR,
                   help="folder of the figures' captions, NAME.rst, shared with Snakemake's report (default: "
                        "%(default)s, from the repository root)")


def run(args: argparse.Namespace) -> int:
    study = Study.load(args.results)
    report = Report(study, load_config(args.config), args.figures or args.results / "figures", args.captions)
    page = report.render()
    atomic_write(args.out, lambda tmp: tmp.write_text(page, encoding="utf-8"))
    print(f"report ({len(page) // 1024} KiB, {len(study.metrics)} runs) -> {args.out}")
    return 0
