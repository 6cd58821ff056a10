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
