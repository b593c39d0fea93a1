"""`vaebench figures`: the comparison figures (PNG and SVG) from a results directory alone.

Reads metrics.csv / summary.csv / tests.csv (from `vaebench aggregate`) and each run's
history.csv and artifacts.npz, through `vaebench.results.Study`. Every figure is always written:
where a study has nothing to show (no latent dimension 2, no family with a learned scale, too
few seeds for tests) the file says why, so the Snakemake report never meets a missing file. One
family order, colour, marker and line style (`family_styles`) is shared by every figure; image
grids take the lowest seed with an ok run. The figures' names and order are `captions.FIGURES`
(the Snakefile reads them too), their captions workflow/report/NAME.rst.
"""

import argparse
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - the backend must be chosen first
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from vaebench import catalog  # noqa: E402
from vaebench.captions import FIGURES  # noqa: E402
from vaebench.results import BPD_LABEL, MEASURES, UNIFORM_BPD, Study  # noqa: E402
from vaebench.stats import ALPHA, MIN_PAIRS_T, count  # noqa: E402
from vaebench.utils import atomic_write  # noqa: E402

DPI = 110
SPARE_MARKERS = "*8H+x"  # for families the catalog does not know


@dataclass(frozen=True)
class Style:
    color: str
    marker: str
    linestyle: str


def family_styles(families) -> dict[str, Style]:
    """The one colour / marker / line style per family used by every figure: the catalog's (stable across
    studies), and spare ones for families it does not know."""
    extra = sorted(set(families) - set(catalog.FAMILY_IDS))
    spare = sns.color_palette("tab20", 20).as_hex()
    styles = {}
    for family in families:
        if family in catalog.BY_ID:
            entry = catalog.BY_ID[family]
            styles[family] = Style(entry.color, entry.marker, entry.linestyle)
        else:
            i = extra.index(family)
            styles[family] = Style(spare[i % len(spare)], SPARE_MARKERS[i % len(SPARE_MARKERS)], "-")
    return styles


class NoData(Exception):
    """A figure has nothing to draw in this study; the message says why."""


def _legend_below(fig, study: Study, families) -> None:
    styles = family_styles(study.families)
    handles = [
        plt.Line2D(
            [],
            [],
            color=styles[f].color,
            marker=styles[f].marker,
            linestyle=styles[f].linestyle,
            label=study.labels[f],
        )
        for f in families
    ]
    fig.legend(
        handles=handles,
        loc="lower center",
        ncol=min(4, len(handles)),
        frameon=False,
        bbox_to_anchor=(0.5, 0.0),
        fontsize=9,
    )


def _off_scale(means: pd.Series) -> float | None:
    """An upper y-limit that leaves out families far above the rest (e.g. fixed-scale Gaussian at ~9
    bits/dim next to ~1.5), or None when every family fits on one readable scale."""
    by_family = means.groupby(level=0).max()
    if len(by_family) < 4:
        return None
    q1, q3 = by_family.quantile([0.25, 0.75])
    limit = q3 + 3 * max(q3 - q1, 0.05)
    return limit if (by_family > limit).any() else None


