"""Chunk runner: a validated chunk spec → a chunk table (quantiles and moments per parameter set and horizon)."""

from __future__ import annotations

import logging
import os
import platform
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import torch

from density_engine import __version__
from density_engine.codeversion import code_version, git_commit
from density_engine.engine.chunkio import (
    ERROR_LEVELS,
    MOMENT_COLUMNS,
    ChunkSpec,
    blank_infinite_moments,
    chunk_schema,
    encode_metadata,
    error_level_indices,
    quantile_levels,
)
from density_engine.engine.counters import RNG_SCHEME
from density_engine.engine.estimators import HorizonEstimate, error_methods, estimate_parameter_set
from density_engine.engine.paths import disable_tf32, resolve_device
from density_engine.models import get_model_class

log = logging.getLogger(__name__)


COLUMN_WORKERS_ENV = "DENSITY_ENGINE_COLUMN_WORKERS"
#: Threads computing model-side error columns (rough Heston: Fourier) while a GPU simulates the next sets.
DEFAULT_GPU_COLUMN_WORKERS = 8


def column_workers(device: torch.device) -> int:
    """Threads for the model-side error columns: ``$DENSITY_ENGINE_COLUMN_WORKERS``, else none on CPU (a CPU chunk
    job has one core: the columns run in line) and on CUDA up to :data:`DEFAULT_GPU_COLUMN_WORKERS`, one core left for
    driving the GPU. The columns are pure functions: the values do not depend on the threads."""
    raw = os.environ.get(COLUMN_WORKERS_ENV, "").strip()
    if raw:
        try:
            workers = int(raw)
        except ValueError:
            raise ValueError(f"{COLUMN_WORKERS_ENV} must be an integer >= 0, got {raw!r}") from None
        if workers < 0:
            raise ValueError(f"{COLUMN_WORKERS_ENV} must be an integer >= 0, got {raw!r}")
        return workers
    if device.type != "cuda":
        return 0
    return max(1, min(DEFAULT_GPU_COLUMN_WORKERS, (os.cpu_count() or 2) - 1))


def error_summary(values: np.ndarray) -> dict[str, float]:
    """A row's error budget at the levels nearest 0.001, 0.5 and 0.999 (first, middle, last of ``(j + 0.5) / M``) and
    its maximum over all levels (:data:`~density_engine.engine.chunkio.ERROR_LEVELS`)."""
    picked = {name: values[j] for name, j in error_level_indices(len(values)).items()} | {"max": values.max()}
    return {level: float(picked[level]) for level in ERROR_LEVELS}


@dataclass(frozen=True)
class ChunkResult:
    """The chunk table (with file metadata) and the run's figures."""

    table: pa.Table
    wall_time_s: float
    path_steps: int
    path_steps_per_s: float


