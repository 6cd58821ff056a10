"""The host pool of one run: rents, boots, hands out, releases and destroys Vast.ai instances.

One manager thread makes every decision in :meth:`HostPool.step` (at least every ``tick`` seconds, and whenever
something changed); the slow work (searching and renting, SSH connects, destroys) runs in a bounded worker pool, and one
monitor thread lists the run's instances (one API call per 25 instances per cycle, :mod:`.monitor`). Policy:

* **Assignment**: a request (one job's needs, and the hosts/machines it must avoid because it failed there) gets the
  first ready host with enough free GPUs, memory and disk that it does not avoid.
* **Renting**: requests no host can take now and no booting host is coming for start rents, up to
  ``max_instances`` live instances; offers are searched with :func:`.offers.query_parts`, cheapest first, skipping
  avoided machines; an offer taken between search and rent is skipped for the next.
* **Capacity waits, not failures**: when no offer matches, the request waits for any pool host that fits it (booting,
  busy or ready) while the market is searched again with back-off; only when ``offer_wait`` passed without an offer and
  without such a host does it fail, with one message saying how many offers match with fewer filters.
* **Boot**: ``running`` with an SSH endpoint in the monitor's rows, then SSH (direct first, then proxy); a fatal
  ``status_msg``, a terminal status, a vanished instance or ``boot_timeout`` destroys the instance (its container log is
  fetched first) and avoids its machine for the run.
* **Idle release**: a ready host without jobs is destroyed after ``idle_timeout`` unless a waiting request fits it;
  at once when requests wait for a new host, all slots are taken and none of them fits it; and at once when no more
  remote work is expected (:meth:`drain`).
* **Budget**: the projected spend (spent so far + live instances' $/h × the time to react: one tick plus the destroy
  calls at Vast's DELETE rate) must stay under ``budget``: a rent that would break it is not made, and when the live
  instances would break it before the next check, everything is stopped and destroyed (``budget_hit``).
* **Interruptible instances**: rented with a bid of ``bid_factor`` × the offer's ``min_bid``; an instance that goes to
  ``stopped`` (outbid) is preempted: its jobs are handed back to the runner without counting as failures.
* **Death**: a ready host whose instance is gone or exited is retired (the runner re-queues its jobs).
* Every instance is labelled ``<label_prefix>-<run_id>-<n>``; at the end the pool lists the run's labels and destroys
  what it lost track of (an ambiguous rent, a rent finishing during shutdown, a resurrection).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from snakemake_executor_plugin_vast.atomic import write_text_atomic
from snakemake_executor_plugin_vast.boot import DEAD_STATUSES, boot_verdict, connect, onstart_script
from snakemake_executor_plugin_vast.ledger import InstanceRecord, RunLedger
from snakemake_executor_plugin_vast.monitor import InstanceMonitor
from snakemake_executor_plugin_vast.offers import (
    JobNeeds,
    Market,
    bid_of,
    bid_price,
    counts_for,
    no_capacity_message,
    query_parts,
)
from snakemake_executor_plugin_vast.ssh import SshConnection, SshError, TofuHostKeys

if TYPE_CHECKING:
    import paramiko

log = logging.getLogger(__name__)

DELETE_INTERVAL = 3.0
"""Vast's documented minimum interval between DELETE calls (s), used to project how long stopping takes."""


class PoolError(Exception):
    """The pool could not provide a host."""


class PoolClosed(PoolError):
    """The pool is shutting down (Ctrl-C, end of run, budget)."""


class BudgetExceeded(PoolError):
    """The run's budget does not allow another instance."""


class NoCapacity(PoolError):
    """No offer matched for ``offer_wait`` and no pool host could take the job."""


@dataclass
class PoolSettings:
    """Pool configuration (mirrors the executor's ``--vast-*`` settings)."""

    run_id: str
    image: str
    offer_query: str = ""
    max_price: float | None = None
    max_instances: int = 4
    budget: float | None = None
    disk_gb: float = 32.0
    ssh_user: str = "root"
    label_prefix: str = "snakemake-vast"
    boot_timeout: float = 1200.0
    unreachable_timeout: float = 300.0
    keep_instances: bool = False
    offer_limit: int = 20
    offer_wait: float = 1800.0
    idle_timeout: float = 300.0
    interruptible: bool = False
    bid_factor: float = 1.25
    destroy_retry_delay: float = 1.0
    log_dir: Path | None = None
    """Folder for Vast container logs of hosts that failed to boot or died (None: not fetched)."""
    ledger_dir: Path | None = None
    """Where the run's ledger file is kept (None: in memory only)."""
    tick: float = 1.0
    monitor_interval: float = 5.0
    api_throttle: float = 1.0
    workers: int = 16

    @property
    def run_label_prefix(self) -> str:
        """Label prefix of this run's instances: ``<label_prefix>-<run_id>-``."""
        return f"{self.label_prefix}-{self.run_id}-"

    @property
    def lag_grace(self) -> float:
        """How long a fresh rent may be missing from the instance list (Vast's reads lag)."""
        return max(3 * self.monitor_interval, min(60.0, self.boot_timeout / 4))


