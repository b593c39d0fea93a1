"""Output families against independent references: scipy densities and CDFs, closed forms, quadrature."""

import functools
import itertools
import math

import mpmath
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import integrate, special, stats

from vaebench.catalog import FAMILY_IDS
from vaebench.errors import UnknownNameError, VaebenchError
from vaebench.families import FAMILIES, OPEN_INTERVAL_EPS, make_family
from vaebench.numerics import (
    LOG_NDTR_TAIL,
    _betacf,
    log1mexp,
    log_beta_function,
    log_ndtr,
    logit_moments,
)

LOG_BOUND = math.log(1e4)  # beta's log-concentration bound

# Natural parameters per family, including extreme ones (lambda for the Bernoullis, (loc, scale) for
# location-scale families, (alpha, beta) for beta).
CASES = {
    "continuous_bernoulli": [(1e-4,), (0.3,), (0.4999,), (0.5,), (0.5001,), (0.52,), (0.9999,)],
    "bernoulli": [(1e-4,), (0.5,), (0.8,)],
    "squared_error": [(0.3, 0.5**0.5), (1.2, 0.5**0.5)],
    "gaussian_fixed": [(0.3, 0.5**0.5), (0.5, 2e-3), (1.2, 0.05)],
    "gaussian": [(0.5, 1.0004e-3), (0.3, 0.02), (-0.2, 0.7), (1.1, 5.0)],
    "gaussian_shared": [(0.4, 0.0025), (0.5, 1.0)],
    "absolute_error": [(0.5, 1.0), (-0.1, 1.0)],
    "laplace_fixed": [(0.5, 1.0), (0.2, 0.01)],
    "laplace": [(0.5, 1.5e-3), (0.3, 0.05), (1.3, 2.0)],
    "logit_normal": [(0.0, 0.01), (-3.0, 0.5), (2.0, 1.5), (0.5, 6.0), (1.0, 30.0)],
    "logit_laplace": [(0.0, 0.01), (-3.0, 0.5), (2.0, 1.5), (0.5, 6.0), (1.0, 30.0)],
    "beta": [(0.3, 0.6), (0.5, 0.5), (2.0, 5.0), (50.0, 20.0), (1500.0, 2000.0), (0.2, 300.0), (5000.0, 3.0)],
    "discretized_logistic": [(0.5, 1.5e-4), (0.3, 0.01), (-0.1, 0.05), (1.05, 0.3), (0.5, 30.0)],
}
ALL = [(name, nat) for name, cases in CASES.items() for nat in cases]
IDS = [f"{name}-{'-'.join(f'{p:g}' for p in nat)}" for name, nat in ALL]
FIXED = {"squared_error", "gaussian_fixed", "absolute_error", "laplace_fixed"}  # loc only; scale not learned
REAL_LINE = FIXED | {"gaussian", "gaussian_shared", "laplace"}
LOGIT = {"logit_normal", "logit_laplace"}
CB_LIKE = {"continuous_bernoulli", "bernoulli"}


def inv_softplus(y):
    return y + math.log(-math.expm1(-y))


def build(name, nat, dtype=torch.float64):
    """(family, raw params [1, P, 1, 1, 1]) whose natural parameters are `nat`."""
    options = {"gaussian_fixed": {"sigma": nat[-1]}, "laplace_fixed": {"b": nat[-1]}}.get(name, {})
    family = make_family(name, **options).to(dtype)
    if name in CB_LIKE:
        raw = [special.logit(nat[0])]
    elif name in FIXED:
        raw = [nat[0]]
    elif name == "gaussian_shared":
        raw = [nat[0]]
        with torch.no_grad():  # invert log sigma = -6 + softplus(p + 6)
            family.log_sigma.fill_(-6 + inv_softplus(math.log(nat[1]) + 6))
    elif name == "beta":
        raw = [LOG_BOUND * math.atanh(math.log(c) / LOG_BOUND) for c in nat]
    else:
        raw = [nat[0], inv_softplus(nat[1] - family.scale_floor)]
    return family.requires_grad_(False), torch.tensor(raw, dtype=dtype).view(1, -1, 1, 1, 1)


def expand(params, n):
    return params.expand(n, -1, -1, -1, -1)


