"""Chunk planning and chunk spec files.

A model's parameter sets are cut into chunks of ``chunk_size`` consecutive sets; chunk ``k`` holds rows
``[k * chunk_size, (k + 1) * chunk_size)``. The number of chunks is known from the config alone (no sampling), so the
Snakemake DAG lists every chunk job without a checkpoint.

Each chunk also gets a *content key*: a hash of everything that determines the chunk's spec (model, sampler,
resolved parameter ranges, seed, its row range, horizons, paths, quantiles, dt, time grid policy, and for
order-dependent samplers the whole design). It is computed without sampling and is part of the spec file name
(``chunk_00003.<key>.json``): a chunk whose content changes gets a new spec file, which is what re-runs exactly that
chunk (raising ``n_samples`` under Sobol re-runs only the last, partial chunk and adds new ones).

Every per-chunk file is named after the same key: ``chunk_00003.<key>.json`` (spec), ``chunk_00003.<key>.parquet``
(simulated chunk), ``.log`` and ``.tsv`` (benchmark). A content change therefore changes the names of both the
input and the output of the chunk job, which re-runs it without relying on Snakemake's metadata (``--rerun-triggers
mtime`` or a deleted ``.snakemake/`` still see it), and a chunk file of an older config never passes for a current
one.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from density_engine.atomic import atomic_path, write_text_atomic
from density_engine.engine.chunkio import SPEC_VERSION
from density_engine.models.time_grid import compact_text

CHUNK_NAME = "chunk_{chunk:05d}"
#: Length of a content key (hex digits of a SHA-256) and the pattern of one (a Snakemake wildcard constraint).
KEY_LENGTH = 16
KEY_PATTERN = rf"[0-9a-f]{{{KEY_LENGTH}}}"
#: Chunk specs written per spec job. A job with thousands of outputs makes Snakemake's DAG work quadratic; batches of
#: 100 keep a 10,000-chunk dry run linear.
SPEC_BATCH_CHUNKS = 100


@dataclass(frozen=True)
class ModelPlan:
    """How one model's parameter sets are split into chunks."""

    model: str
    num_sets: int
    chunk_size: int
    chunk_keys: tuple[str, ...]
    grid_key: str = ""

    @property
    def num_chunks(self) -> int:
        return len(self.chunk_keys)

    @property
    def chunk_names(self) -> list[str]:
        return [CHUNK_NAME.format(chunk=k) for k in range(self.num_chunks)]

    @property
    def chunk_stems(self) -> list[str]:
        """``chunk_00003.<key>`` per chunk: the name of its spec, parquet, log and benchmark file without extension."""
        return [chunk_stem(k, key) for k, key in enumerate(self.chunk_keys)]

    @property
    def plan_key(self) -> str:
        """Content key of the model's whole plan (every chunk key, in order): names the merge manifest
        ``results/<model>/densities.<plan key>.json``, so any change of the merged content is a new target file."""
        return _hash({"model": self.model, "chunk_keys": list(self.chunk_keys)})

    def batches(self, batch_size: int = SPEC_BATCH_CHUNKS) -> list[range]:
        """Chunk ranges written by one spec job each."""
        return [range(a, min(a + batch_size, self.num_chunks)) for a in range(0, self.num_chunks, batch_size)]


