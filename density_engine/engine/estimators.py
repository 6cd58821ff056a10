"""Published estimate of one parameter set: quantiles and moments per horizon with their error budget.

A continuous-time model runs every horizon on its own grids (:class:`~density_engine.models.time_grid.TimeGridPolicy`;
horizons on the per-day step share one run, :meth:`~density_engine.models.time_grid.TimeGridPolicy.plan`) and publishes
the finest grid's order statistics or their Richardson extrapolant; a discrete-time model (GJR-GARCH) runs one path to
the last horizon and publishes plain order statistics. Each row carries, in CDF units at every level:

* ``mc_se``: the Monte Carlo standard error of F at the published quantile: sqrt(p(1 - p) / n) for plain order
  statistics, sqrt(p(1 - p) (4/P_N + 1/P_{N/2})) for independent Richardson, and for coupled Richardson (whose grids
  share paths) batch means over :data:`BATCHES` contiguous path ranges times the density, the tails floored at the
  body's inflation over sqrt(p(1 - p) / n) (coupled extrapolation inflates it ~1.9-2.6 x, measured by replication);
* ``disc_err``: the time-discretisation error: 0 for exact discrete-time models, the model's own computation where it
  has one (rough Heston: Fourier, exact), else the three-grid estimate of coupled Richardson.

Extrapolated quantiles are sorted (monotone rearrangement: it never increases the error of an estimate of a
non-decreasing function, Chernozhukov, Fernandez-Val and Galichon 2010) so that the published rows stay
non-decreasing at small path counts; moments are extrapolated like the quantiles.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from density_engine.engine.chunkio import quantile_levels
from density_engine.engine.paths import load_kernel, normalize_horizons, simulate_grid, simulate_horizons
from density_engine.engine.quantiles import sample_quantiles, sorted_rows, summarize_sorted
from density_engine.models.base import Model, TimeGrid
from density_engine.models.time_grid import TimeGridPolicy

BATCHES = 8
"""Contiguous path batches of the batch-means standard error of coupled Richardson."""
BODY_LEVELS = (0.05, 0.95)
"""Levels whose batch-means standard errors set the floor of the tails (replication check: docs/accuracy.md 5)."""
MIN_RATE = 0.3
"""Lower clip of the convergence rate the coupled grids show (a slower apparent rate is noise or pre-asymptotics)."""
MOMENTS = ("mean", "std", "skew", "kurt")
NESTED_OUTPUTS = ("log_return_half", "log_return_quarter")
"""Kernel outputs of the same paths on the grids of every 2nd and 4th point (coupled Richardson)."""


@dataclass(frozen=True)
class HorizonEstimate:
    """One published row: quantiles (M,) float64, moments, the fine steps N of its finest grid, and the error budget
    in CDF units at every level (M,)."""

    horizon: int
    steps: int
    quantiles: np.ndarray
    moments: dict[str, float]
    mc_se: np.ndarray
    disc_err: np.ndarray | Future

    def resolved(self) -> HorizonEstimate:
        """The row with its discretisation column computed (waits for a column still running in a pool)."""
        if isinstance(self.disc_err, Future):
            return replace(self, disc_err=self.disc_err.result())
        return self


def error_methods(model: type[Model] | Model, policy: TimeGridPolicy | None) -> dict[str, str]:
    """How the error columns of a model's rows are computed (for the chunk metadata and the dataset card)."""
    if policy is None or policy.richardson == "none":
        mc = "sqrt(p(1-p)/n) at the published level (order statistics of n independent paths)"
    elif policy.richardson == "independent":
        mc = "sqrt(p(1-p)(4/P_N + 1/P_N/2)) (independent runs of P_N and P_N/2 paths)"
    else:
        mc = f"batch means over {BATCHES} contiguous path batches of the extrapolant, times the density"
    nested = (
        "|q_N - q_N/2| of the nested grids of the same paths in CDF units / (2^r' - 1), r' the rate the grids N, N/2, "
        f"N/4 show, clipped to [{MIN_RATE:g}, r]"
    )
    if policy is not None and policy.richardson == "none" and model.discretisation_error_method.startswith("three"):
        disc = f"{nested}, r = min(3H + 1/2, 1)"
    else:
        disc = model.discretisation_error_method
    scheme = policy.grid_scheme if policy is not None else None
    if scheme is not None and scheme.error_rate is not None:
        disc = f"{nested}, r = {scheme.error_rate:g} ({scheme.label}, no extrapolation)"
    return {"mc_se": mc, "disc_err": disc}


