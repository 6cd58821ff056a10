"""Throughput benchmark (``density-engine bench``): per model path-steps/s, kernels per step, the quantile stage, peak
memory and the ratio to the random-number limit of the device (normals per second of a plain Philox fill).

Not a test: figures depend on the machine and its load. :func:`bench_model` returns one model's figures as a dict
(for throughput tables); :func:`run_bench` formats a report. Recorded figures live in docs/engine.md; the CPU targets
against NumPy peers are in benchmarks/targets.py.
"""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

from density_engine.engine.counters import DrawLayout
from density_engine.engine.paths import load_kernel, resolve_device, simulate_horizons, use_compiled
from density_engine.engine.quantiles import summarize
from density_engine.engine.runner import device_description
from density_engine.models import get_model_class

BENCH_PARAMS: dict[str, dict[str, float]] = {
    # reference sets of docs/engine.md (set G1, McCrickerd-Pakkanen, rough Heston set A)
    "gjrgarch_normalized": {"alpha": 0.05, "gamma": 0.10, "beta": 0.85, "eta": 6.0, "lam": -0.2, "sigma0_sq": 1.5},
    "rough_bergomi": {"eta": 1.9, "rho": -0.9, "hurst": 0.07, "xi0": 0.235**2},
    "rough_heston": {"kappa": 0.3, "theta": 0.02, "sigma": 0.3, "rho": -0.7, "alpha": 0.6, "v0": 0.02},
}
VIEW_OPS = frozenset(
    "aten::" + op
    for op in ("slice", "select", "view", "as_strided", "unbind", "reshape", "expand", "alias", "t", "transpose",
               "detach", "lift_fresh", "unsqueeze", "squeeze", "_unsafe_view", "empty", "resolve_conj", "resolve_neg")
)  # fmt: skip
"""Profiler events that launch no kernel (views, allocation)."""


def bench_params(name: str) -> dict[str, float]:
    """The benchmark parameter set of a model (a reference set, or the midpoints of the default ranges)."""
    if name in BENCH_PARAMS:
        return dict(BENCH_PARAMS[name])
    return {p.name: 0.5 * (p.default_range[0] + p.default_range[1]) for p in get_model_class(name).parameters}


