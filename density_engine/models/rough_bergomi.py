"""Rough Bergomi (Bayer-Friz-Gatheral 2016), simulated by the hybrid scheme with kappa = 1 (Bennedsen-Lunde-Pakkanen)
or by the variance-matched cell-average scheme (setting ``scheme="cell"``, constants in
:mod:`density_engine.models.rough_bergomi_cell`; the workflow's default, ``time_grid.scheme``). The hybrid scheme:

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
from density_engine.models.rough_bergomi_cell import cell_scheme
from density_engine.models.time_grid import GridScheme, TimeGridPolicy


def hybrid_weights(num_steps: int, hurst: float, h: float) -> np.ndarray:
    """``w_k = g(b*_k h) = h^a (k^(a+1) - (k-1)^(a+1)) / (a+1)`` for k = 0..n (w_0 = w_1 = 0), float64."""
    a = hurst - 0.5
    k = np.arange(num_steps + 1, dtype=np.float64)
    w = h**a * (k ** (a + 1) - np.clip(k - 1, 0, None) ** (a + 1)) / (a + 1)
    w[:2] = 0.0
    return w


#: The schemes of the model (setting ``scheme``): the hybrid scheme with the variance at the left point, and the
#: variance-matched cell-average scheme (:mod:`density_engine.models.rough_bergomi_cell`).
SCHEMES = ("hybrid", "cell")
HYBRID_KERNEL = "density_engine.models.kernels.rough_bergomi:RoughBergomiKernel"
CELL_KERNEL = "density_engine.models.kernels.rough_bergomi:RoughBergomiCellKernel"
#: The rate the cell scheme's error estimate assumes at most (|q_N - q_N/2| / (2^r - 1), r the nested grids' own
#: rate clipped to [0.3, this]): measured 0.3 - 0.6 at the production corners (docs/accuracy.md 4.4).
CELL_RATE = 0.5

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
        "d<B, W> = rho dt; two schemes: hybrid (kappa=1 with optimal points, variance at the left point) and the "
        "variance-matched cell-average scheme (cell averages of the Volterra process, X given the paths in closed "
        "form; the workflow's default); compensator = the scheme's own variance "
        "(E V = xi0 exactly); dt = year fraction per model step; tail quantiles depend on the step size"
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
    settings: ClassVar[tuple[str, ...]] = ("dt", "substeps", "scheme")
    default_settings: ClassVar[Mapping[str, Any]] = {"dt": 1.0 / 252.0, "substeps": 1, "scheme": "hybrid"}

    kernel: ClassVar[str] = HYBRID_KERNEL  # the instance's scheme may replace it (``scheme="cell"``)
    # per-horizon grids of max(128, 2 x days) cells of the cell scheme, no extrapolation: docs/accuracy.md, sections
    # 3.3, 4.4 and 4.5 (as accurate as the hybrid scheme with coupled Richardson or more at every measured H)
    time_grid_defaults: ClassVar[Mapping[str, Any]] = {"steps": 128, "steps_per_day": 2, "scheme": "cell"}
    richardson_modes: ClassVar[tuple[str, ...]] = ("coupled", "none")
    time_grid_schemes: ClassVar[Mapping[str, GridScheme]] = {
        "cell": GridScheme(
            "cell-average scheme (P6v)",
            ("none",),
            step_multiple=4,  # its nested grids of every 2nd and 4th cell give the error column
            error_rate=CELL_RATE,
            remedy="its rows are published without extrapolation; set richardson: none, or scheme: hybrid for the "
            "extrapolated hybrid scheme",
        ),
        "hybrid": GridScheme("hybrid scheme", ("coupled", "none")),
    }
    min_grid_steps: ClassVar[int] = 32
    discretisation_error_method: ClassVar[str] = (
        "three coupled grids (N, N/2, N/4 on the same paths): |E(N) - E(N/2)| of the extrapolants in CDF units, scaled "
        "by (2^r - 1)/(2^r' - 1) where the grids converge at a slower rate r' than r = min(3H + 1/2, 1); validated "
        "at 0.66-5x the error against exact simulation (docs/accuracy.md, section 4.2); "
        "noise floor ~6e-4-1e-3 at 1e7 paths"
    )

    @classmethod
    def check_settings(cls, values: Mapping[str, Any]) -> dict[str, Any]:
        out = super().check_settings(values)
        if out["scheme"] not in SCHEMES:
            raise ValueError(
                f"{cls.model_name}: setting 'scheme' must be one of {', '.join(SCHEMES)}, got {out['scheme']!r}"
            )
        return out

    def _prepare(self) -> None:
        if self.setting_values["scheme"] == "cell":
            self.kernel = CELL_KERNEL

    def for_time_grid(self, policy: TimeGridPolicy) -> tuple[RoughBergomi, str]:
        """This parameter set on the policy's scheme (the cell scheme is never extrapolated)."""
        scheme = policy.scheme or self.setting_values["scheme"]
        model = self
        if scheme != self.setting_values["scheme"]:
            model = type(self)(**self.params, **{**self.setting_values, "scheme": scheme})
        return model, ("none" if scheme == "cell" else policy.richardson)

    def richardson_rate(self) -> float:
        """The rate of the scheme's distribution error: min(3H + 1/2, 1) for the hybrid scheme (docs/accuracy.md,
        section 3.3); :data:`CELL_RATE` at most for the cell scheme (section 4.4: its error estimate's rate)."""
        if self.setting_values["scheme"] == "cell":
            return CELL_RATE
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
        """The constants of the instance's scheme on a uniform grid (hybrid: :meth:`_hybrid_tables`; cell:
        :meth:`_cell_tables`)."""
        h = grid.uniform_step
        scheme = self.setting_values["scheme"]
        if h is None:
            raise ValueError(f"{self.model_name}: the {scheme} scheme needs a uniform time grid")
        p = self.params
        end = float(grid.times[-1])
        if end > UNDERFLOW_CHECK_YEARS and not underflow_headroom(p["eta"], p["hurst"], p["xi0"], end) >= 0:
            raise ValueError(underflow_message(p["eta"], p["hurst"], p["xi0"], end))
        if scheme == "cell":
            return self._cell_tables(grid.num_steps, h)
        return self._hybrid_tables(grid.num_steps, h)

    def _cell_tables(self, n: int, h: float) -> SchemeTables:
        """Cell-scheme constants (:func:`~density_engine.models.rough_bergomi_cell.cell_scheme`): the local factor on
        (z0, z1, z2), the Volterra matrix of the far part (history z0), and per step and grid (fine, every 2nd and
        4th cell) the compensator, the damped leverage rho d, the shift eta c / 2, the drift and the spread of X given
        the paths (zero except at a coarse cell's last step) and the reset of the coarse sums. A cell's constants
        depend on the earlier cells only, so any step can be recorded (the nested grids are complete at multiples of
        4 steps: the workflow's grids)."""
        p = self.params
        eta, rho, hurst = p["eta"], p["rho"], p["hurst"]
        scheme = cell_scheme(-(-n // 4) * 4, h, hurst, eta)
        factor, scale = scheme.local_factor, math.sqrt(2.0 * hurst)
        lag = np.arange(n).reshape(-1, 1) - np.arange(n).reshape(1, -1)  # [i, j] = i - j
        volterra = np.where(lag >= 2, scheme.far[np.clip(lag, 0, n)], 0.0) * factor[0, 0]  # weight of z0_j in Ybar_i
        per_step: dict[str, np.ndarray] = {}
        step = np.arange(n)
        for suffix, grid in zip(("", "_half", "_quarter"), scheme.grids, strict=True):  # truncated to n steps
            cell = step // grid.stride
            last = (step % grid.stride == grid.stride - 1).astype(np.float64)  # a coarse cell's terms: its last step
            per_step["compensator" + suffix] = 0.5 * eta**2 * grid.variance[cell]
            per_step["leverage" + suffix] = last * rho * grid.damping[cell]
            per_step["shift" + suffix] = 0.5 * eta * grid.leverage_cov[cell]
            per_step["drift" + suffix] = last * 0.5 * grid.width
            per_step["spread" + suffix] = last * grid.width * (1.0 - rho**2 + rho**2 * grid.remainder[cell])
            per_step["keep" + suffix] = 1.0 - last if grid.stride > 1 else np.ones(n)
        return SchemeTables(
            scalars={
                "dw_on_z0": factor[0, 0],
                "a_on_z0": scale * factor[1, 0],
                "a_on_z1": scale * factor[1, 1],
                "b_on_z0": scale * factor[2, 0],
                "b_on_z1": scale * factor[2, 1],
                "b_on_z2": scale * factor[2, 2],
                "eta": eta,
                "eta_half": eta / 2.0,
                "eta_quarter": eta / 4.0,
                "log_xi0": math.log(p["xi0"]),
            },
            per_step=per_step,
            volterra=volterra,
        )

    def _hybrid_tables(self, n: int, h: float) -> SchemeTables:
        """Hybrid-scheme constants on a uniform grid: the Toeplitz Volterra matrix of the convolution part of Y, the
        weights of the last interval Wt_{i-1} on (z1, z2), the compensator eta^2/2 Var(Y_i) of the scheme."""
        p = self.params
        hurst, rho = p["hurst"], p["rho"]
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
