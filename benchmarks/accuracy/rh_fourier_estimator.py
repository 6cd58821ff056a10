"""The per-row discretisation-error column for rough Heston, computed by Fourier: cost and accuracy.

For a row (parameter set, horizon) with the proposed policy (q_R = 2 q_64 - q_32 on per-horizon grids), the column is
max_p |F_cont(q_R(p)) - p| with F_cont from a cheap Adams solve (n = 300) and q_64, q_32 from the iVi scheme's exact CF.
Compared here with the same quantity against the stored reference (n = 1600 tables): the column's own error, and its
CPU time per row.

    python -m benchmarks.accuracy.rh_fourier_estimator [--fine 44]
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np

from benchmarks.accuracy.references import PUBLISHED_LEVELS, load_cases, sup_cdf_error
from benchmarks.accuracy.rh_ivi_error import ivi_quantiles
from density_engine.models.rough_heston_fourier import AdamsSolver, RHParams, build_cdf, find_bracket

RESULTS = Path(__file__).resolve().parent / "measurements"


def column(p: RHParams, maturity: float, fine: int = 64, adams_steps: int = 300) -> tuple[float, np.ndarray]:
    """(max_p |F_cont(q_R(p)) - p|, q_R) for the Richardson pair (fine/2, fine) on per-horizon grids."""
    q_f = ivi_quantiles(p, np.linspace(0.0, maturity, fine + 1))
    q_c = ivi_quantiles(p, np.linspace(0.0, maturity, fine // 2 + 1))
    q_r = 2.0 * q_f - q_c
    scale = math.sqrt(p.v0 * maturity)
    cheap = AdamsSolver(maturity, p.alpha, 100)
    bracket = find_bracket(lambda z: cheap.log_cf(z, p), scale, tail_mass=1e-5, cf_tol=1e-9)
    solver = AdamsSolver(maturity, p.alpha, adams_steps)
    cont = build_cdf(lambda z: solver.log_cf(z, p), bracket, scale, cf_tol=1e-9).cdf
    return float(np.max(np.abs(cont.cdf(q_r) - PUBLISHED_LEVELS))), q_r


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fine", type=int, default=64, help="N of the Richardson pair (N/2, N); the policy's steps")
    fine = parser.parse_args().fine
    name = "rh_fourier_estimator.json" if fine == 64 else f"rh_policy_{fine}.json"
    out = {}
    for case in load_cases("rough_heston"):
        t0 = time.process_time()
        value, q_r = column(RHParams.of(case.params), case.maturity, fine=fine)
        seconds = time.process_time() - t0
        exact = sup_cdf_error(case.cdf, q_r)
        out[f"{case.name}:{case.days}"] = {"column": value, "against_reference": exact, "cpu_s": round(seconds, 2)}
        print(
            f"{case.name:>14} {case.days:>3}d column {value:.3e} vs reference {exact:.3e}  {seconds:.1f} CPU s",
            flush=True,
        )
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / name).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
