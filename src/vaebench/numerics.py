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

from vaebench.units import LN2

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
    e = 0.5 * torch.erfc(-u * SQRT_HALF)  # Phi(-|z|)
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

# Stirling series of log Gamma(w) - [(w - 1/2) log w - w + log sqrt(2 pi)], coefficients of w^-1, w^-3, ...,
# w^-13; at w >= 8 the first omitted term is below 1e-15
_STIRLING_SERIES = (1 / 12, -1 / 360, 1 / 1260, -1 / 1680, 1 / 1188, -691 / 360360, 1 / 156)
_STIRLING_SHIFT = 8


def _stirling_series(w: Tensor | float) -> Tensor | float:
    r = 1 / w
    series = 0.0
    for coef in reversed(_STIRLING_SERIES):
        series = series * r * r + coef
    return series * r


def log_beta_function(a: Tensor, b: Tensor) -> Tensor:
    """log B(a, b) = lgamma(a) + lgamma(b) - lgamma(a + b), each lgamma(z) as Stirling's series at w = z + 8
    less log(z (z+1) ... (z+7)), and written so that no term is much larger than the result: with
    lgamma(8) = log 7!, the constants cancel and
    log B = g(a) + g(b) - g(a+b) - log(ab / (a+b)) - log(r(a) r(b) / r(a+b)),
    g(z) = (z + 7.5) log(1 + z/8) + z (log 8 - 1) + series(z + 8) - series(8), r(z) = prod_i=1..7 (1 + z/i).
    Meant for float64 (evaluation's Beta): torch's float64 lgamma is a scalar loop in compiled code; this is
    vectorised. Absolute error within about 20 eps * (|log B| + a + b).
    """
    c = a + b
    shift = _STIRLING_SHIFT
    at_shift = _stirling_series(float(shift))

    def g(z):
        return (
            (z + (shift - 0.5)) * torch.log(1 + z / shift)
            + z * (math.log(shift) - 1)
            + (_stirling_series(z + shift) - at_shift)
        )

    def r(z):
        out = 1 + z
        for i in range(2, shift):
            out = out * (1 + z / i)
        return out

    return g(a) + g(b) - g(c) - torch.log(a * b / c) - torch.log(r(a) * r(b) / r(c))


# Depth of _betacf per dtype: its truncation error is largest at a = b = 1e4 (the Beta family's bound) and
# x = 1/2; there it is below a tenth of the dtype's eps at these depths (tests/test_families.py checks it)
BETACF_STEPS_FLOAT32, BETACF_STEPS_FLOAT64 = 60, 110
BETACF_NEAR_STEPS = 12  # the levels nearest the value, always in the inputs' dtype (float64 in evaluation)
_BETACF_RESCALE = 3  # steps between rescalings: float32 cannot hold more growth (up to ~2.5e8 per step)


def _betacf(
    p: Tensor, q: Tensor, y: Tensor, y1: Tensor, lam: Tensor, dtype: torch.dtype | None = None
) -> Tensor:
    """T with I_y(p, q) = y^p (1 - y)^q / (B(p, q) T), given y1 = 1 - y and lam = p - (p + q) y accurately.

    The continued fraction of the incomplete beta (Numerical Recipes 6.4) is T_0 with T_n = (p + n) +
    N_n+1 / T_n+1, N_2m = m (q - m) y, N_2m+1 = -(p + m)(p + q + m) y. Taken two levels at a time, as in
    Didonato and Morris's BFRAC, T_2m = (E_m + (p + 2m) N_2m+2 / T_2m+2) / T_2m+1 with
    E_m = (p + m)(lam + m y1) + p + 2m (p + 1) + 3m^2: near y = (p+1)/(p+q+2), where T_2m is a small
    difference of terms of size p, the difference is lam, given. Evaluated backwards from a fixed depth
    (BETACF_STEPS_* for `dtype`), started at the fixed point of the step there: no host sync, static shapes,
    one fused kernel under torch.compile. The deep levels run in `dtype` (default: the inputs'); the value
    depends on them less and less with depth, so the last BETACF_NEAR_STEPS levels in the inputs' dtype give
    it their precision, which a tail near 1 needs (the other tail is its complement). The ratio is carried as
    P / Q (products and sums only), rescaled to Q = 1 every _BETACF_RESCALE steps. Converges on the side
    beta_log_tail calls it on, y < (p+1)/(p+q+2).
    """
    dtype = dtype or p.dtype
    steps = BETACF_STEPS_FLOAT32 if torch.finfo(dtype).eps > 1e-10 else BETACF_STEPS_FLOAT64
    deep = _betacf_coefficients(*(t.to(dtype) for t in (p, q, y, y1, lam)))
    t = _betacf_levels(deep, _betacf_fixed_point(deep, steps), range(steps - 1, BETACF_NEAR_STEPS - 1, -1))
    near = _betacf_coefficients(p, q, y, y1, lam)
    return _betacf_levels(near, t.to(p.dtype), range(BETACF_NEAR_STEPS - 1, -1, -1))


def _betacf_coefficients(p: Tensor, q: Tensor, y: Tensor, y1: Tensor, lam: Tensor) -> tuple[Tensor, ...]:
    """(p, y, qy, e0, e1, e2) with E_m = e0 + m e1 + m^2 e2 (each positive on the fast side, where
    lam > 2y - 1) and N_2m+2 = (m+1) qy - (m+1)^2 y."""
    return p, y, q * y, p * (lam + 1), p * y1 + lam + 2 * p + 2, y1 + 3


