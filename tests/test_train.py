"""`vaebench train`: every family trains with finite numbers; a seed fixes everything; runs resume."""

import csv
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from vaebench import utils
from vaebench.cli import main
from vaebench.families import FAMILIES
from vaebench.models import load_model
from vaebench.train import TrainConfig, train


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("data"))  # holds the mnist5k cache for the whole module


def read_history(run: Path, drop=("seconds",)) -> list[dict]:
    with open(run / "history.csv") as f:
        return [{k: v for k, v in row.items() if k not in drop} for row in csv.DictReader(f)]


def same_weights(a: Path, b: Path) -> bool:
    sa, sb = (load_model(p / "model.pt").state_dict() for p in (a, b))
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_family_trains_one_epoch_with_finite_numbers(family, tmp_path, data_dir):
    out = tmp_path / family
    code = main(
        [
            "train",
            "--dataset",
            "mnist5k",
            "--loss",
            family,
            "--latent-dim",
            "4",
            "--epochs",
            "1",
            "--hidden",
            "64",
            "--batch-size",
            "256",
            "--threads",
            "1",
            "--data-dir",
            data_dir,
            "--out",
            str(out),
        ]
    )
    assert code == 0
    record = json.loads((out / "run.json").read_text())
    assert record["status"] == "ok" and record["epochs_completed"] == 1 and record["loss"] == family
    assert record["dims"] == 784 and len(record["dataset_sha256"]) == 64 and record["device"] == "cpu"
    (row,) = read_history(out, drop=())
    for key in ("train_loss_nats", "test_elbo_nats", "test_kl_nats", "test_recon_nats", "seconds"):
        assert torch.isfinite(torch.tensor(float(row[key]))), key
    assert float(row["test_kl_nats"]) >= 0
    assert not (out / "checkpoint.pt").exists()  # removed once the model is final
    model = load_model(out / "model.pt")
    assert model.family.name == family and model.config.latent_dim == 4


def test_same_seed_gives_identical_history_and_weights(tmp_path, data_dir):
    cfg = dict(loss="gaussian", latent_dim=3, epochs=2, hidden=32, threads=1, data_dir=data_dir)
    for name in ("a", "b"):
        train(TrainConfig(**cfg, seed=7), tmp_path / name, max_batches=5)
    train(TrainConfig(**cfg, seed=8), tmp_path / "c", max_batches=5)
    assert read_history(tmp_path / "a") == read_history(tmp_path / "b")
    assert same_weights(tmp_path / "a", tmp_path / "b")
    assert read_history(tmp_path / "a") != read_history(tmp_path / "c")


