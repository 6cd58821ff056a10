"""`density-engine vast status|cleanup` against the fake Vast server, including cleanup after a SIGKILLed controller."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap

import pytest
from click.testing import CliRunner

from density_engine.cli import main
from snakemake_executor_plugin_vast.client import VastClient
from tests.fake_vast import fixtures
from tests.fake_vast.fixtures import FakeVastHandle

fake_vast, ssh_keypair = fixtures.fake_vast, fixtures.ssh_keypair
CLI = [
    shutil.which("density-engine") or sys.executable,
    *([] if shutil.which("density-engine") else ["-c", "from density_engine.cli import main; main()"]),
]


def rent(handle: FakeVastHandle, labels: list[str]) -> list[int]:
    client = VastClient(handle.api_key, handle.base_url, interval_scale=0)
    offers = handle.fake.offer_ids()
    return [client.create_instance(offers[i], image="i", disk_gb=10, label=label) for i, label in enumerate(labels)]


def run_cli(handle: FakeVastHandle, monkeypatch: pytest.MonkeyPatch, *args: str) -> tuple[int, str]:
    monkeypatch.setenv("VAST_API_KEY", handle.api_key)
    result = CliRunner().invoke(main, ["vast", *args, "--api-url", handle.base_url, "--throttle-scale", "0"])
    assert handle.api_key not in result.output
    return result.exit_code, result.output


def test_status_lists_live_instances_with_cost(fake_vast: FakeVastHandle, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_vast.fake.t_null = 3600.0
    code, output = run_cli(fake_vast, monkeypatch, "status")
    assert (code, output.strip()) == (0, "No live instances (label density-engine-*).")
    ours, _other = rent(fake_vast, ["density-engine-0000000a-1", "someone-else-1"])
    code, output = run_cli(fake_vast, monkeypatch, "status")
    assert code == 0 and "density-engine-0000000a-1" in output and "someone-else-1" not in output
    assert "unknown" in output  # a run this machine never ran
    assert str(ours) in output and "1 live instance(s)" in output
    code, output = run_cli(fake_vast, monkeypatch, "status", "--all", "--json")
    payload = json.loads(output)
    assert code == 0 and len(payload["instances"]) == 2
    assert payload["total_dph"] == pytest.approx(sum(i.dph_total for i in fake_vast.fake.live_instances()))
    assert payload["total_cost_so_far"] >= 0


def test_cleanup_dry_run_scope_and_idempotence(fake_vast: FakeVastHandle, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = fake_vast.fake
    fake.t_null = 3600.0
    a1, a2, b1, other = rent(
        fake_vast, ["density-engine-0000000a-1", "density-engine-0000000a-2", "density-engine-0000000b-1", "mine-1"]
    )
    code, output = run_cli(fake_vast, monkeypatch, "cleanup")  # runs this machine does not know: left alone
    assert code == 0 and "Nothing to clean up" in output and len(fake.live_instances()) == 4
    code, output = run_cli(fake_vast, monkeypatch, "cleanup", "--run-id", "0000000a", "--dry-run")
    assert code == 0 and "would destroy" in output and len(fake.live_instances()) == 4
    fake.fail_deletes(2, status=503)  # Vast hiccups during cleanup: retried
    fake.resurrect_on_delete(a2)  # and one instance survives its first DELETE: destroyed again in round 2
    code, output = run_cli(fake_vast, monkeypatch, "cleanup", "--run-id", "0000000a")
    assert code == 0 and "Destroyed 2 instance(s)" in output
    assert len([r for r in fake.requests_to("DELETE", "/api/v0/instances/{id}/") if r.path.endswith(f"/{a2}/")]) >= 2
    assert sorted(i.id for i in fake.live_instances()) == sorted([b1, other])
    code, output = run_cli(fake_vast, monkeypatch, "cleanup", "--run-id", "0000000a")
    assert code == 0 and "Nothing to clean up" in output
    code, output = run_cli(fake_vast, monkeypatch, "cleanup", "--all-runs")  # every run of the prefix, never "mine-1"
    assert code == 0 and [i.id for i in fake.live_instances()] == [other]
    assert {a1, a2} <= {i["id"] for i in fake.ledger() if i["destroyed_at"] is not None}


def test_cleanup_removes_leftover_run_keys_from_the_account(
    fake_vast: FakeVastHandle, monkeypatch: pytest.MonkeyPatch, ssh_keypair
) -> None:
    """A SIGKILLed run leaves its SSH key registered (comment <label-prefix>-<run id>): cleanup removes just those."""
    client = VastClient(fake_vast.api_key, fake_vast.base_url, interval_scale=0)
    body = ssh_keypair.public_key.split()[:2]
    ids = {
        comment: client.add_account_ssh_key(" ".join([*body, comment]))
        for comment in ("density-engine-0a1b2c3d", "density-engine-deadbeef", "density-engine-laptop", "me@laptop")
    }
    code, output = run_cli(fake_vast, monkeypatch, "cleanup", "--run-id", "deadbeef", "--dry-run")
    assert code == 0 and "would remove account SSH key" in output and len(fake_vast.fake.account_keys) == 4
    code, output = run_cli(fake_vast, monkeypatch, "cleanup", "--run-id", "deadbeef")
    assert code == 0 and set(fake_vast.fake.account_keys) == set(ids.values()) - {ids["density-engine-deadbeef"]}
    code, output = run_cli(fake_vast, monkeypatch, "cleanup", "--all-runs")  # every run's key; never the user's own
    assert code == 0 and "Nothing to clean up" in output
    assert set(fake_vast.fake.account_keys) == {ids["density-engine-laptop"], ids["me@laptop"]}


def test_cleanup_without_key_fails_clearly(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.delenv("VAST_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    result = CliRunner().invoke(main, ["vast", "cleanup", "--api-url", "http://127.0.0.1:9"])
    assert result.exit_code == 1 and "VAST_API_KEY" in result.output


CONTROLLER = textwrap.dedent(
    """
    import os, sys, time
    from snakemake_executor_plugin_vast.client import VastClient
    client = VastClient(os.environ["VAST_API_KEY"], sys.argv[1], interval_scale=0)
    offers = client.search_offers("", limit=None)
    for n, offer in enumerate(offers[:3]):
        client.create_instance(offer.id, image="img", disk_gb=10, label=f"density-engine-{sys.argv[2]}-{n}")
    print("rented", flush=True)
    time.sleep(600)
    """
)


def test_cleanup_after_controller_sigkill(fake_vast: FakeVastHandle, tmp_path) -> None:
    fake = fake_vast.fake
    fake.t_null, fake.t_loading = 0.05, 0.05  # the hosts boot (real sshd) while the controller is dead
    env = {**os.environ, "VAST_API_KEY": fake_vast.api_key}
    controller = subprocess.Popen(
        [sys.executable, "-c", CONTROLLER, fake_vast.base_url, "00000042"], env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert controller.stdout is not None and controller.stdout.readline().strip() == "rented"
    finally:
        controller.send_signal(signal.SIGKILL)
        controller.wait(timeout=10)
    assert len(fake.live_instances("density-engine-00000042-")) == 3  # leaked: nobody cleaned up
    result = subprocess.run(
        [*CLI, "vast", "cleanup", "--api-url", fake_vast.base_url, "--run-id", "00000042", "--throttle-scale", "0"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert fake_vast.api_key not in result.stdout + result.stderr
    assert fake.live_instances() == []
    assert all(not inst.sshd.running for inst in fake.instances.values())
