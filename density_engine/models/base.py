"""Model base class and parameter declarations.

A model is pure math: it declares its parameters (:class:`Parameter`), checks a parameter set, and turns the random
numbers of one block of paths (a :class:`~density_engine.engine.rng.RandomStream`) into cumulative log-returns at the
requested fine step counts (:meth:`Model.simulate_block`). Blocks, quantiles and moments are the engine's job
(:mod:`density_engine.engine`); :meth:`Model.path_quantiles` is a convenience entry point into it.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch

if TYPE_CHECKING:
    from density_engine.engine.quantiles import PathSummary
    from density_engine.engine.rng import RandomStream

DEFAULT_NUM_QUANTILES = 512


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
        """Return ``value`` as a float, or raise ``ValueError`` naming the parameter and the violated bound."""
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"parameter {self.name!r}: expected a number, got {value!r}") from None
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


def resolve_device(device: str | torch.device) -> torch.device:
    """``"cpu"``, ``"cuda"`` (or ``"cuda:N"``) or ``"auto"`` (CUDA when available) as a ``torch.device``."""
    name = str(device)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        dev = None
    if dev is None or dev.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu', 'cuda' or 'auto', got {name!r}")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but CUDA is not available (use 'cpu' or 'auto')")
    return dev


class Model(ABC):
    """Base class of a return model. Subclasses set the class attributes and implement :meth:`simulate_block`.

    ``M(device="cpu", seed=7, param_id=0, dtype=torch.float32, **params_and_settings)``: every declared parameter is
    required; settings (``dt``, ``substeps`` for the rough models) default to :attr:`default_settings`.
    """

    model_name: ClassVar[str]
    parameters: ClassVar[tuple[Parameter, ...]]
    settings: ClassVar[tuple[str, ...]] = ()
    default_settings: ClassVar[Mapping[str, Any]] = {}
    description: ClassVar[str] = ""

    def __init__(
        self,
        device: str | torch.device = "auto",
        seed: int | None = None,
        param_id: int = 0,
        dtype: torch.dtype = torch.float32,
        memory_budget_bytes: int | None = None,
        **values: Any,
    ) -> None:
        if seed is None:
            raise ValueError("seed is required (an integer) for reproducible simulation")
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        if isinstance(param_id, bool) or not isinstance(param_id, int) or param_id < 0:
            raise ValueError(f"param_id must be a non-negative integer, got {param_id!r}")
        if dtype not in (torch.float32, torch.float64):
            raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
        setting_values = {k: values.pop(k) for k in list(values) if k in self.settings}
        self.device = resolve_device(device)
        self.seed = seed
        self.param_id = param_id
        self.dtype = dtype
        self.memory_budget_bytes = memory_budget_bytes
        self.params: dict[str, float] = self.check_parameters(values)
        self.setting_values: dict[str, Any] = self.check_settings(setting_values)
        self.num_paths: int | None = None
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
    def check_settings(cls, values: Mapping[str, Any]) -> dict[str, Any]:
        """Validate discretisation settings (``dt`` > 0, integer ``substeps`` >= 1); fill in defaults."""
        unknown = sorted(set(values) - set(cls.settings))
        if unknown:
            raise ValueError(f"{cls.model_name}: unknown setting(s) {unknown}; this model accepts {list(cls.settings)}")
        out = {name: values.get(name, cls.default_settings.get(name)) for name in cls.settings}
        if "dt" in out:
            dt = out["dt"]
            if isinstance(dt, bool) or not isinstance(dt, int | float) or not math.isfinite(dt) or dt <= 0:
                raise ValueError(f"{cls.model_name}: setting 'dt' must be a finite number > 0, got {dt!r}")
            out["dt"] = float(dt)
        if "substeps" in out:
            sub = out["substeps"]
            if isinstance(sub, bool) or not isinstance(sub, int) or sub < 1:
                raise ValueError(f"{cls.model_name}: setting 'substeps' must be an integer >= 1, got {sub!r}")
        return out

    @classmethod
    def describe(cls) -> dict[str, Any]:
        """A JSON-friendly description of the model (for ``density-engine models --json`` and the dataset card)."""
        return {
            "name": cls.model_name,
            "description": cls.description,
            "parameters": [p.to_dict() for p in cls.parameters],
            "settings": {name: cls.default_settings.get(name) for name in cls.settings},
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

    def reset(self, num_paths: int) -> None:
        """Set the number of paths for the next simulation."""
        if isinstance(num_paths, bool) or not isinstance(num_paths, int) or num_paths < 1:
            raise ValueError(f"num_paths must be a positive integer, got {num_paths!r}")
        self.num_paths = num_paths

    def simulate_horizons(self, horizons: Sequence[int]) -> torch.Tensor:
        """Cumulative log-returns of all paths at each horizon (model steps): tensor ``(len(horizons), num_paths)``."""
        from density_engine.engine.paths import simulate_horizons

        return simulate_horizons(self, horizons)

    def path_quantiles(self, t: Sequence[int], num_quantiles: int = DEFAULT_NUM_QUANTILES) -> torch.Tensor:
        """Quantiles at levels ``(j + 0.5) / num_quantiles`` of the cumulative log-return at each horizon in ``t``.

        Exact order statistics of all simulated paths; shape ``(len(t), num_quantiles)``.
        """
        return self.path_summary(t, num_quantiles).quantiles

    def path_summary(self, t: Sequence[int], num_quantiles: int = DEFAULT_NUM_QUANTILES) -> PathSummary:
        """Quantiles and moments (mean, std, skew, excess kurtosis) per horizon in ``t``."""
        from density_engine.engine.quantiles import summarize

        return summarize(self.simulate_horizons(t), num_quantiles)

    # ---- hooks for subclasses ----------------------------------------------------------------------------------

    def _prepare(self) -> None:
        """Precompute per-parameter-set constants (called at the end of ``__init__``)."""
        return None

    def block_bytes_per_path(self, num_fine_steps: int) -> int:
        """Peak working memory per path of :meth:`simulate_block` for ``num_fine_steps`` steps (block sizing)."""
        return 8 * self.dtype.itemsize * num_fine_steps + 64

    @abstractmethod
    def simulate_block(self, stream: RandomStream, record_steps: Sequence[int]) -> torch.Tensor:
        """Cumulative log-returns after each fine step count in ``record_steps`` (sorted, unique, >= 1).

        Returns a tensor ``(len(record_steps), stream.num_paths)`` with ``stream.dtype`` on ``stream.device``. All
        random numbers must come from ``stream``, with a call sequence that does not depend on ``stream.num_paths``.
        """

    def __repr__(self) -> str:
        values = ", ".join(f"{k}={v:g}" for k, v in self.params.items())
        return f"{type(self).__name__}({values}, seed={self.seed}, param_id={self.param_id}, device={self.device})"
