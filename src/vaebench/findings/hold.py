"""Does the verdict hold? One line per check of `vaebench.robustness`, with the number its status rests on."""

from vaebench import robustness
from vaebench.findings.finding import Finding
from vaebench.results import Study
from vaebench.utils import finite
from vaebench.words import fmt, label

QUESTIONS = {
    "K": "Would more importance samples reorder it?",
    "training length": "Was the ranking still moving when training stopped?",
    "seeds": "Does it survive leaving out a seed?",
    "test images": "Does it survive resampling the test images?",
}


def k_line(study: Study, c: robustness.Check) -> str:
    v = c.values
    if "remaining" not in v:
        return f"{label(study, v['family'])} at z = {v['latent_dim']}: {c.why}."
    kept = "stays first" if v["leaders_kept"] else "changes"
    return (
        f"Extrapolated to unlimited K, the largest remaining bias is {fmt(v['remaining'], 4)} bits/dim "
        f"({label(study, v['family'])}, z = {v['latent_dim']}), against a lead of {fmt(v['gap'])}; the "
        f"leader {kept} at every latent size."
    )


def length_line(study: Study, c: robustness.Check) -> str:
    v = c.values
    curve = "validation" if v["column"] == "val_elbo_nats" else "test"
    taus = " and ".join(f"{fmt(t, 2)} at {100 * f:.0f}%" for f, t in v["taus"].items())
    text = (
        f"Ranked by the best {curve} ELBO within part of each run's epochs against all of them, Kendall's "
        f"tau is {taus} (the smallest over latent sizes)."
    )
    if v.get("capped"):
        text += f" {v['capped']} of {len(study.ok)} ok runs stopped at the epoch cap, not by the rule."
    if finite(v["drift"]):
        text += (
            f" The largest drift left at a converged run's stop is {fmt(v['drift'], 4)} bits/dim, against a "
            f"lead of {fmt(v['gap'])}."
        )
    return text


def seeds_line(study: Study, c: robustness.Check) -> str:
    v = c.values
    if not v["changed"]:
        return (
            f"Leaving out each of the {v['seeds']} seeds in turn keeps the leader at every latent size; the "
            f"ranking's smallest Kendall's tau is {fmt(v['tau'], 2)}."
        )
    named = "; ".join(f"without seed {s}, {label(study, f)} leads at z = {d}" for s, d, f in v["changed"])
    return f"The leader changes: {named}. The ranking's smallest Kendall's tau is {fmt(v['tau'], 2)}."


def images_line(study: Study, c: robustness.Check) -> str:
    v = c.values
    text = (
        f"The bootstrap keeps the leader first in {100 * v['leader']:.1f}% of its replicates (z = "
        f"{v['latent_dim']}, the least); {v['steady']} of {v['pairs']} adjacent pairs keep their order in "
        f"{100 * robustness.KEEPS_ORDER:.0f}% or more."
    )
    if v["weakest"] is not None and v["weakest"][3] < robustness.KEEPS_ORDER:
        dim, a, b, share = v["weakest"]
        text += f" The least stable: {label(study, a)} ahead of {label(study, b)} at z = {dim}, {share:.0%}."
    return text


LINES = {"K": k_line, "training length": length_line, "seeds": seeds_line, "test images": images_line}


def hold(study: Study, replicates=None) -> list[Finding]:
    """One finding per check: its question as the title, its status as the verdict, the numbers as text."""
    found = []
    for check in robustness.checks(study, replicates):
        text = f"{check.why[:1].upper()}{check.why[1:]}." if check.status == robustness.VOID else ""
        text = text or LINES[check.name](study, check)
        found.append(
            Finding(f"hold_{check.name.replace(' ', '_')}", QUESTIONS[check.name], text, check.status)
        )
    return found
