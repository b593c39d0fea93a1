"""Evaluation: the importance-sampled likelihoods against closed forms and scipy, and the other metrics
against direct scikit-learn / numpy computations."""

import json
import math

import numpy as np
import pytest
import torch
from scipy import special, stats
from torch import nn

from vaebench import evaluate as ev
from vaebench.cli import main
from vaebench.data import ImageDataset
from vaebench.families import FAMILIES, OutputFamily
from vaebench.models import ModelConfig, build_model, save_model
from vaebench.utils import write_json


class NormalFixedFamily(OutputFamily):
    """Test-only output family implementing the contract: Normal(mu, sigma) with a fixed sigma (unregistered)."""

    name, label, n_params, learned_scale, has_cdf = "test_normal", "normal (test)", 1, True, True

    def __init__(self, sigma: float):
        super().__init__()
        self.sigma = sigma

    def _dist(self, params):
        return torch.distributions.Normal(params[:, 0], self.sigma, validate_args=False)

    def log_density(self, params, x):
        return self._dist(params).log_prob(x.to(params.dtype)).flatten(1).sum(1)

    def log_prob_bins(self, params, v):
        v = v.to(params.dtype)
        lo = torch.where(v == 0, -math.inf, v / 256)
        hi = torch.where(v == 255, math.inf, (v + 1) / 256)
        d = self._dist(params)
        return torch.log(d.cdf(hi) - d.cdf(lo)).flatten(1).sum(1)

    def mean(self, params):
        return params[:, 0]

    def std(self, params):
        return torch.full_like(params[:, 0], self.sigma)

    def cdf(self, params, x):
        return self._dist(params).cdf(x.to(params.dtype))


class LinearGaussianVAE(nn.Module):
    """Decoder mean W z + b with fixed sigma, float64. W has orthogonal columns, so the exact posterior

        q(z|x) = N(S W^T (x - b) / sigma^2, S),  S = (I + W^T W / sigma^2)^-1,

    is diagonal and our diagonal-Gaussian estimator can use it. `shift`/`scale` make a poorer proposal.
    """

    def __init__(self, d=16, z=3, sigma=0.3, shift=0.0, scale=1.0, seed=0):
        super().__init__()
        rng = np.random.default_rng(seed)
        q, _ = np.linalg.qr(rng.normal(size=(d, z)))  # orthonormal columns
        self.W = nn.Parameter(torch.tensor(q * np.linspace(0.3, 0.8, z), dtype=torch.float64))  # [D, Z]
        self.b = nn.Parameter(torch.tensor(rng.uniform(0.3, 0.7, size=d)))  # [D]
        self.sigma, self.shift, self.scale = sigma, shift, scale
        self.family = NormalFixedFamily(sigma)
        self.side = int(math.isqrt(d))

    def exact_posterior(self, x):
        s = 1.0 / (1.0 + (self.W**2).sum(0) / self.sigma**2)  # [Z] diagonal of S
        m = (x.flatten(1).double() - self.b) @ self.W * s / self.sigma**2  # [B, Z]
        return m, s

    def encode(self, x):
        m, s = self.exact_posterior(x)
        return m + self.shift, torch.log(s * self.scale).expand_as(m)

    def decode(self, z):
        return (z @ self.W.T + self.b).view(-1, 1, 1, self.side, self.side)  # [B, 1, 1, H, W]

    def exact_log_px(self, x):
        cov = (self.W @ self.W.T).detach().numpy() + self.sigma**2 * np.eye(self.W.shape[0])
        return stats.multivariate_normal(self.b.detach().numpy(), cov).logpdf(x.flatten(1).double().numpy())


class TinyMLPVAE(nn.Module):
    """A small float32 MLP VAE duck-typed to models.VAE (encode/decode/family)."""

    def __init__(self, side=8, z=2, hidden=16, family=None, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        d = side * side
        self.enc = nn.Sequential(nn.Flatten(), nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, 2 * z))
        self.dec = nn.Sequential(nn.Linear(z, hidden), nn.ReLU(), nn.Linear(hidden, d), nn.Sigmoid())
        self.family = family or NormalFixedFamily(0.2)
        self.side = side

    def encode(self, x):
        mu, logvar = self.enc(x).chunk(2, dim=1)
        return mu, logvar

    def decode(self, z):
        return self.dec(z).view(-1, 1, 1, self.side, self.side)