def production_model(name: str) -> Any:
    """The benchmark model: :func:`bench_params` on the scheme the workflow runs by default (rough Bergomi: the
    cell-average scheme of ``time_grid.scheme``; the model API's own default may differ), so that the recorded
    throughput is the production kernel's."""
    model_cls = get_model_class(name)
    scheme = (model_cls.time_grid_defaults or {}).get("scheme")
    return model_cls(**bench_params(name), **({"scheme": scheme} if scheme is not None else {}))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def cpu_seconds() -> float:
    """User + system CPU seconds of this process (all threads) and its finished children."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def time_simulation(
    name: str, num_paths: int, steps: int, device: torch.device, dtype: torch.dtype, compiled: bool | None = None
) -> dict[str, Any]:
    """Wall and CPU seconds to simulate ``num_paths`` x ``steps`` (one horizon), the samples and the run info."""
    model = production_model(name)
    info: dict[str, Any] = {}
    _sync(device)
    start, cpu_start = time.perf_counter(), cpu_seconds()
    samples = simulate_horizons(model, [steps], num_paths, 1, device=device, dtype=dtype, compiled=compiled, info=info)
    _sync(device)
    return {"wall_s": time.perf_counter() - start, "cpu_s": cpu_seconds() - cpu_start, "samples": samples, **info}


def ops_per_step(
    name: str, num_paths: int, steps: int, device: torch.device, dtype: torch.dtype, compiled: bool | None = None
) -> dict[str, float]:
    """Torch ops and kernel launches per time step and block, counted with the torch profiler (top-level events:
    eager aten ops, compiled-graph calls, GEMMs, copies; ``kernels`` leaves out views and allocations)."""
    from torch.profiler import ProfilerActivity, profile

    model = production_model(name)
    info: dict[str, Any] = {}
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        simulate_horizons(model, [steps], num_paths, 1, device=device, dtype=dtype, compiled=compiled, info=info)
    top = [e for e in prof.events() if e.cpu_parent is None and (e.name.startswith(("aten::", "Torch-Compiled")))]
    kernels = [e for e in top if e.name not in VIEW_OPS]
    per = steps * info["num_blocks"]
    return {"ops_per_step": len(top) / per, "kernels_per_step": len(kernels) / per, "blocks": info["num_blocks"]}


def philox_fill_rate(
    device: torch.device, dtype: torch.dtype, num: int, seconds: float = 1.0, compiled: bool = True
) -> float:
    """Standard normals per second of a plain Philox fill (counter = (index, step, 0, 0), Box-Muller), compiled
    unless ``compiled`` is False: the random-number limit a step kernel can be compared with."""
    from density_engine.engine.rng import group_draws

    layout = DrawLayout(("normal",) * 4)

    def fill(ids: torch.Tensor) -> torch.Tensor:
        paths = torch.arange(num, dtype=torch.int64, device=device)
        return torch.stack(group_draws(layout, paths, ids[0], 1, 0, ids[1], ids[2], dtype)[0])

    run = torch.compile(fill, dynamic=False, fullgraph=True) if compiled else fill
    ids = torch.tensor([0, 1, 2], dtype=torch.int64, device=device)
    run(ids)
    _sync(device)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        ids[0] += 1
        run(ids)
        count += 1
    _sync(device)
    return 4.0 * num * count / (time.perf_counter() - start)


def quantile_stage(
    num_paths: int, horizons: int, device: torch.device, dtype: torch.dtype = torch.float32, repeats: int = 3
) -> dict[str, float]:
    """Seconds of the quantile stage (512 order statistics and 4 moments) for ``horizons`` rows of ``num_paths``
    samples, and of the plain sort of the same array (np.sort on CPU, torch.sort on CUDA): the fastest of ``repeats``
    interleaved runs of each."""
    gen = torch.Generator(device="cpu").manual_seed(0)
    samples = torch.randn((horizons, num_paths), generator=gen, dtype=dtype).to(device)
    stage, plain = [], []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        summarize(samples, 512)
        _sync(device)
        stage.append(time.perf_counter() - start)
        start = time.perf_counter()
        if device.type == "cpu":
            np.sort(samples.numpy(), axis=1)
        else:
            torch.sort(samples, dim=1)
        _sync(device)
        plain.append(time.perf_counter() - start)
    return {"quantile_s": min(stage), "sort_s": min(plain)}


def peak_memory_bytes(device: torch.device) -> int:
    """Peak device memory allocated by torch (CUDA) or the process's peak resident set size (CPU)."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def bench_model(
    name: str,
    num_paths: int,
    steps: int = 252,
    device: str | torch.device = "auto",
    dtype: torch.dtype = torch.float32,
    compiled: bool | None = None,
    fill_rate: float | None = None,
) -> dict[str, Any]:
    """One model's figures: path-steps/s (wall and per CPU-second), compiled or eager, blocks, kernels per step,
    peak memory, and, with ``fill_rate`` (normals/s of :func:`philox_fill_rate`), the ratio of the model's draws per
    second to it. A warm-up run (compilation) comes first; its seconds are ``warmup_s``."""
    dev = resolve_device(device)
    compiled = use_compiled(num_paths, steps, compiled)
    start = time.perf_counter()
    time_simulation(name, min(num_paths, 4096), steps, dev, dtype, compiled)  # the same mode: compiles if needed
    warmup = time.perf_counter() - start
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    run = time_simulation(name, num_paths, steps, dev, dtype, compiled)
    draws = len(DrawLayout(tuple(load_kernel(get_model_class(name)).draws)).kinds)
    rate = num_paths * steps / run["wall_s"]
    result = {
        "model": name,
        "device": device_description(dev),
        "dtype": str(dtype).removeprefix("torch."),
        "paths": num_paths,
        "steps": steps,
        "compiled": run["compiled"],
        "blocks": run["num_blocks"],
        "warmup_s": warmup,
        "sim_wall_s": run["wall_s"],
        "sim_cpu_s": run["cpu_s"],
        "path_steps_per_s": rate,
        "path_steps_per_cpu_s": num_paths * steps / max(run["cpu_s"], 1e-9),
        "peak_memory_bytes": peak_memory_bytes(dev),
        "draws_per_step": draws,
        "rng_limit_ratio": rate * draws / fill_rate if fill_rate else None,
    }
    del run
    result.update(ops_per_step(name, num_paths, min(steps, 64), dev, dtype, result["compiled"]))
    return result


