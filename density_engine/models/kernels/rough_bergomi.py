"""Rough Bergomi step of the hybrid scheme (model and equations: :mod:`density_engine.models.rough_bergomi`)."""

from __future__ import annotations

from typing import ClassVar

import torch

from density_engine.models.kernels import StepKernel, Tensors


class RoughBergomiKernel(StepKernel):
    """Step i: ``Y_i = conv_i sqrt(h) + Wt_{i-1}`` (Wt from the previous step's z1, z2), ``V_i = xi0 exp(eta Y_i -
    compensator_i)``, ``X += sqrt(V_i) sqrt(h) (rho z1 + rho_perp z3) - V_i h / 2``; history value z1 (= dW_i/sqrt(h)).
    Outputs: the log-return after the step, ``V_i`` (the variance used in step i, its left point), and the
    log-returns on the grids of every 2nd and every 4th point of the same paths (left-point rule with the summed
    increments and the variance at the coarse grid's own left point: coupled Richardson and its error estimate)."""

    draws: ClassVar[tuple[str, ...]] = ("normal", "normal", "normal")
    state: ClassVar[tuple[str, ...]] = (
        "log_return",
        "z1_previous",
        "z2_previous",
        "log_return_half",
        "log_return_quarter",
        "vol_half",
        "vol_quarter",
    )
    outputs: ClassVar[tuple[str, ...]] = ("log_return", "variance", "log_return_half", "log_return_quarter")
    scalars: ClassVar[tuple[str, ...]] = (
        "sqrt_h",
        "wt_on_z1",
        "wt_on_z2",
        "eta",
        "log_xi0",
        "rho",
        "rho_perp",
        "half_h",
    )
    step_constants: ClassVar[tuple[str, ...]] = ("compensator", "half_start", "quarter_start")
    history: ClassVar[bool] = True

    @classmethod
    def initial_state(cls, scalars: torch.Tensor, num_paths: int) -> Tensors:
        zeros = torch.zeros(num_paths, dtype=scalars.dtype, device=scalars.device)
        return tuple(zeros.clone() for _ in cls.state)

    @classmethod
    def step(cls, state, draws, conv, row, scalars):
        log_return, z1_previous, z2_previous, log_return_half, log_return_quarter, vol_half, vol_quarter = state
        z1, z2, z3 = draws
        c = cls.named(scalars)
        y = conv * c["sqrt_h"] + z1_previous * c["wt_on_z1"] + z2_previous * c["wt_on_z2"]
        log_variance = y * c["eta"] - row[0] + c["log_xi0"]
        vol = torch.exp(log_variance * 0.5)  # sqrt(V_i), left point of step i
        shock = (z1 * c["rho"] + z3 * c["rho_perp"]) * c["sqrt_h"]
        log_return = log_return + (shock * vol - vol * vol * c["half_h"])
        vol_half = vol * row[1] + vol_half * (1.0 - row[1])  # held from the coarse step's left point
        vol_quarter = vol * row[2] + vol_quarter * (1.0 - row[2])
        log_return_half = log_return_half + (shock * vol_half - vol_half * vol_half * c["half_h"])
        log_return_quarter = log_return_quarter + (shock * vol_quarter - vol_quarter * vol_quarter * c["half_h"])
        new_state = (log_return, z1, z2, log_return_half, log_return_quarter, vol_half, vol_quarter)
        return new_state, z1, (log_return, torch.exp(log_variance), log_return_half, log_return_quarter)


