"""`density-engine vast status|cleanup`: see and destroy the Vast.ai instances of density-engine runs;
`density-engine host-wheels`: the wheels the vast executor installs on its hosts (``--vast-host-wheels-command``).

Both vast commands wrap the executor plugin's own (``snakemake_executor_plugin_vast.admin``, also available as
``snakemake-vast status|cleanup``), with density-engine's label prefix. Runs label every instance
``<label-prefix>-<run-id>-<n>``; ``cleanup`` destroys by default only the leftovers of runs this machine knows to be
finished (a controller killed without cleaning up), never a run in progress; ``--run-id`` or ``--all-runs`` reach runs
started elsewhere. The API key is resolved like the executor does (``--api-key`` / ``SNAKEMAKE_VAST_API_KEY`` →
``VAST_API_KEY`` → ``~/.config/vastai/vast_api_key`` → ``~/.vast_api_key``) and is never printed.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from snakemake_executor_plugin_vast.client import VastClient

DEFAULT_LABEL_PREFIX = "density-engine"


def _common_options(func: click.decorators.FC) -> click.decorators.FC:
    func = click.option(
        "--label-prefix",
        default=DEFAULT_LABEL_PREFIX,
        show_default=True,
        help="Label prefix of the runs' instances (the executor's --vast-label-prefix).",
    )(func)
    func = click.option(
        "--api-key",
        default=None,
        envvar="SNAKEMAKE_VAST_API_KEY",
        show_envvar=True,
        help="Vast.ai API key. Prefer the environment (SNAKEMAKE_VAST_API_KEY, as for the executor, or VAST_API_KEY) "
        "or the vastai key file (~/.config/vastai/vast_api_key): command-line arguments are visible to other users.",
    )(func)
    func = click.option(
        "--api-url", default="https://console.vast.ai", show_default=True, help="Vast.ai API base URL."
    )(func)
    func = click.option(
        "--throttle-scale",
        type=click.FloatRange(min=0.0),
        default=1.0,
        show_default=True,
        help="Multiplier on Vast's documented per-endpoint minimum request intervals (1: the documented rate).",
    )(func)
    return func


def _client(api_url: str, api_key: str | None, throttle_scale: float) -> VastClient:
    from snakemake_executor_plugin_vast.client import AuthError, VastClient, resolve_api_key

    try:
        key = resolve_api_key(api_key)
    except AuthError as exc:
        raise click.ClickException(str(exc)) from None
    return VastClient(key, api_url, interval_scale=throttle_scale, max_retries=6)


@click.group("vast")
def vast() -> None:
    """Inspect and clean up Vast.ai instances rented by density-engine runs."""


@vast.command("status")
@_common_options
@click.option("--run-id", default=None, help="Only this run's instances.")
@click.option("--all", "show_all", is_flag=True, help="Every live instance of the account, whatever its label.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status(
    api_url: str,
    api_key: str | None,
    label_prefix: str,
    throttle_scale: float,
    run_id: str | None,
    show_all: bool,
    as_json: bool,
) -> None:
    """List live instances (label, run state on this machine, status, $/h, estimated cost so far) and the total."""
    from snakemake_executor_plugin_vast.admin import format_status, status_json, status_rows
    from snakemake_executor_plugin_vast.client import VastError

    client = _client(api_url, api_key, throttle_scale)
    try:
        rows = status_rows(client, label_prefix, run_id, show_all)
    except VastError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        client.close()
    scope = "all labels" if show_all else f"label {label_prefix}-{run_id + '-' if run_id else ''}*"
    click.echo(status_json(rows) if as_json else format_status(rows, scope))


@vast.command("cleanup")
@_common_options
@click.option("--run-id", default=None, help="Only this run's instances (labels <label-prefix>-<run-id>-*).")
@click.option(
    "--all-runs",
    is_flag=True,
    help="Also runs this machine does not know (started elsewhere); never a run in progress.",
)
@click.option("--dry-run", is_flag=True, help="Only list what would be destroyed.")
@click.option("--rounds", default=3, show_default=True, help="Destroy-and-verify rounds before giving up.")
def cleanup(
    api_url: str,
    api_key: str | None,
    label_prefix: str,
    throttle_scale: float,
    run_id: str | None,
    all_runs: bool,
    dry_run: bool,
    rounds: int,
) -> None:
    """Destroy the live instances of finished runs (by label) and their leftover account SSH keys; safe to repeat.

    Default scope: runs this machine knows to be finished (their controller died, e.g. kill -9); a run in progress is
    never touched. Exits with status 1 when instances remain.
    """
    from snakemake_executor_plugin_vast.admin import cleanup as run_cleanup

    client = _client(api_url, api_key, throttle_scale)
    try:
        code = run_cleanup(
            client, label_prefix, run_id=run_id, all_runs=all_runs, dry_run=dry_run, rounds=rounds, echo=click.echo
        )
    finally:
        client.close()
    if code:
        raise click.exceptions.Exit(code)


@click.command("host-wheels")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(".snakemake/vast/wheels"),
    show_default=True,
    help="Folder for the wheels (built once per code version, reused afterwards).",
)
def host_wheels_command(out_dir: Path) -> None:
    """Build the wheels every Vast host installs (density-engine and the executor plugin) and print their paths.

    The vast profile points the executor's --vast-host-wheels-command at this command. Versions carry a hash of the
    code (density-engine: its code version, recorded in every chunk), so a host re-installs exactly when code changed.
    """
    from density_engine.hostwheel import WheelSourceError, host_wheels

    try:
        wheels = host_wheels(out_dir)
    except (WheelSourceError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    for wheel in wheels:
        click.echo(str(wheel))


COMMANDS: list[click.Command] = [vast, host_wheels_command]