def run_bench(
    names: Sequence[str],
    sizes: Sequence[int],
    steps: int,
    device: str,
    dtype: torch.dtype,
    quantile_paths: int = 10**7,
    compiled: bool | None = None,
    results: dict[str, Any] | None = None,
) -> Iterator[str]:
    """Yield report lines: the device and load, the Philox fill rate, one line per (model, size), the quantile stage.

    ``per cpu-s`` divides by the process's CPU seconds (all threads): on a shared machine the better measure of the
    work done. ``kern/step``: kernel launches per time step and block (constant in the number of paths).
    ``results`` (a dict), if given, receives ``device``, ``device_type``, ``load``, ``models`` ({name: {paths:
    bench_model's dict}}) and ``quantile``."""
    dev = resolve_device(device)
    load = os.getloadavg()
    yield f"# device {device_description(dev)}, torch {torch.__version__}, {dtype}, load average {load[0]:.2f}"
    fill_compiled = compiled is not False
    fill = philox_fill_rate(dev, dtype, 2**22 if dev.type == "cpu" else 2**26, compiled=fill_compiled)
    yield f"# plain Philox fill ({'compiled' if fill_compiled else 'eager'}): {fill:.3g} normals/s"
    yield (
        f"{'model':<22}{'paths':>10}{'steps':>7}{'mode':>9}{'blocks':>7}{'sim s':>9}{'path-steps/s':>14}"
        f"{'per cpu-s':>12}{'kern/step':>10}{'ops/step':>10}{'vs RNG':>8}{'peak MiB':>10}"
    )
    if results is not None:
        results.update(device=device_description(dev), device_type=dev.type, load=load[0], models={})
    for name in names:
        for n in sizes:
            r = bench_model(name, n, steps, dev, dtype, compiled=compiled, fill_rate=fill)
            if results is not None:
                results["models"].setdefault(name, {})[n] = r
            yield (
                f"{name:<22}{n:>10}{steps:>7}{'compiled' if r['compiled'] else 'eager':>9}{r['blocks']:>7}"
                f"{r['sim_wall_s']:>9.3f}{r['path_steps_per_s']:>14.3g}{r['path_steps_per_cpu_s']:>12.3g}"
                f"{r['kernels_per_step']:>10.2f}{r['ops_per_step']:>10.2f}{r['rng_limit_ratio']:>8.2f}"
                f"{r['peak_memory_bytes'] / 2**20:>10.0f}"
            )
    q = quantile_stage(quantile_paths, 1, dev, dtype)
    if results is not None:
        results["quantile"] = {**q, "paths": quantile_paths}
    yield (
        f"# quantile stage, {quantile_paths} paths x 1 horizon: {q['quantile_s']:.3f} s "
        f"(plain sort {q['sort_s']:.3f} s, ratio {q['quantile_s'] / q['sort_s']:.2f})"
    )


#: The time grids of the rough models before the per-horizon policy (issue 9): one shared grid of this many fine steps
#: per day up to the last horizon, no extrapolation (config/production.yaml until then).
PREVIOUS_SUBSTEPS = {"rough_heston": 4, "rough_bergomi": 2}
PRODUCTION_HORIZONS = (1, 2, 5, 10, 21, 42, 63, 126, 252)
#: Other time grids measured in the same interleaved rounds as the production policy (name: ``time_grid`` overrides).
POLICY_PEERS: dict[str, dict[str, dict[str, Any]]] = {
    "rough_bergomi": {"hybrid scheme, coupled Richardson (the policy before the cell scheme)": {"scheme": "hybrid"}},
}
#: Peer of a policy with a per-day grid: the same grids, every horizon simulated on a run of its own.
UNSHARED = "every horizon on its own run (no shared per-day grid)"


