# Helpers shared by all rule files - validated config, run paths, CLI options, resources.
# Every path and file name comes from vaebench.layout, its one home.

import functools
import os
import shlex
import sys
from pathlib import Path

import yaml

from vaebench import layout
from vaebench.catalog import FAMILY_IDS
from vaebench.config import ConfigError, check, load_schema, with_defaults
from vaebench.errors import VaebenchError
from vaebench.fingerprint import family_fingerprint
from vaebench.gpus import JOBS_PER_GPU_VARIABLE, jobs_per_gpu, visible_gpus
from vaebench.projection import study_forecast
from vaebench.select import grid
from vaebench.utils import read_json
from vaebench.settings import compile_mode

SCHEMA = Path(workflow.basedir) / "workflow" / "schemas" / "config.schema.yaml"
PACKAGE_SOURCE = Path(workflow.basedir) / "src" / "vaebench"
RESULTS, RUN, GRID_POINT = layout.RESULTS, layout.RUN, layout.GRID_POINT
METRICS_TABLE, SUMMARY_TABLE, TESTS_TABLE = (f"{RESULTS}/{name}" for name in layout.TABLES)
# a job's name under logs/RULE/ and benchmarks/RULE/
RUN_JOB = f"{{study}}/{layout.RUN_DIR}"
GRID_JOB = "{study}/{loss}/{point}"

try:
    SCHEMA_WITH_DEFAULTS = load_schema(SCHEMA)
    # --config values arrive as strings; the schema's enums and defaults come from vaebench.settings
    config.update(with_defaults(check(config, SCHEMA_WITH_DEFAULTS), SCHEMA_WITH_DEFAULTS))
except ConfigError as err:
    sys.exit(f"vaebench: invalid configuration: {err}")
config.setdefault("losses", list(FAMILY_IDS))  # every family, in catalog order
config.setdefault("study", config["dataset"])
# a study is one dataset: its results are results/STUDY/ ({study} in the paths), its data resources/DATASET
STUDY, DATASET = config["study"], config["dataset"]
DATA = layout.MANIFEST.format(dataset=DATASET)


def gpu_job_limit(gpus):
    """At most one job per GPU found (times VAEBENCH_JOBS_PER_GPU) in a local run, unless the command line
    names a `gpu` resource itself: Snakemake enforces a resource only when it is given a total
    (vaebench.gpus says why that matters). None on a machine without a GPU."""
    if "gpu" in workflow.global_resources:
        return None
    return gpus * jobs_per_gpu() or None


GPU_JOB_LIMIT = None
if workflow.is_main_process:  # not in a cluster job, which runs one job on what it was granted
    try:
        GPUS = visible_gpus()
        GPU_JOB_LIMIT = gpu_job_limit(GPUS)
    except VaebenchError as err:
        sys.exit(f"vaebench: {err}")
    if GPU_JOB_LIMIT is not None:
        workflow.global_resources["gpu"] = GPU_JOB_LIMIT
        print(
            f"vaebench: at most {GPU_JOB_LIMIT} GPU job(s) at once (the GPUs found x {JOBS_PER_GPU_VARIABLE}); "
            "--resources gpu=N sets another limit",
            file=sys.stderr,
        )
    # a study of days says so before it starts, in a dry run too (onstart runs in real runs only)
    forecast = study_forecast(config, workflow.resource_settings.cores or os.cpu_count(), GPUS)
    if forecast is not None:
        print(forecast, file=sys.stderr)


onstart:
    # the executor is known only now: a cluster's jobs each get a GPU from its scheduler, so this machine's
    # count must limit none of them
    if GPU_JOB_LIMIT is not None and not workflow.local_exec:
        workflow.register_resource("gpu", sys.maxsize)


def run_dirs():
    """Every run directory the config asks for."""
    return expand(RUN, study=STUDY, loss=config["losses"], dim=config["latent_dims"], seed=config["seeds"])


def final_outputs():
    return [f"{run}/{layout.METRICS}" for run in run_dirs()] + [layout.REPORT_INDEX]


def train_options():
    """The training flags every run of the study shares."""
    return {
        "arch": config["arch"],
        "hidden": config["hidden"],
        "device": config["device"],
        "data_dir": config["data_dir"],
        **config["train"],
    }


