"""The SLURM workflow profile, on a real SLURM.

A one-node cluster (munged, slurmctld and slurmd from Debian's munge and slurm-wlm, started on
localhost in a temporary directory by tests/slurm_cluster.py) runs the tiny two-family study
through `--workflow-profile profiles/slurm`, i.e. Snakemake's own snakemake-executor-plugin-slurm.
The test checks that train and evaluate, and only they, went through sbatch (with their GPU
request), that slurmctld saw every one of them complete, and that the metrics and the report's
headline table equal those of a local run. Without the daemons (or root) it is skipped and says why.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml
from slurm_cluster import SlurmCluster, unavailable_reason
from workflow_copy import copy_workflow

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / ".test" / "config" / "config.yaml"
PROFILE = ROOT / "profiles" / "slurm" / "profile.yaml"
CLUSTER_RULES = {"classifier", "select_train", "train", "warm_compile", "evaluate"}  # the rest are localrules
GPU_RULES = {"select_train", "train", "warm_compile", "evaluate"}  # the classifier trains on the CPU
SKIP_KEYS = re.compile(r"seconds|time|host|command")  # timing and host details differ by design


def plugin_reason() -> str | None:
    try:
        import snakemake_executor_plugin_slurm  # noqa: F401
    except ImportError:
        return "snakemake-executor-plugin-slurm is not installed: pip install -e '.[slurm]'"
    return None


def snakemake(workdir: Path, *args: str, env: dict | None = None, timeout: float = 600) -> tuple[str, float]:
    """Run Snakemake in `workdir` as a user would (cwd = the workflow); output and wall time."""
    cmd = [sys.executable, "-m", "snakemake", *args]
    start = time.monotonic()
    proc = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True, timeout=timeout)
    wall = time.monotonic() - start
    out = proc.stdout + proc.stderr
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}) in {workdir}:\n{out[-6000:]}")
    return out, wall


def fill_in_profile(profile_dir: Path, partition: str) -> dict:
    """Fill the profile's FILL IN lines as a user of this one-node cluster would: its partition,
    and jobs sized to fit two at a time on its 2 CPUs and 4 GB. gpu: 1 stays as shipped."""
    path = profile_dir / "profile.yaml"
    profile = yaml.safe_load(path.read_text())
    for rule in CLUSTER_RULES:
        profile["set-resources"][rule].update(
            slurm_partition=partition, cpus_per_task=1, mem_mb=1000, runtime=10
        )
        profile["set-threads"][rule] = 1
    path.write_text(yaml.safe_dump(profile, sort_keys=False))
    return profile


def leaves(value, path: str = ""):
    """(path, value) for every scalar in a JSON document."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from leaves(item, f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from leaves(item, f"{path}[{i}]")
    else:
        yield path, value


def comparable_metrics(path: Path) -> dict:
    return {key: value for key, value in leaves(json.loads(path.read_text())) if not SKIP_KEYS.search(key)}


def headline_table(report: Path) -> str:
    match = re.search(r"<table id=.headline.>.*?</table>", report.read_text(), flags=re.S)
    assert match, f"no headline table in {report}"
    return match.group(0)


def same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    return a == b


# -- the profile itself (no cluster needed) ---------------------------------------------------


def test_profile_selects_the_slurm_executor_and_sizes_the_cluster_jobs():
    profile = yaml.safe_load(PROFILE.read_text())
    assert profile["executor"] == "slurm"
    assert isinstance(profile["jobs"], int) and profile["jobs"] > 0
    assert profile["default-resources"]["mem_mb"] and profile["default-resources"]["runtime"]
    assert set(profile["set-resources"]) == CLUSTER_RULES
    for rule, res in profile["set-resources"].items():
        assert {"gpu", "cpus_per_task", "mem_mb", "runtime", "slurm_partition"} <= set(res), rule
        assert res["gpu"] == (1 if rule in GPU_RULES else 0), f"{rule}: wrong GPU request"
        assert res["cpus_per_task"] == profile["set-threads"][rule], f"{rule}: CPUs asked != threads used"


@pytest.mark.skipif(plugin_reason() is not None, reason=str(plugin_reason()))
def test_profile_is_accepted_by_snakemake_and_the_plugin(tmp_path):
    """A dry run through the profile (its executor settings parse) gives train and evaluate a
    GPU, a partition, memory and a time limit."""
    workdir = copy_workflow(tmp_path / "wf")
    out, _ = snakemake(
        workdir, "--dry-run", "--workflow-profile", "profiles/slurm", "--configfile", str(TINY)
    )
    blocks = re.findall(r"^rule (?:train|evaluate):\n(?:    .*\n)+", out + "\n", flags=re.M)
    assert len(blocks) == 4, out[-3000:]
    for block in blocks:
        resources = re.search(r"resources: (.*)", block).group(1)
        for expected in ("gpu=1", "slurm_partition=", "mem_mb=", "runtime=", "cpus_per_task="):
            assert expected in resources, block


