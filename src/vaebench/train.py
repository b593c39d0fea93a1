"""`vaebench train`: fit one VAE for one (dataset, family, latent dimension, seed) and save it.

Objective: the negative ELBO with the family's training loss (plain BCE for `bernoulli`) and
the analytic KL, optimised with Adam. The dataset lives in one uint8 tensor on the device and
batches are drawn by index (no per-item DataLoader). One torch.Generator on the device drives
the batch order, the dequantization noise and the reparameterisation noise, so a seed fixes
everything; it is saved with each epoch's checkpoint, which is how an interrupted run resumes
to exactly the same model.
"""

import argparse
import csv
import io
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from vaebench.data import DATASETS, ImageDataset, load_dataset, to_unit_interval
from vaebench.errors import CheckpointError, require_positive, unknown_name
from vaebench.families import FAMILIES
from vaebench.gpu_slots import device_slot
from vaebench.models import ARCHITECTURES, VAE, ModelConfig, build_model, gaussian_kl, save_model
from vaebench.utils import atomic_write, pick_device, provenance, set_threads, utc_now, write_json

HISTORY_COLUMNS = ("epoch", "train_loss_nats", "test_elbo_nats", "test_kl_nats", "test_recon_nats", "seconds")
CHECKPOINT = "checkpoint.pt"
EVAL_BATCH = 1000
RESUMABLE_CHANGES = ("epochs", "device", "threads", "compile")  # a run may resume with other values


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
    dequantize: bool = True
    sigma: float | None = None
    laplace_b: float | None = None
    device: str = "auto"
    threads: int = 0
    data_dir: str | None = None
    compile: bool = False

    @property
    def family_options(self) -> dict[str, float]:
        """Fixed-scale options as the families name them; each family takes only its own."""
        return {k: v for k, v in {"sigma": self.sigma, "b": self.laplace_b}.items() if v is not None}


def model_config(cfg: TrainConfig, data: ImageDataset) -> ModelConfig:
    c, h, w = data.shape
    return ModelConfig(arch=cfg.arch, channels=c, height=h, width=w, latent_dim=cfg.latent_dim,
                       family=cfg.loss, family_options=cfg.family_options, hidden=cfg.hidden)


def make_optimizer(model: VAE, cfg: TrainConfig) -> torch.optim.Optimizer:
    """Adam, fused: one kernel updates every parameter (faster steps on CPU, one launch on GPU)."""
    return torch.optim.Adam(model.parameters(), lr=cfg.lr, fused=True)


def train_step(model: VAE, opt: torch.optim.Optimizer, v: torch.Tensor, cfg: TrainConfig,
               gen: torch.Generator) -> torch.Tensor:
    """One Adam step on the batch `v` (uint8 [B, C, H, W] on the device, model in training mode):
    dequantize, draw the reparameterisation noise, forward, backward, step. Returns the batch's mean
    loss as a 0-d tensor, detached and never read on the host, so a GPU is never made to wait.
    """
    x = to_unit_interval(v, cfg.dequantize, gen)  # [B, C, H, W] float32 in (0, 1)
    eps = torch.randn(v.shape[0], cfg.latent_dim, generator=gen, device=v.device)  # [B, Z]
    params, mu, logvar = model(x, eps)
    loss = (model.family.train_loss(params, x, v) + gaussian_kl(mu, logvar)).mean()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.detach()


def train_epoch(model: VAE, opt: torch.optim.Optimizer, images: torch.Tensor, cfg: TrainConfig,
                gen: torch.Generator, max_batches: int | None = None) -> torch.Tensor:
    """One pass over `images` (uint8 [N, C, H, W] on the device); returns the mean loss as a 0-d tensor.

    No host synchronisation inside the loop: the loss sum stays on the device.
    """
    model.train()
    n = images.shape[0]
    order = torch.randperm(n, generator=gen, device=images.device)
    total = torch.zeros((), device=images.device, dtype=torch.float64)
    seen = 0
    for b, start in enumerate(range(0, n, cfg.batch_size)):
        if max_batches is not None and b >= max_batches:
            break
        v = images[order[start:start + cfg.batch_size]]  # [B, C, H, W] uint8
        total += train_step(model, opt, v, cfg, gen).double() * v.shape[0]
        seen += v.shape[0]
    return total / seen


