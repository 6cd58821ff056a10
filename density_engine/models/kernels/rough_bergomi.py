"""Rough Bergomi step of the hybrid scheme (model and equations: :mod:`density_engine.models.rough_bergomi`)."""

from __future__ import annotations

from typing import ClassVar

import torch

from density_engine.models.kernels import StepKernel, Tensors


class RoughBergomiKernel(StepKernel):
    """Step i: ``Y_i = conv_i sqrt(h) + Wt_{i-1}`` (Wt from the previous step's z1, z2), ``V_i = xi0 exp(eta Y_i -
    compensator_i)``, ``X += sqrt(V_i) sqrt(h) (rho z1 + rho_perp z3) - V_i h / 2``; history value z1 (= dW_i/sqrt(h)).
    Outputs: the log-return after the step and ``V_i``, the variance used in step i (its left point)."""

    draws: ClassVar[tuple[str, ...]] = ("normal", "normal", "normal")
    state: ClassVar[tuple[str, ...]] = ("log_return", "z1_previous", "z2_previous")
    outputs: ClassVar[tuple[str, ...]] = ("log_return", "variance")
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
    step_constants: ClassVar[tuple[str, ...]] = ("compensator",)
    history: ClassVar[bool] = True

    @classmethod
    def initial_state(cls, scalars: torch.Tensor, num_paths: int) -> Tensors:
        zeros = torch.zeros(num_paths, dtype=scalars.dtype, device=scalars.device)
        return zeros, zeros.clone(), zeros.clone()

    @classmethod
    def step(cls, state, draws, conv, row, scalars):
        log_return, z1_previous, z2_previous = state
        z1, z2, z3 = draws
        c = cls.named(scalars)
        y = conv * c["sqrt_h"] + z1_previous * c["wt_on_z1"] + z2_previous * c["wt_on_z2"]
        log_variance = y * c["eta"] - row[0] + c["log_xi0"]
        vol = torch.exp(log_variance * 0.5)  # sqrt(V_i), left point of step i
        increment = (z1 * c["rho"] + z3 * c["rho_perp"]) * vol * c["sqrt_h"] - vol * vol * c["half_h"]
        log_return = log_return + increment
        return (log_return, z1, z2), z1, (log_return, torch.exp(log_variance))
