"""Host pool: rent, reuse, next offer, boot failures, budget, ledger, destroy retries (stub client + real sshd)."""

from __future__ import annotations

import getpass
import json
import logging
import threading
import time
from pathlib import Path

import pytest

from snakemake_executor_plugin_vast.pool import (
    BudgetExceeded,
    HostPool,
    JobNeeds,
    PoolClosed,
    PoolSettings,
    offer_query_for,
)
from snakemake_executor_plugin_vast.query import parse_query
from snakemake_executor_plugin_vast.ssh import load_private_key

pytestmark = pytest.mark.ssh


def make_pool(stub, ssh_keypair, **overrides) -> HostPool:
    settings = PoolSettings(
        run_id="testrun1", image="img", max_instances=2, boot_timeout=10.0, unreachable_timeout=2.0,
        ssh_user=getpass.getuser(), destroy_retry_delay=0.05,
    )  # fmt: skip
    for name, value in overrides.items():
        setattr(settings, name, value)
    pool = HostPool(stub, settings, load_private_key(ssh_keypair.private_path), ssh_keypair.public_key)
    pool.start()
    return pool


def test_query_is_shaped_by_job_resources_and_price() -> None:
    settings = PoolSettings(run_id="r", image="i", offer_query="gpu_name=RTX_4090", max_price=0.5, disk_gb=40)
    query = offer_query_for(settings, JobNeeds(gpus=2, mem_mb=16000, disk_gb=60))
    parsed = parse_query(query)
    assert parsed["gpu_name"] == {"eq": "RTX 4090"}
    assert parsed["num_gpus"] == {"gte": "2"}
    assert parsed["cpu_ram"] == {"gte": 16000.0}  # GB in the grammar, MB on the wire
    assert parsed["disk_space"] == {"gte": "60"}
    assert parsed["dph_total"] == {"lte": "0.5"}


def test_host_is_reused_and_max_instances_caps_rentals(stub_vast, ssh_keypair) -> None:
    pool = make_pool(stub_vast, ssh_keypair, max_instances=1)
    try:
        host = pool.acquire(JobNeeds())
        assert host.conn is not None and host.conn.exec("echo hi").stdout == "hi\n"
        got: list = []
        waiter = threading.Thread(target=lambda: got.append(pool.acquire(JobNeeds())))
        waiter.start()
        time.sleep(0.8)
        assert not got, "a second job must wait while the only allowed host is busy"
        pool.release(host, 1)
        waiter.join(5)
        assert got == [host]
        assert [c for c in stub_vast.calls if c[0] == "create"] == [("create", 100)]  # one boot, cheapest offer
    finally:
        pool.close()
    assert stub_vast.live() == []
    assert pool.ledger[0].destroyed_at is not None


def test_vanished_offers_are_skipped_without_extra_instances(stub_vast, ssh_keypair) -> None:
    stub_vast.vanish = {100, 101}
    pool = make_pool(stub_vast, ssh_keypair)
    try:
        host = pool.acquire(JobNeeds())
        assert host.machine_id == 502
        assert [c[1] for c in stub_vast.calls if c[0] == "create"] == [100, 101, 102]
        assert len(stub_vast.instances) == 1 and len(pool.ledger) == 1
    finally:
        pool.close()
    assert stub_vast.live() == []


def test_stuck_and_fatal_hosts_are_replaced_and_blacklisted(stub_vast, ssh_keypair) -> None:
    stub_vast.stuck_machines = {500}
    stub_vast.fatal_machines = {501: "Error response from daemon: OCI runtime create failed: oops"}
    pool = make_pool(stub_vast, ssh_keypair, boot_timeout=3.0)
    try:
        started = time.monotonic()
        host = pool.acquire(JobNeeds())
        elapsed = time.monotonic() - started
        assert host.machine_id == 502
        assert {500, 501} <= pool.blacklist
        # stuck: one boot timeout (3 s); fatal: fails at its first poll, far below a second timeout
        assert 3.0 <= elapsed < 5.5
        destroyed = {c[1] for c in stub_vast.calls if c[0] == "destroy"}
        assert {1000, 1001} <= destroyed
    finally:
        pool.close()
    assert stub_vast.live() == []


