"""Deterministic parameter grids: Sobol, Latin hypercube, random, cartesian grid, or an explicit CSV file.

Every sampler returns exactly ``n_samples`` valid parameter sets with ``param_id`` 0..n-1 (or the CSV's own ids).
Draws that the model rejects (:meth:`check_parameters` raises ``ValueError``, e.g. GARCH persistence >= 1) are
dropped and the sequence simply continues, so the result only depends on the configuration:

* ``sobol``: scrambled Sobol' sequence seeded with the model seed; a prefix of the sequence, so raising ``n_samples``
  keeps the existing sets (and their chunks) unchanged.
* ``random``: uniform draws from ``numpy.random.default_rng(seed)``; also prefix-stable.
* ``lhs``: Latin hypercube designs of ``n_samples`` points (a new design per batch when draws are rejected); the design
  depends on ``n_samples``.
* ``grid``: cartesian product of ``numpy.linspace(low, high, k)`` per ranged parameter, first parameter varying
  slowest. ``grid_points: {name: k}`` sets k per parameter (product must equal ``n_samples``); without it every
  ranged parameter gets ``k = n_samples ** (1 / d)`` points, which must be an integer. Every grid point must be valid.
* ``{file: path.csv}``: columns named like the model parameters (parameters missing from the file must be fixed in
  ``parameters``), optional ``param_id`` column (unique non-negative integers, else the row number). Every row must
  be valid.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from density_engine.parameter_grid import (  # shared with the dataset layer; re-exported here
    SamplingError,
    parameter_space,
    raise_first_invalid,
    read_parameter_file,
    valid_rows,
)

if TYPE_CHECKING:  # pandas is imported where frames are built: the workflow's config check (every DAG build) needs none
    import pandas as pd

#: Stop after this many draws per requested set if too few are valid.
MAX_DRAWS_PER_SET = 100
#: Draws probed at config-validation time to detect ranges without any valid parameter set.
PROBE_DRAWS = 256


def _is_valid(model_cls: Any, params: dict[str, float]) -> bool:
    try:
        model_cls.check_parameters(params)
    except ValueError:
        return False
    return True


def _full_rows(
    names: list[str], ranged: Mapping[str, tuple], fixed: Mapping[str, float], values: np.ndarray
) -> np.ndarray:
    """Rows of all parameters (model order) from rows of the ranged ones (``ranged`` order) and the fixed values."""
    columns = list(ranged)
    out = np.empty((len(values), len(names)), dtype=np.float64)
    for i, name in enumerate(names):
        out[:, i] = values[:, columns.index(name)] if name in ranged else fixed[name]
    return out


def _unit_batches(sampler: str, dims: int, seed: int, batch: int) -> Iterator[np.ndarray]:
    """Endless batches of points in [0, 1)^dims for the sequence samplers."""
    from scipy.stats import qmc

    if sampler == "sobol":
        engine = qmc.Sobol(dims, scramble=True, rng=np.random.default_rng(seed))
        while True:
            with warnings.catch_warnings():  # balance warning for non powers of two: the sequence is what we want
                warnings.simplefilter("ignore", UserWarning)
                yield engine.random(batch)
    elif sampler == "lhs":
        engine = qmc.LatinHypercube(dims, rng=np.random.default_rng(seed))
        while True:
            yield engine.random(batch)
    elif sampler == "random":
        rng = np.random.default_rng(seed)
        while True:
            yield rng.random((batch, dims))
    else:
        raise SamplingError(f"unknown sampler {sampler!r}")


def _sequence_sets(
    model_name: str, model_cfg: Mapping[str, Any], n_samples: int, max_draws: int | None = None
) -> tuple[np.ndarray, int]:
    """Draw until ``n_samples`` valid sets (or ``max_draws`` draws); return (sets as rows in model parameter order,
    draws made). Each batch of draws is checked at once (:meth:`Model.valid_mask`); the result is the same as
    checking the draws one by one in sequence order."""
    from density_engine.models import get_model_class

    model_cls = get_model_class(model_name)
    names, ranged, fixed = parameter_space(model_name, model_cfg)
    sampler = model_cfg.get("sampler", "sobol")
    limit = max_draws if max_draws is not None else max(MAX_DRAWS_PER_SET * n_samples, 10_000)
    if not ranged:
        params = {name: fixed[name] for name in names}
        row = np.array([[params[name] for name in names]], dtype=np.float64)
        return (np.repeat(row, n_samples, axis=0) if _is_valid(model_cls, params) else row[:0]), 1
    lows = np.array([ranged[n][0] for n in ranged])
    widths = np.array([ranged[n][1] - ranged[n][0] for n in ranged])
    batch_size = n_samples if sampler == "lhs" else min(max(n_samples, 64), 65_536)
    accepted: list[np.ndarray] = []
    count = 0
    draws = 0
    for unit in _unit_batches(sampler, len(ranged), int(model_cfg["seed"]), batch_size):
        rows = _full_rows(names, ranged, fixed, lows + unit * widths)
        valid = valid_rows(model_cls, names, rows)
        # stop at the first draw that completes n_samples or reaches the draw limit (as a one-by-one loop would)
        running = count + np.cumsum(valid)
        stops = np.flatnonzero((running >= n_samples) | (draws + np.arange(1, len(rows) + 1) >= limit))
        take = int(stops[0]) + 1 if len(stops) else len(rows)
        accepted.append(rows[:take][valid[:take]])
        count += int(valid[:take].sum())
        draws += take
        if len(stops):
            return np.concatenate(accepted), draws
    raise AssertionError("unreachable")  # pragma: no cover


def _grid_axes(model_cfg: Mapping[str, Any], ranged: Mapping[str, tuple]) -> dict[str, np.ndarray]:
    n_samples = int(model_cfg["n_samples"])
    points = model_cfg.get("grid_points")
    if points:
        unknown = sorted(set(points) - set(ranged))
        if unknown:
            raise SamplingError(
                f"grid_points names {', '.join(unknown)}, which are not ranged parameters "
                f"(ranged: {', '.join(ranged) or 'none'})"
            )
        counts = {name: int(points.get(name, 1)) for name in ranged}
        if math.prod(counts.values()) != n_samples:
            raise SamplingError(
                f"grid_points {counts} give {math.prod(counts.values())} grid points but n_samples is {n_samples}"
            )
    else:
        dims = len(ranged)
        per_axis = round(n_samples ** (1.0 / dims)) if dims else 1
        if per_axis**dims != n_samples:
            raise SamplingError(
                f"sampler 'grid' with {dims} ranged parameters needs n_samples = k**{dims} "
                f"(e.g. {max(per_axis, 2) ** dims}) or explicit grid_points; got n_samples={n_samples}"
            )
        counts = dict.fromkeys(ranged, per_axis)
    return {
        name: (np.linspace(low, high, counts[name]) if counts[name] > 1 else np.array([(low + high) / 2]))
        for name, (low, high) in ranged.items()
    }


def _grid_sets(model_name: str, model_cfg: Mapping[str, Any]) -> np.ndarray:
    """The cartesian grid as rows in model parameter order (first ranged parameter slowest); every point must be
    valid."""
    from density_engine.models import get_model_class

    model_cls = get_model_class(model_name)
    names, ranged, fixed = parameter_space(model_name, model_cfg)
    axes = _grid_axes(model_cfg, ranged)
    mesh = np.meshgrid(*axes.values(), indexing="ij") if axes else []
    points = np.stack([m.ravel() for m in mesh], axis=1) if axes else np.empty((1, 0))
    rows = _full_rows(names, ranged, fixed, points)
    raise_first_invalid(model_cls, names, rows, lambda i, params: f"grid point {params} is invalid")
    return rows


def count_parameter_sets(model_name: str, model_cfg: Mapping[str, Any], base_dir: str | Path = ".") -> int:
    """Number of parameter sets a model config produces, without sampling (a file is only counted)."""
    sampler = model_cfg.get("sampler", "sobol")
    if isinstance(sampler, Mapping):
        return len(read_parameter_file(model_name, model_cfg, base_dir))
    return int(model_cfg["n_samples"])


def sample_parameter_sets(model_name: str, model_cfg: Mapping[str, Any], base_dir: str | Path = ".") -> pd.DataFrame:
    """All parameter sets of a model config: ``param_id`` (int64) then one float64 column per model parameter."""
    import pandas as pd

    sampler = model_cfg.get("sampler", "sobol")
    if isinstance(sampler, Mapping):
        return read_parameter_file(model_name, model_cfg, base_dir)
    names, _ranged, _fixed = parameter_space(model_name, model_cfg)
    n_samples = int(model_cfg["n_samples"])
    if sampler == "grid":
        sets = _grid_sets(model_name, model_cfg)
    else:
        sets, draws = _sequence_sets(model_name, model_cfg, n_samples)
        if len(sets) < n_samples:
            raise SamplingError(
                f"only {len(sets)} of {draws} {sampler} draws are valid parameter sets of {model_name}, "
                f"fewer than n_samples={n_samples}; narrow the parameter ranges"
            )
    frame = pd.DataFrame(sets, columns=names, dtype="float64")
    frame.insert(0, "param_id", np.arange(len(frame), dtype=np.int64))
    return frame


def check_sampler(model_name: str, model_cfg: Mapping[str, Any], base_dir: str | Path = ".") -> None:
    """Cheap feasibility check at config time: file/grid fully checked; sequence samplers probe the first draws."""
    sampler = model_cfg.get("sampler", "sobol")
    if isinstance(sampler, Mapping):
        read_parameter_file(model_name, model_cfg, base_dir)
        return
    _names, ranged, _fixed = parameter_space(model_name, model_cfg)
    if sampler == "grid":
        _grid_sets(model_name, model_cfg)
        return
    _check_corners(model_name, model_cfg)
    sets, draws = _sequence_sets(model_name, model_cfg, 1, max_draws=PROBE_DRAWS)
    if not len(sets):
        detail = "the fixed parameters are invalid" if not ranged else f"none of the first {draws} draws is valid"
        raise SamplingError(f"no valid parameter set: {detail}; {_first_draw_reason(model_name, model_cfg)}")


def _check_corners(model_name: str, model_cfg: Mapping[str, Any]) -> None:
    """For a model whose joint check is monotone in each parameter (``Model.joint_check_monotone``), every draw of the
    ranges is valid iff every corner is: refuse ranges with an invalid corner instead of silently dropping the draws
    near it (which would skew the design)."""
    from density_engine.models import get_model_class

    model_cls = get_model_class(model_name)
    if not model_cls.joint_check_monotone:
        return
    names, ranged, fixed = parameter_space(model_name, model_cfg)
    for corner in itertools.product(*ranged.values()):
        params = {**fixed, **dict(zip(ranged, corner, strict=True))}
        try:
            model_cls.check_parameters(params)
        except ValueError as exc:
            shown = ", ".join(f"{name}={params[name]:g}" for name in names)
            keys = ", ".join(f"parameters.{name}" for name in ranged)
            raise SamplingError(f"the corner ({shown}) of the configured ranges ({keys}) is invalid: {exc}") from None


def _first_draw_reason(model_name: str, model_cfg: Mapping[str, Any]) -> str:
    """The model's own message (e.g. "persistence ... must be < 1, got 1.0786") for the sampler's first draw."""
    from density_engine.models import get_model_class

    names, ranged, fixed = parameter_space(model_name, model_cfg)
    unit = next(_unit_batches(model_cfg.get("sampler", "sobol"), len(ranged), int(model_cfg["seed"]), 1))
    lows = np.array([ranged[n][0] for n in ranged])
    widths = np.array([ranged[n][1] - ranged[n][0] for n in ranged])
    row = _full_rows(names, ranged, fixed, lows + unit * widths)[0] if ranged else [fixed[n] for n in names]
    params = dict(zip(names, map(float, row), strict=True))
    try:
        get_model_class(model_name).check_parameters(params)
    except ValueError as exc:
        shown = ", ".join(f"{name}={value:.4g}" for name, value in params.items())
        return f"the first draw ({shown}) fails: {exc}"
    return f"checked with {model_name}.check_parameters"  # pragma: no cover - the first draw was invalid
