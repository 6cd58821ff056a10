"""Write the parquet shards of one model into the dataset folder, with stable names and deterministic bytes.

A shard holds a fixed param_id range, ``data/<model>/params-<first>-<last>.parquet``, so adding parameter sets only
touches the shard(s) whose range they fall in. Same rows → same bytes: rows are sorted by (param_id, horizon), the
schema carries no file metadata besides pyarrow's ``ARROW:schema``, and the writer options are fixed
(:func:`writer_options`).
Alongside the shards, a JSON *manifest* per model records what was written and the statistics the card needs.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from density_engine.atomic import write_bytes_atomic
from density_engine.dataset.inputs import DatasetInputError, ModelTable, describe_metadata
from density_engine.engine.chunkio import MOMENT_COLUMNS, quantile_matrix

MANIFEST_VERSION = 1
# About 2 KiB per row (512 float32 + scalars): 100k rows ≈ 200 MB in memory, ≈ 150 MB on disk — inside the
# 100–500 MB shard range of the Hub's recommendations (hf-hub.md §1.3).
TARGET_ROWS_PER_SHARD = 100_000
# 25k rows ≈ 50 MB uncompressed per row group: inside the 16k–50k rows (32–100 MB) range and far under the Dataset
# Viewer's ~286 MiB row-group cap.
ROW_GROUP_ROWS = 25_000
# Levels at which the card reports the Monte Carlo standard error of the quantiles.
REPORTED_LEVELS = (0.001, 0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99, 0.999)


def writer_options(parameter_names: list[str]) -> dict[str, Any]:
    """Fixed ``pq.write_table`` options (zstd; byte-stream-split on floats; CDC and page index like ``datasets``).

    Parameter columns repeat once per horizon, so they keep dictionary encoding; the quantile vector and the moments
    use BYTE_STREAM_SPLIT (measured on sorted float32 quantiles: 0.75x raw bytes with zstd+BSS vs 0.97x zstd alone).
    """
    split = {"quantiles.list.element": "BYTE_STREAM_SPLIT", **dict.fromkeys(MOMENT_COLUMNS, "BYTE_STREAM_SPLIT")}
    return {
        "compression": "zstd",
        "compression_level": 3,
        "use_dictionary": ["model", "param_id", *parameter_names, "horizon", "num_paths", "seed", "dt", "substeps"],
        "column_encoding": split,
        "row_group_size": ROW_GROUP_ROWS,
        "use_content_defined_chunking": True,
        "write_page_index": True,
        "write_statistics": True,
        "store_schema": True,
    }


@dataclass
class ShardInfo:
    """One written shard."""

    path: str  # relative to the dataset folder, POSIX separators
    first_param_id: int
    last_param_id: int
    rows: int
    bytes: int
    sha256: str


@dataclass
class ModelManifest:
    """What the build of one model wrote, plus the statistics the dataset card and provenance need."""

    model: str
    params_per_shard: int
    num_quantiles: int
    parameter_names: list[str]
    rows: int
    param_sets: int
    param_id_range: list[int]
    horizons: list[int]
    num_paths: list[int]
    seeds: list[int]
    dt: list[float | None]
    substeps: list[int]
    parameter_ranges: dict[str, list[float]]
    mc_error: dict[str, Any]
    features: list[dict[str, Any]]
    in_memory_bytes: int
    shards: list[ShardInfo]
    sources: list[str]
    file_metadata: dict[str, Any]
    manifest_version: int = MANIFEST_VERSION

    def to_json(self) -> str:
        """Deterministic JSON text (sorted keys)."""
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> ModelManifest:
        """Inverse of :meth:`to_json`."""
        data = json.loads(text)
        data["shards"] = [ShardInfo(**shard) for shard in data["shards"]]
        return cls(**data)

    @classmethod
    def load(cls, path: str | Path) -> ModelManifest:
        """Read a manifest file; ``ValueError`` naming the file if it is not one."""
        path = Path(path)
        try:
            return cls.from_json(path.read_text())
        except (OSError, ValueError, TypeError, KeyError) as exc:
            raise ValueError(f"{path}: not a dataset manifest ({exc})") from exc


def default_params_per_shard(num_horizons: int) -> int:
    """The shard width in parameter sets: a 1-2-5 number near :data:`TARGET_ROWS_PER_SHARD` / horizons.

    It depends only on the number of horizons (fixed per model by the config), never on the number of rows, so adding
    parameter sets does not move shard boundaries.
    """
    target = max(1, TARGET_ROWS_PER_SHARD // max(1, num_horizons))
    exponent = 10 ** math.floor(math.log10(target))
    return max(step * exponent for step in (1, 2, 5) if step * exponent <= target)


def shard_name(model: str, first: int, last: int) -> str:
    """Relative path of the shard holding param_ids ``first..last``."""
    return f"data/{model}/params-{first:06d}-{last:06d}.parquet"


def write_if_changed(path: Path, data: bytes) -> str:
    """Write ``data`` atomically unless the file already holds exactly these bytes (then keep its mtime); sha256."""
    digest = hashlib.sha256(data).hexdigest()
    if not (path.is_file() and path.stat().st_size == len(data) and sha256_file(path) == digest):
        write_bytes_atomic(path, data)
    return digest


def _write_shard(table: pa.Table, path: Path, options: dict[str, Any]) -> tuple[int, str]:
    """Write one shard (see :func:`write_if_changed`); its size and sha256."""
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, **options)
    data = sink.getvalue().to_pybytes()
    return len(data), write_if_changed(path, data)


def sha256_file(path: Path) -> str:
    """sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_model_shards(data: ModelTable, folder: str | Path, params_per_shard: int | None = None) -> ModelManifest:
    """Write ``data`` as shards under ``folder/data/<model>/`` and remove that folder's stale shards.

    Returns the manifest (not written; see :func:`write_manifest`).
    """
    folder = Path(folder)
    table = data.table
    horizons = sorted(set(table.column("horizon").to_pylist()))
    width = params_per_shard or default_params_per_shard(len(horizons))
    if width < 1:
        raise ValueError(f"params_per_shard must be >= 1, got {width}")
    options = writer_options(data.parameter_names)
    param_ids = table.column("param_id").to_numpy()
    shard_index = param_ids // width
    boundaries = np.flatnonzero(np.diff(shard_index)) + 1
    starts = [0, *boundaries.tolist()]
    stops = [*boundaries.tolist(), table.num_rows]
    shards: list[ShardInfo] = []
    for start, stop in zip(starts, stops, strict=True):
        first = int(shard_index[start]) * width
        relative = shard_name(data.model, first, first + width - 1)
        size, digest = _write_shard(table.slice(start, stop - start), folder / relative, options)
        shards.append(
            ShardInfo(
                path=relative,
                first_param_id=int(param_ids[start]),
                last_param_id=int(param_ids[stop - 1]),
                rows=stop - start,
                bytes=size,
                sha256=digest,
            )
        )
    model_dir = folder / "data" / data.model
    keep = {folder / shard.path for shard in shards}
    for stale in model_dir.iterdir():
        if stale.is_file() and stale not in keep and (stale.suffix == ".parquet" or stale.name.endswith(".tmp")):
            stale.unlink()
    return ModelManifest(
        model=data.model,
        params_per_shard=width,
        num_quantiles=data.num_quantiles,
        parameter_names=list(data.parameter_names),
        rows=table.num_rows,
        param_sets=len(np.unique(param_ids)),
        param_id_range=[int(param_ids.min()), int(param_ids.max())],
        horizons=[int(h) for h in horizons],
        num_paths=sorted({int(v) for v in table.column("num_paths").to_pylist()}),
        seeds=sorted({int(v) for v in table.column("seed").to_pylist()}),
        dt=sorted({v for v in table.column("dt").to_pylist()}, key=lambda v: (v is not None, v or 0.0)),
        substeps=sorted({int(v) for v in table.column("substeps").to_pylist()}),
        parameter_ranges={
            name: [float(pc.min(table.column(name)).as_py()), float(pc.max(table.column(name)).as_py())]
            for name in data.parameter_names
        },
        mc_error=quantile_standard_errors(table),
        features=yaml_features(table.schema),
        in_memory_bytes=int(table.nbytes),
        shards=shards,
        sources=list(data.sources),
        file_metadata=_checked_metadata(data),
    )