SMOOTHING = 4
"""Half-width (levels) of the differences that give the density and of the moving average of batch variances: the
512 order statistics are noisy at small path counts, neighbouring levels are nearly as informative."""


def density_at(levels: np.ndarray, quantiles: np.ndarray, half_width: int = SMOOTHING) -> np.ndarray:
    """The density at the quantiles, dp/dq by differences of the quantile vector over +-``half_width`` levels
    (one-sided at the ends; clipped where q is flat)."""
    m = len(levels)
    index = np.arange(m)
    hi, lo = np.minimum(index + half_width, m - 1), np.maximum(index - half_width, 0)
    dq = quantiles[hi].astype(np.float64) - quantiles[lo].astype(np.float64)
    return (levels[hi] - levels[lo]) / np.maximum(dq, np.finfo(np.float64).tiny)


def moving_average(values: np.ndarray, half_width: int = SMOOTHING) -> np.ndarray:
    """Centred moving average over +-``half_width`` entries (shrinking at the ends)."""
    sums = np.concatenate([[0.0], np.cumsum(values, dtype=np.float64)])
    index = np.arange(len(values))
    hi, lo = np.minimum(index + half_width + 1, len(values)), np.maximum(index - half_width, 0)
    return (sums[hi] - sums[lo]) / (hi - lo)


def _cdf_units(difference: np.ndarray, density: np.ndarray) -> np.ndarray:
    return np.minimum(np.abs(difference) * density, 1.0)


def estimate_parameter_set(
    model: Model,
    policy: TimeGridPolicy | None,
    horizons: Sequence[int],
    num_paths: int,
    num_quantiles: int,
    seed: int,
    param_id: int,
    progress: Callable[[int], None] | None = None,
    info: dict[str, Any] | None = None,
    column_pool: Executor | None = None,
    **options: Any,
) -> list[HorizonEstimate]:
    """The published rows of one parameter set, in the order of ``horizons``. ``options`` go to the engine's
    simulation (device, dtype, memory budget, compiled); ``info`` receives ``compiled`` and ``path_steps``. With a
    ``column_pool`` the model's own error columns run there, and the rows hold futures
    (:meth:`HorizonEstimate.resolved`)."""
    hs = normalize_horizons(horizons)
    levels = quantile_levels(num_quantiles)
    if policy is None:
        return _plain(model, hs, num_paths, num_quantiles, seed, param_id, levels, progress, info, options)
    if model.dt is None:
        raise ValueError(f"{model.model_name}: a time-grid policy needs the model step dt")
    runs_info: dict[str, Any] = {}
    path_steps = 0
    model, richardson = model.for_time_grid(policy)  # the instance on the policy's scheme (rough Bergomi: cell/hybrid)
    # richardson none on a model without its own error column: the nested grids still give the error estimate
    nest_plain = richardson == "none" and set(NESTED_OUTPUTS) <= set(load_kernel(model).outputs)
    plan = policy.plan(hs, num_paths)  # per-horizon runs, then the per-day grid recording several horizons
    grids_per_horizon = Counter(days for run in plan for days, _ in run.records)
    samples: dict[int, dict[int, torch.Tensor]] = {days: {} for days in hs}  # days -> grid index -> (outputs, paths)
    rows: dict[int, HorizonEstimate] = {}
    for run in plan:
        grid = TimeGrid.uniform(run.steps, run.step_years(model.dt, policy.steps_per_day))
        outputs = ("log_return", *NESTED_OUTPUTS) if run.nested or nest_plain else ("log_return",)
        record_steps = [step for _, step in run.records]
        values = simulate_grid(
            model, grid, record_steps, run.paths, seed, param_id, stream=run.stream, outputs=outputs,
            progress=progress, info=runs_info, **options,
        )  # fmt: skip
        path_steps += run.paths * run.steps
        for row, (days, _) in enumerate(run.records):
            samples[days][run.index] = torch.stack([values[name][row] for name in outputs])
            if len(samples[days]) == grids_per_horizon[days]:  # all grids of the horizon done: its row
                done = samples.pop(days)
                grids = [done[index] for index in range(grids_per_horizon[days])]
                rows[days] = _row(model, days, policy, richardson, grids, num_quantiles, levels, column_pool)
        del values
    if info is not None:
        info.update(compiled=bool(runs_info.get("compiled")), path_steps=path_steps)
    return [rows[days] for days in hs]


