"""What a model's workflow config says about its parameter sets: the config defaults, the parameter space (ranged and
fixed parameters) and an explicit parameter file.

Shared by the workflow (which samples the grid, :mod:`density_engine.workflow.samplers`) and the dataset layer (which
checks the data against the config), so it sits below both: it imports only the model declarations (torch-free).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd


def apply_defaults(config: Mapping[str, Any]) -> dict[str, Any]:
    """Return a deep copy of ``config`` with the workflow defaults filled in (same defaults as the schema)."""
    cfg = copy.deepcopy(dict(config))
    cfg.setdefault("device", "auto")
    resources = cfg.setdefault("resources", {})
    resources.setdefault("mem_mb", 2000)
    resources.setdefault("runtime", 30)
    for model_cfg in cfg.get("models", {}).values():
        model_cfg.setdefault("enabled", True)
        model_cfg.setdefault("sampler", "sobol")
        model_cfg.setdefault("num_quantiles", 512)
        model_cfg.setdefault("parameters", {})
    return cfg


class SamplingError(ValueError):
    """The sampler cannot produce the requested parameter sets (message names the cause)."""


def parameter_space(model_name: str, model_cfg: Mapping[str, Any]) -> tuple[list[str], dict[str, tuple], dict]:
    """Split the model's parameters into ranged ``{name: (low, high)}`` and fixed ``{name: value}``.

    Returns (all parameter names in model order, ranged, fixed). Parameters absent from the config use the model's
    ``default_range``.
    """
    from density_engine.models import get_model_class

    configured = model_cfg.get("parameters", {}) or {}
    names: list[str] = []
    ranged: dict[str, tuple[float, float]] = {}
    fixed: dict[str, float] = {}
    for parameter in get_model_class(model_name).parameters:
        names.append(parameter.name)
        value = configured.get(parameter.name, parameter.default_range)
        if isinstance(value, list | tuple):
            low, high = float(value[0]), float(value[1])
            if low == high:
                fixed[parameter.name] = low
            else:
                ranged[parameter.name] = (low, high)
        else:
            fixed[parameter.name] = float(value)
    return names, ranged, fixed


def valid_rows(model_cls: Any, names: list[str], values: np.ndarray) -> np.ndarray:
    """Boolean mask of the rows of ``values`` (one column per name in ``names``) that ``check_parameters`` accepts."""
    return model_cls.valid_mask({name: values[:, i] for i, name in enumerate(names)})


def raise_first_invalid(model_cls: Any, names: list[str], rows: np.ndarray, describe: Any) -> None:
    """Raise ``SamplingError`` (``describe(row index, params)``: the message start) for the first invalid row."""
    invalid = np.flatnonzero(~valid_rows(model_cls, names, rows))
    for i in invalid[:1].tolist():
        params = dict(zip(names, rows[i].tolist(), strict=True))
        try:
            model_cls.check_parameters(params)
        except ValueError as exc:
            raise SamplingError(f"{describe(i, params)}: {exc}") from exc
        raise SamplingError(f"{describe(i, params)}")  # pragma: no cover - the mask and the scalar check agree


def read_parameter_file(model_name: str, model_cfg: Mapping[str, Any], base_dir: str | Path = ".") -> pd.DataFrame:
    """Read and check an explicit parameter CSV; return a frame with ``param_id`` plus all parameters (model order)."""
    import pandas as pd

    from density_engine.models import get_model_class

    model_cls = get_model_class(model_name)
    path = Path(base_dir) / model_cfg["sampler"]["file"]
    if not path.is_file():
        raise SamplingError(f"parameter file {path} does not exist")
    try:
        frame = pd.read_csv(path)
    except (ValueError, OSError) as exc:
        raise SamplingError(f"parameter file {path} cannot be read as CSV: {exc}") from exc
    names, _ranged, fixed = parameter_space(model_name, {"parameters": model_cfg.get("parameters", {})})
    configured = model_cfg.get("parameters", {}) or {}
    unknown = sorted(set(frame.columns) - {*names, "param_id"})
    if unknown:
        raise SamplingError(
            f"parameter file {path}: unknown column(s) {', '.join(unknown)}; allowed: param_id, {', '.join(names)}"
        )
    for name in names:
        if name not in frame.columns:
            value = configured.get(name)
            if value is None or isinstance(value, list | tuple):
                raise SamplingError(
                    f"parameter file {path}: column {name!r} is missing and models.{model_name}.parameters.{name} "
                    "is not fixed to a number"
                )
            frame[name] = fixed[name]
    if len(frame) == 0:
        raise SamplingError(f"parameter file {path} has no rows")
    if "param_id" in frame.columns:
        ids = frame["param_id"]
        if not pd.api.types.is_integer_dtype(ids) or (ids < 0).any() or ids.duplicated().any():
            raise SamplingError(f"parameter file {path}: param_id must be unique non-negative integers")
        if (ids > 0xFFFFFFFF).any():
            raise SamplingError(f"parameter file {path}: param_id must be below 2**32 (a Philox key word)")
    else:
        frame.insert(0, "param_id", np.arange(len(frame), dtype=np.int64))
    frame = frame[["param_id", *names]].astype({"param_id": "int64", **dict.fromkeys(names, "float64")})
    n_samples = model_cfg.get("n_samples")
    if n_samples is not None and int(n_samples) != len(frame):
        raise SamplingError(f"parameter file {path} has {len(frame)} rows but n_samples is {n_samples}")
    raise_first_invalid(
        model_cls,
        names,
        frame[names].to_numpy(dtype=np.float64),
        lambda i, _params: f"parameter file {path}, line {i + 2}",
    )
    return frame.reset_index(drop=True)
