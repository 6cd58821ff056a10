"""Host pool: rent, boot, reuse, replace and destroy Vast.ai instances for one run, with a budget and cost ledger.

Policy:

* at most ``max_instances`` instances live at once (booting ones count); a ready host with free GPUs is reused for the
  next job (one boot per host, not per job);
* offers are searched with the user's query (``vastai search offers`` grammar) plus clauses derived from the job's
  resources (GPU count, memory, disk) and ``max_price``; machines that failed us are blacklisted; an offer taken between
  search and rent (404/410) is skipped for the next one;
* readiness: poll the instance until ``running`` with an SSH endpoint, fail fast on terminal statuses and fatal
  ``status_msg`` patterns, time out after ``boot_timeout``; then connect over SSH (direct endpoint first, then proxy);
  a host that fails to boot is destroyed, its machine blacklisted, and another offer is tried;
* every instance's cost is ``dph_total × (end − rent time)`` (storage is charged from creation, so the rent time is the
  conservative start); the sum over the run is checked against ``budget`` before every rent and at every status cycle;
* every instance is labelled ``<label_prefix>-<run_id>-<n>`` so ``density-engine vast cleanup`` can find leftovers;
  at the end of the run (and a while after an ambiguous rent) the pool itself lists the instances with this run's label
  prefix and destroys what is left (a rent whose answer was lost, a rent finishing during shutdown, a resurrection);
* ``keep_instances`` keeps only healthy (``ready``) hosts at the end of a run; hosts that died or failed to boot, and
  every host once the budget is reached, are always destroyed;
* API errors while polling a booting instance mean "status unknown" until the boot deadline; whatever ends a boot
  early (an unexpected exception, shutdown) destroys the instance before the error travels on;
* the cost ledger is written (atomically) after every rent, readiness and destruction, at least every
  ``ledger_interval`` seconds while hosts live (see :meth:`HostPool.maybe_write_ledger`), and at the end;
* Vast's container log of an instance that failed to boot or died is fetched into ``log_dir`` before it is destroyed.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from snakemake_executor_plugin_vast.atomic import write_text_atomic
from snakemake_executor_plugin_vast.ssh import SshConnection, SshError, TofuHostKeys, connect_first

if TYPE_CHECKING:
    import paramiko

log = logging.getLogger(__name__)

FATAL_STATUS_PATTERNS = (
    "oci runtime create failed",
    "error response from daemon",
    "failed to pull image",
    "pull rate limit",
    "toomanyrequests",
    "manifest unknown",
    "unauthorized",
    "no space left on device",
    "unexpected eof",
)
"""Substrings of ``status_msg`` (lower-cased) after which an instance never becomes usable."""

TERMINAL_BOOT_STATUSES = frozenset({"exited", "offline", "unknown", "stopped", "error"})
"""``actual_status`` values that, while booting, mean the instance will never reach ``running``."""

DEAD_STATUSES = frozenset({"exited", "stopped", "error"})
"""``actual_status`` values of a formerly running host that mean it is gone for good (``offline``/``unknown`` may
recover and get the unreachable grace period instead)."""

RENT_ATTEMPTS = 3
"""Instances that may fail to boot for one acquisition before the job is failed (retryably)."""


class PoolError(Exception):
    """The pool could not provide a host."""


class PoolClosed(PoolError):
    """The pool is shutting down (Ctrl-C or end of run)."""


class BudgetExceeded(PoolError):
    """Renting another instance would exceed the run's budget."""


class NoOffers(PoolError):
    """No offer matches the query (or every matching offer vanished or is blacklisted)."""


class BootFailed(PoolError):
    """An instance did not become usable (timeout, fatal status, no SSH). ``logs``: fetched container logs."""

    def __init__(self, message: str, logs: list[Path] | None = None) -> None:
        super().__init__(message)
        self.logs = list(logs or [])


