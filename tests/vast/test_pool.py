"""Host pool: rent, reuse, next offer, boot failures, capacity waits, idle release, budget projection, ledger, destroy
retries (stub client + real sshd; the ManualClock tests drive the manager's decisions step by step)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from snakemake_executor_plugin_vast.ledger import RunLedger, read_runs
from snakemake_executor_plugin_vast.offers import JobNeeds, Market, no_capacity_message, query_parts
from snakemake_executor_plugin_vast.pool import HostPool, NoCapacity, PoolClosed
from snakemake_executor_plugin_vast.query import parse_query
from snakemake_executor_plugin_vast.ssh import load_private_key
from tests.fake_vast.server import ManualClock
from tests.vast.conftest import acquire, fast_pool_settings, request_in_background

pytestmark = pytest.mark.ssh


def make_pool(stub, ssh_keypair, *, start: bool = True, clock=None, **overrides) -> HostPool:
    settings = fast_pool_settings(**overrides)
    kwargs = {"clock": clock} if clock is not None else {}
    pool = HostPool(stub, settings, load_private_key(ssh_keypair.private_path), ssh_keypair.public_key, **kwargs)
    if start:
        pool.start()
    return pool


def wait_until(predicate, timeout: float = 15.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def drive(pool: HostPool, predicate, timeout: float = 20.0, what: str = "condition") -> None:
    """Run the manager's steps (and the monitor's lists) by hand until ``predicate()``; for pools on a ManualClock."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        pool.monitor.refresh()
        pool.step()
        time.sleep(0.03)


def test_query_is_shaped_by_job_resources_and_price() -> None:
    parts = query_parts("gpu_name=RTX_4090", JobNeeds(gpus=2, mem_mb=16000, disk_gb=60), disk_gb=40, max_price=0.5)
    parsed = parse_query(parts.full)
    assert parsed["gpu_name"] == {"eq": "RTX 4090"}
    assert parsed["num_gpus"] == {"gte": "2"}
    assert parsed["cpu_ram"] == {"gte": 16000.0}  # GB in the grammar, MB on the wire
    assert parsed["disk_space"] == {"gte": "60"}
    assert parsed["dph_total"] == {"lte": "0.5"}
    assert (parts.base, parts.price) == ("gpu_name=RTX_4090", "dph_total<=0.5")


def test_host_is_reused_and_max_instances_caps_rentals(stub_vast, ssh_keypair) -> None:
    pool = make_pool(stub_vast, ssh_keypair, max_instances=1)
    try:
        host = acquire(pool)
        assert host.conn is not None and host.conn.exec("echo hi").stdout == "hi\n"
        done, got = request_in_background(pool)
        assert not done.wait(0.8), "a second job must wait while the only allowed host is busy"
        pool.release(host, 1)
        assert done.wait(5) and got == [host]
        assert [c for c in stub_vast.calls if c[0] == "create"] == [("create", 100)]  # one boot, cheapest offer
    finally:
        pool.close()
    assert stub_vast.live() == []
    assert pool.ledger.records[host.instance_id].destroyed_at is not None


def test_vanished_offers_are_skipped_without_extra_instances(stub_vast, ssh_keypair) -> None:
    stub_vast.vanish = {100, 101}
    pool = make_pool(stub_vast, ssh_keypair)
    try:
        host = acquire(pool)
        assert host.machine_id == 502
        assert [c[1] for c in stub_vast.calls if c[0] == "create"] == [100, 101, 102]
        assert len(stub_vast.instances) == 1 and len(pool.ledger.records) == 1
    finally:
        pool.close()
    assert stub_vast.live() == []


