"""`density-engine` commands of the simulate stage: ``simulate`` (one chunk), ``models``, ``bench``."""

from __future__ import annotations

import json
import logging
import sys

import click

log = logging.getLogger("density_engine.simulate")

_SIZE_SUFFIXES = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30}


def _parse_bytes(text: str | None) -> int | None:
    """``"512M"``, ``"2G"``, ``"1000000"`` → bytes."""
    if text is None:
        return None
    raw = text.strip().upper().removesuffix("B").removesuffix("I")
    suffix = raw[-1] if raw and raw[-1] in "KMG" else ""
    try:
        value = float(raw[: len(raw) - len(suffix)]) * _SIZE_SUFFIXES[suffix]
    except ValueError:
        raise click.BadParameter(f"expected a size such as 512M or 2G, got {text!r}") from None
    if value <= 0:
        raise click.BadParameter(f"must be > 0, got {text!r}")
    return int(value)


def _dtype(name: str):
    import torch

    return {"float32": torch.float32, "float64": torch.float64}[name]


@click.command("simulate")
@click.option("--spec", "spec_path", required=True, type=click.Path(dir_okay=False), help="Chunk spec JSON file.")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False), help="Chunk parquet to write.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--dtype", type=click.Choice(["float32", "float64"]), default="float32", show_default=True)
@click.option("--memory-budget", help="Working memory per path block, e.g. 512M or 6G (default: per device).")
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads for torch (default: torch's choice).")
def simulate_command(
    spec_path: str, out_path: str, device: str, dtype: str, memory_budget: str | None, threads: int | None
) -> None:
    """Simulate one chunk: read its spec, write quantiles and moments per parameter set and horizon to parquet.

    The output is written atomically (temporary file + rename), so an interrupted job leaves no complete-looking file.
    """
    from density_engine.engine.chunkio import SpecError, load_spec, write_chunk
    from density_engine.engine.runner import run_chunk

    budget = _parse_bytes(memory_budget)
    try:
        spec = load_spec(spec_path)
    except SpecError as exc:
        raise click.ClickException(str(exc)) from exc
    import torch

    if threads:
        torch.set_num_threads(threads)
    total = spec.num_paths * len(spec.parameter_sets)
    bar = None
    if sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(total=total, unit="path", unit_scale=True, desc=f"{spec.model} chunk {spec.chunk_id}", leave=False)
    from density_engine.engine.paths import KernelCompileError

    try:
        result = run_chunk(spec, device, _dtype(dtype), budget, progress=bar.update if bar else None)
    except (ValueError, FloatingPointError, KernelCompileError) as exc:
        raise click.ClickException(f"{spec_path}: {exc}") from exc
    finally:
        if bar is not None:
            bar.close()
    write_chunk(result.table, out_path)
    log.info(
        "wrote %s: %d rows, %d parameter sets, %.2f s, %.3g path-steps/s",
        out_path,
        result.table.num_rows,
        len(spec.parameter_sets),
        result.wall_time_s,
        result.path_steps_per_s,
    )


@click.command("models")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def models_command(as_json: bool) -> None:
    """List the models, their parameters (domain, default sampling range) and discretisation settings."""
    from density_engine.models import get_model_class, model_names

    described = []
    for name in model_names():
        try:
            described.append(get_model_class(name).describe())
        except ImportError as exc:
            described.append({"name": name, "error": f"cannot import: {exc}"})
    if as_json:
        click.echo(json.dumps(described, indent=2))
        return
    for model in described:
        click.echo(model["name"])
        if "error" in model:
            click.echo(f"  ({model['error']})")
            continue
        if model["description"]:
            click.echo(f"  {model['description']}")
        for p in model["parameters"]:
            lo, hi = p["default_range"]
            click.echo(f"  {p['name']:<10} {p['bounds']:<14} default range [{lo:g}, {hi:g}]  {p['description']}")
        for key, value in model["settings"].items():
            click.echo(f"  setting {key} (default {value})")


@click.command("bench")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--models", "model_list", help="Comma-separated models (default: all).")
@click.option(
    "--paths", "path_counts", default="100000,1000000", show_default=True, help="Comma-separated path counts."
)
@click.option("--steps", type=click.IntRange(min=1), default=252, show_default=True, help="Steps per path.")
@click.option("--dtype", type=click.Choice(["float32", "float64"]), default="float32", show_default=True)
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads for torch (default: torch's choice).")
@click.option(
    "--kernels",
    type=click.Choice(["auto", "compiled", "eager"]),
    default="auto",
    show_default=True,
    help="Step kernels: compiled (torch.compile), eager, or chosen by size as for a chunk.",
)
@click.option(
    "--quantile-paths",
    type=click.IntRange(min=1),
    default=10**7,
    show_default=True,
    help="Samples of the quantile stage.",
)
def bench_command(
    device: str,
    model_list: str | None,
    path_counts: str,
    steps: int,
    dtype: str,
    threads: int | None,
    kernels: str,
    quantile_paths: int,
) -> None:
    """Print per model and size: path-steps/s, kernels per step, peak memory, the ratio to the device's plain Philox
    fill rate; then the time of the quantile stage. (CPU targets against NumPy peers: benchmarks/targets.py.)"""
    import torch

    from density_engine.engine.bench import run_bench
    from density_engine.models import model_names

    if threads:
        torch.set_num_threads(threads)
    names = model_list.split(",") if model_list else model_names()
    unknown = [name for name in names if name not in model_names()]
    if unknown:
        raise click.BadParameter(f"unknown model(s) {unknown}; choose from {model_names()}", param_hint="--models")
    try:
        sizes = [int(x) for x in path_counts.split(",")]
    except ValueError:
        raise click.BadParameter(
            f"must be comma-separated integers, got {path_counts!r}", param_hint="--paths"
        ) from None
    if any(n < 1 for n in sizes):
        raise click.BadParameter(f"path counts must be >= 1, got {path_counts!r}", param_hint="--paths")
    compiled = {"auto": None, "compiled": True, "eager": False}[kernels]
    try:
        for line in run_bench(names, sizes, steps, device, _dtype(dtype), quantile_paths, compiled):
            click.echo(line)
    except (ValueError, RuntimeError) as exc:  # e.g. --device cuda without a GPU
        raise click.ClickException(str(exc)) from None


COMMANDS: list[click.Command] = [simulate_command, models_command, bench_command]
