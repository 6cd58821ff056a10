"""A fake Vast.ai REST API on 127.0.0.1 whose instances are real sshd processes (reference vast-api.md §5.2-5.3).

:class:`FakeVast` holds the state (offer catalogue, instances, account SSH keys, billing ledger, request log, failure
injection) behind one lock and serves it through a real ``ThreadingHTTPServer``. Instances follow Vast's state
machine, driven by an injectable clock and a background ticker::

    rent → [null] --t_null--> [loading] --t_loading--> [running] (onstart runs, then sshd starts after ssh_delay)
             │ stuck_in="null"    │ stuck_in="loading"       │ die_after → offline|unknown|exited (sshd + jobs killed),
             │ fatal_status="created"+status_msg …           │ recover_after → running again (sshd restarted)
    DELETE → gone: GET by id answers {"instances": null}; the v1 list omits it; a second DELETE answers 404.

Each instance is an :class:`~tests.fake_vast.sshd.SshdHost` listening on two loopback ports (``ports["22/tcp"]`` =
direct, ``ssh_host:ssh_port`` = proxy) with a private ``/workspace``; its ``authorized_keys`` gets the account keys
present at rent time plus keys attached later. Billing: storage from rent, GPU from ``running``, until destroy.

Python control API (tests): :meth:`FakeVast.add_offer`, :meth:`vanish_offer`, :meth:`set_offer_behaviour`,
:meth:`queue_rent_behaviour`, :meth:`kill_instance`, :meth:`rate_limit`, :meth:`fail_deletes`, :meth:`cost`,
:meth:`live_instances`, :meth:`requests_to` and the ``requests`` log.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import json
import logging
import os
import re
import secrets
import shlex
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.fake_vast.sshd import WORKSPACE, SshdHost, free_port

logger = logging.getLogger(__name__)

SCOPE_KEYS = frozenset(
    {"type", "order", "limit", "allocated_storage", "disable_bundling", "external", "datacenter", "chunked"}
    | {"georegion"}
)
LIST_FILTERABLE = frozenset({"actual_status", "label", "id", "gpu_name", "verification", "machine_id"})
DEFAULT_IMAGE_MSG = "success, running {image}/ssh"


class ManualClock:
    """A clock for tests: ``clock()`` returns the current value, ``advance(s)`` moves it forward."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds


@dataclass
class Behaviour:
    """How one rented instance misbehaves (all times in clock seconds)."""

    reads_lag: float = 0.0
    """``GET /instances/{id}/`` answers ``{"instances": null}`` for this long after the rent."""
    list_lag: float = 0.0
    """``GET /api/v1/instances/`` omits the instance for this long after the rent (eventual consistency of the list)."""
    stuck_in: str | None = None
    """``"null"`` or ``"loading"``: the instance never gets further."""
    fatal_status: str | None = None
    """``"created"``, ``"loading"`` or ``"exited"``: after ``t_null`` the instance goes there with the message below."""
    fatal_status_msg: str = "Error response from daemon: failed to create task: OCI runtime create failed"
    ssh_delay: float = 0.0
    """sshd starts only this long after ``running``."""
    die_after: float | None = None
    """Seconds after ``running``: sshd and every process on the host are killed, status becomes ``die_status``."""
    die_status: str = "offline"
    recover_after: float | None = None
    """Seconds after dying: back to ``running`` with sshd restarted (the jobs stay dead)."""
    key_attach_delay: float = 0.0
    """Keys attached with ``POST /instances/{id}/ssh/`` reach ``authorized_keys`` only after this long."""
    workspace_kb: int | None = None
    """The host's /workspace is a tmpfs of this many KiB (a host with a full disk that still reports running)."""
    host_options: dict[str, Any] = field(default_factory=dict)
    """Extra :class:`SshdHost` options (an "image": ``image_binds``, ``masks``, ``session_path``, ``init_path``)."""


@dataclass
class FakeOffer:
    """One offer of the catalogue; ``row`` is what search returns."""

    row: dict[str, Any]
    rented: bool = False
    vanish_status: int | None = None
    behaviour: Behaviour | None = None
    available_from: float | None = None
    """Clock time before which the offer is not on the market (it appears later)."""
    after_first_rent: float | None = None
    """The offer reaches the market this many seconds after the account's first rent (a market that changes while
    a run waits)."""
    gone: bool = False
    """Taken by someone else for good: never found or rentable again."""

    @property
    def id(self) -> int:
        return int(self.row["id"])


@dataclass
class FakeInstance:
    """One rented instance with its billing record and backing sshd."""

    id: int
    offer: FakeOffer
    label: str | None
    image: str
    disk: float
    env: dict[str, Any]
    onstart: str | None
    runtype: str
    dph_total: float
    storage_dph: float
    behaviour: Behaviour
    sshd: SshdHost
    direct_port: int
    proxy_port: int
    rented_at: float
    start_epoch: float
    status: str | None = None
    status_msg: str | None = None
    intended_status: str = "running"
    running_at: float | None = None
    destroyed_at: float | None = None
    died_at: float | None = None
    billed_gpu_seconds: float = 0.0
    boot_started: bool = False
    logs_polls: int = 0
    pending_keys: list[tuple[float, int, str]] = field(default_factory=list)
    attached_keys: dict[int, str] = field(default_factory=dict)
    onstart_process: subprocess.Popen[bytes] | None = None
    resurrect_after: float | None = None
    bid: float | None = None
    """The bid ($/h) of an interruptible instance (None: on-demand)."""
    preempted_at: float | None = None

    @property
    def live(self) -> bool:
        return self.destroyed_at is None

    def gpu_seconds(self, now: float) -> float:
        """Seconds billed at the GPU rate: from each ``running`` start until stop/destroy."""
        extra = 0.0
        if self.running_at is not None:
            end = self.destroyed_at if self.destroyed_at is not None else now
            extra = max(0.0, end - self.running_at)
        return self.billed_gpu_seconds + extra

    def cost(self, now: float) -> float:
        """Dollars so far: storage from rent, GPU from running (per Vast's billing rules)."""
        end = self.destroyed_at if self.destroyed_at is not None else now
        storage = self.storage_dph * max(0.0, end - self.rented_at) / 3600.0
        gpu = (self.dph_total - self.storage_dph) * self.gpu_seconds(now) / 3600.0
        return storage + gpu


