"""The benchmarks' own arithmetic (bench/ is not a package: its scripts are imported from their directory)."""

import math
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from eval_throughput import break_even  # noqa: E402
from projection import flops_and_bytes  # noqa: E402


def test_compiling_pays_from_its_time_over_the_time_it_saves_per_image_sample():
    assert break_even(10.0, 50.0, 30.0) == pytest.approx(10.0 / 20e-6)
    assert break_even(10.0, 30.0, 30.0) == math.inf  # saves nothing: never pays


def test_flops_and_bytes_of_a_layer_are_its_closed_forms():
    """A linear layer on one row: 2 * in * out FLOPs (a multiply and an add per weight); its output written
    and read once, float32."""
    layers = nn.Sequential(nn.Linear(16, 400), nn.ReLU(), nn.Linear(400, 784))
    flops, moved = flops_and_bytes(layers, torch.zeros(1, 16))
    assert flops == 2 * (16 * 400 + 400 * 784)
    assert moved == 2 * 4 * (400 + 400 + 784)
