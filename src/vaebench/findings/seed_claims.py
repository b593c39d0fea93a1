"""The seed post's claims, each a testable statement with what stands for its words, judged by the one
evidence rule (`analysis.evidence`) corrected across the comparisons the claim reads (`analysis.compare`).

"BCE" is the family trained with binary cross-entropy and "squared error" the literal summed squared error
(a Gaussian with sigma^2 = 1/2, never tuned), both from the catalog's `everyday_loss`, never from ids typed
here; "quicker", "nicer", "sharper" and "at all" are each the measures of CLAIMS, at every latent size.
"""

from dataclasses import dataclass

from vaebench import catalog
from vaebench.analysis import NOT_TESTABLE, claim_verdict, compare, has_measure, stops
from vaebench.findings.finding import Finding
from vaebench.results import DIVERGED, MEASURES, Study
from vaebench.stats import count
from vaebench.stopping import CONVERGED
from vaebench.utils import finite
from vaebench.words import label, labels

BCE, SQUARED = "binary cross-entropy", "squared error"
SEED_QUOTE = (
    "The seed post says squared error “doesn't seem to work at all” next to BCE, which gives "
    "“a nicer latent space” and “much sharper reconstructions”."
)
EVERY_MEASURE = tuple(m for m in MEASURES if not m.endswith("_median"))


@dataclass(frozen=True)
class Claim:
    """A claim: BCE is better than `rival` ('others': every other family) on each of `measures`; `words`
    says what stands for the claim's words beyond the two losses."""

    key: str
    quote: str
    rival: str
    measures: tuple[str, ...]
    words: str


CLAIMS = (
    Claim(
        "claim_converges",
        "BCE converges quicker",
        "others",
        ("epochs_to_95",),
        "“quicker”: fewer epochs to 95% of the test ELBO's gain, on runs the stopping rule ended",
    ),
    Claim(
        "claim_latent",
        "BCE gives a nicer latent space",
        SQUARED,
        ("knn_acc",),
        "“nicer”: a higher kNN accuracy of the posterior means",
    ),
    Claim(
        "claim_sharper",
        "BCE gives much sharper reconstructions",
        SQUARED,
        ("sharpness_mean",),
        "“sharper”: a higher sharpness of the reconstructions (mean image); “much” is not tested",
    ),
    Claim(
        "claim_squared_error",
        "squared error doesn't work at all",
        SQUARED,
        EVERY_MEASURE,
        "“doesn't work at all”: worse than BCE on every measure",
    ),
)


def untestable(study: Study, claimant: str, rivals: list[str], claim: Claim) -> str:
    """Why the study cannot test the claim, or ''."""
    have = set(study.ok["family"])
    lacking = [f for f in [claimant, *rivals] if f not in have]
    if lacking:
        return f"the study has no ok runs of {labels(study, lacking, ' or ')}"
    if not any(has_measure(study, m) for m in claim.measures):
        return f"{' and '.join(MEASURES[m].name for m in claim.measures)}: not measured in these runs"
    claimant_converged = converged(study, claimant)
    if claim.key == "claim_converges" and not (claimant_converged and rivals):
        if stops(study) is None:  # tables from before the stopping rule
            return "these runs trained a fixed number of epochs, which truncates the count of epochs"
        who = "no other family's" if claimant_converged else f"not all of {label(study, claimant)}'s"
        return f"{who} runs stopped by the rule: a run its epoch cap stopped cannot say how fast it converged"
    return ""


def converged(study: Study, family: str) -> bool:
    """Whether every ok run of `family` was ended by the stopping rule (its epoch count is not truncated)."""
    runs = study.ok[study.ok["family"] == family]
    return "stop_reason" in runs.columns and not runs.empty and bool((runs["stop_reason"] == CONVERGED).all())


def rivals_of(study: Study, claim: Claim, claimant: str) -> tuple[list[str], list[str]]:
    """(the families BCE is compared with, the families left out because their measure is truncated)."""
    if claim.rival != "others":
        squared = catalog.with_everyday_loss(SQUARED)
        return ([squared] if squared else []), []
    others = [f for f in study.families if f != claimant]
    if claim.key != "claim_converges":
        return others, []
    ended = {f: converged(study, f) for f in others}
    return [f for f in others if ended[f]], [f for f in others if not ended[f]]