def fake_dataset(n_train=300, n_test=120, side=8, seed=0) -> ImageDataset:
    g = torch.Generator().manual_seed(seed)
    imgs = lambda n: torch.randint(0, 256, (n, 1, side, side), generator=g, dtype=torch.uint8)  # noqa: E731
    labels = lambda n: torch.randint(0, 4, (n,), generator=g)  # noqa: E731
    return ImageDataset("fake", imgs(n_train), labels(n_train), imgs(n_test), labels(n_test), "0" * 64, "test")


def test_fake_images(n, side=4, seed=0):
    v = torch.randint(0, 256, (n, 1, side, side), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)
    v[0, 0, 0, :2] = torch.tensor([0, 255], dtype=torch.uint8)  # both edge bins
    x = ev.dequantize_blocks(v, n, torch.Generator().manual_seed(seed + 1))
    return x, v


test_fake_images.__test__ = False  # a helper, not a test


# ---------------------------------------------------------------- exactness on a linear-Gaussian VAE

@pytest.mark.parametrize("k", [1, 7, 40])
def test_exact_posterior_gives_exact_log_likelihood_for_any_k(k):
    model = LinearGaussianVAE()
    x, v = test_fake_images(10)
    ll_deq, _ = ev.importance_sampled_ll(model, x, v, k, chunk=16, generator=torch.Generator().manual_seed(3))
    np.testing.assert_allclose(ll_deq.numpy(), model.exact_log_px(x), rtol=1e-10)


def test_poorer_proposal_is_biased_low_and_approaches_exact_as_k_grows():
    """A shifted, too narrow proposal: the mean gap to the exact log p(x) is positive beyond 3 standard
    errors at every K and shrinks as K grows."""
    model = LinearGaussianVAE(shift=0.5, scale=0.5)
    x, v = test_fake_images(200)
    exact = model.exact_log_px(x)
    gaps = []
    for k in (1, 10, 100, 1000):
        ll, _ = ev.importance_sampled_ll(model, x, v, k, chunk=256, generator=torch.Generator().manual_seed(k))
        gap = exact - ll.numpy()
        assert gap.mean() > 3 * gap.std() / np.sqrt(len(gap)), (k, gap.mean())
        gaps.append(gap.mean())
    assert gaps == sorted(gaps, reverse=True), gaps
    assert gaps[-1] < 0.15 * gaps[0], gaps


