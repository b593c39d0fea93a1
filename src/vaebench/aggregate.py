"""`vaebench aggregate`: every run of one study in one table, a summary across seeds, pairwise tests, and each
test image's bits/dim per run (per_image.csv.gz) that the tests resample (`vaebench.evidence`).

Works from the run directories alone (results/STUDY/FAMILY/zDIM/seedSEED/ with run.json,
metrics.json), so a partial rerun reports exactly what exists. No run is dropped silently:
a run the config expects but that is not on disk is a row with status "missing", a trained
but not evaluated run is "not evaluated", a diverged run stays "diverged". Only "ok" runs
enter means, intervals and tests; the summary counts the others. Every metric column is
defined in docs/likelihoods.md. This module writes the tables; `vaebench.results` reads them
back (and holds the statuses and the measures).

Beside what the runs wrote, each row gets columns derived from them: the test-set standard error
in bits/dim of each likelihood (`bpd_*_se`, from `ll_*_se`) and of the kNN accuracy (binomial), and
`epochs_to_95` from history.csv (`epochs_to_95`).

The per-image table has a column per ok run and likelihood whose artifacts.npz holds each test image's
log-likelihood (layout.PER_IMAGE_LL; runs evaluated before it did are left out), converted to bits/dim;
where runs disagree on the number of test images there is no table, and aggregate says why.
"""

import argparse
import gzip
import io
import json
import math
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from vaebench import catalog, evidence, layout, stats
from vaebench.layout import (
    ARTIFACTS,
    HISTORY,
    METRICS,
    PER_IMAGE_INDEX,
    PER_IMAGE_LL,
    PER_IMAGE_TABLE,
    RUN_RECORD,
    TABLES,
    find_run_dirs,
    parse_run_dir,
    per_image_column,
)
from vaebench.results import (
    DIVERGED,
    MISSING,
    NOT_EVALUATED,
    OK,
    QUALITY,
    SE_METRICS,
    STATUSES,
    TESTED,
    UNREADABLE,
    ResultsError,
    note_column,
    read_json_object,
    read_per_image,
    saved_config,
)
from vaebench.units import BPD, nats_to_bpd
from vaebench.utils import NUMERIC_FLAGS, atomic_write, finite

ID_COLUMNS = ("dataset", "family", "latent_dim", "seed", "status", "note", "run_dir")
# the estimate at K/16 and K/4 samples (the same images and first samples), and its rise from K/4 to K
CONVERGENCE = (
    "k_sixteenth",
    "k_quarter",
    "ll_disc_nats_k_sixteenth",
    "ll_disc_nats_k_quarter",
    "ll_deq_nats_k_sixteenth",
    "ll_deq_nats_k_quarter",
    "ll_disc_rise_nats",
    "ll_deq_rise_nats",
    "ll_disc_rise_se",
    "ll_deq_rise_se",
)
METRIC_COLUMNS = (
    (
        "bpd_disc",
        "bpd_disc_se",
        "bpd_deq",
        "bpd_deq_se",
        "ll_disc_nats",
        "ll_disc_se",
        "ll_deq_nats",
        "ll_deq_se",
        "elbo_nats",
        "kl_nats",
        "recon_mse",
        "knn_acc",
        "knn_acc_se",
        "active_units",
        "coverage90",
        "epochs_to_95",
        "k",
        "n_test",
        "train_seconds",
        "eval_seconds",
    )
    + QUALITY
    + CONVERGENCE
)
SUMMARY_METRICS = (
    (
        "bpd_disc",
        "bpd_deq",
        "ll_disc_nats",
        "ll_deq_nats",
        "elbo_nats",
        "kl_nats",
        "recon_mse",
        "knn_acc",
        "active_units",
        "coverage90",
        "epochs_to_95",
        "train_seconds",
        "eval_seconds",
    )
    + QUALITY
    + CONVERGENCE[2:]
)
PER_IMAGE_FORMAT = "%.7g"  # 7 significant digits: a value's rounding stays below 1e-5 bits/dim
GAIN_SHARE = 0.95  # epochs_to_95: the first epoch whose test ELBO has 95% of the run's total gain
# metrics.json repeats these with the values of the evaluation job: kept apart from training's
EVAL_PROVENANCE = (
    "device",
    "device_name",
    "git_commit",
    "git_dirty",
    "torch_version",
    "python_version",
    "numpy_version",
    "vaebench_version",
    "hostname",
    "command",
    "threads",
    *NUMERIC_FLAGS,
)


