"""Model declarations (torch-free): parameters with their domains, settings, parameter checks, the time grid and
the host-side constants of a scheme.

A model is pure math in two parts:

* its declaration, this module's :class:`Model` subclasses (numpy only): parameters (:class:`Parameter`), settings,
  checks (also vectorised, for samplers), and :meth:`Model.scheme_tables`, the float64 constants of the scheme on a
  :class:`TimeGrid` (:class:`SchemeTables`: scalars, per-step constants, the Volterra kernel matrix);
* its step kernel, a :class:`density_engine.models.kernels.StepKernel` (torch ops only), named by
  :attr:`Model.kernel` and imported only by the engine.

Random numbers, paths, blocks, horizons, quantiles and compilation are the engine's job (:mod:`density_engine.engine`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from density_engine.models.time_grid import GridScheme, TimeGridError, TimeGridPolicy
from density_engine.numeric import as_int, as_real

DEFAULT_NUM_QUANTILES = 512
#: The moments a density row reports: mean, std, skew, kurt are the moments of order 1, 2, 3, 4.
MAX_MOMENT_ORDER = 4


@dataclass(frozen=True)
class Parameter:
    """One model parameter: its domain (bounds, open or closed), a description and a default sampling range."""

    name: str
    lower: float
    upper: float
    lower_open: bool = False
    upper_open: bool = False
    description: str = ""
    default_range: tuple[float, float] = (0.0, 0.0)

    def bounds_text(self) -> str:
        """The domain as an interval, e.g. ``(0, 0.5)`` or ``[0, inf)``."""
        left = "(" if self.lower_open or math.isinf(self.lower) else "["
        right = ")" if self.upper_open or math.isinf(self.upper) else "]"
        return f"{left}{_fmt(self.lower)}, {_fmt(self.upper)}{right}"

    def contains(self, value: float) -> bool:
        """Whether ``value`` lies in the domain."""
        if not math.isfinite(value):
            return False
        above = value > self.lower if self.lower_open else value >= self.lower
        below = value < self.upper if self.upper_open else value <= self.upper
        return above and below

    def check(self, value: Any) -> float:
        """Return ``value`` as a float, or raise ``ValueError`` naming the parameter and the violated bound. Python and
        numpy ints and floats are numbers; strings (``"0.05"``) and booleans are refused, not converted."""
        number = as_real(value)
        if number is None:
            raise ValueError(f"parameter {self.name!r}: expected a number, got {value!r} ({type(value).__name__})")
        if not math.isfinite(number):
            raise ValueError(f"parameter {self.name!r} must be finite, got {number}")
        if self.lower_open and not number > self.lower:
            raise ValueError(f"parameter {self.name!r} must be > {_fmt(self.lower)}, got {number}")
        if not self.lower_open and not number >= self.lower:
            raise ValueError(f"parameter {self.name!r} must be >= {_fmt(self.lower)}, got {number}")
        if self.upper_open and not number < self.upper:
            raise ValueError(f"parameter {self.name!r} must be < {_fmt(self.upper)}, got {number}")
        if not self.upper_open and not number <= self.upper:
            raise ValueError(f"parameter {self.name!r} must be <= {_fmt(self.upper)}, got {number}")
        return number

    def contains_array(self, values: np.ndarray) -> np.ndarray:
        """Vectorised :meth:`contains`: a boolean array, True where the (finite) value lies in the domain."""
        values = np.asarray(values, dtype=np.float64)
        with np.errstate(invalid="ignore"):
            above = values > self.lower if self.lower_open else values >= self.lower
            below = values < self.upper if self.upper_open else values <= self.upper
        return np.isfinite(values) & above & below

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly description (infinite bounds as ``None``)."""
        return {
            "name": self.name,
            "lower": self.lower if math.isfinite(self.lower) else None,
            "upper": self.upper if math.isfinite(self.upper) else None,
            "lower_open": self.lower_open,
            "upper_open": self.upper_open,
            "bounds": self.bounds_text(),
            "description": self.description,
            "default_range": list(self.default_range),
        }


def _fmt(x: float) -> str:
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return f"{x:g}"


