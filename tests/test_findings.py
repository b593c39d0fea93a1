"""The findings on synthetic studies, as plain text: the evidence rule, the verdict, the limits box, each
rule, and that they follow the catalog."""

import json
import math
import re

import pandas as pd
import pytest
from synthetic_runs import (
    aggregate_cli,
    edit_json,
    set_likelihood,
    study_of,
    write_manifest,
    write_run,
    write_selection,
    write_synthetic_results,
)

from vaebench import analysis, catalog, evidence, findings, results, stats
from vaebench.catalog import FAMILY_IDS
from vaebench.findings import Finding, details, seed_claims, trust, use
from vaebench.results import METHOD_PAIRED_T, Study


def label(family: str) -> str:
    return catalog.label(family)


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
    return study_of(write_synthetic_results(tmp_path_factory.mktemp("full") / "mnist5k"))


@pytest.fixture(scope="module")
def sparse(tmp_path_factory):
    """One seed at latent dimension 8 of bernoulli, gaussian_fixed and beta (no discretized value)."""
    synthetic = write_synthetic_results(
        tmp_path_factory.mktemp("sparse") / "mnist5k",
        families=("bernoulli", "gaussian_fixed", "beta"),
        latent_dims=(8,),
        seeds=(0,),
        diverged=None,
        missing=None,
    )
    return study_of(synthetic)


@pytest.fixture(scope="module")
def every_family(tmp_path_factory):
    """All eleven families at latent dimension 8 over 3 seeds; the dequantized column of gaussian 5 bits/dim
    worse (its edge mass), laplace_fixed trained without dequantization."""
    synthetic = write_synthetic_results(
        tmp_path_factory.mktemp("every") / "mnist5k",
        families=FAMILY_IDS,
        latent_dims=(8,),
        diverged=None,
        missing=None,
    )
    for path in (synthetic.results / "gaussian").glob("z*/seed*/metrics.json"):
        set_likelihood(path.parent, bpd_deq=json.loads(path.read_text())["bpd_deq"] + 5)
    for path in (synthetic.results / "laplace_fixed").glob("z*/seed*/*.json"):  # metrics.json repeats it
        edit_json(path, dequantize=False)
    return study_of(synthetic)


def every(study: Study) -> list[Finding]:
    return findings.verdict(study) + findings.limits(study) + findings.findings(study)


def set_values(synthetic, family: str, dim: int, seeds=None, **values) -> None:
    """Edit metrics.json of the family's runs; a bits/dim moves each test image's log-likelihood too."""
    likelihoods = {key: values.pop(key) for key in list(values) if key.startswith("bpd_")}
    for seed in seeds if seeds is not None else synthetic.seeds:
        edit_json(synthetic.run_dir(family, dim, seed) / "metrics.json", **values)
        set_likelihood(synthetic.run_dir(family, dim, seed), **likelihoods)


def bpd(synthetic, family, dim, seed) -> float:
    return json.loads((synthetic.run_dir(family, dim, seed) / "metrics.json").read_text())["bpd_disc"]


def test_the_study_built_in_process_is_the_one_the_report_stage_reads(tmp_path):
    """study_of, the fixtures' shortcut past the CLI, gives the tables `vaebench aggregate` writes and
    `vaebench report` reads back."""
    synthetic = write_synthetic_results(tmp_path / "mnist5k", latent_dims=(8,), seeds=(0, 1))
    built = study_of(synthetic)
    aggregate_cli(synthetic)
    loaded = Study.load(synthetic.results)
    for table in ("metrics", "summary", "tests"):
        pd.testing.assert_frame_equal(getattr(built, table), getattr(loaded, table))
    assert built.baselines == loaded.baselines and findings.findings(built) == findings.findings(loaded)


def test_findings_are_plain_text_in_page_order_and_show_no_missing_value(full, sparse, every_family):
    order = [
        "status",
        "winner",
        "baselines",
        "edge_bin",
        "scored_as",
        "claim_converges",
        "claim_latent",
        "claim_sharper",
        "claim_squared_error",
        "likelihood_vs_pictures",
        "calibration",
        "comparability",
    ]
    for study in (full, sparse, every_family):
        items = findings.findings(study)
        assert_plain(items + findings.verdict(study) + findings.limits(study))
        keys = [f.key for f in items]
        assert keys == sorted(keys, key=order.index)
        assert all(str(f) == (f"{f.title} {f.text}" if f.title else f.text) for f in items)
        for finding in every(study):
            assert not re.search(r"\b(nan|None|null|inf)\b", str(finding)), finding


