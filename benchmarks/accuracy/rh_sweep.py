"""iVi discretisation error over random parameter sets of the production box (rough Heston), exact (Fourier).

Scrambled Sobol points in config/production.yaml's ranges (kappa [0.1, 3], theta [0.01, 0.1], sigma [0.1, 1],
rho [-0.95, 0], alpha [0.55, 0.95], v0 [0.01, 0.1]); for each: the continuous CDF (graded implicit Adams, n = 400:
CDF error ~1e-6) and the iVi quantiles on uniform N-step grids (exact CF), at one horizon (the error depends on the
step count, hardly on the horizon: docs/accuracy.md). Reports max over sets of the plain and Richardson errors.

    python -m benchmarks.accuracy.rh_sweep [--sets 24] [--days 5] [--steps 16,32,64]
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
from scipy.stats import qmc

from benchmarks.accuracy.references import PUBLISHED_LEVELS
from benchmarks.accuracy.rh_ivi_error import ivi_quantiles
from density_engine.models.rough_heston_fourier import PARAM_ORDER, AdamsSolver, RHParams, build_cdf, find_bracket

RANGES = {
    "kappa": (0.1, 3.0),
    "theta": (0.01, 0.1),
    "sigma": (0.1, 1.0),
    "rho": (-0.95, 0.0),
    "alpha": (0.55, 0.95),
    "v0": (0.01, 0.1),
}
RESULTS = Path(__file__).resolve().parent / "measurements"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sets", type=int, default=24)
    parser.add_argument("--days", type=int, default=5)
    parser.add_argument("--steps", default="16,32,64")
    args = parser.parse_args()
    steps = [int(s) for s in args.steps.split(",")]
    points = qmc.Sobol(6, scramble=True, rng=np.random.default_rng(9)).random(args.sets)
    maturity = args.days / 252.0
    out_path = RESULTS / f"rh_sweep_{args.days}d.json"
    results = json.loads(out_path.read_text()) if out_path.exists() else []
    for i, u in enumerate(points):
        if i < len(results):
            continue
        values = {k: lo + (hi - lo) * x for (k, (lo, hi)), x in zip(RANGES.items(), u, strict=True)}
        p = RHParams.of(values)
        t0 = time.perf_counter()
        scale = math.sqrt(p.v0 * maturity)
        cheap = AdamsSolver(maturity, p.alpha, 100)
        bracket = find_bracket(lambda z, s=cheap, p=p: s.log_cf(z, p), scale, tail_mass=1e-5, cf_tol=1e-9)
        solver = AdamsSolver(maturity, p.alpha, 400)
        ref = build_cdf(lambda z, s=solver, p=p: s.log_cf(z, p), bracket, scale, cf_tol=1e-9).cdf
        row = {"params": {k: values[k] for k in PARAM_ORDER}, "plain": {}, "richardson": {}}
        qs = {}
        for n in steps:
            qs[n] = ivi_quantiles(p, np.linspace(0.0, maturity, n + 1))
            row["plain"][str(n)] = float(np.max(np.abs(ref.cdf(qs[n]) - PUBLISHED_LEVELS)))
            if n // 2 in qs:
                q_r = 2 * qs[n] - qs[n // 2]
                row["richardson"][f"{n // 2},{n}"] = float(np.max(np.abs(ref.cdf(q_r) - PUBLISHED_LEVELS)))
        row["seconds"] = round(time.perf_counter() - t0, 1)
        results.append(row)
        print(json.dumps(row), flush=True)
        RESULTS.mkdir(parents=True, exist_ok=True)
        out_path.write_text(json.dumps(results, indent=1) + "\n")
    worst = {k: max(r["plain"][k] for r in results) for k in results[0]["plain"]}
    worst_r = {k: max(r["richardson"][k] for r in results) for k in results[0]["richardson"]}
    print("worst plain", worst, "worst richardson", worst_r)


if __name__ == "__main__":
    main()
