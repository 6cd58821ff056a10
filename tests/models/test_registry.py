"""Registry, Parameter domains and the base model API."""

from __future__ import annotations

import math

import pytest
import torch

from density_engine.models import UnknownModelError, get_model_class, model_names
from density_engine.models.base import Model, Parameter, resolve_device
from tests.models.conftest import G1


def test_registry_names_and_classes() -> None:
    assert model_names() == ["gjrgarch_normalized", "rough_heston", "rough_bergomi"]
    for name in ("gjrgarch_normalized", "rough_bergomi"):
        cls = get_model_class(name)
        assert issubclass(cls, Model) and cls.model_name == name
    with pytest.raises(UnknownModelError, match="unknown model 'heston'; known models") as info:
        get_model_class("heston")
    assert isinstance(info.value, KeyError)


def test_parameter_bounds_messages() -> None:
    p = Parameter("hurst", 0.0, 0.5, lower_open=True, upper_open=True)
    assert p.bounds_text() == "(0, 0.5)" and p.check(0.25) == 0.25
    with pytest.raises(ValueError, match=r"'hurst' must be < 0.5, got 0.5"):
        p.check(0.5)
    with pytest.raises(ValueError, match=r"'hurst' must be > 0, got 0.0"):
        p.check(0.0)
    closed = Parameter("rho", -1.0, 1.0)
    assert closed.check(-1.0) == -1.0 and closed.bounds_text() == "[-1, 1]"
    with pytest.raises(ValueError, match=r"'rho' must be <= 1, got 1.2"):
        closed.check(1.2)
    with pytest.raises(ValueError, match="'rho' must be finite"):
        closed.check(math.nan)
    with pytest.raises(ValueError, match="'rho': expected a number"):
        closed.check("x")
    assert Parameter("v", 0.0, math.inf).bounds_text() == "[0, inf)"


def test_constructor_checks() -> None:
    cls = get_model_class("gjrgarch_normalized")
    m = cls(device="cpu", seed=7, **G1)
    assert m.parameter_dict == G1 and m.model_name == "gjrgarch_normalized" and m.param_id == 0
    assert m.dtype == torch.float32 and m.dt is None and m.substeps == 1
    with pytest.raises(ValueError, match="seed is required"):
        cls(device="cpu", **G1)
    with pytest.raises(ValueError, match=r"missing parameter\(s\) \['sigma0_sq'\]"):
        cls(device="cpu", seed=1, **{k: v for k, v in G1.items() if k != "sigma0_sq"})
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) \['dt'\]"):
        cls(device="cpu", seed=1, dt=0.1, **G1)
    with pytest.raises(ValueError, match="device must be"):
        cls(device="tpu", seed=1, **G1)
    with pytest.raises(ValueError, match="num_paths"):
        m.reset(0)
    with pytest.raises(ValueError, match="reset"):
        m.path_quantiles([1])


def test_resolve_device() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_horizon_checks_and_order() -> None:
    m = get_model_class("gjrgarch_normalized")(device="cpu", seed=3, **G1)
    m.reset(1000)
    for bad in ([], [0], [2, 2], [1.5]):
        with pytest.raises(ValueError, match="horizons"):
            m.path_quantiles(bad)
    forward = m.path_quantiles([2, 7], 16)
    backward = m.path_quantiles([7, 2], 16)
    assert forward.shape == (2, 16) and torch.equal(forward, backward.flip(0))


@pytest.mark.parametrize("name", ["gjrgarch_normalized", "rough_bergomi", "rough_heston"])
def test_default_ranges_lie_in_the_domain(name: str) -> None:
    """Every corner of the default sampling box is a valid parameter set (so default samplers never reject)."""
    import itertools

    cls = get_model_class(name)
    for corner in itertools.product(*(p.default_range for p in cls.parameters)):
        cls.check_parameters(dict(zip(cls.parameter_names(), corner, strict=True)))
