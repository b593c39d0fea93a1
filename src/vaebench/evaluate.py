"""`vaebench evaluate`: score one trained model exactly as likelihood-spec.md defines.

The test log-likelihood is estimated by importance sampling with the encoder as proposal,

    log p(x) ~= logsumexp_k [log p(x|z_k) + log N(z_k; 0, I) - log q(z_k|x)] - log K,

for the dequantized density (family.log_density on x~) and the discretized likelihood
(family.log_prob_bins on v) from the same z samples. Images are batched (`batch`) and the
K samples are decoded `chunk` at a time, so peak memory depends on batch * chunk, never on K.

Precision: the per-sub-pixel family math runs in the decoder's dtype (float32 for the models `vaebench
train` saves: the decoder's outputs carry no more digits than that); every accumulation (the sum over
sub-pixels, log q, log p(z), the logsumexp over samples, the mean over images) is float64, as the spec
asks. Against float64 family math on the same decoder outputs, a test image's log-likelihood moves by
at most 1e-3 nats (4e-3 for beta), below 1e-5 bits/dim (tests/test_evaluate.py, bench/eval_throughput.py). With --compile the family math is one
fused torch.compile kernel (its numbers differ from eager by float32 rounding, and compilation costs
a few seconds per process, so it pays off for large K).

Reproducibility: every random draw comes from its own generator, seeded from (--seed, stream)
and created on the model's device. Samples are drawn and log-sum-exp-reduced in fixed blocks of
SAMPLE_BLOCK samples, folded into a float64 running logaddexp in block order, so the numbers
do not depend on the chunk size (given a decoder whose rows do not depend on how many rows it is
called with, as on CPU here). The image batch size does change which noise each image gets.
"""

import argparse
import json
import logging
import math
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch._dynamo.exc import BackendCompilerFailed

from vaebench.data import ImageDataset, dequantize, load_dataset
from vaebench.errors import CheckpointError, DatasetError, VaebenchError, require_positive
from vaebench.gpu_slots import device_slot
from vaebench.models import gaussian_kl, load_model
from vaebench.utils import atomic_write, provenance, set_threads, write_json

SAMPLE_BLOCK = 16          # samples per noise draw and per log-sum-exp block; chunks are multiples of it
ENCODE_BATCH = 1000        # images per block for dequantization noise and the encoder-only passes
KNN_NEIGHBOURS = 15
ACTIVE_UNIT_THRESHOLD = 0.01
COVERAGE_LEVEL = 0.90
PIT_BINS = 20
N_RECON, N_SAMPLES = 16, 64
CPU_CHUNK_BYTES = 64 << 20  # CPU working-set cap per chunk: measured, larger chunks run slower (cache misses)
CPU_FAMILY_BYTES = 1 << 20  # CPU, eager: one map per family call and thread (L2-sized); bench/eval_throughput.py
FAMILY_TEMPS = 20           # measured peak of the families' temporaries, in values per sub-pixel
LN2, LN256 = math.log(2.0), math.log(256.0)
# noise streams: each gets its own generator so adding a metric never shifts another's noise
STREAM_TEST_DEQ, STREAM_IS, STREAM_ELBO, STREAM_PRIOR, STREAM_TRAIN_DEQ = range(5)
RUN_FIELDS = ("dataset", "loss", "latent_dim", "seed", "arch", "hidden", "epochs", "status", "train_seconds",
              "dequantize", "family_options", "dataset_sha256")


@dataclass
class EvalConfig:
    k: int = 5000
    n_test: int | None = None   # None: the whole test split
    batch: int = 100            # test images per importance-sampling batch
    chunk: int | None = None    # samples decoded at once; None: from free memory (default_chunk)
    seed: int = 0
    n_train: int | None = None  # train images for kNN; None: the whole train split
    compile: bool = False       # family math as one torch.compile'd kernel


def stream_generator(seed: int, stream: int, device: torch.device | str) -> torch.Generator:
    """A generator on `device` for one noise stream, seeded from (seed, stream) via numpy's SeedSequence."""
    state = int(np.random.SeedSequence([seed, stream]).generate_state(1, dtype=np.uint64)[0])
    return torch.Generator(device=device).manual_seed(state)


