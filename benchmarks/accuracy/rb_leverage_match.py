"""Research (docs/accuracy.md 4.6): P6v with its leverage matched to the exact E[IQ] ("P6w").

P6v (the production cell scheme) gets E[Q] and E[I^2] right but its leverage moment E[I Q] (I = int sqrt(V) dW,
Q = int V dt) converges slowly in the cells (e.g. eta 3, H 0.03, 1 day: 2.1 % low at 128 cells; the moments of
rb_moment_diagnostics.py). P6w scales the damping d of every nested grid by kappa_N = exact E[IQ] / E[I_m Q](N) (both in
closed form: ``exact_eiq`` and ``cell_moments`` of rb_moment_diagnostics) and recomputes the remainder so that E[I^2]
stays exact; everything else as P6v. Measured like rb_cell_convergence (one exact joint-Gaussian draw of the finest
cells, nested grids, conditional MC, 8 x 2^13 RQMC paths) against the stored references, P6v and P6w on the same draw.

    python -m benchmarks.accuracy.rb_leverage_match [--cells 256] [--cases eta3_H003:1,...]
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.accuracy import rb_cell_convergence
from benchmarks.accuracy.rb_grid_error import reference_payload
from benchmarks.accuracy.rb_moment_diagnostics import cell_moments, exact_eiq
from benchmarks.accuracy.references import load_cases
from tests.models.rough_bergomi_exact import RBParams

OUT = Path(__file__).resolve().parent / "measurements" / "rb_leverage_match.json"
STRIDES = (8, 4, 2, 1)
DEFAULT_CASES = (
    "eta3_H003:1,eta3_H01:1,eta3_H003_rho03:1,MP:1,eta05_H003:1,eta3_H03:1,eta3_H003:5,eta3_H01:5,"
    "eta3_H003:21,eta3_H01:21,eta3_H003_rho03:21,MP:21"
)
LONG_CASES = "eta3_H003:252,eta3_H01:252,eta3_H003_rho03:252,MP:252"


def measure(key: str, cells: int, case: dict, reference) -> dict:
    p = RBParams.of(case["params"])
    maturity = case["maturity"]
    exact = exact_eiq(maturity, p.hurst, p.eta)
    kappa = {cells // s: exact / cell_moments(maturity, p.hurst, p.eta, cells // s)[1] for s in STRIDES}
    x = torch.tensor(case["x"], dtype=torch.float64)
    f_ref = reference.cdf(x.numpy())
    central = (f_ref > 1e-3) & (f_ref < 1 - 1e-3)
    original = rb_cell_convergence.variance_matched_moments
    row = {"cells": [cells // s for s in STRIDES], "kappa": [kappa[cells // s] for s in STRIDES]}
    try:
        for name, function in (("P6v", original), ("P6w", functools.partial(original, kappa=kappa))):
            rb_cell_convergence.variance_matched_moments = function
            cdf, _, _ = rb_cell_convergence.cell_cdfs(p, maturity, cells, x, 8, 13, 7 + len(key), "v", STRIDES)
            err = np.abs(cdf.mean(0) - f_ref)[:, central].max(1)
            se = (cdf.std(0, ddof=1) / math.sqrt(cdf.shape[0]))[:, central].max(1)
            row[name] = {"err_vs_ref": err.tolist(), "two_se": (2 * se).tolist()}
    finally:
        rb_cell_convergence.variance_matched_moments = original
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cases", default=DEFAULT_CASES)
    parser.add_argument("--cells", type=int, default=256)
    args = parser.parse_args()
    torch.set_num_threads(1)
    cases = {f"{c['name']}:{c['days']}": c for c in reference_payload()["cases"]}
    refs = {f"{c.name}:{c.days}": c for c in load_cases("rough_bergomi")}
    store = json.loads(OUT.read_text()) if OUT.exists() else {}
    for key in args.cases.split(","):
        start = time.process_time()
        row = measure(key, args.cells, cases[key], refs[key])
        row.update(reference_accuracy=refs[key].accuracy, cpu_s=round(time.process_time() - start, 1))
        row["load_average"] = [round(v, 2) for v in os.getloadavg()]
        store[f"{key}:{args.cells}"] = row
        OUT.write_text(json.dumps(store, indent=1) + "\n")
        grids = " ".join(f"N={n}" for n in row["cells"])
        v6, w6 = (" / ".join(f"{e:.1e}" for e in row[name]["err_vs_ref"]) for name in ("P6v", "P6w"))
        two_se = row["P6w"]["two_se"][-1]
        print(f"| {key} | {row['reference_accuracy']:.1e} | {grids} | {v6} | {w6} | {two_se:.0e} |", flush=True)


if __name__ == "__main__":
    main()
