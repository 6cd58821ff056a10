"""Rough Bergomi, variance-matched cell-average scheme ("P6v", docs/accuracy.md 4.4 and 4.5): the host constants.

The hybrid scheme (:mod:`density_engine.models.rough_bergomi`) holds the variance at each step's left point; at
eta ~ 3 and H <= 0.1 that point value carries the full local roughness (E[Q^2] of Q = int V dt is 2.7x the exact at
128 steps, H 0.03) and the left-point rule's error decays like N^-(3H + 1/2) from a large constant. This scheme uses
the *cell averages* of the Volterra process instead, and the log-return given the paths in closed form.

On n cells of width h (a = H - 1/2, s = sqrt(2H), kappa(r) = (1/h) int_cell (t - u)^a dt the cell-averaged kernel):

* per cell j three Gaussians (dW_j, A_j, B_j), A_j = int_cell kappa(t_{j+1} - u) dW_u (its own cell's local part),
  B_j = int_cell kappa(t_{j+2} - u) dW_u (its part of the next cell), covariance ``local`` (3 x 3, quadrature);
* cell averages ``Ybar_i = s (A_i + B_{i-1} + sum_{j <= i-2} K_{i-j} dW_j)``, K_l the projection of the
  cell-averaged kernel on dW_j (exact second moments of the Riemann-Liouville increments);
* ``Vbar_i = xi0 exp(eta Ybar_i - eta^2/2 Var Ybar_i)`` with the scheme's own variance (E Vbar_i = xi0 exactly);
* given the paths X is Gaussian::

      X | paths ~ N(rho sum_i d_i sqrt(Vbar_i) (dW_i - eta c_i / 2) - Q/2,  (1 - rho^2) Q + rho^2 h sum_i r_i Vbar_i)

  with Q = h sum Vbar_i, c_i = Cov(Ybar_i, dW_i); d_i = exp(-eta^2 (mean_cell t^2H - Var Ybar_i) / 8) damps the cell
  value's leverage to that of the mean of sqrt(V) over the cell, and r_i = 1 - d_i^2 (1 + eta^2 c_i^2 / (4h)) is the
  variance left to an independent remainder, so that E[I^2] = E[Q] exactly for I = int sqrt(V) dW (Stein's lemma under
  the tilt by Vbar_i; d_i is lowered where r_i would be negative).

Coarser grids of the same paths (every 2nd / 4th cell: the cell average over 2 / 4 cells is the mean of the fine ones,
dW the sum) use the same formulas with their own constants; the engine publishes the finest grid and takes the
discretisation-error estimate from the nested ones. The constants below are float64 and depend on (H, eta, n, h);
computing them costs O(n) after the O(n) kernel weights (no dense covariance).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: Gauss-Legendre nodes of the local quadratures (clustered at the kernel's endpoint singularity by s = y^4).
QUADRATURE_NODES = 64
#: Strides of the nested grids (the finest first): what the step kernel records for the error estimate.
NESTED_STRIDES = (1, 2, 4)
#: Covariance band kept between the cells of one coarse cell (the widest stride minus 1).
BAND = NESTED_STRIDES[-1] - 1


def local_covariance(hurst: float, h: float) -> np.ndarray:
    """Covariance of (dW_j, A_j, B_j) of one cell of width ``h`` (3 x 3, float64)."""
    a = hurst - 0.5
    y, w = np.polynomial.legendre.leggauss(QUADRATURE_NODES)
    y, w = (y + 1.0) / 2.0, w / 2.0
    s, ws = y**4, 4.0 * y**3 * w  # clustered at 0 (the s^(a+1) endpoint)
    ka, kb = _kappa_unit(s, a), _kappa_unit(s + 1.0, a)
    cov = np.empty((3, 3))
    cov[0, 0] = h
    cov[0, 1] = cov[1, 0] = h ** (a + 1.0) * np.sum(ws * ka)
    cov[0, 2] = cov[2, 0] = h ** (a + 1.0) * np.sum(ws * kb)
    cov[1, 1] = h ** (2.0 * a + 1.0) * np.sum(ws * ka * ka)
    cov[1, 2] = cov[2, 1] = h ** (2.0 * a + 1.0) * np.sum(ws * ka * kb)
    cov[2, 2] = h ** (2.0 * a + 1.0) * np.sum(ws * kb * kb)
    return cov


def _kappa_unit(s: np.ndarray, a: float) -> np.ndarray:
    """The cell-averaged kernel for h = 1 at distance ``s`` from the cell's right end (0 for s <= 0)."""
    return (np.maximum(s, 0.0) ** (a + 1.0) - np.maximum(s - 1.0, 0.0) ** (a + 1.0)) / (a + 1.0)


def far_weights(num_cells: int, hurst: float, h: float) -> np.ndarray:
    """``s K_l`` for l = 0 .. num_cells + BAND (zero for l < 2): the weight of dW_{i-l} in Ybar_i (float64)."""
    a = hurst - 0.5
    lag = np.arange(num_cells + BAND + 1, dtype=np.float64)
    far = h**a * ((lag + 1.0) ** (a + 2.0) - 2.0 * lag ** (a + 2.0) + np.abs(lag - 1.0) ** (a + 2.0))
    far /= (a + 1.0) * (a + 2.0)
    far[:2] = 0.0
    return math.sqrt(2.0 * hurst) * far


