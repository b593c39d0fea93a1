"""`vaebench evaluate`: score one trained run and write its metrics.json and artifacts.npz.

The stage: it loads the run and its dataset, takes the likelihoods from likelihood.py and the
posterior metrics and figure arrays from posterior.py, and turns them into the metrics record
(docs/likelihoods.md defines every number). The chunk of samples decoded at once is resolved
here, once, and recorded with the numbers.
"""

import argparse
import json
import logging
import math
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch._dynamo.exc import BackendCompilerFailed

from vaebench.data import ImageDataset, load_dataset
from vaebench.errors import CheckpointError, DatasetError, VaebenchError, require_positive
from vaebench.gpu_slots import device_slot
from vaebench.likelihood import (
    LN2,
    SAMPLE_BLOCK,
    STREAM_ELBO,
    STREAM_IS,
    STREAM_TEST_DEQ,
    STREAM_TRAIN_DEQ,
    batched_ll,
    bpd_deq,
    bpd_disc,
    chunk_for,
    family_scorer,
    model_dtype_device,
    stream_generator,
)
from vaebench.models import load_model
from vaebench.posterior import (
    PIT_BINS,
    active_units,
    dequantize_blocks,
    figure_artifacts,
    knn_accuracy,
    posterior_means,
    posterior_pass,
)
from vaebench.utils import atomic_write, provenance, set_threads, write_json

RUN_FIELDS = ("dataset", "loss", "latent_dim", "seed", "arch", "hidden", "epochs", "status", "train_seconds",
              "dequantize", "family_options", "dataset_sha256")


@dataclass
class EvalConfig:
    k: int = 5000
    n_test: int | None = None   # None: the whole test split
    batch: int = 100            # test images per importance-sampling batch
    chunk: int | None = None    # samples decoded at once; None: from free memory (default_chunk)
    seed: int = 0
    n_train: int | None = None  # train images for kNN; None: the whole train split
    compile: bool = False       # family math as one torch.compile'd kernel


def _mean_se(values: torch.Tensor) -> tuple[float, float | None]:
    """Mean and standard error over images (float64); SE is None for a single image."""
    n = values.shape[0]
    se = (values.std(unbiased=True) / math.sqrt(n)).item() if n > 1 else None
    return values.mean().item(), se


def _put_ll(metrics: dict, name: str, values: torch.Tensor, dims: int, to_bpd, reason: str) -> None:
    """ll_<name>_nats, ll_<name>_se, bpd_<name>; null and ll_<name>_note where any image is not finite."""
    nan, infinite = int(torch.isnan(values).sum()), int(torch.isinf(values).sum())
    if nan or infinite:
        metrics.update({f"ll_{name}_nats": None, f"ll_{name}_se": None, f"bpd_{name}": None})
        metrics[f"ll_{name}_note"] = (reason if nan else f"log-likelihood is infinite for {infinite} of "
                                      f"{values.shape[0]} test images")
        return
    mean, se = _mean_se(values)
    metrics.update({f"ll_{name}_nats": mean, f"ll_{name}_se": se, f"bpd_{name}": to_bpd(mean, dims)})


