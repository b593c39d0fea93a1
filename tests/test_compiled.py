"""The compiled family math (--compile): the numbers of eager evaluation, whatever the chunk, and the
persistent compile cache. A file of its own: its tests compile for minutes, and the test runner gives
them a worker of their own while the other files run (pytest-xdist, --dist loadfile). Beta's long kernel:
test_beta_compiles.py."""

import pytest
import torch
from eval_models import compiled_matches_eager, estimate, fake_images, real_model

from vaebench import likelihood as lk

COMPILED_FAMILIES = ["continuous_bernoulli", "gaussian", "discretized_logistic", "logit_laplace"]


@pytest.mark.parametrize("family", COMPILED_FAMILIES)
def test_compiled_family_math_matches_eager_and_does_not_depend_on_the_chunk(family, tmp_path):
    """--compile: one fused kernel per shape; same numbers as eager up to float32 rounding, and identical for
    any chunk (K = 50: full chunks and a remainder compile to different kernels)."""
    compiled_matches_eager(family, tmp_path, [(50, (64, 16, 48))])


def test_compile_cache_is_kept_where_asked_reused_by_a_new_compile_and_scoped(tmp_path):
    """The kernels land in the directory given; after torch forgets them (a new process, here
    torch._dynamo.reset), the same scorer loads them from there: no FX-graph cache miss. The environment
    variable that points inductor there is put back after (conftest fails a test that leaks it)."""
    model = real_model("gaussian", side=8, dtype=torch.float32)
    x, v = fake_images(4, side=8)
    runs = []
    for _ in range(2):
        torch._dynamo.reset()
        score = lk.family_scorer(model.family, compiled=True)
        with lk.compile_cache(tmp_path / "cache"):
            runs.append(estimate(model, x, v, 16, seed=0, chunk=16, score=score))
        runs.append(score)
    first, cold, again, warm = runs
    assert cold.cache_misses >= 1 and any((tmp_path / "cache").rglob("*.py"))
    assert warm.cache_misses == 0 and warm.cache_hits >= 1
    assert cold.compile_seconds > 0 and warm.compile_seconds > 0
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])


def test_compile_mode_auto_compiles_from_enough_work_on_the_device():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    pays = lk.COMPILE_PAYS_FROM["cpu"]
    assert not lk.wants_compile("auto", 20, 500, cpu)  # the quick preset
    assert lk.wants_compile("auto", 5000, 10_000, cpu)  # the paper protocol
    assert lk.wants_compile("auto", pays, 1, cpu) and not lk.wants_compile("auto", pays - 1, 1, cpu)
    assert lk.wants_compile("auto", lk.COMPILE_PAYS_FROM["cuda"], 1, cuda)
    assert lk.wants_compile("true", 1, 1, cpu) and not lk.wants_compile("false", 10**9, 10**9, cpu)
