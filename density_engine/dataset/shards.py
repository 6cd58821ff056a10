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
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from density_engine.atomic import file_sha256, write_bytes_atomic
from density_engine.dataset.inputs import DatasetInputError, ModelTable, distinct_metadata
from density_engine.dataset.layout import default_params_per_shard, id_runs, shard_name
from density_engine.engine.chunkio import (
    ERROR_COLUMNS,
    ERROR_LEVELS,
    MOMENT_COLUMNS,
    error_level_indices,
    quantile_levels,
)

MANIFEST_VERSION = 3
#: Files that do not belong in data/<model>/ and are removed there (Snakemake's marker of directory outputs).
STRAY_FILES = (".snakemake_timestamp",)
# 25k rows ≈ 50 MB uncompressed per row group: inside the 16k–50k rows (32–100 MB) range and far under the Dataset
# Viewer's ~286 MiB row-group cap.
ROW_GROUP_ROWS = 25_000
#: The accuracy goal of the discretisation error (sup-CDF, issue 9): the card states the rows above it.
DISC_ERROR_GOAL = 1e-3
# Levels at which the card reports the Monte Carlo standard error of the quantiles.
REPORTED_LEVELS = (0.001, 0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99, 0.999)
# The asymptotic standard error needs enough paths beyond the quantile: levels with min(p, 1 - p) * N below this are
# not reported.
MIN_TAIL_PATHS = 10


def writer_options(parameter_names: list[str]) -> dict[str, Any]:
    """Fixed ``pq.write_table`` options (zstd; byte-stream-split on floats; CDC and page index like ``datasets``).

    Parameter columns repeat once per horizon, so they keep dictionary encoding; the quantile vector and the moments
    use BYTE_STREAM_SPLIT (measured on sorted float32 quantiles: 0.75x raw bytes with zstd+BSS vs 0.97x zstd alone).
    """
    split = {
        "quantiles.list.element": "BYTE_STREAM_SPLIT",
        **dict.fromkeys((*MOMENT_COLUMNS, *ERROR_COLUMNS), "BYTE_STREAM_SPLIT"),
    }
    return {
        "compression": "zstd",
        "compression_level": 3,
        "use_dictionary": ["model", "param_id", *parameter_names, "horizon", "num_paths", "seed", "dt", "steps"],
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
    param_id_runs: list[list[int]]  # contiguous [first, last] runs of the param_ids present
    horizons: list[int]
    num_paths: list[int]
    seeds: list[int]
    dt: list[float | None]
    parameter_ranges: dict[str, list[float]]
    mc_error: dict[str, Any]
    error_budget: dict[str, Any]
    features: list[dict[str, Any]]
    in_memory_bytes: int
    shards: list[ShardInfo]
    sources: list[str]
    file_metadata: dict[str, list[Any]]  # distinct values of the inputs' provenance metadata keys
    manifest_version: int = MANIFEST_VERSION

    def to_json(self) -> str:
        """Deterministic JSON text (sorted keys)."""
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> ModelManifest:
        """Inverse of :meth:`to_json`; ``ValueError`` for a manifest of another version."""
        data = json.loads(text)
        if data.get("manifest_version") != MANIFEST_VERSION:
            raise ValueError(
                f"manifest version {data.get('manifest_version')!r}, expected {MANIFEST_VERSION} (written by another "
                "density-engine version: re-run the dataset shards step)"
            )
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


def write_if_changed(path: Path, data: bytes) -> str:
    """Write ``data`` atomically unless the file already holds exactly these bytes (then keep its mtime); sha256."""
    digest = hashlib.sha256(data).hexdigest()
    if not (path.is_file() and path.stat().st_size == len(data) and file_sha256(path) == digest):
        write_bytes_atomic(path, data)
    return digest


def _shard_bytes(table: pa.Table, options: dict[str, Any]) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, **options)
    return sink.getvalue().to_pybytes()


