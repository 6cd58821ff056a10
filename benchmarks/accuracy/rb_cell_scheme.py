"""Production-form prototype of the variance-matched cell-average scheme ("P6v", docs/accuracy.md 4.4), rough Bergomi,
and its check against the exact-Gaussian P6v of rb_cell_convergence.py.

Like the hybrid scheme, cell averages Ybar_i = (1/h) int_cell Y come from a Toeplitz convolution of the increments with
exact local terms: per cell j the Gaussian triple (dW_j, A_j, B_j), A_j = int_cell kappa(t_{j+1} - u) dW_u (its own
cell average), B_j = int_cell kappa(t_{j+2} - u) dW_u (its part of the next cell), kappa(r) = (1/h) int over a cell of
(t - u)^a dt; older cells enter through K_l dW_j, K_l = (1/h) int_cell kappa(t_{i+1} - u) du (the projection on dW_j):

    Ybar_i = sqrt(2H) (A_i + B_{i-1} + sum_{j <= i-2} K_{i-j} dW_j)

Then (compensators from the scheme's own variances, so E Vbar_i = xi0 exactly):
    Vbar_i = xi0 exp(eta Ybar_i - eta^2/2 Var Ybar_i),   Q = h sum Vbar_i
    I_m = sum d_i sqrt(Vbar_i) (dW_i - eta/2 c_i),   c_i = Cov(Ybar_i, dW_i)
    X | paths ~ N(rho I_m - Q/2, (1 - rho^2) Q + rho^2 h sum s_i^2 Vbar_i),  s_i^2 = 1 - d_i^2 (1 + eta^2 c_i^2 / (4h))
(d_i = exp(-eta^2 (mean_cell t^2H - Var Ybar_i)/8), lowered where s_i^2 would be negative). Three normals per step
(dW, A, B; a 3x3 Cholesky) and one per path for X given the paths: the production's count (z1, z2, z3 per step).
Coupled coarse grids (strides 2, 4: coarse Ybar = mean of fine ones) as the production's nested grids.

    python -m benchmarks.accuracy.rb_cell_scheme --check --paths 65536
    python -m benchmarks.accuracy.rb_cell_scheme --cost --paths 8192 --rounds 3
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from benchmarks.accuracy.schemes import SchemeOutput, rb_hybrid
from tests.models.rough_bergomi_exact import RBParams

OUT = Path(__file__).resolve().parent / "measurements" / "rb_cell_scheme.json"


def _kappa1(s: np.ndarray, a: float) -> np.ndarray:
    """kappa for h = 1 at distance s from the cell's right end (0 for s <= 0)."""
    return (np.maximum(s, 0.0) ** (a + 1.0) - np.maximum(s - 1.0, 0.0) ** (a + 1.0)) / (a + 1.0)


@dataclass(frozen=True)
class CellSchemeConstants:
    chol: torch.Tensor  # (3, 3): (dW, A, B) = chol @ z
    toeplitz: torch.Tensor  # (n, n): far-field weights sqrt(2H) K_{i-j} for i - j >= 2 (applied to dW)
    grids: tuple  # per stride: (var, cov_dw, damp, rest) tensors of the coarse cells