def evaluate(model: nn.Module, data: ImageDataset, cfg: EvalConfig) -> tuple[dict, dict[str, np.ndarray]]:
    """All numbers of one model on the first cfg.n_test test images: (metrics, figure arrays)."""
    dtype, device = model_dtype_device(model)
    family = model.family
    n_test = data.test_images.shape[0] if cfg.n_test is None else cfg.n_test
    dims = data.dims
    chunk = chunk_for(model, cfg.chunk, cfg.k, cfg.batch, dims)
    v = data.test_images[:n_test].to(device)  # [N, C, H, W] uint8
    x = dequantize_blocks(data.test_images, n_test, stream_generator(cfg.seed, STREAM_TEST_DEQ, device))

    score = family_scorer(family, cfg.compile)
    ll_deq, ll_disc = batched_ll(model, x, v, cfg.k, cfg.batch, chunk,
                                 stream_generator(cfg.seed, STREAM_IS, device), score)
    metrics: dict = {"k": cfg.k, "n_test": n_test, "batch": cfg.batch, "chunk": chunk, "eval_seed": cfg.seed,
                     "dims": dims, "family_label": family.label, "compiled": score.fused,
                     "family_dtype": str(dtype).removeprefix("torch.")}
    _put_ll(metrics, "deq", ll_deq, dims, bpd_deq, f"{family.name}: log_density returned NaN")
    _put_ll(metrics, "disc", ll_disc, dims, bpd_disc,
            f"{family.name} has no discretized likelihood (log_prob_bins returned NaN)")
    if cfg.compile and not score.fused:
        metrics["compiled_note"] = f"evaluated eagerly: {family.not_compilable}"
    if family.entry.discrete:
        metrics["ll_deq_note"] = "dequantized density = bin probability * 256^D, so both columns agree"

    post = posterior_pass(model, x, v, cfg.batch, stream_generator(cfg.seed, STREAM_ELBO, device))
    elbo_mean, elbo_se = _mean_se(post["elbo"])
    kl_mean = post["kl"].mean().item()
    train_mu = posterior_means(model, data.train_images, stream_generator(cfg.seed, STREAM_TRAIN_DEQ, device),
                               cfg.n_train)
    metrics.update({
        "elbo_nats": elbo_mean, "elbo_se": elbo_se, "bpd_elbo": bpd_deq(elbo_mean, dims),
        "kl_nats": kl_mean, "bpd_kl": kl_mean / (dims * LN2),
        "recon_mse": post["sq_err"].item() / (n_test * dims),
        "knn_acc": knn_accuracy(train_mu, data.train_labels[:train_mu.shape[0]], post["mu"],
                                data.test_labels[:n_test]),
        "knn_train_images": train_mu.shape[0],
        "active_units": active_units(post["mu"]),
        "coverage90": None,
    })
    artifacts = figure_artifacts(model, x, v, cfg.seed)
    if "pit_counts" in post:
        metrics["coverage90"] = post["covered"].item() / (n_test * dims)
        artifacts["pit_counts"] = post["pit_counts"].cpu().numpy().astype(np.int64)
        artifacts["pit_edges"] = np.linspace(0.0, 1.0, PIT_BINS + 1)
    elif family.learned_scale:
        metrics["coverage90_note"] = f"{family.name} has no CDF"
    if post["mu"].shape[1] == 2:
        artifacts["latent_mu"] = post["mu"].float().cpu().numpy()
        artifacts["latent_labels"] = data.test_labels[:n_test].cpu().numpy().astype(np.int64)
    return _nulls_for_non_finite(metrics), artifacts


def _nulls_for_non_finite(metrics: dict) -> dict:
    """JSON has no NaN or inf: such a number becomes null with a `<key>_note` (unless one says why)."""
    for key, value in list(metrics.items()):
        if isinstance(value, float) and not math.isfinite(value):
            metrics[key] = None
            metrics.setdefault(f"{key}_note",
                               f"not finite ({value}): the model's outputs overflow or are NaN")
    return metrics


def save_artifacts(path: str | Path, arrays: dict[str, np.ndarray]) -> Path:
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:  # a file object: np.savez would append .npz to a path
            np.savez_compressed(f, **arrays)
    return atomic_write(path, write)


@contextmanager
def quiet_inductor(active: bool) -> Iterator[None]:
    """While compiling, keep torch inductor's own log (a hundred lines of generated code when the C++ compiler
    is missing) off stderr, so a failure reads as our one line; TORCH_LOGS still turns it back on."""
    logger = logging.getLogger("torch._inductor")
    saved = logger.level
    if active and not os.environ.get("TORCH_LOGS"):
        logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        logger.setLevel(saved)


def read_run(run_dir: Path) -> dict:
    path = run_dir / "run.json"
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{path} does not exist: train the run first") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{path} is not valid JSON ({err})") from None


