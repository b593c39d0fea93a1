"""Evaluation throughput: decoder passes per second of the importance-sampled likelihood, against the bare
decoder.

- eval:   the likelihood part of `vaebench evaluate` (likelihood.batched_ll over the test images in batches of
          --batch, with evaluate's default chunk), passes/s = images * K / seconds; eager and compiled (the
          family math as one torch.compile'd kernel, loaded from bench/out/compile-cache once it is warm: the
          compile time is measured apart, in fresh processes, by the `compile` part);
- bound:  model.decode alone, in the model's dtype, on as many rows as one of evaluate's decoder calls
          (chunk * batch): no family math, no float64, no log-sum-exp.
Interleaved round by round; medians and min-max. The parts (--parts):
- throughput: passes/s and microseconds per image-sample per family, mode and K, and the ratio to the bound;
- compile:    seconds to compile each family's kernels from an empty cache (cold) and to load them (warm),
              each in a fresh process as an evaluation job is, and the work (K x test images) from which
              compiling pays for itself, the evidence behind likelihood.COMPILE_PAYS_FROM;
- scaling:    seconds per image-sample across K and across the number of test images (constant = linear
              cost);
- memory:     peak RSS of a fresh process per K and mode (flat = memory independent of K);
- precision:  the float32 family math against float64 on the same decoder outputs (per-image difference,
              nats);
- quick:      the whole evaluate() at the quick preset's K=100 on 1000 images.
Models: the mlp (or --arch conv) trained for two epochs on mnist5k, so the decoder outputs are realistic,
cached in bench/out/models.

    python bench/eval_throughput.py [--families continuous_bernoulli gaussian | all] [--arch mlp | conv]
                                    [--k 100 1000 5000] [--modes eager compiled] [--threads 1]
                                    [--parts throughput compile scaling memory precision quick]
"""

import argparse
import json
import math
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from common import DATA_DIR, OUT_DIR, print_table, ratio, summary, write_result

from vaebench.catalog import FAMILY_IDS
from vaebench.data import load_dataset
from vaebench.evaluate import evaluate
from vaebench.likelihood import (
    Scorer,
    batched_ll,
    chunk_for,
    compile_cache,
    family_scorer,
    full_precision,
)
from vaebench.models import VAE, build_model, load_model, save_model
from vaebench.posterior import dequantize_blocks
from vaebench.seeding import STREAM_IS, STREAM_TEST_DEQ, stream_generator
from vaebench.settings import EvalConfig
from vaebench.train import TrainConfig, model_config, train_epoch

MODEL_DIR = OUT_DIR / "models"
CACHE_DIR = OUT_DIR / "compile-cache"  # the benchmark's own compile cache: warm after the first run
PARTS = ("throughput", "compile", "scaling", "memory", "precision", "quick")


def trained_model(family: str, data, arch: str = "mlp") -> VAE:
    path = MODEL_DIR / (f"{family}.pt" if arch == "mlp" else f"{arch}_{family}.pt")
    if not path.exists():
        cfg = TrainConfig(loss=family, latent_dim=16, arch=arch)
        torch.manual_seed(0)
        model = build_model(model_config(cfg, data))
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
        gen = torch.Generator().manual_seed(0)
        for _ in range(2):
            train_epoch(model, opt, data.train_images, cfg, gen)
        save_model(model, path)
    return load_model(path)


def scorers_for(model: VAE, modes: list[str]) -> dict[str, Scorer]:
    return {mode: family_scorer(model.family, compiled=mode == "compiled") for mode in modes}


def likelihoods(
    model: VAE, data, k: int, n: int, batch: int, score: Scorer | None = None
) -> tuple[float, torch.Tensor, torch.Tensor]:
    """(wall time, [n] LL_deq, [n] LL_disc) of evaluate()'s likelihood loop on the first n test images."""
    v = data.test_images[:n]
    x = dequantize_blocks(data.test_images, n, stream_generator(0, STREAM_TEST_DEQ, "cpu"))
    gen = stream_generator(0, STREAM_IS, "cpu")
    chunk = chunk_for(model, None, k, batch, data.dims)
    t0 = time.perf_counter()
    with compile_cache(CACHE_DIR):
        est = batched_ll(model, x, v, k, batch, chunk, gen, score or family_scorer(model.family))
    return time.perf_counter() - t0, est.deq, est.disc


def likelihood_seconds(model: VAE, data, k: int, n: int, batch: int, score: Scorer | None = None) -> float:
    return likelihoods(model, data, k, n, batch, score)[0]


