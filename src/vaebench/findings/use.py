"""What to use: the answer right after the question, in a few short lines and one small table
(`leaders_table`), from the analysis of one study.

The lines name families and evidence levels only; the numbers are in the table (best likelihood and its
lead over the runner-up, the best-looking samples, per latent size).
"""

from dataclasses import dataclass

from vaebench import catalog
from vaebench.analysis import against_references, best_by, evidence, has_measure, worse_than_uniform
from vaebench.findings.finding import Finding, named, sentence, where
from vaebench.results import MEASURES, Study
from vaebench.words import label

PICTURES = ("fd_samples_mean", "fd_recon_mean", "sharpness_mean")  # the first a study has stands for "looks"


@dataclass(frozen=True)
class Leader:
    """The best family on `metric` at one latent size, its runner-up and how sure the lead is."""

    latent_dim: int
    metric: str
    best: str
    value: float
    runner_up: str | None
    lead: float
    words: str
    separated: bool
    runs_ahead: float = float("nan")  # of the run_pairs pairs of runs (best's against the runner-up's),
    run_pairs: float = float("nan")  # those with the best's run ahead
    margins: tuple[float, float] = (float("nan"), float("nan"))  # the smallest and largest lead of a run pair


def leader(study: Study, metric: str, dim: int) -> Leader | None:
    order = best_by(study, metric, dim)
    if not order:
        return None
    value = study.stat(order[0], dim, metric)["mean"]
    if len(order) == 1:
        return Leader(dim, metric, order[0], value, None, float("nan"), "the only family with a value", False)
    ev = evidence(study, metric, dim, order[0], order[1])
    sign = 1 if MEASURES[metric].lower_is_better else -1  # a lead is positive in the measure's direction
    margins = tuple(sorted((-sign * ev.gap_max, -sign * ev.gap_min)))
    return Leader(
        dim,
        metric,
        order[0],
        value,
        order[1],
        abs(ev.diff),
        ev.words,
        ev.separated,
        ev.runs_ahead,
        ev.run_pairs,
        margins,
    )


def picture_measure(study: Study) -> str | None:
    return next((m for m in PICTURES if has_measure(study, m)), None)


def leaders_table(study: Study) -> list[tuple[Leader | None, Leader | None]]:
    """Per latent size: the likelihood's leader and the pictures' leader (None where not measured)."""
    pictures = picture_measure(study)
    return [
        (leader(study, "bpd_disc", dim), leader(study, pictures, dim) if pictures else None)
        for dim in study.dims
    ]


def by_family(found: list[Leader]) -> dict[str, list[int]]:
    """The latent sizes each family leads at, in the order the families first lead."""
    led: dict[str, list[int]] = {}
    for lead in found:
        led.setdefault(lead.best, []).append(lead.latent_dim)
    return led


def sureness(found: list[Leader]) -> str:
    """How sure the leads are, in the evidence rule's words once."""
    if all(lead.separated for lead in found):
        return "its lead over the runner-up passes the evidence rule at each"
    if not any(lead.separated for lead in found):
        return "by the order of the means only: the evidence rule does not separate it from the runner-up"
    return "its lead passes the evidence rule at some latent sizes only (the table says which)"


def verdict_likelihood(study: Study) -> list[Finding]:
    found = [lead for lead, _ in leaders_table(study) if lead is not None]
    if not found:
        return [Finding("use_likelihood", "For likelihood:", "no ok run has a discretized bits/dim yet.")]
    led = by_family(found)
    named = "; ".join(f"{label(study, f)} {where(study, dims)}" for f, dims in led.items())
    return [Finding("use_likelihood", "For likelihood:", f"use {named}; {sureness(found)}.")]


def verdict_quality(study: Study) -> list[Finding]:
    """The best-looking family by the first picture measure the study has."""
    metric = picture_measure(study)
    if metric is None:
        return [
            Finding(
                "use_quality",
                "For pictures:",
                "not measured in these runs (no Fréchet distance or sharpness), so likelihood is all this "
                "page can rank by.",
            )
        ]
    found = [lead for _, lead in leaders_table(study) if lead is not None]
    led = by_family(found)
    what = "samples" if metric.startswith("fd_samples") else "reconstructions"
    named = "; ".join(f"{label(study, f)} {where(study, dims)}" for f, dims in led.items())
    likelihood = {lead.best for lead, _ in leaders_table(study) if lead is not None}
    other = " (not the likelihood's best)" if not set(led) <= likelihood else ""
    text = f"the best-looking {what}{other} are {named}; {sureness(found)}."
    return [Finding("use_quality", "For pictures:", text)]


def verdict_avoid(study: Study) -> list[Finding]:
    """What not to use: a loss that is no density (catalog `scored_as`), a density worse than uniform noise,
    families a per-pixel histogram without a latent beats; a sentence each, so labels with commas stay
    apart."""
    parts = []
    have = set(study.ok["family"])
    for entry in (e for e in catalog.CATALOG if e.scored_as and e.id in have):
        loss = entry.everyday_loss or label(study, entry.id)
        parts.append(f"{loss} as a likelihood (it is no density on [0, 1])")
    uniform = [f for f, at in worse_than_uniform(study).items() if at]
    if uniform:
        parts.append(f"{named(study, uniform)} as densities (worse than uniform noise somewhere)")
    histogram = study.baseline("histogram")
    if histogram is not None:
        beaten = {
            f
            for dim in study.dims
            for f, ev in against_references(study, dim, histogram).items()
            if ev.better("bpd_disc") < 0
        }
        beaten -= set(uniform)  # named already, for the graver reason
        if beaten:
            parts.append(f"{named(study, list(beaten))} (a per-pixel histogram without a latent beats them)")
    if not parts:
        return []
    return [Finding("use_avoid", "Avoid:", " ".join(sentence(part) for part in parts))]


def verdict(study: Study) -> list[Finding]:
    """The "What to use" lines: likelihood, pictures, what to avoid."""
    return verdict_likelihood(study) + verdict_quality(study) + verdict_avoid(study)
