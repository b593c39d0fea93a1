"""Small shared helpers: devices and threads, progress of long loops, atomic file writes, provenance.

torch is imported inside the functions that need it, so the reporting stages (pandas and
matplotlib only) and the CLI's parser can use them without paying seconds for a torch import.
"""

import datetime as _dt
import json
import logging
import math
import numbers
import os
import platform
import re
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import vaebench
from vaebench.errors import CheckpointError, VaebenchError, WriteError


def finite(x) -> bool:
    """A real number (Python's or numpy's, not a bool) that is neither infinite nor NaN."""
    return isinstance(x, numbers.Real) and not isinstance(x, bool) and math.isfinite(x)


if TYPE_CHECKING:
    import torch

DEVICE_HELP = "'auto' (cuda when present, else cpu), 'cpu', 'cuda' or 'cuda:N' (default: %(default)s)"
# provenance's numeric flags (numeric_flags), named torch-free for the reporting stages
NUMERIC_FLAGS = (
    "cudnn_deterministic",
    "cudnn_benchmark",
    "deterministic_algorithms",
    "tf32_matmul",
    "tf32_cudnn",
    "float32_matmul_precision",
)
PROGRESS_SECONDS = 10.0  # a loop's progress shows once it has run this long, then at most this often


def check_device(name: str) -> str:
    """`name` if vaebench runs on that device (auto, cpu, cuda, cuda:N), else a one-line error; torch-free."""
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", name):
        raise VaebenchError(f"unknown device '{name}': use auto, cpu, cuda or cuda:N")
    return name


GRANTING_VARIABLES = ("CUDA_VISIBLE_DEVICES", "SLURM_JOB_GPUS", "SLURM_GPUS_ON_NODE")  # a scheduler's grant
GRANTS_NONE = ("", "-1", "0", "NoDevFiles")  # what these hold when no GPU was granted (0: SLURM's count)
WHEEL_ADVICE = (
    "install the torch wheel built for a CUDA this driver supports (README: GPU), or run with --device cpu"
)


def granted_gpus() -> str | None:
    """The variable and value by which a scheduler granted this job GPUs ('SLURM_JOB_GPUS=0,1'), or None."""
    for name in GRANTING_VARIABLES:
        value = os.environ.get(name, "").strip()
        if value not in GRANTS_NONE or (value == "0" and name != "SLURM_GPUS_ON_NODE"):
            return f"{name}={value}"
    return None


def wheel_runs_on(capability: tuple[int, int], arch_list: list[str]) -> bool:
    """Whether a torch built for `arch_list` (torch.cuda.get_arch_list()) has kernels for a device of
    `capability`: machine code (sm_XY) runs on its own major version at the same or a later minor, PTX
    (compute_XY) is compiled by the driver for any later device."""
    for arch in arch_list:
        kind, _, digits = arch.partition("_")
        match = re.fullmatch(r"(\d+)(\d)[a-z]?", digits)
        if match is None:
            continue
        built = (int(match[1]), int(match[2]))
        if (kind == "sm" and built[0] == capability[0] and built[1] <= capability[1]) or (
            kind == "compute" and built <= capability
        ):
            return True
    return False


def unusable_gpu() -> str | None:
    """Why this torch cannot use the GPU a scheduler granted (a CPU-only wheel, a driver too old for the
    wheel's CUDA, a device the wheel has no kernels for), or None: it can, or none was granted."""
    import warnings

    import torch

    granted = granted_gpus()
    if granted is None:
        return None
    built = f"torch {torch.__version__}"
    if torch.version.cuda is None:
        return f"{granted} grants a GPU, but {built} is built without CUDA: {WHEEL_ADVICE}"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        available = torch.cuda.is_available()
    if not available:
        said = next((str(w.message).strip().splitlines()[0] for w in caught if str(w.message).strip()), "")
        return (
            f"{granted} grants a GPU, but {built} (CUDA {torch.version.cuda}) cannot use it"
            f"{f' ({said[:200]})' if said else ''}: is the NVIDIA driver at least what CUDA "
            f"{torch.version.cuda} needs (nvidia-smi)? {WHEEL_ADVICE}"
        )
    arch_list = torch.cuda.get_arch_list()
    for index in range(torch.cuda.device_count()):
        capability = torch.cuda.get_device_capability(index)
        if not wheel_runs_on(capability, arch_list):
            return (
                f"cuda:{index} ({torch.cuda.get_device_name(index)}) has compute capability "
                f"{capability[0]}.{capability[1]}, which {built} has no kernels for (built for "
                f"{' '.join(arch_list)}): {WHEEL_ADVICE}"
            )
    return None


