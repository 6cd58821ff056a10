"""Read and validate the per-model density tables (merged chunks or single chunks) that feed the dataset build.

The column contract is the chunk parquet schema of ``docs/architecture.md`` (``chunkio.chunk_schema``): ``model``,
``param_id``, one float64 column per model parameter (declared order), ``horizon``, ``quantiles``
(fixed_size_list<float32>[Q]), ``mean``, ``std``, ``skew``, ``kurt``, ``num_paths``, ``seed``, ``dt`` (null for GARCH),
``steps`` and the error budget ``mc_se_cdf_*``, ``disc_err_cdf_*``. Unlike ``chunkio.read_chunk`` this also accepts
merged files (their metadata differs from a chunk's), and it adds the checks across the files of one model.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from density_engine.engine.chunkio import ChunkError, chunk_schema, parameter_columns, validate_chunk

# File metadata keys of a chunk that describe how it was made (kept for provenance). Timings are left out on purpose:
# they differ between two runs of the same chunk and would make the card change without the data changing.
PROVENANCE_METADATA_KEYS = (
    "density_engine.version",
    "density_engine.code_version",
    "density_engine.git_commit",
    "torch.version",
    "device",
    "quantile_levels",
    "spec_version",
    "rng",
    "time_grid",
    "error_estimates",
)


class DatasetInputError(ValueError):
    """An input file of the dataset build is missing or breaks the column contract; the message names the file."""


@dataclass
class ModelTable:
    """All validated rows of one model, sorted by (param_id, horizon), with the provenance found in the files."""

    model: str
    table: pa.Table
    parameter_names: list[str]
    num_quantiles: int
    sources: list[str] = field(default_factory=list)
    file_metadata: dict[str, list[str]] = field(default_factory=dict)
    origin: dict[int, str] = field(default_factory=dict)  # param_id -> the (first) input file holding it


def read_density_file(path: str | Path) -> tuple[pa.Table, dict[str, str]]:
    """Read one chunk or merged parquet file, check it against the column contract, and return it with its metadata.

    Raises :class:`DatasetInputError` naming the file for a missing file, an unreadable file, a missing or mistyped
    column, non-finite values, decreasing quantiles, several models, or duplicate (param_id, horizon) rows.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetInputError(f"{path}: input file not found (was the chunk simulated and merged?)")
    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several types for a corrupt file
        raise DatasetInputError(f"{path}: not a readable parquet file ({exc})") from exc
    metadata = {
        key.decode("utf-8", "replace"): value.decode("utf-8", "replace")
        for key, value in (table.schema.metadata or {}).items()
        if not key.startswith(b"ARROW:")
    }
    _check_columns(path, table)
    return table, metadata


def _fail(path: Path, message: str) -> DatasetInputError:
    return DatasetInputError(f"{path}: {message}")


def _check_columns(path: Path, table: pa.Table) -> None:
    """The chunk contract's content checks (:func:`~density_engine.engine.chunkio.validate_chunk`), for chunks and for
    merged files (which carry merged metadata and may interleave param_ids)."""
    try:
        validate_chunk(table, path, require_metadata=False, require_sorted=False)
    except ChunkError as exc:
        raise DatasetInputError(str(exc)) from None


def load_model_table(paths: Iterable[str | Path], model: str | None = None) -> ModelTable:
    """Validate and concatenate the density files of one model, sorted by (param_id, horizon).

    ``model``, when given, must match the files' ``model`` column. Files must agree on parameter columns and on the
    number of quantiles, and no (param_id, horizon) may appear in two files (the error names both files).
    """
    paths = [Path(p) for p in paths]
    if not paths:
        raise DatasetInputError(f"no input files given for model {model!r}")
    tables: list[pa.Table] = []
    seen: dict[tuple[int, int], Path] = {}
    origin: dict[int, str] = {}
    file_metadata: dict[str, set[str]] = {}
    reference: tuple[str, list[str], int] | None = None
    for path in paths:
        table, metadata = read_density_file(path)
        file_model = table.column("model")[0].as_py()
        params = parameter_columns(table.schema)
        width = table.schema.field("quantiles").type.list_size
        if model is not None and file_model != model:
            raise _fail(path, f"holds rows of model {file_model!r}, expected {model!r}")
        if reference is None:
            reference = (file_model, params, width)
        elif (file_model, params, width) != reference:
            raise _fail(
                path,
                f"model/parameters/num_quantiles {(file_model, params, width)} differ from {paths[0]} {reference}",
            )
        for key in zip(table.column("param_id").to_pylist(), table.column("horizon").to_pylist(), strict=True):
            if key in seen:
                raise _fail(path, f"(param_id, horizon) = {key} is also in {seen[key]}")
            seen[key] = path
            origin.setdefault(key[0], str(path))
        for key in PROVENANCE_METADATA_KEYS:
            if key in metadata:
                file_metadata.setdefault(key, set()).add(metadata[key])
        tables.append(table)
    assert reference is not None
    model_name, params, width = reference
    schema = chunk_schema(params, width)
    combined = pa.concat_tables([_conform(t, schema) for t in tables])
    combined = combined.sort_by([("param_id", "ascending"), ("horizon", "ascending")]).combine_chunks()
    return ModelTable(
        model=model_name,
        table=combined,
        parameter_names=params,
        num_quantiles=width,
        sources=[str(p) for p in paths],
        file_metadata={key: sorted(values) for key, values in sorted(file_metadata.items())},
        origin=origin,
    )


def _conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """The table's columns in the contract order and exact types, without file or field metadata."""
    return pa.Table.from_arrays([table.column(f.name).cast(f.type) for f in schema], schema=schema)


def distinct_metadata(metadata: dict[str, list[str]]) -> dict[str, list[Any]]:
    """Every distinct value of each file metadata key, decoded from JSON, in a deterministic order.

    A merged file stores a key whose chunks disagree as a JSON list of the distinct values (``workflow.merge``), so a
    list is unpacked into its values; ``quantile_levels`` is itself a list, so only a list of lists is unpacked.
    """
    decoded: dict[str, list[Any]] = {}
    for key, raw_values in metadata.items():
        values: list[Any] = []
        for raw in raw_values:
            try:
                value = json.loads(raw)
            except ValueError:
                value = raw
            nested = isinstance(value, list) and bool(value) and isinstance(value[0], list)
            several = nested if key == "quantile_levels" else isinstance(value, list)
            for item in value if several else [value]:
                if item not in values:
                    values.append(item)
        decoded[key] = sorted(values, key=lambda v: json.dumps(v, sort_keys=True))
    return decoded