def bpd_vs_latent(study: Study):
    """bits/dim (discretized and dequantized) against latent dimension, 95% CI across seeds."""
    summary = study.summary[study.summary["bpd_disc_n"].fillna(0) + study.summary["bpd_deq_n"].fillna(0) > 0]
    if summary.empty:
        raise NoData("no ok run has a bits/dim value yet")
    fig, axes = plt.subplots(1, 2, figsize=(11, 5.2))  # own y-scales: the two columns can differ by bits
    styles = family_styles(study.families)
    dodge = {f: 2 ** (0.025 * (i - (len(study.families) - 1) / 2)) for i, f in enumerate(study.families)}
    drawn = []
    for ax, metric in zip(axes, ("bpd_disc", "bpd_deq"), strict=True):
        means = summary.set_index(["family", "latent_dim"])[f"{metric}_mean"].dropna()
        limit = _off_scale(means)
        above = []
        for family in study.families:
            rows = summary[(summary["family"] == family) & summary[f"{metric}_mean"].notna()]
            rows = rows.sort_values("latent_dim")
            if rows.empty:
                continue
            style = styles[family]
            half = (rows[f"{metric}_ci95_high"] - rows[f"{metric}_mean"]).fillna(0)
            ax.errorbar(
                rows["latent_dim"] * dodge[family],
                rows[f"{metric}_mean"],
                yerr=half,
                color=style.color,
                marker=style.marker,
                linestyle=style.linestyle,
                capsize=3,
                markersize=5,
                linewidth=1.5,
            )
            drawn.append(family)
            if limit is not None:
                above += [
                    f"{study.labels[family]}: {value:.2f} (z = {dim})"
                    for dim, value in zip(rows["latent_dim"], rows[f"{metric}_mean"], strict=True)
                    if value > limit
                ]
        references = [(row["label"], row[metric]) for row in study.baseline_rows if row["id"] != "uniform"]
        if metric == "bpd_deq" or not study.baseline_rows:  # the uniform density: 8 bits/dim in this column
            references.append((f"uniform density ({UNIFORM_BPD:g})", UNIFORM_BPD))
        dashes = ((0, (4, 2)), (0, (1, 2)), (0, (6, 2, 1, 2)))
        for (name, level), dash in zip(references, dashes, strict=False):
            ax.axhline(level, color="0.35", linewidth=1, linestyle=dash, zorder=0)
            ax.annotate(
                name,
                (1.0, level),
                xycoords=("axes fraction", "data"),
                ha="right",
                va="bottom",
                fontsize=7,
                color="0.3",
                annotation_clip=True,
            )
        if limit is not None:
            above += [f"reference, {name}: {level:.2f}" for name, level in references if level > limit]
            kept = summary.loc[summary[f"{metric}_mean"] <= limit]
            low, high = (
                kept[f"{metric}_ci95_low"].fillna(kept[f"{metric}_mean"]).min(),
                kept[f"{metric}_ci95_high"].fillna(kept[f"{metric}_mean"]).max(),
            )
            ax.set_ylim(low - 0.08 * (high - low), high + 0.35 * (high - low))
            ax.text(
                0.02,
                0.98,
                "above the axis:\n" + "\n".join(above),
                transform=ax.transAxes,
                va="top",
                fontsize=8,
                bbox={"facecolor": "white", "edgecolor": "0.7", "alpha": 0.9},
            )
        ax.set_xscale("log", base=2)
        ax.set_xticks(study.dims, [str(d) for d in study.dims])
        ax.set_xlim(min(study.dims) / 1.4, max(study.dims) * 1.4)
        ax.minorticks_off()
        ax.set_xlabel("latent dimension")
        ax.set_title(BPD_LABEL[metric])
        ax.grid(alpha=0.3)
        ax.set_ylabel("bits/dim (lower is better)")
    _legend_below(fig, study, [f for f in study.families if f in drawn])
    fig.tight_layout(rect=(0, 0.13, 1, 1))
    return fig


