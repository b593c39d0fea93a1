"""One compile per family: `vaebench warm` builds the kernels of exactly the shapes an evaluation meets, so
the evaluation after it loads them from the compile cache; a study that compiles plans one warm-up per
family, which its evaluations wait for, and a study that does not plans none."""

import json
import re
import subprocess
import sys

import pytest
import torch
from test_workflow import TINY, planned_jobs, snakemake
from workflow_copy import copy_workflow

from vaebench.likelihood import batched_ll, kernel_shapes
from vaebench.models import ModelConfig, build_model


@pytest.mark.parametrize(
    ("k", "n_images", "batch", "chunk"),
    [(40, 50, 32, 32), (16, 8, 100, 64), (100, 64, 64, 48), (48, 96, 32, 16), (70, 40, 16, 64)],
)
def test_kernel_shapes_are_the_shapes_batched_ll_scores(k, n_images, batch, chunk):
    """A scorer that records the (images, samples) it is called with, fused so the last piece is padded."""
    torch.manual_seed(0)
    model = build_model(
        ModelConfig(arch="mlp", channels=1, height=4, width=4, latent_dim=2, family="gaussian", hidden=8)
    )
    met = set()

    def score(params, x, v):
        b = x.shape[0]
        met.add((b, params.shape[0] // b))
        return (torch.zeros(params.shape[0] // b, b, dtype=torch.float64),) * 2

    score.fused = True
    x = torch.rand(n_images, 1, 4, 4)
    batched_ll(model, x, (x * 255).to(torch.uint8), k, batch, chunk, torch.Generator().manual_seed(0), score)
    assert sorted(met) == kernel_shapes(k, n_images, batch, chunk)


def test_the_published_protocol_meets_one_shape():
    """K = 5000 in chunks of 256 (19 full, the last 136 padded up to 256), 10,000 images in batches of 100."""
    assert kernel_shapes(5000, 10_000, 100, 256) == [(100, 256)]


def test_an_evaluation_after_the_warm_up_loads_every_kernel(tmp_path):
    """A trained run of the tiny study's kind, warmed then evaluated with the same options: the warm-up
    compiles (a cold cache), the evaluation finds the cache warm."""
    vaebench = [
        sys.executable,
        "-c",
        "import sys; from vaebench.cli import main; sys.exit(main(sys.argv[1:]))",
    ]
    run = tmp_path / "run"
    data_dir = tmp_path / "data"
    subprocess.run(
        [*vaebench, "train", "--dataset", "mnist5k", "--loss", "gaussian", "--latent-dim", "2", "--seed", "0"]
        + ["--arch", "mlp", "--hidden", "16", "--epochs", "1", "--device", "cpu", "--data-dir", str(data_dir)]
        + ["--out", str(run)],
        check=True,
        capture_output=True,
    )
    options = ["--run", str(run), "--device", "cpu", "--k", "32", "--n-test", "32", "--batch", "32"]
    options += ["--chunk", "32", "--compile", "true", "--compile-cache", str(tmp_path / "cache")]
    subprocess.run([*vaebench, "warm", *options, "--out", str(tmp_path / "warm.json")], check=True)
    warm = json.loads((tmp_path / "warm.json").read_text())
    assert warm["compiled"] and warm["shapes"] == [[32, 32]] and warm["cache_misses"] > 0
    metrics = tmp_path / "metrics.json"
    subprocess.run([*vaebench, "evaluate", *options, "--out", str(metrics)], check=True)
    assert json.loads(metrics.read_text())["compile_cache_warm"] is True


def test_a_study_that_compiles_warms_each_family_once_before_its_evaluations(tmp_path):
    workdir = copy_workflow(tmp_path / "wf")
    compiled = (
        "--configfile",
        str(TINY),
        "--config",
        "evaluate={k: 4, n_test: 64, batch: 64, compile: true}",
    )
    jobs = planned_jobs(workdir, *compiled)
    assert jobs["warm_compile"] == 2 and jobs["evaluate"] == 2
    out = snakemake(workdir, "--dry-run", *compiled)
    evaluations = re.findall(r"^rule evaluate:\n(?:    .*\n)+", out.stdout + out.stderr + "\n", flags=re.M)
    for loss in ("continuous_bernoulli", "gaussian"):
        assert sum(f"warm/tiny/{loss}.json" in block for block in evaluations) == 1
    assert "warm_compile" not in planned_jobs(workdir, "--configfile", str(TINY))  # compile: auto
