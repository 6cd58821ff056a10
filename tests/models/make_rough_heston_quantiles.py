"""Generate tests/models/data/rough_heston_quantiles.json: quantiles of the continuous rough Heston model.

For corner parameter sets of the production ranges (config/production.yaml: kappa [0.1, 3], theta [0.01, 0.1],
sigma [0.1, 1], rho [-0.95, 0], alpha [0.55, 0.95], v0 [0.01, 0.1]) at 1, 5, 21 and 252 trading days
(T = days / 252 years), the quantiles of X_T = log(S_T / S_0) at the 512 published levels (j + 0.5) / 512 plus tail
levels 1e-6 .. 6e-4 on both sides (density_engine/models/rough_heston_fourier.py: TAIL_LEVELS).

Method (density_engine/models/rough_heston_fourier.py): characteristic function by the implicit product-trapezoid
fractional Adams scheme on a graded mesh t_k = T (k/n)^(2/alpha), n = 1600 (El Euch & Rosenbaum 2019; Diethelm, Ford &
Freed 2002; the implicit step and the grading make it stable and accurate at the large u that short horizons of very
rough, Feller-violating sets need), Gil-Pelaez inversion by the midpoint rule (aliasing period 2.5x the bracket of the
distribution, |phi| < 1e-10 at the cut-off), quantiles by bracketed Newton to |F(q) - p| < 1e-13.

Checks asserted before anything is written (all recorded in the file):
  * alpha = 1 reproduces classical Heston: Adams CF vs the closed-form CF; quantiles of the Fang-Oosterlee (2008) set
    from the Adams CF evaluated by the closed-form CDF; the Fang-Oosterlee COS call price 5.785155450;
  * set A (models.md §2.3) calls at T = 1 vs the documented explicit-Adams values (n = 2000);
  * the previous reference tables (tests/models/data/rough_heston_reference.json, explicit Adams, 2000 steps, stated
    accuracy 5e-5) agree with this method at their 512 quantiles;
  * per table: the same table with n/2 Adams steps, a 1.6x longer aliasing period and |phi| < 1e-12 at the cut-off
    (``check_max_abs_cdf``), and the PCHIP interpolation of the stored quantiles (ReferenceCDF) against the exact CDF
    at points between them (``interpolation_max_abs_cdf``); both must be < 1e-5.

Run (about 30 minutes on 2 cores; background it):  python tests/models/make_rough_heston_quantiles.py
"""

from __future__ import annotations

import json
import math
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from density_engine.models.rough_heston_fourier import (
    TAIL_LEVELS,
    AdamsSolver,
    ReferenceCDF,
    RHParams,
    build_cdf,
    find_bracket,
    heston_log_cf,
    table_levels,
)

OUTPUT = Path(__file__).resolve().parent / "data" / "rough_heston_quantiles.json"
OLD_REFERENCE = Path(__file__).resolve().parent / "data" / "rough_heston_reference.json"

DAYS = (1, 5, 21, 252)
YEAR_DAYS = 252.0
ADAMS_STEPS = 1600
CHECK_ADAMS_STEPS = 800
TOLERANCE = 1e-5  # max |F| change accepted for a table (check build, interpolation)
DECIMALS = 10  # stored quantiles are rounded to 1e-10 (|F| change < density * 5e-11 < 1e-7)