def learning_curves(study: Study):
    """Test ELBO per epoch, one panel per family, one line per run coloured by latent dimension."""
    history = study.history
    if history.empty:
        raise NoData("no run has a history.csv yet")
    families = [f for f in study.families if (history["family"] == f).any()]
    ncols = min(4, len(families))
    nrows = math.ceil(len(families) / ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(3.2 * ncols, 2.5 * nrows + 0.6), squeeze=False, sharex=True
    )
    colors = dict(zip(study.dims, sns.color_palette("viridis", len(study.dims)), strict=True))
    styles = family_styles(study.families)
    last_epoch = history["epoch"].max()
    for ax, family in zip(axes.flat, families, strict=False):  # spare axes are hidden
        runs = history[history["family"] == family]
        for (dim, _seed), run in runs.groupby(["latent_dim", "seed"]):
            diverged = run["status"].iloc[0] == "diverged"
            ax.plot(
                run["epoch"],
                run["test_elbo_nats"],
                color=colors[dim],
                linewidth=1.2,
                linestyle=":" if diverged else "-",
                alpha=0.85,
                marker="o" if len(run) < 6 else None,
                markersize=3,
            )
            if diverged:
                ax.plot(run["epoch"].iloc[-1], run["test_elbo_nats"].iloc[-1], "x", color="red", markersize=7)
        later = runs[runs["epoch"] >= 2] if runs["epoch"].max() >= 4 else runs
        low, high = later["test_elbo_nats"].min(), later["test_elbo_nats"].max()
        if np.isfinite([low, high]).all():
            pad = 0.08 * max(high - low, 1.0)
            ax.set_ylim(low - pad, high + pad)
        ax.set_title(study.labels[family], color=styles[family].color, fontsize=10)
        ax.set_xlim(0.5, last_epoch + 0.5)
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True, min_n_ticks=1))
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(families) :]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel("test ELBO, nats/image\n(higher is better)", fontsize=8)
    for ax in axes[-1]:
        ax.set_xlabel("epoch")
    handles = [plt.Line2D([], [], color=colors[d], label=f"z = {d}") for d in study.dims]
    handles.append(
        plt.Line2D(
            [],
            [],
            color="0.3",
            linestyle=":",
            marker="x",
            markeredgecolor="red",
            label="diverged run (x: last finite epoch)",
        )
    )
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False, fontsize=9)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return fig


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
        raise NoData("no ok run has artifacts.npz yet")
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


def _errorbar_points(ax, study: Study, x_metric: str, y_metric: str) -> list[str]:
    """One point per family and latent dimension (marker size grows with z, the family's points joined),
    with 95% intervals across seeds as error bars where there are two seeds or more; the families drawn."""
    styles, drawn = family_styles(study.families), []
    sizes = dict(zip(study.dims, np.linspace(4, 9, len(study.dims)), strict=True))
    for family in study.families:
        xs, ys = [], []
        for dim in study.dims:
            x, y = study.stat(family, dim, x_metric), study.stat(family, dim, y_metric)
            if not (np.isfinite(x["mean"]) and np.isfinite(y["mean"])):
                continue
            half = [np.nan_to_num(s["high"] - s["mean"]) for s in (x, y)]
            ax.errorbar(
                x["mean"],
                y["mean"],
                xerr=half[0] or None,
                yerr=half[1] or None,
                color=styles[family].color,
                marker=styles[family].marker,
                markersize=sizes[dim],
                capsize=2,
                linewidth=1,
            )
            xs.append(x["mean"])
            ys.append(y["mean"])
        if xs:
            ax.plot(
                xs,
                ys,
                color=styles[family].color,
                linewidth=0.8,
                alpha=0.6,
                linestyle=styles[family].linestyle,
            )
            drawn.append(family)
    return drawn