@contextmanager
def full_precision() -> Iterator[None]:
    """TF32 off and float32 matmuls at full precision while scoring; previous settings restored after."""
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
             torch.get_float32_matmul_precision())
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved[:2]
        torch.set_float32_matmul_precision(saved[2])


def bpd_deq(ll_nats: float, dims: int) -> float:
    """Bits/dim of a dequantized density on [0,1]^D, an upper bound on the discrete bits/dim (Theis et al.)."""
    return -(ll_nats - dims * LN256) / (dims * LN2)


def bpd_disc(ll_nats: float, dims: int) -> float:
    return -ll_nats / (dims * LN2)


def _model_dtype_device(model: nn.Module) -> tuple[torch.dtype, torch.device]:
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


def default_chunk(k: int, batch: int, dims: int, n_params: int, device: torch.device, itemsize: int = 4) -> int:
    """Samples per decoder call: a quarter of free memory (at most 64 MiB on CPU) over sample_bytes,
    rounded down to a multiple of SAMPLE_BLOCK, at least one block, and no more blocks than K needs."""
    budget = _available_bytes(device) // 4
    if device.type != "cuda":
        budget = min(budget, CPU_CHUNK_BYTES)
    chunk = budget // sample_bytes(batch, dims, n_params, itemsize) // SAMPLE_BLOCK * SAMPLE_BLOCK
    return int(min(max(chunk, SAMPLE_BLOCK), math.ceil(k / SAMPLE_BLOCK) * SAMPLE_BLOCK))