def _check_horizons_complete(data: ModelTable, param_ids: np.ndarray, horizons: list[int]) -> None:
    """Every parameter set must have a row for each horizon of the model (no (param_id, horizon) appears twice:
    :func:`~density_engine.dataset.inputs.load_model_table` checks that)."""
    unique, counts = np.unique(param_ids, return_counts=True)
    short = unique[counts != len(horizons)]
    if len(short):
        param_id = int(short[0])
        have = set(data.table.column("horizon").filter(pc.equal(data.table.column("param_id"), param_id)).to_pylist())
        missing = [h for h in horizons if h not in have]
        raise DatasetInputError(
            f"{data.origin.get(param_id, ', '.join(data.sources[:3]))}: model {data.model!r}, parameter set "
            f"{param_id} has no row for horizon(s) {missing} (the model's other sets have horizons {horizons}); "
            f"{len(short)} parameter set(s) are incomplete"
        )


def describe_model(data: ModelTable, params_per_shard: int | None = None) -> ModelManifest:
    """The manifest of ``data`` without shards (nothing is written): checks that every parameter set has every
    horizon and computes the statistics of the card. ``DatasetInputError`` naming the file for an incomplete set."""
    table = data.table
    horizons = sorted({int(h) for h in table.column("horizon").to_pylist()})
    width = params_per_shard or default_params_per_shard(len(horizons))
    if width < 1:
        raise ValueError(f"params_per_shard must be >= 1, got {width}")
    param_ids = table.column("param_id").to_numpy()
    _check_horizons_complete(data, param_ids, horizons)
    return ModelManifest(
        model=data.model,
        params_per_shard=width,
        num_quantiles=data.num_quantiles,
        parameter_names=list(data.parameter_names),
        rows=table.num_rows,
        param_sets=len(np.unique(param_ids)),
        param_id_range=[int(param_ids.min()), int(param_ids.max())],
        param_id_runs=id_runs(param_ids.tolist()),
        horizons=horizons,
        num_paths=sorted({int(v) for v in table.column("num_paths").to_pylist()}),
        seeds=sorted({int(v) for v in table.column("seed").to_pylist()}),
        dt=sorted({v for v in table.column("dt").to_pylist()}, key=lambda v: (v is not None, v or 0.0)),
        parameter_ranges={
            name: [float(pc.min(table.column(name)).as_py()), float(pc.max(table.column(name)).as_py())]
            for name in data.parameter_names
        },
        mc_error=quantile_standard_errors(table),
        error_budget=error_budget(table),
        features=yaml_features(table.schema),
        in_memory_bytes=int(table.nbytes),
        shards=[],
        sources=list(data.sources),
        file_metadata=_checked_metadata(data),
    )


def field_metadata(model: str, num_quantiles: int) -> dict[str, dict[str, str]]:
    """Field metadata of the shard columns: the quantile levels and estimator, the units of values and horizons, the
    unit of ``dt`` (readers see them in the parquet schema without the card)."""
    from density_engine.dataset.units import model_units

    units = model_units(model)
    values = {"unit": units.values} if units else {}
    return {
        "horizon": {"unit": units.horizon} if units else {},
        "quantiles": {
            "quantile_levels": f"p_j = (j + 0.5) / {num_quantiles}, j = 0..{num_quantiles - 1}",
            "estimator": _estimator_text(model),
            **values,
        },
        "mean": values,
        "std": values,
        "skew": {"unit": "unitless"},
        "kurt": {"unit": "unitless (excess kurtosis)"},
        "num_paths": {"description": "Monte Carlo paths N per parameter set"},
        "dt": {"unit": "years per model step (null for GARCH)"},
        "steps": {"description": "fine steps N of the finest time grid of this horizon (GARCH: the horizon)"},
        **{name: _error_field(name) for name in ERROR_COLUMNS},
    }