# -- the evidence rule ----------------------------------------------------------------------------------
def test_the_rule_in_words():
    boot = {"method": evidence.METHOD_BOOTSTRAP, "n_a": 3, "n_b": 3, "n_images": 2000, "p": 0.001}
    runs = {"runs_ahead": 9, "run_pairs": 9, "gap_min": -0.3, "gap_max": -0.1}
    ev = analysis.judge(-0.2, 3, p_holm=0.004, test={**boot, **runs})
    assert (
        ev.separated
        and ev.words == "significant (hierarchical bootstrap, 3 seeds × 2,000 images, Holm p = 0.004)"
    )
    assert (ev.p, ev.p_holm, ev.method) == (0.001, 0.004, evidence.METHOD_BOOTSTRAP)
    assert (ev.runs_ahead, ev.run_pairs, ev.gap_min, ev.gap_max) == (9, 9, -0.3, -0.1)
    images = {**boot, "method": evidence.METHOD_IMAGES, "n_a": 1, "n_b": 1}
    ev = analysis.judge(0.2, 1, p_holm=0.3, test=images)
    assert (
        not ev.separated
        and ev.words == "not significant (1 seed: test images only, 2,000 images, Holm p = 0.300)"
    )
    welch = {"method": evidence.METHOD_WELCH, "n_a": 3, "n_b": 2, "p": 1e-6}
    ev = analysis.judge(0.2, 2, p_holm=1e-5, test=welch)
    assert ev.words == "significant (Welch t-test across 3 and 2 seeds, Holm p < 0.001)"
    paired = {"method": METHOD_PAIRED_T, "n_a": 4, "n_b": 4, "p": 0.1}
    ev = analysis.judge(0.2, 4, p_holm=0.3, test=paired)
    assert ev.words == "not significant (paired t-test across 4 seeds, Holm p = 0.300)"
    far = analysis.judge(0.2, 1, se_a=0.003, se_b=0.004)  # 40 standard errors of the difference
    assert far.separated and far.words == f"larger than {stats.NOISE_SE} test-set standard errors, 1 seed"
    near = analysis.judge(0.02, 1, se_a=0.003, se_b=0.004)  # 4 standard errors
    assert not near.separated and near.words == "order of means only: 4.0 test-set standard errors, 1 seed"
    assert analysis.judge(0.2, 2).words == "order of means only, 2 seeds"  # no standard error to go by
    assert analysis.judge(0.2, 1, se_a=0.003, se_b=0.004).better("bpd_disc") == -1  # a is worse: higher bits
    assert analysis.judge(0.2, 1, se_a=0.003, se_b=0.004).better("knn_acc") == 1  # a is better: higher acc


def write_one_seed(results, per_image: bool = True):
    """Three families at z = 8, one seed: logit-normal leads gaussian far beyond the test-set noise and
    logit-Laplace by less than it."""
    synthetic = write_synthetic_results(
        results,
        families=("gaussian", "logit_normal", "logit_laplace"),
        latent_dims=(8,),
        seeds=(0,),
        diverged=None,
        missing=None,
        per_image=per_image,
    )
    best = bpd(synthetic, "logit_normal", 8, 0)
    set_values(synthetic, "logit_laplace", 8, bpd_disc=best + 0.01)  # SE 3 nats = 0.0055 bits/dim each
    set_values(synthetic, "gaussian", 8, bpd_disc=best + 0.3)
    return synthetic


@pytest.fixture
def one_seed(tmp_path):
    return write_one_seed(tmp_path / "mnist5k")


def test_one_seed_the_test_images_separate_a_far_lead_and_not_a_near_one(one_seed):
    study = study_of(one_seed)
    far, near = (
        analysis.evidence(study, "bpd_disc", 8, "logit_normal", f) for f in ("gaussian", "logit_laplace")
    )
    assert far.separated and far.method == evidence.METHOD_IMAGES
    assert far.words.startswith("significant (1 seed: test images only, 300 images, Holm p")
    assert not near.separated and near.words.startswith("not significant (1 seed: test images only")
    assert (far.runs_ahead, far.run_pairs) == (1, 1)
    (limit,) = trust.limit_seeds(study)
    assert "the likelihoods' tests resample the test images only" in limit.text


