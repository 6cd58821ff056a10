"""GJR-GARCH(1,1) step, Hansen skew-t innovations from two uniforms (model: :mod:`density_engine.models.gjrgarch`)."""

from __future__ import annotations

import math
from typing import ClassVar

import torch

from density_engine.models.kernels import StepKernel, Tensors

EXPM1_SERIES_LIMIT = 0.5
"""Below this, exp(y) - 1 is summed as its Taylor series (no cancellation); above, exp(y) - 1 loses < 2 ulps."""


def expm1_nonnegative(y: torch.Tensor) -> torch.Tensor:
    """``exp(y) - 1`` for ``y >= 0`` to a few ulps, from exp and multiply-adds only: the Taylor series (8 terms in
    float32, 16 in float64: truncation below 1e-8 resp. 1e-19 relative) below ``EXPM1_SERIES_LIMIT``, ``exp(y) - 1``
    above. (Inductor's vectorised CPU ``expm1`` is ``exp(y) - 1`` everywhere, which loses all digits for small y; this
    form is accurate in eager and compiled code alike.)"""
    terms = 8 if y.dtype == torch.float32 else 16
    series = y * (1.0 / math.factorial(terms)) + 1.0 / math.factorial(terms - 1)
    for k in range(terms - 2, 0, -1):  # Horner: sum_{k>=1} y^k / k!
        series = series * y + 1.0 / math.factorial(k)
    return torch.where(y < EXPM1_SERIES_LIMIT, series * y, torch.exp(y) - 1.0)


def hansen_skewt(u_sign_angle: torch.Tensor, u_radius: torch.Tensor, c: dict[str, torch.Tensor]) -> torch.Tensor:
    """Hansen skew-t variates from two independent uniforms (exact composition of the model docstring).

    With ``d = u - (1 - lam)/2`` and ``s = sign(d)`` (the branch), ``q = (1 + s lam)/2`` is the branch probability,
    ``V = |d|/q`` is uniform on [0, 1) and independent of ``s``, and ``s (1 + s lam) = 2 s q``. With
    ``w = (2/pi) s q = (s + lam)/pi``: ``cos(pi/2 V) = cos(d / w)`` and
    ``z = (pi |T| sqrt((eta-2)/eta) / b) cos(d / w) w - a/b``,
    ``pi |T| sqrt((eta-2)/eta) / b = sqrt(pi^2 (eta-2)/b^2 (W^(-2/eta) - 1))``, ``W = u_radius`` in (0, 1].
    ``w`` and ``1 / w`` are selected per branch (``w_neg``, ``w_pos``, ``inv_w_neg``, ``inv_w_pos``): no division.
    """
    d = u_sign_angle - c["branch_split"]
    negative = d < 0.0
    w = torch.where(negative, c["w_neg"], c["w_pos"])
    cos_angle = torch.cos(d * torch.where(negative, c["inv_w_neg"], c["inv_w_pos"]))
    radius = torch.sqrt(expm1_nonnegative(torch.log(u_radius) * c["neg_two_over_eta"]) * c["radius_scale"])
    return radius * cos_angle * w - c["a_over_b"]


class GJRGarchKernel(StepKernel):
    """``R += sqrt(h) z``, ``h = h (alpha z^2 + gamma min(z, 0)^2 + beta) + omega``; state (R, h)."""

    draws: ClassVar[tuple[str, ...]] = ("uniform", "uniform")
    state: ClassVar[tuple[str, ...]] = ("log_return", "variance")
    outputs: ClassVar[tuple[str, ...]] = ("log_return", "variance")
    scalars: ClassVar[tuple[str, ...]] = (
        "sigma0_sq",
        "omega",
        "alpha",
        "gamma",
        "beta",
        "branch_split",
        "w_neg",
        "w_pos",
        "inv_w_neg",
        "inv_w_pos",
        "neg_two_over_eta",
        "radius_scale",
        "a_over_b",
    )

    @classmethod
    def initial_state(cls, scalars: torch.Tensor, num_paths: int) -> Tensors:
        variance = cls.named(scalars)["sigma0_sq"].expand(num_paths).clone()
        return torch.zeros_like(variance), variance

    @classmethod
    def step(cls, state, draws, conv, row, scalars):
        log_return, variance = state
        c = cls.named(scalars)
        z = hansen_skewt(draws[0], draws[1], c)
        log_return = log_return + torch.sqrt(variance) * z
        negative = torch.clamp(z, max=0.0)
        growth = z * z * c["alpha"] + c["beta"] + negative * negative * c["gamma"]
        variance = variance * growth + c["omega"]
        return (log_return, variance), None, (log_return, variance)