def chunk_for(model: nn.Module, chunk: int | None, k: int, batch: int, dims: int) -> int:
    """`chunk` rounded down to a multiple of SAMPLE_BLOCK (at least one block), or default_chunk for the model."""
    if chunk:
        return max(SAMPLE_BLOCK, chunk // SAMPLE_BLOCK * SAMPLE_BLOCK)
    p = next(model.parameters())
    return default_chunk(k, batch, dims, model.family.n_params, p.device, p.element_size())


def family_block(n: int, b: int, dims: int, device: torch.device, itemsize: int) -> int:
    """Samples per eager family call: the whole chunk on a GPU (fewer, larger kernels); on CPU a block whose
    maps stay in cache, since the eager family math is a chain of memory-bound elementwise ops (1.2-4x faster)."""
    if device.type == "cuda":
        return n
    return max(1, CPU_FAMILY_BYTES * torch.get_num_threads() // (b * dims * itemsize))


Scorer = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def family_scorer(family: nn.Module, compiled: bool = False) -> Scorer:
    """The per-decoder-output likelihoods: (params [m*B, P, C, H, W], x [B, C, H, W], v [B, C, H, W]) ->
    (log p(x|z), log P(v|z)), [m, B] float64 each, for m samples of each of the B images.

    compiled: torch.compile'd with static shapes (a chunk and its remainder are two kernels), so the
    elementwise chain, the expansion of x and v and the float64 pixel sum fuse into one pass; ignored for
    a family that says it is `not_compilable`. Eager: in family_block pieces, which do not change the numbers.
    The returned function's `fused` says which of the two it is.
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
        parts = [score(params[s:s + per * b], x, v) for s in range(0, params.shape[0], per * b)]
        return torch.cat([deq for deq, _ in parts]), torch.cat([disc for _, disc in parts])

    scorer = torch.compile(score, dynamic=False) if compiled else score_in_blocks
    scorer.fused = compiled
    return scorer


@torch.no_grad()
def importance_sampled_ll(model: nn.Module, x: torch.Tensor, v: torch.Tensor, k: int, chunk: int | None = None,
                          generator: torch.Generator | None = None,
                          score: Scorer | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Importance-sampled log p(x~) and log P(v) per image, float64 nats: ([B], [B]).

    x: dequantized images [B, C, H, W] in (0, 1); v: their 8-bit values [B, C, H, W]. `chunk` is
    rounded down to a multiple of SAMPLE_BLOCK; None picks it from free memory. Both estimates use
    the same z samples. The estimate does not depend on `chunk`. `score`: a family_scorer of the
    model's family (default: eager).
    """
    dtype, device = _model_dtype_device(model)
    family = model.family
    generator = generator if generator is not None else stream_generator(0, STREAM_IS, device)
    score = score if score is not None else family_scorer(family)
    b = x.shape[0]
    chunk = chunk_for(model, chunk, k, b, x[0].numel())
    with full_precision():
        model.eval()
        x, v = x.to(device=device, dtype=dtype), v.to(device)
        mu, logvar = model.encode(x)  # [B, Z]
        mu64, logvar64 = mu.double(), logvar.double()
        inv_std64 = torch.exp(-0.5 * logvar64)  # [B, Z]
        half_logdet = 0.5 * logvar64.sum(dim=1)  # [B]: log prod std
        acc_deq = torch.full((b,), -math.inf, dtype=torch.float64, device=device)  # running logsumexp
        acc_disc = acc_deq.clone()
        for start in range(0, k, chunk):
            n = min(chunk, k - start)
            eps = torch.cat([torch.randn(min(SAMPLE_BLOCK, k - s), b, mu.shape[1], generator=generator,
                                         device=device, dtype=dtype)
                             for s in range(start, start + n, SAMPLE_BLOCK)])  # [n, B, Z]
            z = mu + torch.exp(0.5 * logvar) * eps  # [n, B, Z], model dtype: exactly what is decoded
            z64 = z.double()
            # log N(z; 0, I) - log q(z|x); the (2 pi)^(-Z/2) factors cancel
            log_prior_over_q = (-0.5 * z64.pow(2).sum(-1)
                                + 0.5 * ((z64 - mu64) * inv_std64).pow(2).sum(-1) + half_logdet)  # [n, B]
            params = model.decode(z.reshape(n * b, -1))  # [n*B, P, C, H, W], model dtype
            log_p_deq, log_p_disc = score(params, x, v)  # log p(x|z_k), log P(v|z_k): [n, B] float64
            log_w_deq = log_p_deq + log_prior_over_q  # [n, B]
            log_w_disc = log_p_disc + log_prior_over_q
            for s in range(0, n, SAMPLE_BLOCK):  # fixed blocks: same float ops for any chunk size
                acc_deq = torch.logaddexp(acc_deq, torch.logsumexp(log_w_deq[s:s + SAMPLE_BLOCK], dim=0))
                acc_disc = torch.logaddexp(acc_disc, torch.logsumexp(log_w_disc[s:s + SAMPLE_BLOCK], dim=0))
    return acc_deq - math.log(k), acc_disc - math.log(k)


def batched_ll(model: nn.Module, x: torch.Tensor, v: torch.Tensor, k: int, batch: int, chunk: int,
               generator: torch.Generator, score: Scorer) -> tuple[torch.Tensor, torch.Tensor]:
    """importance_sampled_ll over all images, `batch` at a time, one generator throughout: ([N], [N])."""
    parts = [importance_sampled_ll(model, x[start:start + batch], v[start:start + batch], k, chunk, generator, score)
             for start in range(0, x.shape[0], batch)]
    return torch.cat([deq for deq, _ in parts]), torch.cat([disc for _, disc in parts])


def dequantize_blocks(images: torch.Tensor, n: int, generator: torch.Generator) -> torch.Tensor:
    """x~ = (v + u)/256 for the first n images, drawn in fixed blocks of ENCODE_BATCH whole images.

    An image's noise therefore depends only on its index and the seed, not on n or --batch.
    """
    out = []
    for start in range(0, n, ENCODE_BATCH):
        block = images[start:start + ENCODE_BATCH].to(generator.device)
        out.append(dequantize(block, generator)[:n - start])
    return torch.cat(out)  # [n, C, H, W] float32


@torch.no_grad()
def posterior_means(model: nn.Module, images: torch.Tensor, generator: torch.Generator,
                    n: int | None = None) -> torch.Tensor:
    """E_q[z] of the first n images (all if None) at x~, dequantized as in dequantize_blocks: [n, Z] float64.

    Block by block, so the train split never sits on the device as float images all at once.
    """
    dtype, device = _model_dtype_device(model)
    n = images.shape[0] if n is None else n
    out = []
    with full_precision():
        model.eval()
        for start in range(0, n, ENCODE_BATCH):
            x = dequantize(images[start:start + ENCODE_BATCH].to(device), generator)[:n - start]
            out.append(model.encode(x.to(dtype))[0].double())  # [<=ENCODE_BATCH, Z]
    return torch.cat(out)


def knn_accuracy(train_z: torch.Tensor, train_y: torch.Tensor, test_z: torch.Tensor, test_y: torch.Tensor,
                 k: int = KNN_NEIGHBOURS) -> float:
    """Accuracy of a majority vote of the k Euclidean nearest train latents; ties go to the smallest label.

    Same rule as scikit-learn's KNeighborsClassifier(n_neighbors=k) with uniform weights.
    """
    train_z, test_z = train_z.double(), test_z.to(device=train_z.device, dtype=torch.float64)
    train_y, test_y = train_y.to(train_z.device), test_y.to(train_z.device)
    n_classes = int(max(train_y.max(), test_y.max())) + 1
    rows = max(1, (1 << 24) // train_z.shape[0])  # test rows per distance block: 128 MiB of float64
    correct = torch.zeros((), dtype=torch.int64, device=train_z.device)
    for start in range(0, test_z.shape[0], rows):
        dist = torch.cdist(test_z[start:start + rows], train_z)  # [r, N]
        nearest = dist.topk(k, dim=1, largest=False).indices  # [r, k]
        votes = nn.functional.one_hot(train_y[nearest], n_classes).sum(dim=1)  # [r, classes]
        correct += (votes.argmax(dim=1) == test_y[start:start + rows]).sum()
    return correct.item() / test_z.shape[0]


def active_units(mu: torch.Tensor, threshold: float = ACTIVE_UNIT_THRESHOLD) -> int:
    """Latent dims whose variance over x of E_q[z] (population variance, ddof 0) exceeds `threshold`."""
    return int((mu.double().var(dim=0, unbiased=False) > threshold).sum())


@torch.no_grad()
def posterior_pass(model: nn.Module, x: torch.Tensor, v: torch.Tensor, batch: int,
                   generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Everything read off the posterior mean or one posterior sample, batch by batch.

    Returns per-image float64 `elbo` [N] and `kl` [N] (one sample, analytic KL, proper density),
    `mu` [N, Z], `sq_err` (summed (v/255 - family mean at mu)^2), and for families with a learned
    scale `pit_counts` [PIT_BINS] and `covered` (sub-pixels with F(x~) in the central 90%).
    """
    dtype, device = _model_dtype_device(model)
    family = model.family
    calibrated = family.learned_scale and family.has_cdf
    lo, hi = (1 - COVERAGE_LEVEL) / 2, (1 + COVERAGE_LEVEL) / 2
    elbo, kl, mus = [], [], []
    sq_err = torch.zeros((), dtype=torch.float64, device=device)
    covered = torch.zeros((), dtype=torch.int64, device=device)
    pit = torch.zeros(PIT_BINS, dtype=torch.int64, device=device)
    with full_precision():
        model.eval()
        for start in range(0, x.shape[0], batch):
            xb = x[start:start + batch].to(device)  # [B, C, H, W]
            vb = v[start:start + batch].to(device)
            mu, logvar = model.encode(xb.to(dtype))  # [B, Z]
            eps = torch.randn(mu.shape, generator=generator, device=device, dtype=dtype)
            params = model.decode(mu + torch.exp(0.5 * logvar) * eps).double()  # [B, P, C, H, W]
            kl_b = gaussian_kl(mu.double(), logvar.double())  # [B]
            elbo.append(family.log_density(params, xb.double()) - kl_b)
            kl.append(kl_b)
            mus.append(mu.double())
            at_mean = model.decode(mu).double()  # [B, P, C, H, W]
            sq_err += (vb.double() / 255.0 - family.mean(at_mean)).pow(2).sum()
            if calibrated:
                u = family.cdf(at_mean, xb.double())  # [B, C, H, W] PIT values in [0, 1]
                covered += ((u >= lo) & (u <= hi)).sum()
                pit += torch.bincount((u * PIT_BINS).long().clamp(0, PIT_BINS - 1).flatten(), minlength=PIT_BINS)
    out = {"elbo": torch.cat(elbo), "kl": torch.cat(kl), "mu": torch.cat(mus), "sq_err": sq_err}
    if calibrated:
        out.update(pit_counts=pit, covered=covered)
    return out


@torch.no_grad()
def figure_artifacts(model: nn.Module, x: torch.Tensor, v: torch.Tensor, seed: int) -> dict[str, np.ndarray]:
    """Data, reconstructions (family mean at the posterior mean) and prior samples for the figures."""
    dtype, device = _model_dtype_device(model)
    family = model.family
    with full_precision():
        model.eval()
        mu, _ = model.encode(x[:N_RECON].to(device=device, dtype=dtype))
        recon = family.mean(model.decode(mu).double())
        gen = stream_generator(seed, STREAM_PRIOR, device)
        z = torch.randn(N_SAMPLES, mu.shape[1], generator=gen, device=device, dtype=dtype)  # [64, Z]
        params = model.decode(z).double()
        std = family.std(params)
    arrays = {"data": v[:N_RECON].float() / 255.0, "recon": recon.float(), "samples": family.mean(params).float()}
    if std is not None:
        arrays["samples_std"] = std.float()
    return {name: a.cpu().numpy() for name, a in arrays.items()}


def _mean_se(values: torch.Tensor) -> tuple[float, float | None]:
    """Mean and standard error over images (float64); SE is None for a single image."""
    n = values.shape[0]
    se = (values.std(unbiased=True) / math.sqrt(n)).item() if n > 1 else None
    return values.mean().item(), se


def _put_ll(metrics: dict, name: str, values: torch.Tensor, dims: int, to_bpd, reason: str) -> None:
    """ll_<name>_nats, ll_<name>_se, bpd_<name>; null and ll_<name>_note where any image is not finite."""
    nan, infinite = int(torch.isnan(values).sum()), int(torch.isinf(values).sum())
    if nan or infinite:
        metrics.update({f"ll_{name}_nats": None, f"ll_{name}_se": None, f"bpd_{name}": None})
        metrics[f"ll_{name}_note"] = (reason if nan else
                                      f"log-likelihood is infinite for {infinite} of {values.shape[0]} test images")
        return
    mean, se = _mean_se(values)
    metrics.update({f"ll_{name}_nats": mean, f"ll_{name}_se": se, f"bpd_{name}": to_bpd(mean, dims)})


def evaluate(model: nn.Module, data: ImageDataset, cfg: EvalConfig) -> tuple[dict, dict[str, np.ndarray]]:
    """All numbers of one model on the first cfg.n_test test images: (metrics, figure arrays)."""
    dtype, device = _model_dtype_device(model)
    family = model.family
    n_test = data.test_images.shape[0] if cfg.n_test is None else cfg.n_test
    dims = data.dims
    chunk = chunk_for(model, cfg.chunk, cfg.k, cfg.batch, dims)
    v = data.test_images[:n_test].to(device)  # [N, C, H, W] uint8
    x = dequantize_blocks(data.test_images, n_test, stream_generator(cfg.seed, STREAM_TEST_DEQ, device))

    score = family_scorer(family, cfg.compile)
    ll_deq, ll_disc = batched_ll(model, x, v, cfg.k, cfg.batch, chunk, stream_generator(cfg.seed, STREAM_IS, device),
                                 score)
    metrics: dict = {"k": cfg.k, "n_test": n_test, "batch": cfg.batch, "chunk": chunk, "eval_seed": cfg.seed,
                     "dims": dims, "family_label": family.label, "compiled": score.fused,
                     "family_dtype": str(dtype).removeprefix("torch.")}
    _put_ll(metrics, "deq", ll_deq, dims, bpd_deq, f"{family.name}: log_density returned NaN")
    _put_ll(metrics, "disc", ll_disc, dims, bpd_disc,
            f"{family.name} has no discretized likelihood (log_prob_bins returned NaN)")
    if cfg.compile and not score.fused:
        metrics["compiled_note"] = f"evaluated eagerly: {family.not_compilable}"
    if family.entry.discrete:
        metrics["ll_deq_note"] = "dequantized density = bin probability * 256^D, so both columns agree"

    post = posterior_pass(model, x, v, cfg.batch, stream_generator(cfg.seed, STREAM_ELBO, device))
    elbo_mean, elbo_se = _mean_se(post["elbo"])
    kl_mean = post["kl"].mean().item()
    train_mu = posterior_means(model, data.train_images, stream_generator(cfg.seed, STREAM_TRAIN_DEQ, device),
                               cfg.n_train)
    metrics.update({
        "elbo_nats": elbo_mean, "elbo_se": elbo_se, "bpd_elbo": bpd_deq(elbo_mean, dims),
        "kl_nats": kl_mean, "bpd_kl": kl_mean / (dims * LN2),
        "recon_mse": post["sq_err"].item() / (n_test * dims),
        "knn_acc": knn_accuracy(train_mu, data.train_labels[:train_mu.shape[0]], post["mu"],
                                data.test_labels[:n_test]),
        "knn_train_images": train_mu.shape[0],
        "active_units": active_units(post["mu"]),
        "coverage90": None,
    })
    artifacts = figure_artifacts(model, x, v, cfg.seed)
    if "pit_counts" in post:
        metrics["coverage90"] = post["covered"].item() / (n_test * dims)
        artifacts["pit_counts"] = post["pit_counts"].cpu().numpy().astype(np.int64)
        artifacts["pit_edges"] = np.linspace(0.0, 1.0, PIT_BINS + 1)
    elif family.learned_scale:
        metrics["coverage90_note"] = f"{family.name} has no CDF"
    if post["mu"].shape[1] == 2:
        artifacts["latent_mu"] = post["mu"].float().cpu().numpy()
        artifacts["latent_labels"] = data.test_labels[:n_test].cpu().numpy().astype(np.int64)
    return _nulls_for_non_finite(metrics), artifacts


def _nulls_for_non_finite(metrics: dict) -> dict:
    """JSON has no NaN or inf: such a number becomes null with a `<key>_note` (unless one says why already)."""
    for key, value in list(metrics.items()):
        if isinstance(value, float) and not math.isfinite(value):
            metrics[key] = None
            metrics.setdefault(f"{key}_note", f"not finite ({value}): the model's outputs overflow or are NaN")
    return metrics


def save_artifacts(path: str | Path, arrays: dict[str, np.ndarray]) -> Path:
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:  # a file object: np.savez would append .npz to a path
            np.savez_compressed(f, **arrays)
    return atomic_write(path, write)


@contextmanager
def quiet_inductor(active: bool) -> Iterator[None]:
    """While compiling, keep torch inductor's own log (a hundred lines of generated code when the C++ compiler
    is missing) off stderr, so a failure reads as our one line; TORCH_LOGS still turns it back on."""
    logger = logging.getLogger("torch._inductor")
    saved = logger.level
    if active and not os.environ.get("TORCH_LOGS"):
        logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        logger.setLevel(saved)


def read_run(run_dir: Path) -> dict:
    path = run_dir / "run.json"
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{path} does not exist: train the run first") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{path} is not valid JSON ({err})") from None


def add_arguments(p: argparse.ArgumentParser) -> None:
    d = EvalConfig()
    p.add_argument("--run", required=True, type=Path, help="run directory holding model.pt and run.json")
    p.add_argument("--k", type=int, default=d.k, help="importance samples per test image (default: %(default)s)")
    p.add_argument("--n-test", type=int, default=None, help="score the first N test images (default: all)")
    p.add_argument("--batch", type=int, default=d.batch, help="test images per batch (default: %(default)s)")
    p.add_argument("--chunk", type=int, default=None,
                   help=f"samples decoded at once, a multiple of {SAMPLE_BLOCK}; memory grows with batch*chunk, "
                        "never with K; numbers do not depend on it (default: from free memory)")
    p.add_argument("--seed", type=int, default=d.seed,
                   help="seed of the evaluation noise: dequantization, z samples, ELBO, prior samples (default: 0)")
    p.add_argument("--device", default="auto", help="'auto' (cuda when present, else cpu), 'cpu', 'cuda:1', ...")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads; 0 keeps torch's default")
    p.add_argument("--data-dir", default=None, help="where the dataset is looked for (default: the run's data_dir)")
    p.add_argument("--out", required=True, type=Path, help="metrics file to write, e.g. RUN_DIR/metrics.json")
    p.add_argument("--artifacts", type=Path, default=None,
                   help="arrays for the figures, e.g. RUN_DIR/artifacts.npz (default: not written)")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=d.compile,
                   help="run the family math as one torch.compile'd kernel: 2-5x faster per sample, a few "
                        "seconds to compile per process, needs a C++ compiler on CPU (default: off)")
    p.add_argument("--dry-run", action="store_true",
                   help="K=4 on 64 test images and 500 train images, to check that everything runs")


def run(args: argparse.Namespace) -> int:
    require_positive(k=args.k, n_test=args.n_test, batch=args.batch, chunk=args.chunk)
    record = read_run(args.run)
    with device_slot(args.device) as device:  # several GPUs: a device of this job's own, until it ends
        threads = set_threads(args.threads)
        model = load_model(args.run / "model.pt", device)
        data = load_dataset(record["dataset"], args.data_dir or record.get("data_dir"))
        if record.get("dataset_sha256") not in (None, data.sha256):
            raise DatasetError(f"dataset {record['dataset']} differs from the one {args.run} was trained on "
                               f"(sha256 {data.sha256[:12]} vs {record['dataset_sha256'][:12]})")
        n_available = data.test_images.shape[0]
        if args.n_test is not None and args.n_test > n_available:
            raise VaebenchError(f"--n-test {args.n_test} exceeds the {n_available} test images of {record['dataset']}")
        cfg = EvalConfig(k=args.k, n_test=args.n_test, batch=args.batch, chunk=args.chunk, seed=args.seed,
                         compile=args.compile)
        if args.dry_run:
            cfg.k, cfg.n_test, cfg.n_train = min(cfg.k, 4), min(cfg.n_test or n_available, 64), 500

        t0 = time.perf_counter()
        try:
            with quiet_inductor(args.compile):
                metrics, artifacts = evaluate(model, data, cfg)
        except BackendCompilerFailed as err:
            reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise VaebenchError(f"--compile failed ({reason[:200]}): torch.compile needs a C++ compiler on CPU "
                                "and triton on GPU; rerun with --no-compile (TORCH_LOGS=+inductor for details)"
                                ) from None
        metrics["eval_seconds"] = time.perf_counter() - t0
        metrics.update({key: record.get(key) for key in RUN_FIELDS})
        metrics.update(provenance(device))
        metrics.update({"threads": threads, "dry_run": args.dry_run, "ll_comparable": bool(record.get("dequantize", True))})
        write_json(args.out, metrics)
        if args.artifacts is not None:
            save_artifacts(args.artifacts, artifacts)
        shown = {key: "n/a" if metrics[key] is None else f"{metrics[key]:.3f}"
                 for key in ("ll_deq_nats", "bpd_deq", "ll_disc_nats", "bpd_disc", "elbo_nats")}
        print(f"[{record.get('loss')} z={record.get('latent_dim')} seed={record.get('seed')}] K={cfg.k} "
              f"n={metrics['n_test']}: LL_deq {shown['ll_deq_nats']} nats ({shown['bpd_deq']} bits/dim), "
              f"LL_disc {shown['ll_disc_nats']} nats ({shown['bpd_disc']} bits/dim), ELBO {shown['elbo_nats']} nats, "
              f"{metrics['eval_seconds']:.1f} s on {device}", file=sys.stderr)
        return 0
