"""Fixtures of the vast executor tests: real sshd hosts and the fake Vast server (tests/fake_vast, engineer V1)."""

from __future__ import annotations

import getpass
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from density_engine.hostwheel import host_wheels
from snakemake_executor_plugin_vast.client import Instance, InstanceGone, Offer, OfferUnavailable, SshEndpoint
from snakemake_executor_plugin_vast.offers import JobNeeds
from snakemake_executor_plugin_vast.pool import Host, HostPool, HostRequest, PoolSettings
from snakemake_executor_plugin_vast.wheels import WheelInfo, read_wheel
from tests.fake_vast.fixtures import (  # noqa: F401
    controller_paths,
    fake_vast,
    require_sshd,
    ssh_keypair,
    sshd_factory,
    sshd_host,
)
from tests.fake_vast.sshd import SshdHost

# Controllers keep run lock files in $XDG_CACHE_HOME/snakemake-executor-plugin-vast/runs (snakemake_executor_plugin_vast
# .runs): point it at a folder of this test session (inherited by every controller subprocess), never the user's.
os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="vast-tests-cache-")


@dataclass
class StubInstance:
    """One rented instance of :class:`StubVast` (a real sshd; status from a scripted timeline)."""

    id: int
    offer: Offer
    label: str
    host: SshdHost
    created: float
    boot_s: float
    status: str | None = None
    status_msg: str = ""
    stuck: bool = False
    destroyed: bool = False
    fatal_msg: str | None = None


