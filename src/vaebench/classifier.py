"""`vaebench classifier`: the small CNN per dataset whose features score the pictures (quality.py).

Trained once per dataset on its training split (inputs v/255) on the CPU, with its own seeded
generators, so the same seed gives the same weights; cached under resources/quality/. Its penultimate
layer (FEATURE_DIM values) is the feature space of the Fréchet distances. A classifier too weak to tell
the classes apart would make those distances meaningless, so its test accuracy must reach the
min_test_accuracy of the dataset's recipe (RECIPES), else the command fails and writes nothing. The json
beside the weights holds the accuracy and reference values computed once on the same N test images the
evaluations use: the floor (train against test images), blurred test images and uniform noise.
"""

import argparse
import hashlib
import io
import math
import pickle
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from vaebench.data import ImageDataset, load_dataset
from vaebench.errors import CheckpointError, DatasetError, VaebenchError
from vaebench.models import save_torch
from vaebench.quality import fd_n, features, frechet_distance, gaussian_blur, sharpness
from vaebench.seeding import (
    STREAM_CLASSIFIER_BATCHES,
    STREAM_CLASSIFIER_WEIGHTS,
    STREAM_NOISE_IMAGES,
    stream_generator,
    stream_seed,
)
from vaebench.utils import provenance, set_threads, write_json

FEATURE_DIM = 128
CHANNELS = (16, 32)
BATCH = 64
MAX_LR = 3e-3  # one-cycle schedule: warm up to it, then anneal


@dataclass(frozen=True)
class Recipe:
    """How one dataset's classifier is trained, and the test accuracy it must reach. `shift` (pixels): each
    batch is rolled by up to this much, which lifts the accuracy on a small training split (mnist5k's) but
    lowers it on Fashion-MNIST's centred items in a few epochs."""

    epochs: int
    min_test_accuracy: float
    shift: int = 0


# the epochs keep mnist5k well under half a minute and Fashion-MNIST at a few minutes on one CPU thread
RECIPES = {
    "mnist5k": Recipe(8, 0.95, shift=2),
    "mnist": Recipe(3, 0.98),
    "fashion_mnist": Recipe(5, 0.90),
    "cifar10": Recipe(10, 0.55),
}


class Classifier(nn.Module):
    """Two conv stages (3x3 with stride 2, batch norm, ReLU), a FEATURE_DIM-wide ReLU layer (the features)
    and a linear head over the classes. Strided convolutions rather than max-pooling: several times
    cheaper per image on a CPU, which every evaluation job pays."""

    def __init__(self, shape: tuple[int, int, int], n_classes: int):
        super().__init__()
        c, h, w = shape
        layers: list[nn.Module] = []
        for c_out in CHANNELS:
            layers += [nn.Conv2d(c, c_out, 3, stride=2, padding=1), nn.BatchNorm2d(c_out), nn.ReLU()]
            c, h, w = c_out, (h + 1) // 2, (w + 1) // 2
        self.body = nn.Sequential(*layers, nn.Flatten(), nn.Linear(c * h * w, FEATURE_DIM), nn.ReLU())
        self.head = nn.Linear(FEATURE_DIM, n_classes)
        self.shape, self.n_classes = tuple(shape), n_classes
        self.sha256: str | None = None  # of the file it was loaded from: which classifier scored a run

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)  # [B, FEATURE_DIM]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))  # [B, n_classes] logits


def train_classifier(
    images: torch.Tensor, labels: torch.Tensor, epochs: int, seed: int = 0, shift: int = 0
) -> Classifier:
    """Fit a Classifier on uint8 images [N, C, H, W] (as v/255) on the CPU: Adam on a one-cycle schedule,
    each batch rolled by up to `shift` pixels.

    Weights, batch order and shifts come from generators seeded with `seed` (the global RNG is left as it
    was), so the same seed and thread count give the same weights.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(stream_seed(seed, STREAM_CLASSIFIER_WEIGHTS))
        model = Classifier(tuple(images.shape[1:]), int(labels.max()) + 1)
    gen = stream_generator(seed, STREAM_CLASSIFIER_BATCHES)
    steps_per_epoch = math.ceil(images.shape[0] / BATCH)
    opt = torch.optim.Adam(model.parameters(), lr=MAX_LR)
    schedule = torch.optim.lr_scheduler.OneCycleLR(opt, MAX_LR, total_steps=max(1, epochs * steps_per_epoch))
    model.train()
    for _ in range(epochs):
        order = torch.randperm(images.shape[0], generator=gen)
        for start in range(0, images.shape[0], BATCH):
            idx = order[start : start + BATCH]
            x = images[idx].float() / 255  # [B, C, H, W]
            if shift:
                x = torch.roll(x, torch.randint(-shift, shift + 1, (2,), generator=gen).tolist(), dims=(2, 3))
            loss = F.cross_entropy(model(x), labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            schedule.step()
    return model.eval()


def accuracy(classifier: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of uint8 images [N, C, H, W] classified as their label."""
    return (features(classifier, images.float() / 255)[1] == labels).double().mean().item()