@dataclass(frozen=True)
class TimeGrid:
    """The fine time grid of a simulation: ``times[0] = 0 < times[1] < ... < times[n]`` (years; for models without a
    time unit, e.g. GARCH, step numbers). Step ``i`` goes from ``times[i]`` to ``times[i + 1]``."""

    times: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.times) < 2 or self.times[0] != 0.0:
            raise ValueError("a time grid needs times[0] = 0 and at least one step")
        if not all(b > a for a, b in zip(self.times, self.times[1:], strict=False)):
            raise ValueError("time grid points must be strictly increasing")

    @classmethod
    def uniform(cls, num_steps: int, step: float) -> TimeGrid:
        """``num_steps`` steps of length ``step``: ``times[i] = i * step``."""
        if num_steps < 1 or not (math.isfinite(step) and step > 0):
            raise ValueError(f"a uniform grid needs num_steps >= 1 and step > 0, got {num_steps}, {step}")
        return cls(tuple(i * step for i in range(num_steps + 1)))

    @property
    def num_steps(self) -> int:
        return len(self.times) - 1

    @property
    def array(self) -> np.ndarray:
        """The grid points as a float64 array (n + 1,)."""
        return np.asarray(self.times, dtype=np.float64)

    @property
    def uniform_step(self) -> float | None:
        """The step length if the grid is uniform (to a relative 1e-12), else None."""
        steps = np.diff(self.array)
        return float(self.times[1]) if np.allclose(steps, steps[0], rtol=1e-12, atol=0.0) else None


@dataclass(frozen=True)
class SchemeTables:
    """Float64 constants of a scheme on one grid (host side; the engine casts them to the simulation dtype).

    ``scalars``: per parameter set; ``per_step``: arrays of length ``num_steps`` (row ``i`` is handed to step ``i``);
    ``volterra``: ``K`` of shape (n, n), zero on and above the diagonal, for kernels with a history: step ``i`` receives
    ``conv_i = sum_{j < i} K[i, j] d_j`` of the history values ``d_j`` its predecessors returned.
    """

    scalars: Mapping[str, float]
    per_step: Mapping[str, np.ndarray] = field(default_factory=dict)
    volterra: np.ndarray | None = None