def float32_error(model: VAE, data, k: int, n: int, batch: int, scorers: dict[str, Scorer]) -> dict:
    """Per-image LLs with the family math in float32 (as evaluated, eager and compiled) against the same
    decoder outputs and noise with the family math in float64: max and mean |difference|, nats."""
    eager = family_scorer(model.family)

    def in_float64(params, x, v):
        return eager(params.double(), x.double(), v)

    reference = likelihoods(model, data, k, n, batch, in_float64)[1:]
    out = {"k": k, "n": n}
    for mode, score in scorers.items():
        lls = likelihoods(model, data, k, n, batch, score)[1:]
        for column, ours, ref in zip(("deq", "disc"), lls, reference, strict=True):
            diff = (ours - ref).abs()
            out[f"{mode}_{column}"] = {
                "max_abs_nats": diff.max().item(),
                "mean_abs_nats": diff.mean().item(),
                "max_abs_bits_per_dim": diff.max().item() / (data.dims * math.log(2)),
            }
    return out


@torch.no_grad()
def decoder_rows_per_second(model: VAE, rows: int, calls: int) -> float:
    z = torch.randn(rows, model.config.latent_dim)
    with full_precision():
        model.eval()
        t0 = time.perf_counter()
        for _ in range(calls):
            model.decode(z)
        return rows * calls / (time.perf_counter() - t0)


def throughput(
    model: VAE, data, ks: list[int], n: int, batch: int, rounds: int, scorers: dict[str, Scorer]
) -> dict:
    """Per mode (eager / compiled) and K: passes/s, interleaved with the bare decoder round by round."""
    chunk = chunk_for(model, None, max(ks), batch, data.dims)
    for score in scorers.values():  # compiles (or loads) every shape the timed runs meet: chunk, remainder
        for k in ks:
            likelihood_seconds(model, data, k, n, batch, score)
    rates = {(mode, k): [] for mode in scorers for k in ks}
    bound = []
    for _ in range(rounds):
        for k in ks:
            for mode, score in scorers.items():
                rates[mode, k].append(n * k / likelihood_seconds(model, data, k, n, batch, score))
            bound.append(decoder_rows_per_second(model, chunk * batch, 10))
    bound_s = summary(bound)
    return {
        "chunk": chunk,
        "rows_per_decoder_call": chunk * batch,
        "bound_passes_per_s": bound_s,
        "eval_passes_per_s": {f"{mode} K={k}": summary(r) for (mode, k), r in rates.items()},
        "eval_over_bound": {f"{mode} K={k}": ratio(summary(r), bound_s) for (mode, k), r in rates.items()},
    }


def compile_cost(family: str, arch: str, batch: int, threads: int) -> dict:
    """Seconds a fresh process spends on its first call per shape of the compiled family math (the chunk of
    K = 5000 and its remainder, as a job meets them), from an empty cache and then from the one it filled."""
    with tempfile.TemporaryDirectory() as cache:
        return {
            state: run_child("--child-compile", family, arch, str(batch), str(threads), cache)
            for state in ("cold", "warm")
        }


def child_compile(family: str, arch: str, batch: int, threads: int, cache: str) -> None:
    torch.set_num_threads(threads)
    data = load_dataset("mnist5k", DATA_DIR)
    model = trained_model(family, data, arch)
    score = family_scorer(model.family, compiled=True)
    chunk = chunk_for(model, None, 5000, batch, data.dims)
    x = dequantize_blocks(data.test_images, batch, stream_generator(0, STREAM_TEST_DEQ, "cpu"))
    v = data.test_images[:batch]
    with torch.no_grad(), compile_cache(cache):
        for samples in (chunk, 5000 % chunk or chunk):
            score(model.decode(torch.randn(samples * batch, model.config.latent_dim)), x, v)
    print(
        json.dumps(
            {
                "compile_seconds": score.compile_seconds,
                "cache_hits": score.cache_hits,
                "cache_misses": score.cache_misses,
            }
        )
    )


def break_even(compile_seconds: float, eager_us: float, compiled_us: float) -> float:
    """Image-samples (K x test images) from which compiling pays: compile time over the time it saves each."""
    saved = (eager_us - compiled_us) * 1e-6
    return compile_seconds / saved if saved > 0 else math.inf


