"""Rough Bergomi, the variance-matched cell-average scheme (P6v, density_engine/models/rough_bergomi_cell.py):
its constants against the exact covariances of the cell averages, the engine's step kernel against a direct dense
implementation on the same normals, the identities it keeps, and the ``time_grid.scheme`` choice.

Its distribution error against the exact-simulation references is tested in test_pipeline_accuracy.py (production
policy) and tabulated in docs/accuracy.md 4.4 - 4.5."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from density_engine.engine.counters import DrawLayout, philox_key
from density_engine.engine.paths import load_kernel, simulate_grid
from density_engine.engine.rng import step_draws
from density_engine.models import get_model_class
from density_engine.models.base import TimeGrid
from density_engine.models.rough_bergomi_cell import NESTED_STRIDES, cell_scheme, far_weights, local_covariance
from density_engine.models.time_grid import TimeGridError
from tests.models.rough_bergomi_exact import cell_grid_constants, joint_cell_covariance

RB = get_model_class("rough_bergomi")
HARD = {"eta": 3.0, "rho": -0.95, "hurst": 0.03, "xi0": 0.04}
MP = {"eta": 1.9, "rho": -0.9, "hurst": 0.07, "xi0": 0.235**2}


@pytest.mark.parametrize("hurst", [0.03, 0.1, 0.3])
@pytest.mark.parametrize("maturity", [1 / 252, 1.0])
def test_scheme_covariances_match_the_exact_cell_averages(hurst: float, maturity: float) -> None:
    """Var(Ybar) of every nested grid within 0.5 % of the exact cell-average variance (the far field is projected on
    dW_j: what it drops is the part of a far cell's integral orthogonal to dW_j, measured 0.1 - 0.2 %); Cov(Ybar, dW)
    of the cells to 1e-6 relative (the local part by quadrature, the far part in closed form on both sides)."""
    n = 64
    scheme = cell_scheme(n, maturity / n, hurst, 2.0)
    exact = joint_cell_covariance(n, maturity, hurst)
    for stride, grid in zip(NESTED_STRIDES, scheme.grids, strict=True):
        reference = cell_grid_constants(exact, n, maturity, hurst, stride)
        np.testing.assert_allclose(grid.variance, reference.var.numpy(), rtol=5e-3)
        np.testing.assert_allclose(grid.leverage_cov, reference.cov_dw.numpy(), rtol=1e-6)
    # the far weights are the exact Cov(Ybar_i, dW_j) / h for i - j >= 2
    cross = exact[n:, :n] / (maturity / n)
    lags = np.arange(2, n)
    np.testing.assert_allclose(
        far_weights(n, hurst, maturity / n)[lags], cross[lags, 0], rtol=1e-10
    )  # rounding of the second differences


def _direct_cell_scheme(params: dict, maturity: float, z: torch.Tensor) -> torch.Tensor:
    """P6v written out densely from its definition (float64): z (4, P, n) normals; X on the grids of every 1st, 2nd
    and 4th cell (3, P)."""
    n = z.shape[2]
    h = maturity / n
    eta, rho, hurst, xi0 = params["eta"], params["rho"], params["hurst"], params["xi0"]
    factor = torch.from_numpy(np.linalg.cholesky(local_covariance(hurst, h)))
    dw, a_own, b_next = (sum(factor[r, c] * z[c] for c in range(r + 1)) for r in range(3))
    scale = math.sqrt(2 * hurst)
    far = far_weights(n, hurst, h)
    toeplitz = torch.tensor([[far[i - j] if i - j >= 2 else 0.0 for i in range(n)] for j in range(n)])
    ybar = dw @ toeplitz + scale * a_own
    ybar[:, 1:] += scale * b_next[:, :-1]
    scheme = cell_scheme(n, h, hurst, eta)
    out = []
    for stride, grid in zip(NESTED_STRIDES, scheme.grids, strict=True):
        y = ybar.reshape(-1, n // stride, stride).mean(-1)
        w = dw.reshape(-1, n // stride, stride).sum(-1)
        variance = xi0 * torch.exp(eta * y - 0.5 * eta**2 * torch.from_numpy(grid.variance))
        q = (variance * grid.width).sum(1)
        lev = torch.from_numpy(grid.damping) * variance.sqrt() * (w - 0.5 * eta * torch.from_numpy(grid.leverage_cov))
        rest = (torch.from_numpy(grid.remainder) * variance * grid.width).sum(1)
        mean = rho * lev.sum(1) - 0.5 * q
        out.append(mean + torch.sqrt((1 - rho**2) * q + rho**2 * rest) * z[3, :, -1])
    return torch.stack(out)


@pytest.mark.parametrize("params", [HARD, MP])
def test_kernel_equals_the_dense_definition_on_the_engine_normals(params: dict) -> None:
    """The engine's step kernel (Volterra history in groups of 32 steps, per-step constants, the nested grids'
    running sums) gives the dense definition's X on all three grids to rounding (float64, 72 steps: past two history
    groups)."""
    n, num_paths, seed, param_id, stream = 72, 300, 7, 3, 5
    maturity = 5 / 252
    model = RB(**params, scheme="cell")
    names = ("log_return", "log_return_half", "log_return_quarter")
    grid = TimeGrid.uniform(n, maturity / n)
    engine = simulate_grid(model, grid, [n], num_paths, seed, param_id, stream=stream, outputs=names,
                           dtype=torch.float64, compiled=False)  # fmt: skip
    layout = DrawLayout(load_kernel(model).draws)
    k0, k1 = philox_key(seed, param_id)
    paths = torch.arange(num_paths)
    z = torch.stack(
        [torch.stack(step_draws(layout, paths, i, stream, k0, k1, torch.float64)) for i in range(n)], dim=-1
    )
    direct = _direct_cell_scheme(params, maturity, z)
    for index, name in enumerate(names):
        np.testing.assert_allclose(engine[name][0].numpy(), direct[index].numpy(), rtol=0, atol=1e-12)


@pytest.mark.parametrize("params", [HARD, MP])
def test_martingale_and_expected_variance(params: dict) -> None:
    """E Vbar_i = xi0 exactly (compensator = the scheme's own variance) and E e^X = 1 (up to the scheme's 6e-6,
    docs/accuracy.md 4.4): both within 4.5 sample standard errors (float64, 100k paths, 1 and 5 days on one grid of
    5 x 32 cells)."""
    n, num_paths = 160, 100_000
    model = RB(**params, dt=1 / 252, scheme="cell")
    grid = TimeGrid.uniform(n, (5 / 252) / n)
    out = simulate_grid(model, grid, [32, n], num_paths, 1, 0, outputs=("log_return", "variance"), dtype=torch.float64)
    for row in range(2):
        growth = torch.exp(out["log_return"][row])
        se = float(growth.std()) / math.sqrt(num_paths)
        assert abs(float(growth.mean()) - 1.0) <= 4.5 * se + 6e-6, (row, float(growth.mean()), se)
        variance = out["variance"][row]
        se_v = float(variance.std()) / math.sqrt(num_paths)
        assert abs(float(variance.mean()) - params["xi0"]) <= 4.5 * se_v


def test_the_policy_scheme_selects_the_kernel_and_its_richardson_mode() -> None:
    """The workflow's default is the cell scheme without extrapolation (docs/accuracy.md 4.5: as accurate as the
    hybrid scheme with coupled Richardson or more at every measured H); ``scheme: hybrid`` brings the hybrid kernel
    and its coupled Richardson back."""
    policy = RB.time_grid_policy({})
    assert (policy.scheme, policy.richardson) == ("cell", "none")
    for hurst in (0.03, 0.3):
        model, mode = RB(**{**HARD, "hurst": hurst}).for_time_grid(policy)
        assert (model.setting_values["scheme"], mode, load_kernel(model).__name__) == (
            "cell", "none", "RoughBergomiCellKernel",
        )  # fmt: skip
    model, mode = RB(**HARD, scheme="cell").for_time_grid(RB.time_grid_policy({"scheme": "hybrid"}))
    assert (model.setting_values["scheme"], mode, load_kernel(model).__name__) == (
        "hybrid", "coupled", "RoughBergomiKernel",
    )  # fmt: skip


def test_scheme_settings_are_checked_and_keyed() -> None:
    assert RB.time_grid_policy({"scheme": "cell"}).richardson == "none"  # the cell scheme is not extrapolated
    with pytest.raises(TimeGridError, match=r"^richardson: 'coupled' is not used with scheme cell"):
        RB.time_grid_policy({"scheme": "cell", "richardson": "coupled"})
    with pytest.raises(TimeGridError, match=r"^scheme: 'left' is not a scheme of this model; allowed: cell, hybrid"):
        RB.time_grid_policy({"scheme": "left"})
    with pytest.raises(
        TimeGridError, match=r"^steps: 126 must be a multiple of 4 with richardson none and scheme cell"
    ):
        RB.time_grid_policy({"scheme": "cell", "steps": 126})
    with pytest.raises(TimeGridError, match=r"^scheme: this model has one scheme"):
        get_model_class("rough_heston").time_grid_policy({"scheme": "cell"})
    with pytest.raises(ValueError, match="setting 'scheme' must be one of hybrid, cell"):
        RB(**HARD, scheme="left")
    # the scheme is part of the chunk content (to_dict), only for models with a choice
    assert RB.time_grid_policy({"scheme": "cell"}).to_dict()["scheme"] == "cell"
    assert "scheme" not in get_model_class("rough_heston").time_grid_policy({}).to_dict()
    # odd day counts still give grids of a multiple of 4 cells (the nested grids)
    assert RB.time_grid_policy({"scheme": "cell", "steps": 32, "steps_per_day": 3}).fine_steps(21) == 64
