"""The registry of output families p(x | z): one small class per family, one decorator line each.

Every number follows ../shared/likelihood-spec.md: `log_density` is a proper density on (0, 1)
(or on the real line), `log_prob_bins` is the probability of the 8-bit bin [v/256, (v+1)/256],
with real-line families' edge bins extended to -inf / +inf. All math runs in the dtype and on the
device of `params` ([B, n_params, C, H, W]); `log_density` and `train_loss` never sync with the host.
"""

import math
from dataclasses import dataclass
from typing import Callable, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import (Beta as TorchBeta, Distribution, Laplace, Normal,
                                 SigmoidTransform, TransformedDistribution)

from vaebench import catalog
from vaebench.errors import VaebenchError, unknown_name

N_BINS = 256
BIN_WIDTH = 1.0 / N_BINS
LOG_N_BINS = math.log(N_BINS)
# Logit-space families and beta need x in the open interval: x = 0 and x = 1 (only `dequantize: false`
# data, v/255, has them) are moved to eps and 1 - eps (1 - 2^-24 is the largest float32 below 1); the
# spec marks those likelihoods as not comparable. Data strictly inside (0, 1) is never touched, so the
# density stays normalised.
OPEN_INTERVAL_EPS = 2.0 ** -24
LN2 = math.log(2.0)
SQRT_HALF = math.sqrt(0.5)
HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)
LOG_NDTR_TAIL = -12.0  # below: log_ndtr's asymptotic series (erfc underflows in float32 near -13)
# (-1)^k (2k-1)!!, k = 1..10: Phi(z) = phi(z)/(-z) (1 + sum_k c_k z^-2k) as z -> -inf; at z <= -12 the
# first omitted term is below 1e-13
_MILLS_SERIES = tuple((-1) ** k * math.prod(range(1, 2 * k, 2)) for k in range(1, 11))


def per_image(t: Tensor) -> Tensor:
    """[B, C, H, W] -> [B] float64: sum over sub-pixels (independent given z). The per-pixel math runs in the
    decoder's dtype; the sum is an accumulation, float64 as the spec asks, so float32 terms lose nothing to it."""
    return t.flatten(1).sum(1, dtype=torch.float64)


def positive_scale(raw: Tensor, floor: float) -> Tensor:
    """softplus(raw) + floor: a scale that never reaches 0 (bounded log-density) and never saturates upward."""
    return F.softplus(raw) + floor


def open_interval(x: Tensor) -> Tensor:
    """Move the endpoints 0 and 1 to OPEN_INTERVAL_EPS and 1 - OPEN_INTERVAL_EPS; leave (0, 1) alone."""
    return torch.where(x <= 0, OPEN_INTERVAL_EPS, torch.where(x >= 1, 1 - OPEN_INTERVAL_EPS, x))


def log1mexp(t: Tensor) -> Tensor:
    """log(1 - e^t) for t <= 0, from one tanh: 1 - e^t = -2 tanh(t/2) / (1 - tanh(t/2)).

    Relative accuracy near t = 0, where 1 - e^t cancels (narrow bins); absolute accuracy (error below the
    dtype's eps) where the result is near 0, which is all a sum of log-probabilities can see. Finite
    gradient at t = -inf. No expm1 / log1p: torch.compile does not vectorise them on CPU (8x slower).
    """
    h = torch.tanh(t / 2)
    return torch.log(-2 * h / (1 - h))


def log_bin_mass(log_big: Tensor, log_small: Tensor, open_edge: Tensor) -> Tensor:
    """log(e^big - e^small), a CDF (or survival) difference in log space; small := 0 where the bin is open."""
    small = log_small.masked_fill(open_edge, -math.inf)
    return log_big + log1mexp(small - log_big)


