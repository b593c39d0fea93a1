"""Every test leaves the process as it found it, so the suite passes in any order.

`process_state` runs around each test. State the code under test sets by design, as the CLI does for
its own process (torch's thread count, its global seed, numpy's global seed), is put back quietly.
Any other process-wide change (torch and inductor configuration, compile caches, the environment,
the working directory, the umask, logger levels, matplotlib's rcParams) is put back too, and fails the
test that made it, naming what leaked: such a change made the suite pass or fail by the order of its
tests.
"""

import logging
import os
import sys

import numpy as np
import pytest
import torch
import torch._dynamo
import torch._dynamo.config as dynamo_config
import torch._inductor.config as inductor_config

LOGGERS = ("torch", "torch._inductor", "torch._dynamo", "vaebench", "snakemake")
# variables the libraries set for their own use: pytest for every phase of every test, inductor before it
# loads a compiled kernel, the OpenMP runtime that scikit-learn loads at import
LIBRARY_OWN = ("PYTEST_CURRENT_TEST", "_TORCHINDUCTOR_PYOBJECT_TENSOR_DATA_PTR", "KMP_")


def _environ() -> dict:
    return {key: value for key, value in os.environ.items() if not key.startswith(LIBRARY_OWN)}


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _torch_flags() -> dict:
    return {
        "default dtype": torch.get_default_dtype(),
        "float32 matmul precision": torch.get_float32_matmul_precision(),
        "cuda matmul allow_tf32": torch.backends.cuda.matmul.allow_tf32,
        "cudnn allow_tf32": torch.backends.cudnn.allow_tf32,
        "deterministic algorithms": torch.are_deterministic_algorithms_enabled(),
        "grad enabled": torch.is_grad_enabled(),
    }


def _leaks(before: dict, after: dict) -> list[str]:
    return [
        f"{key}: {before.get(key)!r} -> {after.get(key)!r}"
        for key in sorted(set(before) | set(after))
        if before.get(key) != after.get(key)
    ]


def pytest_configure(config):
    """Under pytest-xdist, each worker's torch gets its share of the cores: one OpenMP team per core, not
    one per worker per core, which would make the workers wait on each other."""
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if workers:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(workers)))


@pytest.fixture(autouse=True)
def process_state():
    threads, rng, np_rng = torch.get_num_threads(), torch.get_rng_state(), np.random.get_state()
    environ, cwd, umask = _environ(), os.getcwd(), _umask()
    flags = _torch_flags()
    inductor, dynamo = inductor_config.get_config_copy(), dynamo_config.get_config_copy()
    levels = {name: logging.getLogger(name).level for name in LOGGERS}
    rc = dict(sys.modules["matplotlib"].rcParams) if "matplotlib" in sys.modules else None
    yield
    leaks = []
    torch.set_num_threads(threads)
    torch.set_rng_state(rng)
    np.random.set_state(np_rng)
    if _environ() != environ:
        leaks += [f"environment {leak}" for leak in _leaks(environ, _environ())]
        for key in set(_environ()) - set(environ):
            del os.environ[key]
        os.environ.update(environ)
    if _umask() != umask:
        leaks.append(f"umask: {umask:o} -> {_umask():o}")
        os.umask(umask)
    if os.getcwd() != cwd:
        leaks.append(f"working directory: {cwd} -> {os.getcwd()}")
        os.chdir(cwd)
    leaks += _leaks(flags, _torch_flags())
    torch.set_default_dtype(flags["default dtype"])
    torch.set_float32_matmul_precision(flags["float32 matmul precision"])
    torch.backends.cuda.matmul.allow_tf32 = flags["cuda matmul allow_tf32"]
    torch.backends.cudnn.allow_tf32 = flags["cudnn allow_tf32"]
    torch.use_deterministic_algorithms(flags["deterministic algorithms"])
    torch.set_grad_enabled(flags["grad enabled"])
    for name, config, saved in (("inductor", inductor_config, inductor), ("dynamo", dynamo_config, dynamo)):
        now = config.get_config_copy()
        if now != saved:
            leaks += [f"{name} config {leak}" for leak in _leaks(saved, now)]
            config.load_config(saved)
    for name, level in levels.items():
        if logging.getLogger(name).level != level:
            leaks.append(f"logger {name} level: {level} -> {logging.getLogger(name).level}")
            logging.getLogger(name).setLevel(level)
    if rc is not None and dict(sys.modules["matplotlib"].rcParams) != rc:
        now = dict(sys.modules["matplotlib"].rcParams)
        leaks += [f"matplotlib rcParams {leak}" for leak in _leaks(rc, now)][:5]
        sys.modules["matplotlib"].rcParams.update(rc)
    torch._dynamo.reset()  # compiled code is cached per function: a later test must not meet this one's
    if leaks:
        pytest.fail(
            "the test changed process-wide state without restoring it: " + "; ".join(leaks), pytrace=False
        )
