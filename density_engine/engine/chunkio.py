"""Chunk spec loading/validation and chunk parquet I/O (schema, atomic write, read + validate).

Contracts: docs/architecture.md ("Chunk spec", "Chunk parquet").
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from density_engine.atomic import atomic_path, file_sha256, write_text_atomic
from density_engine.engine.counters import MAX_NUM_PATHS, MAX_WORD
from density_engine.layout import CHUNK_MANIFEST_SUFFIX
from density_engine.models.time_grid import TimeGridError, TimeGridPolicy
from density_engine.numeric import as_int, as_real

SPEC_VERSION = 2
SPEC_KEYS = (
    "spec_version",
    "model",
    "chunk_id",
    "seed",
    "num_paths",
    "num_quantiles",
    "horizons",
    "dt",
    "time_grid",
    "parameter_sets",
)
LEADING_COLUMNS: tuple[tuple[str, pa.DataType], ...] = (("model", pa.string()), ("param_id", pa.int64()))
MOMENT_COLUMNS = ("mean", "std", "skew", "kurt")
#: Error budget of a row in CDF units (|F(q_p) - p|) at the levels nearest 0.001, 0.5 and 0.999 and the max over all
#: levels: Monte Carlo standard error and time-discretisation error (docs/accuracy.md, section 4).
ERROR_LEVELS = ("p001", "p50", "p999", "max")
MC_ERROR_COLUMNS = tuple(f"mc_se_cdf_{level}" for level in ERROR_LEVELS)
DISC_ERROR_COLUMNS = tuple(f"disc_err_cdf_{level}" for level in ERROR_LEVELS)


def error_level_indices(num_quantiles: int) -> dict[str, int]:
    """The published level each per-level error column is taken at: the levels nearest 0.001, 0.5 and 0.999, i.e.
    the first, middle and last of ``(j + 0.5) / M`` (``max`` is over all levels)."""
    return {"p001": 0, "p50": num_quantiles // 2, "p999": num_quantiles - 1}


ERROR_COLUMNS = MC_ERROR_COLUMNS + DISC_ERROR_COLUMNS
#: The moment order behind each moment column: a column is NaN exactly in the rows where the model says its moment of
#: that order is infinite (``Model.finite_moments``; e.g. GJR-GARCH ``kurt`` where eta <= 4).
MOMENT_ORDERS = {"mean": 1, "std": 2, "skew": 3, "kurt": 4}
METADATA_KEYS = (
    "density_engine.version",
    "density_engine.code_version",
    "density_engine.git_commit",
    "torch.version",
    "device",
    "quantile_levels",
    "wall_time_s",
    "path_steps_per_s",
    "spec_version",
    "rng",
    "time_grid",
    "error_estimates",
)
PARQUET_COMPRESSION = "zstd"
#: File metadata key of the chunk's content checksum (added by :func:`write_chunk`, checked by the merge).
CHECKSUM_KEY = "density_engine.content_sha256"
#: How :func:`content_sha256` canonicalises a table (recorded beside the checksum; bump on any change).
CHECKSUM_SCHEME = "density-engine-content-v1: sha256 over every column in schema order (name, type, validity, values)"
CHUNK_MANIFEST_VERSION = 1


def quantile_levels(num_quantiles: int) -> np.ndarray:
    """Levels ``p_j = (j + 0.5) / num_quantiles``, j = 0..M-1 (float64): the chunk contract's quantile levels (here,
    torch-free, so the dataset and report code can use them; the engine's order statistics are in ``quantiles``)."""
    if as_int(num_quantiles) is None or num_quantiles < 1:
        raise ValueError(f"num_quantiles must be a positive integer, got {num_quantiles!r}")
    num_quantiles = int(num_quantiles)
    return (np.arange(num_quantiles, dtype=np.float64) + 0.5) / num_quantiles


class SpecError(ValueError):
    """A chunk spec is missing or invalid; the message names the file and the key."""


class ChunkError(ValueError):
    """A chunk parquet file is missing or breaks the contract; the message names the file."""


@dataclass(frozen=True)
class ParameterSet:
    """One parameter set of a chunk: its global id and checked values (in the model's declared order)."""

    param_id: int
    params: dict[str, float]


