"""`vaebench train`: fit one VAE for one (dataset, family, latent dimension, seed) and save it.

Objective: the negative ELBO with the family's training loss (plain BCE for `bernoulli`) and
the analytic KL, optimised with Adam. The dataset lives in one uint8 tensor on the device and
batches are drawn by index (no per-item DataLoader). One torch.Generator on the device drives
the batch order, the dequantization noise and the reparameterisation noise, so a seed fixes
everything; it is saved with each epoch's checkpoint, which is how an interrupted run resumes
to exactly the same model on a CPU (on a GPU, to float rounding: the upsampling's backward adds
with atomics in whatever order the threads come).

A finished run (its run.json) is never replaced without --overwrite: the same arguments again are
a no-op, others are refused, as a checkpoint written with other arguments is.
"""

import argparse
import copy
import csv
import io
import math
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, replace
from pathlib import Path

import torch

from vaebench.data import ImageDataset, load_dataset, split_validation, to_unit_interval
from vaebench.errors import CheckpointError, VaebenchError, WriteError
from vaebench.gpu_slots import device_slot
from vaebench.layout import CHECKPOINT, HISTORY, MODEL, RUN_RECORD, TRAINED
from vaebench.models import VAE, ModelConfig, build_model, gaussian_kl, save_model, save_torch
from vaebench.seeding import (
    STREAM_RESUME,
    STREAM_TRAIN_ELBO,
    STREAM_TRAIN_SCALE,
    STREAM_TRAINING,
    STREAM_WEIGHTS,
    stream_generator,
    stream_seed,
)
from vaebench.settings import TrainConfig, selected_settings
from vaebench.stopping import CONTINUE, DECAY, DIVERGED, EPOCH_CAP, StopRule, StopState, drift_bpd, step
from vaebench.utils import (
    Progress,
    atomic_write,
    compiling,
    duration,
    first_difference,
    memory_of,
    os_reason,
    pick_device,
    provenance,
    read_json,
    set_threads,
    utc_now,
    write_json,
)

HISTORY_COLUMNS = (
    "epoch",
    "lr",
    "train_loss_nats",
    "val_elbo_nats",
    "test_elbo_nats",
    "test_kl_nats",
    "test_recon_nats",
    "seconds",
)
FINISHED = ("ok", "diverged")  # the statuses run.json records
EVAL_BATCH = 1000
RESUMABLE_CHANGES = ("epochs", "device", "threads", "compile")  # a run may resume with other values
SAME_RUN_CHANGES = ("device", "threads", "compile")  # a finished run is the same run with other values


def model_config(cfg: TrainConfig, data: ImageDataset) -> ModelConfig:
    c, h, w = data.shape
    return ModelConfig(
        arch=cfg.arch,
        channels=c,
        height=h,
        width=w,
        latent_dim=cfg.latent_dim,
        family=cfg.loss,
        family_options=cfg.family_options,
        hidden=cfg.hidden,
    )


def training_precision(device: torch.device) -> None:
    """TF32 products on a GPU for the process (run.json records it): training loses nothing to their
    rounding, evaluation turns them off while it scores."""
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


def make_optimizer(model: VAE, cfg: TrainConfig) -> torch.optim.Optimizer:
    """Adam, fused: one kernel updates every parameter (faster steps on CPU, one launch on GPU)."""
    return torch.optim.Adam(model.parameters(), lr=cfg.lr, fused=True)


def train_step(
    model: VAE, opt: torch.optim.Optimizer, v: torch.Tensor, cfg: TrainConfig, gen: torch.Generator
) -> torch.Tensor:
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


def n_batches(n_images: int, cfg: TrainConfig, max_batches: int | None = None) -> int:
    return min(math.ceil(n_images / cfg.batch_size), max_batches or math.inf)


