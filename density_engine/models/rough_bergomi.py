"""Rough Bergomi (Bayer-Friz-Gatheral 2016), simulated by the hybrid scheme with kappa = 1 (Bennedsen-Lunde-Pakkanen).

Model (time in years, zero rates, X = log(S_t / S_0))::

    V_t = xi0 exp(eta Y_t - eta^2/2 Var(Y_t)),   Y_t = sqrt(2a+1) int_0^t (t-u)^a dW_u,   a = hurst - 1/2,
    Var(Y_t) = t^(2 hurst),   dX = sqrt(V) (rho dW + sqrt(1 - rho^2) dW_perp) - V/2 dt

Scheme on a uniform fine grid t_i = i h (the workflow: each horizon on its own grids, ``time_grid``; the model API:
h = dt / substeps, dt = year fraction per model step, default 1/252)::

    (dW_i, Wt_i) ~ N(0, [[h, h^(a+1)/(a+1)], [., h^(2a+1)/(2a+1)]]),  Wt_i = int_{t_i}^{t_i+1} (t_{i+1}-s)^a dW_s
    Y_i = sqrt(2a+1) (Wt_{i-1} + sum_{k=2}^{i} g(b*_k h) dW_{i-k}),  g(x) = x^a,
    b*_k = ((k^(a+1) - (k-1)^(a+1)) / (a+1))^(1/a)   (optimal evaluation points), Y_0 = 0
    V_i = xi0 exp(eta Y_i - eta^2/2 s_i^2),   s_i^2 = Var(Y_i) of the scheme (= t_i^(2H) up to < 0.1%)
    X_{i+1} = X_i + sqrt(V_i) (rho dW_i + sqrt(1 - rho^2) dW'_i) - V_i h / 2      (variance at the LEFT point)

Because V_i only depends on increments before t_i, E[exp(X_t)] = 1 holds exactly in discrete time, and with the
compensator s_i^2 equal to the scheme's own variance of Y_i, E[V_{t_i}] = xi0 holds exactly too.

Step kernel: :mod:`density_engine.models.kernels.rough_bergomi` (three normals per step). The convolution is the
engine's Volterra history (``K[i, j] = sqrt(2a+1) g(b*_{i-j} h)`` for ``i - j >= 2``, history value ``dW_j / sqrt(h)``);
cost O(n^2) per path for n fine steps (fine for n up to a few thousand).

Variance underflow (domain check): log V_t ~ N(log xi0 - eta^2/2 t^(2H), eta^2 t^(2H)) drifts down with the compensator
eta^2/2 t^(2H). When it reaches float32's smallest normal number (log 1.18e-38 = -87.3) on more than a tiny fraction
of paths, those paths stop moving and the variance that E V = xi0 needs sits in paths no simulation samples: e.g.
eta = 50, hurst = 1e-6 gives V ~ 0 after the first step and later horizons with bit-identical quantiles. Parameter sets
are refused unless the 6-sigma lower end of log V_t stays above it at t = 1 year (the longest production horizon, 252
days; the compensator grows with t, so shorter horizons are covered; a longer grid is checked in ``scheme_tables``)::

    log xi0 - eta^2/2 t^(2H) - 6 eta t^H >= log(float32 tiny),   i.e. P(V_t underflows) <= Phi(-6) ~ 1e-9

The left side is monotone in each parameter (decreasing in eta, increasing in xi0, independent of hurst at t = 1), so
a box of parameter ranges is valid iff its corners are. Production's corners (eta 3, xi0 0.01) leave 60 of headroom.

Step-size caveat: the tails converge slowly in the step count (e.g. q0.999 of X at T = 0.25: 0.338 with 13 steps,
0.225 with 312), much more than Monte Carlo error at 1e7 paths. The workflow extrapolates over coupled grids and
publishes the remaining error per row (``time_grid``, docs/rough_bergomi.md).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from density_engine.models.base import Model, Parameter, SchemeTables, TimeGrid


def hybrid_weights(num_steps: int, hurst: float, h: float) -> np.ndarray:
    """``w_k = g(b*_k h) = h^a (k^(a+1) - (k-1)^(a+1)) / (a+1)`` for k = 0..n (w_0 = w_1 = 0), float64."""
    a = hurst - 0.5
    k = np.arange(num_steps + 1, dtype=np.float64)
    w = h**a * (k ** (a + 1) - np.clip(k - 1, 0, None) ** (a + 1)) / (a + 1)
    w[:2] = 0.0
    return w


#: The time (years) at which :meth:`RoughBergomi.check_parameters` checks for variance underflow: 1 year = 252 days,
#: the longest production horizon.
UNDERFLOW_CHECK_YEARS = 1.0
#: log of float32's smallest normal number: a float32 variance below it has lost its precision (and soon becomes 0).
LOG_FLOAT32_TINY = math.log(float(np.finfo(np.float32).tiny))
#: Standard deviations of log V between its median and the underflow bound (Phi(-6) ~ 1e-9 of paths may underflow).
UNDERFLOW_SIGMAS = 6.0


def underflow_headroom(
    eta: np.ndarray | float, hurst: np.ndarray | float, xi0: np.ndarray | float, t: float
) -> np.ndarray | float:
    """``log xi0 - eta^2/2 t^(2H) - 6 eta t^H - log(float32 tiny)``: how far the 6-sigma lower end of log V_t lies
    above float32 underflow (negative: the variance path is numerically degenerate). Vectorised; float64."""
    scale = np.power(t, hurst)  # sd of Y_t = t^H
    return np.log(xi0) - 0.5 * (eta * scale) ** 2 - UNDERFLOW_SIGMAS * eta * scale - LOG_FLOAT32_TINY


def underflow_message(eta: float, hurst: float, xi0: float, t: float) -> str:
    """The one-line refusal of a parameter set whose variance underflows at time ``t`` (years)."""
    compensator = 0.5 * eta**2 * t ** (2 * hurst)
    return (
        f"rough_bergomi: parameters 'eta', 'hurst', 'xi0': variance underflows: at t = {t:g} (years) the median log "
        f"variance log(xi0) - eta^2/2 t^(2H) = {math.log(xi0) - compensator:.4g} (compensator {compensator:.4g}) lies "
        f"less than {UNDERFLOW_SIGMAS:g} sd (eta t^H = {eta * t**hurst:.4g}) above log(float32 tiny) = "
        f"{LOG_FLOAT32_TINY:.4g} (eta={eta:g}, hurst={hurst:g}, xi0={xi0:g}); lower eta or raise xi0"
    )


def scheme_variance(num_steps: int, hurst: float, h: float) -> np.ndarray:
    """``Var(Y_i)`` of the hybrid scheme for i = 0..n-1 (float64); ``Var(Y_0) = 0``."""
    a = hurst - 0.5
    w = hybrid_weights(num_steps, hurst, h)
    var = np.zeros(num_steps, dtype=np.float64)
    if num_steps > 1:
        var[1:] = (2 * a + 1) * (h ** (2 * a + 1) / (2 * a + 1) + h * np.cumsum(w[1:num_steps] ** 2))
    return var


class RoughBergomi(Model):
    """Rough Bergomi, hybrid scheme (kappa = 1, optimal points), left-point log-Euler for the log-price."""

    model_name: ClassVar[str] = "rough_bergomi"
    description: ClassVar[str] = (
        "Rough Bergomi: V_t = xi0 exp(eta Y_t - eta^2/2 t^(2H)), Var Y_t = t^(2H), dX = sqrt(V) dB - V/2 dt, "
        "d<B, W> = rho dt; hybrid scheme kappa=1 with optimal points, variance at the left point, compensator = the "
        "scheme's own Var(Y_t) (within 0.05% of t^(2H); E V = xi0 exactly); "
        "dt = year fraction per model step; tail quantiles depend on the step size"
    )
    parameters: ClassVar[tuple[Parameter, ...]] = (
        Parameter(
            "eta", 0.0, math.inf, lower_open=True, upper_open=True, description="vol of vol", default_range=(0.5, 3.0)
        ),
        Parameter(
            "rho", -1.0, 1.0, description="correlation of return and variance shocks", default_range=(-0.95, -0.3)
        ),
        Parameter(
            "hurst", 0.0, 0.5, lower_open=True, upper_open=True, description="Hurst index H", default_range=(0.05, 0.3)
        ),
        Parameter(
            "xi0",
            0.0,
            math.inf,
            lower_open=True,
            upper_open=True,
            description="flat forward variance",
            default_range=(0.01, 0.1),
        ),
    )
    settings: ClassVar[tuple[str, ...]] = ("dt", "substeps")
    default_settings: ClassVar[Mapping[str, Any]] = {"dt": 1.0 / 252.0, "substeps": 1}

    kernel: ClassVar[str] = "density_engine.models.kernels.rough_bergomi:RoughBergomiKernel"
    # per-horizon grids of max(128, 2 x days) steps, coupled Richardson: docs/accuracy.md, section 3.3 (meets 1e-3 at
    # the moderate production corners, not where eta ~ 3 and H <= 0.1: the error column says so per row)
    time_grid_defaults: ClassVar[Mapping[str, Any]] = {"steps": 128, "steps_per_day": 2, "richardson": "coupled"}
    richardson_modes: ClassVar[tuple[str, ...]] = ("coupled", "none")
    min_grid_steps: ClassVar[int] = 32
    discretisation_error_method: ClassVar[str] = (
        "three coupled grids (N, N/2, N/4 on the same paths): |E(N) - E(N/2)| of the extrapolants in CDF units, scaled "
        "by (2^r - 1)/(2^r' - 1) where the grids converge at a slower rate r' than r = min(3H + 1/2, 1); validated "
        "at 0.66-4x the error against exact simulation (docs/accuracy.md, section 4.2); "
        "noise floor ~6e-4-1e-3 at 1e7 paths"
    )

    def richardson_rate(self) -> float:
        """Weak rate of the hybrid scheme's distribution error, min(3H + 1/2, 1) (docs/accuracy.md, section 3.3)."""
        return min(3.0 * self.params["hurst"] + 0.5, 1.0)

    joint_check_monotone: ClassVar[bool] = True  # underflow_headroom is monotone in each parameter at t = 1 year

    @classmethod
    def _check_joint(cls, params: Mapping[str, float]) -> None:
        eta, hurst, xi0 = params["eta"], params["hurst"], params["xi0"]
        if not underflow_headroom(eta, hurst, xi0, UNDERFLOW_CHECK_YEARS) >= 0:
            raise ValueError(underflow_message(eta, hurst, xi0, UNDERFLOW_CHECK_YEARS))

    @classmethod
    def _joint_valid_mask(cls, columns: Mapping[str, np.ndarray], in_domain: np.ndarray) -> np.ndarray:
        eta = np.where(in_domain, columns["eta"], 1.0)  # out-of-domain rows are masked anyway
        hurst = np.where(in_domain, columns["hurst"], 0.1)
        xi0 = np.where(in_domain, columns["xi0"], 0.04)
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            return underflow_headroom(eta, hurst, xi0, UNDERFLOW_CHECK_YEARS) >= 0

    def scheme_tables(self, grid: TimeGrid) -> SchemeTables:
        """Hybrid-scheme constants on a uniform grid: the Toeplitz Volterra matrix of the convolution part of Y, the
        weights of the last interval Wt_{i-1} on (z1, z2), the compensator eta^2/2 Var(Y_i) of the scheme."""
        h = grid.uniform_step
        if h is None:
            raise ValueError(f"{self.model_name}: the hybrid scheme needs a uniform time grid")
        n = grid.num_steps
        p = self.params
        hurst, rho = p["hurst"], p["rho"]
        end = float(grid.times[-1])
        if end > UNDERFLOW_CHECK_YEARS and not underflow_headroom(p["eta"], hurst, p["xi0"], end) >= 0:
            raise ValueError(underflow_message(p["eta"], hurst, p["xi0"], end))
        a = hurst - 0.5
        w = hybrid_weights(n, hurst, h)
        lag = np.arange(n).reshape(-1, 1) - np.arange(n).reshape(1, -1)  # [i, j] = i - j
        volterra = np.where(lag >= 2, w[np.clip(lag, 0, None)], 0.0) * math.sqrt(2 * a + 1)  # weight of z1_j in Y_i
        cov = h ** (a + 1) / (a + 1)
        var_wt = h ** (2 * a + 1) / (2 * a + 1)
        wt_on_z1 = cov / math.sqrt(h)
        wt_on_z2 = math.sqrt(max(var_wt - wt_on_z1**2, 0.0))
        return SchemeTables(
            scalars={
                "sqrt_h": math.sqrt(h),
                "wt_on_z1": math.sqrt(2 * a + 1) * wt_on_z1,
                "wt_on_z2": math.sqrt(2 * a + 1) * wt_on_z2,
                "eta": p["eta"],
                "log_xi0": math.log(p["xi0"]),
                "rho": rho,
                "rho_perp": math.sqrt(max(0.0, 1.0 - rho * rho)),
                "half_h": 0.5 * h,
            },
            per_step={
                "compensator": 0.5 * p["eta"] ** 2 * scheme_variance(n, hurst, h),
                # the coarse grids of every 2nd / 4th point take the variance of their own left points
                "half_start": (np.arange(n) % 2 == 0).astype(np.float64),
                "quarter_start": (np.arange(n) % 4 == 0).astype(np.float64),
            },
            volterra=volterra,
        )