@torch.no_grad()
def test_elbo(model: VAE, images: torch.Tensor, cfg: TrainConfig) -> dict[str, float]:
    """Test ELBO (one sample, analytic KL, the family's proper density) with fixed noise, nats/image.

    The noise generator is re-seeded every call so the learning curve compares epochs on the same draw.
    """
    model.eval()
    gen = torch.Generator(device=images.device).manual_seed(cfg.seed + 1_000_003)
    recon = torch.zeros((), device=images.device, dtype=torch.float64)
    kl = torch.zeros_like(recon)
    for start in range(0, images.shape[0], EVAL_BATCH):
        v = images[start:start + EVAL_BATCH]
        x = to_unit_interval(v, cfg.dequantize, gen)
        eps = torch.randn(v.shape[0], cfg.latent_dim, generator=gen, device=v.device)
        params, mu, logvar = model(x, eps)
        recon += model.family.log_density(params, x).double().sum()
        kl += gaussian_kl(mu, logvar).double().sum()
    n = images.shape[0]
    recon_ll, kl_mean = (recon / n).item(), (kl / n).item()
    return {"test_elbo_nats": recon_ll - kl_mean, "test_kl_nats": kl_mean, "test_recon_nats": recon_ll}


def write_history(path: Path, rows: list[dict]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=HISTORY_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: (f"{row[k]:.6f}" if isinstance(row[k], float) else row[k]) for k in HISTORY_COLUMNS}
                     for row in rows)
    atomic_write(path, lambda tmp: tmp.write_text(buf.getvalue()))


def _finite(model: VAE) -> bool:
    return all(torch.isfinite(p).all() for p in model.parameters())


def _save_checkpoint(path: Path, model: VAE, opt, gen: torch.Generator, epoch: int, rows: list[dict],
                     cfg: TrainConfig, elapsed: float) -> None:
    payload = {"model": model.state_dict(), "optimizer": opt.state_dict(), "generator": gen.get_state(),
               "epoch": epoch, "history": rows, "train_config": asdict(cfg), "elapsed": elapsed}
    atomic_write(path, lambda tmp: torch.save(payload, tmp))


