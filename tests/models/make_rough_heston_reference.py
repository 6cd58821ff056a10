"""Generate the rough Heston Fourier reference tables used by ``tests/models/test_rough_heston*.py``.

The tables hold the CDF of the log-return X_T = log(S_T / S_0) of the *continuous-time* rough Heston model
(convention of density_engine.models.rough_heston: kappa, theta, sigma, rho, alpha = H + 1/2, v0; zero rates):

    V_t = v0 + 1/Gamma(alpha) int_0^t (t-s)^(alpha-1) [kappa (theta - V_s) ds + sigma sqrt(V_s) dB_s]
    dX_t = -V_t/2 dt + sqrt(V_t) dW_t,   d<W, B>_t = rho dt

computed from the characteristic function phi(u) = E exp(i u X_T) (fractional Riccati equation solved by the fractional
Adams predictor-corrector scheme, El Euch & Rosenbaum 2019 / Diethelm et al. 2002) and the Gil-Pelaez inversion

    F(x) = 1/2 - 1/pi int_0^inf Im(exp(-i u x) phi(u)) / u du       (Gauss-Legendre on [0, u_max]).

Before writing anything the script asserts that the CF code is right:
  * alpha = 1 (classical Heston): the Lewis call price reproduces the Fang-Oosterlee (2008) COS benchmark 5.785155450
    and the CF agrees with the closed-form Heston CF;
  * set A calls match the Adams values recorded in docs/reference (0.11616334, 0.04538724, 0.00638382 at n = 1000);
  * the tables (2000 Adams steps, 3000 nodes) are converged: with half the steps and 2/3 of the nodes F moves < 5e-5.

Run (about one to two minutes on two cores):  python tests/models/make_rough_heston_reference.py
Output: tests/models/data/rough_heston_reference.json (the tests only read this file).
"""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy
from scipy.special import gamma as gamma_fn

OUTPUT = Path(__file__).resolve().parent / "data" / "rough_heston_reference.json"

# Parameter sets (the project reference models.md §1.3 / §2.3). Keys follow the model's parameter names.
PARAMETER_SETS: dict[str, dict[str, float]] = {
    "A": {"kappa": 0.3, "theta": 0.02, "sigma": 0.3, "rho": -0.7, "alpha": 0.6, "v0": 0.02},
    "C": {"kappa": 0.3, "theta": 0.05, "sigma": 0.4, "rho": -0.6, "alpha": 0.55, "v0": 0.03},
}
# (set, maturity in years) pairs tabulated; the tests simulate exactly these maturities (1 and 5 days: the short
# horizons, where one daily step is a coarse discretisation).
TABLES: list[tuple[str, float]] = [("A", 1.0 / 252.0), ("A", 5.0 / 252.0), ("A", 0.25), ("A", 1.0), ("C", 0.5)]

ADAMS_STEPS = 1000  # fractional Adams time steps on [0, T] for the benchmark checks
QUAD_NODES = 2000  # Gauss-Legendre nodes on [0, u_max] for the benchmark checks
TABLE_ADAMS_STEPS = 2000  # the tables: Adams steps ...
TABLE_QUAD_NODES = 3000  # ... and quadrature nodes
CHECK_ADAMS_STEPS = 1000  # convergence estimate: the table recomputed with half the Adams steps ...
CHECK_QUAD_NODES = 2000  # ... and 2/3 of the quadrature nodes
GRID_POINTS = 2001  # x grid of each CDF table
TAIL_MASS = 2e-5  # the x grid must reach F < TAIL_MASS on the left and F > 1 - TAIL_MASS on the right
CONVERGENCE_TOL = 5e-5  # max |F_coarse - F| accepted for a table (tests allow >= 1e-3 of CDF error)
PARAM_ORDER = ("kappa", "theta", "sigma", "rho", "alpha", "v0")


