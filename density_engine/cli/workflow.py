"""`density-engine` commands of the workflow stage: validate-config, grid, specs, merge, report-figures/-costs.

The Snakemake rules call these; each one is also usable by hand. Errors are reported as one line naming the key or
the file (click exits with status 1 or 2).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from density_engine.workflow.chunks import ModelPlan


def _fail(message: str) -> click.ClickException:
    return click.ClickException(message)


def base_dir_option(function: Callable[..., None]) -> Callable[..., None]:
    """The ``--base-dir`` option of every command that reads a model config."""
    return click.option(
        "--base-dir",
        type=click.Path(path_type=Path),
        default=Path("."),
        show_default=True,
        help="Folder that relative paths (sampler files) are resolved against.",
    )(function)


def load_configs(config_files: tuple[Path, ...], schema: Path | None, base_dir: Path) -> dict:
    """Config files merged like Snakemake's --configfile (later files override earlier ones per key), validated
    (schema, model domains, run size)."""
    from density_engine.workflow.config import ConfigError, load_yaml, validate_config

    try:
        merged: dict = {}
        for path in config_files:
            merged = _deep_update(merged, load_yaml(path))
        return validate_config(merged, schema, base_dir)
    except ConfigError as exc:
        raise _fail(f"invalid configuration: {exc}") from None


@click.command("validate-config")
@click.argument("config_files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--schema", type=click.Path(path_type=Path), default=None, help="Schema file (default: found from cwd).")
@base_dir_option
def validate_config_command(config_files: tuple[Path, ...], schema: Path | None, base_dir: Path) -> None:
    """Validate workflow config files (later files override earlier ones per top-level key) and print the plan."""
    from density_engine.workflow.estimate import estimate_run

    config = load_configs(config_files, schema, base_dir)
    run = estimate_run(config, base_dir)
    for m in run.models:
        click.echo(
            f"{m.model}: {m.parameter_sets} parameter sets in {m.chunks} chunks of {m.chunk_size}, "
            f"{m.path_steps:.3g} path-steps"
        )
    click.echo(run.summary_line())
    click.echo("configuration is valid")


@click.command("estimate")
@click.option(
    "--configfile",
    "config_files",
    multiple=True,
    required=True,
    type=click.Path(path_type=Path),
    help="Workflow config (repeat to merge several, as snakemake --configfile does).",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (docs/estimate.md).")
@click.option("--schema", type=click.Path(path_type=Path), default=None, help="Schema file (default: found from cwd).")
@base_dir_option
def estimate_command(config_files: tuple[Path, ...], as_json: bool, schema: Path | None, base_dir: Path) -> None:
    """Estimate the run of a config: per model parameter sets, chunks, path-steps, memory per chunk job, CPU-hours
    and GPU-hours per GPU type (from the throughput table in the package; GPU figures are labelled estimates)."""
    from density_engine.workflow.estimate import estimate_run, throughput_table

    run = estimate_run(load_configs(config_files, schema, base_dir), base_dir)
    if as_json:
        click.echo(json.dumps(run.to_dict(), indent=2))
        return
    gpus = list(throughput_table()["gpus"])
    header = f"{'model':<22}{'sets':>9}{'chunks':>8}{'path-steps':>12}{'per chunk':>11}{'MB/job':>8}{'GPU MB':>8}"
    header += f"{'CPU-h':>10}" + "".join(f"{name + '-h':>12}" for name in gpus)
    click.echo(header)
    for m in run.models:
        line = (
            f"{m.model:<22}{m.parameter_sets:>9,}{m.chunks:>8,}{m.path_steps:>12.3g}{m.path_steps_per_chunk:>11.3g}"
            f"{m.memory_mb_per_chunk.cpu_job:>8,.0f}{m.memory_mb_per_chunk.gpu:>8,.0f}{m.cpu.hours:>10.3g}"
        )
        click.echo(line + "".join(f"{m.gpus[name].hours:>12.3g}" for name in gpus))
    click.echo(run.summary_line())
    table = throughput_table()
    click.echo(f"CPU: {table['cpu']['label']} ({'measured' if table['cpu']['measured'] else 'estimated'})")
    for name, gpu in table["gpus"].items():
        click.echo(f"{name}: {gpu['memory_gib']} GiB, {'measured' if gpu['measured'] else 'ESTIMATED, not measured'}")


def _deep_update(base: dict, update: dict) -> dict:
    """Snakemake's config merge: nested mappings are merged, everything else replaced."""
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_update(out[key], value)
        else:
            out[key] = value
    return out