def train_epoch(
    model: VAE,
    opt: torch.optim.Optimizer,
    images: torch.Tensor,
    cfg: TrainConfig,
    gen: torch.Generator,
    max_batches: int | None = None,
    progress: Progress | None = None,
) -> torch.Tensor:
    """One pass over `images` (uint8 [N, C, H, W] on the device); returns the mean loss as a 0-d tensor.

    No host synchronisation inside the loop: the loss sum stays on the device, and `progress` only
    counts batches.
    """
    model.train()
    n = images.shape[0]
    order = torch.randperm(n, generator=gen, device=images.device)
    total = torch.zeros((), device=images.device, dtype=torch.float64)
    seen = 0
    for b, start in enumerate(range(0, n, cfg.batch_size)):
        if max_batches is not None and b >= max_batches:
            break
        v = images[order[start : start + cfg.batch_size]]  # [B, C, H, W] uint8
        total += train_step(model, opt, v, cfg, gen).double() * v.shape[0]
        seen += v.shape[0]
        if progress is not None:
            progress(1)
    return total / seen


def fixed_noise_passes(model: VAE, images: torch.Tensor, cfg: TrainConfig, stream: int) -> Iterator[tuple]:
    """(x, params, mu, logvar) per EVAL_BATCH images, in eval mode, with noise reseeded from `stream` on every
    call: every pass over the same images sees the same draws."""
    model.eval()
    gen = stream_generator(cfg.seed, stream, images.device)
    for start in range(0, images.shape[0], EVAL_BATCH):
        v = images[start : start + EVAL_BATCH]
        x = to_unit_interval(v, cfg.dequantize, gen)
        eps = torch.randn(v.shape[0], cfg.latent_dim, generator=gen, device=v.device)
        yield (x, *model(x, eps))


@torch.no_grad()
def fit_shared_scale(model: VAE, images: torch.Tensor, cfg: TrainConfig) -> None:
    """Set a shared scale (gaussian_shared's sigma) to its optimum over all of `images`, the training split,
    with fixed noise: in training it follows each batch, and the last batch's value is no model's best."""
    total = torch.zeros((), device=images.device, dtype=torch.float64)
    for x, params, _, _ in fixed_noise_passes(model, images, cfg, STREAM_TRAIN_SCALE):
        total += model.family.squared_error(params, x).double()
    model.family.set_sigma(total / (images.shape[0] * math.prod(images.shape[1:])))


@torch.no_grad()
def test_elbo(model: VAE, images: torch.Tensor, cfg: TrainConfig) -> dict[str, float]:
    """Test ELBO (one sample, analytic KL, the family's proper density) with fixed noise, nats/image.

    The noise is the same on every call, so the learning curve compares epochs on the same draw.
    """
    recon = torch.zeros((), device=images.device, dtype=torch.float64)
    kl = torch.zeros_like(recon)
    for x, params, mu, logvar in fixed_noise_passes(model, images, cfg, STREAM_TRAIN_ELBO):
        recon += model.family.log_density(params, x).double().sum()
        kl += gaussian_kl(mu, logvar).double().sum()
    n = images.shape[0]
    recon_ll, kl_mean = (recon / n).item(), (kl / n).item()
    return {"test_elbo_nats": recon_ll - kl_mean, "test_kl_nats": kl_mean, "test_recon_nats": recon_ll}


