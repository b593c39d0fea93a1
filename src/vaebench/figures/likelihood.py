"""The likelihood figures: bits/dim against the latent size, the learning curves, the pairwise tests."""

import math
import warnings

import matplotlib.pyplot as plt
import matplotlib.ticker
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
from vaebench.layout import HISTORY
from vaebench.results import BPD_LABEL, UNIFORM_BPD, Study
from vaebench.stats import ALPHA


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
        limit = off_scale(means)
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
            reference_line(ax, name, level, 1.0, dash)
        if limit is not None:
            above += [f"reference, {name}: {level:.2f}" for name, level in references if level > limit]
            kept = summary.loc[summary[f"{metric}_mean"] <= limit]
            low, high = (
                kept[f"{metric}_ci95_low"].fillna(kept[f"{metric}_mean"]).min(),
                kept[f"{metric}_ci95_high"].fillna(kept[f"{metric}_mean"]).max(),
            )
            ax.set_ylim(low - 0.08 * (high - low), high + 0.35 * (high - low))
            note_above_axis(ax, above, 8)
        ax.set_xscale("log", base=2)
        ax.set_xticks(study.dims, [str(d) for d in study.dims])
        ax.set_xlim(min(study.dims) / 1.4, max(study.dims) * 1.4)
        ax.minorticks_off()
        ax.set_xlabel("latent dimension")
        ax.set_title(BPD_LABEL[metric])
        ax.grid(alpha=0.3)
        ax.set_ylabel("bits/dim (lower is better)")
    legend_below(fig, study, [f for f in study.families if f in drawn])
    fig.tight_layout(rect=(0, 0.13, 1, 1))
    return fig


def learning_curves(study: Study):
    """Test ELBO per epoch, one panel per family, one line per run coloured by latent dimension."""
    history = study.history
    if history.empty:
        raise NoData(f"no run has a {HISTORY} yet")
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


def significance(study: Study, metric: str = "bpd_disc"):
    """The pairwise tests of tests.csv (Holm-corrected) per latent dimension: colour = log10(1/p_holm), signed
    so that blue means the row family has the lower (better) bits/dim; * marks p_holm < ALPHA."""
    tests = study.tests[study.tests["metric"] == metric]
    if not tests["p_holm"].notna().any():
        raise NoData(
            "no pair of families could be tested (one seed and no per-image values), so no difference "
            "can be called significant in this study"
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
        if not at["p_holm"].notna().any():
            ax.axis("off")
            ax.text(
                0.5,
                0.5,
                "not tested:\none seed and\nno per-image values",
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
            tested = np.isfinite(r["p_holm"])
            strength = min(-math.log10(max(r["p_holm"], 1e-300)), vmax) if tested else np.nan
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
    methods = sorted(set(tests["method"]) - {""})
    fig.suptitle(
        f"Pairwise tests on {BPD_LABEL[metric]}, Holm-corrected: {'; '.join(methods)}\n"
        f"Cells: row minus column in bits/dim; * p_holm < {ALPHA}; grey: not tested",
        fontsize=9,
    )
    return fig