def test_k1_is_the_single_sample_elbo_with_sampled_kl():
    """K = 1 gives log p(x|z) + log N(z; 0, I) - log q(z|x) at z = mu + std * eps, eps the stream's first draw;
    its mean matches the closed-form ELBO (analytic KL) within sampling error."""
    model = LinearGaussianVAE(shift=0.2, scale=1.5)
    x, v = test_fake_images(2000)
    ll, _ = ev.importance_sampled_ll(model, x, v, 1, generator=torch.Generator().manual_seed(5))
    mu, logvar = model.encode(x)
    eps = torch.randn(1, *mu.shape, generator=torch.Generator().manual_seed(5), dtype=torch.float64)[0]
    z = (mu + torch.exp(0.5 * logvar) * eps).detach()
    std = np.exp(0.5 * logvar.detach().numpy())
    mean = model.decode(z).detach().flatten(1).numpy()
    by_hand = (stats.norm(mean, model.sigma).logpdf(x.flatten(1).double().numpy()).sum(1)
               + stats.norm.logpdf(z.numpy()).sum(1) - stats.norm(mu.detach().numpy(), std).logpdf(z.numpy()).sum(1))
    np.testing.assert_allclose(ll.numpy(), by_hand, rtol=1e-10)

    # closed form: E_q log p(x|z) - KL(q || N(0, I)) for the linear-Gaussian decoder
    m, var = mu.detach().numpy(), np.exp(logvar.detach().numpy())
    W, b, s2 = model.W.detach().numpy(), model.b.detach().numpy(), model.sigma**2
    resid = x.flatten(1).double().numpy() - b - m @ W.T
    recon = -0.5 * W.shape[0] * np.log(2 * np.pi * s2) - ((resid**2).sum(1) + (var * (W**2).sum(0)).sum(1)) / (2 * s2)
    elbo = recon - 0.5 * (m**2 + var - 1 - np.log(var)).sum(1)
    diff = ll.numpy() - elbo
    assert abs(diff.mean()) < 4 * diff.std() / np.sqrt(len(diff))
    post = ev.posterior_pass(model, x, v, 500, torch.Generator().manual_seed(6))
    diff = post["elbo"].numpy() - elbo
    assert abs(diff.mean()) < 4 * diff.std() / np.sqrt(len(diff))
    np.testing.assert_allclose(post["kl"].numpy(), 0.5 * (m**2 + var - 1 - np.log(var)).sum(1), rtol=1e-12)


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
        dist = {"gaussian_fixed": stats.norm, "gaussian": stats.norm, "gaussian_shared": stats.norm,
                "laplace_fixed": stats.laplace, "laplace": stats.laplace, "logit_normal": stats.norm,
                "logit_laplace": stats.laplace, "discretized_logistic": stats.logistic}[family.name](loc, scale)
        if family.name.startswith("logit_"):
            lo, hi = special.logit(lo), special.logit(hi)  # 0 -> -inf, 1 -> +inf
        else:
            lo, hi = np.where(v == 0, -np.inf, lo), np.where(v == 255, np.inf, hi)
    upper = dist.logsf(lo) < dist.logcdf(hi)  # take the difference in the smaller tail
    big = np.where(upper, dist.logsf(lo), dist.logcdf(hi))
    small = np.where(upper, dist.logsf(hi), dist.logcdf(lo))
    return big + np.log(-np.expm1(small - big))


def real_model(family: str, side=4, z=2, seed=0, dtype=torch.float64):
    """A small models.VAE whose decoder output spreads over a useful range of parameters."""
    torch.manual_seed(seed)
    model = build_model(ModelConfig("mlp", 1, side, side, z, family, hidden=16)).to(dtype)
    with torch.no_grad():
        model.decoder[-1].bias.uniform_(-1.0, 1.5)
    return model


@pytest.mark.parametrize("family", sorted(name for name, cls in FAMILIES.items() if cls.has_cdf))
def test_discretized_ll_is_the_scipy_bin_sum_including_edge_bins(family):
    """K = 1, so ll_disc = log P(v|z) + log N(z; 0, I) - log q(z|x) at the stream's first z."""
    model = real_model(family)
    x, v = test_fake_images(5)
    _, ll_disc = ev.importance_sampled_ll(model, x, v, 1, generator=torch.Generator().manual_seed(9))
    with torch.no_grad():
        mu, logvar = model.encode(x.double())
        eps = torch.randn(1, *mu.shape, generator=torch.Generator().manual_seed(9), dtype=torch.float64)[0]
        z = mu + torch.exp(0.5 * logvar) * eps
        params = model.decode(z).numpy()
    log_probs = scipy_log_bin_probs(model.family, params, v.numpy().astype(float))  # [B, C, H, W]
    std = np.exp(0.5 * logvar.numpy())
    expected = (log_probs.reshape(5, -1).sum(1) + stats.norm.logpdf(z.numpy()).sum(1)
                - stats.norm(mu.numpy(), std).logpdf(z.numpy()).sum(1))
    np.testing.assert_allclose(ll_disc.numpy(), expected, rtol=1e-9)


