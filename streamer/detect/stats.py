"""Small, dependency-free statistics for the detector (pure functions)."""

from __future__ import annotations

import math
from statistics import NormalDist

_NORMAL = NormalDist()
# Smallest tail probability we convert to a z-score: below it, inv_cdf loses meaning.
_P_FLOOR = 1e-300


def proportion_z(x: int, n: int, p0: float, n0: float) -> float:
    """z of the window share x/n against a baseline share p0 estimated from n0 messages.

    Above the baseline, the z is read off the exact binomial tail P(X >= x | n, p0):
    with tens of messages and shares near 0.1 the normal approximation understates
    that tail by an order of magnitude, which is where false alerts come from. It is
    then shrunk by sqrt(n0 / (n + n0)), the ratio of the window-only to the
    two-proportion standard error, so a baseline learned from few messages asks for
    more evidence.
    """
    if n <= 0 or not 0.0 < p0 < 1.0:
        return 0.0
    if x <= n * p0:
        var = p0 * (1.0 - p0) / n
        z = (x / n - p0) / math.sqrt(var)
    else:
        z = z_from_p(binom_sf(x, n, p0))
    return z * math.sqrt(n0 / (n + n0)) if n0 > 0 else z


def binom_sf(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p), summed from k upwards (for k above the mean)."""
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    log_term = (math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
                + k * math.log(p) + (n - k) * math.log1p(-p))
    term, total, i = math.exp(log_term), 0.0, k
    ratio = p / (1.0 - p)
    while i <= n and term > total * 1e-17:
        total += term
        term *= (n - i) / (i + 1) * ratio
        i += 1
    return min(1.0, total)


def poisson_sf(k: int, lam: float) -> float:
    """P(X >= k) for X ~ Poisson(lam), summed from the upper tail (no cancellation)."""
    if k <= 0:
        return 1.0
    if lam <= 0:
        return 0.0
    if k <= lam:
        # The tail holds most of the mass here; the lower sum is the accurate side.
        term = math.exp(-lam)
        lower = term
        for i in range(1, k):
            term *= lam / i
            lower += term
        return max(0.0, 1.0 - lower)
    log_term = -lam + k * math.log(lam) - math.lgamma(k + 1)
    term, total, i = math.exp(log_term), 0.0, k
    while term > total * 1e-17 and i < k + 10_000:
        total += term
        i += 1
        term *= lam / i
    return min(1.0, total)


def z_from_p(p: float) -> float:
    """The one-sided normal z with the same tail probability as ``p``."""
    p = min(max(p, _P_FLOOR), 0.5)
    return -_NORMAL.inv_cdf(p)