def policy_cost(
    name: str,
    horizons: Sequence[int] = PRODUCTION_HORIZONS,
    num_paths: int = 2**14,
    rounds: int = 2,
    device: str | torch.device = "cpu",
    time_grid: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """CPU seconds per parameter set of a rough model at 10^7 paths: the previous policy (one shared grid of
    :data:`PREVIOUS_SUBSTEPS` fine steps a day, plain order statistics) against the per-horizon policy (``time_grid``,
    default the model's: Richardson grids, error columns), measured at ``num_paths`` and scaled linearly in the paths;
    the model-computed error column (rough Heston: Fourier) is a cost per row, timed separately and not scaled.
    Policies (and the model's :data:`POLICY_PEERS`, in ``peers`` of each round) interleaved for ``rounds`` rounds;
    returns per-round figures and the ratio new / previous. CPU time of
    this process (all threads) by ``time.process_time``: :func:`cpu_seconds` counts 10 ms clock ticks, which reads 0
    for the small runs of a quick check."""
    from density_engine.engine.estimators import estimate_parameter_set

    dev = resolve_device(device)
    model_cls = get_model_class(name)
    params = bench_params(name)
    previous = model_cls(**params, substeps=PREVIOUS_SUBSTEPS[name])
    policy = model_cls.time_grid_policy(time_grid)
    model = model_cls(**params)
    column_s = [0.0]
    own_column = model.discretisation_error

    def timed_column(*args: Any) -> Any:
        start = time.process_time()
        try:
            return own_column(*args)
        finally:
            column_s[0] += time.process_time() - start

    model.discretisation_error = timed_column  # type: ignore[method-assign]
    scale = 1e7 / num_paths
    peers = {
        label: model_cls.time_grid_policy({**(time_grid or {}), **grid})
        for label, grid in POLICY_PEERS.get(name, {}).items()
    }
    shared = policy is not None and any(run.per_day and len(run.records) > 1 for run in policy.plan(horizons, 1))
    rows = []
    for _ in range(rounds):
        start = time.process_time()
        summarize(simulate_horizons(previous, horizons, num_paths, 1, 0, device=dev), 512)
        old = (time.process_time() - start) * scale
        column_s[0] = 0.0
        start = time.process_time()
        estimate_parameter_set(model, policy, horizons, num_paths, 512, 1, 0, device=dev)
        total = time.process_time() - start
        new_sim = (total - column_s[0]) * scale
        rows.append({"previous_s": old, "new_s": new_sim + column_s[0], "column_s": column_s[0], "ratio": 0.0})
        rows[-1]["ratio"] = rows[-1]["new_s"] / old
        rows[-1]["peers"] = {}
        for label, peer in peers.items():
            start = time.process_time()
            estimate_parameter_set(model, peer, horizons, num_paths, 512, 1, 0, device=dev)
            peer_s = (time.process_time() - start) * scale
            rows[-1]["peers"][label] = {"s": peer_s, "ratio": peer_s / old}
        if shared:  # the same rows (bit-identical), one horizon at a time
            column_s[0] = 0.0
            start = time.process_time()
            for days in horizons:
                estimate_parameter_set(model, policy, [days], num_paths, 512, 1, 0, device=dev)
            peer_s = (time.process_time() - start - column_s[0]) * scale + column_s[0]
            rows[-1]["peers"][UNSHARED] = {"s": peer_s, "ratio": peer_s / old}
    return {
        "model": name,
        "device": device_description(dev),
        "paths": num_paths,
        "horizons": list(horizons),
        "previous": f"one grid of {PREVIOUS_SUBSTEPS[name]} fine steps a day",
        "new": policy.describe() if policy is not None else "",
        "peers": {label: peer.describe() for label, peer in peers.items()} | ({UNSHARED: UNSHARED} if shared else {}),
        "rounds": rows,
    }
