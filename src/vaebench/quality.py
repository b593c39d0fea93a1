"""Picture quality of one model: what its reconstructions and samples look like, measured.

Likelihood and sample quality can disagree (Theis et al. 2016), and the case for binary cross-entropy
is sharpness, not likelihood. Each number is computed on the family's mean image (what people show)
and, where the family has one that differs, its median image (OutputFamily.median), clamped to [0, 1]
like any picture on screen:

- fd_samples_*: the Fréchet distance between the features of N prior samples (z ~ N(0, I)) and of the
  first N test images; fd_recon_*: the same for the reconstructions (z at the posterior mean, the
  pictures of the posterior pass, posterior.posterior_pass, so they are decoded once). The
  features are the penultimate layer of the dataset's small classifier (vaebench.classifier), so it is
  FID's definition with another feature extractor: the numbers are not FIDs. N = min(FD_MAX_N, test
  images scored), the same for every family (fd_n), since the distance's bias depends on N.
- recon_class_acc_*: the classifier's accuracy on the reconstructions (the test images' labels).
- sharpness_*: mean Sobel gradient magnitude of the reconstructions over that of the test images,
  1.0 as sharp as the data.

The prior samples come from their own noise stream (STREAM_QUALITY), so every other number of a run
stays the same with or without these.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from vaebench.likelihood import full_precision, model_dtype_device
from vaebench.seeding import STREAM_QUALITY, stream_generator

FD_MAX_N = 5000
BLOCK = 500  # prior samples per decoder pass, images per classifier pass: fixed, not --batch
# sub-pixels per family mean/median call on a CPU: the discretized logistic's mean is a memory-bound sum
# over bins, measured several times faster when its temporaries stay in cache
CPU_PICTURE_VALUES = 4096
BLUR_SIGMA = 1.0  # pixels: the blurred reference of resources/quality/DATASET.json
BLUR_TRUNCATE = 4.0  # kernel radius in sigmas, as scipy.ndimage.gaussian_filter's default
IMAGE_METRICS = ("fd_samples", "fd_recon", "recon_class_acc", "sharpness")
PICTURES = ("mean", "median")
METRIC_KEYS = tuple(f"{name}_{picture}" for picture in PICTURES for name in IMAGE_METRICS)
SAME_AS_MEAN = "the median image is the mean image: {family} is symmetric about its location"
_SOBEL = ((1.0, 0.0, -1.0), (2.0, 0.0, -2.0), (1.0, 0.0, -1.0))


def fd_n(n_test: int) -> int:
    """Images on each side of a Fréchet distance: the same N for every family of a study."""
    return min(FD_MAX_N, n_test)


def gaussian_moments_distance(mu1, cov1, mu2, cov2) -> float:
    """d^2 = |mu1 - mu2|^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)), in float64 on the CPU (tensors or arrays).

    Tr (S1 S2)^(1/2) is the sum of the square roots of the eigenvalues of S1^(1/2) S2 S1^(1/2), which has
    the spectrum of S1 S2 but is symmetric: no complex round-off, and singular covariances (fewer images
    than features) are fine. Round-off below 0 is clipped, so d^2 >= 0. torch, not numpy: numpy's BLAS
    ignores the job's thread budget.
    """
    mu1, cov1, mu2, cov2 = (torch.as_tensor(t, dtype=torch.float64) for t in (mu1, cov1, mu2, cov2))
    w, u = torch.linalg.eigh(cov1)
    root1 = (u * w.clamp(min=0).sqrt()) @ u.T
    cross = torch.linalg.eigvalsh(root1 @ cov2 @ root1).clamp(min=0).sqrt().sum()
    d2 = (mu1 - mu2).pow(2).sum() + cov1.trace() + cov2.trace() - 2 * cross
    return max(d2.item(), 0.0)


def frechet_distance(a, b) -> float:
    """d^2 between the Gaussians fitted to two feature sets [N, F] (sample covariances); NaN if either has a
    non-finite value (a model whose outputs are NaN)."""
    a, b = torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)
    if not (torch.isfinite(a).all() and torch.isfinite(b).all()):
        return math.nan
    return gaussian_moments_distance(a.mean(0), torch.cov(a.T), b.mean(0), torch.cov(b.T))


def gaussian_blur(images: torch.Tensor, sigma: float = BLUR_SIGMA) -> torch.Tensor:
    """Separable Gaussian blur of [N, C, H, W] float images, edges mirrored (scipy's mode 'mirror')."""
    radius = int(BLUR_TRUNCATE * sigma + 0.5)
    t = torch.arange(-radius, radius + 1, dtype=images.dtype, device=images.device)
    kernel = torch.exp(-0.5 * (t / sigma) ** 2)
    kernel = kernel / kernel.sum()
    c = images.shape[1]
    out = F.pad(images, (radius, radius, 0, 0), mode="reflect")
    out = F.conv2d(out, kernel.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    out = F.pad(out, (0, 0, radius, radius), mode="reflect")
    return F.conv2d(out, kernel.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def gradient_magnitude(images: torch.Tensor) -> torch.Tensor:
    """Sum over pixels of the Sobel gradient magnitude, per image [N] float64; interior pixels only, so no
    padding invents an edge."""
    c = images.shape[1]
    gx = torch.tensor(_SOBEL, dtype=torch.float64, device=images.device)
    kernels = torch.stack([gx, gx.T])[:, None].repeat(c, 1, 1, 1)  # [2C, 1, 3, 3]
    g = F.conv2d(images.double(), kernels, groups=c)  # [N, 2C, H-2, W-2]: (d/dx, d/dy) per channel
    return g.unflatten(1, (c, 2)).pow(2).sum(2).sqrt().flatten(1).sum(1)


def sharpness(images: torch.Tensor, reference: torch.Tensor) -> float:
    """Mean gradient magnitude of `images` over that of `reference` (same shape): 1.0 is as sharp."""
    return (gradient_magnitude(images).sum() / gradient_magnitude(reference).sum()).item()


@torch.no_grad()
def features(classifier: nn.Module, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The classifier's (features [N, F] float64, predicted class [N]) of float images [N, C, H, W] in [0, 1],
    BLOCK at a time on the classifier's device; both on the CPU."""
    device = next(classifier.parameters()).device
    feats, preds = [], []
    with full_precision():
        classifier.eval()
        for start in range(0, images.shape[0], BLOCK):
            f = classifier.features(images[start : start + BLOCK].to(device, torch.float32))
            feats.append(f.double().cpu())
            preds.append(classifier.head(f).argmax(1).cpu())
    return torch.cat(feats), torch.cat(preds)


def concat_pictures(blocks: list[dict[str, torch.Tensor | None]]) -> dict[str, torch.Tensor | None]:
    """Blocks of pictures joined along the images: per picture the concatenation of the blocks that have it,
    None where none has."""
    parts = {picture: [b[picture] for b in blocks if b[picture] is not None] for picture in PICTURES}
    return {picture: torch.cat(images) if images else None for picture, images in parts.items()}


def pictures(family: nn.Module, params: torch.Tensor, median: bool = True) -> dict[str, torch.Tensor | None]:
    """The mean and (if `median`) median images [B, C, H, W] of decoder outputs [B, P, C, H, W], unclamped, in
    their dtype; median None where the family's median is its mean (or not asked for). On a CPU, a few
    images at a time (CPU_PICTURE_VALUES sub-pixels)."""
    on_cpu = params.device.type == "cpu"
    per = max(1, CPU_PICTURE_VALUES // params[0, 0].numel()) if on_cpu else params.shape[0]
    blocks = [params[first : first + per] for first in range(0, params.shape[0], per)]
    return concat_pictures(
        [{"mean": family.mean(b), "median": family.median(b) if median else None} for b in blocks]
    )


def on_screen(images: dict[str, torch.Tensor | None]) -> dict[str, torch.Tensor | None]:
    """Pictures as shown: clamped to [0, 1], float32 on the CPU."""
    return {k: None if image is None else image.clamp(0, 1).float().cpu() for k, image in images.items()}


@torch.no_grad()
def decoded_pictures(model: nn.Module, z: torch.Tensor) -> dict[str, torch.Tensor | None]:
    """Mean and median images of the decoder at z [N, Z], BLOCK codes per decoder call (a decoder's rows
    can depend on how many it is called with), as on screen: [N, C, H, W] each (median None where it is
    the mean)."""
    dtype, device = model_dtype_device(model)
    with full_precision():
        model.eval()
        return concat_pictures(
            [
                on_screen(pictures(model.family, model.decode(z[start : start + BLOCK].to(device, dtype))))
                for start in range(0, z.shape[0], BLOCK)
            ]
        )


def unscored(why: str) -> dict:
    """The record without a classifier: every image metric null, each with a note saying why."""
    return {
        "fd_n": None,
        "classifier_sha256": None,
        **{key: None for key in METRIC_KEYS},
        **{f"{key}_note": why for key in METRIC_KEYS},
    }


@torch.no_grad()
def quality_metrics(
    model: nn.Module,
    classifier: nn.Module | None,
    v: torch.Tensor,
    recon: dict[str, torch.Tensor | None],
    latent_dim: int,
    labels: torch.Tensor,
    seed: int,
) -> dict:
    """The picture-quality numbers of one model (module docstring) on the first fd_n test images.

    v: the test images scored, uint8 [n, C, H, W]; recon: the mean and median images at their posterior
    means (pictures(), at least fd_n of them), from posterior.posterior_pass; latent_dim: the prior's Z;
    labels [n]; seed: the evaluation seed (the prior samples' stream).
    """
    if classifier is None:
        return unscored("no classifier given (vaebench evaluate --classifier)")
    n = fd_n(v.shape[0])
    data = v[:n].float().cpu() / 255
    data_feats, _ = features(classifier, data)
    _, device = model_dtype_device(model)
    z_prior = torch.randn(
        n, latent_dim, generator=stream_generator(seed, STREAM_QUALITY, device), device=device
    )  # [n, Z] float32: the noise is the same for a float64 model
    recon = on_screen({picture: None if image is None else image[:n] for picture, image in recon.items()})
    samples = decoded_pictures(model, z_prior)
    labels = labels[:n].cpu()
    metrics: dict = {"fd_n": n, "classifier_sha256": classifier.sha256}
    for picture in PICTURES:
        if recon[picture] is None:
            note = SAME_AS_MEAN.format(family=model.family.name)
            metrics.update({f"{name}_{picture}": None for name in IMAGE_METRICS})
            metrics.update({f"{name}_{picture}_note": note for name in IMAGE_METRICS})
            continue
        recon_feats, recon_pred = features(classifier, recon[picture])
        accuracy = (recon_pred == labels).double().mean().item()
        metrics.update(
            {
                f"fd_samples_{picture}": frechet_distance(
                    features(classifier, samples[picture])[0], data_feats
                ),
                f"fd_recon_{picture}": frechet_distance(recon_feats, data_feats),
                f"recon_class_acc_{picture}": accuracy if bool(recon[picture].isfinite().all()) else math.nan,
                f"sharpness_{picture}": sharpness(recon[picture], data),
            }
        )
    return metrics
