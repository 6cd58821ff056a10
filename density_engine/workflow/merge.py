"""Per-model merge: verify every chunk and stream the chunks into ``results/<model>/densities.parquet``.

The chunks to merge come from the model's chunk plan (:func:`planned_chunks`): for every chunk of the *current* config
its ``chunk_NNNNN.<key>.parquet``, its chunk manifest and its ``chunk_NNNNN.<key>.json`` spec; chunk files of older
configs (other keys) in the same folder are never merged. Every chunk passes the checks of
:mod:`density_engine.workflow.integrity` (readable, checksum against the manifest written with it, the chunk contract,
value rules, quantiles consistent with the moments, and :func:`check_against_spec`: exactly the spec's param_id x
horizon rows, the same model, num_paths, seed, num_quantiles, dt, time grid (file metadata) and fine steps per horizon,
and parameter values) before anything is written; the merge adds the checks across chunks (one model, the same columns,
no parameter set in two chunks). A chunk that fails is moved to the quarantine folder and the merge fails naming it and
the check, so the next run re-simulates exactly that chunk, while the last good densities file stays as it was. The
output keeps the chunk schema (with the error-budget columns ``steps``, ``mc_se_cdf_*``, ``disc_err_cdf_*``) and is
written with :func:`density_engine.atomic.atomic_path` (temp file beside it, fsync, rename); file metadata carries the
chunks' provenance keys (one value, or a JSON list of the distinct values), the summed ``wall_time_s`` and a
``density_engine.merge`` record.

:func:`merge_model` then writes the merge manifest ``densities.<plan key>.json`` beside the output (model, plan key,
rows, the densities file's size and sha256, the merged chunk names). Its name changes with any change of the merged
content, so the workflow's targets change with the config even where Snakemake's metadata cannot tell
(``--rerun-triggers mtime``, deleted metadata); the dataset build checks the densities against its sha256
(:func:`verify_densities`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from density_engine.atomic import atomic_path, file_sha256, write_text_atomic
from density_engine.engine.chunkio import CHECKSUM_KEY, ChunkSpec, SpecError, decode_metadata, load_spec
from density_engine.workflow.chunks import (
    KEY_PATTERN,
    ModelPlan,
    chunk_file_name,
    densities_manifest_name,
    spec_file_name,
)
from density_engine.workflow.integrity import (
    ChunkIntegrityError,
    check_values,
    quarantine_chunk,
    quarantined,
    read_verified_table,
)

#: Rows buffered before a row group is written (about 30 MB at 512 float32 quantiles per row).
ROW_GROUP_ROWS = 16_384
_SUMMED_KEYS = ("wall_time_s",)
_DROPPED_KEYS = ("path_steps_per_s", CHECKSUM_KEY)


class MergeError(ValueError):
    """Chunks that cannot be merged; the message names the file."""


def planned_chunks(plan: ModelPlan, chunks_dir: str | Path, specs_dir: str | Path) -> list[tuple[Path, Path]]:
    """(chunk parquet, spec JSON) of every chunk of ``plan``, in chunk order, named after the chunks' content keys."""
    return [
        (Path(chunks_dir) / chunk_file_name(k, key), Path(specs_dir) / spec_file_name(k, key))
        for k, key in enumerate(plan.chunk_keys)
    ]


def _read_spec(path: Path) -> ChunkSpec:
    """The validated spec of a chunk (:func:`~density_engine.engine.chunkio.load_spec`); errors as MergeError."""
    if not path.is_file():
        raise MergeError(f"{path}: chunk spec is missing")
    try:
        return load_spec(path)
    except SpecError as exc:
        raise MergeError(str(exc)) from None


def _row_difference(pairs: set[tuple[int, int]], expected: set[tuple[int, int]]) -> str:
    """The (param_id, horizon) rows missing from / not asked for by the spec (first five of each)."""
    parts = []
    for what, rows in (("missing", sorted(expected - pairs)), ("not in the spec", sorted(pairs - expected))):
        if rows:
            parts.append(f"{what}: (param_id, horizon) {', '.join(map(str, rows[:5]))}{' ...' * (len(rows) > 5)}")
    return "; ".join(parts)