def epochs_to_95(history: pd.DataFrame) -> tuple[float, str]:
    """(the first epoch whose test ELBO reached GAIN_SHARE of the total gain, why not where it is NaN).

    The gain is the last epoch's test ELBO minus the first's; where it is not positive (a single epoch,
    or a curve that ends where it began or lower) there is nothing to reach and the value is NaN.
    """
    curve = history[["epoch", "test_elbo_nats"]].apply(pd.to_numeric, errors="coerce").dropna()
    curve = curve[np.isfinite(curve["test_elbo_nats"])]
    if len(curve) < 2:
        return math.nan, "fewer than two epochs with a finite test ELBO: no gain to measure"
    elbo = curve["test_elbo_nats"].to_numpy()
    gain = elbo[-1] - elbo[0]
    if gain <= 0:
        return math.nan, "the test ELBO did not rise from the first epoch to the last: no gain to reach"
    reached = np.flatnonzero(elbo - elbo[0] >= GAIN_SHARE * gain)[0]
    return float(curve["epoch"].iloc[reached]), ""


def derived(row: dict, run_dir: Path) -> dict:
    """The columns computed from what a run wrote: test-set SEs in bits/dim and of kNN, epochs_to_95."""
    out = {}
    dims = row.get("dims")
    for kind in ("disc", "deq"):
        se = row.get(f"ll_{kind}_se")
        if isinstance(se, (int, float)) and isinstance(dims, (int, float)) and dims:
            out[f"bpd_{kind}_se"] = nats_to_bpd(se, dims)
    acc, n = row.get("knn_acc"), row.get("n_test")
    if isinstance(acc, (int, float)) and isinstance(n, (int, float)) and n > 0:
        out["knn_acc_se"] = math.sqrt(acc * (1 - acc) / n)  # a proportion over n test images
    history = run_dir / HISTORY
    if history.exists():
        try:
            value, note = epochs_to_95(pd.read_csv(history))
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, KeyError):
            value, note = math.nan, f"{HISTORY} is unreadable"
        out["epochs_to_95"] = value
        if note:
            out["epochs_to_95_note"] = note
    return out


def _status(run: dict | None, metrics: dict | None) -> tuple[str, str]:
    if run is None and metrics is None:
        return MISSING, f"directory exists but has no {RUN_RECORD}: training did not finish"
    if (run or metrics).get("status") == DIVERGED:
        epoch = (run or metrics).get("diverged_epoch")
        where = f" at epoch {epoch}" if epoch is not None else ""
        return DIVERGED, f"diverged{where}; counted, not averaged"
    if metrics is None:
        return NOT_EVALUATED, f"trained ({RUN_RECORD}) but not evaluated (no {METRICS})"
    status = metrics.get("status") or OK
    return status, "" if status == OK else f"status '{status}' in {METRICS}"


def study_dataset(results: Path) -> str:
    """The dataset of the study in `results`: its validated config's (layout.STUDY_CONFIG), or, for results
    written before a study had a directory of its own (results/DATASET), the directory's name."""
    dataset = (saved_config(results) or {}).get("dataset")
    return str(dataset) if dataset else results.name


def run_row(results: Path, run_dir: Path, dataset: str) -> dict:
    """One metrics.csv row: run.json's config, metrics.json's numbers, and the derived status."""
    family, dim, seed = parse_run_dir(run_dir)
    row = {
        "dataset": dataset,
        "family": family,
        "latent_dim": dim,
        "seed": seed,
        "run_dir": run_dir.relative_to(results).as_posix(),
    }
    try:
        run, metrics = read_json_object(run_dir / RUN_RECORD), read_json_object(run_dir / METRICS)
    except ValueError as err:
        return {**row, "status": UNREADABLE, "note": str(err)}
    identity = dict(row)
    row.update(run or {})
    for key, value in (metrics or {}).items():
        row[f"eval_{key}" if key in EVAL_PROVENANCE else key] = value
    if isinstance(row.get("family_options"), dict):
        row["family_options"] = json.dumps(row["family_options"], sort_keys=True)
    status, note = _status(run, metrics)
    return {**row, **derived(row, run_dir), **identity, "status": status, "note": note}