def _estimator_text(model: str) -> str:
    """How the quantiles of a model's rows are estimated (discrete-time: plain order statistics; continuous-time:
    the Richardson extrapolant of its time grids' order statistics, or the finest grid's without extrapolation)."""
    from density_engine.models import get_model_class, model_names

    plain = "order statistic floor(p_j N) of the N = num_paths simulated cumulative returns"
    if model not in model_names() or get_model_class(model).time_grid_defaults is None:
        return plain
    return f"{plain}, per horizon on its own time grid(s), Richardson-extrapolated between them (card: time grid)"


def _error_field(name: str) -> dict[str, str]:
    """Field metadata of an error-budget column (docs/accuracy.md, section 4)."""
    level = name.rsplit("_", 1)[1]
    where = {"p001": "nearest 0.001", "p50": "nearest 0.5", "p999": "nearest 0.999", "max": "max over all levels"}
    what = "Monte Carlo standard error" if name.startswith("mc_se") else "time-discretisation error"
    return {
        "unit": "CDF units: |F(q_p) - p| at the published quantile q_p",
        "level": f"level {where[level]} of the quantile levels p_j",
        "description": f"{what} of the published quantiles (0 for an exact discrete-time model's discretisation)",
    }


def with_field_metadata(table: pa.Table, model: str) -> pa.Table:
    """``table`` with :func:`field_metadata` on its fields (no file metadata: the bytes stay deterministic)."""
    described = field_metadata(model, table.schema.field("quantiles").type.list_size)
    fields = [
        f.with_metadata({k.encode(): v.encode() for k, v in described[f.name].items()}) if described.get(f.name) else f
        for f in table.schema
    ]
    return pa.Table.from_arrays(table.columns, schema=pa.schema(fields))


def write_model_shards(
    data: ModelTable,
    folder: str | Path,
    params_per_shard: int | None = None,
    manifest: ModelManifest | None = None,
) -> ModelManifest:
    """Write ``data`` as shards under ``folder/data/<model>/``, then remove that folder's stale shards.

    Each shard is written atomically (temp file + rename) and only if its bytes changed; stale shards are removed only
    after every new one is in place. ``manifest`` is :func:`describe_model`'s result for ``data`` if already computed.
    Returns the manifest with its shards (not written; see :func:`write_manifest`).
    """
    folder = Path(folder)
    manifest = manifest or describe_model(data, params_per_shard)
    table = with_field_metadata(data.table, data.model)
    width = manifest.params_per_shard
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
        content = _shard_bytes(table.slice(start, stop - start), options)
        shards.append(
            ShardInfo(
                path=relative,
                first_param_id=int(param_ids[start]),
                last_param_id=int(param_ids[stop - 1]),
                rows=stop - start,
                bytes=len(content),
                sha256=write_if_changed(folder / relative, content),
            )
        )
        del content
    keep = {folder / shard.path for shard in shards}
    for stale in sorted((folder / "data" / data.model).iterdir()):
        stray = stale.suffix == ".parquet" or stale.name.endswith(".tmp") or stale.name in STRAY_FILES
        if stale.is_file() and stale not in keep and stray:
            stale.unlink()
    manifest.shards = shards
    return manifest


def verify_shards(folder: str | Path, manifest: ModelManifest) -> None:
    """Check that ``folder/data/<model>/`` holds exactly the manifest's shards with their sha256.

    ``DatasetInputError`` naming the file for a missing shard, a shard with other bytes (an interrupted or later
    build) and a parquet file the manifest does not list (``data/<model>/*.parquet`` would publish it).
    """
    folder = Path(folder)
    listed = {shard.path for shard in manifest.shards}
    rebuild = f"re-run the dataset build of model {manifest.model!r}"
    for shard in manifest.shards:
        path = folder / shard.path
        if not path.is_file():
            raise DatasetInputError(f"{path}: shard listed in the manifest of {manifest.model!r} is missing; {rebuild}")
        if path.stat().st_size != shard.bytes or file_sha256(path) != shard.sha256:
            raise DatasetInputError(
                f"{path}: shard bytes differ from the manifest of {manifest.model!r} (sha256 {shard.sha256[:12]}); "
                f"{rebuild}"
            )
    model_dir = folder / "data" / manifest.model
    for path in sorted(model_dir.glob("*.parquet")) if model_dir.is_dir() else []:
        if path.relative_to(folder).as_posix() not in listed:
            raise DatasetInputError(
                f"{path}: parquet file not listed in the manifest of {manifest.model!r} (it would be published); "
                f"remove it or {rebuild}"
            )


