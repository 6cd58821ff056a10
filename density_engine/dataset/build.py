"""Build the Hugging Face dataset folder: per-model shards (+ manifests), then the card and provenance."""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import yaml

from density_engine.dataset.card import write_card
from density_engine.dataset.inputs import DatasetInputError, load_model_table
from density_engine.dataset.shards import ModelManifest, write_manifest, write_model_shards


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
) -> ModelManifest:
    """Validate ``inputs`` (chunks or the merged file of ``model``), write its shards, and the manifest if asked."""
    manifest = write_model_shards(load_model_table(inputs, model=model), folder, params_per_shard)
    if manifest_path is not None:
        write_manifest(manifest, manifest_path)
    return manifest


def prune_models(folder: str | Path, keep: Iterable[str]) -> list[str]:
    """Remove ``data/<model>/`` folders of models that are no longer part of the dataset; return their names."""
    data = Path(folder) / "data"
    keep = set(keep)
    removed = []
    if data.is_dir():
        for child in sorted(data.iterdir()):
            if child.is_dir() and child.name not in keep:
                shutil.rmtree(child)
                removed.append(child.name)
    return removed


def build_card(
    folder: str | Path, manifests: Sequence[ModelManifest], config: Mapping[str, Any] | None = None
) -> tuple[Path, Path]:
    """Write README.md and provenance.json for exactly these models (other models' shards are removed)."""
    prune_models(folder, [m.model for m in manifests])
    return write_card(folder, manifests, config)


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
    """Build the whole folder from density files of any models (grouped by their ``model`` column)."""
    grouped: dict[str, list[Path]] = {}
    for path in inputs:
        grouped.setdefault(model_of(path), []).append(Path(path))
    manifests = []
    for model, paths in sorted(grouped.items()):
        manifest_path = Path(manifest_dir) / f"{model}.json" if manifest_dir else None
        manifests.append(build_model(model, paths, folder, manifest_path, params_per_shard))
    build_card(folder, manifests, config)
    return manifests
