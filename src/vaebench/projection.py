"""How long a study takes, from its config and the rates of a machine: the arithmetic of bench/projection.py
(which measures the rates) and of the line a run of the workflow prints first. Torch-free, so the workflow can
ask at every start.

A CPU study is its jobs' measured seconds over the cores that run them side by side. A GPU study is an
estimate, never a measurement: per job, the larger of the work against a datasheet (at an assumed share of
its peak) and the floor of launching eager PyTorch's kernels one by one, plus a fixed cost for starting a
job (torch's import, the data, the CUDA context, loading the compiled kernels). Its assumptions come as a
range, LOW to HIGH, so the projection is a range too.
"""

import math
from dataclasses import dataclass

from vaebench.catalog import FAMILY_IDS
from vaebench.select import grid
from vaebench.settings import MAX_EXTENSIONS

SPLITS = {"mnist": (60_000, 10_000), "fashion_mnist": (60_000, 10_000)}  # training and test images
ELBO_PASS_SHARE = 1 / 3  # an ELBO pass is the forward third of a training step
# the epochs a run trains before the stopping rule ends it, from its pilot (docs/protocol.md: the slowest
# two families converged at epochs 73 and 94 under the rule's defaults): a run that can stop (it has a
# validation split) is projected at this or its cap, whichever is lower; one without trains to its cap
EXPECTED_EPOCHS = 84


@dataclass(frozen=True)
class GpuAssumptions:
    """What a GPU projection assumes rather than measures."""

    efficiency: float  # share of the datasheet's peak that the work reaches
    launch_seconds: float  # per kernel launch of eager PyTorch, Python's dispatch included
    fixed_seconds: float  # per job: start-up, data, CUDA context, compile cache


LOW = GpuAssumptions(efficiency=0.5, launch_seconds=5e-6, fixed_seconds=20.0)
HIGH = GpuAssumptions(efficiency=0.1, launch_seconds=15e-6, fixed_seconds=40.0)

# The reference machine's rates, for the conv net on 28 x 28 images (bench/projection.py measures them on
# any machine, bench/README.md says where these were): CPU, one thread per job; the GPU figures are counts
# (torch.utils.flop_counter, the layers' outputs, the aten ops of one training step), not timings.
REFERENCE = {
    "conv": {
        "train_images_per_s": 521.5,
        "test_elbo_images_per_s": 944.1,
        "encode_images_per_s": 2381.4,
        "eval_us_per_sample": {
            "bernoulli": 735.9,
            "continuous_bernoulli": 719.7,
            "gaussian_fixed": 745.7,
            "gaussian": 787.9,
            "gaussian_shared": 812.4,
            "laplace_fixed": 829.4,
            "laplace": 771.6,
            "logit_normal": 777.6,
            "logit_laplace": 776.3,
            "beta": 852.2,
            "discretized_logistic": 825.5,
        },
        "datasheet_s_per_sample": 0.491e-6,
        "datasheet_s_per_train_image": 2.41e-6,
        "kernels_per_train_step": 366,
    }
}


def expected_epochs(cap: int, stops: bool) -> int:
    """The epochs a run is projected to train: EXPECTED_EPOCHS under the stopping rule, at most its cap."""
    return min(cap, EXPECTED_EPOCHS) if stops else cap


def study_of(config: dict) -> dict:
    """The counts a projection needs, read from a study config on a dataset of SPLITS: the selection block's
    grid runs counted as `vaebench select` plans them (select.grid), plus one run per family for each of the
    grid's extensions its limit allows (an upper bound: a choice inside its grid ends them sooner); the
    epochs of a run as `expected_epochs` projects them."""
    losses = config.get("losses") or FAMILY_IDS
    selection = config.get("selection")
    train_images, test_images = SPLITS[config["dataset"]]
    stops = config["train"].get("validation", 0) > 0  # the rule judges on the validation split
    grid_runs = sum(len(grid(loss, selection)) for loss in losses) if selection else 0
    extension_runs = len(losses) * selection.get("max_extensions", MAX_EXTENSIONS) if selection else 0
    return {
        "families": len(losses),
        "latent_dims": len(config["latent_dims"]),
        "seeds": len(config["seeds"]),
        "epochs": expected_epochs(config["train"]["epochs"], stops),
        "batch_size": config["train"]["batch_size"],
        "train_images": train_images,
        "validation": config["train"].get("validation", 0),
        "test_images": config["evaluate"].get("n_test") or test_images,
        "k": config["evaluate"]["k"],
        "grid_runs": grid_runs + extension_runs,
        "selection_epochs": expected_epochs(selection["epochs"], stops) if selection else 0,
    }


