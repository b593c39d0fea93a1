"""The HTML report from synthetic runs: the page, its findings' markup, captions read from the .rst files;
the page is opened in a real (headless) browser."""

import contextlib
import html
import io
import json
import math
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from synthetic_runs import (
    DIVERGED,
    MISSING,
    edit_json,
    set_likelihood,
    study_of,
    write_manifest,
    write_run,
    write_selection,
    write_synthetic_results,
)

from vaebench import captions, catalog, evidence, findings
from vaebench.catalog import FAMILY_IDS
from vaebench.cli import main
from vaebench.report import page as report_page
from vaebench.report import runs as report_runs
from vaebench.report import setup as report_setup
from vaebench.report import tables as report_tables
from vaebench.report.html import Footnotes, finding_html
from vaebench.report.setup import repeats
from vaebench.results import Study

ROOT = Path(__file__).resolve().parents[1]
CAPTIONS = ROOT / "workflow" / "report"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


def build(results: Path, expected, out: Path, *report_args: str) -> tuple[str, str]:
    """aggregate, figures, report through the CLI: (the page, what the stages printed)."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["aggregate", "--results", str(results), "--expected", *map(str, expected)]) == 0
        assert main(["figures", "--results", str(results)]) == 0
        assert (
            main(
                [
                    "report",
                    "--results",
                    str(results),
                    "--out",
                    str(out),
                    "--captions",
                    str(CAPTIONS),
                    *report_args,
                ]
            )
            == 0
        )
    return out.read_text(), printed.getvalue()


def section(page: str, name: str) -> str:
    return re.search(rf"<section id=\"{name}\">(.*?)</section>", page, re.S).group(1)


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    """3 families x latent dims 2 and 8 x 3 seeds, one diverged and one missing run, one on another torch."""
    root = tmp_path_factory.mktemp("full")
    study = write_synthetic_results(root / "results" / "mnist5k")
    run_json = study.run_dir("gaussian", 2, 2) / "run.json"
    run_json.write_text(json.dumps({**json.loads(run_json.read_text()), "torch_version": "2.15.0"}))
    page, printed = build(study.results, study.expected, root / "report" / "index.html")
    assert "not drawn" not in printed  # this study has data for every figure
    return study, page, root / "report" / "index.html"


@pytest.fixture(scope="module")
def quick_like(tmp_path_factory):
    """The quick preset's shape: every family at latent dimensions 2 and 16, one seed."""
    root = tmp_path_factory.mktemp("quick_like")
    study = write_synthetic_results(
        root / "results" / "quick",
        latent_dims=(2, 16),
        seeds=(0,),
        families=FAMILY_IDS,
        diverged=None,
        missing=None,
    )
    page, _ = build(study.results, study.expected, root / "report" / "index.html")
    return study, page, root / "report" / "index.html"


@pytest.fixture(scope="module")
def sparse(tmp_path_factory):
    """One seed, latent dimension 8, no family with a learned scale, beta without a discretized value."""
    root = tmp_path_factory.mktemp("sparse")
    study = write_synthetic_results(
        root / "results" / "mnist5k",
        families=("bernoulli", "gaussian_fixed", "beta"),
        latent_dims=(8,),
        seeds=(0,),
        diverged=None,
        missing=None,
    )
    page, printed = build(study.results, study.expected, root / "index.html")
    return study, page, printed


def headline_rows(page: str) -> list[tuple[str, list[str]]]:
    """(family label, [td class of each value cell]) per row of the headline table."""
    body = re.search(r"<table id='headline'>.*?<tbody>(.*?)</tbody>", page, re.S).group(1)
    rows = []
    for tr in re.findall(r"<tr>(.*?)</tr>", body, re.S):
        label = re.sub(r"<.*", "", re.search(r"<td>(.*?)</td>", tr).group(1)).strip()
        rows.append((label, re.findall(r"<td class='([^']*)'", tr)))
    return rows


