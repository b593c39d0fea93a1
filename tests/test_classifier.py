"""vaebench.classifier: deterministic training, the accuracy check that writes nothing on failure, the cached
weights, and the reference values of a real mnist5k classifier (trained once for the module)."""

import hashlib
import json

import pytest
import torch
from eval_models import fake_dataset

from vaebench.classifier import FEATURE_DIM, accuracy, load_classifier, train_classifier
from vaebench.cli import main
from vaebench.data import load_dataset
from vaebench.errors import CheckpointError, DatasetError


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="module")
def mnist5k(data_dir):
    return load_dataset("mnist5k", data_dir)


@pytest.fixture(scope="module")
def trained(data_dir, tmp_path_factory):
    """`vaebench classifier` on mnist5k, with the reference values on 500 test images (the quick preset's).

    One thread, as the workflow runs it (and far faster on a busy machine); the thread count is put back
    here, since a module fixture runs outside any test's process-state check."""
    out = tmp_path_factory.mktemp("quality") / "mnist5k.pt"
    threads = torch.get_num_threads()
    try:
        assert (
            main(
                [
                    "classifier",
                    "--dataset",
                    "mnist5k",
                    "--data-dir",
                    str(data_dir),
                    "--n-test",
                    "500",
                    "--threads",
                    "1",
                    "--out",
                    str(out),
                ]
            )
            == 0
        )
    finally:
        torch.set_num_threads(threads)
    return out


def test_same_seed_same_weights_and_the_global_rng_is_untouched():
    data = fake_dataset(n_train=200, side=8)
    torch.set_num_threads(1)  # same seed and thread count, same weights
    rng = torch.get_rng_state()
    images, labels = data.train_images, data.train_labels
    first, again, other = (train_classifier(images, labels, 1, seed, 2).state_dict() for seed in (0, 0, 1))
    assert torch.equal(torch.get_rng_state(), rng)
    assert first.keys() == again.keys() and all(torch.equal(first[k], again[k]) for k in first)
    assert not torch.equal(first["head.weight"], other["head.weight"])


def test_too_low_accuracy_fails_with_one_line_and_writes_nothing(data_dir, mnist5k, tmp_path, capsys):
    out = tmp_path / "quality" / "mnist5k.pt"
    status = main(
        [
            "classifier",
            "--dataset",
            "mnist5k",
            "--data-dir",
            str(data_dir),
            "--epochs",
            "0",
            "--threads",
            "1",
            "--out",
            str(out),
        ]
    )
    err = capsys.readouterr().err.strip()
    assert status == 2 and len(err.splitlines()) == 1
    assert err.startswith("vaebench classifier: error:") and "below the 0.95" in err
    assert err.endswith("nothing written")
    assert not out.parent.exists() or not any(out.parent.iterdir())


def test_mnist5k_classifier_is_accurate_and_orders_the_references(trained):
    record = json.loads(trained.with_suffix(".json").read_text())
    assert record["test_accuracy"] >= 0.95 and record["min_test_accuracy"] == 0.95
    assert record["fd_n"] == 500 and record["feature_dim"] == FEATURE_DIM
    # the floor (other real digits) < blurred digits < uniform noise
    assert 0 < record["fd_train_vs_test"] < record["fd_blurred"] < record["fd_noise"]
    assert 0 < record["sharpness_blurred"] < 1
    assert record["dataset"] == "mnist5k" and record["torch_version"] == torch.__version__
    assert {"git_commit", "device", "command", "train_seconds", "threads"} <= set(record)


def test_the_saved_classifier_reloads_and_belongs_to_its_dataset(trained, mnist5k, tmp_path):
    classifier = load_classifier(trained, "cpu", mnist5k)
    assert classifier.sha256 == hashlib.sha256(trained.read_bytes()).hexdigest()  # recorded in metrics.json
    record = json.loads(trained.with_suffix(".json").read_text())
    assert accuracy(classifier, mnist5k.test_images, mnist5k.test_labels) == record["test_accuracy"]
    assert classifier.features(mnist5k.test_images[:3].float() / 255).shape == (3, FEATURE_DIM)
    with pytest.raises(DatasetError, match="trained on mnist5k"):
        load_classifier(trained, "cpu", fake_dataset(side=28))
    with pytest.raises(CheckpointError, match="does not exist"):
        load_classifier(tmp_path / "missing.pt", "cpu", mnist5k)
    (tmp_path / "cut.pt").write_bytes(trained.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_classifier(tmp_path / "cut.pt", "cpu", mnist5k)