@dataclass(frozen=True)
class ChunkSpec:
    """A validated chunk spec (the only input of a chunk job)."""

    model: str
    chunk_id: int
    seed: int
    num_paths: int
    num_quantiles: int
    horizons: tuple[int, ...]
    dt: float | None
    time_grid: dict[str, Any] | None
    parameter_sets: tuple[ParameterSet, ...]
    spec_version: int = SPEC_VERSION
    source: str = field(default="<spec>", compare=False)

    def to_dict(self) -> dict[str, Any]:
        """The spec as JSON-ready dict (architecture.md layout)."""
        return {
            "spec_version": self.spec_version,
            "model": self.model,
            "chunk_id": self.chunk_id,
            "seed": self.seed,
            "num_paths": self.num_paths,
            "num_quantiles": self.num_quantiles,
            "horizons": list(self.horizons),
            "dt": self.dt,
            "time_grid": None if self.time_grid is None else dict(self.time_grid),
            "parameter_sets": [{"param_id": s.param_id, "params": dict(s.params)} for s in self.parameter_sets],
        }

    def model_settings(self) -> dict[str, Any]:
        """Keyword settings for the model class (``dt`` where the model declares it; the grids come from the policy)."""
        from density_engine.models import get_model_class

        return {"dt": self.dt} if "dt" in get_model_class(self.model).settings else {}

    def time_grid_policy(self) -> TimeGridPolicy | None:
        """The per-horizon grid policy of a continuous-time model (None for discrete-time models)."""
        from density_engine.models import get_model_class

        if self.time_grid is None:
            return None
        return get_model_class(self.model).spec_time_grid_policy(self.time_grid)

    def path_steps(self) -> int:
        """The path-steps the engine simulates for this chunk: every run of the policy's plan (the model's own steps
        to the longest horizon for a discrete-time model) for every parameter set."""
        policy = self.time_grid_policy()
        if policy is None:
            per_set = self.num_paths * max(self.horizons)
        else:
            per_set = policy.path_steps(self.horizons, self.num_paths)
        return per_set * len(self.parameter_sets)


# ---- specs -------------------------------------------------------------------------------------------------------


def _int(value: Any, key: str, source: str, minimum: int, maximum: int | None = None) -> int:
    number = as_int(value)
    if number is None or number < minimum:
        raise SpecError(f"{source}: key {key!r} must be an integer >= {minimum}, got {value!r}")
    value = number
    if maximum is not None and value > maximum:
        raise SpecError(
            f"{source}: key {key!r} must be <= {maximum} ({MAXIMUM_REASON[key.rpartition('.')[2]]}), got {value}"
        )
    return value


MAXIMUM_REASON = {
    "seed": "a 32-bit Philox key word",
    "param_id": "a 32-bit Philox key word",
    "num_paths": "path indices are 32-bit Philox counter words",
}