def _row(model, days, policy, richardson, samples, num_quantiles, levels, pool) -> HorizonEstimate:
    """The published row of one horizon from its grids' samples (finest first)."""
    maturity = days * model.dt
    if richardson == "independent":
        return _independent(model, days, maturity, policy, samples, num_quantiles, levels, pool)
    if richardson == "coupled":
        return _coupled(model, days, policy, samples[0], num_quantiles, levels)
    return _single(model, days, maturity, policy, samples[0], num_quantiles, levels, pool)


def _summary(samples: torch.Tensor, num_quantiles: int) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """(sorted rows, quantiles (R, M) float64, moments per row)."""
    ordered = sorted_rows(samples)
    summary = summarize_sorted(ordered, num_quantiles)
    quantiles = summary.quantiles.to(device="cpu", dtype=torch.float64).numpy()
    return ordered, quantiles, {name: getattr(summary, name) for name in MOMENTS}


def _plain(model, horizons, num_paths, num_quantiles, seed, param_id, levels, progress, info, options):
    run: dict[str, Any] = {}
    samples = simulate_horizons(model, horizons, num_paths, seed, param_id, progress=progress, info=run, **options)
    _, quantiles, moments = _summary(samples, num_quantiles)
    if info is not None:
        info.update(compiled=bool(run.get("compiled")), path_steps=num_paths * max(horizons) * model.substeps)
    se = np.sqrt(levels * (1.0 - levels) / num_paths)
    rows = []
    for r, days in enumerate(horizons):
        row_moments = {k: float(v[r]) for k, v in moments.items()}
        rows.append(HorizonEstimate(days, days * model.substeps, quantiles[r], row_moments, se, np.zeros_like(levels)))
    return rows


def _model_error(model, pool, maturity, steps, richardson, quantiles, bracket) -> np.ndarray | Future | None:
    """The model's own discretisation column (None if it has none), in line or as a future of ``pool``."""
    if not model.computes_discretisation_error:
        return None

    def column() -> np.ndarray:
        return np.asarray(model.discretisation_error(maturity, steps, richardson, quantiles, bracket), np.float64)

    return column() if pool is None else pool.submit(column)


def _independent(model, days, maturity, policy, samples, num_quantiles, levels, pool) -> HorizonEstimate:
    """2 q_N - q_{N/2} of two independent runs."""
    fine_sorted, fine_q, fine_m = _summary(samples[0], num_quantiles)
    half_sorted, half_q, half_m = _summary(samples[1], num_quantiles)
    quantiles = np.sort(2.0 * fine_q[0] - half_q[0])
    moments = {k: float(2.0 * fine_m[k][0] - half_m[k][0]) for k in MOMENTS}
    paths_fine, paths_half = samples[0].shape[1], samples[1].shape[1]
    se = np.sqrt(levels * (1.0 - levels) * (4.0 / paths_fine + 1.0 / paths_half))
    steps = policy.fine_steps(days)
    bracket = (
        float(min(fine_sorted[0, 0], half_sorted[0, 0])),
        float(max(fine_sorted[0, -1], half_sorted[0, -1])),
    )
    error = _model_error(model, pool, maturity, steps, "independent", quantiles, bracket)
    if error is None:  # no exact column: the N vs N/2 difference bounds the extrapolant's error from above
        error = _cdf_units(fine_q[0] - half_q[0], density_at(levels, quantiles))
    return HorizonEstimate(days, steps, quantiles, moments, se, error)


