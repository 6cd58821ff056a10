"""Path simulation: drive a model's step kernel over all paths of one parameter set and record outputs at given steps.

The engine owns the random numbers (counter-based Philox, :mod:`density_engine.engine.rng`), the paths and their
blocks, the Volterra history and the compilation; the model supplies host constants (``Model.scheme_tables``) and a
pure step kernel (:class:`density_engine.models.kernels.StepKernel`).

Execution, per block of paths (a block is as many paths as the memory budget allows, padded to a multiple of
:data:`PATH_ALIGN`; the padding paths are simulated with their own counters and dropped):

* ``UNROLL`` consecutive steps run as one *group function*: Philox words, uniforms/normals and the kernel's steps for
  all paths of the block. Compiled (``torch.compile``, inductor C++ on CPU, Triton on CUDA) it is one fused kernel
  per ``UNROLL`` steps, the same code path on every device; eager it is the same Python function;
* kernels with a history: every ``HISTORY_GROUP`` steps one GEMM adds the contribution of all earlier groups
  (``K[g:g+G, :g] @ H[:g]``, time-major history ``H`` (steps, paths)); inside a group one small GEMM per call adds the
  group's earlier steps and the group function adds its own earlier steps in registers.

So the number of kernels per time step is fixed (independent of the number of paths). Results do not depend on the
block size or the chunking: every random number is a function of (seed, param_id, path, step, block, stream), every
elementwise op acts on one path, and the GEMMs' per-column results do not depend on the number of columns (tested).

Compilation: decided from the spec alone (:func:`use_compiled`): compiled when ``num_paths * fine_steps`` reaches
:data:`COMPILE_MIN_PATH_STEPS`, where it pays for itself; eager below. Eager and compiled code use different
implementations of log/exp/sin/cos/sqrt (MKL/Sleef variants), so their results differ in the last bits; each is
bit-reproducible. ``$DENSITY_ENGINE_KERNELS`` (``auto``, ``compiled``, ``eager``) overrides the choice; the chunk
metadata records the mode used (``kernels=`` in ``rng``). Eager kernels run torch ops single-threaded.
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from density_engine.engine.counters import MAX_NUM_PATHS, MAX_WORD, DrawLayout, philox_key
from density_engine.engine.rng import group_draws
from density_engine.models.base import Model, SchemeTables, TimeGrid
from density_engine.models.kernels import StepKernel
from density_engine.numeric import as_int

log = logging.getLogger(__name__)

UNROLL = 4
"""Steps per group function call (fused into one kernel when compiled); a multiple of 4 (steps sharing a Philox
block never straddle two calls)."""
HISTORY_GROUP = 32
"""Steps per history GEMM (a multiple of UNROLL)."""
PATH_ALIGN = 64
"""Blocks are padded to a multiple of this many paths (vector loops never see a partial tail)."""
COMPILE_MIN_PATH_STEPS = 2**26
"""Compile the group function when num_paths * fine steps of a parameter set reaches this (about 6.7e7 path-steps).
Measured on the 2-core CPU (docs/engine.md): eager kernels cost ~100 ns per path-step; compiling costs ~6 CPU-s warm
(inductor's on-disk cache; mostly importing and tracing) and ~25-32 CPU-s cold, once per process and model. So from
here on a single parameter set breaks even with a warm cache and a chunk of a few sets with a cold one."""
KERNELS_ENV = "DENSITY_ENGINE_KERNELS"
COMPILE_OPTIONS: dict[str, Any] = {"max_fusion_size": 4096}
"""Inductor options of the group function: fuse all of a group's steps into one loop (the default limit of 64
nodes splits it, and the split parts exchange intermediates through memory)."""
MEMORY_BUDGET_ENV = "DENSITY_ENGINE_MEMORY_BUDGET"
DEFAULT_MEMORY_BUDGET_BYTES: dict[str, int] = {"cpu": 1536 * 2**20, "cuda": 6 * 2**30}
"""Working memory per block (excluding the recorded values): sized for this 2-core CPU and a 24 GB GPU. Override with
``memory_budget_bytes=``, ``--memory-budget`` on the CLI, or ``$DENSITY_ENGINE_MEMORY_BUDGET``."""


def disable_tf32() -> None:
    """Keep float32 matmuls in full precision (TF32 would wreck the Volterra sums)."""
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False


def resolve_device(device: str | torch.device) -> torch.device:
    """``"cpu"``, ``"cuda"`` (or ``"cuda:N"``) or ``"auto"`` (CUDA when available) as a ``torch.device``."""
    name = str(device)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        dev = None
    if dev is None or dev.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu', 'cuda' or 'auto', got {name!r}")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but CUDA is not available (use 'cpu' or 'auto')")
    return dev


def normalize_horizons(horizons: Sequence[int]) -> list[int]:
    """Check horizons: a non-empty sequence of distinct positive integers (model steps)."""
    hs = list(horizons)
    if not hs:
        raise ValueError("horizons must not be empty")
    for i, h in enumerate(hs):
        number = as_int(h)
        if number is None or number < 1:
            raise ValueError(f"horizons must be positive integers, got {h!r}")
        hs[i] = number
    if len(set(hs)) != len(hs):
        raise ValueError(f"horizons must be distinct, got {hs}")
    return hs


def resolve_memory_budget(device: torch.device, override: int | None = None) -> int:
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


def use_compiled(num_paths: int, num_fine_steps: int, override: bool | None = None) -> bool:
    """Whether to compile the group function: ``override``, else ``$DENSITY_ENGINE_KERNELS``, else by the size."""
    if override is not None:
        return bool(override)
    mode = os.environ.get(KERNELS_ENV, "auto").strip().lower() or "auto"
    if mode not in ("auto", "compiled", "eager"):
        raise ValueError(f"{KERNELS_ENV} must be auto, compiled or eager, got {mode!r}")
    if mode != "auto":
        return mode == "compiled"
    return num_paths * num_fine_steps >= COMPILE_MIN_PATH_STEPS


def load_kernel(model: Model | type[Model]) -> type[StepKernel]:
    """The step kernel class a model declaration names (``Model.kernel``, ``"module:Class"``)."""
    module_name, class_name = model.kernel.split(":")
    kernel = getattr(importlib.import_module(module_name), class_name)
    if not (isinstance(kernel, type) and issubclass(kernel, StepKernel)):
        raise TypeError(f"{model.kernel} is not a StepKernel")
    return kernel


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


# ---- group functions --------------------------------------------------------------------------------------------


GroupFunction = Callable[..., tuple[tuple[torch.Tensor, ...], torch.Tensor | None, torch.Tensor]]


def make_group_function(kernel: type[StepKernel], output_index: tuple[int, ...], dtype: torch.dtype) -> GroupFunction:
    """The function simulating ``UNROLL`` consecutive steps of ``kernel`` for a block of paths.

    ``group(state, base, self_weights, rows, scalars, ids)``: ``base`` (UNROLL, P) is ``conv`` of each step without
    the group's own earlier steps, ``self_weights`` (steps / UNROLL, UNROLL, UNROLL) the Volterra weights among the
    steps of each group, ``rows`` (steps, k) the steps' constants, ``ids = (k0, k1, path0, step0, stream)`` (a tuple of
    ints or an int64 tensor). Whole tables and the step index (rather than slices) keep the compiled graph's inputs
    alike for every call. Returns (new state, history values (UNROLL, P) or None, outputs (UNROLL, outputs, P)).
    """
    layout = DrawLayout(tuple(kernel.draws))
    has_history = kernel.history

    def run_group(state, base, self_weights, rows, scalars, ids):
        k0, k1, path0, step0, stream = ids if isinstance(ids, tuple) else ids.unbind(0)
        num_paths = state[0].shape[0]
        paths = torch.arange(num_paths, dtype=torch.int64, device=state[0].device) + path0
        k_self = _take(self_weights, step0 // UNROLL) if has_history else None
        history: list[torch.Tensor] = []
        recorded: list[torch.Tensor] = []
        all_draws = group_draws(layout, paths, step0, UNROLL, stream, k0, k1, dtype)
        for offset in range(UNROLL):
            draws = all_draws[offset]
            conv = None
            if has_history:
                conv = base[offset]
                for earlier in range(offset):
                    conv = conv + k_self[offset, earlier] * history[earlier]
            row = None if rows is None else _take(rows, step0 + offset)
            state, value, outputs = kernel.step(state, draws, conv, row, scalars)
            if has_history:
                history.append(value)
            recorded.append(torch.stack([outputs[i] for i in output_index]))
        # stacked results are written by the fused loop directly into slices of one buffer (a copy_ into an input
        # view would become a second loop over (UNROLL, paths))
        return state, (torch.stack(history) if has_history else None), torch.stack(recorded)

    return run_group


class KernelCompileError(RuntimeError):
    """Compiling the step kernels failed (e.g. no C++ compiler for inductor on CPU)."""


class _CompiledGroup:
    """A compiled group function whose compilation errors name the remedy."""

    def __init__(self, function: GroupFunction) -> None:
        from torch._dynamo.exc import TorchDynamoException
        from torch._inductor.exc import CppCompileError, InvalidCxxCompiler

        self.function = function
        self.errors = (TorchDynamoException, CppCompileError, InvalidCxxCompiler)

    def __call__(self, *args: Any) -> Any:
        try:
            return self.function(*args)
        except self.errors as exc:
            raise KernelCompileError(
                f"compiling the step kernels with torch.compile failed ({type(exc).__name__}: "
                f"{str(exc).strip().splitlines()[0] if str(exc).strip() else ''}); inductor needs a C++ compiler (g++) "
                f"on CPU and Triton on CUDA. Install it, or run eager kernels with {KERNELS_ENV}=eager (slower; the "
                "chunk metadata records the mode)"
            ) from exc


def _take(table: torch.Tensor, index: int | torch.Tensor) -> torch.Tensor:
    """``table[index]`` for an int or a 0-d int64 tensor (a gather, not a data-dependent slice, when traced)."""
    return table[index] if isinstance(index, int) else table[index.reshape(1)][0]


_GROUP_FUNCTIONS: dict[tuple[Any, ...], GroupFunction] = {}


def group_function(
    kernel: type[StepKernel], output_index: tuple[int, ...], dtype: torch.dtype, device: torch.device, compiled: bool
) -> GroupFunction:
    """The (cached) group function; compiled with ``torch.compile(dynamic=True, fullgraph=True)`` if ``compiled``."""
    key = (kernel, output_index, dtype, device.type, compiled)
    if key not in _GROUP_FUNCTIONS:
        function = make_group_function(kernel, output_index, dtype)
        if compiled:
            import torch._dynamo

            # one compiled graph per (kernel, outputs, dtype, device) shares the factory's code object: allow them all,
            # and never fall back to eager silently (that would change the results' bits)
            torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 64)
            torch._dynamo.config.fail_on_recompile_limit_hit = True
            torch.fx.experimental._config.use_duck_shape = False  # no accidental size equalities (recompiles)
            function = _CompiledGroup(torch.compile(function, dynamic=True, fullgraph=True, options=COMPILE_OPTIONS))
        _GROUP_FUNCTIONS[key] = function
    return _GROUP_FUNCTIONS[key]


# ---- tables ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeviceTables:
    """A scheme's tables on the device, padded to ``num_padded`` steps (zero Volterra weights, repeated rows)."""

    scalars: torch.Tensor
    rows: torch.Tensor | None  # (num_padded, k)
    volterra: torch.Tensor | None  # (num_padded, num_padded)
    self_weights: torch.Tensor | None  # (num_padded // UNROLL, UNROLL, UNROLL)


