"""The importance-sampled likelihoods against closed forms and scipy; their independence of the chunk and
their precision. The compiled family math: test_compiled.py."""

import math

import numpy as np
import pytest
import torch
from eval_models import LinearGaussianVAE, TinyMLPVAE, estimate, fake_dataset, fake_images, real_model
from scipy import special, stats

from vaebench import likelihood as lk
from vaebench import units
from vaebench.evaluate import evaluate
from vaebench.families import FAMILIES
from vaebench.posterior import dequantize_blocks
from vaebench.seeding import STREAM_IS, STREAM_TEST_DEQ, stream_generator
from vaebench.settings import EvalConfig

# ---------------------------------------------------------------- exactness on a linear-Gaussian VAE


@pytest.mark.parametrize("k", [1, 7, 40])
def test_exact_posterior_gives_exact_log_likelihood_for_any_k(k):
    model = LinearGaussianVAE()
    x, v = fake_images(10)
    ll_deq, _ = estimate(model, x, v, k, seed=3, chunk=16)
    np.testing.assert_allclose(ll_deq.numpy(), model.exact_log_px(x), rtol=1e-10)


def test_poorer_proposal_is_biased_low_and_approaches_exact_as_k_grows():
    """A shifted, too narrow proposal: the mean gap to the exact log p(x) is positive beyond 3 standard
    errors at every K and shrinks as K grows."""
    model = LinearGaussianVAE(shift=0.5, scale=0.5)
    x, v = fake_images(200)
    exact = model.exact_log_px(x)
    gaps = []
    for k in (1, 10, 100, 1000):
        ll, _ = estimate(model, x, v, k, seed=k, chunk=256)
        gap = exact - ll.numpy()
        assert gap.mean() > 3 * gap.std() / np.sqrt(len(gap)), (k, gap.mean())
        gaps.append(gap.mean())
    assert gaps == sorted(gaps, reverse=True), gaps
    assert gaps[-1] < 0.15 * gaps[0], gaps


def test_k1_is_the_single_sample_elbo_with_sampled_kl():
    """K = 1 gives log p(x|z) + log N(z; 0, I) - log q(z|x) at z = mu + std * eps, eps the stream's first
    draw; its mean matches the closed-form ELBO (analytic KL) within sampling error."""
    model = LinearGaussianVAE(shift=0.2, scale=1.5)
    x, v = fake_images(2000)
    ll, _ = estimate(model, x, v, 1, seed=5)
    mu, logvar = model.encode(x)
    eps = torch.randn(1, *mu.shape, generator=torch.Generator().manual_seed(5), dtype=torch.float64)[0]
    z = (mu + torch.exp(0.5 * logvar) * eps).detach()
    std = np.exp(0.5 * logvar.detach().numpy())
    mean = model.decode(z).detach().flatten(1).numpy()
    by_hand = (
        stats.norm(mean, model.sigma).logpdf(x.flatten(1).double().numpy()).sum(1)
        + stats.norm.logpdf(z.numpy()).sum(1)
        - stats.norm(mu.detach().numpy(), std).logpdf(z.numpy()).sum(1)
    )
    np.testing.assert_allclose(ll.numpy(), by_hand, rtol=1e-10)

    elbo, _ = model.closed_form_elbo(x)
    diff = ll.numpy() - elbo
    assert abs(diff.mean()) < 4 * diff.std() / np.sqrt(len(diff))


# ---------------------------------------------------------------- discretized likelihood vs scipy