def _checked_metadata(data: ModelTable) -> dict[str, Any]:
    """The chunks' provenance metadata; ``quantile_levels`` must be p_j = (j + 0.5) / Q (what the card states) and is
    recorded as that formula instead of Q numbers."""
    metadata = describe_metadata(data.file_metadata)
    levels = metadata.get("quantile_levels")
    if isinstance(levels, list):
        q = data.num_quantiles
        candidates = levels if levels and isinstance(levels[0], list) else [levels]
        expected = (np.arange(q) + 0.5) / q
        for candidate in candidates:
            values = np.asarray(candidate, dtype=np.float64)
            if values.shape != expected.shape or not np.allclose(values, expected, rtol=0, atol=1e-12):
                raise DatasetInputError(
                    f"{', '.join(data.sources[:3])}: file metadata 'quantile_levels' is not (j + 0.5) / {q}"
                )
        metadata["quantile_levels"] = f"(j + 0.5) / {q}, j = 0..{q - 1}"
    return metadata


def write_manifest(manifest: ModelManifest, path: str | Path) -> None:
    """Write the manifest JSON atomically."""
    write_bytes_atomic(Path(path), manifest.to_json().encode())


def quantile_standard_errors(table: pa.Table) -> dict[str, Any]:
    """Median (over rows) Monte Carlo standard error of the quantile estimates at :data:`REPORTED_LEVELS`.

    Asymptotically sd(q̂_p) ≈ sqrt(p (1 - p) / N) / f(q_p) for N iid paths. The density f(q_p) comes from the row's own
    quantile vector: 1/f = dq/dp = (dq/dz) / phi(z) with z = Phi^-1(p) the normal score. Differencing in z rather than p
    keeps the slope accurate in the tails, where q(p) is steep but q(z) is close to linear (exact for normal rows).
    Reported in log-return units and relative to the row's standard deviation.
    """
    from scipy.special import ndtri

    quantiles = quantile_matrix(table).astype(np.float64)
    width = quantiles.shape[1]
    levels = (np.arange(width) + 0.5) / width
    scores = ndtri(levels)
    slope = np.gradient(quantiles, scores, axis=1) / (np.exp(-0.5 * scores**2) / np.sqrt(2.0 * np.pi))
    num_paths = table.column("num_paths").to_numpy().astype(np.float64)[:, None]
    errors = np.sqrt(levels * (1.0 - levels) / num_paths) * slope
    std = table.column("std").to_numpy()[:, None]
    relative = errors / np.where(std > 0, std, np.nan)
    rows = []
    for level in REPORTED_LEVELS:
        j = min(width - 1, max(0, round(level * width - 0.5)))
        rows.append(
            {
                "level": float(levels[j]),
                "index": j,
                "median_se": float(np.median(errors[:, j])),
                "median_se_over_std": float(np.nanmedian(relative[:, j]))
                if np.isfinite(relative[:, j]).any()
                else None,
            }
        )
    return {
        "method": "sqrt(p(1-p)/N) / f(q_p), 1/f = (dq/dz)/phi(z), z = Phi^-1(p), differences of adjacent quantiles; "
        "median over rows",
        "levels": rows,
    }


def yaml_features(schema: pa.Schema) -> list[dict[str, Any]]:
    """The card's ``dataset_info.features`` list for a shard schema (the datasets ≥4 YAML form)."""
    features: list[dict[str, Any]] = []
    for item in schema:
        if pa.types.is_fixed_size_list(item.type):
            features.append(
                {"name": item.name, "list": _dtype_name(item.type.value_type), "length": item.type.list_size}
            )
        else:
            features.append({"name": item.name, "dtype": _dtype_name(item.type)})
    return features


def _dtype_name(dtype: pa.DataType) -> str:
    names = {
        pa.string(): "string",
        pa.int64(): "int64",
        pa.int32(): "int32",
        pa.float64(): "float64",
        pa.float32(): "float32",
    }
    if dtype not in names:
        raise ValueError(f"no dataset feature name for Arrow type {dtype}")
    return names[dtype]