@dataclass
class StubVast:
    """In-process stand-in for the plugin's ``VastClient`` whose instances are real sshd hosts.

    Used by the pool/runner tests (fast, no HTTP); the end-to-end and plugin tests use V1's HTTP fake instead.
    Failure injection: ``vanish`` (offer ids answering OfferUnavailable), ``stuck_machines`` (never leave loading),
    ``fatal_machines`` (fatal status message), ``destroy_failures`` (DELETE errors before success).
    """

    root: Path
    public_keys: list[str]
    hide_paths: tuple[Path, ...] = ()
    offers: list[Offer] = field(default_factory=list)
    boot_s: float = 0.3
    instances: dict[int, StubInstance] = field(default_factory=dict)
    vanish: set[int] = field(default_factory=set)
    stuck_machines: set[int] = field(default_factory=set)
    fatal_machines: dict[int, str] = field(default_factory=dict)
    destroy_failures: int = 0
    calls: list[tuple[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def search_offers(self, query: str, *, order: str = "dph_total", limit: int = 10, **_: Any) -> list[Offer]:
        self.calls.append(("search", query))
        rented = {i.offer.id for i in self.instances.values()}
        found = [o for o in self.offers if o.id not in rented]
        return sorted(found, key=lambda o: o.dph_total)[:limit]

    def create_instance(
        self, offer_id: int, *, image: str, disk_gb: float, label: str, onstart: str = "", **_: Any
    ) -> int:
        self.calls.append(("create", offer_id))
        if offer_id in self.vanish:
            raise OfferUnavailable(f"error 404/3603: no_such_ask Instance type by id {offer_id} is not available.")
        offer = next(o for o in self.offers if o.id == offer_id)
        with self.lock:
            instance_id = 1000 + len(self.instances)
            host = SshdHost(
                self.root / f"inst-{instance_id}", authorized_keys=self.public_keys, hide_paths=self.hide_paths
            )
            inst = StubInstance(instance_id, offer, label, host, time.monotonic(), self.boot_s)
            inst.stuck = offer.machine_id in self.stuck_machines
            inst.fatal_msg = self.fatal_machines.get(offer.machine_id or -1)
            self.instances[instance_id] = inst
        return instance_id

    def get_instance(self, instance_id: int) -> Instance:
        self.calls.append(("get", instance_id))
        inst = self.instances.get(instance_id)
        if inst is None or inst.destroyed:
            raise InstanceGone(f"instance {instance_id} does not exist (any more)")
        if inst.status is None or inst.status == "loading":
            if inst.fatal_msg:
                inst.status, inst.status_msg = "created", inst.fatal_msg
            elif not inst.stuck and time.monotonic() - inst.created > inst.boot_s:
                inst.host.start()
                inst.status, inst.status_msg = "running", "success, running"
            else:
                inst.status, inst.status_msg = "loading", "Pulling image"
        endpoints = (SshEndpoint(inst.host.host, inst.host.port, "direct"),) if inst.status == "running" else ()
        return Instance(
            id=inst.id, label=inst.label, actual_status=inst.status, intended_status="running", cur_state="running",
            status_msg=inst.status_msg, machine_id=inst.offer.machine_id, dph_total=inst.offer.dph_total,
            start_date=None, endpoints=endpoints,
        )  # fmt: skip

    def destroy_instance(self, instance_id: int) -> bool:
        self.calls.append(("destroy", instance_id))
        if self.destroy_failures > 0:
            self.destroy_failures -= 1
            raise RuntimeError("HTTP 502 from DELETE")
        inst = self.instances.get(instance_id)
        if inst is not None:
            inst.host.kill()
            inst.destroyed = True
        return True

    def add_account_ssh_key(self, public_key: str) -> int:
        self.public_keys.append(public_key)
        return 7

    def list_instances(self, *, label_prefix: str | None = None) -> list[Instance]:
        self.calls.append(("list", label_prefix))
        return [self.get_instance(i) for i in self.live() if self.instances[i].label.startswith(label_prefix or "")]

    def set_label(self, instance_id: int, label: str) -> None:
        self.instances[instance_id].label = label

    def list_account_ssh_keys(self) -> list[dict[str, Any]]:
        return []

    def delete_account_ssh_key(self, key_id: int) -> None:
        self.calls.append(("delete_key", key_id))

    def attach_ssh_key(self, instance_id: int, public_key: str) -> None:
        self.instances[instance_id].host.add_authorized_key(public_key)

    def request_logs(self, instance_id: int, **_: Any) -> str:
        """Vast's container log: here the host's sshd log (gone with the instance, as on Vast)."""
        self.calls.append(("logs", instance_id))
        inst = self.instances.get(instance_id)
        if inst is None or inst.destroyed:
            raise InstanceGone(f"instance {instance_id} does not exist (any more)")
        return f"container log of instance {instance_id}\n{inst.host.read_log()}"

    def kill(self, instance_id: int, status: str = "offline") -> None:
        """Make a running host die: sshd and every job on it are killed."""
        inst = self.instances[instance_id]
        inst.host.kill()
        inst.status = status

    def live(self) -> list[int]:
        return [i.id for i in self.instances.values() if not i.destroyed]


def fast_pool_settings(**overrides: Any) -> PoolSettings:
    """Pool settings for tests: small intervals and timeouts (the logic is the production one)."""
    settings = PoolSettings(
        run_id="0a1b2c3d", image="img", max_instances=2, boot_timeout=10.0, unreachable_timeout=2.0,
        ssh_user=getpass.getuser(), destroy_retry_delay=0.05, tick=0.05, monitor_interval=0.1, api_throttle=0.0,
        offer_wait=30.0, idle_timeout=60.0, workers=6,
    )  # fmt: skip
    for name, value in overrides.items():
        setattr(settings, name, value)
    return settings


def acquire(pool: HostPool, needs: JobNeeds | None = None, *, timeout: float = 30.0, key: str | None = None) -> Host:
    """Request a host like the runner does and wait for it (raises what the pool answers instead)."""
    outcome: list[Any] = []
    done = threading.Event()
    pool.request(
        HostRequest(
            key=key or f"test-{time.monotonic_ns()}",
            needs=needs or JobNeeds(),
            on_host=lambda host: (outcome.append(host), done.set()),
            on_error=lambda exc: (outcome.append(exc), done.set()),
        )
    )
    assert done.wait(timeout), "the pool answered no request in time"
    if isinstance(outcome[0], Exception):
        raise outcome[0]
    return outcome[0]


def request_in_background(pool: HostPool, needs: JobNeeds | None = None, **avoid: Any) -> tuple[threading.Event, list]:
    """Queue a request; returns (answered event, [host or exception])."""
    outcome: list[Any] = []
    done = threading.Event()
    pool.request(
        HostRequest(
            key=f"bg-{time.monotonic_ns()}", needs=needs or JobNeeds(),
            on_host=lambda host: (outcome.append(host), done.set()),
            on_error=lambda exc: (outcome.append(exc), done.set()), **avoid,
        )
    )  # fmt: skip
    return done, outcome


def make_offer(offer_id: int, machine_id: int, dph: float = 0.2, gpus: int = 1) -> Offer:
    return Offer(
        id=offer_id, machine_id=machine_id, gpu_name="RTX 4090", num_gpus=gpus, dph_total=dph, reliability=0.99,
        inet_down=500.0, cuda_max_good=12.4, direct_port_count=1, geolocation="US", cpu_ram=64000.0, disk_space=100.0,
    )  # fmt: skip


@pytest.fixture
def stub_vast(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, ssh_keypair: Any) -> Iterator[StubVast]:  # noqa: F811
    """A :class:`StubVast` with 6 one-GPU offers on distinct machines; every sshd is killed at teardown."""
    require_sshd()
    stub = StubVast(tmp_path / "stub", [ssh_keypair.public_key], controller_paths(tmp_path_factory))
    stub.offers = [make_offer(100 + i, 500 + i, dph=0.1 + 0.01 * i) for i in range(6)]
    yield stub
    for inst in stub.instances.values():
        inst.host.kill()


@pytest.fixture(scope="session")
def host_wheel_infos(tmp_path_factory: pytest.TempPathFactory) -> list[WheelInfo]:
    """The wheels the profile's host-wheels command gives (density-engine and the plugin), built once."""
    return [read_wheel(path) for path in host_wheels(tmp_path_factory.mktemp("host-wheels"))]


# ---- Snakemake runs against the HTTP fake (plugin, end-to-end and fault tests) ------------------------------------

REPO = Path(__file__).resolve().parents[2]
VAST_PROFILE = REPO / "profiles" / "vast"

TINY_SNAKEFILE = """
import glob, json

N = int(config.get("count", 3))
SLEEP = float(config.get("sleep", 0))
TORCH = "; python -c 'import torch; print(torch.__file__)' >> {log}" if config.get("probe_torch") else ""

rule all:
    input: expand("results/out/{i}.txt", i=range(N)), "results/costs.txt"

# like the real workflow's report_costs: a local rule after every remote job that reads every run's Vast ledger
rule costs:
    input: expand("results/out/{i}.txt", i=range(N))
    output: "results/costs.txt"
    params: ledgers="results/vast/ledger"
    localrule: True
    run:
        runs = [json.load(open(path)) for path in sorted(glob.glob(params.ledgers + "/*.json"))]
        with open(output[0], "w") as handle:
            for run in runs:
                handle.write(f"{run['run_id']} {run['final']} {run['live_instances']} {run['total_cost_usd']}\\n")

rule spec:
    output: "results/spec/{i}.json"
    localrule: True
    shell: "echo '{{\\"x\\": {wildcards.i}}}' > {output}"

rule work:
    input: "results/spec/{i}.json"
    output: "results/out/{i}.txt"
    log: "results/logs/work/{i}.log"
    benchmark: "results/bench/work/{i}.tsv"
    resources: gpu=1
    group: "work"
    params: sleep=SLEEP
    shell:
        # markers on the host: results/started/<i> once the job runs, results/term/<i> when it receives SIGTERM (the
        # executor's cancel), so tests tell "killed by us" from "died with its host" (SIGKILL of everything)
        "mkdir -p results/started results/term && : > results/started/{wildcards.i}; "
        "trap 'echo {wildcards.i} > results/term/{wildcards.i}; exit 143' TERM; "
        "python -c \\"import json, time; time.sleep({params.sleep}); "
        "x = json.load(open('{input}'))['x']; open('{output}', 'w').write(str(x * x))\\" & wait $! "
        "&& echo squared {wildcards.i} > {log}" + TORCH
"""


def venv_with_wheel(wheel: Path, venv: Path) -> str:
    """A venv (seeing this interpreter's packages) with ``wheel`` and this plugin's own wheel pip-installed as regular
    installs (as on a host); its python."""
    from snakemake_executor_plugin_vast.wheels import build_self_wheel

    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    plugin = build_self_wheel(wheel.parent)
    subprocess.run(
        [python, "-m", "pip", "install", "-q", "--no-deps", "--disable-pip-version-check", str(wheel), str(plugin)],
        check=True, timeout=300,
    )  # fmt: skip
    return python


def tiny_workflow(root: Path) -> Path:
    """A small self-contained workflow: localrule specs → grouped GPU jobs (``work``) with log + benchmark."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "Snakefile").write_text(TINY_SNAKEFILE)
    return root


def _estimate_default(extra: tuple[str, ...]) -> list[str]:
    """The profile's start-up estimate runs `density-engine estimate` on the run's config: only the tests that run the
    real workflow (a `models` config) keep it; the tiny test workflows turn it off unless a test sets its own."""
    return [] if "--vast-estimate-command" in extra else ["--vast-estimate-command", ""]


def vast_command(base_url: str, *extra: str, max_instances: int = 2) -> list[str]:
    """``snakemake --profile profiles/vast`` pointed at the fake (key via SNAKEMAKE_VAST_API_KEY in the environment)."""
    return [
        sys.executable, "-m", "snakemake", "--profile", str(VAST_PROFILE), "--jobs", "8",
        "--vast-api-url", base_url, "--vast-ssh-user", getpass.getuser(),
        "--vast-remote-python", sys.executable, "--vast-max-instances", str(max_instances),
        "--vast-boot-timeout", "30", "--vast-unreachable-timeout", "3", "--vast-budget", "5",
        "--vast-api-throttle", "0.01",
        "--seconds-between-status-checks", "1", "--max-status-checks-per-second", "10", "--latency-wait", "2",
        *_estimate_default(extra), *extra,
    ]  # fmt: skip


def vast_env(api_key: str) -> dict[str, str]:
    """Environment of a controller run: the fake's key (SNAKEMAKE_VAST_API_KEY, the setting's env var)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SNAKEMAKE_")}
    env.update(SNAKEMAKE_VAST_API_KEY=api_key, PYTHONUNBUFFERED="1")
    return env


def start_controller(cmd: list[str], cwd: Path, env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """Start snakemake in its own session with SIGINT at its default action (so a test can press Ctrl-C)."""
    log = log_path.open("wb")

    def reset_sigint() -> None:
        signal.signal(signal.SIGINT, signal.SIG_DFL)

    return subprocess.Popen(
        cmd, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        start_new_session=True, preexec_fn=reset_sigint,
    )  # fmt: skip


def run_controller(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float = 150) -> tuple[int, str]:
    """Run snakemake to completion; return (exit code, combined output)."""
    log_path = cwd / f"controller-{len(list(cwd.glob('controller-*.log')))}.log"
    proc = start_controller(cmd, cwd, env, log_path)
    try:
        code = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        raise AssertionError(f"snakemake timed out:\n{log_path.read_text()[-6000:]}") from None
    return code, log_path.read_text(errors="replace")
