"""The results-directory reader: the tables, a run's artifacts.npz, and Study's lookups."""

import json
import math
import subprocess
import sys

import numpy as np
import pytest
from synthetic_runs import (
    DIVERGED,
    MISSING,
    aggregate_cli,
    write_manifest,
    write_quality_references,
    write_synthetic_results,
)

from vaebench import catalog, evidence, results, units
from vaebench.results import ResultsError, Study, read_npz, read_tables


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """3 families x latent dims 2 and 8 x 3 seeds, one diverged and one missing run, aggregated."""
    synthetic = write_synthetic_results(tmp_path_factory.mktemp("results") / "mnist5k")
    aggregate_cli(synthetic)
    return synthetic, Study.load(synthetic.results)


def metric(synthetic, family, dim, seed, key):
    return json.loads((synthetic.run_dir(family, dim, seed) / "metrics.json").read_text())[key]


def test_read_tables_reads_the_three_tables_with_notes_as_text(study):
    synthetic, _ = study
    metrics, summary, tests = read_tables(synthetic.results)
    assert len(metrics) == len(synthetic.expected)
    assert len(summary) == len(synthetic.families) * len(synthetic.latent_dims)
    assert set(tests["metric"]) == set(results.TESTED)
    assert metrics["note"].map(type).eq(str).all()
    assert summary["bpd_disc_note"].map(type).eq(str).all() and tests["better"].map(type).eq(str).all()


def test_read_tables_without_aggregate_says_what_to_run(tmp_path):
    with pytest.raises(ResultsError, match="run `vaebench aggregate"):
        read_tables(tmp_path)


def test_read_npz_reads_every_array_and_a_damaged_file_is_a_one_line_error(study, tmp_path):
    synthetic, _ = study
    arrays = read_npz(synthetic.run_dir("gaussian", 2, 0) / "artifacts.npz")
    assert {"data", "recon", "samples", "samples_std", "latent_mu"} <= set(arrays)
    damaged = tmp_path / "artifacts.npz"
    damaged.write_bytes(b"PK\x03\x04 truncated")
    unreadable = r"artifacts.npz is unreadable \(.*\): re-run `vaebench evaluate`"
    with pytest.raises(ResultsError, match=unreadable) as err:
        read_npz(damaged)
    assert "\n" not in str(err.value)


def test_note_columns_follow_what_evaluate_writes():
    assert results.note_column("bpd_disc") == "ll_disc_note"
    assert results.note_column("ll_deq_nats") == "ll_deq_note"
    assert results.note_column("coverage90") == "coverage90_note"


def test_study_orders_and_labels_families_by_the_catalog(study):
    synthetic, loaded = study
    assert loaded.families == catalog.family_order(synthetic.families)
    assert loaded.labels == {f: catalog.label(f) for f in synthetic.families}
    assert loaded.dims == list(synthetic.latent_dims)
    assert set(loaded.ok["status"]) == {results.OK}
    assert len(loaded.ok) == len(synthetic.expected) - 2  # the diverged and the missing run


def test_study_stat_is_the_mean_over_ok_seeds(study):
    synthetic, loaded = study
    family, dim, bad_seed = DIVERGED
    s = loaded.stat(family, dim, "bpd_disc")
    values = [
        metric(synthetic, family, dim, seed, "bpd_disc") for seed in synthetic.seeds if seed != bad_seed
    ]
    assert s["mean"] == pytest.approx(np.mean(values)) and s["n"] == 2 and s["note"] == ""
    absent = loaded.stat("beta", dim, "bpd_disc")
    assert math.isnan(absent["mean"]) and absent["n"] == 0


def test_study_test_is_turned_to_the_order_asked_for(study):
    _, loaded = study
    ab = loaded.test("bpd_disc", 2, "bernoulli", "gaussian")
    ba = loaded.test("bpd_disc", 2, "gaussian", "bernoulli")
    assert ab["diff_mean"] == pytest.approx(-ba["diff_mean"]) and ab["diff_mean"] > 0  # gaussian is better
    assert loaded.test("bpd_disc", 2, "bernoulli", "beta") is None


def test_study_reads_artifacts_of_the_lowest_ok_seed_once(study):
    _, loaded = study
    family, dim, _ = MISSING
    found_seed, arrays = loaded.artifacts(family, dim)
    assert found_seed == 0
    assert loaded.artifacts(family, dim)[1] is arrays  # read once per study
    assert loaded.artifacts("beta", dim) is None


