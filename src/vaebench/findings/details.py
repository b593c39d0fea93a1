"""The findings, in the order of the page: did every run finish, the winners, the baselines, the two
likelihood columns, a loss read as another family's density, the seed post's claims, likelihood against
picture quality, the calibration and what is not comparable.

Each is a question with a short answer: the `verdict` (a family, yes or no, a count), the `measure` it reads,
the `evidence` in short (counts, or the evidence rule's words) and one short paragraph that names families
and latent sizes but no values: the tables hold the numbers, and a number the answer needs is in the verdict
or the evidence. Each rule reads the Study and the analysis (`vaebench.analysis`) and says what it allows,
never more. Which families a rule compares comes from the catalog's properties (`scored_as`, `real_line`,
`discrete`, `distribution`), never from ids typed here.
"""

from vaebench import analysis, catalog
from vaebench.analysis import NOT_TESTABLE, against_references, evidence, has_measure, not_comparable, ranking
from vaebench.findings.finding import Finding, listed, named, per_size, said_per_size, sizes_of, where
from vaebench.findings.seed_claims import claims
from vaebench.results import DIVERGED, MEASURES, METRIC_NAMES, OK, STATUSES, Study
from vaebench.utils import finite
from vaebench.words import families, fmt, label

BOTH_COLUMNS = ", ".join(MEASURES[m].short for m in METRIC_NAMES)  # the two likelihood columns, short
LISTED_RUNS = 12  # the runs not ok named in the status finding; more are counted
NOMINAL = 0.9  # the share of sub-pixels a calibrated central 90% interval covers


def statuses(study: Study) -> list[Finding]:
    """Whether every run the study expects trained and was evaluated; the others by name."""
    metrics, title = study.metrics, "Did every run finish and get evaluated?"
    bad, n = metrics[metrics["status"] != OK], len(metrics)
    if bad.empty:
        text = "The one run did." if n == 1 else f"{'Both' if n == 2 else f'All {n}'} runs did."
        return [Finding("status", title, text, f"yes: {n} of {n}")]
    runs = "; ".join(
        f"{label(study, r['family'])} z = {r['latent_dim']} seed {r['seed']} ({r['status']}"
        + (f": {r['note']}" if r["note"] and r["status"] != DIVERGED else "")
        + ")"
        for _, r in bad.head(LISTED_RUNS).iterrows()
    )
    more = f" and {len(bad) - LISTED_RUNS} more (see every run below)" if len(bad) > LISTED_RUNS else ""
    counts = bad["status"].value_counts()
    return [
        Finding(
            "status",
            title,
            f"Not in the means and tests, but counted in the tables: {runs}{more}.",
            f"no: {len(bad)} of {n} did not",
            evidence=", ".join(f"{counts[s]} {s}" for s in STATUSES if s in counts),
        )
    ]


def winner_at(study: Study, order: list[str], dim: int, metric: str) -> tuple[str, str]:
    """One latent size of the winners finding: (a clause naming the best family and the families the
    evidence rule does not put behind it, how many others it is ahead of by the rule)."""
    best, others = label(study, order[0]), len(order) - 1
    if not others:
        return f"{best} is the only family with a value", ""
    judged = {f: evidence(study, metric, dim, order[0], f) for f in order[1:]}
    ahead = [f for f, ev in judged.items() if ev.better(metric) > 0]
    ties = [f for f, ev in judged.items() if not ev.separated]
    behind = [f for f, ev in judged.items() if ev.better(metric) < 0]
    count = f"ahead of {len(ahead)} of {others}"
    if len(ahead) == others:
        return f"{best} leads every other family by the evidence rule", count
    clause = f"{best} has the lowest mean"
    if ties:
        tied = "any other family" if len(ties) == others else listed(study, ties)
        clause += f", not separated from {tied} by the evidence rule"
    if behind:
        clause += (
            f"; on the seeds both have, {listed(study, behind)} {'is' if len(behind) == 1 else 'are'} better "
            "(the two means rest on different seeds)"
        )
    return clause, count


def winners(study: Study, metric: str = "bpd_disc") -> list[Finding]:
    """Per latent size the family with the lowest mean (`analysis.ranking`) and how sure its lead is over
    each other family (`evidence`)."""
    ranks = ranking(study, metric)
    best, clauses, counts = {}, {}, {}
    for dim in study.dims:
        order = list(ranks.loc[ranks["latent_dim"] == dim, "family"])
        if not order:
            clauses[dim] = f"no ok run has a {METRIC_NAMES[metric]} yet"
            continue
        best[dim] = label(study, order[0])
        clauses[dim], count = winner_at(study, order, dim, metric)
        if count:
            counts[dim] = count
    if not best:
        return []
    return [
        Finding(
            "winner",
            f"Which family has the lowest {METRIC_NAMES[metric]}?",
            said_per_size(study, clauses),
            per_size(study, best),
            MEASURES[metric].short,
            per_size(study, counts),
        )
    ]


