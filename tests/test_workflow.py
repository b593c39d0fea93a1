"""The Snakemake DAG: job counts, an end-to-end tiny study, and the documented partial reruns.

Each test works on a copy of the workflow in a temporary directory, so the repository's own
results/ are never touched and a family's code can be edited without touching the package.
"""

import contextlib
import io
import json
import re
from pathlib import Path

import pytest
from workflow_copy import copy_workflow, planned_jobs, snakemake

from vaebench import layout
from vaebench.catalog import FAMILY_IDS
from vaebench.cli import main

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / ".test" / "config" / "config.yaml"


def planned_losses(workdir: Path, rule: str, *args: str) -> set[str]:
    """The {loss} wildcards of the `rule` jobs a dry run would execute."""
    proc = snakemake(workdir, "--dry-run", *args)
    blocks = re.split(r"^(?:local)?rule ", proc.stdout + proc.stderr, flags=re.M)[1:]
    return {re.search(r"\bloss=(\w+)", block)[1] for block in blocks if block.startswith(f"{rule}:")}


@pytest.fixture
def workdir(tmp_path):
    return copy_workflow(tmp_path)


def test_full_config_dry_run_has_one_job_per_run(workdir):
    jobs = planned_jobs(workdir)
    runs = len(FAMILY_IDS) * 3 * 3  # config/config.yaml: every family, 3 latent sizes, 3 seeds
    grid_runs = 3 * (len(FAMILY_IDS) - 2) + 2 * 3 * 3  # 3 learning rates; x 3 scales for the 2 fixed scales
    assert jobs == {
        "all": 1,
        "data": 1,
        "classifier": 1,
        "select_train": grid_runs,  # the initial grid: extensions are planned once its round has run
        "select_round": len(FAMILY_IDS),
        "select": len(FAMILY_IDS),
        "train": runs,
        "warm_compile": len(FAMILY_IDS),  # it compiles: one warm-up per family
        "evaluate": runs,
        "study_config": 1,
        "aggregate": 1,
        "baselines": 1,
        "figures": 1,
        "report": 1,
    }


