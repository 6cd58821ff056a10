"""Workflow configuration: loading, JSON-schema validation and validation against the models' own domains.

The schema lives in ``workflow/schemas/config.schema.yaml`` (also used by ``snakemake.utils.validate`` in the
Snakefile). :func:`validate_config` turns the first problem into one :class:`ConfigError` whose message names the key
(``models.rough_heston.parameters.H``) and the allowed values, so a bad config stops the workflow before any job starts.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from density_engine.engine.counters import MAX_WORD
from density_engine.models.time_grid import TimeGridError
from density_engine.numeric import as_real
from density_engine.parameter_grid import apply_defaults  # shared with the dataset layer; re-exported here

#: Default length of one model step for the rough models (one trading day in years).
DEFAULT_DT = 1.0 / 252.0
SAMPLER_NAMES = ("sobol", "lhs", "random", "grid")
_SCHEMA_RELATIVE = Path("workflow") / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    """A workflow configuration problem; the message names the offending key."""


def find_schema(start: Path | None = None) -> Path:
    """Locate ``workflow/schemas/config.schema.yaml`` relative to ``start`` (default: cwd) or the source checkout."""
    candidates = [(start or Path.cwd()) / _SCHEMA_RELATIVE, Path(__file__).resolve().parents[2] / _SCHEMA_RELATIVE]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise ConfigError(f"config schema not found (looked for {', '.join(str(c) for c in candidates)})")


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping, raising :class:`ConfigError` naming the file on any problem."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError as exc:
        raise ConfigError(f"config file {path} does not exist") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must contain a mapping at the top level")
    return data


def _key(path: Sequence[Any]) -> str:
    return ".".join(str(p) for p in path) or "<top level>"


def _describe_schema_error(error: Any) -> str:
    """One readable line for a jsonschema ValidationError: the key, what is wrong, what is allowed."""
    path = list(error.absolute_path)
    key = _key(path)
    schema = error.schema
    if error.validator == "additionalProperties":
        allowed = sorted(schema.get("properties", {}))
        unexpected = sorted(set(error.instance) - set(allowed))
        keys = ", ".join(repr(_key([*path, u])) for u in unexpected)
        return f"unknown config key {keys}; allowed keys at {key!s}: {', '.join(allowed)}"
    if error.validator == "enum" and "propertyNames" in error.schema_path:
        allowed = ", ".join(str(v) for v in error.validator_value)
        return f"unknown model {_key([*path, error.instance])!r}; allowed models: {allowed}"
    if error.validator == "enum":
        allowed = ", ".join(str(v) for v in error.validator_value)
        return f"config key {key}: {error.instance!r} is not allowed; allowed values: {allowed}"
    if error.validator == "propertyNames":
        allowed = ", ".join(schema["propertyNames"].get("enum", []))
        bad = [name for name in error.instance if name not in schema["propertyNames"].get("enum", [])]
        return f"unknown model {', '.join(repr(_key([*path, b])) for b in bad)}; allowed models: {allowed}"
    if error.validator == "required":
        missing = [r for r in error.validator_value if r not in error.instance]
        return f"missing required config key {', '.join(repr(_key([*path, m])) for m in missing)}"
    if error.validator == "oneOf" and path and path[-1] == "sampler":
        return (
            f"config key {key}: {error.instance!r} is not a sampler; allowed values: "
            f"{', '.join(SAMPLER_NAMES)} or {{file: resources/<name>.csv}}"
        )
    if error.validator == "oneOf" and len(path) >= 2 and path[-2] == "parameters":
        return f"config key {key}: {error.instance!r} must be a number (fixed) or a [low, high] range"
    if error.validator == "type":
        return f"config key {key}: {error.instance!r} must be of type {error.validator_value}"
    return f"config key {key}: {error.message}"


def _substeps_replaced(prefix: str) -> str:
    return (
        f"config key {prefix}.substeps: replaced by {prefix}.time_grid (every horizon on its own grid of "
        "`steps` fine steps, Richardson-extrapolated; config/README.md, docs/accuracy.md)"
    )


def validate_schema(config: Mapping[str, Any], schema_path: str | Path | None = None) -> None:
    """Validate ``config`` against the JSON schema; raise :class:`ConfigError` describing the first problem (the
    retired key ``substeps`` is named with its replacement rather than as an unknown key)."""
    import jsonschema

    models = config.get("models") if isinstance(config, Mapping) else None
    for name, model_cfg in (models or {}).items() if isinstance(models, Mapping) else ():
        if isinstance(model_cfg, Mapping) and "substeps" in model_cfg:
            raise ConfigError(_substeps_replaced(f"models.{name}"))

    schema = load_yaml(schema_path or find_schema())
    validator_cls = jsonschema.validators.validator_for(schema)
    validator = validator_cls(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: (len(list(e.absolute_path)), str(e.absolute_path)))
    if errors:
        raise ConfigError(_describe_schema_error(errors[0]))


def _in_domain(value: float, parameter: Any) -> bool:
    lower_ok = value > parameter.lower if parameter.lower_open else value >= parameter.lower
    upper_ok = value < parameter.upper if parameter.upper_open else value <= parameter.upper
    return bool(lower_ok and upper_ok and math.isfinite(value))


def _domain_text(parameter: Any) -> str:
    if hasattr(parameter, "bounds_text"):
        return parameter.bounds_text()
    left = "(" if parameter.lower_open else "["
    right = ")" if parameter.upper_open else "]"
    return f"{left}{parameter.lower}, {parameter.upper}{right}"


def model_settings(model_name: str, model_cfg: Mapping[str, Any]) -> tuple[float | None, dict[str, Any] | None]:
    """The (dt, time_grid) a chunk spec carries: the configured ``dt`` (default one trading day) and the checked
    per-horizon grid policy (:meth:`~density_engine.models.base.Model.time_grid_policy`) of a continuous-time model;
    (None, None) for a discrete-time model."""
    from density_engine.models import get_model_class

    model_cls = get_model_class(model_name)
    defaults = dict(getattr(model_cls, "default_settings", {}) or {})
    dt = float(model_cfg.get("dt", defaults.get("dt", DEFAULT_DT))) if "dt" in model_cls.settings else None
    policy = model_cls.time_grid_policy(model_cfg.get("time_grid"))
    return dt, None if policy is None else policy.to_dict()


def check_model_config(model_name: str, model_cfg: Mapping[str, Any], base_dir: str | Path = ".") -> None:
    """Check one model's config against the model's domain and settings; raise :class:`ConfigError` naming the key."""
    from density_engine.models import get_model_class
    from density_engine.workflow import samplers

    prefix = f"models.{model_name}"
    model_cls = get_model_class(model_name)
    by_name = {p.name: p for p in model_cls.parameters}
    for name, value in model_cfg.get("parameters", {}).items():
        key = f"{prefix}.parameters.{name}"
        if name not in by_name:
            raise ConfigError(f"unknown parameter {key}; parameters of {model_name}: {', '.join(by_name)}")
        parameter = by_name[name]
        ranged = isinstance(value, list | tuple)
        numbers = [as_real(v) for v in value] if ranged else [as_real(value)]
        if None in numbers or len(numbers) != (2 if ranged else 1):
            raise ConfigError(
                f"config key {key}: {value!r} must be a number (fixed) or a [low, high] range of numbers "
                "(no strings or booleans)"
            )
        if ranged:
            low, high = numbers
            if not low <= high:
                raise ConfigError(f"config key {key}: range [{low}, {high}] must have low <= high")
            for bound in (low, high):
                if not _in_domain(bound, parameter):
                    raise ConfigError(
                        f"config key {key}: range [{low}, {high}] leaves the domain of {name}, "
                        f"{_domain_text(parameter)}"
                    )
        elif not _in_domain(float(value), parameter):
            raise ConfigError(f"config key {key}: {value} is outside the domain of {name}, {_domain_text(parameter)}")
    accepted = tuple(model_cls.settings)
    if "substeps" in model_cfg:
        raise ConfigError(_substeps_replaced(prefix))
    for setting in ("dt", "time_grid"):
        if setting in model_cfg and setting not in accepted and not (setting == "time_grid" and "dt" in accepted):
            raise ConfigError(
                f"config key {prefix}.{setting}: {model_name} is a discrete-time model without {setting!r}; "
                f"its settings: {', '.join(accepted) or 'none'}"
            )
    try:
        model_cls.time_grid_policy(model_cfg.get("time_grid"))
    except TimeGridError as exc:
        raise ConfigError(f"config key {prefix}.time_grid.{exc}") from None
    for key, value in (("seed", model_cfg.get("seed")), ("n_samples", model_cfg.get("n_samples"))):
        if isinstance(value, int) and value > MAX_WORD + (key == "n_samples"):
            raise ConfigError(
                f"config key {prefix}.{key}: {value} is too large; seeds and parameter ids are 32-bit Philox key words "
                f"(at most {MAX_WORD})"
            )
    horizons = list(model_cfg["horizons"])
    if any(b <= a for a, b in itertools.pairwise(horizons)):
        raise ConfigError(f"config key {prefix}.horizons: {horizons} must be strictly increasing")
    sampler = model_cfg.get("sampler", "sobol")
    if not isinstance(sampler, Mapping) and "n_samples" not in model_cfg:
        raise ConfigError(f"missing required config key '{prefix}.n_samples' (needed by sampler {sampler!r})")
    if "grid_points" in model_cfg and sampler != "grid":
        raise ConfigError(f"config key {prefix}.grid_points: only allowed with sampler 'grid' (sampler is {sampler!r})")
    try:
        samplers.check_sampler(model_name, model_cfg, base_dir)
    except samplers.SamplingError as exc:
        raise ConfigError(f"{prefix}: {exc}") from exc


def validate_config(
    config: Mapping[str, Any], schema_path: str | Path | None = None, base_dir: str | Path = "."
) -> dict[str, Any]:
    """Validate a whole workflow config (schema, model domains, then the run size: :func:`~density_engine.workflow.
    estimate.check_run_size`); return it with defaults filled in."""
    validate_schema(config, schema_path)
    cfg = apply_defaults(config)
    from density_engine.models import model_names

    known = set(model_names())
    for model_name, model_cfg in cfg["models"].items():
        if model_name not in known:
            raise ConfigError(f"unknown model 'models.{model_name}'; allowed models: {', '.join(sorted(known))}")
        check_model_config(model_name, model_cfg, base_dir)
    if not enabled_models(cfg):
        raise ConfigError("no model is enabled: set models.<name>.enabled: true for at least one model")
    from density_engine.workflow.estimate import RunSizeError, check_run_size

    try:
        check_run_size(cfg, base_dir)
    except RunSizeError as exc:
        raise ConfigError(str(exc)) from None
    return cfg


def enabled_models(config: Mapping[str, Any]) -> list[str]:
    """Names of the enabled models, in config order."""
    return [name for name, model_cfg in config["models"].items() if model_cfg.get("enabled", True)]