def num_chunks(num_sets: int, chunk_size: int) -> int:
    """Chunks needed for ``num_sets`` parameter sets."""
    return -(-num_sets // chunk_size)


def _model_definition(model_name: str, model_cfg: Mapping[str, Any], base_dir: str | Path) -> dict[str, Any]:
    """Everything except the row range that decides what a chunk contains."""
    from density_engine.workflow.config import model_settings
    from density_engine.workflow.samplers import parameter_space

    names, ranged, fixed = parameter_space(model_name, model_cfg)
    dt, time_grid = model_settings(model_name, model_cfg)
    sampler = model_cfg.get("sampler", "sobol")
    definition: dict[str, Any] = {
        "spec_version": SPEC_VERSION,
        "model": model_name,
        "sampler": sampler,
        "parameters": {name: list(ranged[name]) if name in ranged else fixed[name] for name in names},
        "seed": int(model_cfg["seed"]),
        "horizons": [int(h) for h in model_cfg["horizons"]],
        "num_paths": int(model_cfg["num_paths"]),
        "num_quantiles": int(model_cfg.get("num_quantiles", 512)),
        "dt": dt,
        "time_grid": time_grid,
        "chunk_size": int(model_cfg["chunk_size"]),
    }
    if sampler in ("lhs", "grid"):  # the whole design depends on n_samples (and the grid shape)
        definition["n_samples"] = int(model_cfg["n_samples"])
        definition["grid_points"] = dict(model_cfg.get("grid_points") or {})
    return definition


def _hash(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:KEY_LENGTH]


def plan_model(model_name: str, model_cfg: Mapping[str, Any], base_dir: str | Path = ".") -> ModelPlan:
    """Chunk plan (count and content keys) of one model, computed without drawing parameter sets."""
    from density_engine.workflow.samplers import count_parameter_sets, read_parameter_file

    definition = _model_definition(model_name, model_cfg, base_dir)
    chunk_size = definition["chunk_size"]
    num_sets = count_parameter_sets(model_name, model_cfg, base_dir)
    file_rows = None
    if isinstance(definition["sampler"], Mapping):
        file_rows = read_parameter_file(model_name, model_cfg, base_dir)
    base = _hash(definition)
    grid_definition = {k: v for k, v in definition.items() if k != "chunk_size"}
    grid_payload: dict[str, Any] = {"definition": grid_definition, "num_sets": num_sets}
    if file_rows is not None:
        grid_payload["content"] = _hash(file_rows.to_json(orient="split", double_precision=15))
    keys = []
    for chunk in range(num_chunks(num_sets, chunk_size)):
        rows = [chunk * chunk_size, min((chunk + 1) * chunk_size, num_sets)]
        payload: dict[str, Any] = {"definition": base, "rows": rows}
        if file_rows is not None:
            payload["content"] = file_rows.iloc[rows[0] : rows[1]].to_json(orient="split", double_precision=15)
        keys.append(_hash(payload))
    return ModelPlan(model_name, num_sets, chunk_size, tuple(keys), _hash(grid_payload))


def build_specs(
    model_name: str,
    model_cfg: Mapping[str, Any],
    base_dir: str | Path = ".",
    frame: Any = None,
    chunks: Sequence[int] | None = None,
) -> list[dict[str, Any]]:
    """The chunk spec dicts (architecture.md "Chunk spec") of one model, in chunk order.

    ``frame`` is the model's parameter grid (sampled when not given); ``chunks`` selects chunk numbers (default all).
    """
    from density_engine.workflow.config import model_settings
    from density_engine.workflow.samplers import sample_parameter_sets

    if frame is None:
        frame = sample_parameter_sets(model_name, model_cfg, base_dir)
    names = [c for c in frame.columns if c != "param_id"]
    dt, time_grid = model_settings(model_name, model_cfg)
    chunk_size = int(model_cfg["chunk_size"])
    ids = frame["param_id"].to_numpy()
    values = frame[names].to_numpy()
    specs = []
    for chunk in chunks if chunks is not None else range(num_chunks(len(frame), chunk_size)):
        rows = range(chunk * chunk_size, min((chunk + 1) * chunk_size, len(frame)))
        if not rows:
            raise ValueError(f"chunk {chunk} of {model_name} is beyond the {len(frame)} parameter sets")
        specs.append(
            {
                "spec_version": SPEC_VERSION,
                "model": model_name,
                "chunk_id": chunk,
                "seed": int(model_cfg["seed"]),
                "num_paths": int(model_cfg["num_paths"]),
                "num_quantiles": int(model_cfg.get("num_quantiles", 512)),
                "horizons": [int(h) for h in model_cfg["horizons"]],
                "dt": dt,
                "time_grid": time_grid,
                "parameter_sets": [
                    {"param_id": int(ids[i]), "params": dict(zip(names, map(float, values[i]), strict=True))}
                    for i in rows
                ],
            }
        )
    return specs


def grid_file_name(grid_key: str) -> str:
    """``parameters.<grid key>.parquet``: the model's whole parameter grid, named after everything it depends on."""
    return f"parameters.{grid_key}.parquet"


def write_grid(model_name: str, model_cfg: Mapping[str, Any], out_path: str | Path, base_dir: str | Path = ".") -> int:
    """Sample the model's parameter grid into a parquet file (atomic write), remove grids of earlier configs from the
    same folder; return the number of sets."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from density_engine.workflow.samplers import sample_parameter_sets

    out_path = Path(out_path)
    grid_key = plan_model(model_name, model_cfg, base_dir).grid_key
    expected = grid_file_name(grid_key)
    _check_keyed_name(out_path, expected, rf"parameters\.{KEY_PATTERN}\.parquet", f"grid of {model_name}")
    frame = sample_parameter_sets(model_name, model_cfg, base_dir)
    with atomic_path(out_path) as tmp:
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), tmp, compression="zstd")
    for stale in out_path.parent.glob("parameters.*.parquet"):  # grids of earlier configs
        if stale != out_path:
            stale.unlink(missing_ok=True)
    return len(frame)


def chunk_stem(chunk: int, key: str) -> str:
    """``chunk_00003.<content key>``: the name (without extension) of every file of one chunk."""
    return f"{CHUNK_NAME.format(chunk=chunk)}.{key}"


def spec_file_name(chunk: int, key: str) -> str:
    """``chunk_00003.<content key>.json``: the key in the name makes a changed chunk a new input file."""
    return f"{chunk_stem(chunk, key)}.json"


def chunk_file_name(chunk: int, key: str) -> str:
    """``chunk_00003.<content key>.parquet``: the key in the name makes a changed chunk a new output file."""
    return f"{chunk_stem(chunk, key)}.parquet"


def _check_keyed_name(path: Path, expected: str, pattern: str, what: str) -> None:
    """A file name of the keyed form ``pattern`` must carry the current key: a file of another config's key must never
    be written with this config's content."""
    if re.fullmatch(pattern, path.name) and path.name != expected:
        raise ValueError(f"{path}: the config's {what} is {expected}")


def densities_manifest_name(plan_key: str) -> str:
    """``densities.<plan key>.json``: the manifest written beside a model's merged ``densities.parquet``."""
    return f"densities.{plan_key}.json"


def chunk_settings(model_name: str, model_cfg: Mapping[str, Any]) -> str:
    """The model settings every chunk of a model is simulated with, as one compact line (the simulate rule's params
    and the first line of its log), e.g. ``sampler=sobol seed=1 num_paths=20000 num_quantiles=512 horizons=1,5,20
    dt=None time_grid=exact chunk_size=4``."""
    from density_engine.workflow.config import model_settings

    dt, time_grid = model_settings(model_name, model_cfg)
    sampler = model_cfg.get("sampler", "sobol")
    fields = {
        "sampler": sampler if isinstance(sampler, str) else f"file:{sampler['file']}",
        "seed": int(model_cfg["seed"]),
        "num_paths": int(model_cfg["num_paths"]),
        "num_quantiles": int(model_cfg.get("num_quantiles", 512)),
        "horizons": ",".join(str(int(h)) for h in model_cfg["horizons"]),
        "dt": dt,
        "time_grid": compact_text(time_grid),
        "chunk_size": int(model_cfg["chunk_size"]),
    }
    return " ".join(f"{name}={value}" for name, value in fields.items())


def write_specs(
    model_name: str,
    model_cfg: Mapping[str, Any],
    out_dir: str | Path,
    base_dir: str | Path = ".",
    grid_path: str | Path | None = None,
    chunks: Sequence[int] | None = None,
) -> list[Path]:
    """Write ``chunk_NNNNN.<key>.json`` for the given chunks (default all) of a model into ``out_dir``, reading the
    parameter grid from ``grid_path`` (sampled when not given), and remove the same chunks' stale spec files of earlier
    configs; return the paths in chunk order."""
    import pandas as pd

    out_dir = Path(out_dir)
    plan = plan_model(model_name, model_cfg, base_dir)
    chunks = list(range(plan.num_chunks)) if chunks is None else list(chunks)
    frame = pd.read_parquet(grid_path) if grid_path is not None else None
    if frame is not None and len(frame) != plan.num_sets:
        raise ValueError(f"{grid_path}: holds {len(frame)} parameter sets, the config asks for {plan.num_sets}")
    paths = []
    for spec in build_specs(model_name, model_cfg, base_dir, frame=frame, chunks=chunks):
        path = out_dir / spec_file_name(spec["chunk_id"], plan.chunk_keys[spec["chunk_id"]])
        write_text_atomic(path, json.dumps(spec, indent=1) + "\n")
        paths.append(path)
    current = {p.name for p in paths}
    for chunk in chunks:
        for stale in out_dir.glob(f"{CHUNK_NAME.format(chunk=chunk)}.*.json"):
            if stale.name not in current:
                stale.unlink(missing_ok=True)
    return paths
