"""The registry of output families p(x | z): one small class per family, one decorator line each.

Every number follows docs/likelihoods.md: `log_density` is a proper density on (0, 1)
(or on the real line), `log_prob_bins` is the probability of the 8-bit bin [v/256, (v+1)/256],
with real-line families' edge bins extended to -inf / +inf. All math runs in the dtype and on the
device of `params` ([B, n_params, C, H, W]); `log_density` and `train_loss` never sync with the host.
The numerical helpers live in numerics.py: a family's training fingerprint follows the helpers it
names (vaebench.fingerprint), so editing one retrains exactly the families that use it.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import Beta as TorchBeta
from torch.distributions import Distribution, Laplace, Normal

from vaebench import catalog
from vaebench.errors import VaebenchError, unknown_name
from vaebench.numerics import (
    beta_log_tail,
    laplace_log_cdf,
    log1mexp,
    log_beta_function,
    log_bin_mass,
    log_expm1,
    log_ndtr,
    log_sinhc,
    logit_moments,
)
from vaebench.settings import FIXED_SCALES

N_BINS = 256
BIN_WIDTH = 1.0 / N_BINS
LOG_N_BINS = math.log(N_BINS)
# Logit-space families and beta need x in the open interval: x = 0 and x = 1 (only `dequantize: false`
# data, v/255, has them) are moved to eps and 1 - eps (1 - 2^-24 is the largest float32 below 1);
# docs/likelihoods.md marks those likelihoods as not comparable. Data strictly inside (0, 1) is never
# touched, so the density stays normalised.
OPEN_INTERVAL_EPS = 2.0**-24


def per_image(t: Tensor) -> Tensor:
    """[B, C, H, W] -> [B] float64: sum over sub-pixels (independent given z). The per-pixel math runs in
    the decoder's dtype; the sum is an accumulation, float64 as docs/likelihoods.md asks, so float32 terms
    lose nothing to it."""
    return t.flatten(1).sum(1, dtype=torch.float64)


def positive_scale(raw: Tensor, floor: float) -> Tensor:
    """softplus(raw) + floor: a scale that never reaches 0 (bounded log-density), never saturates upward."""
    return F.softplus(raw) + floor


def open_interval(x: Tensor) -> Tensor:
    """Move the endpoints 0 and 1 to OPEN_INTERVAL_EPS and 1 - OPEN_INTERVAL_EPS; leave (0, 1) alone."""
    return torch.where(x <= 0, OPEN_INTERVAL_EPS, torch.where(x >= 1, 1 - OPEN_INTERVAL_EPS, x))


def bin_edges(v: Tensor, dtype: torch.dtype) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Bin [lo, hi] of each 8-bit value, plus masks of the first and last bin.

    The first bin's lo and the last bin's hi are replaced by a point inside the bin: they are masked
    (edge extended) by every caller, and a finite stand-in keeps logit() and gradients finite.
    """
    v = v.to(dtype)
    first, last = v == 0, v == N_BINS - 1
    lo = torch.where(first, 0.5, v) * BIN_WIDTH  # [B, C, H, W]
    hi = torch.where(last, v + 0.5, v + 1) * BIN_WIDTH
    return lo, hi, first, last


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
        self.options = {
            key: float(default if options.get(key) is None else options[key])
            for key, default in self.defaults.items()
        }
        for key, value in self.options.items():
            if not (math.isfinite(value) and value > 0):  # every option so far is a scale
                raise VaebenchError(
                    f"family {self.name}: option {key} must be a positive number, got {value}"
                )

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

    def median(self, params: Tensor) -> Tensor | None:
        """The per-sub-pixel median image, where it differs from the mean (the picture people show);
        None for a symmetric family, whose median is its mean."""
        return None

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
        raise ValueError(
            f"family {cls.name!r}: catalog has_cdf={entry.has_cdf} but the class "
            f"{'does not define' if entry.has_cdf else 'defines'} cdf"
        )
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
    """Continuous Bernoulli on logits eta = logit(lambda): the normalised BCE
    (Loaiza-Ganem & Cunningham 2019).

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
        eta = params[:, 0]  # [B, C, H, W]
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

    def median(self, params):
        """F(x) = 1/2 solved: 1/2 + log(cosh(eta/2)) / eta = (softplus(eta) - log 2) / eta, by its series
        1/2 + eta/8 - eta^3/192 + ... near 0 where it cancels. `bernoulli` (read as CB) inherits it."""
        eta = params[:, 0]
        small = eta.abs() < 0.2
        e = torch.where(small, 1.0, eta)
        big = (F.softplus(e) - math.log(2.0)) / e
        s = torch.where(small, eta, 0.0)
        s2 = s * s
        series = 0.5 + s * (1 / 8 + s2 * (-1 / 192 + s2 * (1 / 2880 - s2 * 17 / 645120)))
        return torch.where(small, series, big)


@register
class Bernoulli(ContinuousBernoulli):
    """Plain BCE on logits (the usual VAE loss), which is not a density on (0, 1).

    Trains on BCE; its likelihood columns, CDF and bins read the same logits as a continuous
    Bernoulli ("bernoulli (read as CB)" in docs/likelihoods.md). Its mean is sigmoid(logits): the value
    BCE fits.
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
LAPLACE = Noise(lambda loc, scale: Laplace(loc, scale, validate_args=False), laplace_log_cdf, math.sqrt(2.0))