def device_tables(
    kernel: type[StepKernel], tables: SchemeTables, num_steps: int, num_padded: int, device: torch.device, dtype
) -> DeviceTables:
    """Pack and pad the host tables (float64) into ``dtype`` tensors on ``device`` in the kernel's order."""
    missing = [n for n in kernel.scalars if n not in tables.scalars]
    missing += [n for n in kernel.step_constants if n not in tables.per_step]
    if missing:
        raise ValueError(f"{kernel.__name__}: the scheme tables lack {missing}")
    scalars = torch.tensor([float(tables.scalars[n]) for n in kernel.scalars], dtype=torch.float64)
    rows = None
    if kernel.step_constants:
        columns = []
        for name in kernel.step_constants:
            values = np.asarray(tables.per_step[name], dtype=np.float64)
            if values.shape != (num_steps,):
                raise ValueError(f"per-step constant {name!r} has shape {values.shape}, expected ({num_steps},)")
            columns.append(np.concatenate([values, np.repeat(values[-1:], num_padded - num_steps)]))
        rows = torch.from_numpy(np.stack(columns, axis=1)).to(device, dtype)
    volterra = self_weights = None
    if kernel.history:
        if tables.volterra is None or tables.volterra.shape != (num_steps, num_steps):
            raise ValueError(f"{kernel.__name__}: a history kernel needs a ({num_steps}, {num_steps}) Volterra matrix")
        padded = np.zeros((num_padded, num_padded))
        padded[:num_steps, :num_steps] = np.tril(tables.volterra, -1)
        volterra = torch.from_numpy(padded).to(device, dtype)
        blocks = padded.reshape(num_padded // UNROLL, UNROLL, num_padded // UNROLL, UNROLL)
        diagonal = np.stack([blocks[g, :, g, :] for g in range(num_padded // UNROLL)])
        self_weights = torch.from_numpy(diagonal).to(device, dtype)
    return DeviceTables(scalars.to(device, dtype), rows, volterra, self_weights)


# ---- simulation -------------------------------------------------------------------------------------------------


def bytes_per_path(kernel: type[StepKernel], num_steps: int, num_outputs: int, dtype: torch.dtype) -> int:
    """Peak working memory per block path: the history (steps x 1) and GEMM buffers for history kernels, state,
    the group's outputs and the temporaries of the random numbers (int64 words; eager keeps ~16 alive)."""
    padded = _round_up(num_steps, HISTORY_GROUP if kernel.history else UNROLL)
    floats = len(kernel.state) * 3 + UNROLL * (num_outputs + 2) + 16
    if kernel.history:
        floats += padded + HISTORY_GROUP + 2 * UNROLL
    return dtype.itemsize * floats + 8 * 16 + 64


def plan_blocks(num_paths: int, bytes_per_block_path: int, budget_bytes: int) -> list[tuple[int, int]]:
    """Path ranges of the blocks: as many paths as the budget allows, a multiple of PATH_ALIGN (at least one)."""
    size = max(PATH_ALIGN, budget_bytes // max(1, bytes_per_block_path) // PATH_ALIGN * PATH_ALIGN)
    return [(a, min(a + size, num_paths)) for a in range(0, num_paths, size)]


@dataclass(frozen=True)
class RunInfo:
    """How a simulation ran: compiled or eager, blocks, block size, padded steps."""

    compiled: bool
    num_blocks: int
    block_paths: int
    padded_steps: int


def simulate_grid(
    model: Model,
    grid: TimeGrid,
    record_steps: Sequence[int],
    num_paths: int,
    seed: int,
    param_id: int,
    *,
    stream: int = 0,
    outputs: Sequence[str] = ("log_return",),
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    memory_budget_bytes: int | None = None,
    compiled: bool | None = None,
    progress: Callable[[int], None] | None = None,
    info: dict[str, Any] | None = None,
) -> dict[str, torch.Tensor]:
    """Simulate ``num_paths`` paths of ``model`` on ``grid`` and record ``outputs`` after each step count in
    ``record_steps`` (sorted, unique, 1..grid.num_steps).

    Returns ``{output: tensor (len(record_steps), num_paths)}`` in ``dtype`` on ``device``. The result is a function
    of (model parameters and settings, grid, record steps, num_paths, seed, param_id, stream, dtype, compiled or eager,
    device type): the block size (memory budget) does not change it. ``progress(n)`` gets finished path-steps (paths
    x steps); ``info`` (a dict) receives the :class:`RunInfo` fields.
    """
    dev = resolve_device(device)
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
    if as_int(num_paths) is None or num_paths < 1:
        raise ValueError(f"num_paths must be a positive integer, got {num_paths!r}")
    num_paths = int(num_paths)
    if num_paths > MAX_NUM_PATHS:
        raise ValueError(
            f"num_paths must be <= {MAX_NUM_PATHS} (path indices are Philox counter words), got {num_paths}"
        )
    k0, k1 = philox_key(seed, param_id)
    if as_int(stream) is None or not 0 <= stream <= MAX_WORD:
        raise ValueError(f"stream must be an integer in [0, 2**32 - 1], got {stream!r}")
    stream = int(stream)
    steps = [int(s) for s in record_steps]
    num_steps = grid.num_steps
    if not steps or sorted(set(steps)) != steps or steps[0] < 1 or steps[-1] > num_steps:
        raise ValueError(f"record_steps must be sorted, unique and in 1..{num_steps}, got {list(record_steps)}")
    kernel = load_kernel(model)
    unknown = [o for o in outputs if o not in kernel.outputs]
    if unknown or not outputs:
        raise ValueError(f"{model.model_name}: unknown output(s) {unknown or outputs}; available: {kernel.outputs}")
    output_index = tuple(kernel.outputs.index(o) for o in outputs)
    disable_tf32()
    compiled = use_compiled(num_paths, num_steps, compiled)
    group = HISTORY_GROUP if kernel.history else UNROLL
    num_padded = _round_up(num_steps, group)
    tables = device_tables(kernel, model.scheme_tables(grid), num_steps, num_padded, dev, dtype)
    function = group_function(kernel, output_index, dtype, dev, compiled)
    per_path = bytes_per_path(kernel, num_steps, len(output_index), dtype)
    blocks = plan_blocks(num_paths, per_path, resolve_memory_budget(dev, memory_budget_bytes))
    if info is not None:
        info.update(compiled=compiled, num_blocks=len(blocks), block_paths=blocks[0][1], padded_steps=num_padded)
    log.debug("%s: %d paths in %d block(s), compiled=%s", model.model_name, num_paths, len(blocks), compiled)
    result = torch.empty((len(output_index), len(steps), num_paths), dtype=dtype, device=dev)
    record = {s - 1: row for row, s in enumerate(steps)}
    # eager: single-threaded torch ops (hundreds of small ops per step; OpenMP threads spin-wait on a loaded machine)
    with torch.no_grad(), _torch_threads(1 if not compiled and dev.type == "cpu" else None):
        for start, stop in blocks:
            values = _simulate_block(
                kernel, function, tables, start, _round_up(stop - start, PATH_ALIGN), num_steps, record,
                (k0, k1, stream), compiled, len(output_index),
            )  # fmt: skip
            result[:, :, start:stop] = values[:, :, : stop - start]
            if progress is not None:
                progress((stop - start) * num_steps)
    return {name: result[i] for i, name in enumerate(outputs)}


@contextmanager
def _torch_threads(threads: int | None) -> Iterator[None]:
    """Run torch CPU ops with ``threads`` threads (None: unchanged)."""
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        if threads is not None:
            torch.set_num_threads(previous)


_WORKSPACES: dict[tuple[str, str, torch.dtype], torch.Tensor] = {}


def _workspace(name: str, shape: tuple[int, int], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """A reusable work array (kept between blocks and parameter sets: no page faults on fresh memory every time)."""
    key = (name, str(device), dtype)
    need = shape[0] * shape[1]
    buffer = _WORKSPACES.get(key)
    if buffer is None or buffer.numel() < need:
        _WORKSPACES.pop(key, None)
        buffer = _WORKSPACES[key] = torch.empty(need, dtype=dtype, device=device)
    return buffer[:need].view(shape)


def release_workspaces() -> None:
    """Free the reusable work arrays."""
    _WORKSPACES.clear()


def _simulate_block(
    kernel: type[StepKernel],
    function: GroupFunction,
    tables: DeviceTables,
    path0: int,
    num_paths: int,
    num_steps: int,
    record: Mapping[int, int],
    key_and_stream: tuple[int, int, int],
    compiled: bool,
    num_outputs: int,
) -> torch.Tensor:
    """One block of ``num_paths`` (padded) paths starting at global path ``path0``: (outputs, records, paths)."""
    k0, k1, stream = key_and_stream
    scalars = tables.scalars
    dev, dtype = scalars.device, scalars.dtype
    out = torch.empty((num_outputs, len(record), num_paths), dtype=dtype, device=dev)
    state = kernel.initial_state(scalars, num_paths)
    group = HISTORY_GROUP if kernel.history else UNROLL
    history = group_base = None
    if kernel.history:
        history = _workspace("history", (tables.volterra.shape[0], num_paths), dtype, dev)  # rows written before read
        group_base = _workspace("group_base", (HISTORY_GROUP, num_paths), dtype, dev)
    ids_all = None
    if compiled:  # all (k0, k1, path0, step0, stream) of the block at once: no host-to-device copy per call
        starts = torch.arange(0, _round_up(num_steps, UNROLL), UNROLL, dtype=torch.int64)
        ids_all = torch.stack(
            [torch.full_like(starts, k0), torch.full_like(starts, k1), torch.full_like(starts, path0), starts,
             torch.full_like(starts, stream)], dim=1,
        ).to(dev)  # fmt: skip
    volterra = tables.volterra
    for group_start in range(0, num_steps, group):
        if kernel.history:
            if group_start:
                torch.mm(volterra[group_start : group_start + HISTORY_GROUP, :group_start], history[:group_start],
                         out=group_base)  # fmt: skip
            else:
                group_base.zero_()
        for step0 in range(group_start, min(group_start + group, num_steps), UNROLL):
            base = None
            if kernel.history:  # the group's earlier steps added in place by a small GEMM (each base row is used once)
                offset = step0 - group_start
                base = group_base[offset : offset + UNROLL]
                if offset:
                    base.addmm_(volterra[step0 : step0 + UNROLL, group_start:step0], history[group_start:step0])
            ids = ids_all[step0 // UNROLL] if compiled else (k0, k1, path0, step0, stream)
            state, values, recorded = function(state, base, tables.self_weights, tables.rows, scalars, ids)
            if kernel.history:
                history[step0 : step0 + UNROLL] = values
            for offset in range(UNROLL):
                row = record.get(step0 + offset)
                if row is not None:
                    out[:, row] = recorded[offset]
    return out


def simulate_horizons(
    model: Model,
    horizons: Sequence[int],
    num_paths: int,
    seed: int,
    param_id: int = 0,
    **options: Any,
) -> torch.Tensor:
    """Cumulative log-returns at ``horizons`` (model steps; horizon h is ``h * substeps`` fine steps on the model's
    default grid): tensor ``(len(horizons), num_paths)``, rows in the order of ``horizons``. ``options`` as in
    :func:`simulate_grid`."""
    hs = normalize_horizons(horizons)
    fine = sorted({h * model.substeps for h in hs})
    values = simulate_grid(model, model.fine_grid(fine[-1]), fine, num_paths, seed, param_id, **options)["log_return"]
    rows = [fine.index(h * model.substeps) for h in hs]
    return values if rows == list(range(len(fine))) else values[rows]


def path_steps(num_paths: int, num_fine_steps: int) -> int:
    """Path-steps of a simulation (the throughput unit)."""
    return int(num_paths) * int(num_fine_steps)


__all__ = [
    "COMPILE_MIN_PATH_STEPS",
    "HISTORY_GROUP",
    "UNROLL",
    "RunInfo",
    "disable_tf32",
    "load_kernel",
    "normalize_horizons",
    "plan_blocks",
    "resolve_device",
    "resolve_memory_budget",
    "simulate_grid",
    "simulate_horizons",
    "use_compiled",
]
