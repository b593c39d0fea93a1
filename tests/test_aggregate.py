"""Aggregation of synthetic run directories: every run is a row, nothing is dropped silently."""

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from synthetic_runs import DIVERGED, MISSING, write_run, write_synthetic_results

from vaebench import aggregate, evidence, layout, results, stats
from vaebench.cli import main


@pytest.fixture
def study(tmp_path):
    return write_synthetic_results(tmp_path / "results" / "mnist5k")


def read_metric(run_dir, key):
    return json.loads((run_dir / "metrics.json").read_text())[key]


def test_every_run_is_a_row_with_its_status(study):
    table = aggregate.collect(study.results, study.expected)
    assert len(table) == len(study.families) * len(study.latent_dims) * len(study.seeds)
    status = table.set_index(["family", "latent_dim", "seed"])["status"]
    assert status[MISSING] == "missing"
    assert status[DIVERGED] == "diverged"
    assert (status.drop([MISSING, DIVERGED]) == "ok").all()
    assert list(table.columns[:7]) == list(aggregate.ID_COLUMNS)


def test_without_expected_runs_only_what_is_on_disk_is_reported(study):
    table = aggregate.collect(study.results)
    assert len(table) == len(study.expected) - 1
    assert "missing" not in set(table["status"])


def test_trained_but_not_evaluated_and_unreadable_runs_are_kept(study):
    (study.run_dir("bernoulli", 2, 1) / "metrics.json").unlink()
    (study.run_dir("gaussian", 2, 0) / "metrics.json").write_text("{not json")
    table = aggregate.collect(study.results, study.expected).set_index(["family", "latent_dim", "seed"])
    assert table.loc[("bernoulli", 2, 1), "status"] == "not evaluated"
    assert table.loc[("gaussian", 2, 0), "status"] == "unreadable"
    assert "not valid JSON" in table.loc[("gaussian", 2, 0), "note"]


def test_a_row_carries_every_metric_and_the_config(study):
    table = aggregate.collect(study.results, study.expected).set_index(["family", "latent_dim", "seed"])
    run_dir = study.run_dir("gaussian", 8, 0)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    run = json.loads((run_dir / "run.json").read_text())
    row = table.loc[("gaussian", 8, 0)]
    for key in ("bpd_disc", "bpd_deq", "ll_disc_se", "knn_acc", "coverage90", "k", "n_test", "eval_seconds"):
        assert row[key] == pytest.approx(metrics[key])
    for key in ("arch", "hidden", "epochs", "batch_size", "lr", "dequantize", "started_at", "dataset_sha256"):
        assert row[key] == run[key]
    assert row["eval_device"] == metrics["device"] and row["device"] == run["device"]
    assert json.loads(table.loc[("gaussian", 8, 0), "family_options"]) == run["family_options"]


def test_summary_averages_ok_runs_only_and_counts_the_rest(study):
    table = aggregate.collect(study.results, study.expected)
    summary = aggregate.summarise(table).set_index(["family", "latent_dim"])
    family, dim, bad_seed = DIVERGED
    row = summary.loc[(family, dim)]
    assert (row["n_runs"], row["n_ok"], row["n_diverged"]) == (3, 2, 1)
    values = [read_metric(study.run_dir(family, dim, s), "bpd_disc") for s in study.seeds if s != bad_seed]
    assert row["bpd_disc_mean"] == pytest.approx(np.mean(values))
    assert row["bpd_disc_n"] == 2
    low, high = sps.t.interval(0.95, 1, loc=np.mean(values), scale=sps.sem(values))
    assert (row["bpd_disc_ci95_low"], row["bpd_disc_ci95_high"]) == pytest.approx((low, high))
    assert summary.loc[MISSING[:2], "n_missing"] == 1


def test_a_null_metric_keeps_its_reason(tmp_path):
    study = write_synthetic_results(
        tmp_path / "mnist5k",
        families=("beta", "discretized_logistic"),
        latent_dims=(2,),
        seeds=(0, 1),
        diverged=None,
        missing=None,
    )
    summary = aggregate.summarise(aggregate.collect(study.results)).set_index("family")
    assert np.isnan(summary.loc["beta", "bpd_disc_mean"]) and summary.loc["beta", "bpd_disc_n"] == 0
    assert "no CDF" in summary.loc["beta", "bpd_disc_note"]
    assert "both columns agree" in summary.loc["discretized_logistic", "bpd_deq_note"]
    assert summary.loc["discretized_logistic", "bpd_deq_mean"] == pytest.approx(
        summary.loc["discretized_logistic", "bpd_disc_mean"]
    )


