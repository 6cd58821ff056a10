"""Fixtures of the engine tests: small chunk specs for the three models."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

# Set G1 of the reference (docs/engine.md): alpha=.05, gamma=.10, beta=.85, eta=6, lam=-.2, sigma0_sq=1.5
G1 = {"alpha": 0.05, "gamma": 0.10, "beta": 0.85, "eta": 6.0, "lam": -0.2, "sigma0_sq": 1.5}
G2 = {"alpha": 0.03, "gamma": 0.05, "beta": 0.90, "eta": 10.0, "lam": -0.1, "sigma0_sq": 1.0}
RB = {"eta": 1.9, "rho": -0.9, "hurst": 0.07, "xi0": 0.235**2}
# Set A of the rough Heston reference (models.md, docs/rough_heston.md)
#: The default Richardson mode of each rough model (its time_grid_defaults).
RICHARDSON = {"rough_bergomi": "none", "rough_heston": "independent"}  # rough Bergomi: its default cell scheme
RH = {"kappa": 0.3, "theta": 0.02, "sigma": 0.3, "rho": -0.7, "alpha": 0.6, "v0": 0.02}


def make_spec(
    model: str = "gjrgarch_normalized",
    parameter_sets: list[dict[str, Any]] | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """A valid chunk spec dict (architecture.md layout)."""
    rough = model != "gjrgarch_normalized"
    spec: dict[str, Any] = {
        "spec_version": 2,
        "model": model,
        "chunk_id": 0,
        "seed": 20260101,
        "num_paths": 3000,
        "num_quantiles": 64,
        "horizons": [1, 5, 20],
        "dt": 1 / 252 if rough else None,
        # small grids keep the tests fast (the model's default is far finer; allow_coarse says so)
        "time_grid": {"steps": 4, "steps_per_day": 0, "richardson": RICHARDSON.get(model), "allow_coarse": True}
        if rough
        else None,
        "parameter_sets": [
            {"param_id": 12, "params": dict(RB if rough else G1)},
            {"param_id": 3, "params": dict(RB if rough else G2)},
        ]
        if parameter_sets is None
        else parameter_sets,
    }
    spec.update(overrides)
    return spec


@pytest.fixture
def spec_file(tmp_path: Path) -> Callable[..., Path]:
    """Write a spec dict (default: a small GARCH chunk) to a JSON file and return its path."""

    def write(spec: dict[str, Any] | None = None, name: str = "chunk_00000.json") -> Path:
        path = tmp_path / name
        path.write_text(json.dumps(spec if spec is not None else make_spec()))
        return path

    return write
