"""`density-engine vast status|cleanup`: see and destroy the Vast.ai instances of density-engine runs;
`density-engine host-wheels`: the wheels the vast executor installs on its hosts (``--vast-host-wheels-command``).

Runs label every instance ``<label-prefix>-<run-id>-<n>``; both commands select instances by that label, so they also
find instances left behind by a crashed or SIGKILLed controller. A run also registers its SSH key on the account with
the comment ``<label-prefix>-<run-id>``; ``cleanup`` removes such leftover keys too. The API key is resolved like the
executor does (``--api-key`` / ``SNAKEMAKE_VAST_API_KEY`` → ``VAST_API_KEY`` → ``~/.config/vastai/vast_api_key`` →
``~/.vast_api_key``) and is never printed.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from snakemake_executor_plugin_vast.client import Instance, VastClient

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
        default=0.5,
        show_default=True,
        help="Multiplier on Vast's per-endpoint minimum request intervals (0 disables the client-side throttle).",
    )(func)
    return func


def _client(api_url: str, api_key: str | None, throttle_scale: float) -> VastClient:
    from snakemake_executor_plugin_vast.client import AuthError, VastClient, resolve_api_key

    try:
        key = resolve_api_key(api_key)
    except AuthError as exc:
        raise click.ClickException(str(exc)) from None
    return VastClient(key, api_url, interval_scale=throttle_scale, max_retries=6)


def _select(instances: list[Instance], label_prefix: str, run_id: str | None) -> list[Instance]:
    prefix = f"{label_prefix}-{run_id}-" if run_id else f"{label_prefix}-"
    return [inst for inst in instances if (inst.label or "").startswith(prefix)]


def _run_keys(keys: list[dict[str, Any]], label_prefix: str, run_id: str | None) -> list[dict[str, Any]]:
    """Account SSH keys a run registered: comment ``<label-prefix>-<run-id>`` (``run_id`` given), or
    ``<label-prefix>-<8 hex>`` (the shape of generated run ids) for every run; other keys are never selected."""
    pattern = re.escape(f"{label_prefix}-") + (re.escape(run_id) if run_id else "[0-9a-f]{8}")
    chosen = []
    for key in keys:
        fields = str(key.get("public_key") or key.get("ssh_key") or "").split()
        if len(fields) >= 3 and re.fullmatch(pattern, fields[-1]) and key.get("id") is not None:
            chosen.append(key)
    return chosen


def _cost_so_far(inst: Instance, now: float) -> float | None:
    """Estimated spend: ``dph_total`` × hours since ``start_date`` (storage is billed from creation)."""
    if inst.dph_total is None or inst.start_date is None:
        return None
    return inst.dph_total * max(0.0, now - inst.start_date) / 3600.0


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
    """List live instances (label, status, $/h, estimated cost so far) and the total."""
    from snakemake_executor_plugin_vast.client import VastError

    client = _client(api_url, api_key, throttle_scale)
    try:
        instances = client.list_instances()
    except VastError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        client.close()
    if not show_all:
        instances = _select(instances, label_prefix, run_id)
    now = time.time()
    rows = [
        {
            "id": inst.id,
            "label": inst.label,
            "status": inst.actual_status or "provisioning",
            "gpu": f"{inst.num_gpus or '?'}x {inst.gpu_name or '?'}",
            "dph_total": inst.dph_total,
            "cost_so_far": _cost_so_far(inst, now),
        }
        for inst in instances
    ]
    total_dph = sum(row["dph_total"] or 0.0 for row in rows)
    total_cost = sum(row["cost_so_far"] or 0.0 for row in rows)
    if as_json:
        payload = {"instances": rows, "total_dph": total_dph, "total_cost_so_far": total_cost}
        click.echo(json.dumps(payload, indent=2))
        return
    scope = "all labels" if show_all else f"label {label_prefix}-{run_id + '-' if run_id else ''}*"
    if not rows:
        click.echo(f"No live instances ({scope}).")
        return
    click.echo(f"{'ID':>10}  {'LABEL':<40}  {'STATUS':<12}  {'GPU':<16}  {'$/H':>8}  {'COST SO FAR':>11}")
    for row in rows:
        dph = "-" if row["dph_total"] is None else f"{row['dph_total']:.4f}"
        cost = "-" if row["cost_so_far"] is None else f"{row['cost_so_far']:.4f}"
        click.echo(
            f"{row['id']:>10}  {row['label'] or '-'!s:<40.40}  {row['status']:<12.12}  {row['gpu']:<16.16}  "
            f"{dph:>8}  {cost:>11}"
        )
    click.echo(f"{len(rows)} live instance(s) ({scope}): ${total_dph:.4f}/h, ${total_cost:.4f} so far (estimated).")


@vast.command("cleanup")
@_common_options
@click.option("--run-id", default=None, help="Only this run's instances (labels <label-prefix>-<run-id>-*).")
@click.option("--dry-run", is_flag=True, help="Only list what would be destroyed.")
@click.option("--rounds", default=3, show_default=True, help="Destroy-and-verify rounds before giving up.")
def cleanup(
    api_url: str,
    api_key: str | None,
    label_prefix: str,
    throttle_scale: float,
    run_id: str | None,
    dry_run: bool,
    rounds: int,
) -> None:
    """Destroy every live instance whose label starts with the prefix (and run id); safe to repeat.

    After destroying, the instance list is read again and anything still there is destroyed again (Vast instances
    have been seen to survive a first DELETE). The runs' SSH keys left registered on the account (comment
    ``<label-prefix>-<run-id>``) are removed as well. Exits with status 1 when instances remain.
    """
    from snakemake_executor_plugin_vast.client import VastError

    client = _client(api_url, api_key, throttle_scale)
    scope = f"{label_prefix}-{run_id}-*" if run_id else f"{label_prefix}-*"
    try:
        targets = _select(client.list_instances(), label_prefix, run_id)
        keys = _run_keys(client.list_account_ssh_keys(), label_prefix, run_id)
        verb = "would remove" if dry_run else "removing"
        for key in keys:
            click.echo(f"{verb} account SSH key {key['id']} ({str(key.get('public_key', '')).split()[-1]})")
        if not dry_run:
            for key in keys:
                client.delete_account_ssh_key(int(key["id"]))
        if not targets:
            click.echo(f"Nothing to clean up: no live instances labelled {scope}.")
            return
        for inst in targets:
            verb = "would destroy" if dry_run else "destroying"
            click.echo(f"{verb} {inst.id} {inst.label} ({inst.actual_status or 'provisioning'})")
        if dry_run:
            click.echo(f"Dry run: {len(targets)} instance(s) labelled {scope} would be destroyed.")
            return
        destroyed: set[int] = set()
        for _round in range(max(1, rounds)):
            failures = []
            for inst in targets:
                try:
                    client.destroy_instance(inst.id)
                    destroyed.add(inst.id)
                except VastError as exc:
                    failures.append(f"{inst.id}: {exc}")
            targets = _select(client.list_instances(), label_prefix, run_id)
            if not targets:
                click.echo(f"Destroyed {len(destroyed)} instance(s) labelled {scope}; none left.")
                return
            for failure in failures:
                click.echo(f"  destroy failed: {failure}", err=True)
        left = ", ".join(str(inst.id) for inst in targets)
        raise click.ClickException(
            f"{len(targets)} instance(s) labelled {scope} still alive after {rounds} rounds: {left}. "
            "They keep billing: retry, or destroy them in the Vast console."
        )
    except VastError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        client.close()


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
