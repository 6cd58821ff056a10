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
from pathlib import Path

import numpy as np

from benchmarks.accuracy.references import DATA, load_cases

GRIDS = Path(__file__).resolve().parent / "measurements" / "rb_grids.json"


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
    from tests.models.rough_bergomi_exact import weak_rate

    payload = reference_payload()
    refs = {(c.name, c.days): c for c in load_cases("rough_bergomi")}
    grids_all = sorted({g for c in payload["cases"] for g in c["grids"]})[1:]
    print("| set | days | rate | " + " | ".join(f"({g // 2},{g})" for g in grids_all) + " |")
    print("|---|---|---|" + "---|" * len(grids_all))
    for case in payload["cases"]:
        ref = refs[(case["name"], case["days"])]
        x = np.asarray(case["x"])
        f_ref = ref.cdf(x)
        central = (f_ref > 1e-3) & (f_ref < 1 - 1e-3)
        rate = weak_rate(case["params"]["hurst"])
        rows = np.asarray(case["cdf_by_grid"])
        ext = rows[1:] + (rows[1:] - rows[:-1]) / (2.0**rate - 1.0)
        errs = {g: float(np.max(np.abs(e - f_ref)[central])) for g, e in zip(case["grids"][1:], ext, strict=True)}
        cells = [f"{errs[g]:.1e}" if g in errs else "" for g in grids_all]
        print(f"| {case['name']} | {case['days']} | {rate:.2f} | " + " | ".join(cells) + " |")


def residual_estimator_table() -> None:
    """For the coupled Richardson extrapolant E(N) (theory rate), the estimate |E(N) - E(N/2)| (three coupled grids
    N/4, N/2, N) against its error |E(N) - F_ref| (sup over central x), per N: ratio estimate / error."""
    from tests.models.rough_bergomi_exact import weak_rate

    payload = reference_payload()
    refs = {(c.name, c.days): c for c in load_cases("rough_bergomi")}
    for case in payload["cases"]:
        ref = refs[(case["name"], case["days"])]
        x = np.asarray(case["x"])
        f_ref = ref.cdf(x)
        central = (f_ref > 1e-3) & (f_ref < 1 - 1e-3)
        rate = weak_rate(case["params"]["hurst"])
        rows = np.asarray(case["cdf_by_grid"])
        ext = rows[1:] + (rows[1:] - rows[:-1]) / (2.0**rate - 1.0)
        cells = []
        for k in range(1, len(ext) - 1):  # skip the finest pair (used by the reference itself)
            err = float(np.max(np.abs(ext[k] - f_ref)[central]))
            est = float(np.max(np.abs(ext[k] - ext[k - 1])[central]))
            plain = float(np.max(np.abs(rows[k + 1] - rows[k])[central]) / (2.0**rate - 1.0))
            cells.append(f"N={case['grids'][k + 1]}: err {err:.1e} est {est:.1e} corr {plain:.1e}")
        print(f"{case['name']}:{case['days']}  " + "; ".join(cells))


if __name__ == "__main__":
    main()
    print()
    richardson_table()
    print()
    residual_estimator_table()
