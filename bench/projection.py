"""Projected wall time of the full study (config/config.yaml: conv, every family x 3 latent sizes x 3 seeds,
on MNIST's 60,000 training images less a validation split, the selection grid's runs and their extensions,
K = 5000 on its 10,000 test images) on this machine, and an estimate for one GPU.

This machine (measured): per family, evaluation microseconds per image-sample of the conv model, compiled
with a warm cache, from bench/out/eval_throughput_conv.json (run `python bench/eval_throughput.py --arch conv
--families all --modes compiled --parts throughput` first); training images per second of the conv net
(train.train_epoch plus the per-epoch test ELBO, one thread) and encoder images per second (the kNN pass
encodes the training split), measured here on mnist5k. Jobs run side by side, one thread each, on all cores.

One GPU (an estimate, not a measurement; vaebench.projection.gpu_projection): counted here, floating-point
operations per sample by torch.utils.flop_counter (convolutions and matrix products), bytes per sample (every
layer's output written once and read once, in float32, the bilinear upsampling's four taps per output read
besides, the family kernel's read of the decoder's outputs) and the aten ops of one training step (each a
kernel launch in eager PyTorch); datasheet: A100 SXM, 19.5 TFLOP/s float32 (no TF32, as evaluation runs) and
1.5 TB/s. Assumed, as a range (vaebench.projection.LOW and HIGH): the share of the datasheet reached, the
seconds per kernel launch and a fixed cost per job. The epochs per run are those the stopping rule's pilot
trained (vaebench.projection.expected_epochs), at most the config's caps.

    python bench/projection.py [--rounds 2] [--threads 1]
"""

import argparse
import copy
import json
import os
import time
from pathlib import Path

import torch
import yaml
from common import DATA_DIR, OUT_DIR, print_table, summary, write_result
from eval_throughput import trained_model
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from vaebench.data import load_dataset
from vaebench.models import BilinearUpsample, build_model
from vaebench.projection import HIGH, LOW, cpu_projection, gpu_projection, study_of
from vaebench.settings import TrainConfig
from vaebench.train import model_config, test_elbo, train_epoch, train_step

STUDY = study_of(yaml.safe_load((Path(__file__).resolve().parents[1] / "config" / "config.yaml").read_text()))
A100 = {"name": "A100 SXM (datasheet)", "flops_per_s": 19.5e12, "bytes_per_s": 1.5e12}


UPSAMPLE_TAPS = 4  # a bilinear output reads four inputs


def flops_and_bytes(module: torch.nn.Module, inputs: torch.Tensor) -> tuple[float, float]:
    """Floating-point operations and bytes of one forward pass: each layer's output written and read once,
    and the bilinear upsampling's gathered reads, which the FLOP counter does not see."""
    moved = []

    def count(layer, _inputs, out):
        taps = UPSAMPLE_TAPS if isinstance(layer, BilinearUpsample) else 0
        moved.append((2 + taps) * out.numel() * out.element_size())

    hooks = [m.register_forward_hook(count) for m in module.modules() if not list(m.children())]
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        module(inputs)
    for hook in hooks:
        hook.remove()
    return counter.get_total_flops(), float(sum(moved))


def datasheet_seconds(model, dims: int, gpu: dict = A100) -> dict:
    """Seconds per evaluation image-sample (the decoder and the family kernel's read of its outputs) and
    per training image (forward and backward of encoder and decoder, three forward passes) at the datasheet's
    peak: the larger of the FLOPs and the bytes against it."""
    decoder, encoder = copy.deepcopy(model.decoder).cpu(), copy.deepcopy(model.encoder).cpu()
    dec_flops, dec_bytes = flops_and_bytes(decoder, torch.zeros(1, model.config.latent_dim))
    enc_flops, enc_bytes = flops_and_bytes(
        encoder, torch.zeros(1, model.config.channels, model.config.height, model.config.width)
    )
    family_bytes = model.family.n_params * dims * 4 + 16  # read the decoder's outputs, write two sums
    return {
        "per_sample": max(dec_flops / gpu["flops_per_s"], (dec_bytes + family_bytes) / gpu["bytes_per_s"]),
        "per_train_image": 3
        * max((dec_flops + enc_flops) / gpu["flops_per_s"], (dec_bytes + enc_bytes) / gpu["bytes_per_s"]),
        "decoder_flops": dec_flops,
        "decoder_bytes": dec_bytes,
        "encoder_flops": enc_flops,
        "family_bytes": family_bytes,
    }