@dataclass(eq=False)
class Host:
    """A rented (or adopted) instance and our SSH connection to it."""

    instance_id: int
    label: str
    machine_id: int | None
    gpu_name: str
    num_gpus: int
    dph_total: float
    cpu_ram_mb: float | None
    disk_gb: float | None
    rented_at: float
    interruptible: bool = False
    host_keys: TofuHostKeys = field(default_factory=TofuHostKeys)
    ssh_key: Any = None
    conn: SshConnection | None = None
    state: str = "booting"  # booting | connecting | ready | dead | destroyed
    used_gpus: int = 0
    gpu_assignments: dict[str, list[int]] = field(default_factory=dict)
    idle_since: float | None = None
    busy_since: float | None = None
    unreachable_since: float | None = None
    staging_failures: int = 0
    bootstrapped: str | None = None
    sources_hash: str | None = None
    preempted: bool = False
    adopted_from: str | None = None
    end_reason: str | None = None
    """Why the host was retired (the ledger's end reason, whoever finally destroys it)."""
    destroy_failed: bool = False
    """Every destroy attempt failed (it may still bill: the ledger keeps it live and the error names the cleanup)."""
    env: Any = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def name(self) -> str:
        """Short description for messages."""
        where = self.conn.address if self.conn is not None else "?"
        return f"instance {self.instance_id} ({self.gpu_name} x{self.num_gpus}, machine {self.machine_id}, {where})"

    @property
    def live(self) -> bool:
        """Counted against ``max_instances`` (and billing)."""
        return self.state in ("booting", "connecting", "ready")

    def fits(self, needs: JobNeeds) -> bool:
        """True when this host's hardware can take a job with ``needs`` (free or not)."""
        if self.num_gpus < needs.gpus:
            return False
        if needs.mem_mb is not None and self.cpu_ram_mb is not None and self.cpu_ram_mb < needs.mem_mb:
            return False
        return not (needs.disk_gb is not None and self.disk_gb is not None and self.disk_gb < needs.disk_gb)

    @property
    def free_gpus(self) -> int:
        """GPUs not reserved by a job."""
        return self.num_gpus - self.used_gpus


@dataclass(eq=False)
class HostRequest:
    """One job waiting for a host. ``on_host(host)`` runs in a worker with the host's GPUs reserved;
    ``on_error(exc)`` when no host can be had (closed, budget, no capacity)."""

    key: str
    needs: JobNeeds
    on_host: Callable[[Host], None]
    on_error: Callable[[Exception], None]
    avoid_hosts: frozenset[int] = frozenset()
    avoid_machines: frozenset[int] = frozenset()
    created_at: float = 0.0
    no_offer_since: float | None = None
    renting: bool = False
    failing: bool = False

    def can_use(self, host: Host) -> bool:
        """True when this request may run on ``host`` (hardware fits, not avoided)."""
        if host.instance_id in self.avoid_hosts or (
            host.machine_id is not None and host.machine_id in self.avoid_machines
        ):
            return False
        return host.fits(self.needs)