def rough_heston_cf(
    u: np.ndarray,
    maturity: float,
    kappa: float,
    theta: float,
    sigma: float,
    rho: float,
    alpha: float,
    v0: float,
    adams_steps: int = ADAMS_STEPS,
) -> np.ndarray:
    """E[exp(i u X_T)] for complex ``u`` by the fractional Adams scheme on the Riccati-Volterra equation.

    h = I^alpha F(h),  F(h) = -(u^2 + i u)/2 + (i rho sigma u - kappa) h + sigma^2 h^2 / 2,
    log phi = kappa theta int_0^T h(s) ds + v0 int_0^T F(h(s)) ds      (since I^(1-alpha) h = I^1 F(h)).
    Values that overflow the explicit predictor (huge |u|, where |phi| is negligible anyway) are returned as 0.
    """
    u = np.atleast_1d(np.asarray(u, dtype=complex))
    n = adams_steps
    step = maturity / n
    const = -0.5 * (u * u + 1j * u)
    linear = 1j * rho * sigma * u - kappa
    quad = 0.5 * sigma**2

    def riccati(h: np.ndarray) -> np.ndarray:
        return const + (linear + quad * h) * h

    lags = np.arange(n + 2, dtype=float)
    pred_scale = step**alpha / gamma_fn(alpha + 1.0)
    corr_scale = step**alpha / gamma_fn(alpha + 2.0)
    # predictor weight for lag m = k - j (rectangle rule on the fractional integral)
    pred_w = pred_scale * ((lags + 1.0) ** alpha - lags**alpha)
    # corrector weight for lag m = k - j, 1 <= j <= k (product trapezoid rule)
    corr_w = corr_scale * ((lags + 2.0) ** (alpha + 1) + lags ** (alpha + 1) - 2.0 * (lags + 1.0) ** (alpha + 1))

    h = np.zeros((u.size, n + 1), dtype=complex)
    f_h = np.zeros_like(h)
    f_h[:, 0] = riccati(h[:, 0])
    with np.errstate(all="ignore"):
        for k in range(n):
            lag = k - np.arange(k + 1)  # lag of node j = 0..k relative to k
            h_pred = f_h[:, : k + 1] @ pred_w[lag]
            acc = f_h[:, 0] * corr_scale * (k ** (alpha + 1) - (k - alpha) * (k + 1.0) ** alpha)
            if k > 0:
                acc = acc + f_h[:, 1 : k + 1] @ corr_w[lag[1:]]
            h[:, k + 1] = acc + corr_scale * riccati(h_pred)
            f_h[:, k + 1] = riccati(h[:, k + 1])

        def trapezoid(y: np.ndarray) -> np.ndarray:
            return step * (y[:, 1:-1].sum(axis=1) + 0.5 * (y[:, 0] + y[:, -1]))

        phi = np.exp(kappa * theta * trapezoid(h) + v0 * trapezoid(f_h))
    return np.where(np.isfinite(phi), phi, 0.0)


def heston_cf_closed_form(
    u: np.ndarray, maturity: float, kappa: float, theta: float, sigma: float, rho: float, v0: float
) -> np.ndarray:
    """Classical Heston CF of log(S_T/S_0), r = 0 (Albrecher et al. 'little trap' form)."""
    u = np.asarray(u, dtype=complex)
    beta = kappa - 1j * rho * sigma * u
    d = np.sqrt(beta**2 + sigma**2 * (u * u + 1j * u))
    g = (beta - d) / (beta + d)
    e = np.exp(-d * maturity)
    c_term = kappa * theta / sigma**2 * ((beta - d) * maturity - 2.0 * np.log((1.0 - g * e) / (1.0 - g)))
    d_term = (beta - d) / sigma**2 * (1.0 - e) / (1.0 - g * e)
    return np.exp(c_term + d_term * v0)


def u_max(maturity: float, kappa: float, theta: float, sigma: float, rho: float, alpha: float, v0: float) -> float:
    """Truncation of the Fourier integrals: |phi(u)| decays like exp(-r u) (cf. Gatheral's amax rule); |phi| < 1e-10."""
    rate = np.sqrt(1.0 - rho**2) / sigma * min(v0, theta) * maturity ** (1.0 - alpha) / gamma_fn(2.0 - alpha)
    return float(min(-np.log(1e-10) / rate, 2000.0))


