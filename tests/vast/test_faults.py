"""Fault cases of the issue against the HTTP fake Vast (real sshd hosts): each ends complete or cleanly, 0 leaked.

Pool-level cases (fast, no Snakemake) use the real REST client; the last ones run `snakemake --profile profiles/vast`.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
from pathlib import Path

import pytest

from snakemake_executor_plugin_vast.client import VastClient
from snakemake_executor_plugin_vast.offers import JobNeeds
from snakemake_executor_plugin_vast.pool import HostPool
from snakemake_executor_plugin_vast.ssh import generate_run_key
from tests.vast.conftest import (
    acquire,
    fast_pool_settings,
    run_controller,
    start_controller,
    tiny_workflow,
    vast_command,
    vast_env,
)

pytestmark = pytest.mark.ssh


@pytest.fixture
def http_pool(fake_vast, tmp_path: Path):
    """Factory of HostPools on the fake through the real REST client; every pool is closed at teardown."""
    base_url, fake, api_key = fake_vast
    key, public = generate_run_key(tmp_path / "key" / "id_ed25519")
    pools: list[HostPool] = []

    def factory(**overrides) -> HostPool:
        client = VastClient(api_key, base_url, interval_scale=0.0, backoff_base=0.05, backoff_cap=0.5)
        settings = fast_pool_settings(image="pytorch/pytorch", boot_timeout=15.0, unreachable_timeout=3.0)
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
    host = acquire(http_pool())
    assert host.conn.exec("echo up").stdout == "up\n"
    assert [inst.offer.id for inst in fake.instances.values()] == [second]  # no extra (paid) instance
    assert len(fake.requests_to("PUT", "/api/v0/asks/{id}/")) == 2


def test_stuck_in_loading_times_out_and_is_replaced(fake_vast, http_pool) -> None:
    _, fake, _ = fake_vast
    first, second = cheapest(fake, 2)
    fake.set_offer_behaviour(first, stuck_in="loading")
    pool = http_pool(boot_timeout=3.0)
    host = acquire(pool)
    assert host.instance_id != min(fake.instances) and fake.instances[host.instance_id].offer.id == second
    assert not fake.instances[min(fake.instances)].live  # the stuck one was destroyed
    assert fake.offers[first].row["machine_id"] in pool.blacklist


def test_fatal_status_message_fails_fast(fake_vast, http_pool) -> None:
    _, fake, _ = fake_vast
    first, _second = cheapest(fake, 2)
    fake.set_offer_behaviour(first, fatal_status="loading", fatal_status_msg="toomanyrequests: pull rate limit")
    pool = http_pool(boot_timeout=600.0)
    host = acquire(pool, timeout=60)  # a boot timeout of 600 s was never waited for: the status message decided
    assert fake.instances[host.instance_id].offer.id != first
    failed = next(r for r in pool.ledger.records.values() if r.instance_id != host.instance_id)
    assert failed.end_reason.startswith("boot failed: fatal status message") and "pull rate limit" in failed.end_reason
    assert fake.offers[first].row["machine_id"] in pool.blacklist


def test_sshd_late_after_running_is_waited_for(fake_vast, http_pool) -> None:
    _, fake, _ = fake_vast
    fake.queue_rent_behaviour(ssh_delay=2.0)
    host = acquire(http_pool())
    assert host.conn.exec("true").ok and len(fake.instances) == 1  # waited for sshd; no replacement rented


def test_429_storm_still_completes_with_bounded_requests(fake_vast, http_pool) -> None:
    _, fake, _ = fake_vast
    fake.rate_limit("GET", "/api/v0/instances/{id}/", every_k=2)
    fake.rate_limit("PUT", "/api/v0/asks/{id}/", first_n=3, body="json")
    fake.rate_limit("POST", "/api/v0/bundles/", first_n=2)
    host = acquire(http_pool())
    assert host.conn.exec("true").ok
    assert len(fake.instances) == 1  # 429s on rent never created a second instance
    assert len(fake.requests) < 80


def test_delete_failing_with_5xx_is_retried_until_gone(fake_vast, http_pool) -> None:
    _, fake, _ = fake_vast
    pool = http_pool()
    host = acquire(pool)
    fake.fail_deletes(3, status=502)
    pool.close()
    assert host.state == "destroyed" and fake.live_instances() == []
    assert len(fake.requests_to("DELETE", "/api/v0/instances/{id}/")) >= 4


def test_rate_limited_status_lists_while_booting_mean_unknown_not_failure(fake_vast, http_pool) -> None:
    """429s that outlast the client's retries on the instance list while an instance boots keep the last snapshot
    ("unknown"), never fail the boot: the request still gets that host, and no second instance is rented."""
    _, fake, _ = fake_vast
    fake.rate_limit("GET", "/api/v1/instances/", first_n=10)  # > 1 + max_retries: one list raises RateLimited
    pool = http_pool(max_instances=1)
    host = acquire(pool)
    assert host.conn.exec("true").ok
    assert len(fake.instances) == 1 and fake.instances[host.instance_id].live


def test_ambiguous_rent_whose_lookup_missed_is_destroyed(fake_vast, http_pool) -> None:
    """The rent's answer is lost (502) and the label lookup misses (the list lags): the instance exists and bills.
    The pool looks for the label again shortly after and destroys it; the end-of-run sweep is the last net."""
    _, fake, _ = fake_vast
    fake.queue_rent_behaviour(list_lag=1.0)
    fake.fail_rent_answers(1, status=502)
    pool = http_pool(max_instances=1)
    acquire(pool, timeout=60)  # the lost rent's instance is found by its label and destroyed; another one serves
    deadline = time.monotonic() + 15
    while len(fake.live_instances()) > 1:
        assert time.monotonic() < deadline, "the ambiguous rent's instance was never destroyed"
        time.sleep(0.1)
    leaked = fake.instances[min(fake.instances)]
    assert not leaked.live and leaked.label.startswith(pool.settings.run_label_prefix)
    assert pool.ledger.records[leaked.id].end_reason == "ambiguous rent"  # billed to this run's ledger


def test_end_of_run_sweep_destroys_instances_the_pool_lost(fake_vast, http_pool) -> None:
    _, fake, api_key = fake_vast
    pool = http_pool()
    host = acquire(pool)
    other = VastClient(api_key, fake.base_url, interval_scale=0)
    lost = other.create_instance(
        cheapest(fake, 3)[2], image="i", disk_gb=10, label=f"{pool.settings.run_label_prefix}99"
    )
    foreign = other.create_instance(cheapest(fake, 4)[3], image="i", disk_gb=10, label="snakemake-vast-0f0f0f0f-1")
    pool.close()
    assert [i.id for i in fake.live_instances()] == [foreign]  # another run's instance is never touched
    ended = {r.instance_id for r in pool.ledger.records.values() if r.destroyed_at is not None}
    assert {host.instance_id, lost} <= ended
    other.destroy_instance(foreign)


def test_offer_search_prices_the_rented_disk(fake_vast, http_pool) -> None:
    _, fake, _ = fake_vast
    host = acquire(http_pool(disk_gb=40.0), JobNeeds(disk_gb=90.0))
    searches = fake.requests_to("POST", "/api/v0/bundles/")
    assert searches and all(req.body["allocated_storage"] == 90.0 for req in searches)
    assert fake.instances[host.instance_id].disk == 90.0
    assert host.dph_total == pytest.approx(fake.instances[host.instance_id].dph_total)  # the ledger's price is right


def test_container_log_of_a_failed_boot_is_saved(fake_vast, http_pool, tmp_path: Path) -> None:
    _, fake, _ = fake_vast
    first = cheapest(fake)[0]
    fake.set_offer_behaviour(first, fatal_status="loading", fatal_status_msg="toomanyrequests: pull rate limit")
    pool = http_pool(log_dir=tmp_path / "container-logs")
    host = acquire(pool)
    failed = next(i for i in fake.instances.values() if i.offer.id == first)
    assert host.instance_id != failed.id and not failed.live
    saved = tmp_path / "container-logs" / f"instance-{failed.id}.container.log"
    assert saved.is_file() and saved.read_text().strip()  # fetched before the destroy (afterwards Vast has none)


# ---- whole runs: snakemake --profile profiles/vast against the fake -------------------------------------------------


def wait_for(predicate, timeout: float, what: str, log_path: Path) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}:\n{log_path.read_text()[-4000:]}")
        time.sleep(0.2)


def host_markers(fake, kind: str) -> list[Path]:
    """Marker files the tiny workflow's jobs wrote on the fake hosts (``results/<kind>/<i>``, kind started|term)."""
    return [p for inst in fake.instances.values() for p in inst.sshd.workspace_dir.rglob(f"results/{kind}/*")]