def test_budget_stops_renting_and_ledger_is_written(stub_vast, ssh_keypair, tmp_path: Path) -> None:
    # 0.1 $/h: 0.0000278 $/s, so a budget of 0.00003 $ is reached about 1.1 s after the rent
    pool = make_pool(stub_vast, ssh_keypair, budget=0.00003)
    try:
        host = pool.acquire(JobNeeds())
        pool.release(host, 1)
        time.sleep(1.5)
        assert pool.budget_reached()
        with pytest.raises(BudgetExceeded, match="budget"):
            pool.acquire(JobNeeds(gpus=1))
    finally:
        pool.close()
    path = pool.write_ledger(tmp_path / "results" / "vast" / "cost_ledger.json")
    ledger = json.loads(path.read_text())
    assert len(ledger["instances"]) == 1 and ledger["budget_usd"] == 0.00003
    entry = ledger["instances"][0]
    expected = 0.1 * (entry["destroyed_at"] - entry["rented_at"]) / 3600
    assert ledger["total_cost_usd"] == pytest.approx(expected, rel=1e-3)
    assert ledger["total_cost_usd"] >= 0.00003
    assert "total: $" in pool.format_ledger()


def test_destroy_retries_api_errors(stub_vast, ssh_keypair) -> None:
    pool = make_pool(stub_vast, ssh_keypair)
    host = pool.acquire(JobNeeds())
    stub_vast.destroy_failures = 3
    pool.close()
    assert host.state == "destroyed"
    assert [c for c in stub_vast.calls if c[0] == "destroy"].count(("destroy", host.instance_id)) == 4
    assert stub_vast.live() == []


def acquire_in_background(pool: HostPool) -> tuple[threading.Thread, list[Exception]]:
    """Start ``pool.acquire()`` in a thread; the list collects what it raises."""
    errors: list[Exception] = []

    def worker() -> None:
        try:
            pool.acquire(JobNeeds())
        except Exception as exc:
            errors.append(exc)

    thread = threading.Thread(target=worker, daemon=True)
    thread.start()
    return thread, errors


def test_close_interrupts_a_waiting_acquire(stub_vast, ssh_keypair) -> None:
    stub_vast.stuck_machines = {500, 501, 502, 503, 504, 505}
    pool = make_pool(stub_vast, ssh_keypair, boot_timeout=60.0)
    thread, errors = acquire_in_background(pool)
    time.sleep(0.5)
    started = time.monotonic()
    pool.close()
    thread.join(10)
    assert time.monotonic() - started < 5
    assert errors and isinstance(errors[0], PoolClosed)
    assert stub_vast.live() == []


def test_keep_instances_leaves_them_running_for_cleanup(stub_vast, ssh_keypair) -> None:
    pool = make_pool(stub_vast, ssh_keypair, keep_instances=True)
    host = pool.acquire(JobNeeds())
    pool.close()
    assert stub_vast.live() == [host.instance_id]  # kept (and still billing) until cleaned up
    assert pool.ledger[0].destroyed_at is None
    records: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: records.append(record.getMessage())  # type: ignore[method-assign]
    logger = logging.getLogger("snakemake_executor_plugin_vast.pool")
    logger.addHandler(handler)
    try:
        make_pool(stub_vast, ssh_keypair).close()  # the next run warns about the kept instance
    finally:
        logger.removeHandler(handler)
    assert any("still live and billing" in r and str(host.instance_id) in r for r in records)
    stub_vast.destroy_instance(host.instance_id)


