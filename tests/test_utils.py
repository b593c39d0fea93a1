"""Shared helpers: device choice, threads, progress lines, atomic writes, stable JSON, provenance."""

import errno
import io
import json
import math
import os
import re
import stat
import subprocess

import pytest
import torch

import vaebench
from vaebench import utils
from vaebench.errors import VaebenchError, WriteError


def test_auto_device_is_cuda_only_when_present(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert utils.pick_device("auto") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert utils.pick_device("auto") == torch.device("cuda")
    assert utils.pick_device("cuda:1") == torch.device("cuda", 1)


def test_a_device_that_is_not_there_or_not_a_device_is_one_line(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for name in ("cuda", "cuda:0"):
        with pytest.raises(
            VaebenchError,
            match=rf"^device {name}: no CUDA device on this machine \(torch .*"
            r"use --device cpu or auto$",
        ):
            utils.pick_device(name)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(
        VaebenchError,
        match=r"^device cuda:2: this machine has 2 CUDA device\(s\), cuda:0 to "
        r"cuda:1$",
    ):
        utils.pick_device("cuda:2")
    for name in ("gpu", "cuda:x", "cuda:-1", "mps", "meta", "CPU", ""):  # torch knows some; we run on none
        with pytest.raises(VaebenchError, match=f"^unknown device '{name}': use auto, cpu, cuda or cuda:N$"):
            utils.pick_device(name)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_progress_in_a_log_is_a_line_at_most_every_interval_with_rate_and_eta():
    clock, log = Clock(), io.StringIO()
    with utils.Progress(
        "importance sampling", 100, "images", "samples", per_item=50, stream=log, clock=clock
    ) as progress:
        for _ in range(100):  # one image every 0.5 s: 50 s in all
            clock.now += 0.5
            progress(1)
    lines = log.getvalue().splitlines()
    # a line once 10 s have passed, then every 10 s until the end, and a closing line
    assert lines[0] == "importance sampling: 20/100 images (20%), 100 samples/s, ETA 0:00:40"
    assert lines[1] == "importance sampling: 40/100 images (40%), 100 samples/s, ETA 0:00:30"
    assert len(lines) == 5 and lines[-1] == "importance sampling: 100 images in 0:00:50, 100 samples/s"


def test_a_quick_loop_shows_no_progress():
    clock, log = Clock(), io.StringIO()
    with utils.Progress("epoch 1/3", 40, "batches", stream=log, clock=clock) as progress:
        for _ in range(40):
            clock.now += 0.2
            progress(1)
    assert log.getvalue() == ""


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_on_a_terminal_is_a_tqdm_bar(monkeypatch):
    monkeypatch.setattr(utils, "PROGRESS_SECONDS", 0.0)
    screen = Terminal()
    with utils.Progress("epoch 2/5", 3, "batches", stream=screen) as progress:
        for _ in range(3):
            progress(1)
    shown = screen.getvalue()
    assert "\r" in shown and re.search(r"epoch 2/5: +\d+%\|.*\| [0-3]/3 \[", shown), shown


def test_set_threads_honours_a_budget_and_zero_keeps_the_default():
    before = torch.get_num_threads()
    assert utils.set_threads(0) == before
    assert utils.set_threads(1) == 1 == torch.get_num_threads()  # conftest puts the count back


def test_atomic_write_replaces_the_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "sub" / "out.txt"
    utils.atomic_write(path, lambda tmp: tmp.write_text("first"))
    utils.atomic_write(path, lambda tmp: tmp.write_text("second"))
    assert path.read_text() == "second"
    assert [p.name for p in path.parent.iterdir()] == ["out.txt"]


def test_a_failing_writer_keeps_the_previous_file(tmp_path):
    path = tmp_path / "out.txt"
    path.write_text("finished result")

    def fails(tmp):
        tmp.write_text("half")
        raise OSError("disk trouble")

    with pytest.raises(WriteError, match=f"cannot write {path}: disk trouble"):
        utils.atomic_write(path, fails)
    assert path.read_text() == "finished result"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_write_json_is_sorted_stable_and_refuses_nan(tmp_path):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    utils.write_json(a, {"b": 1, "a": [1.5, None]})
    utils.write_json(b, {"a": [1.5, None], "b": 1})
    assert a.read_bytes() == b.read_bytes()
    assert json.loads(a.read_text()) == {"a": [1.5, None], "b": 1}
    with pytest.raises(ValueError):
        utils.write_json(tmp_path / "c.json", {"x": math.nan})
    assert not (tmp_path / "c.json").exists()


def test_provenance_names_versions_commit_and_device():
    record = utils.provenance(torch.device("cpu"))
    assert record["torch_version"] == torch.__version__ and record["vaebench_version"] == vaebench.__version__
    assert record["device"] == "cpu" and record["device_name"]
    commit = record["git_commit"]
    assert commit is None or (len(commit) == 40 and int(commit, 16) >= 0)
    assert (record["git_dirty"] is None) == (commit is None)


def test_git_dirty_says_whether_the_source_differs_from_its_commit(tmp_path, monkeypatch):
    """In a throwaway checkout holding a package: clean after a commit, dirty after an edit."""
    package = tmp_path / "src" / "vaebench"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    env = {f"GIT_{who}_{what}": "t" for who in ("AUTHOR", "COMMITTER") for what in ("NAME", "EMAIL")}
    for args in (["init", "-q"], ["add", "."], ["commit", "-q", "-m", "first"]):
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, env={**os.environ, **env})
    monkeypatch.setattr(vaebench, "__file__", str(package / "__init__.py"))
    assert utils.git_dirty() is False and len(utils.git_commit()) == 40
    (package / "__init__.py").write_text("# edited\n")
    assert utils.git_dirty() is True


def test_utc_now_is_iso_with_a_timezone():
    assert utils.utc_now().endswith("+00:00")


@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_written_files_follow_the_umask_like_open_does(tmp_path, umask, mode):
    saved = os.umask(umask)
    try:
        path = utils.atomic_write(tmp_path / "out.txt", lambda tmp: tmp.write_text("x"))
    finally:
        os.umask(saved)
    assert stat.S_IMODE(path.stat().st_mode) == mode


def test_a_full_disk_is_one_line_naming_the_path(tmp_path):
    def fills_the_disk(tmp):
        tmp.write_bytes(b"partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with pytest.raises(WriteError) as caught:
        utils.atomic_write(tmp_path / "metrics.json", fills_the_disk)
    assert str(caught.value) == f"cannot write {tmp_path / 'metrics.json'}: no space left on device"
    assert caught.value.exit_status == 1 and list(tmp_path.iterdir()) == []
