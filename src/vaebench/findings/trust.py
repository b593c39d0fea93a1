"""What not to trust: the limits of one study's run, each line only where it applies.

Training that had not converged, settings chosen on short runs or at a grid's edge, fewer importance
samples than the protocol's, an estimate still rising at K, a subset of the test split, too few seeds,
another architecture, a small training set: each decided in `vaebench.analysis`, said here.
"""

import pandas as pd

from vaebench import analysis, stats
from vaebench.analysis import PAPER_K, RISE_SE, SEED_ARCH
from vaebench.findings.finding import Finding
from vaebench.results import Study
from vaebench.words import fmt, label, seeds, setting

NAMED_RUNS = 4  # up to this many runs with a still-rising estimate are named; more are summed up per family


def limit_epochs(study: Study) -> list[Finding]:
    ended = analysis.stops(study)
    if ended is not None:
        return limit_stops(study, ended)
    rising = analysis.still_rising(study)  # tables written before runs recorded why they stopped
    if rising.empty:
        return []
    top = rising.sort_values("share", ascending=False).iloc[0]
    epochs = ", ".join(map(str, sorted(set(rising["epochs"]))))
    runs, counts = study.ok.groupby("family").size(), rising.groupby("family").size()
    per_family = ", ".join(
        f"{label(study, family)} {counts[family]} of {runs[family]}"
        for family in study.families
        if family in counts
    )
    text = (
        f"the test ELBO of {len(rising)} of {len(study.ok)} ok runs still rose in the last epoch "
        f"(of {epochs}): that epoch added up to {100 * top['share']:.0f}% of a run's total gain "
        f"({label(study, top['family'])} z = {top['latent_dim']} seed {top['seed']}; median "
        f"{100 * rising['share'].median():.0f}%). Still rising, per family: {per_family}. Longer training "
        "would change these numbers, and not for every family alike."
    )
    return [Finding("limit_epochs", "Training had not converged:", text)]


def limit_stops(study: Study, ended: analysis.Stops) -> list[Finding]:
    """The runs the epoch cap stopped before the rule judged them converged, and the drift the converged
    runs left, against the lead the verdict rests on."""
    parts = []
    if not ended.capped.empty:
        counts, runs = ended.capped.groupby("family").size(), study.ok.groupby("family").size()
        per_family = ", ".join(
            f"{label(study, f)} {counts[f]} of {runs[f]}" for f in study.families if f in counts
        )
        caps = sorted(set(ended.capped["epochs_completed"].astype(int)))
        caps = ", ".join(map(str, caps)) + (" epoch" if caps == [1] else " epochs")
        parts.append(
            f"{len(ended.capped)} of {len(study.ok)} ok runs stopped at the epoch cap ({caps}) before "
            f"the stopping rule judged them converged: {per_family}. Longer training would change these "
            "numbers, and not for every family alike."
        )
    if not ended.drift.empty:
        top = ended.drift.iloc[0]
        text = (
            f"at their stop the converged runs still gained at most {fmt(top['drift_bpd'], 4)} bits/dim "
            f"over the rule's last window ({label(study, top['family'])} z = {top['latent_dim']} seed "
            f"{top['seed']})"
        )
        gap = analysis.lead(study)
        if gap is not None:
            text += f", against a lead of {fmt(gap[1], 3)} bits/dim for the best family (z = {gap[0]})"
        parts.append(text + ".")
    if not parts:
        return []
    title = "Training had not converged:" if not ended.capped.empty else "Training converged:"
    return [Finding("limit_epochs", title, " ".join(p[0].upper() + p[1:] for p in parts))]


def limit_k(study: Study) -> list[Finding]:
    k = analysis.fewer_samples(study)
    if k is None:
        return []
    text = (
        f"K = {k} importance samples per test image, not the protocol's {PAPER_K}: the "
        "estimate is a lower bound on the log-likelihood that tightens as K grows, so every bits/dim "
        "here is too high, by more for families whose posterior fits worse."
    )
    return [Finding("limit_k", "Few importance samples:", text)]


def limit_convergence(study: Study) -> list[Finding]:
    """Runs whose estimate still rose from K/4 to K by more than RISE_SE standard errors."""
    flagged = analysis.estimate_still_rising(study)
    if not flagged:
        return []
    n_runs = len({r.run_dir for r in flagged})
    if n_runs <= NAMED_RUNS:
        named = "; ".join(
            f"{label(study, r.family)} z = {r.latent_dim} seed {r.seed} "
            f"({'discretized' if r.kind == 'disc' else 'dequantized'}: "
            f"+{fmt(r.rise_bpd, 4)} bits/dim, {r.rise_nats / r.se_nats:.1f} standard errors)"
            for r in flagged
        )
    else:  # one clause per family: its flagged runs and the largest rise among them
        rows = pd.DataFrame(
            [(r.family, r.run_dir, r.rise_bpd, r.rise_nats / r.se_nats) for r in flagged],
            columns=["family", "run", "bpd", "se"],
        )
        order = {family: i for i, family in enumerate(study.families)}
        rows = rows.sort_values("family", key=lambda f: f.map(order), kind="stable")
        runs = study.ok.groupby("family").size()
        clauses = []
        for family, mine in rows.groupby("family", sort=False):
            top = mine.loc[mine["bpd"].idxmax()]
            clauses.append(
                f"{label(study, family)} {mine['run'].nunique()} of {runs[family]}, up to "
                f"+{fmt(top['bpd'], 4)} bits/dim ({top['se']:.1f} standard errors)"
            )
        named = "per family, " + "; ".join(clauses)
    text = (
        f"from K/4 to K samples the estimate still rose by more than {RISE_SE} standard errors in "
        f"{stats.count(n_runs, 'run')}: {named}. A larger K would lower these bits/dim further (see the "
        "convergence table)."
    )
    return [Finding("limit_convergence", "The likelihood estimate has not converged:", text)]


