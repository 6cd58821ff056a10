"""Hansen (1994) skewed Student-t with mean 0 and variance 1: constants, pdf, cdf, ppf, moments (float64 numpy/scipy).

Density (eta > 2, |lam| < 1), with ``c = Gamma((eta+1)/2) / (sqrt(pi (eta-2)) Gamma(eta/2))``,
``a = 4 lam c (eta-2)/(eta-1)``, ``b = sqrt(1 + 3 lam^2 - a^2)``::

    g(z) = b c (1 + ((b z + a) / (1 - lam))^2 / (eta - 2))^(-(eta+1)/2)   for z < -a/b
    g(z) = b c (1 + ((b z + a) / (1 + lam))^2 / (eta - 2))^(-(eta+1)/2)   for z >= -a/b

Equivalently (composition, used by the sampler): with ``s = -1`` w.p. ``(1-lam)/2`` else ``+1`` and ``T ~ t(eta)``
independent, ``z = (s |T| (1 + s lam) sqrt((eta-2)/eta) - a) / b``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import integrate, special, stats


def check_skewt(eta: float, lam: float) -> None:
    """Raise ``ValueError`` naming the parameter if (eta, lam) is outside eta > 2, |lam| < 1."""
    if not (math.isfinite(eta) and eta > 2):
        raise ValueError(f"parameter 'eta' must be > 2, got {eta}")
    if not (math.isfinite(lam) and abs(lam) < 1):
        raise ValueError(f"parameter 'lam' must satisfy |lam| < 1, got {lam}")


@dataclass(frozen=True)
class HansenConstants:
    """The constants a, b, c of the Hansen skew-t density."""

    eta: float
    lam: float
    a: float
    b: float
    c: float

    @property
    def mode_split(self) -> float:
        """The point ``-a/b`` where the density switches between its two halves."""
        return -self.a / self.b


@lru_cache(maxsize=4096)
def hansen_constants(eta: float, lam: float) -> HansenConstants:
    """Constants a, b, c for (eta, lam)."""
    check_skewt(eta, lam)
    c = math.exp(special.gammaln((eta + 1) / 2) - special.gammaln(eta / 2)) / math.sqrt(math.pi * (eta - 2))
    a = 4 * lam * c * (eta - 2) / (eta - 1)
    b = math.sqrt(1 + 3 * lam**2 - a**2)
    return HansenConstants(eta, lam, a, b, c)


def pdf(z: np.ndarray | float, eta: float, lam: float) -> np.ndarray:
    """Density of the standardised Hansen skew-t."""
    k = hansen_constants(eta, lam)
    z = np.asarray(z, dtype=np.float64)
    scale = np.where(z < k.mode_split, 1 - lam, 1 + lam)
    y = (k.b * z + k.a) / scale
    return k.b * k.c * (1 + y * y / (eta - 2)) ** (-(eta + 1) / 2)


def cdf(z: np.ndarray | float, eta: float, lam: float) -> np.ndarray:
    """Distribution function of the standardised Hansen skew-t."""
    k = hansen_constants(eta, lam)
    z = np.asarray(z, dtype=np.float64)
    s = math.sqrt(eta / (eta - 2))
    left = (1 - lam) * stats.t.cdf(s * (k.b * z + k.a) / (1 - lam), eta)
    right = (1 - lam) / 2 + (1 + lam) * (stats.t.cdf(s * (k.b * z + k.a) / (1 + lam), eta) - 0.5)
    return np.where(z < k.mode_split, left, right)


def ppf(u: np.ndarray | float, eta: float, lam: float) -> np.ndarray:
    """Quantile function of the standardised Hansen skew-t."""
    k = hansen_constants(eta, lam)
    u = np.asarray(u, dtype=np.float64)
    s = math.sqrt(eta / (eta - 2))
    split = (1 - lam) / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        left = (1 - lam) / s * stats.t.ppf(u / (1 - lam), eta)
        right = (1 + lam) / s * stats.t.ppf(0.5 + (u - split) / (1 + lam), eta)
    return (np.where(u < split, left, right) - k.a) / k.b


def _integrate(func, lo: float, hi: float) -> float:
    value, _ = integrate.quad(func, lo, hi, limit=400, epsabs=1e-13, epsrel=1e-12)
    return float(value)


@lru_cache(maxsize=4096)
def partial_moment(k: int, eta: float, lam: float) -> float:
    """``E[z^k 1{z < 0}]`` (finite for k < eta)."""
    if k >= eta:
        return math.inf
    split = hansen_constants(eta, lam).mode_split
    f = lambda z: z**k * float(pdf(z, eta, lam))  # noqa: E731
    cut = min(split, 0.0)
    total = _integrate(f, -math.inf, cut)
    if cut < 0.0:
        total += _integrate(f, cut, 0.0)
    return total


@lru_cache(maxsize=4096)
def moment(k: int, eta: float, lam: float) -> float:
    """Raw moment ``E[z^k]`` (finite for k < eta; E z = 0, E z^2 = 1)."""
    if k >= eta:
        return math.inf
    split = hansen_constants(eta, lam).mode_split
    f = lambda z: z**k * float(pdf(z, eta, lam))  # noqa: E731
    return _integrate(f, -math.inf, split) + _integrate(f, split, math.inf)


def prob_negative(eta: float, lam: float) -> float:
    """``P(z < 0)``."""
    return float(cdf(0.0, eta, lam))