def summary(outcomes: dict[str, list]) -> str:
    """'for 2, against 0, undecided 1 of 3 comparisons'."""
    n = sum(len(v) for v in outcomes.values())
    counts = ", ".join(f"{word} {len(items)}" for word, items in outcomes.items())
    return f"{counts} of {n} comparison{'s' if n != 1 else ''}"


def outcome_text(study: Study, claimant: str, rivals: list[str], outcomes: dict[str, list]) -> str:
    """Per outcome, on which measures at which latent sizes (against one rival) or against which rivals at
    which latent sizes (several), without numbers: the tables have them."""
    parts = []
    for word, items in outcomes.items():
        grouped: dict[str, list[str]] = {}
        for metric, dim, rival, _ in items:
            key = MEASURES[metric].short if len(rivals) == 1 else label(study, rival)
            grouped.setdefault(key, []).append(str(dim))
        if grouped:
            named = "; ".join(f"{key} (z = {', '.join(dims)})" for key, dims in grouped.items())
            parts.append(
                f"{word} {label(study, rivals[0])} on {named}" if len(rivals) == 1 else f"{word} {named}"
            )
    return f"{label(study, claimant)} is " + "; ".join(parts) + "."


def judge_claim(study: Study, claim: Claim) -> Finding:
    """A claim of the seed post, its verdict and the words that stand for it."""
    claimant = catalog.with_everyday_loss(BCE)
    rivals, truncated = rivals_of(study, claim, claimant)
    stands = (
        f"BCE: {label(study, claimant)}; "
        + (
            f"squared error: {label(study, rivals[0])}, not tuned; "
            if claim.rival == SQUARED and rivals
            else ""
        )
        + claim.words
    )
    measures = claim.measures
    if claim.key != "claim_converges" and not all(converged(study, f) for f in [claimant, *rivals]):
        measures = tuple(m for m in measures if m != "epochs_to_95")  # truncated by the epoch cap
    measure = ", ".join(MEASURES[m].short for m in measures if has_measure(study, m)) or "none measured"
    why = untestable(study, claimant, rivals, claim)
    if why:
        return Finding(
            claim.key, claim.quote, f"Not testable here: {why}.", NOT_TESTABLE, measure, why, stands
        )
    wins, losses, open_ = compare(study, claimant, rivals, measures)
    outcomes = {"better than": wins, "worse than": losses, "not separated from": open_}
    text = outcome_text(study, claimant, rivals, outcomes)
    if truncated:
        text += f" Left out, their runs not all ended by the rule: {labels(study, truncated)}."
    if claim.key == "claim_squared_error":
        text = f"{SEED_QUOTE} {text}{learned_scale(study, claimant, rivals[0])}"
        diverged = int(((study.metrics["family"] == rivals[0]) & (study.metrics["status"] == DIVERGED)).sum())
        if diverged:
            text += f" {count(diverged, f'{label(study, rivals[0])} run')} diverged."
    verdict = claim_verdict(wins, losses, open_)
    return Finding(claim.key, claim.quote, text, verdict, measure, summary(outcomes), stands)


def learned_scale(study: Study, bce: str, squared: str) -> str:
    """Where squared error loses to BCE on likelihood, whether the same distribution with a learned scale
    does too: it tells the fixed scale from the Gaussian shape as the cause."""
    shape = catalog.BY_ID[squared].distribution
    learned = [e.id for e in catalog.CATALOG if shape and e.distribution == shape and e.learned_scale]
    rescued, not_rescued = [], []
    for dim in study.dims:
        s, r = (study.stat(f, dim, "bpd_disc")["mean"] for f in (squared, bce))
        if finite(s) and finite(r) and s > r:
            for family in learned:
                if finite(m := study.stat(family, dim, "bpd_disc")["mean"]):
                    (rescued if m <= r else not_rescued).append(f"{label(study, family)} at z = {dim}")
    text = ""
    if rescued:
        text += (
            f" Where it loses to BCE on likelihood, a learned scale does not ({', '.join(rescued)}): the "
            f"fixed scale, not the {shape} shape, is what costs likelihood there."
        )
    if not_rescued:
        text += (
            f" A learned scale does not rescue it everywhere: {', '.join(not_rescued)} still loses to BCE."
        )
    return text


def claims(study: Study) -> list[Finding]:
    """The seed post's claims, each with its verdict; none where the catalog lacks BCE or squared error."""
    if catalog.with_everyday_loss(BCE) is None or catalog.with_everyday_loss(SQUARED) is None:
        return []
    return [judge_claim(study, claim) for claim in CLAIMS]
