"""The models without a latent, each against a direct computation on a small data set, and the stage."""

import contextlib
import io
import json
import math

import numpy as np
import pytest

from vaebench import baselines
from vaebench.cli import main


@pytest.fixture
def images():
    """7 training and 3 test images of 2 x 2 sub-pixels, with zeros, 255s and values in between."""
    rng = np.random.default_rng(0)
    pick = np.array([0, 0, 0, 255, 17, 128, 200])
    train = rng.choice(pick, size=(7, 1, 2, 2)).astype(np.uint8)
    test = rng.choice(pick, size=(3, 1, 2, 2)).astype(np.uint8)
    test[0, 0, 0, 0] = 99  # a value no training image has at that sub-pixel
    return train, test


def direct_histogram(train: np.ndarray, test: np.ndarray) -> np.ndarray:
    """Sum over sub-pixels of log((count of the value at that sub-pixel + 1/2) / (N + 256/2)), by loops."""
    flat_train, flat_test = train.reshape(len(train), -1), test.reshape(len(test), -1)
    out = np.zeros(len(test))
    for m, image in enumerate(flat_test):
        for i, v in enumerate(image):
            count = int(np.sum(flat_train[:, i] == v))
            out[m] += math.log((count + 0.5) / (len(train) + 128))
    return out


def direct_two_masses(train: np.ndarray, test: np.ndarray) -> np.ndarray:
    values = train.ravel().tolist()
    p0, p255 = values.count(0) / len(values), values.count(255) / len(values)
    rest = (1 - p0 - p255) / 254
    return np.array(
        [sum(math.log(p0 if v == 0 else p255 if v == 255 else rest) for v in image.ravel()) for image in test]
    )


def test_each_baseline_against_a_direct_computation(images):
    train, test = images
    np.testing.assert_allclose(baselines.histogram_log_probs(train, test), direct_histogram(train, test))
    np.testing.assert_allclose(baselines.two_masses_log_probs(train, test), direct_two_masses(train, test))
    np.testing.assert_allclose(baselines.uniform_log_probs(test), -4 * math.log(256))


def test_the_histogram_is_a_distribution_over_the_256_values(images):
    train, _ = images
    every_value = np.arange(256, dtype=np.uint8).reshape(256, 1, 1, 1)  # one-pixel images of every value
    assert np.exp(baselines.histogram_log_probs(train[:, :, :1, :1], every_value)).sum() == pytest.approx(1.0)


def test_rows_give_bits_per_dim_with_equal_columns_and_their_standard_error(images):
    train, test = images
    rows = {row["id"]: row for row in baselines.baselines(train, test)}
    assert list(rows) == list(baselines.BASELINES)
    dims = 4
    for key, log_probs in (
        ("histogram", direct_histogram(train, test)),
        ("two_masses", direct_two_masses(train, test)),
    ):
        row = rows[key]
        assert row["bpd_disc"] == pytest.approx(-log_probs.mean() / (dims * math.log(2)))
        assert row["bpd_deq"] == row["bpd_disc"]  # constant density within each bin: the same bits/dim
        assert row["ll_deq_nats"] == pytest.approx(row["ll_disc_nats"] + dims * math.log(256))
        assert row["ll_disc_se"] == pytest.approx(log_probs.std(ddof=1) / math.sqrt(len(log_probs)))
    assert rows["uniform"]["bpd_disc"] == pytest.approx(8.0)
    assert rows["uniform"]["ll_disc_se"] == pytest.approx(0)


def test_the_stage_scores_the_first_n_test_images_of_the_quick_preset(tmp_path):
    """mnist5k, 500 test images as the quick preset scores them: the histogram and the two masses as an
    independent check of that preset found them (1.734 and 2.217 bits/dim)."""
    out = tmp_path / "baselines.json"
    with contextlib.redirect_stdout(io.StringIO()):
        assert (
            main(
                [
                    "baselines",
                    "--dataset",
                    "mnist5k",
                    "--data-dir",
                    str(tmp_path / "data"),
                    "--n-test",
                    "500",
                    "--out",
                    str(out),
                ]
            )
            == 0
        )
    record = json.loads(out.read_text())
    sizes = (record["n_test"], record["n_test_split"], record["n_train"], record["dims"])
    assert sizes == (500, 1000, 4000, 784)
    bpd = {row["id"]: row["bpd_disc"] for row in record["baselines"]}
    assert bpd["histogram"] == pytest.approx(1.734, abs=5e-4)
    assert bpd["two_masses"] == pytest.approx(2.217, abs=5e-4)


def test_more_test_images_than_the_split_is_a_one_line_error(tmp_path, capsys):
    assert (
        main(
            [
                "baselines",
                "--dataset",
                "mnist5k",
                "--data-dir",
                str(tmp_path),
                "--n-test",
                "5000",
                "--out",
                str(tmp_path / "b.json"),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "exceeds the 1000 test images" in err and err.count("\n") == 1
