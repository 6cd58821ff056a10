"""``status`` and ``cleanup`` of the instances runs left on Vast (``snakemake-vast status|cleanup``; density-engine
wraps them as ``density-engine vast status|cleanup``).

Runs label every instance ``<label prefix>-<run id>-<n>``. ``cleanup`` destroys, by default, the instances of runs
this machine knows to be finished: runs whose controller died without cleaning up (their lock file in
:func:`~.runs.runs_dir` is free). A run in progress (its lock is held) is never touched, whatever the options. Runs this
machine does not know (started elsewhere) are only cleaned with ``--run-id`` or ``--all-runs``. After destroying,
the list is read again and what is still there is destroyed again (instances have been seen to survive a first
DELETE). Runs' leftover account SSH keys (comment ``<label prefix>-<run id>``) are removed too. The client keeps Vast's
documented request intervals (``throttle`` 1).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import Any

from snakemake_executor_plugin_vast import runs
from snakemake_executor_plugin_vast.client import Instance, VastClient, VastError

_RUN = re.compile(r"^(?P<run>[0-9a-f]{8})-")


def run_of(label: str | None, label_prefix: str) -> str | None:
    """The run id in a label ``<prefix>-<run id>-<n>`` (None for other labels)."""
    if not label or not label.startswith(f"{label_prefix}-"):
        return None
    match = _RUN.match(label[len(label_prefix) + 1 :])
    return match["run"] if match else None


def run_states(label_prefix: str) -> dict[str, str]:
    """``{run id: "running" | "dead"}`` for the runs this machine knows."""
    return {s.run_id: "running" if s.alive else "dead" for s in runs.known_runs(label_prefix)}


def status_rows(client: VastClient, label_prefix: str, run_id: str | None, show_all: bool) -> list[dict[str, Any]]:
    """Live instances (with their run's state on this machine and an estimated cost so far)."""
    instances = client.list_instances()
    states = run_states(label_prefix)
    now = time.time()
    rows = []
    for inst in instances:
        run = run_of(inst.label, label_prefix)
        if not show_all and (run is None or (run_id is not None and run != run_id)):
            continue
        cost = None
        if inst.dph_total is not None and inst.start_date is not None:
            cost = inst.dph_total * max(0.0, now - inst.start_date) / 3600.0
        rows.append(
            {
                "id": inst.id,
                "label": inst.label,
                "run": run,
                "run_state": states.get(run or "", "unknown") if run else "-",
                "status": inst.actual_status or "provisioning",
                "gpu": f"{inst.num_gpus or '?'}x {inst.gpu_name or '?'}",
                "dph_total": inst.dph_total,
                "cost_so_far": cost,
            }
        )
    return rows


def format_status(rows: list[dict[str, Any]], scope: str) -> str:
    """The status table."""
    if not rows:
        return f"No live instances ({scope})."
    lines = [f"{'ID':>10}  {'LABEL':<36}  {'RUN':<9} {'STATUS':<12}  {'GPU':<16}  {'$/H':>8}  {'COST SO FAR':>11}"]
    for row in rows:
        dph = "-" if row["dph_total"] is None else f"{row['dph_total']:.4f}"
        cost = "-" if row["cost_so_far"] is None else f"{row['cost_so_far']:.4f}"
        lines.append(
            f"{row['id']:>10}  {row['label'] or '-'!s:<36.36}  {row['run_state']:<9.9} {row['status']:<12.12}  "
            f"{row['gpu']:<16.16}  {dph:>8}  {cost:>11}"
        )
    total_dph = sum(row["dph_total"] or 0.0 for row in rows)
    total_cost = sum(row["cost_so_far"] or 0.0 for row in rows)
    lines.append(f"{len(rows)} live instance(s) ({scope}): ${total_dph:.4f}/h, ${total_cost:.4f} so far (estimated).")
    return "\n".join(lines)


def status_json(rows: list[dict[str, Any]]) -> str:
    """The status as JSON."""
    payload = {
        "instances": rows,
        "total_dph": sum(row["dph_total"] or 0.0 for row in rows),
        "total_cost_so_far": sum(row["cost_so_far"] or 0.0 for row in rows),
    }
    return json.dumps(payload, indent=2)


def _targets(
    instances: list[Instance], label_prefix: str, run_id: str | None, all_runs: bool, states: dict[str, str]
) -> tuple[list[Instance], list[str]]:
    chosen, skipped = [], set()
    for inst in instances:
        run = run_of(inst.label, label_prefix)
        if run is None:
            continue
        if states.get(run) == "running":
            skipped.add(run)
            continue
        if (run_id is not None and run == run_id) or (run_id is None and (all_runs or states.get(run) == "dead")):
            chosen.append(inst)
    return chosen, sorted(skipped)


def _run_keys(keys: list[dict[str, Any]], label_prefix: str, wanted: Callable[[str], bool]) -> list[dict[str, Any]]:
    """Account SSH keys a run registered (comment ``<label-prefix>-<8 hex>``) whose run ``wanted`` accepts."""
    pattern = re.compile(re.escape(f"{label_prefix}-") + "([0-9a-f]{8})")
    chosen = []
    for key in keys:
        fields = str(key.get("public_key") or key.get("ssh_key") or "").split()
        match = pattern.fullmatch(fields[-1]) if len(fields) >= 3 else None
        if match and key.get("id") is not None and wanted(match[1]):
            chosen.append(key)
    return chosen


def cleanup(
    client: VastClient,
    label_prefix: str,
    *,
    run_id: str | None = None,
    all_runs: bool = False,
    dry_run: bool = False,
    rounds: int = 3,
    echo: Callable[[str], None] = print,
) -> int:
    """Destroy leftover instances and account keys (see the module docstring); 0 when nothing is left, 1 otherwise."""
    states = run_states(label_prefix)
    if run_id is not None and states.get(run_id) == "running":
        echo(f"Run {run_id} is still running on this machine: not cleaning it up (stop it first, e.g. Ctrl-C).")
        return 1
    scope = (
        f"run {run_id}" if run_id else ("every run" if all_runs else "finished runs known to this machine")
    ) + f" (labels {label_prefix}-*)"
    try:
        targets, skipped = _targets(client.list_instances(), label_prefix, run_id, all_runs, states)
        for run in skipped:
            echo(f"skipping run {run}: it is still running on this machine")

        def wanted(run: str) -> bool:
            if states.get(run) == "running":
                return False
            return run == run_id if run_id else (all_runs or states.get(run) == "dead")

        keys = _run_keys(client.list_account_ssh_keys(), label_prefix, wanted)
        verb = "would remove" if dry_run else "removing"
        for key in keys:
            echo(f"{verb} account SSH key {key['id']} ({str(key.get('public_key', '')).split()[-1]})")
        if not dry_run:
            for key in keys:
                client.delete_account_ssh_key(int(key["id"]))
        if not targets:
            echo(f"Nothing to clean up: no live instances of {scope}.")
            _forget_dead(label_prefix, states, run_id, all_runs, dry_run)
            return 0
        for inst in targets:
            verb = "would destroy" if dry_run else "destroying"
            echo(f"{verb} {inst.id} {inst.label} ({inst.actual_status or 'provisioning'})")
        if dry_run:
            echo(f"Dry run: {len(targets)} instance(s) of {scope} would be destroyed.")
            return 0
        destroyed: set[int] = set()
        for _round in range(max(1, rounds)):
            failures = []
            for inst in targets:
                try:
                    client.destroy_instance(inst.id)
                    destroyed.add(inst.id)
                except VastError as exc:
                    failures.append(f"{inst.id}: {exc}")
            ids = {inst.id for inst in targets}
            targets = [inst for inst in client.list_instances() if inst.id in ids]
            if not targets:
                echo(f"Destroyed {len(destroyed)} instance(s) of {scope}; none left.")
                _forget_dead(label_prefix, states, run_id, all_runs, dry_run)
                return 0
            for failure in failures:
                echo(f"  destroy failed: {failure}")
        left = ", ".join(str(inst.id) for inst in targets)
        echo(
            f"{len(targets)} instance(s) of {scope} still alive after {rounds} rounds: {left}. They keep billing: "
            "retry, or destroy them in the Vast console."
        )
        return 1
    except VastError as exc:
        echo(f"Error: {exc}")
        return 1


def _forget_dead(label_prefix: str, states: dict[str, str], run_id: str | None, all_runs: bool, dry_run: bool) -> None:
    if dry_run:
        return
    for run, state in states.items():
        if state == "dead" and (run == run_id or run_id is None):
            runs.forget(label_prefix, run)


def main(argv: list[str] | None = None) -> int:
    """``snakemake-vast status|cleanup`` (also ``python -m snakemake_executor_plugin_vast``)."""
    import argparse
    import os

    from snakemake_executor_plugin_vast.client import DEFAULT_API_URL, AuthError, resolve_api_key

    parser = argparse.ArgumentParser(prog="snakemake-vast", description=__doc__.split("\n\n")[0])
    parser.add_argument("--api-url", default=DEFAULT_API_URL)
    parser.add_argument("--label-prefix", default="snakemake-vast")
    parser.add_argument("--throttle", type=float, default=1.0, help="multiplier on Vast's documented intervals")
    sub = parser.add_subparsers(dest="command", required=True)
    status = sub.add_parser("status", help="live instances of the runs, their state and cost so far")
    status.add_argument("--run-id")
    status.add_argument("--all", action="store_true", help="every live instance of the account")
    status.add_argument("--json", action="store_true")
    clean = sub.add_parser("cleanup", help="destroy leftovers of finished runs")
    clean.add_argument("--run-id")
    clean.add_argument("--all-runs", action="store_true", help="also runs this machine does not know")
    clean.add_argument("--dry-run", action="store_true")
    clean.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    try:  # the key from the environment only (SNAKEMAKE_VAST_API_KEY, VAST_API_KEY) or the vastai key file
        key = resolve_api_key(os.environ.get("SNAKEMAKE_VAST_API_KEY"))
    except AuthError as exc:
        parser.error(str(exc))
    client = VastClient(key, args.api_url, interval_scale=args.throttle)
    try:
        if args.command == "status":
            rows = status_rows(client, args.label_prefix, args.run_id, args.all)
            print(status_json(rows) if args.json else format_status(rows, f"label {args.label_prefix}-*"))
            return 0
        return cleanup(
            client, args.label_prefix, run_id=args.run_id, all_runs=args.all_runs, dry_run=args.dry_run,
            rounds=args.rounds,
        )  # fmt: skip
    except VastError as exc:
        print(f"Error: {exc}")
        return 1
    finally:
        client.close()