def write_history(path: Path, rows: list[dict]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=HISTORY_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(
        {k: (f"{row[k]:.6f}" if isinstance(row[k], float) else row[k]) for k in HISTORY_COLUMNS}
        for row in rows
    )
    atomic_write(path, lambda tmp: tmp.write_text(buf.getvalue()))


def _state(model: VAE) -> dict[str, torch.Tensor]:
    return {k: t.clone() for k, t in model.state_dict().items()}


def kept_epoch(epoch: int, model: VAE, opt: torch.optim.Optimizer) -> dict:
    """A copy of the model and optimizer at `epoch`: the epoch kept, and where a plateau returns to."""
    return {"epoch": epoch, "state": _state(model), "optimizer": copy.deepcopy(opt.state_dict())}


def return_to_best(model: VAE, opt: torch.optim.Optimizer, best: dict, lr: float) -> None:
    """A plateau: back to the best epoch's weights and optimizer, at the decayed learning rate `lr` (a plateau
    after a collapse would otherwise go on from the collapsed weights)."""
    model.load_state_dict(best["state"])
    opt.load_state_dict(best["optimizer"])
    for group in opt.param_groups:
        group["lr"] = lr


def _finite(model: VAE) -> bool:
    return all(torch.isfinite(p).all() for p in model.parameters())


def _save_checkpoint(
    path: Path,
    model: VAE,
    opt,
    gen: torch.Generator,
    epoch: int,
    rows: list[dict],
    cfg: TrainConfig,
    elapsed: float,
    best: dict,
    stop: StopState,
    stop_reason: str | None,
) -> None:
    payload = {
        "model": model.state_dict(),
        "best": best,
        "stop": stop.to_dict(),  # the rule resumes where it stood
        "stop_reason": stop_reason,  # set once the rule has ended the run: a resumed run trains no further
        "optimizer": opt.state_dict(),
        "generator": gen.get_state(),
        "epoch": epoch,
        "history": rows,
        "train_config": asdict(cfg),
        "elapsed": elapsed,
    }
    save_torch(path, payload)


def _difference(saved: dict, cfg: TrainConfig, free: tuple[str, ...]) -> str | None:
    """The first argument other than `free` in which a saved config (a checkpoint's, run.json) differs from
    `cfg`, as 'loss gaussian, not beta'; None for the same run."""
    return first_difference(saved, {k: v for k, v in asdict(cfg).items() if k not in free})


def _load_checkpoint(path: Path, cfg: TrainConfig, device: torch.device) -> dict | None:
    """The checkpoint of an interrupted run with the same arguments, or None to start afresh.

    Loaded onto `device` whatever it was written on (a run checkpointed on a GPU resumes on the CPU)."""
    if not path.exists():
        return None
    try:
        ckpt = torch.load(path, map_location=device, weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable checkpoint is reported the same way
        raise CheckpointError(
            f"checkpoint {path} is unreadable ({type(err).__name__}): delete it to "
            "restart the run from scratch"
        ) from None
    other = _difference(ckpt["train_config"], cfg, RESUMABLE_CHANGES)
    if other is not None:
        raise CheckpointError(
            f"checkpoint {path} was written with other arguments ({other}): delete it, "
            "use another --out, or --overwrite"
        )
    if ckpt["epoch"] > cfg.epochs:
        raise CheckpointError(
            f"checkpoint {path} is at epoch {ckpt['epoch']}, past --epochs {cfg.epochs}: "
            "raise --epochs, or --overwrite to start again"
        )
    return ckpt


def _restore_generator(gen: torch.Generator, ckpt: dict, cfg: TrainConfig) -> None:
    """Continue the checkpoint's noise. A generator of another device type (a CUDA generator's state is a
    seed and an offset, a CPU one's a Mersenne twister) cannot take it: reseed it from the seed and the
    epoch instead, and say that this run is not the uninterrupted one."""
    state = ckpt["generator"].cpu()  # a generator's state is a CPU byte tensor, also for cuda
    if state.numel() == gen.get_state().numel():
        gen.set_state(state)
        return
    gen.manual_seed(stream_seed(cfg.seed, STREAM_RESUME, ckpt["epoch"]))
    print(
        f"the checkpoint's noise generator is of another device type than {gen.device.type}: resuming "
        f"with one seeded from the seed and epoch {ckpt['epoch']}, so the model is not bit for bit that "
        "of an uninterrupted run",
        file=sys.stderr,
    )


def finished_run(out: Path, cfg: TrainConfig) -> dict | None:
    """The record of a finished run in `out` with the same arguments (None: no finished run there).

    One line (VaebenchError) for a finished run with other arguments, more epochs included: replacing it
    takes --overwrite."""
    path = out / RUN_RECORD
    if not path.exists():
        return None
    record = read_json(path, "")
    if record.get("status") not in FINISHED:
        return None
    other = _difference(record, cfg, SAME_RUN_CHANGES)
    if other is not None:
        raise VaebenchError(
            f"{out} holds a finished run with other arguments ({other}): use another --out, "
            "or --overwrite to replace it"
        )
    return record if all((out / name).exists() for name in TRAINED) else None


def train(cfg: TrainConfig, out: Path, max_batches: int | None = None) -> dict:
    """Train, write the model, its history and the run record (layout.TRAINED) into `out`; return the
    record."""
    device = pick_device(cfg.device)
    threads = set_threads(cfg.threads)
    training_precision(device)
    data = load_dataset(cfg.dataset, cfg.data_dir)
    torch.manual_seed(stream_seed(cfg.seed, STREAM_WEIGHTS))  # weight initialisation
    model = build_model(model_config(cfg, data)).to(device)
    opt = make_optimizer(model, cfg)
    gen = stream_generator(cfg.seed, STREAM_TRAINING, device)
    step_model = torch.compile(model) if cfg.compile else model  # shares model's parameters
    train_images, val_images = split_validation(data.train_images, cfg.validation)
    train_images, val_images = train_images.to(device), val_images.to(device)
    test_images = data.test_images.to(device)
    shared_scale = model.family.entry.scale == "shared"

    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise WriteError(f"cannot create {out}: {os_reason(err)}") from None
    ckpt_path = out / CHECKPOINT
    rows: list[dict] = []
    start_epoch, elapsed = 1, 0.0
    # the epoch kept (best validation ELBO, else the last) with its optimizer, which a plateau returns to
    best = kept_epoch(0, model, opt)
    rule, stop, stop_reason = StopRule.of(asdict(cfg)), StopState(), None
    ckpt = _load_checkpoint(ckpt_path, cfg, device)
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])  # the learning rate, as decayed so far, with it
        _restore_generator(gen, ckpt, cfg)
        rows, start_epoch, elapsed, best = ckpt["history"], ckpt["epoch"] + 1, ckpt["elapsed"], ckpt["best"]
        stop, stop_reason = StopState(**ckpt["stop"]), ckpt["stop_reason"]
        print(f"resuming {out} from epoch {ckpt['epoch']}", file=sys.stderr)

    tag = f"[{cfg.loss} z={cfg.latent_dim} seed={cfg.seed}]"
    batches = n_batches(train_images.shape[0], cfg, max_batches)
    started_at, status, diverged_epoch = utc_now(), "ok", None
    last_good = _state(model)
    for epoch in range(start_epoch, cfg.epochs + 1):
        if stop_reason is not None:  # resumed after the rule had ended the run
            break
        t0 = time.perf_counter()
        lr = opt.param_groups[0]["lr"]
        with Progress(f"{tag} epoch {epoch}/{cfg.epochs}", batches, "batches") as progress:
            loss = train_epoch(step_model, opt, train_images, cfg, gen, max_batches, progress)
        train_loss = loss.item()
        if not (math.isfinite(train_loss) and _finite(model)):
            status, diverged_epoch, stop_reason = "diverged", epoch, DIVERGED
            print(f"epoch {epoch}: loss or parameters not finite; keeping epoch {epoch - 1}", file=sys.stderr)
            model.load_state_dict(last_good)
            break
        if shared_scale:
            fit_shared_scale(model, train_images, cfg)
        val = test_elbo(model, val_images, cfg)["test_elbo_nats"] if cfg.validation else None
        row = {"epoch": epoch, "lr": lr, "train_loss_nats": train_loss, "val_elbo_nats": val}
        row.update(test_elbo(model, test_images, cfg))  # the learning curve only: nothing is chosen on it
        row["seconds"] = time.perf_counter() - t0
        elapsed += row["seconds"]
        rows.append(row)
        last_good = _state(model)
        # with no validation split the rule cannot judge: each epoch is the best so far, the cap ends the run
        action = step(rule, stop, epoch, val, data.dims) if val is not None else CONTINUE
        if action == CONTINUE and epoch == cfg.epochs:
            action = EPOCH_CAP
        if stop.best_epoch == epoch or val is None:
            best = kept_epoch(epoch, model, opt)
        if action == DECAY:
            return_to_best(model, opt, best, cfg.lr * stop.lr_scale)
        elif action != CONTINUE:
            stop_reason = action
        _save_checkpoint(ckpt_path, model, opt, gen, epoch, rows, cfg, elapsed, best, stop, stop_reason)
        write_history(out / HISTORY, rows)  # after the checkpoint, so it lists only resumable epochs
        eta = (cfg.epochs - epoch) * elapsed / len(rows)
        print(
            f"{tag} epoch {epoch}/{cfg.epochs} train loss {train_loss:.2f} nats, "
            + (f"validation ELBO {val:.2f} nats, " if val is not None else "")
            + "test ELBO "
            f"{row['test_elbo_nats']:.2f} nats, {row['seconds']:.2f} s, ETA {duration(eta)}"
            + {CONTINUE: "", DECAY: f"; learning rate now {opt.param_groups[0]['lr']:.3g}"}.get(
                action, f"; stop: {action}"
            ),
            file=sys.stderr,
        )

    write_history(out / HISTORY, rows)
    model.load_state_dict(best["state"])
    save_model(model, out / MODEL)
    kept = rows[best["epoch"] - 1] if rows else {}
    record = {
        **asdict(cfg),
        "family_options": cfg.family_options,
        "threads": threads,
        "status": status,
        "diverged_epoch": diverged_epoch,
        "epochs_completed": len(rows),
        "stop_reason": stop_reason,
        # the best validation ELBO's rise over the rule's last window: what training still gained at the stop
        "drift_bpd": drift_bpd(stop, rule.patience, data.dims),
        "lr_decays": stop.decays,
        "lr_final": opt.param_groups[0]["lr"],
        "best_epoch": best["epoch"] or None,
        "epoch_chosen_by": "validation ELBO" if cfg.validation else "last epoch",
        "val_elbo_nats": kept.get("val_elbo_nats"),
        "final_train_loss_nats": kept.get("train_loss_nats"),
        "final_test_elbo_nats": kept.get("test_elbo_nats"),
        "train_seconds": elapsed,
        "seconds_per_epoch": elapsed / len(rows) if rows else None,
        "dataset_sha256": data.sha256,
        "dataset_source": data.source,
        "dims": data.dims,
        "started_at": started_at,
        "finished_at": utc_now(),
        **provenance(device),
    }
    write_json(out / RUN_RECORD, record)
    ckpt_path.unlink(missing_ok=True)  # the finished model supersedes it
    return record