def test_one_seed_without_per_image_values_a_lead_far_beyond_the_test_set_noise_and_one_within_it(tmp_path):
    study = study_of(write_one_seed(tmp_path / "mnist5k", per_image=False))
    assert study.per_image_table is None
    se_diff = math.hypot(*(study.stat(f, 8, "bpd_disc")["se"] for f in ("logit_normal", "logit_laplace")))
    far, near = (
        analysis.evidence(study, "bpd_disc", 8, "logit_normal", f) for f in ("gaussian", "logit_laplace")
    )
    assert far.separated and far.words == f"larger than {stats.NOISE_SE} test-set standard errors, 1 seed"
    assert not near.separated
    assert near.words == f"order of means only: {0.01 / se_diff:.1f} test-set standard errors, 1 seed"
    (winner,) = details.winners(study)
    assert winner.title == "Which family has the lowest discretized bits/dim?"
    assert (winner.verdict, winner.measure, winner.evidence) == (
        label("logit_normal"),
        "bits/dim disc",
        "ahead of 1 of 2",
    )
    assert winner.text == (
        f"At every latent size, {label('logit_normal')} has the lowest mean, not separated from "
        f"{label('logit_laplace')} by the evidence rule."
    )
    (best,) = use.verdict_likelihood(study)
    assert best.text.startswith(
        f"use {label('logit_normal')} at every latent size; by the order of the means"
    )
    ((lead, _),) = use.leaders_table(study)
    assert (lead.best, lead.runner_up, lead.separated) == ("logit_normal", "logit_laplace", False)
    assert lead.lead == pytest.approx(0.01) and "order of means only" in lead.words


def test_within_the_noise_squared_error_is_never_called_worse(tmp_path):
    """The seed's claim at one seed: a reconstruction MSE a hair above BCE's is not 'worse'."""
    squared = catalog.with_everyday_loss("squared error")
    bce = catalog.with_everyday_loss("binary cross-entropy")
    synthetic = write_synthetic_results(
        tmp_path / "mnist5k",
        families=(bce, squared),
        latent_dims=(8,),
        seeds=(0,),
        diverged=None,
        missing=None,
    )
    set_values(synthetic, squared, 8, recon_mse=0.028)
    set_values(synthetic, bce, 8, recon_mse=0.026)
    finding = one(seed_claims.claims(study_of(synthetic)), "claim_squared_error")
    assert re.search(r"not separated from [^;]* on [^;]*recon\. MSE \(z = 8\)", finding.text)
    assert not re.search(r"(better|worse) than [^;]*recon\. MSE", finding.text)


def test_three_seeds_significant_and_not(tmp_path):
    synthetic = write_synthetic_results(
        tmp_path / "mnist5k",
        families=("gaussian", "logit_normal", "logit_laplace"),
        latent_dims=(4,),
        seeds=(0, 1, 2),
        diverged=None,
        missing=None,
    )
    best = [bpd(synthetic, "logit_normal", 4, s) for s in synthetic.seeds]
    for seed, shift in zip(synthetic.seeds, (0.03, -0.02, 0.01), strict=True):  # noisy, just behind the best
        set_values(synthetic, "logit_laplace", 4, [seed], bpd_disc=best[seed] + shift)
    study = study_of(synthetic)
    tie = analysis.evidence(study, "bpd_disc", 4, "logit_normal", "logit_laplace")
    win = analysis.evidence(study, "bpd_disc", 4, "logit_normal", "gaussian")
    p_tie = study.test("bpd_disc", 4, "logit_normal", "logit_laplace")["p_holm"]
    how = "hierarchical bootstrap, 3 seeds × 300 images"
    assert not tie.separated and tie.words == f"not significant ({how}, Holm p = {p_tie:.3f})"
    assert tie.runs_ahead < tie.run_pairs == 9  # a seed of logit-Laplace beats one of logit-normal
    assert win.separated and re.fullmatch(rf"significant \({how}, Holm p (= 0\.0\d\d|< 0\.001)\)", win.words)
    (winner,) = details.winners(study)
    assert winner.verdict == label("logit_normal") and winner.evidence == "ahead of 1 of 2"
    assert f"not separated from {label('logit_laplace')} by the evidence rule" in winner.text


