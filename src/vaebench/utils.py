"""Small shared helpers: devices and threads, atomic file writes, provenance of every result.

torch is imported inside the functions that need it, so the reporting stages (pandas and
matplotlib only) can use the same atomic writes without paying seconds for a torch import.
"""

import datetime as _dt
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from typing import TYPE_CHECKING

import vaebench
from vaebench.errors import WriteError

if TYPE_CHECKING:
    import torch


def pick_device(name: str = "auto") -> "torch.device":
    """'auto' picks cuda when present, else cpu; any other name is taken as given."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def set_threads(threads: int) -> int:
    """Honour the scheduler's thread budget (Snakemake's `threads`); 0 keeps torch's default."""
    import torch

    if threads > 0:
        torch.set_num_threads(threads)
    return torch.get_num_threads()


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
        reason = os.strerror(err.errno).lower() if err.errno else str(err)
        raise WriteError(f"cannot write {path}: {reason}") from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _umask() -> int:
    """The process's umask (reading it means setting it: put straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_json(path: str | Path, obj: dict) -> Path:
    """Atomically write `obj` as indented, key-sorted JSON (stable bytes for identical content)."""
    text = json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n"
    return atomic_write(path, lambda tmp: tmp.write_text(text))


def git_commit() -> str | None:
    """The commit of the vaebench source tree, or None outside a git checkout."""
    src = Path(vaebench.__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "-C", str(src), "rev-parse", "HEAD"],
            capture_output=True, text=True, timeout=10, check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def provenance(device: "torch.device") -> dict:
    """Versions, commit, host and device: attached to every run record and metrics file."""
    import numpy as np
    import torch

    return {
        "python_version": platform.python_version(),
        "torch_version": torch.__version__,
        "numpy_version": np.__version__,
        "vaebench_version": vaebench.__version__,
        "git_commit": git_commit(),
        "hostname": socket.gethostname(),
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
    }