def _checked_metadata(data: ModelTable) -> dict[str, list[Any]]:
    """The inputs' provenance metadata (distinct values per key). ``quantile_levels`` must be p_j = (j + 0.5) / Q
    (what the card states); it is checked and left out (the provenance states the formula)."""
    metadata = distinct_metadata(data.file_metadata)
    q = data.num_quantiles
    expected = quantile_levels(q)
    for candidate in metadata.pop("quantile_levels", []):
        values = np.asarray(candidate, dtype=np.float64)
        if values.shape != expected.shape or not np.allclose(values, expected, rtol=0, atol=1e-12):
            raise DatasetInputError(
                f"{', '.join(data.sources[:3])}: file metadata 'quantile_levels' is not (j + 0.5) / {q}"
            )
    return metadata


def write_manifest(manifest: ModelManifest, path: str | Path) -> None:
    """Write the manifest JSON atomically."""
    write_bytes_atomic(Path(path), manifest.to_json().encode())


def quantile_standard_errors(table: pa.Table) -> dict[str, Any]:
    """Per horizon, the median (over that horizon's rows) Monte Carlo standard error of the quantile estimates at
    :data:`REPORTED_LEVELS`, in log-return units and relative to the row's standard deviation.

    Asymptotically sd(q̂_p) ≈ sqrt(p (1 - p) / N) / f(q_p) for N iid paths. The density f(q_p) comes from the row's own
    quantile vector: 1/f = dq/dp = (dq/dz) / phi(z) with z = Phi^-1(p) the normal score. Differencing in z rather than p
    keeps the slope accurate in the tails, where q(p) is steep but q(z) is close to linear (exact for normal rows).
    Levels where min(p, 1 - p) N < :data:`MIN_TAIL_PATHS` (fewest paths of the horizon) are not reported: there the
    asymptotic formula does not hold. Horizons are kept apart because the absolute error grows with the horizon.
    """
    from scipy.special import ndtri

    quantiles = table.column("quantiles").combine_chunks()
    width = quantiles.type.list_size
    flat = quantiles.flatten().to_numpy(zero_copy_only=False).reshape(-1, width)
    levels = quantile_levels(width)
    scores = ndtri(levels)
    num_paths = table.column("num_paths").to_numpy().astype(np.float64)
    std = table.column("std").to_numpy().astype(np.float64)
    horizons = table.column("horizon").to_numpy() if "horizon" in table.column_names else np.zeros(table.num_rows)
    inflation = _cdf_error_inflation(table, levels, scores, num_paths)
    columns: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for level in REPORTED_LEVELS:
        j = min(width - 1, max(0, round(level * width - 0.5)))
        near = slice(max(0, j - 1), min(width, j + 2))  # np.gradient on the neighbours only: same value at j
        slope = np.gradient(flat[:, near].astype(np.float64), scores[near], axis=1)[:, j - near.start]
        slope /= np.exp(-0.5 * scores[j] ** 2) / np.sqrt(2.0 * np.pi)
        errors = np.sqrt(levels[j] * (1.0 - levels[j]) / num_paths) * slope * inflation(j)
        columns[j] = (errors, errors / np.where(std > 0, std, np.nan))
    per_horizon = []
    for horizon in np.unique(horizons):
        rows = horizons == horizon
        fewest = float(num_paths[rows].min())
        entries = []
        for j, (errors, relative) in columns.items():
            tail_paths = float(min(levels[j], 1.0 - levels[j]) * fewest)
            entry: dict[str, Any] = {"level": float(levels[j]), "index": j, "tail_paths": tail_paths}
            valid = tail_paths >= MIN_TAIL_PATHS
            entry["median_se"] = float(np.median(errors[rows])) if valid else None
            finite = relative[rows][np.isfinite(relative[rows])]
            entry["median_se_over_std"] = float(np.median(finite)) if valid and len(finite) else None
            entries.append(entry)
        per_horizon.append({"horizon": int(horizon), "num_paths_min": int(fewest), "levels": entries})
    return {
        "method": "se_F(p) / f(q_p): se_F the row's own Monte Carlo standard error of the CDF (columns mc_se_cdf_p001, "
        "_p50, _p999, interpolated in z; sqrt(p(1-p)/N) for plain order statistics, larger for coupled Richardson), "
        "1/f = (dq/dz)/phi(z), z = Phi^-1(p), differences of adjacent quantiles; "
        f"median over the rows of each horizon; not reported where min(p, 1-p) N < {MIN_TAIL_PATHS}",
        "min_tail_paths": MIN_TAIL_PATHS,
        "horizons": per_horizon,
    }


