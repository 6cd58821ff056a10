"""Exact reference values the report compares the simulated densities with (independent of the model code).

One statistic per model with a closed form valid for every parameter set and horizon:

* ``gjrgarch_normalized``: variance of the cumulative return,
  ``Var(R_H) = H + (sigma0_sq - 1) (1 - P^H) / (1 - P)`` with persistence ``P = alpha + beta + gamma E[z^2 1{z<0}]``
  of Hansen's skew-t (the partial moment by quadrature of the density).
* ``rough_heston``: mean of the log-return, ``E X_T = -1/2 int_0^T E V_t dt`` with
  ``E V_t = theta + (v0 - theta) E_alpha(-kappa t^alpha)``, so
  ``E X_T = -T/2 (theta + (v0 - theta) E_{alpha,2}(-kappa T^alpha))`` (Mittag-Leffler series).
* ``rough_bergomi``: mean of the log-return, ``E X_T = -xi0 T / 2`` (flat forward variance xi0).

Horizons are in model steps; the rough models' time is ``T = horizon * dt``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from functools import lru_cache

import numpy as np

#: Beyond this |z| the alternating Mittag-Leffler series loses float64 accuracy; no reference is given.
MITTAG_LEFFLER_MAX_ABS_Z = 15.0


@lru_cache(maxsize=4096)
def hansen_negative_second_moment(eta: float, lam: float) -> float:
    """``E[z^2 1{z<0}]`` of Hansen's (1994) skew-t with ``eta`` degrees of freedom and asymmetry ``lam``."""
    from scipy import integrate, special

    c = math.exp(special.gammaln((eta + 1) / 2) - special.gammaln(eta / 2)) / math.sqrt(math.pi * (eta - 2))
    a = 4 * lam * c * (eta - 2) / (eta - 1)
    b = math.sqrt(1 + 3 * lam**2 - a**2)

    def density(z: float) -> float:
        scale = 1 - lam if z < -a / b else 1 + lam
        return b * c * (1 + ((b * z + a) / scale) ** 2 / (eta - 2)) ** (-(eta + 1) / 2)

    split = min(-a / b, 0.0)
    left, _ = integrate.quad(lambda z: z * z * density(z), -np.inf, split, limit=200)
    middle, _ = integrate.quad(lambda z: z * z * density(z), split, 0.0, limit=200) if split < 0 else (0.0, 0.0)
    return left + middle


def garch_variance(params: Mapping[str, float], horizon: int) -> float:
    """Exact ``Var(R_H)`` of the normalised GJR-GARCH (unconditional variance 1, first-return variance sigma0_sq)."""
    m2neg = hansen_negative_second_moment(float(params["eta"]), float(params["lam"]))
    persistence = params["alpha"] + params["beta"] + params["gamma"] * m2neg
    return horizon + (params["sigma0_sq"] - 1) * (1 - persistence**horizon) / (1 - persistence)


def mittag_leffler(z: float, a: float, b: float, terms: int = 400) -> float:
    """Two-parameter Mittag-Leffler function ``E_{a,b}(z) = sum_k z^k / Gamma(a k + b)`` (series; moderate |z|)."""
    from scipy import special

    k = np.arange(terms)
    log_terms = k * math.log(abs(z)) - special.gammaln(a * k + b) if z != 0 else None
    if log_terms is None:
        return float(special.rgamma(b))
    signs = np.sign(z) ** k
    return float(np.sum(signs * np.exp(log_terms)))


def rough_heston_mean(params: Mapping[str, float], horizon_time: float) -> float | None:
    """Exact ``E[X_T]`` of rough Heston at time ``T`` (None where the series is not accurate)."""
    alpha, kappa, theta, v0 = params["alpha"], params["kappa"], params["theta"], params["v0"]
    z = -kappa * horizon_time**alpha
    if abs(z) > MITTAG_LEFFLER_MAX_ABS_Z:
        return None
    integral = horizon_time * (theta + (v0 - theta) * mittag_leffler(z, alpha, 2.0))
    return -0.5 * integral


def rough_bergomi_mean(params: Mapping[str, float], horizon_time: float) -> float:
    """Exact ``E[X_T] = -xi0 T / 2`` of rough Bergomi with a flat forward variance ``xi0``."""
    return -0.5 * params["xi0"] * horizon_time


def reference(
    model: str,
    params: Mapping[str, float],
    horizon: int,
    dt: float | None,
    moments: Mapping[str, float],
    num_paths: int,
) -> dict[str, float] | None:
    """Reference comparison for one (parameter set, horizon) row.

    ``moments`` holds the row's ``mean``, ``std``, ``kurt`` (excess). Returns ``statistic`` name, ``simulated``,
    ``exact``, ``std_error`` (Monte Carlo) and ``z``; None when the model has no reference for this row (GJR-GARCH
    rows with ``kurt`` NaN: without a finite 4th moment the sample variance has no standard error).
    """
    std, kurt = float(moments["std"]), float(moments["kurt"])
    if model == "gjrgarch_normalized":
        if not math.isfinite(kurt):  # no finite 4th moment (eta <= 4): the sample variance has no standard error
            return None
        statistic, exact, simulated = "variance", garch_variance(params, horizon), std**2
        # Var(s^2) ~= sigma^4 (excess kurtosis + 2) / N for iid paths; the sample kurtosis stands in for the true one.
        std_error = simulated * math.sqrt(max(kurt + 2.0, 0.0) / num_paths)
    elif model in ("rough_heston", "rough_bergomi"):
        if dt is None or not math.isfinite(dt):
            return None
        horizon_time = horizon * dt
        exact_mean = (
            rough_heston_mean(params, horizon_time)
            if model == "rough_heston"
            else (rough_bergomi_mean(params, horizon_time) if "xi0" in params else None)
        )
        if exact_mean is None:
            return None
        statistic, exact, simulated = "mean", exact_mean, float(moments["mean"])
        std_error = std / math.sqrt(num_paths)  # standard error of a sample mean of iid paths
    else:
        return None
    z = (simulated - exact) / std_error if std_error > 0 else float("nan")
    return {"statistic": statistic, "simulated": simulated, "exact": exact, "std_error": std_error, "z": z}
