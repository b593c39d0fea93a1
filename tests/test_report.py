"""Figures and the HTML report from synthetic runs; the report is opened in a real (headless) browser."""

import contextlib
import io
import json
import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest

from vaebench.catalog import FAMILY_IDS
from synthetic_runs import DIVERGED, MISSING, write_synthetic_results

from vaebench.cli import main
from vaebench.figures import CAPTIONS, FIGURES, Study, family_styles
from vaebench.report import Report

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]


def build(results: Path, expected, out: Path) -> tuple[str, str]:
    """aggregate, figures, report through the CLI: (the page, what the stages printed)."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["aggregate", "--results", str(results), "--expected", *map(str, expected)]) == 0
        assert main(["figures", "--results", str(results)]) == 0
        assert main(["report", "--results", str(results), "--out", str(out)]) == 0
    return out.read_text(), printed.getvalue()


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    """3 families x latent dims 2 and 8 x 3 seeds, one diverged and one missing run, one run on another torch."""
    root = tmp_path_factory.mktemp("full")
    study = write_synthetic_results(root / "results" / "mnist5k")
    run_json = study.run_dir("gaussian", 2, 2) / "run.json"
    run_json.write_text(json.dumps({**json.loads(run_json.read_text()), "torch_version": "2.15.0"}))
    page, printed = build(study.results, study.expected, root / "report" / "index.html")
    assert "not drawn" not in printed  # this study has data for every figure
    return study, page, root / "report" / "index.html"


@pytest.fixture(scope="module")
def sparse(tmp_path_factory):
    """One seed, one latent dimension (8), no family with a learned scale, beta without a discretized value."""
    root = tmp_path_factory.mktemp("sparse")
    study = write_synthetic_results(root / "results" / "mnist5k", families=("bernoulli", "gaussian_fixed", "beta"),
                                    latent_dims=(8,), seeds=(0,), diverged=None, missing=None)
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


def test_every_figure_is_written_as_png_and_svg(full):
    study, _, _ = full
    for name in FIGURES:
        image = matplotlib.image.imread(study.results / "figures" / f"{name}.png")
        assert image.shape[0] > 50 and image.shape[1] > 300
        assert ET.parse(study.results / "figures" / f"{name}.svg").getroot().tag.endswith("svg")


def test_figures_without_data_say_why(sparse):
    study, _, printed = sparse
    for name in ("latent_scatter", "std_maps", "calibration", "significance"):
        assert f"{name}: not drawn" in printed
        assert (study.results / "figures" / f"{name}.png").exists()


def test_family_styles_are_distinct_and_independent_of_the_study():
    every = family_styles([*FAMILY_IDS, "something_new", "another"])
    assert len({(s.color, s.marker, s.linestyle) for s in every.values()}) == len(every)
    assert len({s.color for s in every.values()}) == len(every)
    assert family_styles(["beta", "gaussian"]) == {f: every[f] for f in ("beta", "gaussian")}


def test_headline_has_one_row_per_family_and_bolds_the_lowest_mean(full):
    study, page, _ = full
    rows = headline_rows(page)
    assert [label for label, _ in rows] == ["bernoulli (read as CB)", "continuous_bernoulli", "gaussian"]
    columns = [(dim, metric) for dim in study.latent_dims for metric in ("bpd_disc", "bpd_deq")]
    for j, (dim, metric) in enumerate(columns):
        means = {}
        for family in study.families:
            values = [json.loads((study.run_dir(family, dim, s) / "metrics.json").read_text())[metric]
                      for s in study.seeds if (family, dim, s) not in (DIVERGED, MISSING)]
            means[family] = np.mean(values)
        bold = [family for family, (_, classes) in zip(study.families, rows) if "best" in classes[j]]
        assert bold == [min(means, key=means.get)]
    assert page.count("lower is better") >= 5


def test_report_is_self_contained(full):
    _, page, _ = full
    sources = re.findall(r"src=['\"]([^'\"]*)", page)
    assert len(sources) == len(FIGURES)
    assert all(s.startswith("data:image/png;base64,") for s in sources)
    assert not re.search(r"<link|<script|href=['\"]https?:", page)


def test_report_counts_bad_runs_and_says_where_runs_differ(full):
    _, page, _ = full
    assert "2 of 18 runs are not in the means and tests" in page
    assert "gaussian z = 8 seed 2 (diverged)" in page
    assert "continuous_bernoulli z = 8 seed 1 (missing" in page
    setup = re.search(r"<table id='setup-table'>.*?</table>", page, re.S).group(0)
    assert re.search(r"varies: .*2\.15\.0", setup)
    assert "float32, summed in float64; one fused torch.compile kernel" in setup
    assert "1 diverged" in page and "1 missing" in page


def test_findings_follow_the_tests(full, sparse):
    _, page, _ = full
    findings = re.search(r"<section id=\"findings\">(.*?)</section>", page, re.S).group(1)
    assert "Latent dimension 2: gaussian has the lowest discretized bits/dim" in findings
    assert "significant against every other family" in findings
    assert "Latent dimension 8: gaussian has the lowest" in findings
    assert "No test was possible" in findings  # z = 8: the diverged and missing runs leave 2 pairs or fewer
    assert "the properly trained continuous Bernoulli is better" in findings
    assert "not testable here" in findings  # no gaussian_fixed in this study

    _, page, _ = sparse
    findings = re.search(r"<section id=\"findings\">(.*?)</section>", page, re.S).group(1)
    assert "Too few seeds for statistics" in findings
    assert "No test was possible" in findings
    assert "at latent dimension 8 it fails as the seed says" in findings


def test_a_win_that_no_test_supports_is_called_a_tie(tmp_path):
    study = write_synthetic_results(tmp_path / "mnist5k", families=("gaussian", "logit_normal", "logit_laplace"),
                                    latent_dims=(4,), seeds=(0, 1, 2), diverged=None, missing=None)
    best = [json.loads((study.run_dir("logit_normal", 4, s) / "metrics.json").read_text())["bpd_disc"]
            for s in study.seeds]
    for seed, shift in zip(study.seeds, (0.03, -0.02, 0.01)):  # noisy, on average just behind the best
        path = study.run_dir("logit_laplace", 4, seed) / "metrics.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), "bpd_disc": best[seed] + shift}))
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["aggregate", "--results", str(study.results)]) == 0
    report = Report(Study.load(study.results), None, tmp_path / "no-figures")
    findings = report.findings()
    assert "logit_normal has the lowest discretized bits/dim" in findings
    assert "significantly better than 1 family, but not significantly better than logit_laplace" in findings
    assert "they tie" in findings
    assert re.search(r"<td>=1</td><td>logit_normal</td>.*?<td>=1</td><td>logit_laplace</td>", report.ranking(),
                     re.S)


def test_a_missing_value_shows_na_with_its_reason(sparse):
    _, page, _ = sparse
    assert "n/a<sup>1</sup>" in page
    assert re.search(r"<li value='1'>beta has no CDF in torch", page)


def test_a_study_with_nothing_evaluated_still_reports(tmp_path):
    study = write_synthetic_results(tmp_path / "mnist5k", families=("gaussian",), latent_dims=(2,), seeds=(0,),
                                    diverged=None, missing=None, evaluate=False)
    page, printed = build(study.results, study.expected + [study.run_dir("beta", 2, 0)], tmp_path / "index.html")
    assert [label for label, _ in headline_rows(page)] == ["gaussian", "beta"]
    assert "not evaluated" in page and "missing" in page
    assert printed.count("not drawn") == len(FIGURES) - 1  # only the learning curves have data


def test_a_damaged_artifacts_file_is_a_one_line_error(tmp_path, capsys):
    study = write_synthetic_results(tmp_path / "mnist5k", families=("gaussian",), latent_dims=(8,), seeds=(0,),
                                    diverged=None, missing=None)
    (study.run_dir("gaussian", 8, 0) / "artifacts.npz").write_bytes(b"PK\x03\x04 truncated")
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["aggregate", "--results", str(study.results)]) == 0
        assert main(["figures", "--results", str(study.results)]) == 2
    assert "artifacts.npz is unreadable" in capsys.readouterr().err


def test_stages_need_the_tables_first(tmp_path, capsys):
    assert main(["figures", "--results", str(tmp_path)]) == 2
    assert "run `vaebench aggregate" in capsys.readouterr().err
    assert main(["report", "--results", str(tmp_path), "--out", str(tmp_path / "r.html")]) == 2


def test_every_figure_and_table_has_a_snakemake_caption():
    captions = ROOT / "workflow" / "report"
    rules = " ".join(p.read_text() for p in (ROOT / "workflow" / "rules").glob("*.smk"))
    referenced = set(re.findall(r'caption=f?"\.\./report/([a-z_{}]+)\.rst"', rules))
    assert {"metrics", "summary", "tests", "index", "{name}"} <= referenced  # {name}: one per figure
    for name in ({"workflow"} | referenced) - {"{name}"}:
        assert (captions / f"{name}.rst").exists(), name
    for name in FIGURES:
        text = " ".join((captions / f"{name}.rst").read_text().split())
        assert " ".join(CAPTIONS[name][1].split()) in text


def test_report_opens_in_a_real_browser(full):
    """Headless Chromium loads the page offline: every image decodes, one headline row per family."""
    playwright = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed "
                                     "(pip install playwright; no browser download needed)")
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    study, _, path = full
    requests = []
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.on("request", lambda r: requests.append(r.url))
            page.goto(path.as_uri(), wait_until="load")
            images = page.evaluate("Array.from(document.images, i => [i.complete, i.naturalWidth, i.alt])")
            rows = page.evaluate("document.querySelectorAll('#headline tbody tr').length")
        finally:
            browser.close()
    assert len(images) == len(FIGURES)
    assert all(complete and width > 0 for complete, width, _ in images), images
    assert rows == len(study.families)
    assert all(url.startswith(("file:", "data:")) for url in requests), requests


def test_edge_bin_finding_appears_only_when_the_columns_disagree(full, tmp_path):
    _, page, _ = full
    assert "the discretized column ranks" not in page  # synthetic columns agree: nothing to explain
    study = write_synthetic_results(tmp_path / "results" / "mnist5k", latent_dims=(8,), diverged=None, missing=None)
    for metrics in (study.results / "gaussian").glob("z*/seed*/metrics.json"):
        m = json.loads(metrics.read_text())
        metrics.write_text(json.dumps({**m, "bpd_disc": 0.5, "bpd_deq": m["bpd_deq"] + 5}))
    page, _ = build(study.results, study.expected, tmp_path / "index.html")
    text = re.sub(r"<[^>]+>", "", page)
    assert "Latent dimension 8: the discretized column ranks gaussian" in text
    assert "widest gap between the two columns is gaussian" in text


def test_report_says_what_is_deterministic(full):
    _, page, _ = full
    section = page[page.index("id=\"determinism\""):page.index("</ul>", page.index("id=\"determinism\""))]
    assert "On CPU a seed fixes everything" in section and "On a GPU" in section and "bit for bit" in section