@functools.lru_cache(maxsize=32)
def constants(steps: int, maturity: float, hurst: float, eta: float, strides: tuple[int, ...]) -> CellSchemeConstants:
    a, n = hurst - 0.5, steps
    h = maturity / n
    y, w = np.polynomial.legendre.leggauss(64)
    y, w = (y + 1) / 2, w / 2
    s, ws = y**4, 4 * y**3 * w  # clustered at 0 (the s^(a+1) endpoint)
    ka, kb = _kappa1(s, a), _kappa1(s + 1.0, a)
    local = np.array(
        [
            [h, h ** (a + 1) * np.sum(ws * ka), h ** (a + 1) * np.sum(ws * kb)],
            [0, h ** (2 * a + 1) * np.sum(ws * ka * ka), h ** (2 * a + 1) * np.sum(ws * ka * kb)],
            [0, 0, h ** (2 * a + 1) * np.sum(ws * kb * kb)],
        ]
    )
    local = np.triu(local) + np.triu(local, 1).T
    lag = np.arange(n + 1, dtype=float)
    far = h**a * ((lag + 1) ** (a + 2) - 2 * lag ** (a + 2) + np.abs(lag - 1) ** (a + 2)) / ((a + 1) * (a + 2))
    far[:2] = 0.0
    idx = np.arange(n)[None, :] - np.arange(n)[:, None]  # [j, i] = i - j
    scale = math.sqrt(2 * hurst)
    toeplitz = np.where(idx >= 2, scale * far[np.clip(idx, 0, n)], 0.0)
    # the scheme's own covariance of (dW_0..dW_{n-1}, Ybar_0..Ybar_{n-1}): Ybar = M @ (dW, A, B)
    m = np.zeros((n, 3 * n))
    m[:, :n] = toeplitz.T
    m[np.arange(n), n + np.arange(n)] = scale
    m[np.arange(1, n), 2 * n + np.arange(n - 1)] = scale
    cov_innov = np.kron(local, np.eye(n))  # blocks (dW, A, B) x (dW, A, B), independent across cells
    cov_y = m @ cov_innov @ m.T
    cov_y_dw = m @ cov_innov[:, :n]
    t = np.arange(n + 1) * h
    grids = []
    for st in strides:
        k = n // st
        var, cdw, mt = np.zeros(k), np.zeros(k), np.zeros(k)
        for c in range(k):
            sl = slice(c * st, (c + 1) * st)
            var[c] = cov_y[sl, sl].mean()
            cdw[c] = cov_y_dw[sl, sl].mean(0).sum()
            t0, t1 = t[c * st], t[(c + 1) * st]
            mt[c] = (t1 ** (2 * hurst + 1) - t0 ** (2 * hurst + 1)) / ((2 * hurst + 1) * (t1 - t0))
        excess = 1.0 + eta**2 * cdw**2 / (4.0 * h * st)
        damp = np.minimum(np.exp(-(eta**2) * (mt - var) / 8.0), 1.0 / np.sqrt(excess))
        rest = 1.0 - damp**2 * excess
        grids.append(tuple(torch.from_numpy(v) for v in (var, cdw, damp, rest)))
    return CellSchemeConstants(torch.from_numpy(np.linalg.cholesky(local)), torch.from_numpy(toeplitz), tuple(grids))


