"""The set-up table: what the runs recorded (dataset, versions, devices, sizes), what the config asked for
where the runs differ from it, and the settings chosen on the validation split."""

import datetime as dt
from collections import Counter

import pandas as pd

from vaebench import analysis, catalog
from vaebench.analysis import PAPER_K
from vaebench.layout import METRICS, RUN_RECORD
from vaebench.report.html import esc, family_label, table
from vaebench.results import Study
from vaebench.words import SETTING_NAMES, fmt, fmt_range, label, setting


def setup(study: Study, config: dict) -> str:
    m = study.metrics
    families = ", ".join(family_label(study, f) for f in study.families)
    seeds = sorted(m["seed"].unique())
    dims = ", ".join(map(str, study.dims))
    rows = [
        ("dataset", values(study, "dataset")),
        ("dataset sha256", values(study, "dataset_sha256", short=12)),
        ("dataset source", values(study, "dataset_source")),
        ("dimensions D per image", values(study, "dims")),
        ("training / test images", split_sizes(study)),
        ("families", families + config_note(config, "losses", study.families)),
        ("latent dimensions", dims + config_note(config, "latent_dims", study.dims)),
        ("seeds", ", ".join(map(str, seeds)) + config_note(config, "seeds", seeds)),
        ("architecture", values(study, "arch") + ", hidden width " + values(study, "hidden")),
        ("epochs", values(study, "epochs")),
        ("batch size, learning rate", values(study, "batch_size") + ", " + values(study, "lr")),
        ("validation split, epoch kept", validation(study)),
        (
            "training input",
            values(
                study,
                "dequantize",
                rename={"True": "dequantized, x = (v + u)/256", "False": "v/255, not dequantized (†)"},
            ),
        ),
        ("importance samples K", values(study, "k") + protocol_note(study)),
        ("test images scored", values(study, "n_test")),
        ("evaluation noise seed", values(study, "eval_seed")),
        (
            "per-pixel likelihood math",
            values(study, "family_dtype")
            + ", summed in float64; "
            + values(study, "compiled", rename={"True": "one fused torch.compile kernel", "False": "eager"}),
        ),
        ("training device", values(study, "device", detail="device_name")),
        ("evaluation device", values(study, "eval_device", detail="eval_device_name")),
        ("a rerun repeats these numbers", repeats(study)),
        (
            "python / torch / numpy",
            " / ".join(
                values(study, f"{p}_version", f"eval_{p}_version") for p in ("python", "torch", "numpy")
            ),
        ),
        ("vaebench version", values(study, "vaebench_version", "eval_vaebench_version")),
        ("git commit", values(study, "git_commit", "eval_git_commit", short=12)),
        ("host", values(study, "hostname", "eval_hostname")),
        ("runs trained", date_range(study)),
        ("runs", ", ".join(f"{n} {s}" for s, n in m["status"].value_counts().items())),
        ("ok runs stopped by", stopped_by(study)),
        ("report written", dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")),
    ]
    cells = [[esc(k), (v, "varies" if "varies:" in v else "")] for k, v in rows]
    return (
        table(["", f"value (from the runs' {RUN_RECORD} / {METRICS})"], cells, "id='setup-table'")
        + (
            "<p class='small'>Highlighted rows differ between runs: each value is followed by the number "
            f"of run records ({RUN_RECORD} and {METRICS} each count) that have it.</p>"
        )
        + choices(study)
        + endings(study)
    )


def values(
    study: Study,
    *columns: str,
    detail: str | None = None,
    short: int | None = None,
    rename: dict | None = None,
) -> str:
    """The distinct values of the columns over all runs: one value, or 'varies: a (3), b (1)'.

    Several columns are pooled (training's and evaluation's copy of a version); `detail` names a
    column whose value is added in brackets (a device's name).
    """
    m, seen = study.metrics, Counter()
    for column in (c for c in columns if c in m.columns):
        for i, value in m[column].items():
            if value is None or value == "" or (not isinstance(value, str) and pd.isna(value)):
                continue
            text = shown(value, short, rename)
            extra = m.at[i, detail] if detail in m.columns else None
            if extra is not None and pd.notna(extra) and str(extra) not in ("", text):
                text += f" ({extra})"
            seen[text] += 1
    if not seen:
        return "unknown"
    if len(seen) == 1:
        return esc(next(iter(seen)))
    return "varies: " + ", ".join(f"{esc(v)} ({n})" for v, n in seen.most_common())


def shown(value, short: int | None, rename: dict | None) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value)
    if rename:
        text = rename.get(text, text)
    return text[:short] if short else text