# -- the verdict -----------------------------------------------------------------------------------------
def test_the_verdict_names_what_to_use_and_what_to_avoid_from_the_numbers(every_family):
    keys = [f.key for f in findings.verdict(every_family)]
    assert keys == ["use_likelihood", "use_quality", "use_avoid"]  # one latent size: no latent-size line
    avoid = one(findings.verdict(every_family), "use_avoid")
    worse_than_uniform = [f for f in every_family.families if every_family.stat(f, 8, "bpd_deq")["mean"] > 8]
    # each named once: worse than uniform, a per-pixel histogram beats them too, and that is not said again
    said = avoid.text.lower()
    assert worse_than_uniform and all(said.count(label(f).lower()) == 1 for f in worse_than_uniform)
    (scored,) = [e for e in catalog.CATALOG if e.scored_as]
    loss = scored.everyday_loss
    assert f"{loss[:1].upper()}{loss[1:]} as a likelihood (it is no density on [0, 1])." in avoid.text
    quality = one(findings.verdict(every_family), "use_quality")
    ((_, looks),) = use.leaders_table(every_family)
    assert looks.metric == "fd_samples_mean" and quality.text.startswith("the best-looking samples")
    assert label(looks.best) in quality.text
    assert looks.best == min(
        every_family.families, key=lambda f: every_family.stat(f, 8, "fd_samples_mean")["mean"]
    )


def test_the_leaders_table_has_one_row_per_latent_size_with_the_runner_up(full):
    rows = use.leaders_table(full)
    assert [lead.latent_dim for lead, _ in rows] == full.dims
    for lead, _ in rows:
        order = sorted(full.families, key=lambda f: full.stat(f, lead.latent_dim, "bpd_disc")["mean"])
        assert (lead.best, lead.runner_up) == tuple(order[:2])
        gap = full.stat(order[1], lead.latent_dim, "bpd_disc")["mean"] - lead.value
        assert lead.lead == pytest.approx(gap)


def test_without_picture_quality_the_verdict_says_so(tmp_path):
    synthetic = write_synthetic_results(
        tmp_path / "mnist5k",
        families=("bernoulli", "squared_error"),
        latent_dims=(8,),
        seeds=(0,),
        diverged=None,
        missing=None,
    )
    for path in synthetic.results.glob("*/z*/seed*/metrics.json"):
        metrics = json.loads(path.read_text())
        path.write_text(json.dumps({k: v for k, v in metrics.items() if k not in results.QUALITY}))
    study = study_of(synthetic)
    assert "not measured in these runs" in one(findings.verdict(study), "use_quality").text
    claim = one(seed_claims.claims(study), "claim_sharper")
    assert claim.verdict == analysis.NOT_TESTABLE and "not measured in these runs" in claim.text


# -- the limits box --------------------------------------------------------------------------------------
def limit_keys(study: Study) -> set[str]:
    return {f.key for f in findings.limits(study)}


def test_every_limit_line_appears_when_it_applies(one_seed, tmp_path):
    study = study_of(one_seed)  # 1 seed, K = 100, 300 of 1,000 test images, mlp, 4,000 training images
    assert limit_keys(study) == {
        "limit_epochs",
        "limit_selection",  # one learning rate for every family
        "limit_k",
        "limit_subset",
        "limit_seeds",
        "limit_arch",
        "limit_train_size",
    }
    text = " ".join(map(str, findings.limits(study)))
    assert "K = 100, not 5000" in text
    assert "learning rate 0.001 and the fixed scales as set" in text
    assert "scored on the first 300 of the 1,000 test images" in text
    assert (
        "4,000 training images" in text and "the mlp, not the conv net of the seed post's companion" in text
    )
    rising = analysis.still_rising(study)
    assert len(rising) == 3 and (rising["share"] >= analysis.RISING_SHARE).all()
    assert "3 of 3 ok runs still improved in their last epoch (of 5)" in text
    assert all(len(str(f).split()) <= 30 for f in findings.limits(study))  # short lines


