"""Run size from a config alone (no sampling, no torch): chunks, path-steps, memory per simulate job and CPU/GPU hours.

One implementation serves ``density-engine estimate`` (``--json``: :meth:`RunEstimate.to_dict`, a stable structure that
cost tools extend with prices), ``density-engine validate-config`` and the run-size checks the workflow makes when it
loads its config (:func:`check_run_size`: impossible or absurd settings stop with one line naming the key and the
limit). Throughput and memory figures come from ``throughput.json`` beside this module; every figure there names its
source, and the GPU figures are labelled estimates until someone measures them (``density-engine bench --device
cuda``).

Definitions: a parameter set's path-steps = the paths x fine steps of every run of its grid policy (rough models: each
horizon on its own grids, :class:`~density_engine.models.time_grid.TimeGridPolicy`; GJR: num_paths x the longest
horizon); fine steps = the longest grid; hours are job-hours (one simulate job on one CPU core, as the workflow runs
it with ``threads: 1``, or on one GPU), including the quantile/moment step and the error columns.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from density_engine.atomic import write_text_atomic

ESTIMATE_VERSION = 1
#: Most chunk jobs one run may plan: Snakemake's DAG costs ~1.9 s per 1,000 chunk jobs on this project's 2-core VM
#: (README "Dry run and DAG": 10,000 chunks in 18.5 s), so 25,000 chunks is ~45 s of planning before anything runs.
MAX_CHUNKS = 25_000
#: Most parameter sets per model: the grid job holds them all in memory and writes every spec (~3 s per million).
MAX_PARAMETER_SETS = 10_000_000
#: Plans at least this big print a one-line summary when the workflow loads (planning takes seconds).
SUMMARY_CHUNKS = 1_000
SUMMARY_CPU_HOURS = 1.0


class RunSizeError(ValueError):
    """A config whose run is impossible or absurd; the message names the key and the limit."""


@cache
def throughput_table() -> dict[str, Any]:
    """The packaged throughput and memory table (``throughput.json``)."""
    text = resources.files("density_engine.workflow").joinpath("throughput.json").read_text(encoding="utf-8")
    return json.loads(text)


THROUGHPUT_FILE = Path(__file__).with_name("throughput.json")


def gpu_type(device_name: str) -> str:
    """The table's (and Vast's) GPU type of a CUDA device name: ``NVIDIA H100 80GB HBM3`` -> ``H100``,
    ``NVIDIA GeForce RTX 4090`` -> ``RTX_4090``."""
    words = [w for w in device_name.replace("NVIDIA", " ").replace("GeForce", " ").split() if w]
    if not words:
        raise ValueError(f"cannot tell the GPU type of {device_name!r}")
    return "_".join(words[:2]) if words[0].upper() in {"RTX", "GTX", "TITAN"} and len(words) > 1 else words[0]


def record_throughput(
    bench: Mapping[str, Any], when: str, path: str | Path = THROUGHPUT_FILE, memory_gib: float | None = None
) -> str:
    """Write the figures of a ``density-engine bench`` run (``run_bench``'s ``results``) into the throughput table:
    on CPU the per-CPU-second rate (one core: what a ``threads: 1`` simulate job gets), on a GPU the wall rate, each at
    the largest path count benched, marked as measured with the machine, load and date. Returns the entry's name."""
    table = json.loads(Path(path).read_text(encoding="utf-8"))
    on_cpu = bench["device_type"] == "cpu"
    rates = {}
    for model, by_paths in bench["models"].items():
        figures = by_paths[max(by_paths)]
        rates[model] = float(f"{figures['path_steps_per_cpu_s' if on_cpu else 'path_steps_per_s']:.3g}")
    quantile = bench["quantile"]
    source = (
        f"density-engine bench --record, {when}, {bench['device']}, load average {bench['load']:.1f}; "
        + ("path-steps per CPU-second" if on_cpu else "wall path-steps/s")
        + f" at {max(max(b) for b in bench['models'].values()):,} paths"
    )
    entry = {
        "measured": True,
        "source": source,
        "summary_s_per_path_horizon": float(f"{quantile['quantile_s'] / quantile['paths']:.3g}"),
    }
    if on_cpu:
        name = "cpu"
        old = table["cpu"]
        table["cpu"] = {**old, **entry, "path_steps_per_s": {**old.get("path_steps_per_s", {}), **rates}}
    else:
        name = gpu_type(bench["device"].removeprefix("cuda (").removesuffix(")"))
        old = table["gpus"].get(name, {})
        if memory_gib is not None:
            entry["memory_gib"] = round(memory_gib)
        table["gpus"][name] = {**old, **entry, "path_steps_per_s": {**old.get("path_steps_per_s", {}), **rates}}
    write_text_atomic(path, json.dumps(table, indent=2) + "\n")
    throughput_table.cache_clear()
    return name


def _block_bytes_per_path(model: str, fine_steps: int) -> int:
    """Working memory per block path (the engine's ``bytes_per_path``): a constant plus, for the Volterra models, the
    history of every fine step (padded to a whole history group)."""
    entry = throughput_table()["memory"]["block_bytes_per_path"][model]
    padded = -(-fine_steps // entry["pad_steps_to"]) * entry["pad_steps_to"]
    return int(entry["per_padded_step"] * padded + entry["constant"])


@dataclass(frozen=True)
class JobMemory:
    """Memory of one simulate job of a chunk, in MB: the host process on a CPU job, and on a GPU job the host process
    and the GPU memory."""

    cpu_job: float
    gpu_job_host: float
    gpu: float


@dataclass(frozen=True)
class SetWork:
    """The work of one parameter set under a model's grid policy (the engine's own run plan,
    :class:`~density_engine.models.time_grid.TimeGridPolicy`): path-steps, values sorted for quantiles (incl. the
    Richardson grids and the batch means of coupled Richardson), the longest grid, the largest run, the values held at
    once (all runs of one horizon, with every horizon a per-day run records; every horizon for a discrete-time model)
    and the rows with a model-computed error column (rough Heston: Fourier)."""

    path_steps: int
    sorted_values: int
    max_steps: int
    run_paths: int
    kept_values: int
    model_error_rows: int


#: Sorted values per path of a coupled run: the N, N/2 and N/4 grids, then the N and N/2 grids again in batches.
COUPLED_SORTS = 5


def set_work(model: str, num_paths: int, horizons: list[int], time_grid: Mapping[str, Any] | None) -> SetWork:
    """:class:`SetWork` of one parameter set (``time_grid``: the spec's policy dict, None for discrete-time models)."""

    if time_grid is None:
        n = len(horizons) * num_paths
        return SetWork(num_paths * max(horizons), n, max(horizons), num_paths, n, 0)
    from density_engine.models import get_model_class

    model_cls = get_model_class(model)
    policy = model_cls.spec_time_grid_policy(time_grid)
    runs = [policy.runs(days, num_paths) for days in horizons]
    plan = policy.plan(horizons, num_paths)
    exact_column = model_cls.computes_discretisation_error
    # richardson none without a model-computed column still records the nested grids for its error estimate
    plain_nested = policy.richardson == "none" and not exact_column
    sorts = {True: COUPLED_SORTS, False: 1}

    def recorded(run) -> int:  # the values a run returns: its outputs at every horizon it records
        return run.paths * (3 if run.nested or plain_nested else 1) * len(run.records)

    return SetWork(
        path_steps=sum(r.paths * r.steps for r in plan),
        sorted_values=sum(r.paths * (3 if plain_nested else sorts[r.nested]) for rs in runs for r in rs),
        max_steps=max(r.steps for r in plan),
        run_paths=max(r.paths for r in plan),
        kept_values=max(sum(recorded(r) for r in plan if days in dict(r.records)) for days in horizons),
        model_error_rows=len(horizons) if exact_column else 0,
    )


def job_memory(model: str, work: SetWork) -> JobMemory:
    """The engine's memory model (docs/engine.md "Blocks and memory"): the values of one horizon's runs (every
    horizon's for a discrete-time model), their float64/sorted copies in the quantile step, and one compute block (as
    many paths as the device's block budget holds, a multiple of the path alignment, at most the largest run)."""
    memory = throughput_table()["memory"]
    align = memory["path_align"]
    kept = work.kept_values * (memory["kept_bytes_per_path_horizon"] + memory["summary_bytes_per_path"])
    per_path = _block_bytes_per_path(model, work.max_steps)
    all_paths = -(-work.run_paths // align) * align

    def block(device: str) -> int:
        fits = max(align, memory["block_budget_bytes"][device] // per_path // align * align)
        return per_path * min(all_paths, fits)

    mb = 1e6
    return JobMemory(
        cpu_job=memory["process_mb"]["cpu"] + (kept + block("cpu")) / mb,
        gpu_job_host=float(memory["process_mb"]["cuda"]),
        gpu=(kept + block("cuda")) / mb,
    )


@dataclass(frozen=True)
class DeviceEstimate:
    """Time of one device kind: the rate used, minutes per (largest) chunk, job-hours of the whole model."""

    path_steps_per_s: float
    minutes_per_chunk: float
    hours: float


@dataclass(frozen=True)
class ModelEstimate:
    """Size of one model's part of the run."""

    model: str
    parameter_sets: int
    chunk_size: int
    chunks: int
    num_paths: int
    num_horizons: int
    max_horizon: int
    time_grid: str
    fine_steps: int
    path_steps: int
    path_steps_per_chunk: int
    memory_mb_per_chunk: JobMemory
    cpu: DeviceEstimate
    gpus: dict[str, DeviceEstimate] = field(default_factory=dict)


#: Host threads of a GPU job computing model-side error columns while the GPU simulates (engine/runner.py).
GPU_COLUMN_WORKERS = 8


def _device_estimate(
    rates: Mapping[str, Any], model: str, sets: int, chunk_sets: int, work: SetWork, gpu: bool = False
) -> DeviceEstimate:
    rate = float(rates["path_steps_per_s"][model])
    summary = float(rates["summary_s_per_path_horizon"]) * work.sorted_values
    column = throughput_table()["error_column_s_per_row"].get(model, {}).get("discretisation_error", 0.0)
    column_s = column * work.model_error_rows  # CPU-seconds on the host
    simulate_s = work.path_steps / rate + summary
    # a CPU job computes the columns in line; a GPU job on host threads while the GPU simulates the next sets
    per_set = max(simulate_s, column_s / GPU_COLUMN_WORKERS) if gpu else simulate_s + column_s

    return DeviceEstimate(rate, chunk_sets * per_set / 60.0, sets * per_set / 3600.0)


def estimate_model(model: str, model_cfg: Mapping[str, Any], base_dir: str | Path = ".") -> ModelEstimate:
    """The size of one model's run from its (validated) config section."""
    from density_engine.models.time_grid import compact_text
    from density_engine.workflow.config import model_settings
    from density_engine.workflow.samplers import count_parameter_sets

    sets = count_parameter_sets(model, model_cfg, base_dir)
    chunk_size = int(model_cfg["chunk_size"])
    paths = int(model_cfg["num_paths"])
    horizons = [int(h) for h in model_cfg["horizons"]]
    _dt, time_grid = model_settings(model, model_cfg)
    work = set_work(model, paths, horizons, time_grid)
    chunk_sets = min(chunk_size, sets)
    table = throughput_table()
    return ModelEstimate(
        model=model,
        parameter_sets=sets,
        chunk_size=chunk_size,
        chunks=-(-sets // chunk_size),
        num_paths=paths,
        num_horizons=len(horizons),
        max_horizon=max(horizons),
        time_grid=compact_text(time_grid),
        fine_steps=work.max_steps,
        path_steps=sets * work.path_steps,
        path_steps_per_chunk=chunk_sets * work.path_steps,
        memory_mb_per_chunk=job_memory(model, work),
        cpu=_device_estimate(table["cpu"], model, sets, chunk_sets, work),
        gpus={  # a GPU type recorded for some models only has no estimate for the others
            name: _device_estimate(gpu, model, sets, chunk_sets, work, gpu=True)
            for name, gpu in table["gpus"].items()
            if model in gpu["path_steps_per_s"]
        },
    )


@dataclass(frozen=True)
class RunEstimate:
    """Size of the whole run (enabled models)."""

    device: str
    mem_mb: int
    runtime_min: int
    threads: int
    models: list[ModelEstimate]

    @property
    def chunks(self) -> int:
        return sum(m.chunks for m in self.models)

    @property
    def path_steps(self) -> int:
        return sum(m.path_steps for m in self.models)

    @property
    def cpu_hours(self) -> float:
        return sum(m.cpu.hours for m in self.models)

    def gpu_hours(self) -> dict[str, float]:
        names = list(throughput_table()["gpus"])
        return {name: sum(m.gpus[name].hours for m in self.models) for name in names}

    def to_dict(self) -> dict[str, Any]:
        """The ``density-engine estimate --json`` structure (docs/estimate.md; version :data:`ESTIMATE_VERSION`)."""
        table = throughput_table()
        return {
            "estimate_version": ESTIMATE_VERSION,
            "device": self.device,
            "resources": {"mem_mb": self.mem_mb, "runtime_min": self.runtime_min, "threads": self.threads},
            "models": {m.model: {k: v for k, v in asdict(m).items() if k != "model"} for m in self.models},
            "total": {
                "parameter_sets": sum(m.parameter_sets for m in self.models),
                "chunks": self.chunks,
                "path_steps": self.path_steps,
                "cpu_hours": self.cpu_hours,
                "gpu_hours": self.gpu_hours(),
            },
            "throughput": {
                "units": table["units"],
                "cpu": {k: table["cpu"][k] for k in ("label", "measured", "source")},
                "gpus": {
                    name: {k: gpu[k] for k in ("memory_gib", "measured", "source")}
                    for name, gpu in table["gpus"].items()
                },
            },
        }

    def summary_line(self) -> str:
        """One line: chunks, path-steps, CPU-hours and GPU-hours (the fastest and the slowest GPU of the table)."""
        gpus = self.gpu_hours()
        fast, slow = min(gpus, key=gpus.get), max(gpus, key=gpus.get)
        estimated = "" if throughput_table()["gpus"][fast]["measured"] else " (GPU figures estimated)"
        return (
            f"run size: {len(self.models)} model(s), {self.chunks:,} chunks, {self.path_steps:.3g} path-steps; "
            f"~{_hours(self.cpu_hours)} CPU-core hours, ~{_hours(gpus[fast])} {fast} to ~{_hours(gpus[slow])} {slow} "
            f"GPU-hours{estimated} (details: density-engine estimate)"
        )

    @property
    def large(self) -> bool:
        """Whether the workflow should print :meth:`summary_line` when it loads."""
        return self.chunks >= SUMMARY_CHUNKS or self.cpu_hours >= SUMMARY_CPU_HOURS


def _hours(value: float) -> str:
    return f"{value:,.0f}" if value >= 10 else f"{value:.2g}"


def estimate_run(config: Mapping[str, Any], base_dir: str | Path = ".", threads: int = 1) -> RunEstimate:
    """The size of a validated config's run (enabled models, in config order)."""
    models = [name for name, cfg in config["models"].items() if cfg.get("enabled", True)]
    resources_cfg = config.get("resources") or {}
    return RunEstimate(
        device=str(config.get("device", "auto")),
        mem_mb=int(resources_cfg.get("mem_mb", 2000)),
        runtime_min=int(resources_cfg.get("runtime", 30)),
        threads=threads,
        models=[estimate_model(name, config["models"][name], base_dir) for name in models],
    )


def _size_limits(config: Mapping[str, Any]) -> None:
    """Limits that need nothing but counts (checked before anything else, so an absurd grid fails at once)."""
    total = 0
    biggest = ("", 0)
    for name, cfg in config["models"].items():
        if not cfg.get("enabled", True) or isinstance(cfg.get("sampler"), Mapping):
            continue
        sets = int(cfg["n_samples"])
        if sets > MAX_PARAMETER_SETS:
            raise RunSizeError(
                f"config key models.{name}.n_samples: {sets:,} parameter sets, above the limit of "
                f"{MAX_PARAMETER_SETS:,} per model (the grid job holds every set in memory)"
            )
        chunks = -(-sets // int(cfg["chunk_size"]))
        total += chunks
        biggest = max(biggest, (name, chunks), key=lambda item: item[1])
    if total > MAX_CHUNKS:
        name = biggest[0]
        raise RunSizeError(
            f"config key models.{name}.chunk_size: the run has {total:,} chunk jobs ({biggest[1]:,} of {name}), above "
            f"the limit of {MAX_CHUNKS:,} (Snakemake would take minutes to plan them); raise chunk_size or lower "
            "n_samples"
        )


def check_run_size(config: Mapping[str, Any], base_dir: str | Path = ".") -> RunEstimate:
    """Stop an impossible or absurd run before it is planned (:class:`RunSizeError`, one line naming the key and the
    limit): too many chunks or parameter sets; a simulate job that needs more memory than ``resources.mem_mb`` (or,
    with ``device: cuda``, than the largest GPU of the table); a chunk that takes longer than ``resources.runtime`` at
    the benchmarked throughput (the fastest device the config allows). Returns the estimate."""
    _size_limits(config)
    run = estimate_run(config, base_dir)
    table = throughput_table()
    largest_gib = max(gpu["memory_gib"] for gpu in table["gpus"].values())
    largest = ", ".join(name for name, gpu in table["gpus"].items() if gpu["memory_gib"] == largest_gib)
    for m in run.models:
        prefix = f"config key models.{m.model}"
        memory = m.memory_mb_per_chunk
        host = memory.gpu_job_host if run.device == "cuda" else memory.cpu_job
        what = f"{m.num_paths:,} paths x {m.num_horizons} horizon(s) kept, plus work space"
        if host > run.mem_mb:
            raise RunSizeError(
                f"{prefix}.num_paths: a simulate job needs ~{_mb(host)} ({what}), above resources.mem_mb = "
                f"{run.mem_mb} MB"
            )
        if run.device == "cuda" and memory.gpu > largest_gib * 1024**3 / 1e6:
            raise RunSizeError(
                f"{prefix}.num_paths: a simulate job needs ~{_mb(memory.gpu)} of GPU memory ({what}), above the "
                f"largest GPU memory of the throughput table ({largest_gib} GiB: {largest})"
            )
        fastest = m.cpu if run.device == "cpu" else min([m.cpu, *m.gpus.values()], key=lambda d: d.minutes_per_chunk)
        if fastest.minutes_per_chunk > run.runtime_min:
            device = "a CPU core" if fastest is m.cpu else "the fastest GPU of the table"
            key = "chunk_size" if m.chunk_size > 1 else "num_paths"
            raise RunSizeError(
                f"{prefix}.{key}: one chunk is {m.path_steps_per_chunk:.3g} path-steps "
                f"({min(m.chunk_size, m.parameter_sets)} sets x {m.num_paths:,} paths, grids {m.time_grid}), "
                f"~{fastest.minutes_per_chunk:,.0f} min on {device} at {fastest.path_steps_per_s:.3g} path-steps/s, "
                f"above resources.runtime = {run.runtime_min} min; lower {key} or raise resources.runtime"
            )
    return run


def _mb(value: float) -> str:
    if value >= 1e6:
        return f"{value / 1e6:,.1f} TB"
    if value >= 1e3:
        return f"{value / 1e3:,.1f} GB"
    return f"{value:,.0f} MB"
