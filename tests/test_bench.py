"""The benchmarks' own arithmetic (bench/ is not a package: its scripts are imported from their directory)."""

import math
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from vaebench.catalog import FAMILY_IDS

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from eval_throughput import break_even  # noqa: E402
from projection import cpu_projection, flops_and_bytes, study_of  # noqa: E402


def test_compiling_pays_from_its_time_over_the_time_it_saves_per_image_sample():
    assert break_even(10.0, 50.0, 30.0) == pytest.approx(10.0 / 20e-6)
    assert break_even(10.0, 30.0, 30.0) == math.inf  # saves nothing: never pays


def test_flops_and_bytes_of_a_layer_are_its_closed_forms():
    """A linear layer on one row: 2 * in * out FLOPs (a multiply and an add per weight); its output written
    and read once, float32."""
    layers = nn.Sequential(nn.Linear(16, 400), nn.ReLU(), nn.Linear(400, 784))
    flops, moved = flops_and_bytes(layers, torch.zeros(1, 16))
    assert flops == 2 * (16 * 400 + 400 * 784)
    assert moved == 2 * 4 * (400 + 400 + 784)


def test_the_projection_of_a_study_is_its_jobs_rates_added_up():
    """2 families x 1 latent size x 2 seeds; 3 epochs of 100 training images at 50/s plus 10 test images at
    10/s: 3 * (2 + 1) = 9 s per training job. Evaluation: K = 4 on 10 images at 5 and 15 us, plus
    (100 + 2 * 10) images at 60/s = 2 s of encoding. Two cores share 4 + 4 jobs."""
    study = {
        "families": 2,
        "latent_dims": 1,
        "seeds": 2,
        "epochs": 3,
        "train_images": 100,
        "validation": 0,
        "test_images": 10,
        "k": 4,
        "grid_runs": 0,
        "selection_epochs": 0,
    }
    out = cpu_projection(study, 50.0, 10.0, 60.0, {"a": 5.0, "b": 15.0}, cores=2)
    assert out["jobs"] == 4 and out["train_seconds_per_job"] == pytest.approx(9.0)
    assert out["eval_seconds_per_job"] == pytest.approx({"a": 2 + 40 * 5e-6, "b": 2 + 40 * 15e-6})
    assert out["eval_seconds_total"] == pytest.approx(2 * (4 + 40 * 20e-6))
    assert out["wall_hours"] == pytest.approx((4 * 9.0 + out["eval_seconds_total"]) / 3600 / 2)
    one = cpu_projection(study, 50.0, 10.0, 60.0, {"a": 5.0}, cores=2)  # b not measured: counts as a
    assert one["eval_seconds_total"] == pytest.approx(2 * 2 * (2 + 40 * 5e-6))
    # 20 of the 100 images held out: an epoch is 80 / 50 + (20 + 10) / 10 = 4.6 s; 5 grid runs of 2 epochs
    chosen = cpu_projection(
        {**study, "validation": 20, "grid_runs": 5, "selection_epochs": 2}, 50.0, 10.0, 60.0, {"a": 5.0}, 2
    )
    assert chosen["train_seconds_per_job"] == pytest.approx(3 * 4.6)
    assert chosen["selection_seconds"] == pytest.approx(5 * 2 * 4.6)
    assert chosen["job_hours"] == pytest.approx((46 + 4 * 13.8 + one["eval_seconds_total"]) / 3600)


def test_the_projected_study_is_read_from_its_config():
    config = {
        "latent_dims": [2, 8],
        "seeds": [0, 1, 2],
        "train": {"epochs": 7},
        "evaluate": {"k": 50, "n_test": None},
    }
    study = study_of(config)
    assert study["families"] == len(FAMILY_IDS) and study["latent_dims"] == 2 and study["seeds"] == 3
    assert (study["epochs"], study["k"], study["test_images"]) == (7, 50, 10_000)
    assert (
        study_of({**config, "losses": ["gaussian"], "evaluate": {"k": 5, "n_test": 300}})["test_images"]
        == 300
    )
    assert (study["validation"], study["grid_runs"], study["selection_epochs"]) == (0, 0, 0)
    selection = {"epochs": 4, "lr": [1e-3, 3e-3], "sigma": [0.1, 0.2, 0.3]}
    chosen = study_of({**config, "losses": ["gaussian", "gaussian_fixed"], "selection": selection})
    assert (chosen["grid_runs"], chosen["selection_epochs"]) == (2 + 2 * 3, 4)
