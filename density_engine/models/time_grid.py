"""Time-grid policy of the rough models: every horizon on its own uniform grid, with Richardson extrapolation.

Pure declarations (no torch): the workflow validates the ``time_grid`` config section with :meth:`TimeGridPolicy.parse`,
the chunk spec carries :meth:`TimeGridPolicy.to_dict`, the engine asks for the grids and path counts of each horizon
(:meth:`TimeGridPolicy.plan`), the run-size estimate for the path-steps (:meth:`TimeGridPolicy.path_steps`).

A horizon of ``days`` model steps (of ``dt`` years each) is simulated on ``N = max(steps, steps_per_day * days)``
uniform fine steps, rounded up to the multiple the Richardson mode needs. Measured error and cost: docs/accuracy.md.

Horizons whose grid has the per-day step (``N = steps_per_day * days`` exactly, step ``dt / steps_per_day``) share
one run, the *per-day grid*, recorded at each of their ``N``: the schemes' constants of a step depend on the earlier
steps only, so a horizon recorded on the per-day grid gets exactly the values of a run of its own on that grid and
stream (adding or removing another horizon changes no row), at the cost of the longest one alone (production rough
Bergomi: 126 and 252 days, 1652 -> 1400 fine steps per parameter set).

* ``independent`` (rough Heston: its iVi error is c/N to three digits): two independent runs on N and N/2 steps with
  ``path_split = (a, b)`` times ``num_paths`` paths; published q = 2 q_N - q_{N/2}. Its Monte Carlo variance in CDF
  units is p(1-p) (4/a + 1/b) / num_paths: ``4/a + 1/b <= 1`` keeps the promise of ``num_paths`` (default
  (4 + sqrt 2, 1 + 2 sqrt 2): least cost for exactly that error).
* ``coupled`` (rough Bergomi: error ~ N^-(3H + 1/2)): one run on N steps that also records the log-return on its every
  2nd and every 4th grid point (the same paths); published q = q_N + (q_N - q_{N/2}) / (2^r - 1), r = min(3H + 1/2, 1);
  the N/4 grid gives the discretisation-error estimate.
* ``none``: q_N of one run.

A model with several schemes (rough Bergomi: ``cell``, ``hybrid``) also takes ``scheme``; the model declares each one's
rules as a :class:`GridScheme` (``time_grid_schemes``): its Richardson modes (the first its default), the multiple N
must be (nested grids) and its error column's rate.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

RICHARDSON_MODES = ("independent", "coupled", "none")
#: Default path split of ``independent`` Richardson (least cost for the Monte Carlo error of ``num_paths``).
OPTIMAL_PATH_SPLIT = (4.0 + math.sqrt(2.0), 1.0 + 2.0 * math.sqrt(2.0))
#: Slack on ``4/a + 1/b <= 1`` for rounded path splits (5.41, 3.83 gives 1.0005).
PATH_SPLIT_SLACK = 1e-3
TIME_GRID_KEYS = ("steps", "steps_per_day", "richardson", "path_split", "allow_coarse", "scheme")
#: Counter stream of run ``r`` of the per-day grid is ``PER_DAY_STREAM - r``; a per-horizon run's is ``2 * days + r``
#: (0 is the single-grid stream of ``simulate_horizons``), so horizons stay below ``MAX_DAYS``.
PER_DAY_STREAM = 2**32 - 1
MAX_DAYS = 2**30


@dataclass(frozen=True)
class GridScheme:
    """The rules of one scheme of a model with several (the model's ``time_grid_schemes`` declaration)."""

    label: str
    """For logs and the card, e.g. ``cell-average scheme (P6v)``."""
    richardson: tuple[str, ...]
    """The Richardson modes it takes; the first is its default."""
    step_multiple: int = 1
    """N must be a multiple of this (the kernel records nested grids of every 2nd and 4th step)."""
    error_rate: float | None = None
    """The upper clip of the rate its nested-grid error column assumes (None: the model's Richardson rate)."""
    remedy: str = ""
    """Why another Richardson mode is refused and what to set instead (the error message's tail)."""


class TimeGridError(ValueError):
    """An impossible or too coarse time-grid setting; the message names the key (relative to ``time_grid``)."""


@dataclass(frozen=True)
class GridRun:
    """One simulation: ``steps`` uniform fine steps, ``paths`` paths, counter stream ``stream``; with ``nested`` it
    also records the log-return on its every 2nd and 4th grid point (coupled Richardson). ``index``: which grid of a
    horizon it is (0 the finest, 1 the N/2 run of independent Richardson); ``records``: (days, step) of each horizon
    it records (one for a per-horizon run, any number on the per-day grid, ``per_day``)."""

    steps: int
    paths: int
    stream: int
    nested: bool = False
    index: int = 0
    records: tuple[tuple[int, int], ...] = ()
    per_day: bool = False

    def step_years(self, dt: float, steps_per_day: int) -> float:
        """The fine step in years: ``dt / steps_per_day`` on the per-day grid (twice that for its N/2 run; one value,
        whichever horizons it records), else the horizon's maturity over ``steps``."""
        if self.per_day:
            return dt * (1 << self.index) / steps_per_day
        days, _ = self.records[-1]
        return days * dt / self.steps


@dataclass(frozen=True)
class TimeGridPolicy:
    """Per-horizon uniform grids (see the module docstring); ``min_steps`` is the model's "too coarse" bound."""

    steps: int
    steps_per_day: int
    richardson: str
    path_split: tuple[float, float] | None
    allow_coarse: bool = False
    scheme: str | None = None
    """The model's scheme (rough Bergomi: ``cell`` or ``hybrid``); None for a model with one scheme."""
    grid_scheme: GridScheme | None = None
    """That scheme's declared rules (not serialised: :meth:`from_dict` takes them from the model)."""

    @classmethod
    def parse(
        cls,
        values: Mapping[str, Any] | None,
        defaults: Mapping[str, Any],
        modes: Sequence[str],
        min_steps: int,
        schemes: Mapping[str, GridScheme] | None = None,
    ) -> TimeGridPolicy:
        """Validate a ``time_grid`` mapping (missing keys from ``defaults``); :class:`TimeGridError` names the key.
        ``schemes``: the model's schemes and their rules (empty: one scheme, no ``scheme`` key)."""
        values = dict(values or {})
        unknown = sorted(set(values) - set(TIME_GRID_KEYS))
        if unknown:
            raise TimeGridError(f"unknown key(s) {unknown}; allowed: {', '.join(TIME_GRID_KEYS)}")
        schemes = dict(schemes or {})
        merged = {**defaults, **values}
        if merged.get("scheme") in schemes and "richardson" not in values:
            merged["richardson"] = schemes[merged["scheme"]].richardson[0]  # the scheme's own default
        richardson = merged.get("richardson", "none")
        if richardson not in modes:
            allowed = ", ".join(modes)
            raise TimeGridError(f"richardson: {richardson!r} is not allowed for this model; allowed: {allowed}")
        scheme = merged.get("scheme")
        if not schemes and scheme is not None:
            raise TimeGridError(f"scheme: this model has one scheme (got {scheme!r})")
        if schemes and scheme not in schemes:
            raise TimeGridError(f"scheme: {scheme!r} is not a scheme of this model; allowed: {', '.join(schemes)}")
        grid_scheme = schemes.get(scheme) if scheme is not None else None
        if grid_scheme is not None and richardson not in grid_scheme.richardson:
            tail = f" ({grid_scheme.remedy})" if grid_scheme.remedy else ""
            allowed = ", ".join(grid_scheme.richardson)
            raise TimeGridError(
                f"richardson: {richardson!r} is not used with scheme {scheme}{tail}; allowed: {allowed}"
            )
        multiple = _step_multiple(richardson, grid_scheme)
        steps = _integer(merged.get("steps"), "steps", 1)
        steps_per_day = _integer(merged.get("steps_per_day", 0), "steps_per_day", 0)
        allow_coarse = merged.get("allow_coarse", False)
        if not isinstance(allow_coarse, bool):
            raise TimeGridError(f"allow_coarse: must be true or false, got {allow_coarse!r}")
        if steps % multiple:
            raise TimeGridError(
                f"steps: {steps} must be a multiple of {multiple} with richardson {richardson}"
                + (f" and scheme {scheme}" if grid_scheme is not None and grid_scheme.step_multiple > 1 else "")
            )
        if steps < min_steps and not allow_coarse:
            raise TimeGridError(
                f"steps: {steps} is too coarse (at least {min_steps}: the measured discretisation error below that "
                "is several times the 1e-3 goal, docs/accuracy.md); set allow_coarse: true for a demo"
            )
        split = None
        if richardson == "independent":
            raw = merged.get("path_split", OPTIMAL_PATH_SPLIT)
            if not isinstance(raw, Sequence) or isinstance(raw, str) or len(raw) != 2:
                raise TimeGridError(f"path_split: must be two numbers [a, b], got {raw!r}")
            if any(isinstance(v, bool) or not isinstance(v, int | float) or not v > 0 for v in raw):
                raise TimeGridError(f"path_split: both multiples must be numbers > 0, got {list(raw)}")
            a, b = float(raw[0]), float(raw[1])
            if 4.0 / a + 1.0 / b > 1.0 + PATH_SPLIT_SLACK:
                raise TimeGridError(
                    f"path_split: [{a:g}, {b:g}] gives a Monte Carlo variance of {4 / a + 1 / b:.3f} x that of "
                    "num_paths (4/a + 1/b must be <= 1; default [5.4142, 3.8284])"
                )
            split = (a, b)
        elif "path_split" in values:
            raise TimeGridError(f"path_split: only used with richardson independent (richardson is {richardson})")
        return cls(steps, steps_per_day, richardson, split, allow_coarse, scheme, grid_scheme)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], schemes: Mapping[str, GridScheme] | None = None) -> TimeGridPolicy:
        """The policy a chunk spec carries (:meth:`to_dict`), without the coarseness check (the config did it);
        ``schemes``: the model's (``time_grid_schemes``), needed for the grids of a model with several schemes."""
        split = data.get("path_split")
        scheme = None if data.get("scheme") is None else str(data["scheme"])
        return cls(
            int(data["steps"]),
            int(data["steps_per_day"]),
            str(data["richardson"]),
            None if split is None else (float(split[0]), float(split[1])),
            bool(data.get("allow_coarse", False)),
            scheme,
            None if scheme is None else (schemes or {}).get(scheme),
        )

    def to_dict(self) -> dict[str, Any]:
        data = {
            "policy": "per_horizon",
            "steps": self.steps,
            "steps_per_day": self.steps_per_day,
            "richardson": self.richardson,
            "path_split": None if self.path_split is None else list(self.path_split),
            "allow_coarse": self.allow_coarse,
        }
        if self.scheme is not None:  # only models with a choice (the content keys of the others are unchanged)
            data["scheme"] = self.scheme
        return data

    def fine_steps(self, days: int) -> int:
        """N: the fine steps of the finest grid of a horizon of ``days`` model steps."""
        if self.scheme is not None and self.grid_scheme is None:
            raise ValueError(f"time grid of scheme {self.scheme!r} without its rules (from_dict takes the model's)")
        multiple = _step_multiple(self.richardson, self.grid_scheme)
        wanted = max(self.steps, self.steps_per_day * int(days))
        return -(-wanted // multiple) * multiple

    def runs(self, days: int, num_paths: int) -> list[GridRun]:
        """The grids of one horizon on their own (finest first), recording it at their last step. Streams are
        ``2 * days + run``: independent of the other horizons and never 0 (the shared-grid stream of
        :func:`simulate_horizons`)."""
        days = int(days)
        if not 1 <= days < MAX_DAYS:
            raise TimeGridError(f"horizon {days} days is outside 1 .. {MAX_DAYS - 1}")
        n = self.fine_steps(days)
        if self.richardson == "independent":
            a, b = self.path_split or OPTIMAL_PATH_SPLIT
            return [
                GridRun(n, math.ceil(a * num_paths), 2 * days, records=((days, n),)),
                GridRun(n // 2, math.ceil(b * num_paths), 2 * days + 1, index=1, records=((days, n // 2),)),
            ]
        return [GridRun(n, num_paths, 2 * days, nested=self.richardson == "coupled", records=((days, n),))]

    def on_per_day_grid(self, days: int) -> bool:
        """Whether a horizon's grid has the per-day step (``N = steps_per_day * days``): it is recorded on the
        shared per-day grid."""
        return self.steps_per_day > 0 and self.fine_steps(days) == self.steps_per_day * int(days)

    def plan(self, horizons: Sequence[int], num_paths: int) -> list[GridRun]:
        """The simulations of one parameter set: a run per grid of each horizon off the per-day step (in the order
        of ``horizons``), then the per-day grid's runs (one per grid index, to its longest horizon, recording every
        horizon on it, stream ``PER_DAY_STREAM - index``)."""
        plan: list[GridRun] = []
        per_day: dict[int, list[GridRun]] = {}
        for days in horizons:
            shared = self.on_per_day_grid(days)
            for run in self.runs(days, num_paths):
                if shared:
                    per_day.setdefault(run.index, []).append(run)
                else:
                    plan.append(run)
        for index, members in sorted(per_day.items()):
            members.sort(key=lambda run: run.steps)
            last = members[-1]
            records = tuple(record for run in members for record in run.records)
            plan.append(
                GridRun(last.steps, last.paths, PER_DAY_STREAM - index, last.nested, index, records, per_day=True)
            )
        return plan

    def path_steps(self, horizons: Sequence[int], num_paths: int) -> int:
        """Path-steps of one parameter set over all horizons (the throughput unit)."""
        return sum(run.paths * run.steps for run in self.plan(horizons, num_paths))

    def max_paths(self, num_paths: int) -> int:
        """The largest path count of a run (for the counter-word limit)."""
        return max(run.paths for run in self.runs(1, num_paths))

    def compact(self) -> str:
        """One token without spaces (the simulate rule's settings line), e.g. ``64+0/day,independent,5.414:3.828``."""
        text = f"{self.steps}+{self.steps_per_day}/day,{self.richardson}"
        if self.path_split is not None:
            text += f",{self.path_split[0]:.4g}:{self.path_split[1]:.4g}"
        if self.scheme is not None:
            text += f",{self.scheme}"
        return text + (",coarse" if self.allow_coarse else "")

    def describe(self) -> str:
        """One line for logs and the card."""
        grid = f"N = max({self.steps}, {self.steps_per_day} x days) steps per horizon"
        if self.steps_per_day:
            grid += f" (horizons with N = {self.steps_per_day} x days recorded on one shared grid)"
        if self.scheme is not None:
            grid = f"{grid}; {self.grid_scheme.label if self.grid_scheme else self.scheme + ' scheme'}"
        if self.richardson == "independent":
            a, b = self.path_split or OPTIMAL_PATH_SPLIT
            return f"{grid}; Richardson 2 q_N - q_N/2 of independent runs ({a:.4g} and {b:.4g} x num_paths paths)"
        if self.richardson == "coupled":
            return f"{grid}; coupled Richardson with the N/2 grid of the same paths (rate min(3H + 1/2, 1))"
        return f"{grid}; no extrapolation"


def compact_text(time_grid: Mapping[str, Any] | None) -> str:
    """:meth:`TimeGridPolicy.compact` of a spec's ``time_grid`` dict, ``exact`` for a discrete-time model (None)."""
    return "exact" if time_grid is None else TimeGridPolicy.from_dict(time_grid).compact()


def _step_multiple(richardson: str, grid_scheme: GridScheme | None = None) -> int:
    mode = {"independent": 2, "coupled": 4}.get(richardson, 1)
    return math.lcm(mode, grid_scheme.step_multiple if grid_scheme is not None else 1)


def _integer(value: Any, key: str, minimum: int) -> int:
    """An integer (numpy integers too, never a bool) >= ``minimum``."""
    if isinstance(value, bool) or not hasattr(value, "__index__") or int(value) < minimum:
        raise TimeGridError(f"{key}: must be an integer >= {minimum}, got {value!r}")
    return int(value)


__all__ = [
    "OPTIMAL_PATH_SPLIT",
    "PER_DAY_STREAM",
    "RICHARDSON_MODES",
    "GridRun",
    "GridScheme",
    "TimeGridError",
    "TimeGridPolicy",
    "compact_text",
]
