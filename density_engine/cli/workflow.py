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


def _base_dir_option(function: Callable[..., None]) -> Callable[..., None]:
    """The ``--base-dir`` option of every command that reads a model config."""
    return click.option(
        "--base-dir",
        type=click.Path(path_type=Path),
        default=Path("."),
        show_default=True,
        help="Folder that relative paths (sampler files) are resolved against.",
    )(function)


@click.command("validate-config")
@click.argument("config_files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--schema", type=click.Path(path_type=Path), default=None, help="Schema file (default: found from cwd).")
@_base_dir_option
def validate_config_command(config_files: tuple[Path, ...], schema: Path | None, base_dir: Path) -> None:
    """Validate workflow config files (later files override earlier ones per top-level key) and print the plan."""
    from density_engine.workflow.chunks import plan_model
    from density_engine.workflow.config import ConfigError, enabled_models, load_yaml, validate_config

    try:
        merged: dict = {}
        for path in config_files:
            merged = _deep_update(merged, load_yaml(path))
        config = validate_config(merged, schema, base_dir)
        for model in enabled_models(config):
            plan = plan_model(model, config["models"][model], base_dir)
            click.echo(f"{model}: {plan.num_sets} parameter sets in {plan.num_chunks} chunks of {plan.chunk_size}")
    except ConfigError as exc:
        raise _fail(f"invalid configuration: {exc}") from None
    click.echo("configuration is valid")


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
@_base_dir_option
def grid_command(model: str, model_config: str, out_path: Path, base_dir: Path) -> None:
    """Sample a model's parameter grid (param_id + parameters) into a parquet file."""
    from density_engine.workflow.chunks import write_grid
    from density_engine.workflow.config import ConfigError, check_model_config
    from density_engine.workflow.samplers import SamplingError

    model_cfg = _model_config(model_config)
    try:
        check_model_config(model, model_cfg, base_dir)
        count = write_grid(model, model_cfg, out_path, base_dir)
    except (ConfigError, SamplingError, KeyError) as exc:
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
@_base_dir_option
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
@_base_dir_option
def merge_command(
    model: str,
    model_config: str,
    chunks_dir: Path,
    specs_dir: Path,
    out_path: Path,
    manifest_path: Path | None,
    base_dir: Path,
) -> None:
    """Check the chunks of the current config against their specs and merge them into one densities parquet.

    The chunk files are the model config's plan (chunk_NNNNN.<content key>.parquet): chunks of older configs in the
    same folder are ignored. The output is written atomically, then the manifest densities.<plan key>.json.
    """
    from density_engine.workflow.merge import MergeError, merge_model

    plan = _model_plan(model, model_config, base_dir)
    try:
        summary = merge_model(plan, chunks_dir, specs_dir, out_path, manifest_path)
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
def report_costs_command(ledger_dir: Path, out_path: Path) -> None:
    """Write the cost table of the report: per Vast run one row per rented instance plus a total (and a total over
    all runs), or one row saying that the runs were local."""
    from density_engine.workflow.report import LedgerError, write_cost_table

    try:
        table = write_cost_table(ledger_dir, out_path)
    except LedgerError as exc:
        raise _fail(str(exc)) from None
    click.echo(f"wrote {len(table)} cost row(s) to {out_path}")


COMMANDS: list[click.Command] = [
    validate_config_command,
    grid_command,
    specs_command,
    merge_command,
    report_figures_command,
    report_costs_command,
]