def test_headline_has_one_row_per_family_and_bolds_the_lowest_mean(full):
    study, page, _ = full
    rows = headline_rows(page)
    assert [label for label, _ in rows] == [html.escape(catalog.label(f)) for f in study.families]
    columns = [(dim, metric) for dim in study.latent_dims for metric in ("bpd_disc", "bpd_deq")]
    for j, (dim, metric) in enumerate(columns):
        means = {}
        for family in study.families:
            values = [
                json.loads((study.run_dir(family, dim, s) / "metrics.json").read_text())[metric]
                for s in study.seeds
                if (family, dim, s) not in (DIVERGED, MISSING)
            ]
            means[family] = np.mean(values)
        bold = [
            family for family, (_, classes) in zip(study.families, rows, strict=True) if "best" in classes[j]
        ]
        assert bold == [min(means, key=means.get)]
    assert page.count("lower is better") >= 5


def test_report_is_self_contained(full):
    _, page, _ = full
    sources = re.findall(r"src=['\"]([^'\"]*)", page)
    assert len(sources) == len(captions.FIGURES)
    assert all(s.startswith("data:image/png;base64,") for s in sources)
    assert not re.search(r"<link|<script|href=['\"]https?:", page)


def test_report_counts_bad_runs_and_says_where_runs_differ(full):
    _, page, _ = full
    assert "no: 2 of 18 did not" in page and "Not in the means and tests, but counted in the tables" in page
    assert f"{catalog.label('gaussian')} z = 8 seed 2 (diverged)" in page
    assert f"{catalog.label('continuous_bernoulli')} z = 8 seed 1 (missing" in page
    setup = re.search(r"<table id='setup-table'>.*?</table>", page, re.S).group(0)
    assert re.search(r"varies: .*2\.15\.0", setup)
    assert "float32, summed in float64; one fused torch.compile kernel" in setup
    assert "1 diverged" in page and "1 missing" in page


def test_findings_are_escaped_with_their_title_in_bold(full):
    study, page, _ = full
    items = findings.findings(Study.load(study.results))
    shown = section(page, "findings")
    paragraphs = "".join(f"<p id='{f.key}'>{finding_html(f)}</p>" for f in items)
    assert shown.endswith(paragraphs + "\n")  # the table of those with a verdict, then every one
    winner = next(f for f in items if f.key == "winner")
    title, text = (html.escape(t, quote=False) for t in (winner.title, winner.text))
    assert f"<p id='winner'><b>{title}</b> {text}</p>" in page
    assert "Holm p &lt; 0.001" in shown and "Holm p < 0.001" not in shown  # in the evidence column
    assert finding_html(findings.Finding("k", "", "a < b & c")) == "a &lt; b &amp; c"


def test_findings_follow_the_tests(full, sparse):
    _, page, _ = full
    text = html.unescape(re.sub(r"<[^>]+>", "", section(page, "findings")))
    gaussian, cb = (catalog.label(f) for f in ("gaussian", "continuous_bernoulli"))
    assert (
        f"Which family has the lowest discretized bits/dim? At every latent size, {gaussian} leads every "
        "other family by the evidence rule." in text
    )
    assert "z = 2: significant (hierarchical bootstrap, 3 seeds" in text  # the evidence of BCE read as CB
    assert "z = 8: significant (hierarchical bootstrap, 3 and 2 seeds" in text  # CB's missing run
    assert f"At every latent size, {cb} trained on its own likelihood is better." in text
    squared = catalog.label("squared_error")
    assert f"Not testable here: the study has no ok runs of {squared}" in text

    _, page, _ = sparse
    text = html.unescape(re.sub(r"<[^>]+>", "", section(page, "findings")))
    # one seed: the limits box and the conventions say what that means, no finding repeats it
    assert "<p id='sample_size'>" not in page
    bernoulli = catalog.label("bernoulli")
    assert f"Which family has the lowest discretized bits/dim? At every latent size, {bernoulli} " in text
    table = re.search(r"<table id='findings-table'>.*?</table>", section(page, "findings"), re.S).group(0)
    claims = re.findall(r"<tr><td><a href='#(claim_\w+)'>", table)
    assert claims == ["claim_converges", "claim_latent", "claim_sharper", "claim_squared_error"]
    assert "<td class='verdict'>not testable here</td>" in table


