"""Convergence of the cell-average ("P6") rough Bergomi scheme on nested grids, against the point-value grids.

One exact joint-Gaussian RQMC draw of (dW_i, Ybar_i) on n_f fine cells gives every coarser cell grid exactly (a coarse
cell average is the mean of its fine cell averages, its increment the sum), so the cell scheme's CDF on grids
n_f/32 .. n_f comes from one run, as the point-value (left-point) grids of the reference generator do. Both are
evaluated at the same 201 points x of measurements/rb_grids.json, so the two discretisations and their Richardson
extrapolants can be compared directly (a candidate is credible only where two different discretisations converge to
the same CDF). Also recorded per grid: E[e^X] - 1 (martingale defect, from the conditional moments exactly) and the
RQMC standard error.

``--variant v`` runs P6 with its Ito variance corrected ("P6v"): the mean part d_i sqrt(Vbar_i) (dW_i - eta c_i/2) has
second moment xi0 d_i^2 (dt + eta^2 c_i^2/4) (Stein: under the tilt by Vbar_i, dW_i has mean eta c_i), so P6's
E[I^2] exceeds the exact E[Q] = xi0 T by sum xi0 d_i^2 eta^2 c_i^2 / 4, a fraction ~ h^2H (3-6 % at 256 cells); P6v
shrinks the independent remainder to s_i^2 = 1 - d_i^2 (1 + eta^2 c_i^2 / (4 dt)) (d_i lowered where that would be
negative) so that E[I^2] = xi0 T exactly.

    python -m benchmarks.accuracy.rb_cell_convergence --cases eta3_H003:1,eta3_H01:1 --cells 512
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
    mixture_cdf,
    sobol_normals,
)

OUT = Path(__file__).resolve().parent / "measurements" / "rb_cell_convergence.json"


def variance_matched_moments(
    dw: torch.Tensor, ybar: torch.Tensor, maturity: float, p: RBParams, grids, kappa: dict[int, float] | None = None
) -> tuple:
    """P6v: as cell_conditional_moments, with the remainder variance that makes E[I^2] = E[Q] (module docstring);
    ``kappa`` (cells of a grid -> factor) scales the damping of each grid (P6w, rb_leverage_match.py)."""
    n = dw.shape[1]
    dt = maturity / n
    means, sds = [], []
    for g in grids:
        st = g.stride
        h = dt * st
        yb = ybar.reshape(ybar.shape[0], n // st, st).mean(-1)
        dwc = dw.reshape(dw.shape[0], n // st, st).sum(-1)
        vbar = p.xi0 * torch.exp(p.eta * yb - 0.5 * p.eta**2 * g.var)
        excess = 1.0 + p.eta**2 * g.cov_dw**2 / (4.0 * h)
        scale = 1.0 if kappa is None else kappa[n // st]
        damp = torch.minimum(torch.exp(-(p.eta**2) * (g.mean_t2h - g.var) / 8.0) * scale, excess.rsqrt())
        rest = 1.0 - damp**2 * excess
        q_cells = vbar * h
        q = q_cells.sum(1)
        lev = (damp * vbar.sqrt() * (dwc - 0.5 * p.eta * g.cov_dw)).sum(1)
        means.append(p.rho * lev - 0.5 * q)
        sds.append(torch.sqrt((1.0 - p.rho**2) * q + p.rho**2 * (rest * q_cells).sum(1)))
    return torch.stack(means), torch.stack(sds)


def cell_cdfs(
    p: RBParams,
    maturity: float,
    cells: int,
    x: torch.Tensor,
    scrambles: int,
    log2_points: int,
    seed: int,
    variant="",
    strides: tuple[int, ...] = (32, 16, 8, 4, 2, 1),
):
    """Per scramble and nested cell grid (coarsest first: cells // strides): CDF at x and E[e^X] (arrays (R, G, X),
    (R, G))."""
    cov = joint_cell_covariance(cells, maturity, p.hurst)
    fac = torch.from_numpy(factor(cov, "pca")).float()
    grids = [cell_grid_constants(cov, cells, maturity, p.hurst, s) for s in strides]
    cdf, mart = [], []
    for r in range(scrambles):
        means, sds = [], []
        for z in sobol_normals(2 * cells, log2_points, seed=seed + r, chunk=8192):
            v = (z.float() @ fac.T).double()
            if variant == "v":
                m, sd = variance_matched_moments(v[:, :cells], v[:, cells:], maturity, p, grids)
            else:
                cm = cell_conditional_moments(v[:, :cells], v[:, cells:], maturity, p, grids)
                m, sd = cm.mean, cm.sd
            means.append(m)
            sds.append(sd)
        mean, sd = torch.cat(means, 1), torch.cat(sds, 1)
        cdf.append(mixture_cdf(x, mean, sd).numpy())
        mart.append(torch.exp(mean + 0.5 * sd**2).mean(1).numpy())
    return np.asarray(cdf), np.asarray(mart), [cells // s for s in strides]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cases", default="eta3_H003:1")
    parser.add_argument("--cells", type=int, default=512)
    parser.add_argument("--scrambles", type=int, default=8)
    parser.add_argument("--log2-points", type=int, default=14)
    parser.add_argument("--variant", default="", help="'' (P6) or 'v' (P6 with the Ito variance matched)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    payload = reference_payload()
    cases = {f"{c['name']}:{c['days']}": c for c in payload["cases"]}
    store = json.loads(OUT.read_text()) if OUT.exists() else {}
    for key in args.cases.split(","):
        case = cases[key]
        p = RBParams.of(case["params"])
        x = torch.tensor(case["x"], dtype=torch.float64)
        t0 = time.process_time()
        cdf, mart, grids = cell_cdfs(
            p, case["maturity"], args.cells, x, args.scrambles, args.log2_points, 7 + len(key), args.variant
        )
        mean = cdf.mean(0)
        se = cdf.std(0, ddof=1) / math.sqrt(args.scrambles)
        point = np.asarray(case["cdf_by_grid"])
        central = (point[-1] > 1e-3) & (point[-1] < 1 - 1e-3)
        store[f"{key}:{args.cells}" + (f":{args.variant}" if args.variant else "")] = {
            "params": case["params"],
            "days": case["days"],
            "cells": args.cells,
            "variant": args.variant or "P6",
            "paths": args.scrambles << args.log2_points,
            "grids": grids,
            "x": case["x"],
            "cdf_by_grid": [[float(f"{v:.7g}") for v in row] for row in mean],
            "se_by_grid_max": [float(v) for v in se[:, central].max(1)],
            "martingale_defect": [float(v) for v in mart.mean(0) - 1.0],
            "point_grids": case["grids"],
            "cpu_seconds": round(time.process_time() - t0, 1),
        }
        diffs = np.abs(np.diff(mean, axis=0))[:, central].max(1)
        print(key, "grids", grids, "consecutive diffs", [f"{d:.1e}" for d in diffs], flush=True)
        print("  se", [f"{v:.1e}" for v in se[:, central].max(1)], "E e^X - 1", [f"{v:.1e}" for v in mart.mean(0) - 1])
        OUT.write_text(json.dumps(store, separators=(",", ":")) + "\n")


if __name__ == "__main__":
    main()
