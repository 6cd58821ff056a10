"""Rough Heston model simulated with the iVi scheme (integrated-variance implicit scheme, inverse-Gaussian sampling).

Model (parameters kappa, theta, sigma, rho, alpha = H + 1/2, v0; zero rates; time in years):

    V_t = v0 + 1/Gamma(alpha) int_0^t (t-s)^(alpha-1) [kappa (theta - V_s) ds + sigma sqrt(V_s) dB_s]
    dX_t = -V_t/2 dt + sqrt(V_t) dW_t,    d<W, B>_t = rho dt,    X = log(S_t / S_0)

Scheme (Abi Jaber et al., arXiv 2504.19885), on a uniform fine grid t_i = i * h (the workflow: each horizon on its own
grids, ``time_grid``; the model API: h = dt / substeps). With U = int V dt,
Z = int sqrt(V) dB, Kbar(t) = t^alpha / Gamma(alpha + 1), g0(t) = v0 t + kappa theta t^(alpha+1) / Gamma(alpha+2):

    a_i = g0(t_{i+1}) - g0(t_i) + sum_{j<i} w_{i-j} Y_j,  w_m = Kbar((m+1)h) - Kbar(mh),  Y_j = sigma dZ_j - kappa dU_j
    dU_i ~ InverseGaussian(mean a_i / (1 + kappa Kbar(h)), shape (a_i / (sigma Kbar(h)))^2)
    dZ_i = ((1 + kappa Kbar(h)) dU_i - a_i) / (sigma Kbar(h))            (so Y_i = (dU_i - a_i) / Kbar(h))
    X_{i+1} = X_i - dU_i / 2 + rho dZ_i + sqrt(1 - rho^2) sqrt(dU_i) N_i

dU > 0 by construction (no truncation of negative variance). The inverse Gaussian is drawn by Michael-Schucany-Haas
with one normal and one uniform per step, written as dU = mu / r or mu * r with r = 1 + a + sqrt(a (a + 2)),
a = mu y / (2 lambda), y = N^2 (the same formula, free of cancellation).

Step kernel: :mod:`density_engine.models.kernels.rough_heston` (two normals and one uniform per step). The Volterra sum
is the engine's history (``K[i, j] = w_{i-j} / Kbar(h)``, history value ``D_j = dU_j - a_j = Kbar(h) Y_j``); cost
O(n^2) per path.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from density_engine.models.base import Model, Parameter, SchemeTables, TimeGrid

ALPHA_FLOOR_RATIO = 1e-16
"""Lower clip of the conditional integrated-variance increment a_i, relative to the IG scale constant, so that the MSH
ratio a = y * ig_scale / a_i stays below ~1e18 and a (a + 2) finite in float32 (a_i <= 0 has not been observed)."""


def kbar(t: np.ndarray, alpha: float) -> np.ndarray:
    """Integrated fractional kernel: t^alpha / Gamma(alpha + 1)."""
    return np.asarray(t, dtype=np.float64) ** alpha / math.gamma(alpha + 1.0)


class RoughHeston(Model):
    """Rough Heston (El Euch-Rosenbaum), simulated by the iVi scheme on the full Volterra kernel."""

    model_name: ClassVar[str] = "rough_heston"
    description: ClassVar[str] = (
        "Rough Heston: V_t = v0 + K*(kappa(theta - V) dt + sigma sqrt(V) dB), K(t) = t^(alpha-1)/Gamma(alpha), "
        "dX = -V/2 dt + sqrt(V) dW, d<W,B> = rho dt; iVi scheme (inverse-Gaussian integrated variance); "
        "dt = year fraction per model step"
    )
    parameters: ClassVar[tuple[Parameter, ...]] = (
        Parameter("kappa", 0.0, math.inf, description="mean-reversion speed (1/year)", default_range=(0.1, 3.0)),
        Parameter(
            "theta", 0.0, math.inf, lower_open=True, description="long-run variance level", default_range=(0.01, 0.1)
        ),
        Parameter(
            "sigma", 0.0, math.inf, lower_open=True, description="volatility of variance", default_range=(0.1, 1.0)
        ),
        Parameter("rho", -1.0, 1.0, description="correlation of return and variance shocks", default_range=(-0.9, 0.0)),
        Parameter(
            "alpha",
            0.5,
            1.0,
            lower_open=True,
            upper_open=True,
            description="kernel exponent alpha = H + 1/2 (Hurst index H in (0, 0.5))",
            default_range=(0.55, 0.9),
        ),
        Parameter("v0", 0.0, math.inf, lower_open=True, description="initial variance", default_range=(0.01, 0.1)),
    )
    settings: ClassVar[tuple[str, ...]] = ("dt", "substeps")
    default_settings: ClassVar[Mapping[str, Any]] = {"dt": 1.0 / 252.0, "substeps": 1}

    @classmethod
    def check_parameters(cls, params: Mapping[str, Any]) -> dict[str, float]:
        """As :meth:`Model.check_parameters`; an ``alpha`` error also states the Hurst-index bound."""
        try:
            return super().check_parameters(params)
        except ValueError as err:
            if "'alpha'" in str(err):
                raise ValueError(f"{err} (alpha = H + 1/2: the Hurst index H must lie in (0, 0.5))") from None
            raise

    kernel: ClassVar[str] = "density_engine.models.kernels.rough_heston:RoughHestonKernel"
    # per-horizon grids, Richardson of independent (22, 44)-step runs: <= 6.7e-4 sup-CDF error over the production
    # corners at 2.0-2.6x the cost of 4 steps a day on one grid; (32, 64): <= 4.4e-4 at ~4x (docs/rough_heston.md,
    # docs/accuracy.md 3.2); below 16 steps the error exceeds 2e-3
    time_grid_defaults: ClassVar[Mapping[str, Any]] = {"steps": 44, "steps_per_day": 0, "richardson": "independent"}
    richardson_modes: ClassVar[tuple[str, ...]] = ("independent", "none")
    min_grid_steps: ClassVar[int] = 16
    computes_discretisation_error: ClassVar[bool] = True
    discretisation_error_method: ClassVar[str] = (
        "exact up to Fourier accuracy: the iVi scheme's characteristic functions on the row's grids "
        "(backward recursion) against the continuous model's (implicit fractional Adams), "
        "by Gil-Pelaez at the published quantiles"
    )

    def discretisation_error(
        self, maturity: float, fine_steps: int, richardson: str, quantiles: np.ndarray, bracket: tuple[float, float]
    ) -> np.ndarray:
        """|F_cont(q(p)) - p| at the published quantiles, by Fourier (:mod:`.rough_heston_fourier`)."""
        from density_engine.models.rough_heston_fourier import discretisation_error

        return discretisation_error(self.params, maturity, fine_steps, richardson, quantiles, bracket)

    def scheme_tables(self, grid: TimeGrid) -> SchemeTables:
        """iVi constants on a uniform grid. The history holds D_j = dU_j - a_j (= Kbar(h) Y_j), so the Volterra weights
        carry the factor 1 / Kbar(h)."""
        h = grid.uniform_step
        if h is None:
            raise ValueError(f"{self.model_name}: the iVi scheme here needs a uniform time grid")
        n = grid.num_steps
        p = self.params
        alpha, kappa, theta, sigma, v0, rho = p["alpha"], p["kappa"], p["theta"], p["sigma"], p["v0"], p["rho"]
        t = np.arange(n + 1, dtype=np.float64) * h
        g0 = v0 * t + kappa * theta * t ** (alpha + 1.0) / math.gamma(alpha + 2.0)
        k_grid = kbar(t, alpha)  # Kbar(m h), m = 0..n
        k1 = float(k_grid[1])
        weights = (k_grid[1:] - k_grid[:-1]) / k1  # weights[m] = (Kbar((m+1)h) - Kbar(m h)) / Kbar(h); lags m >= 1
        lag = np.arange(n).reshape(-1, 1) - np.arange(n).reshape(1, -1)  # [i, j] = i - j
        volterra = np.where(lag > 0, weights[np.clip(lag, 0, None)], 0.0)  # [i, j] = w_{i-j} for j < i
        one_plus = 1.0 + kappa * k1
        ig_scale = (sigma * k1) ** 2 / (2.0 * one_plus)  # MSH: a = mu y / (2 lambda) = y * ig_scale / a_i
        dz_scale = one_plus / (sigma * k1)  # dZ = dz_scale * (dU - mu),  mu = a_i / one_plus
        return SchemeTables(
            scalars={
                "inv_one_plus": 1.0 / one_plus,
                "ig_scale": ig_scale,
                "a_floor": ig_scale * ALPHA_FLOOR_RATIO,
                # dX = rho dZ - dU/2 + rho_perp sqrt(dU) N = du_coef * dU + a_coef * a_i + rho_perp sqrt(dU) N
                "du_coef": rho * dz_scale - 0.5,
                "a_coef": -rho * dz_scale / one_plus,
                "rho_perp": math.sqrt(max(0.0, 1.0 - rho**2)),
            },
            per_step={"g0_increment": g0[1:] - g0[:-1]},
            volterra=volterra,
        )