def test_discretized_logistic_columns_agree():
    model = real_model("discretized_logistic", side=8)
    metrics, _ = ev.evaluate(model, fake_dataset(n_test=30), ev.EvalConfig(k=20, n_test=30, batch=10))
    assert metrics["ll_deq_nats"] - 64 * math.log(256) == pytest.approx(metrics["ll_disc_nats"], rel=1e-12)
    assert metrics["bpd_deq"] == pytest.approx(metrics["bpd_disc"], rel=1e-12)
    assert "agree" in metrics["ll_deq_note"]


# ---------------------------------------------------------------- conversions, chunking, determinism

def test_bits_per_dim_against_hand_computed_values():
    d = 784
    assert ev.bpd_deq(d * math.log(256) - 3 * d * math.log(2), d) == pytest.approx(3.0, rel=1e-14)
    assert ev.bpd_disc(-5 * d * math.log(2), d) == pytest.approx(5.0, rel=1e-14)
    assert ev.bpd_disc(-100.0, d) == pytest.approx(100 / (784 * 0.6931471805599453), rel=1e-14)
    assert ev.bpd_deq(-100.0, d) == pytest.approx(8 + 100 / (784 * 0.6931471805599453), rel=1e-14)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_chunked_and_unchunked_give_identical_numbers(family):
    """K = 50 is not a multiple of the block: the last, partial block must not depend on the chunk either."""
    model = real_model(family, dtype=torch.float32)
    x, v = test_fake_images(12)
    k = 50
    results = [ev.importance_sampled_ll(model, x, v, k, chunk, torch.Generator().manual_seed(1))
               for chunk in (1000, 16, 17, 48, 64)]
    for deq, disc in results[1:]:
        assert torch.equal(deq, results[0][0]) and torch.equal(disc, results[0][1])
    assert results[0][0].dtype == torch.float64 and torch.isfinite(results[0][0]).all()


def _in_float64(family):
    """A scorer doing the same family math in float64 on the (float32) decoder outputs: the precision reference."""
    eager = ev.family_scorer(family)
    return lambda params, x, v: eager(params.double(), x.double(), v)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_float32_family_math_matches_float64_on_the_same_decoder_outputs(family):
    """The hot path runs in the decoder's dtype: against float64 math on the same outputs and noise, each image's
    log-likelihood moves by float32 rounding of its per-pixel terms (about 1e-7 of their sizes), no more."""
    model = real_model(family, side=8, dtype=torch.float32)
    x, v = test_fake_images(8, side=8)
    ours = ev.importance_sampled_ll(model, x, v, 40, 16, torch.Generator().manual_seed(2))
    reference = ev.importance_sampled_ll(model, x, v, 40, 16, torch.Generator().manual_seed(2),
                                         _in_float64(model.family))
    for column, ref in zip(ours, reference):
        assert column.dtype == torch.float64
        torch.testing.assert_close(column, ref, rtol=1e-6, atol=2e-4)


COMPILED_FAMILIES = ["continuous_bernoulli", "gaussian", "discretized_logistic", "logit_laplace"]


@pytest.mark.parametrize("family", COMPILED_FAMILIES)
def test_compiled_family_math_matches_eager_and_does_not_depend_on_the_chunk(family):
    """--compile: one fused kernel per shape; same numbers as eager up to float32 rounding, and identical for any
    chunk (K = 50: full chunks and a remainder compile to different kernels)."""
    torch._dynamo.reset()  # a fresh compile cache: every test's shapes count against torch's recompile limit
    model = real_model(family, side=8, dtype=torch.float32)
    x, v = test_fake_images(8, side=8)
    score = ev.family_scorer(model.family, compiled=True)
    assert score.fused
    compiled = [ev.importance_sampled_ll(model, x, v, 50, chunk, torch.Generator().manual_seed(1), score)
                for chunk in (64, 16, 48)]
    for deq, disc in compiled[1:]:
        assert torch.equal(deq, compiled[0][0]) and torch.equal(disc, compiled[0][1])
    eager = ev.importance_sampled_ll(model, x, v, 50, 64, torch.Generator().manual_seed(1))
    for ours, ref in zip(compiled[0], eager):
        torch.testing.assert_close(ours, ref, rtol=1e-6, atol=2e-4)


