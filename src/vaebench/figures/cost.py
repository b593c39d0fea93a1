"""What the study cost: training and evaluation wall time per family, and which runs shared the cores."""

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from vaebench.figures.style import NoData
from vaebench.results import Study


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
