"""How many GPU jobs this machine runs at once, without importing torch: the workflow asks at every start,
and importing torch (let alone initialising CUDA) would cost every `snakemake` call seconds.

Snakemake enforces a resource only when `--resources` names it, so without a limit a local run starts as
many GPU jobs as it has cores, each sizes its evaluation chunk from the free memory at its start, and
together they run out of memory. The limit is the number of GPUs this process may use times
VAEBENCH_JOBS_PER_GPU, the same share of a device that gpu_slots gives a job.
"""

import os
import shutil
import subprocess

from vaebench.errors import VaebenchError

JOBS_PER_GPU_VARIABLE = "VAEBENCH_JOBS_PER_GPU"
HIDES_EVERY_GPU = ("", "-1", "NoDevFiles")  # CUDA_VISIBLE_DEVICES values that leave no device visible


def jobs_per_gpu() -> int:
    """How many jobs may share one device (VAEBENCH_JOBS_PER_GPU, default 1): for the workflow's limit and
    for gpu_slots' slots alike."""
    raw = os.environ.get(JOBS_PER_GPU_VARIABLE, "1")
    if not raw.isdigit() or int(raw) < 1:
        raise VaebenchError(f"{JOBS_PER_GPU_VARIABLE} must be a positive integer, got {raw!r}")
    return int(raw)


def visible_gpus() -> int:
    """The GPUs this process may use: the devices CUDA_VISIBLE_DEVICES names when it is set (it narrows
    what CUDA sees, whatever is installed), else the GPUs `nvidia-smi -L` lists (none without the
    driver's tool: a CPU-only machine)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        visible = visible.strip()
        return 0 if visible in HIDES_EVERY_GPU else len(visible.split(","))
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return 0
    try:
        listing = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return 0
    return sum(line.startswith("GPU ") for line in listing.stdout.splitlines())