def _single(model, days, maturity, policy, samples, num_quantiles, levels, pool) -> HorizonEstimate:
    """q_N of one run (richardson none); with nested grids the error estimate |q_N - q_N/2| / (2^r' - 1), r' the
    rate the grids (N, N/2, N/4) show, clipped to [MIN_RATE, the model's rate r]."""
    nested = not model.computes_discretisation_error and samples.shape[0] >= 3
    ordered, q, m = _summary(samples[:3] if nested else samples[:1], num_quantiles)  # one sort per grid
    steps = policy.fine_steps(days)
    error = _model_error(model, pool, maturity, steps, "none", q[0], (float(ordered[0, 0]), float(ordered[0, -1])))
    if nested:
        density = density_at(levels, q[0])
        fine = _cdf_units(q[0] - q[1], density)
        rate = _shown_rate(
            float(np.max(fine)), float(np.max(_cdf_units(q[1] - q[2], density))), model.richardson_rate()
        )
        error = np.minimum(fine / (2.0**rate - 1.0), 1.0)
    if error is None:
        raise ValueError(f"{model.model_name}: no discretisation-error estimate for richardson none")
    se = np.sqrt(levels * (1.0 - levels) / samples.shape[1])
    return HorizonEstimate(days, steps, q[0], {k: float(v[0]) for k, v in m.items()}, se, error)


def _shown_rate(d_fine: float, d_coarse: float, rate: float) -> float:
    """The rate the nested grids show, log2 of the ratio of their sup differences, clipped to [MIN_RATE, rate]."""
    shown = math.log2(d_coarse / d_fine) if d_fine > 0 and d_coarse > 0 else rate
    return min(max(shown, MIN_RATE), rate)


def _extrapolate(fine: np.ndarray, coarse: np.ndarray, weight: float) -> np.ndarray:
    return fine + weight * (fine - coarse)


def _coupled(model, days, policy, samples, num_quantiles, levels) -> HorizonEstimate:
    """q_E = q_N + c (q_N - q_{N/2}), c = 1/(2^r - 1), from the nested grids (N, N/2, N/4) of the same paths."""
    _, q, m = _summary(samples, num_quantiles)  # rows: N, N/2, N/4
    rate = model.richardson_rate()
    weight = 1.0 / (2.0**rate - 1.0)
    quantiles = np.sort(_extrapolate(q[0], q[1], weight))
    moments = {k: float(_extrapolate(m[k][0], m[k][1], weight)) for k in MOMENTS}
    density = density_at(levels, quantiles)
    # discretisation: |E(N) - E(N/2)| in CDF units, scaled up where the grids converge more slowly than the rate r
    plain = _cdf_units(quantiles - np.sort(_extrapolate(q[1], q[2], weight)), density)
    d_fine = float(np.max(_cdf_units(q[0] - q[1], density)))
    shown = _shown_rate(d_fine, float(np.max(_cdf_units(q[1] - q[2], density))), rate)
    error = np.minimum(plain * (2.0**rate - 1.0) / (2.0**shown - 1.0), 1.0)
    # Monte Carlo: batch means of the extrapolant over contiguous path batches
    n = samples.shape[1]
    bounds = [n * b // BATCHES for b in range(BATCHES + 1)]
    batch_q = []
    for lo, hi in itertools.pairwise(bounds):
        rows = sample_quantiles(samples[:2, lo:hi], num_quantiles).to(device="cpu", dtype=torch.float64).numpy()
        batch_q.append(np.sort(_extrapolate(rows[0], rows[1], weight)))
    spread = np.sqrt(moving_average(np.var(np.stack(batch_q), axis=0, ddof=1)) / BATCHES)
    batch_se = spread * density
    # small batches bias the tail levels low: floor them with the body's inflation over the plain sqrt(p(1-p)/n)
    plain_se = np.sqrt(levels * (1.0 - levels) / n)
    body = (levels >= BODY_LEVELS[0]) & (levels <= BODY_LEVELS[1])
    se = np.minimum(np.maximum(batch_se, plain_se * float(np.median(batch_se[body] / plain_se[body]))), 1.0)
    return HorizonEstimate(days, policy.fine_steps(days), quantiles, moments, se, error)


__all__ = ["BATCHES", "HorizonEstimate", "density_at", "error_methods", "estimate_parameter_set"]
