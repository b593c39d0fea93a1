"""Snakemake's own report of the tiny study: it builds on a fresh install (pygments is a declared dependency,
and without it Snakemake refuses) and opens in a real browser; our report lands in report/tiny/."""

import os
from pathlib import Path

import pytest
import tomllib
from test_report import CHROMIUM, CHROMIUM_ARGS
from test_workflow import ROOT, TINY, snakemake
from workflow_copy import copy_workflow


@pytest.fixture(scope="module")
def tiny_study(tmp_path_factory):
    """The tiny study (.test/config/config.yaml) run once in a copy of the workflow."""
    workdir = copy_workflow(tmp_path_factory.mktemp("tiny"))
    snakemake(workdir, "--configfile", str(TINY))
    return workdir


def hide_pygments(tmp: Path, monkeypatch) -> None:
    """Child processes from now on fail to `import pygments`, as on an install that lacks it."""
    shadow = tmp / "no_pygments" / "pygments"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('pygments is not installed (test)')\n")
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [str(shadow.parent), os.environ.get("PYTHONPATH")]))
    )


def test_pygments_is_a_declared_dependency():
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert any(d.split(">")[0].split("=")[0].strip().lower() == "pygments" for d in dependencies)


@pytest.mark.slow
def test_the_tiny_study_writes_its_report_under_its_name_and_the_index(tiny_study):
    page = tiny_study / "report" / "tiny" / "index.html"
    assert page.stat().st_size > 10_000 and '<section id="verdict">' in page.read_text()
    index = (tiny_study / "report" / "index.html").read_text()
    assert "<a href='tiny/index.html'>tiny</a>" in index


@pytest.mark.slow
def test_snakemake_report_builds_and_fails_without_pygments(tiny_study, tmp_path, monkeypatch):
    out = tmp_path / "snakemake-report.html"
    snakemake(tiny_study, "--configfile", str(TINY), "--report", str(out))
    assert out.stat().st_size > 100_000
    out.unlink()
    hide_pygments(tmp_path, monkeypatch)  # what a fresh install without the dependency would meet
    refused = snakemake(tiny_study, "--configfile", str(TINY), "--report", str(out), check=False)
    assert refused.returncode != 0 and "pygments must be installed" in refused.stdout + refused.stderr
    assert not out.exists()


@pytest.mark.slow
def test_snakemake_report_opens_in_a_real_browser(tiny_study, tmp_path):
    playwright = pytest.importorskip(
        "playwright.sync_api",
        reason="Playwright for Python is not installed (pip install playwright; no browser download needed)",
    )
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    out = tmp_path / "snakemake-report.html"
    snakemake(tiny_study, "--configfile", str(TINY), "--report", str(out))
    errors, requests = [], []
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.on("pageerror", lambda err: errors.append(str(err)))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(out.as_uri(), wait_until="load")
            page.wait_for_function("document.body.innerText.includes('Figures')", timeout=30_000)
            text = page.evaluate("document.body.innerText")
        finally:
            browser.close()
    assert not errors, errors
    assert "Figures" in text and "Report" in text and "Tables" in text
    assert all(url.startswith(("file:", "data:", "blob:")) for url in requests), requests
