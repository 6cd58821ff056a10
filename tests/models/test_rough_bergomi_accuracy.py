"""Rough Bergomi accuracy references (issue 9): the exact-simulation machinery and the stored reference table.

* tests/models/rough_bergomi_exact.py: covariances of the exact joint Gaussian simulation (point values and cell
  averages of the Volterra process, with the Brownian increments), checked against brute-force quadrature, and the
  exact moment identities of the left-point rule on exact draws.
* tests/models/data/rough_bergomi_quantiles.json (make_rough_bergomi_quantiles.py): its recorded accuracy.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.integrate import quad

from tests.models.rough_bergomi_exact import (
    RBParams,
    cell_average_covariance,
    conditional_moments,
    factor,
    joint_cell_covariance,
    joint_covariance,
    mixture_cdf,
    volterra_cov,
    y_conditional_factor,
    y_conditional_moments,
)

DATA = Path(__file__).parent / "data" / "rough_bergomi_quantiles.json"


def brute_force_point_cov(s: float, t: float, hurst: float) -> float:
    """2H int_0^s r^a (t - s + r)^a dr (r = s - u, s < t) by adaptive quadrature with the algebraic weight r^a."""
    a = hurst - 0.5
    value, _ = quad(lambda r: (t - s + r) ** a, 0.0, s, weight="alg", wvar=(a, 0.0), epsabs=0, epsrel=1e-11, limit=200)
    return 2 * hurst * value


@pytest.mark.parametrize("hurst", [0.03, 0.3])
def test_volterra_covariance_matches_quadrature(hurst: float) -> None:
    assert volterra_cov(np.array(0.3), np.array(0.3), hurst) == pytest.approx(0.3 ** (2 * hurst), rel=1e-12)
    for s, t in [(0.1, 0.1001), (0.05, 0.9), (1e-4, 2e-4)]:
        assert float(volterra_cov(np.array(s), np.array(t), hurst)) == pytest.approx(
            brute_force_point_cov(s, t, hurst), rel=1e-6
        )


@pytest.mark.parametrize("hurst", [0.03, 0.3])
def test_joint_covariances_against_brute_force_averages(hurst: float) -> None:
    """Cell averages of Y and their covariance with dW: against midpoint averages of the point covariance (the
    diagonal cells, where the point covariance has a cusp, to the midpoint rule's accuracy)."""
    n, maturity, m = 4, 1.0, 300
    dt = maturity / n
    a = hurst - 0.5
    cov = joint_cell_covariance(n, maturity, hurst)
    tt = (np.arange(n * m) + 0.5) * dt / m
    point = volterra_cov(tt[:, None], tt[None, :], hurst)
    np.fill_diagonal(point, tt ** (2 * hurst))
    averaged = point.reshape(n, m, n, m).mean((1, 3))
    assert np.allclose(cov[n:, n:], averaged, rtol=0, atol=3e-3)
    off_diagonal = ~np.eye(n, dtype=bool)
    assert np.allclose(cov[n:, n:][off_diagonal], averaged[off_diagonal], rtol=1e-4, atol=0)
    tj = np.arange(n) * dt
    for i in range(n):
        t = tt[i * m : (i + 1) * m][:, None]
        first = np.clip(t - tj, 0, None) ** (a + 1)
        second = np.clip(t - np.minimum(t, tj + dt), 0, None) ** (a + 1)
        expected = (math.sqrt(2 * hurst) / (a + 1) * (first - second)).mean(0)
        assert np.allclose(cov[n + i, :n], expected, rtol=1e-4, atol=1e-9)
    point_cov = joint_covariance(n, maturity, hurst)
    assert np.all(np.linalg.eigvalsh(point_cov) > 0) and np.all(np.linalg.eigvalsh(cov) > 0)
    assert np.allclose(cell_average_covariance(n, maturity, hurst), cov[n:, n:])


def test_left_point_rule_on_exact_draws_keeps_the_exact_identities() -> None:
    """E[V_t] = xi0, E[X] = -xi0 T/2 and E[exp X] = 1 on every nested grid (the left-point rule is a martingale and
    the compensator t^2H is the exact variance); 2^15 antithetic paths, 4.5 standard errors."""
    p = RBParams(eta=1.9, rho=-0.9, hurst=0.07, xi0=0.235**2)
    n, maturity = 32, 5 / 252
    fac = torch.from_numpy(factor(joint_covariance(n, maturity, p.hurst), "cholesky"))
    z = torch.randn((1 << 14, 2 * n - 1), dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    z = torch.cat([z, -z])
    cm = conditional_moments(z, fac, n, maturity, p, strides=(4, 2, 1))
    x_mean = cm.mean.mean(1).numpy()
    exp_x = torch.exp(cm.mean + 0.5 * cm.sd**2)  # E[exp X | W]
    assert np.allclose(x_mean, -0.5 * p.xi0 * maturity, atol=4.5 * float(cm.mean.std()) / math.sqrt(z.shape[0]))
    pair = 0.5 * (exp_x[:, : 1 << 14] + exp_x[:, 1 << 14 :])
    se = pair.std(1) / math.sqrt(pair.shape[1])
    assert torch.all((pair.mean(1) - 1).abs() < 4.5 * se), (pair.mean(1) - 1, se)


def test_y_conditional_estimator_agrees_with_the_w_conditional_one() -> None:
    """The hard-corner estimator (dW integrated out given the Volterra path) and the W-conditional one estimate the same
    left-point CDF on every nested grid (independent draws, 4.5 combined standard errors), the Y-conditional one with
    less noise; and E[exp X] = 1 holds under it (exact identity)."""
    p = RBParams(eta=3.0, rho=-0.95, hurst=0.03, xi0=0.04)
    n, maturity, half = 16, 1 / 252, 1 << 13
    strides = (4, 2, 1)
    gen = torch.Generator().manual_seed(5)
    zw = torch.randn((half, 2 * n - 1), dtype=torch.float64, generator=gen)
    zy = torch.randn((half, n - 1), dtype=torch.float64, generator=gen)
    fac_w = torch.from_numpy(factor(joint_covariance(n, maturity, p.hurst), "cholesky"))
    cm_w = conditional_moments(torch.cat([zw, -zw]), fac_w, n, maturity, p, strides)
    cm_y = y_conditional_moments(torch.cat([zy, -zy]), y_conditional_factor(n, maturity, p.hurst), maturity, p, strides)
    x = torch.tensor([-0.02, -0.01, -0.005, 0.0, 0.003, 0.006])

    def pair_means(cm):  # antithetic pair means of Phi((x - m)/s): (grids, pairs, x)
        per_path = torch.special.ndtr((x[None, None, :] - cm.mean[..., None]) / cm.sd[..., None])
        return 0.5 * (per_path[:, :half] + per_path[:, half:])

    w, y = pair_means(cm_w), pair_means(cm_y)
    se_w, se_y = w.std(1) / math.sqrt(half), y.std(1) / math.sqrt(half)
    diff = (w.mean(1) - y.mean(1)).abs()
    assert torch.all(diff < 4.5 * torch.sqrt(se_w**2 + se_y**2)), (diff, se_w, se_y)
    assert torch.allclose(y.mean(1), mixture_cdf(x, cm_y.mean, cm_y.sd), atol=1e-12)
    assert float(se_y.max()) < 0.7 * float(se_w.max())
    exp_x = torch.exp(cm_y.mean + 0.5 * cm_y.sd**2)
    pair = 0.5 * (exp_x[:, :half] + exp_x[:, half:])
    assert torch.all((pair.mean(1) - 1).abs() < 4.5 * pair.std(1) / math.sqrt(half)), pair.mean(1)


def test_reference_file_records_its_accuracy() -> None:
    if not DATA.exists():
        pytest.skip("rough Bergomi reference not generated yet")
    payload = json.loads(DATA.read_text())
    assert payload["cases"], "no cases"
    levels = np.asarray(payload["table_levels"])
    for case in payload["cases"]:
        q = np.asarray(case["quantiles"])
        assert q.shape == levels.shape and np.all(np.diff(q) > 0), case["name"]
        assert 0 < case["se_max"] <= case["accuracy"] and case["residual_max"] <= case["accuracy"]
        assert case["days"] in (1, 5, 21, 252) and case["paths"] >= 1 << 18
    params = [s["params"] for s in payload["parameter_sets"].values()]
    assert {0.5, 3.0} <= {p["eta"] for p in params} and {0.03, 0.3} <= {p["hurst"] for p in params}
    assert {-0.95, -0.3} <= {p["rho"] for p in params}
