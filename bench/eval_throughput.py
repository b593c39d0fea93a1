"""Evaluation throughput: decoder passes per second of the importance-sampled likelihood, against the bare decoder.

- eval:   the likelihood part of `vaebench evaluate` (likelihood.importance_sampled_ll over the test images in
          batches of --batch, with evaluate's default chunk), passes/s = images * K / seconds; eager and
          with --compile (the family math as one torch.compile'd kernel; its compile time is reported apart);
- bound:  model.decode alone, in the model's dtype, on as many rows as one of evaluate's decoder calls
          (chunk * batch): no family math, no float64, no log-sum-exp.
Interleaved round by round; medians and min-max. Then: seconds per image-sample across K and across
the number of test images (constant = linear cost), peak RSS of a fresh process per K (flat = memory
independent of K), and the precision of the float32 family math: the same model's per-image log-likelihoods
against its float64 copy. Models: the mlp trained for two epochs on mnist5k (so the decoder outputs are
realistic), cached in bench/out/models.

    python bench/eval_throughput.py [--families continuous_bernoulli gaussian] [--k 100 1000 5000] [--threads 1]
                                    [--modes eager compiled]
"""

import argparse
import json
import math
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch
from common import DATA_DIR, OUT_DIR, print_table, ratio, summary, write_result

from vaebench.data import load_dataset
from vaebench.evaluate import EvalConfig, evaluate
from vaebench.likelihood import (
    STREAM_IS,
    STREAM_TEST_DEQ,
    Scorer,
    batched_ll,
    chunk_for,
    family_scorer,
    full_precision,
    stream_generator,
)
from vaebench.models import VAE, build_model, load_model, save_model
from vaebench.posterior import dequantize_blocks
from vaebench.train import TrainConfig, model_config, train_epoch

MODEL_DIR = OUT_DIR / "models"


def trained_model(family: str, data) -> VAE:
    path = MODEL_DIR / f"{family}.pt"
    if not path.exists():
        cfg = TrainConfig(loss=family, latent_dim=16)
        torch.manual_seed(0)
        model = build_model(model_config(cfg, data))
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
        gen = torch.Generator().manual_seed(0)
        for _ in range(2):
            train_epoch(model, opt, data.train_images, cfg, gen)
        save_model(model, path)
    return load_model(path)


def likelihoods(model: VAE, data, k: int, n: int, batch: int,
                score: Scorer | None = None) -> tuple[float, torch.Tensor, torch.Tensor]:
    """(wall time, [n] LL_deq, [n] LL_disc) of evaluate()'s likelihood loop on the first n test images."""
    v = data.test_images[:n]
    x = dequantize_blocks(data.test_images, n, stream_generator(0, STREAM_TEST_DEQ, "cpu"))
    gen = stream_generator(0, STREAM_IS, "cpu")
    chunk = chunk_for(model, None, k, batch, data.dims)
    t0 = time.perf_counter()
    ll_deq, ll_disc = batched_ll(model, x, v, k, batch, chunk, gen, score or family_scorer(model.family))
    return time.perf_counter() - t0, ll_deq, ll_disc


def likelihood_seconds(model: VAE, data, k: int, n: int, batch: int, score: Scorer | None = None) -> float:
    return likelihoods(model, data, k, n, batch, score)[0]


def float32_error(model: VAE, data, k: int, n: int, batch: int, scorers: dict[str, Scorer]) -> dict:
    """Per-image LLs with the family math in float32 (as evaluated, eager and compiled) against the same decoder
    outputs and noise with the family math in float64: max and mean |difference|, nats."""
    eager = family_scorer(model.family)

    def in_float64(params, x, v):
        return eager(params.double(), x.double(), v)

    reference = likelihoods(model, data, k, n, batch, in_float64)[1:]
    out = {"k": k, "n": n}
    for mode, score in scorers.items():
        lls = likelihoods(model, data, k, n, batch, score)[1:]
        for column, ours, ref in zip(("deq", "disc"), lls, reference):
            diff = (ours - ref).abs()
            out[f"{mode}_{column}"] = {"max_abs_nats": diff.max().item(), "mean_abs_nats": diff.mean().item(),
                                       "max_abs_bits_per_dim": diff.max().item() / (data.dims * math.log(2))}
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