class Reference:
    """scipy / closed-form log-density, CDF and survival function of one case, vectorised over x."""

    def __init__(self, name, nat):
        self.name = name
        if name in CB_LIKE:
            lam = nat[0]
            c = 2.0 if lam == 0.5 else 2 * math.atanh(1 - 2 * lam) / (1 - 2 * lam)
            power = lambda x: lam**x * (1 - lam) ** (1 - x)  # noqa: E731
            self.logpdf = lambda x: math.log(c) + x * math.log(lam) + (1 - x) * math.log1p(-lam)
            self.cdf = (lambda x: x) if lam == 0.5 else (lambda x: (power(x) + lam - 1) / (2 * lam - 1))
            self.sf = (lambda x: 1 - x) if lam == 0.5 else (lambda x: (lam - power(x)) / (2 * lam - 1))
            return
        if name == "beta":
            dist = stats.beta(*nat)
            self.logpdf, self.cdf, self.sf = dist.logpdf, dist.cdf, dist.sf
            return
        loc, scale = nat
        base = {
            "laplace": stats.laplace,
            "absolute_error": stats.laplace,
            "discretized_logistic": stats.logistic,
        }
        noise = base.get(name.removeprefix("logit_").removesuffix("_fixed"), stats.norm)(loc, scale)
        if name in LOGIT:
            self.logpdf = lambda x: noise.logpdf(special.logit(x)) - np.log(x) - np.log1p(-x)
            self.cdf = lambda x: noise.cdf(special.logit(x))
            self.sf = lambda x: noise.sf(special.logit(x))
        else:
            self.logpdf, self.cdf, self.sf = noise.logpdf, noise.cdf, noise.sf

    def bin_probs(self):
        """P(bin v), v = 0..255, from CDF differences (survival differences in the upper half)."""
        v = np.arange(256.0)
        lo, hi = v / 256, (v + 1) / 256
        if self.name in REAL_LINE or self.name == "discretized_logistic":
            lo[0], hi[-1] = -np.inf, np.inf
        return np.where(self.cdf(lo) > 0.5, self.sf(lo) - self.sf(hi), self.cdf(hi) - self.cdf(lo))


def density(family, params):
    """Scalar density x -> p(x) of a one-pixel case, for scipy.integrate.quad."""

    def p(x):
        return math.exp(
            family.log_density(params, torch.tensor(x, dtype=params.dtype).view(1, 1, 1, 1)).item()
        )

    return p


def integral(name, nat, family, params, g, lower=None, upper=None):
    """int g(x) p(x) dx over the support, or between `lower` and `upper`, by adaptive quadrature split at
    breakpoints. Logit families are integrated in logit space; discretized_logistic's density is piecewise
    constant, so it is summed bin by bin after checking it is constant in each bin."""
    if name == "discretized_logistic":
        v = torch.arange(256.0)
        x = ((v[:, None] + torch.tensor([0.01, 0.5, 0.99])) / 256).reshape(-1, 1, 1, 1).double()
        dens = family.log_density(expand(params, len(x)), x).exp().view(256, 3).numpy()
        np.testing.assert_allclose(dens, dens[:, 1:2].repeat(3, 1), rtol=1e-12)
        mass_below = np.concatenate([[0.0], np.cumsum(dens[:, 1] / 256)])  # mass below each bin edge

        def below(t):
            k = min(int(t * 256), 255)
            return mass_below[k] + (t * 256 - k) * dens[k, 1] / 256

        return below(1.0 if upper is None else upper) - below(0.0 if lower is None else lower)
    if name in LOGIT:
        return logit_integral(name, nat, g, lower, upper)
    p = density(family, params)
    if name in REAL_LINE:
        loc, scale = nat
        start, stop, inner = -np.inf, np.inf, [loc + k * scale for k in (-40, -8, -2, 0, 2, 8, 40)]
    elif name == "beta":
        a, b = nat
        mode = min(max((a - 1) / (a + b - 2), 1e-6), 1 - 1e-6)
        sd = math.sqrt(a * b / ((a + b) ** 2 * (a + b + 1)))
        start, stop, inner = 0.0, 1.0, [mode + k * sd for k in (-8, -2, 0, 2, 8)] + [1e-9, 1e-6, 1e-3, 0.5]
    else:
        start, stop, inner = 0.0, 1.0, [0.5]
    start = start if lower is None else lower
    stop = stop if upper is None else upper
    return piecewise_quad(lambda x: g(x) * p(x), start, stop, inner)


def piecewise_quad(f, start, stop, breakpoints):
    edges = [start] + sorted(t for t in set(breakpoints) if start < t < stop) + [stop]
    return sum(
        integrate.quad(f, a, b, limit=200, epsabs=1e-13, epsrel=1e-10)[0]
        for a, b in itertools.pairwise(edges)
    )