def scipy_log_bin_probs(family, params: np.ndarray, v: np.ndarray) -> np.ndarray:
    """log P(bin v) per sub-pixel from scipy's log-CDFs, given `params` [B, P, C, H, W] mapped to the
    family's natural parameters. Real-line families: edge bins to -inf / +inf; logit-space and [0, 1]
    families: to 0 / 1. In log space, from the smaller tail, so far-tail bins do not underflow."""
    p = torch.from_numpy(params)
    lo, hi = v / 256, (v + 1) / 256
    if family.name in ("continuous_bernoulli", "bernoulli"):
        # CB(eta) is an exponential with rate -eta truncated to [0, 1], mirrored for eta > 0
        eta = params[:, 0]
        dist = stats.truncexpon(b=np.abs(eta), scale=1 / np.abs(eta))
        lo, hi = np.where(eta < 0, lo, 1 - hi), np.where(eta < 0, hi, 1 - lo)
    elif family.name == "beta":
        dist = stats.beta(*(t.numpy() for t in family.concentrations(p)))
    else:
        loc, scale = (t.detach().numpy() for t in family.loc_scale(p))
        dist = {
            "squared_error": stats.norm,
            "gaussian_fixed": stats.norm,
            "gaussian": stats.norm,
            "gaussian_shared": stats.norm,
            "absolute_error": stats.laplace,
            "laplace_fixed": stats.laplace,
            "laplace": stats.laplace,
            "logit_normal": stats.norm,
            "logit_laplace": stats.laplace,
            "discretized_logistic": stats.logistic,
        }[family.name](loc, scale)
        if family.name.startswith("logit_"):
            lo, hi = special.logit(lo), special.logit(hi)  # 0 -> -inf, 1 -> +inf
        else:
            lo, hi = np.where(v == 0, -np.inf, lo), np.where(v == 255, np.inf, hi)
    upper = dist.logsf(lo) < dist.logcdf(hi)  # take the difference in the smaller tail
    big = np.where(upper, dist.logsf(lo), dist.logcdf(hi))
    small = np.where(upper, dist.logsf(hi), dist.logcdf(lo))
    return big + np.log(-np.expm1(small - big))


@pytest.mark.parametrize("family", sorted(name for name, cls in FAMILIES.items() if cls.has_cdf))
def test_discretized_ll_is_the_scipy_bin_sum_including_edge_bins(family):
    """K = 1, so ll_disc = log P(v|z) + log N(z; 0, I) - log q(z|x) at the stream's first z."""
    model = real_model(family)
    x, v = fake_images(5)
    _, ll_disc = estimate(model, x, v, 1, seed=9)
    with torch.no_grad():
        mu, logvar = model.encode(x.double())
        eps = torch.randn(1, *mu.shape, generator=torch.Generator().manual_seed(9), dtype=torch.float64)[0]
        z = mu + torch.exp(0.5 * logvar) * eps
        params = model.decode(z).numpy()
    log_probs = scipy_log_bin_probs(model.family, params, v.numpy().astype(float))  # [B, C, H, W]
    std = np.exp(0.5 * logvar.numpy())
    expected = (
        log_probs.reshape(5, -1).sum(1)
        + stats.norm.logpdf(z.numpy()).sum(1)
        - stats.norm(mu.numpy(), std).logpdf(z.numpy()).sum(1)
    )
    np.testing.assert_allclose(ll_disc.numpy(), expected, rtol=1e-9)


# ---------------------------------------------------------------- conversions, chunking, precision


def test_bits_per_dim_against_hand_computed_values():
    d = 784
    assert units.bpd_deq(d * math.log(256) - 3 * d * math.log(2), d) == pytest.approx(3.0, rel=1e-14)
    assert units.bpd_disc(-5 * d * math.log(2), d) == pytest.approx(5.0, rel=1e-14)
    assert units.bpd_disc(-100.0, d) == pytest.approx(100 / (784 * 0.6931471805599453), rel=1e-14)
    assert units.bpd_deq(-100.0, d) == pytest.approx(8 + 100 / (784 * 0.6931471805599453), rel=1e-14)


