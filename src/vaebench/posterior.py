"""What evaluation reads off the encoder's posterior: ELBO, latent metrics, calibration, figure arrays.

These need the posterior mean or one posterior sample per image, not K importance samples, so they
run apart from the likelihoods (likelihood.py), batch by batch, each on its own noise stream.
docs/likelihoods.md defines the ELBO and its bits/dim.
"""

import numpy as np
import torch
from torch import nn

from vaebench.data import dequantize
from vaebench.likelihood import full_precision, model_dtype_device
from vaebench.models import gaussian_kl
from vaebench.quality import concat_pictures, pictures
from vaebench.seeding import STREAM_PRIOR, stream_generator

ENCODE_BATCH = 1000  # images per block for dequantization noise and the encoder-only passes
KNN_NEIGHBOURS = 15
ACTIVE_UNIT_THRESHOLD = 0.01
COVERAGE_LEVEL = 0.90
PIT_BINS = 20
N_RECON, N_SAMPLES = 16, 64


def dequantize_blocks(images: torch.Tensor, n: int, generator: torch.Generator) -> torch.Tensor:
    """x~ = (v + u)/256 for the first n images, drawn in fixed blocks of ENCODE_BATCH whole images.

    An image's noise therefore depends only on its index and the seed, not on n or --batch.
    """
    out = []
    for start in range(0, n, ENCODE_BATCH):
        block = images[start : start + ENCODE_BATCH].to(generator.device)
        out.append(dequantize(block, generator)[: n - start])
    return torch.cat(out)  # [n, C, H, W] float32


@torch.no_grad()
def posterior_means(
    model: nn.Module, images: torch.Tensor, generator: torch.Generator, n: int | None = None
) -> torch.Tensor:
    """E_q[z] of the first n images (all if None) at x~, dequantized as in dequantize_blocks: [n, Z] float64.

    Block by block, so the train split never sits on the device as float images all at once.
    """
    dtype, device = model_dtype_device(model)
    n = images.shape[0] if n is None else n
    out = []
    with full_precision():
        model.eval()
        for start in range(0, n, ENCODE_BATCH):
            x = dequantize(images[start : start + ENCODE_BATCH].to(device), generator)[: n - start]
            out.append(model.encode(x.to(dtype))[0].double())  # [<=ENCODE_BATCH, Z]
    return torch.cat(out)