def test_stuck_and_fatal_hosts_are_replaced_and_their_machines_avoided(stub_vast, ssh_keypair) -> None:
    stub_vast.stuck_machines = {500}
    stub_vast.fatal_machines = {501: "Error response from daemon: OCI runtime create failed: oops"}
    pool = make_pool(stub_vast, ssh_keypair, boot_timeout=2.0, max_instances=1)
    try:
        host = acquire(pool)
        assert host.machine_id == 502
        assert {500, 501} <= pool.blacklist
        destroyed = {c[1] for c in stub_vast.calls if c[0] == "destroy"}
        assert {1000, 1001} <= destroyed
        reasons = {r.instance_id: r.end_reason for r in pool.ledger.records.values()}
        assert reasons[1000].startswith("boot failed: not running after the boot timeout")
        assert "fatal status message" in reasons[1001]
    finally:
        pool.close()
    assert stub_vast.live() == []


def test_destroy_retries_api_errors(stub_vast, ssh_keypair) -> None:
    pool = make_pool(stub_vast, ssh_keypair)
    host = acquire(pool)
    stub_vast.destroy_failures = 3
    pool.close()
    assert host.state == "destroyed"
    assert [c for c in stub_vast.calls if c[0] == "destroy"].count(("destroy", host.instance_id)) == 4
    assert stub_vast.live() == []


def test_close_answers_a_waiting_request_at_once(stub_vast, ssh_keypair) -> None:
    stub_vast.stuck_machines = {500, 501, 502, 503, 504, 505}
    pool = make_pool(stub_vast, ssh_keypair, boot_timeout=60.0)
    done, got = request_in_background(pool)
    wait_until(lambda: stub_vast.instances, what="a rent")
    pool.close()
    assert done.wait(5) and isinstance(got[0], PoolClosed)
    assert stub_vast.live() == []


def test_keep_instances_keeps_only_healthy_hosts(stub_vast, ssh_keypair) -> None:
    """--vast-keep-instances keeps ready hosts at the end, never dead ones (retired at once) or booting ones."""
    stub_vast.stuck_machines = {502}
    pool = make_pool(stub_vast, ssh_keypair, keep_instances=True, max_instances=3, boot_timeout=30.0)
    healthy, doomed = acquire(pool), acquire(pool)
    done, got = request_in_background(pool)  # the third host never boots
    wait_until(lambda: len(stub_vast.instances) == 3, what="the third rent")
    pool.retire(doomed, "host died")
    wait_until(lambda: doomed.instance_id not in stub_vast.live(), what="the dead host's destruction")
    pool.close()
    assert done.wait(5) and isinstance(got[0], PoolClosed)
    assert stub_vast.live() == [healthy.instance_id]
    stub_vast.destroy_instance(healthy.instance_id)


def test_capacity_wait_then_one_clear_failure(stub_vast, ssh_keypair) -> None:
    """No offer: a request waits (no failure) while a pool host that fits exists; with none, the market is searched
    again with back-off and only after offer_wait (a ManualClock here) the request fails with the counts message."""
    clock = ManualClock(1000.0)
    pool = make_pool(stub_vast, ssh_keypair, start=False, clock=clock, offer_wait=600.0, max_instances=2)
    stub_vast.offers = stub_vast.offers[:1]
    try:
        done_a, got_a = request_in_background(pool)
        drive(pool, done_a.is_set, what="the only offer's host")
        first_host = got_a[0]
        assert first_host is pool.hosts[0]
        done_b, got_b = request_in_background(pool)  # busy host, no offer left: waits
        for _ in range(5):
            pool.step()
            time.sleep(0.05)
        clock.advance(3600)  # far past offer_wait, but a pool host fits: still waiting
        for _ in range(5):
            pool.step()
            time.sleep(0.05)
        assert not done_b.is_set()
        pool.release(first_host, 1)
        pool.step()
        assert done_b.wait(5) and got_b == [first_host]
        pool.retire(first_host, "test: gone")
        wait_until(lambda: first_host.state == "destroyed", what="destroy")
        done_c, got_c = request_in_background(pool)  # pool empty, market empty
        for _ in range(3):
            pool.step()
            time.sleep(0.1)
        assert not done_c.is_set()  # waiting, not failed
        clock.advance(601)
        deadline = time.monotonic() + 10
        while not done_c.is_set() and time.monotonic() < deadline:
            pool.step()
            time.sleep(0.05)
        assert done_c.is_set() and isinstance(got_c[0], NoCapacity)
        message = str(got_c[0])
        assert "no Vast offer matched the query" in message and "without the price cap" in message
        assert "num_gpus>=1" in message
    finally:
        pool.close()
    assert stub_vast.live() == []