def bin_edges(v: Tensor, dtype: torch.dtype) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Bin [lo, hi] of each 8-bit value, plus masks of the first and last bin.

    The first bin's lo and the last bin's hi are replaced by a point inside the bin: they are masked
    (edge extended) by every caller, and a finite stand-in keeps logit() and gradients finite.
    """
    v = v.to(dtype)
    first, last = v == 0, v == N_BINS - 1
    lo = torch.where(first, 0.5, v) * BIN_WIDTH        # [B, C, H, W]
    hi = torch.where(last, v + 0.5, v + 1) * BIN_WIDTH
    return lo, hi, first, last


def log_sinhc(y: Tensor) -> Tensor:
    """log(sinh(y) / y), even; Taylor series for |y| < 0.1 (error < 1e-16), exact form elsewhere.

    The exact form a + log((1 - e^-2a) / 2a) needs no expm1 (1 - e^-2a >= 0.18 there) and each branch
    gets its input by clamp, not where: on CPU torch's float32 expm1 and where are not vectorised.
    """
    a = y.abs()
    a_big = a.clamp(min=0.1)  # keeps the unused branch (and its gradient) finite
    big = a_big + torch.log((1 - torch.exp(-2 * a_big)) / (2 * a_big))
    s = a.clamp(max=0.1) ** 2
    series = s * (1 / 6 + s * (-1 / 180 + s * (1 / 2835 - s / 37800)))
    return torch.where(a < 0.1, series, big)


def _log_expm1(d: Tensor) -> Tensor:
    """log(e^d - 1) for d > 0, stable for tiny and huge d."""
    return d + log1mexp(-d)


def log_ndtr(z: Tensor) -> Tensor:
    """log Phi(z) of the standard normal from one erfc, or the asymptotic series below LOG_NDTR_TAIL.

    Same numbers as torch.special.log_ndtr (tests: scipy, 1e-13 relative in float64), but built from ops that
    torch.compile vectorises: torch's log_ndtr calls a scalar erfcx per element, which made the Gaussian
    families' fused evaluation 3x slower than this.
    """
    lower, tail = z < 0, z < LOG_NDTR_TAIL
    u = torch.where(lower, z.clamp(min=LOG_NDTR_TAIL), -z)  # -|z| (gradient -1 at 0); no underflow for z < 0
    e = 0.5 * torch.erfc(-u * SQRT_HALF)                # Phi(-|z|)
    t = z.clamp(max=LOG_NDTR_TAIL)
    r = 1 / (t * t)
    poly = torch.zeros_like(r)
    for c in reversed(_MILLS_SERIES):
        poly = (poly + c) * r
    # one log for all three cases, log Phi = offset + log(arg): lower side log e, upper side log(1 - e)
    # (absolute error below eps), tail -t^2/2 - log sqrt(2 pi) + log((1 + poly) / -t)
    arg = torch.where(tail, (1 + poly) / -t, torch.where(lower, e, 1 - e))
    offset = torch.where(tail, -0.5 * t * t - HALF_LOG_2PI, 0.0)
    return offset + torch.log(arg)


def _laplace_log_cdf(z: Tensor) -> Tensor:
    """log F(z) of the standard Laplace, closed form on each side of 0."""
    return torch.where(z <= 0, z.clamp(max=0) - LN2, torch.log(1 - 0.5 * torch.exp(-z.clamp(min=0))))


def _gauss_legendre(n: int, like: Tensor) -> tuple[Tensor, Tensor]:
    x, w = np.polynomial.legendre.leggauss(n)
    return like.new_tensor(x), like.new_tensor(w)


# ---------------------------------------------------------------------------------------- registry

class OutputFamily(nn.Module):
    """Base class: a per-sub-pixel distribution whose parameters the decoder emits.

    Subclasses set `name` and `n_params`, take fixed options from `defaults`, and implement
    log_density, log_prob_bins, mean and cdf (std when the scale is learned). `register` copies
    label, learned_scale and has_cdf from the family's catalog entry.
    """

    name: ClassVar[str]
    n_params: ClassVar[int]
    entry: ClassVar[catalog.FamilyEntry]
    label: ClassVar[str]
    learned_scale: ClassVar[bool]
    has_cdf: ClassVar[bool]
    defaults: ClassVar[dict[str, float]] = {}
    # why evaluation must not torch.compile this family's math (None: it may)
    not_compilable: ClassVar[str | None] = None

    def __init__(self, **options):
        """Keep only this family's options (the CLI passes every fixed-scale option); None -> default."""
        super().__init__()
        self.options = {key: float(default if options.get(key) is None else options[key])
                        for key, default in self.defaults.items()}
        for key, value in self.options.items():
            if not (math.isfinite(value) and value > 0):  # every option so far is a scale
                raise VaebenchError(f"family {self.name}: option {key} must be a positive number, got {value}")

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v:g}" for k, v in self.options.items())

    def log_density(self, params: Tensor, x: Tensor) -> Tensor:
        raise NotImplementedError

    def log_prob_bins(self, params: Tensor, v: Tensor) -> Tensor:
        raise NotImplementedError

    def log_likelihoods(self, params: Tensor, x: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """(log_density(x), log_prob_bins(v)), [B] float64 each: evaluation's hot path, one call per decoder
        output. x must be a dequantization of v (floor(256 x) = v). Families override it to share work."""
        return self.log_density(params, x), self.log_prob_bins(params, v)

    def train_loss(self, params: Tensor, x: Tensor, v: Tensor) -> Tensor:
        """[B] negative log-likelihood that training minimises; by default the density's."""
        return -self.log_density(params, x)

    def mean(self, params: Tensor) -> Tensor:
        raise NotImplementedError

    def std(self, params: Tensor) -> Tensor | None:
        return None

    def cdf(self, params: Tensor, x: Tensor) -> Tensor:
        raise NotImplementedError(f"family {self.name} has no CDF")


FAMILIES: dict[str, type[OutputFamily]] = {}


def register(cls: type[OutputFamily]) -> type[OutputFamily]:
    """Class decorator: add `cls` to FAMILIES under `cls.name`, with the properties of its catalog entry."""
    if cls.name in FAMILIES:
        raise ValueError(f"family {cls.name!r} registered twice")
    if cls.name not in catalog.BY_ID:
        raise ValueError(f"family {cls.name!r} has no entry in vaebench/catalog.py")
    cls.entry = entry = catalog.BY_ID[cls.name]
    cls.label, cls.learned_scale, cls.has_cdf = entry.label, entry.learned_scale, entry.has_cdf
    if entry.has_cdf != (cls.cdf is not OutputFamily.cdf):
        raise ValueError(f"family {cls.name!r}: catalog has_cdf={entry.has_cdf} but the class "
                         f"{'does not define' if entry.has_cdf else 'defines'} cdf")
    FAMILIES[cls.name] = cls
    return cls


def make_family(name: str, **options) -> OutputFamily:
    """Build a family by registry id; options it does not know are ignored."""
    if name not in FAMILIES:
        raise unknown_name("family", name, FAMILIES)
    return FAMILIES[name](**options)


# ------------------------------------------------------------------------------ (continuous) Bernoulli

def _cb_mean(eta: Tensor) -> Tensor:
    """CB mean 1/(1 - e^-eta) - 1/eta; series 1/2 + y/6 - ... (y = eta/2) near 0.5 where it cancels."""
    small = eta.abs() < 0.2
    e = torch.where(small, 1.0, eta)
    big = -1 / torch.expm1(-e) - 1 / e
    y = torch.where(small, eta, 0.0) / 2
    y2 = y * y
    series = 0.5 + 0.5 * y * (1 / 3 + y2 * (-1 / 45 + y2 * (2 / 945 - y2 / 4725)))
    return torch.where(small, series, big)


@register
class ContinuousBernoulli(OutputFamily):
    """Continuous Bernoulli on logits eta = logit(lambda): the normalised BCE (Loaiza-Ganem & Cunningham 2019).

    Departs from torch.distributions.ContinuousBernoulli, which clamps probs by the dtype's eps, so a
    saturated pixel's log-normaliser depends on float32 vs float64. Here everything is written in eta:
    log p(x) = eta x + logsigmoid(-eta) + log C,  log C = log(eta / tanh(eta/2)),
    which simplifies to eta (x - 1/2) - log(sinh(eta/2) / (eta/2)) (series near eta = 0), exact for any eta.
    CDF F(x) = expm1(eta x) / expm1(eta); a bin's mass is the closed-form integral of the density.
    Mean 1/(1 - e^-eta) - 1/eta (not lambda). No learned scale, so std is None. Logits are not clipped
    (the seed paper clipped lambda to [1e-4, 1 - 1e-4]); every formula is stable for any eta.
    Checked against torch's CB (non-saturated), the closed form C(lambda) lambda^x (1-lambda)^(1-x)
    with C = 2 atanh(1 - 2 lambda) / (1 - 2 lambda), and quadrature.
    """

    name = "continuous_bernoulli"
    n_params = 1

    def log_density(self, params, x):
        eta = params[:, 0]                              # [B, C, H, W]
        return per_image(self._log_unnormalised(eta, x) - log_sinhc(eta / 2))

    def log_prob_bins(self, params, v):
        eta = params[:, 0]
        return per_image(self._log_unnormalised_bin(eta, v) - log_sinhc(eta / 2))

    def log_likelihoods(self, params, x, v):
        """The bin column as the density plus log(P(bin) / p(x)), which has no normaliser: each sum then
        needs one log_sinhc per sub-pixel (a fused kernel recomputes what two sums share, once per sum)."""
        eta = params[:, 0]
        unnormalised = self._log_unnormalised(eta, x)
        log_p = per_image(unnormalised - log_sinhc(eta / 2))
        return log_p, log_p + per_image(self._log_unnormalised_bin(eta, v) - unnormalised)

    @staticmethod
    def _log_unnormalised(eta: Tensor, x: Tensor) -> Tensor:
        return eta * (x.to(eta.dtype) - 0.5)

    @staticmethod
    def _log_unnormalised_bin(eta: Tensor, v: Tensor) -> Tensor:
        """log int_lo^hi p + log_sinhc(eta/2): the bin's mass eta lo + log(expm1(eta w) / expm1(eta)) with
        each expm1(t) written t e^{t/2} sinhc(t/2), without the normaliser's log_sinhc(eta/2)."""
        lo = v.to(eta.dtype) * BIN_WIDTH
        return eta * lo + math.log(BIN_WIDTH) + eta * (BIN_WIDTH - 1) / 2 + log_sinhc(eta * BIN_WIDTH / 2)

    def cdf(self, params, x):
        eta = params[:, 0]
        x = x.to(params.dtype)
        log_f = torch.log(x) + eta * (x - 1) / 2 + log_sinhc(eta * x / 2) - log_sinhc(eta / 2)
        return log_f.exp()

    def mean(self, params):
        return _cb_mean(params[:, 0])


@register
class Bernoulli(ContinuousBernoulli):
    """Plain BCE on logits (the usual VAE loss), which is not a density on (0, 1).

    Trains on BCE; its likelihood columns, CDF and bins read the same logits as a continuous
    Bernoulli (spec: "bernoulli (read as CB)"). Its mean is sigmoid(logits): the value BCE fits.
    """

    name = "bernoulli"

    def train_loss(self, params, x, v):
        logits = params[:, 0]
        return per_image(F.binary_cross_entropy_with_logits(logits, x.to(params.dtype), reduction="none"))

    def mean(self, params):
        return torch.sigmoid(params[:, 0])


# ------------------------------------------------------------------------- location-scale families

@dataclass(frozen=True)
class Noise:
    """A standard symmetric noise: its torch distribution, log-CDF (log-survival is log_cdf(-z)), std."""

    distribution: Callable[[Tensor, Tensor], Distribution]
    log_cdf: Callable[[Tensor], Tensor]
    std: float


NORMAL = Noise(lambda loc, scale: Normal(loc, scale, validate_args=False), log_ndtr, 1.0)
LAPLACE = Noise(lambda loc, scale: Laplace(loc, scale, validate_args=False), _laplace_log_cdf, math.sqrt(2.0))

# Breakpoints of the composite Gauss-Legendre rule for logit-space moments: in units of the noise scale
# around loc, and in logit space around the sigmoid's step (all kinks and fast changes fall on them).
_NOISE_BREAKS = (0, 0.5, 1, 2, 3, 4, 6, 9, 14, 22, 40)
_SIGMOID_BREAKS = (0, 1, 2, 4, 7, 12, 20, 40)
_NODES_PER_PANEL = 8


def _symmetric(breaks, like: Tensor) -> Tensor:
    b = like.new_tensor(breaks[1:])
    return torch.cat([-b.flip(0), like.new_zeros(1), b])


def logit_moments(noise: Noise, loc: Tensor, scale: Tensor) -> tuple[Tensor, Tensor]:
    """Mean and variance of sigmoid(Y), Y = loc + scale * noise, by composite Gauss-Legendre quadrature.

    Gauss-Hermite/Laguerre fail when the scale is large: the sigmoid's step (width 1/scale in noise units)
    falls between nodes. Here panels are cut at the noise's breakpoints loc + scale*t and at the sigmoid's
    breakpoints, so each panel is smooth on its own scale; the noise beyond 40 scales is dropped
    (< 1e-17). The variance is accumulated around sigmoid(loc) so it does not cancel for tiny scales.
    """
    edges = torch.cat([loc[..., None] + scale[..., None] * _symmetric(_NOISE_BREAKS, loc),
                       _symmetric(_SIGMOID_BREAKS, loc).expand(*loc.shape, -1)], -1).sort(-1).values
    nodes, weights = _gauss_legendre(_NODES_PER_PANEL, loc)
    base = noise.distribution(loc[..., None], scale[..., None])
    centre = torch.sigmoid(loc)
    first = torch.zeros_like(loc)
    second = torch.zeros_like(loc)
    for j in range(edges.shape[-1] - 1):
        a, b = edges[..., j:j + 1], edges[..., j + 1:j + 2]
        half = (b - a) / 2
        y = a + half * (nodes + 1)                                      # [..., nodes]
        w = half * weights * base.log_prob(y).exp()
        g = torch.sigmoid(y) - centre[..., None]
        first = first + (w * g).sum(-1)
        second = second + (w * g * g).sum(-1)
    return centre + first, (second - first ** 2).clamp_min(0)


class LocationScale(OutputFamily):
    """Shared machinery for Normal / Laplace on the real line or in logit space (sigmoid of the noise).

    log_density uses torch.distributions (TransformedDistribution + SigmoidTransform in logit space);
    bins are CDF differences in log space, taken in the upper tail from the survival function
    (mirrored z, the noise being symmetric). Real-line edge bins extend to -inf / +inf; in logit space
    the bins already cover (0, 1).
    """

    noise: ClassVar[Noise]
    logit_space: ClassVar[bool] = False
    scale_floor: ClassVar[float] = 1e-3

    def loc_scale(self, params: Tensor) -> tuple[Tensor, Tensor]:
        """(loc [B, C, H, W], scale broadcastable to it), in the real line or logit space."""
        raise NotImplementedError

    def distribution(self, params: Tensor) -> Distribution:
        base = self.noise.distribution(*self.loc_scale(params))
        if self.logit_space:
            return TransformedDistribution(base, [SigmoidTransform()], validate_args=False)
        return base

    def _to_line(self, x: Tensor) -> Tensor:
        return torch.logit(x) if self.logit_space else x

    def log_density(self, params, x):
        x = x.to(params.dtype)
        if self.logit_space:
            x = open_interval(x)
        return per_image(self.distribution(params).log_prob(x))

    def cdf(self, params, x):
        loc, scale = self.loc_scale(params)
        return self.noise.log_cdf((self._to_line(x.to(params.dtype)) - loc) / scale).exp()

    def log_prob_bins(self, params, v):
        loc, scale = self.loc_scale(params)
        lo, hi, first, last = bin_edges(v, params.dtype)
        z_lo = (self._to_line(lo) - loc) / scale            # [B, C, H, W]
        z_hi = (self._to_line(hi) - loc) / scale
        upper = ((z_lo > 0) | last) & ~first               # above the median: difference of survivals
        log_big = self.noise.log_cdf(torch.where(upper, -z_lo, z_hi))
        log_small = self.noise.log_cdf(torch.where(upper, -z_hi, z_lo))
        return per_image(log_bin_mass(log_big, log_small, first | last))

    def mean(self, params):
        loc, scale = self.loc_scale(params)
        return logit_moments(self.noise, loc, scale)[0] if self.logit_space else loc

    def std(self, params):
        if not self.learned_scale:
            return None
        loc, scale = self.loc_scale(params)
        if self.logit_space:
            return logit_moments(self.noise, loc, scale)[1].sqrt()
        return (scale * self.noise.std).expand_as(loc)


class LearnedScale(LocationScale):
    """params = (loc, raw scale); scale = softplus(raw) + scale_floor, per sub-pixel."""

    n_params = 2

    def loc_scale(self, params):
        return params[:, 0], positive_scale(params[:, 1], self.scale_floor)


@register
class GaussianFixed(LocationScale):
    """Normal(mu, sigma) with sigma fixed by config; default sigma^2 = 1/2, so -log p = squared error + const."""

    name = "gaussian_fixed"
    n_params = 1
    noise = NORMAL
    defaults = {"sigma": 0.5 ** 0.5}

    def loc_scale(self, params):
        return params[:, 0], params.new_tensor(self.options["sigma"])


@register
class Gaussian(LearnedScale):
    """Normal(mu_i, sigma_i), sigma_i = softplus(raw) + 1e-3 (the floor is about the dequantization noise's std,
    1/(256 sqrt 12), so it never binds on dequantized data but bounds the density on v/255 data)."""

    name = "gaussian"
    noise = NORMAL


@register
class GaussianShared(LocationScale):
    """Normal(mu_i, sigma) with one sigma per model: sigma-VAE's "optimal sigma" (Rybkin et al. 2021).

    In training mode each step first sets sigma to its analytic optimum, the batch RMSE between x and
    mu (computed without gradient, log sigma floored at -6 as in sigma-VAE), then scores the batch
    with it: Rybkin et al. found this better than learning sigma by gradient, and a gradient-learned
    log-sigma moves only about lr per Adam step, far too slowly for a short run. The last value is
    kept in the `log_sigma` parameter (saved in the state_dict) and used as it is in eval mode.
    log sigma = -6 + softplus(p + 6): the soft clip at -6 keeps a gradient everywhere.
    """

    name = "gaussian_shared"
    n_params = 1
    noise = NORMAL
    min_log_sigma: ClassVar[float] = -6.0

    def __init__(self, **options):
        super().__init__(**options)
        self.log_sigma = nn.Parameter(torch.zeros(()))

    def loc_scale(self, params):
        log_sigma = self.min_log_sigma + F.softplus(self.log_sigma.to(params.dtype) - self.min_log_sigma)
        return params[:, 0], log_sigma.exp()

    def train_loss(self, params: Tensor, x: Tensor, v: Tensor) -> Tensor:
        if self.training:
            with torch.no_grad():  # on the device: no host synchronisation
                mse = (x - params[:, 0]).pow(2).mean().to(self.log_sigma.dtype)
                target = (0.5 * mse.log()).clamp(min=self.min_log_sigma + 1e-3)
                self.log_sigma.copy_(self.min_log_sigma + torch.log(torch.expm1(target - self.min_log_sigma)))
        return super().train_loss(params, x, v)


@register
class LaplaceFixed(LocationScale):
    """Laplace(mu, b) with b fixed by config (option "b", CLI --laplace-b); default b = 1, so
    -log p = absolute error + const."""

    name = "laplace_fixed"
    n_params = 1
    noise = LAPLACE
    defaults = {"b": 1.0}

    def loc_scale(self, params):
        return params[:, 0], params.new_tensor(self.options["b"])


@register
class LaplaceLearned(LearnedScale):
    """Laplace(mu_i, b_i), b_i = softplus(raw) + 1e-3; std = sqrt(2) b."""

    name = "laplace"
    noise = LAPLACE


@register
class LogitNormal(LearnedScale):
    """sigmoid of Normal(mu_i, sigma_i) in logit space, sigma_i = softplus(raw) + 1e-3.

    Mean and std are not closed-form: composite Gauss-Legendre quadrature (see logit_moments).
    """

    name = "logit_normal"
    noise = NORMAL
    logit_space = True


@register
class LogitLaplace(LearnedScale):
    """sigmoid of Laplace(mu_i, b_i) in logit space, b_i = softplus(raw) + 1e-3; moments by quadrature."""

    name = "logit_laplace"
    noise = LAPLACE
    logit_space = True


# ------------------------------------------------------------------------------------- discretized

@register
class DiscretizedLogistic(OutputFamily):
    """Logistic(mu_i, s_i) CDF differences over the 256 bins (PixelCNN++-style), edge bins to -inf / +inf.

    params = (mu, raw scale), in x units (a bin is 1/256 wide); s = softplus(raw) + 1e-4, small enough
    for a bin centred on mu to reach probability 1 - 7e-9. Trains on v. Bin masses use the exact form
    sigmoid(b) - sigmoid(a) = sigmoid(a) sigmoid(-b) expm1(b - a), with b - a = (1/256)/s, so they never
    cancel. log_density(x) = log_prob_bins(floor(256 x)) + D ln 256 (the dequantized density of the same
    model), so its two likelihood columns agree. mean/std are those of v/255 with v ~ P (the pixel grid
    the reconstruction error is measured on); cdf is the dequantized model's (piecewise linear) CDF.
    """

    name = "discretized_logistic"
    n_params = 2
    scale_floor: ClassVar[float] = 1e-4

    def loc_scale(self, params):
        return params[:, 0], positive_scale(params[:, 1], self.scale_floor)

    def _log_bin(self, loc: Tensor, scale: Tensor, v: Tensor) -> Tensor:
        """[B, C, H, W] log P(bin v) per sub-pixel."""
        lo, hi, first, last = bin_edges(v, loc.dtype)
        a, b = (lo - loc) / scale, (hi - loc) / scale
        # first bin log sigmoid(b), last log sigmoid(-a), interior log sigmoid(a) + log sigmoid(-b) + ...:
        # the arguments are chosen first, so each sub-pixel takes two logsigmoids, not four
        edge = F.logsigmoid(torch.where(first, b, torch.where(last, -a, a)))
        return edge + torch.where(first | last, 0.0, F.logsigmoid(-b) + _log_expm1(BIN_WIDTH / scale))

    def log_prob_bins(self, params, v):
        return per_image(self._log_bin(*self.loc_scale(params), v))

    def _bin_of(self, x: Tensor) -> Tensor:
        return (x * N_BINS).floor().clamp(0, N_BINS - 1)

    def log_density(self, params, x):
        v = self._bin_of(x.to(params.dtype))
        return self.log_prob_bins(params, v) + x[0].numel() * LOG_N_BINS

    def log_likelihoods(self, params, x, v):
        log_p = self.log_prob_bins(params, v)           # x's bin is v, so the density is the same number
        return log_p + x[0].numel() * LOG_N_BINS, log_p

    def train_loss(self, params, x, v):
        return -self.log_prob_bins(params, v)

    def cdf(self, params, x):
        loc, scale = self.loc_scale(params)
        x = x.to(params.dtype)
        v = self._bin_of(x)
        below = torch.where(v == 0, 0.0, torch.sigmoid((v * BIN_WIDTH - loc) / scale))
        return below + (x * N_BINS - v) * self._log_bin(loc, scale, v).exp()

    def _moments(self, params: Tensor, block: int = 32) -> tuple[Tensor, Tensor]:
        """Mean and variance of v (0..255) from P(v >= k) = sigmoid((mu - k/256) / s), k = 1..255.

        E[g(v)] = g(c) + sum_{k>c} (g(k) - g(k-1)) P(v >= k) - sum_{k<=c} (g(k) - g(k-1)) P(v < k) around
        the bin c nearest mu: every term has one sign, so the variance does not cancel for tiny scales.
        """
        loc, scale = self.loc_scale(params)
        centre = (loc * N_BINS - 0.5).round().clamp(0, N_BINS - 1)[..., None]   # [B, C, H, W, 1]
        first = torch.zeros_like(centre)
        second = torch.zeros_like(centre)
        for start in range(1, N_BINS, block):
            k = torch.arange(start, min(start + block, N_BINS), dtype=loc.dtype, device=loc.device)
            z = (loc[..., None] - k * BIN_WIDTH) / scale[..., None]         # [B, C, H, W, block]
            above = k > centre
            tail = torch.where(above, torch.sigmoid(z), -torch.sigmoid(-z))  # P(v >= k) or -P(v < k)
            first = first + tail.sum(-1, keepdim=True)
            second = second + ((2 * (k - centre) - 1) * tail).sum(-1, keepdim=True)
        return (centre + first)[..., 0], (second - first ** 2).clamp_min(0)[..., 0]

    def mean(self, params):
        return self._moments(params)[0] / (N_BINS - 1)

    def std(self, params):
        return self._moments(params)[1].sqrt() / (N_BINS - 1)


# ---------------------------------------------------------------------------------------------- beta

def _betacf(a: Tensor, b: Tensor, x: Tensor, max_steps: int = 300, check_every: int = 8) -> Tensor:
    """Continued fraction of the incomplete beta function (modified Lentz, Numerical Recipes 6.4).

    Converges fast for x < (a+1)/(a+b+2): with concentrations in [1e-4, 1e4], at most 108 steps on every
    bin edge (median 5). Every `check_every` steps the converged elements are stored and dropped, so
    the cost follows the typical, not the worst, element (a host sync: evaluation only, never training).
    """
    finfo = torch.finfo(x.dtype)
    fpmin, tol = finfo.tiny / finfo.eps, 4 * finfo.eps

    def nonzero(t):
        return torch.where(t.abs() < fpmin, fpmin, t)

    shape = x.shape
    out = torch.empty(x.numel(), dtype=x.dtype, device=x.device)
    active = torch.arange(x.numel(), device=x.device)
    a, b, x = (t.expand(shape).reshape(-1) for t in (a, b, x))
    c = torch.ones_like(x)
    d = 1 / nonzero(1 - (a + b) * x / (a + 1))
    h = d
    for m in range(1, max_steps + 1):
        for coef in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                     -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1 / nonzero(1 + coef * d)
            c = nonzero(1 + coef / c)
            delta = d * c
            h = h * delta
        if m % check_every == 0 or m == max_steps:
            done = ((delta - 1).abs() <= tol) | (m == max_steps)
            out[active[done]] = h[done]
            if bool(done.all()):
                break
            keep = ~done
            active, a, b, x, c, d, h = (t[keep] for t in (active, a, b, x, c, d, h))
    return out.view(shape)


def beta_log_tails(a: Tensor, b: Tensor, x: Tensor) -> tuple[Tensor, Tensor]:
    """(log F(x), log S(x)) of Beta(a, b) at x in (0, 1): the continued fraction on its fast side,
    the other tail from log1mexp."""
    lower = x < (a + 1) / (a + b + 2)
    p, q = torch.where(lower, a, b), torch.where(lower, b, a)
    y = torch.where(lower, x, 1 - x)
    log_beta = torch.lgamma(p) + torch.lgamma(q) - torch.lgamma(p + q)
    log_direct = (p * torch.log(y) + q * torch.log1p(-y) - torch.log(p) - log_beta
                  + torch.log(_betacf(p, q, y))).clamp(max=0)
    log_other = log1mexp(log_direct)
    return torch.where(lower, log_direct, log_other), torch.where(lower, log_other, log_direct)


@register
class Beta(OutputFamily):
    """Beta(alpha_i, beta_i) with log alpha = L tanh(raw / L), L = ln 1e4: concentrations bounded to
    (1e-4, 1e4), alpha = exp(raw) near raw = 0 (uniform at initialisation).

    torch has no Beta CDF: the CDF is the regularised incomplete beta by its continued fraction
    (beta_log_tails), bins are differences of the smaller tail in log space. Checked against scipy in
    the tests. Mean alpha / (alpha + beta). The spec lists no learned scale, so std is None.
    """

    name = "beta"
    n_params = 2
    not_compilable = ("its continued fraction drops converged pixels as it goes (data-dependent shapes), "
                      "which torch.compile would recompile for every size")
    log_bound: ClassVar[float] = math.log(1e4)

    def concentrations(self, params: Tensor) -> tuple[Tensor, Tensor]:
        bounded = self.log_bound * torch.tanh(params / self.log_bound)
        return bounded[:, 0].exp(), bounded[:, 1].exp()

    def log_density(self, params, x):
        x = open_interval(x.to(params.dtype))
        return per_image(TorchBeta(*self.concentrations(params), validate_args=False).log_prob(x))

    def log_prob_bins(self, params, v):
        a, b = self.concentrations(params)
        lo, hi, first, last = bin_edges(v, params.dtype)
        log_f, log_s = beta_log_tails(torch.stack([a, a]), torch.stack([b, b]), torch.stack([lo, hi]))
        upper = ((log_s[0] < log_f[1]) | last) & ~first     # take the difference of the smaller tail
        log_big = torch.where(upper, log_s[0], log_f[1])
        log_small = torch.where(upper, log_s[1], log_f[0])
        return per_image(log_bin_mass(log_big, log_small, first | last))

    def cdf(self, params, x):
        a, b = self.concentrations(params)
        return beta_log_tails(a, b, x.to(params.dtype))[0].exp()

    def mean(self, params):
        a, b = self.concentrations(params)
        return a / (a + b)


if set(FAMILIES) != set(catalog.FAMILY_IDS):
    raise ImportError("families.py and catalog.py disagree: classes without an entry "
                      f"{sorted(set(FAMILIES) - set(catalog.FAMILY_IDS))}, "
                      f"entries without a class {sorted(set(catalog.FAMILY_IDS) - set(FAMILIES))}")