def _cdf_error_inflation(
    table: pa.Table, levels: np.ndarray, scores: np.ndarray, num_paths: np.ndarray
) -> Callable[[int], np.ndarray]:
    """Per row, the ratio of its own CDF standard error (``mc_se_cdf_p001/_p50/_p999``) to sqrt(p(1-p)/N) at those
    levels, as a function of the level index: linear in the normal score between the three (constant beyond). Rows
    of plain order statistics read 1; coupled Richardson rows (rough Bergomi) read their measured inflation."""
    anchors = error_level_indices(len(levels))  # p001, p50, p999: increasing level indices
    if not all(f"mc_se_cdf_{name}" in table.column_names for name in anchors):
        return lambda j: np.ones(table.num_rows)
    ratios = np.stack(
        [
            table.column(f"mc_se_cdf_{name}").to_numpy(zero_copy_only=False).astype(np.float64)
            / np.sqrt(levels[j] * (1.0 - levels[j]) / num_paths)
            for name, j in anchors.items()
        ]
    )
    ratios = np.where(np.isfinite(ratios) & (ratios > 0), ratios, 1.0)
    knots = scores[list(anchors.values())]

    def at(j: int) -> np.ndarray:
        z = float(np.clip(scores[j], knots[0], knots[-1]))
        side = 0 if z <= knots[1] else 1
        w = (z - knots[side]) / (knots[side + 1] - knots[side])
        return (1.0 - w) * ratios[side] + w * ratios[side + 1]

    return at


def error_budget(table: pa.Table) -> dict[str, Any]:
    """Per horizon: the fine steps, the max and median over rows of ``mc_se_cdf_max`` and ``disc_err_cdf_max``, the
    max of every error column, and the fraction of rows whose ``disc_err_cdf_max`` exceeds :data:`DISC_ERROR_GOAL`."""
    horizons = table.column("horizon").to_numpy()
    columns = {name: table.column(name).to_numpy(zero_copy_only=False).astype(np.float64) for name in ERROR_COLUMNS}
    steps = table.column("steps").to_numpy()
    disc = columns["disc_err_cdf_max"]
    per_horizon = []
    for horizon in np.unique(horizons):
        rows = horizons == horizon
        entry: dict[str, Any] = {
            "horizon": int(horizon),
            "steps": sorted({int(v) for v in steps[rows]}),
            "rows": int(rows.sum()),
            "rows_above_goal": int((disc[rows] > DISC_ERROR_GOAL).sum()),
        }
        for name in ("mc_se_cdf_max", "disc_err_cdf_max"):
            entry[f"median_{name}"] = float(np.median(columns[name][rows]))
        entry["max"] = {name: float(values[rows].max()) for name, values in columns.items()}
        per_horizon.append(entry)
    return {
        "goal": DISC_ERROR_GOAL,
        "levels": list(ERROR_LEVELS),
        "rows_above_goal": int((disc > DISC_ERROR_GOAL).sum()),
        "rows": int(table.num_rows),
        "horizons": per_horizon,
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
