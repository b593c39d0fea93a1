"""A local run starts at most one job per GPU found (times VAEBENCH_JOBS_PER_GPU); a CPU-only machine and a
command line that names the gpu resource itself are left alone. The GPUs are faked: a stand-in nvidia-smi
on PATH, or CUDA_VISIBLE_DEVICES. And a study of weeks says so in one line before it starts."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from workflow_copy import ROOT, copy_workflow

from vaebench.errors import VaebenchError
from vaebench.gpus import jobs_per_gpu, visible_gpus

TINY = ROOT / ".test" / "config" / "config.yaml"
LIMIT_LINE = re.compile(r"^vaebench: at most (\d+) GPU job", flags=re.M)


def fake_nvidia_smi(folder: Path, n_gpus: int) -> Path:
    """A directory holding an nvidia-smi that lists `n_gpus` devices (and a MIG line, which is no GPU)."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = "".join(f'echo "GPU {i}: Stand-in GPU (UUID: GPU-{i:04d})"\n' for i in range(n_gpus))
    script = folder / "nvidia-smi"
    script.write_text(f'#!/bin/sh\n{lines}echo "  MIG 1g.5gb Device 0: (UUID: MIG-0)"\n')
    script.chmod(0o755)
    return folder


def machine(tmp_path: Path, n_gpus: int | None, **variables: str) -> dict:
    """The environment of a machine with `n_gpus` GPUs (None: no NVIDIA driver at all)."""
    env = {key: value for key, value in os.environ.items() if key != "CUDA_VISIBLE_DEVICES"}
    env.pop("VAEBENCH_JOBS_PER_GPU", None)
    path = [p for p in env["PATH"].split(os.pathsep) if not (Path(p) / "nvidia-smi").exists()]
    if n_gpus is not None:
        path.insert(0, str(fake_nvidia_smi(tmp_path / "driver", n_gpus)))
    return {**env, "PATH": os.pathsep.join(path), **variables}


@pytest.mark.parametrize(
    ("n_gpus", "variables", "expected"),
    [
        (None, {}, 0),
        (2, {}, 2),
        (2, {"CUDA_VISIBLE_DEVICES": "1"}, 1),
        (None, {"CUDA_VISIBLE_DEVICES": "0,1,2"}, 3),
        (2, {"CUDA_VISIBLE_DEVICES": ""}, 0),
        (2, {"CUDA_VISIBLE_DEVICES": "-1"}, 0),
    ],
)
def test_visible_gpus_counts_what_cuda_would_see(tmp_path, monkeypatch, n_gpus, variables, expected):
    for key, value in machine(tmp_path, n_gpus, **variables).items():
        monkeypatch.setenv(key, value)
    if "CUDA_VISIBLE_DEVICES" not in variables:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert visible_gpus() == expected


def test_jobs_per_gpu_reads_its_variable_and_rejects_nonsense(monkeypatch):
    monkeypatch.setenv("VAEBENCH_JOBS_PER_GPU", "2")
    assert jobs_per_gpu() == 2
    monkeypatch.setenv("VAEBENCH_JOBS_PER_GPU", "0")
    with pytest.raises(VaebenchError, match="VAEBENCH_JOBS_PER_GPU must be a positive integer"):
        jobs_per_gpu()


def snakemake(workdir: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "--cores", "2", "--directory", str(workdir)]
    cmd += ["--snakefile", str(workdir / "Snakefile"), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def gpu_limit(proc: subprocess.CompletedProcess) -> int | None:
    """The GPU job limit the workflow announced, or None."""
    found = LIMIT_LINE.findall(proc.stderr)
    assert len(found) <= 1, "the limit is announced once"
    return int(found[0]) if found else None


def test_a_dry_run_limits_gpu_jobs_to_the_gpus_found(tmp_path):
    workdir = copy_workflow(tmp_path / "wf")
    dry = ("--dry-run", "--configfile", str(TINY))
    assert gpu_limit(snakemake(workdir, machine(tmp_path, None), *dry)) is None  # CPU-only: unaffected
    assert gpu_limit(snakemake(workdir, machine(tmp_path, 2), *dry)) == 2
    assert gpu_limit(snakemake(workdir, machine(tmp_path, 2, VAEBENCH_JOBS_PER_GPU="3"), *dry)) == 6
    given = snakemake(workdir, machine(tmp_path, 2), *dry, "--resources", "gpu=5")
    assert gpu_limit(given) is None  # the user's own limit stands


def test_a_local_run_enforces_the_limit(tmp_path):
    """Snakemake's own record of the totals it schedules against: the GPU count, not the cores."""
    workdir = copy_workflow(tmp_path / "wf")
    proc = snakemake(workdir, machine(tmp_path, 1), "resources/mnist5k.json", "--configfile", str(TINY))
    assert re.search(r"Provided resources: .*gpu\W+1\b", proc.stdout + proc.stderr)


def test_a_dry_run_of_the_full_study_says_how_long_it_would_take(tmp_path):
    """One line before a study of weeks starts, on a CPU-only machine; none for the tiny study."""
    workdir = copy_workflow(tmp_path / "wf")
    full = snakemake(workdir, machine(tmp_path, None), "--dry-run").stderr
    lines = [line for line in full.splitlines() if "projected to take" in line]
    assert len(lines) == 1 and "days on this machine's 2 CPU core(s)" in lines[0]
    tiny = snakemake(workdir, machine(tmp_path, None), "--dry-run", "--configfile", str(TINY)).stderr
    assert "projected to take" not in tiny
