"""The benchmarks' own arithmetic (bench/ is not a package: its scripts are imported from their directory)."""

import math
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from vaebench.catalog import FAMILY_IDS
from vaebench.models import BilinearUpsample
from vaebench.projection import (
    EXPECTED_EPOCHS,
    HIGH,
    LOW,
    REFERENCE,
    GpuAssumptions,
    cpu_projection,
    gpu_projection,
    study_forecast,
    study_of,
)
from vaebench.settings import MAX_EXTENSIONS

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from eval_throughput import break_even  # noqa: E402
from projection import flops_and_bytes  # noqa: E402


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


def test_the_bilinear_upsampling_reads_four_inputs_per_output_besides():
    flops, moved = flops_and_bytes(BilinearUpsample((8, 8)), torch.zeros(1, 3, 4, 4))
    assert flops == 0 and moved == (2 + 4) * 4 * 3 * 8 * 8


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
        "dataset": "mnist",
        "latent_dims": [2, 8],
        "seeds": [0, 1, 2],
        "train": {"epochs": 7, "batch_size": 128},
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
    selection = {"epochs": 4, "lr": [1e-3, 3e-3], "sigma": [0.1, 0.2, 0.3], "max_extensions": 1}
    chosen = study_of({**config, "losses": ["gaussian", "gaussian_fixed"], "selection": selection})
    # the initial grids, and one extension run per family at most
    assert (chosen["grid_runs"], chosen["selection_epochs"]) == (2 + 2 * 3 + 2, 4)


def test_a_run_that_can_stop_is_projected_at_the_pilots_epochs_a_run_that_cannot_at_its_cap():
    config = {
        "dataset": "mnist",
        "losses": ["gaussian", "bernoulli"],
        "latent_dims": [2],
        "seeds": [0],
        "train": {"epochs": 10 * EXPECTED_EPOCHS, "batch_size": 128, "validation": 0},
        "evaluate": {"k": 50, "n_test": None},
        "selection": {"epochs": 5, "lr": [1e-3]},
    }
    assert study_of(config)["epochs"] == 10 * EXPECTED_EPOCHS  # no validation split: nothing to stop by
    stopping = {**config, "train": {**config["train"], "validation": 1000}}
    assert study_of(stopping)["epochs"] == EXPECTED_EPOCHS
    assert study_of(stopping)["selection_epochs"] == 5  # a cap below the pilot's epochs binds
    assert study_of(stopping)["grid_runs"] == 2 * (1 + MAX_EXTENSIONS)  # the default limit


SMALL_STUDY = {
    "families": 2,
    "latent_dims": 1,
    "seeds": 2,
    "epochs": 3,
    "batch_size": 10,
    "train_images": 100,
    "validation": 0,
    "test_images": 30,
    "k": 4,
    "grid_runs": 0,
    "selection_epochs": 0,
}


def test_a_gpu_training_step_is_its_work_or_its_kernel_launches_whichever_is_longer():
    """10 steps per epoch and a third of 30 / 10 steps of ELBO: 11 steps. Work: 10 images at 1 us at half
    the datasheet = 20 us a step; launches: 100 kernels at 1 us = 100 us, the floor."""
    assume = GpuAssumptions(efficiency=0.5, launch_seconds=1e-6, fixed_seconds=7.0)
    out = gpu_projection(SMALL_STUDY, 2e-6, 1e-6, 100, assume)
    assert out["train_step_seconds"] == pytest.approx(100e-6)
    assert out["train_seconds_per_job"] == pytest.approx(3 * 11 * 100e-6 + 7.0)
    assert out["eval_seconds_per_job"] == pytest.approx(4 * 30 * 2e-6 / 0.5 + 7.0)
    assert out["fixed_hours"] == pytest.approx(8 * 7.0 / 3600)
    compute_bound = gpu_projection(SMALL_STUDY, 2e-6, 1e-6, 1, assume)
    assert compute_bound["train_step_seconds"] == pytest.approx(20e-6)
    two = gpu_projection(SMALL_STUDY, 2e-6, 1e-6, 100, assume, gpus=2)
    assert two["wall_hours"] == pytest.approx(out["wall_hours"] / 2) == pytest.approx(out["job_hours"] / 2)


def test_the_gpu_range_runs_from_the_kind_assumptions_to_the_harsh_ones():
    rates = REFERENCE["conv"]
    low, high = (
        gpu_projection(
            SMALL_STUDY,
            rates["datasheet_s_per_sample"],
            rates["datasheet_s_per_train_image"],
            rates["kernels_per_train_step"],
            assume,
        )["job_hours"]
        for assume in (LOW, HIGH)
    )
    assert low < high


FULL = {
    "dataset": "mnist",
    "arch": "conv",
    "latent_dims": [2, 8, 32],
    "seeds": [0, 1, 2],
    "train": {"epochs": 30, "batch_size": 128},
    "evaluate": {"k": 5000, "n_test": None},
}


def test_a_long_study_forecasts_its_time_on_the_devices_found_in_one_line():
    cpu = study_forecast(FULL, cores=2, gpus=0)
    assert (
        cpu.count("\n") == 0 and "days on this machine's 2 CPU core(s)" in cpu and "config/quick.yaml" in cpu
    )
    assert "SLURM" in cpu
    one, four = study_forecast(FULL, cores=2, gpus=1), study_forecast(FULL, cores=2, gpus=4)
    assert "1 GPU(s) (an estimate)" in one and " to " in one and one != four
    assert study_forecast({**FULL, "arch": "mlp"}, cores=2, gpus=0) is None  # no reference rates
    assert study_forecast({**FULL, "dataset": "mnist5k"}, cores=2, gpus=0) is None
    short = {**FULL, "train": {"epochs": 1, "batch_size": 128}, "evaluate": {"k": 1, "n_test": 10}}
    assert study_forecast({**short, "latent_dims": [2], "seeds": [0], "losses": ["gaussian"]}, 2, 0) is None
