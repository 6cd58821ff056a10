"""Path blocks: run a model's :meth:`~density_engine.models.base.Model.simulate_block` over all paths of one parameter
set in memory-bounded blocks and keep only the values at the requested horizons."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import TYPE_CHECKING

import torch

from density_engine.engine.rng import RNG_SUBBLOCK_PATHS, RandomStream

if TYPE_CHECKING:
    from density_engine.models.base import Model

log = logging.getLogger(__name__)

DEFAULT_MEMORY_BUDGET_BYTES: dict[str, int] = {"cpu": 1536 * 2**20, "cuda": 6 * 2**30}
"""Working memory per compute block (excluding the kept horizon values): sized for this 2-core CPU and a 24 GB GPU.
Override per model (``memory_budget_bytes=``), with ``--memory-budget`` on the CLI, or
``DENSITY_ENGINE_MEMORY_BUDGET``."""

MEMORY_BUDGET_ENV = "DENSITY_ENGINE_MEMORY_BUDGET"
CPU_BLOCK_SUBBLOCKS = 16
"""RNG sub-blocks per progress update on CPU."""


def disable_tf32() -> None:
    """Keep float32 matmuls in full precision (TF32 would wreck the Volterra sums)."""
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False


def normalize_horizons(horizons: Sequence[int]) -> list[int]:
    """Check horizons: a non-empty sequence of distinct positive integers (model steps)."""
    hs = list(horizons)
    if not hs:
        raise ValueError("horizons must not be empty")
    for h in hs:
        if isinstance(h, bool) or not isinstance(h, int) or h < 1:
            raise ValueError(f"horizons must be positive integers, got {h!r}")
    if len(set(hs)) != len(hs):
        raise ValueError(f"horizons must be distinct, got {hs}")
    return hs


def memory_budget_bytes(device: torch.device, override: int | None = None) -> int:
    """The block memory budget: ``override``, else ``$DENSITY_ENGINE_MEMORY_BUDGET``, else the device default."""
    if override is not None:
        budget = int(override)
    elif os.environ.get(MEMORY_BUDGET_ENV):
        raw = os.environ[MEMORY_BUDGET_ENV]
        try:
            budget = int(float(raw))
        except ValueError:
            raise ValueError(f"{MEMORY_BUDGET_ENV} must be a number of bytes, got {raw!r}") from None
    else:
        budget = DEFAULT_MEMORY_BUDGET_BYTES["cuda" if device.type == "cuda" else "cpu"]
    if budget <= 0:
        raise ValueError(f"memory budget must be > 0 bytes, got {budget}")
    return budget


def plan_blocks(num_paths: int, bytes_per_path: int, budget_bytes: int) -> list[tuple[int, int]]:
    """Path ranges of compute blocks: whole multiples of the RNG sub-block size (at least one sub-block each)."""
    subblocks_per_block = max(1, budget_bytes // max(1, bytes_per_path * RNG_SUBBLOCK_PATHS))
    size = subblocks_per_block * RNG_SUBBLOCK_PATHS
    return [(a, min(a + size, num_paths)) for a in range(0, num_paths, size)]


def cpu_workers(bytes_per_path: int, budget_bytes: int) -> int:
    """Sub-blocks simulated concurrently on CPU: torch's thread count, limited by the memory budget (at least 1)."""
    fit = budget_bytes // max(1, bytes_per_path * RNG_SUBBLOCK_PATHS)
    return max(1, min(torch.get_num_threads(), fit))


