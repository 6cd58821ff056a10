"""The per-horizon time-grid policy (models/time_grid.py): validation, grids, path counts, streams; and the rough
Bergomi kernel's nested coarse grids."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from density_engine.engine.paths import simulate_grid
from density_engine.models import get_model_class
from density_engine.models.base import TimeGrid
from density_engine.models.time_grid import OPTIMAL_PATH_SPLIT, PER_DAY_STREAM, TimeGridError, TimeGridPolicy

RH = get_model_class("rough_heston")
RB = get_model_class("rough_bergomi")
GJR = get_model_class("gjrgarch_normalized")


def test_defaults_are_the_measured_policies() -> None:
    rh, rb = RH.time_grid_policy(), RB.time_grid_policy()
    assert (rh.steps, rh.steps_per_day, rh.richardson) == (44, 0, "independent")
    assert rh.path_split == pytest.approx((5.4142, 3.8284), abs=1e-4)
    assert 4 / rh.path_split[0] + 1 / rh.path_split[1] == pytest.approx(1.0)  # the Monte Carlo error of num_paths
    assert (rb.steps, rb.steps_per_day, rb.scheme, rb.richardson) == (128, 2, "cell", "none")
    assert RB.time_grid_policy({"scheme": "hybrid"}).richardson == "coupled"  # each scheme's own default
    assert [rb.fine_steps(d) for d in (1, 63, 64, 65, 126, 252)] == [128, 128, 128, 132, 252, 504]
    assert GJR.time_grid_policy() is None


@pytest.mark.parametrize(
    ("model", "values", "message"),
    [
        (
            RH,
            {"richardson": "coupled"},
            "richardson: 'coupled' is not allowed for this model; allowed: independent, none",
        ),
        (RB, {"richardson": "independent"}, "allowed: coupled, none"),
        (RH, {"steps": 63}, "steps: 63 must be a multiple of 2 with richardson independent"),
        (RB, {"steps": 130}, "steps: 130 must be a multiple of 4"),
        (RH, {"steps": 8}, "steps: 8 is too coarse (at least 16"),
        (RB, {"steps": 16}, "steps: 16 is too coarse (at least 32"),
        (RH, {"steps": True}, "steps: must be an integer >= 1, got True"),
        (RH, {"steps": "64"}, "steps: must be an integer >= 1, got '64'"),
        (RH, {"steps_per_day": -1}, "steps_per_day: must be an integer >= 0"),
        (RH, {"path_split": [2, 2]}, "path_split: [2, 2] gives a Monte Carlo variance of 2.500 x that of num_paths"),
        (RH, {"path_split": [5.0]}, "path_split: must be two numbers [a, b]"),
        (RB, {"path_split": [5.4, 3.9]}, "path_split: only used with richardson independent"),
        (RH, {"substeps": 4}, "unknown key(s) ['substeps']"),
        (RH, {"allow_coarse": "yes"}, "allow_coarse: must be true or false"),
        (GJR, {"steps": 4}, "discrete-time model without a time grid"),
    ],
)
def test_bad_settings_name_the_key(model, values: dict, message: str) -> None:
    with pytest.raises(TimeGridError) as error:
        model.time_grid_policy(values)
    assert message in str(error.value)


def test_numpy_integers_and_coarse_demos_are_accepted() -> None:
    policy = RH.time_grid_policy({"steps": np.int64(8), "allow_coarse": True})
    assert policy.steps == 8 and isinstance(policy.steps, int)


def test_runs_paths_and_streams() -> None:
    rh = RH.time_grid_policy()
    fine, half = rh.runs(5, 1000)
    assert (fine.steps, half.steps) == (44, 22)
    assert (fine.paths, half.paths) == (
        math.ceil(OPTIMAL_PATH_SPLIT[0] * 1000),
        math.ceil(OPTIMAL_PATH_SPLIT[1] * 1000),
    )
    streams = {run.stream for days in (1, 2, 5, 252) for run in rh.runs(days, 10)}
    assert len(streams) == 8 and 0 not in streams  # own streams per horizon and run; 0 is the shared-grid stream
    (coupled,) = RB.time_grid_policy({"scheme": "hybrid"}).runs(21, 1000)
    assert coupled.nested and coupled.paths == 1000 and coupled.steps == 128
    assert RB.time_grid_policy().path_steps([1, 252], 10) == 10 * (128 + 504)
    assert rh.path_steps([1], 1000) == 5415 * 44 + 3829 * 22
    assert RH.time_grid_policy().from_dict(rh.to_dict()) == rh
    rb = RB.time_grid_policy()
    assert TimeGridPolicy.from_dict(rb.to_dict(), RB.time_grid_schemes) == rb  # the scheme's rules from the model
    assert rb.grid_scheme.step_multiple == 4 and rb.fine_steps(65) == 132  # the cell scheme's nested grids
    with pytest.raises(ValueError, match="without its rules"):  # never the wrong step multiple silently
        TimeGridPolicy.from_dict(rb.to_dict()).fine_steps(65)
    assert TimeGridPolicy.from_dict(rb.to_dict()).compact() == rb.compact()  # the settings line needs no rules


def test_nested_coarse_grids_are_left_point_schemes() -> None:
    """The every-2nd and every-4th-point log-returns of the rough Bergomi kernel use the variance at their own left
    points: exp(X) is then a martingale in discrete time, E[exp X_T] = 1 on every grid (a variance from inside a
    coarse step would break it); and the coarse grids converge to the fine one as the step shrinks."""
    model = RB(eta=1.9, rho=-0.9, hurst=0.07, xi0=0.235**2, dt=1 / 252)
    outputs = ("log_return", "log_return_half", "log_return_quarter")
    n, paths = 32, 200_000
    values = simulate_grid(
        model, TimeGrid.uniform(n, 0.25 / n), [n], paths, 5, 0, stream=9, outputs=outputs, dtype=torch.float64
    )
    for name in outputs:
        x = values[name][0].numpy()
        growth = np.exp(x)
        assert abs(growth.mean() - 1.0) < 4.5 * growth.std() / math.sqrt(paths), name
    fine, half, quarter = (values[name][0].numpy() for name in outputs)
    assert 0 < np.std(fine - half) < np.std(fine - quarter)  # coupled: the coarser grid is further away
    assert np.corrcoef(fine, half)[0, 1] > np.corrcoef(fine, quarter)[0, 1] > 0.5  # the same paths


def test_richardson_none_publishes_the_fine_grid_with_an_error_estimate() -> None:
    """Rough Bergomi without extrapolation: q_N of the fine grid, plain Monte Carlo error, and the nested N/2 grid's
    difference as its discretisation estimate (rough Heston: the exact Fourier column of q_N)."""
    from density_engine.engine.estimators import error_methods, estimate_parameter_set

    for cls, params in ((RB, {"eta": 1.9, "rho": -0.9, "hurst": 0.07, "xi0": 0.05}), (RH, {"kappa": 0.3, "theta": 0.02,
                        "sigma": 0.3, "rho": -0.7, "alpha": 0.6, "v0": 0.02})):  # fmt: skip
        policy = cls.time_grid_policy({"steps": 16, "richardson": "none", "allow_coarse": True})
        (row,) = estimate_parameter_set(cls(dt=1 / 252, **params), policy, [5], 2000, 64, 1, 0, device="cpu")
        assert row.steps == 16 and row.disc_err.max() > 0
        levels = (np.arange(64) + 0.5) / 64
        np.testing.assert_allclose(row.mc_se, np.sqrt(levels * (1 - levels) / 2000))
    hybrid = error_methods(RB, RB.time_grid_policy({"richardson": "none", "scheme": "hybrid"}))
    assert hybrid["disc_err"].startswith("|q_N - q_N/2|") and hybrid["disc_err"].endswith("r = min(3H + 1/2, 1)")
    cell = error_methods(RB, RB.time_grid_policy({}))  # the default: the cell scheme
    assert cell["disc_err"].endswith("r = 0.5 (cell-average scheme (P6v), no extrapolation)")
    assert cell["mc_se"].startswith("sqrt(p(1-p)/n)")
    coupled = error_methods(RB, RB.time_grid_policy({"scheme": "hybrid"}))
    assert coupled["disc_err"].startswith("three coupled grids") and coupled["mc_se"].startswith("batch means")


def test_horizons_on_the_per_day_step_share_one_run() -> None:
    """N = steps_per_day x days exactly: the horizon is recorded on the one per-day grid (production rough Bergomi:
    126 and 252 days), the others keep a run (and stream) of their own."""
    rb = RB.time_grid_policy()
    plan = rb.plan([1, 2, 5, 10, 21, 42, 63, 126, 252], 10)
    own, (per_day,) = plan[:-1], plan[-1:]
    assert [(run.steps, run.stream, run.records) for run in own] == [
        (128, 2 * d, ((d, 128),)) for d in (1, 2, 5, 10, 21, 42, 63)
    ]
    assert (per_day.steps, per_day.stream, per_day.records) == (504, PER_DAY_STREAM, ((126, 252), (252, 504)))
    assert per_day.per_day and per_day.step_years(1 / 252, 2) == 1 / 504
    assert rb.path_steps([1, 2, 5, 10, 21, 42, 63, 126, 252], 10) == 10 * (7 * 128 + 504)  # was 7 x 128 + 252 + 504
    assert rb.plan([252, 126], 10) == rb.plan([126, 252], 10)  # the per-day grid does not depend on the order
    # independent Richardson: the N/2 grids of the per-day horizons share their own run (step 2 / steps_per_day day)
    rh = RH.time_grid_policy({"steps": 16, "steps_per_day": 4})
    runs = rh.plan([8, 2, 4], 100)
    assert [(run.steps, run.index, run.stream, run.records) for run in runs] == [
        (16, 0, 4, ((2, 16),)),
        (8, 1, 5, ((2, 8),)),
        (32, 0, PER_DAY_STREAM, ((4, 16), (8, 32))),
        (16, 1, PER_DAY_STREAM - 1, ((4, 8), (8, 16))),
    ]
    assert runs[3].step_years(1 / 252, 4) == 2 / 1008
    assert RH.time_grid_policy().plan([1, 5, 252], 10) == [
        run for days in (1, 5, 252) for run in RH.time_grid_policy().runs(days, 10)
    ]  # production rough Heston (steps_per_day 0): every horizon on its own grids, streams unchanged
    with pytest.raises(TimeGridError, match="horizon 1073741824 days is outside"):
        rb.plan([2**30], 10)
