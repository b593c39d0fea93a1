"""The training loop's speed properties, checked on CPU: no host synchronisation inside a step (what
keeps a GPU busy), the fused Adam, and `--compile` training the same model as eager mode."""

import csv
import io
import shutil

import pytest
import torch

from vaebench import utils
from vaebench.families import FAMILIES
from vaebench.models import ModelConfig, build_model
from vaebench.train import TrainConfig, make_optimizer, train, train_epoch


def history(run) -> list[dict]:
    with open(run / "history.csv") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_a_training_epoch_never_reads_a_tensor_on_the_host(family, monkeypatch):
    """On a GPU each of these would wait for the device; on CPU we make them fail instead."""
    cfg = TrainConfig(loss=family, latent_dim=3, hidden=16, batch_size=32)
    model = build_model(ModelConfig("mlp", 1, 8, 8, cfg.latent_dim, family, hidden=cfg.hidden))
    opt = make_optimizer(model, cfg)
    images = torch.randint(
        0, 256, (100, 1, 8, 8), dtype=torch.uint8
    )  # [N, C, H, W], 4 batches (last partial)
    gen = torch.Generator().manual_seed(0)

    def host_read(*args, **kwargs):
        raise AssertionError("host synchronisation inside the training loop")

    monkeypatch.setattr(utils, "PROGRESS_SECONDS", 0.0)  # a progress line after every batch
    log = io.StringIO()
    progress = utils.Progress("epoch 1/1", 4, "batches", stream=log)
    for name in ("item", "tolist", "__bool__", "__float__", "__int__", "__index__", "numpy", "cpu"):
        monkeypatch.setattr(torch.Tensor, name, host_read)
    loss = train_epoch(model, opt, images, cfg, gen, progress=progress)
    monkeypatch.undo()
    assert torch.isfinite(loss) and loss.dim() == 0
    assert log.getvalue().startswith("epoch 1/1: 1/4 batches (25%), ")  # progress counted, read nothing
    assert opt.defaults["fused"] is True


@pytest.mark.slow
@pytest.mark.skipif(
    shutil.which("c++") is None and shutil.which("g++") is None,
    reason="torch.compile on CPU needs a C++ compiler",
)
def test_compiled_training_matches_eager(tmp_path):
    cfg = dict(loss="gaussian", latent_dim=2, hidden=16, epochs=1, threads=1, data_dir=str(tmp_path / "data"))
    train(TrainConfig(**cfg), tmp_path / "eager", max_batches=3)
    compiled = train(TrainConfig(**cfg, compile=True), tmp_path / "compiled", max_batches=3)
    assert compiled["compile"] is True and compiled["status"] == "ok"
    (a,), (b,) = history(tmp_path / "eager"), history(tmp_path / "compiled")
    for key in ("train_loss_nats", "test_elbo_nats"):  # fused kernels round differently: close, not equal
        assert float(b[key]) == pytest.approx(float(a[key]), rel=1e-4), key