def add_arguments(p: argparse.ArgumentParser) -> None:
    d = EvalConfig()
    p.add_argument("--run", required=True, type=Path, help="run directory holding model.pt and run.json")
    p.add_argument("--k", type=int, default=d.k,
                   help="importance samples per test image (default: %(default)s)")
    p.add_argument("--n-test", type=int, default=None, help="score the first N test images (default: all)")
    p.add_argument("--batch", type=int, default=d.batch, help="test images per batch (default: %(default)s)")
    p.add_argument("--chunk", type=int, default=None,
                   help=f"samples decoded at once, a multiple of {SAMPLE_BLOCK}; memory grows with "
                        "batch*chunk, never with K; numbers do not depend on it (default: from free memory)")
    p.add_argument("--seed", type=int, default=d.seed,
                   help="seed of the evaluation noise: dequantization, z samples, ELBO, prior samples "
                        "(default: 0)")
    p.add_argument("--device", default="auto",
                   help="'auto' (cuda when present, else cpu), 'cpu', 'cuda:1', ...")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads; 0 keeps torch's default")
    p.add_argument("--data-dir", default=None,
                   help="where the dataset is looked for (default: the run's data_dir)")
    p.add_argument("--out", required=True, type=Path, help="metrics file to write, e.g. RUN_DIR/metrics.json")
    p.add_argument("--artifacts", type=Path, default=None,
                   help="arrays for the figures, e.g. RUN_DIR/artifacts.npz (default: not written)")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=d.compile,
                   help="run the family math as one torch.compile'd kernel: 2-5x faster per sample, a few "
                        "seconds to compile per process, needs a C++ compiler on CPU (default: off)")
    p.add_argument("--dry-run", action="store_true",
                   help="K=4 on 64 test images and 500 train images, to check that everything runs")


def run(args: argparse.Namespace) -> int:
    require_positive(k=args.k, n_test=args.n_test, batch=args.batch, chunk=args.chunk)
    record = read_run(args.run)
    with device_slot(args.device) as device:  # several GPUs: a device of this job's own, until it ends
        threads = set_threads(args.threads)
        model = load_model(args.run / "model.pt", device)
        data = load_dataset(record["dataset"], args.data_dir or record.get("data_dir"))
        if record.get("dataset_sha256") not in (None, data.sha256):
            raise DatasetError(f"dataset {record['dataset']} differs from the one {args.run} was trained on "
                               f"(sha256 {data.sha256[:12]} vs {record['dataset_sha256'][:12]})")
        n_available = data.test_images.shape[0]
        if args.n_test is not None and args.n_test > n_available:
            raise VaebenchError(f"--n-test {args.n_test} exceeds the {n_available} test images of "
                                f"{record['dataset']}")
        cfg = EvalConfig(k=args.k, n_test=args.n_test, batch=args.batch, chunk=args.chunk, seed=args.seed,
                         compile=args.compile)
        if args.dry_run:
            cfg.k, cfg.n_test, cfg.n_train = min(cfg.k, 4), min(cfg.n_test or n_available, 64), 500

        t0 = time.perf_counter()
        try:
            with quiet_inductor(args.compile):
                metrics, artifacts = evaluate(model, data, cfg)
        except BackendCompilerFailed as err:
            reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise VaebenchError(f"--compile failed ({reason[:200]}): torch.compile needs a C++ compiler "
                                "on CPU and triton on GPU; rerun with --no-compile "
                                "(TORCH_LOGS=+inductor for details)") from None
        metrics["eval_seconds"] = time.perf_counter() - t0
        metrics.update({key: record.get(key) for key in RUN_FIELDS})
        metrics.update(provenance(device))
        metrics.update({"threads": threads, "dry_run": args.dry_run,
                        "ll_comparable": bool(record.get("dequantize", True))})
        write_json(args.out, metrics)
        if args.artifacts is not None:
            save_artifacts(args.artifacts, artifacts)
        shown = {key: "n/a" if metrics[key] is None else f"{metrics[key]:.3f}"
                 for key in ("ll_deq_nats", "bpd_deq", "ll_disc_nats", "bpd_disc", "elbo_nats")}
        print(f"[{record.get('loss')} z={record.get('latent_dim')} seed={record.get('seed')}] K={cfg.k} "
              f"n={metrics['n_test']}: LL_deq {shown['ll_deq_nats']} nats ({shown['bpd_deq']} bits/dim), "
              f"LL_disc {shown['ll_disc_nats']} nats ({shown['bpd_disc']} bits/dim), "
              f"ELBO {shown['elbo_nats']} nats, "
              f"{metrics['eval_seconds']:.1f} s on {device}", file=sys.stderr)
        return 0
