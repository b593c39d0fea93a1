"""The stopping rule's pilot: where vaebench.stopping ends a run, and what training would still have gained.

One family, one seed, z = 16, the mlp, on Fashion-MNIST with a validation split. Training follows the rule
as `vaebench train` does (its kept_epoch and return_to_best); when the rule says converged, the run goes on
for `--extra` epochs at the last learning rate, so the CSV shows both the stop and the validation ELBO's
further rise. That rise, against the gaps between families, tells a strict rule from one that stops early.

    python bench/stopping_pilot.py --loss laplace --lr 0.003 --patience 6 --max-decays 3

writes bench/out/stopping_pilot/LOSS_lrLR_pP_dD.csv (epoch, lr, val_elbo_nats, best_nats, action, seconds).
"""

import argparse
import csv
import math
import sys
import time
from dataclasses import asdict

import torch
from common import OUT_DIR

from vaebench.data import load_dataset, split_validation
from vaebench.models import build_model
from vaebench.seeding import STREAM_TRAINING, STREAM_WEIGHTS, stream_generator, stream_seed
from vaebench.settings import TrainConfig
from vaebench.stopping import CONTINUE, CONVERGED, DECAY, EPOCH_CAP, StopRule, StopState, step
from vaebench.train import (
    fit_shared_scale,
    kept_epoch,
    make_optimizer,
    model_config,
    return_to_best,
    test_elbo,
    train_epoch,
)
from vaebench.utils import set_threads


def pilot(cfg: TrainConfig, extra: int) -> list[dict]:
    set_threads(cfg.threads)
    data = load_dataset(cfg.dataset, cfg.data_dir)
    torch.manual_seed(stream_seed(cfg.seed, STREAM_WEIGHTS))
    model = build_model(model_config(cfg, data))
    opt = make_optimizer(model, cfg)
    gen = stream_generator(cfg.seed, STREAM_TRAINING, torch.device("cpu"))
    train_images, val_images = split_validation(data.train_images, cfg.validation)
    rule, state, stopped_at, rows = StopRule.of(asdict(cfg)), StopState(), None, []
    best, best_nats = kept_epoch(0, model, opt), -math.inf
    for epoch in range(1, cfg.epochs + extra + 1):
        t0 = time.perf_counter()
        lr = opt.param_groups[0]["lr"]
        train_epoch(model, opt, train_images, cfg, gen)
        if model.family.entry.scale == "shared":
            fit_shared_scale(model, train_images, cfg)
        val = test_elbo(model, val_images, cfg)["test_elbo_nats"]
        action = step(rule, state, epoch, val, data.dims) if stopped_at is None else CONTINUE
        if state.best_epoch == epoch:
            best = kept_epoch(epoch, model, opt)
        if action == DECAY:
            return_to_best(model, opt, best, cfg.lr * state.lr_scale)
        rows.append(
            {
                "epoch": epoch,
                "lr": lr,
                "val_elbo_nats": val,
                "best_nats": (best_nats := max(best_nats, val)),
                "action": action,
                "seconds": time.perf_counter() - t0,
            }
        )
        print(f"epoch {epoch} lr {lr:.2g} validation ELBO {val:.2f} nats {action}", file=sys.stderr)
        if action in (CONVERGED, EPOCH_CAP):
            stopped_at = epoch
        if stopped_at is not None and (action == EPOCH_CAP or epoch >= stopped_at + extra):
            break
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loss", required=True)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--patience", type=int, default=TrainConfig.patience)
    parser.add_argument("--max-decays", type=int, default=TrainConfig.max_decays)
    parser.add_argument("--epochs", type=int, default=100, help="the cap")
    parser.add_argument("--extra", type=int, default=12, help="epochs after the stop")
    args = parser.parse_args()
    cfg = TrainConfig(
        dataset="fashion_mnist",
        loss=args.loss,
        latent_dim=16,
        epochs=args.epochs,
        lr=args.lr,
        validation=6000,
        patience=args.patience,
        max_decays=args.max_decays,
        device="cpu",
    )
    rows = pilot(cfg, args.extra)
    out = OUT_DIR / "stopping_pilot" / f"{args.loss}_lr{args.lr:g}_p{args.patience}_d{args.max_decays}.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(out)


if __name__ == "__main__":
    main()