def split_sizes(study: Study) -> str:
    """'4,000 train / 1,000 test (500 scored)' from the dataset manifest (else baselines.json)."""
    train, test = (analysis.split_size(study, key) for key in ("n_train", "n_test"))
    scored = analysis.scored_images(study)
    if train is None and test is None:
        return "unknown (pass the dataset manifest: <code>vaebench report --manifest</code>)"
    text = (
        f"{train:,} train / {test:,} test"
        if train is not None and test is not None
        else f"{train or test:,} {'train' if train is not None else 'test'}"
    )
    if scored is not None and (test is None or scored < test):
        text += f"; the first {scored:,} test images scored"
    return text


def config_note(config: dict, key: str, found) -> str:
    """What the config asked for, where it differs from what the runs on disk cover."""
    wanted = config.get(key)
    if not wanted or {str(w) for w in wanted} == {str(f) for f in found}:
        return ""
    return f" <span class='small'>(the config asks for: {esc(', '.join(map(str, wanted)))})</span>"


def protocol_note(study: Study) -> str:
    if analysis.fewer_samples(study) is not None:
        why = f"fewer than the paper protocol's {PAPER_K}: a looser estimate"
        return f" <span class='small'>({why})</span>"
    return ""


def repeats(study: Study) -> str:
    """What a rerun of the same commands reproduces: every number on a CPU, on a GPU only to float rounding
    (cuDNN picks kernels that are not deterministic and the upsampling's backward pass adds with atomics)."""
    devices = pd.concat([study.ok.get(column, pd.Series(dtype=str)) for column in ("device", "eval_device")])
    on_gpu = devices.astype(str).str.startswith("cuda").any()
    if on_gpu:
        return "to float rounding: some runs used a GPU, where the order of additions is not fixed"
    return "bit for bit: every run trained and was scored on a CPU"


def stopped_by(study: Study) -> str:
    """The ok runs per stop reason (converged by the stopping rule, the epoch cap), or that none was."""
    ended = analysis.stops(study)
    if ended is None:
        return "not recorded (runs trained before the stopping rule)"
    return ", ".join(f"{n} {reason.replace('_', ' ')}" for reason, n in ended.counts.items())


def date_range(study: Study) -> str:
    empty = pd.Series([], dtype=object)
    start = study.metrics.get("started_at", empty).dropna()
    end = study.metrics.get("finished_at", empty).dropna()
    if start.empty:
        return "unknown"
    return f"{esc(min(start))} to {esc(max(end) if not end.empty else '?')}"


def validation(study: Study) -> str:
    if not analysis.validated(study):
        return "none: each run keeps its last epoch"
    return (
        f"{values(study, 'validation')} training images held out (the same for every run, never trained "
        "on); each run keeps the epoch with the best validation ELBO, epoch kept: "
        + values(study, "best_epoch")
    )