def pick_device(name: str = "auto") -> "torch.device":
    """'auto' picks cuda when present, else cpu; 'cuda' or 'cuda:N' must exist here (else one line). A GPU
    the scheduler granted but torch cannot use stops 'auto' and 'cuda' with one line (unusable_gpu), rather
    than leaving the job to run for hours on the CPU."""
    import torch

    if check_device(name) != "cpu" and (reason := unusable_gpu()) is not None:
        raise VaebenchError(f"device {name}: {reason}")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if n == 0:
            build = "without CUDA" if torch.version.cuda is None else f"with CUDA {torch.version.cuda}"
            raise VaebenchError(
                f"device {name}: no CUDA device on this machine (torch {torch.__version__}, "
                f"built {build}); use --device cpu or auto"
            )
        if device.index is not None and device.index >= n:
            raise VaebenchError(f"device {name}: this machine has {n} CUDA device(s), cuda:0 to cuda:{n - 1}")
    return device


def memory_of(device: "torch.device") -> str:
    """The device and how much memory it has, for a message: 'cuda:0 (NVIDIA A100, 40.0 GiB)'."""
    import torch

    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        return f"{device} ({props.name}, {props.total_memory / 2**30:.1f} GiB)"
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return str(device)
    return f"{device} ({total / 2**30:.1f} GiB of RAM)"


def numeric_flags() -> dict:
    """NUMERIC_FLAGS as the process has them now: the switches that decide whether a GPU run repeats bit for
    bit (cuDNN's algorithm choice and determinism) and how precise its float32 products are (TF32)."""
    import torch

    values = (
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
        torch.are_deterministic_algorithms_enabled(),
        torch.backends.cuda.matmul.allow_tf32,
        torch.backends.cudnn.allow_tf32,
        torch.get_float32_matmul_precision(),
    )
    return dict(zip(NUMERIC_FLAGS, values, strict=True))


def set_threads(threads: int) -> int:
    """Honour the scheduler's thread budget (Snakemake's `threads`); 0 keeps torch's default."""
    import torch

    if threads > 0:
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def duration(seconds: float) -> str:
    """h:mm:ss"""
    return str(_dt.timedelta(seconds=round(seconds)))


class Progress:
    """Where a long loop is, on stderr: a tqdm bar on a terminal, plain lines in a log file.

    Nothing shows for a loop done within PROGRESS_SECONDS; after that, a line at most every
    PROGRESS_SECONDS (done of total, rate, ETA) and one when it ends. Call it with the items just
    done, a count the host has anyway (never a tensor's value: a GPU is not made to wait). The rate
    is in `rate_unit`s, `per_item` per item (samples per image); `clock` is for tests.
    """

    def __init__(
        self,
        what: str,
        total: int,
        unit: str,
        rate_unit: str | None = None,
        per_item: int = 1,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.what, self.total, self.unit = what, total, unit
        self.rate_unit, self.per_item = rate_unit or unit, per_item
        self.stream = stream or sys.stderr
        self.clock = clock
        self.start = self.shown = clock()
        self.done, self.lines = 0, 0
        self.bar = None
        if getattr(self.stream, "isatty", lambda: False)():
            from tqdm import tqdm

            self.bar = tqdm(
                total=total,
                desc=what,
                unit=unit,
                file=self.stream,
                delay=PROGRESS_SECONDS,
                leave=False,
                dynamic_ncols=True,
            )

    def __call__(self, n: int) -> None:
        self.done += n
        now = self.clock()
        if self.bar is not None:
            self.bar.set_postfix_str(self._rate(now), refresh=False)
            self.bar.update(n)
        elif now - self.shown >= PROGRESS_SECONDS and self.done < self.total:
            self.shown = now
            eta = (self.total - self.done) * (now - self.start) / self.done
            self._print(
                f"{self.done}/{self.total} {self.unit} ({100 * self.done / self.total:.0f}%), "
                f"{self._rate(now)}, ETA {duration(eta)}"
            )

    def _rate(self, now: float) -> str:
        rate = self.done * self.per_item / max(now - self.start, 1e-9)
        return f"{rate:,.0f} {self.rate_unit}/s" if rate >= 10 else f"{rate:.2g} {self.rate_unit}/s"

    def _print(self, text: str) -> None:
        print(f"{self.what}: {text}", file=self.stream, flush=True)
        self.lines += 1

    def close(self, finished: bool = True) -> None:
        """The closing line of a finished loop that showed progress (the bar, on a terminal, just goes)."""
        if self.bar is not None:
            self.bar.close()
        elif finished and (self.lines or self.clock() - self.start >= PROGRESS_SECONDS):
            now = self.clock()
            self._print(f"{self.done} {self.unit} in {duration(now - self.start)}, {self._rate(now)}")

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, error_type, *exc) -> None:
        self.close(finished=error_type is None)  # a failure's own message is the last line