@dataclass(frozen=True)
class CellGrid:
    """One (possibly coarse) grid: cells of ``stride`` fine cells, of width ``width``; constants per cell (float64)."""

    stride: int
    width: float
    variance: np.ndarray  # Var Ybar_c of the scheme
    leverage_cov: np.ndarray  # c_c = Cov(Ybar_c, dW_c), dW_c the cell's Brownian increment
    damping: np.ndarray  # d_c
    remainder: np.ndarray  # r_c = 1 - d_c^2 (1 + eta^2 c_c^2 / (4 width))


@dataclass(frozen=True)
class CellScheme:
    """The scheme's constants on ``num_cells`` cells of width ``h``: the local factor (lower Cholesky of
    :func:`local_covariance`), the far weights and the grids of :data:`NESTED_STRIDES`."""

    h: float
    local_factor: np.ndarray
    far: np.ndarray
    grids: tuple[CellGrid, ...]


def cell_scheme(num_cells: int, h: float, hurst: float, eta: float) -> CellScheme:
    """Constants of P6v on ``num_cells`` cells of width ``h`` (``num_cells`` a multiple of the widest stride)."""
    n = int(num_cells)
    if n < 1 or n % NESTED_STRIDES[-1]:
        raise ValueError(f"the cell scheme needs a multiple of {NESTED_STRIDES[-1]} cells, got {num_cells}")
    local = local_covariance(hurst, h)
    far = far_weights(n, hurst, h)
    s = math.sqrt(2.0 * hurst)
    band, lev_band = _covariance_bands(n, h, s, local, far)
    t = np.arange(n + 1, dtype=np.float64) * h
    grids = []
    for stride in NESTED_STRIDES:
        k = n // stride
        start = np.arange(k) * stride
        var = np.zeros(k)
        lev = np.zeros(k)
        for i in range(stride):  # pairs (i, j) of cells inside one coarse cell, i <= j
            var += band[0][start + i]
            lev += lev_band[0][start + i]
            for j in range(i + 1, stride):
                var += 2.0 * band[j - i][start + i]
                lev += lev_band[j - i][start + j]  # Cov(Ybar_j, dW_i), i < j
        var /= stride**2
        lev /= stride
        t0, t1 = t[start], t[start + stride]
        mean_t2h = (t1 ** (2 * hurst + 1) - t0 ** (2 * hurst + 1)) / ((2 * hurst + 1) * (t1 - t0))
        width = h * stride
        excess = 1.0 + eta**2 * lev**2 / (4.0 * width)
        damping = np.minimum(np.exp(-(eta**2) * (mean_t2h - var) / 8.0), 1.0 / np.sqrt(excess))
        remainder = np.maximum(1.0 - damping**2 * excess, 0.0)
        grids.append(CellGrid(stride, width, var, lev, damping, remainder))
    return CellScheme(h, np.linalg.cholesky(local), far, tuple(grids))


def _covariance_bands(
    n: int, h: float, s: float, local: np.ndarray, far: np.ndarray
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """``band[o][i] = Cov(Ybar_i, Ybar_{i+o})`` and ``lev_band[o][i] = Cov(Ybar_i, dW_{i-o})`` for o = 0..BAND.

    Cell j contributes through dW_j to every later Ybar_i with i - j >= 2 (weight far_{i-j}), through A_j to Ybar_j and
    through B_j to Ybar_{j+1}; cells are independent, so each covariance is a sum over the cells both depend on."""
    var_w, cov_wa, cov_wb = local[0, 0], local[0, 1], local[0, 2]
    var_a, cov_ab, var_b = local[1, 1], local[1, 2], local[2, 2]
    index = np.arange(n)
    band, lev_band = [], []
    for o in range(BAND + 1):
        # far cells j <= i - 2 of Ybar_i: lags l = i - j in 2..i, weights far_l far_{l+o}
        products = far[: n + 1] * far[o : n + 1 + o]
        far_part = var_w * np.concatenate([[0.0], np.cumsum(products[1:])])[index]
        # cell i - 1: B_{i-1} in Ybar_i; in Ybar_{i+o} through B (o = 0) or dW at lag o + 1
        previous = np.where(index >= 1, s * s * var_b if o == 0 else s * far[o + 1] * cov_wb, 0.0)
        # cell i: A_i in Ybar_i; in Ybar_{i+o} through A (o = 0), B (o = 1) or dW at lag o
        own = s * s * var_a if o == 0 else (s * s * cov_ab if o == 1 else s * far[o] * cov_wa)
        band.append(far_part + previous + own)
        if o == 0:
            lev_band.append(np.full(n, s * cov_wa))
        elif o == 1:
            lev_band.append(np.where(index >= 1, s * cov_wb, 0.0))
        else:
            lev_band.append(np.where(index >= o, far[o] * var_w, 0.0))
    return band, lev_band


__all__ = ["NESTED_STRIDES", "CellGrid", "CellScheme", "cell_scheme", "far_weights", "local_covariance"]