def test_a_study_in_a_directory_of_its_own_finds_the_default_config(workdir, tmp_path):
    """`snakemake --directory ELSEWHERE` keeps a long study outside the checkout: config/config.yaml is
    found beside the Snakefile, not in the working directory."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert planned_jobs(workdir, "--directory", str(elsewhere)) == planned_jobs(workdir)


def test_the_published_study_chooses_its_settings_before_training(workdir):
    jobs = planned_jobs(workdir, "--configfile", "config/fashion.yaml")
    grid_runs = 3 * (len(FAMILY_IDS) - 2) + 2 * 3 * 3  # 3 learning rates; x 3 scales for the 2 fixed scales
    assert jobs["select_train"] == grid_runs and jobs["select_round"] == jobs["select"] == len(FAMILY_IDS)
    assert jobs["train"] == jobs["evaluate"] == len(FAMILY_IDS) * 2 * 3


@pytest.mark.slow
def test_a_study_with_a_selection_extends_its_grid_and_trains_with_the_settings_chosen(workdir):
    """Two learning rates: the best is at an edge whichever it is, so one extension runs."""
    selection = "selection={epochs: 1, latent_dim: 2, lr: [0.001, 0.003], max_extensions: 1}"
    run = "results/tiny/gaussian/z2/seed0/run.json"
    snakemake(workdir, "--configfile", str(TINY), "--config", selection, "losses=[gaussian]", "--", run)
    chosen = json.loads((workdir / "results" / "tiny" / "selection" / "gaussian.json").read_text())
    tried = {point["lr"]: point["val_elbo_nats"] for point in chosen["tried"]}
    first = json.loads((workdir / "results" / "tiny" / "selection" / "gaussian" / "round0.json").read_text())
    assert first["at_edge"] == ["lr"] and not first["done"] and len(first["next"]) == 1
    extended = first["next"][0]["lr"]
    assert extended in (0.009, 0.000333333333333) and set(tried) == {0.001, 0.003, extended}
    assert (workdir / "results" / "tiny" / "selection" / "gaussian" / f"lr{extended!r}" / "run.json").exists()
    assert chosen["settings"]["lr"] == max(tried, key=tried.get) and chosen["done"]
    assert chosen["extensions"] == 1 and chosen["at_edge"] == (
        ["lr"] if chosen["settings"]["lr"] != 0.003 else []
    )
    trained = json.loads((workdir / run).read_text())
    assert trained["lr"] == chosen["settings"]["lr"] and trained["validation"] == 500


def test_invalid_config_stops_with_one_line(workdir):
    proc = snakemake(workdir, "--dry-run", "--config", "losses=[gausian]", check=False)
    assert proc.returncode != 0
    line = next(text for text in (proc.stdout + proc.stderr).splitlines() if "invalid configuration" in text)
    assert "losses[0]" in line and "did you mean 'gaussian'" in line


def test_lint_is_clean(workdir):
    """The linter exits 0 and names no rule ("Lints for rule NAME"): not its wording of a clean bill."""
    proc = snakemake(workdir, "--lint", check=False)
    output = proc.stdout + proc.stderr
    sources = [workdir / "Snakefile", *(workdir / "workflow" / "rules").glob("*.smk")]
    rules = [name for path in sources for name in re.findall(r"^rule (\w+):", path.read_text(), flags=re.M)]
    assert proc.returncode == 0 and "train" in rules, output
    assert not [name for name in rules if re.search(rf"\brule {name}\b", output)], output


@pytest.mark.slow
def test_tiny_study_end_to_end_and_partial_reruns(workdir):
    tiny = ["--configfile", str(TINY)]
    # 1. only one family: runs only that family's jobs, then aggregates and reports what exists
    snakemake(workdir, *tiny, "--config", "losses=[continuous_bernoulli]")
    results = workdir / "results" / "tiny"
    assert (results / "continuous_bernoulli" / "z2" / "seed0" / "metrics.json").exists()
    assert not (results / "gaussian").exists()
    assert (workdir / "report" / "tiny" / "index.html").exists() and (
        workdir / "report" / "index.html"
    ).exists()

    # the whole tiny study adds the second family only
    assert planned_jobs(workdir, *tiny)["train"] == 1
    snakemake(workdir, *tiny)
    metrics = (results / "metrics.csv").read_text()
    assert "gaussian" in metrics and "continuous_bernoulli" in metrics
    report = workdir / "report" / "tiny" / "index.html"
    assert report.stat().st_size > 10_000
    # the tiny study's own analysis: per-image values for the bootstrap, and a page that says what its one
    # seed cannot check
    assert (results / layout.PER_IMAGE_TABLE).exists()
    page = report.read_text()
    hold = re.search(r"<table id='hold'>.*?</table>", page, re.S).group(0)
    assert hold.count("<tr>") == 5  # the header and the four checks
    assert "One seed per family: nothing to leave out." in hold
    assert "<td class='verdict'>not testable here</td>" in page  # "quicker": every run ended at the cap
    # every stage that runs a vaebench command leaves its benchmark, and the README's stage times read them
    said = io.StringIO()
    with contextlib.redirect_stdout(said):
        assert main(["readme", "--results", str(results), "--benchmarks", str(workdir / "benchmarks")]) == 0
    timed = re.findall(r"^\| ([a-z_]+) \| \d+ \|", said.getvalue(), re.M)
    stages = {"data", "classifier", "train", "evaluate", "baselines", "aggregate", "figures", "report"}
    assert set(timed) == stages
    snakemake(workdir, *tiny, "--report", str(workdir / "report" / "snakemake-report.html"))
    assert (workdir / "report" / "snakemake-report.html").exists()

    # 3. raising K re-runs evaluation only
    jobs = planned_jobs(workdir, *tiny, "--config", "evaluate={k: 8, n_test: 64, batch: 64}")
    assert jobs.get("evaluate") == 2 and "train" not in jobs

    # 2. changing one family's code retrains that family only; the other's files stay untouched
    kept = results / "continuous_bernoulli" / "z2" / "seed0" / "model.pt"
    before = kept.stat().st_mtime_ns
    families = workdir / "src" / "vaebench" / "families.py"
    source = families.read_text()
    edited = re.sub(r'(\n    name = "gaussian"\n)', r"\1    edited_for_test = True\n", source, count=1)
    assert edited != source
    families.write_text(edited)
    jobs = planned_jobs(workdir, *tiny)
    assert jobs.get("train") == 1 and jobs.get("evaluate") == 1
    snakemake(workdir, *tiny)
    assert kept.stat().st_mtime_ns == before


@pytest.mark.slow
def test_editing_a_numerical_helper_retrains_exactly_the_families_that_use_it(workdir):
    """log_ndtr (numerics.py) is the normal's log-CDF: gaussian and logit_normal use it, laplace does not;
    laplace_log_cdf is the other way round. A comment changes nothing. Only training runs (--until
    train): the rerun trigger is the train job's param."""
    until_train = [
        "--configfile",
        str(TINY),
        "--config",
        "losses=[gaussian,laplace,logit_normal]",
        "--until",
        "train",
    ]
    snakemake(workdir, *until_train)
    assert planned_jobs(workdir, *until_train) == {}
    numerics = workdir / "src" / "vaebench" / "numerics.py"
    source = numerics.read_text()

    def edit(old: str, new: str) -> None:
        assert source.count(old) == 1, old
        numerics.write_text(source.replace(old, new))

    edit("    r = 1 / (t * t)\n", "    r = 1 / (t * t)\n    r = r + 0\n")  # in log_ndtr
    assert planned_losses(workdir, "train", *until_train) == {"gaussian", "logit_normal"}
    edit("torch.where(z <= 0, z.clamp(max=0)", "torch.where(z < 0, z.clamp(max=0)")  # in laplace_log_cdf
    assert planned_losses(workdir, "train", *until_train) == {"laplace"}
    edit("    r = 1 / (t * t)\n", "    r = 1 / (t * t)  # a comment changes no fingerprint\n")
    assert planned_jobs(workdir, *until_train) == {}


@pytest.mark.slow
def test_a_forced_rerun_retrains_over_the_finished_run(workdir):
    """Snakemake removes a job's outputs before it runs it, so `vaebench train` finds no finished run in the
    way (it refuses to write over one with other arguments) and `--forcerun train` retrains."""
    one = ["--configfile", str(TINY), "--config", "losses=[gaussian]", "--until", "train"]
    snakemake(workdir, *one)
    run = workdir / "results" / "tiny" / "gaussian" / "z2" / "seed0"
    before = (run / "run.json").read_text()
    assert planned_jobs(workdir, *one) == {}
    snakemake(workdir, *one, "--forcerun", "train")
    after = (run / "run.json").read_text()
    log = workdir / "logs" / "train" / "tiny" / "gaussian" / "z2" / "seed0.log"
    assert after != before and "nothing to do" not in log.read_text()
    assert (run / "model.pt").exists() and not (run / "checkpoint.pt").exists()