def test_study_history_stacks_every_run_with_a_history(study):
    synthetic, loaded = study
    history = loaded.history
    assert set(history["status"]) == {results.OK, results.DIVERGED}
    family, dim, seed = DIVERGED
    run = (history["family"] == family) & (history["latent_dim"] == dim) & (history["seed"] == seed)
    diverged = history[run]
    assert list(diverged["epoch"]) == [1, 2]  # diverged at epoch 3
    runs = history.groupby(["family", "latent_dim", "seed"])
    assert len(runs) == len(synthetic.expected) - 1  # all but the missing run


def test_the_reader_imports_neither_torch_nor_matplotlib():
    code = (
        "import sys, vaebench.results, vaebench.findings; "
        "print(sorted({'torch', 'matplotlib'} & sys.modules.keys()))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_study_reads_its_baselines_and_the_reference_files_given(study, tmp_path):
    synthetic, loaded = study
    assert [row["id"] for row in loaded.baseline_rows] == ["histogram", "two_masses", "uniform"]  # best first
    assert loaded.baseline("uniform")["bpd_disc"] == 8.0
    assert loaded.manifest is None and loaded.quality is None
    manifest = write_manifest(tmp_path / "m.json", n_train=123)
    quality = write_quality_references(tmp_path / "q.json")
    again = Study.load(synthetic.results, manifest, quality)
    assert again.manifest["n_train"] == 123 and again.quality["fd_n"] > 0
    with pytest.raises(ResultsError, match="does not exist: run `vaebench data`"):
        Study.load(synthetic.results, tmp_path / "absent.json")
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(ResultsError, match=r"picture-quality references .*bad.json is not a JSON object"):
        Study.load(synthetic.results, quality=tmp_path / "bad.json")


def test_study_stat_carries_the_error_of_the_mean_over_seeds_and_images(study):
    synthetic, loaded = study
    s = loaded.stat("bernoulli", 2, "bpd_disc")
    runs = loaded.per_image("bpd_disc", 2)
    assert s["se"] == pytest.approx(evidence.family_means(evidence.bootstrap(runs)).loc["bernoulli", "se"])
    test_set_only = [
        metric(synthetic, "bernoulli", 2, seed, "ll_disc_se") / (784 * math.log(2))
        for seed in synthetic.seeds
    ]
    assert s["se"] > math.sqrt(sum(x * x for x in test_set_only)) / 3  # seeds add to the images' noise
    assert math.isnan(loaded.stat("bernoulli", 2, "recon_mse")["se"])  # no test-set error recorded for it
    assert loaded.n_seeds == 3


def test_study_per_image_gives_each_familys_ok_runs_images(study):
    synthetic, loaded = study
    family, dim, bad_seed = DIVERGED
    runs = loaded.per_image("bpd_disc", dim)
    assert list(runs) == loaded.families and runs[family].shape == (2, 300)
    good = [seed for seed in synthetic.seeds if seed != bad_seed]
    np.testing.assert_allclose(
        runs[family].mean(axis=1),
        [metric(synthetic, family, dim, seed, "bpd_disc") for seed in good],
        rtol=1e-6,
    )
    assert loaded.per_image("knn_acc", dim) is None  # one number per run: nothing per image


def test_study_test_turns_every_column_of_the_pair(study):
    _, loaded = study
    ab = loaded.test("bpd_disc", 8, "bernoulli", "gaussian")
    ba = loaded.test("bpd_disc", 8, "gaussian", "bernoulli")
    assert (ab["family_a"], ab["n_a"], ab["n_b"]) == ("bernoulli", 3, 2) and ba["family_a"] == "gaussian"
    assert (ab["mean_a"], ab["mean_b"]) == pytest.approx((ba["mean_b"], ba["mean_a"]))
    assert (ab["diff_ci95_low"], ab["diff_ci95_high"]) == pytest.approx(
        (-ba["diff_ci95_high"], -ba["diff_ci95_low"])
    )
    assert (ab["gap_min"], ab["gap_max"]) == pytest.approx((-ba["gap_max"], -ba["gap_min"]))
    assert (ab["runs_ahead"], ba["runs_ahead"], ab["run_pairs"]) == (0, 6, 6)  # gaussian is better
    assert ab["p_holm"] == ba["p_holm"]


def test_every_tested_measure_has_a_direction_and_only_the_mean_images_are_tested():
    assert results.TESTED["bpd_disc"] is True and results.TESTED["knn_acc"] is False
    assert not any(m.endswith("_median") for m in results.TESTED)
    assert set(results.QUALITY) <= set(results.MEASURES) and units.nats_to_bpd(784 * math.log(2), 784) == 1
