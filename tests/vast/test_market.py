"""Whole runs (`snakemake --profile profiles/vast`) against the fake Vast as a real market would behave (issue 10):
a scarce market with vanishing, stuck, fatal, full and dying hosts and 429 storms; a bad remote python; an image whose
python is a venv holding torch, on interruptible instances with a preemption; a restart after SIGKILL that adopts the
live hosts; many instances at once. Every test ends with 0 live instances."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fake_vast.sshd import IMAGE_ROOT, SYSTEM_PATH
from tests.vast.conftest import run_controller, start_controller, tiny_workflow, vast_command, vast_env

pytestmark = [pytest.mark.ssh, pytest.mark.slow]

MATCHING = {
    "verified": True, "rentable": True, "rented": False, "external": False, "reliability": 0.995, "reliability2": 0.995,
    "direct_port_count": 10, "cuda_max_good": 12.4, "inet_down": 900.0, "inet_up": 600.0, "disk_space": 200.0,
    "cpu_cores": 32, "cpu_cores_effective": 16.0, "cpu_ram": 64000.0, "storage_cost": 0.1, "compute_cap": 890,
    "geolocation": "Oslo, NO", "gpu_name": "RTX 4090", "num_gpus": 1, "gpu_ram": 24564.0, "dph_base": 0.30,
    "min_bid": 0.12,
}  # fmt: skip
"""An offer that matches profiles/vast's query (reliability, direct ports, bandwidth, CUDA, GPU memory, price, the
job's memory and disk)."""

NOT_MATCHING = [
    {"reliability": 0.95, "reliability2": 0.95}, {"direct_port_count": 0}, {"inet_down": 50.0},
    {"cuda_max_good": 11.8}, {"gpu_ram": 8192.0}, {"dph_base": 1.20}, {"dph_base": 0.95}, {"disk_space": 20.0},
    {"verified": False}, {"rentable": False},
]  # fmt: skip
"""Ten offers that each miss one clause of the profile's query."""


def wait_for(predicate, timeout: float, what: str, log_path: Path) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}:\n{log_path.read_text()[-5000:]}")
        time.sleep(0.1)


def market(fake, machine: int, **changes) -> int:
    """Add a matching offer on ``machine`` (``delay=``: it appears that many seconds after the first rent)."""
    delay = changes.pop("delay", None)
    row = {**MATCHING, "machine_id": machine, "host_id": 9000 + machine, **changes}
    return fake.add_offer_after_first_rent(delay, **row) if delay else fake.add_offer(**row)


def scarce_market(fake) -> dict[str, int]:
    """12 offers, 2 of which match the profile; more matching machines appear while the run waits."""
    fake.offers.clear()
    for n, change in enumerate(NOT_MATCHING):
        market(fake, 100 + n, **change)
    offers = {"vanishes": market(fake, 201, dph_base=0.25), "stuck": market(fake, 202)}
    fake.vanish_offer(offers["vanishes"])  # taken by someone else between our search and our rent
    fake.set_offer_behaviour(offers["stuck"], stuck_in="loading")
    offers["fatal"] = market(fake, 203, delay=2.0)
    fake.set_offer_behaviour(
        offers["fatal"], fatal_status="loading", fatal_status_msg="toomanyrequests: pull rate limit"
    )
    offers["full"] = market(fake, 204, delay=3.0)
    fake.set_offer_behaviour(offers["full"], workspace_kb=96)  # reports running; its /workspace is full
    offers["dies"] = market(fake, 205, delay=4.0)
    fake.set_offer_behaviour(offers["dies"], die_after=2.5, die_status="offline")
    offers["back"] = market(fake, 201, delay=4.0, dph_base=0.26)  # the vanished machine, offered again
    offers["late1"] = market(fake, 206, delay=5.0)
    offers["late2"] = market(fake, 207, delay=5.0)
    return offers


def ledgers(work: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((work / "results" / "vast" / "ledger").glob("*.json"))]


