"""`vaebench warm`: compile a family's evaluation kernels once, before its evaluations start.

Started side by side, the evaluations of a family would each compile the same kernels into the compile
cache, and compiles in parallel run far slower than one alone. The workflow runs this first, on one trained
run of the family and with the evaluations' own options, and makes every evaluation of the family wait for
it; each then loads the kernels (its metrics.json says so: compile_cache_warm).
"""

import argparse
import sys
import time

from vaebench.data import load_dataset
from vaebench.errors import VaebenchError
from vaebench.gpu_slots import device_slot
from vaebench.layout import MODEL, RUN_RECORD
from vaebench.likelihood import (
    chunk_for,
    compile_cache,
    family_scorer,
    full_precision,
    kernel_shapes,
    wants_compile,
    warm_scorer,
)
from vaebench.models import load_model
from vaebench.utils import compiling, read_json, set_threads, write_json


def run(args: argparse.Namespace) -> int:
    record = read_json(args.run / RUN_RECORD, "train the run first")
    with device_slot(args.device) as device:
        set_threads(args.threads)
        data = load_dataset(record["dataset"], args.data_dir or record.get("data_dir"))
        n_available = data.test_images.shape[0]
        n_test = args.n_test or n_available
        if n_test > n_available:
            raise VaebenchError(
                f"--n-test {n_test} exceeds the {n_available} test images of {record['dataset']}"
            )
        model = load_model(args.run / MODEL, device)
        score = family_scorer(model.family, wants_compile(args.compile, args.k, n_test, device))
        chunk = chunk_for(model, args.chunk, args.k, args.batch, data.dims)
        shapes = kernel_shapes(args.k, n_test, args.batch, chunk) if score.fused else []
        t0 = time.perf_counter()
        with (
            compiling(bool(shapes), "rerun with --compile false"),
            compile_cache(args.compile_cache),
            full_precision(),
        ):
            warm_scorer(model, score, shapes)
        warmed = {
            "family": model.family.name,
            "device": str(device),
            "compiled": score.fused,
            "chunk": chunk,
            "shapes": shapes,
            "seconds": time.perf_counter() - t0,
            "cache_hits": getattr(score, "cache_hits", None),
            "cache_misses": getattr(score, "cache_misses", None),
        }
        write_json(args.out, warmed)
    what = f"{len(shapes)} kernel(s) in {warmed['seconds']:.1f} s" if shapes else "nothing: evaluated eagerly"
    print(f"[{model.family.name}] warm: {what} on {device}", file=sys.stderr)
    return 0