# name -> (parameters, why this set). Corners/extremes of the production ranges.
PARAMETER_SETS: dict[str, tuple[dict[str, float], str]] = {
    "A": (
        {"kappa": 0.3, "theta": 0.02, "sigma": 0.3, "rho": -0.7, "alpha": 0.6, "v0": 0.02},
        "set A of models.md (El Euch-Rosenbaum / Abi Jaber papers)",
    ),
    "feller_rough": (
        {"kappa": 0.1, "theta": 0.09, "sigma": 0.5, "rho": -0.95, "alpha": 0.55, "v0": 0.04},
        "issue 9's rough Feller-violating set",
    ),
    "extreme": (
        {"kappa": 0.1, "theta": 0.01, "sigma": 1.0, "rho": -0.95, "alpha": 0.55, "v0": 0.01},
        "roughest, most skewed, largest vol-of-vol, smallest variances (2 kappa theta / sigma^2 = 0.002)",
    ),
    "kappa3_rough": (
        {"kappa": 3.0, "theta": 0.1, "sigma": 1.0, "rho": -0.95, "alpha": 0.55, "v0": 0.01},
        "fast mean reversion from v0 << theta, rough, skewed, sigma 1",
    ),
    "rho0_rough": (
        {"kappa": 0.1, "theta": 0.1, "sigma": 1.0, "rho": 0.0, "alpha": 0.55, "v0": 0.1},
        "rough, sigma 1, uncorrelated, large variances",
    ),
    "alpha95_skew": (
        {"kappa": 0.1, "theta": 0.01, "sigma": 1.0, "rho": -0.95, "alpha": 0.95, "v0": 0.1},
        "nearly classical kernel, sigma 1, rho -0.95, v0 >> theta",
    ),
    "smooth": (
        {"kappa": 3.0, "theta": 0.1, "sigma": 0.1, "rho": 0.0, "alpha": 0.95, "v0": 0.1},
        "smoothest, calmest corner (nearly Gaussian)",
    ),
    "mid": (
        {"kappa": 1.0, "theta": 0.05, "sigma": 0.5, "rho": -0.5, "alpha": 0.75, "v0": 0.05},
        "centre of the ranges",
    ),
}

# Fang & Oosterlee (2008) Heston set: S = K = 100, T = 1, r = q = 0 -> 5.785155450 (as quoted in public test suites)
FO_SET = RHParams(kappa=1.5768, theta=0.0398, sigma=0.5751, rho=-0.5711, alpha=1.0, v0=0.0175)
SET_A_CALLS = {"k": [-0.1, 0.0, 0.1], "explicit_adams_n2000": [0.11616346, 0.04538742, 0.00638358]}


def lewis_calls(log_cf, log_strikes: np.ndarray, u_max: float = 600.0, nodes: int = 4800) -> np.ndarray:
    """C(K = e^k) / S0 at r = 0 by the Lewis formula (midpoint rule on [0, u_max])."""
    du = u_max / nodes
    u = (np.arange(nodes) + 0.5) * du
    phi = np.exp(log_cf(u - 0.5j))
    integrand = np.real(np.exp(-1j * np.outer(log_strikes, u)) * phi) / (u**2 + 0.25)
    return 1.0 - np.exp(np.asarray(log_strikes) / 2.0) / np.pi * (integrand @ np.full(nodes, du))


def check_classical_heston() -> dict[str, float]:
    """alpha = 1: Adams CF = closed-form Heston CF; Adams quantiles through the closed-form CDF; COS price."""
    out: dict[str, float] = {}
    u = np.concatenate([np.linspace(0.1, 50.0, 100), np.geomspace(50.0, 5000.0, 40)])
    for maturity in (1.0, 1.0 / 252.0):
        solver = AdamsSolver(maturity, 1.0, ADAMS_STEPS)
        err = float(np.max(np.abs(np.exp(solver.log_cf(u, FO_SET)) - np.exp(heston_log_cf(u, maturity, FO_SET)))))
        assert err < 1e-7, f"alpha = 1, T = {maturity}: Adams CF differs from closed-form Heston by {err:.2e}"
        out[f"max_abs_cf_error_T{maturity:.6g}"] = err
        scale = math.sqrt(FO_SET.v0 * maturity)
        bracket = find_bracket(lambda z, m=maturity: heston_log_cf(z, m, FO_SET), scale)
        closed = build_cdf(lambda z, m=maturity: heston_log_cf(z, m, FO_SET), bracket, scale)
        adams = build_cdf(lambda z, s=solver: s.log_cf(z, FO_SET), bracket, scale)
        levels = table_levels()
        q = adams.cdf.quantiles(levels, *bracket)
        qerr = float(np.max(np.abs(closed.cdf.cdf(q) - levels)))
        assert qerr < 1e-6, f"alpha = 1, T = {maturity}: Adams quantiles off by {qerr:.2e} in closed-form CDF"
        out[f"max_abs_cdf_error_of_adams_quantiles_T{maturity:.6g}"] = qerr
    price = 100.0 * float(lewis_calls(lambda z: heston_log_cf(z, 1.0, FO_SET), np.array([0.0]))[0])
    price_adams = 100.0 * float(
        lewis_calls(lambda z: AdamsSolver(1.0, 1.0, ADAMS_STEPS).log_cf(z, FO_SET), np.array([0.0]))[0]
    )
    assert abs(price_adams - 5.785155450) < 2e-6, f"COS benchmark: {price_adams:.9f} vs 5.785155450"
    out.update({"cos_price_closed_form": price, "cos_price_adams": price_adams, "cos_price_reference": 5.785155450})
    return out