def test_the_chunk_is_whole_blocks_and_the_estimator_takes_no_other():
    """chunk_for rounds down to a multiple of SAMPLE_BLOCK, at least one block; None: default_chunk, here
    the largest ladder rung within K. An unresolved chunk would shift the noise blocks, so the estimator
    refuses it."""
    model = real_model("gaussian", dtype=torch.float32)
    resolved = [lk.chunk_for(model, chunk, 50, 12, 16) for chunk in (1, 16, 17, 47, 48, 1000)]
    assert resolved == [16, 16, 16, 32, 48, 992]
    assert lk.chunk_for(model, None, 50, 12, 16) == 32
    x, v = fake_images(2)
    for chunk in (0, 17):
        with pytest.raises(ValueError, match="chunk_for"):
            lk.importance_sampled_ll(model, x, v, 4, chunk, torch.Generator().manual_seed(0))


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_chunked_and_unchunked_give_identical_numbers(family):
    """K = 50 is not a multiple of the block: the last, partial block must not depend on the chunk either."""
    model = real_model(family, dtype=torch.float32)
    x, v = fake_images(12)
    results = [estimate(model, x, v, 50, seed=1, chunk=chunk) for chunk in (1000, 16, 17, 48, 64)]
    for deq, disc in results[1:]:
        assert torch.equal(deq, results[0][0]) and torch.equal(disc, results[0][1])
    assert results[0][0].dtype == torch.float64 and torch.isfinite(results[0][0]).all()


def test_default_chunk_is_a_ladder_rung_capped_by_k_and_memory(monkeypatch):
    cpu, gpu = torch.device("cpu"), torch.device("cuda")  # no cuda call: free memory is patched below
    per_sample = lk.sample_bytes(100, 784, 1)
    assert lk.sample_bytes(100, 784, 2) > per_sample > lk.sample_bytes(50, 784, 1)
    monkeypatch.setattr(lk, "_available_bytes", lambda device: 4 * per_sample * 64 + 100)
    assert lk.default_chunk(5000, 100, 784, 1, gpu) == 64
    assert lk.default_chunk(5000, 100, 784, 2, gpu) == 32  # P = 2 costs more per sample: a rung lower
    assert lk.default_chunk(5000, 1000, 784, 1, gpu) == lk.SAMPLE_BLOCK  # at least one block
    assert lk.default_chunk(5, 100, 784, 1, gpu) == lk.SAMPLE_BLOCK  # never more than K needs
    assert lk.default_chunk(50, 10, 784, 1, gpu) == 32  # the largest rung within K
    small = lk.sample_bytes(10, 784, 1)
    cpu_chunk = lk.default_chunk(5000, 10, 784, 1, cpu)  # the CPU cap, not free memory, binds
    assert cpu_chunk * small <= lk.CPU_CHUNK_BYTES < 2 * cpu_chunk * small
    # free memory that differs a little gives the same chunk, so compiled kernels are reused
    for free in (79 << 30, int(78.5 * 2**30)):
        monkeypatch.setattr(lk, "_available_bytes", lambda device, free=free: free)
        assert lk.default_chunk(5000, 100, 784, 2, gpu) == 2048


def _in_float64(family):
    """A scorer doing the same family math in float64 on the (float32) decoder outputs: the precision
    reference."""
    eager = lk.family_scorer(family)
    return lambda params, x, v: eager(params.double(), x.double(), v)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_float32_family_math_matches_float64_on_the_same_decoder_outputs(family):
    """The hot path runs in the decoder's dtype: against float64 math on the same outputs and noise, each
    image's log-likelihood moves by float32 rounding of its per-pixel terms (about 1e-7 of their sizes), no
    more."""
    model = real_model(family, side=8, dtype=torch.float32)
    x, v = fake_images(8, side=8)
    ours = estimate(model, x, v, 40, seed=2, chunk=16)
    reference = estimate(model, x, v, 40, seed=2, chunk=16, score=_in_float64(model.family))
    for column, ref in zip(ours, reference, strict=True):
        assert column.dtype == torch.float64
        torch.testing.assert_close(column, ref, rtol=1e-6, atol=2e-4)


# ---------------------------------------------------------------- nested estimates at K/16 and K/4


