"""The study end to end: the thread split for 2 cores, and the quick preset's DAG at --cores 2 vs 1.

threads: two quick-preset-like jobs (`vaebench train`, then `vaebench evaluate` of what was trained), run
         either side by side with --threads 1 each or one after the other with --threads 2 each; the
         arms alternate round by round. Reports wall seconds per pair (median, min-max).
dag:     `snakemake --cores N --configfile config/quick.yaml` in a fresh copy of the workflow (as
         tests/test_workflow.py does), for each N given; reports wall time and the speed-up.
         --config lets you shrink the study (e.g. 'train={epochs: 3, ...}') for a faster comparison.

    python bench/pipeline.py threads [--rounds 3]
    python bench/pipeline.py dag [--cores 2 1] [--config KEY=VALUE ...]
"""

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import DATA_DIR, print_table, ratio, summary, write_result

from vaebench.layout import METRICS, MODEL

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from workflow_copy import copy_workflow  # noqa: E402 - the tests' own copy of the workflow

PAIR = ("continuous_bernoulli", "gaussian")


def vaebench(*args: str) -> list[str]:
    return [sys.executable, "-m", "vaebench.cli", *args]


def train_cmd(loss: str, out: Path, threads: int, epochs: int) -> list[str]:
    return vaebench(
        "train",
        "--dataset",
        "mnist5k",
        "--loss",
        loss,
        "--latent-dim",
        "16",
        "--epochs",
        str(epochs),
        "--threads",
        str(threads),
        "--data-dir",
        str(DATA_DIR),
        "--out",
        str(out),
    )


def eval_cmd(run: Path, threads: int, k: int, n_test: int) -> list[str]:
    return vaebench(
        "evaluate",
        "--run",
        str(run),
        "--k",
        str(k),
        "--n-test",
        str(n_test),
        "--threads",
        str(threads),
        "--data-dir",
        str(DATA_DIR),
        "--out",
        str(run / METRICS),
    )


def wall(cmds: list[list[str]], parallel: bool) -> float:
    t0 = time.perf_counter()
    if parallel:
        procs = [subprocess.Popen(c, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for c in cmds]
        codes = [p.wait() for p in procs]
    else:
        codes = [
            subprocess.run(c, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode for c in cmds
        ]
    if any(codes):
        raise SystemExit(f"a job failed: {cmds}")
    return time.perf_counter() - t0


def threads_split(rounds: int, epochs: int, k: int, n_test: int) -> dict:
    arms = {
        "2 jobs x 1 thread, side by side": (1, True),
        "1 job x 2 threads, one after the other": (2, False),
    }
    seconds = {f"{stage}: {arm}": [] for stage in ("train", "evaluate") for arm in arms}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(rounds):
            for arm, (threads, parallel) in list(arms.items()) if r % 2 == 0 else reversed(arms.items()):
                runs = [Path(tmp) / f"{loss}{threads}" for loss in PAIR]
                seconds[f"train: {arm}"].append(
                    wall(
                        [train_cmd(loss, run, threads, epochs) for loss, run in zip(PAIR, runs, strict=True)],
                        parallel,
                    )
                )
                seconds[f"evaluate: {arm}"].append(
                    wall([eval_cmd(run, threads, k, n_test) for run in runs], parallel)
                )
                for run in runs:  # train afresh next round
                    (run / MODEL).unlink()
    out = {name: summary(s) for name, s in seconds.items()}
    rows = [[name, s["median"], f"{s['min']:.1f}-{s['max']:.1f}"] for name, s in out.items()]
    print_table(
        f"two jobs ({', '.join(PAIR)}) on 2 cores: wall seconds; train {epochs} epochs, "
        f"evaluate K={k} on {n_test} images; {rounds} alternating rounds",
        ["what", "s median", "min-max"],
        rows,
    )
    speedups = {
        stage: ratio(
            out[f"{stage}: 1 job x 2 threads, one after the other"],
            out[f"{stage}: 2 jobs x 1 thread, side by side"],
        )
        for stage in ("train", "evaluate")
    }
    print(
        "\nside by side (threads 1) is faster than one after the other (threads 2) by: "
        + ", ".join(f"{stage} {s:.2f}x" for stage, s in speedups.items())
    )
    return {"seconds": out, "side_by_side_speedup": speedups, "epochs": epochs, "k": k, "n_test": n_test}


def dag(cores: list[int], config: list[str]) -> dict:
    seconds, jobs = {}, {}
    for n in cores:
        with tempfile.TemporaryDirectory() as tmp:
            work = copy_workflow(Path(tmp))
            (work / "resources" / "data").mkdir(parents=True)
            cmd = [
                sys.executable,
                "-m",
                "snakemake",
                "--cores",
                str(n),
                "--directory",
                str(work),
                "--snakefile",
                str(work / "Snakefile"),
                "--configfile",
                str(work / "config" / "quick.yaml"),
            ]
            cmd += ["--config", *config] if config else []
            t0 = time.perf_counter()
            proc = subprocess.run(cmd, capture_output=True, text=True)
            seconds[n] = time.perf_counter() - t0
            if proc.returncode != 0:
                raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
            jobs[n] = (proc.stdout + proc.stderr).count("Finished job")  # "Finished jobid: N" in Snakemake 9
            print(f"--cores {n}: {seconds[n]:.0f} s, {jobs[n]} jobs", file=sys.stderr)
    rows = [[n, seconds[n], jobs[n], seconds[cores[-1]] / seconds[n]] for n in cores]
    print_table(
        "quick preset end to end (snakemake, fresh copy"
        f"{', --config ' + ' '.join(config) if config else ''})",
        ["--cores", "wall s", "jobs", f"speed-up over --cores {cores[-1]}"],
        rows,
    )
    return {"seconds": seconds, "jobs": jobs, "config": config}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="part", required=True)
    t = sub.add_parser("threads")
    t.add_argument("--rounds", type=int, default=3)
    t.add_argument("--epochs", type=int, default=5)
    t.add_argument("--k", type=int, default=100)
    t.add_argument("--n-test", type=int, default=1000)
    d = sub.add_parser("dag")
    d.add_argument("--cores", nargs="+", type=int, default=[2, 1])
    d.add_argument("--config", nargs="*", default=[])
    args = p.parse_args()
    if args.part == "threads":
        write_result("pipeline_threads", threads_split(args.rounds, args.epochs, args.k, args.n_test))
    else:
        write_result("pipeline_dag", dag(args.cores, args.config))


if __name__ == "__main__":
    main()
