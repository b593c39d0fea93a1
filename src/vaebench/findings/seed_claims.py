"""The seed post's claims, each a testable statement judged by the one evidence rule (`analysis.evidence`).

"BCE converges quicker", "BCE gives a nicer latent space", "BCE gives much sharper reconstructions" and
"squared error doesn't work at all": which families play BCE and squared error comes from the catalog's
`everyday_loss`, never from ids typed here.
"""

from vaebench import catalog, stats
from vaebench.analysis import CONTRADICTED, SUPPORTED, UNDECIDED, claim_verdict, compare, has_measure
from vaebench.findings.finding import Finding, grouped
from vaebench.results import DIVERGED, MEASURES, Study
from vaebench.utils import finite
from vaebench.words import fmt, fmt_value, label

SEED_QUOTE = (
    "The seed post says squared error “doesn't seem to work at all” next to BCE, which gives "
    "“a nicer latent space” and “much sharper reconstructions”."
)


def describe(study: Study, claimant: str, outcomes: dict[str, list]) -> str:
    """Per measure one sentence; per latent dimension in it, the claimant's value, then the rivals it is
    better than, worse than and not separable from, with their values and the evidence words once a group."""
    keys = list(dict.fromkeys((m, d) for entries in outcomes.values() for m, d, _, _ in entries))
    sentences: dict[str, list[str]] = {}
    for metric, dim in keys:
        mine = fmt_value(metric, study.stat(claimant, dim, metric)["mean"])
        said = []
        for word, entries in outcomes.items():
            items = [
                (r, fmt_value(metric, study.stat(r, dim, metric)["mean"]), ev)
                for m, d, r, ev in entries
                if (m, d) == (metric, dim)
            ]
            if items:
                said.append(f"{word} {grouped(study, items)}")
        sentences.setdefault(metric, []).append(f"at z = {dim}, {mine}: " + "; ".join(said))
    return ". ".join(
        f"On {MEASURES[metric].name}, " + "; ".join(parts) for metric, parts in sentences.items()
    )


def claim(
    study: Study, key: str, quote: str, claimant: str | None, rivals: list[str], metrics, missing: str = ""
) -> Finding:
    """A claim of the seed post, "claimant is better than each rival on each metric", judged by `evidence`."""
    title = f"Seed claim “{quote}”:"
    have = set(study.ok["family"])
    present = [r for r in rivals if r in have and r != claimant]
    measured = [m for m in metrics if has_measure(study, m)]
    if claimant not in have or not present or not measured:
        lacking = [f for f in [claimant, *rivals] if f not in have]
        why = (
            f"the study lacks ok runs of {' and '.join(lacking)}"
            if lacking
            else f"{' and '.join(MEASURES[m].name for m in metrics)}: not measured in these runs"
        )
        return Finding(key, title + f" {UNDECIDED}.", f"Not testable here: {why}{missing}.", UNDECIDED)
    wins, losses, open_ = compare(study, claimant, present, measured)
    verdict = claim_verdict(wins, losses, open_)
    outcomes = {"better than": wins, "worse than": losses, "not separable from": open_}
    why = {
        SUPPORTED: "every comparison made favours it",
        CONTRADICTED: "at least one comparison goes against it",
        UNDECIDED: "no comparison goes against it, but not every one is decided",
    }[verdict]
    text = f"For {label(study, claimant)} {why}. " + describe(study, claimant, outcomes) + "."
    return Finding(key, f"{title} {verdict}.", text, verdict)


def claims(study: Study) -> list[Finding]:
    """The seed post's claims, each a testable statement with a verdict (catalog `everyday_loss` names BCE and
    squared error): BCE converges quicker than the other families; it gives a nicer latent space and sharper
    reconstructions than squared error; squared error does not work at all, on every measure."""
    bce = catalog.with_everyday_loss("binary cross-entropy")
    squared = catalog.with_everyday_loss("squared error")
    if bce is None or squared is None:
        return []
    others = [f for f in study.families if f != bce]
    items = [
        claim(study, "claim_converges", "BCE converges quicker", bce, others, ["epochs_to_95"]),
        claim(study, "claim_latent", "BCE gives a nicer latent space", bce, [squared], ["knn_acc"]),
        claim(
            study,
            "claim_sharper",
            "BCE gives much sharper reconstructions",
            bce,
            [squared],
            ["sharpness_mean", "fd_recon_mean"],
        ),
    ]
    return items + squared_error(study, bce, squared)


def squared_error(study: Study, bce: str, squared: str) -> list[Finding]:
    """ "Squared error doesn't work at all": the reference (BCE, or where the study lacks it the family BCE is
    scored as) better than squared error on every measure. Where squared error loses on likelihood, the same
    distribution with a learned scale says whether the scale or the shape is to blame."""
    have = set(study.ok["family"])
    reference = next((f for f in (bce, catalog.BY_ID[bce].scored_as) if f and f in have), bce)
    every = [m for m in MEASURES if not m.endswith("_median")]
    finding = claim(
        study, "claim_squared_error", "squared error doesn't work at all", reference, [squared], every
    )
    if squared not in have or reference not in have:
        return [finding]
    shape = catalog.BY_ID[squared].distribution
    learned_scale = [e.id for e in catalog.CATALOG if shape and e.distribution == shape and e.learned_scale]
    text, rescued, not_rescued = f"{SEED_QUOTE} {finding.text}", [], []
    for dim in study.dims:
        s, r = (study.stat(f, dim, "bpd_disc")["mean"] for f in (squared, reference))
        if finite(s) and finite(r) and s > r:  # the fixed scale loses on likelihood: does a learned one?
            for family in learned_scale:
                if finite(m := study.stat(family, dim, "bpd_disc")["mean"]):
                    shown = f"{label(study, family)} {fmt(m)} at z = {dim}"
                    (rescued if m <= r else not_rescued).append(shown)
    if rescued:
        text += (
            " Where it loses on likelihood, a learned scale does not ("
            + ", ".join(rescued)
            + f" bits/dim): the fixed scale, not the {shape} shape, is what costs likelihood there."
        )
    if not_rescued:
        text += (
            " Not every learned scale rescues it: " + ", ".join(not_rescued) + " bits/dim is still "
            f"worse than {label(study, reference)}."
        )
    diverged = int(((study.metrics["family"] == squared) & (study.metrics["status"] == DIVERGED)).sum())
    if diverged:
        text += f" {stats.count(diverged, f'{squared} run')} diverged."
    return [Finding(finding.key, finding.title, text, finding.verdict)]