def test_no_limit_line_appears_when_none_applies(one_seed, tmp_path):
    for run in one_seed.results.glob("*/z*/seed0"):
        history = pd.read_csv(run / "history.csv")
        history["test_elbo_nats"] = history["test_elbo_nats"].iloc[-1]  # flat from the start: nothing to gain
        history.loc[0, "test_elbo_nats"] -= 100
        history.to_csv(run / "history.csv", index=False)
        edit_json(run / "metrics.json", k=5000, n_test=1000, arch="conv")
        edit_json(run / "run.json", arch="conv")
    for seed in (1, 2):  # three seeds each
        for family in one_seed.families:
            write_run(one_seed, family, 8, seed, k=5000, n_test=1000)
            edit_json(one_seed.run_dir(family, 8, seed) / "run.json", arch="conv")
            edit_json(one_seed.run_dir(family, 8, seed) / "metrics.json", arch="conv")
    write_manifest(tmp_path / "manifest.json", n_train=60_000, n_test=1000)
    for family in one_seed.families:  # chosen on runs as long as the study's, inside the grid
        write_selection(one_seed.results, family, epochs=5, lrs=(3e-4, 1e-3, 3e-3), chosen=1e-3)
    study = study_of(one_seed, tmp_path / "manifest.json")
    assert limit_keys(study) == {"limit_epochs"}  # the new seeds' curves still rise
    for run in one_seed.results.glob("*/z*/seed[12]"):
        history = pd.read_csv(run / "history.csv")
        history.loc[len(history) - 1, "test_elbo_nats"] = history["test_elbo_nats"].iloc[-2]  # flat, at last
        history.to_csv(run / "history.csv", index=False)
    assert limit_keys(study_of(one_seed, tmp_path / "manifest.json")) == set()


def test_settings_chosen_on_short_runs_or_at_a_grid_edge_are_a_limit(one_seed):
    write_selection(one_seed.results, "gaussian", epochs=2, lrs=(3e-4, 1e-3), chosen=1e-3)
    write_selection(one_seed.results, "logit_normal", epochs=2, lrs=(3e-4, 1e-3, 3e-3), chosen=1e-3)
    (limit,) = trust.limit_selection(study_of(one_seed))
    assert limit.title == "Settings chosen on short runs:"
    assert "chosen on runs capped at 2 epochs (seed 0, z = 8), the study's at 5" in limit.text
    assert f"{label('gaussian')} (learning rate 0.001)" in limit.text  # the largest tried
    assert label("logit_normal") not in limit.text  # inside its grid


# -- the rules -------------------------------------------------------------------------------------------
def details_of(study: Study) -> list[Finding]:
    """The findings of `details` without the seed post's claims (seed_claims has its own tests)."""
    return [f for f in findings.findings(study) if not f.key.startswith("claim_")]


def test_details_are_questions_with_a_short_answer_and_no_numbers_in_their_text(full, sparse, every_family):
    """Each a question with its answer, measure and evidence in short; the paragraph names families and
    latent sizes, its numbers are in the tables, the verdict and the evidence."""
    for study in (full, sparse, every_family):
        for finding in details_of(study):
            assert finding.title.endswith("?") and finding.verdict, finding
            assert not re.search(r"\d\.\d|\bp [<=]", finding.text), finding
            assert len(finding.text.split()) <= 90, finding  # one short paragraph, long family names and all
    assert "sample_size" not in {f.key for f in findings.findings(sparse)}  # the limits box says it


def test_statuses_answer_whether_every_run_finished(full, sparse):
    done = one(findings.findings(sparse), "status")
    assert (done.title, done.verdict, done.text) == (
        "Did every run finish and get evaluated?",
        "yes: 3 of 3",
        "All 3 runs did.",
    )
    status = one(findings.findings(full), "status")
    assert (status.verdict, status.evidence) == ("no: 2 of 18 did not", "1 diverged, 1 missing")
    assert status.text.startswith("Not in the means and tests, but counted in the tables: ")
    assert f"{label('gaussian')} z = 8 seed 2 (diverged)" in status.text
    assert f"{label('continuous_bernoulli')} z = 8 seed 1 (missing: expected by the config" in status.text


def test_the_winner_names_the_best_family_once_for_every_latent_size(full):
    (winner,) = details.winners(full)
    assert winner.verdict == label("gaussian")  # the best at z = 2 and at z = 8
    assert winner.evidence == "ahead of 2 of 2"  # a t-test at z = 2, the test-set noise at z = 8 (2 seeds)
    assert (
        winner.text
        == f"At every latent size, {label('gaussian')} leads every other family by the evidence rule."
    )
    ranks = analysis.ranking(full)
    assert set(ranks.loc[ranks["rank"] == 1, "family"]) == {"gaussian"}


