"""Where a study's files live, torch-free: the run directory layout and the names of the files the stages
write. The rules (workflow/rules/*.smk) and every stage take paths and file names from here, so a file is
named once.

    resources/DATASET.json                     vaebench data (the manifest)
    resources/quality/DATASET.pt, .json        vaebench classifier
    results/STUDY/selection/FAMILY/POINT/      vaebench train, one run per grid point (studies with selection)
    results/STUDY/selection/FAMILY/roundR.json vaebench select, each round of the grid's extension
    results/STUDY/selection/FAMILY.json        the last round's choice
    results/STUDY/FAMILY/zDIM/seedSEED/        a run directory: vaebench train, then vaebench evaluate
    results/STUDY/*.csv, baselines.json        vaebench aggregate, vaebench baselines
    results/STUDY/per_image.csv.gz             vaebench aggregate: each test image's bits/dim per ok run
    results/STUDY/figures/                     vaebench figures
    report/STUDY/index.html                    vaebench report

A study (the config's `study`) has one dataset; its results are under its own name, so two studies of one
dataset (a quick one and a converged one, say) never write over each other, while the data and the picture
classifier, which depend on the dataset only, are shared. The templates use Snakemake's wildcard names
({study}, {dataset}, {loss}, {dim}, {seed}, {point}, {round}).
"""

import re
from pathlib import Path

from vaebench.catalog import FAMILY_IDS
from vaebench.settings import DATASETS

# the files of a run directory
MODEL = "model.pt"
HISTORY = "history.csv"
RUN_RECORD = "run.json"
CHECKPOINT = "checkpoint.pt"  # an unfinished run's last epoch, removed when the run finishes
METRICS = "metrics.json"
ARTIFACTS = "artifacts.npz"
TRAINED = (MODEL, HISTORY, RUN_RECORD)  # what a finished training leaves
# in ARTIFACTS: each test image's importance-sampled log-likelihood (float64 nats, the evaluated test images
# in order, the same for every run of a study), by likelihood column
PER_IMAGE_LL = {"deq": "ll_deq_nats", "disc": "ll_disc_nats"}

# the files of a results directory
TABLES = ("metrics.csv", "summary.csv", "tests.csv")  # vaebench aggregate
# vaebench aggregate, where the runs kept PER_IMAGE_LL: one row per test image (index column PER_IMAGE_INDEX),
# one column per ok run and likelihood (per_image_column), in bits/dim: what docs/statistics.md resamples
PER_IMAGE_TABLE = "per_image.csv.gz"
PER_IMAGE_INDEX = "image"
BASELINES = "baselines.json"  # vaebench baselines
STUDY_CONFIG = "study.yaml"  # the validated config the report shows
SELECTION = "selection"  # FAMILY.json from vaebench select, the grid runs and its rounds in FAMILY/
FIGURES = "figures"

RESULTS = "results/{study}"
RUN_DIR = "{loss}/z{dim}/seed{seed}"  # a run directory inside RESULTS
RUN = f"{RESULTS}/{RUN_DIR}"
CHOICE = f"{RESULTS}/{SELECTION}/{{loss}}"  # + ".json": the settings chosen for a family
GRID_POINT = f"{CHOICE}/{{point}}"  # a run directory of the family's grid, named by point_name
SELECTION_ROUND = f"{CHOICE}/round{{round}}.json"  # one round of vaebench select
MANIFEST = "resources/{dataset}.json"
CLASSIFIER = "resources/quality/{dataset}.pt"
QUALITY = "resources/quality/{dataset}.json"  # the classifier's accuracy and reference values
REPORT = "report/{study}/index.html"
REPORT_INDEX = "report/index.html"

STUDY_NAME = "[a-z0-9_-]+"  # a study's name, as the config schema allows it

# what each wildcard may match; a run directory's family is a catalog id
WILDCARDS = {
    "study": STUDY_NAME,
    "dataset": "|".join(DATASETS),
    "loss": "|".join(FAMILY_IDS),
    "dim": r"\d+",
    "seed": r"\d+",
    "point": r"lr\d[^/]*",  # point_name's: the learning rate first
    "round": r"\d+",
}
# a run directory as aggregate finds it on disk: any family name (a study may hold one the catalog dropped)
RUN_DIR_PATTERN = re.compile(RUN_DIR.format(loss=r"([A-Za-z0-9_]+)", dim=r"(\d+)", seed=r"(\d+)"))
RUN_DIR_GLOB = RUN_DIR.format(loss="*", dim="*", seed="*")


def run_dir(loss: str, dim: int, seed: int) -> str:
    """A run directory, relative to its results directory."""
    return RUN_DIR.format(loss=loss, dim=dim, seed=seed)


def parse_run_dir(path: str | Path) -> tuple[str, int, int] | None:
    """(family, latent_dim, seed) from .../FAMILY/zDIM/seedSEED, or None if the path is not a run."""
    parts = Path(path).parts[-3:]
    match = RUN_DIR_PATTERN.fullmatch("/".join(parts)) if len(parts) == 3 else None
    if match is None:
        return None
    return match[1], int(match[2]), int(match[3])


def find_run_dirs(results: Path) -> list[Path]:
    """Every run directory under a results directory, sorted."""
    return sorted(p for p in results.glob(RUN_DIR_GLOB) if p.is_dir() and parse_run_dir(p))


def per_image_column(metric: str, loss: str, dim: int, seed: int) -> str:
    """A column of PER_IMAGE_TABLE: the metric, then the run directory ('bpd_disc/gaussian/z16/seed0')."""
    return f"{metric}/{run_dir(loss, dim, seed)}"


def parse_per_image_column(column: str) -> tuple[str, str, int, int] | None:
    """(metric, family, latent_dim, seed) of a PER_IMAGE_TABLE column (per_image_column's inverse) or None."""
    metric, _, run = column.partition("/")
    parsed = parse_run_dir(run) if metric and run.count("/") == 2 else None
    return None if parsed is None else (metric, *parsed)


def point_name(settings: dict[str, float]) -> str:
    """A grid point's directory name (lr0.001, lr0.001-sigma0.1): named by its settings, not by its place
    in the grid, so a point that the grid's extension adds has its own; the learning rate first and the
    rest by name, so one point has one name whatever order its settings come in (JSON sorts them)."""
    keys = sorted(settings, key=lambda key: (key != "lr", key))
    return "-".join(f"{key}{float(settings[key])!r}" for key in keys)


def parse_point(name: str) -> dict[str, float]:
    """The settings of a grid point from its directory name (point_name's inverse)."""
    settings = {}
    for part in re.split(r"-(?=[a-z])", name):
        match = re.fullmatch(r"([a-z_]+)(\d[\d.e+-]*)", part)
        if match is None:
            raise ValueError(f"{name!r} is not a grid point's name (like lr0.001-sigma0.1)")
        settings[match[1]] = float(match[2])
    return settings