def test_scarce_market_with_bad_hosts_and_429_storms_completes(fake_vast, tmp_path: Path) -> None:
    base_url, fake, api_key = fake_vast
    fake.t_null, fake.t_loading = 0.1, 0.3
    scarce_market(fake)
    fake.rate_limit("GET", "/api/v1/instances/", every_k=3)
    fake.rate_limit("PUT", "/api/v0/asks/{id}/", first_n=2, body="json")
    fake.rate_limit("POST", "/api/v0/bundles/", every_k=4, body="detail")
    fake.rate_limit("DELETE", "/api/v0/instances/{id}/", every_k=2)
    work = tiny_workflow(tmp_path / "wf")
    cmd = vast_command(
        base_url, "--config", "count=4", "sleep=1", "--retries", "3", "--jobs", "4", "--vast-boot-timeout", "4",
        "--vast-offer-wait", "30", "--vast-idle-timeout", "2", max_instances=4,
    )  # fmt: skip
    code, log = run_controller(cmd, work, vast_env(api_key), timeout=240)
    assert code == 0, log[-8000:]
    assert [(work / "results" / "out" / f"{i}.txt").read_text() for i in range(4)] == ["0", "1", "4", "9"]
    assert fake.live_instances() == []
    assert "Trying to restart job" not in log  # host trouble never used up Snakemake's retries
    assert "no offer available" in log  # the jobs waited for capacity instead of failing
    [run] = ledgers(work)
    assert run["final"] is True and run["live_instances"] == 0
    reasons = " | ".join(row["end_reason"] for row in run["instances"])
    assert "boot failed: not running after the boot timeout" in reasons
    assert "boot failed: fatal status message" in reasons and "disk full" in reasons
    machines = {row["machine_id"] for row in run["instances"]}
    assert 202 in machines and 203 in machines and 204 in machines
    # the cost table rule ran after the last remote job and read the final ledger: a finished run reruns nothing
    assert (work / "results" / "costs.txt").read_text().split() == [
        run["run_id"],
        "True",
        "0",
        str(run["total_cost_usd"]),
    ]
    code, dry = run_controller(vast_command(base_url, "--config", "count=4", "sleep=1", "-n"), work, vast_env(api_key))
    assert code == 0 and "Nothing to be done" in dry, dry[-3000:]


def test_bad_remote_python_stops_after_two_machines(fake_vast, tmp_path: Path) -> None:
    base_url, fake, api_key = fake_vast
    work = tiny_workflow(tmp_path / "wf")
    cmd = vast_command(base_url, "--config", "count=2", "--vast-remote-python", "/opt/no-such/python3", max_instances=1)
    code, log = run_controller(cmd, work, vast_env(api_key))
    assert code != 0
    assert "the same set-up error happened on 2 different machines" in log, log[-5000:]
    assert "remote python '/opt/no-such/python3' not found" in log
    assert len(fake.instances) == 2  # no third paid boot
    assert fake.live_instances() == []
    assert "Trying to restart job" not in log


@pytest.fixture
def image_venv(tmp_path: Path) -> dict:
    """A fake "image" whose python is a venv holding torch (like Vast's /venv/main): the venv's packages come from the
    test interpreter's site-packages, which the host sees only through the venv (its base python sees none)."""
    import torch

    site = Path(torch.__file__).resolve().parents[1]
    venv = tmp_path / "image-venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    purelib = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    Path(purelib, "_image_packages.pth").write_text(f"{IMAGE_ROOT}/site\n")
    return {
        "image_binds": [(venv, "venv"), (site, "site")],
        "masks": [site],  # the base interpreter sees no packages: only the venv has them
        "session_path": SYSTEM_PATH,  # non-interactive SSH lacks the image's PATH ...
        "init_path": f"{IMAGE_ROOT}/venv/bin:{SYSTEM_PATH}",  # ... which the container's init has
    }


def test_venv_image_on_interruptible_hosts_with_a_preemption(fake_vast, image_venv: dict, tmp_path: Path) -> None:
    """--vast-remote-python python3 finds the image's venv python on the init's PATH; the run's venv chains it, so the
    image's torch is used and nothing is pip-installed; an outbid (preempted) host's job goes to another host without
    a Snakemake retry, and the ledger marks the preemption."""
    base_url, fake, api_key = fake_vast
    fake.offers.clear()
    for machine in (301, 302, 303):
        offer = market(fake, machine, dph_base=0.30 + machine / 10000)
        fake.set_offer_behaviour(offer, host_options=image_venv)
    work = tiny_workflow(tmp_path / "wf")
    log_path = work / "controller-preempt.log"
    cmd = vast_command(
        base_url, "--config", "count=2", "sleep=4", "probe_torch=1", "--vast-interruptible", "--vast-bid-factor",
        "1.5", "--vast-remote-python", "python3", max_instances=2,
    )  # fmt: skip
    proc = start_controller(cmd, work, vast_env(api_key), log_path)
    try:
        wait_for(lambda: "started on instance" in log_path.read_text(), 120, "a remote job", log_path)
        victim = int(re.search(r"started on instance (\d+)", log_path.read_text())[1])
        fake.preempt(victim)
        code = proc.wait(timeout=180)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    log = log_path.read_text()
    assert code == 0, log[-6000:]
    assert "Trying to restart job" not in log and "preempted" in log
    assert "installing on" not in log  # no pip install: the image's packages (torch, snakemake, ...) were used
    for i in range(2):
        torch_file = (work / "results" / "logs" / "work" / f"{i}.log").read_text().splitlines()[-1]
        assert torch_file == f"{IMAGE_ROOT}/site/torch/__init__.py"  # the image's torch, not a new one
    assert fake.live_instances() == []
    [run] = ledgers(work)
    assert run["preemptions"] == 1 and run["final"] is True
    victim_row = next(row for row in run["instances"] if row["instance_id"] == victim)
    assert victim_row["preempted"] is True and victim_row["interruptible"] is True
    assert victim_row["dph_total"] == pytest.approx(fake.instance(victim).dph_total)  # the bid (plus storage)
    assert fake.instance(victim).bid == pytest.approx(MATCHING["min_bid"] * 1.5)
    for inst in fake.instances.values():  # the run's venv holds our wheels, no torch of its own
        venv_site = list(inst.sshd.workspace_dir.glob("density-engine/venv/lib/python3*/site-packages"))
        if venv_site:
            assert not (venv_site[0] / "torch").exists() and (venv_site[0] / "density_engine").is_dir()


