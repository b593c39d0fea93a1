"""The results directory as the reporting stages read it: its tables, its runs' files, the run statuses.

`vaebench aggregate` writes metrics.csv, summary.csv and tests.csv into results/STUDY, and where the runs
kept them each test image's bits/dim (per_image.csv.gz); `Study` reads them back with each run's
history.csv and artifacts.npz, for the figures, the findings and the report, with the references beside
them: baselines.json (`vaebench baselines`), and when given the dataset manifest (resources/DATASET.json:
the split sizes) and the picture-quality references (resources/quality/DATASET.json). Also the measures'
names and directions those stages share. A tests.csv written before the hierarchical bootstrap (paired
t-tests: t_p, t_p_holm, n_pairs) is read into the columns of today's (`normalise_tests`), so older studies
still drive the report. pandas and numpy only: no torch, no matplotlib.
"""

import json
import math
import zipfile
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from vaebench import catalog
from vaebench.errors import VaebenchError
from vaebench.layout import (
    ARTIFACTS,
    BASELINES,
    HISTORY,
    PER_IMAGE_INDEX,
    PER_IMAGE_TABLE,
    SELECTION,
    STUDY_CONFIG,
    TABLES,
    per_image_column,
)

# a run's status in metrics.csv: only "ok" runs enter means, intervals and tests; the others are counted
OK, DIVERGED, NOT_EVALUATED, MISSING, UNREADABLE = "ok", "diverged", "not evaluated", "missing", "unreadable"
STATUSES = (OK, DIVERGED, NOT_EVALUATED, MISSING, UNREADABLE)


@dataclass(frozen=True)
class Measure:
    """A number families are compared on: its name in words, which way is better, its short table header."""

    name: str
    lower_is_better: bool
    short: str


# every measure a table, figure or finding compares families on; `_mean` / `_median`: computed on the family's
# mean / median image (picture quality); a measure with a test-set standard error has it in `<metric>_se`
MEASURES = {
    "bpd_disc": Measure("discretized bits/dim", True, "bits/dim disc"),
    "bpd_deq": Measure("dequantized bits/dim", True, "bits/dim deq"),
    "recon_mse": Measure("reconstruction MSE", True, "recon. MSE"),
    "knn_acc": Measure("kNN accuracy", False, "kNN accuracy"),
    "epochs_to_95": Measure("epochs to 95% of the ELBO gain", True, "epochs to 95% of the gain"),
    "fd_samples_mean": Measure("Fréchet distance of the samples (mean image)", True, "FD of samples"),
    "fd_samples_median": Measure(
        "Fréchet distance of the samples (median image)", True, "FD of samples, median"
    ),
    "fd_recon_mean": Measure("Fréchet distance of the reconstructions (mean image)", True, "FD of recon."),
    "fd_recon_median": Measure(
        "Fréchet distance of the reconstructions (median image)", True, "FD of recon., median"
    ),
    "sharpness_mean": Measure("sharpness of the reconstructions (mean image)", False, "sharpness of recon."),
    "sharpness_median": Measure(
        "sharpness of the reconstructions (median image)", False, "sharpness of recon., median"
    ),
    "recon_class_acc_mean": Measure(
        "classifier accuracy on the reconstructions (mean image)", False, "classifier acc. on recon."
    ),
    "recon_class_acc_median": Measure(
        "classifier accuracy on the reconstructions (median image)",
        False,
        "classifier acc. on recon., median",
    ),
}
# the pairwise tests of tests.csv: metric -> lower is better (the median-image twins are not tested)
TESTED = {metric: m.lower_is_better for metric, m in MEASURES.items() if not metric.endswith("_median")}
SE_METRICS = ("bpd_disc", "bpd_deq", "knn_acc")  # with a test-set standard error, `<metric>_se`
QUALITY = tuple(m for m in MEASURES if m.startswith(("fd_", "sharpness_", "recon_class_acc_")))

# the two likelihood columns, as every table, figure and finding names them
METRIC_NAMES = {metric: MEASURES[metric].name for metric in ("bpd_disc", "bpd_deq")}
BPD_LABEL = {metric: f"{name} (lower is better)" for metric, name in METRIC_NAMES.items()}
UNIFORM_BPD = 8.0  # the uniform density on [0, 1]^D, and the uniform distribution on the 256 values

