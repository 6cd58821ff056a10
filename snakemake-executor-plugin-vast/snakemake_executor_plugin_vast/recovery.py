"""State recovery after a controller crash: adopt a dead run's healthy instances, destroy the rest.

A run whose ledger file (in the same ``--vast-ledger-dir``, i.e. the same workflow) never became final, and whose
controller is not alive (:mod:`.runs`; Snakemake's own working-directory lock already keeps two runs from sharing a
folder), died. Its instances still carry its labels (``<prefix>-<dead run>-<n>``). At start the new run lists them
once and, for each:

* **adopts** it when it is running, reachable over SSH with the dead run's key (kept in ``.snakemake/vast/<run>/``)
  or this run's, and the pool has room (``max_instances``): the dead run's remote jobs are killed (Snakemake reruns
  their incomplete outputs anyway), the instance is relabelled into this run and joins the pool as a ready host (no new
  boot, no new bill);
* **destroys** it otherwise.

Both ledgers keep the story: the dead run's records end at the hand-over (``handed_to``) or the destruction and its
file is finalized; the new run's records of adopted instances start at the adoption (``adopted_from``). The dead run's
leftover account SSH key is removed.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from snakemake_executor_plugin_vast import runs
from snakemake_executor_plugin_vast.hostenv import script
from snakemake_executor_plugin_vast.ledger import RunLedger, unfinished_runs
from snakemake_executor_plugin_vast.pool import Host, HostPool
from snakemake_executor_plugin_vast.ssh import SshError, TofuHostKeys, connect_first, load_private_key, quote_command

log = logging.getLogger(__name__)


@dataclass
class Recovery:
    """What recovery did."""

    dead_runs: list[str] = field(default_factory=list)
    adopted: list[int] = field(default_factory=list)
    destroyed: list[int] = field(default_factory=list)
    old_keys: list[Path] = field(default_factory=list)
    """Key folders of dead runs whose instances were adopted (removed when this run ends)."""


def dead_runs(ledger_dir: Path, label_prefix: str, run_id: str) -> list[Path]:
    """Ledger files of runs of this workflow that never finalized and whose controller is not alive."""
    found = []
    for path in unfinished_runs(ledger_dir, exclude=[run_id]):
        state = runs.run_state(label_prefix, path.stem)
        if state is None or not state.alive:
            found.append(path)
    return found


def recover(
    pool: HostPool,
    *,
    ledger_dir: Path,
    state_root: Path,
    remote_root: str,
    adopt: bool = True,
    connect_timeout: float = 10.0,
    logger: logging.Logger | None = None,
) -> Recovery:
    """Adopt or destroy the live instances of dead runs (see the module docstring); never raises for API/SSH errors."""
    out = logger or log
    settings = pool.settings
    client = pool.client
    report = Recovery()
    paths = dead_runs(ledger_dir, settings.label_prefix, settings.run_id)
    if not paths:
        return report
    try:
        listed = client.list_instances(label_prefix=f"{settings.label_prefix}-")
    except Exception as exc:
        out.warning(f"vast: could not list instances to recover dead runs ({exc}); they stay as they are")
        return report
    for path in paths:
        try:
            old = RunLedger.load(path, clock=pool.clock)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            out.warning(f"vast: cannot read the ledger {path} ({exc}); skipping that run")
            continue
        report.dead_runs.append(old.run_id)
        theirs = [inst for inst in listed if (inst.label or "").startswith(f"{settings.label_prefix}-{old.run_id}-")]
        out.warning(
            f"vast: run {old.run_id} of this workflow died without cleaning up ({len(theirs)} live instance(s)); "
            + ("adopting the healthy ones" if adopt else "destroying them")
        )
        keys = _keys(state_root / old.run_id, pool.ssh_key)
        for inst in theirs:
            _ensure_record(old, inst, pool.clock())
            host = None
            room = sum(1 for h in pool.hosts if h.live) < settings.max_instances
            if adopt and room and inst.is_running and inst.endpoints and keys:
                host = _take_over(pool, inst, keys, old.run_id, remote_root, connect_timeout, out)
            if host is not None:
                pool.adopt(host)
                report.adopted.append(inst.id)
                if (state_root / old.run_id) not in report.old_keys:
                    report.old_keys.append(state_root / old.run_id)
                old.ended(inst.id, f"handed over to run {settings.run_id}", handed_to=settings.run_id)
                out.info(f"vast: adopted instance {inst.id} of dead run {old.run_id} as {host.label}")
            else:
                with contextlib.suppress(Exception):
                    client.destroy_instance(inst.id)
                    report.destroyed.append(inst.id)
                old.ended(inst.id, f"leftover destroyed by run {settings.run_id}")
                out.info(f"vast: destroyed instance {inst.id} left by dead run {old.run_id}")
        listed_ids = {inst.id for inst in theirs}
        for record in list(old.records.values()):
            if record.live and record.instance_id not in listed_ids:
                old.ended(record.instance_id, f"gone when run {settings.run_id} started")
        old.notes.append(f"controller died; leftovers handled by run {settings.run_id}")
        old.finalize("controller died")
        _forget_account_key(client, f"{settings.label_prefix}-{old.run_id}")
        runs.forget(settings.label_prefix, old.run_id)
    return report


def _keys(folder: Path, current: Any) -> list[Any]:
    keys = []
    generated = folder / "id_ed25519"
    if generated.is_file():
        with contextlib.suppress(Exception):
            keys.append(load_private_key(generated))
    if current is not None:
        keys.append(current)
    return keys


def _take_over(
    pool: HostPool, inst: Any, keys: list[Any], old_run: str, remote_root: str, timeout: float, out: logging.Logger
) -> Host | None:
    settings = pool.settings
    endpoints = [(e.host, int(e.port)) for e in inst.endpoints]
    for key in keys:
        host_keys = TofuHostKeys()
        try:
            conn = connect_first(
                endpoints, settings.ssh_user, key, host_keys, deadline=time.monotonic() + timeout,
                connect_timeout=min(5.0, timeout), retry_interval=0.5,
            )  # fmt: skip
        except SshError as exc:
            out.debug(f"vast: instance {inst.id} of run {old_run} not reachable with this key: {exc}")
            continue
        jobs = f"{remote_root}/runs/{old_run}/jobs"
        kill = (
            f"JOBS={quote_command([jobs])} bash -c {quote_command([script('kill.sh')])} bash "
            f"$(ls {quote_command([jobs])} 2>/dev/null)"
        )
        try:
            conn.exec(kill, timeout=30)
        except SshError as exc:
            out.warning(f"vast: instance {inst.id}: could not stop the dead run's jobs ({exc}); not adopting it")
            conn.close()
            return None
        label = f"{settings.run_label_prefix}adopted-{inst.id}"
        try:
            pool.client.set_label(inst.id, label)
        except Exception as exc:
            out.warning(f"vast: instance {inst.id}: relabelling failed ({exc}); not adopting it")
            conn.close()
            return None
        now = pool.clock()
        raw = inst.raw or {}
        return Host(
            instance_id=int(inst.id), label=label, machine_id=inst.machine_id, gpu_name=inst.gpu_name or "?",
            num_gpus=int(inst.num_gpus or 1), dph_total=float(inst.dph_total or 0.0),
            cpu_ram_mb=raw.get("cpu_ram"), disk_gb=raw.get("disk_space"), rented_at=now,
            interruptible=bool(raw.get("is_bid")), host_keys=host_keys, ssh_key=key, conn=conn, state="ready",
            idle_since=now, adopted_from=old_run,
        )  # fmt: skip
    return None


def _ensure_record(old: RunLedger, inst: Any, now: float) -> None:
    """A dead run's instance missing from its ledger (killed between the rent and the write) gets a record."""
    if inst.id in old.records:
        return
    from snakemake_executor_plugin_vast.ledger import InstanceRecord

    old.add(
        InstanceRecord(
            instance_id=int(inst.id),
            label=inst.label or "",
            machine_id=inst.machine_id,
            gpu_name=inst.gpu_name or "?",
            num_gpus=int(inst.num_gpus or 1),
            dph_total=float(inst.dph_total or 0.0),
            rented_at=float(inst.start_date) if inst.start_date else now,
        )
    )


def _forget_account_key(client: Any, comment: str) -> None:
    with contextlib.suppress(Exception):
        for key in client.list_account_ssh_keys():
            fields = str(key.get("public_key") or key.get("ssh_key") or "").split()
            if fields and fields[-1] == comment and key.get("id") is not None:
                client.delete_account_ssh_key(int(key["id"]))