@click.command("grid")
@click.option("--model", required=True, help="Model name (registry name).")
@click.option("--model-config", "model_config", required=True, help="The model's config section as JSON.")
@click.option("--out", "out_path", required=True, type=click.Path(path_type=Path), help="Grid parquet to write.")
@base_dir_option
def grid_command(model: str, model_config: str, out_path: Path, base_dir: Path) -> None:
    """Sample a model's parameter grid (param_id + parameters) into a parquet file."""
    from density_engine.workflow.chunks import write_grid
    from density_engine.workflow.config import ConfigError, check_model_config
    from density_engine.workflow.samplers import SamplingError

    model_cfg = _model_config(model_config)
    try:
        check_model_config(model, model_cfg, base_dir)
        count = write_grid(model, model_cfg, out_path, base_dir)
    except (ConfigError, SamplingError, KeyError, ValueError) as exc:
        raise _fail(f"models.{model}: {exc}") from None
    click.echo(f"{model}: wrote {count} parameter sets to {out_path}")


def _model_config(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _fail(f"--model-config is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise _fail("--model-config must be a JSON object")
    return value


@click.command("specs")
@click.option("--model", required=True, help="Model name (registry name).")
@click.option("--model-config", "model_config", required=True, help="The model's config section as JSON.")
@click.option("--out-dir", required=True, type=click.Path(path_type=Path), help="Folder for the chunk spec files.")
@click.option(
    "--grid",
    "grid_path",
    type=click.Path(exists=True, path_type=Path),
    default=None,
    help="Parameter grid parquet (from `density-engine grid`); sampled afresh when omitted.",
)
@click.option("--chunks", "chunk_range", default=None, help="Chunk range FIRST:STOP (default: all chunks).")
@base_dir_option
def specs_command(
    model: str, model_config: str, out_dir: Path, grid_path: Path | None, chunk_range: str | None, base_dir: Path
) -> None:
    """Write one spec JSON per chunk (chunk_NNNNN.<content key>.json)."""
    from density_engine.workflow.chunks import write_specs
    from density_engine.workflow.config import ConfigError, check_model_config
    from density_engine.workflow.samplers import SamplingError

    model_cfg = _model_config(model_config)
    chunks = None
    if chunk_range is not None:
        try:
            first, stop = (int(part) for part in chunk_range.split(":"))
        except ValueError:
            raise _fail(f"--chunks must be FIRST:STOP, got {chunk_range!r}") from None
        chunks = range(first, stop)
    try:
        check_model_config(model, model_cfg, base_dir)
        paths = write_specs(model, model_cfg, out_dir, base_dir, grid_path=grid_path, chunks=chunks)
    except (ConfigError, SamplingError, KeyError, ValueError) as exc:
        raise _fail(f"models.{model}: {exc}") from None
    click.echo(f"{model}: wrote {len(paths)} chunk specs to {out_dir}")


def _model_plan(model: str, model_config: str, base_dir: Path) -> ModelPlan:
    """The chunk plan of a model config given as JSON (the same plan the Snakefile builds its DAG from)."""
    from density_engine.workflow.chunks import plan_model
    from density_engine.workflow.config import ConfigError
    from density_engine.workflow.samplers import SamplingError

    try:
        return plan_model(model, _model_config(model_config), base_dir)
    except (ConfigError, SamplingError, KeyError, ValueError) as exc:
        raise _fail(f"models.{model}: {exc}") from None


@click.command("merge")
@click.option("--model", required=True, help="Model name; every chunk must hold rows of this model only.")
@click.option("--model-config", "model_config", required=True, help="The model's config section as JSON.")
@click.option(
    "--chunks-dir", required=True, type=click.Path(path_type=Path), help="Folder with chunk_NNNNN.<key>.parquet."
)
@click.option("--specs-dir", required=True, type=click.Path(path_type=Path), help="Folder with chunk_NNNNN.<key>.json.")
@click.option("--out", "out_path", required=True, type=click.Path(path_type=Path), help="Merged parquet file.")
@click.option(
    "--manifest",
    "manifest_path",
    type=click.Path(path_type=Path),
    default=None,
    help="Merge manifest to write (default: densities.<plan key>.json beside --out).",
)
@click.option(
    "--quarantine-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Move chunks that fail the integrity checks here (the next run re-simulates them); default: leave them.",
)
@base_dir_option
def merge_command(
    model: str,
    model_config: str,
    chunks_dir: Path,
    specs_dir: Path,
    out_path: Path,
    manifest_path: Path | None,
    quarantine_dir: Path | None,
    base_dir: Path,
) -> None:
    """Verify the chunks of the current config and merge them into one densities parquet.

    The chunk files are the model config's plan (chunk_NNNNN.<content key>.parquet): chunks of older configs in the
    same folder are ignored. Each chunk is checked (readable, checksum against its chunk manifest, contract, values,
    quantiles vs moments, its spec) before anything is written; failed chunks are named with the check and moved to
    --quarantine-dir. The output is written atomically, then the manifest densities.<plan key>.json.
    """
    from density_engine.workflow.merge import MergeError, merge_model

    plan = _model_plan(model, model_config, base_dir)
    try:
        summary = merge_model(plan, chunks_dir, specs_dir, out_path, manifest_path, quarantine_dir)
    except MergeError as exc:
        raise _fail(str(exc)) from None
    except ValueError as exc:  # ChunkError from read_chunk names the file
        raise _fail(f"invalid chunk: {exc}") from None
    click.echo(f"{model}: merged {summary['chunks']} chunks, {summary['rows']} rows into {out_path}")


@click.command("report-figures")
@click.option("--model", required=True, help="Model name.")
@click.option("--densities", required=True, type=click.Path(exists=True, path_type=Path), help="Merged parquet.")
@click.option(
    "--manifest",
    "manifest_path",
    required=True,
    type=click.Path(exists=True, path_type=Path),
    help="The merge manifest (densities.<plan key>.json): names the chunks whose benchmarks are read.",
)
@click.option("--benchmarks-dir", required=True, type=click.Path(path_type=Path), help="simulate benchmark TSVs.")
@click.option("--out-dir", required=True, type=click.Path(path_type=Path), help="Folder for the figures.")
def report_figures_command(
    model: str, densities: Path, manifest_path: Path, benchmarks_dir: Path, out_dir: Path
) -> None:
    """Write the report figures of one model (coverage, fan charts, validation, runtimes of the merged chunks)."""
    from density_engine.workflow.merge import MergeError, read_manifest
    from density_engine.workflow.report import write_report_figures

    try:
        stems = read_manifest(manifest_path)["chunks"]
    except MergeError as exc:
        raise _fail(str(exc)) from None
    summary = write_report_figures(model, densities, benchmarks_dir, stems, out_dir)
    click.echo(json.dumps(summary))


@click.command("report-costs")
@click.option(
    "--ledger-dir",
    required=True,
    type=click.Path(path_type=Path, file_okay=False),
    help="Folder of the Vast executor's cost ledgers (results/vast/ledger, one <run id>.json per run); missing or "
    "empty means a local run.",
)
@click.option("--out", "out_path", required=True, type=click.Path(path_type=Path), help="Cost table CSV to write.")
@click.option("--html", "html_path", type=click.Path(path_type=Path), help="Also write the table as HTML here.")
def report_costs_command(ledger_dir: Path, out_path: Path, html_path: Path | None) -> None:
    """Write the cost table of the report: per Vast run one row per rented instance plus a total (and a total over
    all runs), or one row saying that the runs were local."""
    from density_engine.workflow.report import LedgerError, write_cost_table

    try:
        table = write_cost_table(ledger_dir, out_path, html_path)
    except LedgerError as exc:
        raise _fail(str(exc)) from None
    click.echo(f"wrote {len(table)} cost row(s) to {out_path}")


COMMANDS: list[click.Command] = [
    validate_config_command,
    estimate_command,
    grid_command,
    specs_command,
    merge_command,
    report_figures_command,
    report_costs_command,
]