def test_sigint_during_a_run_kills_jobs_and_destroys_every_instance(fake_vast, tmp_path: Path) -> None:
    base_url, fake, api_key = fake_vast
    work = tiny_workflow(tmp_path / "wf")
    log_path = work / "controller-sigint.log"
    proc = start_controller(
        vast_command(base_url, "--config", "count=2", "sleep=120"), work, vast_env(api_key), log_path
    )
    try:
        wait_for(lambda: len(host_markers(fake, "started")) == 2, 90, "2 remote jobs running", log_path)
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
    # cancel_jobs killed the remote jobs (SIGTERM to their process groups) before the hosts were destroyed (SIGKILL
    # of the whole host would leave no marker): each job's TERM trap wrote one
    assert sorted(p.name for p in host_markers(fake, "term")) == ["0", "1"], log[-4000:]


def test_budget_is_never_exceeded_and_the_run_ends_cleanly(fake_vast, tmp_path: Path) -> None:
    """The projected spend (spent + live $/h x the time to react) stops the run before the budget is spent: the fake's
    own bill, and the ledger, stay below --vast-budget; one clean stop, no job failed and resubmitted."""
    base_url, fake, api_key = fake_vast
    work = tiny_workflow(tmp_path / "wf")
    budget = 0.0006  # the cheapest offer bills ~0.20 $/h: reached ~10 s after the rent, long before the 60 s job ends
    cmd = vast_command(base_url, "--config", "count=2", "sleep=60", "--vast-budget", str(budget), max_instances=1)
    code, log = run_controller(cmd, work, vast_env(api_key))
    assert code != 0
    assert "WorkflowError:\nVast budget reached" in log and "Raise --vast-budget" in log, log[-4000:]
    assert "Trying to restart job" not in log and "Error in group" not in log and "Error in rule" not in log
    assert fake.live_instances() == []
    assert len(fake.instances) == 1  # nothing rented after the budget was reached
    assert fake.cost() <= budget  # the real bill: storage from the rent, GPU while running
    [path] = (work / "results" / "vast" / "ledger").glob("*.json")
    ledger = json.loads(path.read_text())
    assert ledger["budget_usd"] == budget and ledger["final"] is True and ledger["live_instances"] == 0
    assert fake.cost() <= ledger["total_cost_usd"] <= budget  # the ledger is conservative and within the budget
    assert ledger["instances"][0]["end_reason"] == "budget reached"


