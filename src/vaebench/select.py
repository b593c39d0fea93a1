"""`vaebench select`: choose a family's learning rate (and fixed scale) on the validation split.

The study's `selection` block declares a small grid per family: every learning rate, and for a family with
a fixed scale every scale too. Each point is one short training run (`vaebench train --validation N`) on
one seed and latent size. This stage keeps the point whose best validation ELBO is highest and writes it
as JSON; the study's runs then train with it (`vaebench train --selected`). The test split plays no part.

A choice at the edge of what was tried may have its best value beyond it, so each call is one round: when
the best point sits at an edge and the limit of extensions is not reached, the JSON names the next points,
one step further out along each such setting, and the workflow trains them and calls the next round.
"""

import argparse
import itertools
import sys

from vaebench.catalog import BY_ID
from vaebench.errors import VaebenchError
from vaebench.layout import RUN_RECORD
from vaebench.utils import finite, read_json, utc_now, write_json

CRITERION = "best validation ELBO (nats/image) over the epochs of a short run"
SIGNIFICANT_DIGITS = 12  # an extended grid value is rounded to these, so 0.003 * 3 is named 0.009


def grid(loss: str, selection: dict) -> list[dict[str, float]]:
    """The training settings a family is tried with, in a fixed order: every `lr`, times every value of the
    family's fixed scale (the selection block's list under that setting's name) if it has one."""
    axes = {"lr": selection["lr"]}
    setting = BY_ID[loss].scale_setting
    if setting is not None:
        axes[setting] = selection[setting]
    return [dict(zip(axes, values, strict=True)) for values in itertools.product(*axes.values())]


def choose(records: list[dict], loss: str) -> dict:
    """The settings of the finished run with the best validation ELBO, and every point tried."""
    tried = [
        {**point_settings(r, loss), "val_elbo_nats": r.get("val_elbo_nats"), "status": r.get("status")}
        for r in records
    ]
    usable = [t for t in tried if t["status"] == "ok" and finite(t["val_elbo_nats"])]
    if not usable:
        raise VaebenchError(f"{loss}: no selection run finished with a validation ELBO to choose by")
    best = max(usable, key=lambda t: t["val_elbo_nats"])
    return {"settings": point_settings(best, loss), "val_elbo_nats": best["val_elbo_nats"], "tried": tried}


def at_edge(settings: dict[str, float], tried: list[dict]) -> list[str]:
    """The settings that are the smallest or the largest value tried on their axis (of more than one)."""
    edges = []
    for key, value in settings.items():
        values = sorted({t[key] for t in tried})
        if len(values) > 1 and value in (values[0], values[-1]):
            edges.append(key)
    return edges


def step_outward(settings: dict[str, float], key: str, tried: list[dict]) -> dict[str, float]:
    """The settings with `key` one step beyond the values tried, on the side where it sits: the next value
    of the geometric progression of the two outermost values on that side."""
    values = sorted({t[key] for t in tried})
    outer, inner = (values[-1], values[-2]) if settings[key] == values[-1] else (values[0], values[1])
    return {**settings, key: float(f"{outer * outer / inner:.{SIGNIFICANT_DIGITS}g}")}


def decide(records: list[dict], loss: str, round_: int, max_extensions: int) -> dict:
    """One round of the choice: the best point and every point tried, the settings at an edge, whether the
    choice is final (inside what was tried, or `max_extensions` rounds of extension done) and, if not, the
    points of the next round."""
    chosen = choose(records, loss)
    edges = at_edge(chosen["settings"], chosen["tried"])
    done = not edges or round_ >= max_extensions
    return {
        **chosen,
        "at_edge": edges,
        "extensions": round_,
        "max_extensions": max_extensions,
        "done": done,
        "next": [] if done else [step_outward(chosen["settings"], key, chosen["tried"]) for key in edges],
    }


def point_settings(record: dict, loss: str) -> dict[str, float]:
    setting = BY_ID[loss].scale_setting
    return {"lr": record["lr"], **({setting: record[setting]} if setting else {})}


def run(args: argparse.Namespace) -> int:
    records = [read_json(run_dir / RUN_RECORD, "") for run_dir in args.runs]
    losses = {r.get("loss") for r in records}
    if len(losses) != 1:
        raise VaebenchError(f"the selection runs are of several families ({sorted(map(str, losses))})")
    loss = losses.pop()
    if args.round < 0 or args.max_extensions < 0:
        raise VaebenchError("--round and --max-extensions count extensions: 0 or more")
    chosen = decide(records, loss, args.round, args.max_extensions)
    first = records[0]
    write_json(
        args.out,
        {
            "loss": loss,
            **chosen,
            "criterion": CRITERION,
            "validation_images": first.get("validation"),
            "epochs": first.get("epochs"),
            "seed": first.get("seed"),
            "latent_dim": first.get("latent_dim"),
            "runs": [str(d) for d in args.runs],
            "chosen_at": utc_now(),
        },
    )
    print(
        f"{loss}: {chosen['settings']}, validation ELBO {chosen['val_elbo_nats']:.2f} nats", file=sys.stderr
    )
    return 0