def check_against_spec(table: Any, spec: ChunkSpec, chunk_path: Path, spec_path: Path) -> None:
    """Raise :class:`MergeError` naming ``chunk_path`` (and its spec) unless ``table`` holds exactly the spec's
    param_id x horizon rows, simulated with the spec's model, num_paths, seed, num_quantiles, dt, time grid (the
    ``time_grid`` file metadata) and fine steps per horizon (column ``steps``: the finest grid
    :meth:`~density_engine.models.time_grid.TimeGridPolicy.fine_steps` of the horizon; the horizon itself for a
    discrete-time model), and parameter values."""
    prefix = f"{chunk_path}: does not match its spec {spec_path}"

    def differs(what: str, values: list[Any], wanted: Any) -> MergeError:
        found = values[0] if len(values) == 1 else values
        return MergeError(f"{prefix}: {what} is {found!r} in the chunk, {wanted!r} in the spec")

    sets = spec.parameter_sets
    horizons = sorted(spec.horizons)
    pairs = set(zip(table.column("param_id").to_pylist(), table.column("horizon").to_pylist(), strict=True))
    expected = {(s.param_id, h) for s in sets for h in horizons}
    if table.num_rows != len(expected) or pairs != expected:
        raise MergeError(
            f"{prefix}: {table.num_rows} rows, the spec asks for {len(sets)} parameter sets x {len(horizons)} "
            f"horizons = {len(expected)} rows ({_row_difference(pairs, expected)})"
        )
    for column in ("model", "num_paths", "seed", "dt"):
        values = table.column(column).unique().to_pylist()
        if values != [getattr(spec, column)]:
            raise differs(column, values, getattr(spec, column))
    grid = decode_metadata(table.schema).get("time_grid", "<missing>")
    if grid != spec.time_grid:
        raise MergeError(f"{prefix}: file metadata time_grid is {grid!r} in the chunk, {spec.time_grid!r} in the spec")
    policy = spec.time_grid_policy()
    row_horizons = table.column("horizon").to_numpy()
    wanted_steps = {h: h if policy is None else policy.fine_steps(h) for h in horizons}
    steps = table.column("steps").to_numpy()
    bad_steps = np.flatnonzero(steps != np.array([wanted_steps[int(h)] for h in row_horizons], dtype=np.int64))
    if bad_steps.size:
        row = int(bad_steps[0])
        raise differs(
            f"column steps at horizon {int(row_horizons[row])}", [int(steps[row])], wanted_steps[row_horizons[row]]
        )
    width = table.schema.field("quantiles").type.list_size
    if width != spec.num_quantiles:
        raise differs("num_quantiles", [width], spec.num_quantiles)
    names = list(sets[0].params)
    spec_ids = np.array([s.param_id for s in sets])
    spec_values = np.array([[s.params[name] for name in names] for s in sets]).reshape(len(sets), len(names))
    row_ids = table.column("param_id").to_numpy()
    by_id = np.argsort(spec_ids, kind="stable")
    set_of_row = by_id[np.searchsorted(spec_ids[by_id], row_ids)]  # the rows' param_ids are the spec's (checked above)
    for column, name in enumerate(names):
        got, wanted = table.column(name).to_numpy(), spec_values[set_of_row, column]
        bad = np.flatnonzero(got != wanted)
        if bad.size:
            row = int(bad[0])
            raise differs(f"parameter {name} of param_id {int(row_ids[row])}", [float(got[row])], float(wanted[row]))


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


def _as_integrity_error(path: Path, error: MergeError) -> ChunkIntegrityError:
    return ChunkIntegrityError(path, "spec", str(error).removeprefix(f"{path}: "))


