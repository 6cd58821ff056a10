"""Which part of the rough Bergomi discretisation error is the integrated variance, which the Ito (leverage) part?

One exact joint-Gaussian RQMC draw of (dW_0..dW_{n-1}, Y(t_1)..Y(t_{n-1}), Ybar_0..Ybar_{n-1}) (point values and cell
averages of the same Volterra path) gives, on every nested grid of the same draws:

* ``point``: left-point rule, X | G ~ N(rho I_p - Q_p/2, (1 - rho^2) Q_p), I_p = sum sqrt V(t_i) dW_i,
  Q_p = sum V(t_i) dt
  (the production scheme with the Volterra process exact; the reference generator's grids);
* ``cell``: the P6 scheme of docs/accuracy.md 4.3 (cell averages for Q, damped cell values for I);
* ``mix``: Ito part from the point values, integrated variance from the cell averages, split so that E[e^X] = 1
  exactly: X | G ~ N(rho I_p - rho^2 Q_p/2 - (1 - rho^2) Q_c/2, (1 - rho^2) Q_c) (exp(rho I_p - rho^2 Q_p/2) is a
  discrete exponential martingale; the W_perp part is exactly log-normal given Q_c);
* ``mix_q``: the same with Q_c also in the correlated drift: N(rho I_p - Q_c/2, (1 - rho^2) Q_c) (E e^X = 1 only to
  discretisation accuracy; measured);
* ``lag`` and ``proj``: predictable cell integrands, I = sum s_i dW_i with s_i measurable w.r.t. the cells before i
  (so exp(rho I - rho^2 S/2), S = sum s_i^2 dt, is an exact discrete martingale and E e^X = 1 exactly with
  X | G ~ N(rho I - rho^2 S/2 - (1 - rho^2) Q_c/2, (1 - rho^2) Q_c)): ``lag`` s_i^2 = Vbar_{i-1} (xi0 in the first
  cell), ``proj`` s_i^2 = E[Vbar_i | dW_j, Ybar_j, j < i] (Gaussian regression, exact lognormal conditional mean);
* ``cell_nd``: P6 without the damping and the added orthogonal variance, I = sum sqrt(Vbar_i) (dW_i - eta/2 Cov(Ybar_i,
  dW_i)), X | G ~ N(rho I - Q_c/2, (1 - rho^2) Q_c) (martingale only approximately: measured).

    python -m benchmarks.accuracy.rb_mixed_schemes --cases eta3_H003:1 --steps 256
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.accuracy.rb_grid_error import reference_payload
from tests.models.rough_bergomi_exact import (
    RBParams,
    cell_conditional_moments,
    cell_grid_constants,
    factor,
    joint_cell_covariance,
    joint_covariance,
    mixture_cdf,
    sobol_normals,
    volterra_cov,
)

OUT = Path(__file__).resolve().parent / "measurements" / "rb_mixed_schemes.json"
SCHEMES = ("point", "cell", "mix", "mix_q", "lag", "proj", "cell_nd")


def point_cell_cross(steps: int, maturity: float, hurst: float, nodes: int = 24) -> np.ndarray:
    """Cov(Y(t_i), Ybar_j) for i = 1..n-1, j = 0..n-1: cell mean of Cov(Y(t_i), Y(t)) (Gauss-Legendre on both halves of
    the cell, clustered at the ends where the covariance has its |t - t_i|^2H and t^2H cusps)."""
    dt = maturity / steps
    y, w = np.polynomial.legendre.leggauss(nodes)
    y, w = (y + 1) / 2, w / 2
    u, wu = y**3, 3 * y**2 * w  # clustered at 0
    left = np.concatenate([0.5 * u, 1 - 0.5 * u])  # fractions of the cell, clustered at both ends
    weights = np.concatenate([0.5 * wu, 0.5 * wu])
    ti = np.arange(1, steps) * dt
    out = np.zeros((steps - 1, steps))
    for j in range(steps):
        t = (j + left) * dt
        out[:, j] = (volterra_cov(ti[:, None], t[None, :], hurst) * weights[None, :]).sum(1)
    return out


def joint_point_cell_covariance(steps: int, maturity: float, hurst: float) -> np.ndarray:
    n = steps
    cp = joint_covariance(n, maturity, hurst)  # (2n-1): dW, Y(t_1..t_{n-1})
    cc = joint_cell_covariance(n, maturity, hurst)  # (2n): dW, Ybar
    cov = np.zeros((3 * n - 1, 3 * n - 1))
    cov[: 2 * n - 1, : 2 * n - 1] = cp
    cov[2 * n - 1 :, 2 * n - 1 :] = cc[n:, n:]
    cov[2 * n - 1 :, :n] = cc[n:, :n]
    cov[:n, 2 * n - 1 :] = cc[:n, n:]
    cross = point_cell_cross(n, maturity, hurst)
    cov[n : 2 * n - 1, 2 * n - 1 :] = cross
    cov[2 * n - 1 :, n : 2 * n - 1] = cross.T
    return cov


def projection_weights(cc: np.ndarray, steps: int, stride: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Cells of ``stride`` fine cells: B (m, 2m) with E[Ybar_k | dW_j, Ybar_j, j < k] = B[k] @ (dW, Ybar)
    of that grid, and the variance of that conditional mean."""
    n, m = steps, steps // stride
    agg = np.zeros((2 * m, 2 * n))
    for k in range(m):
        agg[k, k * stride : (k + 1) * stride] = 1.0
        agg[m + k, n + k * stride : n + (k + 1) * stride] = 1.0 / stride
    c = agg @ cc @ agg.T
    b = np.zeros((m, 2 * m))
    var = np.zeros(m)
    for k in range(1, m):
        idx = np.r_[0:k, m : m + k]
        coef = np.linalg.solve(c[np.ix_(idx, idx)] + 1e-14 * np.eye(2 * k), c[idx, m + k])
        b[k, idx] = coef
        var[k] = coef @ c[idx, m + k]
    return torch.from_numpy(b), torch.from_numpy(var)