def missing_row(family: str, dim: int, seed: int, dataset: str) -> dict:
    return {
        "dataset": dataset,
        "family": family,
        "latent_dim": dim,
        "seed": seed,
        "status": MISSING,
        "note": "expected by the config, not on disk",
        "run_dir": layout.run_dir(family, dim, seed),
    }


def collect(results: Path, expected=()) -> pd.DataFrame:
    """One row per run directory on disk plus one per expected run that is absent."""
    if not results.is_dir():
        raise ResultsError(f"results directory {results} does not exist")
    keys = {}
    for path in expected:
        key = parse_run_dir(path)
        if key is None:
            raise ResultsError(f"--expected {path}: not a run directory (FAMILY/zDIM/seedSEED)")
        keys[key] = None
    dataset = study_dataset(results)
    rows = {parse_run_dir(d): run_row(results, d, dataset) for d in find_run_dirs(results)}
    rows.update({key: missing_row(*key, dataset) for key in keys if key not in rows})
    if not rows:
        raise ResultsError(
            f"no run directories under {results} (expected {results}/FAMILY/zDIM/seedSEED/{RUN_RECORD})"
        )
    table = pd.DataFrame(list(rows.values()))
    for column in METRIC_COLUMNS:  # present even when no run has been evaluated yet
        if column not in table.columns:
            table[column] = float("nan")
    order = {f: i for i, f in enumerate(catalog.family_order(table["family"]))}
    table = table.sort_values(
        ["family", "latent_dim", "seed"], key=lambda c: c.map(order) if c.name == "family" else c
    )
    first = list(ID_COLUMNS) + [c for c in METRIC_COLUMNS if c in table.columns]
    return table[first + sorted(set(table.columns) - set(first))].reset_index(drop=True)


def per_image_table(results: Path, metrics: pd.DataFrame) -> tuple[pd.DataFrame | None, list[str], str]:
    """(each test image's bits/dim per ok run and likelihood: a row per image, a column per run that has a
    value of the likelihood and every image's in its artifacts.npz, as PER_IMAGE_TABLE reads back; the runs
    left out for a damaged file; why there is no table, where the first is None)."""
    columns, damaged = {}, []
    for _, run in metrics[metrics["status"] == OK].iterrows():
        path = results / run["run_dir"] / ARTIFACTS
        kinds = [k for k in PER_IMAGE_LL if finite(run.get(f"bpd_{k}")) and finite(run.get("dims"))]
        if not (kinds and path.exists()):
            continue
        try:
            with np.load(path) as npz:
                arrays = {k: npz[PER_IMAGE_LL[k]] for k in kinds if PER_IMAGE_LL[k] in npz.files}
        except (OSError, ValueError, zipfile.BadZipFile) as err:
            damaged.append(f"{path} is unreadable ({type(err).__name__}): re-run `vaebench evaluate`")
            continue
        for kind, ll in arrays.items():
            if np.isfinite(ll).all():
                column = per_image_column(f"bpd_{kind}", run["family"], run["latent_dim"], run["seed"])
                columns[column] = BPD[kind](ll.astype(float), run["dims"])
    if not columns:
        return None, damaged, f"no ok run has each test image's log-likelihood in its {ARTIFACTS}"
    sizes = pd.Series({column: values.size for column, values in columns.items()})
    if sizes.nunique() > 1:
        counts = ", ".join(f"{sizes.eq(n).sum()} runs x likelihoods on {n}" for n in sorted(sizes.unique()))
        return None, damaged, f"the runs were scored on different numbers of test images ({counts})"
    table = pd.DataFrame({c: columns[c] for c in sorted(columns, key=lambda c: c.split("/")[0])})  # by metric
    table.index.name = PER_IMAGE_INDEX
    # as the file reads back (PER_IMAGE_FORMAT's digits): the tests from it are those its reader gets again
    return read_per_image(io.StringIO(table.to_csv(float_format=PER_IMAGE_FORMAT))), damaged, ""