# -- the tiny study on a real (one-node) SLURM ------------------------------------------------


@pytest.fixture
def cluster():
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    with SlurmCluster(cpus=2, memory_mb=4000, gpus=2) as running:
        yield running


@pytest.mark.slow
def test_tiny_study_on_slurm_equals_the_local_run(cluster, tmp_path):
    on_slurm = copy_workflow(tmp_path / "slurm")
    fill_in_profile(on_slurm / "profiles" / "slurm", cluster.partition)
    # a login node with one GPU of its own, which must limit no cluster job
    login_gpu = tmp_path / "login-gpu"
    login_gpu.mkdir()
    (login_gpu / "nvidia-smi").write_text('#!/bin/sh\necho "GPU 0: Stand-in GPU (UUID: GPU-login)"\n')
    (login_gpu / "nvidia-smi").chmod(0o755)
    env = {**cluster.env, "PATH": f"{login_gpu}{os.pathsep}{cluster.env['PATH']}"}
    env.pop("CUDA_VISIBLE_DEVICES", None)
    try:
        # The README's one command, plus what this test cluster without an accounting database
        # needs: job status from squeue (MinJobAge is raised for it) and quick polling.
        out, cluster_wall = snakemake(
            on_slurm,
            "--workflow-profile",
            "profiles/slurm",
            "--configfile",
            str(TINY),
            "--slurm-status-command",
            "squeue",
            "--slurm-init-seconds-before-status-checks",
            "1",
            "--seconds-between-status-checks",
            "1",
            env=env,
        )
        run_id = re.search(r"SLURM run ID: (\S+)", out).group(1)
        # Snakemake's word for each submission: "Job 3 has been submitted with SLURM jobid 7 (log: ...)"
        submitted = {
            slurm_id: rule
            for slurm_id, rule in re.findall(
                r"has been submitted with SLURM jobid (\d+) \(log: \S*/rule_(\w+?)/", out
            )
        }
        local = set(re.findall(r"^localrule (\w+):", out, flags=re.M))
        assert Counter(submitted.values()) == {"classifier": 1, "train": 2, "evaluate": 2}, (
            f"sbatch got {dict(Counter(submitted.values()))}: only classifier, train and evaluate belong on "
            f"the cluster, every other rule must be a localrule"
        )
        assert {"all", "data", "study_config", "aggregate", "baselines", "figures", "report"} <= local, local
        assert not local & CLUSTER_RULES

        # slurmctld's own record: the same jobs, each asked for a GPU on the partition, all done
        jobs = {job["JobId"]: job for job in cluster.jobs(run_id)}
        assert set(jobs) == set(submitted), (jobs, submitted)
        for slurm_id, job in jobs.items():
            assert job["JobState"] == "COMPLETED" and job["ExitCode"] == "0:0", job
            assert job["Comment"].startswith(f"rule_{submitted[slurm_id]}_"), job
            assert job["Partition"] == cluster.partition, job
            if submitted[slurm_id] in GPU_RULES:
                assert job["TresPerJob"] == "gres:gpu:1", job
            else:
                assert "gpu" not in (job.get("TresPerJob") or ""), job
        trains = sorted(
            (job for job in jobs.values() if submitted[job["JobId"]] == "train"),
            key=lambda j: j["SubmitTime"],
        )
        assert trains[1]["SubmitTime"] < trains[0]["EndTime"], "the login node's GPU held back a training job"
        finished = {
            rec["JobId"]: rec["JobState"] for rec in cluster.completions() if rec.get("Name") == run_id
        }
        assert finished == {slurm_id: "COMPLETED" for slurm_id in submitted}
    except Exception:
        print(locals().get("out", "")[-6000:], cluster.logs(), sep="\n")
        raise

    local_dir = copy_workflow(tmp_path / "local")
    _, local_wall = snakemake(local_dir, "--cores", "2", "--configfile", str(TINY))

    metrics = sorted(p.relative_to(local_dir) for p in (local_dir / "results").rglob("metrics.json"))
    assert len(metrics) == 2
    for rel in metrics:
        expected, got = comparable_metrics(local_dir / rel), comparable_metrics(on_slurm / rel)
        assert set(got) == set(expected), rel
        differing = {k: (expected[k], got[k]) for k in expected if not same(expected[k], got[k])}
        assert not differing, f"{rel}: local vs SLURM differ in {differing}"
    report = Path("report") / yaml.safe_load(TINY.read_text())["study"] / "index.html"
    assert headline_table(on_slurm / report) == headline_table(local_dir / report)

    print(
        f"\nSLURM run {run_id}: "
        + ", ".join(f"{jobs[i]['JobId']} {submitted[i]} {jobs[i]['JobState']}" for i in sorted(jobs, key=int))
    )
    print(f"wall time: SLURM {cluster_wall:.1f} s, local {local_wall:.1f} s")