def check_set_a_calls() -> dict[str, object]:
    """Set A, T = 1: calls vs the documented explicit-Adams values (n = 2000; they moved by 4.8e-7 from n = 500)."""
    p = RHParams.of(PARAMETER_SETS["A"][0])
    calls = lewis_calls(lambda z: AdamsSolver(1.0, p.alpha, ADAMS_STEPS).log_cf(z, p), np.array(SET_A_CALLS["k"]))
    diff = calls - np.asarray(SET_A_CALLS["explicit_adams_n2000"])
    assert np.max(np.abs(diff)) < 5e-7, f"set A calls {calls} vs documented: {diff}"
    return {"calls": calls.tolist(), "minus_documented": diff.tolist(), **SET_A_CALLS}


def check_old_reference() -> list[dict[str, object]]:
    """The old explicit-Adams tables' 512 quantiles evaluated by this method's CDF: |F - p| within their 5e-5."""
    if not OLD_REFERENCE.exists():
        return []
    old = json.loads(OLD_REFERENCE.read_text())
    out = []
    levels = (np.arange(512) + 0.5) / 512
    for table in old["tables"]:
        p = RHParams.of(table["params"])
        maturity = float(table["maturity"])
        scale = math.sqrt(p.v0 * maturity)
        solver = AdamsSolver(maturity, p.alpha, ADAMS_STEPS)
        cheap = AdamsSolver(maturity, p.alpha, 200)
        bracket = find_bracket(lambda z, s=cheap, p=p: s.log_cf(z, p), scale)
        build = build_cdf(lambda z, s=solver, p=p: s.log_cf(z, p), bracket, scale)
        err = float(np.max(np.abs(build.cdf.cdf(np.asarray(table["quantiles_512"])) - levels)))
        assert err < 6e-5, f"old reference set {table['set']} T={maturity}: {err:.2e}"
        out.append({"set": table["set"], "maturity": maturity, "max_abs_cdf_of_old_quantiles": err})
    return out


def make_case(name: str, params: dict[str, float], days: int) -> dict[str, object]:
    p = RHParams.of(params)
    maturity = days / YEAR_DAYS
    scale = math.sqrt(max(p.v0, 1e-4) * maturity)
    t0 = time.perf_counter()
    cheap = AdamsSolver(maturity, p.alpha, 200)
    bracket = find_bracket(lambda z: cheap.log_cf(z, p), scale)
    solver = AdamsSolver(maturity, p.alpha, ADAMS_STEPS)
    main = build_cdf(lambda z: solver.log_cf(z, p), bracket, scale)
    levels = table_levels()
    q = main.cdf.quantiles(levels, *bracket)
    # convergence check: n/2 steps, longer aliasing period, smaller cut-off
    half = AdamsSolver(maturity, p.alpha, CHECK_ADAMS_STEPS)
    check = build_cdf(lambda z: half.log_cf(z, p), bracket, scale, cf_tol=1e-12, period_factor=4.0)
    check_err = float(np.max(np.abs(check.cdf.cdf(q) - levels)))
    # rounding and interpolation: the stored table against the exact CDF between the stored quantiles
    stored = np.round(q, DECIMALS)
    ref = ReferenceCDF(levels, stored)
    between = np.concatenate([stored[:-1] + f * np.diff(stored) for f in (0.25, 0.5, 0.75)] + [stored])
    interp_err = float(np.max(np.abs(ref(between) - main.cdf.cdf(between))))
    seconds = time.perf_counter() - t0
    assert check_err < TOLERANCE, f"{name} {days}d: not converged ({check_err:.2e})"
    assert interp_err < TOLERANCE, f"{name} {days}d: interpolation error {interp_err:.2e}"
    assert np.all(np.diff(stored) > 0), f"{name} {days}d: quantiles not increasing"
    return {
        "name": name,
        "params": params,
        "days": days,
        "maturity": maturity,
        "quantiles": [float(v) for v in stored],
        "check_max_abs_cdf": check_err,
        "interpolation_max_abs_cdf": interp_err,
        "u_max": main.u_max,
        "du": main.du,
        "fourier_nodes": len(main.cdf.nodes),
        "bracket": list(bracket),
        "mean": main.mean,
        "sd": main.sd,
        "seconds": round(seconds, 1),
    }


