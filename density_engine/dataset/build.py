"""Build the Hugging Face dataset folder: per-model shards (+ manifests), then the card and provenance."""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import yaml

from density_engine.dataset.card import build_provenance, write_card
from density_engine.dataset.checks import check_against_config
from density_engine.dataset.inputs import DatasetInputError, load_model_table
from density_engine.dataset.shards import ModelManifest, describe_model, write_manifest, write_model_shards


def read_config(path: str | Path | None) -> dict[str, Any] | None:
    """The workflow config as a dict (``None`` for no path); ``ValueError`` naming the file or the bad ``hf`` key."""
    if path is None:
        return None
    path = Path(path)
    try:
        config = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"{path}: cannot read the config ({exc})") from exc
    return check_config(config, str(path))


def check_config(config: Any, source: str) -> dict[str, Any]:
    """Check the parts of a config the dataset stage reads (a mapping; ``hf`` keys' types); return it."""
    if not isinstance(config, dict):
        raise ValueError(f"{source}: the config must be a mapping")
    hf = config.get("hf") or {}
    if not isinstance(hf, dict):
        raise ValueError(f"{source}: 'hf' must be a mapping")
    for key, kind in (("repo_id", str), ("tag", str), ("revision", str), ("private", bool)):
        if key in hf and hf[key] is not None and not isinstance(hf[key], kind):
            raise ValueError(f"{source}: hf.{key} must be a {kind.__name__}, got {hf[key]!r}")
    if not isinstance(config.get("models", {}), dict):
        raise ValueError(f"{source}: 'models' must be a mapping")
    return config


def build_model(
    model: str,
    inputs: Sequence[str | Path],
    folder: str | Path,
    manifest_path: str | Path | None = None,
    params_per_shard: int | None = None,
    model_config: Mapping[str, Any] | None = None,
) -> ModelManifest:
    """Validate ``inputs`` (chunks or the merged file of ``model``), write its shards, and the manifest if asked.

    Every parameter set must have every horizon; with ``model_config`` (the model's ``models:`` entry) the data must
    also be the configured grid (:func:`~density_engine.dataset.checks.check_against_config`). All checks run before
    anything is written.
    """
    data = load_model_table(inputs, model=model)
    manifest = describe_model(data, params_per_shard)
    check_against_config(manifest, model_config)
    manifest = write_model_shards(data, folder, manifest=manifest)
    if manifest_path is not None:
        write_manifest(manifest, manifest_path)
    return manifest


def prune_models(folder: str | Path, keep: Iterable[str], manifest_dirs: Iterable[str | Path] = ()) -> list[str]:
    """Remove ``data/<model>/`` folders of models that are no longer part of the dataset, and those models'
    ``<model>.json`` manifests in ``manifest_dirs`` (a stale manifest would make the workflow skip re-building the
    model's shards when it is enabled again); return the pruned model names."""
    from density_engine.models import model_names

    data = Path(folder) / "data"
    keep = set(keep)
    removed = set()
    if data.is_dir():
        for child in sorted(data.iterdir()):
            if child.is_dir() and child.name not in keep:
                shutil.rmtree(child)
                removed.add(child.name)
    for directory in manifest_dirs:
        for name in sorted(set(model_names()) - keep):
            manifest = Path(directory) / f"{name}.json"
            if manifest.is_file():
                manifest.unlink()
                removed.add(name)
    return sorted(removed)


def build_card(
    folder: str | Path,
    manifests: Sequence[ModelManifest],
    config: Mapping[str, Any] | None = None,
    manifest_dirs: Iterable[str | Path] = (),
) -> tuple[Path, Path]:
    """Write README.md and provenance.json for exactly these models (checked first, see
    :func:`~density_engine.dataset.card.write_card`), then remove other models' shards and manifests."""
    paths = write_card(folder, manifests, config)
    prune_models(folder, [m.model for m in manifests], manifest_dirs)
    return paths


def model_of(path: str | Path) -> str:
    """The model named in a density file's ``model`` column (first row); ``DatasetInputError`` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise DatasetInputError(f"{path}: input file not found (was the chunk simulated and merged?)")
    try:
        column = pq.ParquetFile(path).read_row_group(0, columns=["model"]).column("model")
    except Exception as exc:
        raise DatasetInputError(f"{path}: not a readable parquet file with a 'model' column ({exc})") from exc
    if len(column) == 0:
        raise DatasetInputError(f"{path}: no rows")
    return str(column[0].as_py())


def build_dataset(
    inputs: Sequence[str | Path],
    folder: str | Path,
    config: Mapping[str, Any] | None = None,
    params_per_shard: int | None = None,
    manifest_dir: str | Path | None = None,
) -> list[ModelManifest]:
    """Build the whole folder from density files of any models (grouped by their ``model`` column).

    Every model is loaded and checked (inputs, complete horizons, the config's grid and ranges) before any shard of
    any model is written, so bad input leaves the folder as it was.
    """
    grouped: dict[str, list[Path]] = {}
    for path in inputs:
        grouped.setdefault(model_of(path), []).append(Path(path))
    prepared = []
    for model, paths in sorted(grouped.items()):
        data = load_model_table(paths, model=model)
        prepared.append((data, describe_model(data, params_per_shard)))
    build_provenance([manifest for _, manifest in prepared], config)  # the card's checks, before writing
    manifests = []
    for data, manifest in prepared:
        manifests.append(write_model_shards(data, folder, manifest=manifest))
        if manifest_dir is not None:
            write_manifest(manifest, Path(manifest_dir) / f"{data.model}.json")
    build_card(folder, manifests, config, [manifest_dir] if manifest_dir is not None else [])
    return manifests