def test_wrong_api_key_stops_the_run_at_start(fake_vast, tmp_path: Path) -> None:
    base_url, fake, _ = fake_vast
    work = tiny_workflow(tmp_path / "wf")
    wrong = "not-the-key-" + "x" * 20
    code, log = run_controller(vast_command(base_url, "--config", "count=1"), work, vast_env(wrong))
    assert code != 0
    assert "the Vast.ai API key was rejected" in log and "HTTP 401" in log, log[-3000:]
    assert wrong not in log
    assert fake.instances == {} and "Trying to restart job" not in log  # found before any job or rent
    assert not fake.requests_to("PUT", "/api/v0/asks/{id}/")


ESTIMATE = {
    "models": {"demo": {"parameter_sets": 4, "chunks": 2, "path_steps": 10**9, "gpu_hours": {"RTX 4090": 2.0}}},
    "total": {"gpu_hours": {"RTX 4090": 2.0, "A100 SXM4": 1.0}, "cpu_hours": 9.0},
}


def test_estimate_is_priced_at_current_offers_and_refused_over_the_budget(fake_vast, tmp_path: Path) -> None:
    """The start-up estimate (the JSON contract of `density-engine estimate --json`) is priced per GPU type at the
    cheapest matching offer; over --vast-budget the run refuses to start and rents nothing, unless told to continue."""
    base_url, fake, api_key = fake_vast
    work = tiny_workflow(tmp_path / "wf")
    (work / "estimate.json").write_text(json.dumps(ESTIMATE))
    estimate = ["--vast-estimate-command", "cat estimate.json", "--vast-max-price", "5"]
    # RTX 4090: 2 GPU-h at ~0.354 $/h (the cheapest 4090 offer incl. storage) = ~0.71 $; over a 0.5 $ budget
    code, log = run_controller(
        vast_command(base_url, "--config", "count=1", *estimate, "--vast-budget", "0.5"), work, vast_env(api_key)
    )
    assert code != 0 and "exceeds --vast-budget $0.5; nothing was rented" in log, log[-3000:]
    assert re.search(r"RTX 4090\s+2\.000 GPU-h\s+\$0\.35\d\d/GPU-h\s+\$0\.71", log), log[-3000:]
    assert "A100 SXM4" in log and fake.instances == {}
    # --vast-allow-over-budget starts anyway: see test_market.py::test_many_instances_poll_the_api_once_per_cycle


def test_quote_gpu_hours_prices_per_gpu_type_and_per_gpu(fake_vast) -> None:
    from snakemake_executor_plugin_vast.pricing import expected_quote, quote_gpu_hours

    base_url, _, api_key = fake_vast
    client = VastClient(api_key, base_url, interval_scale=0)
    quotes = quote_gpu_hours(client, "", {"RTX 4090": 10.0, "RTX 3090": 4.0, "B200": 1.0}, disk_gb=20)
    by_type = {q.gpu_type: q for q in quotes}
    # the 2-GPU 4090 offer (0.75 $/h) costs 0.375 $/GPU-h: the 1-GPU 0.35 $/h offer is cheaper per GPU
    assert by_type["RTX 4090"].usd_per_gpu_hour == pytest.approx(0.35 + 0.1 * 20 / 720)
    assert by_type["RTX 4090"].cost_usd == pytest.approx(10 * (0.35 + 0.1 * 20 / 720))
    assert by_type["B200"].usd_per_gpu_hour is None and by_type["B200"].cost_usd is None
    assert expected_quote(quotes).gpu_type == "RTX 3090"  # the pool rents the cheapest matching GPU first
    bids = quote_gpu_hours(client, "", {"RTX 3090": 1.0}, disk_gb=20, interruptible=True, bid_factor=2.0)
    assert bids[0].usd_per_gpu_hour == pytest.approx(0.10 * 2.0 + 0.1 * 20 / 720)  # min_bid x factor + storage
