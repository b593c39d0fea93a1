"""Faults injected on purpose: divergence, corrupt files, hostile checkpoints, unquoted config,
and reruns that must give the same bytes. Each test says which fault it injects.
(A real kill of a training process and its resume is in test_train.py.)"""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from vaebench.cli import main
from vaebench.models import load_model

ROOT = Path(__file__).resolve().parents[1]
VOLATILE_METRICS = {"eval_seconds"}  # wall-clock time: the only key allowed to differ between reruns


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("data"))


def train(out: Path, data_dir: str, *extra: str) -> int:
    return main(["train", "--loss", "gaussian", "--latent-dim", "2", "--hidden", "32", "--epochs", "2",
                 "--threads", "1", "--data-dir", data_dir, "--out", str(out), *extra])


def evaluate(run: Path, out_name: str = "metrics.json", *extra: str) -> int:
    return main(["evaluate", "--run", str(run), "--k", "3", "--n-test", "40", "--batch", "20",
                 "--threads", "1", "--out", str(run / out_name), *extra])


def test_divergence_ends_the_run_cleanly_and_is_still_scored(tmp_path, data_dir):
    # fault: a learning rate that sends the loss to NaN/Inf in the first epoch
    run = tmp_path / "diverged"
    assert train(run, data_dir, "--lr", "10") == 0  # a recorded result, not a failed job
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "diverged" and record["diverged_epoch"] == 1 and record["epochs_completed"] == 0
    model = load_model(run / "model.pt")  # the last finite state (here: the initial weights)
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert evaluate(run) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "diverged" and metrics["bpd_disc"] is not None


def test_truncated_model_file_gives_one_line_naming_it(tmp_path, data_dir, capsys):
    # fault: model.pt cut in half (a crash of a copy, a full disk)
    run = tmp_path / "run"
    assert train(run, data_dir, "--epochs", "1") == 0
    blob = (run / "model.pt").read_bytes()
    (run / "model.pt").write_bytes(blob[: len(blob) // 2])
    capsys.readouterr()
    assert evaluate(run) == 2
    err = capsys.readouterr().err.strip()
    assert str(run / "model.pt") in err and "\n" not in err
    assert not (run / "metrics.json").exists()


def test_truncated_training_checkpoint_gives_one_line(tmp_path, data_dir, capsys):
    # fault: the per-epoch checkpoint of an interrupted run is corrupt
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint.pt").write_bytes(b"PK\x03\x04 not a checkpoint")
    assert train(run, data_dir) == 2
    err = capsys.readouterr().err.strip()
    assert str(run / "checkpoint.pt") in err and "delete it" in err and "\n" not in err


class Payload:
    """Unpickling this would run code: weights_only loading must refuse it."""

    def __reduce__(self):
        return (Path.touch, (Path("/tmp/vaebench-pwned"),))


def test_checkpoints_are_loaded_with_weights_only(tmp_path, capsys):
    # fault: a model file that carries a pickled object instead of tensors
    run = tmp_path / "run"
    run.mkdir()
    torch.save({"config": Payload(), "state_dict": {}}, run / "model.pt")
    (run / "run.json").write_text(json.dumps({"dataset": "mnist5k", "loss": "gaussian"}))
    assert evaluate(run) == 2
    assert "cannot load model file" in capsys.readouterr().err
    assert not Path("/tmp/vaebench-pwned").exists()


def test_a_crash_while_writing_leaves_no_half_file(tmp_path, monkeypatch):
    # fault: the process dies in the middle of writing the model
    from vaebench import models

    model = models.build_model(models.ModelConfig("mlp", 1, 4, 4, 2, "gaussian", hidden=8))

    real_write = Path.write_bytes

    def dies_halfway(path, data):
        real_write(path, bytes(data[: len(data) // 2]))
        raise KeyboardInterrupt

    monkeypatch.setattr(Path, "write_bytes", dies_halfway)
    with pytest.raises(KeyboardInterrupt):
        models.save_model(model, tmp_path / "model.pt")
    assert list(tmp_path.iterdir()) == []


def test_reruns_give_identical_files(tmp_path, data_dir):
    # determinism: the same arguments twice on CPU give the same history and metrics bytes
    run = tmp_path / "run"
    assert train(run, data_dir) == 0
    first_history = (run / "history.csv").read_text()
    assert evaluate(run, "a.json") == 0 and evaluate(run, "b.json") == 0
    a, b = (json.loads((run / n).read_text()) for n in ("a.json", "b.json"))
    for key in VOLATILE_METRICS | {"command"}:
        a.pop(key), b.pop(key)
    assert a == b

    again = tmp_path / "again"
    assert train(again, data_dir) == 0

    def without_seconds(text: str) -> list[list[str]]:
        return [line.split(",")[:-1] for line in text.splitlines()]

    assert without_seconds((again / "history.csv").read_text()) == without_seconds(first_history)


def test_config_values_reach_the_shell_quoted(tmp_path):
    # fault: a data_dir with spaces and shell metacharacters
    config = tmp_path / "c.yaml"
    hostile = "my data; touch PWNED $(id)"
    config.write_text((ROOT / ".test" / "config" / "config.yaml").read_text()
                      .replace("data_dir: resources/data", f"data_dir: '{hostile}'"))
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-n", "-p", "--cores", "1", "-s",
                           str(ROOT / "Snakefile"), "-d", str(tmp_path), "--configfile", str(config)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    shell = [line for line in proc.stdout.splitlines() if "vaebench train" in line]
    assert len(shell) == 2 and all(f"--data-dir '{hostile}'" in line for line in shell)
    assert not (tmp_path / "PWNED").exists()
