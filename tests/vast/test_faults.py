"""Fault cases of the issue against the HTTP fake Vast (real sshd hosts): each ends complete or cleanly, 0 leaked.

Pool-level cases (fast, no Snakemake) use the real REST client; the last ones run `snakemake --profile profiles/vast`.
"""

from __future__ import annotations

import getpass
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from density_engine.vast.client import VastClient
from density_engine.vast.pool import HostPool, JobNeeds, PoolSettings
from density_engine.vast.ssh import generate_run_key
from tests.vast.conftest import run_controller, start_controller, tiny_workflow, vast_command, vast_env

pytestmark = pytest.mark.ssh


@pytest.fixture
def http_pool(fake_vast, tmp_path: Path):
    """Factory of HostPools on the fake through the real REST client; every pool is closed at teardown."""
    base_url, fake, api_key = fake_vast
    key, public = generate_run_key(tmp_path / "key" / "id_ed25519")
    pools: list[HostPool] = []

    def factory(**overrides) -> HostPool:
        client = VastClient(api_key, base_url, interval_scale=0.0, backoff_base=0.05, backoff_cap=0.5)
        settings = PoolSettings(
            run_id="faultrun", image="pytorch/pytorch", max_instances=2, boot_timeout=15.0, unreachable_timeout=3.0,
            ssh_user=getpass.getuser(), destroy_retry_delay=0.05,
        )  # fmt: skip
        for name, value in overrides.items():
            setattr(settings, name, value)
        pool = HostPool(client, settings, key, public)
        pool.start()
        pools.append(pool)
        return pool

    yield factory
    for pool in pools:
        pool.close()
    assert fake.live_instances() == []


def cheapest(fake, n: int = 1) -> list[int]:
    rows = sorted(fake.offers.values(), key=lambda o: o.row["dph_base"])
    return [o.id for o in rows[:n]]


@pytest.mark.parametrize("status", [404, 410])
def test_offer_vanishing_on_rent_moves_to_the_next_offer(fake_vast, http_pool, status: int) -> None:
    _, fake, _ = fake_vast
    first, second = cheapest(fake, 2)
    fake.vanish_offer(first, status=status)
    host = http_pool().acquire(JobNeeds())
    assert host.conn.exec("echo up").stdout == "up\n"
    assert [inst.offer.id for inst in fake.instances.values()] == [second]  # no extra (paid) instance
    assert len(fake.requests_to("PUT", "/api/v0/asks/{id}/")) == 2


def test_stuck_in_loading_times_out_and_is_replaced(fake_vast, http_pool) -> None:
    _, fake, _ = fake_vast
    first, second = cheapest(fake, 2)
    fake.set_offer_behaviour(first, stuck_in="loading")
    pool = http_pool(boot_timeout=3.0)
    started = time.monotonic()
    host = pool.acquire(JobNeeds())
    assert time.monotonic() - started >= 3.0
    assert host.instance_id != min(fake.instances) and fake.instances[host.instance_id].offer.id == second
    assert not fake.instances[min(fake.instances)].live  # the stuck one was destroyed
    assert fake.offers[first].row["machine_id"] in pool.blacklist


def test_fatal_status_message_fails_fast(fake_vast, http_pool) -> None:
    _, fake, _ = fake_vast
    first, _second = cheapest(fake, 2)
    fake.set_offer_behaviour(first, fatal_status="loading", fatal_status_msg="toomanyrequests: pull rate limit")
    pool = http_pool(boot_timeout=60.0)
    started = time.monotonic()
    host = pool.acquire(JobNeeds())
    # fail fast: far below the 60 s boot timeout (t_null 0.2 s + one poll of 1 s + a second boot of ~1-2 s)
    assert time.monotonic() - started < 20
    assert fake.instances[host.instance_id].offer.id != first
    assert fake.offers[first].row["machine_id"] in pool.blacklist


def test_sshd_late_after_running_is_waited_for(fake_vast, http_pool) -> None:
    _, fake, _ = fake_vast
    fake.queue_rent_behaviour(ssh_delay=2.0)
    started = time.monotonic()
    host = http_pool().acquire(JobNeeds())
    assert time.monotonic() - started >= 2.0
    assert host.conn.exec("true").ok and len(fake.instances) == 1


