"""The GPU slot allocator, on CPU: N simulated devices, concurrent processes, killed and failing holders."""

import itertools
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from vaebench.errors import VaebenchError
from vaebench.gpu_slots import device_ids, device_slot, gpu_slot

HOLDER = """
import sys, time
from vaebench.gpu_slots import gpu_slot
with gpu_slot(1, sys.argv[1]) as index:
    print("held", index, flush=True)
    time.sleep(60)
"""


def _job(lock_dir: str, n_devices: int, holds: int, log: str) -> None:
    """A worker: take a slot `holds` times, hold it briefly, append 'index start end' (monotonic clock)."""
    for _ in range(holds):
        with gpu_slot(n_devices, lock_dir) as index:
            start = time.monotonic()
            time.sleep(0.05)
            end = time.monotonic()
        with open(log, "a") as f:
            f.write(f"{index} {start} {end}\n")


def test_concurrent_jobs_never_share_a_device(tmp_path):
    n_devices, n_jobs, holds = 2, 4, 5
    ctx = multiprocessing.get_context("fork")  # separate processes, as Snakemake's jobs are; fork starts fast
    logs = [tmp_path / f"job{j}.log" for j in range(n_jobs)]
    procs = [
        ctx.Process(target=_job, args=(str(tmp_path / "locks"), n_devices, holds, str(log))) for log in logs
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    intervals = [
        tuple(float(t) for t in line.split()) for log in logs for line in log.read_text().splitlines()
    ]
    assert len(intervals) == n_jobs * holds
    assert {int(i) for i, _, _ in intervals} == set(range(n_devices))
    for device in range(n_devices):
        mine = sorted((s, e) for i, s, e in intervals if i == device)
        assert all(later[0] >= earlier[1] for earlier, later in itertools.pairwise(mine)), (
            f"device {device} shared"
        )
    # more jobs than devices, so some waited: at every moment at most n_devices holders
    events = sorted([(s, 1) for _, s, _ in intervals] + [(e, -1) for _, _, e in intervals])
    running = [sum(d for _, d in events[: k + 1]) for k in range(len(events))]
    assert max(running) == n_devices


def test_killed_holder_releases_its_slot(tmp_path):
    lock_dir = tmp_path / "locks"
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(lock_dir)],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert proc.stdout.readline().split() == ["held", "0"]
        with pytest.raises(VaebenchError, match="no free GPU slot"):
            with gpu_slot(1, lock_dir, timeout=0.2):
                pass
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    with gpu_slot(1, lock_dir, timeout=5) as index:
        assert index == 0


def test_an_exception_in_the_block_releases_the_slot(tmp_path):
    with pytest.raises(RuntimeError, match="job failed"):
        with gpu_slot(1, tmp_path) as index:
            assert index == 0
            with pytest.raises(VaebenchError):  # held: a second holder (even in this process) must wait
                with gpu_slot(1, tmp_path, timeout=0):
                    pass
            raise RuntimeError("job failed")
    with gpu_slot(1, tmp_path, timeout=0) as index:
        assert index == 0


def test_slots_fill_devices_breadth_first(tmp_path):
    with (
        gpu_slot(2, tmp_path, per_device=2) as a,
        gpu_slot(2, tmp_path, per_device=2) as b,
        gpu_slot(2, tmp_path, per_device=2) as c,
        gpu_slot(2, tmp_path, per_device=2) as d,
    ):
        assert (a, b, c, d) == (0, 1, 0, 1)
        assert sorted(p.name for p in Path(tmp_path).glob("*.lock")) == [
            "gpu0.slot0.lock",
            "gpu0.slot1.lock",
            "gpu1.slot0.lock",
            "gpu1.slot1.lock",
        ]


def _fake_gpus(monkeypatch, uuids: list[str]) -> list[int]:
    """CUDA devices on a CPU: torch sees len(uuids) of them, each with its UUID; returns the list that
    torch.cuda.set_device calls append to."""
    current = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: len(uuids))
    monkeypatch.setattr(
        torch.cuda, "get_device_properties", lambda index: SimpleNamespace(uuid=uuids[index], name="fake")
    )
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: current.append(torch.device(device).index))
    return current


def test_locks_are_named_by_the_device_uuid_whatever_the_job_numbers_it(tmp_path, monkeypatch):
    """SLURM numbers the devices it grants from 0 in every job: two jobs seeing each other's physical
    device as cuda:0 must wait on one lock, and one seeing a device at another index must take it too."""
    monkeypatch.setenv("VAEBENCH_GPU_LOCK_DIR", str(tmp_path))
    _fake_gpus(monkeypatch, ["GPU-aaaa", "GPU-bbbb"])
    assert device_ids(2) == ["GPU-aaaa", "GPU-bbbb"]
    with device_slot("auto") as first:
        assert first == torch.device("cuda", 0)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["gpuGPU-aaaa.slot0.lock"]
        _fake_gpus(monkeypatch, ["GPU-bbbb", "GPU-aaaa"])  # another job's numbering of the same devices
        with device_slot("auto") as second:
            assert second == torch.device("cuda", 0)  # its cuda:0 is GPU-bbbb, free
        _fake_gpus(monkeypatch, ["GPU-aaaa", "GPU-cccc"])
        with device_slot("cuda") as third:
            assert third == torch.device("cuda", 1)  # GPU-aaaa is held: its cuda:0 is taken


def test_device_slot_is_a_no_op_without_several_gpus(tmp_path, monkeypatch):
    monkeypatch.setenv("VAEBENCH_GPU_LOCK_DIR", str(tmp_path))
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    with device_slot("auto") as device:
        assert device.type == expected
    with device_slot("cpu") as device:
        assert device == torch.device("cpu")
    assert not list(tmp_path.iterdir())  # nothing was locked


def test_device_slot_picks_a_free_device_and_makes_it_current(tmp_path, monkeypatch):
    """'auto' and 'cuda' both take a slot (an explicit 'cuda' used to land every job on cuda:0); a numbered
    device is the user's choice and is not locked. Each is made the current device."""
    monkeypatch.setenv("VAEBENCH_GPU_LOCK_DIR", str(tmp_path))
    current = _fake_gpus(monkeypatch, ["GPU-0", "GPU-1", "GPU-2"])
    with device_slot("auto") as first, device_slot("cuda") as second:
        assert (first, second) == (torch.device("cuda", 0), torch.device("cuda", 1))
        assert current == [0, 1]
    with device_slot("cuda") as again:
        assert again == torch.device("cuda", 0)
    with device_slot("cuda:2") as explicit:
        assert explicit == torch.device("cuda", 2) and current[-1] == 2
    assert len(list(tmp_path.iterdir())) == 2  # cuda:2 locked nothing


def test_a_single_gpu_is_made_current_and_not_locked(tmp_path, monkeypatch):
    monkeypatch.setenv("VAEBENCH_GPU_LOCK_DIR", str(tmp_path))
    current = _fake_gpus(monkeypatch, ["GPU-0"])
    for name in ("auto", "cuda", "cuda:0"):
        with device_slot(name) as device:
            assert device == torch.device("cuda", 0)
    assert current == [0, 0, 0] and not list(tmp_path.iterdir())


def test_a_lock_dir_that_cannot_be_made_is_one_line(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(
        VaebenchError,
        match=f"^cannot create the GPU lock dir {tmp_path / 'file' / 'locks'} "
        r"\(VAEBENCH_GPU_LOCK_DIR\): not a directory$",
    ):
        with gpu_slot(2, tmp_path / "file" / "locks"):
            pass
