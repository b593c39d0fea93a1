"""The picture-quality figures: likelihood against the Fréchet distance of the samples, sharpness and the
classifier's accuracy on the reconstructions, and the reconstruction calibration."""

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from vaebench.figures.style import (
    NoData,
    family_styles,
    legend_below,
    note_above_axis,
    off_scale,
    reference_line,
)
from vaebench.results import BPD_LABEL, MEASURES, Study


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
    limit = off_scale(means)
    if limit is not None:
        kept = means[means <= limit]
        spread = kept.max() - kept.min()
        ax.set_ylim(kept.min() - 0.1 * spread, kept.max() + 0.45 * spread)
        above = [f"{study.labels[f]}: {v:.2f} (z = {d})" for (f, d), v in means.items() if v > limit]
        note_above_axis(ax, above, 7)
    for row in study.baseline_rows:
        if row["id"] != "uniform":
            reference_line(ax, row["label"], row["bpd_disc"], 0.99, (0, (4, 2)))
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
    legend_below(fig, study, drawn)
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
