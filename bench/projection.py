"""Projected wall time of the full study (config/config.yaml: conv, 11 families x 3 latent sizes x 3 seeds, 30
epochs on MNIST's 60,000 training images less a validation split, the selection grid's short runs, K = 5000
on its 10,000 test images) on this machine, and an estimate for one GPU.

This machine (measured): per family, evaluation microseconds per image-sample of the conv model, compiled
with a warm cache, from bench/out/eval_throughput_conv.json (run `python bench/eval_throughput.py --arch conv
--families all --modes compiled --parts throughput` first); training images per second of the conv net
(train.train_epoch plus the per-epoch test ELBO, one thread) and encoder images per second (the kNN pass
encodes the training split), measured here on mnist5k. Jobs run side by side, one thread each, on all cores.

One GPU (an estimate, not a measurement): floating-point operations per sample counted by
torch.utils.flop_counter (convolutions and matrix products) and bytes per sample (every layer's output
written once and read once, in float32; the family kernel reads the decoder's outputs), each against a
datasheet: A100 SXM, 19.5 TFLOP/s float32 (no TF32, as evaluation runs) and 1.5 TB/s. The time per sample is
the larger of the two, divided by an efficiency, stated, for what datasheet peaks leave out (kernel launches,
small batches, the elementwise family math's transcendental functions).

    python bench/projection.py [--rounds 2] [--threads 1] [--efficiency 0.3]
"""

import argparse
import json
import os
import time
from pathlib import Path

import torch
import yaml
from common import DATA_DIR, OUT_DIR, print_table, summary, write_result
from eval_throughput import trained_model
from torch.utils.flop_counter import FlopCounterMode

from vaebench.catalog import FAMILY_IDS
from vaebench.data import load_dataset
from vaebench.models import build_model
from vaebench.select import grid
from vaebench.settings import TrainConfig
from vaebench.train import model_config, test_elbo, train_epoch

MNIST_SPLITS = {"train_images": 60_000, "test_images": 10_000}  # MNIST's own split sizes


def study_of(config: dict) -> dict:
    """The counts a projection needs, read from a study config (config/config.yaml: MNIST): the selection
    block's grid runs counted as `vaebench select` plans them (select.grid)."""
    losses = config.get("losses") or FAMILY_IDS
    selection = config.get("selection")
    return {
        "families": len(losses),
        "latent_dims": len(config["latent_dims"]),
        "seeds": len(config["seeds"]),
        "epochs": config["train"]["epochs"],
        "train_images": MNIST_SPLITS["train_images"],
        "validation": config["train"].get("validation", 0),
        "test_images": config["evaluate"].get("n_test") or MNIST_SPLITS["test_images"],
        "k": config["evaluate"]["k"],
        "grid_runs": sum(len(grid(loss, selection)) for loss in losses) if selection else 0,
        "selection_epochs": selection["epochs"] if selection else 0,
    }


STUDY = study_of(yaml.safe_load((Path(__file__).resolve().parents[1] / "config" / "config.yaml").read_text()))
A100 = {"name": "A100 SXM (datasheet)", "flops_per_s": 19.5e12, "bytes_per_s": 1.5e12}


def flops_and_bytes(module: torch.nn.Module, inputs: torch.Tensor) -> tuple[float, float]:
    """Floating-point operations and bytes (each layer's output written and read once) of one forward pass."""
    written = []
    hooks = [
        m.register_forward_hook(lambda _m, _i, out: written.append(out.numel() * out.element_size()))
        for m in module.modules()
        if not list(m.children())
    ]
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        module(inputs)
    for hook in hooks:
        hook.remove()
    return counter.get_total_flops(), 2.0 * sum(written)