def _load_checkpoint(path: Path, cfg: TrainConfig, device: torch.device) -> dict | None:
    """The checkpoint of an interrupted run with the same arguments, or None to start afresh."""
    if not path.exists():
        return None
    try:
        ckpt = torch.load(path, map_location=device, weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable checkpoint is reported the same way
        raise CheckpointError(f"checkpoint {path} is unreadable ({type(err).__name__}): delete it to "
                              "restart the run from scratch") from None
    same = {k: v for k, v in ckpt["train_config"].items() if k not in RESUMABLE_CHANGES}
    mine = {k: v for k, v in asdict(cfg).items() if k not in RESUMABLE_CHANGES}
    if same != mine:
        raise CheckpointError(f"checkpoint {path} was written with other arguments: delete it or use another --out")
    return ckpt


def train(cfg: TrainConfig, out: Path, max_batches: int | None = None) -> dict:
    """Train, write model.pt, history.csv and run.json into `out`, and return the run record."""
    device = pick_device(cfg.device)
    threads = set_threads(cfg.threads)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True  # training only; evaluation turns it off
        torch.backends.cudnn.allow_tf32 = True
    data = load_dataset(cfg.dataset, cfg.data_dir)
    torch.manual_seed(cfg.seed)  # weight initialisation
    model = build_model(model_config(cfg, data)).to(device)
    opt = make_optimizer(model, cfg)
    gen = torch.Generator(device=device).manual_seed(cfg.seed)
    step_model = torch.compile(model) if cfg.compile else model  # shares model's parameters
    train_images, test_images = data.train_images.to(device), data.test_images.to(device)

    out.mkdir(parents=True, exist_ok=True)
    ckpt_path = out / CHECKPOINT
    rows: list[dict] = []
    start_epoch, elapsed = 1, 0.0
    ckpt = _load_checkpoint(ckpt_path, cfg, device)
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        gen.set_state(ckpt["generator"].cpu())  # a generator's state is a CPU byte tensor, also for cuda
        rows, start_epoch, elapsed = ckpt["history"], ckpt["epoch"] + 1, ckpt["elapsed"]
        print(f"resuming {out} from epoch {ckpt['epoch']}", file=sys.stderr)

    started_at, status, diverged_epoch = utc_now(), "ok", None
    last_good = {k: t.clone() for k, t in model.state_dict().items()}
    for epoch in range(start_epoch, cfg.epochs + 1):
        t0 = time.perf_counter()
        train_loss = train_epoch(step_model, opt, train_images, cfg, gen, max_batches).item()
        if not (math.isfinite(train_loss) and _finite(model)):
            status, diverged_epoch = "diverged", epoch
            print(f"epoch {epoch}: loss or parameters not finite; keeping epoch {epoch - 1}", file=sys.stderr)
            model.load_state_dict(last_good)
            break
        row = {"epoch": epoch, "train_loss_nats": train_loss, **test_elbo(model, test_images, cfg)}
        row["seconds"] = time.perf_counter() - t0
        elapsed += row["seconds"]
        rows.append(row)
        last_good = {k: t.clone() for k, t in model.state_dict().items()}
        _save_checkpoint(ckpt_path, model, opt, gen, epoch, rows, cfg, elapsed)
        write_history(out / "history.csv", rows)  # after the checkpoint, so it lists only resumable epochs
        print(f"[{cfg.loss} z={cfg.latent_dim} seed={cfg.seed}] epoch {epoch}/{cfg.epochs} "
              f"train loss {train_loss:.2f} nats, test ELBO {row['test_elbo_nats']:.2f} nats, "
              f"{row['seconds']:.2f} s", file=sys.stderr)

    write_history(out / "history.csv", rows)
    save_model(model, out / "model.pt")
    last = rows[-1] if rows else {}
    record = {
        **asdict(cfg), "family_options": cfg.family_options, "threads": threads, "status": status,
        "diverged_epoch": diverged_epoch, "epochs_completed": len(rows),
        "final_train_loss_nats": last.get("train_loss_nats"), "final_test_elbo_nats": last.get("test_elbo_nats"),
        "train_seconds": elapsed, "seconds_per_epoch": elapsed / len(rows) if rows else None,
        "dataset_sha256": data.sha256, "dataset_source": data.source, "dims": data.dims,
        "started_at": started_at, "finished_at": utc_now(), **provenance(device),
    }
    write_json(out / "run.json", record)
    ckpt_path.unlink(missing_ok=True)  # the finished model supersedes it
    return record


def add_arguments(p: argparse.ArgumentParser) -> None:
    d = TrainConfig()
    p.add_argument("--dataset", default=d.dataset, choices=DATASETS, help="dataset to train on (default: %(default)s)")
    p.add_argument("--loss", default=d.loss, metavar="FAMILY",
                   help=f"output family / reconstruction loss, one of: {', '.join(FAMILIES)} (default: %(default)s)")
    p.add_argument("--latent-dim", type=int, default=d.latent_dim, help="latent dimension Z (default: %(default)s)")
    p.add_argument("--seed", type=int, default=d.seed, help="seed for weights, batch order and all noise")
    p.add_argument("--epochs", type=int, default=d.epochs, help="training epochs (default: %(default)s)")
    p.add_argument("--arch", default=d.arch, choices=ARCHITECTURES, help="encoder/decoder architecture")
    p.add_argument("--hidden", type=int, default=d.hidden, help="hidden width of the mlp (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="images per step (default: %(default)s)")
    p.add_argument("--lr", type=float, default=d.lr, help="Adam learning rate (default: %(default)s)")
    p.add_argument("--dequantize", action=argparse.BooleanOptionalAction, default=d.dequantize,
                   help="train on (v+u)/256 (default); --no-dequantize trains on v/255 as the seed did, "
                        "and the likelihoods are then not comparable")
    p.add_argument("--sigma", type=float, default=None, help="fixed std of gaussian_fixed (default sqrt(1/2))")
    p.add_argument("--laplace-b", type=float, default=None, help="fixed scale of laplace_fixed (default 1)")
    p.add_argument("--device", default=d.device, help="'auto' (cuda when present, else cpu), 'cpu', 'cuda:1', ...")
    p.add_argument("--threads", type=int, default=d.threads, help="torch CPU threads; 0 keeps torch's default")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the model for training (pays off on GPU; on CPU the mlp gains little "
                        "and compiling takes a minute)")
    p.add_argument("--data-dir", default=None, help="where datasets are looked for and downloaded to")
    p.add_argument("--out", required=True, type=Path, help="run directory for model.pt, history.csv, run.json")
    p.add_argument("--dry-run", action="store_true", help="one epoch of two batches, to check that everything runs")


def run(args: argparse.Namespace) -> int:
    fields = set(TrainConfig.__dataclass_fields__)
    cfg = TrainConfig(**{k: v for k, v in vars(args).items() if k in fields})
    if cfg.loss not in FAMILIES:
        raise unknown_name("family", cfg.loss, FAMILIES)
    require_positive(latent_dim=cfg.latent_dim, epochs=cfg.epochs, batch_size=cfg.batch_size, hidden=cfg.hidden)
    if args.dry_run:
        cfg.epochs = 1
    with device_slot(cfg.device) as device:  # several GPUs: a device of this job's own, until it ends
        cfg.device = str(device)
        train(cfg, args.out, max_batches=2 if args.dry_run else None)
    return 0  # a diverged run is a recorded result, not a failed job: the study carries on