def scaling(model: VAE, data, ks: list[int], ns: list[int], batch: int, rounds: int, score: Scorer) -> dict:
    """Seconds per (image, sample) over a grid of K and n: constant means cost linear in both."""
    grid = {}
    for _ in range(rounds):
        for k in ks:
            for n in ns:
                seconds = likelihood_seconds(model, data, k, n, batch, score)
                grid.setdefault(f"k{k}_n{n}", []).append(seconds / (n * k) * 1e6)
    return {key: summary(v) for key, v in grid.items()}


def run_child(*args: str) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, *args],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).parent,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def child_memory(family: str, arch: str, k: int, n: int, batch: int, threads: int, mode: str) -> None:
    """The likelihood loop in this fresh process; its peak RSS (MiB) before and after."""
    torch.set_num_threads(threads)
    data = load_dataset("mnist5k", DATA_DIR)
    model = trained_model(family, data, arch)
    score = family_scorer(model.family, compiled=mode == "compiled")
    likelihood_seconds(model, data, 16, batch, batch, score)  # all but the K-dependent part is paid here
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    seconds = likelihood_seconds(model, data, k, n, batch, score)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {"k": k, "mode": mode, "peak_rss_mib_before": before, "peak_rss_mib": after, "seconds": seconds}
        )
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--families",
        nargs="+",
        default=["continuous_bernoulli", "gaussian", "logit_normal", "discretized_logistic", "beta"],
        help="family ids, or 'all'",
    )
    p.add_argument("--arch", choices=["mlp", "conv"], default="mlp")
    p.add_argument("--k", nargs="+", type=int, default=[100, 1000, 5000])
    p.add_argument("--n-test", type=int, default=100)
    p.add_argument("--scaling-n", nargs="+", type=int, default=[100, 200, 400])
    p.add_argument("--scaling-k", nargs="+", type=int, default=[100, 400, 1600])
    p.add_argument("--batch", type=int, default=EvalConfig.batch)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument(
        "--modes",
        nargs="+",
        choices=["eager", "compiled"],
        default=["eager", "compiled"],
        help="family math eager and/or torch.compile'd (evaluate --compile)",
    )
    p.add_argument(
        "--parts", nargs="+", choices=PARTS, default=["throughput", "scaling", "memory", "precision"]
    )
    p.add_argument("--child-memory", nargs=7, help=argparse.SUPPRESS)
    p.add_argument("--child-compile", nargs=5, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child_memory:
        family, arch, *numbers, mode = args.child_memory
        child_memory(family, arch, *map(int, numbers), mode)
        return
    if args.child_compile:
        family, arch, batch, threads, cache = args.child_compile
        child_compile(family, arch, int(batch), int(threads), cache)
        return
    families = list(FAMILY_IDS) if args.families == ["all"] else args.families
    torch.set_num_threads(args.threads)
    data = load_dataset("mnist5k", DATA_DIR)
    results = {}
    for family in families:
        model = trained_model(family, data, args.arch)
        # one scorer per mode for all measurements, and a fresh in-process compile cache per family: torch
        # recompiles a function at most 8 times (shapes, families) and then silently runs it eagerly
        torch._dynamo.reset()
        scorers = scorers_for(model, args.modes)
        res = {}
        if "throughput" in args.parts:
            res["throughput"] = throughput(model, data, args.k, args.n_test, args.batch, args.rounds, scorers)
        if "compile" in args.parts:
            res["compile"] = compile_cost(family, args.arch, args.batch, args.threads)
        if "scaling" in args.parts:
            fastest = scorers[args.modes[-1]]
            res["scaling_us_per_image_sample"] = scaling(
                model, data, args.scaling_k[:1], args.scaling_n, args.batch, 1, fastest
            ) | scaling(model, data, args.scaling_k, args.scaling_n[:1], args.batch, 1, fastest)
        if "memory" in args.parts:
            res["memory"] = [
                run_child(
                    "--child-memory",
                    family,
                    args.arch,
                    str(k),
                    str(args.n_test),
                    str(args.batch),
                    str(args.threads),
                    mode,
                )
                for mode in args.modes
                for k in args.k
            ]
        if "precision" in args.parts:
            res["float32_error"] = float32_error(model, data, min(args.k), args.n_test, args.batch, scorers)
        if "quick" in args.parts:
            t0 = time.perf_counter()
            with compile_cache(CACHE_DIR):
                evaluate(model, data, EvalConfig(k=100, n_test=1000, compile="auto"))
            res["quick_evaluate"] = {
                "seconds": time.perf_counter() - t0,
                "likelihood_seconds": likelihood_seconds(model, data, 100, 1000, args.batch),
            }
        results[family] = res
        print(f"{family}: done", file=sys.stderr)
    report(results, args)


def report(results: dict, args: argparse.Namespace) -> None:
    setting = f"{args.arch}, {args.n_test} test images, batch {args.batch}, {args.threads} thread(s)"
    if "throughput" in args.parts:
        rows = []
        for family, res in results.items():
            t = res["throughput"]
            b = t["bound_passes_per_s"]
            rows.append(
                [
                    family,
                    "bound (decode only)",
                    f"{t['rows_per_decoder_call']} rows",
                    1e6 / b["median"],
                    b["median"],
                    f"{b['min']:.0f}-{b['max']:.0f}",
                    1.0,
                ]
            )
            for key, s in t["eval_passes_per_s"].items():
                mode, k = key.split()
                rows.append(
                    [
                        family,
                        f"evaluate, {mode}",
                        k,
                        1e6 / s["median"],
                        s["median"],
                        f"{s['min']:.0f}-{s['max']:.0f}",
                        t["eval_over_bound"][key],
                    ]
                )
        print_table(
            f"evaluation throughput, {setting}, {args.rounds} interleaved rounds (compiled: warm)",
            ["family", "what", "size", "us/image-sample", "passes/s median", "min-max", "/ bound"],
            rows,
        )
    if "compile" in args.parts:
        rows = []
        for family, res in results.items():
            c = res["compile"]
            row = [
                family,
                c["cold"]["compile_seconds"],
                c["warm"]["compile_seconds"],
                f"{c['warm']['cache_hits']} hits, {c['warm']['cache_misses']} misses",
            ]
            t = res.get("throughput", {}).get("eval_passes_per_s", {})
            k = max(args.k)
            if f"eager K={k}" in t and f"compiled K={k}" in t:
                eager_us, compiled_us = (1e6 / t[f"{mode} K={k}"]["median"] for mode in ("eager", "compiled"))
                row += [
                    break_even(c[state]["compile_seconds"], eager_us, compiled_us)
                    for state in ("cold", "warm")
                ]
            rows.append(row)
        print_table(
            f"compiling the family math, fresh process per job ({setting})",
            [
                "family",
                "cold s",
                "warm s",
                "warm cache",
                "pays from (cold), image-samples",
                "pays from (warm)",
            ],
            rows,
        )
    if "scaling" in args.parts:
        rows = [
            [family, key, s["median"]]
            for family, res in results.items()
            for key, s in res["scaling_us_per_image_sample"].items()
        ]
        print_table(
            f"cost per image-sample (microseconds, {args.modes[-1]}; constant = linear in K and n)",
            ["family", "K, n", "us/(image*sample)"],
            rows,
        )
    if "memory" in args.parts:
        rows = [
            [family, m["mode"], m["k"], m["peak_rss_mib_before"], m["peak_rss_mib"], m["seconds"]]
            for family, res in results.items()
            for m in res["memory"]
        ]
        print_table(
            f"peak RSS of a fresh process, {setting} (MiB; 'before' = after a warm-up on one batch)",
            ["family", "mode", "K", "peak before", "peak after", "seconds"],
            rows,
        )
    if "precision" in args.parts:
        rows = [
            [family, key, e["k"], e["n"], d["max_abs_nats"], d["mean_abs_nats"], d["max_abs_bits_per_dim"]]
            for family, res in results.items()
            for e in [res["float32_error"]]
            for key, d in e.items()
            if isinstance(d, dict)
        ]
        print_table(
            "float32 family math against float64 on the same decoder outputs and noise: "
            "|LL difference| per image",
            ["family", "mode_column", "K", "images", "max nats", "mean nats", "max bits/dim"],
            rows,
        )
    if "quick" in args.parts:
        rows = [
            [family, res["quick_evaluate"]["seconds"], res["quick_evaluate"]["likelihood_seconds"]]
            for family, res in results.items()
        ]
        print_table(
            "whole evaluate() at the quick preset (K=100, 1000 test images, compile auto)",
            ["family", "evaluate s", "likelihood part s"],
            rows,
        )
    write_result(
        f"eval_throughput_{args.arch}",
        {
            "arch": args.arch,
            "n_test": args.n_test,
            "batch": args.batch,
            "threads": args.threads,
            "parts": args.parts,
            "results": results,
        },
    )


if __name__ == "__main__":
    main()
