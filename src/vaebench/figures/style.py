"""What every figure shares: one colour, marker and line style per family, the legend below the axes, the
y-limit that leaves far-off families out, and NoData, the reason a figure has nothing to draw."""

from dataclasses import dataclass

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from vaebench import catalog
from vaebench.results import Study

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


def legend_below(fig, study: Study, families) -> None:
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


def off_scale(means: pd.Series) -> float | None:
    """An upper y-limit that leaves out families far above the rest (e.g. fixed-scale Gaussian at ~9
    bits/dim next to ~1.5), or None when every family fits on one readable scale."""
    by_family = means.groupby(level=0).max()
    if len(by_family) < 4:
        return None
    q1, q3 = by_family.quantile([0.25, 0.75])
    limit = q3 + 3 * max(q3 - q1, 0.05)
    return limit if (by_family > limit).any() else None


def reference_line(ax, name: str, level: float, x: float, dash) -> None:
    """A horizontal line at a reference's value (a model without a latent), named at its right end."""
    ax.axhline(level, color="0.35", linewidth=1, linestyle=dash, zorder=0)
    ax.annotate(
        name,
        (x, level),
        xycoords=("axes fraction", "data"),
        ha="right",
        va="bottom",
        fontsize=7,
        color="0.3",
        annotation_clip=True,
    )


def note_above_axis(ax, lines: list[str], fontsize: int) -> None:
    """Name, in a box in the panel's corner, the values that an axis limit leaves out of the panel."""
    ax.text(
        0.02,
        0.98,
        "above the axis:\n" + "\n".join(lines),
        transform=ax.transAxes,
        va="top",
        fontsize=fontsize,
        bbox={"facecolor": "white", "edgecolor": "0.7", "alpha": 0.9},
    )