def test_beta_is_never_compiled_and_says_why():
    family = FAMILIES["beta"]()
    assert not ev.family_scorer(family, compiled=True).fused
    assert "data-dependent" in family.not_compilable


def test_compile_without_a_cpp_compiler_is_a_one_line_error(run_dir, capsys, monkeypatch, tmp_path):
    import torch._inductor.config as inductor_config
    torch._dynamo.reset()
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))  # no cached kernel to fall back on
    out = run_dir / "metrics.json"
    # torch's own patch() restores its config on exit; monkeypatch.setattr on the config module does not
    # undo cleanly, and a later compiling test then failed on a missing fx_graph_cache attribute
    with inductor_config.patch({"fx_graph_cache": False, "cpp.cxx": ("/nonexistent/g++",)}):
        code = main(["evaluate", "--run", str(run_dir), "--k", "4", "--n-test", "8", "--out", str(out), "--compile"])
    err = capsys.readouterr().err.strip()
    assert code != 0 and not out.exists()
    assert len(err.splitlines()) == 1 and "--compile failed" in err and "--no-compile" in err


def test_inductor_log_is_kept_off_stderr_while_compiling(capsys, monkeypatch):
    """A missing compiler can make inductor log a hundred lines of generated code (log.fatal) before it
    raises; --compile keeps them off stderr unless TORCH_LOGS asks for them."""
    import logging
    scheduler_log = logging.getLogger("torch._inductor.scheduler")
    monkeypatch.delenv("TORCH_LOGS", raising=False)
    with ev.quiet_inductor(True):
        scheduler_log.fatal("generated code")
    assert "generated code" not in capsys.readouterr().err
    scheduler_log.fatal("after compiling")
    assert "after compiling" in capsys.readouterr().err


def test_rerun_gives_identical_numbers_and_seed_matters():
    data, model = fake_dataset(), TinyMLPVAE(z=3)
    cfg = ev.EvalConfig(k=20, n_test=50, batch=16, chunk=16)
    first, art1 = ev.evaluate(model, data, cfg)
    again, art2 = ev.evaluate(model, data, cfg)
    assert first == again and all(np.array_equal(art1[key], art2[key]) for key in art1)
    other, _ = ev.evaluate(model, data, ev.EvalConfig(k=20, n_test=50, batch=16, chunk=16, seed=1))
    assert other["ll_deq_nats"] != first["ll_deq_nats"]


def test_default_chunk_is_a_multiple_of_the_block_capped_by_k_and_memory(monkeypatch):
    cpu, gpu = torch.device("cpu"), torch.device("cuda")  # no cuda call: free memory is patched below
    per_sample = ev.sample_bytes(100, 784, 1)
    assert ev.sample_bytes(100, 784, 2) > per_sample > ev.sample_bytes(50, 784, 1)
    monkeypatch.setattr(ev, "_available_bytes", lambda device: 4 * per_sample * 64 + 100)
    assert ev.default_chunk(5000, 100, 784, 1, gpu) == 64
    assert ev.default_chunk(5000, 100, 784, 2, gpu) == 48  # P = 2 costs more per sample
    assert ev.default_chunk(5000, 1000, 784, 1, gpu) == ev.SAMPLE_BLOCK  # at least one block
    assert ev.default_chunk(5, 100, 784, 1, gpu) == ev.SAMPLE_BLOCK  # never more than K needs
    small = ev.sample_bytes(10, 784, 1)
    cpu_chunk = ev.default_chunk(5000, 10, 784, 1, cpu)  # the CPU cap, not free memory, binds
    assert cpu_chunk * small <= ev.CPU_CHUNK_BYTES < (cpu_chunk + ev.SAMPLE_BLOCK) * small


# ---------------------------------------------------------------- latent metrics vs scikit-learn / numpy