def logit_integral(name, nat, g, lower, upper):
    """Logit families in logit space y, x = sigmoid(y), dx = x(1 - x) dy. x near 1 is not resolved in
    float64, so the part with y > 0 is integrated as its mirror image over y < 0 (1 - X is the same
    family with loc -> -loc)."""
    loc, scale = nat

    def half(loc, h, start, stop):  # int h(x) p(x) dx over y in [start, stop], stop <= 0
        family, params = build(name, (loc, scale))
        p = density(family, params)
        f = lambda y: h(special.expit(y)) * p(special.expit(y)) * special.expit(y) * special.expit(-y)  # noqa: E731
        start = max(start, min(loc - 60 * scale, -30.0))
        return piecewise_quad(f, start, stop, [loc + k * scale for k in (-8, -2, 0, 2, 8)])

    y_lo = -np.inf if lower is None else special.logit(lower)
    y_hi = np.inf if upper is None else special.logit(upper)
    total = half(loc, g, y_lo, min(y_hi, 0.0)) if y_lo < 0 else 0.0
    if y_hi > 0:
        total += half(-loc, lambda x: g(1 - x), -y_hi, -max(y_lo, 0.0))
    return total


# ---------------------------------------------------------------------------------------- registry


def test_registry_has_a_class_and_a_test_case_for_every_catalog_family():
    assert set(FAMILIES) == set(FAMILY_IDS) == set(CASES)
    for name, cls in FAMILIES.items():
        assert cls.name == name and cls.n_params in (1, 2) and isinstance(cls.label, str)
        assert cls.has_cdf


def test_make_family_typo_suggests_the_right_name():
    with pytest.raises(UnknownNameError, match="did you mean 'continuous_bernoulli'"):
        make_family("contnuous_bernoulli")


def test_options_are_picked_per_family_and_none_means_default():
    cli_options = {"sigma": 0.2, "b": None}  # as train.py passes --sigma / --laplace-b
    assert make_family("gaussian_fixed", **cli_options).options == {"sigma": 0.2}
    assert make_family("laplace_fixed", **cli_options).options == {"b": 1.0}
    assert make_family("laplace_fixed", sigma=0.2, b=0.3).options == {"b": 0.3}
    assert make_family("gaussian", **cli_options).options == {}
    assert make_family("gaussian_fixed").options == {"sigma": 0.5**0.5}
    with pytest.raises(VaebenchError, match="sigma"):
        make_family("gaussian_fixed", sigma=-1.0)
    # the literal losses are constants: the options that tune their rivals leave them alone
    assert make_family("squared_error", **cli_options).options == {"sigma": 0.5**0.5}
    assert make_family("absolute_error", sigma=0.2, b=0.3).options == {"b": 1.0}


def test_fixed_scales_give_summed_squared_and_absolute_error():
    mu = torch.rand(3, 1, 1, 4, 4, dtype=torch.float64)
    x = torch.rand(3, 1, 4, 4, dtype=torch.float64)
    d = 16
    sq = ((x - mu[:, 0]) ** 2).flatten(1).sum(1)
    ab = (x - mu[:, 0]).abs().flatten(1).sum(1)
    for name in ("squared_error", "gaussian_fixed"):  # gaussian_fixed untuned is the squared error too
        torch.testing.assert_close(-make_family(name).log_density(mu, x), sq + d / 2 * math.log(math.pi))
    for name in ("absolute_error", "laplace_fixed"):
        torch.testing.assert_close(-make_family(name).log_density(mu, x), ab + d * math.log(2))


# ------------------------------------------------------------------------ densities and bins per case