def choices(study: Study) -> str:
    """The settings chosen per family on the validation split, with the grid each was chosen from."""
    chosen = study.selection
    if not chosen:
        return ""
    rows = []
    for family in catalog.family_order(chosen):
        record = chosen[family]
        settings = record["settings"]
        scale = [f"{SETTING_NAMES[k]} = {v:g}" for k, v in settings.items() if k != "lr"]
        grid = analysis.tried_values(record)
        edges = [setting(k, settings[k]) for k in analysis.grid_edges(record)]
        rows.append(
            [
                esc(family_label(study, family)),
                f"{settings['lr']:g}",
                esc(", ".join(scale)) or "none",
                fmt(record["val_elbo_nats"], 2),
                esc(" x ".join("{" + ", ".join(f"{v:g}" for v in vs) + "}" for vs in grid.values())),
                (esc(", ".join(edges) + still_at_edge(record)), "varies") if edges else "",
            ]
        )
    first = next(iter(chosen.values()))
    return (
        "<h3 id='choices'>Choices made on the validation split</h3>"
        + table(
            [
                "family",
                "learning rate",
                "fixed scale",
                "validation ELBO, nats/image ↑",
                "grid tried",
                "at the grid's edge",
            ],
            rows,
            "id='choices-table'",
        )
        + (
            f"<p class='small'>Each grid point is one run (at most {first['epochs']} epochs, trained as the "
            f"study's runs are) of seed {first['seed']} at z = {first['latent_dim']} on the training split "
            "less the validation images; the point with the best validation ELBO (over its epochs) is used "
            "for every seed and latent size. The test images play no part. gaussian_shared's sigma is not "
            "chosen: after each epoch it is set to the root-mean-square residual over the whole training "
            "split." + extension_note(first) + "</p>"
        )
    )


ENDINGS_HEADER = ["family", "z", "stopped by", "epochs done", "epoch kept", "most lr decays", "largest drift"]


def ending_cells(study: Study, e) -> list[str]:
    """A row of analysis.endings as text, in ENDINGS_HEADER's order."""
    return [
        label(study, e.family),
        str(e.latent_dim),
        e.stopped_by,
        fmt_range(e.epochs_min, e.epochs_max),
        fmt_range(e.kept_min, e.kept_max),
        fmt(e.decays_max, 0),
        fmt(e.drift_max, 4),
    ]


def endings(study: Study) -> str:
    """Per family and latent size, how its ok runs ended (analysis.endings): the stop reasons, the epochs
    trained and kept, the learning-rate decays and the drift left at the stop."""
    found = analysis.endings(study)
    if found is None or found.empty:
        return ""
    rows = []
    for e in found.itertuples():
        _, dim, stopped_by, *numbers = ending_cells(study, e)
        numbers = [(n, "num") for n in numbers]
        rows.append([family_label(study, e.family), esc(dim), esc(stopped_by), *numbers])
    return (
        "<h3 id='endings'>How the runs ended</h3>"
        + table(ENDINGS_HEADER, rows, "id='endings-table'")
        + (
            "<p class='small'>The ok runs of each family and latent size: why each stopped (converged: the "
            "stopping rule ended it; epoch cap: the cap came first; unknown: a run trained before runs "
            "recorded why), the epochs trained and the epoch kept "
            "(best validation ELBO) over the seeds, the most times a run's learning rate was cut, and the "
            "largest drift: how much the best validation ELBO still rose, in bits/dim, over the last "
            "patience epochs before the stop, what the run was still gaining.</p>"
        )
    )


def still_at_edge(record: dict) -> str:
    """That the grid's extensions, as many as the config allowed, left these settings at its edge."""
    if "max_extensions" not in record:
        return ""
    return f", still after {record['extensions']} extension(s) of the grid (the limit)"


def extension_note(record: dict) -> str:
    """How a choice at the grid's edge extended it, when the study's selection could."""
    if "max_extensions" not in record:
        return ""
    return (
        " A choice at the edge of the values tried adds one value further out on that setting's geometric "
        f"progression and chooses again, with at most {record['max_extensions']} such extension(s)."
    )


def fixed_options(study: Study) -> str:
    given = study.metrics.get("family_options", pd.Series([], dtype=object)).dropna().astype(str)
    options = sorted({o for o in given if o not in ("{}", "")})
    return esc(", ".join(options)) or "none recorded"