def throughput(model: VAE, data, ks: list[int], n: int, batch: int, rounds: int, scorers: dict[str, Scorer]) -> dict:
    """Per mode (eager / compiled) and K: passes/s, interleaved with the bare decoder round by round."""
    chunk = chunk_for(model, None, max(ks), batch, data.dims)
    warm_up = {}
    for mode, score in scorers.items():  # compiles every shape the timed runs meet (full chunk, remainder)
        t0 = time.perf_counter()
        for k in ks:
            likelihood_seconds(model, data, k, batch, batch, score)
        warm_up[mode] = time.perf_counter() - t0
    rates = {(mode, k): [] for mode in scorers for k in ks}
    bound = []
    for _ in range(rounds):
        for k in ks:
            for mode, score in scorers.items():
                rates[mode, k].append(n * k / likelihood_seconds(model, data, k, n, batch, score))
            bound.append(decoder_rows_per_second(model, chunk * batch, 10))
    bound_s = summary(bound)
    return {"chunk": chunk, "rows_per_decoder_call": chunk * batch, "bound_passes_per_s": bound_s,
            "warm_up_seconds": warm_up,
            "eval_passes_per_s": {f"{mode} K={k}": summary(r) for (mode, k), r in rates.items()},
            "eval_over_bound": {f"{mode} K={k}": ratio(summary(r), bound_s) for (mode, k), r in rates.items()}}


def scaling(model: VAE, data, ks: list[int], ns: list[int], batch: int, rounds: int, score: Scorer) -> dict:
    """Seconds per (image, sample) over a grid of K and n: constant means cost linear in both."""
    grid = {}
    for _ in range(rounds):
        for k in ks:
            for n in ns:
                seconds = likelihood_seconds(model, data, k, n, batch, score)
                grid.setdefault(f"k{k}_n{n}", []).append(seconds / (n * k) * 1e6)
    return {key: summary(v) for key, v in grid.items()}


def peak_rss_child(family: str, k: int, n: int, batch: int, threads: int, mode: str) -> dict:
    """Run the likelihood loop in a fresh process; its peak RSS (MiB) before and after."""
    out = subprocess.run([sys.executable, __file__, "--child-memory", family, str(k), str(n), str(batch),
                          str(threads), mode], capture_output=True, text=True, check=True, cwd=Path(__file__).parent)
    return json.loads(out.stdout.strip().splitlines()[-1])