def cpu_projection(
    study: dict,
    train_images_per_s: float,
    test_elbo_images_per_s: float,
    encode_images_per_s: float,
    us_per_sample: dict[str, float],
    cores: int,
) -> dict:
    """Seconds of the study's jobs on this machine from measured rates: an epoch is a pass over the training
    images less the validation split plus an ELBO on the validation and test images; a training job is
    `epochs` of them, a selection grid run `selection_epochs`; an evaluation job is K samples per test image
    at its family's us_per_sample plus the encoder passes (the kNN over the training images, the posterior
    pass over the test images twice). Families not measured count at the mean of those measured. Wall time:
    the job-seconds over `cores` jobs side by side."""
    jobs = study["families"] * study["latent_dims"] * study["seeds"]
    per_family = study["latent_dims"] * study["seeds"]
    epoch_s = (study["train_images"] - study["validation"]) / train_images_per_s + (
        study["validation"] + study["test_images"]
    ) / test_elbo_images_per_s
    train_s = study["epochs"] * epoch_s
    selection_run_s = study["selection_epochs"] * epoch_s
    selection_s = study["grid_runs"] * selection_run_s
    encode_s = (study["train_images"] + 2 * study["test_images"]) / encode_images_per_s
    eval_s = {
        family: study["k"] * study["test_images"] * us * 1e-6 + encode_s
        for family, us in us_per_sample.items()
    }
    eval_total = per_family * sum(eval_s.values()) * study["families"] / len(eval_s)
    job_hours = (selection_s + jobs * train_s + eval_total) / 3600
    return {
        "jobs": jobs,
        "selection_seconds_per_run": selection_run_s,
        "selection_seconds": selection_s,
        "train_seconds_per_job": train_s,
        "eval_seconds_per_job": eval_s,
        "eval_seconds_total": eval_total,
        "job_hours": job_hours,
        "wall_hours": job_hours / cores,
    }


def gpu_projection(
    study: dict,
    datasheet_s_per_sample: float,
    datasheet_s_per_train_image: float,
    kernels_per_train_step: int,
    assume: GpuAssumptions,
    gpus: int = 1,
) -> dict:
    """Seconds of the study's jobs on `gpus` GPUs, one job per GPU at a time: a training step takes the
    longer of its work at `assume.efficiency` of the datasheet and its kernels launched one after another
    (a small conv net's step at batch 128 is below eager PyTorch's launch floor); evaluation's chunks hold
    thousands of samples, so its launches are left out; every job pays `assume.fixed_seconds`."""
    jobs = study["families"] * study["latent_dims"] * study["seeds"]
    fitted = study["train_images"] - study["validation"]
    step_s = max(
        study["batch_size"] * datasheet_s_per_train_image / assume.efficiency,
        kernels_per_train_step * assume.launch_seconds,
    )
    elbo_images = study["validation"] + study["test_images"]
    epoch_s = (
        math.ceil(fitted / study["batch_size"]) + ELBO_PASS_SHARE * elbo_images / study["batch_size"]
    ) * (step_s)
    train_s = study["epochs"] * epoch_s + assume.fixed_seconds
    selection_s = study["grid_runs"] * (study["selection_epochs"] * epoch_s + assume.fixed_seconds)
    eval_s = (
        study["k"] * study["test_images"] * datasheet_s_per_sample / assume.efficiency + assume.fixed_seconds
    )
    job_hours = (selection_s + jobs * (train_s + eval_s)) / 3600
    return {
        "jobs": jobs,
        "train_step_seconds": step_s,
        "train_seconds_per_job": train_s,
        "eval_seconds_per_job": eval_s,
        "selection_seconds": selection_s,
        "fixed_hours": (study["grid_runs"] + 2 * jobs) * assume.fixed_seconds / 3600,
        "job_hours": job_hours,
        "wall_hours": job_hours / gpus,
    }


def duration(hours: float) -> str:
    """'40 minutes', '7 hours', '24 days'."""
    if hours < 1:
        return f"{max(1, round(hours * 60))} minutes"
    if hours < 48:
        return f"{hours:.2g} hours" if hours < 10 else f"{round(hours)} hours"
    return f"{round(hours / 24)} days"


def study_forecast(config: dict, cores: int, gpus: int, at_least_hours: float = 1.0) -> str | None:
    """One line: the study's projected time on this machine's GPUs (a range) or CPU cores, from the reference
    rates, with where to go for a faster path; None for a study the reference does not cover (another
    architecture or dataset) or projected under `at_least_hours`."""
    rates = REFERENCE.get(config.get("arch"))
    if rates is None or config.get("dataset") not in SPLITS:
        return None
    study = study_of(config)
    if gpus:
        low, high = (
            gpu_projection(
                study,
                rates["datasheet_s_per_sample"],
                rates["datasheet_s_per_train_image"],
                rates["kernels_per_train_step"],
                assume,
                gpus,
            )["wall_hours"]
            for assume in (LOW, HIGH)
        )
        if high < at_least_hours:
            return None
        where = f"{duration(low)} to {duration(high)} on this machine's {gpus} GPU(s) (an estimate)"
    else:
        hours = cpu_projection(
            study,
            rates["train_images_per_s"],
            rates["test_elbo_images_per_s"],
            rates["encode_images_per_s"],
            rates["eval_us_per_sample"],
            cores,
        )["wall_hours"]
        if hours < at_least_hours:
            return None
        where = f"about {duration(hours)} on this machine's {cores} CPU core(s), no GPU found"
    return (
        f"vaebench: this study is projected to take {where}; for minutes use --configfile config/quick.yaml, "
        "for GPUs and SLURM see README.md (bench/projection.py: the arithmetic)"
    )
