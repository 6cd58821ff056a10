"""Input hardening of the model declarations (issue 9, item 4): parameter types, numpy integer settings, the rough
Bergomi variance-underflow domain and the moments each model says exist."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from density_engine.models import get_model_class
from density_engine.models.base import Parameter, TimeGrid
from density_engine.models.gjrgarch import GJRGarchNormalized
from density_engine.models.rough_bergomi import (
    LOG_FLOAT32_TINY,
    UNDERFLOW_SIGMAS,
    RoughBergomi,
    underflow_headroom,
)
from tests.models.conftest import G1, RB

# config/production.yaml's rough Bergomi ranges (copied: tests read nothing outside the repository's tests)
PRODUCTION_RB = {"eta": (0.5, 3.0), "rho": (-0.95, -0.3), "hurst": (0.03, 0.3), "xi0": (0.01, 0.10)}


@pytest.mark.parametrize(
    ("value", "shown"), [("0.05", "'0.05' (str)"), (True, "True (bool)"), (np.bool_(False), "(bool)"), (None, "None")]
)
def test_strings_and_booleans_are_not_numbers(value, shown: str) -> None:
    with pytest.raises(ValueError) as caught:
        Parameter("alpha", 0.0, 1.0).check(value)
    assert str(caught.value).startswith("parameter 'alpha': expected a number, got ") and shown in str(caught.value)


@pytest.mark.parametrize("value", [np.float64(0.05), np.float32(0.25), np.int64(0), 1, np.array(0.5)])
def test_numpy_scalars_are_numbers(value) -> None:
    number = Parameter("alpha", 0.0, 1.0).check(value)
    assert type(number) is float and number == float(value)


@pytest.mark.parametrize(("name", "value"), [("alpha", "0.05"), ("lam", True)])
def test_model_constructor_and_check_parameters_refuse_strings_and_booleans(name: str, value) -> None:
    with pytest.raises(ValueError, match=rf"parameter '{name}': expected a number"):
        GJRGarchNormalized(**{**G1, name: value})
    with pytest.raises(ValueError, match=rf"parameter '{name}': expected a number"):
        GJRGarchNormalized.check_parameters({**G1, name: value})
    with pytest.raises(ValueError, match=r"parameter 'rho': expected a number, got True"):
        RoughBergomi(**{**RB, "rho": True})


def test_numpy_parameters_and_settings_are_accepted_as_python_numbers() -> None:
    model = RoughBergomi(**{k: np.float64(v) for k, v in RB.items()}, dt=np.float32(0.004), substeps=np.int64(3))
    assert all(type(v) is float for v in model.params.values())
    assert model.setting_values["substeps"] == 3 and type(model.setting_values["substeps"]) is int
    assert type(model.setting_values["dt"]) is float and model.substeps == 3


@pytest.mark.parametrize("substeps", [True, 2.0, "2", 0, np.int64(0)])
def test_bad_substeps_are_refused(substeps) -> None:
    with pytest.raises(ValueError, match=r"setting 'substeps' must be an integer >= 1"):
        RoughBergomi(**RB, substeps=substeps)


def test_underflowing_rough_bergomi_is_refused_in_one_line() -> None:
    """eta 50, hurst 1e-6: the compensator eta^2/2 t^(2H) ~ 1250 puts V ~ 0 after the first step."""
    params = {"eta": 50.0, "rho": -0.7, "hurst": 1e-6, "xi0": 0.04}
    with pytest.raises(ValueError, match=r"parameters 'eta', 'hurst', 'xi0': variance underflows") as caught:
        RoughBergomi(**params)
    assert "\n" not in str(caught.value) and "compensator 1250" in str(caught.value)
    assert not RoughBergomi.valid_mask({k: np.array([v]) for k, v in params.items()})[0]


def test_production_corners_of_rough_bergomi_are_valid() -> None:
    for corner in itertools.product(*PRODUCTION_RB.values()):
        RoughBergomi(**dict(zip(PRODUCTION_RB, corner, strict=True)))
    assert underflow_headroom(3.0, 0.03, 0.01, 1.0) > 50  # the worst corner keeps a wide margin


def test_underflow_criterion_is_the_six_sigma_end_of_log_variance() -> None:
    """At the boundary the 6-sigma lower end of log V_1 = N(log xi0 - eta^2/2, eta^2) sits at log(float32 tiny)."""
    eta, hurst = 5.0, 0.1
    xi0 = math.exp(LOG_FLOAT32_TINY + 0.5 * eta**2 + UNDERFLOW_SIGMAS * eta)  # headroom 0 at t = 1 (t^H = 1)
    assert abs(underflow_headroom(eta, hurst, xi0, 1.0)) < 1e-9
    RoughBergomi(eta=eta, rho=-0.5, hurst=hurst, xi0=min(xi0 * 1.01, 1e30))
    with pytest.raises(ValueError, match="variance underflows"):
        RoughBergomi(eta=eta, rho=-0.5, hurst=hurst, xi0=xi0 * 0.99)


def test_valid_mask_agrees_with_check_parameters_on_random_sets() -> None:
    rng = np.random.default_rng(3)
    columns = {
        "eta": rng.uniform(0.1, 15.0, 400),
        "rho": rng.uniform(-1.0, 1.0, 400),
        "hurst": rng.uniform(1e-6, 0.499, 400),
        "xi0": np.exp(rng.uniform(math.log(1e-4), math.log(1.0), 400)),
    }
    mask = RoughBergomi.valid_mask(columns)
    assert 0 < mask.sum() < len(mask)
    for i in range(len(mask)):
        try:
            RoughBergomi.check_parameters({k: float(v[i]) for k, v in columns.items()})
            accepted = True
        except ValueError:
            accepted = False
        assert accepted == mask[i]


def test_grids_beyond_one_year_are_checked_when_the_scheme_is_built() -> None:
    """The parameter check covers t <= 1 year; a longer grid is checked at its end (t^(2H) grows with t)."""
    model = RoughBergomi(eta=7.5, rho=-0.7, hurst=0.45, xi0=0.04)  # valid at 1 year
    model.scheme_tables(TimeGrid.uniform(4, 0.25))
    with pytest.raises(ValueError, match=r"variance underflows: at t = 20 \(years\)"):
        model.scheme_tables(TimeGrid.uniform(4, 5.0))


def test_gjr_declares_which_moments_exist() -> None:
    """E|z|^k < inf iff k < eta for the skew-t: kurtosis needs eta > 4, skewness eta > 3."""
    assert GJRGarchNormalized.finite_moments({**G1, "eta": 6.0}) == 4
    assert GJRGarchNormalized.finite_moments({**G1, "eta": 4.0}) == 3
    assert GJRGarchNormalized.finite_moments({**G1, "eta": 3.5}) == 3
    assert GJRGarchNormalized.finite_moments({**G1, "eta": 3.0}) == 2
    etas = np.array([2.1, 3.0, 3.0001, 4.0, 4.0001, 30.0])
    assert GJRGarchNormalized.finite_moments_array({"eta": etas}).tolist() == [2, 2, 3, 3, 4, 4]
    assert "kurt` is NaN where eta <= 4" in GJRGarchNormalized.moments_note


@pytest.mark.parametrize("name", ["rough_heston", "rough_bergomi"])
def test_rough_models_have_all_four_moments(name: str) -> None:
    model_cls = get_model_class(name)
    columns = {p.name: np.array([p.default_range[0], p.default_range[1]]) for p in model_cls.parameters}
    assert model_cls.finite_moments_array(columns).tolist() == [4, 4]
    assert model_cls.moments_note == ""


def _unchecked_rough_bergomi(**params: float) -> RoughBergomi:
    """A rough Bergomi instance that skips the parameter check (to show what the check prevents)."""
    model = RoughBergomi.__new__(RoughBergomi)
    model.params = dict(params)
    model.setting_values = RoughBergomi.check_settings({})
    return model


def test_the_refused_set_is_numerically_degenerate_and_an_accepted_one_is_not() -> None:
    """What the check is for: eta 50, hurst 1e-6 freezes every path after the first step (bit-identical quantiles at
    later horizons); eta 8 with xi0 0.04 (just inside the bound) keeps moving."""
    from density_engine.engine.paths import simulate_horizons
    from density_engine.engine.quantiles import sample_quantiles

    refused = _unchecked_rough_bergomi(eta=50.0, rho=-0.7, hurst=1e-6, xi0=0.04)
    q = sample_quantiles(simulate_horizons(refused, [2, 5, 20], 512, 1, device="cpu"), 16)
    assert torch.equal(q[0], q[1]) and torch.equal(q[1], q[2])
    accepted = RoughBergomi(eta=8.0, rho=-0.7, hurst=0.1, xi0=0.04)
    q = sample_quantiles(simulate_horizons(accepted, [2, 5, 20], 512, 1, device="cpu"), 16)
    assert not torch.equal(q[1], q[2]) and not torch.equal(q[0], q[1])