def verify_chunks(
    model: str, paths: Sequence[Path], spec_paths: Sequence[Path] | None, quarantine_dir: Path | None = None
) -> tuple[dict[Path, ChunkIntegrityError], dict[str, list[str]]]:
    """Run every integrity check (:mod:`density_engine.workflow.integrity`, in the order of ``CHECKS``) on every
    chunk; return the chunks that failed and the file metadata values of the good ones. A missing chunk that is in
    ``quarantine_dir`` (an earlier attempt moved it there) counts as failed with its recorded reason. Problems across
    chunks (a param_id in two chunks, different columns) and missing or unreadable specs raise :class:`MergeError` at
    once: they are not the fault of one chunk file."""
    failures: dict[Path, ChunkIntegrityError] = {}
    metadata_values: dict[str, list[str]] = {}
    owner: dict[int, Path] = {}
    schema: Any = None
    earlier = quarantined(quarantine_dir) if quarantine_dir is not None else {}
    for index, path in enumerate(paths):
        stem = path.name.removesuffix(".parquet")
        if not path.is_file() and stem in earlier:
            detail = f"moved to {quarantine_dir}/ earlier ({earlier[stem]})"
            failures[path] = ChunkIntegrityError(path, "quarantine", detail)
            continue
        if not path.is_file():
            raise MergeError(f"{path}: chunk file is missing")
        spec = _read_spec(spec_paths[index]) if spec_paths is not None else None
        try:
            table = read_verified_table(path)
            models = set(table.column("model").unique().to_pylist())
            if models != {model}:
                raise ChunkIntegrityError(
                    path, "contract", f"holds rows of model(s) {sorted(models)}, expected {model!r}"
                )
            check_values(table, path)
            if spec is not None:
                try:
                    check_against_spec(table, spec, path, spec_paths[index])
                except MergeError as exc:
                    raise _as_integrity_error(path, exc) from None
        except ChunkIntegrityError as exc:
            failures[path] = exc
            continue
        plain = table.schema.remove_metadata()
        if schema is None:
            schema, first = plain, path
        elif not plain.equals(schema):
            raise MergeError(f"{path}: columns/types differ from {first}:\n{plain}\nvs\n{schema}")
        for param_id in set(table.column("param_id").to_pylist()):
            if param_id in owner:
                raise MergeError(f"{path}: param_id {param_id} is also in {owner[param_id]}")
            owner[param_id] = path
        for key, value in _file_metadata(table.schema).items():
            metadata_values.setdefault(key, []).append(value)
    return failures, metadata_values


def _failure_message(
    model: str, total: int, failures: dict[Path, ChunkIntegrityError], moved: dict[Path, Path], out_path: Path
) -> str:
    kept = f"{out_path} was not changed" if out_path.exists() else f"{out_path} was not written"
    if moved:
        where = Path(next(iter(moved.values()))).parent
        head = (
            f"{model}: {len(failures)} of {total} chunk(s) failed the integrity checks and were moved to {where}/ "
            f"({kept}); run snakemake again: it re-simulates exactly these chunks"
        )
    else:
        head = f"{model}: {len(failures)} of {total} chunk(s) failed the integrity checks ({kept})"
    return "\n".join([head, *(f"  {error}" for error in failures.values())])