def summarise(
    metrics: pd.DataFrame, boots: dict[tuple[str, int], evidence.Bootstrap] | None = None
) -> pd.DataFrame:
    """Per family x latent dimension: run counts by status, and each metric's mean / std / 95% t-interval / n
    over ok runs. For the metrics with a test-set standard error, the standard error of the mean
    (`<metric>_se`): the hierarchical bootstrap's (seeds and test images, `evidence.bootstraps` in `boots`)
    with its 95% percentile interval (`<metric>_boot_ci95_low`, `_high`) where the family is in it, else the
    test-set error of the mean of the runs (the test images' noise alone, as if independent across seeds)."""
    means = {key: evidence.family_means(boot) for key, boot in (boots or {}).items()}
    rows = []
    for (family, dim), group in metrics.groupby(["family", "latent_dim"], sort=False):
        ok = group[group["status"] == OK]
        row = {
            "dataset": group["dataset"].iloc[0],
            "family": family,
            "latent_dim": int(dim),
            "n_runs": len(group),
        }
        for status in STATUSES:
            row[f"n_{status.replace(' ', '_')}"] = int((group["status"] == status).sum())
        for metric in SUMMARY_METRICS:
            if metric not in group.columns:
                continue
            ci = stats.t_interval(pd.to_numeric(ok[metric], errors="coerce"))
            row.update({f"{metric}_{key}": value for key, value in ci.items()})
            notes = ok[note_column(metric)].dropna() if note_column(metric) in ok.columns else []
            row[f"{metric}_note"] = notes.iloc[0] if len(notes) else ""
            if metric in SE_METRICS and f"{metric}_se" in ok.columns:
                with_value = ok[pd.to_numeric(ok[metric], errors="coerce").notna()]
                se = pd.to_numeric(with_value[f"{metric}_se"], errors="coerce")
                row[f"{metric}_se"] = stats.se_of_mean(se)
            boot = means.get((metric, int(dim)))
            if boot is not None and family in boot.index:
                row[f"{metric}_se"] = boot.loc[family, "se"]
                row[f"{metric}_boot_ci95_low"] = boot.loc[family, "ci95_low"]
                row[f"{metric}_boot_ci95_high"] = boot.loc[family, "ci95_high"]
        rows.append(row)
    return pd.DataFrame(rows)


def tables(metrics: pd.DataFrame, per_image: pd.DataFrame | None) -> tuple[pd.DataFrame, ...]:
    """metrics.csv, summary.csv and tests.csv (layout.TABLES) from the runs' rows and per-image table."""
    boots = evidence.bootstraps(metrics, per_image)
    families = catalog.family_order(metrics["family"])
    return metrics, summarise(metrics, boots), evidence.all_tests(metrics, families, TESTED, boots)


def run(args: argparse.Namespace) -> int:
    metrics = collect(args.results, args.expected)
    out_dir = args.out_dir or args.results
    per_image, damaged, why_none = per_image_table(args.results, metrics)
    for note in damaged:
        print(f"{PER_IMAGE_TABLE}: left out: {note}")
    for name, table in zip(TABLES, tables(metrics, per_image), strict=True):
        atomic_write(out_dir / name, lambda tmp, table=table: table.to_csv(tmp, index=False))
    if per_image is None:
        (out_dir / PER_IMAGE_TABLE).unlink(missing_ok=True)  # an older one would not match these tables
        print(f"{PER_IMAGE_TABLE} not written: {why_none}; the likelihoods are tested across seeds only")
    else:
        text = per_image.to_csv(float_format=PER_IMAGE_FORMAT).encode()
        # no time stamp and no file name in the gzip header: the same runs give the same bytes
        atomic_write(out_dir / PER_IMAGE_TABLE, lambda tmp: tmp.write_bytes(gzip.compress(text, mtime=0)))
    counts = metrics["status"].value_counts()
    print(f"{len(metrics)} runs ({', '.join(f'{n} {s}' for s, n in counts.items())}) -> {out_dir}")
    return 0