def _betacf_step(coefficients: tuple[Tensor, ...], m: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(E_m, N_2m+2, p + 2m, p + 2m + 1): T_2m = (E_m + (p + 2m) N / T_2m+2) / (p + 2m + 1 + N / T_2m+2)."""
    p, y, qy, e0, e1, e2 = coefficients
    return (e2 * m + e1) * m + e0, (m + 1) * qy - (m + 1) ** 2 * y, p + 2 * m, p + (2 * m + 1)


def _betacf_fixed_point(coefficients: tuple[Tensor, ...], depth: int) -> Tensor:
    """T_2N at the truncation depth N: the T with T = step(T) for the coefficients of level N, the root of
    c1 T^2 - (E - N) T - c N = 0."""
    e, n, c, c1 = _betacf_step(coefficients, depth)
    d = e - n
    return (d + (d * d + 4 * c1 * c * n).clamp(min=0).sqrt()) / (2 * c1)


def _betacf_levels(coefficients: tuple[Tensor, ...], t: Tensor, levels: range) -> Tensor:
    """T_2m for the last m of `levels` (descending), from T = t at the level above the first."""
    big, small = t, torch.ones_like(t)  # T as P / Q
    for m in levels:
        e, n, c, c1 = _betacf_step(coefficients, m)
        n_small = n * small
        big, small = e * big + c * n_small, c1 * big + n_small
        if m % _BETACF_RESCALE == 0 and m != levels[-1]:
            big, small = big / small, torch.ones_like(small)
    return big / small


def beta_log_tail(
    a: Tensor, b: Tensor, x: Tensor, log_beta: Tensor, cf_dtype: torch.dtype | None = None
) -> tuple[Tensor, Tensor]:
    """(log_tail, lower): the log of Beta(a, b)'s tail on the fast side of the continued fraction at x in
    (0, 1), log F(x) where `lower`, log S(x) elsewhere, given log_beta = log B(a, b). torch has no Beta CDF.

    The prefactor a log x + b log(1 - x) - log B cancels to a few nats from terms of size a + b, the
    continued fraction needs p - (p + q) y without cancellation, and a tail near 1 stands for the other one
    by complement: all are computed in the inputs' dtype (float64 in evaluation), and the deep levels of the
    continued fraction in `cf_dtype` (default: the inputs' dtype; see _betacf).
    """
    lower = x < (a + 1) / (a + b + 2)
    p, q = torch.where(lower, a, b), torch.where(lower, b, a)
    y, y1 = torch.where(lower, x, 1 - x), torch.where(lower, 1 - x, x)
    t = _betacf(p, q, y, y1, p - (p + q) * y, cf_dtype)
    return (a * torch.log(x) + b * torch.log(1 - x) - log_beta - torch.log(t)).clamp(max=0), lower


# ------------------------------------------------------------------- moments in logit space

# Breakpoints of the composite Gauss-Legendre rule for logit-space moments: in units of the noise scale
# around loc, and in logit space around the sigmoid's step (all kinks and fast changes fall on them).
_NOISE_BREAKS = (0, 0.5, 1, 2, 3, 4, 6, 9, 14, 22, 40)
_SIGMOID_BREAKS = (0, 1, 2, 4, 7, 12, 20, 40)
# 5 nodes per panel: the mean is within 1e-9 of an adaptive quadrature for loc in [-20, 15] and scale in
# [1e-3, 30] (an intensity in [0, 1]; tests/test_families.py checks it); 8 nodes cost 8/5 as much for
# digits no picture shows
_NODES_PER_PANEL = 5


def _gauss_legendre(n: int, like: Tensor) -> tuple[Tensor, Tensor]:
    x, w = np.polynomial.legendre.leggauss(n)
    return like.new_tensor(x), like.new_tensor(w)


def _symmetric(breaks, like: Tensor) -> Tensor:
    b = like.new_tensor(breaks[1:])
    return torch.cat([-b.flip(0), like.new_zeros(1), b])


def logit_moments(
    distribution: Callable[[Tensor, Tensor], Distribution], loc: Tensor, scale: Tensor
) -> tuple[Tensor, Tensor]:
    """Mean and variance of sigmoid(Y), Y ~ distribution(loc, scale) a symmetric location-scale noise, by
    composite Gauss-Legendre quadrature.

    Gauss-Hermite/Laguerre fail when the scale is large: the sigmoid's step (width 1/scale in noise units)
    falls between nodes. Here panels are cut at the noise's breakpoints loc + scale*t and at the sigmoid's
    breakpoints, so each panel is smooth on its own scale; the noise beyond 40 scales is dropped
    (< 1e-17). The variance is accumulated around sigmoid(loc) so it does not cancel for tiny scales.
    """
    edges = (
        torch.cat(
            [
                loc[..., None] + scale[..., None] * _symmetric(_NOISE_BREAKS, loc),
                _symmetric(_SIGMOID_BREAKS, loc).expand(*loc.shape, -1),
            ],
            -1,
        )
        .sort(-1)
        .values
    )
    nodes, weights = _gauss_legendre(_NODES_PER_PANEL, loc)
    base = distribution(loc[..., None], scale[..., None])
    centre = torch.sigmoid(loc)
    first = torch.zeros_like(loc)
    second = torch.zeros_like(loc)
    for j in range(edges.shape[-1] - 1):
        a, b = edges[..., j : j + 1], edges[..., j + 1 : j + 2]
        half = (b - a) / 2
        y = a + half * (nodes + 1)  # [..., nodes]
        w = half * weights * base.log_prob(y).exp()
        g = torch.sigmoid(y) - centre[..., None]
        first = first + (w * g).sum(-1)
        second = second + (w * g * g).sum(-1)
    return centre + first, (second - first**2).clamp_min(0)