@contextmanager
def _single_threaded_ops() -> Iterator[None]:
    """Run torch ops single-threaded (parallelism comes from simulating sub-blocks in a thread pool instead)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _simulate_block_cpu(
    model: Model, stream: RandomStream, fine_steps: list[int], out: torch.Tensor, workers: int, warm_up: bool = False
) -> None:
    """CPU: one RNG sub-block per ``simulate_block`` call (cache-friendly), ``workers`` sub-blocks at a time, every
    torch op single-threaded. Each sub-block's result depends only on its own draws, so the bits do not depend on
    the number of workers or threads. Results go to ``out`` (len(fine_steps), stream.num_paths)."""
    parts = stream.split()
    offsets = [part.path_start - stream.path_start for part in parts]

    def run(index: int) -> None:
        values = model.simulate_block(parts[index], fine_steps)
        _check_shape(model, values, (len(fine_steps), parts[index].num_paths))
        out[:, offsets[index] : offsets[index] + parts[index].num_paths] = values

    with _single_threaded_ops():
        if workers <= 1 or len(parts) == 1:
            for index in range(len(parts)):
                run(index)
        else:
            first = 0
            if warm_up:  # one sub-block alone first, so per-model caches are filled before threads share them
                run(0)
                first = 1
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="density-engine") as pool:
                list(pool.map(run, range(first, len(parts))))


def _check_shape(model: Model, values: torch.Tensor, expected: tuple[int, int]) -> None:
    if tuple(values.shape) != expected:
        raise RuntimeError(f"{model.model_name}.simulate_block returned {tuple(values.shape)}, expected {expected}")


def simulate_horizons(
    model: Model,
    horizons: Sequence[int],
    progress: Callable[[int], None] | None = None,
    per_subblock: bool | None = None,
) -> torch.Tensor:
    """Cumulative log-returns of all ``model.num_paths`` paths at ``horizons`` (model steps).

    Returns ``(len(horizons), num_paths)`` with the model's dtype on its device, rows in the order of ``horizons``.
    ``progress(n)`` is called with the number of paths finished after each block. On CUDA a block (a whole number of
    RNG sub-blocks, sized by the memory budget) goes to the model in one call; on CPU each sub-block is its own call
    and sub-blocks run in a thread pool (``per_subblock`` overrides the choice; both give the same bits).
    """
    if model.num_paths is None:
        raise ValueError("call reset(num_paths) before simulating")
    disable_tf32()
    hs = normalize_horizons(horizons)
    num_paths = model.num_paths
    fine_steps = sorted({h * model.substeps for h in hs})
    per_path = model.block_bytes_per_path(fine_steps[-1]) + model.dtype.itemsize * len(fine_steps)
    budget = memory_budget_bytes(model.device, model.memory_budget_bytes)
    if per_path * min(num_paths, RNG_SUBBLOCK_PATHS) > budget:
        log.warning(
            "%s: one RNG sub-block of %d paths x %d fine steps needs ~%.0f MiB, more than the memory budget of"
            " %.0f MiB; running one sub-block at a time (raise --memory-budget / %s to use more workers)",
            model.model_name,
            min(num_paths, RNG_SUBBLOCK_PATHS),
            fine_steps[-1],
            per_path * min(num_paths, RNG_SUBBLOCK_PATHS) / 2**20,
            budget / 2**20,
            MEMORY_BUDGET_ENV,
        )
    on_cpu = model.device.type == "cpu" if per_subblock is None else per_subblock
    workers = cpu_workers(per_path, budget) if on_cpu else 1
    # CPU: memory is bounded by `workers` sub-blocks in flight; blocks only set the progress granularity
    blocks = (
        plan_blocks(num_paths, 1, CPU_BLOCK_SUBBLOCKS * RNG_SUBBLOCK_PATHS)
        if on_cpu
        else plan_blocks(num_paths, per_path, budget)
    )
    log.debug("%s: %d paths in %d block(s) of <= %d paths", model.model_name, num_paths, len(blocks), blocks[0][1])
    out = torch.empty((len(fine_steps), num_paths), dtype=model.dtype, device=model.device)
    with torch.no_grad():
        for start, stop in blocks:
            stream = RandomStream(model.seed, model.param_id, start, stop, num_paths, model.device, model.dtype)
            if on_cpu:
                _simulate_block_cpu(model, stream, fine_steps, out[:, start:stop], workers, warm_up=start == 0)
            else:
                values = model.simulate_block(stream, fine_steps)
                _check_shape(model, values, (len(fine_steps), stop - start))
                out[:, start:stop] = values
            if progress is not None:
                progress(stop - start)
    rows = [fine_steps.index(h * model.substeps) for h in hs]
    if rows == list(range(len(fine_steps))):
        return out
    return out[rows]
