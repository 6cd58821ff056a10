"""Registry, Parameter domains and the base model API."""

from __future__ import annotations

import math

import pytest
import torch

from density_engine.engine import Simulation
from density_engine.engine.paths import resolve_device
from density_engine.models import UnknownModelError, get_model_class, model_names
from density_engine.models.base import Model, Parameter, TimeGrid
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
    m = cls(**G1)
    assert m.parameter_dict == G1 and m.model_name == "gjrgarch_normalized"
    assert m.dt is None and m.substeps == 1
    with pytest.raises(ValueError, match=r"missing parameter\(s\) \['sigma0_sq'\]"):
        cls(**{k: v for k, v in G1.items() if k != "sigma0_sq"})
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) \['dt'\]"):
        cls(dt=0.1, **G1)
    with pytest.raises(ValueError, match="seed is required"):
        Simulation("gjrgarch_normalized", **G1)
    with pytest.raises(ValueError, match="device must be"):
        Simulation("gjrgarch_normalized", seed=1, device="tpu", **G1)
    with pytest.raises(ValueError, match="seed must be"):
        Simulation("gjrgarch_normalized", seed=-1, **G1)
    sim = Simulation(m, seed=7, device="cpu")
    assert sim.param_id == 0 and sim.dtype == torch.float32 and sim.parameter_dict == G1
    with pytest.raises(ValueError, match="num_paths"):
        sim.path_quantiles([1], num_paths=0)


def test_resolve_device() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_time_grid() -> None:
    grid = TimeGrid.uniform(4, 0.25)
    assert grid.times == (0.0, 0.25, 0.5, 0.75, 1.0) and grid.num_steps == 4 and grid.uniform_step == 0.25
    assert TimeGrid((0.0, 0.1, 0.3)).uniform_step is None
    with pytest.raises(ValueError, match="increasing"):
        TimeGrid((0.0, 0.2, 0.1))
    with pytest.raises(ValueError, match="times\\[0\\] = 0"):
        TimeGrid((0.1, 0.2))
    bergomi = get_model_class("rough_bergomi")(eta=1.9, rho=-0.9, hurst=0.07, xi0=0.05)
    with pytest.raises(ValueError, match="uniform time grid"):
        bergomi.scheme_tables(TimeGrid((0.0, 0.1, 0.3)))


def test_horizon_checks_and_order() -> None:
    sim = Simulation("gjrgarch_normalized", seed=3, device="cpu", **G1)
    for bad in ([], [0], [2, 2], [1.5]):
        with pytest.raises(ValueError, match="horizons"):
            sim.path_quantiles(bad, num_paths=1000)
    forward = sim.path_quantiles([2, 7], 1000, 16)
    backward = sim.path_quantiles([7, 2], 1000, 16)
    assert forward.shape == (2, 16) and torch.equal(forward, backward.flip(0))


def test_declarations_import_without_torch() -> None:
    """Models' declarations (registry, parameters, checks, scheme tables) are numpy-only: importable and usable in a
    process that cannot import torch."""
    import subprocess
    import sys

    from tests.test_layers import BLOCK_TORCH

    code = (
        BLOCK_TORCH + "from density_engine.models import get_model_class, model_names\n"
        "for name in model_names():\n"
        "    cls = get_model_class(name); cls.describe()\n"
        "m = get_model_class('rough_heston')(kappa=0.3, theta=0.02, sigma=0.3, rho=-0.7, alpha=0.6, v0=0.02)\n"
        "assert m.scheme_tables(m.fine_grid(5)).volterra.shape == (5, 5)\n"
        "import density_engine.engine.chunkio, density_engine.engine.counters\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("name", ["gjrgarch_normalized", "rough_bergomi", "rough_heston"])
def test_default_ranges_lie_in_the_domain(name: str) -> None:
    """Every corner of the default sampling box is a valid parameter set (so default samplers never reject)."""
    import itertools

    cls = get_model_class(name)
    for corner in itertools.product(*(p.default_range for p in cls.parameters)):
        cls.check_parameters(dict(zip(cls.parameter_names(), corner, strict=True)))
