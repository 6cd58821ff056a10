"""Scheme prototypes as pure functions of random-number tensors (torch; float32 or float64), for the new engine API.

Each takes the parameters, a time grid and the random numbers of a block of paths and returns the samples plus what
the error budget needs (conditional moments for conditional Monte Carlo, coupled coarse-grid samples). They reproduce
the production models (density_engine.models.*) exactly when fed the same numbers on a uniform grid
(benchmarks/accuracy/check_prototypes.py), and add:

* any grid (per-horizon grids; graded grids), for rough Heston (iVi with the Volterra weights of a non-uniform grid);
* the coupled coarse grid of the rough Bergomi hybrid scheme (every `stride`-th point of the same paths), whose
  Richardson difference is the discretisation-error estimate of docs/accuracy.md;
* the conditional law of X given the variance drivers (both models are conditionally Gaussian), so the CDF can be
  estimated as a mean of normal CDFs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from density_engine.models.rough_heston_fourier import RHParams
from tests.models.rough_bergomi_exact import RBParams


@dataclass
class SchemeOutput:
    """Samples of X_T (paths,) on the fine grid; per grid (index 0 = the fine grid, then the coupled coarse grids) the
    conditional mean and sd of X_T given the variance drivers, shape (grids, paths)."""

    x: torch.Tensor
    cond_mean: torch.Tensor
    cond_sd: torch.Tensor
    x_coarse: torch.Tensor | None = None  # (coarse grids, paths), same paths


# ---- rough Heston: iVi on any grid --------------------------------------------------------------------------------


def ivi(p: RHParams, grid: torch.Tensor, normals: torch.Tensor, uniforms: torch.Tensor) -> SchemeOutput:
    """iVi scheme on ``grid`` (t_0 = 0 < ... < t_n, float64), normals (2, n, P), uniforms (n, P) (time-major, as the
    production model reads them). Returns X_T and the conditional moments N(-U/2 + rho Z, (1 - rho^2) U)."""
    dtype, device = normals.dtype, normals.device
    t = grid.to(torch.float64)
    n, paths = normals.shape[1], normals.shape[2]
    a = p.alpha
    ga1 = math.gamma(a + 1.0)

    def kbar(x: torch.Tensor) -> torch.Tensor:
        return x.clamp(min=0.0).pow(a) / ga1

    g0 = p.v0 * t + p.kappa * p.theta * t.pow(a + 1.0) / math.gamma(a + 2.0)
    dg0 = (g0[1:] - g0[:-1]).to(device, dtype)
    k = kbar(t[1:] - t[:-1])  # Kbar(h_i)
    # weights of D_j = dU_j - a_j (= k_j Y_j) in a_i: M[i, j] / k_j, M[i, j] = Kbar(t_{i+1} - t_j) - Kbar(t_i - t_j)
    m = kbar(t[1:, None] - t[None, :-1]) - kbar(t[:-1, None] - t[None, :-1])
    w = (torch.tril(m, -1) / k[None, :]).to(device, dtype)
    one_plus = 1.0 + p.kappa * k
    ig_scale = ((p.sigma * k) ** 2 / (2.0 * one_plus)).to(device, dtype)
    inv_one_plus = (1.0 / one_plus).to(device, dtype)
    dz_scale = (one_plus / (p.sigma * k)).to(device, dtype)
    rho_perp = math.sqrt(max(0.0, 1.0 - p.rho**2))
    history = torch.zeros((n, paths), device=device, dtype=dtype)
    u_tot = torch.zeros(paths, device=device, dtype=dtype)
    z_tot = torch.zeros_like(u_tot)
    x = torch.zeros_like(u_tot)
    for i in range(n):
        a_i = dg0[i] + (w[i, :i] @ history[:i] if i else 0.0)
        a_i = torch.as_tensor(a_i, device=device, dtype=dtype).expand(paths).clamp(min=float(ig_scale[i]) * 1e-16)
        ig_a = normals[0, i].square() * ig_scale[i] / a_i
        r = 1.0 + ig_a + torch.sqrt(ig_a * (ig_a + 2.0))
        mu = a_i * inv_one_plus[i]
        odds = uniforms[i] / (1.0 - uniforms[i])
        d_u = torch.where(odds <= r, mu / r, mu * r)
        history[i] = d_u - a_i
        d_z = dz_scale[i] * (d_u - mu)
        u_tot += d_u
        z_tot += d_z
        x += -0.5 * d_u + p.rho * d_z + rho_perp * d_u.sqrt() * normals[1, i]
    cond_mean = (-0.5 * u_tot + p.rho * z_tot)[None]
    cond_sd = (rho_perp * u_tot.sqrt())[None]
    return SchemeOutput(x, cond_mean, cond_sd)


# ---- rough Bergomi: hybrid scheme with coupled coarse grids --------------------------------------------------------


def hybrid_weights(steps: int, hurst: float, h: float) -> torch.Tensor:
    a = hurst - 0.5
    k = torch.arange(steps + 1, dtype=torch.float64)
    w = h**a * (k.pow(a + 1) - (k - 1).clamp(min=0).pow(a + 1)) / (a + 1)
    w[:2] = 0.0
    return w


def rb_hybrid(
    p: RBParams, maturity: float, z1: torch.Tensor, z2: torch.Tensor, z3: torch.Tensor, strides: tuple[int, ...] = (1,)
) -> SchemeOutput:
    """The production hybrid scheme (kappa = 1, optimal points, left point, compensator = the scheme's own Var Y) on
    the uniform grid of n = z1.shape[1] steps to ``maturity``; z1, z2, z3 (P, n) as the production draws them. For each
    stride s the grid of every s-th point of the same paths (left-point rule with the fine Y at its points, summed
    increments): conditional moments per grid, and X on the coarse grids (strides > 1) in ``x_coarse``."""
    n = z1.shape[1]
    dtype = z1.dtype
    h = maturity / n
    a = p.hurst - 0.5
    w = hybrid_weights(n, p.hurst, h)
    lag = torch.arange(n).view(1, -1) - torch.arange(n).view(-1, 1)
    toeplitz = torch.where(lag >= 2, w[lag.clamp(min=0)], torch.zeros((), dtype=torch.float64))
    scale = math.sqrt(2 * a + 1)
    cov = h ** (a + 1) / (a + 1)
    var_wt = h ** (2 * a + 1) / (2 * a + 1)
    wt1 = scale * cov / math.sqrt(h)
    wt2 = scale * math.sqrt(max(var_wt - (cov / math.sqrt(h)) ** 2, 0.0))
    var_y = torch.zeros(n, dtype=torch.float64)
    if n > 1:
        var_y[1:] = (2 * a + 1) * (h ** (2 * a + 1) / (2 * a + 1) + h * torch.cumsum(w[1:n] ** 2, 0))
    y = (z1 @ (scale * toeplitz).to(dtype)) * math.sqrt(h)
    y[:, 1:] += wt1 * z1[:, :-1] + wt2 * z2[:, :-1]
    y[:, 0] = 0.0
    log_v = p.eta * y - (0.5 * p.eta**2 * var_y).to(dtype) + math.log(p.xi0)
    v = log_v.exp()
    dw = z1 * math.sqrt(h)
    dwp = z3 * math.sqrt(h)
    rho_perp = math.sqrt(max(0.0, 1.0 - p.rho**2))
    means, sds, xs = [], [], []
    for s in strides:
        vs = v[:, ::s]
        dws = dw.reshape(-1, n // s, s).sum(-1)
        dwps = dwp.reshape(-1, n // s, s).sum(-1)
        q = vs.sum(1) * (h * s)
        ito = (vs.sqrt() * dws).sum(1)
        means.append(p.rho * ito - 0.5 * q)
        sds.append(rho_perp * q.sqrt())
        xs.append(means[-1] + rho_perp * (vs.sqrt() * dwps).sum(1))
    return SchemeOutput(xs[0], torch.stack(means), torch.stack(sds), torch.stack(xs[1:]) if len(xs) > 1 else None)
