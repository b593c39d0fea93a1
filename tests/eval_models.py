"""Small models and data for the evaluation tests (likelihood, posterior, the evaluate stage).

The linear-Gaussian VAE has a closed-form log p(x), posterior and ELBO, so the estimators can be
checked exactly; the others are small enough to evaluate in a fraction of a second.
"""

import math

import numpy as np
import torch
from scipy import stats
from torch import nn

from vaebench import likelihood as lk
from vaebench.catalog import FamilyEntry
from vaebench.data import ImageDataset
from vaebench.families import OutputFamily
from vaebench.models import ModelConfig, build_model
from vaebench.posterior import dequantize_blocks


class NormalFixedFamily(OutputFamily):
    """Test-only output family implementing the contract: Normal(mu, sigma), fixed sigma (unregistered)."""

    name, label, n_params, learned_scale, has_cdf = "test_normal", "normal (test)", 1, True, True
    entry = FamilyEntry(name, label, "#000000", "o", "per_pixel", has_cdf=True, real_line=True)

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

    def closed_form_elbo(self, x) -> tuple[np.ndarray, np.ndarray]:
        """E_q log p(x|z) - KL(q || N(0, I)) under this model's encoder, and the KL: ([B], [B])."""
        mu, logvar = self.encode(x)
        m, var = mu.detach().numpy(), np.exp(logvar.detach().numpy())
        W, b, s2 = self.W.detach().numpy(), self.b.detach().numpy(), self.sigma**2
        resid = x.flatten(1).double().numpy() - b - m @ W.T
        recon = -0.5 * W.shape[0] * np.log(2 * np.pi * s2) - (
            (resid**2).sum(1) + (var * (W**2).sum(0)).sum(1)
        ) / (2 * s2)
        kl = 0.5 * (m**2 + var - 1 - np.log(var)).sum(1)
        return recon - kl, kl


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
    return ImageDataset(
        "fake", imgs(n_train), labels(n_train), imgs(n_test), labels(n_test), "0" * 64, "test"
    )


def fake_images(n, side=4, seed=0):
    """n random 8-bit images with both edge bins, and their dequantization: (x, v)."""
    g = torch.Generator().manual_seed(seed)
    v = torch.randint(0, 256, (n, 1, side, side), generator=g, dtype=torch.uint8)
    v[0, 0, 0, :2] = torch.tensor([0, 255], dtype=torch.uint8)  # both edge bins
    x = dequantize_blocks(v, n, torch.Generator().manual_seed(seed + 1))
    return x, v


def real_model(family: str, side=4, z=2, seed=0, dtype=torch.float64):
    """A small models.VAE whose decoder output spreads over a useful range of parameters."""
    torch.manual_seed(seed)
    model = build_model(ModelConfig("mlp", 1, side, side, z, family, hidden=16)).to(dtype)
    with torch.no_grad():
        model.decoder[-1].bias.uniform_(-1.0, 1.5)
    return model


def estimate(model, x, v, k: int, seed: int, chunk: int | None = None, score=None):
    """importance_sampled_ll with the chunk resolved as the evaluate stage resolves it (chunk_for):
    (deq, disc)."""
    chunk = lk.chunk_for(model, chunk, k, x.shape[0], x[0].numel())
    est = lk.importance_sampled_ll(model, x, v, k, chunk, torch.Generator().manual_seed(seed), score)
    return est.deq, est.disc


def compiled_matches_eager(family: str, cache, ks_chunks) -> None:
    """Compiled in `cache`: identical numbers for every (K, chunk) of a K, the eager ones up to float32
    rounding."""
    torch._dynamo.reset()  # a fresh compile cache: every test's shapes count against torch's recompile limit
    model = real_model(family, side=8, dtype=torch.float32)
    x, v = fake_images(8, side=8)
    score = lk.family_scorer(model.family, compiled=True)
    assert score.fused
    for k, chunks in ks_chunks:
        with lk.compile_cache(cache):
            compiled = [estimate(model, x, v, k, seed=1, chunk=chunk, score=score) for chunk in chunks]
        for deq, disc in compiled[1:]:
            assert torch.equal(deq, compiled[0][0]) and torch.equal(disc, compiled[0][1])
        eager = estimate(model, x, v, k, seed=1, chunk=chunks[0])
        for ours, ref in zip(compiled[0], eager, strict=True):
            torch.testing.assert_close(ours, ref, rtol=1e-6, atol=2e-4)