@dataclass(frozen=True)
class JobNeeds:
    """Resources one submission needs from a host."""

    gpus: int = 1
    mem_mb: int | None = None
    disk_gb: float | None = None


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
    label_prefix: str = "density-engine"
    boot_timeout: float = 1200.0
    unreachable_timeout: float = 300.0
    keep_instances: bool = False
    offer_limit: int = 20
    destroy_retry_delay: float = 1.0
    log_dir: Path | None = None
    """Folder for Vast container logs of hosts that failed to boot or died (None: not fetched)."""
    ledger_path: Path | None = None
    """Where the cost ledger JSON is kept up to date during the run (None: only :meth:`HostPool.write_ledger`)."""
    ledger_interval: float = 30.0
    """Most seconds between two ledger writes while instances live."""
    ambiguous_rent_checks: tuple[float, ...] = (3.0, 10.0, 30.0)
    """Delays (s) after an ambiguous rent at which the pool looks for (and destroys) an instance with its label."""

    @property
    def run_label_prefix(self) -> str:
        """Label prefix of this run's instances: ``<label_prefix>-<run_id>-``."""
        return f"{self.label_prefix}-{self.run_id}-"

    def boot_poll_interval(self) -> float:
        """How often a booting instance is polled (scaled to the boot timeout: ~60 polls, 0.2–10 s)."""
        return min(10.0, max(0.2, self.boot_timeout / 60.0))


@dataclass
class LedgerEntry:
    """Billing record of one rented instance."""

    instance_id: int
    machine_id: int | None
    gpu_name: str
    num_gpus: int
    dph_total: float
    label: str
    rented_at: float
    ready_at: float | None = None
    destroyed_at: float | None = None
    end_reason: str = ""

    @classmethod
    def for_host(cls, host: Host, rented_at: float) -> LedgerEntry:
        """A new (open) entry for a rented host."""
        return cls(
            host.instance_id, host.machine_id, host.gpu_name, host.num_gpus, host.dph_total, host.label, rented_at
        )

    def cost(self, now: float) -> float:
        """Dollars spent on this instance up to ``now`` (or its destruction)."""
        end = self.destroyed_at if self.destroyed_at is not None else now
        return self.dph_total * max(0.0, end - self.rented_at) / 3600.0


@dataclass(eq=False)
class Host:
    """A rented instance and our SSH connection to it."""

    instance_id: int
    label: str
    machine_id: int | None
    gpu_name: str
    num_gpus: int
    dph_total: float
    cpu_ram_mb: float | None
    disk_gb: float | None
    host_keys: TofuHostKeys = field(default_factory=TofuHostKeys)
    conn: SshConnection | None = None
    state: str = "booting"  # booting | ready | dead | destroyed
    used_gpus: int = 0
    gpu_assignments: dict[str, list[int]] = field(default_factory=dict)
    unreachable_since: float | None = None
    staging_failures: int = 0
    bootstrapped: str | None = None
    sources_hash: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def name(self) -> str:
        """Short description for messages."""
        where = self.conn.address if self.conn is not None else "?"
        return f"instance {self.instance_id} ({self.gpu_name} x{self.num_gpus}, machine {self.machine_id}, {where})"

    def fits(self, needs: JobNeeds) -> bool:
        """True when this host can take a job with ``needs`` now."""
        if self.state != "ready" or self.num_gpus - self.used_gpus < needs.gpus:
            return False
        if needs.mem_mb is not None and self.cpu_ram_mb is not None and self.cpu_ram_mb < needs.mem_mb:
            return False
        return not (needs.disk_gb is not None and self.disk_gb is not None and self.disk_gb < needs.disk_gb)


def offer_query_for(settings: PoolSettings, needs: JobNeeds) -> str:
    """The user's offer query plus clauses for the job's GPU count, memory and disk and the price cap."""
    clauses = [settings.offer_query.strip()] if settings.offer_query.strip() else []
    clauses.append(f"num_gpus>={max(1, needs.gpus)}")
    if needs.mem_mb:
        clauses.append(f"cpu_ram>={needs.mem_mb / 1000.0:g}")  # the query grammar takes GB (it multiplies by 1000)
    disk = max(settings.disk_gb, needs.disk_gb or 0.0)
    clauses.append(f"disk_space>={disk:g}")
    if settings.max_price is not None:
        clauses.append(f"dph_total<={settings.max_price:g}")
    return " ".join(clauses)