class _OpCount(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.ops = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops += 1
        return func(*args, **(kwargs or {}))


def kernels_per_train_step(data, batch_size: int) -> int:
    """The aten ops of one training step (forward, backward, Adam) of the conv net, counted on the CPU: in
    eager PyTorch on a GPU each is a kernel launched on its own."""
    cfg = TrainConfig(loss="continuous_bernoulli", arch="conv", latent_dim=16, batch_size=batch_size)
    torch.manual_seed(0)
    model = build_model(model_config(cfg, data))
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    gen = torch.Generator().manual_seed(0)
    batch = data.train_images[:batch_size]
    train_step(model, opt, batch, cfg, gen)  # Adam's state exists from the second step on
    with _OpCount() as counter:
        train_step(model, opt, batch, cfg, gen)
    return counter.ops


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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument(
        "--cores", type=int, default=os.cpu_count(), help="jobs run side by side (one thread each)"
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

    datasheet = datasheet_seconds(model, data.dims)
    kernels = kernels_per_train_step(data, STUDY["batch_size"])
    gpu = {
        name: gpu_projection(STUDY, datasheet["per_sample"], datasheet["per_train_image"], kernels, assume)
        for name, assume in (("low", LOW), ("high", HIGH))
    }
    print_table(
        f"one GPU, an ESTIMATE against the {A100['name']} (not measured)",
        ["quantity", "counted here or ASSUMED", "low", "high"],
        [
            [
                "conv decoder FLOPs, bytes per sample",
                "counted",
                datasheet["decoder_flops"],
                datasheet["decoder_bytes"],
            ],
            ["us per image-sample at the datasheet's peak", "counted", datasheet["per_sample"] * 1e6, ""],
            ["aten ops (kernels) per training step", "counted", kernels, ""],
            ["share of the datasheet reached", "ASSUMED", LOW.efficiency, HIGH.efficiency],
            ["us per kernel launch", "ASSUMED", LOW.launch_seconds * 1e6, HIGH.launch_seconds * 1e6],
            ["fixed seconds per job", "ASSUMED", LOW.fixed_seconds, HIGH.fixed_seconds],
            [
                "ms per training step",
                "",
                gpu["low"]["train_step_seconds"] * 1e3,
                gpu["high"]["train_step_seconds"] * 1e3,
            ],
            [
                "hours per training job",
                "",
                gpu["low"]["train_seconds_per_job"] / 3600,
                gpu["high"]["train_seconds_per_job"] / 3600,
            ],
            [
                "hours per evaluation job",
                "",
                gpu["low"]["eval_seconds_per_job"] / 3600,
                gpu["high"]["eval_seconds_per_job"] / 3600,
            ],
            ["of the study's hours, fixed costs", "", gpu["low"]["fixed_hours"], gpu["high"]["fixed_hours"]],
            [
                f"hours for the study ({grid_runs} + {jobs} + {jobs} jobs, one GPU)",
                "",
                gpu["low"]["job_hours"],
                gpu["high"]["job_hours"],
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
                "datasheet_seconds": datasheet,
                "kernels_per_train_step": kernels,
                "assumed": {"low": vars(LOW), "high": vars(HIGH)},
                "projection": gpu,
            },
        },
    )


if __name__ == "__main__":
    main()
