"""Numerical building blocks of the output families: log-space CDFs, bin masses, quadrature.

Kept apart from families.py so a family's code is its class and the helpers it names: each train job's
fingerprint (vaebench.fingerprint) follows those names, so editing a helper here retrains exactly the
families that use it. Every function runs in the dtype and on the device of its inputs. The conventions
(what a bin is, which tail a bin mass comes from) are in docs/likelihoods.md.

Several helpers avoid expm1, log1p, where and erfcx on purpose: torch.compile does not vectorise them on
CPU, and evaluation compiles the families' math.
"""

import math
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor
from torch.distributions import Distribution

LN2 = math.log(2.0)
SQRT_HALF = math.sqrt(0.5)
HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)
LOG_NDTR_TAIL = -12.0  # below: log_ndtr's asymptotic series (erfc underflows in float32 near -13)
# (-1)^k (2k-1)!!, k = 1..10: Phi(z) = phi(z)/(-z) (1 + sum_k c_k z^-2k) as z -> -inf; at z <= -12 the
# first omitted term is below 1e-13
_MILLS_SERIES = tuple((-1) ** k * math.prod(range(1, 2 * k, 2)) for k in range(1, 11))


# ------------------------------------------------------------------------------------- log space

def log1mexp(t: Tensor) -> Tensor:
    """log(1 - e^t) for t <= 0, from one tanh: 1 - e^t = -2 tanh(t/2) / (1 - tanh(t/2)).

    Relative accuracy near t = 0, where 1 - e^t cancels (narrow bins); absolute accuracy (error below the
    dtype's eps) where the result is near 0, which is all a sum of log-probabilities can see. Finite
    gradient at t = -inf. No expm1 / log1p, which torch.compile does not vectorise on CPU.
    """
    h = torch.tanh(t / 2)
    return torch.log(-2 * h / (1 - h))


def log_expm1(d: Tensor) -> Tensor:
    """log(e^d - 1) for d > 0, stable for tiny and huge d."""
    return d + log1mexp(-d)


def log_bin_mass(log_big: Tensor, log_small: Tensor, open_edge: Tensor) -> Tensor:
    """log(e^big - e^small), a CDF (or survival) difference in log space; small := 0 where the bin is open."""
    small = log_small.masked_fill(open_edge, -math.inf)
    return log_big + log1mexp(small - log_big)


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


# ------------------------------------------------------------------------------ standard log-CDFs

def log_ndtr(z: Tensor) -> Tensor:
    """log Phi(z) of the standard normal from one erfc, or the asymptotic series below LOG_NDTR_TAIL.

    Same numbers as torch.special.log_ndtr (the tests check it against scipy), but built from ops that
    torch.compile vectorises: torch's log_ndtr calls a scalar erfcx per element.
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


def laplace_log_cdf(z: Tensor) -> Tensor:
    """log F(z) of the standard Laplace, closed form on each side of 0."""
    return torch.where(z <= 0, z.clamp(max=0) - LN2, torch.log(1 - 0.5 * torch.exp(-z.clamp(min=0))))


# --------------------------------------------------------------------------- incomplete beta

def _betacf(a: Tensor, b: Tensor, x: Tensor, max_steps: int = 300, check_every: int = 8) -> Tensor:
    """Continued fraction of the incomplete beta function (modified Lentz, Numerical Recipes 6.4).

    Converges fast for x < (a+1)/(a+b+2), the side beta_log_tails calls it on; most elements need a few
    steps, a few need many. Every `check_every` steps the converged elements are stored and dropped, so
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
    the other tail from log1mexp. torch has no Beta CDF."""
    lower = x < (a + 1) / (a + b + 2)
    p, q = torch.where(lower, a, b), torch.where(lower, b, a)
    y = torch.where(lower, x, 1 - x)
    log_beta = torch.lgamma(p) + torch.lgamma(q) - torch.lgamma(p + q)
    log_direct = (p * torch.log(y) + q * torch.log1p(-y) - torch.log(p) - log_beta
                  + torch.log(_betacf(p, q, y))).clamp(max=0)
    log_other = log1mexp(log_direct)
    return torch.where(lower, log_direct, log_other), torch.where(lower, log_other, log_direct)


# ------------------------------------------------------------------- moments in logit space

# Breakpoints of the composite Gauss-Legendre rule for logit-space moments: in units of the noise scale
# around loc, and in logit space around the sigmoid's step (all kinks and fast changes fall on them).
_NOISE_BREAKS = (0, 0.5, 1, 2, 3, 4, 6, 9, 14, 22, 40)
_SIGMOID_BREAKS = (0, 1, 2, 4, 7, 12, 20, 40)
_NODES_PER_PANEL = 8


def _gauss_legendre(n: int, like: Tensor) -> tuple[Tensor, Tensor]:
    x, w = np.polynomial.legendre.leggauss(n)
    return like.new_tensor(x), like.new_tensor(w)


def _symmetric(breaks, like: Tensor) -> Tensor:
    b = like.new_tensor(breaks[1:])
    return torch.cat([-b.flip(0), like.new_zeros(1), b])


def logit_moments(distribution: Callable[[Tensor, Tensor], Distribution], loc: Tensor,
                  scale: Tensor) -> tuple[Tensor, Tensor]:
    """Mean and variance of sigmoid(Y), Y ~ distribution(loc, scale) a symmetric location-scale noise, by
    composite Gauss-Legendre quadrature.

    Gauss-Hermite/Laguerre fail when the scale is large: the sigmoid's step (width 1/scale in noise units)
    falls between nodes. Here panels are cut at the noise's breakpoints loc + scale*t and at the sigmoid's
    breakpoints, so each panel is smooth on its own scale; the noise beyond 40 scales is dropped
    (< 1e-17). The variance is accumulated around sigmoid(loc) so it does not cancel for tiny scales.
    """
    edges = torch.cat([loc[..., None] + scale[..., None] * _symmetric(_NOISE_BREAKS, loc),
                       _symmetric(_SIGMOID_BREAKS, loc).expand(*loc.shape, -1)], -1).sort(-1).values
    nodes, weights = _gauss_legendre(_NODES_PER_PANEL, loc)
    base = distribution(loc[..., None], scale[..., None])
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