def parse_spec(data: Any, source: str = "<spec>") -> ChunkSpec:
    """Validate a spec dict (as loaded from JSON); :class:`SpecError` names ``source`` and the offending key."""
    from density_engine.models import get_model_class, model_names

    if not isinstance(data, Mapping):
        raise SpecError(f"{source}: a chunk spec must be a JSON object, got {type(data).__name__}")
    missing = [k for k in SPEC_KEYS if k not in data]
    if missing:
        raise SpecError(f"{source}: missing key(s) {missing}")
    unknown = sorted(set(data) - set(SPEC_KEYS))
    if unknown:
        raise SpecError(f"{source}: unknown key(s) {unknown}; expected {list(SPEC_KEYS)}")
    if data["spec_version"] != SPEC_VERSION:
        raise SpecError(f"{source}: key 'spec_version' must be {SPEC_VERSION}, got {data['spec_version']!r}")
    model = data["model"]
    if model not in model_names():
        raise SpecError(f"{source}: key 'model' must be one of {model_names()}, got {model!r}")
    try:
        model_cls = get_model_class(model)
    except ImportError as exc:
        raise SpecError(f"{source}: model {model!r} cannot be imported: {exc}") from exc
    chunk_id = _int(data["chunk_id"], "chunk_id", source, 0)
    seed = _int(data["seed"], "seed", source, 0, MAX_WORD)
    num_paths = _int(data["num_paths"], "num_paths", source, 1, MAX_NUM_PATHS)
    num_quantiles = _int(data["num_quantiles"], "num_quantiles", source, 1)
    horizons = data["horizons"]
    if not isinstance(horizons, list) or not horizons:
        raise SpecError(f"{source}: key 'horizons' must be a non-empty list of positive integers, got {horizons!r}")
    horizons = [_int(h, "horizons", source, 1) for h in horizons]
    if len(set(horizons)) != len(horizons):
        raise SpecError(f"{source}: key 'horizons' has duplicates: {horizons}")
    dt = data["dt"]
    if "dt" in model_cls.settings:
        if as_real(dt) is None or not math.isfinite(dt) or dt <= 0:
            raise SpecError(f"{source}: key 'dt' must be a number > 0 for model {model!r}, got {dt!r}")
        dt = float(dt)
    elif dt is not None:
        raise SpecError(f"{source}: key 'dt' must be null for model {model!r}, got {dt!r}")
    time_grid = data["time_grid"]
    if model_cls.time_grid_defaults is None:
        if time_grid is not None:
            raise SpecError(f"{source}: key 'time_grid' must be null for the discrete-time model {model!r}")
    else:
        if not isinstance(time_grid, Mapping):
            raise SpecError(f"{source}: key 'time_grid' must be an object for model {model!r}, got {time_grid!r}")
        try:
            policy = model_cls.time_grid_policy({k: v for k, v in time_grid.items() if k != "policy" and v is not None})
        except TimeGridError as exc:
            raise SpecError(f"{source}: key 'time_grid.{exc}") from None
        if time_grid.get("policy", "per_horizon") != "per_horizon":
            raise SpecError(f"{source}: key 'time_grid.policy' must be 'per_horizon', got {time_grid['policy']!r}")
        if policy.max_paths(num_paths) > MAX_NUM_PATHS:
            raise SpecError(
                f"{source}: key 'num_paths' times time_grid.path_split gives {policy.max_paths(num_paths)} paths in "
                f"one run; at most {MAX_NUM_PATHS} (path indices are 32-bit Philox counter words)"
            )
        time_grid = policy.to_dict()
    sets_raw = data["parameter_sets"]
    if not isinstance(sets_raw, list) or not sets_raw:
        raise SpecError(f"{source}: key 'parameter_sets' must be a non-empty list")
    parameter_sets = []
    seen: set[int] = set()
    for i, entry in enumerate(sets_raw):
        key = f"parameter_sets[{i}]"
        if not isinstance(entry, Mapping) or set(entry) != {"param_id", "params"}:
            raise SpecError(f"{source}: {key} must be an object with keys 'param_id' and 'params'")
        param_id = _int(entry["param_id"], f"{key}.param_id", source, 0, MAX_WORD)
        if param_id in seen:
            raise SpecError(f"{source}: {key}.param_id {param_id} appears twice")
        seen.add(param_id)
        if not isinstance(entry["params"], Mapping):
            raise SpecError(f"{source}: {key}.params must be an object")
        try:
            params = model_cls.check_parameters(entry["params"])
        except ValueError as exc:
            raise SpecError(f"{source}: {key}.params (param_id {param_id}): {exc}") from exc
        parameter_sets.append(ParameterSet(param_id, params))
    return ChunkSpec(
        model=model,
        chunk_id=chunk_id,
        seed=seed,
        num_paths=num_paths,
        num_quantiles=num_quantiles,
        horizons=tuple(horizons),
        dt=dt,
        time_grid=time_grid,
        parameter_sets=tuple(parameter_sets),
        source=source,
    )


