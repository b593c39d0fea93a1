"""The picture figures: reconstructions, samples and the per-pixel standard deviation, as image grids (the
lowest seed with an ok run)."""

import matplotlib.pyplot as plt
import numpy as np

from vaebench.figures.style import NoData
from vaebench.layout import ARTIFACTS
from vaebench.results import Study


def _mosaic(images: np.ndarray, pad: float = 1.0) -> np.ndarray:
    """[N, C, H, W] in [0, 1] -> one row [H, N*(W+1)-1, C] with 1-pixel separators."""
    n, c, h, w = images.shape
    out = np.full((h, n * (w + 1) - 1, c), pad, np.float32)
    for i, image in enumerate(images):
        out[:, i * (w + 1) : i * (w + 1) + w] = np.transpose(image, (1, 2, 0))
    return out


def _image_rows(
    study: Study, rows_per_dim: dict[int, list[tuple[str, np.ndarray | None]]], cmap: str = "gray"
):
    """One panel per latent dimension; each panel stacks labelled rows of images (None: a blank row)."""
    dims = list(rows_per_dim)
    shapes = [img.shape for rows in rows_per_dim.values() for _, img in rows if img is not None]
    if not shapes:
        raise NoData(f"no ok run has {ARTIFACTS} yet")
    n, c, h, w = shapes[0]
    n_rows = max(len(rows) for rows in rows_per_dim.values())
    width_in, height_in = n * (w + 1) / 100, n_rows * (h + 2) / 100
    fig, axes = plt.subplots(
        1, len(dims), figsize=(width_in * len(dims) + 2.4, height_in + 0.8), squeeze=False
    )
    blank = np.full((h, n * (w + 1) - 1, c), 0.85, np.float32)
    for ax, dim in zip(axes[0], dims, strict=True):
        strips, labels = [], []
        for label, images in rows_per_dim[dim]:
            strips += [
                _mosaic(images) if images is not None else blank,
                np.ones((2, blank.shape[1], c), np.float32),
            ]
            labels.append(label)
        mosaic = np.concatenate(strips[:-1])
        ax.imshow(mosaic[..., 0] if c == 1 else mosaic, cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
        ax.set_yticks([(h + 2) * i + h / 2 for i in range(len(labels))], labels, fontsize=8)
        ax.set_xticks([])
        ax.set_title(f"latent dimension {dim}", fontsize=10)
        for spine in ax.spines.values():
            spine.set_visible(False)
        ax.tick_params(left=False)
        if ax is not axes[0][0]:
            ax.set_yticklabels([])
    fig.tight_layout()
    return fig


def _family_row(study: Study, family: str, dim: int, key: str, count: int = 16):
    """(row label, the first `count` images of artifacts[key] or None) for the lowest ok seed."""
    found = study.artifacts(family, dim)
    if found is None or key not in found[1]:
        return f"{study.labels[family]} (no evaluated run)", None
    seed, arrays = found
    return f"{study.labels[family]} (seed {seed})", arrays[key][:count]


def _clipped(row):
    """Means of real-line families can leave [0, 1]; shown clipped to the pixel range."""
    label, images = row
    return label, None if images is None else np.clip(images, 0, 1)


def _mean_and_median(study: Study, family: str, dim: int, key: str) -> list:
    """The family's row of mean images, and below it a row of its median images where it has them (a family
    whose median is not its mean: the mean of a broad distribution can be a flat grey)."""
    rows = [_clipped(_family_row(study, family, dim, key))]
    found = study.artifacts(family, dim)
    if found is not None and f"{key}_median" in found[1]:
        rows[0] = (f"{rows[0][0]}: mean", rows[0][1])
        rows.append(_clipped((f"{study.labels[family]}: median", found[1][f"{key}_median"][:16])))
    return rows


def reconstructions(study: Study):
    """First row the data, then per family its mean image at the posterior mean (and its median image)."""
    rows = {}
    for dim in study.dims:
        family_rows = [row for f in study.families for row in _mean_and_median(study, f, dim, "recon")]
        data = next((found[1]["data"] for f in study.families if (found := study.artifacts(f, dim))), None)
        rows[dim] = [("data (test images)", data)] + family_rows
    return _image_rows(study, rows)


def samples(study: Study):
    """16 samples per family: the family's mean image at z ~ N(0, I) (and its median image)."""
    return _image_rows(
        study,
        {
            dim: [row for f in study.families for row in _mean_and_median(study, f, dim, "samples")]
            for dim in study.dims
        },
    )


def std_maps(study: Study):
    """Per-pixel standard deviation at the samples of figure 4, for families with a learned scale."""
    rows = {}
    for dim in study.dims:
        rows[dim] = []
        for family in study.families:
            label, std = _family_row(study, family, dim, "samples_std")
            if std is None:
                continue
            std = std.mean(axis=1, keepdims=True)  # [16, 1, H, W]: colour channels averaged
            top = float(np.quantile(std, 0.99)) or 1.0
            spread = f"std {top:.2g} everywhere" if np.ptp(std) <= 1e-6 * top else f"std up to {top:.2g}"
            rows[dim].append((f"{study.labels[family]}: {spread}", np.clip(std / top, 0, 1)))
    rows = {dim: r for dim, r in rows.items() if r}
    if not rows:
        raise NoData("no family in this study has a learned per-pixel scale (no samples_std)")
    return _image_rows(study, rows, cmap="magma")
