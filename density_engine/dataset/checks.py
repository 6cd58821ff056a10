"""Checks of a model's data against its workflow config: the dataset must hold the configured grid, nothing less.

A partial grid (a parameter set missing, a horizon missing) or values outside the configured ranges would give a card
that contradicts itself ("8 parameter sets requested; 4 parameter sets"), so the build stops with a message naming
the model and the config key.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from density_engine.dataset.inputs import DatasetInputError
from density_engine.dataset.shards import ModelManifest, id_runs

# Relative slack on the range checks: a sampled value low + u (high - low) may round one ulp past a bound.
RANGE_TOLERANCE = 1e-12


def expected_param_ids(
    model: str, model_config: Mapping[str, Any], base_dir: str | Path = "."
) -> list[list[int]] | None:
    """The param_id runs the config asks for: ``0..n_samples-1``, or the ids of the sampler's parameter file; ``None``
    when the config does not say (no ``n_samples`` and no file)."""
    sampler = model_config.get("sampler", "sobol")
    if isinstance(sampler, Mapping):
        from density_engine.parameter_grid import SamplingError, read_parameter_file

        try:
            frame = read_parameter_file(model, model_config, base_dir)
        except SamplingError as exc:
            raise DatasetInputError(f"models.{model}.sampler: {exc}") from exc
        return id_runs(int(v) for v in frame["param_id"])
    n_samples = model_config.get("n_samples")
    return [[0, int(n_samples) - 1]] if n_samples is not None else None


def _runs_text(runs: list[list[int]], limit: int = 6) -> str:
    parts = [str(a) if a == b else f"{a}–{b}" for a, b in runs[:limit]]
    return ", ".join(parts) + (f", … ({len(runs) - limit} more)" if len(runs) > limit else "")


def _id_set(runs: list[list[int]]) -> set[int]:
    return {i for first, last in runs for i in range(first, last + 1)}


def check_param_ids(manifest: ModelManifest, model_config: Mapping[str, Any], base_dir: str | Path = ".") -> None:
    """The data's param_ids must be exactly the configured ones."""
    expected = expected_param_ids(manifest.model, model_config, base_dir)
    if expected is None or expected == manifest.param_id_runs:
        return
    have, want = _id_set(manifest.param_id_runs), _id_set(expected)
    missing, extra = id_runs(want - have), id_runs(have - want)
    from_file = isinstance(model_config.get("sampler"), Mapping)
    key = f"models.{manifest.model}.{'sampler.file' if from_file else 'n_samples'}"
    problems = []
    if missing:
        problems.append(f"missing param_id(s) {_runs_text(missing)}")
    if extra:
        problems.append(f"unexpected param_id(s) {_runs_text(extra)}")
    raise DatasetInputError(
        f"model {manifest.model!r}: the data holds {manifest.param_sets} parameter set(s), {key} asks for "
        f"{len(want)}: {'; '.join(problems)} (a chunk missing from the merge? inputs: "
        f"{', '.join(manifest.sources[:3])})"
    )


def check_horizons(manifest: ModelManifest, model_config: Mapping[str, Any]) -> None:
    """Every parameter set has every horizon (checked when the manifest is made), and those are the configured ones."""
    configured = model_config.get("horizons")
    if configured is not None and sorted(int(h) for h in configured) != manifest.horizons:
        raise DatasetInputError(
            f"model {manifest.model!r}: the data has horizons {manifest.horizons}, models.{manifest.model}.horizons "
            f"is {list(configured)} (inputs: {', '.join(manifest.sources[:3])})"
        )


def check_parameter_ranges(manifest: ModelManifest, model_config: Mapping[str, Any]) -> None:
    """Observed parameter values must lie in the configured ``[low, high]`` (or equal a fixed value); parameters the
    config omits are sampled from the model's default range. Not checked for a parameter file (it sets the values)."""
    if isinstance(model_config.get("sampler", "sobol"), Mapping):
        return
    from density_engine.parameter_grid import parameter_space

    configured = model_config.get("parameters") or {}
    _names, ranged, fixed = parameter_space(manifest.model, model_config)
    for name, (low_seen, high_seen) in manifest.parameter_ranges.items():
        if name in ranged:
            low, high = ranged[name]
        elif name in fixed:
            low = high = fixed[name]
        else:
            continue
        slack = RANGE_TOLERANCE * max(1.0, abs(low), abs(high))
        if low_seen < low - slack or high_seen > high + slack:
            origin = "" if name in configured else " (omitted from the config: the model's default range)"
            wanted = f"[{low:g}, {high:g}]" if low != high else f"the fixed value {low:g}"
            raise DatasetInputError(
                f"model {manifest.model!r}: parameter {name!r} spans [{low_seen:.6g}, {high_seen:.6g}] in the data, "
                f"outside models.{manifest.model}.parameters.{name} = {wanted}{origin} "
                f"(inputs: {', '.join(manifest.sources[:3])})"
            )


def check_time_grid(manifest: ModelManifest, model_config: Mapping[str, Any]) -> None:
    """The data's time grids (the chunks' ``time_grid`` metadata) are the configured policy (the card states it)."""
    from density_engine.models import get_model_class, model_names

    seen = manifest.file_metadata.get("time_grid")
    if seen is None or manifest.model not in model_names():
        return
    policy = get_model_class(manifest.model).time_grid_policy(model_config.get("time_grid"))
    wanted = None if policy is None else policy.to_dict()
    if seen != [wanted]:
        raise DatasetInputError(
            f"model {manifest.model!r}: the data was simulated on time grid(s) {seen}, models.{manifest.model}."
            f"time_grid gives {wanted} (inputs: {', '.join(manifest.sources[:3])})"
        )


def check_against_config(
    manifest: ModelManifest, model_config: Mapping[str, Any] | None, base_dir: str | Path = "."
) -> None:
    """All checks of the model's data against its config (nothing to check without a config for the model)."""
    if not model_config:
        return
    check_horizons(manifest, model_config)
    check_time_grid(manifest, model_config)
    check_param_ids(manifest, model_config, base_dir)
    check_parameter_ranges(manifest, model_config)