def scheme_moments(v: torch.Tensor, steps: int, maturity: float, p: RBParams, strides, cell_grids, proj):
    """Per scheme: (mean, sd) of X | G, each (grids, paths)."""
    n = steps
    dw, yp, yb = v[:, :n], v[:, n : 2 * n - 1], v[:, 2 * n - 1 :]
    y = torch.cat([torch.zeros_like(dw[:, :1]), yp], 1)
    dt = maturity / n
    t = torch.arange(n, dtype=v.dtype) * dt
    vp = p.xi0 * torch.exp(p.eta * y - 0.5 * p.eta**2 * t ** (2.0 * p.hurst))
    cell = cell_conditional_moments(dw, yb, maturity, p, cell_grids)
    out = {k: ([], []) for k in SCHEMES}
    r2 = p.rho**2
    for g, s in enumerate(strides):
        vs = vp[:, ::s]
        dws = dw.reshape(-1, n // s, s).sum(-1)
        q_p = vs.sum(1) * dt * s
        i_p = (vs.sqrt() * dws).sum(1)
        ybc = yb.reshape(-1, n // s, s).mean(-1)
        q_c = (p.xi0 * torch.exp(p.eta * ybc - 0.5 * p.eta**2 * cell_grids[g].var)).sum(1) * dt * s
        out["point"][0].append(p.rho * i_p - 0.5 * q_p)
        out["point"][1].append(torch.sqrt((1 - r2) * q_p))
        out["cell"][0].append(cell.mean[g])
        out["cell"][1].append(cell.sd[g])
        out["mix"][0].append(p.rho * i_p - 0.5 * r2 * q_p - 0.5 * (1 - r2) * q_c)
        out["mix"][1].append(torch.sqrt((1 - r2) * q_c))
        out["mix_q"][0].append(p.rho * i_p - 0.5 * q_c)
        out["mix_q"][1].append(torch.sqrt((1 - r2) * q_c))
        vbar = p.xi0 * torch.exp(p.eta * ybc - 0.5 * p.eta**2 * cell_grids[g].var)
        lagged = torch.cat([torch.full_like(vbar[:, :1], p.xi0), vbar[:, :-1]], 1)
        b, var_m = proj[g]
        mean_y = torch.cat([dws, ybc], 1) @ b.T
        projected = p.xi0 * torch.exp(p.eta * mean_y - 0.5 * p.eta**2 * var_m)
        ito_nd = (vbar.sqrt() * (dws - 0.5 * p.eta * cell_grids[g].cov_dw)).sum(1)
        out["cell_nd"][0].append(p.rho * ito_nd - 0.5 * q_c)
        out["cell_nd"][1].append(torch.sqrt((1 - r2) * q_c))
        for name, s2 in (("lag", lagged), ("proj", projected)):
            ito = (s2.sqrt() * dws).sum(1)
            qv = s2.sum(1) * dt * s
            out[name][0].append(p.rho * ito - 0.5 * r2 * qv - 0.5 * (1 - r2) * q_c)
            out[name][1].append(torch.sqrt((1 - r2) * q_c))
    return {k: (torch.stack(m), torch.stack(s)) for k, (m, s) in out.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cases", default="eta3_H003:1")
    parser.add_argument("--steps", type=int, default=256)
    parser.add_argument("--scrambles", type=int, default=8)
    parser.add_argument("--log2-points", type=int, default=14)
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args()
    torch.set_num_threads(1)
    payload = reference_payload()
    cases = {f"{c['name']}:{c['days']}": c for c in payload["cases"]}
    out_path = Path(args.out)
    store = json.loads(out_path.read_text()) if out_path.exists() else {}
    n = args.steps
    strides = [2**k for k in range(5, -1, -1)]
    for key in args.cases.split(","):
        case = cases[key]
        p = RBParams.of(case["params"])
        x = torch.tensor(case["x"], dtype=torch.float64)
        t0 = time.process_time()
        cov = joint_point_cell_covariance(n, case["maturity"], p.hurst)
        fac = torch.from_numpy(factor(cov, "pca")).float()
        cc = joint_cell_covariance(n, case["maturity"], p.hurst)
        cell_grids = [cell_grid_constants(cc, n, case["maturity"], p.hurst, s) for s in strides]
        proj = [projection_weights(cc, n, s) for s in strides]
        cdf = {k: [] for k in SCHEMES}
        mart = {k: [] for k in SCHEMES}
        for r in range(args.scrambles):
            parts = {k: ([], []) for k in SCHEMES}
            for z in sobol_normals(3 * n - 1, args.log2_points, seed=31 + r + len(key), chunk=8192):
                v = (z.float() @ fac.T).double()
                for k, (m, s) in scheme_moments(v, n, case["maturity"], p, strides, cell_grids, proj).items():
                    parts[k][0].append(m)
                    parts[k][1].append(s)
            for k, (ms, ss) in parts.items():
                m, s = torch.cat(ms, 1), torch.cat(ss, 1)
                cdf[k].append(mixture_cdf(x, m, s).numpy())
                mart[k].append(torch.exp(m + 0.5 * s**2).mean(1).numpy())
        point_ref = np.asarray(case["cdf_by_grid"])
        central = (point_ref[-1] > 1e-3) & (point_ref[-1] < 1 - 1e-3)
        entry = {"params": case["params"], "days": case["days"], "steps": n, "x": case["x"]}
        entry["grids"] = [n // s for s in strides]
        entry["paths"] = args.scrambles << args.log2_points
        for k in SCHEMES:
            arr = np.asarray(cdf[k])
            se = arr.std(0, ddof=1) / math.sqrt(args.scrambles)
            entry[k] = {
                "cdf_by_grid": [[float(f"{v:.7g}") for v in row] for row in arr.mean(0)],
                "se_by_grid_max": [float(v) for v in se[:, central].max(1)],
                "martingale_defect": [float(v) for v in np.asarray(mart[k]).mean(0) - 1.0],
            }
            diffs = np.abs(np.diff(arr.mean(0), axis=0))[:, central].max(1)
            print(f"{key} {k:6s} diffs", [f"{d:.1e}" for d in diffs], "E e^X-1", entry[k]["martingale_defect"][-1])
        entry["cpu_seconds"] = round(time.process_time() - t0, 1)
        store[f"{key}:{n}"] = entry
        out_path.write_text(json.dumps(store, separators=(",", ":")) + "\n")


if __name__ == "__main__":
    main()
