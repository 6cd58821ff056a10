"""Per-model merge: validate every chunk parquet and stream them into ``results/<model>/densities.parquet``.

Each chunk is validated by :func:`density_engine.engine.chunkio.read_chunk` (schema, no NaN/inf, non-decreasing
quantiles, no duplicate (param_id, horizon); a bad chunk raises ``ChunkError`` naming the file). The merge adds the
checks across chunks: one model, the same columns, and no parameter set in two chunks. The output keeps the chunk
schema and is written atomically (temporary file in the same folder, then ``os.replace``); file metadata carries the
chunks' provenance keys (one value, or a JSON list of the distinct values), the summed ``wall_time_s`` and a
``density_engine.merge`` record.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from density_engine.workflow.chunks import CHUNK_NAME

#: Rows buffered before a row group is written (about 30 MB at 512 float32 quantiles per row).
ROW_GROUP_ROWS = 16_384
_SUMMED_KEYS = ("wall_time_s",)
_DROPPED_KEYS = ("path_steps_per_s",)


class MergeError(ValueError):
    """Chunks that cannot be merged; the message names the file."""


def chunk_files(chunks_dir: str | Path, num_chunks: int) -> list[Path]:
    """The expected chunk files ``chunk_00000.parquet`` .. of a model (stale extra chunks are ignored)."""
    return [Path(chunks_dir) / f"{CHUNK_NAME.format(chunk=k)}.parquet" for k in range(num_chunks)]


def _read_valid_chunk(path: Path) -> Any:
    from density_engine.engine.chunkio import read_chunk

    if not path.is_file():
        raise MergeError(f"{path}: chunk file is missing")
    result = read_chunk(path)
    return result[0] if isinstance(result, tuple) else result


def _file_metadata(schema: Any) -> dict[str, str]:
    return {
        key.decode(): value.decode()
        for key, value in (schema.metadata or {}).items()
        if not key.startswith(b"ARROW:") and not key.startswith(b"pandas")
    }


def _combine_metadata(values: dict[str, list[str]], num_chunks: int) -> dict[str, str]:
    merged: dict[str, str] = {}
    for key, seen in values.items():
        if key in _DROPPED_KEYS:
            continue
        if key in _SUMMED_KEYS:
            merged[key] = json.dumps(sum(float(json.loads(v)) for v in seen))
            continue
        distinct = sorted(set(seen))
        if len(distinct) == 1:
            merged[key] = distinct[0]
        else:
            decoded = []
            for value in distinct:
                try:
                    decoded.append(json.loads(value))
                except ValueError:
                    decoded.append(value)
            merged[key] = json.dumps(decoded)
    merged["density_engine.merge"] = json.dumps({"num_chunks": num_chunks})
    return merged


def merge_chunks(model: str, paths: Sequence[str | Path], out_path: str | Path) -> dict[str, int]:
    """Validate and merge chunk files of ``model`` into ``out_path``; return ``{"chunks": n, "rows": n}``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    paths = [Path(p) for p in paths]
    if not paths:
        raise MergeError(f"no chunk files to merge for model {model!r}")
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out_path.name}.", suffix=".tmp", dir=out_path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    schema: pa.Schema | None = None
    owner: dict[int, Path] = {}
    metadata_values: dict[str, list[str]] = {}
    buffer: list[pa.Table] = []
    buffered = rows = 0
    writer: pq.ParquetWriter | None = None
    try:
        for path in paths:  # footers only: the provenance metadata must be known before the writer opens
            if not path.is_file():
                raise MergeError(f"{path}: chunk file is missing")
            try:
                footer_schema = pq.read_schema(path)
            except (OSError, pa.ArrowException) as exc:
                raise MergeError(f"{path}: not a readable parquet file ({exc})") from exc
            for key, value in _file_metadata(footer_schema).items():
                metadata_values.setdefault(key, []).append(value)
        merged_metadata = _combine_metadata(metadata_values, len(paths))
        for path in paths:
            table = _read_valid_chunk(path)
            models = set(table.column("model").unique().to_pylist())
            if models != {model}:
                raise MergeError(f"{path}: holds rows of model(s) {sorted(models)}, expected {model!r}")
            plain = table.replace_schema_metadata(None)
            if schema is None:
                schema = plain.schema
                writer = pq.ParquetWriter(tmp, schema.with_metadata(merged_metadata), compression="zstd")
            elif not plain.schema.equals(schema):
                raise MergeError(f"{path}: columns/types differ from {paths[0]}:\n{plain.schema}\nvs\n{schema}")
            for param_id in set(table.column("param_id").to_pylist()):
                if param_id in owner:
                    raise MergeError(f"{path}: param_id {param_id} is also in {owner[param_id]}")
                owner[param_id] = path
            buffer.append(plain)
            buffered += plain.num_rows
            rows += plain.num_rows
            if buffered >= ROW_GROUP_ROWS:
                writer.write_table(pa.concat_tables(buffer), row_group_size=ROW_GROUP_ROWS)
                buffer, buffered = [], 0
        assert writer is not None
        if buffer:
            writer.write_table(pa.concat_tables(buffer), row_group_size=ROW_GROUP_ROWS)
        writer.close()
        writer = None
        os.replace(tmp, out_path)
    except BaseException:
        if writer is not None:
            writer.close()
        tmp.unlink(missing_ok=True)
        raise
    return {"chunks": len(paths), "rows": rows}