def main() -> None:
    start = time.perf_counter()
    checks = {
        "classical_heston": check_classical_heston(),
        "set_A_calls_T1": check_set_a_calls(),
    }
    print("checks:", json.dumps(checks), flush=True)
    checks["old_reference_tables"] = check_old_reference()
    print("old reference:", json.dumps(checks["old_reference_tables"]), flush=True)
    cases = []
    for name, (params, _) in PARAMETER_SETS.items():
        for days in DAYS:
            case = make_case(name, params, days)
            cases.append(case)
            print(
                f"{name} {days}d: check {case['check_max_abs_cdf']:.1e}, "
                f"interp {case['interpolation_max_abs_cdf']:.1e}, {case['fourier_nodes']} nodes, {case['seconds']} s",
                flush=True,
            )
    payload = {
        "description": "Quantiles of X_T = log(S_T/S_0) of the continuous rough Heston model (Fourier reference)",
        "generator": "tests/models/make_rough_heston_quantiles.py",
        "method": (
            "CF by implicit product-trapezoid fractional Adams on the graded mesh t_k = T (k/n)^(2/alpha), "
            f"n = {ADAMS_STEPS}; Gil-Pelaez by the midpoint rule (aliasing period 2.5x the bracket, |phi| < 1e-10 "
            "at the cut-off); bracketed Newton to |F(q) - p| < 1e-13; quantiles rounded to 1e-10"
        ),
        "sources": [
            "El Euch & Rosenbaum (2019), The characteristic function of rough Heston models, Math. Finance",
            "Diethelm, Ford & Freed (2002), A predictor-corrector approach for fractional differential equations",
            "Gil-Pelaez (1951), Note on the inversion theorem, Biometrika",
            "Fang & Oosterlee (2008), COS method (Heston benchmark 5.785155450)",
            "models.md §2.3 (set A, documented Adams calls)",
        ],
        "interpolation": (
            "ReferenceCDF in density_engine/models/rough_heston_fourier.py: PCHIP of Phi^-1(level) against quantile; "
            "its error "
            "against the exact CDF between stored quantiles is interpolation_max_abs_cdf"
        ),
        "levels": {
            "published": "(j + 0.5) / 512, j = 0..511",
            "tails": list(TAIL_LEVELS),
            "order": "tails, published, 1 - tails reversed",
        },
        "year_days": YEAR_DAYS,
        "parameter_sets": {k: {"params": v[0], "why": v[1]} for k, v in PARAMETER_SETS.items()},
        "settings": {
            "adams_steps": ADAMS_STEPS,
            "check_adams_steps": CHECK_ADAMS_STEPS,
            "python": platform.python_version(),
            "numpy": np.__version__,
            "scipy": scipy.__version__,
            "runtime_s": round(time.perf_counter() - start, 1),
        },
        "checks": checks,
        "cases": cases,
    }
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=OUTPUT.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        json.dump(payload, fh, separators=(",", ":"))
        fh.write("\n")
    os.chmod(tmp, 0o644)
    os.replace(tmp, OUTPUT)
    print(f"wrote {OUTPUT} ({OUTPUT.stat().st_size / 1024:.0f} KiB) in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    sys.exit(main())
