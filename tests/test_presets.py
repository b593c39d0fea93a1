"""Every preset stands alone: a dry run of each config under config/ and .test/config/ plans that file's
jobs only (its families x latent sizes x seeds, its selection grid, its validation split), never parts of
config/config.yaml, which applies only when no --configfile is given. The workflow's copy gives its
config/config.yaml a selection block and a validation split of its own, which no preset may inherit."""

import re

import pytest
import yaml
from workflow_copy import ROOT, copy_workflow, snakemake

from vaebench.catalog import FAMILY_IDS
from vaebench.select import grid
from vaebench.settings import TrainConfig

DEFAULT_VALIDATION = 7  # no preset holds out this many images
PRESETS = sorted((ROOT / "config").glob("*.yaml")) + sorted((ROOT / ".test" / "config").glob("*.yaml"))


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    workdir = copy_workflow(tmp_path_factory.mktemp("presets"))
    default = workdir / "config" / "config.yaml"
    config = yaml.safe_load(default.read_text())
    config["train"]["validation"] = DEFAULT_VALIDATION
    config["selection"] = {"epochs": 1, "lr": [0.001, 0.01]}
    default.write_text(yaml.safe_dump(config))
    return workdir


def dry_run(workdir, *args: str) -> tuple[dict[str, int], list[str]]:
    """Rule -> number of jobs, and the shell commands, of a dry run."""
    text = snakemake(workdir, "--dry-run", "--printshellcmds", *args).stdout
    table = text.split("Job stats:", 1)[1]
    jobs = {rule: int(n) for rule, n in re.findall(r"^(\w+)\s+(\d+)\s*$", table, flags=re.M)}
    jobs.pop("total")
    return jobs, re.findall(r"^Shell command: (.*)$", text, flags=re.M)


def option_values(commands: list[str], command: str, flag: str) -> set[str | None]:
    """The values of `flag` in every `command` line (None where it is absent)."""
    found = set()
    for line in commands:
        if line.startswith(f"vaebench {command} "):
            match = re.search(rf"{flag} (\S+)", line)
            found.add(match[1] if match else None)
    return found


@pytest.mark.parametrize("path", PRESETS, ids=lambda p: str(p.relative_to(ROOT)))
def test_a_preset_plans_exactly_its_own_jobs(workdir, path):
    preset = yaml.safe_load(path.read_text())
    jobs, commands = dry_run(workdir, "--configfile", str(path))
    families = preset.get("losses", FAMILY_IDS)
    runs = len(families) * len(preset["latent_dims"]) * len(preset["seeds"])
    assert jobs["train"] == jobs["evaluate"] == runs
    selection = preset.get("selection")
    if selection is None:
        assert not {rule for rule in jobs if rule.startswith("select")}
    else:
        assert jobs["select_train"] == sum(len(grid(family, selection)) for family in families)
        assert jobs["select_round"] == jobs["select"] == len(families)  # the first round: the grid
    validation = preset["train"].get("validation", TrainConfig().validation)
    assert option_values(commands, "train", "--validation") == {str(validation)}