def test_market_backoff_and_message() -> None:
    market = Market(wait=100.0, backoff_base=5.0, backoff_cap=20.0)
    assert market.may_search("q", 0.0)
    state = market.empty("q", 0.0)
    assert (state.next_search, state.exhausted) == (5.0, False) and not market.may_search("q", 4.0)
    delays = [market.empty("q", t).delay for t in (5.0, 15.0, 35.0)]
    assert delays == [10.0, 20.0, 20.0]  # doubling, capped
    assert market.empty("q", 101.0).exhausted
    market.found("q")
    assert market.state("q") is None
    parts = query_parts("gpu_name=RTX_4090", JobNeeds(), disk_gb=32, max_price=0.4)
    text = no_capacity_message(parts, {"no_price": 3, "no_resources": 0, "base": 7}, 1800, 12, 1)
    assert "for 30.0 min (12 searches)" in text and "without the price cap (dph_total<=0.4): 3" in text
    assert "with the base query alone (gpu_name=RTX_4090): 7" in text and "1 matching machine(s) are avoided" in text


def test_idle_hosts_are_released_and_their_idle_time_is_in_the_ledger(stub_vast, ssh_keypair, tmp_path: Path) -> None:
    clock = ManualClock(1000.0)
    ledger_dir = tmp_path / "ledger"
    pool = make_pool(
        stub_vast, ssh_keypair, start=False, clock=clock, idle_timeout=120.0, max_instances=2, ledger_dir=ledger_dir
    )
    try:
        done_a, got_a = request_in_background(pool)
        done_b, got_b = request_in_background(pool)
        drive(pool, lambda: done_a.is_set() and done_b.is_set(), what="two hosts")
        a, b = got_a[0], got_b[0]
        stub_vast.offers = []  # no more rents: what follows is the pool's decision about a and b alone
        clock.advance(60)
        pool.release(a, 1, finished_job=True)  # a is idle from now on; b stays busy
        clock.advance(100)
        pool.step()
        assert a.state == "ready"  # idle for 100 s < 120 s
        done_c, _ = request_in_background(pool, avoid_hosts=frozenset({a.instance_id}))
        pool.step()
        assert not done_c.is_set()  # c cannot use a; the pool is full (2 of 2): a's slot is needed for c
        pool.step()
        wait_until(lambda: a.state == "destroyed", what="a's release for the waiting job")
        record = pool.ledger.records[a.instance_id]
        assert record.end_reason.startswith("idle: no waiting job can use it")
        assert record.idle_seconds == pytest.approx(100.0) and record.busy_seconds == pytest.approx(60.0)
        assert record.jobs == 1
        pool.cancel_request(next(r.key for r in pool.requests))
        pool.release(b, 1)
        clock.advance(121)
        pool.step()
        wait_until(lambda: b.state == "destroyed", what="b's idle release")
        assert pool.ledger.records[b.instance_id].end_reason == "idle for 121 s"
        pool.drain()
        pool.step()
        assert pool.drained.is_set()
        [run] = read_runs(ledger_dir)  # finalized at the drain: complete before the last job is reported
        assert run["final"] is True and run["live_instances"] == 0 and run["end_reason"] == "no more remote jobs"
        written = (ledger_dir / "0a1b2c3d.json").stat().st_mtime_ns
    finally:
        pool.close()
    assert (ledger_dir / "0a1b2c3d.json").stat().st_mtime_ns == written  # the end of the run rewrote nothing
    assert stub_vast.live() == []


