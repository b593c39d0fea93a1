"""One GPU per job on a machine with several: a slot allocator built on one lock file per device.

Snakemake's `--resources gpu=N` caps how many GPU jobs run at once but never says which device a
job should use (it sets no CUDA_VISIBLE_DEVICES), so without this every job would pick cuda:0.
A job asking for device "auto" or "cuda" on a machine with more than one visible GPU takes an exclusive
`fcntl.flock` on `gpu<uuid>.slot<s>.lock` for the first free device, keeps it until the job ends and makes
it the job's current CUDA device. A lock is named by the device's UUID, not its index: SLURM renumbers
the devices it grants from 0 in every job, so two jobs on one node would otherwise lock different
devices under one name, or one device under two.
The kernel drops a flock when its file descriptor closes, so the slot is freed when the block
exits, when it raises, and when the process dies, even by SIGKILL: no stale locks to clean up.

With one GPU or none, and for a numbered device ("cpu", "cuda:1"), nothing is locked: jobs on a
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
from vaebench.gpus import jobs_per_gpu
from vaebench.utils import os_reason, pick_device

POLL_SECONDS = 0.5


def default_lock_dir() -> Path:
    """Shared by every job of this user on this machine (the locks only coordinate one machine)."""
    return Path(
        os.environ.get("VAEBENCH_GPU_LOCK_DIR") or Path(tempfile.gettempdir()) / f"vaebench-gpu-{os.getuid()}"
    )


def device_ids(n_devices: int) -> list[str]:
    """A name per visible device that is the same in every job whatever numbering it sees: the device's
    UUID (the index only where torch does not report one)."""
    ids = []
    for index in range(n_devices):
        uuid = getattr(torch.cuda.get_device_properties(index), "uuid", None)
        ids.append(str(uuid) if uuid is not None else str(index))
    return ids


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
    n_devices: int,
    lock_dir: str | Path | None = None,
    per_device: int = 1,
    timeout: float | None = None,
    ids: list[str] | None = None,
) -> Iterator[int]:
    """Hold a slot of one of `n_devices` devices for the block; yields its index (0..n_devices-1).

    The locks are named by `ids` (device_ids; default: the indices). Tries slot 0 of every device, then
    slot 1, ...; when all are taken, polls until one frees up (raises VaebenchError after `timeout`
    seconds, if given).
    """
    lock_dir = Path(lock_dir) if lock_dir is not None else default_lock_dir()
    try:
        lock_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise VaebenchError(
            f"cannot create the GPU lock dir {lock_dir} (VAEBENCH_GPU_LOCK_DIR): {os_reason(err)}"
        ) from None
    ids = ids or [str(i) for i in range(n_devices)]
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
    """The device a job runs on, made the current CUDA device: pick_device(name), except that "auto" or
    "cuda" on a machine with several GPUs holds a device of its own for the block (the module docstring)."""
    device = pick_device(name)
    n_devices = torch.cuda.device_count() if device.type == "cuda" and device.index is None else 0
    if n_devices <= 1:
        if device.type == "cuda":
            device = torch.device("cuda", device.index or 0)
            torch.cuda.set_device(device)
        yield device
        return
    with gpu_slot(n_devices, per_device=jobs_per_gpu(), ids=device_ids(n_devices)) as index:
        device = torch.device("cuda", index)
        torch.cuda.set_device(device)
        yield device