def training_rate(data, rounds: int) -> dict:
    """Images/s of one training epoch on mnist5k's training split (train_epoch and the test ELBO that train()
    computes after every epoch), conv, one family: the family's loss is a small part of the conv net's
    work."""
    cfg = TrainConfig(loss="continuous_bernoulli", arch="conv", latent_dim=16)
    torch.manual_seed(0)
    model = build_model(model_config(cfg, data))
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    gen = torch.Generator().manual_seed(0)
    n_train, n_test = data.train_images.shape[0], data.test_images.shape[0]
    train_epoch(model, opt, data.train_images, cfg, gen)  # warm-up
    seconds = {"train": [], "test_elbo": []}
    for _ in range(rounds):
        t0 = time.perf_counter()
        train_epoch(model, opt, data.train_images, cfg, gen)
        seconds["train"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        test_elbo(model, data.test_images, cfg)
        seconds["test_elbo"].append(time.perf_counter() - t0)
    return {
        "train_images_per_s": summary([n_train / s for s in seconds["train"]]),
        "test_elbo_images_per_s": summary([n_test / s for s in seconds["test_elbo"]]),
    }


def encoder_rate(model, data, rounds: int) -> dict:
    x = data.test_images[:1000].float().div(255)
    rates = []
    with torch.no_grad():
        model.encode(x)
        for _ in range(rounds):
            t0 = time.perf_counter()
            model.encode(x)
            rates.append(x.shape[0] / (time.perf_counter() - t0))
    return summary(rates)


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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument(
        "--cores", type=int, default=os.cpu_count(), help="jobs run side by side (one thread each)"
    )
    p.add_argument(
        "--efficiency",
        type=float,
        default=0.3,
        help="share of the GPU's datasheet peak the estimate assumes is reached",
    )
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    evaluation = json.loads((OUT_DIR / "eval_throughput_conv.json").read_text())
    data = load_dataset("mnist5k", DATA_DIR)
    model = trained_model("continuous_bernoulli", data, "conv")
    train = training_rate(data, args.rounds)
    encode = encoder_rate(model, data, args.rounds)

    us_per_sample = {}
    for family, res in evaluation["results"].items():
        rates = res["throughput"]["eval_passes_per_s"]
        key = max((k for k in rates if k.startswith("compiled")), key=lambda k: int(k.split("=")[1]))
        us_per_sample[family] = 1e6 / rates[key]["median"]
    cpu = cpu_projection(
        STUDY,
        train["train_images_per_s"]["median"],
        train["test_elbo_images_per_s"]["median"],
        encode["median"],
        us_per_sample,
        args.cores,
    )
    jobs, per_family = cpu["jobs"], cpu["jobs"] // STUDY["families"]
    print_table(
        f"evaluation, conv, compiled (warm cache), K={STUDY['k']} on {STUDY['test_images']} test images",
        ["family", "us/image-sample", "hours per job", f"hours for its {per_family} jobs"],
        [
            [
                family,
                us,
                cpu["eval_seconds_per_job"][family] / 3600,
                per_family * cpu["eval_seconds_per_job"][family] / 3600,
            ]
            for family, us in us_per_sample.items()
        ],
    )
    train_s, eval_total = cpu["train_seconds_per_job"], cpu["eval_seconds_total"]
    grid_runs, selection_s = STUDY["grid_runs"], cpu["selection_seconds"]
    print_table(
        f"the full study on this machine: {grid_runs} selection, {jobs} training and {jobs} evaluation jobs, "
        f"{args.cores} jobs side by side",
        ["stage", "hours per job", "job-hours", f"wall hours on {args.cores} cores"],
        [
            [
                f"select ({STUDY['selection_epochs']} epochs)",
                cpu["selection_seconds_per_run"] / 3600,
                selection_s / 3600,
                selection_s / 3600 / args.cores,
            ],
            [
                f"train ({STUDY['epochs']} epochs)",
                train_s / 3600,
                jobs * train_s / 3600,
                jobs * train_s / 3600 / args.cores,
            ],
            ["evaluate", eval_total / jobs / 3600, eval_total / 3600, eval_total / 3600 / args.cores],
            ["total", "", cpu["job_hours"], cpu["wall_hours"]],
        ],
    )

    torch.manual_seed(0)
    z = torch.randn(1, 16)
    x = data.test_images[:1].float().div(255)
    dec_flops, dec_bytes = flops_and_bytes(model.decoder, z)
    enc_flops, enc_bytes = flops_and_bytes(model.encoder, x)
    family_bytes = model.family.n_params * data.dims * 4 + 16  # read the decoder's outputs, write two sums
    per_sample = max(dec_flops / A100["flops_per_s"], (dec_bytes + family_bytes) / A100["bytes_per_s"])
    per_train_image = max(
        3 * (dec_flops + enc_flops) / A100["flops_per_s"], 3 * (dec_bytes + enc_bytes) / A100["bytes_per_s"]
    )  # forward and backward
    gpu_eval_s = STUDY["k"] * STUDY["test_images"] * per_sample / args.efficiency
    gpu_epoch_s = (
        (STUDY["train_images"] - STUDY["validation"] + (STUDY["validation"] + STUDY["test_images"]) / 3)
        * per_train_image
        / args.efficiency
    )  # an ELBO pass is a third of a training step
    gpu_train_s = STUDY["epochs"] * gpu_epoch_s
    gpu_selection_s = grid_runs * STUDY["selection_epochs"] * gpu_epoch_s
    print_table(
        f"one GPU, an ESTIMATE from FLOPs and bytes against the {A100['name']} at "
        f"{args.efficiency:.0%} of peak (not measured)",
        ["quantity", "value"],
        [
            ["conv decoder FLOPs per sample", dec_flops],
            ["conv decoder bytes per sample", dec_bytes],
            ["conv encoder FLOPs per image", enc_flops],
            ["family kernel bytes per sample", family_bytes],
            ["us per image-sample (evaluation)", per_sample / args.efficiency * 1e6],
            ["hours per evaluation job", gpu_eval_s / 3600],
            ["hours per training job", gpu_train_s / 3600],
            [f"hours for the {grid_runs} selection runs", gpu_selection_s / 3600],
            [
                f"hours for the study ({grid_runs} + {jobs} + {jobs} jobs, one GPU)",
                (gpu_selection_s + jobs * (gpu_eval_s + gpu_train_s)) / 3600,
            ],
        ],
    )
    write_result(
        "projection",
        {
            "study": STUDY,
            "train": train,
            "encoder_images_per_s": encode,
            "cpu": {**cpu, "us_per_image_sample": us_per_sample, "cores": args.cores},
            "gpu_estimate": {
                **A100,
                "efficiency": args.efficiency,
                "decoder_flops_per_sample": dec_flops,
                "decoder_bytes_per_sample": dec_bytes,
                "eval_hours_per_job": gpu_eval_s / 3600,
                "train_hours_per_job": gpu_train_s / 3600,
                "selection_hours": gpu_selection_s / 3600,
            },
        },
    )


if __name__ == "__main__":
    main()
