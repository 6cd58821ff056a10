"""Generate tests/models/data/rough_bergomi_quantiles.json: quantiles of the continuous rough Bergomi model.

For corner parameter sets of the production ranges (config/production.yaml: eta [0.5, 3], rho [-0.95, -0.3],
hurst [0.03, 0.3], xi0 [0.01, 0.1]) at 1, 5, 21 and 252 trading days (T = days / 252), the quantiles of
X_T = log(S_T / S_0) at the 512 published levels plus tail levels (as the rough Heston table).

Method (tests/models/rough_bergomi_exact.py; independent of the production hybrid scheme):
  * exact joint Gaussian simulation of (dW_i, Y_{t_i}) on a uniform fine grid of n_f steps (PCA factor of the exact
    covariance; Bayer, Friz & Gatheral 2016), randomised quasi-Monte Carlo (R independent Owen-scrambled Sobol
    sequences of 2^m points, so the standard error is the spread of the R estimates);
  * nested coarser grids from the same draws; on each grid the left-point rule for the log-price with the W_perp part
    integrated out (conditional Monte Carlo: X | W ~ N(m, s^2), F(x) = E Phi((x - m)/s));
  * Richardson extrapolation of the CDF across consecutive grids at the weak rate r = min(3H + 1/2, 1) (Gassiat 2023;
    Friz, Salkeld & Wagenhofer 2022); the reference is the last extrapolant, its discretisation residual the
    difference of the last two extrapolants;
  * quantiles by monotone interpolation of Phi^-1(F) on 201 points and a direct check of F at the stored quantiles;
  * cross-check with a *different* discretisation (cell-averaged Volterra process, "P6", same module) at its finest
    grid, recorded as ``cell_scheme_max_abs_cdf_diff``.
``accuracy`` = max over x of (|residual| + 2 se) bounds the reference's CDF error where the extrapolation is in its
asymptotic regime. Hard corner (``hard_corner``: eta >= 2.5 with H <= 0.2, or at horizons >= 126 days): the
Y-conditional estimator (dW integrated out given the Volterra path, same left-point rule, ~3x less noise at H 0.03) on
n_f = 2048 (H 0.03) / 1024 (H 0.1 .. 0.3) fine steps and 7 nested grids, where the sequence reaches the theory rate;
n_f = 2048 where the residual at n_f = 1024 exceeded 1e-3 (it grows with eta T^H): H <= 0.1 from 21 days on, H <= 0.2
from 126 days on (eta 3, H 0.1: 1.4e-3 at 21 days, 3.5e-3 at 252 days); n_f = 4096 for the cases of FINE_STEPS_BY_CASE
(still pre-asymptotic at 2048); the cell-scheme cross-check on nested 128/256/512 cells (docs/accuracy.md 1.2).

Run (background it; ~5-15 min per case on a loaded 2-core machine):
    python tests/models/make_rough_bergomi_quantiles.py [--cases name:days,...]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from scipy.interpolate import PchipInterpolator
from scipy.stats import norm

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.models.rough_bergomi_exact import (
    RBParams,
    cell_conditional_moments,
    cell_grid_constants,
    factor,
    joint_cell_covariance,
    joint_covariance,
    mc_normals,
    mixture_cdf,
    moments_from_gaussians,
    on_device,
    richardson,
    sobol_normals,
    weak_rate,
    y_conditional_factor,
    y_conditional_moments,
)

OUTPUT = Path(__file__).resolve().parent / "data" / "rough_bergomi_quantiles.json"
DAYS = (1, 5, 21, 252)
YEAR_DAYS = 252.0
SCRAMBLES = 16
LOG2_POINTS = 15  # per scramble: 16 x 32768 = 524288 paths
CELL_STEPS = 128  # finest grid of the cell-average cross-check
CELL_LOG2_POINTS = 14
X_LEVELS_Z = np.linspace(-4.6, 4.6, 201)
RB_TAIL_LEVELS = (1e-4, 3e-4, 6e-4)
"""Tail levels stored beyond the published ones (fewer than the rough Heston table: the pilot's 2^16 samples place the
evaluation points only down to F ~ 1e-5)."""


def rb_table_levels() -> np.ndarray:
    tails = np.asarray(RB_TAIL_LEVELS)
    return np.concatenate([tails, (np.arange(512) + 0.5) / 512, 1.0 - tails[::-1]])


PARAMETER_SETS: dict[str, tuple[dict[str, float], str]] = {
    "MP": ({"eta": 1.9, "rho": -0.9, "hurst": 0.07, "xi0": 0.235**2}, "McCrickerd-Pakkanen 2018 / models.md set"),
    "eta3_H03": ({"eta": 3.0, "rho": -0.95, "hurst": 0.3, "xi0": 0.04}, "largest vol-of-vol, smoothest, most skewed"),
    "eta05_H003": ({"eta": 0.5, "rho": -0.95, "hurst": 0.03, "xi0": 0.04}, "roughest, smallest vol-of-vol, skewed"),
    "eta3_H003_rho03": (
        {"eta": 3.0, "rho": -0.3, "hurst": 0.03, "xi0": 0.01},
        "roughest, largest vol-of-vol, weak correlation, small variance",
    ),
    "eta3_H01": ({"eta": 3.0, "rho": -0.95, "hurst": 0.1, "xi0": 0.1}, "large vol-of-vol, rough, skewed, xi0 0.1"),
    "eta3_H003": ({"eta": 3.0, "rho": -0.95, "hurst": 0.03, "xi0": 0.04}, "hardest corner: roughest, eta 3, rho -0.95"),
    "eta3_H015": (
        {"eta": 3.0, "rho": -0.95, "hurst": 0.15, "xi0": 0.04},
        "eta 3, rho -0.95 between H 0.1 and 0.3: P6v or the point rule + Richardson (docs/accuracy.md 4.5)",
    ),
    "eta3_H02": (
        {"eta": 3.0, "rho": -0.95, "hurst": 0.2, "xi0": 0.04},
        "eta 3, rho -0.95 above the point rule's rate-1 threshold H = 1/6 (docs/accuracy.md 4.5)",
    ),
}


LONG_MATURITY = 126 / YEAR_DAYS
"""From this maturity on, eta >= 2.5 is a hard corner at every H (eta T^H large: the point rule's residual at 256 steps
was 3.1e-3 at eta 3, H 0.3, 252 days)."""


def hard_corner(p: RBParams, maturity: float) -> bool:
    """eta >= 2.5 with H <= 0.2, or at maturities >= LONG_MATURITY: the left-point rule is pre-asymptotic (H <= 0.1) or
    its Richardson residual too large (H 0.15 .. 0.3 at 252 days) at 256 - 512 steps; these cases use the Y-conditional
    estimator on finer grids (``fine_steps``)."""
    return p.eta >= 2.5 and (p.hurst <= 0.2 + 1e-12 or maturity >= LONG_MATURITY - 1e-12)


HARD_GRIDS = 7  # n_f/64 .. n_f
CELL_STEPS_HARD = 512  # cell-average cross-check at the hard corner: nested 128, 256, 512 cells
FINE_STEPS_OVERRIDE: int | None = None  # --fine-steps: n_f for the cases of this run (e.g. 4096 on a GPU)
NORMALS = "sobol"  # --normals: "sobol" (RQMC, the stored tables) or "mc" (pseudo-random on the device: for a GPU)


MID_MATURITY = 21 / YEAR_DAYS
"""From this maturity on, H <= 0.1 at the hard corner needs n_f = 2048 (eta3_H01: Richardson residual 1.4e-3 at n_f =
1024, 21 days; 6.1e-4 at 5 days)."""


#: Cases regenerated on a finer grid than the rule below gives (docs/accuracy.md 1.2, "n_f = 4096"): at n_f = 2048
#: their point-rule sequence was still pre-asymptotic and the 4096-step tables moved 3.3e-4 - 1.2e-3 (~35 min per case
#: on one core).
FINE_STEPS_BY_CASE: dict[tuple[str, int], int] = {
    ("eta3_H003", 1): 4096,
    ("eta3_H003_rho03", 1): 4096,
    ("eta3_H01", 21): 4096,
}


def fine_steps(
    hurst: float, p: RBParams | None = None, maturity: float = 1 / YEAR_DAYS, case: tuple[str, int] | None = None
) -> int:
    """Fine steps of the reference's grid. Hard corner: 2048 where the Richardson residual at 1024 steps exceeded 1e-3
    (it grows with eta T^H): H < 0.05; H <= 0.1 from MID_MATURITY on; H <= 0.2 from LONG_MATURITY on; else 1024
    (H > 0.2: the point rule's second-order term decays fast); 4096 for the cases of FINE_STEPS_BY_CASE. Elsewhere 512
    (H < 0.1) or 256."""
    if FINE_STEPS_OVERRIDE is not None:
        return FINE_STEPS_OVERRIDE
    if case in FINE_STEPS_BY_CASE:
        return FINE_STEPS_BY_CASE[case]
    if p is not None and hard_corner(p, maturity):
        mid, long = maturity >= MID_MATURITY - 1e-12, maturity >= LONG_MATURITY - 1e-12
        if hurst < 0.05 or (hurst <= 0.1 + 1e-12 and mid) or (hurst <= 0.2 + 1e-12 and long):
            return 2048
        return 1024
    return 512 if hurst < 0.1 else 256


def point_scheme_cdf(
    p: RBParams, maturity: float, steps: int, x: torch.Tensor | None, seed: int, scrambles: int = SCRAMBLES
):
    """Per scramble: F on each nested grid (coarsest first) at x; if x is None, rough quantile points from the finest
    grid instead (one normal per path). Returns (array (R, G, len(x)), grids).

    Hard corner (``hard_corner``): the Y-conditional estimator (dW integrated out given the Volterra path: the same
    left-point rule, 3-9 x less variance there) with HARD_GRIDS nested grids; elsewhere the W-conditional one."""
    hard = hard_corner(p, maturity)
    strides = tuple(2**k for k in range((HARD_GRIDS if hard else 6) - 1, -1, -1))  # n/32 .. n: 6 grids (hard: 7)
    if hard:
        yfac = y_conditional_factor(steps, maturity, p.hurst)
        dim = steps - 1
    else:
        fac = on_device(factor(joint_covariance(steps, maturity, p.hurst), "pca")).float()
        dim = 2 * steps - 1
    out = []
    samples = []
    for r in range(scrambles):
        means, sds = [], []
        draws = sobol_normals if NORMALS == "sobol" else mc_normals
        for z in draws(dim, LOG2_POINTS, seed=seed + r, chunk=4096 if hard else 8192):
            if hard:
                cm = y_conditional_moments(z, yfac, maturity, p, strides)
            else:
                cm = conditional_moments_f32(z, fac, steps, maturity, p, strides)
            means.append(cm.mean)
            sds.append(cm.sd)
        mean, sd = torch.cat(means, 1), torch.cat(sds, 1)
        if x is None:
            g = torch.Generator().manual_seed(seed + r)  # on the CPU whatever the device: the same pilot draws
            z = torch.randn(mean.shape[1], dtype=mean.dtype, generator=g, device="cpu").to(mean.device)
            samples.append(mean[-1] + sd[-1] * z)
            continue
        out.append(mixture_cdf(x, mean, sd).cpu().numpy())
    if x is None:
        return torch.cat(samples).cpu().numpy(), [steps // s for s in strides]
    return np.asarray(out), [steps // s for s in strides]


def conditional_moments_f32(z, fac, steps, maturity, p, strides):
    """conditional_moments with the factor GEMM in float32 (2x faster; Y to ~1e-7), the rest in float64."""
    return moments_from_gaussians((z.float() @ fac.T).double(), steps, maturity, p, strides)


def cell_scheme_cdf(p: RBParams, maturity: float, x: torch.Tensor, seed: int) -> np.ndarray:
    """The cell-average scheme's CDF at x: (1, len(x)) at CELL_STEPS cells, or at the hard corner (CELL_STEPS_HARD)
    (3, len(x)) on its nested 128, 256 and 512 cells."""
    hard = hard_corner(p, maturity)
    n = CELL_STEPS_HARD if hard else CELL_STEPS
    cov = joint_cell_covariance(n, maturity, p.hurst)
    fac = on_device(factor(cov, "pca")).float()
    strides = (4, 2, 1) if hard else (1,)
    grids = [cell_grid_constants(cov, n, maturity, p.hurst, s) for s in strides]
    out = []
    for r in range(8):
        means, sds = [], []
        for z in sobol_normals(2 * n, CELL_LOG2_POINTS, seed=seed + 1000 + r, chunk=8192):
            v = (z.float() @ fac.T).double()
            cm = cell_conditional_moments(v[:, :n], v[:, n:], maturity, p, grids)
            means.append(cm.mean)
            sds.append(cm.sd)
        out.append(mixture_cdf(x, torch.cat(means, 1), torch.cat(sds, 1)).cpu().numpy())
    return np.asarray(out).mean(0)


def fitted_extrapolation(per_scramble: np.ndarray, grids: list[int], central: np.ndarray) -> tuple[float, np.ndarray]:
    """Fit F_n(x) = F(x) + c(x) n^-r on the given grids with one rate r for all central x (least squares over a scan of
    r in [0.3, 1.5]); return r and the per-scramble extrapolants F(x) (linear in the per-grid CDFs for fixed r)."""
    n = np.asarray(grids, dtype=float)
    mean = per_scramble.mean(0)  # (G, X)

    def solve(rate: float) -> tuple[float, np.ndarray]:
        design = np.stack([np.ones_like(n), n**-rate], axis=1)  # (G, 2)
        coef, *_ = np.linalg.lstsq(design, mean[:, central], rcond=None)
        resid = float(np.sum((design @ coef - mean[:, central]) ** 2))
        weights = np.linalg.pinv(design)[0]  # F(x) = weights @ F_g(x)
        return resid, weights

    rates = np.linspace(0.3, 1.5, 121)
    best_rate = float(rates[int(np.argmin([solve(r)[0] for r in rates]))])
    weights = solve(best_rate)[1]
    return best_rate, np.einsum("g,rgx->rx", weights, per_scramble)


def make_case(name: str, params: dict[str, float], days: int, seed: int) -> dict[str, object]:
    t0 = time.perf_counter()
    p = RBParams.of(params)
    maturity = days / YEAR_DAYS
    steps = fine_steps(p.hurst, p, maturity, (name, days))
    rate = weak_rate(p.hurst)
    # 1) rough quantiles -> evaluation points
    pilot, grids = point_scheme_cdf(p, maturity, steps, None, seed, scrambles=2)
    x = on_device(np.quantile(pilot, norm.cdf(X_LEVELS_Z)))
    # 2) nested-grid CDFs at x, independent draws
    per_scramble, grids = point_scheme_cdf(p, maturity, steps, x, seed + 100)
    ext = richardson(per_scramble.transpose(1, 0, 2), rate)  # (G-1, R, X)
    theory = ext[-1].mean(0)
    theory_se = ext[-1].std(0, ddof=1) / math.sqrt(SCRAMBLES)
    theory_residual = np.abs(ext[-1].mean(0) - ext[-2].mean(0))
    raw_fine = per_scramble[:, -1].mean(0)
    central = (raw_fine > 1e-3) & (raw_fine < 1 - 1e-3)
    # rate fitted on the 4 finest grids; residual: the same fit on the 4 grids one level coarser
    fit_rate, fit = fitted_extrapolation(per_scramble[:, -4:], grids[-4:], central)
    fit_rate_coarse, fit_coarse = fitted_extrapolation(per_scramble[:, -5:-1], grids[-5:-1], central)
    fit_mean, fit_se = fit.mean(0), fit.std(0, ddof=1) / math.sqrt(SCRAMBLES)
    fit_residual = np.abs(fit_mean - fit_coarse.mean(0))
    theory_acc = float((theory_residual + 2 * theory_se)[central].max())
    fit_acc = float((fit_residual + 2 * fit_se)[central].max())
    if fit_acc < theory_acc:
        method, best, se, residual = "fitted rate", fit_mean, fit_se, fit_residual
    else:
        method, best, se, residual = "theory rate", theory, theory_se, theory_residual
    # 3) quantiles: monotone interpolation of Phi^-1(F) in x
    mono = np.clip(np.maximum.accumulate(best), 1e-12, 1 - 1e-12)
    keep = np.concatenate([[True], np.diff(mono) > 1e-12])
    interp = PchipInterpolator(norm.ppf(mono[keep]), x.cpu().numpy()[keep])
    q = interp(norm.ppf(rb_table_levels()))
    # 4) cross-check with the cell-average discretisation
    cells = cell_scheme_cdf(p, maturity, x, seed)
    cell = cells[-1]
    seconds = time.perf_counter() - t0
    se_by_grid = per_scramble.std(0, ddof=1) / math.sqrt(SCRAMBLES)
    return {
        "name": name,
        "params": params,
        "days": days,
        "maturity": maturity,
        "quantiles": [float(f"{v:.8g}") for v in q],
        "fine_steps": steps,
        "grids": grids,
        "rate": rate,
        "paths": SCRAMBLES << LOG2_POINTS,
        "x": [float(f"{v:.9g}") for v in x.cpu().numpy()],
        "device": torch.get_default_device().type,
        "normals": NORMALS,
        "cdf_by_grid": [[float(f"{v:.6g}") for v in row] for row in per_scramble.mean(0)],
        "se_by_grid_max": [float(v) for v in se_by_grid[:, central].max(1)],
        "extrapolation": method,
        "theory_rate_accuracy": theory_acc,
        "fitted_rate": fit_rate,
        "fitted_rate_coarser_grids": fit_rate_coarse,
        "fitted_rate_accuracy": fit_acc,
        "residual_max": float(residual[central].max()),
        "se_max": float(se[central].max()),
        "accuracy": float((residual + 2 * se)[central].max()),
        "fine_minus_extrapolated_max": float(np.abs(raw_fine - best)[central].max()),
        "cell_scheme_max_abs_cdf_diff": float(np.abs(cell - best)[central].max()),
        "seconds": round(seconds, 1),
        "estimator": "Y-conditional" if hard_corner(p, maturity) else "W-conditional",
        **(
            {
                "cell_scheme_by_cells": {
                    str(c): float(np.abs(v - best)[central].max()) for c, v in zip((128, 256, 512), cells, strict=True)
                }
            }
            if hard_corner(p, maturity)
            else {}
        ),
    }


def main() -> None:
    global FINE_STEPS_OVERRIDE, LOG2_POINTS, NORMALS, OUTPUT, GRIDS_OUTPUT
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--cases",
        default="",
        help="name:days,... (regenerated; default: all missing); results are merged into the file",
    )
    parser.add_argument("--finalize", action="store_true", help="only rewrite the file in the current format")
    parser.add_argument("--device", default="cpu", help="torch device of the GEMMs and moments (e.g. cuda)")
    parser.add_argument("--fine-steps", type=int, help="n_f for these cases (default: fine_steps' rule)")
    parser.add_argument(
        "--log2-points", type=int, default=LOG2_POINTS, help=f"Sobol points per scramble (2^m; default {LOG2_POINTS})"
    )
    parser.add_argument(
        "--normals",
        choices=("sobol", "mc"),
        default="sobol",
        help="sobol: scrambled Sobol points made on the CPU (RQMC); mc: pseudo-random normals on the device (GPU)",
    )
    parser.add_argument(
        "--output", type=Path, help="write both JSON files into this folder instead (started from the repository's)"
    )
    args = parser.parse_args()
    if args.output is not None:  # e.g. $OUT on a device machine: the repository's files stay as they are
        args.output.mkdir(parents=True, exist_ok=True)
        for source in (OUTPUT, GRIDS_OUTPUT):
            target = args.output / source.name
            if not target.exists() and source.exists():
                target.write_text(source.read_text())
        OUTPUT, GRIDS_OUTPUT = args.output / OUTPUT.name, args.output / GRIDS_OUTPUT.name
    if args.finalize:
        write(upgrade(json.loads(OUTPUT.read_text())))
        return
    if args.fine_steps is not None and (args.fine_steps < 256 or args.fine_steps & (args.fine_steps - 1)):
        parser.error(f"--fine-steps must be a power of 2 >= 256 (nested grids down to n_f/64), got {args.fine_steps}")
    FINE_STEPS_OVERRIDE, LOG2_POINTS, NORMALS = args.fine_steps, args.log2_points, args.normals
    torch.set_default_device(args.device)  # tensors built here and in rough_bergomi_exact (on_device) live there
    torch.set_num_threads(1)
    wanted = {tuple(c.split(":")) for c in args.cases.split(",") if c}
    payload = json.loads(OUTPUT.read_text()) if OUTPUT.exists() else {"cases": []}
    done = {(c["name"], str(c["days"])) for c in payload["cases"]}
    names = list(PARAMETER_SETS)
    order = [(n, 1) for n in names] + [(n, 252) for n in names] + [(n, d) for n in names[:3] for d in (5, 21)]
    order += [(n, d) for n in names[3:] for d in (5, 21)]
    for name, days in order:
        k, params = names.index(name), PARAMETER_SETS[name][0]
        if True:
            key = (name, str(days))
            if (wanted and key not in wanted) or (not wanted and key in done):  # --cases regenerates
                continue
            case = make_case(name, params, days, seed=1000 * k + days)
            payload["cases"] = [c for c in payload["cases"] if (c["name"], str(c["days"])) != key] + [case]
            print(
                f"{name} {days}d: accuracy {case['accuracy']:.1e} (residual {case['residual_max']:.1e}, se "
                f"{case['se_max']:.1e}), fine-vs-extrapolated {case['fine_minus_extrapolated_max']:.1e}, cell scheme "
                f"diff {case['cell_scheme_max_abs_cdf_diff']:.1e}, {case['seconds']} s",
                flush=True,
            )
            write(payload)


GRIDS_OUTPUT = Path(__file__).resolve().parents[2] / "benchmarks" / "accuracy" / "measurements" / "rb_grids.json"
"""The per-grid CDFs (x, cdf_by_grid) go here, not into the test data: they are for the measurements only."""


def split_grids(payload: dict) -> dict:
    """Move x and cdf_by_grid of every case to GRIDS_OUTPUT (merged with what is there); return the slim payload."""
    grids = json.loads(GRIDS_OUTPUT.read_text()) if GRIDS_OUTPUT.exists() else {}
    for case in payload["cases"]:
        key = f"{case['name']}:{case['days']}"
        if "x" in case:
            grids[key] = {"x": case.pop("x"), "cdf_by_grid": case.pop("cdf_by_grid"), "grids": case["grids"]}
    GRIDS_OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    GRIDS_OUTPUT.write_text(json.dumps(grids, separators=(",", ":")) + "\n")
    return payload


def upgrade(payload: dict) -> dict:
    """Cases written with the rough Heston table levels (1e-6 .. 6e-4 tails, 522 values): keep the RB table levels."""
    for case in payload["cases"]:
        if len(case["quantiles"]) == 522:
            case["quantiles"] = [float(f"{v:.8g}") for v in case["quantiles"][2:-2]]
    return payload


def write(payload: dict) -> None:
    payload = split_grids(payload)
    payload.update(
        {
            "description": "Quantiles of X_T = log(S_T/S_0) of the continuous rough Bergomi model (exact simulation)",
            "generator": "tests/models/make_rough_bergomi_quantiles.py",
            "method": (
                "exact joint Gaussian (dW, Y) on nested uniform grids (PCA factor, RQMC: 16 Owen-scrambled Sobol "
                "sequences of 2^15 points), left-point rule with W_perp integrated out (conditional MC), Richardson "
                "across consecutive grids at rate min(3H + 1/2, 1); reference = last extrapolant; residual = last two "
                "extrapolants; accuracy = max(|residual| + 2 se) where 1e-3 < F < 1 - 1e-3; hard corner (estimator "
                "Y-conditional): dW integrated out given the Volterra path, 4096/2048/1024 fine steps, 7 nested grids"
            ),
            "sources": [
                "Bayer, Friz & Gatheral (2016), Pricing under rough volatility, Quant. Finance (exact Cholesky method)",
                "McCrickerd & Pakkanen (2018), Turbocharging Monte Carlo pricing for the rough Bergomi model",
                "Gassiat (2023), Weak error rates of numerical schemes for rough volatility (rate 3H + 1/2)",
                "Owen (1998) scrambled nets; Sobol' sequences (scipy.stats.qmc)",
            ],
            "levels": {"published": "(j + 0.5) / 512", "tails": list(RB_TAIL_LEVELS), "order": "tails, published"},
            "table_levels": [float(v) for v in rb_table_levels()],
            "year_days": YEAR_DAYS,
            "parameter_sets": {k: {"params": v[0], "why": v[1]} for k, v in PARAMETER_SETS.items()},
            "python": platform.python_version(),
            "numpy": np.__version__,
            "torch": torch.__version__,
        }
    )
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=OUTPUT.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        json.dump(payload, fh, separators=(",", ":"))
        fh.write("\n")
    os.chmod(tmp, 0o644)
    os.replace(tmp, OUTPUT)


if __name__ == "__main__":
    sys.exit(main())
