"""The importance-sampled log-likelihood of a VAE, as docs/likelihoods.md defines it.

    log p(x) ~= logsumexp_k [log p(x|z_k) + log N(z_k; 0, I) - log q(z_k|x)] - log K,

with the encoder as proposal, for the dequantized density (family.log_density on x~) and the
discretized likelihood (family.log_prob_bins on v), both from the same z samples. The K samples
are decoded `chunk` at a time, so memory grows with batch * chunk, never with K. The family math
runs in the decoder's dtype (its outputs carry no more digits) and every accumulation in float64.

Every random draw comes from its own noise stream (vaebench.seeding), so adding a metric never shifts
another's noise.
Samples are drawn and log-sum-exp-reduced in fixed blocks of SAMPLE_BLOCK, folded in block order,
so the numbers do not depend on the chunk (given a decoder whose rows do not depend on how many
rows it is called with, as on CPU). The image batch size does change which noise each image gets.
"""

import math
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch._dynamo.utils import counters

from vaebench.errors import VaebenchError
from vaebench.utils import memory_of

SAMPLE_BLOCK = 16  # samples per noise draw and per log-sum-exp block; chunks are multiples of it
CPU_CHUNK_BYTES = 64 << 20  # CPU working-set cap per chunk: measured, larger chunks run slower (cache misses)
CPU_FAMILY_BYTES = 1 << 20  # CPU, eager: one L2-sized map per family call and thread (bench/eval_throughput)
FAMILY_TEMPS = 20  # measured peak of the families' temporaries, in values per sub-pixel
# nested estimates from the first K/16 and K/4 of the same samples: how much the estimate still rises with K
NESTED_FRACTIONS = {"sixteenth": 16, "quarter": 4}


@contextmanager
def full_precision() -> Iterator[None]:
    """TF32 off and float32 matmuls at full precision while scoring; previous settings restored after."""
    saved = (
        torch.backends.cuda.matmul.allow_tf32,
        torch.backends.cudnn.allow_tf32,
        torch.get_float32_matmul_precision(),
    )
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved[:2]
        torch.set_float32_matmul_precision(saved[2])


def model_dtype_device(model: nn.Module) -> tuple[torch.dtype, torch.device]:
    p = next(model.parameters())
    return p.dtype, p.device


def _available_bytes(device: torch.device) -> int:
    """Free memory on `device`: cuda from the driver; CPU from /proc/meminfo (4 GiB if unreadable)."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 4 << 30


def sample_bytes(batch: int, dims: int, n_params: int, itemsize: int = 4) -> int:
    """Bytes one importance sample of a batch holds: per sub-pixel, the decoder output (P values), the
    expanded x, the family's temporaries (FAMILY_TEMPS values), each `itemsize` bytes, and v (1 byte)."""
    return batch * dims * (itemsize * (n_params + 1 + FAMILY_TEMPS) + 1)


def ladder_rung(samples: int, up: bool = False) -> int:
    """The chunk sizes are a fixed ladder, SAMPLE_BLOCK times a power of two, so that a compiled kernel
    (one per shape) is built once per machine, not again whenever free memory differs a little: the
    largest rung at most `samples` (at least the lowest), or with `up` the smallest at least `samples`."""
    rung = SAMPLE_BLOCK
    while rung * 2 <= samples or (up and rung < samples):
        rung *= 2
    return rung