# tests.csv before the hierarchical bootstrap: its columns under today's names, and how its pairs were tested
OLD_TEST_COLUMNS = {"t_p": "p", "t_p_holm": "p_holm"}
METHOD_PAIRED_T = "paired t-test across seeds (tables written before the hierarchical bootstrap)"


class ResultsError(VaebenchError):
    """The results directory or its tables are missing or malformed."""


def family_labels(metrics: pd.DataFrame) -> dict[str, str]:
    """Display label per family: the catalog's; for one it lacks, metrics.json's family_label or the id."""
    labels = {f: catalog.label(f) for f in metrics["family"].unique()}
    if "family_label" in metrics.columns:
        found = metrics.dropna(subset=["family_label"]).groupby("family")["family_label"].first()
        labels.update({family: label for family, label in found.items() if family not in catalog.BY_ID})
    return labels


def note_column(metric: str) -> str:
    """Where a null metric's reason lives: evaluate writes ll_disc_note for ll_disc_* and bpd_disc."""
    kind = metric.removeprefix("bpd_").removeprefix("ll_").removesuffix("_nats").removesuffix("_se")
    return f"ll_{kind}_note" if metric.startswith(("bpd_", "ll_")) else f"{metric}_note"


def read_table(source) -> pd.DataFrame:
    """One table as `vaebench aggregate` writes it (a path or a text buffer), its text columns (notes, ties)
    as strings, empty where the CSV has nothing."""
    table = pd.read_csv(source, keep_default_na=True)
    notes = tuple(c for c in table.columns if c.endswith("_note"))
    for column in ("note", "better", "tied_with", "method") + notes:
        if column in table.columns:
            table[column] = table[column].astype("string").fillna("").astype(str)
    return table


