"""Exact moments of rough Bergomi vs the point-value and cell-average discretisations (docs/accuracy.md §1.2, §4.3).

With I = int sqrt(V) dW and Q = int V dt over [0, T] (xi0 = 1 after scaling by (xi0 T)):
    E[Q^2] / T^2 = mean over [0, T]^2 of exp(eta^2 Cov(Y_s, Y_t))
    E[I Q]      = int_0^T dt int_t^T ds eta sqrt(2H) (s - t)^a exp(eta^2 (Cov(Y_t, Y_s)/2 - t^2H/8))   (Gaussian IBP)
(the second by Stein's lemma: E[sqrt V_t V_s dW_t] = eta Cov(Y_s, dW_t) E[sqrt V_t V_s],
Cov(Y_s, dW_t) = sqrt(2H) (s - t)^a dt).
The discretised versions are finite sums with the same Gaussian algebra: point values (left point) and cell averages
(the "P6" scheme, with its damping of the Ito part). E[I Q] drives the skew of X, E[Q^2] its kurtosis.

    python -m benchmarks.accuracy.rb_moment_diagnostics --hurst 0.07 --eta 1.9 --days 1
"""

from __future__ import annotations

import argparse
import math

import numpy as np

from tests.models.rough_bergomi_exact import cell_average_covariance, joint_cell_covariance, volterra_cov


def gauss(nodes: int, power: float) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Legendre on [0, 1] after x = y^power (clusters nodes at 0)."""
    y, w = np.polynomial.legendre.leggauss(nodes)
    y, w = (y + 1) / 2, w / 2
    return y**power, power * y ** (power - 1) * w


def exact_eq2(maturity: float, hurst: float, eta: float, nodes: int = 300) -> float:
    u, wu = gauss(nodes, 4.0)
    total = 0.0
    for ui, wi in zip(u, wu, strict=True):
        s = maturity * ui
        v, wv = gauss(nodes, 4.0)
        t = s + (maturity - s) * v
        c = volterra_cov(np.full_like(t, max(s, 1e-300)), t, hurst) if s > 0 else np.zeros_like(t)
        total += 2 * wi * maturity * np.sum(np.exp(eta**2 * c) * wv * (maturity - s))
    return total / maturity**2


def exact_eiq(maturity: float, hurst: float, eta: float, nodes: int = 300) -> float:
    a = hurst - 0.5
    t_nodes, wt = gauss(nodes, 6.0)
    total = 0.0
    for ti, wi in zip(maturity * t_nodes, maturity * wt, strict=True):
        w, ww = gauss(nodes, 6.0)
        s = ti + (maturity - ti) * w ** (1 / (a + 1))  # removes the (s - t)^a singularity
        cov = volterra_cov(np.full_like(s, max(ti, 1e-300)), s, hurst)
        g = eta * math.sqrt(2 * hurst) * np.exp(eta**2 * (cov / 2 - ti ** (2 * hurst) / 8))
        total += wi * (maturity - ti) ** (a + 1) / (a + 1) * np.sum(g * ww)
    return total / maturity**1.5


def point_moments(maturity: float, hurst: float, eta: float, n: int) -> tuple[float, float]:
    a, dt = hurst - 0.5, maturity / n
    t = np.arange(n + 1) * dt
    tt = t[:n]
    c = volterra_cov(np.maximum(tt[:, None], 1e-300), np.maximum(tt[None, :], 1e-300), hurst)
    c[0, :] = c[:, 0] = 0.0
    np.fill_diagonal(c, tt ** (2 * hurst))
    eq2 = float(np.mean(np.exp(eta**2 * c)))
    e = np.exp(eta**2 * (c / 2 - (tt ** (2 * hurst))[:, None] / 8))  # E[sqrt V_i V_j] / xi0^1.5, row i
    i, j = np.arange(n)[:, None], np.arange(n)[None, :]
    first = np.clip(tt[None, :] - t[:n, None], 0, None) ** (a + 1)
    second = np.clip(tt[None, :] - t[1:, None], 0, None) ** (a + 1)
    cross = np.where(j >= i + 1, math.sqrt(2 * hurst) / (a + 1) * (first - second), 0.0)  # Cov(Y_{t_j}, dW_i)
    return eq2, float(np.sum(eta * cross * e) * dt) / maturity**1.5


def cell_moments(maturity: float, hurst: float, eta: float, n: int) -> tuple[float, float]:
    dt = maturity / n
    cov = joint_cell_covariance(n, maturity, hurst)
    cc = cov[n:, n:]
    var = np.diag(cc)
    t = np.arange(n + 1) * dt
    mean_t2h = (t[1:] ** (2 * hurst + 1) - t[:-1] ** (2 * hurst + 1)) / ((2 * hurst + 1) * dt)
    damp = np.exp(-(eta**2) * (mean_t2h - var) / 8)
    e = np.exp(eta**2 * (cc / 2 - var[:, None] / 8))
    cross = cov[n:, :n].T  # [i, j] = Cov(Ybar_j, dW_i)
    eiq = float(np.sum(eta * cross * e * damp[:, None]) * dt) / maturity**1.5
    return float(np.mean(np.exp(eta**2 * cell_average_covariance(n, maturity, hurst)))), eiq


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hurst", type=float, default=0.07)
    parser.add_argument("--eta", type=float, default=1.9)
    parser.add_argument("--days", type=float, default=1.0)
    args = parser.parse_args()
    maturity = args.days / 252.0
    print(
        f"exact: E[Q^2]/(xi T)^2 = {exact_eq2(maturity, args.hurst, args.eta):.6f}, "
        f"E[IQ]/(xi T)^1.5 = {exact_eiq(maturity, args.hurst, args.eta):.6f}"
    )
    print("| N | point E[Q^2] | cell E[Q^2] | point E[IQ] | cell E[IQ] |")
    print("|---|---|---|---|---|")
    for n in (4, 16, 64, 128, 256, 512):
        pq, pi = point_moments(maturity, args.hurst, args.eta, n)
        cq, ci = cell_moments(maturity, args.hurst, args.eta, n) if n <= 256 else (float("nan"), float("nan"))
        print(f"| {n} | {pq:.5f} | {cq:.5f} | {pi:.5f} | {ci:.5f} |")


if __name__ == "__main__":
    main()