def quality_vs_likelihood(study: Study):
    """Discretized bits/dim against the Fréchet distance of the samples, one point per family and latent
    size; reference rows as lines: the baselines (horizontal), the test images' own distances (vertical)."""
    metric = "fd_samples_mean"
    if metric not in study.ok.columns or not pd.to_numeric(study.ok[metric], errors="coerce").notna().any():
        raise NoData(
            "no run has a Fréchet distance of its samples (fd_samples_mean): picture quality was not measured"
        )
    fig, ax = plt.subplots(figsize=(8.5, 6))
    drawn = _errorbar_points(ax, study, metric, "bpd_disc")
    means = study.summary.set_index(["family", "latent_dim"])["bpd_disc_mean"].dropna()
    limit = _off_scale(means)
    if limit is not None:
        kept = means[means <= limit]
        spread = kept.max() - kept.min()
        ax.set_ylim(kept.min() - 0.1 * spread, kept.max() + 0.45 * spread)
        above = [f"{study.labels[f]}: {v:.2f} (z = {d})" for (f, d), v in means.items() if v > limit]
        ax.text(
            0.02,
            0.98,
            "above the axis:\n" + "\n".join(above),
            transform=ax.transAxes,
            va="top",
            fontsize=7,
            bbox={"facecolor": "white", "edgecolor": "0.7", "alpha": 0.9},
        )
    for row in study.baseline_rows:
        if row["id"] != "uniform":
            ax.axhline(row["bpd_disc"], color="0.35", linewidth=1, linestyle=(0, (4, 2)), zorder=0)
            ax.annotate(
                row["label"],
                (0.99, row["bpd_disc"]),
                xycoords=("axes fraction", "data"),
                ha="right",
                va="bottom",
                fontsize=7,
                color="0.3",
                annotation_clip=True,
            )
    refs = study.quality or {}
    for key, name in (
        ("fd_train_vs_test", "training vs test images"),
        ("fd_blurred", "blurred test images"),
        ("fd_noise", "noise"),
    ):
        if isinstance(refs.get(key), (int, float)) and refs[key] > 0:
            ax.axvline(refs[key], color="0.5", linewidth=1, linestyle=(0, (1, 2)), zorder=0)
            ax.annotate(
                name,
                (refs[key], 0.01),
                xycoords=("data", "axes fraction"),
                rotation=90,
                ha="right",
                va="bottom",
                fontsize=7,
                color="0.3",
            )
    ax.set_xscale("log")
    ax.set_xlabel(f"{MEASURES[metric].name}, classifier features (lower is better)")
    ax.set_ylabel(BPD_LABEL["bpd_disc"])
    ax.grid(alpha=0.3)
    _legend_below(fig, study, drawn)
    size = ", ".join(f"z = {d}" for d in study.dims)
    fig.text(
        0.99, 0.99, f"marker size grows with the latent dimension ({size})", ha="right", va="top", fontsize=7
    )
    fig.tight_layout(rect=(0, 0.13, 1, 0.97))
    return fig


def picture_quality(study: Study):
    """Per family: the sharpness of its reconstructions and the classifier's accuracy on them, mean image
    (filled) and median image (hollow), with the test images' own values as reference lines."""
    panels = [
        (m, f"{m.removesuffix('_mean')}_median")
        for m in ("sharpness_mean", "recon_class_acc_mean")
        if m in study.ok.columns and pd.to_numeric(study.ok[m], errors="coerce").notna().any()
    ]
    if not panels:
        raise NoData(
            "no run has a sharpness or a classifier accuracy (sharpness_mean, "
            "recon_class_acc_mean): picture quality was not measured"
        )
    families = [
        f
        for f in study.families
        if any(np.isfinite(study.stat(f, d, panels[0][0])["mean"]) for d in study.dims)
    ]
    fig, axes = plt.subplots(
        1, len(panels), figsize=(5 * len(panels) + 1.5, 0.3 * len(families) + 1.6), squeeze=False, sharey=True
    )
    colors = dict(zip(study.dims, sns.color_palette("crest", len(study.dims)), strict=True))
    refs = study.quality or {}
    y = np.arange(len(families))
    offsets = dict(zip(study.dims, np.linspace(-0.2, 0.2, len(study.dims)), strict=True))
    for ax, (mean_metric, median_metric) in zip(axes[0], panels, strict=True):
        for dim in study.dims:
            for metric, fill in ((mean_metric, True), (median_metric, False)):
                stats_ = [study.stat(f, dim, metric) for f in families]
                x = np.array([s["mean"] for s in stats_], float)
                half = np.array([np.nan_to_num(s["high"] - s["mean"]) for s in stats_], float)
                ax.errorbar(
                    x,
                    y + offsets[dim],
                    xerr=half if half.any() else None,
                    linestyle="",
                    marker="o",
                    color=colors[dim],
                    markerfacecolor=colors[dim] if fill else "white",
                    capsize=2,
                    label=f"z = {dim}, {'mean' if fill else 'median'} image",
                )
        references = (
            {"data (1.0)": 1.0, "blurred test images": refs.get("sharpness_blurred")}
            if mean_metric.startswith("sharpness")
            else {"test images": refs.get("test_accuracy")}
        )
        for name, level in references.items():
            if isinstance(level, (int, float)):
                ax.axvline(level, color="0.4", linewidth=1, linestyle=(0, (4, 2)), zorder=0)
                ax.annotate(
                    name,
                    (level, 1.0),
                    xycoords=("data", "axes fraction"),
                    rotation=90,
                    ha="right",
                    va="top",
                    fontsize=7,
                    color="0.3",
                )
        better = (
            "higher is sharper; the test images are 1.0" if "sharp" in mean_metric else "higher is better"
        )
        ax.set_xlabel(f"{MEASURES[mean_metric].name.removesuffix(' (mean image)')}\n({better})", fontsize=8)
        ax.grid(axis="x", alpha=0.3)
    axes[0][0].set_yticks(y, [study.labels[f] for f in families], fontsize=8)
    axes[0][0].invert_yaxis()
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(4, len(labels)), frameon=False, fontsize=8)
    fig.tight_layout(rect=(0, 0.6 / fig.get_figheight(), 1, 1))
    return fig


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


