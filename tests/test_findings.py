"""The findings on synthetic studies, as plain text: what each rule says, and that it follows the catalog."""

import contextlib
import io
import json
import re

import pytest
from synthetic_runs import write_synthetic_results

from vaebench import catalog, findings
from vaebench.catalog import FAMILY_IDS
from vaebench.cli import main
from vaebench.findings import Finding
from vaebench.results import Study


def label(family: str) -> str:
    return catalog.label(family)


def edit_json(path, **changes) -> None:
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def aggregated(synthetic) -> Study:
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["aggregate", "--results", str(synthetic.results), "--expected",
                     *map(str, synthetic.expected)]) == 0
    return Study.load(synthetic.results)


def one(items: list[Finding], key: str) -> Finding:
    found = [f for f in items if f.key == key]
    assert len(found) == 1, found
    return found[0]


def assert_plain(items: list[Finding]) -> None:
    for finding in items:
        text = str(finding)
        assert not re.search(r"</?[a-z]+[ >/]|&[a-z]+;|&#", text), text


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    """3 families x latent dims 2 and 8 x 3 seeds, gaussian z = 8 seed 2 diverged, CB z = 8 seed 1 missing."""
    return aggregated(write_synthetic_results(tmp_path_factory.mktemp("full") / "mnist5k"))


@pytest.fixture(scope="module")
def sparse(tmp_path_factory):
    """One seed at latent dimension 8 of bernoulli, gaussian_fixed and beta (no discretized value)."""
    synthetic = write_synthetic_results(tmp_path_factory.mktemp("sparse") / "mnist5k",
                                        families=("bernoulli", "gaussian_fixed", "beta"), latent_dims=(8,),
                                        seeds=(0,), diverged=None, missing=None)
    return aggregated(synthetic)


@pytest.fixture(scope="module")
def every_family(tmp_path_factory):
    """All eleven families at latent dimension 8 over 3 seeds; the dequantized column of gaussian 5 bits/dim
    worse (its edge mass), laplace_fixed trained without dequantization."""
    synthetic = write_synthetic_results(tmp_path_factory.mktemp("every") / "mnist5k", families=FAMILY_IDS,
                                        latent_dims=(8,), diverged=None, missing=None)
    for path in (synthetic.results / "gaussian").glob("z*/seed*/metrics.json"):
        edit_json(path, bpd_deq=json.loads(path.read_text())["bpd_deq"] + 5)
    for path in (synthetic.results / "laplace_fixed").glob("z*/seed*/*.json"):  # metrics.json repeats it
        edit_json(path, dequantize=False)
    return aggregated(synthetic)


def test_findings_are_plain_text_in_the_order_of_the_page(full, sparse, every_family):
    for study in (full, sparse, every_family):
        items = findings.findings(study)
        assert_plain(items)
        order = ["sample_size", "status", "winner", "edge_bin", "scored_as", "squared_error", "calibration",
                 "comparability"]
        keys = [f.key for f in items]
        assert keys == sorted(keys, key=order.index)
        assert all(str(f) == (f"{f.title} {f.text}" if f.title else f.text) for f in items)


def test_sample_size_and_statuses(full, sparse):
    assert one(findings.findings(sparse), "sample_size").title == "Too few seeds for statistics."
    assert "paired t-tests only" in one(findings.findings(full), "sample_size").text
    assert one(findings.findings(sparse), "status").text == "All 3 runs finished and were evaluated."
    status = one(findings.findings(full), "status")
    assert status.title == "2 of 18 runs are not in the means and tests,"
    assert f"{label('gaussian')} z = 8 seed 2 (diverged)" in status.text
    assert f"{label('continuous_bernoulli')} z = 8 seed 1 (missing: expected by the config" in status.text


def test_the_winner_with_and_without_significant_tests(full):
    at2, at8 = findings.winners(full)
    assert at2.title == f"Latent dimension 2: {label('gaussian')} has the lowest discretized bits/dim,"
    assert "The win is significant against every other family" in at2.text and "p_holm < 0.001" in at2.text
    assert at8.title.startswith(f"Latent dimension 8: {label('gaussian')} has the lowest")
    assert "No test was possible" in at8.text  # the diverged and missing runs leave 2 pairs or fewer
    assert "significant" not in at8.text.replace("not a significant win", "")