def baselines(study: Study) -> list[Finding]:
    """Which families beat the per-pixel histogram (no latent) at each latent size, and which even the two
    masses beat."""
    histogram, masses = study.baseline("histogram"), study.baseline("two_masses")
    if histogram is None:
        return []
    beat, outcomes, clauses = {}, {}, {}
    for dim in study.dims:
        judged = against_references(study, dim, histogram)
        if not judged:
            continue
        better = [f for f, ev in judged.items() if ev.better("bpd_disc") > 0]
        close = [f for f, ev in judged.items() if not ev.separated]
        worse = len(judged) - len(better) - len(close)
        beat[dim] = f"{len(better)} of {len(judged)}"
        outcomes[dim] = f"{len(close)} not separated, {worse} worse"
        clause = f"the per-pixel histogram loses to {named(study, better) if better else 'no family'}"
        if close:
            clause += f"; it is not separated from {listed(study, close)}"
        if masses is not None:
            lost = [
                f for f, ev in against_references(study, dim, masses).items() if ev.better("bpd_disc") < 0
            ]
            if lost:
                clause += f"; even the two-mass model beats {named(study, lost)}"
        clauses[dim] = clause
    if not beat:
        return []
    return [
        Finding(
            "baselines",
            "Does each family beat a model without a latent?",
            said_per_size(study, clauses),
            per_size(study, beat),
            MEASURES["bpd_disc"].short,
            per_size(study, outcomes),
        )
    ]


def kinds(study: Study, chosen: list[str]) -> str:
    """'the gaussian and laplace families' where `chosen` is every family of the study with those
    distributions and they are fewer than the families; else the families' labels."""
    shapes = list(dict.fromkeys(catalog.BY_ID[f].distribution if f in catalog.BY_ID else "" for f in chosen))
    alike = [f for f in study.families if f in catalog.BY_ID and catalog.BY_ID[f].distribution in shapes]
    if "" in shapes or sorted(alike) != sorted(chosen) or len(shapes) >= len(chosen):
        return listed(study, chosen)
    return f"the {' and '.join(shapes)} families"


def edge_bins(study: Study) -> list[Finding]:
    """Where the two likelihood columns disagree on the winner, or lie a bit/dim apart or more, say why."""
    entries = {f: catalog.BY_ID[f] for f in study.families if f in catalog.BY_ID}
    real = [f for f, e in entries.items() if e.real_line and not e.discrete]
    clauses, answers, gaps = {}, {}, {}
    for dim in study.dims:
        disc, deq = (
            {f: v for f in study.families if finite(v := study.stat(f, dim, m)["mean"])} for m in METRIC_NAMES
        )
        if not disc or not deq:
            continue
        best_disc, best_deq = min(disc, key=disc.get), min(deq, key=deq.get)
        at = {f: deq[f] - disc[f] for f in disc if f in deq}
        widest = max(at, key=at.get)
        if best_disc == best_deq and at[widest] < 1:
            continue
        gaps[widest, dim] = at[widest]
        answers[dim] = "same leader, far apart" if best_disc == best_deq else "no: another leader"
        if best_disc == best_deq:
            clauses[dim] = f"both columns rank {label(study, best_disc)} first"
        else:
            clauses[dim] = (
                f"the discretized column ranks {label(study, best_disc)} first, the dequantized column "
                f"{label(study, best_deq)}"
            )
    if not clauses:
        return []
    (widest, _), gap = max(gaps.items(), key=lambda item: item[1])
    text = f"{said_per_size(study, clauses)} The gap is widest for {label(study, widest)}."
    if real:
        text += (
            f" The edge bins v = 0 and 255 of {kinds(study, real)}, on the whole real line, hold all the "
            "mass below 0 and above 1, which the discretized column counts and the dequantized density does "
            "not."
        )
    else:
        text += (
            " No family here is on the whole real line, so the gap is not edge-bin mass: the dequantized "
            "bits/dim is an upper bound on the discretized one and may rank families differently."
        )
    return [
        Finding(
            "edge_bin",
            "Do the two likelihood columns agree?",
            text,
            per_size(study, answers),
            BOTH_COLUMNS,
            f"widest gap {fmt(gap)} bits/dim",
        )
    ]