def test_ranking_shows_a_shared_rank_where_no_test_separates(tmp_path):
    study = write_synthetic_results(
        tmp_path / "mnist5k",
        families=("gaussian", "logit_normal", "logit_laplace"),
        latent_dims=(4,),
        seeds=(0, 1, 2),
        diverged=None,
        missing=None,
    )
    best = [
        json.loads((study.run_dir("logit_normal", 4, s) / "metrics.json").read_text())["bpd_disc"]
        for s in study.seeds
    ]
    for seed, shift in zip(study.seeds, (0.03, -0.02, 0.01), strict=True):  # noisy, just behind the best
        set_likelihood(study.run_dir("logit_laplace", 4, seed), bpd_disc=best[seed] + shift)
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["aggregate", "--results", str(study.results)]) == 0
    loaded = Study.load(study.results)
    normal, laplace = (html.escape(catalog.label(f)) for f in ("logit_normal", "logit_laplace"))
    assert re.search(
        rf"<td>=1</td><td>{normal}</td>.*?<td>=1</td><td>{laplace}</td>", report_tables.ranking(loaded), re.S
    )
    headline = report_tables.headline(
        loaded, Footnotes()
    )  # the ranking's tie is the headline's: bold winner, = on the tied one
    assert re.search(rf"<td>{laplace}</td><td class='num'>[^<]*<sup>=</sup>", headline)


def test_a_missing_value_shows_na_with_its_reason(sparse):
    _, page, _ = sparse
    assert "n/a<sup>1</sup>" in page
    assert re.search(r"<li value='1'>beta has no CDF in torch", page)


def test_a_study_with_nothing_evaluated_still_reports(tmp_path):
    study = write_synthetic_results(
        tmp_path / "mnist5k",
        families=("gaussian",),
        latent_dims=(2,),
        seeds=(0,),
        diverged=None,
        missing=None,
        evaluate=False,
    )
    expected = study.expected + [study.run_dir("beta", 2, 0)]
    page, printed = build(study.results, expected, tmp_path / "index.html")
    assert [label for label, _ in headline_rows(page)] == [catalog.label("gaussian"), "beta"]
    assert "not evaluated" in page and "missing" in page
    assert printed.count("not drawn") == len(captions.FIGURES) - 1  # only the learning curves have data


def test_report_needs_the_tables_first(tmp_path, capsys):
    assert main(["report", "--results", str(tmp_path), "--out", str(tmp_path / "r.html")]) == 2
    assert "run `vaebench aggregate" in capsys.readouterr().err


def figure_captions(page: str) -> dict[str, str]:
    figures = r"<figure id='fig-([a-z_]+)'>.*?<figcaption>(.*?)</figcaption></figure>"
    return dict(re.findall(figures, page, re.S))


def test_figure_captions_come_from_the_rst_files(full):
    _, page, _ = full
    shown = figure_captions(page)
    assert list(shown) == list(captions.FIGURES)
    for number, name in enumerate(captions.FIGURES, start=1):
        rst = (CAPTIONS / f"{name}.rst").read_text()
        title = re.match(r"\*\*(.+?)\.?\*\*", rst).group(1)
        body = " ".join(rst.split("\n", 1)[1].split())
        assert shown[name] == f"<b>Figure {number}. {html.escape(title)}.</b> {html.escape(body)}"
    assert not any("{{" in caption or "Dataset" in caption for caption in shown.values())


def test_a_caption_edit_shows_and_a_missing_caption_file_is_a_one_line_note(full, tmp_path):
    study, _, _ = full
    edited = tmp_path / "captions"
    shutil.copytree(CAPTIONS, edited)
    (edited / "samples.rst").unlink()
    (edited / "cost.rst").write_text(
        "**Cost, edited.** Study ``{{ snakemake.wildcards.study }}``.\n\n"
        "Seconds per run, see ``train_seconds`` & the\nnext line.\n"
    )
    out = tmp_path / "index.html"
    with contextlib.redirect_stdout(io.StringIO()):
        assert (
            main(["report", "--results", str(study.results), "--out", str(out), "--captions", str(edited)])
            == 0
        )
    page = out.read_text()
    shown = figure_captions(page)
    number = captions.FIGURES.index("cost") + 1
    assert shown["cost"] == (
        f"<b>Figure {number}. Cost, edited.</b> Seconds per run, see "
        "<code>train_seconds</code> &amp; the next line."
    )
    note = shown["samples"]
    assert "\n" not in note and f"No caption: {edited / 'samples.rst'} does not exist." in html.unescape(note)
    assert len(re.findall(r"<img src='data:image/png", page)) == len(captions.FIGURES)  # all still shown