def test_bad_arguments_give_one_line_errors(tmp_path, capsys):
    assert main(["train", "--loss", "gausian", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "did you mean 'gaussian'" in err and "\n" not in err
    assert main(["train", "--latent-dim", "0", "--out", str(tmp_path)]) == 2
    assert "argument --latent-dim: must be a positive integer" in capsys.readouterr().err
    # (tests/test_cli.py has every other value --help does not allow)


def test_a_missing_gpu_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["train", "--device", "cuda", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert (
        err.startswith("vaebench train: error: device cuda: no CUDA device on this machine")
        and err.count("\n") == 1
    )


def test_compile_without_a_cpp_compiler_is_one_line(tmp_path, data_dir, capsys, monkeypatch):
    import torch._inductor.config as inductor_config

    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))  # no cached kernel to reuse
    with inductor_config.patch({"fx_graph_cache": False, "cpp.cxx": ("/nonexistent/g++",)}):
        assert quick(tmp_path / "run", data_dir, "--compile") == 2
    err = capsys.readouterr().err
    assert err.startswith("vaebench train: error: --compile failed (") and err.count("\n") == 1
    assert "rerun without --compile" in err


def quick(out: Path, data_dir: str, *extra: str) -> int:
    return main(
        [
            "train",
            "--loss",
            "continuous_bernoulli",
            "--latent-dim",
            "2",
            "--hidden",
            "16",
            "--epochs",
            "2",
            "--batch-size",
            "512",
            "--data-dir",
            data_dir,
            "--out",
            str(out),
            *extra,
        ]
    )


def test_a_finished_run_is_kept_and_never_written_over_by_another(tmp_path, data_dir, capsys):
    run = tmp_path / "run"
    assert quick(run, data_dir) == 0
    before = {name: (run / name).read_bytes() for name in ("model.pt", "history.csv", "run.json")}
    capsys.readouterr()
    # the same arguments (device and threads may differ): nothing to do, nothing rewritten
    assert quick(run, data_dir, "--threads", "2") == 0
    assert capsys.readouterr().err == (
        f"{run} holds this run, finished (status ok, 2 epochs): nothing to do; --overwrite trains it again\n"
    )
    # another family, or more epochs of the same: refused in one line, the run untouched
    for other, difference in (
        (["--loss", "gaussian"], "loss continuous_bernoulli, not gaussian"),
        (["--epochs", "3"], "epochs 2, not 3"),
    ):
        args = [a for a in ["--epochs", "2"] if other[0] != "--epochs"] + other
        assert (
            main(
                [
                    "train",
                    "--latent-dim",
                    "2",
                    "--hidden",
                    "16",
                    "--batch-size",
                    "512",
                    "--loss",
                    "continuous_bernoulli",
                    *args,
                    "--data-dir",
                    data_dir,
                    "--out",
                    str(run),
                ]
            )
            == 2
        )
        err = capsys.readouterr().err
        assert err == (
            f"vaebench train: error: {run} holds a finished run with other arguments "
            f"({difference}): use another --out, or --overwrite to replace it\n"
        )
    assert {name: (run / name).read_bytes() for name in before} == before
    # --overwrite replaces it
    assert quick(run, data_dir, "--epochs", "1", "--overwrite") == 0
    assert json.loads((run / "run.json").read_text())["epochs"] == 1 and len(read_history(run)) == 1


def test_an_epoch_that_takes_long_shows_its_progress_and_every_epoch_an_eta(
    tmp_path, data_dir, capsys, monkeypatch
):
    monkeypatch.setattr(utils, "PROGRESS_SECONDS", 0.0)  # every epoch counts as long
    assert quick(tmp_path / "run", data_dir) == 0
    err = capsys.readouterr().err.splitlines()
    tag = "[continuous_bernoulli z=2 seed=0]"
    within = [line for line in err if line.startswith(f"{tag} epoch 1/2: ")]
    assert within[0].startswith(f"{tag} epoch 1/2: 1/8 batches (12%), ")  # 4,000 images, 512 a batch
    assert within[-1].startswith(f"{tag} epoch 1/2: 8 batches in 0:00:")
    epochs = [line for line in err if re.match(rf"{re.escape(tag)} epoch \d/2 train loss", line)]
    assert len(epochs) == 2 and re.search(r", ETA 0:\d\d:\d\d$", epochs[0])
    assert epochs[1].endswith("ETA 0:00:00; stop: epoch_cap")


def test_killed_run_resumes_to_the_same_model(tmp_path, data_dir):
    # small batches make an epoch last about a second, so the kill lands mid-run; a minimum gain no epoch
    # reaches makes the rule decay the learning rate at epochs 2 and 3 and stop the run at epoch 4
    args = [
        sys.executable,
        "-m",
        "vaebench.cli",
        "train",
        "--loss",
        "continuous_bernoulli",
        "--latent-dim",
        "2",
        "--batch-size",
        "16",
        "--epochs",
        "6",
        "--validation",
        "400",  # the best epoch so far is part of what resumes
        *("--min-gain-bpd", "100", "--patience", "1", "--max-decays", "2"),  # and the rule's state
        "--threads",
        "1",
        "--data-dir",
        data_dir,
    ]
    subprocess.run([*args, "--out", str(tmp_path / "whole")], check=True, capture_output=True)
    whole = json.loads((tmp_path / "whole" / "run.json").read_text())
    assert (whole["stop_reason"], whole["epochs_completed"], whole["lr_decays"]) == ("converged", 4, 2)

    out = tmp_path / "killed"
    proc = subprocess.Popen([*args, "--out", str(out)], stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and (not (out / "history.csv").exists() or len(read_history(out)) < 2):
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert (out / "checkpoint.pt").exists() and not (out / "run.json").exists()
    # the checkpoint, not history.csv: the kill may land between the two writes of an epoch
    done_before_kill = torch.load(out / "checkpoint.pt", weights_only=True)["epoch"]
    assert 2 <= done_before_kill <= 4 and len(read_history(out)) in (done_before_kill - 1, done_before_kill)

    resumed = subprocess.run([*args, "--out", str(out)], check=True, capture_output=True, text=True)
    assert f"from epoch {done_before_kill}" in resumed.stderr
    assert read_history(out) == read_history(tmp_path / "whole")
    assert same_weights(out, tmp_path / "whole")
    record = json.loads((out / "run.json").read_text())
    assert {k: record[k] for k in ("stop_reason", "lr_final", "best_epoch", "drift_bpd")} == {
        k: whole[k] for k in ("stop_reason", "lr_final", "best_epoch", "drift_bpd")
    }


def stop_run(tmp_path, data_dir, *options: str) -> tuple[dict, list[dict]]:
    """A two-digit-latent continuous Bernoulli run on 1,000 training images with 400 held out: its record
    and history."""
    out = tmp_path / "run"
    base = ["train", "--latent-dim", "2", "--batch-size", "64", "--validation", "400", "--threads", "1"]
    assert main([*base, "--data-dir", data_dir, "--out", str(out), *options]) == 0
    return json.loads((out / "run.json").read_text()), read_history(out)


def test_the_rule_decays_the_learning_rate_then_stops_a_converged_run(tmp_path, data_dir):
    # no epoch gains 100 bits/dim: a plateau at every epoch after the first
    record, history = stop_run(
        tmp_path, data_dir, "--epochs", "9", "--min-gain-bpd", "100", "--patience", "1", "--max-decays", "1"
    )
    assert record["stop_reason"] == "converged" and record["epochs_completed"] == 3
    assert [float(row["lr"]) for row in history] == pytest.approx([1e-3, 1e-3, 3e-4])
    assert record["lr_decays"] == 1 and record["lr_final"] == pytest.approx(3e-4)
    best = max(range(3), key=lambda i: float(history[i]["val_elbo_nats"]))
    assert record["best_epoch"] == best + 1
    # the drift is the best validation ELBO's rise over the last `patience` epochs, in bits/dim
    bests = [max(float(r["val_elbo_nats"]) for r in history[: i + 1]) for i in range(3)]
    assert record["drift_bpd"] == pytest.approx((bests[2] - bests[1]) / (784 * math.log(2)))


def test_a_run_the_rule_cannot_stop_ends_at_the_cap(tmp_path, data_dir):
    record, history = stop_run(tmp_path, data_dir, "--epochs", "2", "--patience", "5")
    assert record["stop_reason"] == "epoch_cap" and len(history) == record["epochs_completed"] == 2
    assert record["lr_decays"] == 0


def test_without_a_validation_split_every_run_ends_at_the_cap_and_keeps_its_last_epoch(tmp_path, data_dir):
    out = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "--latent-dim",
                "2",
                "--epochs",
                "2",
                "--min-gain-bpd",
                "100",
                "--patience",
                "1",
                "--batch-size",
                "256",
                "--threads",
                "1",
                "--data-dir",
                data_dir,
                "--out",
                str(out),
            ]
        )
        == 0
    )
    record = json.loads((out / "run.json").read_text())
    assert (record["stop_reason"], record["best_epoch"], record["drift_bpd"]) == ("epoch_cap", 2, None)