@dataclass
class RateRule:
    """429 injection for one endpoint (method + path template)."""

    min_interval: float = 0.0
    first_n: int = 0
    every_k: int = 0
    body: str = "plain"  # plain | detail | json | quota
    retry_after: float | None = None
    count: int = 0
    last: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class RecordedRequest:
    """One request the fake answered."""

    time: float
    method: str
    path: str
    template: str
    query: dict[str, list[str]]
    body: Any
    status: int
    authorized: bool


def default_offers() -> list[dict[str, Any]]:
    """A small catalogue: distinct machines, GPUs and prices (cheapest first by dph_total)."""
    base = {
        "verified": True, "rentable": True, "rented": False, "external": False, "reliability": 0.995,
        "reliability2": 0.995, "direct_port_count": 10, "cuda_max_good": 12.4, "inet_down": 900.0, "inet_up": 600.0,
        "disk_space": 200.0, "cpu_cores": 32, "cpu_cores_effective": 16.0, "cpu_ram": 64000.0, "storage_cost": 0.1,
        "compute_cap": 890, "geolocation": "Oslo, NO", "hosting_type": 0, "datacenter": False,
    }  # fmt: skip
    rows = [
        {"gpu_name": "RTX 3090", "num_gpus": 1, "gpu_ram": 24576.0, "dph_base": 0.20, "machine_id": 101},
        {"gpu_name": "RTX 4090", "num_gpus": 1, "gpu_ram": 24564.0, "dph_base": 0.35, "machine_id": 102},
        {"gpu_name": "RTX 4090", "num_gpus": 1, "gpu_ram": 24564.0, "dph_base": 0.40, "machine_id": 103,
         "geolocation": "Texas, US"},
        {"gpu_name": "RTX 4090", "num_gpus": 2, "gpu_ram": 24564.0, "dph_base": 0.75, "machine_id": 104},
        {"gpu_name": "A100 SXM4", "num_gpus": 1, "gpu_ram": 81920.0, "dph_base": 1.10, "machine_id": 105,
         "reliability": 0.97, "reliability2": 0.97, "cuda_max_good": 12.8},
        {"gpu_name": "H100 SXM", "num_gpus": 1, "gpu_ram": 81559.0, "dph_base": 2.00, "machine_id": 106,
         "verified": False, "direct_port_count": 0},
    ]  # fmt: skip
    return [
        {**base, **row, "host_id": 9000 + row["machine_id"], "min_bid": round(row["dph_base"] * 0.5, 4)} for row in rows
    ]


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _compare(actual: Any, op: str, wanted: Any, field_name: str = "") -> bool:
    """One ``field: {op: value}`` test with Vast's loose typing (numbers may arrive as strings)."""
    if op in ("in", "notin"):
        items = wanted if isinstance(wanted, list) else [wanted]
        found = any(_compare(actual, "eq", item, field_name) for item in items)
        return found if op == "in" else not found
    if isinstance(actual, bool) or isinstance(wanted, bool) or wanted is None:
        if op == "eq":
            return actual == wanted
        if op == "neq":
            return actual != wanted
        return False
    left, right = _number(actual), _number(wanted)
    if left is not None and right is not None:
        a, b = left, right
    else:
        a, b = str(actual).strip().lower(), str(wanted).strip().lower()
        if field_name == "geolocation" and op in ("eq", "neq"):
            matched = a == b or a.rsplit(",", 1)[-1].strip() == b
            return matched if op == "eq" else not matched
    return {
        "eq": a == b, "neq": a != b, "gt": a > b, "gte": a >= b, "lt": a < b, "lte": a <= b,  # type: ignore[operator]
    }.get(op, False)  # fmt: skip


def _template(path: str) -> str:
    path = path if path.endswith("/") else path + "/"
    return re.sub(r"/\d+(?=/)", "/{id}", path)