def rb_cell(
    p: RBParams, maturity: float, z: torch.Tensor, z_perp: torch.Tensor, strides: tuple[int, ...] = (1,)
) -> SchemeOutput:
    """P6v on n = z.shape[2] cells; z (3, P, n) normals, z_perp (P,). Conditional moments per stride, X on the fine grid
    (and on the coarse grids in x_coarse, same z_perp)."""
    n, dtype = z.shape[2], z.dtype
    h = maturity / n
    c = constants(n, maturity, p.hurst, p.eta, tuple(strides))
    chol = c.chol.to(dtype)
    dw = chol[0, 0] * z[0]
    loc_a = chol[1, 0] * z[0] + chol[1, 1] * z[1]
    loc_b = chol[2, 0] * z[0] + chol[2, 1] * z[1] + chol[2, 2] * z[2]
    scale = math.sqrt(2 * p.hurst)
    ybar = dw @ c.toeplitz.to(dtype) + scale * loc_a
    ybar[:, 1:] += scale * loc_b[:, :-1]
    means, sds = [], []
    for st, (var, cdw, damp, rest) in zip(strides, c.grids, strict=True):
        yb = ybar.reshape(-1, n // st, st).mean(-1) if st > 1 else ybar
        dws = dw.reshape(-1, n // st, st).sum(-1) if st > 1 else dw
        vbar = p.xi0 * torch.exp(p.eta * yb - (0.5 * p.eta**2 * var).to(dtype))
        q_cells = vbar * (h * st)
        q = q_cells.sum(1)
        lev = (damp.to(dtype) * vbar.sqrt() * (dws - (0.5 * p.eta * cdw).to(dtype))).sum(1)
        means.append(p.rho * lev - 0.5 * q)
        sds.append(torch.sqrt((1.0 - p.rho**2) * q + p.rho**2 * (rest.to(dtype) * q_cells).sum(1)))
    mean, sd = torch.stack(means), torch.stack(sds)
    x = mean + sd * z_perp
    return SchemeOutput(x[0], mean, sd, x[1:] if len(strides) > 1 else None)


CHECK_SETS = {
    "MP": RBParams(1.9, -0.9, 0.07, 0.0552),
    "eta3_H003": RBParams(3.0, -0.95, 0.03, 0.04),
    "eta3_H01": RBParams(3.0, -0.95, 0.1, 0.1),
}


def check(paths: int, steps: int, horizons: tuple[int, ...] = (1, 252)) -> dict:
    """Sup-CDF distance between this prototype and the exact-Gaussian P6v (rb_cell_convergence) at the same cells,
    both by conditional MC on the x of the reference points; the difference is the far-field projection's error."""
    from benchmarks.accuracy.rb_cell_convergence import cell_cdfs
    from benchmarks.accuracy.rb_grid_error import reference_payload
    from tests.models.rough_bergomi_exact import mixture_cdf

    cases = {f"{c['name']}:{c['days']}": c for c in reference_payload()["cases"]}
    out = {}
    for name, p in CHECK_SETS.items():
        for days in horizons:
            case = cases[f"{name}:{days}"]
            x = torch.tensor(case["x"], dtype=torch.float64)
            g = torch.Generator().manual_seed(days)
            cdfs = []
            for _ in range(8):
                z = torch.randn(3, paths // 8, steps, generator=g, dtype=torch.float64)
                res = rb_cell(p, case["maturity"], z, torch.zeros(paths // 8, dtype=torch.float64))
                cdfs.append(mixture_cdf(x, res.cond_mean, res.cond_sd).numpy()[0])
            proto = np.mean(cdfs, 0)
            se = np.std(cdfs, 0, ddof=1) / math.sqrt(8)
            exact, _, _ = cell_cdfs(p, case["maturity"], steps, x, 8, 13, 99, "v")
            ex = exact.mean(0)[-1]
            central = (ex > 1e-3) & (ex < 1 - 1e-3)
            diff = float(np.abs(proto - ex)[central].max())
            se_c = float(se[central].max())
            out[f"{name}:{days}"] = {"steps": steps, "paths": paths, "sup_diff": diff, "se_max": se_c}
            print(f"{name} {days}d: prototype vs exact P6v at {steps} cells: {diff:.1e} (MC se {se_c:.1e})")
    return out


def cost(paths: int, rounds: int) -> dict:
    """Process time per path, rb_cell vs rb_hybrid (both with strides 1, 2, 4, float32), interleaved, same N."""
    torch.set_num_threads(1)
    p = CHECK_SETS["eta3_H003"]
    res = {"paths": paths, "load_before": os.getloadavg(), "rounds": []}
    for _ in range(rounds):
        row = {}
        for n in (128, 256, 512):
            g = torch.Generator().manual_seed(n)
            z = torch.randn(3, paths, n, generator=g)
            constants(n, 1 / 252, p.hurst, p.eta, (1, 2, 4))  # precomputed per (H, n, T), as the hybrid's weights
            t0 = time.process_time()
            rb_hybrid(p, 1 / 252, z[0], z[1], z[2], strides=(1, 2, 4))
            t1 = time.process_time()
            rb_cell(p, 1 / 252, z, z[2, :, 0].clone(), strides=(1, 2, 4))
            t2 = time.process_time()
            row[str(n)] = {"hybrid_us": (t1 - t0) / paths * 1e6, "cell_us": (t2 - t1) / paths * 1e6}
            row[str(n)]["ratio"] = row[str(n)]["cell_us"] / row[str(n)]["hybrid_us"]
        res["rounds"].append(row)
        print({k: f"{v['cell_us']:.1f}/{v['hybrid_us']:.1f} us = {v['ratio']:.2f}" for k, v in row.items()})
    res["load_after"] = os.getloadavg()
    print("load", res["load_before"], res["load_after"])
    return res


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true")
    parser.add_argument("--cost", action="store_true")
    parser.add_argument("--paths", type=int, default=65536)
    parser.add_argument("--steps", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--days", default="1,252")
    args = parser.parse_args()
    torch.set_num_threads(1)
    store = json.loads(OUT.read_text()) if OUT.exists() else {}
    if args.check:
        store["check"] = check(args.paths, args.steps, tuple(int(d) for d in args.days.split(",")))
    if args.cost:
        store["cost"] = cost(args.paths, args.rounds)
    OUT.write_text(json.dumps(store, indent=1) + "\n")


if __name__ == "__main__":
    main()
