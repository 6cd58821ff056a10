"""GJR-GARCH(1,1) with Hansen (1994) skew-t innovations, normalised to unconditional variance 1.

::

    r_t = sqrt(h_t) z_t,   z_t iid Hansen skew-t(eta, lam), E z = 0, E z^2 = 1
    h_{t+1} = omega + (alpha + gamma 1{z_t < 0}) h_t z_t^2 + beta h_t
    P = alpha + beta + gamma m2neg,   m2neg = E[z^2 1{z < 0}]   (not 1/2 when lam != 0)
    omega = 1 - P,   h_1 = sigma0_sq   (the variance of the FIRST return)

One model step is one return; the recursion is exact (only Monte Carlo error).

Sampler (exact in distribution, rejection-free, two uniforms per draw): a Student-t by Bailey's (1994) polar method
written in polar coordinates, ``T = cos(theta) sqrt(eta (W^(-2/eta) - 1))`` with ``W ~ U(0, 1]`` and an independent
uniform angle; the Hansen variate is the composition ``z = (s |T| (1 + s lam) sqrt((eta-2)/eta) - a) / b`` with
``P(s = -1) = (1 - lam)/2``. One uniform gives both the sign ``s`` and the (re-scaled, independent) angle (step kernel:
:mod:`density_engine.models.kernels.gjrgarch`). The engine's uniforms are ``(w + 1/2) 2^-32`` of 32-bit words, so
``W >= 2^-33`` and the t tail is capped at ``|T| <= sqrt(eta (2^(66/eta) - 1))`` (probability < 2.4e-10 per draw).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import ClassVar

import numpy as np

from density_engine.models import skewt
from density_engine.models.base import MAX_MOMENT_ORDER, Model, Parameter, SchemeTables, TimeGrid


def persistence(alpha: float, gamma: float, beta: float, eta: float, lam: float) -> float:
    """``P = alpha + beta + gamma E[z^2 1{z<0}]`` for Hansen skew-t innovations."""
    return alpha + beta + gamma * skewt.partial_moment(2, eta, lam)


def persistence_array(
    alpha: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eta: np.ndarray, lam: np.ndarray
) -> np.ndarray:
    """Vectorised :func:`persistence` (same arithmetic, so the same floats; NaN outside the skew-t domain)."""
    return alpha + beta + gamma * skewt.partial_moments(2, eta, lam)


class GJRGarchNormalized(Model):
    """GJR-GARCH(1,1), Hansen skew-t innovations, unconditional variance 1 (omega = 1 - persistence)."""

    model_name: ClassVar[str] = "gjrgarch_normalized"
    description: ClassVar[str] = (
        "GJR-GARCH(1,1) with Hansen (1994) skew-t innovations (mean 0, variance 1), omega = 1 - persistence so the "
        "unconditional variance is 1; sigma0_sq is the variance of the first return; one step = one return."
    )
    parameters: ClassVar[tuple[Parameter, ...]] = (
        Parameter("alpha", 0.0, 1.0, upper_open=True, description="ARCH coefficient", default_range=(0.02, 0.08)),
        Parameter(
            "gamma",
            -1.0,
            1.0,
            upper_open=True,
            description="leverage coefficient on negative shocks (alpha + gamma >= 0)",
            default_range=(0.0, 0.10),
        ),
        Parameter("beta", 0.0, 1.0, upper_open=True, description="GARCH coefficient", default_range=(0.78, 0.85)),
        Parameter(
            "eta",
            2.0,
            math.inf,
            lower_open=True,
            upper_open=True,
            description="skew-t degrees of freedom",
            default_range=(4.0, 30.0),
        ),
        Parameter(
            "lam",
            -1.0,
            1.0,
            lower_open=True,
            upper_open=True,
            description="skew-t asymmetry (negative: left skew)",
            default_range=(-0.3, 0.1),
        ),
        Parameter(
            "sigma0_sq",
            0.0,
            math.inf,
            lower_open=True,
            upper_open=True,
            description="variance of the first return (unconditional variance is 1)",
            default_range=(0.5, 2.0),
        ),
    )

    @classmethod
    def _check_joint(cls, params: Mapping[str, float]) -> None:
        if params["alpha"] + params["gamma"] < 0:
            total = params["alpha"] + params["gamma"]
            raise ValueError(f"gjrgarch_normalized: parameters 'alpha' + 'gamma' must be >= 0, got {total}")
        p = persistence(params["alpha"], params["gamma"], params["beta"], params["eta"], params["lam"])
        if not p < 1.0:
            raise ValueError(
                "gjrgarch_normalized: persistence alpha + beta + gamma*E[z^2 1{z<0}] of parameters "
                f"'alpha', 'beta', 'gamma' (with 'eta', 'lam') must be < 1, got {p:.6f}"
            )

    @classmethod
    def _joint_valid_mask(cls, columns: Mapping[str, np.ndarray], in_domain: np.ndarray) -> np.ndarray:
        alpha, gamma, beta = columns["alpha"], columns["gamma"], columns["beta"]
        eta = np.where(in_domain, columns["eta"], 6.0)  # out-of-domain rows are masked anyway
        lam = np.where(in_domain, columns["lam"], 0.0)
        with np.errstate(invalid="ignore"):
            p = persistence_array(alpha, gamma, beta, eta, lam)
            return (alpha + gamma >= 0) & (p < 1.0)

    kernel: ClassVar[str] = "density_engine.models.kernels.gjrgarch:GJRGarchKernel"
    moments_note: ClassVar[str] = (
        "`kurt` is NaN where eta <= 4: the skew-t innovations have no finite 4th moment, so neither has the "
        "cumulative return (its sample kurtosis would be noise); likewise `skew` is NaN where eta <= 3 (no finite 3rd "
        "moment). The variance is finite for every eta > 2."
    )

    @classmethod
    def finite_moments_array(cls, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        """E|z|^k is finite iff k < eta (Student-t tails), and a sum of h returns sqrt(h_t) z_t has a finite k-th moment
        iff the innovations do: the highest finite order is ceil(eta) - 1, capped at 4 (always >= 2: eta > 2)."""
        eta = np.asarray(columns["eta"], dtype=np.float64)
        with np.errstate(invalid="ignore"):
            order = np.ceil(eta) - 1.0
        return np.clip(np.nan_to_num(order, nan=2.0), 2, MAX_MOMENT_ORDER).astype(np.int64)

    def _prepare(self) -> None:
        p = self.params
        self.persistence = persistence(p["alpha"], p["gamma"], p["beta"], p["eta"], p["lam"])
        self.omega = 1.0 - self.persistence

    def scheme_tables(self, grid: TimeGrid) -> SchemeTables:
        """Scalars of the recursion and of the skew-t transform (the grid only sets the number of steps)."""
        p = self.params
        eta, lam = p["eta"], p["lam"]
        k = skewt.hansen_constants(eta, lam)
        return SchemeTables(
            scalars={
                "sigma0_sq": p["sigma0_sq"],
                "omega": self.omega,
                "alpha": p["alpha"],
                "gamma": p["gamma"],
                "beta": p["beta"],
                "branch_split": (1.0 - lam) / 2.0,  # P(s = -1)
                "w_neg": (lam - 1.0) / math.pi,  # w = (s + lam) / pi per branch s = -1, +1
                "w_pos": (lam + 1.0) / math.pi,
                "inv_w_neg": math.pi / (lam - 1.0),
                "inv_w_pos": math.pi / (lam + 1.0),
                "neg_two_over_eta": -2.0 / eta,
                "radius_scale": math.pi**2 * (eta - 2.0) / k.b**2,
                "a_over_b": k.a / k.b,
            }
        )