class LocationScale(OutputFamily):
    """Shared machinery for Normal / Laplace on the real line or in logit space (sigmoid of the noise).

    log_density uses the noise's torch distribution (at logit(x), times the sigmoid's Jacobian, in logit
    space); bins are CDF differences in log space, taken in the upper tail from the survival function
    (mirrored z, the noise being symmetric). Real-line edge bins extend to -inf / +inf; in logit space
    the bins already cover (0, 1).
    """

    noise: ClassVar[Noise]
    logit_space: ClassVar[bool] = False
    scale_floor: ClassVar[float] = 1e-3

    def loc_scale(self, params: Tensor) -> tuple[Tensor, Tensor]:
        """(loc [B, C, H, W], scale broadcastable to it), in the real line or logit space."""
        raise NotImplementedError

    def _to_line(self, x: Tensor) -> Tensor:
        return torch.logit(x) if self.logit_space else x

    def log_density(self, params, x):
        x = x.to(params.dtype)
        noise = self.noise.distribution(*self.loc_scale(params))
        if not self.logit_space:
            return per_image(noise.log_prob(x))
        # sigmoid(Y)'s density at x: the noise's at logit(x) = log x - log(1 - x), times the Jacobian
        # 1 / (x (1 - x)); two logs in all (1 - x is exact for x >= 1/2)
        x = open_interval(x)
        log_x, log_1mx = torch.log(x), torch.log(1 - x)
        return per_image(noise.log_prob(log_x - log_1mx) - log_x - log_1mx)

    def cdf(self, params, x):
        loc, scale = self.loc_scale(params)
        return self.noise.log_cdf((self._to_line(x.to(params.dtype)) - loc) / scale).exp()

    def log_prob_bins(self, params, v):
        loc, scale = self.loc_scale(params)
        lo, hi, first, last = bin_edges(v, params.dtype)
        z_lo = (self._to_line(lo) - loc) / scale  # [B, C, H, W]
        z_hi = (self._to_line(hi) - loc) / scale
        upper = ((z_lo > 0) | last) & ~first  # above the median: difference of survivals
        log_big = self.noise.log_cdf(torch.where(upper, -z_lo, z_hi))
        log_small = self.noise.log_cdf(torch.where(upper, -z_hi, z_lo))
        return per_image(log_bin_mass(log_big, log_small, first | last))

    def mean(self, params):
        loc, scale = self.loc_scale(params)
        return logit_moments(self.noise.distribution, loc, scale)[0] if self.logit_space else loc

    def median(self, params):
        """sigmoid(loc) in logit space (the sigmoid keeps the noise's median); None on the real line."""
        return torch.sigmoid(self.loc_scale(params)[0]) if self.logit_space else None

    def std(self, params):
        if not self.learned_scale:
            return None
        loc, scale = self.loc_scale(params)
        if self.logit_space:
            return logit_moments(self.noise.distribution, loc, scale)[1].sqrt()
        return (scale * self.noise.std).expand_as(loc)