@pytest.mark.parametrize("name,nat", ALL, ids=IDS)
def test_log_density_matches_reference(name, nat):
    family, params = build(name, nat)
    x = np.concatenate([[1e-6, 2e-3], np.linspace(0.01, 0.99, 41), [0.998, 1 - 1e-6]])
    ours = family.log_density(expand(params, len(x)), torch.tensor(x).view(-1, 1, 1, 1)).numpy()
    ref = Reference(name, nat)
    if name == "discretized_logistic":
        with np.errstate(divide="ignore"):  # bins that underflow in scipy are skipped below
            expected = np.log(ref.bin_probs()[np.floor(256 * x).astype(int)]) + math.log(256)
    else:
        expected = ref.logpdf(x)
    ok = expected > -1e300
    np.testing.assert_allclose(ours[ok], expected[ok], rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name,nat", ALL, ids=IDS)
def test_density_integrates_to_one(name, nat):
    family, params = build(name, nat)
    assert integral(name, nat, family, params, lambda x: 1.0) == pytest.approx(1.0, abs=1e-8)


@pytest.mark.parametrize("name,nat", ALL, ids=IDS)
def test_log_prob_bins_match_scipy_cdf_differences(name, nat):
    family, params = build(name, nat)
    v = torch.arange(256.0).view(-1, 1, 1, 1)
    ours = family.log_prob_bins(expand(params, 256), v).numpy()
    ref = Reference(name, nat).bin_probs()
    assert special.logsumexp(ours) == pytest.approx(0.0, abs=1e-10)  # all 256 bins: probability 1
    ok = ref > 1e-280
    assert ok.sum() >= 2
    np.testing.assert_allclose(ours[ok], np.log(ref[ok]), rtol=1e-8, atol=1e-9)
    assert np.isfinite(ours).all() and (ours[~ok] < -600).all()


@pytest.mark.parametrize("name,nat", ALL, ids=IDS)
def test_cdf_matches_integral_of_density(name, nat):
    family, params = build(name, nat)
    points = [1e-3, 0.37, 0.81, 0.999]
    ours = family.cdf(
        expand(params, len(points)), torch.tensor(points, dtype=torch.float64).view(-1, 1, 1, 1)
    )
    increments = np.diff(ours.flatten().numpy(), prepend=0.0)  # F(x_1), F(x_2) - F(x_1), ...
    for lower, upper, step in zip([None] + points[:-1], points, increments, strict=True):
        assert step == pytest.approx(
            integral(name, nat, family, params, lambda t: 1.0, lower, upper), abs=2e-8
        ), upper


@pytest.mark.parametrize("name,nat", ALL, ids=IDS)
def test_mean_and_std_match_quadrature(name, nat):
    family, params = build(name, nat)
    mean = family.mean(params).item()
    std = family.std(params)
    if name == "discretized_logistic":  # moments of v/255, v ~ P(bin)
        probs, v = Reference(name, nat).bin_probs(), np.arange(256) / 255
        expected_mean = (probs * v).sum()
        expected_std = math.sqrt((probs * (v - expected_mean) ** 2).sum())
    elif name == "bernoulli":  # what BCE fits, not the CB mean
        expected_mean, expected_std = nat[0], None
    else:
        expected_mean = integral(name, nat, family, params, lambda x: x)
        expected_std = math.sqrt(integral(name, nat, family, params, lambda x: (x - expected_mean) ** 2))
    assert mean == pytest.approx(expected_mean, rel=1e-9, abs=1e-10)
    if not family.learned_scale:
        assert std is None
    else:
        assert std.item() == pytest.approx(expected_std, rel=1e-7, abs=1e-10)


@pytest.mark.parametrize("name", ["logit_normal", "logit_laplace"])
def test_logit_space_mean_is_within_1e_9_over_a_grid_of_loc_and_scale(name):
    """The quadrature's node count (_NODES_PER_PANEL) is set by this bound: every mean image pixel within
    1e-9 of an adaptive quadrature, across the locations and scales a decoder emits."""
    grid = list(
        itertools.product([-20.0, -8.0, -1.0, 0.0, 0.5, 6.0, 15.0], [1e-3, 0.05, 0.5, 2.0, 12.0, 30.0])
    )
    family = make_family(name).to(torch.float64)
    noise = family.noise.distribution
    loc = torch.tensor([loc for loc, _ in grid], dtype=torch.float64)
    scale = torch.tensor([scale for _, scale in grid], dtype=torch.float64)
    ours = logit_moments(noise, loc, scale)[0].numpy()
    pdf = stats.norm.pdf if name == "logit_normal" else stats.laplace.pdf
    for (loc, scale), mean in zip(grid, ours, strict=True):
        breaks = [loc + k * scale for k in (-40, -10, -3, -1, 1, 3, 10, 40)] + [loc, 0.0]
        expected = piecewise_quad(
            lambda y, loc=loc, scale=scale: special.expit(y) * pdf(y, loc, scale),
            loc - 40 * scale,
            loc + 40 * scale,
            breaks,
        )
        assert mean == pytest.approx(expected, rel=0, abs=1e-9), (loc, scale)


# ---------------------------------------------------------------------------- training objective


@pytest.mark.parametrize("name", sorted(CASES))
def test_train_loss_is_the_documented_objective(name):
    generator = torch.Generator().manual_seed(0)
    family = make_family(name)
    params = torch.randn(4, family.n_params, 2, 3, 3, generator=generator, dtype=torch.float64)
    v = torch.randint(0, 256, (4, 2, 3, 3), generator=generator)
    x = (v + torch.rand(v.shape, generator=generator, dtype=torch.float64)) / 256
    loss = family.train_loss(params, x, v)
    assert loss.shape == (4,)
    if name == "bernoulli":
        bce = F.binary_cross_entropy_with_logits(params[:, 0], x, reduction="none").flatten(1).sum(1)
        torch.testing.assert_close(loss, bce)
    elif name == "discretized_logistic":
        torch.testing.assert_close(loss, -family.log_prob_bins(params, v))
        torch.testing.assert_close(family.log_density(params, x), -loss + 18 * math.log(256))
    else:
        torch.testing.assert_close(loss, -family.log_density(params, x))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", sorted(CASES))
def test_gradients_are_finite_at_extreme_parameters(name, dtype):
    family = make_family(name)
    if name == "gaussian_shared":
        with torch.no_grad():
            family.log_sigma.fill_(-30.0)
    grid = torch.tensor([-30.0, 0.0, 30.0], dtype=dtype)
    raw = torch.cartesian_prod(*[grid] * family.n_params).view(-1, family.n_params)  # [G, P]
    x = torch.tensor([0.0, 2.0**-30, 0.5, 1 - 2.0**-24, 1.0], dtype=dtype)
    v = torch.tensor([0, 0, 128, 255, 255])
    params = raw[:, :, None].expand(-1, -1, len(x)).reshape(len(raw), family.n_params, 1, 1, len(x))
    params = params.clone().requires_grad_(True)
    loss = family.train_loss(params, x.expand(len(raw), 1, 1, -1), v.expand(len(raw), 1, 1, -1))
    loss.sum().backward()
    assert torch.isfinite(loss).all() and torch.isfinite(params.grad).all()
    assert loss.dtype == torch.float64  # per-pixel math in `dtype`, the per-image sum in float64


def test_gaussian_shared_sigma_is_the_batch_optimum_in_training_and_kept_for_evaluation():
    family = make_family("gaussian_shared")
    assert [n for n, _ in family.named_parameters()] == ["log_sigma"]
    assert "log_sigma" in family.state_dict()
    params, x = torch.rand(2, 1, 1, 4, 4, dtype=torch.float64), torch.rand(2, 1, 4, 4, dtype=torch.float64)
    family.train_loss(params, x, None)
    rmse = np.sqrt(np.mean((x.numpy() - params[:, 0].numpy()) ** 2))
    assert family.std(params).mean().item() == pytest.approx(rmse, rel=1e-6)
    # the optimum: no other sigma gives this batch a higher likelihood
    best = family.log_density(params, x).sum().item()
    for factor in (0.9, 1.1):
        other = stats.norm(params[:, 0].numpy(), rmse * factor).logpdf(x.numpy()).sum()
        assert other < best
    family.eval()
    family.train_loss(params, x + 0.3, None)  # evaluation never moves sigma
    assert family.std(params).mean().item() == pytest.approx(rmse, rel=1e-6)
    with torch.no_grad():
        family.log_sigma.fill_(-50.0)  # soft clip at log sigma = -6
    assert family.std(params).min().item() == pytest.approx(math.exp(-6), rel=1e-6)


@pytest.mark.parametrize("name", sorted(CASES))
def test_hot_path_runs_on_meta_device_without_host_sync(name):
    """Meta tensors have no data: any .item(), host copy or CPU-only tensor in the hot path raises here."""
    family = make_family(name).to("meta")
    params = torch.empty(2, family.n_params, 1, 4, 4, device="meta")
    x = torch.empty(2, 1, 4, 4, device="meta")
    v = torch.empty(2, 1, 4, 4, dtype=torch.uint8, device="meta")
    assert family.log_density(params, x).shape == (2,)
    assert family.train_loss(params, x, v).shape == (2,)


@pytest.mark.parametrize("name", ["logit_normal", "logit_laplace", "beta"])
def test_open_interval_families_move_only_the_endpoints(name):
    """x = 0 and 1 (v/255 data) are read at eps and 1 - eps; points inside (0, 1) are left alone."""
    family = make_family(name)
    params = torch.tensor([[0.3, -0.5]], dtype=torch.float64).view(1, 2, 1, 1, 1).expand(4, -1, -1, -1, -1)
    eps = OPEN_INTERVAL_EPS
    at = lambda *x: family.log_density(params, torch.tensor(x, dtype=torch.float64).view(-1, 1, 1, 1))  # noqa: E731
    torch.testing.assert_close(at(0.0, 1.0, 1e-12, 1 - 1e-12), at(eps, 1 - eps, 1e-12, 1 - 1e-12))
    assert (at(1e-12, 1 - 1e-12, 0.5, 0.5)[:2] != at(eps, 1 - eps, 0.5, 0.5)[:2]).all()


def test_parameterisations_stay_bounded():
    raw = torch.tensor([-1e4, -30.0, 0.0, 30.0, 1e4], dtype=torch.float64)
    a, b = make_family("beta").concentrations(torch.stack([raw, raw], 1))
    assert (a > 0.99e-4).all() and (a < 1.01e4).all() and a[2].item() == 1.0
    params = torch.stack([raw, raw], 1)[..., None, None, None]
    assert make_family("gaussian").loc_scale(params)[1].min() >= 1e-3
    assert make_family("discretized_logistic").loc_scale(params)[1].min() >= 1e-4


# ---------------------------------------------------------------- continuous Bernoulli departures


def test_continuous_bernoulli_matches_torch_and_the_logit_form():
    lam = torch.tensor([0.01, 0.2, 0.4995, 0.5, 0.5005, 0.7, 0.99], dtype=torch.float64)
    eta = special.logit(lam.numpy())[:, None]
    x = torch.linspace(0.001, 0.999, 9, dtype=torch.float64)
    family = make_family("continuous_bernoulli")
    params = torch.tensor(eta).view(-1, 1, 1, 1, 1).expand(-1, 1, 1, 1, len(x))
    ours = family.log_density(params.reshape(-1, 1, 1, 1, 1), x.repeat(len(lam)).view(-1, 1, 1, 1))
    torch_cb = torch.distributions.ContinuousBernoulli(probs=lam[:, None]).log_prob(x)
    torch.testing.assert_close(ours.view(len(lam), -1), torch_cb, rtol=1e-9, atol=1e-9)
    xs, safe = x.numpy(), np.where(eta == 0, 1.0, eta)
    logit_form = (
        xs * eta - np.logaddexp(0, eta) + np.where(eta == 0, math.log(2), np.log(safe / np.tanh(safe / 2)))
    )
    np.testing.assert_allclose(ours.view(len(lam), -1).numpy(), logit_form, rtol=1e-9, atol=1e-9)
    torch_mean = torch.distributions.ContinuousBernoulli(probs=lam).mean
    torch.testing.assert_close(family.mean(torch.tensor(eta).view(-1, 1, 1, 1, 1)).flatten(), torch_mean)


def test_continuous_bernoulli_saturated_pixels_do_not_depend_on_dtype():
    """torch clamps probs by the dtype's eps, so its CB disagrees between float32 and float64 here."""
    family = make_family("continuous_bernoulli")
    logits = torch.tensor([-20.0, -15.0, 15.0, 20.0]).view(-1, 1, 1, 1, 1)
    x = torch.full((4, 1, 1, 1), 0.3, dtype=torch.float64)
    low = family.log_density(logits, x.float())
    high = family.log_density(logits.double(), x)
    torch.testing.assert_close(low.double(), high, rtol=1e-6, atol=1e-5)
    lam = special.expit(logits.double().flatten().numpy())
    c = 2 * np.arctanh(1 - 2 * lam) / (1 - 2 * lam)
    # the float64 closed form itself loses ~8 digits here (1 - 2 lambda rounds near 1): loose tolerance
    np.testing.assert_allclose(high.numpy(), np.log(c) + 0.3 * np.log(lam) + 0.7 * np.log1p(-lam), rtol=1e-8)


def test_discretized_logistic_columns_agree():
    family = make_family("discretized_logistic")
    generator = torch.Generator().manual_seed(1)
    params = torch.randn(3, 2, 1, 5, 5, generator=generator, dtype=torch.float64)
    v = torch.randint(0, 256, (3, 1, 5, 5), generator=generator)
    x = (v + torch.rand(v.shape, generator=generator, dtype=torch.float64)) / 256
    torch.testing.assert_close(
        family.log_density(params, x), family.log_prob_bins(params, v) + 25 * math.log(256)
    )


# --------------------------------------------------------------------- evaluation's shared hot path


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_log_likelihoods_equal_the_two_separate_calls(name):
    """log_likelihoods may share work between the columns (CB, discretized logistic) but not change them."""
    family = make_family(name).to(torch.float64)
    generator = torch.Generator().manual_seed(3)
    params = torch.randn(4, family.n_params, 1, 6, 6, generator=generator, dtype=torch.float64) * 3
    v = torch.randint(0, 256, (4, 1, 6, 6), generator=generator)
    v[0, 0, 0, :2] = torch.tensor([0, 255])
    x = (v + torch.rand(v.shape, generator=generator, dtype=torch.float64)) / 256
    deq, disc = family.log_likelihoods(params, x, v)
    torch.testing.assert_close(deq, family.log_density(params, x), rtol=1e-12, atol=1e-10)
    torch.testing.assert_close(disc, family.log_prob_bins(params, v), rtol=1e-12, atol=1e-10)


def test_log_ndtr_matches_scipy_and_its_gradient_is_the_mills_ratio():
    """Relative accuracy below 0 (tail series below -12), absolute above (where log Phi is about -Phi(-z))."""
    z = np.concatenate(
        [-np.logspace(-8, 6, 2000), [0.0, -12.0, LOG_NDTR_TAIL * (1 + 1e-12)], np.logspace(-8, 2, 500)]
    )
    ours = log_ndtr(torch.tensor(z)).numpy()
    ref = special.log_ndtr(z)
    below = z < 0
    np.testing.assert_allclose(ours[below], ref[below], rtol=2e-15)
    np.testing.assert_allclose(ours[~below], ref[~below], rtol=0, atol=5e-16)
    z32 = torch.tensor(z[np.abs(z) < 1e3], dtype=torch.float32)  # beyond, z^2 itself rounds in float32
    np.testing.assert_allclose(
        log_ndtr(z32).double().numpy(), special.log_ndtr(z32.double().numpy()), rtol=3e-7, atol=2e-7
    )
    at = torch.tensor(
        [-1e4, -40.0, -12.01, -11.99, -1.0, 0.0, 5.0, 30.0, 50.0], dtype=torch.float64, requires_grad=True
    )
    log_ndtr(at).sum().backward()
    zz = at.detach().numpy()
    np.testing.assert_allclose(
        at.grad.numpy(), np.exp(stats.norm.logpdf(zz) - special.log_ndtr(zz)), rtol=1e-7
    )


def test_log1mexp_is_relatively_accurate_near_zero_and_absolutely_elsewhere():
    t = -np.logspace(-300, 3, 3000)
    ours = log1mexp(torch.tensor(t)).numpy()
    ref = np.log(-np.expm1(t))
    near = t > -math.log(2)
    np.testing.assert_allclose(ours[near], ref[near], rtol=1e-15)
    np.testing.assert_allclose(ours[~near], ref[~near], rtol=0, atol=2.3e-16)
    t = torch.tensor([-math.inf, -50.0, -1e-3], dtype=torch.float64, requires_grad=True)
    log1mexp(t).sum().backward()
    assert torch.isfinite(t.grad).all()


# ---------------------------------------------------------------- Beta: the incomplete beta against mpmath

BETA_EXTREMES = [
    (3000.0, 3000.0),
    (9999.99, 1e-4),
    (1e-4, 9999.99),
    (9999.99, 9999.99),
    (1e-4, 1e-4),
    (1e-4, 1.0),
    (0.5, 200.0),
]


@functools.lru_cache
def _mp_log_beta(p, q):
    with mpmath.workdps(450):  # every working precision mp_log_tails raises to
        return mpmath.log(mpmath.beta(p, q))


def mp_log_tails(a: float, b: float, x: float) -> tuple:
    """(log F(x), log S(x)) of Beta(a, b) to 50 significant digits, from the positive series
    I_y(p, q) = y^p (1-y)^q / (p B(p, q)) sum_n prod_j<n (p+q+j) y / (p+1+j) on the side with fewer terms and
    the other tail by complement, the working precision raised by the digits the complement loses. Tails
    below e^-760 come back as -inf (no bin with log P > -700 depends on them)."""
    log_pref = a * math.log(x) + b * math.log1p(-x) - special.betaln(a, b)  # a few nats from the smaller tail
    small_lower = x * (a + b) < a  # below the mean the lower tail is the smaller one
    if log_pref < -760:
        return (-math.inf, 0.0) if small_lower else (0.0, -math.inf)

    def terms(p, q, y):
        return max(0.0, ((p + q) * y - p - 1) / (1 - y)) + 200 / -math.log(y)

    lower = terms(a, b, x) <= terms(b, a, 1 - x)
    p, q, y = (a, b, x) if lower else (b, a, 1 - x)
    lost = 0 if lower == small_lower else math.ceil(-log_pref / math.log(10))
    with mpmath.workdps(60 + lost):
        mp, mq, my = mpmath.mpf(p), mpmath.mpf(q), mpmath.mpf(y)
        tiny = mpmath.mpf(10) ** -(mpmath.mp.dps + 5)
        term, total, n = mpmath.mpf(1), mpmath.mpf(0), 0
        while term > tiny * total or (mp + mq + n) * my >= mp + 1 + n:
            total += term
            term *= (mp + mq + n) * my / (mp + 1 + n)
            n += 1
        log_tail = mp * mpmath.log(my) + mq * mpmath.log1p(-my) - mpmath.log(mp) - _mp_log_beta(p, q)
        log_tail += mpmath.log(total)
        log_other = mpmath.log(-mpmath.expm1(log_tail))
    return (log_tail, log_other) if lower else (log_other, log_tail)


def mp_log_bins(a: float, b: float) -> np.ndarray:
    """log P(bin v), v = 0..255, the difference of the smaller tail at the bin's edges, from mp_log_tails."""
    tails = [mp_log_tails(a, b, k / 256) for k in range(1, 256)]
    out = [tails[0][0]]
    for (f_lo, s_lo), (f_hi, s_hi) in zip(tails, tails[1:], strict=False):
        big, small = (s_lo, s_hi) if s_lo < f_hi else (f_hi, f_lo)
        with mpmath.workdps(80):
            out.append(big + mpmath.log(-mpmath.expm1(small - big)) if small > -math.inf else big)
    return np.array([float(t) for t in out + [tails[-1][1]]])


def beta_params(a: float, b: float, n: int, dtype=torch.float64) -> torch.Tensor:
    raw = [LOG_BOUND * math.atanh(math.log(c) / LOG_BOUND) for c in (a, b)]
    return torch.tensor(raw, dtype=dtype).view(1, 2, 1, 1, 1).expand(n, -1, -1, -1, -1)


def test_log_beta_function_matches_mpmath_to_the_size_of_its_terms():
    values = [1e-4, 3e-4, 0.01, 0.5, 1.0, 7.5, 8.0, 10.0, 100.0, 3000.0, 9999.99]
    a, b = (torch.tensor(t.ravel(), dtype=torch.float64) for t in np.meshgrid(values, values))
    ref = np.array(
        [float(mpmath.log(mpmath.beta(x, y))) for x, y in zip(a.tolist(), b.tolist(), strict=True)]
    )
    err = np.abs(log_beta_function(a, b).numpy() - ref)
    assert (err <= 5e-15 * (np.abs(ref) + a.numpy() + b.numpy())).all(), err.max()  # about 20 eps


@pytest.mark.parametrize("a,b", BETA_EXTREMES, ids=[f"{a:g}-{b:g}" for a, b in BETA_EXTREMES])
def test_beta_bins_match_mpmath_at_extreme_concentrations(a, b):
    """Float64, as the tests' models and float64 decoders run: every bin with log P > -700 within 1e-8 of a
    50-digit reference; the others are finite and below -600."""
    family = make_family("beta")
    ours = family.log_prob_bins(beta_params(a, b, 256), torch.arange(256).view(256, 1, 1, 1)).numpy()
    ref = mp_log_bins(*(c.item() for c in family.concentrations(beta_params(a, b, 1))))
    ok = ref > -700
    np.testing.assert_allclose(ours[ok], ref[ok], rtol=0, atol=1e-8)
    assert np.isfinite(ours).all() and (ours[~ok] < -600).all()


def test_beta_continued_fraction_is_deep_enough_at_its_slowest_point():
    """a = b = 1e4 (the family's bound), x = 1/2: T = p / sum_n ..., from the series at 50 digits. Float64
    throughout: a few eps; float32 deep levels (evaluation of a float32 decoder): float32 rounding."""
    p, y = 1e4, 0.5
    with mpmath.workdps(50):
        term, total, n = mpmath.mpf(1), mpmath.mpf(0), 0
        while term > mpmath.mpf(10) ** -55 * total:
            total += term
            term *= (2 * p + n) * y / (p + 1 + n)
            n += 1
        ref = float(p / total)
    t = torch.tensor([p], dtype=torch.float64)
    half = torch.tensor([y], dtype=torch.float64)
    for dtype, tolerance in ((torch.float64, 4e-16), (torch.float32, 1e-7)):
        ours = _betacf(t, t, half, half, t - 2 * t * half, dtype).item()
        assert ours == pytest.approx(ref, rel=tolerance, abs=0), dtype


@pytest.mark.parametrize("a,b", BETA_EXTREMES, ids=[f"{a:g}-{b:g}" for a, b in BETA_EXTREMES])
def test_beta_float32_decoder_outputs_score_as_float64(a, b):
    """A float32 decoder's outputs are scored with float64 concentrations, normaliser and densities, and only
    the continued fraction's deep levels in float32: the density column equals float64 math, each bin within
    3e-7 nats of it (about 0.2 nats per image of 784 pixels at most, far less in practice)."""
    family = make_family("beta")
    params32 = beta_params(a, b, 256, torch.float32)
    v = torch.arange(256).view(256, 1, 1, 1)
    x = (v + torch.rand(v.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)) / 256
    deq32, disc32 = family.log_likelihoods(params32, x.float(), v)
    deq64, disc64 = family.log_likelihoods(params32.double(), x.float().double(), v)
    torch.testing.assert_close(deq32, deq64, rtol=0, atol=0)
    ok = disc64 > -700
    torch.testing.assert_close(disc32[ok], disc64[ok], rtol=0, atol=3e-7)


def test_beta_evaluation_math_runs_on_meta_device_without_host_sync():
    """No .item(), no boolean-mask indexing: static shapes, which torch.compile needs."""
    family = make_family("beta").to("meta")
    params = torch.empty(2, 2, 1, 4, 4, device="meta")
    x = torch.empty(2, 1, 4, 4, device="meta")
    v = torch.empty(2, 1, 4, 4, dtype=torch.uint8, device="meta")
    deq, disc = family.log_likelihoods(params, x, v)
    assert deq.shape == disc.shape == (2,)
    assert family.cdf(params, x).shape == (2, 1, 4, 4)