def latent_scatter(study: Study):
    """Latent dimension 2: test-set posterior means per family, coloured by class."""
    found = {f: study.artifacts(f, 2) for f in study.families}
    found = {f: a for f, a in found.items() if a is not None and "latent_mu" in a[1]}
    if not found:
        raise NoData("no ok run with latent dimension 2 (the latent scatter needs z = 2)")
    ncols = min(4, len(found))
    nrows = math.ceil(len(found) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.0 * ncols, 3.0 * nrows + 0.5), squeeze=False)
    colors = np.array(sns.color_palette("tab10", 10))
    styles = family_styles(study.families)
    knn = study.ok[study.ok["latent_dim"] == 2].set_index(["family", "seed"]).get("knn_acc")
    for ax, (family, (seed, arrays)) in zip(axes.flat, found.items(), strict=False):
        mu, labels = arrays["latent_mu"], arrays["latent_labels"]
        low, high = np.quantile(mu, 0.005, axis=0), np.quantile(mu, 0.995, axis=0)  # this panel's own scale
        pad = 0.05 * np.maximum(high - low, 1e-6)
        ax.tick_params(labelsize=7)
        ax.scatter(mu[:, 0], mu[:, 1], c=colors[labels % 10], s=2, alpha=0.6, linewidths=0, rasterized=True)
        acc = knn.get((family, seed)) if knn is not None else None
        note = f", kNN acc {acc:.2f}" if acc is not None and np.isfinite(acc) else ""
        ax.set_title(f"{study.labels[family]}\n(seed {seed}{note})", fontsize=9, color=styles[family].color)
        ax.set_xlim(low[0] - pad[0], high[0] + pad[0])
        ax.set_ylim(low[1] - pad[1], high[1] + pad[1])
    for ax in axes.flat[len(found) :]:
        ax.set_visible(False)
    handles = [plt.Line2D([], [], marker="o", linestyle="", color=colors[k], label=str(k)) for k in range(10)]
    fig.legend(
        handles=handles,
        loc="lower center",
        ncol=10,
        frameon=False,
        fontsize=8,
        handletextpad=0.1,
        title="class (test label)",
        title_fontsize=8,
    )
    fig.tight_layout(rect=(0, 0.5 / fig.get_figheight(), 1, 1))
    return fig