def test_knn_accuracy_matches_scikit_learn():
    from sklearn.neighbors import KNeighborsClassifier

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(5, 4)) * 1.5
    train_y, test_y = rng.integers(0, 5, 700), rng.integers(0, 5, 300)
    train_z = centres[train_y] + rng.normal(size=(700, 4))
    test_z = centres[test_y] + rng.normal(size=(300, 4))
    expected = KNeighborsClassifier(n_neighbors=15).fit(train_z, train_y).score(test_z, test_y)
    got = ev.knn_accuracy(torch.tensor(train_z), torch.tensor(train_y), torch.tensor(test_z), torch.tensor(test_y))
    assert got == expected
    assert 0.3 < got < 1.0  # the data is neither trivial nor hopeless, so a wrong vote would show


def test_active_units_match_numpy():
    rng = np.random.default_rng(1)
    scales = np.array([0.0, 0.05, 0.09, 0.11, 1.0, 3.0])  # variances 0, .0025, .0081, .0121, 1, 9
    mu = rng.normal(size=(4000, 6)) * scales
    expected = int((mu.var(axis=0) > 0.01).sum())
    assert ev.active_units(torch.tensor(mu)) == expected == 3


# ---------------------------------------------------------------- the evaluate() record

def test_evaluate_metrics_against_direct_computation():
    data, model = fake_dataset(), TinyMLPVAE(z=2)
    n = 40
    metrics, arts = ev.evaluate(model, data, ev.EvalConfig(k=16, n_test=n, batch=16))
    x = ev.dequantize_blocks(data.test_images, n, ev.stream_generator(0, ev.STREAM_TEST_DEQ, "cpu"))
    with torch.no_grad():
        mu = model.encode(x)[0]
        mean = model.decode(mu).double().flatten(1).numpy()
    v = data.test_images[:n].flatten(1).double().numpy()
    assert metrics["recon_mse"] == pytest.approx(((v / 255 - mean) ** 2).mean(), rel=1e-12)
    u = stats.norm(mean, 0.2).cdf(x.flatten(1).double().numpy())
    assert metrics["coverage90"] == pytest.approx(((u >= 0.05) & (u <= 0.95)).mean(), abs=1e-12)
    np.testing.assert_array_equal(arts["pit_counts"], np.histogram(u, bins=20, range=(0, 1))[0])
    np.testing.assert_allclose(arts["latent_mu"], mu.numpy())
    np.testing.assert_array_equal(arts["latent_labels"], data.test_labels[:n].numpy())
    assert arts["data"].shape == arts["recon"].shape == (16, 1, 8, 8)
    assert arts["samples"].shape == arts["samples_std"].shape == (64, 1, 8, 8)
    assert metrics["bpd_deq"] == pytest.approx(ev.bpd_deq(metrics["ll_deq_nats"], 64))
    assert metrics["kl_nats"] > 0 and metrics["n_test"] == n and metrics["k"] == 16


class NaNBinsFamily(NormalFixedFamily):
    learned_scale = False

    def log_prob_bins(self, params, v):
        return torch.full(params.shape[:1], math.nan, dtype=params.dtype)


def test_family_without_discretized_likelihood_gets_null_and_a_note(tmp_path):
    data, model = fake_dataset(), TinyMLPVAE(family=NaNBinsFamily(0.2))
    metrics, arts = ev.evaluate(model, data, ev.EvalConfig(k=4, n_test=20, batch=10))
    assert metrics["ll_disc_nats"] is None and metrics["bpd_disc"] is None and "NaN" in metrics["ll_disc_note"]
    assert metrics["coverage90"] is None and "pit_counts" not in arts
    assert math.isfinite(metrics["ll_deq_nats"])
    write_json(tmp_path / "m.json", metrics)  # valid JSON: no NaN anywhere


class OverflowFamily(NormalFixedFamily):
    def log_density(self, params, x):
        return torch.full(params.shape[:1], math.inf, dtype=params.dtype)