def test_cli_writes_the_three_tables(study, tmp_path):
    out = tmp_path / "tables"
    code = main(
        [
            "aggregate",
            "--results",
            str(study.results),
            "--out-dir",
            str(out),
            "--expected",
            *map(str, study.expected),
        ]
    )
    assert code == 0
    metrics = pd.read_csv(out / "metrics.csv")
    summary = pd.read_csv(out / "summary.csv")
    tests = pd.read_csv(out / "tests.csv")
    assert len(metrics) == len(study.expected)
    assert len(summary) == len(study.families) * len(study.latent_dims)
    assert set(tests["metric"]) == set(results.TESTED)  # the synthetic runs have every tested measure
    pairs = len(study.families) * (len(study.families) - 1) // 2
    assert len(tests) == len(results.TESTED) * pairs * len(study.latent_dims)
    tables = results.read_tables(out)
    assert tables[0]["note"].map(type).eq(str).all()
    written = sorted(results.TABLES + (layout.PER_IMAGE_TABLE,))  # what the reader reads
    assert [p.name for p in sorted(out.iterdir())] == written


def test_user_errors_are_one_line(tmp_path, capsys):
    assert main(["aggregate", "--results", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["aggregate", "--results", str(tmp_path / "empty")]) == 2
    assert "no run directories" in capsys.readouterr().err
    assert main(["aggregate", "--results", str(tmp_path / "empty"), "--expected", "results/x/notarun"]) == 2
    assert "not a run directory" in capsys.readouterr().err
    with pytest.raises(results.ResultsError, match="vaebench aggregate"):
        results.read_tables(tmp_path / "empty")


def history(elbo) -> pd.DataFrame:
    return pd.DataFrame({"epoch": range(1, len(elbo) + 1), "test_elbo_nats": elbo})


@pytest.mark.parametrize(
    "elbo, epoch",
    [
        ([-300.0, -200.0, -111.0, -104.0, -100.0], 4),  # gain 200: 95% of it is reached at -110
        ([-300.0, -109.0, -105.0, -100.0], 2),  # -109 >= -300 + 0.95 * 200 = -110
        ([-300.0, -100.0], 2),
    ],
)
def test_epochs_to_95_is_the_first_epoch_with_95_percent_of_the_gain(elbo, epoch):
    gain = elbo[-1] - elbo[0]
    reached = next(i + 1 for i, e in enumerate(elbo) if e - elbo[0] >= 0.95 * gain)  # the definition
    assert aggregate.epochs_to_95(history(elbo)) == (reached, "") == (epoch, "")


@pytest.mark.parametrize(
    "elbo, why",
    [
        ([-100.0], "fewer than two epochs"),
        ([-100.0, -100.0], "did not rise"),
        ([-100.0, -120.0, -130.0], "did not rise"),
    ],
)
def test_epochs_to_95_without_a_gain_is_undefined_and_says_why(elbo, why):
    value, note = aggregate.epochs_to_95(history(elbo))
    assert np.isnan(value) and why in note


def test_each_row_gets_its_test_set_errors_in_bits_per_dim_and_its_epochs_to_95(study):
    table = aggregate.collect(study.results, study.expected).set_index(["family", "latent_dim", "seed"])
    run_dir = study.run_dir("gaussian", 8, 0)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    row = table.loc[("gaussian", 8, 0)]
    assert row["bpd_disc_se"] == pytest.approx(metrics["ll_disc_se"] / (metrics["dims"] * np.log(2)))
    assert row["bpd_deq_se"] == pytest.approx(metrics["ll_deq_se"] / (metrics["dims"] * np.log(2)))
    p, n = metrics["knn_acc"], metrics["n_test"]
    assert row["knn_acc_se"] == pytest.approx(np.sqrt(p * (1 - p) / n))
    elbo = pd.read_csv(run_dir / "history.csv")["test_elbo_nats"].to_numpy()
    assert row["epochs_to_95"] == aggregate.epochs_to_95(history(elbo))[0]


def test_summary_gives_the_bootstrap_error_of_the_mean_over_seeds_and_images(study):
    table = aggregate.collect(study.results, study.expected)
    per_image, _, _ = aggregate.per_image_table(study.results, table)
    summary = aggregate.tables(table, per_image)[1].set_index(["family", "latent_dim"])
    family, dim, _ = DIVERGED
    ok = table[table["status"] == "ok"]
    runs = results.per_image_runs(per_image, ok, "bpd_disc", dim)
    assert runs[family].shape == (2, 300)  # the diverged seed is left out
    means = evidence.family_means(evidence.bootstrap(runs)).loc[family]
    row = summary.loc[(family, dim)]
    assert row["bpd_disc_se"] == pytest.approx(means["se"])
    assert (row["bpd_disc_boot_ci95_low"], row["bpd_disc_boot_ci95_high"]) == pytest.approx(
        (means["ci95_low"], means["ci95_high"])
    )
    assert row["bpd_disc_mean"] == pytest.approx(means["mean"], abs=1e-6)  # the tables and the images agree


def test_summary_of_runs_without_per_image_values_gives_the_test_set_error_of_the_mean(tmp_path):
    older = write_synthetic_results(tmp_path / "mnist5k", per_image=False)
    table = aggregate.collect(older.results, older.expected)
    assert aggregate.per_image_table(older.results, table)[0] is None
    summary = aggregate.tables(table, None)[1].set_index(["family", "latent_dim"])
    family, dim, bad_seed = DIVERGED
    ses = [
        read_metric(older.run_dir(family, dim, s), "ll_disc_se") / (784 * np.log(2))
        for s in older.seeds
        if s != bad_seed
    ]
    expected = np.sqrt(np.sum(np.square(ses))) / len(ses)
    assert summary.loc[(family, dim), "bpd_disc_se"] == pytest.approx(expected)
    assert "bpd_disc_boot_ci95_low" not in summary.columns
    assert stats.se_of_mean([0.3, 0.4]) == pytest.approx(0.25)


def test_the_per_image_table_holds_each_ok_runs_images_in_bits_per_dim(study):
    table = aggregate.collect(study.results, study.expected)
    per_image, damaged, why_none = aggregate.per_image_table(study.results, table)
    assert damaged == [] and why_none == "" and per_image.index.name == "image" and len(per_image) == 300
    ok = table[table["status"] == "ok"]
    assert len(per_image.columns) == 2 * len(ok)  # both likelihoods of every ok run, no other
    run_dir = study.run_dir("gaussian", 8, 0)
    with np.load(run_dir / "artifacts.npz") as npz:
        ll_disc, ll_deq = npz["ll_disc_nats"], npz["ll_deq_nats"]
    dims = read_metric(run_dir, "dims")
    seven_digits = 5e-7  # the table keeps 7 significant digits
    np.testing.assert_allclose(
        per_image["bpd_disc/gaussian/z8/seed0"], -ll_disc / (dims * np.log(2)), seven_digits
    )
    np.testing.assert_allclose(
        per_image["bpd_deq/gaussian/z8/seed0"],
        -(ll_deq - dims * np.log(256)) / (dims * np.log(2)),
        seven_digits,
    )
    for column in per_image.columns:  # each run's mean over images is its metrics.json value
        metric, family, dim, seed = layout.parse_per_image_column(column)
        mean = read_metric(study.run_dir(family, dim, seed), metric)
        assert per_image[column].mean() == pytest.approx(mean, abs=1e-6)


def test_the_cli_writes_the_per_image_table_or_says_why_not(study, capsys):
    assert main(["aggregate", "--results", str(study.results)]) == 0
    path = study.results / layout.PER_IMAGE_TABLE
    written = results.read_per_image(path)
    assert written.shape == (300, 32) and "not written" not in capsys.readouterr().out
    tested = aggregate.per_image_table(study.results, aggregate.collect(study.results))[0]
    pd.testing.assert_frame_equal(written, tested, check_exact=True)  # the tests' values are the file's
    first = path.read_bytes()
    assert main(["aggregate", "--results", str(study.results)]) == 0
    assert path.read_bytes() == first  # the same runs, the same bytes
    loaded = results.Study.load(study.results)
    np.testing.assert_allclose(
        loaded.per_image("bpd_deq", 2)["bernoulli"][1], written["bpd_deq/bernoulli/z2/seed1"], rtol=0
    )
    write_run(study, "bernoulli", 2, 0, n_test=200)  # re-evaluated on fewer images
    assert main(["aggregate", "--results", str(study.results)]) == 0
    printed = capsys.readouterr().out
    assert "per_image.csv.gz not written: the runs were scored on different numbers of test images" in printed
    assert not path.exists()  # an older table would not match the new tables


def test_runs_without_per_image_values_leave_their_family_to_the_test_across_seeds(study):
    write_run(study, "bernoulli", 2, 1, per_image=False)  # evaluated before evaluate kept them
    table = aggregate.collect(study.results, study.expected)
    per_image, _, _ = aggregate.per_image_table(study.results, table)
    assert "bpd_disc/bernoulli/z2/seed1" not in per_image.columns
    tests = aggregate.tables(table, per_image)[2]
    at2 = tests[(tests["metric"] == "bpd_disc") & (tests["latent_dim"] == 2)].set_index(
        ["family_a", "family_b"]
    )
    assert at2.loc[("bernoulli", "gaussian"), "method"] == evidence.METHOD_WELCH
    assert at2.loc[("continuous_bernoulli", "gaussian"), "method"] == evidence.METHOD_BOOTSTRAP