def load_spec(path: str | Path) -> ChunkSpec:
    """Read and validate a chunk spec JSON file; :class:`SpecError` naming the file on any problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(f"{path}: chunk spec not found") from None
    except OSError as exc:
        raise SpecError(f"{path}: cannot read chunk spec ({exc})") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SpecError(f"{path}: not valid JSON ({exc})") from exc
    return parse_spec(data, str(path))


def write_spec(path: str | Path, spec: ChunkSpec | Mapping[str, Any]) -> None:
    """Write a spec as JSON, atomically (validated first)."""
    data = spec.to_dict() if isinstance(spec, ChunkSpec) else dict(spec)
    parse_spec(data, str(path))
    write_text_atomic(path, json.dumps(data, indent=1) + "\n")


# ---- chunk parquet -----------------------------------------------------------------------------------------------


def chunk_schema(parameter_names: Sequence[str], num_quantiles: int) -> pa.Schema:
    """The chunk parquet schema (without metadata) of a model with these parameters."""
    fields = [pa.field(name, dtype) for name, dtype in LEADING_COLUMNS]
    fields += [pa.field(name, pa.float64()) for name in parameter_names]
    fields += [
        pa.field("horizon", pa.int32()),
        pa.field("quantiles", pa.list_(pa.float32(), num_quantiles)),
        *(pa.field(name, pa.float64()) for name in MOMENT_COLUMNS),
        pa.field("num_paths", pa.int64()),
        pa.field("seed", pa.int64()),
        pa.field("dt", pa.float64()),
        pa.field("steps", pa.int32()),
        *(pa.field(name, pa.float64()) for name in ERROR_COLUMNS),
    ]
    return pa.schema(fields)


def encode_metadata(values: Mapping[str, Any]) -> dict[bytes, bytes]:
    """File metadata: every value JSON-encoded (UTF-8); all :data:`METADATA_KEYS` required."""
    missing = [k for k in METADATA_KEYS if k not in values]
    if missing:
        raise ValueError(f"chunk metadata is missing key(s) {missing}")
    return {k.encode(): json.dumps(v).encode() for k, v in values.items()}


def decode_metadata(schema: pa.Schema) -> dict[str, Any]:
    """The chunk's file metadata as Python values (keys written by :func:`encode_metadata`)."""
    out: dict[str, Any] = {}
    for key, value in (schema.metadata or {}).items():
        name = key.decode("utf-8", "replace")
        if name.startswith("ARROW:"):
            continue
        try:
            out[name] = json.loads(value.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            out[name] = value.decode("utf-8", "replace")
    return out


def _column_digest_parts(array: pa.Array) -> list[bytes]:
    """Canonical bytes of one column: its validity and its values (nulls as zeros), independent of how Arrow laid the
    buffers out (chunking, offsets, padding)."""
    parts = [np.asarray(array.is_valid(), dtype=np.uint8).tobytes()]
    kind = array.type
    if pa.types.is_fixed_size_list(kind) or pa.types.is_list(kind) or pa.types.is_large_list(kind):
        if not pa.types.is_fixed_size_list(kind):
            parts.append(np.asarray(array.value_lengths().fill_null(0), dtype="<i8").tobytes())
        return parts + _column_digest_parts(array.flatten())
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        values = [value or "" for value in array.to_pylist()]
        return [*parts, json.dumps(values, ensure_ascii=False).encode()]
    if pa.types.is_boolean(kind):
        return [*parts, np.asarray(array.fill_null(False), dtype=np.uint8).tobytes()]
    if pa.types.is_integer(kind) or pa.types.is_floating(kind):
        values = array.fill_null(0).to_numpy(zero_copy_only=False)
        return [*parts, values.astype(values.dtype.newbyteorder("<"), copy=False).tobytes()]
    raise TypeError(f"no canonical form for column type {kind}")


def _type_name(kind: pa.DataType) -> str:
    """A data type without the names of list children (``item`` in memory, ``element`` after a parquet round trip)."""
    if pa.types.is_fixed_size_list(kind):
        return f"fixed_size_list<{_type_name(kind.value_type)}>[{kind.list_size}]"
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        return f"list<{_type_name(kind.value_type)}>"
    return str(kind)


def content_sha256(table: pa.Table) -> str:
    """sha256 of the table's *values*: every column in schema order (name, type, row count, validity, values), so a
    new column (e.g. an error-budget column) is covered without code changes; file metadata is not part of it. The
    same values give the same digest however the parquet file is laid out (:data:`CHECKSUM_SCHEME`)."""
    digest = hashlib.sha256(CHECKSUM_SCHEME.encode() + b"\n")
    for fld in table.schema:
        array = table.column(fld.name).combine_chunks()
        digest.update(f"{fld.name}\t{_type_name(fld.type)}\t{len(array)}\n".encode())
        for part in _column_digest_parts(array):
            digest.update(len(part).to_bytes(8, "little"))
            digest.update(part)
    return digest.hexdigest()


def chunk_manifest_path(path: str | Path) -> Path:
    """The chunk manifest of a chunk parquet file: ``chunk_00003.<key>.manifest.json`` beside it."""
    path = Path(path)
    return path.with_name(path.name.removesuffix(".parquet") + CHUNK_MANIFEST_SUFFIX)


def write_chunk(table: pa.Table, path: str | Path, manifest_path: str | Path | None = None) -> dict[str, Any]:
    """Validate ``table``, record its content checksum in the file metadata (:data:`CHECKSUM_KEY`), write it as zstd
    parquet to ``path`` atomically (temp file + ``os.replace``), then write the chunk manifest (default
    :func:`chunk_manifest_path`): the file's size and sha256, the content checksum, rows and run figures. The merge
    reads the manifest to prove that the file is the one the job wrote. Returns the manifest."""
    path = Path(path)
    validate_chunk(table, path)
    digest = content_sha256(table)
    metadata = dict(table.schema.metadata or {})
    metadata[CHECKSUM_KEY.encode()] = json.dumps(digest).encode()
    table = table.replace_schema_metadata(metadata)
    with atomic_path(path, sole_writer=True) as tmp:  # one Snakemake job per chunk: sweep killed writes' temps
        pq.write_table(table, tmp, compression=PARQUET_COMPRESSION)
        size, sha256 = tmp.stat().st_size, file_sha256(tmp)
    values = decode_metadata(table.schema)
    manifest = {
        "chunk_manifest_version": CHUNK_MANIFEST_VERSION,
        "file": path.name,
        "model": table.column("model")[0].as_py(),
        "rows": table.num_rows,
        "bytes": size,
        "file_sha256": sha256,
        "content_sha256": digest,
        "checksum_scheme": CHECKSUM_SCHEME,
        "wall_time_s": values.get("wall_time_s"),
        "path_steps_per_s": values.get("path_steps_per_s"),
        "written_at": round(time.time(), 3),
    }
    write_text_atomic(manifest_path or chunk_manifest_path(path), json.dumps(manifest, indent=1) + "\n")
    return manifest


def read_chunk_manifest(path: str | Path) -> dict[str, Any]:
    """A chunk manifest written by :func:`write_chunk`; :class:`ChunkError` naming the file if it is missing or
    unusable."""
    path = Path(path)
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ChunkError(f"{path}: chunk manifest not found") from None
    except (OSError, ValueError) as exc:
        raise ChunkError(f"{path}: not a readable chunk manifest ({exc})") from exc
    required = ("file", "bytes", "file_sha256", "content_sha256")
    if not isinstance(manifest, dict) or any(key not in manifest for key in required):
        raise ChunkError(f"{path}: not a chunk manifest (needs keys {list(required)})")
    return manifest


def read_chunk(path: str | Path) -> pa.Table:
    """Read a chunk parquet file and validate it (:func:`validate_chunk`); :class:`ChunkError` names the file."""
    path = Path(path)
    if not path.is_file():
        raise ChunkError(f"{path}: chunk file not found")
    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several exception types for corrupt files
        raise ChunkError(f"{path}: not a readable parquet file ({exc})") from exc
    validate_chunk(table, path)
    return table


def parameter_columns(schema: pa.Schema) -> list[str]:
    """The model parameter columns of a chunk schema (between ``param_id`` and ``horizon``)."""
    names = schema.names
    if "param_id" not in names or "horizon" not in names:
        return []
    return names[names.index("param_id") + 1 : names.index("horizon")]


def schema_difference(expected: pa.Schema, actual: pa.Schema) -> str:
    """The first way ``actual`` breaks the ``expected`` chunk schema, as a message naming the column."""
    for column in expected:
        if column.name not in actual.names:
            return f"missing column {column.name!r}"
        if actual.field(column.name).type != column.type:
            return f"column {column.name!r} must be {column.type}, got {actual.field(column.name).type}"
    return f"columns {actual.names} are not the contract's {expected.names} (in this order)"


def validate_chunk(
    table: pa.Table, path: str | Path = "<table>", *, require_metadata: bool = True, require_sorted: bool = True
) -> None:
    """Check a chunk table: schema (incl. the model's parameter columns), metadata keys, no null/NaN/inf, non-decreasing
    quantiles, rows sorted by (param_id, horizon) without duplicates. :class:`ChunkError` names ``path``.

    Merged files of several chunks (``require_metadata=False, require_sorted=False``) pass the same content checks.
    """
    from density_engine.models import get_model_class, model_names

    def fail(message: str) -> ChunkError:
        return ChunkError(f"{path}: {message}")

    if table.num_rows == 0:
        raise fail("no rows")
    if "model" not in table.column_names or table.schema.field("model").type != pa.string():
        raise fail("missing string column 'model'")
    models = table.column("model").unique().to_pylist()
    if len(models) != 1 or models[0] not in model_names():
        raise fail(f"column 'model' must hold one registered model, got {models}")
    model_cls = get_model_class(models[0])
    qtype = table.schema.field("quantiles").type if "quantiles" in table.column_names else None
    if qtype is None or not pa.types.is_fixed_size_list(qtype) or qtype.value_type != pa.float32():
        raise fail(f"column 'quantiles' must be fixed_size_list<float32>[n], got {qtype}")
    expected = chunk_schema(model_cls.parameter_names(), qtype.list_size)
    actual = table.schema.remove_metadata()
    if not actual.equals(expected):
        raise fail(f"schema mismatch: {schema_difference(expected, actual)}")
    missing_meta = [k for k in METADATA_KEYS if k not in decode_metadata(table.schema)] if require_metadata else []
    if missing_meta:
        raise fail(f"missing file metadata key(s) {missing_meta}")
    for name in table.column_names:
        if name != "dt" and table.column(name).null_count:
            raise fail(f"column {name!r} has {table.column(name).null_count} null value(s)")
    dt = table.column("dt")
    if "dt" in model_cls.settings and dt.null_count:
        raise fail(f"column 'dt' must not be null for model {models[0]!r}")
    if "dt" not in model_cls.settings and dt.null_count != table.num_rows:
        raise fail(f"column 'dt' must be null for model {models[0]!r}")
    for name in [*model_cls.parameter_names(), *ERROR_COLUMNS, "dt"]:
        values = table.column(name).to_numpy(zero_copy_only=False)
        values = values[~np.isnan(values)] if name == "dt" else values
        if not np.isfinite(values).all():
            raise fail(f"column {name!r} has NaN/inf (row {int(np.argmin(np.isfinite(values)))})")
    for name in ERROR_COLUMNS:
        values = table.column(name).to_numpy(zero_copy_only=False)
        outside = (values < 0) | (values > 1)
        if outside.any():
            raise fail(f"column {name!r} must lie in [0, 1] (a CDF error), got {values[outside][0]}")
    for name, infinite in infinite_moment_rows(model_cls, table).items():  # NaN exactly where the moment is infinite
        values = table.column(name).to_numpy(zero_copy_only=False)
        wrong = np.where(infinite, ~np.isnan(values), ~np.isfinite(values))
        if wrong.any():
            row = int(np.argmax(wrong))
            if not infinite[row]:
                raise fail(f"column {name!r} has NaN/inf (row {row})")
            order = MOMENT_ORDERS[name]
            raise fail(f"column {name!r} must be NaN in row {row} ({models[0]}: no finite moment of order {order})")
    q = quantile_matrix(table)
    finite = np.isfinite(q).all(axis=1)
    if not finite.all():
        raise fail(f"quantiles are NaN/inf in row {int(np.argmin(finite))}")
    monotone = (np.diff(q, axis=1) >= 0).all(axis=1)
    if not monotone.all():
        raise fail(f"quantiles decrease in row {int(np.argmin(monotone))}")
    pid = table.column("param_id").to_numpy()
    hor = table.column("horizon").to_numpy().astype(np.int64)
    key = list(zip(pid.tolist(), hor.tolist(), strict=True))
    if not require_sorted:
        key.sort()
    for i in range(1, len(key)):
        if key[i] == key[i - 1]:
            raise fail(f"duplicate (param_id, horizon) = {key[i]}")
        if key[i] < key[i - 1]:
            raise fail(f"rows not sorted by (param_id, horizon) at row {i}")


def infinite_moment_rows(model_cls: Any, columns: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Per moment column, a boolean array: True in the rows (parameter values in ``columns``, a table or a dict of
    lists) where the model says the moment of that order is infinite, so the column must hold NaN there."""
    names = model_cls.parameter_names()
    values = {name: np.asarray(columns[name], dtype=np.float64) for name in names}
    finite = model_cls.finite_moments_array(values)
    return {name: finite < order for name, order in MOMENT_ORDERS.items()}


def blank_infinite_moments(model_cls: Any, columns: dict[str, list[Any]]) -> None:
    """Set the moment columns (lists, in place) to NaN in the rows whose moment of that order is infinite: a sample
    skewness or kurtosis there is noise, not an estimate."""
    for name, infinite in infinite_moment_rows(model_cls, columns).items():
        for row in np.flatnonzero(infinite).tolist():
            columns[name][row] = math.nan


def quantile_matrix(table: pa.Table) -> np.ndarray:
    """The ``quantiles`` column as a float32 array (rows, num_quantiles)."""
    column = table.column("quantiles").combine_chunks()
    size = column.type.list_size
    return column.flatten().to_numpy(zero_copy_only=False).reshape(-1, size)
