"""Hansen (1994) skewed Student-t with mean 0 and variance 1: constants, pdf, cdf, ppf, moments (float64 numpy/scipy).

scipy is imported where it is used (``scipy.special`` for the moments, ``scipy.stats`` only for :func:`cdf` and
:func:`ppf`), so a chunk job that only needs the constants and the persistence does not pay for ``scipy.stats``.

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
    c = math.exp(math.lgamma((eta + 1) / 2) - math.lgamma(eta / 2)) / math.sqrt(math.pi * (eta - 2))
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
    from scipy import stats

    k = hansen_constants(eta, lam)
    z = np.asarray(z, dtype=np.float64)
    s = math.sqrt(eta / (eta - 2))
    left = (1 - lam) * stats.t.cdf(s * (k.b * z + k.a) / (1 - lam), eta)
    right = (1 - lam) / 2 + (1 + lam) * (stats.t.cdf(s * (k.b * z + k.a) / (1 + lam), eta) - 0.5)
    return np.where(z < k.mode_split, left, right)


def ppf(u: np.ndarray | float, eta: float, lam: float) -> np.ndarray:
    """Quantile function of the standardised Hansen skew-t."""
    from scipy import stats

    k = hansen_constants(eta, lam)
    u = np.asarray(u, dtype=np.float64)
    s = math.sqrt(eta / (eta - 2))
    split = (1 - lam) / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        left = (1 - lam) / s * stats.t.ppf(u / (1 - lam), eta)
        right = (1 + lam) / s * stats.t.ppf(0.5 + (u - split) / (1 + lam), eta)
    return (np.where(u < split, left, right) - k.a) / k.b


def _half_t_moments(j: int, eta: np.ndarray, y0: np.ndarray, upper: bool) -> np.ndarray:
    """Truncated moments of ``Y = |T| sqrt((eta-2)/eta)``, ``T ~ t(eta)``: ``E[Y^j 1{Y > y0}]`` (``upper``) or
    ``E[Y^j 1{Y < y0}]``, for ``j < eta`` and ``y0 >= 0``.

    With ``X = T^2/(eta + T^2) ~ Beta(1/2, eta/2)``, ``Y^2 = (eta-2) X/(1-X)``, so
    ``E[Y^j 1{Y < y0}] = (eta-2)^(j/2) B((j+1)/2, (eta-j)/2) / B(1/2, eta/2) * I(x0; (j+1)/2, (eta-j)/2)`` with ``I``
    the regularised incomplete beta function and ``x0 = y0^2 / (eta - 2 + y0^2)``; the upper part uses
    ``1 - I(x0; p, q) = I(1 - x0; q, p)`` (``1 - x0`` computed without cancellation; scipy's ``betaincc`` is ~10x
    slower).
    """
    from scipy import special

    p, q = (j + 1) / 2, (eta - j) / 2
    log_full = (j / 2) * np.log(eta - 2) + special.gammaln(p) + special.gammaln(q)
    log_full -= special.gammaln(0.5) + special.gammaln(eta / 2)
    denominator = eta - 2 + y0 * y0
    fraction = special.betainc(q, p, (eta - 2) / denominator) if upper else special.betainc(p, q, y0 * y0 / denominator)
    return np.exp(log_full) * fraction


def constants_array(eta: np.ndarray | float, lam: np.ndarray | float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Constants ``(a, b, c)`` for arrays of (eta, lam) (no domain check; NaN outside eta > 2, |lam| < 1)."""
    from scipy import special

    eta = np.asarray(eta, dtype=np.float64)
    lam = np.asarray(lam, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        c = np.exp(special.gammaln((eta + 1) / 2) - special.gammaln(eta / 2)) / np.sqrt(np.pi * (eta - 2))
        a = 4 * lam * c * (eta - 2) / (eta - 1)
        b = np.sqrt(1 + 3 * lam**2 - a**2)
    return a, b, c


def partial_moments(k: int, eta: np.ndarray | float, lam: np.ndarray | float) -> np.ndarray:
    """Vectorised ``E[z^k 1{z < 0}]`` over arrays of (eta, lam) (broadcast); ``inf`` where ``k >= eta``.

    Closed form through the composition ``z = (s (1 + s lam) Y - a) / b`` (module docstring), ``Y = |T| sqrt((eta-2)/
    eta)``. Left half (``s = -1``, probability ``(1-lam)/2``): ``z = -((1-lam) Y + a)/b < 0`` iff
    ``Y > -a/(1-lam)``; right half (``s = +1``): ``z = ((1+lam) Y - a)/b < 0`` iff ``Y < a/(1+lam)``. Expanding
    ``z^k`` binomially leaves truncated moments of ``Y`` (:func:`_half_t_moments`). No domain check (NaN outside it).
    """
    if k < 0:
        raise ValueError(f"k must be a non-negative integer, got {k}")
    eta_arr, lam_arr = np.broadcast_arrays(np.asarray(eta, dtype=np.float64), np.asarray(lam, dtype=np.float64))
    finite = k < eta_arr
    eta_ok = np.where(finite, eta_arr, k + 3.0)  # placeholder inside the domain, masked below
    a, b, _c = constants_array(eta_ok, lam_arr)
    left_scale, right_scale = 1 - lam_arr, 1 + lam_arr
    with np.errstate(invalid="ignore", divide="ignore"):
        left_cut = np.maximum(-a / left_scale, 0.0)
        right_cut = np.maximum(a / right_scale, 0.0)
        left = np.zeros_like(eta_ok)
        right = np.zeros_like(eta_ok)
        for j in range(k + 1):
            binom = math.comb(k, j)
            left += binom * left_scale**j * a ** (k - j) * _half_t_moments(j, eta_ok, left_cut, upper=True)
            right += binom * right_scale**j * (-a) ** (k - j) * _half_t_moments(j, eta_ok, right_cut, upper=False)
        total = ((1 - lam_arr) / 2 * (-1) ** k * left + (1 + lam_arr) / 2 * right) / b**k
    return np.where(finite, total, np.inf)


def moments(k: int, eta: np.ndarray | float, lam: np.ndarray | float) -> np.ndarray:
    """Vectorised raw moment ``E[z^k]`` over arrays of (eta, lam); ``inf`` where ``k >= eta``. No domain check."""
    if k < 0:
        raise ValueError(f"k must be a non-negative integer, got {k}")
    eta_arr, lam_arr = np.broadcast_arrays(np.asarray(eta, dtype=np.float64), np.asarray(lam, dtype=np.float64))
    finite = k < eta_arr
    eta_ok = np.where(finite, eta_arr, k + 3.0)
    a, b, _c = constants_array(eta_ok, lam_arr)
    zero = np.zeros_like(eta_ok)
    with np.errstate(invalid="ignore", divide="ignore"):
        total = np.zeros_like(eta_ok)
        for j in range(k + 1):
            m_j = _half_t_moments(j, eta_ok, zero, upper=True)  # E[Y^j]
            halves = (1 - lam_arr) / 2 * (-(1 - lam_arr)) ** j + (1 + lam_arr) / 2 * (1 + lam_arr) ** j
            total += math.comb(k, j) * (-a) ** (k - j) * halves * m_j
        total = total / b**k
    return np.where(finite, total, np.inf)


@lru_cache(maxsize=4096)
def partial_moment(k: int, eta: float, lam: float) -> float:
    """``E[z^k 1{z < 0}]`` (finite for k < eta, else ``inf``); closed form, see :func:`partial_moments`."""
    check_skewt(eta, lam)
    # one-element arrays, not 0-d scalars: numpy's scalar power differs from the array ufunc in the last bit, and the
    # samplers' batch check (partial_moments on arrays) must decide exactly like check_parameters
    return float(partial_moments(k, np.array([eta]), np.array([lam]))[0])


@lru_cache(maxsize=4096)
def moment(k: int, eta: float, lam: float) -> float:
    """Raw moment ``E[z^k]`` (finite for k < eta, else ``inf``; E z = 0, E z^2 = 1); closed form."""
    check_skewt(eta, lam)
    return float(moments(k, np.array([eta]), np.array([lam]))[0])  # arrays, as in partial_moment


def prob_negative(eta: float, lam: float) -> float:
    """``P(z < 0)``."""
    return float(cdf(0.0, eta, lam))