def test_unexpected_error_while_booting_destroys_the_instance_and_frees_its_slot(stub_vast, ssh_keypair) -> None:
    """Whatever ends a boot early (here a bug-like ValueError from the status call) destroys the instance before the
    error travels on, so it neither bills on nor holds the only max_instances slot (the next acquire would hang)."""
    pool = make_pool(stub_vast, ssh_keypair, max_instances=1)
    original = stub_vast.get_instance

    def broken_first(instance_id: int):
        if instance_id == 1000:
            raise ValueError("unexpected answer")
        return original(instance_id)

    stub_vast.get_instance = broken_first  # type: ignore[method-assign]
    try:
        with pytest.raises(ValueError, match="unexpected answer"):
            pool.acquire(JobNeeds())
        assert stub_vast.live() == [] and pool.hosts[0].state in ("dead", "destroyed")
        got: list = []
        waiter = threading.Thread(target=lambda: got.append(pool.acquire(JobNeeds())), daemon=True)
        waiter.start()
        waiter.join(15)
        assert got and got[0].instance_id == 1001, "the failed boot still holds the only instance slot"
    finally:
        pool.close()
    assert stub_vast.live() == []


def test_keep_instances_keeps_only_healthy_hosts(stub_vast, ssh_keypair) -> None:
    """--vast-keep-instances keeps ready hosts at the end, never dead ones (retired at once) or booting ones."""
    stub_vast.stuck_machines = {502}
    pool = make_pool(stub_vast, ssh_keypair, keep_instances=True, max_instances=3, boot_timeout=30.0)
    healthy, doomed = pool.acquire(JobNeeds()), pool.acquire(JobNeeds())
    booting, errors = acquire_in_background(pool)  # the third host never boots
    deadline = time.monotonic() + 10
    while len(stub_vast.instances) < 3:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    pool.retire(doomed, "host died")
    while doomed.instance_id in stub_vast.live():
        assert time.monotonic() < deadline, "a dead host was kept although it is useless"
        time.sleep(0.05)
    pool.close()
    booting.join(10)
    assert len(errors) == 1 and isinstance(errors[0], PoolClosed)
    assert stub_vast.live() == [healthy.instance_id]
    stub_vast.destroy_instance(healthy.instance_id)


def test_keep_instances_does_not_survive_the_budget(stub_vast, ssh_keypair) -> None:
    pool = make_pool(stub_vast, ssh_keypair, keep_instances=True, budget=0.00003)  # reached ~1.1 s after the rent
    host = pool.acquire(JobNeeds())
    pool.release(host, 1)
    deadline = time.monotonic() + 10
    while not pool.budget_reached():
        assert time.monotonic() < deadline
        time.sleep(0.1)
    pool.close()
    assert stub_vast.live() == [] and pool.ledger[0].destroyed_at is not None


def test_ledger_file_is_kept_up_to_date_during_the_run(stub_vast, ssh_keypair, tmp_path: Path) -> None:
    path = tmp_path / "results" / "vast" / "cost_ledger.json"
    pool = make_pool(stub_vast, ssh_keypair, ledger_path=path, ledger_interval=0.0)
    first = pool.acquire(JobNeeds())
    ledger = json.loads(path.read_text())  # written when the host was rented and when it became ready
    assert ledger["final"] is False and ledger["live_instances"] == 1
    assert ledger["instances"][0]["instance_id"] == first.instance_id and ledger["instances"][0]["ready_at"]
    written = ledger["written_at"]
    time.sleep(0.05)
    pool.maybe_write_ledger()  # the periodic update (every status cycle, at most every ledger_interval)
    assert json.loads(path.read_text())["written_at"] > written
    assert json.loads(path.read_text())["total_cost_usd"] > ledger["total_cost_usd"]
    pool.retire(first, "host died")
    deadline = time.monotonic() + 10
    while json.loads(path.read_text())["live_instances"]:
        assert time.monotonic() < deadline, "the destroy did not update the ledger file"
        time.sleep(0.05)
    second = pool.acquire(JobNeeds())
    pool.close()
    ledger = json.loads(path.read_text())
    assert ledger["final"] is True and ledger["live_instances"] == 0
    assert [e["instance_id"] for e in ledger["instances"]] == [first.instance_id, second.instance_id]
    assert [e["end_reason"] for e in ledger["instances"]] == ["host died", "end of run"]
    assert ledger["total_cost_usd"] == pytest.approx(sum(e["cost_usd"] for e in ledger["instances"]))
    assert not list(path.parent.glob(".*tmp"))  # atomic writes leave no temp files
