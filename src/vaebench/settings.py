"""What a training or an evaluation run can be asked for, torch-free: the dataset and architecture names,
the settings of a run with their defaults (TrainConfig, EvalConfig), the fixed scales' defaults and the
thread default.

The one home of every default: the CLI builds every stage's parser from these without importing torch, so
`vaebench STAGE --help` answers at once; the study config's schema gets its defaults and enums from here
(vaebench.config.load_schema); data.py, models.py, families.py, train.py and evaluate.py take them from here.
"""

from dataclasses import dataclass
from pathlib import Path

from vaebench.errors import VaebenchError
from vaebench.utils import read_json

DATASETS = ("mnist", "fashion_mnist", "mnist5k", "cifar10")
DEFAULT_DATA_DIR = Path("resources/data")  # the workflow's config default
# the family math as one torch.compile'd kernel (evaluate --compile, the config's evaluate.compile): auto
# (by the work and the device, likelihood.wants_compile), true or false
COMPILE_MODES = ("auto", "true", "false")
DEFAULT_COMPILE_CACHE = Path("resources/compile-cache")  # the workflow's config default too
ARCHITECTURES = ("mlp", "conv")
# CPU threads per job unless told: one thread per job was the fastest for a lone job on a 2-core machine
# (torch's own default, one per core, ran several times slower: bench/README.md); on CUDA it hardly matters
THREADS = 1
# the fixed scales' defaults, by training setting (catalog.FamilyEntry.scale_setting): the Gaussian's
# sigma^2 = 1/2 makes its negative log-likelihood the summed squared error, Laplace's b = 1 the summed
# absolute error, both up to a constant
FIXED_SCALES = {"sigma": 0.5**0.5, "laplace_b": 1.0}
# how many times a selection's choice at the edge of its grid may extend the grid one step outward
MAX_EXTENSIONS = 2
MAX_SEED = 2**63 - 1  # a seed fits the records' signed 64-bit integers; seeding.stream_seed takes any


@dataclass
class TrainConfig:
    dataset: str = "mnist5k"
    loss: str = "continuous_bernoulli"
    latent_dim: int = 16
    seed: int = 0
    epochs: int = 20  # the cap: the stopping rule (vaebench.stopping) usually ends the run before
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
    # the stopping rule on the validation ELBO (vaebench.stopping); with no validation split, the cap
    patience: int = 6
    min_gain_bpd: float = 0.001
    lr_decay: float = 0.3
    max_decays: int = 3

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
    compile: str = "false"  # family math as one torch.compile'd kernel: COMPILE_MODES
    compile_cache: str = str(DEFAULT_COMPILE_CACHE)  # where compiled kernels are kept for the next job


def selected_settings(path: Path, loss: str) -> dict[str, float]:
    """The settings `vaebench select` chose for `loss` (one line if the file is for another family)."""
    choice = read_json(path, "")
    if choice.get("loss") != loss:
        raise VaebenchError(f"{path} holds the choice for {choice.get('loss')!r}, not for {loss!r}")
    return choice["settings"]


def compile_mode(value: bool | str) -> str:
    """A compile switch in COMPILE_MODES' words: a YAML config writes true and false as booleans."""
    return str(value).lower() if isinstance(value, bool) else value
