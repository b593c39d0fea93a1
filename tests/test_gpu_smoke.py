"""bench/gpu_smoke.py runs here with --device cpu, its smaller workload, so that it works the day a GPU
appears: every check of its table is there, and on a CPU the numbers that must repeat do."""

import json
import os
import subprocess
import sys
from pathlib import Path

SMOKE = Path(__file__).resolve().parents[1] / "bench" / "gpu_smoke.py"


def test_the_gpu_smoke_test_runs_on_a_cpu(tmp_path):
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "inductor")}  # no kernel from elsewhere
    proc = subprocess.run(
        [
            sys.executable,
            str(SMOKE),
            "--device",
            "cpu",
            "--family",
            "bernoulli",
            "--data-dir",
            str(tmp_path / "data"),
            "--out-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "GPU smoke test on cpu (bernoulli)" in proc.stdout
    result = json.loads((tmp_path / "gpu_smoke.json").read_text())
    assert result["scaled"]["k"] == {"gpu": 5000, "cpu": result["workload"]["k"]}
    assert result["environment"]["device"] == "cpu" and "tf32_cudnn" in result["environment"]
    decoder = result["decoder"]
    assert decoder["nchw_us_per_sample"] > 0 and decoder["channels_last_us_per_sample"] > 0
    assert decoder["max_abs_difference"] < 1e-4  # the fast path computes the same upsampling
    train = result["train"]
    assert train["max_weight_difference"] == 0  # a CPU repeats bit for bit
    assert train["train_loss_nats"][0] == train["train_loss_nats"][1]
    evaluation = result["evaluate"]
    assert evaluation["cold"]["cache_misses"] > 0 and evaluation["warm"]["cache_misses"] == 0
    assert evaluation["other_chunk"]["chunk"] != evaluation["warm"]["chunk"]
    assert evaluation["compiled_chunk_vs_other_nats"] == 0  # padded to the ladder: no chunk changes a number
    assert 0 <= evaluation["compiled_vs_eager_nats"] < 1e-2  # float32 rounding of the fused kernel
    parallel = result["five_at_once"]
    assert len(parallel) == 5
    assert all(run["returncode"] == 0 and not run["out_of_memory_lines"] for run in parallel)
    assert all(run["chunk_kept"] == run["chunk"] for run in parallel)
    assert result["projection"]["datasheet_us_per_image_sample"] > 0