def test_nested_sizes_are_whole_blocks_of_k_over_16_and_4():
    assert lk.nested_sizes(5000) == {"sixteenth": 304, "quarter": 1248}
    assert lk.nested_sizes(1024) == {"sixteenth": 64, "quarter": 256}
    assert lk.nested_sizes(100) == {"sixteenth": None, "quarter": 16}  # K/16 = 6 is less than one block
    assert lk.nested_sizes(63) == {"sixteenth": None, "quarter": None}


@pytest.mark.parametrize("chunk", [16, 48, 992])
def test_nested_estimates_are_the_estimates_at_m_and_leave_the_one_at_k_as_it_was(chunk, monkeypatch):
    """A nested estimate is bit for bit the estimate a run at K = m gives (same seed: the first m samples);
    and the estimate at K is bit for bit the one computed without nested estimates."""
    model = real_model("continuous_bernoulli", dtype=torch.float32)
    x, v = fake_images(6)
    k = 300  # nested at 16 and 64; not a multiple of the block either
    est = lk.importance_sampled_ll(model, x, v, k, chunk, torch.Generator().manual_seed(4))
    assert sorted(est.nested) == [16, 64]
    for m, nested in est.nested.items():
        alone = lk.importance_sampled_ll(model, x, v, m, chunk, torch.Generator().manual_seed(4))
        assert torch.equal(nested.deq, alone.deq) and torch.equal(nested.disc, alone.disc)
    batched = lk.batched_ll(
        model, x, v, k, 4, chunk, torch.Generator().manual_seed(4), lk.family_scorer(model.family)
    )
    assert sorted(batched.nested) == [16, 64] and batched.nested[64].disc.shape == (6,)
    monkeypatch.setattr(lk, "nested_sizes", lambda k: {})
    plain = lk.importance_sampled_ll(model, x, v, k, chunk, torch.Generator().manual_seed(4))
    assert plain.nested == {} and torch.equal(plain.deq, est.deq) and torch.equal(plain.disc, est.disc)


def test_evaluate_writes_the_nested_estimates_and_how_much_the_estimate_still_rises():
    """metrics.json: k_sixteenth and k_quarter, the means at them, and the mean and standard error over images
    of the estimate at K less the one at K/4 (recomputed here from the per-image estimates)."""
    data, model = fake_dataset(n_test=30), TinyMLPVAE()
    metrics, _ = evaluate(model, data, EvalConfig(k=80, n_test=30, batch=10))
    assert metrics["k_sixteenth"] is None and metrics["k_quarter"] == 16
    assert metrics["compile_mode"] == "false" and metrics["compiled"] is False
    assert metrics["compile_seconds"] is None and metrics["compile_cache_warm"] is None
    x = dequantize_blocks(data.test_images, 30, stream_generator(0, STREAM_TEST_DEQ, "cpu"))
    est = lk.batched_ll(
        model,
        x,
        data.test_images[:30],
        80,
        10,
        lk.chunk_for(model, None, 80, 10, data.dims),
        stream_generator(0, STREAM_IS, "cpu"),
        lk.family_scorer(model.family),
    )
    for column in ("deq", "disc"):
        at_k, at_quarter = getattr(est, column), getattr(est.nested[16], column)
        assert metrics[f"ll_{column}_nats"] == pytest.approx(at_k.mean().item(), rel=1e-12)
        assert metrics[f"ll_{column}_nats_k_sixteenth"] is None
        assert metrics[f"ll_{column}_nats_k_quarter"] == pytest.approx(at_quarter.mean().item(), rel=1e-12)
        rise = (at_k - at_quarter).numpy()
        assert metrics[f"ll_{column}_rise_nats"] == pytest.approx(rise.mean(), rel=1e-12)
        assert metrics[f"ll_{column}_rise_se"] == pytest.approx(stats.sem(rise), rel=1e-9)
    short, _ = evaluate(model, data, EvalConfig(k=12, n_test=30, batch=10))
    assert short["k_quarter"] is None
    assert short["ll_disc_rise_nats"] is None and short["ll_deq_rise_se"] is None