def test_restart_after_sigkill_adopts_the_live_hosts(fake_vast, tmp_path: Path) -> None:
    base_url, fake, api_key = fake_vast
    work = tiny_workflow(tmp_path / "wf")
    env = vast_env(api_key)
    log_path = work / "controller-killed.log"
    proc = start_controller(vast_command(base_url, "--config", "count=2", "sleep=120"), work, env, log_path)
    try:
        wait_for(lambda: log_path.read_text().count("started on instance") == 2, 120, "2 remote jobs", log_path)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert len(fake.live_instances()) == 2  # SIGKILL: nothing could clean up
    # cleanup knows the killed run (its lock file is free): it would destroy both; this is only a dry run
    listed = subprocess.run(
        ["density-engine", "vast", "cleanup", "--api-url", base_url, "--throttle-scale", "0", "--dry-run"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert listed.returncode == 0 and listed.stdout.count("would destroy") == 2, listed.stdout + listed.stderr
    assert api_key not in listed.stdout + listed.stderr
    unlock = run_controller([*vast_command(base_url), "--unlock"], work, env)  # Snakemake's own lock stays behind
    assert unlock[0] == 0, unlock[1][-2000:]
    code, log = run_controller(vast_command(base_url, "--config", "count=2", "sleep=0.5"), work, env)
    assert code == 0, log[-6000:]
    assert len(fake.instances) == 2  # the live hosts were adopted: no new rent, no new boot
    assert "adopted instance" in log and fake.live_instances() == []
    dead, new = sorted(ledgers(work), key=lambda run: run["started_at"])
    assert dead["final"] is True and dead["end_reason"] == "controller died" and dead["live_instances"] == 0
    assert {row["handed_to"] for row in dead["instances"]} == {new["run_id"]}
    assert {row["adopted_from"] for row in new["instances"]} == {dead["run_id"]}
    assert new["final"] is True and new["live_instances"] == 0
    assert not list((work / ".snakemake" / "vast").rglob("id_ed25519"))  # both runs' keys are gone with the hosts


def test_many_instances_poll_the_api_once_per_cycle(fake_vast, tmp_path: Path) -> None:
    """6 instances at once (benchmarks/vast_scale.py runs 100): the status of every instance comes from the instance
    list (one call per 25 instances per cycle), never from one GET per instance. The run also starts although its
    estimate is over the budget (--vast-allow-over-budget)."""
    base_url, fake, api_key = fake_vast
    fake.offers.clear()
    for machine in range(400, 408):
        market(fake, machine)
    work = tiny_workflow(tmp_path / "wf")
    (work / "estimate.json").write_text(json.dumps({"total": {"gpu_hours": {"RTX_4090": 100.0}}}))
    cmd = vast_command(
        base_url, "--config", "count=6", "--jobs", "6", "--vast-estimate-command", "cat estimate.json",
        "--vast-allow-over-budget", max_instances=6,
    )  # fmt: skip
    code, log = run_controller(cmd, work, vast_env(api_key), timeout=240)
    assert code == 0, log[-6000:]
    assert "exceeds --vast-budget $5; starting anyway (--vast-allow-over-budget)" in log
    assert fake.live_instances() == [] and len(fake.instances) == 6
    by_id = fake.requests_to("GET", "/api/v0/instances/{id}/")
    assert len(by_id) <= 2 * len(fake.instances)  # only the destroy checks ask one instance
    lists = fake.requests_to("GET", "/api/v1/instances/")
    span = max(r.time for r in fake.requests) - min(r.time for r in fake.requests)
    assert len(lists) <= span / 1.0 + 10  # about one list per status cycle (1 s here), whatever the instance count
