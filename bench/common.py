"""Shared by the benchmarks: robust summaries of repeated timings, the table, the JSON file, the machine."""

import json
import os
import statistics
from pathlib import Path

from vaebench.utils import provenance

OUT_DIR = Path(__file__).resolve().parent / "out"
DATA_DIR = OUT_DIR / "data"  # the mnist5k cache, outside the repository's resources/


def summary(values: list[float]) -> dict:
    """Median and range of repeated measurements (the median resists a run slowed by other load)."""
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "n": len(values),
        "values": values,
    }


def ratio(a: dict, b: dict) -> float:
    return a["median"] / b["median"]


def machine() -> dict:
    """What the numbers were measured on (the provenance of every result, on the CPU), and how loaded
    the machine was at the end."""
    import torch  # here, so a benchmark of the report pages needs no torch

    return {
        **provenance(torch.device("cpu")),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average_1_5_15": os.getloadavg(),
    }


def print_table(title: str, header: list[str], rows: list[list]) -> None:
    cells = [[f"{c:.4g}" if isinstance(c, float) else str(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(header)]
    print(f"\n{title}")
    print(" | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print("-+-".join("-" * w for w in widths))
    for r in cells:
        print(" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))


def write_result(name: str, result: dict, out_dir: Path = OUT_DIR) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.json"
    path.write_text(json.dumps({**result, "machine": machine()}, indent=2) + "\n")
    print(f"\nwrote {path}")
    return path
