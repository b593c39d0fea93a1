"""What not to trust: the limits of one study's run, each line only where it applies.

Training that had not converged, settings chosen on short runs or at a grid's edge, fewer importance
samples than the protocol's, an estimate still rising at K, a subset of the test split, too few seeds,
another architecture, a small training set: each decided in `vaebench.analysis`, said here.
"""

import pandas as pd

from vaebench import analysis, stats
from vaebench.analysis import PAPER_K, SEED_ARCH
from vaebench.findings.finding import Finding
from vaebench.results import Study
from vaebench.words import fmt, label, seeds, setting

NAMED_RUNS = 4  # up to this many runs the epoch cap stopped are named; more are counted per family


def limit_epochs(study: Study) -> list[Finding]:
    ended = analysis.stops(study)
    if ended is not None:
        return limit_stops(study, ended)
    rising = analysis.still_rising(study)  # tables written before runs recorded why they stopped
    if rising.empty:
        return []
    epochs = ", ".join(map(str, sorted(set(rising["epochs"]))))
    text = (
        f"{len(rising)} of {len(study.ok)} ok runs still improved in their last epoch (of {epochs}): "
        "longer training would change these numbers."
    )
    return [Finding("limit_epochs", "Training had not converged:", text)]


def named_runs(study: Study, runs: pd.DataFrame) -> str:
    """The runs themselves while few (NAMED_RUNS), else how many per family."""
    if len(runs) <= NAMED_RUNS:
        return "; ".join(
            f"{label(study, r.family)} z = {r.latent_dim} seed {r.seed}" for r in runs.itertuples()
        )
    if len(runs) == len(study.ok):
        return "all of them"
    counts = runs.groupby("family").size()
    return ", ".join(f"{label(study, f)} {counts[f]}" for f in study.families if f in counts)


def limit_stops(study: Study, ended: analysis.Stops) -> list[Finding]:
    """The runs the epoch cap stopped before the rule judged them converged, and the drift the converged
    runs left, against the lead the verdict rests on."""
    parts = []
    if not ended.capped.empty:
        caps = ", ".join(map(str, sorted(set(ended.capped["epochs_completed"].astype(int)))))
        parts.append(
            f"{len(ended.capped)} of {len(study.ok)} ok runs stopped at the epoch cap ({caps}), not by the "
            f"rule: {named_runs(study, ended.capped)}."
        )
    if not ended.drift.empty:
        top, gap = ended.drift.iloc[0], analysis.lead(study)
        against = f", against a lead of {fmt(gap[1])}" if gap is not None else ""
        parts.append(
            f"Drift left at a converged run's stop: at most {fmt(top['drift_bpd'], 4)} bits/dim{against}."
        )
    if not parts:
        return []
    title = "Training had not converged:" if not ended.capped.empty else "Training converged:"
    return [Finding("limit_epochs", title, " ".join(parts))]


def limit_k(study: Study) -> list[Finding]:
    k = analysis.fewer_samples(study)
    if k is None:
        return []
    text = f"K = {k}, not {PAPER_K}: every bits/dim is too high, by more where the posterior fits worse."
    return [Finding("limit_k", "Few importance samples:", text)]


def limit_subset(study: Study) -> list[Finding]:
    scored, split = analysis.scored_images(study), analysis.split_size(study, "n_test")
    if scored is None or split is None or scored >= split:
        return []
    text = f"scored on the first {scored:,} of the {split:,} test images."
    return [Finding("limit_subset", "A subset of the test split:", text)]


def limit_seeds(study: Study) -> list[Finding]:
    n = study.n_seeds
    if n == 0 or n >= stats.MIN_SEEDS_T:
        return []
    if n > 1:
        text = f"{seeds(n)} per family and latent size: a new seed could still reorder close families."
        return [Finding("limit_seeds", "Two training runs each:", text)]
    how = (
        "the likelihoods' tests resample the test images only"
        if analysis.images_resampled(study) is not None
        else f"a difference counts only beyond {stats.NOISE_SE} test-set standard errors"
    )
    text = f"seed-to-seed variation is not measured: {how}."
    return [Finding("limit_seeds", "One training run each:", text)]


def limit_selection(study: Study) -> list[Finding]:
    """How the training settings were chosen: not at all, or on runs shorter than the study's, or at the edge
    of a grid; nothing when they were chosen on full-length runs inside their grids."""
    if not study.selection:
        lrs = sorted(set(analysis.ok_values(study, "lr")))
        if len(study.families) < 2 or not lrs:
            return []
        rates = ", ".join(f"{lr:g}" for lr in lrs)
        text = f"every family used the learning rate {rates} and the fixed scales as set."
        return [Finding("limit_selection", "Nothing was tuned:", text)]
    first = next(iter(study.selection.values()))
    epochs = sorted(set(analysis.ok_values(study, "epochs").astype(int)))
    edges = {f: edges for f, r in study.selection.items() if (edges := analysis.grid_edges(r))}
    short = bool(epochs) and first["epochs"] < max(epochs)
    parts = []
    if short:
        parts.append(
            f"settings chosen on runs capped at {first['epochs']} epochs (seed {first['seed']}, z = "
            f"{first['latent_dim']}), the study's at {max(epochs)}: a short horizon favours fast learners."
        )
    if edges:
        named = "; ".join(
            f"{label(study, f)} ({', '.join(setting(k, study.selection[f]['settings'][k]) for k in e)})"
            for f, e in edges.items()
        )
        parts.append(f"still at the edge of its grid after the extensions: {named}.")
    if not parts:
        return []
    title = "Settings chosen on short runs:" if short else "Settings at the edge of their grid:"
    return [Finding("limit_selection", title, " ".join(p[:1].upper() + p[1:] for p in parts))]


def limit_arch(study: Study) -> list[Finding]:
    other = analysis.other_archs(study)
    if not other:
        return []
    text = (
        f"the {', '.join(other)}, not the {SEED_ARCH} net of the seed post's companion script (the post "
        "names no architecture): families may rank differently with another decoder."
    )
    return [Finding("limit_arch", "Another architecture:", text)]


def limit_train_size(study: Study) -> list[Finding]:
    n = analysis.small_train(study)
    if n is None:
        return []
    dataset = ", ".join(sorted(set(study.metrics["dataset"].astype(str))))
    return [Finding("limit_train_size", "A small training set:", f"{n:,} training images ({dataset}).")]


def limits(study: Study) -> list[Finding]:
    """The "Limits of this run" box: each line only where it applies."""
    return (
        limit_epochs(study)
        + limit_selection(study)
        + limit_k(study)
        + limit_subset(study)
        + limit_seeds(study)
        + limit_arch(study)
        + limit_train_size(study)
    )
