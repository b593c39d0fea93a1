"""The page: the verdict, the limits box, the findings and the figures around the tables, assembled into
templates/report.html; and the index of every study's page."""

import base64
import datetime as dt
import html
import re
from importlib import resources
from pathlib import Path
from string import Template

from vaebench import analysis, captions, evidence, findings, stats
from vaebench.report.answer import findings_section, hold_section, use
from vaebench.report.html import MARK, Footnotes, caption_html, esc, findings_list
from vaebench.report.runs import runs
from vaebench.report.setup import fixed_options, setup, values
from vaebench.report.tables import convergence, headline, measures, ranking
from vaebench.results import METHOD_PAIRED_T, Study
from vaebench.utils import atomic_write


def limits(study: Study, config: dict) -> str:
    """The limits box, led by what the config says its budget forced on the study."""
    budget = config.get("budget")
    said = [findings.Finding("limit_budget", "What the budget forced:", str(budget))] if budget else []
    found = said + findings.limits(study)
    if not found:
        return "<p>None of the limits checked here applies to this run.</p>"
    return findings_list(found)


def older_tests(study: Study) -> str:
    """A line of the conventions for a tests.csv written before the hierarchical bootstrap, else ""."""
    if METHOD_PAIRED_T not in analysis.test_methods(study):
        return ""
    return (
        "<li>This study's tests.csv was written before the hierarchical bootstrap: its pairs of families "
        "were compared by paired t-tests across seeds (seed numbers paired, from 3 seeds), Holm-corrected "
        "within each measure and latent dimension, and the standard errors of the likelihoods are those of "
        "the test images alone. Aggregating its runs again gives the tests described above where they kept "
        "each test image's likelihood.</li>"
    )


def caption(captions_dir: Path, name: str) -> tuple[str, str]:
    """(title, caption HTML) of a figure from its .rst file; a missing file is said in the caption."""
    try:
        found = captions.read_caption(captions_dir, name)
    except FileNotFoundError:
        path = captions.caption_path(captions_dir, name)
        return name, f"<span class='warn'>No caption: {esc(path)} does not exist.</span>"
    return found.title, caption_html(found.text)


def figures(figures_dir: Path, captions_dir: Path) -> str:
    blocks = []
    for number, name in enumerate(captions.FIGURES, start=1):
        title, text = caption(captions_dir, name)
        path = figures_dir / f"{name}.png"
        if path.exists():
            data = base64.b64encode(path.read_bytes()).decode("ascii")
            body = f"<img src='data:image/png;base64,{data}' alt='{esc(title)}'>"
        else:
            body = f"<p class='warn'>{esc(path)} does not exist: run <code>vaebench figures</code>.</p>"
        blocks.append(
            f"<figure id='fig-{name}'>{body}<figcaption><b>Figure {number}. {esc(title)}.</b> "
            f"{text}</figcaption></figure>"
        )
    return "\n".join(blocks)


def subtitle(study: Study) -> str:
    n = len(study.families)
    seeds = sorted(int(x) for x in study.metrics["seed"].unique())
    shown = f"{len(seeds)} seed{'s' if len(seeds) != 1 else ''} ({', '.join(map(str, seeds))})"
    return (
        f"{n} famil{'ies' if n != 1 else 'y'} × latent dimensions "
        f"{', '.join(map(str, study.dims))} × {shown}; {len(study.metrics)} runs. "
        "Lower bits/dim is better."
    )


def render(
    study: Study, config: dict | None, figures_dir: Path, captions_dir: Path = captions.DEFAULT_DIR
) -> str:
    """The whole page of one study, its figures embedded."""
    config = config or {}
    template = Template(resources.files("vaebench").joinpath("templates/report.html").read_text("utf-8"))
    footnotes = Footnotes()
    table = headline(study, footnotes)  # before the other tables and findings: it numbers the footnotes first
    written = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return template.substitute(
        title=f"vaebench: output distributions for image VAEs on {values(study, 'dataset')}",
        mark=MARK.format(written=written),
        subtitle=esc(subtitle(study)),
        verdict=use(study),
        hold=hold_section(study),
        limits=limits(study, config),
        setup=setup(study, config),
        headline=table,
        convergence=convergence(study),
        measures=measures(study, footnotes),
        ranking=ranking(study),
        findings=findings_section(study),
        figures=figures(figures_dir, captions_dir),
        runs=runs(study),
        fixed_options=fixed_options(study),
        alpha=stats.ALPHA,
        replicates=f"{evidence.REPLICATES:,}",
        older_tests=older_tests(study),
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