def test_429_storm_still_completes_with_bounded_requests(fake_vast, http_pool) -> None:
    _, fake, _ = fake_vast
    fake.rate_limit("GET", "/api/v0/instances/{id}/", every_k=2)
    fake.rate_limit("PUT", "/api/v0/asks/{id}/", first_n=3, body="json")
    fake.rate_limit("POST", "/api/v0/bundles/", first_n=2)
    host = http_pool().acquire(JobNeeds())
    assert host.conn.exec("true").ok
    assert len(fake.instances) == 1  # 429s on rent never created a second instance
    assert len(fake.requests) < 80


def test_delete_failing_with_5xx_is_retried_until_gone(fake_vast, http_pool) -> None:
    _, fake, _ = fake_vast
    pool = http_pool()
    host = pool.acquire(JobNeeds())
    fake.fail_deletes(3, status=502)
    pool.close()
    assert host.state == "destroyed" and fake.live_instances() == []
    assert len(fake.requests_to("DELETE", "/api/v0/instances/{id}/")) >= 4


# ---- whole runs: snakemake --profile profiles/vast against the fake -------------------------------------------------


def test_host_dying_mid_job_is_retried_elsewhere(fake_vast, tmp_path: Path) -> None:
    base_url, fake, api_key = fake_vast
    first = cheapest(fake)[0]
    fake.set_offer_behaviour(first, die_after=2.5, die_status="offline")
    work = tiny_workflow(tmp_path / "wf")
    cmd = vast_command(base_url, "--config", "count=1", "sleep=5", "--retries", "1", max_instances=1)
    code, log = run_controller(cmd, work, vast_env(api_key))
    assert code == 0, log[-6000:]
    assert (work / "results" / "out" / "0.txt").read_text() == "0"
    assert "died while the job ran" in log and "Trying to restart job" in log
    machines = [inst.offer.row["machine_id"] for inst in fake.instances.values()]
    assert len(machines) == 2 and machines[0] != machines[1]  # the retry ran on another machine
    assert fake.live_instances() == []


def wait_for(predicate, timeout: float, what: str, log_path: Path) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}:\n{log_path.read_text()[-4000:]}")
        time.sleep(0.2)


def test_sigint_during_a_run_kills_jobs_and_destroys_every_instance(fake_vast, tmp_path: Path) -> None:
    base_url, fake, api_key = fake_vast
    work = tiny_workflow(tmp_path / "wf")
    log_path = work / "controller-sigint.log"
    proc = start_controller(
        vast_command(base_url, "--config", "count=2", "sleep=120"), work, vast_env(api_key), log_path
    )
    try:
        wait_for(lambda: log_path.read_text().count("started on instance") >= 2, 90, "2 remote jobs", log_path)
        assert len(fake.live_instances()) == 2
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    log = log_path.read_text()
    assert "Terminating processes on user request" in log
    assert fake.live_instances() == [], log[-4000:]
    assert "Vast cost ledger" in log


def test_sigkill_of_the_controller_then_cleanup_destroys_leftovers(fake_vast, tmp_path: Path) -> None:
    base_url, fake, api_key = fake_vast
    work = tiny_workflow(tmp_path / "wf")
    log_path = work / "controller-sigkill.log"
    proc = start_controller(
        vast_command(base_url, "--config", "count=1", "sleep=120"), work, vast_env(api_key), log_path
    )
    try:
        wait_for(lambda: "started on instance" in log_path.read_text(), 90, "the remote job", log_path)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert len(fake.live_instances("density-engine-")) == 1  # SIGKILL: nothing could run, the instance leaked
    env = vast_env(api_key)
    done = subprocess.run(
        ["density-engine", "vast", "cleanup", "--api-url", base_url, "--throttle-scale", "0"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert fake.live_instances() == []
    assert api_key not in done.stdout + done.stderr


def test_budget_reached_stops_renting_and_ends_cleanly(fake_vast, tmp_path: Path) -> None:
    base_url, fake, api_key = fake_vast
    work = tiny_workflow(tmp_path / "wf")
    # the cheapest offer costs ~0.20 $/h: 0.0002 $ are spent ~3.6 s after the rent, long before the 60 s job ends
    cmd = vast_command(base_url, "--config", "count=2", "sleep=60", "--vast-budget", "0.0002", max_instances=1)
    code, log = run_controller(cmd, work, vast_env(api_key))
    assert code != 0
    assert "Vast budget reached" in log and "Raise --vast-budget" in log
    assert fake.live_instances() == []
    assert len(fake.instances) == 1  # nothing rented after the budget was reached
    ledger = (work / "results" / "vast" / "cost_ledger.json").read_text()
    assert '"budget_usd": 0.0002' in ledger
