"""`density-engine` commands of the simulate stage: ``simulate`` (one chunk), ``simulate-one`` (one parameter set, a
quick check), ``models``, ``bench``."""

from __future__ import annotations

import json
import logging
import sys

import click
import numpy as np

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


def run_engine(spec, device: str = "auto", dtype: str = "float32", memory_budget: int | None = None, progress=None):
    """The one call into the engine (a chunk spec -> ``ChunkResult`` with the chunk table): ``simulate`` and
    ``simulate-one`` both go through here, so an engine API change is re-pointed in one place."""
    from density_engine.engine.runner import run_chunk

    return run_chunk(spec, device, _dtype(dtype), memory_budget, progress=progress)


def chunk_bytes_estimate(spec) -> int:
    """Upper estimate of a chunk file and its temp copy: rows x (quantiles + scalar columns), twice, plus 1 MB."""
    rows = len(spec.parameter_sets) * len(spec.horizons)
    return 2 * rows * (4 * spec.num_quantiles + 256) + 2**20


def check_memory(spec, device: str) -> None:
    """Stop (one line) before simulating a chunk whose estimated memory (:func:`density_engine.workflow.estimate.
    job_memory`) exceeds this machine's RAM, or the GPU's memory when it runs on CUDA: an allocator traceback after
    minutes of work, or the OOM killer, is worse."""
    import os

    import torch

    from density_engine.workflow.estimate import job_memory, set_work

    memory = job_memory(spec.model, set_work(spec.model, spec.num_paths, list(spec.horizons), spec.time_grid))
    what = f"{spec.num_paths:,} paths x {len(spec.horizons)} horizon(s) kept, plus work space"
    on_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if on_cuda and torch.cuda.is_available():
        have = torch.cuda.get_device_properties(0).total_memory / 1e6
        if memory.gpu > have:
            raise click.ClickException(
                f"{spec.source}: the chunk needs ~{memory.gpu / 1e3:,.1f} GB of GPU memory ({what}), the GPU has "
                f"{have / 1e3:,.1f} GB; nothing was simulated"
            )
    elif not on_cuda:
        have = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e6
        if memory.cpu_job > have:
            raise click.ClickException(
                f"{spec.source}: the chunk needs ~{memory.cpu_job / 1e3:,.1f} GB of memory ({what}), this machine has "
                f"{have / 1e3:,.1f} GB; nothing was simulated"
            )


def _simulate_or_fail(spec, source: str, device: str, dtype: str, budget: int | None, progress=None):
    """:func:`run_engine`, with every failure as one line (a click error naming ``source``), no traceback."""
    from density_engine.engine.paths import KernelCompileError

    try:
        return run_engine(spec, device, dtype, budget, progress)
    except (ValueError, FloatingPointError, KernelCompileError) as exc:
        raise click.ClickException(f"{source}: {exc}") from exc
    except MemoryError:
        raise click.ClickException(f"{source}: out of host memory while simulating (lower num_paths)") from None
    except RuntimeError as exc:  # e.g. torch.OutOfMemoryError on a GPU
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise click.ClickException(f"{source}: the simulation failed: {first}") from None


def _write_or_fail(table, out_path: str, manifest_path: str | None) -> None:
    from density_engine.engine.chunkio import write_chunk

    try:
        write_chunk(table, out_path, manifest_path)
    except OSError as exc:
        raise click.ClickException(f"{out_path}: cannot write the chunk ({exc.strerror or exc})") from None


