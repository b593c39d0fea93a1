"""Faults injected on purpose: divergence, corrupt files, hostile checkpoints, unquoted config, a full
disk in every stage, files written on a GPU read without one, outputs of another run in the way, and
reruns that must give the same bytes. Each test says which fault it injects.
(A real kill of a training process and its resume is in test_train.py.)"""

import builtins
import contextlib
import errno
import io
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from synthetic_runs import write_synthetic_results

from vaebench import families
from vaebench.cli import main
from vaebench.models import load_model

ROOT = Path(__file__).resolve().parents[1]
VOLATILE_METRICS = {"eval_seconds"}  # wall-clock time: the only key allowed to differ between reruns


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("data"))


def train(out: Path, data_dir: str, *extra: str) -> int:
    return main(
        [
            "train",
            "--loss",
            "gaussian",
            "--latent-dim",
            "2",
            "--hidden",
            "32",
            "--epochs",
            "2",
            "--threads",
            "1",
            "--data-dir",
            data_dir,
            "--out",
            str(out),
            *extra,
        ]
    )


def evaluate(run: Path, out_name: str = "metrics.json", *extra: str) -> int:
    return main(
        [
            "evaluate",
            "--run",
            str(run),
            "--k",
            "3",
            "--n-test",
            "40",
            "--batch",
            "20",
            "--threads",
            "1",
            "--out",
            str(run / out_name),
            *extra,
        ]
    )


