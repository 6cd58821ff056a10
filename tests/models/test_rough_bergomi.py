"""Rough Bergomi (hybrid scheme) against exact discrete-time identities and published Monte Carlo values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from density_engine.engine.paths import simulate_grid, simulate_horizons
from density_engine.models import get_model_class
from density_engine.models.rough_bergomi import hybrid_weights, scheme_variance
from tests.models.conftest import RB, mean_and_se

RBergomi = get_model_class("rough_bergomi")
T = 0.25


@pytest.mark.parametrize(
    ("rho", "substeps", "dtype"),
    [(-0.9, 1, torch.float64), (0.0, 1, torch.float64), (-0.5, 3, torch.float64), (-0.9, 1, torch.float32)],
)
def test_martingale_and_mean_log_return(rho: float, substeps: int, dtype: torch.dtype) -> None:
    """E[exp(X_t)] = 1 exactly (variance at the left point) and E[X_t] = -xi0 t / 2 exactly (compensator = the
    scheme's own Var(Y)). 100k paths; tolerance 4.5 sample standard errors per horizon (3 horizons). Also in float32,
    the production dtype: its rounding (~1e-7 per step, ~1e-6 over 26 steps) is far below the standard error (~1e-3)."""
    steps = 26
    m = RBergomi(dt=T / steps, substeps=substeps, **{**RB, "rho": rho})
    horizons = [1, 13, 26]
    x = simulate_horizons(m, horizons, 100_000, seed=21, dtype=dtype).double().numpy()
    mean_exp, se_exp = mean_and_se(np.exp(x))
    assert np.all(np.abs(mean_exp - 1) < 4.5 * se_exp), (mean_exp - 1, se_exp)
    mean_x, se_x = mean_and_se(x)
    exact = -RB["xi0"] * np.array(horizons) * (T / steps) / 2
    assert np.all(np.abs(mean_x - exact) < 4.5 * se_x), (mean_x, exact, se_x)


def test_expected_variance_is_xi0() -> None:
    """E[V_{t_i}] = xi0 at every grid point; tolerance 4.5 sample standard errors (4 grid points). The kernel's
    ``variance`` output after step i is V_i, the variance of step i (its left point t_i)."""
    m = RBergomi(dt=1 / 50, **RB)
    record = [1, 2, 11, 26, 50]  # V_0, V_1, V_10, V_25, V_49
    v = simulate_grid(m, m.fine_grid(50), record, 100_000, 4, 0, outputs=["variance"], dtype=torch.float64)
    v = v["variance"].numpy()
    assert np.allclose(v[0], RB["xi0"], rtol=1e-14)
    mean_v, se_v = mean_and_se(v[1:])
    assert np.all(np.abs(mean_v - RB["xi0"]) < 4.5 * se_v), (mean_v / RB["xi0"], se_v / RB["xi0"])


def test_scheme_variance_is_close_to_t_to_2h() -> None:
    """Var(Y_1) = h^(2H) exactly; later points within 0.1% of t^(2H) (models.md: 0.99953 at 312 steps)."""
    h, hurst = 0.25 / 312, 0.07
    var = scheme_variance(313, hurst, h)
    t = np.arange(313) * h
    assert var[0] == 0 and var[1] == pytest.approx(h ** (2 * hurst), rel=1e-12)
    assert np.allclose(var[1:] / t[1:] ** (2 * hurst), 1, atol=1e-3)
    assert var[312] / T ** (2 * hurst) == pytest.approx(0.99953, abs=5e-5)
    w = hybrid_weights(4, hurst, h)
    a = hurst - 0.5
    b2 = ((2 ** (a + 1) - 1) / (a + 1)) ** (1 / a)  # optimal evaluation point b*_2
    assert w[0] == w[1] == 0 and w[2] == pytest.approx((b2 * h) ** a, rel=1e-12)


def test_quantiles_match_published_step_table() -> None:
    """26 steps to T = 0.25 (models.md step table, 400k antithetic paths): q0.001 = -0.8143, q0.5 = 0.0178,
    q0.999 = 0.2928. Tolerance: 4.5 sqrt(p(1-p)(1/N + 1/N_ref)) / f(q), with f estimated from our own sample by a
    difference quotient of order statistics."""
    n = 200_000
    x = np.sort(simulate_horizons(RBergomi(dt=T / 26, **RB), [26], n, seed=8)[0].double().numpy())
    for p, ref in ((0.001, -0.8143), (0.5, 0.0178), (0.999, 0.2928)):
        q = x[int(p * n)]
        dp = 0.0005 if p != 0.5 else 0.01
        density = 2 * dp / (x[int((p + dp) * n)] - x[int((p - dp) * n)])
        tol = 4.5 * math.sqrt(p * (1 - p) * (1 / n + 1 / 400_000)) / density
        assert abs(q - ref) < tol, (p, q, ref, tol)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"hurst": 0.5}, "'hurst' must be < 0.5"),
        ({"hurst": 0.0}, "'hurst' must be > 0"),
        ({"rho": -1.01}, "'rho' must be >= -1"),
        ({"eta": 0.0}, "'eta' must be > 0"),
        ({"xi0": -0.1}, "'xi0' must be > 0"),
        ({"dt": 0.0}, "setting 'dt' must be a finite number > 0"),
        ({"substeps": 0}, "setting 'substeps' must be an integer >= 1"),
    ],
)
def test_invalid_parameters(change: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RBergomi(**{**RB, **change})