def default_chunk(
    k: int, batch: int, dims: int, n_params: int, device: torch.device, itemsize: int = 4
) -> int:
    """Samples per decoder call: the largest ladder rung (ladder_rung) that fits a quarter of free memory (at
    most CPU_CHUNK_BYTES on CPU) at sample_bytes per sample and is no larger than K."""
    budget = _available_bytes(device) // 4
    if device.type != "cuda":
        budget = min(budget, CPU_CHUNK_BYTES)
    return ladder_rung(min(budget // sample_bytes(batch, dims, n_params, itemsize), k))


def chunk_for(model: nn.Module, chunk: int | None, k: int, batch: int, dims: int) -> int:
    """The chunk importance_sampled_ll takes: `chunk` rounded down to a multiple of SAMPLE_BLOCK (at least
    one block), or, for None, default_chunk for the model. Resolved once per evaluation, by the caller."""
    if chunk:
        return max(SAMPLE_BLOCK, chunk // SAMPLE_BLOCK * SAMPLE_BLOCK)
    p = next(model.parameters())
    return default_chunk(k, batch, dims, model.family.n_params, p.device, p.element_size())


def family_block(n: int, b: int, dims: int, device: torch.device, itemsize: int) -> int:
    """Samples per eager family call: the whole chunk on a GPU (fewer, larger kernels); on CPU a block whose
    maps stay in cache, since the eager family math is a chain of memory-bound elementwise ops."""
    if device.type == "cuda":
        return n
    return max(1, CPU_FAMILY_BYTES * torch.get_num_threads() // (b * dims * itemsize))


Scorer = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def family_scorer(family: nn.Module, compiled: bool = False) -> Scorer:
    """The per-decoder-output likelihoods: (params [m*B, P, C, H, W], x [B, C, H, W], v [B, C, H, W]) ->
    (log p(x|z), log P(v|z)), [m, B] float64 each, for m samples of each of the B images.

    compiled: torch.compile'd with static shapes (a chunk and its remainder are two kernels), so the
    elementwise chain, the expansion of x and v and the float64 pixel sum fuse into one pass; its numbers
    differ from eager by float32 rounding. Ignored for a family that says it is `not_compilable`.
    Eager: in family_block pieces, which do not change the numbers.
    The returned function's `fused` says which of the two it is; a fused one also counts, over the first call
    per shape (which compiles, or loads from compile_cache, then runs once), `compile_seconds` and the FX
    graph cache's `cache_hits` and `cache_misses`.
    """
    compiled = compiled and family.not_compilable is None

    def score(params, x, v):
        m = params.shape[0] // x.shape[0]
        xs = x.expand(m, *x.shape).reshape(params.shape[0], *x.shape[1:])  # [m*B, C, H, W]
        vs = v.expand(m, *v.shape).reshape(params.shape[0], *v.shape[1:])
        log_p_deq, log_p_disc = family.log_likelihoods(params, xs, vs)
        return log_p_deq.view(m, -1), log_p_disc.view(m, -1)

    def score_in_blocks(params, x, v):
        b = x.shape[0]
        per = family_block(params.shape[0] // b, b, x[0].numel(), params.device, params.element_size())
        parts = [score(params[s : s + per * b], x, v) for s in range(0, params.shape[0], per * b)]
        return torch.cat([deq for deq, _ in parts]), torch.cat([disc for _, disc in parts])

    if not compiled:
        score_in_blocks.fused = False
        return score_in_blocks
    fused = torch.compile(score, dynamic=False)
    shapes = set()

    def score_fused(params, x, v):
        if (params.shape, x.shape) in shapes:
            return fused(params, x, v)
        hits, misses = (counters["inductor"][f"fxgraph_cache_{what}"] for what in ("hit", "miss"))
        t0 = time.perf_counter()
        out = fused(params, x, v)
        score_fused.compile_seconds += time.perf_counter() - t0
        score_fused.cache_hits += counters["inductor"]["fxgraph_cache_hit"] - hits
        score_fused.cache_misses += counters["inductor"]["fxgraph_cache_miss"] - misses
        shapes.add((params.shape, x.shape))
        return out

    score_fused.fused, score_fused.compile_seconds = True, 0.0
    score_fused.cache_hits = score_fused.cache_misses = 0
    return score_fused


# --compile auto compiles the family math from this many image-samples (K x test images) per job: where
# compiling (from a warm compile_cache) starts to pay for itself on the device type (bench/eval_throughput.py)
COMPILE_PAYS_FROM = {"cpu": 2_000_000, "cuda": 2_000_000}


def wants_compile(mode: str, k: int, n_images: int, device: torch.device) -> bool:
    """Whether `mode` (settings.COMPILE_MODES) compiles the family math of k samples on n_images images."""
    if mode == "auto":
        return k * n_images >= COMPILE_PAYS_FROM.get(device.type, COMPILE_PAYS_FROM["cuda"])
    return mode == "true"


@contextmanager
def compile_cache(directory: str | Path) -> Iterator[None]:
    """Keep torch inductor's on-disk caches of compiled kernels (FX graph and AOT autograd caches) in
    `directory` while compiling, so every later job that sees the directory loads the kernels instead of
    compiling them; TORCHINDUCTOR_CACHE_DIR is put back after (inductor sets it for the whole process)."""
    saved = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(Path(directory).resolve())
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("TORCHINDUCTOR_CACHE_DIR", None)
        else:
            os.environ["TORCHINDUCTOR_CACHE_DIR"] = saved


def kernel_shapes(k: int, n_images: int, batch: int, chunk: int) -> list[tuple[int, int]]:
    """The (images, samples) of every decoder call a fused scorer meets in batched_ll: a full batch and
    the last one, times a full chunk and the last piece padded up to a rung (_decoded_scores); a compiled
    kernel is built per shape."""
    images = {min(batch, n_images)} | ({n_images % batch} if n_images > batch and n_images % batch else set())
    samples = {min(chunk, ladder_rung(min(chunk, k - start), up=True)) for start in range(0, k, chunk)}
    return sorted((b, m) for b in images for m in samples)


@torch.no_grad()
def warm_scorer(model: nn.Module, score: Scorer, shapes: list[tuple[int, int]]) -> None:
    """Build `score`'s kernel for every (images, samples) of `shapes` as batched_ll would, on tensors of the
    shapes, dtypes and layouts it decodes and scores (the values do not matter), so that the evaluations
    after load them from the compile cache."""
    dtype, device = model_dtype_device(model)
    model.eval()
    image_shape = (model.config.channels, model.config.height, model.config.width)
    for b, m in shapes:
        x = torch.full((b, *image_shape), 0.5, dtype=dtype, device=device)
        v = torch.zeros((b, *image_shape), dtype=torch.uint8, device=device)
        score(model.decode(torch.zeros(m * b, model.config.latent_dim, dtype=dtype, device=device)), x, v)


def nested_sizes(k: int) -> dict[str, int | None]:
    """The samples m behind each nested estimate (NESTED_FRACTIONS): K/d rounded down to whole SAMPLE_BLOCKs,
    None when that is less than one block."""
    return {name: k // d // SAMPLE_BLOCK * SAMPLE_BLOCK or None for name, d in NESTED_FRACTIONS.items()}


@dataclass(frozen=True)
class Estimates:
    """Importance-sampled log p(x~) (`deq`) and log P(v) (`disc`) per image, float64 nats; `nested` maps each
    m of nested_sizes to the estimates from the first m samples only; `chunk`, the samples decoded at once
    in the end (fewer than asked after running out of memory)."""

    deq: torch.Tensor
    disc: torch.Tensor
    nested: dict[int, "Estimates"]
    chunk: int | None = None


@torch.no_grad()
def importance_sampled_ll(
    model: nn.Module,
    x: torch.Tensor,
    v: torch.Tensor,
    k: int,
    chunk: int,
    generator: torch.Generator,
    score: Scorer | None = None,
) -> Estimates:
    """Importance-sampled log p(x~) and log P(v) per image, [B] each, at K and at the nested sizes.

    x: dequantized images [B, C, H, W] in (0, 1); v: their 8-bit values [B, C, H, W]. `chunk`: samples
    decoded at once, as chunk_for resolves it (a multiple of SAMPLE_BLOCK); the estimate does not depend
    on it. Both estimates use the same z samples. `score`: a family_scorer of the model's family
    (default: eager). A nested estimate is the running log-sum-exp after its first m samples (whole blocks),
    so it costs no decoder pass and leaves the estimate at K as it is.
    """
    if chunk < SAMPLE_BLOCK or chunk % SAMPLE_BLOCK:
        raise ValueError(
            f"chunk {chunk} is not a positive multiple of {SAMPLE_BLOCK}: resolve it with chunk_for"
        )
    dtype, device = model_dtype_device(model)
    score = score if score is not None else family_scorer(model.family)
    b = x.shape[0]
    with full_precision():
        model.eval()
        x, v = x.to(device=device, dtype=dtype), v.to(device)
        mu, logvar = model.encode(x)  # [B, Z]
        mu64, logvar64 = mu.double(), logvar.double()
        inv_std64 = torch.exp(-0.5 * logvar64)  # [B, Z]
        half_logdet = 0.5 * logvar64.sum(dim=1)  # [B]: log prod std
        acc_deq = torch.full((b,), -math.inf, dtype=torch.float64, device=device)  # running logsumexp
        acc_disc = acc_deq.clone()
        nested_at = {m for m in nested_sizes(k).values() if m is not None}
        nested = {}
        start = 0
        while start < k:
            n = min(chunk, k - start)
            eps = torch.cat(
                [
                    torch.randn(
                        min(SAMPLE_BLOCK, k - s),
                        b,
                        mu.shape[1],
                        generator=generator,
                        device=device,
                        dtype=dtype,
                    )
                    for s in range(start, start + n, SAMPLE_BLOCK)
                ]
            )  # [n, B, Z]
            z = mu + torch.exp(0.5 * logvar) * eps  # [n, B, Z], model dtype: exactly what is decoded
            z64 = z.double()
            # log N(z; 0, I) - log q(z|x); the (2 pi)^(-Z/2) factors cancel
            log_prior_over_q = (
                -0.5 * z64.pow(2).sum(-1) + 0.5 * ((z64 - mu64) * inv_std64).pow(2).sum(-1) + half_logdet
            )  # [n, B]
            # log p(x|z_k), log P(v|z_k): [n, B] float64; out of memory, the chunk goes down the ladder
            log_p_deq, log_p_disc, chunk = _decoded_scores(model, z, x, v, score, chunk)
            log_w_deq = log_p_deq + log_prior_over_q  # [n, B]
            log_w_disc = log_p_disc + log_prior_over_q
            for s in range(0, n, SAMPLE_BLOCK):  # fixed blocks: same float ops for any chunk size
                acc_deq = torch.logaddexp(acc_deq, torch.logsumexp(log_w_deq[s : s + SAMPLE_BLOCK], dim=0))
                acc_disc = torch.logaddexp(acc_disc, torch.logsumexp(log_w_disc[s : s + SAMPLE_BLOCK], dim=0))
                done = start + s + SAMPLE_BLOCK
                if done in nested_at:
                    nested[done] = Estimates(acc_deq - math.log(done), acc_disc - math.log(done), {})
            start += n
    return Estimates(acc_deq - math.log(k), acc_disc - math.log(k), nested, chunk)


def _decoded_scores(
    model: nn.Module, z: torch.Tensor, x: torch.Tensor, v: torch.Tensor, score: Scorer, chunk: int
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """log p(x|z) and log P(v|z), [n, B] float64, of the samples z [n, B, Z], decoded `chunk` samples at a
    time, and the chunk that fitted. A compiled scorer (its `fused`) builds a kernel per shape, so its last
    piece is padded with z = 0 up to a ladder rung (ladder_rung) and the padding's scores dropped. Out of
    memory, the chunk goes one rung down and these samples start over, with a line on stderr: the estimate
    does not depend on the chunk."""
    n, b = z.shape[:2]
    pad = getattr(score, "fused", False)
    while True:
        try:
            parts = []
            for s in range(0, n, chunk):
                rows = z[s : s + chunk].reshape(-1, z.shape[2])  # [m*B, Z]
                m = rows.shape[0] // b
                padded = min(chunk, ladder_rung(m, up=True)) if pad else m
                if padded > m:
                    rows = torch.cat([rows, rows.new_zeros((padded - m) * b, rows.shape[1])])
                log_p_deq, log_p_disc = score(model.decode(rows), x, v)  # [padded, B] each
                parts.append((log_p_deq[:m], log_p_disc[:m]))
            return torch.cat([deq for deq, _ in parts]), torch.cat([disc for _, disc in parts]), chunk
        except torch.OutOfMemoryError:
            failed = chunk  # retried below, outside the handler, so the failed pass's tensors are freed first
        if failed <= SAMPLE_BLOCK:
            raise VaebenchError(
                f"out of memory decoding {SAMPLE_BLOCK} samples of {b} images at once on "
                f"{memory_of(z.device)}: lower --batch"
            )
        chunk = ladder_rung(failed // 2)
        if z.is_cuda:
            torch.cuda.empty_cache()
        print(
            f"out of memory decoding {failed} samples of {b} images at once on {z.device}: going on with "
            f"{chunk} (the estimate does not depend on it)",
            file=sys.stderr,
        )


def batched_ll(
    model: nn.Module,
    x: torch.Tensor,
    v: torch.Tensor,
    k: int,
    batch: int,
    chunk: int,
    generator: torch.Generator,
    score: Scorer,
    progress: Callable[[int], None] | None = None,
) -> Estimates:
    """importance_sampled_ll over all images, `batch` at a time, one generator throughout: [N] each.
    `progress` is told the number of images of each batch done. A chunk lowered for lack of memory stays
    lowered for the batches after."""
    parts = []
    for start in range(0, x.shape[0], batch):
        parts.append(
            importance_sampled_ll(
                model, x[start : start + batch], v[start : start + batch], k, chunk, generator, score
            )
        )
        chunk = parts[-1].chunk
        if progress is not None:
            progress(min(batch, x.shape[0] - start))
    return _concatenated(parts)


def _concatenated(parts: list[Estimates]) -> Estimates:
    return Estimates(
        torch.cat([part.deq for part in parts]),
        torch.cat([part.disc for part in parts]),
        {m: _concatenated([part.nested[m] for part in parts]) for m in parts[0].nested},
        parts[-1].chunk,
    )