def child_memory(family: str, k: int, n: int, batch: int, threads: int, mode: str) -> None:
    torch.set_num_threads(threads)
    data = load_dataset("mnist5k", DATA_DIR)
    model = trained_model(family, data)
    score = family_scorer(model.family, compiled=mode == "compiled")
    likelihood_seconds(model, data, 16, batch, batch, score)  # all but the K-dependent part is paid here
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    seconds = likelihood_seconds(model, data, k, n, batch, score)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"k": k, "mode": mode, "peak_rss_mib_before": before, "peak_rss_mib": after,
                      "seconds": seconds}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--families", nargs="+", default=["continuous_bernoulli", "gaussian", "logit_normal",
                                                     "discretized_logistic"])
    p.add_argument("--k", nargs="+", type=int, default=[100, 1000, 5000])
    p.add_argument("--n-test", type=int, default=100)
    p.add_argument("--scaling-n", nargs="+", type=int, default=[100, 200, 400])
    p.add_argument("--scaling-k", nargs="+", type=int, default=[100, 400, 1600])
    p.add_argument("--batch", type=int, default=EvalConfig.batch)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--modes", nargs="+", choices=["eager", "compiled"], default=["eager", "compiled"],
                   help="family math eager and/or torch.compile'd (evaluate --compile)")
    p.add_argument("--quick-evaluate", action="store_true",
                   help="also time the whole evaluate() at the quick preset's K=100, n_test=1000, per family")
    p.add_argument("--child-memory", nargs=6, metavar=("FAMILY", "K", "N", "BATCH", "THREADS", "MODE"),
                   help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child_memory:
        family, *numbers, mode = args.child_memory
        child_memory(family, *map(int, numbers), mode)
        return
    torch.set_num_threads(args.threads)
    data = load_dataset("mnist5k", DATA_DIR)
    results = {}
    for family in args.families:
        model = trained_model(family, data)
        # one scorer per mode for all measurements, and a fresh compile cache per family: torch recompiles a
        # function at most 8 times (shapes, families) and then silently runs it eagerly
        torch._dynamo.reset()
        scorers = {mode: family_scorer(model.family, compiled=mode == "compiled") for mode in args.modes}
        res = {"throughput": throughput(model, data, args.k, args.n_test, args.batch, args.rounds, scorers)}
        fastest = scorers[args.modes[-1]]
        res["scaling_us_per_image_sample"] = (
            scaling(model, data, args.scaling_k[:1], args.scaling_n, args.batch, 1, fastest)
            | scaling(model, data, args.scaling_k, args.scaling_n[:1], args.batch, 1, fastest))
        res["memory"] = [peak_rss_child(family, k, args.n_test, args.batch, args.threads, mode)
                         for mode in args.modes for k in args.k]
        res["float32_error"] = float32_error(model, data, min(args.k), args.n_test, args.batch, scorers)
        if args.quick_evaluate:
            t0 = time.perf_counter()
            evaluate(model, data, EvalConfig(k=100, n_test=1000))
            whole = time.perf_counter() - t0
            res["quick_evaluate"] = {"seconds": whole,
                                     "likelihood_seconds": likelihood_seconds(model, data, 100, 1000, args.batch)}
        results[family] = res
        print(f"{family}: done", file=sys.stderr)

    rows = []
    for family, res in results.items():
        t = res["throughput"]
        b = t["bound_passes_per_s"]
        rows.append([family, "bound (decode only)", f"{t['rows_per_decoder_call']} rows", b["median"],
                     f"{b['min']:.0f}-{b['max']:.0f}", 1.0])
        for key, s in t["eval_passes_per_s"].items():
            mode, k = key.split()
            rows.append([family, f"evaluate, {mode}", k, s["median"], f"{s['min']:.0f}-{s['max']:.0f}",
                         t["eval_over_bound"][key]])
    print_table(f"evaluation throughput (decoder passes/s), {args.n_test} test images, batch {args.batch}, "
                f"{args.threads} thread(s), {args.rounds} interleaved rounds",
                ["family", "what", "size", "passes/s median", "min-max", "/ bound"], rows)
    rows = [[family, key, s["median"]] for family, res in results.items()
            for key, s in res["scaling_us_per_image_sample"].items()]
    print_table("warm-up seconds per mode (compiled: torch.compile of every shape met, then the runs)",
                ["family"] + args.modes,
                [[family] + [res["throughput"]["warm_up_seconds"][m] for m in args.modes]
                 for family, res in results.items()])
    print_table(f"cost per image-sample (microseconds, {args.modes[-1]}; constant = linear in K and in n)",
                ["family", "K, n", "us/(image*sample)"], rows)
    rows = [[family, m["mode"], m["k"], m["peak_rss_mib_before"], m["peak_rss_mib"], m["seconds"]]
            for family, res in results.items() for m in res["memory"]]
    print_table(f"peak RSS of a fresh process, {args.n_test} test images (MiB; 'before' = after a warm-up on one batch)",
                ["family", "mode", "K", "peak before", "peak after", "seconds"], rows)
    rows = [[family, key, e["k"], e["n"], d["max_abs_nats"], d["mean_abs_nats"], d["max_abs_bits_per_dim"]]
            for family, res in results.items() for e in [res["float32_error"]]
            for key, d in e.items() if isinstance(d, dict)]
    print_table("float32 family math against float64 on the same decoder outputs and noise: |LL difference| per image",
                ["family", "mode_column", "K", "images", "max nats", "mean nats", "max bits/dim"], rows)
    if args.quick_evaluate:
        rows = [[family, res["quick_evaluate"]["seconds"], res["quick_evaluate"]["likelihood_seconds"]]
                for family, res in results.items()]
        print_table("whole evaluate() at the quick preset (K=100, 1000 test images)",
                    ["family", "evaluate s", "likelihood part s"], rows)
    write_result("eval_throughput", {"n_test": args.n_test, "batch": args.batch, "threads": args.threads,
                                     "results": results})


if __name__ == "__main__":
    main()