class FakeVast:
    """State and behaviour of the fake Vast.ai account (thread-safe). See the module docstring."""

    def __init__(
        self,
        root: Path,
        *,
        api_key: str | None = None,
        offers: list[dict[str, Any]] | None = None,
        clock: Callable[[], float] = time.monotonic,
        t_null: float = 0.2,
        t_loading: float = 0.5,
        credit: float = 100.0,
        isolate: bool | None = None,
        tick_interval: float = 0.02,
        hide_paths: Iterable[Path] = (),
    ) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.api_key = api_key or "fake-vast-key-" + secrets.token_hex(12)
        self.clock = clock
        self.t_null = t_null
        self.t_loading = t_loading
        self.credit = credit
        self.isolate = isolate
        self.tick_interval = tick_interval
        self.hide_paths = tuple(hide_paths)
        self.lock = threading.RLock()
        self.offers: dict[int, FakeOffer] = {}
        self.instances: dict[int, FakeInstance] = {}
        self.account_keys: dict[int, dict[str, Any]] = {}
        self.requests: list[RecordedRequest] = []
        self.rate_rules: dict[tuple[str, str], RateRule] = {}
        self.delete_failures: dict[int | None, tuple[int, int]] = {}
        self.rent_answer_failures: tuple[int, int] = (0, 0)
        self.by_id_mode = "dict"  # dict | list | gone_as_404 | omit_ports
        self.logs_404_polls = 1
        self.accept_query_key = False
        self.default_behaviour = Behaviour()
        self._rent_queue: deque[Behaviour] = deque()
        self._first_rent_at: float | None = None
        self._next_instance_id = 31_000_000
        self._next_offer_id = 5_000_000
        self._next_key_id = 700
        self._log_tokens: dict[str, int] = {}
        self._epoch0, self._clock0 = time.time(), clock()
        self._server: ThreadingHTTPServer | None = None
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        for row in default_offers() if offers is None else offers:
            self.add_offer(**row)

    # ------------------------------------------------------------------------------------------ test control
    def add_offer(self, **row: Any) -> int:
        """Add an offer (fields as in search results); returns its id."""
        with self.lock:
            offer_id = int(row.pop("id", 0)) or self._next_offer_id
            self._next_offer_id = max(self._next_offer_id, offer_id) + 1
            row = {"id": offer_id, "ask_contract_id": offer_id, "machine_id": offer_id, **row}
            self.offers[offer_id] = FakeOffer(row)
            return offer_id

    def add_offer_later(self, delay: float, **row: Any) -> int:
        """Add an offer that reaches the market ``delay`` clock seconds from now."""
        offer_id = self.add_offer(**row)
        with self.lock:
            self.offers[offer_id].available_from = self.clock() + delay
        return offer_id

    def add_offer_after_first_rent(self, delay: float, **row: Any) -> int:
        """Add an offer that reaches the market ``delay`` clock seconds after the account's first rent."""
        offer_id = self.add_offer(**row)
        with self.lock:
            self.offers[offer_id].after_first_rent = delay
        return offer_id

    def _on_market(self, offer: FakeOffer, now: float) -> bool:
        if offer.available_from is not None and now < offer.available_from:
            return False
        if offer.after_first_rent is not None:
            return self._first_rent_at is not None and now >= self._first_rent_at + offer.after_first_rent
        return True

    def take_offer(self, offer_id: int) -> None:
        """Someone else rents this offer for good: gone from searches, 404 on rent."""
        with self.lock:
            self.offers[offer_id].gone = True

    def preempt(self, instance_id: int) -> None:
        """Outbid: the interruptible instance is stopped (sshd and jobs killed, GPU billing stops, storage goes on)."""
        with self.lock:
            inst = self.instances[instance_id]
            now = self.clock()
            inst.billed_gpu_seconds = inst.gpu_seconds(now)
            inst.running_at = None
            inst.intended_status = "stopped"
            inst.preempted_at = now
            self._kill_host(inst)

    def offer_ids(self) -> list[int]:
        """All offer ids, in catalogue order."""
        with self.lock:
            return list(self.offers)

    def vanish_offer(self, offer_id: int, status: int = 404) -> None:
        """The next rent of this offer answers 404 (3603) or 410 (3907); the offer then disappears from searches."""
        if status not in (404, 410):
            raise ValueError("vanish status must be 404 or 410")
        with self.lock:
            self.offers[offer_id].vanish_status = status

    def set_offer_behaviour(self, offer_id: int, **behaviour: Any) -> None:
        """Every instance rented from this offer behaves like ``Behaviour(**behaviour)``."""
        with self.lock:
            self.offers[offer_id].behaviour = Behaviour(**behaviour)

    def queue_rent_behaviour(self, **behaviour: Any) -> None:
        """The next successful rent (FIFO over calls) behaves like ``Behaviour(**behaviour)``."""
        with self.lock:
            self._rent_queue.append(Behaviour(**behaviour))

    def rate_limit(
        self,
        method: str,
        template: str,
        *,
        min_interval: float = 0.0,
        first_n: int = 0,
        every_k: int = 0,
        body: str = "plain",
        retry_after: float | None = None,
    ) -> None:
        """429 for ``method template`` (e.g. ``"GET", "/api/v0/instances/{id}/"``): requests closer than
        ``min_interval`` (per key), the first ``first_n`` requests, and/or every ``every_k``-th request."""
        with self.lock:
            self.rate_rules[(method.upper(), _template(template))] = RateRule(
                min_interval, first_n, every_k, body, retry_after
            )

    def fail_deletes(self, count: int, status: int = 502, instance_id: int | None = None) -> None:
        """The next ``count`` DELETEs (of ``instance_id``, or of any instance) answer ``status`` and do nothing."""
        with self.lock:
            self.delete_failures[instance_id] = (count, status)

    def resurrect_on_delete(self, instance_id: int, after: float = 0.0) -> None:
        """The next DELETE of this instance succeeds, but the row comes back (live, billing) ``after`` s later."""
        with self.lock:
            self.instances[instance_id].resurrect_after = after

    def fail_rent_answers(self, count: int, status: int = 502) -> None:
        """The next ``count`` successful rents create the instance but answer ``status`` (an ambiguous failure)."""
        with self.lock:
            self.rent_answer_failures = (count, status)

    def kill_instance(self, instance_id: int, status: str = "offline") -> None:
        """The host dies now: sshd and every process on it are killed, ``actual_status`` becomes ``status``."""
        with self.lock:
            inst = self.instances[instance_id]
            self._die(inst, status)

    def instance(self, instance_id: int) -> FakeInstance:
        """The record of an instance (also destroyed ones)."""
        with self.lock:
            return self.instances[instance_id]

    def live_instances(self, label_prefix: str | None = None) -> list[FakeInstance]:
        """Instances not destroyed (billing still running), optionally only labels with this prefix."""
        with self.lock:
            return [
                inst
                for inst in self.instances.values()
                if inst.live and (label_prefix is None or (inst.label or "").startswith(label_prefix))
            ]

    def cost(self, instance_id: int | None = None) -> float:
        """Total dollars billed so far (all instances, or one)."""
        with self.lock:
            now = self.clock()
            chosen = [self.instances[instance_id]] if instance_id is not None else list(self.instances.values())
            return sum(inst.cost(now) for inst in chosen)

    def ledger(self) -> list[dict[str, Any]]:
        """Billing record per instance: id, label, dph_total, rented_at, running_at, destroyed_at, cost."""
        with self.lock:
            now = self.clock()
            return [
                {
                    "id": inst.id,
                    "label": inst.label,
                    "machine_id": inst.offer.row.get("machine_id"),
                    "dph_total": inst.dph_total,
                    "rented_at": inst.rented_at,
                    "running_at": inst.running_at,
                    "destroyed_at": inst.destroyed_at,
                    "cost": inst.cost(now),
                }
                for inst in self.instances.values()
            ]

    def requests_to(self, method: str, template: str) -> list[RecordedRequest]:
        """Recorded requests to one endpoint template (e.g. ``"DELETE", "/api/v0/instances/{id}/"``)."""
        key = (method.upper(), _template(template))
        with self.lock:
            return [req for req in self.requests if (req.method, req.template) == key]

    # ----------------------------------------------------------------------------------------- lifecycle
    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("FakeVast is not serving; call start()")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> str:
        """Serve on 127.0.0.1:<free port> and start the state-machine ticker; returns the base URL."""
        handler = type("Handler", (_Handler,), {"fake": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._stop.clear()
        server = self._server
        for target in (lambda: server.serve_forever(poll_interval=0.05), self._tick_loop):
            thread = threading.Thread(target=target, daemon=True, name="fake-vast")
            thread.start()
            self._threads.append(thread)
        return self.base_url

    def close(self) -> None:
        """Stop serving and kill every instance's sshd and onstart (destroys nothing in the ledger)."""
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads.clear()
        with self.lock:
            for inst in self.instances.values():
                self._kill_host(inst)

    def __enter__(self) -> FakeVast:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _tick_loop(self) -> None:
        while not self._stop.wait(self.tick_interval):
            try:
                self.tick()
            except Exception:  # the ticker must survive anything; tests see the effect
                logger.exception("fake vast ticker")

    def tick(self) -> None:
        """Advance every instance's state machine to the current clock time."""
        with self.lock:
            for inst in self.instances.values():
                self._advance(inst)

    # --------------------------------------------------------------------------------------- state machine
    def _epoch(self, t: float) -> float:
        return self._epoch0 + (t - self._clock0)

    def _advance(self, inst: FakeInstance) -> None:
        now = self.clock()
        if not inst.live and inst.resurrect_after is not None and now - inst.destroyed_at >= inst.resurrect_after:
            inst.destroyed_at, inst.resurrect_after, inst.intended_status = None, None, "running"
            inst.offer.rented = True  # bills as if never destroyed (the real-world risk this simulates)
            if inst.status == "running":
                inst.running_at = now
                inst.boot_started = False
                self._boot(inst, run_onstart=False)
        if not inst.live or inst.intended_status == "stopped":
            return
        age = now - inst.rented_at
        b = inst.behaviour
        for pending in [p for p in inst.pending_keys if p[0] <= now]:
            inst.pending_keys.remove(pending)
            inst.sshd.add_authorized_key(pending[2])
        if inst.status is None:
            if b.stuck_in == "null" or age < self.t_null:
                return
            if b.fatal_status:
                inst.status, inst.status_msg = b.fatal_status, b.fatal_status_msg
                return
            inst.status, inst.status_msg = "loading", f"Pulling image {inst.image}"
        if inst.status == "loading" and b.fatal_status is None:
            if b.stuck_in == "loading" or age < self.t_null + self.t_loading:
                return
            inst.status = "running"
            inst.status_msg = DEFAULT_IMAGE_MSG.format(image=inst.image)
            inst.running_at = now
            self._boot(inst)
        dying = inst.status == "running" and b.die_after is not None and inst.died_at is None
        if dying and inst.running_at is not None and now - inst.running_at >= b.die_after:  # type: ignore[operator]
            self._die(inst, b.die_status)
        recovering = inst.died_at is not None and inst.status != "running" and b.recover_after is not None
        if recovering and now - inst.died_at >= b.recover_after:  # type: ignore[operator]
            inst.status = "running"
            inst.status_msg = DEFAULT_IMAGE_MSG.format(image=inst.image)
            inst.behaviour = dataclasses.replace(b, die_after=None, recover_after=None, ssh_delay=0.0)
            inst.running_at = now
            inst.boot_started = False
            self._boot(inst, run_onstart=False)

    def _boot(self, inst: FakeInstance, *, run_onstart: bool = True) -> None:
        """Run onstart (HOME = instance dir), then start sshd after ``ssh_delay``; in a thread."""
        if inst.boot_started:
            return
        inst.boot_started = True
        delay = inst.behaviour.ssh_delay

        sshd_at = self.clock() + delay  # on the fake's clock, like every other delay

        def boot() -> None:
            if run_onstart and inst.onstart:
                self._run_onstart(inst)
            while self.clock() < sshd_at and not self._stop.is_set():
                time.sleep(0.01)
            with self.lock:
                wanted = inst.live and inst.status == "running" and not self._stop.is_set()
                # every destroy/death kills the sshd under self.lock, bumping its epoch: a start decided here is
                # dropped (or killed by that kill) if the instance is destroyed before or while sshd starts
                epoch = inst.sshd.epoch
            if not wanted:
                return
            try:
                inst.sshd.start(epoch=epoch)
            except RuntimeError:
                logger.exception("sshd of fake instance %s failed to start", inst.id)

        thread = threading.Thread(target=boot, daemon=True, name=f"fake-vast-boot-{inst.id}")
        thread.start()

    def _run_onstart(self, inst: FakeInstance) -> None:
        """Run the onstart script like Vast would, but confined: HOME is the instance folder and, when isolated,
        ``/workspace``, ``/root/.ssh`` and ``/etc/environment`` are the instance's own (private mount namespace)."""
        home = inst.sshd.inst_dir
        (home / ".ssh").mkdir(exist_ok=True)
        etc_env = home / "etc_environment"
        etc_env.touch()
        env = {"HOME": str(home), "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "CONTAINER_ID": str(inst.id),
               "VAST_CONTAINERLABEL": f"C.{inst.id}", **{str(k): str(v) for k, v in inst.env.items()
                                                         if not str(k).startswith("-")}}  # fmt: skip
        script_path = home / "onstart.sh"
        script_path.write_text(inst.onstart or "")
        if inst.sshd.private_workspace:
            binds = [(inst.sshd.workspace_dir, WORKSPACE), (home / ".ssh", Path("/root/.ssh"))]
            if Path("/etc/environment").exists():
                binds.append((etc_env, Path("/etc/environment")))
            Path("/root/.ssh").mkdir(mode=0o700, exist_ok=True)
            mounts = " && ".join(f"mount --bind {shlex.quote(str(a))} {shlex.quote(str(b))}" for a, b in binds)
            argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                    f"{mounts} && exec sh {shlex.quote(str(script_path))}"]  # fmt: skip
        else:
            argv = ["sh", str(script_path)]
        with (home / "onstart.log").open("ab") as log:
            process = subprocess.Popen(
                argv, env=env, cwd=home, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
            )
            inst.onstart_process = process
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                log.write(b"onstart killed after 60 s\n")
            finally:
                self._kill_onstart(inst)
        # keys the onstart wrote to ~/.ssh/authorized_keys count, as on a real host
        written = home / ".ssh" / "authorized_keys"
        if written.exists():
            for line in written.read_text().splitlines():
                if line.strip():
                    inst.sshd.add_authorized_key(line)

    def _die(self, inst: FakeInstance, status: str) -> None:
        now = self.clock()
        if inst.running_at is not None:
            inst.billed_gpu_seconds = inst.gpu_seconds(now)
            inst.running_at = None
        inst.status, inst.died_at = status, now
        inst.status_msg = {"exited": "container exited", "unknown": None}.get(status, "host unreachable")
        self._kill_host(inst)

    def _kill_host(self, inst: FakeInstance) -> None:
        self._kill_onstart(inst)
        inst.sshd.kill()

    @staticmethod
    def _kill_onstart(inst: FakeInstance) -> None:
        process, inst.onstart_process = inst.onstart_process, None
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)

    def _destroy(self, inst: FakeInstance) -> None:
        now = self.clock()
        inst.billed_gpu_seconds = inst.gpu_seconds(now)
        inst.running_at = None
        inst.destroyed_at = now
        inst.intended_status = "destroyed"
        inst.offer.rented = False  # the machine is offered again
        self._kill_host(inst)

    def _row(self, inst: FakeInstance) -> dict[str, Any]:
        """The instance JSON as Vast returns it."""
        offer = inst.offer.row
        running = inst.status == "running"
        direct = "direc" in inst.runtype
        stopped = inst.intended_status == "stopped"
        return {
            "id": inst.id,
            "actual_status": "stopped" if stopped else inst.status,
            "intended_status": inst.intended_status,
            "cur_state": "stopped" if stopped else "running",
            "next_state": "stopped" if stopped else "running",
            "status_msg": inst.status_msg,
            "label": inst.label,
            "machine_id": offer.get("machine_id"),
            "host_id": offer.get("host_id"),
            "gpu_name": offer.get("gpu_name"),
            "num_gpus": offer.get("num_gpus"),
            "gpu_ram": offer.get("gpu_ram"),
            "cpu_ram": offer.get("cpu_ram"),
            "dph_total": inst.dph_total,
            "dph_base": offer.get("dph_base"),
            "storage_cost": offer.get("storage_cost"),
            "start_date": inst.start_epoch,
            "end_date": None,
            "extra_env": [[k, v] for k, v in inst.env.items()],
            "image_uuid": inst.image,
            "image_runtype": inst.runtype,
            "onstart": inst.onstart,
            "disk_space": inst.disk,
            "disk_usage": 0.1 if running else -1,
            "ssh_host": "127.0.0.1",
            "ssh_port": inst.proxy_port,
            "ssh_idx": "0",
            "public_ipaddr": "127.0.0.1\n",
            "ports": {"22/tcp": [{"HostIp": "0.0.0.0", "HostPort": str(inst.direct_port)}]}
            if (running and direct)
            else None,
            "direct_port_start": inst.direct_port if direct else -1,
            "direct_port_end": inst.direct_port if direct else -1,
            "geolocation": offer.get("geolocation"),
            "reliability2": offer.get("reliability2"),
            "is_bid": inst.bid is not None,
            "min_bid": offer.get("min_bid"),
        }

    # -------------------------------------------------------------------------------------------- endpoints
    def search(self, body: Mapping[str, Any]) -> list[dict[str, Any]]:
        """``POST /api/v0/bundles/``: filter, price, sort and limit the catalogue."""
        storage = _number(body.get("allocated_storage")) or 5.0
        bids = body.get("type") in ("bid", "interruptible")
        now = self.clock()
        result = []
        for offer in self.offers.values():
            if offer.rented or offer.gone or (offer.vanish_status is not None and offer.row.get("_vanished")):
                continue
            if not self._on_market(offer, now):
                continue
            row = dict(offer.row)
            if "dph_base" in row and "storage_cost" in row:
                base = float(row["min_bid"]) if bids and "min_bid" in row else float(row["dph_base"])
                row["dph_total"] = base + float(row["storage_cost"]) * storage / 720.0
            row.setdefault("dph_total", row.get("dph_base", 0.0))
            row["rented"] = False
            if all(self._matches(row, name, cond) for name, cond in body.items()):
                result.append(row)
        for name, direction in reversed(body.get("order") or []):
            result.sort(key=lambda r, n=name: (r.get(n) is None, r.get(n) or 0), reverse=direction == "desc")
        limit = body.get("limit")
        if isinstance(limit, int) and limit > 0:
            result = result[:limit]
        return [{k: v for k, v in row.items() if not k.startswith("_")} for row in result]

    @staticmethod
    def _matches(row: Mapping[str, Any], name: str, cond: Any) -> bool:
        if name in SCOPE_KEYS or name not in row or not isinstance(cond, Mapping):
            return True
        return all(_compare(row[name], op, value, name) for op, value in cond.items())

    def rent(self, offer_id: int, body: Mapping[str, Any]) -> tuple[int, dict[str, Any]]:
        """``PUT /api/v0/asks/{id}/``."""
        if not body.get("image") and not body.get("template_hash_id"):
            return 400, {"success": False, "error": "invalid_args", "msg": "image or template_hash_id is required"}
        onstart = body.get("onstart")
        if onstart is not None and len(str(onstart)) > 4048:
            return 400, {"success": False, "error": "invalid_args", "msg": "onstart is limited to 4048 characters"}
        env = body.get("env") or {}
        if not isinstance(env, Mapping):
            return 400, {"success": False, "error": "invalid_args", "msg": "env must be a JSON object"}
        label = body.get("label")
        if label is not None and len(str(label)) > 1024:
            return 400, {"success": False, "error": "invalid_args", "msg": "label too long"}
        offer = self.offers.get(offer_id)
        not_yet = offer is not None and not self._on_market(offer, self.clock())
        if (
            offer is None
            or offer.rented
            or offer.gone
            or not_yet
            or offer.row.get("_vanished")
            or offer.vanish_status == 404
        ):
            if offer is not None:
                offer.row["_vanished"] = True
            msg = f"error 404/3603: no_such_ask Instance type by id {offer_id} is not available."
            return 404, {"success": False, "error": "invalid_args", "msg": msg, "ask_id": offer_id}
        if offer.vanish_status == 410:
            offer.row["_vanished"] = True
            msg = f"error 410/3907: no_such_ask Instance type {offer_id} is no longer available."
            return 410, {"success": False, "error": "no_such_ask", "msg": msg, "ask_id": offer_id}
        instance_id = self._next_instance_id
        self._next_instance_id += 1
        disk = float(body.get("disk") or 8.0)
        row = offer.row
        storage_dph = float(row.get("storage_cost") or 0.0) * disk / 720.0
        bid = _number(body.get("price"))
        if bid is not None and bid < float(row.get("min_bid") or 0.0):
            return 400, {
                "success": False,
                "error": "invalid_price",
                "msg": f"bid {bid} below min_bid {row.get('min_bid')}",
            }
        dph_total = (bid if bid is not None else float(row.get("dph_base", row.get("dph_total", 0.0)))) + storage_dph
        direct_port, proxy_port = free_port(), free_port()
        while proxy_port == direct_port:
            proxy_port = free_port()
        behaviour = self._rent_queue.popleft() if self._rent_queue else (offer.behaviour or self.default_behaviour)
        sshd = SshdHost(
            self.root / f"inst-{instance_id}",
            ports=[direct_port, proxy_port],
            authorized_keys=[key["public_key"] for key in self.account_keys.values()],
            isolate=self.isolate,
            hide_paths=self.hide_paths,
            workspace_kb=behaviour.workspace_kb,
            **behaviour.host_options,
        )
        now = self.clock()
        inst = FakeInstance(
            id=instance_id, offer=offer, label=None if label is None else str(label), image=str(body.get("image")),
            disk=disk, env=dict(env), onstart=None if onstart is None else str(onstart),
            runtype=str(body.get("runtype") or "ssh"), dph_total=dph_total, storage_dph=storage_dph,
            behaviour=behaviour, sshd=sshd, direct_port=direct_port, proxy_port=proxy_port, rented_at=now,
            start_epoch=self._epoch(now), bid=bid,
        )  # fmt: skip
        offer.rented = True
        self.instances[instance_id] = inst
        if self._first_rent_at is None:
            self._first_rent_at = now
        count, status = self.rent_answer_failures
        if count > 0:
            self.rent_answer_failures = (count - 1, status)
            return status, {"success": False, "error": "server_error", "msg": "upstream timeout"}
        return 200, {"success": True, "new_contract": instance_id, "instance_api_key": secrets.token_hex(16)}

    def show(self, instance_id: int) -> tuple[int, dict[str, Any]]:
        """``GET /api/v0/instances/{id}/``."""
        inst = self.instances.get(instance_id)
        if inst is not None:
            self._advance(inst)
        lagging = inst is not None and self.clock() - inst.rented_at < inst.behaviour.reads_lag
        if inst is None or not inst.live or lagging:
            if self.by_id_mode == "gone_as_404" and not lagging:
                return 404, {"success": False, "error": "no_such_instance", "msg": "Instance not found."}
            return 200, {"instances": None}
        row = self._row(inst)
        if self.by_id_mode == "omit_ports":
            row.pop("ports", None)
        return 200, {"instances": [row] if self.by_id_mode == "list" else row}

    def list_v1(self, query: Mapping[str, list[str]]) -> tuple[int, dict[str, Any]]:
        """``GET /api/v1/instances/`` with select_filters, order_by, limit and keyset tokens."""
        try:
            filters = json.loads((query.get("select_filters") or ["{}"])[0] or "{}")
            order_by = json.loads((query.get("order_by") or ["[]"])[0] or "[]")
            limit = int((query.get("limit") or ["25"])[0])
        except (ValueError, TypeError):
            return 400, {"success": False, "error": "invalid_args", "msg": "bad select_filters/order_by/limit"}
        for name in filters:
            if name not in LIST_FILTERABLE:
                return 400, {"success": False, "error": "invalid_args",
                             "msg": f"Computed fields (e.g. {name}) are not filterable"}  # fmt: skip
        limit = 5 if limit <= 0 else min(limit, 25)
        rows = []
        for inst in self.instances.values():
            self._advance(inst)
            if not inst.live or self.clock() - inst.rented_at < inst.behaviour.list_lag:
                continue
            row = self._row(inst)
            if all(self._matches(row, name, cond) for name, cond in filters.items()):
                rows.append(row)
        rows.sort(key=lambda r: r["id"])
        for spec in reversed([o for o in order_by if isinstance(o, Mapping) and o.get("col") != "id"]):
            rows.sort(key=lambda r, c=spec["col"]: (r.get(c) is None, r.get(c) or 0), reverse=spec.get("dir") == "desc")
        token = (query.get("after_token") or [""])[0]
        offset = 0
        if token:
            try:
                offset = int(json.loads(base64.urlsafe_b64decode(token.encode()).decode())["offset"])
            except (ValueError, KeyError, TypeError):
                return 400, {"success": False, "error": "invalid_args", "msg": "invalid after_token"}
        page = rows[offset : offset + limit]
        more = offset + limit < len(rows)
        next_token = base64.urlsafe_b64encode(json.dumps({"offset": offset + limit}).encode()).decode()
        labels: dict[str, int] = {}
        for row in rows:
            labels[str(row.get("label"))] = labels.get(str(row.get("label")), 0) + 1
        answer = {"success": True, "instances": page, "instances_found": len(rows), "label_counts": labels}
        answer.update(total_instances=len(self.instances), next_token=next_token if more else None)
        return 200, answer

    def manage(self, instance_id: int, body: Mapping[str, Any]) -> tuple[int, dict[str, Any]]:
        """``PUT /api/v0/instances/{id}/``: label and/or state."""
        inst = self.instances.get(instance_id)
        if inst is None or not inst.live:
            return 404, {"success": False, "error": "no_such_instance", "msg": "Instance not found."}
        if "label" in body:
            if len(str(body["label"])) > 1024:
                return 400, {"success": False, "error": "invalid_args", "msg": "label too long"}
            inst.label = str(body["label"])
        state = body.get("state")
        if state == "stopped" and inst.intended_status != "stopped":
            now = self.clock()
            inst.billed_gpu_seconds = inst.gpu_seconds(now)
            inst.running_at = None
            inst.intended_status = "stopped"
            self._kill_host(inst)
        elif state == "running" and inst.intended_status == "stopped":
            inst.intended_status, inst.status, inst.boot_started = "running", "running", False
            inst.running_at = self.clock()
            self._boot(inst, run_onstart=False)
        return 200, {"success": True}

    def destroy(self, instance_id: int) -> tuple[int, dict[str, Any]]:
        """``DELETE /api/v0/instances/{id}/`` (with 5xx injection)."""
        for key in (instance_id, None):
            count, status = self.delete_failures.get(key, (0, 0))
            if count > 0:
                self.delete_failures[key] = (count - 1, status)
                return status, {"success": False, "error": "server_error", "msg": "Internal error, try again"}
        inst = self.instances.get(instance_id)
        if inst is None or not inst.live:
            return 404, {"success": False, "error": "no_such_instance", "msg": "Instance not found."}
        self._destroy(inst)
        return 200, {"success": True}

    def add_account_key(self, body: Mapping[str, Any]) -> tuple[int, dict[str, Any]]:
        """``POST /api/v0/ssh/``."""
        key = str(body.get("ssh_key") or "").strip()
        if not key:
            return 400, {"success": False, "error": "no_ssh_key", "msg": "ssh_key is required"}
        key_id = self._next_key_id
        self._next_key_id += 1
        record = {"id": key_id, "user_id": 1, "public_key": key, "created_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
                  "deleted_at": None}  # fmt: skip
        self.account_keys[key_id] = record
        return 200, {"success": True, "key": record}

    def attach_key(self, instance_id: int, body: Mapping[str, Any]) -> tuple[int, dict[str, Any]]:
        """``POST /api/v0/instances/{id}/ssh/`` (optionally delayed: the attach race)."""
        inst = self.instances.get(instance_id)
        if inst is None or not inst.live:
            return 404, {"success": False, "error": "no_such_instance", "msg": "Instance not found."}
        key = str(body.get("ssh_key") or "").strip()
        if not key:
            return 400, {"success": False, "error": "no_ssh_key", "msg": "ssh_key is required"}
        key_id = self._next_key_id
        self._next_key_id += 1
        inst.attached_keys[key_id] = key
        if inst.behaviour.key_attach_delay > 0:
            inst.pending_keys.append((self.clock() + inst.behaviour.key_attach_delay, key_id, key))
        else:
            inst.sshd.add_authorized_key(key)
        return 200, {"success": True, "msg": "SSH key attached successfully"}

    def detach_key(self, instance_id: int, key_id: int) -> tuple[int, dict[str, Any]]:
        """``DELETE /api/v0/instances/{id}/ssh/{key_id}/``."""
        inst = self.instances.get(instance_id)
        if inst is None or not inst.live:
            return 404, {"success": False, "error": "no_such_instance", "msg": "Instance not found."}
        key = inst.attached_keys.pop(key_id, None)
        if key is None:
            return 404, {"success": False, "error": "no_such_ssh_key", "msg": "SSH key not found."}
        inst.sshd.remove_authorized_key(key)
        return 200, {"success": True, "msg": "SSH key removed from instance."}

    def request_logs(self, instance_id: int) -> tuple[int, dict[str, Any]]:
        """``PUT /api/v0/instances/request_logs/{id}/``."""
        inst = self.instances.get(instance_id)
        if inst is None or not inst.live:
            return 404, {"error": "invalid_id", "msg": "Invalid instance id."}
        token = secrets.token_urlsafe(12)
        self._log_tokens[token] = instance_id
        inst.logs_polls = 0
        return 200, {"success": True, "result_url": f"{self.base_url}/_logs/{token}", "msg": "logs requested"}

    def log_text(self, token: str) -> tuple[int, str]:
        """``GET /_logs/<token>`` (no auth): 404 for the first polls, then onstart + sshd logs."""
        instance_id = self._log_tokens.get(token)
        inst = self.instances.get(instance_id) if instance_id is not None else None
        if inst is None or not inst.live:
            return 404, "not found"
        inst.logs_polls += 1
        if inst.logs_polls <= self.logs_404_polls:
            return 404, "not yet"
        parts = []
        for name in ("onstart.log", "sshd.log"):
            path = inst.sshd.inst_dir / name
            if path.exists():
                parts.append(f"==> {name} <==\n{path.read_text(errors='replace')}")
        return 200, "\n".join(parts) or "(no output)\n"

    def _rate_limited(self, method: str, template: str, identity: str) -> tuple[int, Any, dict[str, str]] | None:
        rule = self.rate_rules.get((method, template))
        if rule is None:
            return None
        rule.count += 1
        now = self.clock()
        last = rule.last.get(identity)
        limited = (
            rule.count <= rule.first_n
            or (rule.every_k > 0 and rule.count % rule.every_k == 0)
            or (rule.min_interval > 0 and last is not None and now - last < rule.min_interval)
        )
        if not limited:
            rule.last[identity] = now
            return None
        text = f"API requests too frequent endpoint threshold={rule.min_interval or 1.0}"
        variants = {
            "detail": {"detail": text},
            "json": {"success": False, "error": "rate_limit_exceeded", "msg": text},
            "quota": {"success": False, "error": "search_quota_exceeded", "msg": "daily search quota exceeded"},
        }
        body: Any = variants.get(rule.body, text)
        headers = {"Retry-After": str(rule.retry_after)} if rule.retry_after is not None else {}
        return 429, body, headers

    def handle(
        self, method: str, raw_path: str, headers: Mapping[str, str], body: Any
    ) -> tuple[int, Any, dict[str, str]]:
        """Route one request; returns (status, body (dict/list → JSON, str → text), extra headers)."""
        parts = urlsplit(raw_path)
        path, query = parts.path, parse_qs(parts.query)
        template = _template(path)
        if path.startswith("/_logs/"):
            with self.lock:
                status, text = self.log_text(path.rsplit("/", 1)[-1])
            return status, text, {}
        auth = headers.get("Authorization", "")
        authorized = auth == f"Bearer {self.api_key}" or (
            self.accept_query_key and (query.get("api_key") or [""])[0] == self.api_key
        )
        with self.lock:
            status, answer, extra = self._dispatch(method, path, template, query, body, authorized, auth)
            safe_query = {k: v for k, v in query.items() if k != "api_key"}
            self.requests.append(
                RecordedRequest(self.clock(), method, path, template, safe_query, body, status, authorized)
            )
        return status, answer, extra

    def _dispatch(
        self,
        method: str,
        path: str,
        template: str,
        query: Mapping[str, list[str]],
        body: Any,
        authorized: bool,
        auth: str,
    ) -> tuple[int, Any, dict[str, str]]:
        anonymous_search = method == "POST" and template == "/api/v0/bundles/" and not auth
        if not authorized and not anonymous_search:
            return 401, {"success": False, "error": "auth_error", "msg": "Invalid user key"}, {}
        limited = self._rate_limited(method, template, auth or "anonymous")
        if limited is not None:
            return limited
        body = body if isinstance(body, Mapping) else {}
        ids = [int(x) for x in re.findall(r"/(\d+)(?=/|$)", path)]
        route = (method, template)
        if route == ("POST", "/api/v0/bundles/"):
            return 200, {"offers": self.search(body)}, {}
        if route == ("PUT", "/api/v0/asks/{id}/"):
            return (*self.rent(ids[0], body), {})
        if route == ("GET", "/api/v0/instances/"):
            return 410, {"success": False, "error": "gone", "msg": "Use /api/v1/instances/ instead"}, {}
        if route == ("GET", "/api/v1/instances/"):
            return (*self.list_v1(query), {})
        if route == ("GET", "/api/v0/instances/{id}/"):
            return (*self.show(ids[0]), {})
        if route == ("PUT", "/api/v0/instances/{id}/"):
            return (*self.manage(ids[0], body), {})
        if route == ("DELETE", "/api/v0/instances/{id}/"):
            return (*self.destroy(ids[0]), {})
        if route == ("POST", "/api/v0/ssh/"):
            return (*self.add_account_key(body), {})
        if route == ("GET", "/api/v0/ssh/"):
            return 200, list(self.account_keys.values()), {}
        if route == ("DELETE", "/api/v0/ssh/{id}/"):
            if self.account_keys.pop(ids[0], None) is None:
                return 404, {"success": False, "error": "no_such_ssh_key", "msg": "SSH key not found."}, {}
            return 200, {"success": True}, {}
        if route == ("POST", "/api/v0/instances/{id}/ssh/"):
            return (*self.attach_key(ids[0], body), {})
        if route == ("DELETE", "/api/v0/instances/{id}/ssh/{id}/"):
            return (*self.detach_key(ids[0], ids[1]), {})
        if route == ("PUT", "/api/v0/instances/request_logs/{id}/"):
            return (*self.request_logs(ids[0]), {})
        if route == ("GET", "/api/v0/users/current/"):
            return 200, {"id": 1, "email": "test@example.com", "credit": self.credit - self.cost(), "ssh_key": None}, {}
        if route == ("GET", "/_fake/state/"):
            state = {"live": [inst.id for inst in self.live_instances()], "cost": self.cost(), "ledger": self.ledger()}
            return 200, state, {}
        if route == ("POST", "/_fake/instances/{id}/kill/"):
            self._die(self.instances[ids[0]], (query.get("status") or ["offline"])[0])
            return 200, {"success": True}, {}
        return 404, {"success": False, "error": "not_found", "msg": f"no route {method} {path}"}, {}


