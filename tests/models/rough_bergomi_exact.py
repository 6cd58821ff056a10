"""Rough Bergomi by exact Gaussian simulation, conditional Monte Carlo and Richardson extrapolation (reference method).

Model (convention of density_engine.models.rough_bergomi; a = H - 1/2, time in years, X = log(S_T / S_0))::

    Y_t = sqrt(2H) int_0^t (t-u)^a dW_u  (Var Y_t = t^(2H)),   V_t = xi0 exp(eta Y_t - eta^2/2 t^(2H)),
    dX = sqrt(V) (rho dW + sqrt(1 - rho^2) dW_perp) - V/2 dt

Exact simulation (Bayer, Friz & Gatheral 2016, §4): on the uniform grid t_i = i T/n the vector
(dW_0..dW_{n-1}, Y_{t_1}..Y_{t_{n-1}}) is Gaussian with the covariance below; it is drawn as L z with L a Cholesky
factor (or the PCA factor U sqrt(Lambda), for quasi-Monte Carlo) of that covariance::

    Cov(dW_i, dW_j) = delta_ij T/n
    Cov(Y_t, dW_j)  = sqrt(2H)/(a+1) ((t - t_j)^(a+1) - (t - min(t, t_{j+1}))^(a+1))      (t > t_j, else 0)
    Cov(Y_s, Y_t)   = 2H s^(a+1) t^a / (a+1) 2F1(-a, 1; a+2; s/t)                           (s <= t; Euler integral)

Coarser nested grids (stride 2, 4, ...) use the same draws: their dW are sums of the fine ones, their Y the fine Y at
their points. Each grid uses the left-point rule for the log-price, X | W-path ~ N(m, s^2) with
m = rho sum sqrt(V_i) dW_i - 1/2 sum V_i dt, s^2 = (1 - rho^2) sum V_i dt (the W_perp part integrated out: conditional
Monte Carlo, McCrickerd & Pakkanen 2018), so the CDF is F_n(x) = E Phi((x - m)/s), a smooth functional of the
Gaussian draws. Left-point sums with the Volterra process exact converge weakly at rate min(3H + 1/2, 1) (Gassiat
2023; Friz, Salkeld & Wagenhofer 2022), so F_n is Richardson-extrapolated across the nested grids at that rate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy.special import hyp2f1, ndtri

PARAM_ORDER = ("eta", "rho", "hurst", "xi0")


@dataclass(frozen=True)
class RBParams:
    eta: float
    rho: float
    hurst: float
    xi0: float

    @classmethod
    def of(cls, values: dict[str, float]) -> RBParams:
        return cls(*(float(values[k]) for k in PARAM_ORDER))

    def as_dict(self) -> dict[str, float]:
        return {k: getattr(self, k) for k in PARAM_ORDER}


def on_device(array: np.ndarray) -> torch.Tensor:
    """``array`` as a tensor on torch's default device (the generator's ``--device``; CPU unless set)."""
    return torch.from_numpy(array).to(torch.get_default_device())


def weak_rate(hurst: float) -> float:
    """min(3H + 1/2, 1): weak rate of the left-point rule with the Volterra process exact."""
    return min(3.0 * hurst + 0.5, 1.0)


def volterra_cov(s: np.ndarray, t: np.ndarray, hurst: float) -> np.ndarray:
    """Cov(Y_s, Y_t) for arrays s, t > 0 (broadcast)."""
    a = hurst - 0.5
    lo, hi = np.minimum(s, t), np.maximum(s, t)
    return 2.0 * hurst * lo ** (a + 1.0) * hi**a / (a + 1.0) * hyp2f1(-a, 1.0, a + 2.0, lo / hi)


def joint_covariance(steps: int, maturity: float, hurst: float) -> np.ndarray:
    """Covariance of (dW_0..dW_{n-1}, Y_{t_1}..Y_{t_{n-1}}) on the uniform grid (dimension 2n - 1)."""
    a = hurst - 0.5
    n = steps
    dt = maturity / n
    t = np.arange(n + 1) * dt
    cov = np.zeros((2 * n - 1, 2 * n - 1))
    cov[:n, :n] = np.eye(n) * dt
    ty = t[1:n]  # Y points
    tj, tj1 = t[:n][None, :], t[1:][None, :]
    tt = ty[:, None]
    first = np.clip(tt - tj, 0.0, None) ** (a + 1.0)
    second = np.clip(tt - np.minimum(tt, tj1), 0.0, None) ** (a + 1.0)
    cross = math.sqrt(2.0 * hurst) / (a + 1.0) * (first - second)  # (n-1, n): Cov(Y_{t_k}, dW_j)
    cov[n:, :n] = cross
    cov[:n, n:] = cross.T
    cov[n:, n:] = volterra_cov(ty[:, None], ty[None, :], hurst)
    return cov


def factor(cov: np.ndarray, kind: str) -> np.ndarray:
    """A matrix A with A A^T = cov: ``cholesky`` (lower triangular) or ``pca`` (U sqrt(Lambda), largest first)."""
    if kind == "cholesky":
        return np.linalg.cholesky(cov)
    lam, vec = np.linalg.eigh(cov)
    if lam.min() < -1e-12 * lam.max():
        raise ValueError(f"covariance not positive semi-definite (min eigenvalue {lam.min():.3g})")
    order = np.argsort(lam)[::-1]
    return vec[:, order] * np.sqrt(np.clip(lam[order], 0.0, None))


@dataclass
class ConditionalMoments:
    """Per path and grid: mean and sd of X_T given the W-path (left-point rule on that grid)."""

    mean: torch.Tensor  # (grids, paths)
    sd: torch.Tensor


def conditional_moments(
    z: torch.Tensor, fac: torch.Tensor, steps: int, maturity: float, p: RBParams, strides: tuple[int, ...]
) -> ConditionalMoments:
    """From standard normals z (paths, 2n-1) and the factor: (m, s) of X_T | W on each grid of ``strides``."""
    return moments_from_gaussians(z @ fac.T, steps, maturity, p, strides)


def moments_from_gaussians(
    v: torch.Tensor, steps: int, maturity: float, p: RBParams, strides: tuple[int, ...]
) -> ConditionalMoments:
    """As :func:`conditional_moments`, given the correlated vector v = (dW_0..dW_{n-1}, Y_{t_1}..Y_{t_{n-1}})."""
    n = steps
    dw = v[:, :n]
    y = torch.cat([torch.zeros_like(v[:, :1]), v[:, n:]], dim=1)  # Y at t_0..t_{n-1}
    dt = maturity / n
    t = torch.arange(n, dtype=v.dtype) * dt
    var_v = p.xi0 * torch.exp(p.eta * y - 0.5 * p.eta**2 * t ** (2.0 * p.hurst))
    means, sds = [], []
    for stride in strides:
        vs = var_v[:, ::stride]
        dws = dw.reshape(dw.shape[0], n // stride, stride).sum(-1)
        integrated = vs.sum(1) * (dt * stride)
        means.append(p.rho * (vs.sqrt() * dws).sum(1) - 0.5 * integrated)
        sds.append(torch.sqrt((1.0 - p.rho**2) * integrated))
    return ConditionalMoments(torch.stack(means), torch.stack(sds))


def mixture_cdf(x: torch.Tensor, mean: torch.Tensor, sd: torch.Tensor, chunk: int = 1 << 16) -> torch.Tensor:
    """Per grid: mean over paths of Phi((x - m)/s) at each x: (grids, len(x)); and the density likewise."""
    grids, paths = mean.shape
    cdf = torch.zeros((grids, x.numel()), dtype=mean.dtype)
    for s in range(0, paths, chunk):
        m, d = mean[:, s : s + chunk, None], sd[:, s : s + chunk, None]
        cdf += torch.special.ndtr((x[None, None, :] - m) / d).sum(1)
    return cdf / paths


def mixture_pdf(x: torch.Tensor, mean: torch.Tensor, sd: torch.Tensor, chunk: int = 1 << 16) -> torch.Tensor:
    grids, paths = mean.shape
    pdf = torch.zeros((grids, x.numel()), dtype=mean.dtype)
    for s in range(0, paths, chunk):
        m, d = mean[:, s : s + chunk, None], sd[:, s : s + chunk, None]
        zz = (x[None, None, :] - m) / d
        pdf += (torch.exp(-0.5 * zz * zz) / d).sum(1)
    return pdf / (paths * math.sqrt(2.0 * math.pi))


def sobol_normals(dim: int, log2_points: int, seed: int, chunk: int = 4096):
    """Scrambled Sobol points (Owen scrambling) mapped to standard normals, yielded in chunks of rows."""
    from scipy.stats import qmc

    engine = qmc.Sobol(dim, scramble=True, rng=np.random.default_rng(seed))
    total = 1 << log2_points
    for _ in range(0, total, chunk):
        u = engine.random(chunk)
        yield on_device(ndtri(np.clip(u, 1e-16, 1.0 - 1e-16)))


def mc_normals(dim: int, log2_points: int, seed: int, chunk: int = 4096):
    """Pseudo-random standard normals (float32, torch's generator on the default device), yielded in chunks of rows:
    the form for a GPU, where generating Sobol points on the CPU would dominate; independent seeds play the role of
    the scrambles (their spread gives the standard error)."""
    device = torch.get_default_device()
    generator = torch.Generator(device=device).manual_seed(seed)
    for _ in range(0, 1 << log2_points, chunk):
        yield torch.randn(chunk, dim, generator=generator, device=device, dtype=torch.float32)


def richardson(values: np.ndarray, rate: float) -> np.ndarray:
    """First-level extrapolants of consecutive grids (coarse to fine, step ratio 2): E_k = F_{k+1} + (F_{k+1} - F_k) /
    (2^rate - 1), for k = 0..G-2 (shape (G-1, ...))."""
    factor_ = 1.0 / (2.0**rate - 1.0)
    return values[1:] + (values[1:] - values[:-1]) * factor_


# ---- cell-average ("P6") discretisation: the Volterra process averaged over each cell ------------------------------


def _cell_kernel(r: np.ndarray, dt: float, a: float) -> np.ndarray:
    """kappa(r) = (1/dt) int over the cell of (t - u)^a dt, as a function of r = t_{i+1} - u (0 for r <= 0)."""
    return (np.maximum(r, 0.0) ** (a + 1.0) - np.maximum(r - dt, 0.0) ** (a + 1.0)) / (dt * (a + 1.0))


def cell_average_covariance(steps: int, maturity: float, hurst: float, nodes: int = 32) -> np.ndarray:
    """Cov(Ybar_i, Ybar_j) of the cell averages Ybar_i = (1/dt) int_{t_i}^{t_{i+1}} Y_t dt on the uniform grid.

    Ybar_i = sqrt(2H) int_0^{t_{i+1}} kappa(t_{i+1} - u) dW_u, so Cov(Ybar_i, Ybar_{i+l}) = 2H sum_{m<=i} G(m, l) with
    G(m, l) = int_{m dt}^{(m+1) dt} kappa(r) kappa(r + l dt) dr (Gauss-Legendre after r = m dt + dt s^4, which removes
    the r^(a+1) endpoint singularities)."""
    a = hurst - 0.5
    n, dt = steps, maturity / steps
    x, w = np.polynomial.legendre.leggauss(nodes)
    s, w = 0.5 * (x + 1.0), 0.5 * w
    g = np.zeros((n, n))
    lags = np.arange(n)[:, None] * dt
    for m in range(n):
        r = m * dt + dt * s**4
        jac = dt * 4.0 * s**3 * w
        g[m] = (_cell_kernel(r[None, :] + lags, dt, a) * (_cell_kernel(r, dt, a) * jac)[None, :]).sum(1)
    c = 2.0 * hurst * np.cumsum(g, axis=0)  # c[i, l] = Cov(Ybar_i, Ybar_{i+l})
    cov = np.zeros((n, n))
    for i in range(n):
        cov[i, i:] = c[i, : n - i]
        cov[i:, i] = c[i, : n - i]
    return cov


def joint_cell_covariance(steps: int, maturity: float, hurst: float) -> np.ndarray:
    """Covariance of (dW_0..dW_{n-1}, Ybar_0..Ybar_{n-1}); Cov(Ybar_i, dW_j) = sqrt(2H) int_{cell j} kappa(t_{i+1}-u) du
    (closed form), zero for j > i."""
    a = hurst - 0.5
    n, dt = steps, maturity / steps

    def antiderivative(r: np.ndarray) -> np.ndarray:
        return (np.maximum(r, 0.0) ** (a + 2.0) - np.maximum(r - dt, 0.0) ** (a + 2.0)) / (dt * (a + 1.0) * (a + 2.0))

    lag = np.arange(n)[:, None] - np.arange(n)[None, :]
    cross = np.where(lag >= 0, math.sqrt(2.0 * hurst) * (antiderivative((lag + 1) * dt) - antiderivative(lag * dt)), 0)
    cov = np.zeros((2 * n, 2 * n))
    cov[:n, :n] = np.eye(n) * dt
    cov[n:, :n] = cross
    cov[:n, n:] = cross.T
    cov[n:, n:] = cell_average_covariance(n, maturity, hurst)
    return cov


@dataclass
class CellGridConstants:
    """Per nested grid (stride over the fine cells): Var(Ybar), Cov(Ybar, dW) of its cells and the cell mean of t^2H."""

    stride: int
    var: torch.Tensor
    cov_dw: torch.Tensor
    mean_t2h: torch.Tensor


def cell_grid_constants(cov: np.ndarray, steps: int, maturity: float, hurst: float, stride: int) -> CellGridConstants:
    n, dt = steps, maturity / steps
    m = n // stride
    var, c, tb = np.zeros(m), np.zeros(m), np.zeros(m)
    cy, cx = cov[n:, n:], cov[n:, :n]
    for k in range(m):
        sl = slice(k * stride, (k + 1) * stride)
        var[k] = cy[sl, sl].mean()
        c[k] = cx[sl, sl].mean(0).sum()
        t0, t1 = k * stride * dt, (k + 1) * stride * dt
        tb[k] = (t1 ** (2 * hurst + 1) - t0 ** (2 * hurst + 1)) / ((2 * hurst + 1) * (t1 - t0))
    return CellGridConstants(stride, *(on_device(v) for v in (var, c, tb)))


def cell_conditional_moments(
    dw: torch.Tensor, ybar: torch.Tensor, maturity: float, p: RBParams, grids: list[CellGridConstants]
) -> ConditionalMoments:
    """X_T | (dW, Ybar) on each nested grid with the cell-average scheme:

        Vbar_i = xi0 exp(eta Ybar_i - eta^2/2 Var Ybar_i)        (Q_i = dt Vbar_i: E Q_i = xi0 dt exactly)
        d_i = exp(-eta^2 (mean_cell t^2H - Var Ybar_i) / 8)      (mean vol in the cell = d_i sqrt(Vbar_i) in mean)
        I = sum d_i sqrt(Vbar_i) (dW_i - eta/2 Cov(Ybar_i, dW_i))  (zero mean: Stein's lemma)
        X | . ~ N(rho I - Q/2, (1 - rho^2) Q + rho^2 sum (1 - d_i^2) Q_i)
    Var(I_i | .) = Q_i and the leverage E[I_i f(future)] of the continuous model hold to cell-averaging accuracy."""
    n = dw.shape[1]
    dt = maturity / n
    means, sds = [], []
    for g in grids:
        st = g.stride
        yb = ybar.reshape(ybar.shape[0], n // st, st).mean(-1)
        dwc = dw.reshape(dw.shape[0], n // st, st).sum(-1)
        vbar = p.xi0 * torch.exp(p.eta * yb - 0.5 * p.eta**2 * g.var)
        damp = torch.exp(-(p.eta**2) * (g.mean_t2h - g.var) / 8.0)
        q_cells = vbar * (dt * st)
        q = q_cells.sum(1)
        lev = (damp * vbar.sqrt() * (dwc - 0.5 * p.eta * g.cov_dw)).sum(1)
        orth = ((1.0 - damp**2) * q_cells).sum(1)
        means.append(p.rho * lev - 0.5 * q)
        sds.append(torch.sqrt((1.0 - p.rho**2) * q + p.rho**2 * orth))
    return ConditionalMoments(torch.stack(means), torch.stack(sds))


# ---- conditioning on the Volterra path only (dW integrated out given Y): the same left-point rule, less noise --------


@dataclass
class YConditionalFactor:
    """For the point-value grid: Y = L z (z standard normal, dimension n - 1), E[dW | Y] = B z, Cov(dW | Y) = C.

    Given the Volterra values Y_{t_1}..Y_{t_{n-1}} (hence V on the grid), the increments dW are Gaussian with mean A Y
    (A = Cov(dW, Y) Cov(Y)^-1) and covariance C = dt I - A Cov(Y, dW): the left-point log-price is then exactly normal
    given Y, with the leverage sum's conditional variance added to the W_perp part. ``stacked`` = [L; B] (one GEMM)."""

    steps: int
    stacked: torch.Tensor  # (2n - 1, n - 1): rows 0..n-2 give Y, rows n-1.. give E[dW | Y]
    cond_cov: torch.Tensor  # (n, n) float64


def y_conditional_factor(steps: int, maturity: float, hurst: float) -> YConditionalFactor:
    n = steps
    cov = joint_covariance(n, maturity, hurst)
    s_ww, s_yw, s_yy = cov[:n, :n], cov[n:, :n], cov[n:, n:]
    lam, vec = np.linalg.eigh(s_yy)
    if lam.min() <= 0:
        raise ValueError(f"Cov(Y) not positive definite (min eigenvalue {lam.min():.3g})")
    order = np.argsort(lam)[::-1]
    lam, vec = lam[order], vec[:, order]
    lower = vec * np.sqrt(lam)  # Y = lower z
    # A = S_wy S_yy^-1;  B = A lower = S_wy vec lam^-1/2
    b = s_yw.T @ (vec / np.sqrt(lam))
    cond = s_ww - b @ b.T
    cond = 0.5 * (cond + cond.T)
    return YConditionalFactor(n, on_device(np.vstack([lower, b])).float(), on_device(cond))


def y_conditional_moments(
    z: torch.Tensor, fac: YConditionalFactor, maturity: float, p: RBParams, strides: tuple[int, ...]
) -> ConditionalMoments:
    """(m, s) of the left-point X_T given the Volterra path on the fine grid, on each nested grid of ``strides``:
    X | Y ~ N(rho sum sqrt(V_k) E[dW_k | Y] - Q/2, (1 - rho^2) Q + rho^2 u^T Cov(dW | Y) u), u = sqrt(V) per fine step
    (piecewise constant on coarse grids). z: (paths, n - 1) standard normals."""
    n = fac.steps
    g = (z.float() @ fac.stacked.T).double()
    y = torch.cat([torch.zeros_like(g[:, :1]), g[:, : n - 1]], dim=1)  # Y at t_0..t_{n-1}
    mu = g[:, n - 1 :]  # E[dW_j | Y], j = 0..n-1
    dt = maturity / n
    t = torch.arange(n, dtype=g.dtype) * dt
    var_v = p.xi0 * torch.exp(p.eta * y - 0.5 * p.eta**2 * t ** (2.0 * p.hurst))
    means, sds = [], []
    for stride in strides:
        m = n // stride
        vs = var_v[:, ::stride]
        root = vs.sqrt()
        mus = mu.reshape(mu.shape[0], m, stride).sum(-1)
        cs = fac.cond_cov.reshape(m, stride, m, stride).sum((1, 3))
        quad = ((root @ cs) * root).sum(1)
        integrated = vs.sum(1) * (dt * stride)
        means.append(p.rho * (root * mus).sum(1) - 0.5 * integrated)
        sds.append(torch.sqrt((1.0 - p.rho**2) * integrated + p.rho**2 * quad.clamp_min(0.0)))
    return ConditionalMoments(torch.stack(means), torch.stack(sds))