def evaluate_options():
    """The evaluation flags every run of the study shares."""
    evaluate = config["evaluate"]
    return {
        "device": config["device"],
        "data_dir": config["data_dir"],
        **evaluate,
        "compile": compile_mode(evaluate["compile"]),
    }


# the record of a family's warm-up: its compiled evaluation kernels are in the compile cache
WARM = f"{config['evaluate']['compile_cache']}/warm/{{study}}/{{loss}}.json"


def warm_input(wildcards):
    """A family's warm-up, which its evaluations wait for, when the study compiles: compiled side by side,
    the same kernels would be built once per evaluation, each far slower than one build alone. (`auto` is
    decided by each job on its device, so it gets none.)"""
    if compile_mode(config["evaluate"]["compile"]) != "true":
        return []
    return [WARM.format(study=wildcards.study, loss=wildcards.loss)]


def warm_run(wildcards):
    """The run a family's warm-up compiles with: its first, so the kernels' shapes and the family's settings
    are the evaluations' own."""
    first = RUN.format(
        study=wildcards.study, loss=wildcards.loss, dim=config["latent_dims"][0], seed=config["seeds"][0]
    )
    return {"model": f"{first}/{layout.MODEL}", "run": f"{first}/{layout.RUN_RECORD}"}


def selection_grid(loss):
    """A family's grid points: the settings each selection run trains with."""
    return grid(loss, config["selection"])


def grid_point(wildcards):
    """The settings of one selection run, named by its {point}."""
    return layout.parse_point(wildcards.point)


def selection_round(wildcards, round_):
    """What a family's selection round decided (once Snakemake has run that checkpoint)."""
    job = checkpoints.select_round.get(study=wildcards.study, loss=wildcards.loss, round=round_)
    return read_json(Path(job.output[0]), "the selection round did not write it")


def selection_round_runs(wildcards):
    """The grid runs a selection round chooses from: the family's grid, and the points each earlier round
    added further out."""
    points = selection_grid(wildcards.loss)
    for earlier in range(int(wildcards.round)):
        points += selection_round(wildcards, earlier)["next"]
    return expand(
        f"{GRID_POINT}/{layout.RUN_RECORD}",
        point=[layout.point_name(p) for p in points],
        allow_missing=True,
    )


def last_selection_round(wildcards):
    """The first selection round whose choice is final: inside the points tried, or at the extension limit."""
    round_ = 0
    while not selection_round(wildcards, round_)["done"]:
        round_ += 1
    return layout.SELECTION_ROUND.format(study=wildcards.study, loss=wildcards.loss, round=round_)


def selection_input(wildcards):
    """The chosen settings a study run trains with, when the study has a selection block."""
    if "selection" not in config:
        return {}
    return {"selected": f"{layout.CHOICE}.json".format(study=wildcards.study, loss=wildcards.loss)}


def quality_input():
    """The picture-quality references of the test images, when the workflow has the rule that writes them."""
    return [layout.QUALITY.format(dataset=DATASET)] if workflow.is_rule("classifier") else []


def cli_options(options):
    """Render {'k': 5000, 'n_test': None, 'dequantize': False} as quoted CLI flags.

    None is left out (the CLI default applies), False booleans become --no-<flag>.
    No config value reaches the shell unquoted.
    """
    words = []
    for key, value in options.items():
        flag = f"--{key.replace('_', '-')}"
        if value is True:
            words.append(flag)
        elif value is False:
            words.append(f"--no-{flag[2:]}")
        elif value is not None:
            words += [flag, shlex.quote(str(value))]
    return " ".join(words)


def job_resource(rule_name, key, default):
    return config.get("resources", {}).get(rule_name, {}).get(key, default)


@functools.cache
def _family_code(loss):
    return family_fingerprint(PACKAGE_SOURCE, loss)


def family_code(wildcards):
    """Rerun trigger: a hash of the code the family runs (its class and the vaebench helpers it uses), so
    editing a helper retrains exactly the families that use it (hashed once per family and Snakemake run,
    not once per job)."""
    return _family_code(wildcards.loss)
