"""One GPU per job on a machine with several: a slot allocator built on one lock file per device.

Snakemake's `--resources gpu=N` caps how many GPU jobs run at once but never says which device a
job should use (it sets no CUDA_VISIBLE_DEVICES), so without this every job would pick cuda:0.
A job asking for device "auto" on a machine with more than one visible GPU takes an exclusive
`fcntl.flock` on `gpu<id>.slot<s>.lock` for the first free device and keeps it until the job ends.
The kernel drops a flock when its file descriptor closes, so the slot is freed when the block
exits, when it raises, and when the process dies, even by SIGKILL: no stale locks to clean up.

With one GPU or none, and for an explicit device ("cpu", "cuda:1"), nothing is locked: jobs on a
single GPU share it (how many at once is Snakemake's business). VAEBENCH_JOBS_PER_GPU (default 1)
lets that many jobs share each device on a multi-GPU machine too; the slots are filled breadth
first, so the load spreads over the devices before any device takes a second job.
"""

import fcntl
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from vaebench.errors import VaebenchError
from vaebench.utils import os_reason, pick_device

POLL_SECONDS = 0.5


def default_lock_dir() -> Path:
    """Shared by every job of this user on this machine (the locks only coordinate one machine)."""
    return Path(
        os.environ.get("VAEBENCH_GPU_LOCK_DIR") or Path(tempfile.gettempdir()) / f"vaebench-gpu-{os.getuid()}"
    )


def jobs_per_gpu() -> int:
    raw = os.environ.get("VAEBENCH_JOBS_PER_GPU", "1")
    if not raw.isdigit() or int(raw) < 1:
        raise VaebenchError(f"VAEBENCH_JOBS_PER_GPU must be a positive integer, got {raw!r}")
    return int(raw)


def device_ids(n_devices: int) -> list[str]:
    """A name per visible device that is the same in every job: the CUDA_VISIBLE_DEVICES entry when set
    (so jobs that see different subsets still lock the physical device), else the index."""
    visible = [d.strip() for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    return visible[:n_devices] if len(visible) >= n_devices else [str(i) for i in range(n_devices)]


def _try_lock(path: Path) -> int | None:
    """An open descriptor holding an exclusive flock on `path`, or None if another process holds it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


@contextmanager
def gpu_slot(
    n_devices: int, lock_dir: str | Path | None = None, per_device: int = 1, timeout: float | None = None
) -> Iterator[int]:
    """Hold a slot of one of `n_devices` devices for the block; yields its index (0..n_devices-1).

    Tries slot 0 of every device, then slot 1, ...; when all are taken, polls until one frees up
    (raises VaebenchError after `timeout` seconds, if given).
    """
    lock_dir = Path(lock_dir) if lock_dir is not None else default_lock_dir()
    try:
        lock_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise VaebenchError(
            f"cannot create the GPU lock dir {lock_dir} (VAEBENCH_GPU_LOCK_DIR): {os_reason(err)}"
        ) from None
    ids = device_ids(n_devices)
    candidates = [
        (i, lock_dir / f"gpu{ids[i]}.slot{s}.lock") for s in range(per_device) for i in range(n_devices)
    ]
    deadline = None if timeout is None else time.monotonic() + timeout
    waited = False
    while True:
        for index, path in candidates:
            fd = _try_lock(path)
            if fd is not None:
                try:
                    os.ftruncate(fd, 0)
                    os.write(fd, f"{os.getpid()}\n".encode())  # who holds it, for a person looking
                    yield index
                finally:
                    os.close(fd)  # releases the flock
                return
        if deadline is not None and time.monotonic() > deadline:
            raise VaebenchError(
                f"no free GPU slot among {n_devices} devices after {timeout:g} s (locks in {lock_dir})"
            )
        if not waited:
            print(
                f"all {n_devices} GPUs are busy; waiting for a free one (locks in {lock_dir})",
                file=sys.stderr,
            )
            waited = True
        time.sleep(POLL_SECONDS)


@contextmanager
def device_slot(name: str = "auto") -> Iterator[torch.device]:
    """The device a job runs on: pick_device(name), except that "auto" on a machine with several
    GPUs holds a device of its own for the block (see the module docstring)."""
    n_devices = torch.cuda.device_count() if name == "auto" and torch.cuda.is_available() else 0
    if n_devices <= 1:
        yield pick_device(name)
        return
    with gpu_slot(n_devices, per_device=jobs_per_gpu()) as index:
        yield torch.device("cuda", index)