def knn_accuracy(
    train_z: torch.Tensor,
    train_y: torch.Tensor,
    test_z: torch.Tensor,
    test_y: torch.Tensor,
    k: int = KNN_NEIGHBOURS,
) -> float:
    """Accuracy of a majority vote of the k Euclidean nearest train latents; ties go to the smallest label.

    Same rule as scikit-learn's KNeighborsClassifier(n_neighbors=k) with uniform weights.
    """
    train_z, test_z = train_z.double(), test_z.to(device=train_z.device, dtype=torch.float64)
    train_y, test_y = train_y.to(train_z.device), test_y.to(train_z.device)
    n_classes = int(max(train_y.max(), test_y.max())) + 1
    rows = max(1, (1 << 24) // train_z.shape[0])  # test rows per distance block: 128 MiB of float64
    correct = torch.zeros((), dtype=torch.int64, device=train_z.device)
    for start in range(0, test_z.shape[0], rows):
        dist = torch.cdist(test_z[start : start + rows], train_z)  # [r, N]
        nearest = dist.topk(k, dim=1, largest=False).indices  # [r, k]
        votes = nn.functional.one_hot(train_y[nearest], n_classes).sum(dim=1)  # [r, classes]
        correct += (votes.argmax(dim=1) == test_y[start : start + rows]).sum()
    return correct.item() / test_z.shape[0]


def active_units(mu: torch.Tensor, threshold: float = ACTIVE_UNIT_THRESHOLD) -> int:
    """Latent dims whose variance over x of E_q[z] (population variance, ddof 0) exceeds `threshold`."""
    return int((mu.double().var(dim=0, unbiased=False) > threshold).sum())


@torch.no_grad()
def posterior_pass(
    model: nn.Module,
    x: torch.Tensor,
    v: torch.Tensor,
    batch: int,
    generator: torch.Generator,
    keep_pictures: int = 0,
) -> dict[str, torch.Tensor]:
    """Everything read off the posterior mean or one posterior sample, batch by batch.

    Returns per-image float64 `elbo` [N] and `kl` [N] (one sample, analytic KL, proper density),
    `mu` [N, Z], `sq_err` (summed (v/255 - family mean at mu)^2), for every family with a CDF
    `pit_counts` [PIT_BINS] and `covered` (sub-pixels with F(x~) in the central 90%), and `recon`: the
    mean and median images at mu of the first `keep_pictures` images (quality.pictures, float64), the
    reconstructions the picture-quality metrics score without decoding them again.
    """
    dtype, device = model_dtype_device(model)
    family = model.family
    calibrated = family.has_cdf  # reconstruction calibration of every family with a CDF, fixed scales too
    lo, hi = (1 - COVERAGE_LEVEL) / 2, (1 + COVERAGE_LEVEL) / 2
    elbo, kl, mus = [], [], []
    kept = []  # blocks of the first keep_pictures reconstructions
    sq_err = torch.zeros((), dtype=torch.float64, device=device)
    covered = torch.zeros((), dtype=torch.int64, device=device)
    pit = torch.zeros(PIT_BINS, dtype=torch.int64, device=device)
    with full_precision():
        model.eval()
        for start in range(0, x.shape[0], batch):
            xb = x[start : start + batch].to(device)  # [B, C, H, W]
            vb = v[start : start + batch].to(device)
            mu, logvar = model.encode(xb.to(dtype))  # [B, Z]
            eps = torch.randn(mu.shape, generator=generator, device=device, dtype=dtype)
            params = model.decode(mu + torch.exp(0.5 * logvar) * eps).double()  # [B, P, C, H, W]
            kl_b = gaussian_kl(mu.double(), logvar.double())  # [B]
            elbo.append(family.log_density(params, xb.double()) - kl_b)
            kl.append(kl_b)
            mus.append(mu.double())
            at_mean = model.decode(mu).double()  # [B, P, C, H, W]
            images = pictures(family, at_mean, median=start < keep_pictures)
            sq_err += (vb.double() / 255.0 - images["mean"]).pow(2).sum()
            if start < keep_pictures:
                upto = keep_pictures - start
                kept.append({k: None if im is None else im[:upto] for k, im in images.items()})
            if calibrated:
                u = family.cdf(at_mean, xb.double())  # [B, C, H, W] PIT values in [0, 1]
                covered += ((u >= lo) & (u <= hi)).sum()
                bins = (u * PIT_BINS).long().clamp(0, PIT_BINS - 1)
                pit += torch.bincount(bins.flatten(), minlength=PIT_BINS)
    out = {
        "elbo": torch.cat(elbo),
        "kl": torch.cat(kl),
        "mu": torch.cat(mus),
        "sq_err": sq_err,
        "recon": concat_pictures(kept),
    }
    if calibrated:
        out.update(pit_counts=pit, covered=covered)
    return out


@torch.no_grad()
def figure_artifacts(model: nn.Module, x: torch.Tensor, v: torch.Tensor, seed: int) -> dict[str, np.ndarray]:
    """Data, reconstructions (family mean at the posterior mean) and prior samples for the figures; the
    median images too (recon_median, samples_median) where the family's median is not its mean."""
    dtype, device = model_dtype_device(model)
    family = model.family
    with full_precision():
        model.eval()
        mu, _ = model.encode(x[:N_RECON].to(device=device, dtype=dtype))
        recon_params = model.decode(mu).double()
        gen = stream_generator(seed, STREAM_PRIOR, device)
        z = torch.randn(N_SAMPLES, mu.shape[1], generator=gen, device=device, dtype=dtype)  # [64, Z]
        params = model.decode(z).double()
        std = family.std(params)
        medians = {"recon_median": family.median(recon_params), "samples_median": family.median(params)}
    arrays = {
        "data": v[:N_RECON].float() / 255.0,
        "recon": family.mean(recon_params).float(),
        "samples": family.mean(params).float(),
    }
    arrays.update({name: median.float() for name, median in medians.items() if median is not None})
    if std is not None:
        arrays["samples_std"] = std.float()
    return {name: a.cpu().numpy() for name, a in arrays.items()}
