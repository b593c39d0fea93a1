"""`vaebench evaluate`: score one trained run and write its metrics.json and artifacts.npz.

The stage: it loads the run and its dataset, takes the likelihoods from likelihood.py and the
posterior metrics and figure arrays from posterior.py, and turns them into the metrics record
(docs/likelihoods.md defines every number). The chunk of samples decoded at once is resolved
here, once, and recorded with the numbers.
"""

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from vaebench.classifier import load_classifier
from vaebench.data import ImageDataset, load_dataset
from vaebench.errors import DatasetError, VaebenchError
from vaebench.gpu_slots import device_slot
from vaebench.layout import MODEL, PER_IMAGE_LL, RUN_RECORD
from vaebench.likelihood import (
    SAMPLE_BLOCK,
    batched_ll,
    chunk_for,
    compile_cache,
    family_scorer,
    full_precision,
    model_dtype_device,
    nested_sizes,
    wants_compile,
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
from vaebench.quality import fd_n, quality_metrics
from vaebench.seeding import STREAM_ELBO, STREAM_IS, STREAM_TEST_DEQ, STREAM_TRAIN_DEQ, stream_generator
from vaebench.settings import EvalConfig
from vaebench.units import bpd_deq, bpd_disc, nats_to_bpd
from vaebench.utils import (
    Progress,
    atomic_write,
    compiling,
    first_difference,
    memory_of,
    provenance,
    read_json,
    set_threads,
    write_json,
)

RUN_FIELDS = (
    "dataset",
    "loss",
    "latent_dim",
    "seed",
    "arch",
    "hidden",
    "epochs",
    "lr",
    "validation",
    "best_epoch",
    "epoch_chosen_by",
    "status",
    "train_seconds",
    "dequantize",
    "family_options",
    "dataset_sha256",
)


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
        metrics[f"ll_{name}_note"] = (
            reason if nan else f"log-likelihood is infinite for {infinite} of {values.shape[0]} test images"
        )
        return
    mean, se = _mean_se(values)
    metrics.update({f"ll_{name}_nats": mean, f"ll_{name}_se": se, f"bpd_{name}": to_bpd(mean, dims)})


def evaluate(
    model: nn.Module, data: ImageDataset, cfg: EvalConfig, classifier: nn.Module | None = None
) -> tuple[dict, dict[str, np.ndarray]]:
    """All numbers of one model on the first cfg.n_test test images: (metrics, figure arrays). The picture
    quality metrics need the dataset's classifier (vaebench.classifier); without one they are null."""
    dtype, device = model_dtype_device(model)
    family = model.family
    n_test = data.test_images.shape[0] if cfg.n_test is None else cfg.n_test
    dims = data.dims
    chunk = chunk_for(model, cfg.chunk, cfg.k, cfg.batch, dims)
    v = data.test_images[:n_test].to(device)  # [N, C, H, W] uint8
    x = dequantize_blocks(data.test_images, n_test, stream_generator(cfg.seed, STREAM_TEST_DEQ, device))

    compiled = wants_compile(cfg.compile, cfg.k, n_test, device)
    score = family_scorer(family, compiled)
    with (
        Progress("importance sampling", n_test, "images", "samples", cfg.k) as progress,
        compile_cache(cfg.compile_cache),
    ):
        ll = batched_ll(
            model,
            x,
            v,
            cfg.k,
            cfg.batch,
            chunk,
            stream_generator(cfg.seed, STREAM_IS, device),
            score,
            progress,
        )
    metrics: dict = {
        "k": cfg.k,
        "n_test": n_test,
        "batch": cfg.batch,
        "chunk": ll.chunk,  # lower than resolved when the device ran out of memory
        "eval_seed": cfg.seed,
        "dims": dims,
        "family_label": family.label,
        "compile_mode": cfg.compile,
        "compiled": score.fused,
        "compile_seconds": None,
        "compile_cache_warm": None,
        "family_dtype": str(dtype).removeprefix("torch."),
    }
    if score.fused:  # compile_seconds: compiling, or loading from the cache, plus one run per shape
        metrics.update(
            {
                "compile_seconds": score.compile_seconds,
                "compile_cache": cfg.compile_cache,
                "compile_cache_warm": score.cache_misses == 0,
            }
        )
    _put_ll(metrics, "deq", ll.deq, dims, bpd_deq, f"{family.name}: log_density returned NaN")
    _put_ll(
        metrics,
        "disc",
        ll.disc,
        dims,
        bpd_disc,
        f"{family.name} has no discretized likelihood (log_prob_bins returned NaN)",
    )
    sizes = nested_sizes(cfg.k)  # nested estimates: the same samples' first K/16 and K/4
    metrics.update({f"k_{name}": m for name, m in sizes.items()})
    for column in ("deq", "disc"):
        for name, m in sizes.items():
            metrics[f"ll_{column}_nats_k_{name}"] = (
                None if m is None else getattr(ll.nested[m], column).mean().item()
            )
        quarter = sizes["quarter"]
        rise = (
            (None, None)
            if quarter is None
            else _mean_se(getattr(ll, column) - getattr(ll.nested[quarter], column))
        )
        metrics[f"ll_{column}_rise_nats"], metrics[f"ll_{column}_rise_se"] = rise
    if compiled and not score.fused:
        metrics["compiled_note"] = f"evaluated eagerly: {family.not_compilable}"
    if family.entry.discrete:
        metrics["ll_deq_note"] = "dequantized density = bin probability * 256^D, so both columns agree"

    with Progress("posterior metrics", n_test, "images") as progress:
        post = posterior_pass(
            model,
            x,
            v,
            cfg.batch,
            stream_generator(cfg.seed, STREAM_ELBO, device),
            keep_pictures=0 if classifier is None else fd_n(n_test),
        )
        progress(n_test)
    elbo_mean, elbo_se = _mean_se(post["elbo"])
    kl_mean = post["kl"].mean().item()
    n_train = data.train_images.shape[0] if cfg.n_train is None else cfg.n_train
    with Progress("kNN: encoding the train images", n_train, "images") as progress:
        train_mu = posterior_means(
            model, data.train_images, stream_generator(cfg.seed, STREAM_TRAIN_DEQ, device), n_train
        )
        progress(n_train)
    metrics.update(
        {
            "elbo_nats": elbo_mean,
            "elbo_se": elbo_se,
            "bpd_elbo": bpd_deq(elbo_mean, dims),
            "kl_nats": kl_mean,
            "bpd_kl": nats_to_bpd(kl_mean, dims),
            "recon_mse": post["sq_err"].item() / (n_test * dims),
            "knn_acc": knn_accuracy(
                train_mu, data.train_labels[: train_mu.shape[0]], post["mu"], data.test_labels[:n_test]
            ),
            "knn_train_images": train_mu.shape[0],
            "active_units": active_units(post["mu"]),
            "coverage90": None,
        }
    )
    metrics.update(
        quality_metrics(
            model, classifier, v, post["recon"], post["mu"].shape[1], data.test_labels[:n_test], cfg.seed
        )
    )
    artifacts = figure_artifacts(model, x, v, cfg.seed)
    # per test image (the same images, in the same order, for every run of a study): what the analysis
    # resamples to pair families image by image
    artifacts.update({key: getattr(ll, column).cpu().numpy() for column, key in PER_IMAGE_LL.items()})
    if "pit_counts" in post:
        metrics["coverage90"] = post["covered"].item() / (n_test * dims)
        artifacts["pit_counts"] = post["pit_counts"].cpu().numpy().astype(np.int64)
        artifacts["pit_edges"] = np.linspace(0.0, 1.0, PIT_BINS + 1)
    else:
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
            metrics.setdefault(
                f"{key}_note", f"not finite ({value}): the model's outputs overflow or are NaN"
            )
    return metrics


def save_artifacts(path: str | Path, arrays: dict[str, np.ndarray]) -> Path:
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:  # a file object: np.savez would append .npz to a path
            np.savez_compressed(f, **arrays)

    return atomic_write(path, write)


def _kept(path: Path, planned: dict) -> bool:
    """Whether `path` holds the metrics `planned` describes (the same run and settings): then they are kept.

    Nothing there: False. Another run's or other settings': one line (--overwrite skips this check)."""
    if not path.exists():
        return False
    saved = read_json(path, "")
    saved["compile"] = saved.get(
        "compile_mode",  # asked for (older files: compiled or not)
        "true" if saved.get("compiled") or "compiled_note" in saved else "false",
    )
    other = first_difference(saved, planned)
    if other is not None:
        raise VaebenchError(
            f"{path} holds the metrics of another run or other settings ({other}): use "
            "another --out, or --overwrite to replace it"
        )
    return True


def _say_what_changes(args: argparse.Namespace, model: nn.Module, cfg: EvalConfig, dims: int) -> None:
    """On stderr, at the start: options taken otherwise than given."""
    chunk = args.chunk and chunk_for(model, args.chunk, cfg.k, cfg.batch, dims)
    if chunk != args.chunk:
        print(
            f"--chunk {args.chunk} is not a multiple of {SAMPLE_BLOCK}: decoding {chunk} samples at once",
            file=sys.stderr,
        )
    if args.compile != "false" and model.family.not_compilable:
        print(
            f"--compile: {model.family.name} is evaluated eagerly: {model.family.not_compilable}",
            file=sys.stderr,
        )


def run(args: argparse.Namespace) -> int:
    for option, path in (("--out", args.out), ("--artifacts", args.artifacts)):
        if path is not None and path.is_dir():
            raise VaebenchError(f"{option} {path} is a directory: name the file to write")
    record = read_json(args.run / RUN_RECORD, "train the run first")
    with device_slot(args.device) as device:  # several GPUs: a device of this job's own, until it ends
        threads = set_threads(args.threads)
        data = load_dataset(record["dataset"], args.data_dir or record.get("data_dir"))
        if record.get("dataset_sha256") not in (None, data.sha256):
            raise DatasetError(
                f"dataset {record['dataset']} differs from the one {args.run} was trained on "
                f"(sha256 {data.sha256[:12]} vs {record['dataset_sha256'][:12]})"
            )
        n_available = data.test_images.shape[0]
        if args.n_test is not None and args.n_test > n_available:
            raise VaebenchError(
                f"--n-test {args.n_test} exceeds the {n_available} test images of {record['dataset']}"
            )
        cfg = EvalConfig(
            k=args.k,
            n_test=args.n_test,
            batch=args.batch,
            chunk=args.chunk,
            seed=args.seed,
            compile=args.compile,
            compile_cache=str(args.compile_cache),
        )
        if args.dry_run:
            cfg.k, cfg.n_test, cfg.n_train = min(cfg.k, 4), min(cfg.n_test or n_available, 64), 500
        # the run's fields include train_seconds, which tells two trainings with the same arguments apart
        planned = {
            "k": cfg.k,
            "n_test": cfg.n_test or n_available,
            "batch": cfg.batch,
            "eval_seed": cfg.seed,
            "compile": cfg.compile,
            "dry_run": args.dry_run,
            **{key: record.get(key) for key in RUN_FIELDS},
        }
        if (
            not args.overwrite
            and _kept(args.out, planned)
            and (args.artifacts is None or args.artifacts.exists())
        ):
            print(
                f"{args.out} holds this evaluation already: nothing to do; --overwrite evaluates again",
                file=sys.stderr,
            )
            return 0
        model = load_model(args.run / MODEL, device)
        classifier = None if args.classifier is None else load_classifier(args.classifier, device, data)
        _say_what_changes(args, model, cfg, data.dims)

        t0 = time.perf_counter()
        # at full precision throughout (TF32 off), so the recorded flags are those every number came from
        with compiling(args.compile != "false", "rerun with --compile false"), full_precision():
            try:
                metrics, artifacts = evaluate(model, data, cfg, classifier)
            except torch.OutOfMemoryError:
                raise VaebenchError(
                    f"out of memory evaluating {cfg.batch} images at a time on {memory_of(device)}: "
                    "lower --batch"
                ) from None
            metrics["eval_seconds"] = time.perf_counter() - t0
            metrics.update({key: record.get(key) for key in RUN_FIELDS})
            metrics.update(provenance(device))
        metrics.update(
            {
                "threads": threads,
                "dry_run": args.dry_run,
                "ll_comparable": bool(record.get("dequantize", True)),
            }
        )
        write_json(args.out, metrics)
        if args.artifacts is not None:
            save_artifacts(args.artifacts, artifacts)
        shown = {
            key: "n/a" if metrics[key] is None else f"{metrics[key]:.3f}"
            for key in ("ll_deq_nats", "bpd_deq", "ll_disc_nats", "bpd_disc", "elbo_nats")
        }
        print(
            f"[{record.get('loss')} z={record.get('latent_dim')} seed={record.get('seed')}] K={cfg.k} "
            f"n={metrics['n_test']}: LL_deq {shown['ll_deq_nats']} nats ({shown['bpd_deq']} bits/dim), "
            f"LL_disc {shown['ll_disc_nats']} nats ({shown['bpd_disc']} bits/dim), "
            f"ELBO {shown['elbo_nats']} nats, "
            f"{metrics['eval_seconds']:.1f} s on {device}",
            file=sys.stderr,
        )
        return 0