def gauss_legendre(upper: float, nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Legendre nodes and weights on [0, upper]."""
    x, w = np.polynomial.legendre.leggauss(nodes)
    return 0.5 * upper * (x + 1.0), 0.5 * upper * w


def params_tuple(params: dict[str, float]) -> tuple[float, ...]:
    return tuple(params[name] for name in PARAM_ORDER)


def calls_lewis(log_strikes: np.ndarray, maturity: float, params: tuple[float, ...], adams_steps: int) -> np.ndarray:
    """Call prices C(K = e^k) / S_0 (r = 0) by the Lewis formula with the Adams CF."""
    uu, ww = gauss_legendre(u_max(maturity, *params), QUAD_NODES)
    phi = rough_heston_cf(uu - 0.5j, maturity, *params, adams_steps=adams_steps)
    integrand = np.real(np.exp(-1j * np.outer(log_strikes, uu)) * phi) / (uu**2 + 0.25)
    return 1.0 - np.exp(np.asarray(log_strikes) / 2.0) / np.pi * (integrand @ ww)


def gil_pelaez_nodes(
    maturity: float, params: tuple[float, ...], adams_steps: int, quad_nodes: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Quadrature nodes, weights and CF values for the Gil-Pelaez integral (the expensive part, done once)."""
    uu, ww = gauss_legendre(u_max(maturity, *params), quad_nodes)
    return uu, ww, rough_heston_cf(uu.astype(complex), maturity, *params, adams_steps=adams_steps)


def cdf_gil_pelaez(x: np.ndarray, nodes: tuple[np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
    """P(X_T <= x) by Gil-Pelaez inversion, given ``gil_pelaez_nodes``."""
    uu, ww, phi = nodes
    out = np.empty(len(x))
    for start in range(0, len(x), 256):  # bounded memory: (256, quad_nodes) complex at a time
        xs = x[start : start + 256]
        integrand = np.imag(np.exp(-1j * np.outer(xs, uu)) * phi) / uu
        out[start : start + 256] = 0.5 - (integrand @ ww) / np.pi
    return out


def check_classical_heston() -> dict[str, float]:
    """alpha = 1 must reproduce classical Heston: COS benchmark price and the closed-form CF."""
    # Fang & Oosterlee (2008): S = K = 100, T = 1, r = q = 0; reference 5.785155450
    kappa, theta, sigma, rho, v0 = 1.5768, 0.0398, 0.5751, -0.5711, 0.0175
    params = (kappa, theta, sigma, rho, 1.0, v0)
    price = 100.0 * float(calls_lewis(np.array([0.0]), 1.0, params, ADAMS_STEPS)[0])
    assert abs(price - 5.785155450) < 2e-5, f"COS benchmark not reproduced: {price:.9f} vs 5.785155450"
    u = np.linspace(0.1, 20.0, 60) - 0.5j
    adams = rough_heston_cf(u, 1.0, *params, adams_steps=ADAMS_STEPS)
    closed = heston_cf_closed_form(u, 1.0, kappa, theta, sigma, rho, v0)
    cf_err = float(np.max(np.abs(adams - closed)))
    assert cf_err < 2e-6, f"Adams CF at alpha=1 differs from the closed-form Heston CF by {cf_err:.2e}"
    return {"cos_benchmark_price": price, "cos_benchmark_reference": 5.785155450, "max_abs_cf_error_alpha1": cf_err}


def check_set_a_calls() -> dict[str, float]:
    """Set A, T = 1: the Adams calls documented in the reference (n = 1000)."""
    calls = calls_lewis(np.array([-0.1, 0.0, 0.1]), 1.0, params_tuple(PARAMETER_SETS["A"]), ADAMS_STEPS)
    expected = np.array([0.11616334, 0.04538724, 0.00638382])
    err = float(np.max(np.abs(calls - expected)))
    assert err < 2e-7, f"set A calls {calls} differ from the documented {expected} by {err:.2e}"
    return {"set_A_T1_calls_k_-0.1_0_0.1": calls.tolist(), "max_abs_error_vs_documented": err}


# Set A quantiles of X_T documented in models.md §2.3 (item 4), from an independent inversion of the same CF.
DOCUMENTED_QUANTILES = {
    "levels": [0.001, 0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99, 0.999],
    0.25: [-0.51863, -0.28574, -0.13844, -0.02195, 0.01472, 0.03813, 0.07274, 0.10712, 0.16045],
    1.0: [-1.11235, -0.60435, -0.28915, -0.04739, 0.02673, 0.07315, 0.14010, 0.20616, 0.30933],
}


def check_documented_quantiles(set_name: str, maturity: float, x: np.ndarray, cdf: np.ndarray) -> None:
    """Set A tables must return the documented quantiles to 2e-5 (their 5-decimal rounding plus inversion error)."""
    if set_name != "A" or maturity not in DOCUMENTED_QUANTILES:
        return
    quantiles = np.interp(DOCUMENTED_QUANTILES["levels"], cdf, x)
    err = float(np.max(np.abs(quantiles - np.asarray(DOCUMENTED_QUANTILES[maturity]))))
    assert err < 2e-5, f"set A T={maturity}: quantiles {quantiles} differ from the documented ones by {err:.1e}"


def x_grid(maturity: float, params: dict[str, float], nodes: tuple[np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
    """A uniform grid from where F = TAIL_MASS to where F = 1 - TAIL_MASS (located on a wide coarse grid)."""
    scale = np.sqrt(max(params["v0"], params["theta"]) * maturity)
    coarse = np.linspace(-40.0 * scale, 15.0 * scale, 2201)
    cdf = cdf_gil_pelaez(coarse, nodes)
    assert cdf[0] < TAIL_MASS / 10 and cdf[-1] > 1.0 - TAIL_MASS / 10, "coarse grid too narrow"
    lo = coarse[np.nonzero(cdf < TAIL_MASS)[0][-1]]
    hi = coarse[np.nonzero(cdf > 1.0 - TAIL_MASS)[0][0]]
    return np.linspace(lo, hi, GRID_POINTS)


def make_table(set_name: str, maturity: float) -> dict[str, object]:
    """CDF table at the fine resolution (TABLE_*); its change against the coarse one (CHECK_*) is the error estimate."""
    params = PARAMETER_SETS[set_name]
    p = params_tuple(params)
    nodes = gil_pelaez_nodes(maturity, p, TABLE_ADAMS_STEPS, TABLE_QUAD_NODES)
    x = x_grid(maturity, params, nodes)
    cdf = cdf_gil_pelaez(x, nodes)
    tails_ok = cdf[0] < 1.01 * TAIL_MASS and cdf[-1] > 1.0 - 1.01 * TAIL_MASS
    assert tails_ok, f"set {set_name} T={maturity}: grid too narrow"
    assert np.all(np.diff(cdf) > -1e-7), f"set {set_name} T={maturity}: CDF not monotone"
    # convergence: the same CDF with half the Adams steps and 2/3 of the quadrature nodes
    cdf_coarse = cdf_gil_pelaez(x, gil_pelaez_nodes(maturity, p, CHECK_ADAMS_STEPS, CHECK_QUAD_NODES))
    conv = float(np.max(np.abs(cdf_coarse - cdf)))
    assert conv < CONVERGENCE_TOL, f"set {set_name} T={maturity}: not converged ({conv:.2e})"
    cdf_mono = np.clip(np.maximum.accumulate(cdf), 0.0, 1.0)
    check_documented_quantiles(set_name, maturity, x, cdf_mono)
    levels = (np.arange(512) + 0.5) / 512
    quantiles = np.interp(levels, cdf_mono, x)
    return {
        "set": set_name,
        "params": params,
        "maturity": maturity,
        "x": [round(float(v), 8) for v in x],
        "cdf": [round(float(v), 9) for v in cdf_mono],
        "max_abs_cdf_change_vs_coarse": conv,
        "quantile_levels": "p_j = (j + 0.5) / 512",
        "quantiles_512": [round(float(v), 7) for v in quantiles],
    }


def main() -> None:
    start = time.perf_counter()
    checks = {"classical_heston": check_classical_heston(), "set_A_calls": check_set_a_calls()}
    print("checks passed:", json.dumps(checks), flush=True)
    tables = []
    for set_name, maturity in TABLES:
        t0 = time.perf_counter()
        tables.append(make_table(set_name, maturity))
        conv = tables[-1]["max_abs_cdf_change_vs_coarse"]
        print(f"set {set_name} T={maturity}: {time.perf_counter() - t0:.1f} s, convergence {conv:.1e}", flush=True)
    payload = {
        "description": "CDF of X_T = log(S_T/S_0) of the continuous rough Heston model (Adams CF + Gil-Pelaez)",
        "generator": "tests/models/make_rough_heston_reference.py",
        "settings": {
            "adams_steps": TABLE_ADAMS_STEPS,
            "quadrature": f"Gauss-Legendre, {TABLE_QUAD_NODES} nodes on [0, u_max], u_max: |phi| < 1e-10 (cap 2000)",
            "check_adams_steps": CHECK_ADAMS_STEPS,
            "check_quad_nodes": CHECK_QUAD_NODES,
            "grid_points": GRID_POINTS,
            "python": platform.python_version(),
            "numpy": np.__version__,
            "scipy": scipy.__version__,
            "runtime_s": round(time.perf_counter() - start, 1),
        },
        "checks": checks,
        "tables": tables,
    }
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=OUTPUT.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        json.dump(payload, fh, indent=1)
        fh.write("\n")
    os.chmod(tmp, 0o644)
    os.replace(tmp, OUTPUT)
    print(f"wrote {OUTPUT} in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    sys.exit(main())