class _Handler(BaseHTTPRequestHandler):
    fake: FakeVast
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are separate writes: avoid 40 ms delayed-ACK stalls

    def log_message(self, format: str, *args: Any) -> None:  # quiet: the fake records requests itself
        return

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            self._send(400, {"error": "invalid_request", "msg": "Invalid json body"}, {})
            return
        try:
            status, answer, extra = self.fake.handle(self.command, self.path, dict(self.headers.items()), body)
        except Exception as exc:  # a bug in the fake must show up as a 500, not a hung client
            logger.exception("fake vast handler")
            status, answer, extra = 500, {"success": False, "error": "fake_bug", "msg": repr(exc)}, {}
        self._send(status, answer, extra)

    def _send(self, status: int, answer: Any, extra: Mapping[str, str]) -> None:
        if isinstance(answer, str):
            data, ctype = answer.encode(), "text/plain; charset=utf-8"
        else:
            data, ctype = json.dumps(answer).encode(), "application/json"
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for name, value in extra.items():
            self.send_header(name, value)
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = _serve


@contextlib.contextmanager
def running_fake(root: Path, **kwargs: Any) -> Iterator[FakeVast]:
    """A started :class:`FakeVast` that is closed (servers and sshds stopped) on exit."""
    fake = FakeVast(root, **kwargs)
    fake.start()
    try:
        yield fake
    finally:
        fake.close()
