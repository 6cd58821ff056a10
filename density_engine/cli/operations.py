"""`density-engine` commands for running the workflow day to day: ``status`` (where a run stands) and ``clean``
(files of older configs). Both read the same config files as Snakemake and only look at files (no Snakemake lock)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from density_engine.cli.workflow import base_dir_option, load_configs

DEFAULT_CONFIG = Path("config/config.yaml")


def _configfile_option(function):
    return click.option(
        "--configfile",
        "config_files",
        multiple=True,
        type=click.Path(path_type=Path),
        help=f"Workflow config (repeat to merge several, as snakemake --configfile does; default {DEFAULT_CONFIG}).",
    )(function)


def _root_option(function):
    return click.option(
        "--directory",
        "-d",
        "root",
        type=click.Path(file_okay=False, path_type=Path),
        default=Path("."),
        show_default=True,
        help="The workflow folder (where results/ is).",
    )(function)


@click.command("status")
@_configfile_option
@_root_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@base_dir_option
def status_command(config_files: tuple[Path, ...], root: Path, as_json: bool, base_dir: Path) -> None:
    """Where the run of the current config stands: chunks done / total per model, started, failed and quarantined
    chunks, throughput, ETA and the money spent on Vast (from the cost ledger). Works during and after a run."""
    from density_engine.workflow.status import run_status

    config = load_configs(config_files or (root / DEFAULT_CONFIG,), None, base_dir)
    status = run_status(config, base_dir, root, now=time.time)
    if as_json:
        click.echo(json.dumps(status.to_dict(), indent=1))
        return
    for line in status.lines():
        click.echo(line)


@click.command("clean")
@click.option("--stale", is_flag=True, required=True, help="Files of configs other than the current one.")
@click.option("--delete", is_flag=True, help="Remove them (default: only list what would be removed).")
@_configfile_option
@_root_option
@base_dir_option
def clean_command(stale: bool, delete: bool, config_files: tuple[Path, ...], root: Path, base_dir: Path) -> None:
    """List (or with --delete remove) chunks, chunk manifests, specs, logs, benchmarks, quarantined chunks, grids and
    merge manifests whose content key belongs to no current plan of the config's models. A dry run by default."""
    from density_engine.workflow.clean import remove, stale_files

    if not stale:
        raise click.UsageError("give --stale (the only kind of cleaning so far)")
    config = load_configs(config_files or (root / DEFAULT_CONFIG,), None, base_dir)
    found = stale_files(config, base_dir, root)
    for folder in found.unknown_models:
        click.echo(f"kept: {folder} (model not in the config)")
    size = found.bytes
    if not found.files:
        click.echo("nothing stale: every per-chunk file belongs to the current config")
        return
    if not delete:
        for path in found.files:
            click.echo(f"would remove {path}")
        click.echo(f"dry run: {len(found.files)} stale file(s), {size / 1e6:,.1f} MB; run with --delete to remove them")
        return
    freed = remove(found.files)
    click.echo(f"removed {len(found.files)} stale file(s), {freed / 1e6:,.1f} MB")


COMMANDS: list[click.Command] = [status_command, clean_command]
