"""Exact discretisation error of the iVi scheme (rough Heston) against the Fourier reference, no Monte Carlo noise.

The iVi scheme is a discrete affine Volterra process: its characteristic function on any grid is exact by a backward
recursion (tests/models/rough_heston_fourier.py: ivi_log_cf, checked against Monte Carlo of the production code in
tests/models/test_rough_heston_accuracy.py). So the quantiles q_N(p) the engine would publish with infinitely many
paths on a uniform N-step grid to the horizon are computed by Fourier inversion, and the error reported is

    sup-CDF error = max over the 512 published levels p of |F_ref(q_N(p)) - p|

with F_ref the continuous model's CDF (tests/models/data/rough_heston_quantiles.json).

    python -m benchmarks.accuracy.rh_ivi_error [--steps 1,2,4,...] [--cases name:days,...] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np

from benchmarks.accuracy.references import PUBLISHED_LEVELS, load_cases, sup_cdf_error
from density_engine.models.rough_heston_fourier import RHParams, build_cdf, find_bracket, ivi_log_cf

RESULTS = Path(__file__).resolve().parent / "measurements"


def ivi_quantiles(p: RHParams, grid: np.ndarray, levels: np.ndarray = PUBLISHED_LEVELS) -> np.ndarray:
    """Quantiles of the iVi scheme on ``grid`` at ``levels`` (Fourier inversion of its exact CF)."""
    maturity = float(grid[-1])

    def log_cf(u: np.ndarray) -> np.ndarray:
        return ivi_log_cf(u, grid, p)

    scale = math.sqrt(max(p.v0, 1e-4) * maturity)
    bracket = find_bracket(log_cf, scale, tail_mass=1e-5, cf_tol=1e-9)
    build = build_cdf(log_cf, bracket, scale, cf_tol=1e-9)
    return build.cdf.quantiles(levels, *bracket, tol=1e-11)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", default="1,2,4,8,16,32,64,128,256,512")
    parser.add_argument("--cases", default="", help="name:days,... (default: all reference cases)")
    parser.add_argument("--out", default=str(RESULTS / "rh_ivi_error.json"))
    args = parser.parse_args()
    steps = [int(s) for s in args.steps.split(",")]
    wanted = {tuple(c.split(":")) for c in args.cases.split(",") if c}
    out_path = Path(args.out)
    results = json.loads(out_path.read_text()) if out_path.exists() else {}
    cache_path = out_path.with_name(out_path.stem.replace("_error", "_quantiles") + ".cache.json")
    cache = json.loads(cache_path.read_text()) if cache_path.exists() else {}
    for case in load_cases("rough_heston"):
        if wanted and (case.name, str(case.days)) not in wanted:
            continue
        p = RHParams.of(case.params)
        key = f"{case.name}:{case.days}"
        row = results.setdefault(key, {"params": case.params, "days": case.days, "errors": {}})
        quantiles: dict[int, np.ndarray] = {}
        for n in steps:
            if str(n) in row["errors"] and str(n) in cache.get(key, {}):
                quantiles[n] = np.asarray(cache[key][str(n)])
                continue
            t0 = time.perf_counter()
            q = ivi_quantiles(p, np.linspace(0.0, case.maturity, n + 1))
            quantiles[n] = q
            dev = case.cdf(q) - PUBLISHED_LEVELS
            row["errors"][str(n)] = {
                "sup": sup_cdf_error(case.cdf, q),
                "at_level": float(PUBLISHED_LEVELS[int(np.argmax(np.abs(dev)))]),
                "signed_median": float(dev[255]),
                "width_ratio_01_99": float((q[506] - q[5]) / (case.quantiles[506] - case.quantiles[5])),
                "seconds": round(time.perf_counter() - t0, 1),
            }
            cache.setdefault(key, {})[str(n)] = [float(f"{v:.10g}") for v in q]
            if n // 2 in quantiles and n > 1:
                coarse = quantiles[n // 2]
                extrapolated = 2.0 * q - coarse
                row["errors"][str(n)]["richardson_sup"] = sup_cdf_error(case.cdf, extrapolated)
                row["errors"][str(n)]["richardson_difference"] = float(np.max(np.abs(case.cdf(q) - case.cdf(coarse))))
            print(f"{key:>20} N={n:5d}: sup {row['errors'][str(n)]['sup']:.2e}", flush=True)
            out_path.parent.mkdir(parents=True, exist_ok=True)
            out_path.write_text(json.dumps(results, indent=1) + "\n")
            cache_path.write_text(json.dumps(cache) + "\n")


if __name__ == "__main__":
    main()