def test_the_winner_names_each_latent_sizes_best_family(tmp_path):
    """Two latent sizes, two winners: the verdict names each with its latent size."""
    synthetic = write_synthetic_results(
        tmp_path / "mnist5k", latent_dims=(2, 8), seeds=(0,), diverged=None, missing=None
    )
    set_values(synthetic, "bernoulli", 8, bpd_disc=1.0)  # far below gaussian's at z = 8 only
    (winner,) = details.winners(study_of(synthetic))
    assert winner.verdict == f"z = 2: {label('gaussian')}; z = 8: {label('bernoulli')}"
    assert winner.evidence == "ahead of 2 of 2"  # the same answer at every latent size, once
    assert winner.text == (
        f"At z = 2, {label('gaussian')} leads every other family by the evidence rule. At z = 8, "
        f"{label('bernoulli')} leads every other family by the evidence rule."
    )


def test_baselines_count_the_families_that_beat_a_histogram_without_a_latent(every_family):
    (finding,) = details.baselines(every_family)
    histogram, masses = (every_family.baseline(b) for b in ("histogram", "two_masses"))
    beat = [
        f
        for f, ev in analysis.against_references(every_family, 8, histogram).items()
        if ev.better("bpd_disc") > 0
    ]
    assert "logit_normal" in beat and "gaussian_fixed" not in beat
    judged = len(FAMILY_IDS) - 1  # beta has no discretized value
    assert (finding.verdict, finding.measure) == (f"{len(beat)} of {judged}", "bits/dim disc")
    assert finding.evidence == f"0 not separated, {judged - len(beat)} worse"
    loses_to, lost = re.fullmatch(
        r"At every latent size, the per-pixel histogram loses to every family but (.*); even the two-mass "
        r"model beats (.*)\.",
        finding.text,
    ).groups()
    # "every family but" names the families that do not beat the histogram
    assert label("gaussian_fixed") in loses_to and label("logit_normal") not in loses_to
    assert label("gaussian_fixed") in lost and label("logit_normal") not in lost
    ev = analysis.against_references(every_family, 8, masses)["gaussian_fixed"]
    assert ev.better("bpd_disc") < 0 and ev.words.startswith("significant (one-sample t-test across 3 seeds")


def test_bce_read_as_cb_against_cb_trained_on_its_own_likelihood(full, sparse):
    (entry,) = [e for e in catalog.CATALOG if e.scored_as]
    finding = one(findings.findings(full), "scored_as")
    assert finding.title == (
        f"Does training on {entry.everyday_loss} instead of the {label(entry.scored_as)} cost likelihood?"
    )
    assert (finding.verdict, finding.measure) == ("yes", "bits/dim disc")
    at2, at8 = finding.evidence.split("; ")
    assert at2.startswith("z = 2: significant (hierarchical bootstrap, 3 seeds × 300 images, Holm p")
    # a missing seed of CB: the bootstrap resamples 3 seeds of one family and 2 of the other
    assert at8.startswith("z = 8: significant (hierarchical bootstrap, 3 and 2 seeds × 300 images, Holm p")
    assert finding.text.endswith(
        f"At every latent size, {label(entry.scored_as)} trained on its own likelihood is better."
    )
    missing = one(findings.findings(sparse), "scored_as")
    assert missing.verdict == analysis.NOT_TESTABLE
    assert missing.text == f"Not compared here: the study lacks ok runs of {entry.scored_as}."


def test_the_seed_claims_each_have_a_verdict_and_name_what_stands_for_their_words(every_family, full):
    claims = {f.key: f for f in seed_claims.claims(every_family)}
    assert set(claims) == {"claim_converges", "claim_latent", "claim_sharper", "claim_squared_error"}
    assert all(f.verdict in analysis.VERDICTS for f in claims.values())
    squared = catalog.with_everyday_loss("squared error")
    for claim in ("claim_latent", "claim_sharper", "claim_squared_error"):
        assert f"squared error: {label(squared)}, not tuned" in claims[claim].stands_for
    assert "“sharper”: a higher sharpness of the reconstructions" in claims["claim_sharper"].stands_for
    assert claims["claim_sharper"].measure == results.MEASURES["sharpness_mean"].short
    # 3 seeds: BCE's kNN accuracy is far above squared error's (synthetic: 0.9 against 0.5)
    assert claims["claim_latent"].verdict == analysis.SUPPORTED
    assert claims["claim_latent"].evidence.startswith("better than 1, worse than 0, not separated from 0")
    # runs that record no stop reason trained a fixed count of epochs: the count to 95% is truncated
    assert claims["claim_converges"].verdict == analysis.NOT_TESTABLE
    assert "fixed number of epochs" in claims["claim_converges"].text
    (missing,) = [f for f in seed_claims.claims(full) if f.key == "claim_squared_error"]
    assert missing.verdict == analysis.NOT_TESTABLE and f"no ok runs of {label(squared)}" in missing.text