def merge_chunks(
    model: str,
    paths: Sequence[str | Path],
    out_path: str | Path,
    specs: Sequence[str | Path] | None = None,
    quarantine_dir: str | Path | None = None,
) -> dict[str, int]:
    """Verify and merge chunk files of ``model`` into ``out_path``; return ``{"chunks": n, "rows": n}``.

    Every chunk passes the integrity checks (:mod:`density_engine.workflow.integrity`: readable, checksum against its
    chunk manifest, contract, value rules, quantiles vs moments, and with ``specs`` (one per chunk, same order) its
    spec) before anything is written. If any chunk fails, nothing is written (``out_path`` keeps its last good
    content), the failed chunks are moved to ``quarantine_dir`` when given (so the next run re-simulates exactly
    them), and :class:`MergeError` lists each chunk with the check it failed.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    paths = [Path(p) for p in paths]
    out_path = Path(out_path)
    spec_paths = [Path(p) for p in specs] if specs is not None else None
    if not paths:
        raise MergeError(f"no chunk files to merge for model {model!r}")
    if spec_paths is not None and len(spec_paths) != len(paths):
        raise MergeError(f"{len(paths)} chunk files but {len(spec_paths)} specs for model {model!r}")
    quarantine = Path(quarantine_dir) if quarantine_dir is not None else None
    failures, metadata_values = verify_chunks(model, paths, spec_paths, quarantine)
    if failures:
        moved = {}
        if quarantine is not None:
            moved = {
                path: quarantine_chunk(path, quarantine, f"{error.check}: {error.detail}")
                if path.exists()
                else quarantine / path.name
                for path, error in failures.items()
            }
        raise MergeError(_failure_message(model, len(paths), failures, moved, out_path))
    merged_metadata = _combine_metadata(metadata_values, len(paths))
    buffer: list[pa.Table] = []
    buffered = rows = 0
    with atomic_path(out_path) as tmp:
        writer: pq.ParquetWriter | None = None
        try:
            for path in paths:  # verified above
                plain = pq.read_table(path).replace_schema_metadata(None)
                if writer is None:
                    writer = pq.ParquetWriter(tmp, plain.schema.with_metadata(merged_metadata), compression="zstd")
                buffer.append(plain)
                buffered += plain.num_rows
                rows += plain.num_rows
                if buffered >= ROW_GROUP_ROWS:
                    writer.write_table(pa.concat_tables(buffer), row_group_size=ROW_GROUP_ROWS)
                    buffer, buffered = [], 0
            assert writer is not None
            if buffer:
                writer.write_table(pa.concat_tables(buffer), row_group_size=ROW_GROUP_ROWS)
        finally:
            if writer is not None:
                writer.close()
    return {"chunks": len(paths), "rows": rows}


def merge_model(
    plan: ModelPlan,
    chunks_dir: str | Path,
    specs_dir: str | Path,
    out_path: str | Path,
    manifest_path: str | Path | None = None,
    quarantine_dir: str | Path | None = None,
) -> dict[str, int]:
    """Merge the chunks of ``plan`` (verified, checked against their specs) into ``out_path``, then write the merge
    manifest and remove manifests of other plans beside it.

    ``manifest_path`` defaults to ``densities.<plan key>.json`` beside ``out_path``; it records the densities file's
    size and sha256, which the dataset build checks. On any failure (see :func:`merge_chunks`; bad chunks go to
    ``quarantine_dir``) neither the densities nor any manifest are touched.
    """
    out_path = Path(out_path)
    expected_name = densities_manifest_name(plan.plan_key)
    manifest_path = Path(manifest_path) if manifest_path is not None else out_path.parent / expected_name
    stale_name = re.compile(rf"densities\.{KEY_PATTERN}\.json")
    if stale_name.fullmatch(manifest_path.name) and manifest_path.name != expected_name:
        raise MergeError(f"{manifest_path}: the model config's plan of {plan.model} has manifest {expected_name}")
    pairs = planned_chunks(plan, chunks_dir, specs_dir)
    summary = merge_chunks(
        plan.model, [c for c, _ in pairs], out_path, specs=[s for _, s in pairs], quarantine_dir=quarantine_dir
    )
    write_merge_manifest(plan, out_path, manifest_path, summary["rows"])
    for stale in manifest_path.parent.iterdir():
        if stale != manifest_path and stale_name.fullmatch(stale.name):
            stale.unlink(missing_ok=True)
    return summary


def write_merge_manifest(plan: ModelPlan, densities_path: Path, manifest_path: Path, rows: int) -> dict[str, Any]:
    """Write (atomically) and return the merge manifest of a densities file: model, plan key, the file's size and
    sha256, parameter sets, rows, the merged chunk stems."""
    manifest = {
        "model": plan.model,
        "plan_key": plan.plan_key,
        "densities": densities_path.name,
        "bytes": densities_path.stat().st_size,
        "sha256": file_sha256(densities_path),
        "num_sets": plan.num_sets,
        "rows": rows,
        "chunks": plan.chunk_stems,
    }
    write_text_atomic(manifest_path, json.dumps(manifest, indent=1) + "\n")
    return manifest


def verify_densities(densities_path: str | Path, manifest_path: str | Path) -> dict[str, Any]:
    """Check that a densities file is the one its merge wrote (size and sha256 in the merge manifest); return the
    manifest. :class:`MergeError` naming both files otherwise (an edited or half-copied densities file)."""
    densities_path = Path(densities_path)
    manifest = read_manifest(manifest_path)
    if "sha256" not in manifest:
        raise MergeError(f"{manifest_path}: merge manifest without a sha256 (written by an older version): merge again")
    if not densities_path.is_file():
        raise MergeError(f"{densities_path}: densities file is missing")
    size, digest = densities_path.stat().st_size, file_sha256(densities_path)
    if size != manifest.get("bytes") or digest != manifest["sha256"]:
        raise MergeError(
            f"{densities_path}: not the file its merge wrote (sha256 {digest[:12]}, the merge manifest {manifest_path} "
            f"has {str(manifest['sha256'])[:12]}): it changed after the merge; re-run the merge "
            f"(snakemake --forcerun merge_{manifest.get('model', '<model>')})"
        )
    return manifest


def read_manifest(path: str | Path) -> dict[str, Any]:
    """A merge manifest written by :func:`merge_model`; :class:`MergeError` names the file if it is unusable."""
    path = Path(path)
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise MergeError(f"{path}: not a readable merge manifest ({exc})") from exc
    if not isinstance(manifest, dict) or not isinstance(manifest.get("chunks"), list):
        raise MergeError(f"{path}: not a merge manifest (no chunks list)")
    return manifest
