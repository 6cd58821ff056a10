"""GJR-GARCH(1,1) with Hansen (1994) skew-t innovations, normalised to unconditional variance 1.

::

    r_t = sqrt(h_t) z_t,   z_t iid Hansen skew-t(eta, lam), E z = 0, E z^2 = 1
    h_{t+1} = omega + (alpha + gamma 1{z_t < 0}) h_t z_t^2 + beta h_t
    P = alpha + beta + gamma m2neg,   m2neg = E[z^2 1{z < 0}]   (not 1/2 when lam != 0)
    omega = 1 - P,   h_1 = sigma0_sq   (the variance of the FIRST return)

One model step is one return; the recursion is exact (only Monte Carlo error).

Sampler (exact in distribution, rejection-free, two uniforms per draw): a Student-t by Bailey's (1994) polar method
written in polar coordinates, ``T = cos(theta) sqrt(eta (W^(-2/eta) - 1))`` with ``W ~ U(0, 1)`` and an independent
uniform angle; the Hansen variate is the composition ``z = (s |T| (1 + s lam) sqrt((eta-2)/eta) - a) / b`` with
``P(s = -1) = (1 - lam)/2``. One uniform gives both the sign ``s`` and the (re-scaled, independent) angle. Float32
uniforms are multiples of 2^-24, so the t tail is capped at ``|T| <= sqrt(eta (2^(48/eta) - 1))`` (probability < 6e-8
per draw).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import torch

from density_engine.models import skewt
from density_engine.models.base import Model, Parameter

if TYPE_CHECKING:
    from density_engine.engine.rng import RandomStream

STEP_CHUNK = 16
"""Steps whose random numbers are drawn in one call (fixed, so consumption does not depend on the block size)."""


def persistence(alpha: float, gamma: float, beta: float, eta: float, lam: float) -> float:
    """``P = alpha + beta + gamma E[z^2 1{z<0}]`` for Hansen skew-t innovations."""
    return alpha + beta + gamma * skewt.partial_moment(2, eta, lam)


def persistence_array(
    alpha: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eta: np.ndarray, lam: np.ndarray
) -> np.ndarray:
    """Vectorised :func:`persistence` (same arithmetic, so the same floats; NaN outside the skew-t domain)."""
    return alpha + beta + gamma * skewt.partial_moments(2, eta, lam)


def skewt_from_uniforms(
    u_sign_angle: torch.Tensor, u_radius: torch.Tensor, eta: float, lam: float, work: torch.Tensor | None = None
) -> torch.Tensor:
    """Hansen skew-t variates from two independent ``U[0, 1)`` tensors (exact composition, see module docstring).

    Both inputs are overwritten (used as work space, as is ``work``, a tensor of the same shape, if given); the
    result is returned in ``u_radius``'s storage. Only arithmetic passes (no ``torch.where``, which is several times
    slower on CPU): with ``d = u - (1 - lam)/2`` and
    ``s = sign(d)`` (the branch), ``q = (1 + s lam)/2`` is the branch probability, ``V = |d|/q = d/(s q)`` is uniform
    on [0, 1) and independent of ``s``, and ``s (1 + s lam) = 2 s q``. With ``w = (2/pi) s q = (s + lam)/pi``:
    ``cos(pi/2 V) = cos(d / w)`` and ``z = (pi |T| sqrt((eta-2)/eta) / b) cos(d / w) w - a/b``.
    """
    k = skewt.hansen_constants(eta, lam)
    d = u_sign_angle.sub_((1.0 - lam) / 2.0)
    w = torch.copysign(torch.tensor(1.0 / math.pi, dtype=d.dtype, device=d.device), d, out=work).add_(lam / math.pi)
    cos_angle = d.div_(w).cos_()
    # pi |T| sqrt((eta-2)/eta) / b = sqrt(pi^2 (eta-2)/b^2 (W^(-2/eta) - 1)) cos(pi/2 V),  W = 1 - u in (0, 1]
    radius = u_radius.neg_().log1p_().mul_(-2.0 / eta).expm1_().mul_(math.pi**2 * (eta - 2.0) / k.b**2).sqrt_()
    return radius.mul_(cos_angle).mul_(w).sub_(k.a / k.b)


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

    def _prepare(self) -> None:
        p = self.params
        self.persistence = persistence(p["alpha"], p["gamma"], p["beta"], p["eta"], p["lam"])
        self.omega = 1.0 - self.persistence

    def block_bytes_per_path(self, num_fine_steps: int) -> int:
        return 8 * self.dtype.itemsize * min(num_fine_steps, STEP_CHUNK) + 64

    def simulate_block(self, stream: RandomStream, record_steps: Sequence[int]) -> torch.Tensor:
        p = self.params
        alpha, gamma, beta, eta, lam = p["alpha"], p["gamma"], p["beta"], p["eta"], p["lam"]
        n, dtype, device = stream.num_paths, stream.dtype, stream.device
        out = torch.empty((len(record_steps), n), dtype=dtype, device=device)
        h = torch.full((n,), p["sigma0_sq"], dtype=dtype, device=device)
        cum = torch.zeros(n, dtype=dtype, device=device)
        vol = torch.empty_like(h)
        # work arrays reused for every chunk of steps (no allocation churn): 2 uniforms, transform, growth, min(z, 0)
        work = torch.empty((5, min(STEP_CHUNK, record_steps[-1]), n), dtype=dtype, device=device)
        record = {s: i for i, s in enumerate(record_steps)}
        total = record_steps[-1]
        step = 0
        while step < total:
            width = min(STEP_CHUNK, total - step)
            u1, u2, scratch, growth, negative = (buffer[:width] for buffer in work)
            z = skewt_from_uniforms(
                stream.uniform_steps(width, out=u1), stream.uniform_steps(width, out=u2), eta, lam, work=scratch
            )  # (width, n)
            # h_{t+1} = omega + growth_t h_t,  growth_t = alpha z^2 + gamma min(z, 0)^2 + beta
            torch.mul(z, z, out=growth).mul_(alpha).add_(beta)
            torch.clamp(z, max=0.0, out=negative)
            growth.addcmul_(negative, negative, value=gamma)
            for j in range(width):
                cum.addcmul_(torch.sqrt(h, out=vol), z[j])
                h.mul_(growth[j]).add_(self.omega)
                step += 1
                if step in record:
                    out[record[step]] = cum
        return out