class HostPool:
    """Thread-safe pool of hosts for one run (see the module docstring)."""

    def __init__(
        self,
        client: Any,
        settings: PoolSettings,
        ssh_key: paramiko.PKey,
        public_key: str,
        *,
        clock: Callable[[], float] = time.time,
        logger: logging.Logger | None = None,
    ) -> None:
        self.client = client
        self.settings = settings
        self.ssh_key = ssh_key
        self.public_key = public_key
        self.clock = clock
        self.log = logger or log
        self.hosts: list[Host] = []
        self.blacklist: set[int] = set()
        self.requests: list[HostRequest] = []
        self.ledger = RunLedger(
            settings.ledger_dir or Path("."), settings.run_id, settings.label_prefix, settings.budget, clock=clock
        )
        self.persist_ledger = settings.ledger_dir is not None
        self.market = Market(
            settings.offer_wait,
            backoff_base=min(15.0, max(0.5, settings.offer_wait / 60)),
            backoff_cap=min(120.0, max(1.0, settings.offer_wait / 6)),
        )
        self.monitor = InstanceMonitor(
            client, lambda: (settings.run_label_prefix,), interval=settings.monitor_interval, clock=clock,
            on_update=self.wake,
        )  # fmt: skip
        self._cond = threading.Condition()
        self._workers = ThreadPoolExecutor(max_workers=max(2, settings.workers), thread_name_prefix="vast-pool")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._renting = 0
        self._counter = 0
        self._inflight_labels: set[str] = set()
        self._rent_locks: dict[str, threading.Lock] = {}
        self._offer_cache: dict[str, tuple[float, list[Any]]] = {}
        self._account_key_id: int | None = None
        self._draining = False
        self.drained = threading.Event()
        self.budget_hit = False
        self.on_budget: Callable[[str], None] | None = None
        self.on_host_lost: Callable[[Host, str, bool], None] | None = None
        self.stats = {"rents": 0, "searches": 0, "boot_failures": 0, "idle_released": 0, "preempted": 0}

    # ---- lifecycle -------------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Register the run's public key on the account (new instances get it); start the monitor and the manager."""
        try:
            self._account_key_id = self.client.add_account_ssh_key(self.public_key)
        except Exception as exc:  # attach per instance and onstart still install it
            self.log.warning(
                f"vast: could not register the run's SSH key on the account ({exc}); attaching per instance"
            )
        self.monitor.start()
        self._thread = threading.Thread(target=self._loop, name="vast-pool-manager", daemon=True)
        self._thread.start()

    @property
    def closed(self) -> bool:
        """True once :meth:`stop` was called."""
        return self._closed

    def wake(self) -> None:
        """Make the manager run a step soon."""
        with self._cond:
            self._cond.notify_all()

    def stop(self) -> None:
        """Stop renting and fail every waiting request (PoolClosed) without destroying anything yet."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._stop.set()
            waiting, self.requests = self.requests, []
            self._cond.notify_all()
        for request in waiting:
            self._fail_request(request, PoolClosed("the vast executor is shutting down"))

    def close(self, *, destroy: bool = True, wait_rents: float = 60.0) -> None:
        """Stop, wait for in-flight rents, destroy the instances (``keep_instances`` keeps ready hosts unless the budget
        was hit), sweep the run's labels, remove the account key, write the final ledger."""
        self.stop()
        self.monitor.stop()
        deadline = time.monotonic() + wait_rents
        with self._cond:
            while self._renting and time.monotonic() < deadline:
                self._cond.wait(0.2)
            hosts = list(self.hosts)
        keep: set[int] = set()
        if not destroy:
            keep = {h.instance_id for h in hosts if h.live}
        elif self.settings.keep_instances and not self.budget_hit:
            keep = {h.instance_id for h in hosts if h.state == "ready"}
        for host in hosts:
            if host.conn is not None and host.instance_id not in keep:
                host.conn.close()
        doomed = [h for h in hosts if h.instance_id not in keep and h.state != "destroyed"]
        list(self._workers.map(lambda h: self.destroy(h, "end of run"), doomed))
        if destroy:
            self.sweep(keep)
        if keep:
            self.log.warning(
                f"vast: keeping instances {sorted(keep)} (--vast-keep-instances): they keep billing until you clean "
                f"them up (label prefix {self.settings.label_prefix}-{self.settings.run_id}-)"
            )
        if self._account_key_id is not None:
            try:
                self.client.delete_account_ssh_key(self._account_key_id)
            except Exception as exc:
                self.log.warning(f"vast: could not remove the run's SSH key from the account: {exc}")
            self._account_key_id = None
        self._workers.shutdown(wait=False, cancel_futures=True)
        if not self.ledger.final or self.ledger.live_count():
            reason = "budget reached" if self.budget_hit else "end of run"
            self._finalize_or_write(reason if not keep else "end of run (instances kept)")

    def _finalize_or_write(self, reason: str) -> None:
        if not self.persist_ledger:
            self.ledger.final = not self.ledger.live_count()
            return
        if self.ledger.live_count():
            self.ledger.end_reason = reason
            self.ledger.write(force=True)
        else:
            self.ledger.finalize(reason)

    def sweep(self, keep: set[int] | frozenset[int] = frozenset(), *, rounds: int = 3) -> list[int]:
        """Destroy every live instance labelled with this run's prefix except ``keep`` (instances the pool lost track
        of); repeats the listing up to ``rounds`` times; returns the ids destroyed."""
        destroyed: list[int] = []
        for _ in range(max(1, rounds)):
            try:
                leftovers = [
                    inst
                    for inst in self.client.list_instances(label_prefix=self.settings.run_label_prefix)
                    if inst.id not in keep
                ]
            except Exception as exc:
                self.log.warning(f"vast: could not list this run's instances for the end-of-run sweep ({exc})")
                return destroyed
            if not leftovers:
                return destroyed
            for inst in leftovers:
                self.log.warning(f"vast: instance {inst.id} ({inst.label}) is still live after the run: destroying it")
                if self._destroy_found(inst, "end-of-run sweep"):
                    destroyed.append(inst.id)
        return destroyed

    def _destroy_found(self, inst: Any, reason: str) -> bool:
        """Destroy an instance found by label (tracked or not); untracked ones get a ledger record first."""
        with self._cond:
            host = next((h for h in self.hosts if h.instance_id == inst.id), None)
            if host is None:
                rented_at = float(inst.start_date) if inst.start_date else self.clock()
                host = Host(
                    instance_id=int(inst.id), label=inst.label or "", machine_id=inst.machine_id,
                    gpu_name=inst.gpu_name or "?", num_gpus=int(inst.num_gpus or 1),
                    dph_total=float(inst.dph_total or 0.0), cpu_ram_mb=None, disk_gb=None, rented_at=rented_at,
                    state="dead",
                )  # fmt: skip
                self.hosts.append(host)
                self._record(host)
            else:  # tracked and still (or, after its DELETE, again: a resurrection) live
                host.state = "dead"
        return self.destroy(host, reason)

    # ---- requests --------------------------------------------------------------------------------------------------

    def request(self, request: HostRequest) -> None:
        """Queue a request for a host (never blocks; the outcome comes through its callbacks)."""
        with self._cond:
            if self._closed:
                closed = True
            else:
                closed = False
                request.created_at = self.clock()
                self.requests.append(request)
                if self.ledger.final:
                    self.ledger.reopen()
                self._draining = False
                self.drained.clear()
                self._cond.notify_all()
        if closed:
            self._fail_request(request, PoolClosed("the vast executor is shutting down"))

    def cancel_request(self, key: str) -> None:
        """Drop a waiting request (its job was cancelled)."""
        with self._cond:
            self.requests = [r for r in self.requests if r.key != key]

    def _fail_request(self, request: HostRequest, exc: Exception) -> None:
        try:
            request.on_error(exc)
        except Exception:  # a callback must never break the manager
            self.log.debug("vast: request error callback failed", exc_info=True)

    def release(self, host: Host, gpus: int, key: str | None = None, *, finished_job: bool = False) -> None:
        """Give back GPUs reserved for a job (and the indices assigned to job ``key``)."""
        now = self.clock()
        with self._cond:
            host.used_gpus = max(0, host.used_gpus - gpus)
            if key is not None:
                host.gpu_assignments.pop(key, None)
            if host.used_gpus == 0 and host.state == "ready":
                if host.busy_since is not None:
                    self.ledger.add_time(host.instance_id, busy=now - host.busy_since)
                host.busy_since, host.idle_since = None, now
            if finished_job:
                self.ledger.add_time(host.instance_id, jobs=1)
            self._cond.notify_all()

    def assign_gpus(self, host: Host, key: str, count: int) -> list[int]:
        """Pick ``count`` GPU indices of the host for job ``key`` (within its reservation): disjoint
        ``CUDA_VISIBLE_DEVICES`` for jobs sharing a multi-GPU host."""
        with self._cond:
            taken = {i for ids in host.gpu_assignments.values() for i in ids}
            free = [i for i in range(max(host.num_gpus, 1)) if i not in taken]
            ids = free[: max(1, count)]
            host.gpu_assignments[key] = ids
            return ids

    def drain(self, draining: bool = True) -> None:
        """No more remote work is expected (``True``): idle hosts are destroyed at once and, once none is live, the
        ledger is finalized and :attr:`drained` is set."""
        with self._cond:
            self._draining = draining
            if not draining:
                self.drained.clear()
            self._cond.notify_all()

    # ---- the manager -----------------------------------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.step()
            except Exception:  # the manager must survive anything
                self.log.warning("vast: pool manager step failed", exc_info=True)
            with self._cond:
                if not self._stop.is_set():
                    self._cond.wait(self.settings.tick)

    def step(self) -> None:
        """One round of decisions (see the module docstring)."""
        if self._closed:
            return
        now = self.clock()
        self._check_budget(now)
        if self._closed:
            return
        self._check_hosts(now)
        self._assign(now)
        self._rent_for_waiting(now)
        self._release_idle(now)
        self._destroy_strays()
        self._check_drained()
        if self.persist_ledger:
            self.ledger.maybe_write()

    def _check_budget(self, now: float) -> None:
        budget = self.settings.budget
        if budget is None or self.budget_hit:
            return
        if self.projected_spend(now) < budget:
            return
        self._trigger_budget()

    def _trigger_budget(self) -> None:
        """Stop for the budget: fail everything through the runner's callback, stop renting, destroy every host."""
        with self._cond:
            if self.budget_hit:
                return
            self.budget_hit = True
            for host in self.hosts:
                if host.state != "destroyed" and host.end_reason is None:
                    host.end_reason = "budget reached"
        message = self.budget_message()
        self.log.warning("vast: budget reached: stopping the remaining jobs and destroying every instance")
        if self.on_budget is not None:
            try:
                self.on_budget(message)
            except Exception:
                self.log.debug("vast: budget callback failed", exc_info=True)
        self.stop()
        for host in list(self.hosts):
            if host.state != "destroyed":
                self.retire(host, "budget reached", blacklist=False)

    def reaction_time(self, live: int | None = None) -> float:
        """Seconds from a budget check until every live instance is destroyed: a tick, plus the DELETE calls at Vast's
        documented rate, plus a margin."""
        live = self.ledger.live_count() if live is None else live
        return 2 * self.settings.tick + DELETE_INTERVAL * self.settings.api_throttle * live + 2.0

    def projected_spend(self, now: float | None = None, extra_dph: float = 0.0, extra_live: int = 0) -> float:
        """Spend so far plus what the live instances (and ``extra_dph`` more) cost until the pool could react."""
        now = self.clock() if now is None else now
        horizon = self.reaction_time(self.ledger.live_count() + extra_live)
        return self.ledger.spent(now) + (self.ledger.live_dph() + extra_dph) * horizon / 3600.0

    def budget_message(self) -> str:
        """The message when the budget stops the run."""
        return (
            f"Vast budget reached: this run spent ${self.ledger.spent():.4f} of its --vast-budget "
            f"${self.settings.budget:g} (the live instances would have gone past it before the next check); no more "
            "instances are rented and the remaining jobs are stopped. Raise --vast-budget to continue."
        )

    def _check_hosts(self, now: float) -> None:
        """Boot progress of booting hosts; death and preemption of ready ones (from the monitor's rows)."""
        for host in list(self.hosts):
            if host.state == "booting":
                sighting = self.monitor.sighting(host.instance_id)
                age = now - host.rented_at
                verdict = boot_verdict(
                    sighting.instance, seen_for=age, lag_grace=self.settings.lag_grace,
                    gone=sighting.instance is not None and sighting.missing_since is not None,
                )  # fmt: skip
                if verdict.kind == "ready":
                    host.state = "connecting"
                    self._submit(self._connect, host, sighting.instance)
                elif verdict.kind == "failed":
                    self._boot_failed(host, verdict.reason)
                elif age > self.settings.boot_timeout:
                    self._boot_failed(host, f"not running after the boot timeout of {self.settings.boot_timeout:.0f} s")
            elif host.state == "ready":
                sighting = self.monitor.sighting(host.instance_id)
                inst = sighting.instance
                status = (inst.actual_status or "").lower() if inst is not None else ""
                if (
                    host.interruptible
                    and inst is not None
                    and (status == "stopped" or inst.intended_status == "stopped")
                ):
                    self._lost(host, "preempted: the interruptible instance was stopped (outbid)", preempted=True)
                elif sighting.missing_since is not None and now - sighting.missing_since > self.settings.lag_grace:
                    self._lost(host, "the instance is gone")
                elif status in DEAD_STATUSES:
                    self._lost(host, f"instance status {status!r}")

    def _lost(self, host: Host, reason: str, *, preempted: bool = False) -> None:
        with self._cond:
            if host.state in ("dead", "destroyed"):
                return
        host.preempted = preempted
        if preempted:
            self.stats["preempted"] += 1
            self.ledger.update(host.instance_id, preempted=True)
        self.log.warning(f"vast: {host.name} lost: {reason}")
        # retired first (no job can be handed to it any more), then its jobs go back to the runner
        self.retire(host, reason, blacklist=not preempted, fetch_log=not preempted)
        if self.on_host_lost is not None:
            try:
                self.on_host_lost(host, reason, preempted)
            except Exception:
                self.log.debug("vast: host-lost callback failed", exc_info=True)

    def _assign(self, now: float) -> None:
        with self._cond:
            waiting = list(self.requests)
            hosts = [h for h in self.hosts if h.state == "ready"]
            granted: list[tuple[HostRequest, Host]] = []
            for request in waiting:
                host = next((h for h in hosts if h.free_gpus >= request.needs.gpus and request.can_use(h)), None)
                if host is None:
                    continue
                if host.used_gpus == 0:
                    if host.idle_since is not None:
                        self.ledger.add_time(host.instance_id, idle=now - host.idle_since)
                    host.idle_since, host.busy_since = None, now
                host.used_gpus += request.needs.gpus
                self.requests.remove(request)
                granted.append((request, host))
        for request, host in granted:
            self._submit(self._grant, request, host)

    def _grant(self, request: HostRequest, host: Host) -> None:
        try:
            request.on_host(host)
        except Exception as exc:
            self.log.warning(f"vast: handing {host.name} to job {request.key} failed: {exc}")
            self.release(host, request.needs.gpus, request.key)

    def _rent_for_waiting(self, now: float) -> None:
        with self._cond:
            if self._closed:
                return
            waiting = [r for r in self.requests if not r.renting]
            coming = [h for h in self.hosts if h.state in ("booting", "connecting")]
            promised: set[int] = set()
            slots = self.settings.max_instances - sum(1 for h in self.hosts if h.live) - self._renting
            to_rent: list[HostRequest] = []
            for request in waiting:
                host = next((h for h in coming if h.instance_id not in promised and request.can_use(h)), None)
                if host is not None:
                    promised.add(host.instance_id)
                    continue
                if slots > 0:
                    to_rent.append(request)
                    slots -= 1
        by_query: dict[str, list[HostRequest]] = {}
        for request in to_rent:
            parts = query_parts(self.settings.offer_query, request.needs, disk_gb=self._disk_for(request.needs),
                                max_price=self.settings.max_price)  # fmt: skip
            if not self.market.may_search(parts.full, now):
                continue
            by_query.setdefault(parts.full, []).append(request)
        for query, requests in by_query.items():
            with self._cond:
                for request in requests:
                    request.renting = True
                self._renting += len(requests)
            self._submit(self._rent, query, requests)
        self._fail_no_capacity(now)

    def _disk_for(self, needs: JobNeeds) -> float:
        return float(max(self.settings.disk_gb, needs.disk_gb or 0.0))

    def _fail_no_capacity(self, now: float) -> None:
        """Fail requests whose market stayed empty for ``offer_wait`` while no pool host could take them."""
        with self._cond:
            doomed = []
            for request in self.requests:
                if request.renting or request.failing or request.no_offer_since is None:
                    continue
                parts = query_parts(self.settings.offer_query, request.needs, disk_gb=self._disk_for(request.needs),
                                    max_price=self.settings.max_price)  # fmt: skip
                state = self.market.state(parts.full)
                if state is None or not state.exhausted:
                    continue
                if any(h.live and request.can_use(h) for h in self.hosts):
                    continue  # a pool host (booting, busy or ready) will take it: keep waiting
                request.failing = True
                doomed.append((request, parts, state))
        for request, parts, state in doomed:
            self._submit(self._no_capacity, request, parts, state, now)

    def _no_capacity(self, request: HostRequest, parts: Any, state: Any, now: float) -> None:
        counts = counts_for(lambda q: self._search(q, limit=1000), parts)
        waited = now - (state.empty_since if state.empty_since is not None else now)
        message = no_capacity_message(parts, counts, waited, state.searches, len(self.blacklist))
        with self._cond:
            if request not in self.requests:
                return
            self.requests.remove(request)
        self.log.error(f"vast: {message}")
        self._fail_request(request, NoCapacity(message))

    def _search(self, query: str, *, limit: int | None = None, disk_gb: float | None = None) -> list[Any]:
        """Offers for ``query``, cheapest first; the rented disk is priced in (``allocated_storage``)."""
        self.stats["searches"] += 1
        return self.client.search_offers(
            query, order="dph_total", limit=limit or self.settings.offer_limit,
            disk_gb=self.settings.disk_gb if disk_gb is None else disk_gb,
            offer_type="bid" if self.settings.interruptible else "on-demand",
        )  # fmt: skip

    def _rent(self, query: str, requests: list[HostRequest]) -> None:
        """Rent up to ``len(requests)`` instances for one query (a worker task)."""
        from snakemake_executor_plugin_vast.client import AuthError, OfferUnavailable, RateLimited, VastError

        rented = 0
        now = self.clock()
        with self._cond:
            rent_lock = self._rent_locks.setdefault(query, threading.Lock())
        rent_lock.acquire()  # one renter per query at a time: two would race for the same cheapest offer
        try:
            needs = requests[0].needs
            disk_gb = self._disk_for(needs)
            try:  # one search for the whole batch (bounded), reused for a few seconds by the next batches
                offers = self._cached_offers(query)
                if offers is None:
                    limit = min(200, max(self.settings.offer_limit, 2 * len(requests)))
                    offers = self._search(query, disk_gb=disk_gb, limit=limit)
                    self._offer_cache[query] = (time.monotonic(), list(offers))
            except VastError as exc:
                self.log.warning(f"vast: offer search failed ({exc}); searching again later")
                self.market.empty(query, now)
                return
            avoided = set(self.blacklist)
            for request in requests:
                avoided |= set(request.avoid_machines)
            candidates = [o for o in offers if o.machine_id not in avoided]
            for offer in candidates:
                if rented >= len(requests) or self._closed:
                    break
                price = self._price(offer)
                budget = self.settings.budget
                if budget is not None and self.projected_spend(extra_dph=price, extra_live=1) >= budget:
                    self.log.warning(
                        f"vast: not renting offer {offer.id} (${price:.3f}/h): the projected spend would pass "
                        f"--vast-budget ${budget:g}"
                    )
                    with self._cond:
                        serving = any(h.live for h in self.hosts)
                    if not serving:  # nothing can run the jobs and nothing more may be rented: stop cleanly
                        self._trigger_budget()
                    break
                label = self._next_label()
                instance_id = None
                self._forget_offer(query, offer.id)  # rented or vanished: never offered from the cache again
                try:
                    instance_id = self._create(offer, label, disk_gb, price)
                except OfferUnavailable as exc:
                    self.log.info(f"vast: offer {offer.id} vanished before renting ({exc}); trying the next one")
                    continue
                except (AuthError, RateLimited) as exc:
                    self.log.warning(f"vast: renting offer {offer.id} failed ({exc}); trying again later")
                    break
                except VastError as exc:
                    if exc.status is None or exc.status >= 500:  # the rent may have happened after all
                        self.log.warning(
                            f"vast: the rent labelled {label} ended ambiguously ({exc}); destroying the instance if "
                            "it appears"
                        )
                        self.monitor.expect_strays(max(60.0, 10 * self.settings.monitor_interval))
                    else:
                        self.log.warning(f"vast: renting offer {offer.id} failed ({exc})")
                    break
                finally:
                    if instance_id is None:
                        with self._cond:
                            self._inflight_labels.discard(label)
                host = Host(
                    instance_id=int(instance_id), label=label, machine_id=offer.machine_id, gpu_name=offer.gpu_name,
                    num_gpus=int(offer.num_gpus or 1), dph_total=price, cpu_ram_mb=offer.cpu_ram,
                    disk_gb=offer.disk_space, rented_at=self.clock(), interruptible=self.settings.interruptible,
                    ssh_key=self.ssh_key,
                )  # fmt: skip
                with self._cond:
                    self.hosts.append(host)
                    self._record(host)
                    self._inflight_labels.discard(label)
                    closed = self._closed
                self.monitor.watch(host.instance_id)
                self.stats["rents"] += 1
                rented += 1
                if self.persist_ledger:
                    self.ledger.write()
                self.log.info(
                    f"vast: rented instance {host.instance_id} ({host.gpu_name} x{host.num_gpus}, "
                    f"${host.dph_total:.3f}/h{', interruptible' if host.interruptible else ''}, machine "
                    f"{host.machine_id}) label {label}"
                )
                if closed:
                    self.destroy(host, "rented during shutdown")
                    return
                with contextlib.suppress(Exception):  # the account key and onstart also install it
                    self.client.attach_ssh_key(host.instance_id, self.public_key)
            if rented:
                self.market.found(query)
            else:
                state = self.market.empty(query, now)
                with self._cond:
                    for request in requests:
                        if request.no_offer_since is None:
                            request.no_offer_since = now
                if state.searches == 1:
                    self.log.warning(
                        f"vast: no offer available for {query!r} (avoided machines: {sorted(avoided)}); jobs wait for "
                        f"a pool host or a new offer (searching again with back-off, up to --vast-offer-wait "
                        f"{self.settings.offer_wait:.0f} s)"
                    )
        finally:
            rent_lock.release()
            with self._cond:
                for request in requests:
                    request.renting = False
                    if rented:
                        request.no_offer_since = None
                self._renting -= len(requests)
                self._cond.notify_all()

    OFFER_CACHE_S = 5.0
    """How long one search's offers serve later rent batches of the same query (offers taken meanwhile answer 404
    and are skipped)."""

    def _cached_offers(self, query: str) -> list[Any] | None:
        cached = self._offer_cache.get(query)
        if cached is None or time.monotonic() - cached[0] > self.OFFER_CACHE_S or not cached[1]:
            return None
        return list(cached[1])

    def _forget_offer(self, query: str, offer_id: int) -> None:
        cached = self._offer_cache.get(query)
        if cached is not None:
            self._offer_cache[query] = (cached[0], [o for o in cached[1] if o.id != offer_id])

    def _price(self, offer: Any) -> float:
        """$/h of renting ``offer``: its dph_total, or for an interruptible rent the bid plus storage."""
        if not self.settings.interruptible:
            return float(offer.dph_total or 0.0)
        return bid_price(offer, self.settings.bid_factor)

    def _create(self, offer: Any, label: str, disk_gb: float, price: float) -> int:
        with self._cond:
            self._inflight_labels.add(label)
        kwargs: dict[str, Any] = {}
        if self.settings.interruptible:
            kwargs["bid_price"] = bid_of(offer, self.settings.bid_factor)
        return self.client.create_instance(
            offer.id, image=self.settings.image, disk_gb=disk_gb, label=label,
            onstart=onstart_script(self.public_key), **kwargs,
        )  # fmt: skip

    def _record(self, host: Host) -> None:
        self.ledger.add(
            InstanceRecord(
                instance_id=host.instance_id,
                label=host.label,
                machine_id=host.machine_id,
                gpu_name=host.gpu_name,
                num_gpus=host.num_gpus,
                dph_total=host.dph_total,
                rented_at=host.rented_at,
                interruptible=host.interruptible,
                adopted_from=host.adopted_from,
            )
        )

    def _next_label(self) -> str:
        with self._cond:
            self._counter += 1
            return f"{self.settings.run_label_prefix}{self._counter}"

    def _submit(self, func: Callable[..., Any], *args: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the worker pool is shut down: the run is ending
            self._workers.submit(self._guarded, func, *args)

    def _guarded(self, func: Callable[..., Any], *args: Any) -> None:
        try:
            func(*args)
        except Exception:
            self.log.warning(f"vast: {getattr(func, '__name__', 'task')} failed", exc_info=True)
        finally:
            self.wake()

    # ---- boot ------------------------------------------------------------------------------------------------------

    def _connect(self, host: Host, instance: Any) -> None:
        if self._closed:
            return
        timeout = min(10.0, max(2.0, self.settings.boot_timeout / 10))
        remaining = self.settings.boot_timeout - (self.clock() - host.rented_at)
        try:
            conn = connect(
                instance, self.settings.ssh_user, host.ssh_key or self.ssh_key, host.host_keys,
                deadline=time.monotonic() + max(remaining, 10.0), connect_timeout=timeout,
                retry_interval=min(2.0, max(0.2, self.settings.boot_timeout / 60)), stop=self._stop,
            )  # fmt: skip
        except SshError as exc:
            if self._closed:
                self._discard(host, "shutting down")
            else:
                self._boot_failed(host, f"no SSH: {exc}")
            return
        now = self.clock()
        with self._cond:
            if host.state != "connecting":
                conn.close()
                return
            host.conn = conn
            host.state = "ready"
            host.idle_since = now
            self._cond.notify_all()
        self.ledger.update(host.instance_id, ready_at=now)
        if self.persist_ledger:
            self.ledger.write()
        self.log.info(f"vast: {host.name} reachable over SSH {now - host.rented_at:.1f} s after the rent")

    def _boot_failed(self, host: Host, reason: str) -> None:
        with self._cond:
            if host.state in ("dead", "destroyed"):
                return
            host.state = "dead"
            if host.machine_id is not None:
                self.blacklist.add(host.machine_id)
        self.stats["boot_failures"] += 1
        self.log.warning(f"vast: {host.name} did not become usable: {reason}; destroying it and renting another")
        self._submit(self._fetch_log_and_destroy, host, f"boot failed: {reason}")

    def _fetch_log_and_destroy(self, host: Host, reason: str) -> None:
        self.fetch_container_log(host)
        self.destroy(host, reason)

    def _discard(self, host: Host, reason: str) -> None:
        with self._cond:
            if host.state != "destroyed":
                host.state = "dead"
        self.destroy(host, reason)

    # ---- adoption ----------------------------------------------------------------------------------------------------

    def adopt(self, host: Host) -> None:
        """Take over a live instance of a dead run (see :mod:`.recovery`): it is connected like a fresh boot."""
        with self._cond:
            self.hosts.append(host)
            self._record(host)
        self.monitor.watch(host.instance_id)
        if self.persist_ledger:
            self.ledger.write()
        self.wake()

    # ---- idle release ------------------------------------------------------------------------------------------------

    def _release_idle(self, now: float) -> None:
        with self._cond:
            idle = [h for h in self.hosts if h.state == "ready" and h.used_gpus == 0]
            if not idle:
                return
            waiting = [r for r in self.requests]
            live = sum(1 for h in self.hosts if h.live) + self._renting
            full = live >= self.settings.max_instances
            victims: list[tuple[Host, str]] = []
            for host in idle:
                wanted = any(r.can_use(host) for r in waiting)
                if wanted:
                    continue
                idle_for = now - (host.idle_since or now)
                if self._draining and not waiting:
                    victims.append((host, "idle: no more jobs"))
                elif full and waiting:
                    victims.append((host, "idle: no waiting job can use it, its slot is needed"))
                    full = False
                elif idle_for >= self.settings.idle_timeout:
                    victims.append((host, f"idle for {idle_for:.0f} s"))
            for host, _ in victims:
                host.state = "dead"
                if host.idle_since is not None:
                    self.ledger.add_time(host.instance_id, idle=now - host.idle_since)
                    host.idle_since = None
        for host, reason in victims:
            self.stats["idle_released"] += 1
            self.log.info(f"vast: releasing {host.name}: {reason}")
            self._submit(self.destroy, host, reason)

    def _destroy_strays(self) -> None:
        for inst in self.monitor.strays():
            with self._cond:
                if (inst.label or "") in self._inflight_labels or any(h.instance_id == inst.id for h in self.hosts):
                    continue
            self.log.warning(f"vast: instance {inst.id} ({inst.label}) is labelled for this run but untracked "
                             "(an ambiguous rent?): destroying it")  # fmt: skip
            self._submit(self._destroy_found, inst, "ambiguous rent")

    def _check_drained(self) -> None:
        with self._cond:
            if not self._draining or self.requests or self._renting or any(h.live for h in self.hosts):
                return
            # a retired host's destroy may still be running: the ledger is final only once it is done (or gave up)
            busy = any(h.state != "destroyed" and not h.destroy_failed for h in self.hosts)
        if busy:
            return
        if self.ledger.records and not self.ledger.final:
            self._finalize_or_write("no more remote jobs")
        self.drained.set()

    # ---- health and teardown -------------------------------------------------------------------------------------

    def instance_status(self, host: Host) -> str:
        """``actual_status`` of a host from the monitor: a status, ``"gone"``, or ``"?"`` when unknown."""
        sighting = self.monitor.sighting(host.instance_id)
        if sighting.missing_since is not None and self.clock() - sighting.missing_since > self.settings.lag_grace:
            return "gone"
        if sighting.instance is None:
            return "?"
        return (sighting.instance.actual_status or "?").lower()

    def retire(self, host: Host, reason: str, *, blacklist: bool = True, fetch_log: bool = False) -> None:
        """Mark a host dead (no new jobs), avoid its machine and destroy it in the background (``fetch_log``: save
        Vast's container log first)."""
        now = self.clock()
        with self._cond:
            if host.state in ("dead", "destroyed"):
                return
            host.state = "dead"
            host.end_reason = reason
            if blacklist and host.machine_id is not None:
                self.blacklist.add(host.machine_id)
            if host.idle_since is not None:
                self.ledger.add_time(host.instance_id, idle=now - host.idle_since)
            if host.busy_since is not None:
                self.ledger.add_time(host.instance_id, busy=now - host.busy_since)
            host.idle_since = host.busy_since = None
            self._cond.notify_all()
        self.log.warning(f"vast: retiring {host.name}: {reason}")
        if host.conn is not None:
            host.conn.close()
        # always destroyed, also with keep_instances: a dead host is useless and a budget stop must stop the billing
        target = self._fetch_log_and_destroy if fetch_log else self.destroy
        threading.Thread(target=target, args=(host, reason), daemon=True).start()

    def fetch_container_log(self, host: Host) -> Path | None:
        """Save Vast's container log of ``host`` (before it is destroyed) into ``log_dir``; None when off or
        unavailable (never raises)."""
        if self.settings.log_dir is None:
            return None
        try:
            text = self.client.request_logs(host.instance_id, tail=1000, attempts=10, interval=0.5)
        except Exception as exc:
            self.log.debug(f"vast: container log of instance {host.instance_id} unavailable: {exc}")
            return None
        path = Path(self.settings.log_dir) / f"instance-{host.instance_id}.container.log"
        try:
            write_text_atomic(path, text)
        except OSError as exc:
            self.log.warning(f"vast: could not save the container log of instance {host.instance_id}: {exc}")
            return None
        self.log.info(f"vast: container log of instance {host.instance_id} saved to {path}")
        return path

    def destroy(self, host: Host, reason: str, *, attempts: int = 6) -> bool:
        """Destroy an instance (retrying API errors), verify it is gone, close its ledger record. Idempotent."""
        from snakemake_executor_plugin_vast.client import InstanceGone

        with host.lock:
            if host.state == "destroyed":
                return True
            reason = host.end_reason or reason
            if host.conn is not None:
                host.conn.close()
            delay = self.settings.destroy_retry_delay
            last: Exception | None = None
            for _ in range(attempts):
                try:
                    self.client.destroy_instance(host.instance_id)
                    try:
                        inst = self.client.get_instance(host.instance_id)
                        if (inst.actual_status or "") not in ("", "destroyed"):
                            raise RuntimeError(f"still listed as {inst.actual_status!r} after DELETE")
                    except InstanceGone:
                        pass
                    last = None
                    break
                except Exception as exc:
                    last = exc
                    time.sleep(delay)
                    delay = min(delay * 2, 8.0)
            if last is not None:
                host.destroy_failed = True
                self.log.error(
                    f"vast: could NOT destroy instance {host.instance_id} ({last}); it may still be billing: clean up "
                    f"the label prefix {self.settings.run_label_prefix}"
                )
                return False
            now = self.clock()
            self.ledger.ended(host.instance_id, reason, when=now, preempted=host.preempted)
            host.host_keys.forget()
            self.monitor.unwatch(host.instance_id)
            with self._cond:
                host.state = "destroyed"
                self._cond.notify_all()
            self.log.info(f"vast: destroyed instance {host.instance_id} ({reason})")
        if self.persist_ledger:
            self.ledger.write()
        self.wake()
        return True
