"""`vaebench baselines`: bits/dim of models without a latent, so that a VAE's number means something.

Three references, each fitted on the training split and scored on the same test images as the
evaluations (the first `n_test`, as `vaebench evaluate --n-test` takes them):

- uniform: every 8-bit value equally likely, exactly 8 bits/dim; nothing is fitted;
- two masses: one probability for v = 0, one for v = 255 (pooled over all sub-pixels of the
  training images), the rest spread evenly over the 254 other values: two parameters;
- per-pixel histogram: a 256-bin categorical per sub-pixel with add-1/2 (Jeffreys,
  Krichevsky-Trofimov) smoothing, P_i(v) = (count_i(v) + 1/2) / (N_train + 128), so no test value
  has probability zero: the strongest model that ignores the correlations between pixels. Add-one
  smoothing would give rare values more mass than they have (it scores a little worse).

Each is a distribution on the 8-bit values, scored like the families' discretized column. Its
dequantized column is the same model read as a density on [0, 1]^D, constant within each bin
(P(v) times 256 per sub-pixel), so the two bits/dim agree exactly, as for the discretized logistic.
"""

import argparse
import math

import numpy as np

from vaebench.data import load_dataset
from vaebench.errors import VaebenchError
from vaebench.units import LN256, nats_to_bpd
from vaebench.utils import utc_now, write_json

LEVELS = 256
PSEUDO_COUNT = 0.5  # the histogram's smoothing: added to every bin's count
BASELINES = {  # id -> (label, what it is); the order of the tables
    "histogram": (
        "per-pixel histogram (no latent)",
        "256-bin categorical per sub-pixel fitted on the training split, add-1/2 smoothing",
    ),
    "two_masses": (
        "two masses at 0 and 255 (no latent)",
        "P(0) and P(255) fitted on the training split, the rest even over the 254 other values",
    ),
    "uniform": ("uniform over 256 values", "every 8-bit value equally likely: 8 bits/dim exactly"),
}


def uniform_log_probs(test: np.ndarray) -> np.ndarray:
    """log P per test image [M] under the uniform distribution on the 256 values."""
    return np.full(test.shape[0], -test[0].size * LN256)


def two_masses_log_probs(train: np.ndarray, test: np.ndarray) -> np.ndarray:
    """log P per test image [M]: P(0) and P(255) are the training split's frequencies of 0 and 255."""
    p0, p255 = float(np.mean(train == 0)), float(np.mean(train == LEVELS - 1))
    rest = (1.0 - p0 - p255) / (LEVELS - 2)
    table = np.full(LEVELS, math.log(rest) if rest > 0 else -math.inf)
    with np.errstate(divide="ignore"):  # a value the training split never has gets probability zero
        table[0], table[-1] = np.log(p0), np.log(p255)
    flat = test.reshape(test.shape[0], -1)
    return table[flat].sum(axis=1, dtype=np.float64)


def histogram_log_probs(train: np.ndarray, test: np.ndarray) -> np.ndarray:
    """log P per test image [M] under a per-sub-pixel categorical with add-PSEUDO_COUNT smoothing."""
    flat_train = train.reshape(train.shape[0], -1)  # [N, D] uint8
    dims = flat_train.shape[1]
    counts = np.zeros((dims, LEVELS), np.int64)
    np.add.at(counts, (np.broadcast_to(np.arange(dims), flat_train.shape), flat_train), 1)
    log_p = np.log(counts + PSEUDO_COUNT) - math.log(flat_train.shape[0] + LEVELS * PSEUDO_COUNT)  # [D, 256]
    flat = test.reshape(test.shape[0], -1).astype(np.int64)  # [M, D]
    return log_p[np.arange(dims), flat].sum(axis=1, dtype=np.float64)


def score(log_probs: np.ndarray, dims: int) -> dict:
    """The numbers of one baseline, named as metrics.json names them; SE over test images."""
    n = log_probs.shape[0]
    ll = float(log_probs.mean())
    se = float(log_probs.std(ddof=1) / math.sqrt(n)) if n > 1 else None
    return {
        "ll_disc_nats": ll,
        "ll_disc_se": se,
        "bpd_disc": -nats_to_bpd(ll, dims),
        "ll_deq_nats": ll + dims * LN256,
        "ll_deq_se": se,
        "bpd_deq": -nats_to_bpd(ll, dims),
        "ll_deq_note": "constant density within each bin: the same bits/dim as the discretized column",
    }


def baselines(train: np.ndarray, test: np.ndarray) -> list[dict]:
    """Every baseline scored on `test` ([M, C, H, W] uint8), fitted on `train`, in the order of BASELINES."""
    dims = int(np.prod(test.shape[1:]))
    log_probs = {
        "uniform": uniform_log_probs(test),
        "two_masses": two_masses_log_probs(train, test),
        "histogram": histogram_log_probs(train, test),
    }
    return [
        {"id": key, "label": label, "description": description, **score(log_probs[key], dims)}
        for key, (label, description) in BASELINES.items()
    ]


def run(args: argparse.Namespace) -> int:
    data = load_dataset(args.dataset, args.data_dir)
    train, test = data.train_images.numpy(), data.test_images.numpy()
    if args.n_test is not None and args.n_test > test.shape[0]:
        raise VaebenchError(
            f"--n-test {args.n_test} exceeds the {test.shape[0]} test images of {args.dataset}"
        )
    test = test[: args.n_test]
    rows = baselines(train, test)
    write_json(
        args.out,
        {
            "dataset": data.name,
            "dataset_sha256": data.sha256,
            "dims": data.dims,
            "n_train": train.shape[0],
            "n_test": test.shape[0],
            "n_test_split": data.test_images.shape[0],
            "fitted_on": "the training split",
            "baselines": rows,
            "written_at": utc_now(),
        },
    )
    shown = ", ".join(f"{row['id']} {row['bpd_disc']:.3f}" for row in rows)
    print(f"{data.name}, {test.shape[0]} test images: {shown} bits/dim -> {args.out}")
    return 0