def test_divergence_ends_the_run_cleanly_and_is_still_scored(tmp_path, data_dir):
    # fault: a learning rate that sends the loss to NaN/Inf in the first epoch
    run = tmp_path / "diverged"
    assert train(run, data_dir, "--lr", "10") == 0  # a recorded result, not a failed job
    record = json.loads((run / "run.json").read_text())
    assert (
        record["status"] == "diverged" and record["diverged_epoch"] == 1 and record["epochs_completed"] == 0
    )
    assert record["stop_reason"] == "diverged"
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
    config.write_text(
        (ROOT / ".test" / "config" / "config.yaml")
        .read_text()
        .replace("data_dir: resources/data", f"data_dir: '{hostile}'")
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "-n",
            "-p",
            "--cores",
            "1",
            "-s",
            str(ROOT / "Snakefile"),
            "-d",
            str(tmp_path),
            "--configfile",
            str(config),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    shell = [line for line in proc.stdout.splitlines() if "vaebench train" in line]
    assert len(shell) == 2 and all(f"--data-dir '{hostile}'" in line for line in shell)
    assert not (tmp_path / "PWNED").exists()


# ------------------------------------------------------------------ a full disk, in every stage that writes


class FullDisk:
    """A file on a disk that fills up: it takes `room` bytes (or characters), then every write raises
    OSError(ENOSPC), as the kernel's write() does on a full filesystem."""

    def __init__(self, file, room: int):
        self._file, self._room = file, room

    def write(self, data):
        if len(data) > self._room:
            self._file.write(data[: self._room])
            self._room = 0
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self._room -= len(data)
        return self._file.write(data)

    def __getattr__(self, name):
        return getattr(self._file, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._file.close()


@contextlib.contextmanager
def disk_fills_while_writing(monkeypatch, name: str, nth: int = 1, room: int = 100):
    """The `nth` write of the output file `name` (any file for name='*.png') fails part-way: `room` bytes go
    to its temporary file, then ENOSPC. Every writer (Path.write_*, pandas, matplotlib, PIL, numpy) opens
    files through builtins.open or io.open; atomic_write's temporaries are named .NAME.*.tmp."""
    real_open, count = builtins.open, [0]

    def open_(file, mode="r", *args, **kwargs):
        f = real_open(file, mode, *args, **kwargs)
        base = os.path.basename(os.fspath(file)) if isinstance(file, (str, os.PathLike)) else ""
        target = base[1 : base.rfind(".", 0, -4)] if base.startswith(".") and base.endswith(".tmp") else None
        if target and "w" in mode and Path(target).match(name):
            count[0] += 1
            if count[0] == nth:
                return FullDisk(f, room)
        return f

    monkeypatch.setattr(builtins, "open", open_)
    monkeypatch.setattr(io, "open", open_)
    yield count
    monkeypatch.undo()


def assert_one_line_full_disk(err: str, path: Path) -> None:
    """The stage's last word is one line naming the path and the reason, no traceback."""
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if ": error: " in line]
    assert errors == [err.splitlines()[-1]], err
    assert errors[0].endswith(f"error: cannot write {path}: no space left on device"), err


def test_a_full_disk_at_a_checkpoint_is_one_line_and_the_same_command_resumes(
    tmp_path, data_dir, capsys, monkeypatch
):
    # fault: the disk fills while epoch 3's checkpoint is written
    whole, run = tmp_path / "whole", tmp_path / "run"
    assert train(whole, data_dir, "--epochs", "4") == 0
    with disk_fills_while_writing(monkeypatch, "checkpoint.pt", nth=3):
        assert train(run, data_dir, "--epochs", "4") == 1
    assert_one_line_full_disk(capsys.readouterr().err, run / "checkpoint.pt")
    assert torch.load(run / "checkpoint.pt", weights_only=True)["epoch"] == 2  # the previous one, intact
    assert sorted(p.name for p in run.iterdir()) == ["checkpoint.pt", "history.csv"]  # no temporary left
    # fewer epochs than the checkpoint holds would give a model of more epochs than asked for: refused
    assert train(run, data_dir, "--epochs", "1") == 2
    assert capsys.readouterr().err == (
        f"vaebench train: error: checkpoint {run / 'checkpoint.pt'} is at epoch 2, past --epochs 1: raise "
        "--epochs, or --overwrite to start again\n"
    )
    # space freed: the same command resumes from epoch 2 and ends with the uninterrupted run's model
    assert train(run, data_dir, "--epochs", "4") == 0
    assert "resuming" in capsys.readouterr().err
    a, b = load_model(run / "model.pt").state_dict(), load_model(whole / "model.pt").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert (run / "history.csv").read_text().count("\n") == 5


def test_a_full_disk_in_evaluate_and_data_is_one_line(tmp_path, data_dir, capsys, monkeypatch):
    # fault: the disk fills while metrics.json, then the dataset manifest, is written
    run = tmp_path / "run"
    assert train(run, data_dir, "--epochs", "1") == 0
    capsys.readouterr()
    with disk_fills_while_writing(monkeypatch, "metrics.json"):
        assert evaluate(run) == 1
    assert_one_line_full_disk(capsys.readouterr().err, run / "metrics.json")
    assert sorted(p.name for p in run.iterdir()) == ["history.csv", "model.pt", "run.json"]
    manifest = tmp_path / "mnist5k.json"
    with disk_fills_while_writing(monkeypatch, manifest.name, room=10):
        assert main(["data", "--dataset", "mnist5k", "--data-dir", data_dir, "--out", str(manifest)]) == 1
    assert_one_line_full_disk(capsys.readouterr().err, manifest)
    assert list(tmp_path.glob("*.json")) == []


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    return write_synthetic_results(
        tmp_path_factory.mktemp("study") / "results" / "mnist5k",
        families=("gaussian", "beta"),
        latent_dims=(2,),
        seeds=(0, 1),
    )


@pytest.mark.parametrize(
    "stage,written", [("aggregate", "metrics.csv"), ("figures", "*.png"), ("report", "index.html")]
)
def test_a_full_disk_in_the_reporting_stages_is_one_line(
    stage, written, study, tmp_path, capsys, monkeypatch
):
    # fault: the disk fills while the stage writes its first file (a table, a figure, the page)
    results = tmp_path / "results"
    shutil.copytree(study.results, results)
    before = ["aggregate", "figures", "report"][: ["aggregate", "figures", "report"].index(stage)]
    with contextlib.redirect_stdout(io.StringIO()):
        for earlier in before:
            assert main([earlier, "--results", str(results)]) == 0
        out = {"aggregate": [], "figures": [], "report": ["--out", str(tmp_path / "index.html")]}[stage]
        with disk_fills_while_writing(monkeypatch, written):
            assert main([stage, "--results", str(results), *out]) == 1
    err = capsys.readouterr().err
    path = Path(err.rsplit("cannot write ", 1)[-1].split(": no space")[0])
    assert path.match(written) and path.parent in (results, results / "figures", tmp_path)
    assert_one_line_full_disk(err, path)
    assert not path.exists() and not list(path.parent.glob(".*.tmp"))


def test_a_real_full_filesystem_is_one_line(tmp_path, data_dir):
    """A 600 KiB tmpfs, too small for a checkpoint of the 784-400 mlp: what a full disk really does."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    small = tmp_path / "small"
    small.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=600k", "tmpfs", str(small)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        argv = [
            "train",
            "--loss",
            "gaussian",
            "--epochs",
            "1",
            "--batch-size",
            "512",
            "--data-dir",
            data_dir,
            "--out",
            str(small / "run"),
        ]
        proc = subprocess.run(
            [sys.executable, "-m", "vaebench.cli", *argv], capture_output=True, text=True, timeout=600
        )
        assert proc.returncode == 1
        assert_one_line_full_disk(proc.stderr, small / "run" / "checkpoint.pt")
        assert list((small / "run").iterdir()) == []
    finally:
        subprocess.run(["umount", str(small)], check=True)


# ------------------------------------------------------------------ files written on a GPU, read without one


def tagged_cuda(path: Path) -> None:
    """Rewrite a torch.save file as if its tensors had been on cuda:0 (no GPU needed): every storage of the
    zip's data.pkl carries its location as a pickled string, 'cpu', stored once and memoised; protocol 2
    writes it as BINUNICODE (X, 4-byte length, the text), so the tag is replaced with its length."""
    with zipfile.ZipFile(path) as src:
        entries = [(info, src.read(info.filename)) for info in src.infolist()]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as dst:
        for info, data in entries:
            if info.filename.endswith("/data.pkl"):
                assert data.count(b"X\x03\x00\x00\x00cpu") == 1
                data = data.replace(b"X\x03\x00\x00\x00cpu", b"X\x06\x00\x00\x00cuda:0")
            dst.writestr(info, data)
    with pytest.raises(RuntimeError, match="Attempting to deserialize object on a CUDA device"):
        torch.load(path, weights_only=True)  # as a GPU's file reads without map_location


def test_a_model_trained_on_a_gpu_is_evaluated_on_the_cpu(tmp_path, data_dir):
    # fault: model.pt written on cuda:0, evaluated on a machine without CUDA
    run = tmp_path / "run"
    assert train(run, data_dir, "--epochs", "1") == 0
    assert evaluate(run, "cpu.json") == 0
    tagged_cuda(run / "model.pt")
    assert evaluate(run, "gpu.json") == 0
    a, b = (json.loads((run / name).read_text()) for name in ("cpu.json", "gpu.json"))
    assert a["ll_disc_nats"] == b["ll_disc_nats"] and b["device"] == "cpu"


def test_a_checkpoint_written_on_a_gpu_resumes_on_the_cpu(tmp_path, data_dir, capsys, monkeypatch):
    # fault: the checkpoint of a run interrupted on cuda:0 (its tensors tagged cuda, its generator state a
    # CUDA generator's 16 bytes: seed and offset) resumed where there is no GPU
    run = tmp_path / "run"
    with disk_fills_while_writing(monkeypatch, "checkpoint.pt", nth=2):
        assert train(run, data_dir, "--epochs", "3") == 1  # stops after epoch 1's checkpoint
    ckpt = torch.load(run / "checkpoint.pt", weights_only=True)
    ckpt["generator"] = torch.tensor([7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], dtype=torch.uint8)
    ckpt["train_config"]["device"] = "cuda:0"
    torch.save(ckpt, run / "checkpoint.pt")
    tagged_cuda(run / "checkpoint.pt")
    capsys.readouterr()
    assert train(run, data_dir, "--epochs", "3") == 0
    err = capsys.readouterr().err
    assert "resuming" in err and "noise generator is of another device type than cpu" in err
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "ok" and record["epochs_completed"] == 3


# ------------------------------------------------------------------ outputs of another run in the way


def test_evaluate_keeps_its_own_metrics_and_refuses_another_runs(tmp_path, data_dir, capsys):
    # fault: --out names a metrics file of other settings, then one of another run
    run, other = tmp_path / "run", tmp_path / "other"
    assert train(run, data_dir, "--epochs", "1") == 0
    assert train(other, data_dir, "--epochs", "1", "--seed", "1") == 0
    assert evaluate(run) == 0
    written = (run / "metrics.json").read_bytes()
    capsys.readouterr()
    assert evaluate(run, "metrics.json", "--threads", "2") == 0  # the same evaluation: kept as it is
    assert "holds this evaluation already: nothing to do" in capsys.readouterr().err
    assert evaluate(run, "metrics.json", "--seed", "1") == 2
    assert capsys.readouterr().err == (
        f"vaebench evaluate: error: {run / 'metrics.json'} holds the metrics of another run or other "
        "settings (eval-seed 0, not 1): use another --out, or --overwrite to replace it\n"
    )
    assert (
        main(
            [
                "evaluate",
                "--run",
                str(other),
                "--k",
                "3",
                "--n-test",
                "40",
                "--batch",
                "20",
                "--out",
                str(run / "metrics.json"),
            ]
        )
        == 2
    )
    assert "(seed 0, not 1)" in capsys.readouterr().err
    assert (run / "metrics.json").read_bytes() == written
    assert evaluate(run, "metrics.json", "--seed", "1", "--overwrite") == 0
    assert json.loads((run / "metrics.json").read_text())["eval_seed"] == 1


def test_options_taken_otherwise_than_given_are_said_at_the_start(tmp_path, data_dir, capsys, monkeypatch):
    # --chunk not a multiple of 16 is rounded; --compile on a family that cannot compile runs eagerly
    run = tmp_path / "run"
    assert train(run, data_dir, "--epochs", "1") == 0
    monkeypatch.setattr(families.FAMILIES["gaussian"], "not_compilable", "a reason of its own")
    capsys.readouterr()
    assert evaluate(run, "metrics.json", "--chunk", "10", "--compile", "true") == 0
    err = capsys.readouterr().err.splitlines()
    assert err[:2] == [
        "--chunk 10 is not a multiple of 16: decoding 16 samples at once",
        "--compile: gaussian is evaluated eagerly: a reason of its own",
    ]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["chunk"] == 16 and metrics["compiled_note"] == "evaluated eagerly: a reason of its own"


def test_evaluate_shows_where_it_is(tmp_path, data_dir, capsys, monkeypatch):
    from vaebench import utils

    run = tmp_path / "run"
    assert train(run, data_dir, "--epochs", "1") == 0
    monkeypatch.setattr(utils, "PROGRESS_SECONDS", 0.0)  # as if each stage took long
    capsys.readouterr()
    assert evaluate(run) == 0
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("importance sampling: 20/40 images (50%), ")
    assert " samples/s, ETA 0:00:" in err[0]
    assert err[1].startswith("importance sampling: 40 images in 0:00:")
    assert any(line.startswith("posterior metrics: 40 images in ") for line in err)
    assert any(line.startswith("kNN: encoding the train images: 4000 images in ") for line in err)
