"""Parameter samplers: determinism, exact counts with rejection, stable param_ids, grid and file inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import qmc

from density_engine.models import get_model_class
from density_engine.workflow.samplers import (
    SamplingError,
    count_parameter_sets,
    parameter_space,
    sample_parameter_sets,
)

GARCH = "gjrgarch_normalized"
# alpha + beta + gamma * E[z^2 1{z<0}] reaches 0.12 + 0.97 + ... > 1 in part of this box: some draws are rejected.
GARCH_WIDE = {
    "seed": 5,
    "parameters": {
        "alpha": [0.02, 0.12],
        "gamma": [0.0, 0.1],
        "beta": [0.80, 0.97],
        "eta": 8.0,
        "lam": -0.1,
        "sigma0_sq": [0.5, 2.0],
    },
}


def _config(sampler: str, n_samples: int, **extra) -> dict:
    return {**GARCH_WIDE, "sampler": sampler, "n_samples": n_samples, **extra}


def _all_valid(frame: pd.DataFrame, model: str = GARCH) -> bool:
    model_cls = get_model_class(model)
    names = [c for c in frame.columns if c != "param_id"]
    for row in frame[names].itertuples(index=False):
        model_cls.check_parameters(dict(zip(names, row, strict=True)))
    return True


@pytest.mark.parametrize("sampler", ["sobol", "lhs", "random"])
def test_exactly_n_valid_sets_with_rejection_and_stable_ids(sampler: str) -> None:
    frame = sample_parameter_sets(GARCH, _config(sampler, 40))
    assert len(frame) == 40
    assert frame["param_id"].tolist() == list(range(40))
    assert list(frame.columns) == ["param_id", *get_model_class(GARCH).parameter_names()]
    assert _all_valid(frame)
    assert (frame["eta"] == 8.0).all() and (frame["lam"] == -0.1).all()
    again = sample_parameter_sets(GARCH, _config(sampler, 40))
    pd.testing.assert_frame_equal(frame, again)
    other_seed = sample_parameter_sets(GARCH, {**_config(sampler, 40), "seed": 6})
    assert not np.allclose(frame["alpha"], other_seed["alpha"])


def test_sobol_rejects_invalid_draws_and_continues_the_sequence() -> None:
    _names, ranged, fixed = parameter_space(GARCH, _config("sobol", 40))
    engine = qmc.Sobol(len(ranged), scramble=True, rng=np.random.default_rng(5))
    raw = qmc.scale(engine.random(128), [r[0] for r in ranged.values()], [r[1] for r in ranged.values()])
    model_cls = get_model_class(GARCH)
    valid = []
    for row in raw:
        params = {**fixed, **dict(zip(ranged, row, strict=True))}
        try:
            model_cls.check_parameters(params)
            valid.append(row)
        except ValueError:
            pass
    assert 40 <= len(valid) < 128, "the box must contain invalid points for this test to mean anything"
    frame = sample_parameter_sets(GARCH, _config("sobol", 40))
    np.testing.assert_allclose(frame[list(ranged)].to_numpy(), np.array(valid[:40]), rtol=0, atol=1e-15)


@pytest.mark.parametrize("sampler", ["sobol", "random"])
def test_prefix_stability_when_n_samples_grows(sampler: str) -> None:
    small = sample_parameter_sets(GARCH, _config(sampler, 13))
    large = sample_parameter_sets(GARCH, _config(sampler, 50))
    pd.testing.assert_frame_equal(small, large.iloc[:13])


def test_lhs_is_stratified_per_dimension() -> None:
    config = {"seed": 3, "sampler": "lhs", "n_samples": 20, "parameters": {"kappa": [0.0, 2.0], "theta": [0.01, 0.05]}}
    frame = sample_parameter_sets("rough_heston", config)
    strata = np.floor((frame["kappa"].to_numpy() - 0.0) / 2.0 * 20).astype(int)
    assert sorted(strata) == list(range(20))


def test_grid_cartesian_product_with_per_parameter_counts() -> None:
    config = {
        "seed": 0,
        "sampler": "grid",
        "n_samples": 6,
        "grid_points": {"kappa": 3, "theta": 2},
        "parameters": {"kappa": [0.5, 1.5], "theta": [0.02, 0.04], "sigma": 0.3, "rho": -0.5, "alpha": 0.7, "v0": 0.03},
    }
    frame = sample_parameter_sets("rough_heston", config)
    assert frame["kappa"].tolist() == [0.5, 0.5, 1.0, 1.0, 1.5, 1.5]
    assert frame["theta"].tolist() == pytest.approx([0.02, 0.04] * 3)
    with pytest.raises(SamplingError, match="n_samples is 7"):
        sample_parameter_sets("rough_heston", {**config, "n_samples": 7})
    square = {**config, "n_samples": 9}
    square.pop("grid_points")
    assert len(sample_parameter_sets("rough_heston", square)) == 9
    with pytest.raises(SamplingError, match=r"k\*\*2"):
        sample_parameter_sets("rough_heston", {**square, "n_samples": 8})


def test_grid_with_an_invalid_point_names_it() -> None:
    config = _config("grid", 4, grid_points={"alpha": 2, "beta": 2})
    config["parameters"] = {**config["parameters"], "gamma": 0.1, "sigma0_sq": 1.0}
    with pytest.raises(SamplingError, match="persistence"):
        sample_parameter_sets(GARCH, config)


def test_file_sampler(tmp_path: Path) -> None:
    csv = tmp_path / "sets.csv"
    csv.write_text("param_id,alpha,gamma,beta,eta,lam\n10,0.05,0.1,0.85,6,-0.2\n3,0.03,0.05,0.9,10,-0.1\n")
    config = {"seed": 1, "sampler": {"file": "sets.csv"}, "parameters": {"sigma0_sq": 1.0}}
    frame = sample_parameter_sets(GARCH, config, base_dir=tmp_path)
    assert frame["param_id"].tolist() == [10, 3]
    assert frame["sigma0_sq"].tolist() == [1.0, 1.0]
    assert count_parameter_sets(GARCH, config, base_dir=tmp_path) == 2
    with pytest.raises(SamplingError, match="'sigma0_sq' is missing"):
        sample_parameter_sets(GARCH, {**config, "parameters": {}}, base_dir=tmp_path)
    csv.write_text("alpha,gamma,beta,eta,lam,sigma0_sq\n0.05,0.1,0.85,6,-0.2,1\n0.10,0.1,0.95,6,-0.2,1\n")
    with pytest.raises(SamplingError, match=r"sets.csv, line 3: .*persistence"):
        sample_parameter_sets(GARCH, config, base_dir=tmp_path)


def test_example_parameter_file_in_resources(repo_root: Path) -> None:
    frame = sample_parameter_sets(GARCH, {"seed": 1, "sampler": {"file": "resources/gjrgarch_example.csv"}}, repo_root)
    assert len(frame) >= 3 and _all_valid(frame)


@pytest.mark.parametrize("model", ["gjrgarch_normalized", "rough_heston", "rough_bergomi"])
def test_batch_check_decides_like_check_parameters(model: str) -> None:
    """The samplers check whole batches with ``valid_mask``; it must accept exactly the rows check_parameters accepts
    (draws around and outside every bound, for GARCH across persistence 1 and alpha + gamma = 0)."""
    model_cls = get_model_class(model)
    rng = np.random.default_rng(17)
    n = 400
    columns = {}
    for p in model_cls.parameters:
        low, high = p.default_range
        lo = p.lower - 0.05 if np.isfinite(p.lower) else low - 1.0
        hi = p.upper + 0.05 if np.isfinite(p.upper) else high + 1.0
        columns[p.name] = rng.uniform(lo, hi, n)
    if model == GARCH:
        columns["gamma"] = rng.uniform(-0.2, 0.3, n)
        columns["beta"] = rng.uniform(0.6, 1.0, n)
        columns["eta"] = rng.uniform(1.9, 12.0, n)
        columns["eta"][:3] = [2.0, np.inf, np.nan]
    mask = model_cls.valid_mask(columns)
    expected = []
    for i in range(n):
        try:
            model_cls.check_parameters({name: float(values[i]) for name, values in columns.items()})
            expected.append(True)
        except ValueError:
            expected.append(False)
    assert 0.05 < mask.mean() < 0.95, "the draws must mix valid and invalid sets for this test to mean anything"
    assert mask.tolist() == expected


def test_sequence_sampler_stops_at_the_draw_limit() -> None:
    from density_engine.workflow.samplers import _sequence_sets

    full, draws = _sequence_sets(GARCH, _config("sobol", 40), 40)
    assert len(full) == 40 and 40 < draws < 128
    partial, draws = _sequence_sets(GARCH, _config("sobol", 40), 40, max_draws=30)
    assert draws == 30 and 0 < len(partial) < 30
    np.testing.assert_array_equal(partial, full[: len(partial)])
