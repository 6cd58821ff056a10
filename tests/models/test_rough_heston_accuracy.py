"""Rough Heston accuracy references (issue 9): the Fourier reference tables and the iVi scheme's exact CF.

* tests/models/data/rough_heston_quantiles.json (make_rough_heston_quantiles.py): quantiles of the continuous model at
  1, 5, 21, 252 days for corner sets of the production ranges; here: its recorded checks, and one table recomputed.
* tests/models/rough_heston_fourier.py: ivi_log_cf, the exact characteristic function of the iVi scheme on a grid.
  Against Monte Carlo of the production model (density_engine.models.rough_heston) it must agree within Monte Carlo
  error *without any discretisation budget*: that is what lets the accuracy measurements of docs/accuracy.md use it
  in place of simulation. The order statistics of the production model must match the quantiles of that CF likewise.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from density_engine.engine.paths import simulate_grid
from density_engine.engine.quantiles import order_statistic_indices, sample_quantiles
from density_engine.models.rough_heston import RoughHeston
from density_engine.models.rough_heston_fourier import (
    AdamsSolver,
    ReferenceCDF,
    RHParams,
    build_cdf,
    find_bracket,
    ivi_log_cf,
    table_levels,
    uniform_grid,
)

DATA = Path(__file__).parent / "data" / "rough_heston_quantiles.json"
PUBLISHED = (np.arange(512) + 0.5) / 512
K_SIGMA = 4.5  # per-comparison bound; the Bonferroni false-alarm rate is stated per test


def reference_payload() -> dict:
    return json.loads(DATA.read_text())


def reference_case(name: str, days: int) -> dict:
    for case in reference_payload()["cases"]:
        if case["name"] == name and case["days"] == days:
            return case
    raise KeyError((name, days))


def simulate(params: dict[str, float], maturity: float, steps: int, paths: int, seed: int) -> np.ndarray:
    """X_T of the production iVi model on a uniform ``steps``-step grid to ``maturity`` (float64)."""
    model = RoughHeston(dt=maturity, substeps=steps, **params)
    values = simulate_grid(model, model.fine_grid(steps), [steps], paths, seed, 0, dtype=torch.float64)["log_return"]
    return values[0].numpy()


def test_reference_file_records_its_checks() -> None:
    payload = reference_payload()
    assert len(payload["cases"]) >= 24
    assert {c["days"] for c in payload["cases"]} == {1, 5, 21, 252}
    levels = table_levels()
    for case in payload["cases"]:
        q = np.asarray(case["quantiles"])
        assert q.shape == levels.shape and np.all(np.diff(q) > 0), case["name"]
        assert case["check_max_abs_cdf"] < 1e-5 and case["interpolation_max_abs_cdf"] < 1e-5, case["name"]
    checks = payload["checks"]
    assert checks["classical_heston"]["max_abs_cf_error_T1"] < 1e-7
    assert abs(checks["classical_heston"]["cos_price_adams"] - 5.785155450) < 2e-6
    assert max(abs(d) for d in checks["set_A_calls_T1"]["minus_documented"]) < 5e-7
    assert all(t["max_abs_cdf_of_old_quantiles"] < 6e-5 for t in checks["old_reference_tables"])
    sets = payload["parameter_sets"]
    corners = [s["params"] for s in sets.values()]
    assert any(p["alpha"] == 0.55 and p["rho"] == -0.95 and p["sigma"] == 1.0 for p in corners)
    assert any(p["alpha"] == 0.95 for p in corners) and any(p["rho"] == 0.0 for p in corners)
    assert {0.1, 3.0} <= {p["kappa"] for p in corners}


@pytest.mark.parametrize(("name", "days"), [("mid", 21), ("feller_rough", 5)])
def test_stored_table_is_reproduced_by_the_code(name: str, days: int) -> None:
    """A table recomputed with a coarser solver (n = 200 graded Adams steps instead of 1600) agrees with the stored
    quantiles within the tables' stated accuracy, 1e-5 (the solver converges at second order: n = 200 is expected
    within ~64x the n = 1600 error, < 5e-6 here; measured 3e-7 and 4.8e-6)."""
    case = reference_case(name, days)
    p = RHParams.of(case["params"])
    solver = AdamsSolver(case["maturity"], p.alpha, 200)
    build = build_cdf(lambda u: solver.log_cf(u, p), tuple(case["bracket"]), case["sd"])
    err = np.max(np.abs(build.cdf.cdf(np.asarray(case["quantiles"])) - table_levels()))
    assert err < 1e-5, err


def test_reference_cdf_interpolation_is_exact_at_the_nodes() -> None:
    case = reference_case("A", 1)
    ref = ReferenceCDF(table_levels(), case["quantiles"])
    assert np.allclose(ref(np.asarray(case["quantiles"])), table_levels(), rtol=0, atol=1e-12)
    assert ref(np.array([-10.0]))[0] < 1e-6 and ref(np.array([10.0]))[0] > 1 - 1e-6


CF_CASES = [
    # (parameters, days, fine steps): a very rough Feller-violating corner at 1 day with 3 steps; set A, 5 days, 10
    ({"kappa": 0.1, "theta": 0.01, "sigma": 1.0, "rho": -0.95, "alpha": 0.55, "v0": 0.01}, 1, 3),
    ({"kappa": 0.3, "theta": 0.02, "sigma": 0.3, "rho": -0.7, "alpha": 0.6, "v0": 0.02}, 5, 10),
]


@pytest.mark.parametrize(("params", "days", "steps"), CF_CASES)
def test_ivi_characteristic_function_is_exact_for_the_production_scheme(
    params: dict[str, float], days: int, steps: int
) -> None:
    """E exp(i u X) of 2^17 production paths vs ivi_log_cf at 4 frequencies (real and imaginary parts, 8 comparisons,
    4.5 se each: false-alarm rate < 1e-4). The continuous CF is far outside (checked: a wrong CF is rejected)."""
    maturity = days / 252.0
    x = simulate(params, maturity, steps, 1 << 17, seed=11)
    p = RHParams.of(params)
    u = np.array([0.5, 1.0, 2.0, 4.0]) / x.std()
    waves = np.exp(1j * np.outer(u, x))
    mc, se_re, se_im = waves.mean(1), waves.real.std(1) / math.sqrt(x.size), waves.imag.std(1) / math.sqrt(x.size)
    exact = np.exp(ivi_log_cf(u, uniform_grid(maturity, steps), p))
    assert np.all(np.abs(mc.real - exact.real) < K_SIGMA * se_re), (mc - exact, se_re)
    assert np.all(np.abs(mc.imag - exact.imag) < K_SIGMA * se_im), (mc - exact, se_im)
    continuous = np.exp(AdamsSolver(maturity, p.alpha, 200).log_cf(u, p))
    assert np.any(np.abs(mc.real - continuous.real) > K_SIGMA * se_re), "test cannot tell the schemes apart"


def test_production_order_statistics_match_the_exact_scheme_quantiles() -> None:
    """The 512 order statistics of 2^17 production paths (8 fine steps to 5 days, the rough Feller-violating set)
    against the quantiles of the scheme's exact CF: |F_N(q_hat) - E F(X_(k+1))| <= 4.5 Beta sd at every level (no
    discretisation budget; Bonferroni false-alarm rate 512 * P(|Z| > 4.5) = 3.5e-3)."""
    params = {"kappa": 0.1, "theta": 0.09, "sigma": 0.5, "rho": -0.95, "alpha": 0.55, "v0": 0.04}
    maturity, steps, paths = 5 / 252.0, 8, 1 << 17
    x = torch.from_numpy(simulate(params, maturity, steps, paths, seed=3))
    p = RHParams.of(params)
    grid = uniform_grid(maturity, steps)
    scale = math.sqrt(p.v0 * maturity)
    bracket = find_bracket(lambda u: ivi_log_cf(u, grid, p), scale, tail_mass=1e-5, cf_tol=1e-9)
    cdf = build_cdf(lambda u: ivi_log_cf(u, grid, p), bracket, scale, cf_tol=1e-9).cdf
    q_hat = sample_quantiles(x.view(1, -1), 512)[0].numpy()
    beta_mean = (order_statistic_indices(paths, 512) + 1.0) / (paths + 1.0)
    beta_sd = np.sqrt(beta_mean * (1 - beta_mean) / (paths + 2.0))
    dev = np.abs(cdf.cdf(q_hat) - beta_mean)
    assert np.all(dev < K_SIGMA * beta_sd), (dev / beta_sd).max()
    # the continuous model's reference is measurably different at this step count (the scheme's bias)
    ref = reference_case("feller_rough", 5)
    ref_cdf = ReferenceCDF(table_levels(), ref["quantiles"])
    assert np.max(np.abs(ref_cdf(q_hat) - beta_mean) / beta_sd) > 6
