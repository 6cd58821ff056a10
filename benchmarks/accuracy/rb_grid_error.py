"""Error of the left-point rule (Volterra process exact) vs fine steps to the horizon, from the reference data itself.

The rough Bergomi reference generator stores, per case, the RQMC CDF of the left-point rule on each of its nested
grids (``cdf_by_grid``, at 201 points x) next to the extrapolated reference. The sup over x (where 1e-3 < F < 1-1e-3)
of |F_N(x) - F_ref(x)| is the discretisation error of an N-step grid with the Volterra process simulated exactly:
what the production hybrid scheme (whose Volterra approximation error is small: rb_hybrid_error.py) achieves at best.
Noise: the stored per-grid standard errors (se_by_grid_max).

    python -m benchmarks.accuracy.rb_grid_error
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from benchmarks.accuracy.references import DATA, load_cases

GRIDS = Path(__file__).resolve().parent / "measurements" / "rb_grids.json"


def extrapolated_cases(payload: dict, refs: dict):
    """Per reference case with grid CDFs: (case, reference CDF at its x, central mask 1e-3 < F < 1 - 1e-3, theory rate,
    CDFs per grid, coupled Richardson extrapolants of consecutive grids)."""
    from tests.models.rough_bergomi_exact import weak_rate

    for case in payload["cases"]:
        if "cdf_by_grid" not in case:
            continue
        f_ref = refs[(case["name"], case["days"])].cdf(np.asarray(case["x"]))
        central = (f_ref > 1e-3) & (f_ref < 1 - 1e-3)
        rate = weak_rate(case["params"]["hurst"])
        rows = np.asarray(case["cdf_by_grid"])
        yield case, f_ref, central, rate, rows, rows[1:] + (rows[1:] - rows[:-1]) / (2.0**rate - 1.0)


def reference_payload() -> dict:
    """The reference cases with their per-grid CDFs (x, cdf_by_grid) merged in from measurements/rb_grids.json."""
    payload = json.loads((DATA / "rough_bergomi_quantiles.json").read_text())
    grids = json.loads(GRIDS.read_text()) if GRIDS.exists() else {}
    for case in payload["cases"]:
        case.update(grids.get(f"{case['name']}:{case['days']}", {}))
    return payload


def main() -> None:
    payload = reference_payload()
    refs = {(c.name, c.days): c for c in load_cases("rough_bergomi")}
    grids_all = sorted({g for c in payload["cases"] for g in c["grids"]})
    print("| set | days | ref. accuracy | " + " | ".join(f"N={g}" for g in grids_all) + " |")
    print("|---|---|---|" + "---|" * len(grids_all))
    out = {}
    for case in payload["cases"]:
        if "cdf_by_grid" not in case:
            continue
        ref = refs[(case["name"], case["days"])]
        x = np.asarray(case["x"])
        f_ref = ref.cdf(x)
        central = (f_ref > 1e-3) & (f_ref < 1 - 1e-3)
        errs = {}
        for g, row, se in zip(case["grids"], case["cdf_by_grid"], case.get("se_by_grid_max", [0] * 6), strict=True):
            errs[g] = (float(np.max(np.abs(np.asarray(row) - f_ref)[central])), se)
        out[f"{case['name']}:{case['days']}"] = errs
        cells = [f"{errs[g][0]:.1e}" if g in errs else "" for g in grids_all]
        print(f"| {case['name']} | {case['days']} | {case['accuracy']:.1e} | " + " | ".join(cells) + " |")
    (DATA.parents[2] / "benchmarks" / "accuracy" / "measurements" / "rb_grid_error.json").write_text(
        json.dumps(out, indent=1) + "\n"
    )


def richardson_table() -> None:
    """Coupled Richardson (N/2, N) at the theory rate min(3H + 1/2, 1): sup-CDF error against the reference, per N."""

    payload = reference_payload()
    refs = {(c.name, c.days): c for c in load_cases("rough_bergomi")}
    grids_all = sorted({g for c in payload["cases"] for g in c["grids"]})[1:]
    print("| set | days | rate | " + " | ".join(f"({g // 2},{g})" for g in grids_all) + " |")
    print("|---|---|---|" + "---|" * len(grids_all))
    for case, f_ref, central, rate, _rows, ext in extrapolated_cases(payload, refs):
        errs = {g: float(np.max(np.abs(e - f_ref)[central])) for g, e in zip(case["grids"][1:], ext, strict=True)}
        cells = [f"{errs[g]:.1e}" if g in errs else "" for g in grids_all]
        print(f"| {case['name']} | {case['days']} | {rate:.2f} | " + " | ".join(cells) + " |")


RATE_FLOOR = 0.3
"""Lowest observed rate the rate-corrected estimate trusts (pre-asymptotic grids can show rates <= 0)."""


def residual_estimator_table() -> None:
    """For the coupled Richardson extrapolant E(N) (theory rate r), two estimates of its error from three coupled grids
    (N/4, N/2, N), against its error |E(N) - F_ref| (sup over central x; the finest pair is skipped: the reference was
    extrapolated from it):
      plain:          |E(N) - E(N/2)|
      rate-corrected: |E(N) - E(N/2)| (2^r - 1) / (2^r' - 1), r' = clip(log2(d(N/2) / d(N)), RATE_FLOOR, r) with
                      d(N) = |F_N - F_N/2| (scaled up when the grids converge more slowly than the theory rate).
    Ratios in parentheses: the error is below the reference's stated accuracy (not a test)."""

    payload = reference_payload()
    refs = {(c.name, c.days): c for c in load_cases("rough_bergomi")}
    columns = [
        "set",
        "days",
        "N",
        "error of E(N)",
        "ref. accuracy",
        "plain estimate",
        "ratio",
        "rate-corrected",
        "ratio",
    ]
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for case, f_ref, central, rate, rows, ext in extrapolated_cases(payload, refs):
        for k in range(1, len(ext) - 1):
            err = float(np.max(np.abs(ext[k] - f_ref)[central]))
            est = float(np.max(np.abs(ext[k] - ext[k - 1])[central]))
            d_fine = float(np.max(np.abs(rows[k + 1] - rows[k])[central]))
            d_coarse = float(np.max(np.abs(rows[k] - rows[k - 1])[central]))
            observed = min(max(math.log2(d_coarse / d_fine), RATE_FLOOR), rate)
            corrected = est * (2.0**rate - 1.0) / (2.0**observed - 1.0)
            acc = case["accuracy"]
            cells = [case["name"], str(case["days"]), str(case["grids"][k + 1]), f"{err:.1e}", f"{acc:.1e}"]
            for value in (est, corrected):
                ratio = f"{value / err:.1f}"
                cells += [f"{value:.1e}", ratio if err > acc else f"({ratio})"]
            print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
    print()
    richardson_table()
    print()
    residual_estimator_table()