class RoughBergomiCellKernel(StepKernel):
    """Step i of the variance-matched cell-average scheme (:mod:`density_engine.models.rough_bergomi_cell`):
    ``dW_i, A_i, B_i`` from z0, z1, z2 (the local factor), ``Ybar_i = conv_i + A_i + B_{i-1}`` (A, B scaled by
    sqrt(2H); conv from the history z0), ``Vbar_i = xi0 exp(eta Ybar_i - compensator_i)``; the conditional mean and
    variance of X given the paths accumulate, and ``X = mean + sqrt(var) z3`` after every step (z3 is the one normal of
    X given the paths: the recorded horizon's own draw). The grids of every 2nd and 4th cell of the same paths
    accumulate their cell sums and add their terms at each coarse cell's last step (their per-step weights are zero
    elsewhere; ``keep`` resets the sums). Outputs as the hybrid kernel's (log-return, variance, nested log-returns)."""

    draws: ClassVar[tuple[str, ...]] = ("normal", "normal", "normal", "normal")
    state: ClassVar[tuple[str, ...]] = (
        "b_previous",
        "mean",
        "var",
        "y_half",
        "w_half",
        "mean_half",
        "var_half",
        "y_quarter",
        "w_quarter",
        "mean_quarter",
        "var_quarter",
    )
    outputs: ClassVar[tuple[str, ...]] = ("log_return", "variance", "log_return_half", "log_return_quarter")
    scalars: ClassVar[tuple[str, ...]] = (
        "dw_on_z0",
        "a_on_z0",
        "a_on_z1",
        "b_on_z0",
        "b_on_z1",
        "b_on_z2",
        "eta",
        "eta_half",
        "eta_quarter",
        "log_xi0",
    )
    step_constants: ClassVar[tuple[str, ...]] = tuple(
        f"{name}{suffix}"
        for suffix in ("", "_half", "_quarter")
        for name in ("compensator", "leverage", "shift", "drift", "spread", "keep")
    )
    history: ClassVar[bool] = True

    @classmethod
    def initial_state(cls, scalars: torch.Tensor, num_paths: int) -> Tensors:
        zeros = torch.zeros(num_paths, dtype=scalars.dtype, device=scalars.device)
        return tuple(zeros.clone() for _ in cls.state)

    @staticmethod
    def _accumulate(y, dw, mean, var, row, base, eta, log_xi0):
        """Add a cell with average ``y`` and increment ``dw`` to (mean, var) with the constants at ``row[base:]``."""
        vol = torch.exp((y * eta - row[base] + log_xi0) * 0.5)
        variance = vol * vol
        mean = mean + (vol * (dw - row[base + 2]) * row[base + 1] - variance * row[base + 3])
        return mean, var + variance * row[base + 4], variance

    @classmethod
    def step(cls, state, draws, conv, row, scalars):
        b_previous, mean, var, y_half, w_half, mean_half, var_half, y_quarter, w_quarter, mean_quarter, var_quarter = (
            state
        )
        z0, z1, z2, z3 = draws
        c = cls.named(scalars)
        dw = z0 * c["dw_on_z0"]
        y = conv + z0 * c["a_on_z0"] + z1 * c["a_on_z1"] + b_previous
        b_next = z0 * c["b_on_z0"] + z1 * c["b_on_z1"] + z2 * c["b_on_z2"]
        mean, var, variance = cls._accumulate(y, dw, mean, var, row, 0, c["eta"], c["log_xi0"])
        y_half, w_half = y_half + y, w_half + dw
        mean_half, var_half, _ = cls._accumulate(
            y_half, w_half, mean_half, var_half, row, 6, c["eta_half"], c["log_xi0"]
        )
        y_half, w_half = y_half * row[11], w_half * row[11]
        y_quarter, w_quarter = y_quarter + y, w_quarter + dw
        mean_quarter, var_quarter, _ = cls._accumulate(
            y_quarter, w_quarter, mean_quarter, var_quarter, row, 12, c["eta_quarter"], c["log_xi0"]
        )
        y_quarter, w_quarter = y_quarter * row[17], w_quarter * row[17]
        new_state = (
            b_next, mean, var, y_half, w_half, mean_half, var_half, y_quarter, w_quarter, mean_quarter, var_quarter,
        )  # fmt: skip
        outputs = (
            mean + torch.sqrt(var) * z3,
            variance,
            mean_half + torch.sqrt(var_half) * z3,
            mean_quarter + torch.sqrt(var_quarter) * z3,
        )
        return new_state, z0, outputs