def test_non_finite_numbers_become_null_with_a_note(tmp_path):
    data, model = fake_dataset(), TinyMLPVAE(family=OverflowFamily(0.2))
    metrics, _ = ev.evaluate(model, data, ev.EvalConfig(k=4, n_test=20, batch=10))
    assert metrics["elbo_nats"] is None and "not finite" in metrics["elbo_nats_note"]
    assert metrics["ll_deq_nats"] is None and "infinite for 20 of 20" in metrics["ll_deq_note"]
    assert math.isfinite(metrics["ll_disc_nats"])
    write_json(tmp_path / "m.json", metrics)


# ---------------------------------------------------------------- the CLI

CONTRACT_KEYS = {"ll_deq_nats", "ll_deq_se", "bpd_deq", "ll_disc_nats", "ll_disc_se", "bpd_disc", "elbo_nats",
                 "kl_nats", "recon_mse", "knn_acc", "active_units", "coverage90", "k", "n_test", "eval_seconds",
                 "device", "dataset", "loss", "latent_dim", "seed", "status", "train_seconds", "arch", "epochs",
                 "git_commit", "torch_version", "eval_seed", "chunk", "batch", "dequantize"}


@pytest.fixture
def run_dir(tmp_path, monkeypatch):
    """A trained-looking run of a small gaussian VAE on 8x8 fake data, with load_dataset pointed at that data."""
    data = fake_dataset()
    monkeypatch.setattr(ev, "load_dataset", lambda name, data_dir=None: data)
    run = tmp_path / "run"
    save_model(real_model("gaussian", side=8, dtype=torch.float32), run / "model.pt")
    write_json(run / "run.json", {"dataset": "fake", "loss": "gaussian", "latent_dim": 2, "seed": 3, "arch": "mlp",
                                  "hidden": 16, "epochs": 7, "status": "diverged", "train_seconds": 1.5,
                                  "dequantize": True, "family_options": {}, "dataset_sha256": data.sha256})
    return run


def test_cli_writes_the_contract_and_reruns_byte_identically(run_dir):
    out, arts = run_dir / "metrics.json", run_dir / "artifacts.npz"
    argv = ["evaluate", "--run", str(run_dir), "--k", "20", "--n-test", "40", "--batch", "16",
            "--out", str(out), "--artifacts", str(arts)]
    assert main(argv) == 0
    first = out.read_text()
    assert main(argv) == 0
    metrics = json.loads(out.read_text())
    strip = lambda text: [line for line in text.splitlines() if '"eval_seconds"' not in line]  # noqa: E731
    assert strip(out.read_text()) == strip(first)
    assert CONTRACT_KEYS <= metrics.keys()
    assert metrics["status"] == "diverged" and metrics["seed"] == 3 and metrics["eval_seed"] == 0  # still scored
    assert metrics["k"] == 20 and metrics["n_test"] == 40 and metrics["device"] == "cpu"
    assert metrics["compiled"] is False and metrics["family_dtype"] == "float32"
    assert math.isfinite(metrics["ll_disc_nats"]) and 0 <= metrics["coverage90"] <= 1
    with np.load(arts) as npz:
        assert {"data", "recon", "samples", "samples_std", "latent_mu", "latent_labels", "pit_counts",
                "pit_edges"} <= set(npz.files)
        assert npz["pit_counts"].sum() == 40 * 64 and npz["latent_mu"].shape == (40, 2)


@pytest.mark.parametrize("change, message", [
    (["--n-test", "100000"], "exceeds"),
    (["--k", "0"], "positive"),
    (["--run", "/nonexistent/run"], "does not exist"),
])
def test_cli_user_errors_are_one_line(run_dir, capsys, change, message):
    argv = ["evaluate", "--run", str(run_dir), "--out", str(run_dir / "m.json"), *change]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and not (run_dir / "m.json").exists()


def test_cli_refuses_a_dataset_that_differs_from_training(run_dir, capsys):
    record = json.loads((run_dir / "run.json").read_text())
    write_json(run_dir / "run.json", {**record, "dataset_sha256": "f" * 64})
    assert main(["evaluate", "--run", str(run_dir), "--out", str(run_dir / "m.json")]) == 2
    assert "differs" in capsys.readouterr().err