def test_snakemake_report_and_html_report_share_captions_and_figure_names():
    rules = " ".join(p.read_text() for p in (ROOT / "workflow" / "rules").glob("*.smk"))
    referenced = set(re.findall(r'caption=f?"\.\./report/([a-z_{}]+)\.rst"', rules))
    assert {"metrics", "summary", "tests", "index", "{name}"} <= referenced  # {name}: one per figure
    for name in ({"workflow"} | referenced | set(captions.FIGURES)) - {"{name}"}:
        assert (CAPTIONS / f"{name}.rst").exists(), name
    for name in captions.FIGURES:  # the HTML report numbers the figures itself
        assert not (CAPTIONS / f"{name}.rst").read_text().startswith("**Figure")
    report_rules = (ROOT / "workflow" / "rules" / "report.smk").read_text()
    assert "from vaebench.captions import FIGURES" in report_rules and "FIGURES = [" not in report_rules
    assert "captions=" in report_rules and "--captions" in report_rules  # inputs: an edit reruns the report


def test_report_says_what_is_deterministic_and_where_the_likelihoods_are_defined(full):
    _, page, _ = full
    start = page.index('id="determinism"')
    determinism = page[start : page.index("</ul>", start)]
    assert "On CPU a seed fixes everything" in determinism and "On a GPU" in determinism
    assert "bit for bit" in determinism
    assert "docs/likelihoods.md in the repository" in section(page, "conventions")