class Model:
    """Base class of a model declaration. Subclasses set the class attributes and implement :meth:`scheme_tables`.

    An instance is a checked parameter set with its settings: ``M(alpha=0.05, ..., dt=1/252, substeps=1)``; every
    declared parameter is required, settings (``dt``, ``substeps`` for the rough models) default to
    :attr:`default_settings`. Simulate it with the engine (:class:`density_engine.engine.simulation.Simulation`).
    """

    model_name: ClassVar[str]
    parameters: ClassVar[tuple[Parameter, ...]]
    settings: ClassVar[tuple[str, ...]] = ()
    default_settings: ClassVar[Mapping[str, Any]] = {}
    description: ClassVar[str] = ""
    kernel: ClassVar[str]
    """``"module:Class"`` of the model's :class:`~density_engine.models.kernels.StepKernel` (torch; engine-only)."""
    time_grid_defaults: ClassVar[Mapping[str, Any] | None] = None
    """Continuous-time models: the default ``time_grid`` policy (:mod:`density_engine.models.time_grid`); None for
    discrete-time models, which are simulated exactly on their own steps."""
    richardson_modes: ClassVar[tuple[str, ...]] = ()
    time_grid_schemes: ClassVar[Mapping[str, GridScheme]] = {}
    """A model with several schemes: the ``time_grid.scheme`` choices and each one's rules (Richardson modes, step
    multiple, error rate; empty: one scheme)."""
    min_grid_steps: ClassVar[int] = 1
    """Fewer fine steps per horizon are refused as too coarse (unless ``allow_coarse``)."""
    discretisation_error_method: ClassVar[str] = "0: exact simulation of the discrete-time model"
    computes_discretisation_error: ClassVar[bool] = False
    """True where :meth:`discretisation_error` computes the column (else the engine estimates it from grids)."""
    joint_check_monotone: ClassVar[bool] = False
    """True when :meth:`_check_joint` is monotone in each parameter separately, so a box of parameter ranges is valid
    iff its corners are: the workflow's config check then refuses ranges with an invalid corner."""
    moments_note: ClassVar[str] = ""
    """What the dataset card says where :meth:`finite_moments` is below 4 (empty if every moment exists)."""

    def __init__(self, **values: Any) -> None:
        setting_values = {k: values.pop(k) for k in list(values) if k in self.settings}
        self.params: dict[str, float] = self.check_parameters(values)
        self.setting_values: dict[str, Any] = self.check_settings(setting_values)
        self._prepare()

    # ---- declarations and checks -------------------------------------------------------------------------------

    @classmethod
    def parameter_names(cls) -> tuple[str, ...]:
        """Declared parameter names, in order (also the column order in chunk parquet files)."""
        return tuple(p.name for p in cls.parameters)

    @classmethod
    def check_parameters(cls, params: Mapping[str, Any]) -> dict[str, float]:
        """Validate a parameter set; return it as floats in declared order, or raise ``ValueError`` naming it."""
        names = cls.parameter_names()
        unknown = sorted(set(params) - set(names))
        if unknown:
            raise ValueError(f"{cls.model_name}: unknown parameter(s) {unknown}; expected {list(names)}")
        missing = [n for n in names if n not in params]
        if missing:
            raise ValueError(f"{cls.model_name}: missing parameter(s) {missing}")
        checked = {p.name: p.check(params[p.name]) for p in cls.parameters}
        cls._check_joint(checked)
        return checked

    @classmethod
    def _check_joint(cls, params: Mapping[str, float]) -> None:
        """Joint constraints (e.g. GARCH persistence < 1); raise ``ValueError`` naming the parameters and the bound."""
        return None

    @classmethod
    def valid_mask(cls, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        """Vectorised :meth:`check_parameters` for many sets at once: ``columns`` maps every parameter name to a float
        array (all the same length); returns a boolean array, True where :meth:`check_parameters` would accept the row.
        """
        names = cls.parameter_names()
        missing = [n for n in names if n not in columns]
        unknown = sorted(set(columns) - set(names))
        if missing or unknown:
            raise ValueError(
                f"{cls.model_name}: columns must be exactly {list(names)}; missing {missing}, unknown {unknown}"
            )
        arrays = {n: np.asarray(columns[n], dtype=np.float64) for n in names}
        mask = np.ones(len(arrays[names[0]]) if names else 0, dtype=bool)
        for parameter in cls.parameters:
            mask &= parameter.contains_array(arrays[parameter.name])
        return mask & cls._joint_valid_mask(arrays, mask)

    @classmethod
    def _joint_valid_mask(cls, columns: Mapping[str, np.ndarray], in_domain: np.ndarray) -> np.ndarray:
        """Vectorised :meth:`_check_joint` (rows with ``in_domain`` False may be anything). The default calls
        :meth:`_check_joint` per in-domain row; models with joint constraints should override it with array code."""
        if cls._check_joint.__func__ is Model._check_joint.__func__:  # type: ignore[attr-defined]
            return np.ones_like(in_domain)
        ok = np.zeros_like(in_domain)
        names = list(columns)
        for i in np.flatnonzero(in_domain):
            try:
                cls._check_joint({n: float(columns[n][i]) for n in names})
            except ValueError:
                continue
            ok[i] = True
        return ok

    @classmethod
    def finite_moments(cls, params: Mapping[str, float]) -> int:
        """The highest moment order k <= 4 with E|X_h|^k finite at every horizon, for one parameter set: skew (3) and
        kurt (4) of a row are NaN above it (their sample values would be noise). 4 unless the model overrides
        :meth:`finite_moments_array`."""
        columns = {name: np.array([float(params[name])]) for name in cls.parameter_names()}
        return int(cls.finite_moments_array(columns)[0])

    @classmethod
    def finite_moments_array(cls, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        """Vectorised :meth:`finite_moments`: ``columns`` maps parameter names to float arrays of one length; an int
        array. The default: every moment up to 4 exists."""
        length = len(np.asarray(next(iter(columns.values())))) if columns else 0
        return np.full(length, MAX_MOMENT_ORDER, dtype=np.int64)

    @classmethod
    def check_settings(cls, values: Mapping[str, Any]) -> dict[str, Any]:
        """Validate discretisation settings (``dt`` > 0, integer ``substeps`` >= 1); fill in defaults."""
        unknown = sorted(set(values) - set(cls.settings))
        if unknown:
            raise ValueError(f"{cls.model_name}: unknown setting(s) {unknown}; this model accepts {list(cls.settings)}")
        out = {name: values.get(name, cls.default_settings.get(name)) for name in cls.settings}
        if "dt" in out:
            dt = as_real(out["dt"])
            if dt is None or not math.isfinite(dt) or dt <= 0:
                raise ValueError(f"{cls.model_name}: setting 'dt' must be a finite number > 0, got {out['dt']!r}")
            out["dt"] = dt
        if "substeps" in out:
            sub = as_int(out["substeps"])
            if sub is None or sub < 1:
                raise ValueError(
                    f"{cls.model_name}: setting 'substeps' must be an integer >= 1, got {out['substeps']!r}"
                )
            out["substeps"] = sub
        return out

    @classmethod
    def time_grid_policy(cls, values: Mapping[str, Any] | None = None) -> TimeGridPolicy | None:
        """The checked per-horizon grid policy of a continuous-time model (``values`` over the defaults); None for a
        discrete-time model (then ``values`` must be empty). :class:`~density_engine.models.time_grid.TimeGridError`
        names the key."""
        if cls.time_grid_defaults is None:
            if values:
                raise TimeGridError(f"{cls.model_name} is a discrete-time model without a time grid")
            return None
        return TimeGridPolicy.parse(
            values, cls.time_grid_defaults, cls.richardson_modes, cls.min_grid_steps, cls.time_grid_schemes
        )

    @classmethod
    def spec_time_grid_policy(cls, data: Mapping[str, Any]) -> TimeGridPolicy:
        """The policy a chunk spec carries (:meth:`TimeGridPolicy.to_dict`), with this model's scheme rules."""
        return TimeGridPolicy.from_dict(data, cls.time_grid_schemes)

    def for_time_grid(self, policy: TimeGridPolicy) -> tuple[Model, str]:
        """The model instance that simulates this parameter set under ``policy`` and the Richardson mode of its rows
        (a model with several schemes picks one here; the default: this instance and the policy's mode)."""
        return self, policy.richardson

    def richardson_rate(self) -> float:
        """The convergence rate r of coupled Richardson extrapolation (error ~ N^-r)."""
        return 1.0

    def discretisation_error(
        self, maturity: float, fine_steps: int, richardson: str, quantiles: np.ndarray, bracket: tuple[float, float]
    ) -> np.ndarray | None:
        """The CDF error at ``quantiles`` of the published estimate, where the model can compute it (None: the engine
        estimates it from coupled grids)."""
        return None

    @classmethod
    def describe(cls) -> dict[str, Any]:
        """A JSON-friendly description of the model (for ``density-engine models --json`` and the dataset card)."""
        return {
            "name": cls.model_name,
            "description": cls.description,
            "parameters": [p.to_dict() for p in cls.parameters],
            "settings": {name: cls.default_settings.get(name) for name in cls.settings},
            "time_grid": None if cls.time_grid_defaults is None else dict(cls.time_grid_defaults),
        }

    # ---- instance API ------------------------------------------------------------------------------------------

    @property
    def parameter_dict(self) -> dict[str, float]:
        """The (checked) parameter values, in declared order."""
        return dict(self.params)

    @property
    def dt(self) -> float | None:
        """Year fraction per model step (``None`` for models without a time step, e.g. GARCH)."""
        return self.setting_values.get("dt")

    @property
    def substeps(self) -> int:
        """Fine steps per model step (1 for models without sub-stepping)."""
        return int(self.setting_values.get("substeps", 1))

    def fine_grid(self, num_fine_steps: int) -> TimeGrid:
        """The default grid: ``num_fine_steps`` uniform steps of ``dt / substeps`` (of 1 for models without time)."""
        step = self.dt / self.substeps if self.dt is not None else 1.0
        return TimeGrid.uniform(num_fine_steps, step)

    # ---- hooks for subclasses ----------------------------------------------------------------------------------

    def _prepare(self) -> None:
        """Precompute per-parameter-set constants (called at the end of ``__init__``)."""
        return None

    def scheme_tables(self, grid: TimeGrid) -> SchemeTables:
        """The scheme's float64 constants on ``grid`` (scalars, per-step constants, Volterra matrix)."""
        raise NotImplementedError(f"{type(self).__name__} does not implement scheme_tables")

    def __repr__(self) -> str:
        values = ", ".join(f"{k}={v:g}" for k, v in self.params.items())
        settings = "".join(f", {k}={v!r}" for k, v in self.setting_values.items())
        return f"{type(self).__name__}({values}{settings})"