def test_quicker_is_tested_only_on_runs_the_rule_ended(tmp_path):
    bce = catalog.with_everyday_loss("binary cross-entropy")
    synthetic = write_synthetic_results(
        tmp_path / "mnist5k",
        families=(bce, "gaussian", "beta"),
        latent_dims=(8,),
        diverged=None,
        missing=None,
        stop_reason="converged",
    )
    edit_json(synthetic.run_dir("beta", 8, 1) / "run.json", stop_reason="epoch_cap")
    claim = one(seed_claims.claims(study_of(synthetic)), "claim_converges")
    assert (
        claim.verdict != analysis.NOT_TESTABLE
        and f"Left out, their runs not all ended by the rule: {label('beta')}" in claim.text
    )
    edit_json(synthetic.run_dir(bce, 8, 0) / "run.json", stop_reason="epoch_cap")
    claim = one(seed_claims.claims(study_of(synthetic)), "claim_converges")
    assert claim.verdict == analysis.NOT_TESTABLE and "cannot say how fast it converged" in claim.text


def test_a_claim_is_mixed_when_its_comparisons_go_both_ways(tmp_path):
    squared = catalog.with_everyday_loss("squared error")
    bce = catalog.with_everyday_loss("binary cross-entropy")
    synthetic = write_synthetic_results(
        tmp_path / "mnist5k", families=(bce, squared), latent_dims=(2, 8), diverged=None, missing=None
    )
    for seed, acc in zip(synthetic.seeds, (0.95, 0.96, 0.97), strict=True):
        set_values(synthetic, squared, 8, [seed], knn_acc=acc)  # better than BCE at z = 8 only
    claim = one(seed_claims.claims(study_of(synthetic)), "claim_latent")
    assert claim.verdict == analysis.MIXED
    assert "better than" in claim.text and "worse than" in claim.text


def test_a_claim_is_contradicted_when_one_comparison_goes_against_it(tmp_path):
    squared = catalog.with_everyday_loss("squared error")
    bce = catalog.with_everyday_loss("binary cross-entropy")
    synthetic = write_synthetic_results(
        tmp_path / "mnist5k", families=(bce, squared), latent_dims=(8,), diverged=None, missing=None
    )
    for seed, acc in zip(synthetic.seeds, (0.95, 0.96, 0.97), strict=True):
        set_values(synthetic, squared, 8, [seed], knn_acc=acc)  # squared error's latent space is better
    claim = one(seed_claims.claims(study_of(synthetic)), "claim_latent")
    assert claim.verdict == analysis.CONTRADICTED and "worse than" in claim.text


def test_squared_error_learned_scale_rescue(tmp_path):
    squared = catalog.with_everyday_loss("squared error")
    synthetic = write_synthetic_results(
        tmp_path / "mnist5k",
        latent_dims=(8,),
        diverged=(squared, 8, 2),
        missing=None,
        families=("bernoulli", squared, "gaussian", "gaussian_shared"),
    )
    finding = one(seed_claims.claims(study_of(synthetic)), "claim_squared_error")
    assert finding.text.startswith(seed_claims.SEED_QUOTE)
    assert f"a learned scale does not ({label('gaussian')} at z = 8" in finding.text
    assert f"not the {catalog.BY_ID[squared].distribution} shape" in finding.text
    assert (
        f"A learned scale does not rescue it everywhere: {label('gaussian_shared')} at z = 8" in finding.text
    )
    assert finding.text.endswith(f" 1 {label(squared)} run diverged.")


def test_likelihood_and_pictures_disagree_for_the_logit_families(every_family):
    (finding,) = details.likelihood_vs_pictures(every_family)
    found = analysis.likelihood_vs_pictures(every_family)
    assert [(d.family, d.likelihood_place) for d in found] == [("logit_normal", 1), ("logit_laplace", 2)]
    assert (finding.verdict, finding.evidence) == ("no", f"2 of {found[0].of} families")
    assert finding.measure == "bits/dim disc, FD of samples"
    assert f": {label('logit_normal')} and {label('logit_laplace')} at every latent size." in finding.text
    assert finding.text.count("flat grey") == 1  # their median images are measured


