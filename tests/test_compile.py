"""`vaebench train --compile`: torch.compile trains the same model as eager mode, on CPU too."""

import csv
import shutil

import pytest

from vaebench.train import TrainConfig, train


def history(run) -> list[dict]:
    with open(run / "history.csv") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("c++") is None and shutil.which("g++") is None,
                    reason="torch.compile on CPU needs a C++ compiler")
def test_compiled_training_matches_eager(tmp_path):
    cfg = dict(loss="gaussian", latent_dim=2, hidden=16, epochs=1, threads=1, data_dir=str(tmp_path / "data"))
    eager = train(TrainConfig(**cfg), tmp_path / "eager", max_batches=3)
    compiled = train(TrainConfig(**cfg, compile=True), tmp_path / "compiled", max_batches=3)
    assert compiled["compile"] is True and compiled["status"] == "ok"
    (a,), (b,) = history(tmp_path / "eager"), history(tmp_path / "compiled")
    for key in ("train_loss_nats", "test_elbo_nats"):  # fused kernels round differently: close, not equal
        assert float(b[key]) == pytest.approx(float(a[key]), rel=1e-4), key
    assert eager["final_train_loss_nats"] == pytest.approx(compiled["final_train_loss_nats"], rel=1e-4)
