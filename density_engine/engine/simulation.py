"""The user API: simulate one parameter set of a model and get its quantiles and moments.

>>> from density_engine.engine import Simulation
>>> sim = Simulation("gjrgarch_normalized", seed=7, device="cpu",
...                  alpha=0.05, gamma=0.1, beta=0.85, eta=6.0, lam=-0.2, sigma0_sq=1.0)
>>> q = sim.path_quantiles([1, 5, 20, 60], num_paths=100_000)  # tensor (4, 512), levels (j + 0.5) / 512

It replaces the model-instance API of earlier versions (``get_model_class(name)(device=..., seed=..., **params)``,
``m.reset(n)``, ``m.path_quantiles(t)``): models are declarations now and never import the engine.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from density_engine.engine.chunkio import MOMENT_ORDERS
from density_engine.engine.paths import resolve_device, simulate_grid, simulate_horizons
from density_engine.engine.quantiles import PathSummary, summarize
from density_engine.models import get_model_class
from density_engine.models.base import DEFAULT_NUM_QUANTILES, Model, TimeGrid


class Simulation:
    """Monte Carlo simulation of one parameter set.

    ``Simulation(model, seed=..., param_id=0, device="auto", dtype=torch.float32, memory_budget_bytes=None,
    compiled=None, **parameters_and_settings)``: ``model`` is a registered name (then the keyword arguments hold the
    parameters and settings such as ``dt``, ``substeps``) or a :class:`~density_engine.models.base.Model` instance.
    ``compiled``: None decides by size (:func:`density_engine.engine.paths.use_compiled`), True/False force it.
    The random numbers depend only on (seed, param_id, path, step), so results do not depend on block sizes.
    """

    def __init__(
        self,
        model: str | Model,
        *,
        seed: int | None = None,
        param_id: int = 0,
        device: str | torch.device = "auto",
        dtype: torch.dtype = torch.float32,
        memory_budget_bytes: int | None = None,
        compiled: bool | None = None,
        **parameters_and_settings: Any,
    ) -> None:
        if seed is None:
            raise ValueError("seed is required (an integer) for reproducible simulation")
        if isinstance(model, str):
            model = get_model_class(model)(**parameters_and_settings)
        elif parameters_and_settings:
            raise ValueError("pass parameters either in the Model instance or as keyword arguments, not both")
        if dtype not in (torch.float32, torch.float64):
            raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
        from density_engine.engine.counters import philox_key

        seed, param_id = philox_key(seed, param_id)  # validates both; numpy integers become Python ints
        self.model = model
        self.seed = seed
        self.param_id = param_id
        self.device = resolve_device(device)
        self.dtype = dtype
        self.memory_budget_bytes = memory_budget_bytes
        self.compiled = compiled

    @property
    def model_name(self) -> str:
        return self.model.model_name

    @property
    def parameter_dict(self) -> dict[str, float]:
        return self.model.parameter_dict

    def _options(self) -> dict[str, Any]:
        return {
            "device": self.device,
            "dtype": self.dtype,
            "memory_budget_bytes": self.memory_budget_bytes,
            "compiled": self.compiled,
        }

    def simulate_horizons(self, horizons: Sequence[int], num_paths: int, **options: Any) -> torch.Tensor:
        """Cumulative log-returns of ``num_paths`` paths at ``horizons`` (model steps): tensor (len(horizons), N)."""
        return simulate_horizons(
            self.model, horizons, num_paths, self.seed, self.param_id, **self._options(), **options
        )

    def simulate_grid(
        self, grid: TimeGrid, record_steps: Sequence[int], num_paths: int, **options: Any
    ) -> dict[str, torch.Tensor]:
        """Outputs on an explicit fine grid (see :func:`density_engine.engine.paths.simulate_grid`)."""
        return simulate_grid(
            self.model, grid, record_steps, num_paths, self.seed, self.param_id, **self._options(), **options
        )

    def path_summary(
        self, horizons: Sequence[int], num_paths: int, num_quantiles: int = DEFAULT_NUM_QUANTILES
    ) -> PathSummary:
        """Quantiles and moments (mean, std, skew, excess kurtosis) per horizon; a moment the model says is infinite
        for these parameters (GJR-GARCH: kurtosis where eta <= 4, skewness where eta <= 3) is NaN, as in the chunks."""
        summary = summarize(self.simulate_horizons(horizons, num_paths), num_quantiles)
        finite = type(self.model).finite_moments(self.model.parameter_dict)
        infinite = {
            name: np.full_like(getattr(summary, name), np.nan) for name, k in MOMENT_ORDERS.items() if k > finite
        }
        return replace(summary, **infinite)

    def path_quantiles(
        self, horizons: Sequence[int], num_paths: int, num_quantiles: int = DEFAULT_NUM_QUANTILES
    ) -> torch.Tensor:
        """Quantiles at levels ``(j + 0.5) / num_quantiles`` per horizon (exact order statistics): (H, M)."""
        return self.path_summary(horizons, num_paths, num_quantiles).quantiles

    def __repr__(self) -> str:
        return f"Simulation({self.model!r}, seed={self.seed}, param_id={self.param_id}, device={self.device})"