def onstart_script(public_key: str) -> str:
    """Onstart: no tmux on SSH logins, the run's key in authorized_keys, container env visible to SSH sessions."""
    quoted = public_key.replace("'", "")
    return (
        'touch "$HOME/.no_auto_tmux"; mkdir -p "$HOME/.ssh"; chmod 700 "$HOME/.ssh"; '
        f'echo \'{quoted}\' >> "$HOME/.ssh/authorized_keys"; chmod 600 "$HOME/.ssh/authorized_keys"; '
        "env | grep -v -E '^(CONTAINER_API_KEY|VAST_API_KEY)=' | grep _ >> /etc/environment; true"
    )


@dataclass
class _RentSlot:
    """Whether one acquisition currently holds a 'pending rent' place in the max_instances count."""

    pending: bool = True


class HostPool:
    """Thread-safe pool of rented hosts for one run (see the module docstring)."""

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
        self.ledger: list[LedgerEntry] = []
        self.blacklist: set[int] = set()
        self._cond = threading.Condition()
        self._pending_rents = 0
        self._closed = False
        self._stop = threading.Event()
        self._budget_hit = False
        self._account_key_id: int | None = None
        self._counter = 0
        self._ambiguous_rents: dict[str, float] = {}  # label -> clock time of a rent whose answer was lost
        self._ledger_lock = threading.Lock()
        self._ledger_written = 0.0

    # ---- lifecycle -------------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Warn about leftovers of earlier runs; register the run's public key on the account (new instances get it)."""
        prefix = f"{self.settings.label_prefix}-"
        try:
            leftovers = self.client.list_instances(label_prefix=prefix)
        except Exception as exc:
            self.log.debug(f"vast: could not list instances: {exc}")
            leftovers = []
        if leftovers:
            ids = ", ".join(str(inst.id) for inst in leftovers[:10])
            self.log.warning(
                f"vast: {len(leftovers)} instance(s) labelled {prefix}* from earlier runs are still live and billing "
                f"({ids}); destroy them with `density-engine vast cleanup` unless another run uses them"
            )
        try:
            self._account_key_id = self.client.add_account_ssh_key(self.public_key)
        except Exception as exc:  # attach per instance still works
            self.log.warning(
                f"vast: could not register the run's SSH key on the account ({exc}); attaching per instance"
            )

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closed

    def stop(self) -> None:
        """Stop renting and wake every waiting or booting :meth:`acquire` (they raise :class:`PoolClosed`) without
        destroying anything yet: the first step of a shutdown, so threads blocked in the pool can finish."""
        with self._cond:
            self._closed = True
            self._stop.set()
            self._cond.notify_all()

    def close(self, *, destroy: bool = True, wait_rents: float = 60.0) -> None:
        """Stop renting, wait for in-flight rents, destroy the instances, sweep by label, write the final ledger.

        With ``keep_instances`` only healthy (``ready``) hosts are kept, and none once the budget was reached;
        ``destroy=False`` keeps every live instance (nothing is destroyed or swept).
        """
        self.stop()
        with self._cond:
            deadline = time.monotonic() + wait_rents
            while self._pending_rents and time.monotonic() < deadline:
                self._cond.wait(0.2)
            hosts = list(self.hosts)
        for host in hosts:
            if host.conn is not None:
                host.conn.close()
        keep: set[int] = set()
        if not destroy:
            keep = {h.instance_id for h in hosts if h.state != "destroyed"}
        elif self.settings.keep_instances and not self.budget_reached():
            keep = {h.instance_id for h in hosts if h.state == "ready"}
        threads = [
            threading.Thread(target=self.destroy, args=(h, "end of run"))
            for h in hosts
            if h.instance_id not in keep and h.state != "destroyed"
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        if destroy:
            self.sweep(keep)
        if keep:
            self.log.warning(
                f"vast: keeping instances {sorted(keep)} (--vast-keep-instances): they keep billing until you run "
                f"`density-engine vast cleanup --label-prefix {self.settings.label_prefix}`"
            )
        if self._account_key_id is not None:
            try:
                self.client.delete_account_ssh_key(self._account_key_id)
            except Exception as exc:
                self.log.warning(f"vast: could not remove the run's SSH key from the account: {exc}")
            self._account_key_id = None
        self._write_ledger_now(final=True)

    def sweep(self, keep: set[int] | frozenset[int] = frozenset(), *, rounds: int = 3) -> list[int]:
        """Destroy every live instance labelled with this run's prefix except ``keep``: instances the pool lost track
        of (an ambiguous rent whose label lookup missed, a rent that finished after shutdown, an instance that came
        back after its DELETE). Repeats the listing up to ``rounds`` times; returns the ids destroyed."""
        destroyed: list[int] = []
        for _ in range(max(1, rounds)):
            try:
                leftovers = [
                    inst
                    for inst in self.client.list_instances(label_prefix=self.settings.run_label_prefix)
                    if inst.id not in keep
                ]
            except Exception as exc:
                self.log.warning(
                    f"vast: could not list this run's instances for the end-of-run sweep ({exc}); check with "
                    f"`density-engine vast status --run-id {self.settings.run_id}`"
                )
                return destroyed
            if not leftovers:
                return destroyed
            for inst in leftovers:
                self.log.warning(f"vast: instance {inst.id} ({inst.label}) is still live after the run: destroying it")
                if self._destroy_found(inst, "end-of-run sweep"):
                    destroyed.append(inst.id)
        return destroyed

    def _destroy_found(self, inst: Any, reason: str) -> bool:
        """Destroy an instance found by label (tracked or not); untracked ones get a ledger entry first."""
        with self._cond:
            host = next((h for h in self.hosts if h.instance_id == inst.id), None)
            if host is None:
                rented_at = self._ambiguous_rents.get(inst.label or "")
                if rented_at is None:
                    rented_at = float(inst.start_date) if inst.start_date else self.clock()
                host = Host(
                    instance_id=int(inst.id), label=inst.label or "", machine_id=inst.machine_id,
                    gpu_name=inst.gpu_name or "?", num_gpus=int(inst.num_gpus or 1),
                    dph_total=float(inst.dph_total or 0.0), cpu_ram_mb=None, disk_gb=None, state="dead",
                )  # fmt: skip
                self.hosts.append(host)
                self.ledger.append(LedgerEntry.for_host(host, rented_at))
            else:  # a tracked host that is still (or, after its DELETE, again: a resurrection) live
                host.state = "dead"
        return self.destroy(host, reason)

    # ---- budget and ledger -----------------------------------------------------------------------------------------

    def spent(self, now: float | None = None) -> float:
        """Dollars spent by this run so far (every instance it rented)."""
        now = self.clock() if now is None else now
        with self._cond:
            return sum(entry.cost(now) for entry in self.ledger)

    def budget_reached(self) -> bool:
        """True once the run's spend reached ``budget`` (sticky)."""
        if self.settings.budget is None:
            return False
        if not self._budget_hit and self.spent() >= self.settings.budget:
            self._budget_hit = True
        return self._budget_hit

    def ledger_summary(self, *, final: bool = False) -> dict[str, Any]:
        """The cost ledger as a JSON-able dict (format: ``docs/vast.md``, "The cost ledger")."""
        now = self.clock()
        with self._cond:
            entries = [dict(asdict(e), cost_usd=round(e.cost(now), 9)) for e in self.ledger]
        return {
            "run_id": self.settings.run_id,
            "written_at": now,
            "final": final,
            "budget_usd": self.settings.budget,
            "total_cost_usd": round(sum(e["cost_usd"] for e in entries), 9),
            "live_instances": sum(1 for e in entries if e["destroyed_at"] is None),
            "instances": entries,
        }

    def write_ledger(self, path: str | os.PathLike[str], *, final: bool = False) -> Path:
        """Write the ledger atomically as JSON; return the path."""
        path = Path(path)
        with self._ledger_lock:  # one writer at a time, so an older snapshot never replaces a newer one
            write_text_atomic(path, json.dumps(self.ledger_summary(final=final), indent=2) + "\n")
            self._ledger_written = time.monotonic()
        return path

    def _write_ledger_now(self, *, final: bool = False) -> None:
        """Update ``settings.ledger_path`` (if set); a write failure is logged, never raised."""
        if self.settings.ledger_path is None:
            return
        try:
            self.write_ledger(self.settings.ledger_path, final=final)
        except OSError as exc:
            self.log.warning(f"vast: could not write the cost ledger {self.settings.ledger_path}: {exc}")

    def maybe_write_ledger(self) -> None:
        """Rewrite the ledger when ``ledger_interval`` passed since the last write (called every status cycle)."""
        if time.monotonic() - self._ledger_written >= self.settings.ledger_interval:
            self._write_ledger_now()

    def format_ledger(self) -> str:
        """Human-readable ledger table."""
        summary = self.ledger_summary()
        lines = [f"Vast cost ledger of run {summary['run_id']}:"]
        for e in summary["instances"]:
            end = e["destroyed_at"] or summary["written_at"]
            lines.append(
                f"  instance {e['instance_id']:>10}  {e['gpu_name']} x{e['num_gpus']}  ${e['dph_total']:.4f}/h  "
                f"{(end - e['rented_at']) / 60:7.2f} min  ${e['cost_usd']:.4f}  ({e['end_reason'] or 'live'})"
            )
        budget = f" of budget ${summary['budget_usd']:g}" if summary["budget_usd"] is not None else ""
        lines.append(f"  total: ${summary['total_cost_usd']:.4f}{budget} over {len(summary['instances'])} instance(s)")
        return "\n".join(lines)

    # ---- acquisition -----------------------------------------------------------------------------------------------

    def acquire(self, needs: JobNeeds) -> Host:
        """Return a ready host with ``needs.gpus`` GPUs reserved for the caller: reuse one, or rent and boot one.

        Blocks while all ``max_instances`` hosts are busy. Raises :class:`PoolClosed`, :class:`BudgetExceeded`,
        :class:`NoOffers` or :class:`BootFailed`.
        """
        with self._cond:
            while True:
                if self._closed:
                    raise PoolClosed("the vast executor is shutting down")
                if self.budget_reached():
                    raise BudgetExceeded(self.budget_message())
                for host in self.hosts:
                    if host.fits(needs):
                        host.used_gpus += needs.gpus
                        return host
                live = sum(1 for h in self.hosts if h.state in ("booting", "ready")) + self._pending_rents
                if live < self.settings.max_instances:
                    self._pending_rents += 1
                    break
                self._cond.wait(0.5)
        slot = _RentSlot()
        try:
            return self._rent_ready_host(needs, slot)
        finally:
            with self._cond:
                if slot.pending:
                    self._pending_rents -= 1
                self._cond.notify_all()

    def assign_gpus(self, host: Host, key: str, count: int) -> list[int]:
        """Pick ``count`` GPU indices of the host for job ``key`` (within the GPUs reserved by :meth:`acquire`), so
        jobs sharing a multi-GPU host get disjoint ``CUDA_VISIBLE_DEVICES``."""
        with self._cond:
            taken = {i for ids in host.gpu_assignments.values() for i in ids}
            free = [i for i in range(max(host.num_gpus, 1)) if i not in taken]
            ids = free[: max(1, count)]
            host.gpu_assignments[key] = ids
            return ids

    def release(self, host: Host, gpus: int, key: str | None = None) -> None:
        """Give back GPUs reserved by :meth:`acquire` (and the indices assigned to job ``key``)."""
        with self._cond:
            host.used_gpus = max(0, host.used_gpus - gpus)
            if key is not None:
                host.gpu_assignments.pop(key, None)
            self._cond.notify_all()

    def budget_message(self) -> str:
        """The message shown when the budget is reached."""
        return (
            f"Vast budget reached: this run spent ${self.spent():.4f} of its --vast-budget ${self.settings.budget:g}; "
            "no more instances are rented and the remaining jobs are stopped. Raise --vast-budget to continue."
        )

    def _next_label(self) -> str:
        with self._cond:
            self._counter += 1
            return f"{self.settings.label_prefix}-{self.settings.run_id}-{self._counter}"

    def _rent_ready_host(self, needs: JobNeeds, slot: _RentSlot) -> Host:
        failures: list[str] = []
        logs: list[Path] = []
        for _ in range(RENT_ATTEMPTS):
            with self._cond:
                if not slot.pending:
                    self._pending_rents += 1
                    slot.pending = True
            host = self._rent(needs, slot)
            booting_since = time.monotonic()
            try:
                self._wait_ready(host)
            except (BootFailed, SshError) as exc:
                if self._closed:
                    self._discard(host, "shutting down")
                    raise PoolClosed("the vast executor is shutting down") from exc
                failures.append(f"instance {host.instance_id}: {exc}")
                self.log.warning(f"vast: {host.name} did not become usable: {exc}; destroying it and renting another")
                log_path = self.fetch_container_log(host)
                if log_path is not None:
                    logs.append(log_path)
                self._discard(host, f"boot failed: {exc}", blacklist=True)
                continue
            except BaseException as exc:  # shutdown, or anything unexpected: never leave a booting instance behind
                why = "shutting down" if isinstance(exc, PoolClosed) else f"boot aborted: {type(exc).__name__}: {exc}"
                self._discard(host, why)
                raise
            ready_after = time.monotonic() - booting_since
            self.log.info(f"vast: {host.name} reachable over SSH {ready_after:.1f} s after the rent")
            with self._cond:
                host.state = "ready"
                host.used_gpus += needs.gpus
                for entry in self.ledger:
                    if entry.instance_id == host.instance_id:
                        entry.ready_at = self.clock()
                self._cond.notify_all()
            self._write_ledger_now()
            return host
        raise BootFailed(f"{RENT_ATTEMPTS} instances failed to boot: " + "; ".join(failures), logs)

    def _discard(self, host: Host, reason: str, *, blacklist: bool = False) -> None:
        """Take a host that never became ready out of the count (state ``dead``) and destroy it."""
        with self._cond:
            if host.state != "destroyed":
                host.state = "dead"
            if blacklist and host.machine_id is not None:
                self.blacklist.add(host.machine_id)
            self._cond.notify_all()
        self.destroy(host, reason)

    def _rent(self, needs: JobNeeds, slot: _RentSlot) -> Host:
        from snakemake_executor_plugin_vast.client import AuthError, OfferUnavailable, RateLimited, VastError

        query = offer_query_for(self.settings, needs)
        disk_gb = float(max(self.settings.disk_gb, needs.disk_gb or 0.0))
        tried: set[int] = set()
        for _search in range(2):  # re-search once when every offer of the first list vanished
            if self._closed:
                raise PoolClosed("the vast executor is shutting down")
            # the rented disk size makes offers' dph_total include the storage we pay for
            offers = self.client.search_offers(
                query, order="dph_total", limit=self.settings.offer_limit, disk_gb=disk_gb
            )
            candidates = [o for o in offers if o.machine_id not in self.blacklist and o.id not in tried]
            if not candidates:
                break
            for offer in candidates:
                if self._closed:
                    raise PoolClosed("the vast executor is shutting down")
                if self.budget_reached():
                    raise BudgetExceeded(self.budget_message())
                tried.add(offer.id)
                label = self._next_label()
                rent_started = self.clock()
                try:
                    instance_id = self.client.create_instance(
                        offer.id,
                        image=self.settings.image,
                        disk_gb=disk_gb,
                        label=label,
                        onstart=onstart_script(self.public_key),
                    )
                except OfferUnavailable as exc:
                    self.log.info(f"vast: offer {offer.id} vanished before renting ({exc}); trying the next one")
                    continue
                except (AuthError, RateLimited):
                    raise  # certainly nothing rented
                except VastError as exc:
                    if exc.status is None or exc.status >= 500:  # the rent may have happened after all
                        self._watch_ambiguous_rent(label, rent_started)
                    raise
                host = Host(
                    instance_id=int(instance_id),
                    label=label,
                    machine_id=offer.machine_id,
                    gpu_name=offer.gpu_name,
                    num_gpus=int(offer.num_gpus or 1),
                    dph_total=float(offer.dph_total or 0.0),
                    cpu_ram_mb=offer.cpu_ram,
                    disk_gb=offer.disk_space,
                )
                with self._cond:
                    self.hosts.append(host)  # now counted as a live (booting) host instead of a pending rent
                    if slot.pending:
                        self._pending_rents -= 1
                        slot.pending = False
                    self.ledger.append(LedgerEntry.for_host(host, self.clock()))
                    closed = self._closed
                self._write_ledger_now()
                self.log.info(
                    f"vast: rented instance {host.instance_id} ({host.gpu_name} x{host.num_gpus}, "
                    f"${host.dph_total:.3f}/h, machine {host.machine_id}) label {label}"
                )
                if closed:
                    self.destroy(host, "rented during shutdown")
                    raise PoolClosed("the vast executor is shutting down")
                try:
                    self.client.attach_ssh_key(host.instance_id, self.public_key)
                except Exception as exc:  # the account key and onstart also install it
                    self.log.debug(f"vast: attaching the SSH key to instance {host.instance_id} failed: {exc}")
                return host
        raise NoOffers(f"no Vast offer available for query {query!r} (blacklisted machines: {sorted(self.blacklist)})")

    def _watch_ambiguous_rent(self, label: str, rented_at: float) -> None:
        """A rent ended ambiguously (5xx, lost connection) and the client's label lookup found nothing: the instance may
        still appear. Look for the label a few times in the background and destroy what turns up (the end-of-run
        sweep covers whatever appears later still)."""
        with self._cond:
            self._ambiguous_rents[label] = rented_at
        self.log.warning(f"vast: the rent labelled {label} ended ambiguously; destroying the instance if it appears")

        def watch() -> None:
            for delay in self.settings.ambiguous_rent_checks:
                if self._stop.wait(delay):
                    return  # shutting down: close() sweeps by label
                try:
                    found = [i for i in self.client.list_instances(label_prefix=label) if i.label == label]
                except Exception as exc:
                    self.log.debug(f"vast: looking up label {label} failed: {exc}")
                    continue
                for inst in found:
                    self.log.warning(f"vast: the ambiguous rent {label} did create instance {inst.id}: destroying it")
                    self._destroy_found(inst, "ambiguous rent")
                if found:
                    return

        threading.Thread(target=watch, name=f"vast-ambiguous-{label}", daemon=True).start()

    def _sleep(self, seconds: float) -> None:
        if self._stop.wait(seconds):
            raise PoolClosed("the vast executor is shutting down")

    def _wait_ready(self, host: Host) -> None:
        from snakemake_executor_plugin_vast.client import InstanceGone, VastError

        start = time.monotonic()
        deadline = start + self.settings.boot_timeout
        lag_grace = min(60.0, self.settings.boot_timeout / 4)
        poll = self.settings.boot_poll_interval()
        while True:
            if self._closed:
                raise PoolClosed("the vast executor is shutting down")
            try:
                inst = self.client.get_instance(host.instance_id)
            except InstanceGone as exc:
                if time.monotonic() - start > lag_grace:
                    raise BootFailed(f"instance {host.instance_id} disappeared while booting") from exc
                inst = None
            except VastError as exc:  # 429 after all retries, 5xx, network: the status is unknown, not bad
                self.log.debug(f"vast: status of booting instance {host.instance_id} unavailable: {exc}")
                inst = None
            if inst is not None:
                status = (inst.actual_status or "").lower()
                message = (inst.status_msg or "").lower()
                fatal = next((p for p in FATAL_STATUS_PATTERNS if p in message), None)
                if fatal:
                    raise BootFailed(f"fatal status message {inst.status_msg!r}")
                if status in TERMINAL_BOOT_STATUSES:
                    raise BootFailed(f"instance went to status {status!r} while booting ({inst.status_msg!r})")
                if status == "running" and inst.endpoints:
                    break
            if time.monotonic() + poll > deadline:
                raise BootFailed(f"not running after the boot timeout of {self.settings.boot_timeout:.0f} s")
            self._sleep(poll)
        endpoints = [(e.host, int(e.port)) for e in inst.endpoints]
        host.conn = self._connect(endpoints, host, deadline)

    def _connect(self, endpoints: list[tuple[str, int]], host: Host, deadline: float) -> SshConnection:
        if self._closed:
            raise PoolClosed("the vast executor is shutting down")
        return connect_first(
            endpoints,
            self.settings.ssh_user,
            self.ssh_key,
            host.host_keys,
            deadline=max(deadline, time.monotonic() + 5.0),
            connect_timeout=min(10.0, max(2.0, self.settings.boot_timeout / 10)),
            retry_interval=min(2.0, self.settings.boot_poll_interval()),
            stop=self._stop,
        )

    # ---- health and teardown ---------------------------------------------------------------------------------------

    def instance_status(self, host: Host) -> str:
        """``actual_status`` of a host's instance: a status string, ``"gone"``, or ``"?"`` when the API fails."""
        from snakemake_executor_plugin_vast.client import InstanceGone

        try:
            inst = self.client.get_instance(host.instance_id)
        except InstanceGone:
            return "gone"
        except Exception as exc:
            self.log.debug(f"vast: status of instance {host.instance_id} unavailable: {exc}")
            return "?"
        return (inst.actual_status or "?").lower()

    def retire(self, host: Host, reason: str, *, blacklist: bool = True) -> None:
        """Mark a host dead (no new jobs), blacklist its machine and destroy it in the background."""
        with self._cond:
            if host.state in ("dead", "destroyed"):
                return
            host.state = "dead"
            if blacklist and host.machine_id is not None:
                self.blacklist.add(host.machine_id)
            self._cond.notify_all()
        self.log.warning(f"vast: retiring {host.name}: {reason}")
        if host.conn is not None:
            host.conn.close()
        # always destroyed, also with keep_instances: a dead host is useless and a budget stop must stop the billing
        threading.Thread(target=self.destroy, args=(host, reason), daemon=True).start()

    def fetch_container_log(self, host: Host) -> Path | None:
        """Save Vast's container log of ``host`` (before it is destroyed) into ``log_dir``; the path, or None when
        logs are off or unavailable (never raises)."""
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
        """Destroy an instance (retrying API errors), verify it is gone, close the ledger entry. Idempotent."""
        from snakemake_executor_plugin_vast.client import InstanceGone

        with host.lock:
            if host.state == "destroyed":
                return True
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
                self.log.error(
                    f"vast: could NOT destroy instance {host.instance_id} ({last}); it may still be billing: run "
                    f"`density-engine vast cleanup --label-prefix {self.settings.label_prefix} "
                    f"--run-id {self.settings.run_id}`"
                )
                return False
            host.state = "destroyed"
            host.host_keys.forget()
            now = self.clock()
            with self._cond:
                for entry in self.ledger:
                    if entry.instance_id == host.instance_id and entry.destroyed_at is None:
                        entry.destroyed_at = now
                        entry.end_reason = reason
                self._cond.notify_all()
            self.log.info(f"vast: destroyed instance {host.instance_id} ({reason})")
        self._write_ledger_now()
        return True