def test_budget_projection_stops_before_the_budget_is_spent(stub_vast, ssh_keypair, tmp_path: Path) -> None:
    """Spend so far + live $/h x the reaction time may never pass the budget: with a ManualClock the stop comes while
    the real spend is still below the budget, and the ledger's total stays below it."""
    clock = ManualClock(1000.0)
    messages: list[str] = []
    pool = make_pool(stub_vast, ssh_keypair, start=False, clock=clock, budget=0.001, ledger_dir=tmp_path / "l")
    pool.on_budget = messages.append
    try:
        done, got = request_in_background(pool)
        drive(pool, done.is_set, what="a host")
        host = got[0]
        horizon = pool.reaction_time()
        # 0.1 $/h: 0.001 $ after 36 s; the stop must come 'horizon' seconds before that
        clock.advance(36.0 - horizon - 1.0)
        pool.step()
        assert not pool.budget_hit
        clock.advance(1.5)
        pool.step()
        assert pool.budget_hit and messages and "Vast budget reached" in messages[0]
        wait_until(lambda: host.state == "destroyed", what="the budget stop's destroy")
    finally:
        pool.close()
    ledger = RunLedger.load(tmp_path / "l" / "0a1b2c3d.json")
    assert ledger.spent() < 0.001
    assert json.loads((tmp_path / "l" / "0a1b2c3d.json").read_text())["final"] is True


def test_no_rent_when_the_first_instance_would_break_the_budget(stub_vast, ssh_keypair) -> None:
    messages: list[str] = []
    pool = make_pool(stub_vast, ssh_keypair, budget=0.0000001)
    pool.on_budget = messages.append
    try:
        done, got = request_in_background(pool)
        assert done.wait(10) and isinstance(got[0], PoolClosed)
        assert stub_vast.instances == {} and pool.budget_hit and messages
    finally:
        pool.close()


def test_ledger_file_is_kept_up_to_date_during_the_run(stub_vast, ssh_keypair, tmp_path: Path) -> None:
    ledger_dir = tmp_path / "results" / "vast" / "ledger"
    pool = make_pool(stub_vast, ssh_keypair, ledger_dir=ledger_dir)
    pool.ledger.interval = 0.0
    path = ledger_dir / "0a1b2c3d.json"
    first = acquire(pool)
    ledger = json.loads(path.read_text())  # written at the rent and when the host became ready
    assert ledger["final"] is False and ledger["live_instances"] == 1
    assert ledger["instances"][0]["instance_id"] == first.instance_id and ledger["instances"][0]["ready_at"]
    pool.retire(first, "host died")
    wait_until(lambda: not json.loads(path.read_text())["live_instances"], what="the destroy's ledger update")
    second = acquire(pool)
    pool.close()
    ledger = json.loads(path.read_text())
    assert ledger["final"] is True and ledger["live_instances"] == 0
    assert [e["instance_id"] for e in ledger["instances"]] == [first.instance_id, second.instance_id]
    assert [e["end_reason"] for e in ledger["instances"]] == ["host died", "end of run"]
    assert ledger["total_cost_usd"] == pytest.approx(sum(e["cost_usd"] for e in ledger["instances"]))
    assert not list(ledger_dir.glob(".*tmp"))  # atomic writes leave no temp files
    assert stub_vast.live() == []


def test_unexpected_request_callback_errors_do_not_kill_the_manager(stub_vast, ssh_keypair) -> None:
    pool = make_pool(stub_vast, ssh_keypair)
    try:
        from snakemake_executor_plugin_vast.pool import HostRequest

        def boom(host) -> None:
            raise ValueError("bug in a callback")

        pool.request(HostRequest(key="bad", needs=JobNeeds(), on_host=boom, on_error=lambda exc: None))
        wait_until(lambda: pool.hosts and pool.hosts[0].state == "ready" and pool.hosts[0].used_gpus == 0)
        assert acquire(pool) is pool.hosts[0]  # the manager lives on and the host was given back
    finally:
        pool.close()
    assert threading.active_count() < 100
