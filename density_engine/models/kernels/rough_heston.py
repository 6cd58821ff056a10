"""Rough Heston step of the iVi scheme (model and equations: :mod:`density_engine.models.rough_heston`)."""

from __future__ import annotations

from typing import ClassVar

import torch

from density_engine.models.kernels import StepKernel, Tensors


class RoughHestonKernel(StepKernel):
    """Step i: ``a_i = g0 increment + conv_i`` (clipped at a tiny floor), ``dU_i ~ IG`` by Michael-Schucany-Haas
    (``dU = mu / r`` if ``U (1 + r) <= r`` else ``mu r``, ``r = 1 + a + sqrt(a (a + 2))``, ``a = N^2 ig_scale / a_i``),
    ``X += du_coef dU + a_coef a_i + rho_perp sqrt(dU) N'``; history value ``D_i = dU_i - a_i``.
    Outputs: the log-return after the step and ``dU_i`` (the step's integrated variance)."""

    draws: ClassVar[tuple[str, ...]] = ("normal", "normal", "uniform")
    state: ClassVar[tuple[str, ...]] = ("log_return",)
    outputs: ClassVar[tuple[str, ...]] = ("log_return", "integrated_variance_increment")
    scalars: ClassVar[tuple[str, ...]] = ("inv_one_plus", "ig_scale", "a_floor", "du_coef", "a_coef", "rho_perp")
    step_constants: ClassVar[tuple[str, ...]] = ("g0_increment",)
    history: ClassVar[bool] = True

    @classmethod
    def initial_state(cls, scalars: torch.Tensor, num_paths: int) -> Tensors:
        return (torch.zeros(num_paths, dtype=scalars.dtype, device=scalars.device),)

    @classmethod
    def step(cls, state, draws, conv, row, scalars):
        (log_return,) = state
        normal_ig, normal_return, uniform = draws
        c = cls.named(scalars)
        a = torch.clamp(conv + row[0], min=c["a_floor"])
        ig_a = normal_ig * normal_ig * c["ig_scale"] / a
        r = torch.sqrt((ig_a + 2.0) * ig_a) + ig_a + 1.0
        mu = a * c["inv_one_plus"]
        d_u = torch.where(uniform * (r + 1.0) <= r, mu / r, mu * r)
        log_return = (
            log_return + d_u * c["du_coef"] + a * c["a_coef"] + torch.sqrt(d_u) * (normal_return * c["rho_perp"])
        )
        return (log_return,), d_u - a, (log_return, d_u)