def test_edge_bins_name_the_continuous_real_line_families_by_their_distribution(full, every_family):
    assert details.edge_bins(full) == []  # the synthetic columns agree: nothing to explain
    (finding,) = details.edge_bins(every_family)
    assert (finding.verdict, finding.measure) == ("same leader, far apart", "bits/dim disc, bits/dim deq")
    # the fixture adds 5 bits/dim to gaussian's dequantized column: its edge mass
    assert re.fullmatch(r"widest gap 5\.\d{3} bits/dim", finding.evidence)
    assert finding.text.startswith(
        f"At every latent size, both columns rank {label('logit_normal')} first. The gap is widest for "
        f"{label('gaussian')}."
    )
    real = [e for e in catalog.CATALOG if e.real_line and not e.discrete]
    shapes = " and ".join(dict.fromkeys(e.distribution for e in real))
    assert f"The edge bins v = 0 and 255 of the {shapes} families, on the whole real line" in finding.text
    assert label("discretized_logistic") not in finding.text  # the conventions say why its columns agree


def test_edge_bins_without_a_real_line_family(tmp_path):
    synthetic = write_synthetic_results(
        tmp_path / "mnist5k",
        families=("continuous_bernoulli", "logit_normal"),
        latent_dims=(8,),
        seeds=(0,),
        diverged=None,
        missing=None,
    )
    path = synthetic.run_dir("logit_normal", 8, 0) / "metrics.json"
    set_likelihood(path.parent, bpd_deq=json.loads(path.read_text())["bpd_deq"] + 2)
    (finding,) = details.edge_bins(study_of(synthetic))
    assert finding.verdict == "no: another leader"
    assert "the dequantized column " + label("continuous_bernoulli") in finding.text
    assert "No family here is on the whole real line" in finding.text


def test_calibration_is_named_a_reconstruction_calibration_and_comparability(full, every_family):
    (calibration,) = details.calibration(full)
    assert calibration.title == "Are the reconstructions calibrated?"
    coverage = [full.stat(f, d, "coverage90")["mean"] for f in full.families for d in full.dims]
    assert calibration.verdict == f"{min(coverage):.3f} to {max(coverage):.3f}"
    assert re.fullmatch(r"ideal 0\.900, closest 0\.\d{3}, furthest 0\.\d{3}", calibration.evidence)
    assert "not a predictive calibration" in calibration.text
    assert calibration.text.endswith(
        f"Closest is {label('bernoulli')} at z = 2, furthest {label('gaussian')} at z = 2."
    )
    assert details.comparability(full) == []
    (marked,) = details.comparability(every_family)
    assert (marked.title, marked.verdict) == (
        "Are all likelihoods on the same footing?",
        "no: 1 family marked †",
    )
    assert f"as the seed post did: {label('laplace_fixed')}." in marked.text
    assert analysis.not_comparable(every_family) == ["laplace_fixed"]


def test_the_limits_count_the_runs_the_cap_stopped_and_weigh_the_drift_against_the_lead(tmp_path):
    synthetic = write_synthetic_results(
        tmp_path / "mnist5k",
        latent_dims=(8,),
        diverged=None,
        missing=None,
        stop_reason="converged",
        drift_bpd=4e-4,
    )
    edit_json(synthetic.run_dir("gaussian", 8, 1) / "run.json", stop_reason="epoch_cap", drift_bpd=0.02)
    study = study_of(synthetic)
    ended = analysis.stops(study)
    assert ended.counts == {"converged": 8, "epoch_cap": 1}
    assert ended.capped[["family", "seed"]].values.tolist() == [["gaussian", 1]]
    (limit,) = [f for f in findings.limits(study) if f.key == "limit_epochs"]
    assert limit.title == "Training had not converged:"
    capped = "1 of 9 ok runs stopped at the epoch cap (5), not by the rule"
    assert f"{capped}: {label('gaussian')} z = 8 seed 1." in limit.text
    dim, gap = analysis.lead(study)
    assert (
        f"Drift left at a converged run's stop: at most 0.0004 bits/dim, against a lead of {gap:.3f}"
        in limit.text
    )
    means = sorted(study.stat(f, 8, "bpd_disc")["mean"] for f in study.families)
    assert gap == pytest.approx(means[1] - means[0])


def test_tables_written_before_the_stopping_rule_still_report_their_rising_curves(one_seed):
    study = study_of(one_seed)  # its runs record no stop reason
    assert analysis.stops(study) is None
    (limit,) = [f for f in findings.limits(study) if f.key == "limit_epochs"]
    assert "still improved in their last epoch" in limit.text