def run(args: argparse.Namespace) -> int:
    fields = set(TrainConfig.__dataclass_fields__)
    cfg = TrainConfig(**{k: v for k, v in vars(args).items() if k in fields})
    if args.selected is not None:
        cfg = replace(cfg, **selected_settings(args.selected, cfg.loss))
    if args.dry_run:
        cfg.epochs = 1
    if args.overwrite:
        for name in (RUN_RECORD, CHECKPOINT):  # the model and the history are replaced as they are written
            try:
                (args.out / name).unlink(missing_ok=True)
            except OSError as err:
                raise WriteError(f"cannot remove {args.out / name}: {os_reason(err)}") from None
    elif (record := finished_run(args.out, cfg)) is not None:
        print(
            f"{args.out} holds this run, finished (status {record['status']}, {record['epochs_completed']} "
            "epochs): nothing to do; --overwrite trains it again",
            file=sys.stderr,
        )
        return 0
    with device_slot(cfg.device) as device, compiling(cfg.compile, "rerun without --compile"):
        cfg.device = str(device)  # several GPUs: a device of this job's own, until it ends
        try:
            train(cfg, args.out, max_batches=2 if args.dry_run else None)
        except torch.OutOfMemoryError:
            raise VaebenchError(
                f"out of memory training at batch size {cfg.batch_size} on {memory_of(device)}: "
                "lower --batch-size"
            ) from None
    return 0  # a diverged run is a recorded result, not a failed job: the study carries on