def calibration(study: Study):
    """Reconstruction calibration: coverage of the central 90% interval of p(x | z) at the posterior mean
    (bars) and PIT histograms (summed over ok seeds)."""
    cov = study.ok.dropna(subset=["coverage90"]) if "coverage90" in study.ok.columns else pd.DataFrame()
    if cov.empty:
        raise NoData("no run recorded coverage90: no reconstruction calibration to show")
    families = [f for f in study.families if (cov["family"] == f).any()]
    dim = max(cov["latent_dim"])
    pits = {}
    for family in families:
        runs = study.ok[(study.ok["family"] == family) & (study.ok["latent_dim"] == dim)]
        for _, run in runs.iterrows():
            arrays = study.npz(run["run_dir"]) or {}
            if "pit_counts" in arrays:
                counts, edges = pits.get(family, (0, arrays["pit_edges"]))
                pits[family] = (counts + arrays["pit_counts"], edges)
    ncols = min(3, max(len(pits), 1))
    nrows = max(math.ceil(len(pits) / ncols), 1)
    fig = plt.figure(figsize=(5.5 + 2.4 * ncols, max(4.2, 2.0 * nrows + 0.8)))
    grid = fig.add_gridspec(nrows, ncols + 2, width_ratios=[1.2, 0.25] + [1] * ncols)
    ax = fig.add_subplot(grid[:, 0])
    cov = cov.assign(label=cov["family"].map(study.labels), z=cov["latent_dim"].map(lambda d: f"z = {d}"))
    sns.barplot(
        data=cov,
        y="label",
        x="coverage90",
        hue="z",
        order=[study.labels[f] for f in families],
        errorbar=("pi", 100),
        palette="crest",
        ax=ax,
    )
    ax.axvline(0.9, color="red", linestyle="--", linewidth=1, label="nominal 0.90")
    ax.set_xlim(max(0.0, min(0.8, cov["coverage90"].min() - 0.05)), 1.0)
    ax.set_xlabel(
        "reconstruction calibration: fraction of test\nsub-pixels inside the central 90% "
        "interval of\np(x | z) at the posterior mean (0.90 is ideal)"
    )
    ax.set_ylabel("")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(0, -0.18), ncol=2, frameon=False)
    styles = family_styles(study.families)
    for i, (family, (counts, edges)) in enumerate(pits.items()):
        pax = fig.add_subplot(grid[i // ncols, 2 + i % ncols])
        density = counts / counts.sum() / np.diff(edges)
        pax.bar(
            edges[:-1],
            density,
            width=np.diff(edges),
            align="edge",
            color=styles[family].color,
            edgecolor="white",
            linewidth=0.5,
        )
        pax.axhline(1.0, color="red", linestyle="--", linewidth=1)
        pax.set_title(f"{study.labels[family]}\nreconstruction PIT, z = {dim}", fontsize=8)
        pax.set_xlim(0, 1)
        pax.set_yticks([0, 1])
    fig.tight_layout()
    return fig


def significance(study: Study, metric: str = "bpd_disc"):
    """Pairwise paired t-tests (Holm-corrected) per latent dimension: colour = log10(1/p_holm), signed so
    that blue means the row family has the lower (better) bits/dim; * marks p_holm < ALPHA."""
    tests = study.tests[study.tests["metric"] == metric]
    if not tests["t_p_holm"].notna().any():
        most = int(tests["n_pairs"].max()) if not tests.empty else 0
        raise NoData(
            f"at most {count(most, 'paired seed')} per pair of families: the tests need "
            f"{MIN_PAIRS_T} seeds, so no difference can be called significant in this study"
        )
    dims = sorted(int(d) for d in tests["latent_dim"].unique())
    side = 0.5 * len(study.families) + 1.6
    fig, axes = plt.subplots(
        1, len(dims), figsize=(side * len(dims) + 1.5, side + 0.6), squeeze=False, layout="constrained"
    )
    vmax = 4.0
    for ax, dim in zip(axes[0], dims, strict=True):
        at = tests[tests["latent_dim"] == dim]
        ax.set_title(f"latent dimension {dim}", fontsize=10)
        if not at["t_p_holm"].notna().any():
            ax.axis("off")
            ax.text(
                0.5,
                0.5,
                f"not tested:\nat most {count(int(at['n_pairs'].max()), 'paired seed')},\n"
                f"the t-test needs {MIN_PAIRS_T}",
                ha="center",
                va="center",
                transform=ax.transAxes,
            )
            continue
        families = [f for f in study.families if f in set(at["family_a"]) | set(at["family_b"])]
        labels = [study.labels[f] for f in families]
        value = pd.DataFrame(np.nan, index=labels, columns=labels)
        annot = pd.DataFrame("", index=labels, columns=labels)
        for _, r in at.iterrows():
            a, b = study.labels[r["family_a"]], study.labels[r["family_b"]]
            tested = np.isfinite(r["t_p_holm"])
            strength = min(-math.log10(max(r["t_p_holm"], 1e-300)), vmax) if tested else np.nan
            for row, col, diff in ((a, b, r["diff_mean"]), (b, a, -r["diff_mean"])):
                value.loc[row, col] = -np.sign(diff) * strength
                annot.loc[row, col] = f"{diff:+.2f}{'*' if r['significant'] else ''}" if tested else ""
        with warnings.catch_warnings():  # seaborn's own use of Colormap.set_bad
            warnings.simplefilter("ignore", PendingDeprecationWarning)
            sns.heatmap(
                value,
                annot=annot,
                fmt="",
                cmap="RdBu",
                vmin=-vmax,
                vmax=vmax,
                center=0,
                ax=ax,
                square=True,
                cbar=False,
                annot_kws={"fontsize": 7},
                linewidths=0.5,
                linecolor="white",
            )
        ax.set_facecolor("0.88")
        ax.tick_params(labelsize=8, length=0)
    mappable = plt.cm.ScalarMappable(plt.Normalize(-vmax, vmax), "RdBu")
    bar = fig.colorbar(mappable, ax=list(axes[0]), shrink=0.6, pad=0.02)
    bar.set_label("log10(1/p_holm), + when the row is better", fontsize=8)
    fig.suptitle(
        f"Paired t-tests on {BPD_LABEL[metric]}, Holm-corrected. Cells: row minus column in "
        f"bits/dim; * p_holm < {ALPHA}; grey: not tested",
        fontsize=9,
    )
    return fig


def overlapping(runs: pd.DataFrame) -> int:
    """How many runs' training overlapped another's in time (started_at to finished_at): jobs that shared
    the machine's cores, whose seconds are longer than a job alone would take."""
    if not {"started_at", "finished_at"} <= set(runs.columns):
        return 0
    spans = runs[["started_at", "finished_at"]].apply(pd.to_datetime, errors="coerce", utc=True).dropna()
    spans = spans.sort_values("started_at")
    shared, latest_end = set(), None
    for i, (start, end) in zip(spans.index, spans.itertuples(index=False), strict=True):
        if latest_end is not None and start < latest_end[0]:
            shared |= {i, latest_end[1]}
        if latest_end is None or end > latest_end[0]:
            latest_end = (end, i)
    return len(shared)


def cost(study: Study):
    """Training and evaluation wall time per family (bars: mean over ok seeds; whiskers, with two seeds or
    more: fastest to slowest)."""
    ok = study.ok.assign(
        label=study.ok["family"].map(study.labels), z=study.ok["latent_dim"].map(lambda d: f"z = {d}")
    )
    if ok.empty:
        raise NoData("no ok run yet")
    order = [study.labels[f] for f in study.families if (ok["family"] == f).any()]
    whiskers = ("pi", 100) if study.n_seeds > 1 else None
    fig, axes = plt.subplots(1, 2, figsize=(10, 0.13 * len(order) * len(study.dims) + 1.2), sharey=True)
    for ax, column, title in zip(
        axes, ("train_seconds", "eval_seconds"), ("training", "evaluation"), strict=True
    ):
        if column in ok.columns and ok[column].notna().any():
            sns.barplot(
                data=ok,
                y="label",
                x=column,
                hue="z",
                order=order,
                errorbar=whiskers,
                palette="crest",
                ax=ax,
                legend=ax is axes[0],
                width=0.85,
            )
        ax.set_xlabel(f"{title} wall time, seconds per run (lower is better)", fontsize=8)
        ax.set_ylabel("")
        ax.tick_params(labelsize=7)
        ax.grid(axis="x", alpha=0.3)
    devices = ", ".join(sorted(set(ok.get("device", pd.Series(dtype=str)).dropna().astype(str)))) or "unknown"
    shared = overlapping(ok)
    notes = [
        f"device: {devices}",
        "whiskers: fastest to slowest seed" if whiskers else "one seed: no whiskers",
    ]
    if shared:
        notes.append(f"{shared} of {len(ok)} runs trained alongside others (parallel jobs shared the cores)")
    fig.suptitle("; ".join(notes), fontsize=8)
    if axes[0].get_legend() is not None:
        sns.move_legend(
            axes[0],
            "lower center",
            bbox_to_anchor=(1.05, 1.0),
            ncol=len(study.dims),
            title=None,
            frameon=False,
            fontsize=8,
        )
    fig.tight_layout()
    return fig


DRAW = {  # name -> draw function; the names and their order are captions.FIGURES
    "bpd_vs_latent": bpd_vs_latent,
    "learning_curves": learning_curves,
    "reconstructions": reconstructions,
    "samples": samples,
    "quality_vs_likelihood": quality_vs_likelihood,
    "picture_quality": picture_quality,
    "latent_scatter": latent_scatter,
    "std_maps": std_maps,
    "calibration": calibration,
    "significance": significance,
    "cost": cost,
}
if set(DRAW) != set(FIGURES):
    raise ImportError(
        f"figures.DRAW and captions.FIGURES disagree: draw functions without a name "
        f"{sorted(set(DRAW) - set(FIGURES))}, names without a draw function "
        f"{sorted(set(FIGURES) - set(DRAW))}"
    )


def placeholder(name: str, reason: str):
    fig, ax = plt.subplots(figsize=(7, 1.6))
    ax.axis("off")
    ax.text(0.5, 0.5, f"{name}: not drawn\n{reason}", ha="center", va="center", wrap=True, fontsize=10)
    return fig


def draw_all(study: Study, out_dir: Path) -> dict[str, str]:
    """Write every figure as NAME.png and NAME.svg; return {name: reason} for those drawn as placeholders."""
    out_dir.mkdir(parents=True, exist_ok=True)
    skipped = {}
    # svg.hashsalt: the SVGs' element ids are hashes of their content, not random: SVGs repeat byte for byte
    rc = {"svg.fonttype": "none", "svg.hashsalt": "vaebench", "figure.dpi": DPI}
    with sns.axes_style("ticks"), plt.rc_context(rc):
        for name in FIGURES:
            try:
                fig = DRAW[name](study)
            except NoData as reason:
                skipped[name] = str(reason)
                fig = placeholder(name, str(reason))
            for ext in ("png", "svg"):
                atomic_write(
                    out_dir / f"{name}.{ext}",
                    lambda tmp, ext=ext, fig=fig: fig.savefig(
                        tmp, format=ext, dpi=DPI, bbox_inches="tight", metadata=_metadata(ext)
                    ),
                )
            plt.close(fig)
    return skipped


def _metadata(ext: str) -> dict:
    """No creation dates: the same results give byte-identical figures."""
    return {"Date": None} if ext == "svg" else {"Software": None}


def run(args: argparse.Namespace) -> int:
    out_dir = args.out_dir or args.results / "figures"
    skipped = draw_all(Study.load(args.results, args.manifest, args.quality), out_dir)
    for name, reason in skipped.items():
        print(f"{name}: not drawn ({reason})")
    print(f"{len(FIGURES)} figures (PNG and SVG) -> {out_dir}")
    return 0
