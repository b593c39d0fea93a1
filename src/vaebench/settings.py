"""What a training or an evaluation run can be asked for, torch-free: the dataset and architecture names,
the settings of a run with their defaults (TrainConfig, EvalConfig) and the thread default.

The CLI builds every stage's parser from these without importing torch, so `vaebench STAGE --help`
answers at once; data.py, models.py, train.py and evaluate.py take them from here.
"""

from dataclasses import dataclass
from pathlib import Path

DATASETS = ("mnist", "fashion_mnist", "mnist5k", "cifar10")
DEFAULT_DATA_DIR = Path("resources/data")  # the workflow's config default
# evaluate --compile: auto (by the work and the device, likelihood.wants_compile), on, off
COMPILE_MODES = ("auto", "on", "off")
DEFAULT_COMPILE_CACHE = Path("resources/compile-cache")  # the workflow's config default too
ARCHITECTURES = ("mlp", "conv")
# CPU threads per job unless told: one thread per job was the fastest for a lone job on a 2-core machine
# (torch's own default, one per core, ran several times slower: bench/README.md); on CUDA it hardly matters
THREADS = 1
MAX_SEED = 2**63 - 1  # torch generators take seeds below 2**64; training adds an offset for its test noise


@dataclass
class TrainConfig:
    dataset: str = "mnist5k"
    loss: str = "continuous_bernoulli"
    latent_dim: int = 16
    seed: int = 0
    epochs: int = 20
    arch: str = "mlp"
    hidden: int = 400
    batch_size: int = 128
    lr: float = 1e-3
    validation: int = 0  # training images held out to choose the epoch (data.split_validation); 0: the last
    dequantize: bool = True
    sigma: float | None = None
    laplace_b: float | None = None
    device: str = "auto"
    threads: int = THREADS
    data_dir: str | None = None
    compile: bool = False

    @property
    def family_options(self) -> dict[str, float]:
        """Fixed-scale options as the families name them; each family takes only its own."""
        return {k: v for k, v in {"sigma": self.sigma, "b": self.laplace_b}.items() if v is not None}


@dataclass
class EvalConfig:
    k: int = 5000
    n_test: int | None = None  # None: the whole test split
    batch: int = 100  # test images per importance-sampling batch
    chunk: int | None = None  # samples decoded at once; None: from free memory (default_chunk)
    seed: int = 0
    n_train: int | None = None  # train images for kNN; None: the whole train split
    compile: str = "off"  # family math as one torch.compile'd kernel: COMPILE_MODES
    compile_cache: str = str(DEFAULT_COMPILE_CACHE)  # where compiled kernels are kept for the next job