def scored_as(study: Study) -> list[Finding]:
    """Each family scored through another's density (BCE read as a continuous Bernoulli) against that other
    family trained on its own likelihood: the same density, only the training objective differs."""
    have, items = set(study.ok["family"]), []
    for entry in (e for e in catalog.CATALOG if e.scored_as):
        a, b = entry.id, entry.scored_as
        name_a, name_b = label(study, a), label(study, b)
        title = f"Does training on {entry.everyday_loss or name_a} instead of the {name_b} cost likelihood?"
        if not {a, b} <= have:
            missing = " or ".join(f for f in (a, b) if f not in have)
            text = f"Not compared here: the study lacks ok runs of {missing}."
            items.append(Finding("scored_as", title, text, NOT_TESTABLE, MEASURES["bpd_disc"].short))
            continue
        answers, clauses, words = {}, {}, {}
        for dim in study.dims:
            ev = evidence(study, "bpd_disc", dim, a, b)
            if not finite(ev.diff):
                continue
            side = ev.better("bpd_disc")
            answers[dim] = "yes" if side < 0 else "no: it gains" if side > 0 else "not separated"
            clauses[dim] = (
                f"{name_b} trained on its own likelihood is better"
                if side < 0
                else f"{name_a} is better"
                if side > 0
                else "the evidence rule does not separate them"
            )
            words[dim] = ev.words
        if answers:
            text = (
                f"Both are scored through the same {name_b} density of the decoder's outputs; only the "
                f"training objective differs. {said_per_size(study, clauses)}"
            )
            verdict, measure = per_size(study, answers), MEASURES["bpd_disc"].short
            items.append(Finding("scored_as", title, text, verdict, measure, per_size(study, words)))
    return items


def likelihood_vs_pictures(study: Study) -> list[Finding]:
    """Where likelihood and picture quality disagree (`analysis.likelihood_vs_pictures`): the families in the
    top third on likelihood and in the bottom half on the Fréchet distance of their samples."""
    metric = "fd_samples_mean"
    if not has_measure(study, metric):
        return []
    found: dict[int, list[analysis.Disagreement]] = {}
    for d in analysis.likelihood_vs_pictures(study, metric):
        found.setdefault(d.latent_dim, []).append(d)
    if not found:
        return []
    named_at = {dim: listed(study, [d.family for d in at]) for dim, at in found.items()}
    text = f"In the top third on likelihood but the bottom half on {MEASURES[metric].short}: " + "; ".join(
        f"{names} {where(study, dims)}" for names, dims in sizes_of(named_at).items()
    )
    if has_measure(study, "fd_samples_median"):
        text += ". A broad per-pixel distribution's mean image is a flat grey, its median image is not"
    text += ". A good likelihood does not make good-looking pictures (Theis et al. 2016)."
    return [
        Finding(
            "likelihood_vs_pictures",
            "Do likelihood and picture quality agree?",
            text,
            per_size(study, dict.fromkeys(found, "no")),
            f"{MEASURES['bpd_disc'].short}, {MEASURES[metric].short}",
            per_size(study, {dim: f"{len(at)} of {at[0].of} families" for dim, at in found.items()}),
        )
    ]


def calibration(study: Study) -> list[Finding]:
    """How much of the test sub-pixels the central 90% interval of p(x | z) covers: the range, the families
    closest to and furthest from 90%."""
    rows = [(f, d, study.stat(f, d, "coverage90")["mean"]) for f in study.families for d in study.dims]
    rows = [r for r in rows if finite(r[2])]
    if not rows:
        return []
    title, measure = "Are the reconstructions calibrated?", "coverage of the 90% interval"
    verdict, ideal = (
        f"{fmt(min(r[2] for r in rows))} to {fmt(max(r[2] for r in rows))}",
        f"ideal {fmt(NOMINAL)}",
    )
    what = (
        "The central 90% interval of p(x | z) at the posterior mean of z should cover nine in ten test "
        "sub-pixels; this is how well the decoder's distribution describes the reconstruction, not a "
        "predictive calibration."
    )
    if len({f for f, _, _ in rows}) == 1:
        text = f"{what} {label(study, rows[0][0])} is the one family here."
        return [Finding("calibration", title, text, verdict, measure, ideal)]
    closest = min(rows, key=lambda r: abs(r[2] - NOMINAL))
    worst = max(rows, key=lambda r: abs(r[2] - NOMINAL))
    text = (
        f"{what} Closest is {label(study, closest[0])} at z = {closest[1]}, furthest "
        f"{label(study, worst[0])} at z = {worst[1]}."
    )
    evidence_ = f"{ideal}, closest {fmt(closest[2])}, furthest {fmt(worst[2])}"
    return [Finding("calibration", title, text, verdict, measure, evidence_)]


def comparability(study: Study) -> list[Finding]:
    marked = not_comparable(study)
    if not marked:
        return []
    text = (
        "Trained on x = v/255 without dequantization (clamped where the family needs the open interval), as "
        f"the seed post did: {listed(study, marked)}. These likelihoods are not on the same footing as the "
        "others'."
    )
    return [
        Finding(
            "comparability",
            "Are all likelihoods on the same footing?",
            text,
            f"no: {families(len(marked))} marked †",
            BOTH_COLUMNS,
            "trained without dequantization",
        )
    ]


def findings(study: Study) -> list[Finding]:
    """Every finding of the study, in the order of the page (the verdict and the limits have their own)."""
    return (
        statuses(study)
        + winners(study)
        + baselines(study)
        + edge_bins(study)
        + scored_as(study)
        + claims(study)
        + likelihood_vs_pictures(study)
        + calibration(study)
        + comparability(study)
    )