def reference_values(classifier: nn.Module, data: ImageDataset, n: int, seed: int = 0) -> dict:
    """What the per-run numbers compare to, on the first n test images: the floor (n train images),
    the test images blurred (BLUR_SIGMA pixels), uniform noise, and the blurred images' sharpness.

    The floor is unpaired like fd_samples, the blurred images are paired with the test images like the
    reconstructions of fd_recon: with fewer images than features, the estimate's bias differs between
    the two, and only numbers of the same kind and N compare."""
    test = data.test_images[:n].float() / 255
    blurred = gaussian_blur(test)
    noise = torch.rand(test.shape, generator=stream_generator(seed, STREAM_NOISE_IMAGES))
    test_feats = features(classifier, test)[0]
    fd = {
        name: frechet_distance(features(classifier, images)[0], test_feats)
        for name, images in (
            ("fd_train_vs_test", data.train_images[:n].float() / 255),
            ("fd_blurred", blurred),
            ("fd_noise", noise),
        )
    }
    return {**fd, "sharpness_blurred": sharpness(blurred, test), "fd_n": n}


def save_classifier(path: Path, classifier: Classifier, data: ImageDataset, seed: int, epochs: int) -> Path:
    return save_torch(
        path,
        {
            "shape": list(classifier.shape),
            "n_classes": classifier.n_classes,
            "dataset": data.name,
            "dataset_sha256": data.sha256,
            "seed": seed,
            "epochs": epochs,
            "state_dict": classifier.state_dict(),
        },
    )


def load_classifier(path: Path, device: torch.device | str, data: ImageDataset) -> Classifier:
    """The classifier saved at `path`, on `device`, in eval mode; one-line errors for a missing or corrupt
    file and for a classifier of another dataset."""
    try:
        raw = Path(path).read_bytes()
        payload = torch.load(io.BytesIO(raw), map_location=device, weights_only=True)
        classifier = Classifier(tuple(payload["shape"]), payload["n_classes"])
        classifier.load_state_dict(payload["state_dict"])
        trained_on, sha256 = payload["dataset"], payload["dataset_sha256"]
    except FileNotFoundError:
        raise CheckpointError(f"classifier {path} does not exist: run `vaebench classifier` first") from None
    except (OSError, RuntimeError, KeyError, TypeError, EOFError, ValueError, pickle.UnpicklingError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(
            f"cannot load classifier {path} (truncated or corrupt?): {first[:200]}"
        ) from None
    if sha256 != data.sha256:
        raise DatasetError(
            f"classifier {path} was trained on {trained_on} (sha256 {sha256[:12]}), "
            f"not on this {data.name} ({data.sha256[:12]})"
        )
    classifier.sha256 = hashlib.sha256(raw).hexdigest()
    return classifier.to(device).eval()


def run(args: argparse.Namespace) -> int:
    threads = set_threads(args.threads)
    data = load_dataset(args.dataset, args.data_dir)
    n_available = data.test_images.shape[0]
    if args.n_test is not None and args.n_test > n_available:
        raise VaebenchError(f"--n-test {args.n_test} exceeds the {n_available} test images of {data.name}")
    recipe = RECIPES[data.name]
    epochs = recipe.epochs if args.epochs is None else args.epochs
    t0 = time.perf_counter()
    classifier = train_classifier(data.train_images, data.train_labels, epochs, args.seed, recipe.shift)
    train_seconds = time.perf_counter() - t0
    test_accuracy = accuracy(classifier, data.test_images, data.test_labels)
    required = recipe.min_test_accuracy
    if test_accuracy < required:
        raise VaebenchError(
            f"the {data.name} classifier reached a test accuracy of {test_accuracy:.4f} "
            f"after {epochs} epochs, below the {required} its features need; nothing written"
        )
    record = {
        "dataset": data.name,
        "dataset_sha256": data.sha256,
        "seed": args.seed,
        "epochs": epochs,
        "shift_pixels": recipe.shift,
        "feature_dim": FEATURE_DIM,
        "test_accuracy": test_accuracy,
        "min_test_accuracy": required,
        "train_seconds": train_seconds,
        "threads": threads,
        **reference_values(classifier, data, fd_n(args.n_test or n_available), args.seed),
        **provenance(torch.device("cpu")),
    }
    save_classifier(args.out, classifier, data, args.seed, epochs)
    write_json(args.out.with_suffix(".json"), record)
    print(
        f"{data.name} classifier: test accuracy {test_accuracy:.4f} after {epochs} epochs, "
        f"{train_seconds:.1f} s; Fréchet distances on {record['fd_n']} test images: "
        f"train {record['fd_train_vs_test']:.2f}, blurred {record['fd_blurred']:.2f}, "
        f"noise {record['fd_noise']:.2f}",
        file=sys.stderr,
    )
    return 0