@click.command("simulate")
@click.option("--spec", "spec_path", required=True, type=click.Path(dir_okay=False), help="Chunk spec JSON file.")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False), help="Chunk parquet to write.")
@click.option(
    "--manifest",
    "manifest_path",
    type=click.Path(dir_okay=False),
    help="Chunk manifest to write (size, sha256, content checksum); default: <out without .parquet>.manifest.json.",
)
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--dtype", type=click.Choice(["float32", "float64"]), default="float32", show_default=True)
@click.option("--memory-budget", help="Working memory per path block, e.g. 512M or 6G (default: per device).")
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads for torch (default: torch's choice).")
def simulate_command(
    spec_path: str,
    out_path: str,
    manifest_path: str | None,
    device: str,
    dtype: str,
    memory_budget: str | None,
    threads: int | None,
) -> None:
    """Simulate one chunk: read its spec, write quantiles and moments per parameter set and horizon to parquet, and
    the chunk manifest the merge checks it against.

    Before simulating, checks that the output folder is writable and has room for the chunk (errors are one line,
    nothing is simulated). The output is written atomically (temporary file + rename), so an interrupted job leaves no
    complete-looking file.
    """
    from density_engine.atomic import NotWritableError, check_writable
    from density_engine.engine.chunkio import SpecError, chunk_manifest_path, load_spec

    budget = _parse_bytes(memory_budget)
    try:
        spec = load_spec(spec_path)
    except SpecError as exc:
        raise click.ClickException(str(exc)) from exc
    manifest = manifest_path or str(chunk_manifest_path(out_path))
    try:
        check_writable(out_path, chunk_bytes_estimate(spec))
        check_writable(manifest, 2**16)
    except NotWritableError as exc:
        raise click.ClickException(f"{exc}; nothing was simulated") from None
    check_memory(spec, device)
    import torch

    if threads:
        torch.set_num_threads(threads)
    bar = None
    if sys.stderr.isatty():
        from tqdm import tqdm

        desc = f"{spec.model} chunk {spec.chunk_id}"
        bar = tqdm(total=spec.path_steps(), unit="path-step", unit_scale=True, desc=desc, leave=False)
    try:
        result = _simulate_or_fail(spec, spec_path, device, dtype, budget, bar.update if bar else None)
    finally:
        if bar is not None:
            bar.close()
    _write_or_fail(result.table, out_path, manifest)
    log.info(
        "wrote %s: %d rows, %d parameter sets, %.2f s, %.3g path-steps/s",
        out_path,
        result.table.num_rows,
        len(spec.parameter_sets),
        result.wall_time_s,
        result.path_steps_per_s,
    )


#: Quantile levels shown by ``simulate-one`` (the nearest stored level is printed).
SHOWN_LEVELS = (0.001, 0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99, 0.999)


def _parse_params(values: tuple[str, ...]) -> dict[str, float]:
    params: dict[str, float] = {}
    for item in values:
        name, sep, raw = item.partition("=")
        if not sep or not name.strip():
            raise click.BadParameter(f"expected NAME=VALUE, got {item!r}", param_hint="--param")
        try:
            params[name.strip()] = float(raw)
        except ValueError:
            raise click.BadParameter(f"{name.strip()}: {raw!r} is not a number", param_hint="--param") from None
    return params


def _parse_horizons(text: str) -> list[int]:
    try:
        horizons = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers, got {text!r}", param_hint="--horizons") from None
    if not horizons:
        raise click.BadParameter("give at least one horizon", param_hint="--horizons")
    return horizons


@click.command("simulate-one")
@click.option("--model", required=True, help="Model name (density-engine models lists them and their parameters).")
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE", help="A parameter value; repeat for each.")
@click.option("--paths", "num_paths", type=click.IntRange(min=2), default=100_000, show_default=True)
@click.option("--horizons", required=True, help="Comma-separated horizons in model steps, e.g. 1,5,20.")
@click.option("--dt", type=float, help="Model step in years (rough models; default: the model's).")
@click.option("--steps", type=click.IntRange(min=1), help="Rough models: fine steps N per horizon.")
@click.option(
    "--richardson",
    type=click.Choice(["independent", "coupled", "none"]),
    help="Rough models: time_grid.richardson (default: the model's).",
)
@click.option(
    "--scheme",
    type=click.Choice(["cell", "hybrid"]),
    help="Rough Bergomi: time_grid.scheme (default: cell, published without Richardson; hybrid: coupled Richardson).",
)
@click.option("--seed", type=click.IntRange(min=0), default=1, show_default=True)
@click.option("--num-quantiles", type=click.IntRange(min=2), default=512, show_default=True)
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--out", "out_path", type=click.Path(dir_okay=False), help="Also write the rows as a chunk parquet.")
@click.option("--json", "as_json", is_flag=True, help="Print every quantile and moment as JSON.")
def simulate_one_command(
    model: str,
    params: tuple[str, ...],
    num_paths: int,
    horizons: str,
    dt: float | None,
    steps: int | None,
    richardson: str | None,
    scheme: str | None,
    seed: int,
    num_quantiles: int,
    device: str,
    out_path: str | None,
    as_json: bool,
) -> None:
    """Simulate one parameter set and print its moments and selected quantiles per horizon (a quick check; the
    workflow is for grids). Example:

    density-engine simulate-one --model gjrgarch_normalized --param alpha=0.05 --param gamma=0.1 --param beta=0.85
    --param eta=6 --param lam=-0.2 --param sigma0_sq=1 --paths 200000 --horizons 1,5,20
    """
    from density_engine.atomic import NotWritableError, check_writable
    from density_engine.engine.chunkio import SPEC_VERSION, SpecError, parse_spec, quantile_levels, quantile_matrix
    from density_engine.models import get_model_class, model_names

    if model not in model_names():
        raise click.BadParameter(f"{model!r}; choose from {', '.join(model_names())}", param_hint="--model")
    model_cls = get_model_class(model)
    settings = model_cls.settings
    for name, value in (("dt", dt), ("steps", steps), ("richardson", richardson)):
        if value is not None and "dt" not in settings:
            raise click.BadParameter(f"{model} is a discrete-time model without {name!r}", param_hint=f"--{name}")
    if scheme is not None and not model_cls.time_grid_schemes:
        raise click.BadParameter(f"{model} has one scheme", param_hint="--scheme")
    defaults = dict(model_cls.default_settings)
    grid = {k: v for k, v in (("steps", steps), ("richardson", richardson), ("scheme", scheme)) if v is not None}
    if model_cls.time_grid_defaults is not None:
        grid = {**model_cls.time_grid_defaults, "allow_coarse": True, **grid}
        if richardson is None and grid.get("scheme") in model_cls.time_grid_schemes:
            grid["richardson"] = model_cls.time_grid_schemes[grid["scheme"]].richardson[0]  # the scheme's own default
    data = {
        "spec_version": SPEC_VERSION,
        "model": model,
        "chunk_id": 0,
        "seed": seed,
        "num_paths": num_paths,
        "num_quantiles": num_quantiles,
        "horizons": _parse_horizons(horizons),
        "dt": (dt if dt is not None else defaults.get("dt")) if "dt" in settings else None,
        "time_grid": grid if model_cls.time_grid_defaults is not None else None,
        "parameter_sets": [{"param_id": 0, "params": _parse_params(params)}],
    }
    try:
        spec = parse_spec(data, "simulate-one")
    except SpecError as exc:
        raise click.ClickException(str(exc).replace("parameter_sets[0].params (param_id 0): ", "--param: ")) from None
    if out_path:
        try:
            check_writable(out_path, chunk_bytes_estimate(spec))
        except NotWritableError as exc:
            raise click.ClickException(f"{exc}; nothing was simulated") from None
    check_memory(spec, device)
    result = _simulate_or_fail(spec, "simulate-one", device, "float32", None)
    table = result.table
    if out_path:
        _write_or_fail(table, out_path, None)
    q = quantile_matrix(table)
    levels = quantile_levels(num_quantiles)
    rows = table.to_pydict()
    if as_json:
        click.echo(
            json.dumps(
                {
                    "model": model,
                    "params": spec.parameter_sets[0].params,
                    "num_paths": num_paths,
                    "seed": seed,
                    "dt": spec.dt,
                    "time_grid": spec.time_grid,
                    "quantile_levels": levels.tolist(),
                    "horizons": [
                        {
                            "horizon": rows["horizon"][i],
                            **{name: rows[name][i] for name in ("mean", "std", "skew", "kurt")},
                            "quantiles": q[i].astype(float).tolist(),
                        }
                        for i in range(table.num_rows)
                    ],
                },
                indent=1,
            )
        )
        return
    shown = sorted({int(np.argmin(np.abs(levels - p))) for p in SHOWN_LEVELS})
    values = ", ".join(f"{k}={v:g}" for k, v in spec.parameter_sets[0].params.items())
    click.echo(f"{model} ({values}), {num_paths:,} paths, seed {seed}, {result.wall_time_s:.2f} s")
    header = f"{'horizon':>7}{'mean':>11}{'std':>10}{'skew':>9}{'kurt':>9}"
    click.echo(header + "".join(f"{'q' + format(levels[j], '.4g'):>11}" for j in shown))
    for i in range(table.num_rows):
        line = (
            f"{rows['horizon'][i]:>7}{rows['mean'][i]:>11.5g}{rows['std'][i]:>10.5g}{rows['skew'][i]:>9.3g}"
            f"{rows['kurt'][i]:>9.3g}"
        )
        click.echo(line + "".join(f"{q[i, j]:>11.5g}" for j in shown))
    if out_path:
        click.echo(f"wrote {out_path}")


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
@click.option(
    "--record",
    "record_path",
    is_flag=False,
    flag_value="package",
    default=None,
    help="Write the measured rates into the throughput table that `density-engine estimate` and the run-size checks "
    "use (the package's throughput.json, or the given file): the CPU entry on a CPU, the GPU type's entry on a GPU.",
)
@click.option(
    "--policy",
    is_flag=True,
    help="Instead: CPU cost per parameter set (10^7 paths, production horizons) of the rough models' per-horizon "
    "time-grid policy next to the previous single grid, interleaved rounds, at the first --paths count.",
)
@click.option("--rounds", type=click.IntRange(min=1), default=2, show_default=True, help="Rounds of --policy.")
def bench_command(
    device: str,
    model_list: str | None,
    path_counts: str,
    steps: int,
    dtype: str,
    threads: int | None,
    kernels: str,
    quantile_paths: int,
    record_path: str | None,
    policy: bool,
    rounds: int,
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
    if policy:
        _bench_policy([n for n in names if n in ("rough_heston", "rough_bergomi")], sizes[0], rounds, device)
        return
    compiled = {"auto": None, "compiled": True, "eager": False}[kernels]
    results: dict = {}
    try:
        for line in run_bench(names, sizes, steps, device, _dtype(dtype), quantile_paths, compiled, results):
            click.echo(line)
    except (ValueError, RuntimeError) as exc:  # e.g. --device cuda without a GPU
        raise click.ClickException(str(exc)) from None
    if record_path is not None:
        from datetime import UTC, datetime

        from density_engine.workflow.estimate import THROUGHPUT_FILE, record_throughput

        memory = torch.cuda.get_device_properties(0).total_memory / 2**30 if results["device_type"] == "cuda" else None
        target = THROUGHPUT_FILE if record_path == "package" else record_path
        when = datetime.now(UTC).strftime("%Y-%m-%d")
        name = record_throughput(results, when, target, memory)
        click.echo(f"# recorded as the {name!r} entry of {target}")


def _bench_policy(names: list[str], num_paths: int, rounds: int, device: str) -> None:
    """``bench --policy``: per rough model and round, CPU seconds per parameter set at 10^7 paths, both policies."""
    import os

    from density_engine.engine.bench import policy_cost

    click.echo(f"# time-grid policy cost, {num_paths} paths scaled to 10^7, load average {os.getloadavg()[0]:.2f}")
    for name in names:
        result = policy_cost(name, num_paths=num_paths, rounds=rounds, device=device)
        click.echo(f"# {name} on {result['device']}: previous = {result['previous']}; new = {result['new']}")
        for index, row in enumerate(result["rounds"], start=1):
            click.echo(
                f"{name:<16} round {index}: previous {row['previous_s']:9.1f} CPU-s/set, new {row['new_s']:9.1f} "
                f"CPU-s/set (error column {row['column_s']:.1f} s), ratio {row['ratio']:.2f}"
                + "".join(
                    f"; {label}: {peer['s']:.1f} CPU-s/set, ratio {peer['ratio']:.2f}"
                    for label, peer in row["peers"].items()
                )
            )


COMMANDS: list[click.Command] = [simulate_command, simulate_one_command, models_command, bench_command]