def limit_subset(study: Study) -> list[Finding]:
    scored, split = analysis.scored_images(study), analysis.split_size(study, "n_test")
    if scored is None or split is None or scored >= split:
        return []
    text = (
        f"scored on the first {scored:,} of the {split:,} test images: the standard errors "
        "shown are those of this subset."
    )
    return [Finding("limit_subset", "A subset of the test split:", text)]


def limit_seeds(study: Study) -> list[Finding]:
    n = study.n_seeds
    if n == 0 or n >= stats.MIN_SEEDS_T:
        return []
    if n > 1:
        text = (
            f"{seeds(n)} per family and latent size: the tests estimate the variation from one training run "
            "to the next from two runs, so a new seed could still reorder close families."
        )
        return [Finding("limit_seeds", "Two training runs each:", text)]
    if analysis.images_resampled(study) is not None:
        how = "the likelihoods' tests resample the test images only"
    else:
        how = f"a difference counts only beyond {stats.NOISE_SE} test-set standard errors"
    text = (
        f"{seeds(n)} per family and latent size: the variation from one training run to the next is not "
        f"measured, so {how}, and even then a new seed could reorder close families."
    )
    return [Finding("limit_seeds", "One training run each:", text)]


def limit_selection(study: Study) -> list[Finding]:
    """How the training settings were chosen: not at all, or on runs shorter than the study's, or at the edge
    of a grid; nothing when they were chosen on full-length runs inside their grids."""
    if not study.selection:
        lrs = sorted(set(analysis.ok_values(study, "lr")))
        if len(study.families) < 2 or not lrs:
            return []
        text = (
            f"every family trained with the learning rate {', '.join(f'{lr:g}' for lr in lrs)} and the fixed "
            "scales as set: a family that needs another learning rate or scale is at a disadvantage"
            + (
                " (only the epoch kept was chosen, on the validation split)."
                if analysis.validated(study)
                else "; with no validation split, the epoch scored is the last, not the best."
            )
        )
        return [Finding("limit_selection", "Nothing was tuned:", text)]
    first = next(iter(study.selection.values()))
    epochs = sorted(set(analysis.ok_values(study, "epochs").astype(int)))
    edges = {f: edges for f, r in study.selection.items() if (edges := analysis.grid_edges(r))}
    short = bool(epochs) and first["epochs"] < max(epochs)
    if not (short or edges):
        return []
    text = f"each family's settings were chosen on {first['epochs']}-epoch runs (seed {first['seed']}, " + (
        f"z = {first['latent_dim']}), shorter than the study's ({', '.join(map(str, epochs))} epochs): a "
        "short horizon favours what learns fast, larger learning rates among them."
        if short
        else f"z = {first['latent_dim']}), used at every latent size."
    )
    if edges:
        named = "; ".join(
            f"{label(study, f)} ({', '.join(setting(k, study.selection[f]['settings'][k]) for k in e)})"
            for f, e in edges.items()
        )
        text += f" At the edge of its grid, so the best value may lie beyond it: {named}."
    title = "Settings chosen on short runs:" if short else "Settings at the edge of their grid:"
    return [Finding("limit_selection", title, text)]


def limit_arch(study: Study) -> list[Finding]:
    other = analysis.other_archs(study)
    if not other:
        return []
    text = (
        f"the {', '.join(other)} network, not the seed post's {SEED_ARCH} decoder: families can rank "
        "differently with another decoder."
    )
    return [Finding("limit_arch", "Another architecture:", text)]


def limit_train_size(study: Study) -> list[Finding]:
    n = analysis.small_train(study)
    if n is None:
        return []
    dataset = ", ".join(sorted(set(study.metrics["dataset"].astype(str))))
    text = (
        f"{n:,} training images ({dataset}): models this size can overfit them, and a family that needs "
        "more data to fit its scale is at a disadvantage."
    )
    return [Finding("limit_train_size", "A small training set:", text)]


def limits(study: Study) -> list[Finding]:
    """The "Limits of this run" box: each line only where it applies."""
    return (
        limit_epochs(study)
        + limit_selection(study)
        + limit_k(study)
        + limit_convergence(study)
        + limit_subset(study)
        + limit_seeds(study)
        + limit_arch(study)
        + limit_train_size(study)
    )