def cpu_model_name() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux), else what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_description(device: torch.device) -> str:
    """``cuda (<GPU name>)``, or ``cpu (<model>, <arch>, <torch CPU capability>, <threads> threads)``: the CPU vector
    capability (e.g. AVX2, AVX512) decides torch's exp/log/cos kernels, so it is part of what bit-identity needs."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    capability = torch.backends.cpu.get_cpu_capability()
    return f"cpu ({cpu_model_name()}, {platform.machine()}, {capability}, {torch.get_num_threads()} threads)"


def run_chunk(
    spec: ChunkSpec,
    device: str = "auto",
    dtype: torch.dtype = torch.float32,
    memory_budget_bytes: int | None = None,
    progress: Callable[[int], None] | None = None,
    compiled: bool | None = None,
) -> ChunkResult:
    """Simulate every parameter set of ``spec`` and return the chunk table (rows sorted by (param_id, horizon)).

    Each parameter set's stream is keyed by ``(spec.seed, param_id)`` only, so a set's rows do not depend on the
    chunk it lands in or its position. Compiled or eager step kernels are chosen from the spec's paths and steps
    (``compiled`` forces one; the ``rng`` metadata records which ran). ``progress(n)`` receives finished path-steps.
    """
    disable_tf32()
    torch_device = resolve_device(device)
    model_cls = get_model_class(spec.model)
    names = list(model_cls.parameter_names())
    horizons = sorted(spec.horizons)
    settings = spec.model_settings()
    columns: dict[str, list[Any]] = {name: [] for name in chunk_schema(names, spec.num_quantiles).names}
    start = time.perf_counter()
    sim_time = 0.0
    path_steps = 0
    modes: set[bool] = set()
    ordered = sorted(spec.parameter_sets, key=lambda s: s.param_id)
    policy = spec.time_grid_policy()
    workers = column_workers(torch_device)
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="error-column") if workers else None
    results: list[tuple[Any, list[HorizonEstimate]]] = []
    try:
        for index, pset in enumerate(ordered, start=1):
            t0 = time.perf_counter()
            model = model_cls(**pset.params, **settings)
            info: dict[str, Any] = {}
            try:
                rows = estimate_parameter_set(
                    model, policy, horizons, spec.num_paths, spec.num_quantiles, spec.seed, pset.param_id,
                    progress=progress, info=info, column_pool=pool, device=torch_device, dtype=dtype,
                    memory_budget_bytes=memory_budget_bytes, compiled=compiled,
                )  # fmt: skip
            except FloatingPointError as exc:
                raise FloatingPointError(f"{spec.source}: param_id {pset.param_id} {pset.params}: {exc}") from exc
            modes.add(bool(info["compiled"]))
            if torch_device.type == "cuda":
                torch.cuda.synchronize(torch_device)
            seconds = time.perf_counter() - t0
            path_steps += info["path_steps"]
            sim_time += seconds
            log.info(
                "%s chunk %d: param_id %d (%d/%d): %d path-steps in %.2f s (%.3g path-steps/s incl. quantiles)",
                spec.model,
                spec.chunk_id,
                pset.param_id,
                index,
                len(ordered),
                info["path_steps"],
                seconds,
                info["path_steps"] / max(seconds, 1e-9),
            )
            results.append((pset, rows))
        # error columns still running on the host's CPU cores (GPU jobs) are collected here
        results = [(pset, [row.resolved() for row in rows]) for pset, rows in results]
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    for pset, rows in results:
        for row in rows:
            columns["model"].append(spec.model)
            columns["param_id"].append(pset.param_id)
            for name in names:
                columns[name].append(pset.params[name])
            columns["horizon"].append(row.horizon)
            columns["quantiles"].append(row.quantiles.astype(np.float32))
            for name in MOMENT_COLUMNS:
                columns[name].append(row.moments[name])
            columns["num_paths"].append(spec.num_paths)
            columns["seed"].append(spec.seed)
            columns["dt"].append(spec.dt)
            columns["steps"].append(row.steps)
            for prefix, values in (("mc_se_cdf", row.mc_se), ("disc_err_cdf", row.disc_err)):
                for level, value in error_summary(values).items():
                    columns[f"{prefix}_{level}"].append(value)
    blank_infinite_moments(model_cls, columns)  # skew/kurt of a moment the model says is infinite: NaN, not noise
    wall = time.perf_counter() - start
    rate = path_steps / sim_time if sim_time > 0 else 0.0
    schema = chunk_schema(names, spec.num_quantiles)
    arrays = []
    for fld in schema:
        if fld.name == "quantiles":
            flat = np.concatenate(columns["quantiles"]).astype(np.float32, copy=False)
            arrays.append(pa.FixedSizeListArray.from_arrays(pa.array(flat, pa.float32()), spec.num_quantiles))
        else:
            arrays.append(pa.array(columns[fld.name], type=fld.type))
    metadata = {
        "density_engine.version": __version__,
        "density_engine.code_version": code_version(),
        "density_engine.git_commit": git_commit(),
        "torch.version": torch.__version__,
        "device": device_description(torch_device),
        "quantile_levels": quantile_levels(spec.num_quantiles).tolist(),
        "wall_time_s": round(wall, 6),
        "path_steps_per_s": round(rate, 1),
        "spec_version": spec.spec_version,
        "time_grid": spec.time_grid,
        "error_estimates": error_methods(model_cls, policy),
        "rng": (
            f"{RNG_SCHEME}; kernels={'+'.join(sorted('compiled' if m else 'eager' for m in modes))}; "
            f"dtype={str(dtype).removeprefix('torch.')}; python={sys.version.split()[0]}"
        ),
    }
    table = pa.Table.from_arrays(arrays, schema=schema.with_metadata(encode_metadata(metadata)))
    return ChunkResult(table, wall, path_steps, rate)