@contextmanager
def compiling(active: bool, advice: str) -> Iterator[None]:
    """A block that may torch.compile: inductor's own log (a hundred lines of generated code when the C++
    compiler is missing) kept off stderr, unless TORCH_LOGS asks for it, and a kernel that cannot be built
    (no C++ compiler on CPU, no triton on GPU) turned into one line ending with `advice`."""
    from torch._dynamo.exc import BackendCompilerFailed

    logger = logging.getLogger("torch._inductor")
    saved = logger.level
    if active and not os.environ.get("TORCH_LOGS"):
        logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    except BackendCompilerFailed as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise VaebenchError(
            f"--compile failed ({reason[:200]}): torch.compile needs a C++ compiler on CPU "
            f"and triton on GPU; {advice} (TORCH_LOGS=+inductor for details)"
        ) from None
    finally:
        logger.setLevel(saved)


def os_reason(err: OSError) -> str:
    """What went wrong, as the system says it: 'no space left on device'."""
    return os.strerror(err.errno).lower() if err.errno else str(err)


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call `write(tmp)` on a temporary file beside `path`, then rename it into place.

    A crash or a full disk mid-write never leaves a half file under the final name, and the file
    `path` held before stays intact. Any OSError (no space left, no permission) becomes a one-line
    WriteError naming the path and the reason. The file gets the mode the umask allows, as open() would.
    """
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private (0600)
        os.replace(tmp, path)
    except OSError as err:
        raise WriteError(f"cannot write {path}: {os_reason(err)}") from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _umask() -> int:
    """The process's umask (reading it means setting it: put straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def first_difference(saved: dict, wanted: dict) -> str | None:
    """The first key of `wanted` whose value `saved` (a record on disk) does not have, as 'seed 1, not 2';
    None when saved agrees on every key: how a stage tells its own finished output from another's."""
    for key, value in wanted.items():
        if saved.get(key) != value:
            return f"{key.replace('_', '-')} {saved.get(key)}, not {value}"
    return None


def read_json(path: Path, missing: str) -> dict:
    """A record a stage wrote (run.json, metrics.json); missing (`missing` says what to do) or unreadable:
    one line."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{path} does not exist: {missing}") from None
    except OSError as err:
        raise CheckpointError(f"cannot read {path}: {os_reason(err)}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{path} is not valid JSON ({err})") from None


def write_json(path: str | Path, obj: dict) -> Path:
    """Atomically write `obj` as indented, key-sorted JSON (stable bytes for identical content)."""
    text = json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n"
    return atomic_write(path, lambda tmp: tmp.write_text(text))


def _git(*args: str) -> str | None:
    """The output of a git command run in the vaebench source tree, or None outside a git checkout."""
    src = Path(vaebench.__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "-C", str(src), *args], capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout


def git_commit() -> str | None:
    """The commit of the vaebench source tree, or None outside a git checkout."""
    return (_git("rev-parse", "HEAD") or "").strip() or None


def git_dirty() -> bool | None:
    """Whether the package's source differs from that commit (uncommitted edits ran), None outside git."""
    status = _git("status", "--porcelain", "--", ".")
    return None if status is None else bool(status.strip())


def utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def provenance(device: "torch.device") -> dict:
    """Versions, commit, host, device and the numeric flags it ran with: attached to every run record and
    metrics file."""
    import numpy as np
    import torch

    return {
        "python_version": platform.python_version(),
        "torch_version": torch.__version__,
        "numpy_version": np.__version__,
        "vaebench_version": vaebench.__version__,
        "git_commit": git_commit(),
        "git_dirty": git_dirty(),
        "hostname": socket.gethostname(),
        "device": str(device),
        "device_name": (
            torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
        ),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        **numeric_flags(),
    }