def test_the_report_imports_no_plotting():
    code = (
        "import sys, vaebench.report; "
        "print(sorted({'torch', 'matplotlib', 'vaebench.figures'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.fixture(scope="module")
def browser():
    """Headless Debian Chromium through Playwright (no browser download), offline."""
    playwright = pytest.importorskip(
        "playwright.sync_api",
        reason="Playwright for Python is not installed (pip install playwright; no browser download needed)",
    )
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def test_report_opens_in_a_real_browser(full, browser):
    """Headless Chromium loads the page offline: every figure decodes, one headline row per family, the
    verdict comes first with its limits box, and no cell or finding shows a missing value (nan, None)."""
    study, _, path = full
    requests = []
    page = browser.new_page()
    page.on("request", lambda r: requests.append(r.url))
    page.goto(path.as_uri(), wait_until="load")
    images = page.evaluate("Array.from(document.images, i => [i.complete, i.naturalWidth, i.alt])")
    rows = page.evaluate("document.querySelectorAll('#headline tbody tr:not(.reference)').length")
    sections = page.evaluate("Array.from(document.querySelectorAll('section'), s => s.id)")
    verdict = page.evaluate(
        "Array.from(document.querySelectorAll('#verdict ul.verdict li'), li => li.innerText)"
    )
    limits = page.evaluate("document.querySelector('#verdict aside.limits').innerText")
    shown = page.evaluate("Array.from(document.querySelectorAll('td, th, li, figcaption'), e => e.innerText)")
    page.close()
    assert len(images) == len(captions.FIGURES)
    assert all(complete and width > 0 for complete, width, _ in images), images
    assert rows == len(study.families)
    assert sections[:2] == ["question", "verdict"]
    assert verdict[0].startswith("For likelihood: use ")
    assert any(item.startswith("For pictures:") for item in verdict) and "Limits of this run" in limits
    missing = [text for text in shown if re.search(r"\b(nan|NaN|None|null)\b", text)]
    assert not missing, missing[:5]
    assert all(url.startswith(("file:", "data:")) for url in requests), requests


@pytest.mark.parametrize("shape", ["full", "quick_like"])
def test_report_fits_the_screen_and_folds_the_details(shape, browser, request):
    """At 1,280 px every table fits the page; on a phone (412 px) a wide table scrolls inside its own box,
    so the page never scrolls sideways, even with every folded detail open. The details (every run, every
    pairwise test, the conventions) are folded behind a summary, and a link into them unfolds them. On three
    families over three seeds, and on the quick preset's thirteen families."""
    study, html_page, path = request.getfixturevalue(shape)
    assert html_page.count("<table") == html_page.count("<div class='scroll'><table")
    widths = {}
    for width in (1280, 412):
        page = browser.new_page(viewport={"width": width, "height": 800})
        page.goto(path.as_uri(), wait_until="load")
        if width == 1280:
            folded = page.evaluate(
                "Array.from(document.querySelectorAll('details:not([open]) > summary'), s => s.innerText)"
            )
        page.evaluate("document.querySelectorAll('details').forEach(d => { d.open = true; })")
        widths[width] = page.evaluate(
            """() => [document.documentElement.scrollWidth, document.documentElement.clientWidth,
                Array.from(document.querySelectorAll('table'), t => t.getBoundingClientRect().right)]"""
        )
        page.close()
    document, viewport, rights = widths[1280]
    assert document == viewport == 1280 and max(rights) <= viewport
    document, viewport, rights = widths[412]
    assert document == viewport == 412 and max(rights) > viewport  # the headline scrolls in its box
    assert [summary.split(" (")[0] for summary in folded] == [
        "How each likelihood is defined, the runs and statistics, what is deterministic",
        "Every run",
        "Every pairwise test of the bits/dim",
    ]
    assert folded[1].startswith(f"Every run ({len(study.expected)} rows)")
    page = browser.new_page()
    page.goto(path.as_uri() + "#likelihoods", wait_until="load")
    assert page.evaluate("document.querySelector('#conventions details').open")
    page.close()


def test_the_headline_marks_its_column_and_gives_the_test_set_error_with_one_seed(sparse, full):
    _, page, _ = sparse
    head = re.search(r"<table id='headline'>.*?</thead>", page, re.S).group(0)
    assert "<th class='headline'><a href='#likelihoods'>discretized bits/dim</a>" in head
    assert "the headline: probability of the 8-bit values" in head
    table_html = re.search(r"<table id='headline'>.*?</table>", page, re.S).group(0)
    assert "± test-set SE, 1 seed" in table_html and "n = 1" not in table_html
    assert re.search(
        r"<td class='num worse-uniform'>[0-9.]+ ± [0-9.]+<br><span class='small'>± test-set SE, "
        r"1 seed; worse than uniform</span></td>",
        page,
    )  # gaussian_fixed's dequantized column
    _, page, _ = full
    assert re.search(r"[0-9.]+ ± [0-9.]+<br><span class='small'>95% CI, 3 seeds; SE [0-9.]+</span>", page)


def test_the_baselines_are_reference_rows_of_the_headline(full):
    study, page, _ = full
    body = re.search(r"<table id='headline'>.*?<tbody>(.*?)</tbody>", page, re.S).group(1)
    references = re.findall(r"<tr class='reference' title='[^']*'><td>([^<]*)</td>(.*?)</tr>", body, re.S)
    assert [html.unescape(name) for name, _ in references] == [
        "per-pixel histogram (no latent)",
        "two masses at 0 and 255 (no latent)",
        "uniform over 256 values",
    ]
    values = re.findall(r"<td class='num'>([0-9.]+)<br>", references[0][1])
    assert values == ["1.750"] * 2 * len(study.latent_dims)  # both columns, every latent size


def test_the_verdict_the_limits_the_convergence_and_the_measures_are_on_the_page(sparse):
    _, page, _ = sparse
    verdict = html.unescape(re.sub(r"<[^>]+>", "", section(page, "verdict")))
    assert verdict.index("For likelihood") < verdict.index("Limits of this run")
    assert "One training run each:" in verdict and "Few importance samples: K = 100" in verdict
    assert "best likelihood (discretized bits/dim)" in section(page, "verdict")  # the leaders' table
    assert "Avoid:" in verdict and "worse than uniform noise" in verdict
    results_section = section(page, "headline-section")
    assert "<table id='convergence'>" in results_section and "K/16 → K/4 → K" in results_section
    # the synthetic estimate fell 5 nats from K/16 to K/4 and 1 from K/4 to K: a quarter of a nat to come
    still = 0.25 / (784 * math.log(2))
    assert f"<td class='num'>{still:.4f}</td>" in results_section
    assert "class='measures'" in results_section and "epochs to 95% of the ELBO gain" in results_section
    measures = re.search(r"<table class='measures'>.*?</table>", results_section, re.S).group(0)
    assert "median image" not in measures  # no family here has a median image apart from its mean


def test_integers_print_as_integers_and_the_pairwise_note_is_said_once(sparse, full):
    _, page, _ = sparse
    cells = {}  # the first run's row, across the every-run tables
    for runs in re.findall(r"<table id='runs-[a-z]+'>.*?</table>", page, re.S):
        header = re.findall(r"<th>(.*?)</th>", runs)
        row = re.search(r"<tbody>\s*<tr>(.*?)</tr>", runs, re.S).group(1)
        cells.update(zip(header, re.findall(r"<td[^>]*>(.*?)</td>", row), strict=True))
    assert (cells["K"], cells["test images"], cells["active units"], cells["epochs to 95% ↓"]) == (
        "100",
        "300",
        "6",
        "5",
    )
    assert cells["epochs done"] == "5"
    _, page, _ = full
    tests = re.search(r"<summary>Every pairwise test of the bits/dim.*?</details>", page, re.S).group(0)
    assert "Unless a row says otherwise" not in tests  # every pair of the bits/dim was tested alike
    assert tests.count(evidence.METHOD_BOOTSTRAP) == 12  # 2 metrics x 2 latent sizes x 3 pairs
    # the synthetic families are far apart: no run of a family beats a run of a better one (9, 6 or 4 pairs)
    assert len(re.findall(r">0 of [964]</td>", tests)) == 12


def test_the_subtitle_names_the_seeds_and_the_setup_the_split_sizes(sparse, tmp_path):
    study, page, _ = sparse
    assert "3 families × latent dimensions 8 × 1 seed (0); 3 runs." in page
    assert "300 of 1000" not in page and "the first 300 test images scored" in page  # from baselines.json
    write_manifest(tmp_path / "manifest.json", n_train=4000, n_test=1000)
    out = tmp_path / "index.html"
    with contextlib.redirect_stdout(io.StringIO()):
        assert (
            main(
                [
                    "report",
                    "--results",
                    str(study.results),
                    "--out",
                    str(out),
                    "--captions",
                    str(CAPTIONS),
                    "--manifest",
                    str(tmp_path / "manifest.json"),
                ]
            )
            == 0
        )
    assert "<td>4,000 train / 1,000 test; the first 300 test images scored</td>" in out.read_text()


def test_the_setup_says_what_was_chosen_on_the_validation_split(sparse, tmp_path):
    study, page, _ = sparse
    assert "id='choices-table'" not in page and "none: each run keeps its last epoch" in page
    results = tmp_path / "mnist5k"
    shutil.copytree(study.results, results)
    write_selection(results, "bernoulli", epochs=2, lrs=(3e-4, 1e-3), chosen=1e-3, extensions=1)
    write_selection(results, "gaussian_fixed", epochs=2, lrs=(3e-4, 1e-3, 3e-3), chosen=1e-3, sigma=0.1)
    write_selection(results, "beta", epochs=2, lrs=(1e-3, 3e-3), chosen=3e-3)  # not what beta trained with
    setup = report_setup.setup(Study.load(results), {})
    body = re.search(r"<table id='choices-table'>.*?<tbody>(.*?)</tbody>", setup, re.S).group(1)
    rows = [
        [html.unescape(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", tr)] for tr in body.split("</tr>")[:-1]
    ]
    assert [row[0] for row in rows] == [catalog.label("bernoulli"), catalog.label("gaussian_fixed")]
    assert rows[0][1:3] == ["0.001", "none"]  # the largest tried, after the one extension allowed
    assert rows[0][-1] == "learning rate 0.001, still after 1 extension(s) of the grid (the limit)"
    assert rows[1][1:3] == ["0.001", "sigma = 0.1"] and rows[1][4:] == ["{0.0003, 0.001, 0.003} x {0.1}", ""]
    assert (
        "(at most 2 epochs, trained as the study's runs are) of seed 0 at z = 8" in setup
        and "The test images play no part" in setup
    )
    assert "with at most 1 such extension(s)" in setup


def test_the_setup_says_how_each_familys_runs_ended_and_every_run_how_it_trained(tmp_path):
    """Per family and latent size: the stop reasons, the epochs done and kept as ranges over the seeds, the
    decays and the largest drift; each run's own in the every-run tables. Tables before the rule: none."""
    synthetic = write_synthetic_results(
        tmp_path / "mnist5k", families=("bernoulli", "beta"), latent_dims=(8,), diverged=None, missing=None
    )
    for seed in synthetic.seeds:
        drift = 0.001 * seed
        write_run(synthetic, "beta", 8, seed, epochs=5 + seed, stop_reason="converged", drift_bpd=drift)
        write_run(synthetic, "bernoulli", 8, seed, epochs=9, stop_reason="converged", drift_bpd=0.0)
    capped = synthetic.run_dir("bernoulli", 8, 2)
    edit_json(capped / "run.json", stop_reason="epoch_cap", best_epoch=7)
    edit_json(capped / "metrics.json", best_epoch=7)  # as evaluate copies it
    study = study_of(synthetic)
    setup = report_setup.setup(study, {})
    body = re.search(r"<table id='endings-table'>.*?<tbody>(.*?)</tbody>", setup, re.S)
    rows = [
        [html.unescape(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", tr)]
        for tr in body.group(1).split("</tr>")[:-1]
    ]
    bce, beta = catalog.label("bernoulli"), catalog.label("beta")
    assert rows == [
        [bce, "8", "2 converged, 1 epoch cap", "9", "7–9", "0", "0.0000"],
        [beta, "8", "3 converged", "5–7", "5–7", "0", "0.0020"],
    ]
    every_run = report_runs.runs(study)
    training = re.search(r"<table id='runs-training'>.*?<tbody>(.*?)</tbody>", every_run, re.S).group(1)
    first = [html.unescape(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", training.split("</tr>")[0])]
    assert first[:3] == [bce, "8", "0"] and first[3:7] == ["converged", "9", "9", "0.001"]
    before_the_rule = write_synthetic_results(tmp_path / "older", families=("bernoulli",), latent_dims=(8,))
    assert "endings-table" not in report_setup.setup(study_of(before_the_rule), {})


def test_the_limits_box_quotes_what_the_budget_forced_first(sparse, tmp_path):
    """The config's `budget` (why the study has its size) leads the limits box, escaped; without it, no
    such line."""
    study, page, _ = sparse
    assert "What the budget forced:" not in page
    said = "6 epochs & K = 1,000 <not 5,000>, to fit 2.5 hours on 2 cores"
    loaded = Study.load(study.results)
    limits = report_page.limits(loaded, {"budget": said})
    first = re.search(r"<li>(.*?)</li>", limits).group(1)
    assert first == f"<b>What the budget forced:</b> {html.escape(said, quote=False)}"
    assert limits.count("<li>") == 1 + len(findings.limits(loaded))


def test_the_index_lists_every_study_report_with_its_title_and_date(full, sparse, tmp_path):
    for name, (study, _, _) in (("quick", full), ("tiny", sparse)):
        with contextlib.redirect_stdout(io.StringIO()):
            assert (
                main(
                    [
                        "report",
                        "--results",
                        str(study.results),
                        "--captions",
                        str(CAPTIONS),
                        "--out",
                        str(tmp_path / name / "index.html"),
                        "--index",
                        str(tmp_path / "index.html"),
                    ]
                )
                == 0
            )
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "index.html").write_text("<title>not a report</title>")
    index = (tmp_path / "index.html").read_text()
    assert re.findall(r"<li><a href='(\w+)/index.html'>", index) in (["quick", "tiny"], ["tiny", "quick"])
    assert "vaebench: output distributions for image VAEs on mnist5k" in index and "not a report" not in index
    assert re.search(r"\(written \d{4}-\d\d-\d\d \d\d:\d\d UTC\)", index)


def test_the_setup_says_what_a_rerun_repeats(sparse):
    study, page, _ = sparse
    assert "bit for bit: every run trained and was scored on a CPU" in page
    study = Study.load(study.results)
    study.metrics.loc[study.metrics.index[0], "device"] = "cuda:0"
    assert repeats(study).startswith("to float rounding")