def test_a_win_that_no_test_supports_is_called_a_tie(tmp_path):
    synthetic = write_synthetic_results(tmp_path / "mnist5k",
                                        families=("gaussian", "logit_normal", "logit_laplace"),
                                        latent_dims=(4,), seeds=(0, 1, 2), diverged=None, missing=None)
    best = [json.loads((synthetic.run_dir("logit_normal", 4, s) / "metrics.json").read_text())["bpd_disc"]
            for s in synthetic.seeds]
    for seed, shift in zip(synthetic.seeds, (0.03, -0.02, 0.01), strict=True):  # noisy, just behind the best
        edit_json(synthetic.run_dir("logit_laplace", 4, seed) / "metrics.json", bpd_disc=best[seed] + shift)
    (winner,) = findings.winners(aggregated(synthetic))
    assert winner.title == f"Latent dimension 4: {label('logit_normal')} has the lowest discretized bits/dim,"
    assert (f"significantly better than 1 family, but not significantly better than {label('logit_laplace')}"
            in winner.text)
    assert "they tie" in winner.text


def test_bce_read_as_cb_against_cb_trained_on_its_own_likelihood(full, sparse):
    (entry,) = [e for e in catalog.CATALOG if e.scored_as]
    finding = one(findings.findings(full), "scored_as")
    assert label(entry.scored_as) in finding.title and entry.everyday_loss in finding.title.lower()
    parts = finding.text.split("; at latent dimension")
    assert len(parts) == 2
    better = f"{label(entry.scored_as)} is better by"
    assert better in parts[0] and "(significant: paired t-test over 3 seeds" in parts[0]
    assert better in parts[1] and "(not tested: 2 paired seeds)" in parts[1]
    missing = one(findings.findings(sparse), "scored_as")
    assert missing.title == "" and missing.text.endswith(f"not compared here, the study lacks ok runs of "
                                                         f"{entry.scored_as}.")


def test_squared_error_against_binary_cross_entropy(full, sparse, tmp_path):
    squared = catalog.with_everyday_loss("squared error")
    (missing,) = findings.squared_error(full)
    assert "not testable here" in missing.text and f"lacks ok runs of {squared}." in missing.text

    (finding,) = findings.squared_error(sparse)
    assert finding.title == "Squared error."
    assert f"Against {label(catalog.with_everyday_loss('binary cross-entropy'))}" in finding.text
    assert "at latent dimension 8 it fails as the seed says (worse: bits/dim" in finding.text

    synthetic = write_synthetic_results(tmp_path / "mnist5k", latent_dims=(8,), diverged=(squared, 8, 2),
                                        missing=None,
                                        families=("bernoulli", squared, "gaussian", "gaussian_shared"))
    (finding,) = findings.squared_error(aggregated(synthetic))
    # same distribution, learned scale: per pixel rescues the likelihood, the shared sigma does not
    assert f"a learned scale does not ({label('gaussian')} " in finding.text
    assert f"not the {catalog.BY_ID[squared].distribution} shape" in finding.text
    assert f"Not every learned scale rescues it: {label('gaussian_shared')} " in finding.text
    assert finding.text.endswith(f" 1 {squared} run diverged.")


def test_edge_bins_name_the_continuous_real_line_families_not_the_discrete_one(full, every_family):
    assert findings.edge_bins(full) == []  # the synthetic columns agree: nothing to explain
    (finding,) = findings.edge_bins(every_family)
    assert finding.text.startswith(f"Latent dimension 8: both columns rank {label('logit_normal')} first. "
                                   f"The widest gap between the two columns is {label('gaussian')}'s")
    named = re.search(r"A family on the whole real line \((.*?)\) gives the edge bins", finding.text).group(1)
    expected = [e.id for e in catalog.CATALOG if e.real_line and not e.discrete]
    assert named.split("; ") == [label(f) for f in expected]
    assert "discretized_logistic" not in expected and label("discretized_logistic") not in named
    assert (f"For {label('discretized_logistic')}, scored on the 8-bit bins in both columns, the two columns "
            "agree by construction.") in finding.text


def test_edge_bins_without_a_real_line_family(tmp_path):
    synthetic = write_synthetic_results(tmp_path / "mnist5k",
                                        families=("continuous_bernoulli", "logit_normal"),
                                        latent_dims=(8,), seeds=(0,), diverged=None, missing=None)
    path = synthetic.run_dir("logit_normal", 8, 0) / "metrics.json"
    edit_json(path, bpd_deq=json.loads(path.read_text())["bpd_deq"] + 2)
    (finding,) = findings.edge_bins(aggregated(synthetic))
    assert "the dequantized column " + label("continuous_bernoulli") in finding.text
    assert "No family here is on the whole real line" in finding.text
    assert "edge bins v = 0" not in finding.text


def test_calibration_and_comparability(full, every_family):
    (calibration,) = findings.calibration(full)
    assert calibration.text.endswith(f"for {label('gaussian')}, the one family here with a learned scale.")
    assert findings.comparability(full) == []
    (marked,) = findings.comparability(every_family)
    assert marked.title == "Not comparable (†):" and marked.text.startswith(f"{label('laplace_fixed')} were")
    assert findings.not_comparable(every_family) == ["laplace_fixed"]
