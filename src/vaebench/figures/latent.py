"""The latent space: the test set's posterior means at latent dimension 2, coloured by class."""

import math

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns

from vaebench.figures.style import NoData, family_styles
from vaebench.results import Study


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