class LearnedScale(LocationScale):
    """params = (loc, raw scale); scale = softplus(raw) + scale_floor, per sub-pixel."""

    n_params = 2

    def loc_scale(self, params):
        return params[:, 0], positive_scale(params[:, 1], self.scale_floor)


@register
class GaussianFixed(LocationScale):
    """Normal(mu, sigma) with sigma fixed by config; default sigma^2 = 1/2: -log p = squared error + const."""

    name = "gaussian_fixed"
    n_params = 1
    noise = NORMAL
    defaults = {"sigma": FIXED_SCALES["sigma"]}

    def loc_scale(self, params):
        return params[:, 0], params.new_tensor(self.options["sigma"])


@register
class SquaredError(GaussianFixed):
    """GaussianFixed at sigma^2 = 1/2, never tuned: -log p is the summed squared error plus a constant, the
    loss people call squared error; the tuned gaussian_fixed is its fair rival."""

    name = "squared_error"

    def __init__(self, **options):
        super().__init__()  # a constant: the sigma option tunes gaussian_fixed, never the literal loss


@register
class Gaussian(LearnedScale):
    """Normal(mu_i, sigma_i), sigma_i = softplus(raw) + 1e-3 (the floor is about the dequantization noise's
    std, 1/(256 sqrt 12), so it never binds on dequantized data but bounds the density on v/255 data)."""

    name = "gaussian"
    noise = NORMAL