def read_tables(results: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """metrics.csv, summary.csv and tests.csv of a results directory, with a clear error if absent."""
    tables = []
    for name in TABLES:
        path = results / name
        if not path.exists():
            raise ResultsError(f"{path} does not exist: run `vaebench aggregate --results {results}` first")
        tables.append(read_table(path))
    metrics, summary, tests = tables
    return metrics, summary, tests


def normalise_tests(tests: pd.DataFrame) -> pd.DataFrame:
    """tests.csv in today's columns: one written before the hierarchical bootstrap gets p and p_holm from its
    paired t-test (t_p, t_p_holm), n_a = n_b = its n_pairs, method METHOD_PAIRED_T where it ran a test, and no
    image count or run-pair counts (NaN); a table of today's is returned as it is."""
    if "p_holm" in tests.columns or "t_p_holm" not in tests.columns:
        return tests
    old = tests.rename(columns=OLD_TEST_COLUMNS)
    old["n_a"] = old["n_b"] = old["n_pairs"]
    old["method"] = np.where(old["p"].notna(), METHOD_PAIRED_T, "")
    for column in ("n_images", "runs_ahead", "run_pairs", "gap_min", "gap_max"):
        old[column] = math.nan
    return old


def read_per_image(source) -> pd.DataFrame:
    """per_image.csv.gz (layout.PER_IMAGE_TABLE; a path or a text buffer): a row per test image, a column per
    ok run and likelihood."""
    return pd.read_csv(source, index_col=PER_IMAGE_INDEX)


def per_image_runs(per_image: pd.DataFrame, ok: pd.DataFrame, metric: str, dim: int) -> dict[str, np.ndarray]:
    """family -> [seeds, images] bits/dim of its ok runs (rows of `ok`) with a value of `metric` at `dim`, in
    seed order, for each family whose every such run is in the per-image table (a run evaluated before runs
    kept their per-image values leaves its family out: its mean would not be the table's)."""
    if metric not in ok.columns:
        return {}
    runs = ok[(ok["latent_dim"] == dim) & pd.to_numeric(ok[metric], errors="coerce").notna()]
    out = {}
    for family, group in runs.groupby("family", sort=False):
        columns = [per_image_column(metric, family, int(dim), int(seed)) for seed in sorted(group["seed"])]
        if all(c in per_image.columns for c in columns):
            out[family] = per_image[columns].to_numpy(dtype=float).T
    return out


def read_json_object(path: Path) -> dict | None:
    """The object in `path`, or None if the file does not exist; ValueError if it is not a JSON object."""
    try:
        obj = json.loads(Path(path).read_text())
    except FileNotFoundError:
        return None
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{Path(path).name} is not valid JSON ({type(err).__name__})") from None
    if not isinstance(obj, dict):
        raise ValueError(f"{Path(path).name} is not a JSON object")
    return obj


def read_reference(path: Path | None, what: str) -> dict | None:
    """A reference file the report reads beside the tables (None: not given or, for the results directory's
    own baselines.json, not written); a one-line error if it is given and unreadable."""
    if path is None:
        return None
    try:
        obj = read_json_object(path)
    except ValueError as err:
        raise ResultsError(f"{what} {path}: {err}") from None
    return obj


def read_config(path: Path) -> dict | None:
    """A study config (YAML): its mapping, None if it holds none; a one-line error if missing or not YAML."""
    try:
        config = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ResultsError(f"config {path} does not exist") from None
    except yaml.YAMLError as err:
        raise ResultsError(f"config {path} is not valid YAML ({type(err).__name__})") from None
    return config if isinstance(config, dict) else None


def saved_config(results: Path) -> dict | None:
    """The validated config a study's run saved beside its tables (layout.STUDY_CONFIG); None without one."""
    path = results / STUDY_CONFIG
    return read_config(path) if path.exists() else None


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """Every array of an artifacts.npz, or a one-line error if the file is damaged."""
    try:
        with np.load(path) as npz:
            return {k: npz[k] for k in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        why = f"{path} is unreadable ({type(err).__name__}): re-run `vaebench evaluate`"
        raise ResultsError(why) from None


@dataclass
class Study:
    """The tables of one results directory and lazy access to its runs' files."""

    results: Path
    metrics: pd.DataFrame
    summary: pd.DataFrame
    tests: pd.DataFrame
    _npz: dict = field(default_factory=dict)
    baselines: dict | None = None  # baselines.json: models without a latent, scored on the same test images
    manifest: dict | None = None  # the dataset manifest: n_train, n_test (the split's), shape
    quality: dict | None = None  # picture-quality references: test_accuracy, fd_train_vs_test, ...

    def __post_init__(self):
        self.tests = normalise_tests(self.tests)

    @classmethod
    def load(cls, results: Path, manifest: Path | None = None, quality: Path | None = None) -> "Study":
        """The tables of `results`, its baselines.json if written, and the reference files given."""
        manifest_record = read_reference(manifest, "dataset manifest")
        if manifest is not None and manifest_record is None:
            raise ResultsError(f"dataset manifest {manifest} does not exist: run `vaebench data` first")
        return cls(
            results,
            *read_tables(results),
            baselines=read_reference(results / BASELINES, "baselines"),
            manifest=manifest_record,
            quality=read_reference(quality, "picture-quality references"),
        )

    @cached_property
    def selection(self) -> dict[str, dict]:
        """Each family's settings chosen on the validation split (`vaebench select`), by family id; {} for a
        study without a selection."""
        paths = sorted((self.results / SELECTION).glob("*.json"))
        records = [read_reference(path, "selection record") for path in paths]
        return {r["loss"]: r for r in records if self._trained_with(r)}

    def _trained_with(self, record: dict) -> bool:
        """Whether the family's runs here used this choice (a record left by another config is not shown)."""
        runs = self.metrics[self.metrics["family"] == record.get("loss")]
        lrs = pd.to_numeric(runs["lr"], errors="coerce") if "lr" in runs.columns else pd.Series(dtype=float)
        return not lrs.empty and bool((lrs == record["settings"]["lr"]).all())

    @cached_property
    def baseline_rows(self) -> list[dict]:
        """The baselines' rows (id, label, bpd_disc, bpd_deq, ...), best first; [] without baselines.json."""
        rows = list((self.baselines or {}).get("baselines", []))
        return sorted(rows, key=lambda r: r.get("bpd_disc", math.inf))

    def baseline(self, key: str) -> dict | None:
        return next((r for r in self.baseline_rows if r.get("id") == key), None)

    @cached_property
    def n_seeds(self) -> int:
        """The most ok seeds any family has at any latent dimension."""
        return int(self.ok.groupby(["family", "latent_dim"]).size().max()) if not self.ok.empty else 0

    @cached_property
    def families(self) -> list[str]:
        return catalog.family_order(self.metrics["family"])

    @cached_property
    def labels(self) -> dict[str, str]:
        return family_labels(self.metrics)

    @cached_property
    def dims(self) -> list[int]:
        return sorted(int(d) for d in self.metrics["latent_dim"].unique())

    @cached_property
    def ok(self) -> pd.DataFrame:
        return self.metrics[self.metrics["status"] == OK]

    @cached_property
    def _summary_by_key(self) -> pd.DataFrame:
        return self.summary.set_index(["family", "latent_dim"])

    def stat(self, family: str, dim: int, metric: str) -> dict:
        """mean / low / high / n / note of a metric over the ok seeds (summary.csv), and `se`, the standard
        error of that mean where the metric has one: over seeds and test images (the hierarchical bootstrap)
        where the runs kept per-image values, else over the test images alone; NaN where none."""
        summary, key = self._summary_by_key, (family, dim)
        row = summary.loc[key] if key in summary.index else None

        def get(k, d=math.nan):
            return row[k] if row is not None and k in row.index else d

        return {
            "mean": get(f"{metric}_mean"),
            "low": get(f"{metric}_ci95_low"),
            "high": get(f"{metric}_ci95_high"),
            "n": int(get(f"{metric}_n", 0) or 0),
            "note": get(f"{metric}_note", "") or "",
            "se": get(f"{metric}_se"),
        }

    def test(self, metric: str, dim: int, a: str, b: str) -> pd.Series | None:
        """The tests.csv row comparing a and b (either order), turned so that a is family_a (diff_mean is
        a - b, runs_ahead a's), or None. Turned, runs_ahead is run_pairs minus the other's: exact unless two
        runs score exactly the same."""
        t = self.tests
        pair = ((t["family_a"] == a) & (t["family_b"] == b)) | ((t["family_a"] == b) & (t["family_b"] == a))
        hit = t[(t["metric"] == metric) & (t["latent_dim"] == dim) & pair]
        if hit.empty:
            return None
        row = hit.iloc[0].copy()
        if row["family_a"] != a:
            for first, second in (("family_a", "family_b"), ("n_a", "n_b"), ("mean_a", "mean_b")):
                row[first], row[second] = row[second], row[first]
            row["diff_mean"] = -row["diff_mean"]
            row["diff_ci95_low"], row["diff_ci95_high"] = -row["diff_ci95_high"], -row["diff_ci95_low"]
            row["gap_min"], row["gap_max"] = -row["gap_max"], -row["gap_min"]
            row["runs_ahead"] = row["run_pairs"] - row["runs_ahead"]
        return row

    @cached_property
    def per_image_table(self) -> pd.DataFrame | None:
        """per_image.csv.gz (None where aggregate wrote none), read on first use."""
        path = self.results / PER_IMAGE_TABLE
        return read_per_image(path) if path.exists() else None

    def per_image(self, metric: str, dim: int) -> dict[str, np.ndarray] | None:
        """family -> [seeds, images] bits/dim of its ok runs at `dim` (`per_image_runs`), what the evidence
        module resamples; None without per-image values there."""
        if self.per_image_table is None:
            return None
        return per_image_runs(self.per_image_table, self.ok, metric, dim) or None

    def npz(self, run_dir: str) -> dict[str, np.ndarray] | None:
        """The arrays of a run's artifacts.npz (None if it has none), read once per study."""
        if run_dir not in self._npz:
            path = self.results / run_dir / ARTIFACTS
            self._npz[run_dir] = read_npz(path) if path.exists() else None
        return self._npz[run_dir]

    def artifacts(self, family: str, dim: int) -> tuple[int, dict] | None:
        """(seed, arrays) of the lowest-seed ok run of (family, dim) that has artifacts.npz, else None."""
        runs = self.ok[(self.ok["family"] == family) & (self.ok["latent_dim"] == dim)].sort_values("seed")
        for _, run in runs.iterrows():
            arrays = self.npz(run["run_dir"])
            if arrays is not None:
                return int(run["seed"]), arrays
        return None

    @cached_property
    def history(self) -> pd.DataFrame:
        """Every run's history.csv (ok and diverged), stacked, with family / latent_dim / seed / status."""
        frames = []
        for _, run in self.metrics.iterrows():
            path = self.results / run["run_dir"] / HISTORY
            if path.exists():
                try:
                    frame = pd.read_csv(path)
                except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
                    raise ResultsError(f"{path} is unreadable ({type(err).__name__})") from None
                frames.append(
                    frame.assign(
                        family=run["family"],
                        latent_dim=run["latent_dim"],
                        seed=run["seed"],
                        status=run["status"],
                    )
                )
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