@register
class GaussianShared(LocationScale):
    """Normal(mu_i, sigma) with one sigma per model: sigma-VAE's "optimal sigma" (Rybkin et al. 2021).

    In training mode each step first sets sigma to its analytic optimum, the batch RMSE between x and
    mu (computed without gradient, log sigma floored at -6 as in sigma-VAE), then scores the batch
    with it: Rybkin et al. found this better than learning sigma by gradient, and a gradient-learned
    log-sigma moves only about lr per Adam step, far too slowly for a short run. Training then sets it
    over the whole training split (train.fit_shared_scale), not one batch; the value is kept in the
    `log_sigma` parameter (saved in the state_dict) and used as it is in eval mode.
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

    @staticmethod
    def squared_error(params: Tensor, x: Tensor) -> Tensor:
        """The batch's summed squared residual: sigma's optimum is its mean over the pixels."""
        return (x - params[:, 0]).pow(2).sum()

    @torch.no_grad()
    def set_sigma(self, mse: Tensor) -> None:
        """sigma = sqrt(mse), the maximum-likelihood scale for residuals of that mean square (on the device:
        no host synchronisation)."""
        target = (0.5 * mse.to(self.log_sigma.dtype).log()).clamp(min=self.min_log_sigma + 1e-3)
        self.log_sigma.copy_(self.min_log_sigma + torch.log(torch.expm1(target - self.min_log_sigma)))

    def train_loss(self, params: Tensor, x: Tensor, v: Tensor) -> Tensor:
        if self.training:
            self.set_sigma(self.squared_error(params.detach(), x) / x.numel())
        return super().train_loss(params, x, v)


@register
class LaplaceFixed(LocationScale):
    """Laplace(mu, b) with b fixed by config (option "b", CLI --laplace-b); default b = 1, so
    -log p = absolute error + const."""

    name = "laplace_fixed"
    n_params = 1
    noise = LAPLACE
    defaults = {"b": FIXED_SCALES["laplace_b"]}

    def loc_scale(self, params):
        return params[:, 0], params.new_tensor(self.options["b"])


@register
class AbsoluteError(LaplaceFixed):
    """LaplaceFixed at b = 1, never tuned: -log p is the summed absolute error plus a constant."""

    name = "absolute_error"

    def __init__(self, **options):
        super().__init__()  # a constant: the b option tunes laplace_fixed, never the literal loss


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
        return edge + torch.where(first | last, 0.0, F.logsigmoid(-b) + log_expm1(BIN_WIDTH / scale))

    def log_prob_bins(self, params, v):
        return per_image(self._log_bin(*self.loc_scale(params), v))

    def _bin_of(self, x: Tensor) -> Tensor:
        return (x * N_BINS).floor().clamp(0, N_BINS - 1)

    def log_density(self, params, x):
        v = self._bin_of(x.to(params.dtype))
        return self.log_prob_bins(params, v) + x[0].numel() * LOG_N_BINS

    def log_likelihoods(self, params, x, v):
        log_p = self.log_prob_bins(params, v)  # x's bin is v, so the density is the same number
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
        centre = (loc * N_BINS - 0.5).round().clamp(0, N_BINS - 1)[..., None]  # [B, C, H, W, 1]
        first = torch.zeros_like(centre)
        second = torch.zeros_like(centre)
        for start in range(1, N_BINS, block):
            k = torch.arange(start, min(start + block, N_BINS), dtype=loc.dtype, device=loc.device)
            z = (loc[..., None] - k * BIN_WIDTH) / scale[..., None]  # [B, C, H, W, block]
            above = k > centre
            tail = torch.where(above, torch.sigmoid(z), -torch.sigmoid(-z))  # P(v >= k) or -P(v < k)
            first = first + tail.sum(-1, keepdim=True)
            second = second + ((2 * (k - centre) - 1) * tail).sum(-1, keepdim=True)
        return (centre + first)[..., 0], (second - first**2).clamp_min(0)[..., 0]

    def mean(self, params):
        return self._moments(params)[0] / (N_BINS - 1)

    def median(self, params):
        """The median bin over 255: the smallest v with P(v' <= v) = sigmoid(((v + 1)/256 - mu) / s) >= 1/2,
        i.e. v = ceil(256 mu - 1), whatever the scale."""
        loc = params[:, 0]
        return (loc * N_BINS - 1).ceil().clamp(0, N_BINS - 1) / (N_BINS - 1)

    def std(self, params):
        return self._moments(params)[1].sqrt() / (N_BINS - 1)


# ---------------------------------------------------------------------------------------------- beta


@register
class Beta(OutputFamily):
    """Beta(alpha_i, beta_i) with log alpha = L tanh(raw / L), L = ln 1e4: concentrations bounded to
    (1e-4, 1e4), alpha = exp(raw) near raw = 0 (uniform at initialisation).

    Evaluation (log_likelihoods, log_prob_bins, cdf) computes the concentrations, log B(alpha, beta) and the
    log-densities in float64 whatever the decoder's dtype: at large concentrations a log-density of a few
    nats is the difference of terms of size alpha + beta, which float32 does not resolve. torch has no Beta
    CDF: the bins are differences of the smaller tail in log space, the tails from the regularised incomplete
    beta (beta_log_tails: a fixed-depth continued fraction in the decoder's dtype, so the family compiles).
    Training (train_loss = -log_density) stays in the decoder's dtype. Checked against scipy and mpmath in
    the tests. Mean alpha / (alpha + beta). No learned scale (docs/likelihoods.md), so std is None.
    """

    name = "beta"
    n_params = 2
    log_bound: ClassVar[float] = math.log(1e4)

    def concentrations(self, params: Tensor) -> tuple[Tensor, Tensor]:
        bounded = self.log_bound * torch.tanh(params / self.log_bound)
        return bounded[:, 0].exp(), bounded[:, 1].exp()

    def log_density(self, params, x):
        x = open_interval(x.to(params.dtype))
        return per_image(TorchBeta(*self.concentrations(params), validate_args=False).log_prob(x))

    def log_prob_bins(self, params, v):
        a, b = self.concentrations(params.double())
        return per_image(self._log_bins(a, b, log_beta_function(a, b), v, params.dtype))

    def log_likelihoods(self, params, x, v):
        """Both columns from one set of float64 concentrations and log B."""
        a, b = self.concentrations(params.double())
        log_beta = log_beta_function(a, b)
        x = open_interval(x.double())
        log_p = (a - 1) * torch.log(x) + (b - 1) * torch.log(1 - x) - log_beta
        return per_image(log_p), per_image(self._log_bins(a, b, log_beta, v, params.dtype))

    @staticmethod
    def _log_bins(a: Tensor, b: Tensor, log_beta: Tensor, v: Tensor, cf_dtype: torch.dtype) -> Tensor:
        """[B, C, H, W] log P(bin v), float64, from float64 a, b and log B (the continued fraction's deep
        levels in cf_dtype). Each edge gives the tail on its fast side; the bin is F(hi) - F(lo) written with
        those tails, in log space, which float64 resolves even where both are near 1."""
        lo, hi, first, last = bin_edges(v, a.dtype)
        tail_lo, lower_lo = beta_log_tail(a, b, lo, log_beta, cf_dtype)
        tail_hi, lower_hi = beta_log_tail(a, b, hi, log_beta, cf_dtype)
        # the stand-in edges of the first and last bin: F(lo) = 0 and S(hi) = 0
        tail_lo, lower_lo = tail_lo.masked_fill(first, -math.inf), lower_lo | first
        tail_hi, lower_hi = tail_hi.masked_fill(last, -math.inf), lower_hi & ~last
        # both lower: F(hi) - F(lo); both upper: S(lo) - S(hi); lower then upper: 1 - (F(lo) + S(hi))
        top, bottom = torch.maximum(tail_lo, tail_hi), torch.minimum(tail_lo, tail_hi)
        log_sum = top + torch.log(1 + torch.exp(bottom - top))
        log_big = torch.where(lower_hi, tail_hi, torch.where(lower_lo, 0.0, tail_lo))
        log_small = torch.where(lower_hi, tail_lo, torch.where(lower_lo, log_sum, tail_hi))
        return log_big + log1mexp(log_small - log_big)

    def cdf(self, params, x):
        a, b = self.concentrations(params.double())
        tail, lower = beta_log_tail(a, b, x.double(), log_beta_function(a, b), params.dtype)
        return torch.where(lower, tail, log1mexp(tail)).exp().to(params.dtype)

    def mean(self, params):
        a, b = self.concentrations(params)
        return a / (a + b)

    def median(self, params):
        """An approximation, in closed form (inverting the continued-fraction CDF per pixel would cost more
        than scoring): Kerman's (alpha - 1/3) / (alpha + beta - 2/3) where alpha, beta >= 1; where one is
        below 1 the mass piles up at that end, and the median solves that end's power-law tail,
        x^alpha / (alpha B(alpha, beta)) = 1/2 (mirrored for beta), kept on its side of 1/2. The tests
        hold it to scipy's exact median."""
        a, b = self.concentrations(params)
        log_half_b = torch.lgamma(a) + torch.lgamma(b) - torch.lgamma(a + b) - math.log(2.0)  # B(a, b) / 2
        left = torch.exp((torch.log(a) + log_half_b) / a).clamp(max=0.5)
        right = (-torch.expm1((torch.log(b) + log_half_b) / b)).clamp(min=0.5)
        kerman = (a - 1 / 3) / (a + b - 2 / 3)
        return torch.where((a >= 1) & (b >= 1), kerman, torch.where(a <= b, left, right))


if set(FAMILIES) != set(catalog.FAMILY_IDS):
    raise ImportError(
        "families.py and catalog.py disagree: classes without an entry "
        f"{sorted(set(FAMILIES) - set(catalog.FAMILY_IDS))}, "
        f"entries without a class {sorted(set(catalog.FAMILY_IDS) - set(FAMILIES))}"
    )
