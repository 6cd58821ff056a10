"""The fake Vast server itself: state machine, billing ledger, failure injection, search and list semantics."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import paramiko
import pytest
import requests

from snakemake_executor_plugin_vast.client import VastClient
from tests.fake_vast import fixtures
from tests.fake_vast.fixtures import FakeVastHandle, SshKeyPair, require_sshd
from tests.fake_vast.server import FakeVast, ManualClock, running_fake
from tests.fake_vast.sshd import SshdHost, can_isolate, generate_keypair

pytestmark = pytest.mark.ssh
fake_vast, ssh_keypair = fixtures.fake_vast, fixtures.ssh_keypair

ROW_KEYS = {  # every instance row carries what the vastai SDK and our client read (vast-api.md §5.3)
    "id", "actual_status", "intended_status", "cur_state", "next_state", "status_msg", "label", "machine_id",
    "gpu_name", "num_gpus", "dph_total", "start_date", "extra_env", "image_uuid", "image_runtype", "onstart",
    "disk_space", "ssh_host", "ssh_port", "ssh_idx", "public_ipaddr", "ports", "direct_port_start", "direct_port_end",
}  # fmt: skip


@pytest.fixture
def manual_fake(tmp_path: Path) -> Iterator[tuple[FakeVast, ManualClock, VastClient]]:
    """A fake on a manual clock (state changes only when the test advances it) and a client for it."""
    require_sshd()
    clock = ManualClock()
    with running_fake(tmp_path / "fake", clock=clock) as fake:
        yield fake, clock, VastClient(fake.api_key, fake.base_url, interval_scale=0)


def wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.02)


def ssh(fake: FakeVast, instance_id: int, key: SshKeyPair, command: str) -> str:
    inst = fake.instance(instance_id)
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    client.connect("127.0.0.1", inst.direct_port, username=inst.sshd.user, key_filename=str(key.private_path),
                   look_for_keys=False, allow_agent=False, timeout=5)  # fmt: skip
    try:
        _, stdout, _ = client.exec_command(command, timeout=10)
        return stdout.read().decode()
    finally:
        client.close()


def test_state_machine_onstart_and_exact_billing(
    manual_fake: tuple[FakeVast, ManualClock, VastClient], ssh_keypair: SshKeyPair, tmp_path: Path
) -> None:
    fake, clock, client = manual_fake
    client.add_account_ssh_key(ssh_keypair.public_key)  # account key present at rent time → authorized
    onstart_key = tmp_path / "onstart_key"
    onstart_public = generate_keypair(onstart_key)
    real_root_keys = Path("/root/.ssh/authorized_keys")
    before = (real_root_keys.read_text() if real_root_keys.exists() else None, Path("/etc/environment").read_bytes())
    onstart = (
        "touch ~/.no_auto_tmux; echo $CONTAINER_ID > ~/cid; mkdir -p /workspace/boot && echo ok > /workspace/boot/f; "
        f"mkdir -p /root/.ssh; echo '{onstart_public}' >> /root/.ssh/authorized_keys; env | grep _ >> /etc/environment"
    )
    offer = client.search_offers("gpu_name=RTX_3090")[0]
    instance_id = client.create_instance(offer.id, image="img:2", disk_gb=72, label="t-1", onstart=onstart)
    row = client.get_instance(instance_id).raw
    assert set(row) >= ROW_KEYS and row["extra_env"] == [] and row["actual_status"] is None
    clock.advance(0.2)  # t_null
    assert client.get_instance(instance_id).actual_status == "loading"
    assert client.get_instance(instance_id).status_msg == "Pulling image img:2"
    clock.advance(0.5)  # t_loading
    inst = client.get_instance(instance_id)
    assert inst.actual_status == "running" and [e.kind for e in inst.endpoints] == ["direct", "proxy"]
    record = fake.instance(instance_id)
    wait_for(lambda: record.sshd.ready)
    home = record.sshd.inst_dir
    assert (home / ".no_auto_tmux").exists() and (home / "cid").read_text() == f"{instance_id}\n"
    if can_isolate():
        assert (record.sshd.workspace_dir / "boot" / "f").read_text() == "ok\n"
        assert not Path("/workspace/boot").exists()
    assert ssh(fake, instance_id, ssh_keypair, "cat /workspace/boot/f") == "ok\n"
    # a key written by onstart (as the executor's onstart does) lets us in; the test machine's files are untouched
    assert ssh(fake, instance_id, SshKeyPair(onstart_key, onstart_public), "echo in") == "in\n"
    if can_isolate():
        after = (real_root_keys.read_text() if real_root_keys.exists() else None, Path("/etc/environment").read_bytes())
        assert after == before and "CONTAINER_ID" in (home / "etc_environment").read_text()
    # billing: storage (storage_cost x disk / 720 per hour) from rent, GPU (dph_base) from running
    clock.advance(3600.0)
    storage_dph, gpu_dph = 0.1 * 72 / 720, 0.20
    expected = storage_dph * 3600.7 / 3600 + gpu_dph * 3600.0 / 3600
    assert fake.cost() == pytest.approx(expected, rel=1e-9)
    client.destroy_instance(instance_id)
    assert not record.sshd.running
    clock.advance(7200.0)
    assert fake.cost() == pytest.approx(expected, rel=1e-9)  # nothing billed after destroy
    assert fake.live_instances() == [] and fake.ledger()[0]["destroyed_at"] == pytest.approx(clock() - 7200.0)


def test_fatal_and_stuck_instances_never_run(manual_fake: tuple[FakeVast, ManualClock, VastClient]) -> None:
    fake, clock, client = manual_fake
    offers = fake.offer_ids()
    fake.queue_rent_behaviour(fatal_status="created")
    fake.set_offer_behaviour(offers[1], stuck_in="loading")
    fatal = client.create_instance(offers[0], image="i", disk_gb=10, label="f-1")
    stuck = client.create_instance(offers[1], image="i", disk_gb=10, label="s-1")
    clock.advance(10_000)
    assert client.get_instance(fatal).actual_status == "created"
    assert "OCI runtime create failed" in (client.get_instance(fatal).status_msg or "")
    assert client.get_instance(stuck).actual_status == "loading"
    assert fake.cost(fatal) > 0 and fake.instance(fatal).running_at is None  # storage only


def test_die_kills_sshd_and_jobs_then_recovers(
    manual_fake: tuple[FakeVast, ManualClock, VastClient], ssh_keypair: SshKeyPair
) -> None:
    fake, clock, client = manual_fake
    fake.queue_rent_behaviour(die_after=60.0, die_status="unknown", recover_after=30.0)
    client.add_account_ssh_key(ssh_keypair.public_key)
    instance_id = client.create_instance(fake.offer_ids()[0], image="i", disk_gb=10, label="d-1")
    clock.advance(0.7)
    fake.tick()
    record = fake.instance(instance_id)
    wait_for(lambda: record.sshd.ready)
    pid = ssh(fake, instance_id, ssh_keypair, "nohup sleep 300 >/dev/null 2>&1 & echo $!").strip()
    assert ssh(fake, instance_id, ssh_keypair, f"kill -0 {pid} && echo alive") == "alive\n"
    clock.advance(60.0)
    fake.tick()
    assert client.get_instance(instance_id).actual_status == "unknown"
    assert not record.sshd.running
    clock.advance(30.0)
    fake.tick()
    assert client.get_instance(instance_id).actual_status == "running"
    wait_for(lambda: record.sshd.ready)
    if can_isolate():  # the job died with the host
        assert ssh(fake, instance_id, ssh_keypair, f"kill -0 {pid} 2>/dev/null && echo alive || echo dead") == "dead\n"


def test_destroy_while_sshd_starts_leaves_no_sshd(
    manual_fake: tuple[FakeVast, ManualClock, VastClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The boot thread decided to start sshd, then the instance is destroyed before sshd runs: no sshd may appear
    afterwards (a late one used to live on for ~1 s after "destroyed", breaking "all sshds gone" checks)."""
    fake, clock, client = manual_fake
    entered, proceed = threading.Event(), threading.Event()
    original_start = SshdHost.start

    def gated_start(self: SshdHost, *args: object, **kwargs: object) -> bool:
        entered.set()
        assert proceed.wait(10)
        return original_start(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(SshdHost, "start", gated_start)
    instance_id = client.create_instance(fake.offer_ids()[0], image="i", disk_gb=10, label="race-1")
    clock.advance(0.7)
    fake.tick()  # running: the boot thread heads for sshd.start()
    assert entered.wait(10)
    client.destroy_instance(instance_id)
    proceed.set()
    record = fake.instance(instance_id)
    deadline = time.monotonic() + 2.0  # longer than an sshd start takes: a late sshd would show up
    while time.monotonic() < deadline:
        assert not record.sshd.running, "sshd runs after its instance was destroyed"
        time.sleep(0.01)


def test_sshd_late_after_running(manual_fake: tuple[FakeVast, ManualClock, VastClient]) -> None:
    fake, clock, client = manual_fake
    fake.queue_rent_behaviour(ssh_delay=20.0)
    instance_id = client.create_instance(fake.offer_ids()[0], image="i", disk_gb=10, label="late-1")
    clock.advance(0.7)
    assert client.get_instance(instance_id).is_running
    time.sleep(0.3)  # the boot thread had time to start sshd, had it not been late
    assert not fake.instance(instance_id).sshd.running
    clock.advance(20.0)
    wait_for(lambda: fake.instance(instance_id).sshd.ready)


def test_attach_delay_and_http_kill(
    manual_fake: tuple[FakeVast, ManualClock, VastClient], ssh_keypair: SshKeyPair
) -> None:
    fake, clock, client = manual_fake
    fake.queue_rent_behaviour(key_attach_delay=5.0)
    instance_id = client.create_instance(fake.offer_ids()[0], image="i", disk_gb=10, label="k-1")
    client.attach_ssh_key(instance_id, ssh_keypair.public_key)
    keys = fake.instance(instance_id).sshd.authorized_keys_path
    assert ssh_keypair.public_key not in keys.read_text()
    clock.advance(5.0)
    fake.tick()
    assert ssh_keypair.public_key in keys.read_text()
    answer = requests.post(f"{fake.base_url}/_fake/instances/{instance_id}/kill/?status=exited",
                           headers={"Authorization": f"Bearer {fake.api_key}"}, timeout=5)  # fmt: skip
    assert answer.status_code == 200 and client.get_instance(instance_id).actual_status == "exited"


def test_search_filters_like_vast(fake_vast: FakeVastHandle) -> None:
    client = VastClient(fake_vast.api_key, fake_vast.base_url, interval_scale=0)
    names = [o.gpu_name for o in client.search_offers("", limit=None)]
    assert "H100 SXM" not in names  # default verified=true hides the unverified offer
    assert "H100 SXM" in [o.gpu_name for o in client.search_offers("verified=any", limit=None)]
    assert {o.gpu_name for o in client.search_offers("gpu_name in [RTX_3090,A100_SXM4]")} == {"RTX 3090", "A100 SXM4"}
    assert [o.num_gpus for o in client.search_offers("num_gpus>=2")] == [2]
    assert all(o.reliability >= 0.99 for o in client.search_offers("reliability>0.99"))  # "0.99" compared as number
    assert all(o.geolocation.endswith("US") for o in client.search_offers("geolocation=US"))
    cheapest_first = [o.dph_total for o in client.search_offers("")]
    assert cheapest_first == sorted(cheapest_first)
    priciest = client.search_offers("", order="dph_total-", limit=2)
    assert len(priciest) == 2 and priciest[0].dph_total >= priciest[1].dph_total
    assert [o.gpu_name for o in client.search_offers("gpu_ram>=80 verified=any direct_port_count>=1")] == ["A100 SXM4"]


def test_list_filters_auth_and_legacy_routes(fake_vast: FakeVastHandle) -> None:
    client = VastClient(fake_vast.api_key, fake_vast.base_url, interval_scale=0)
    fake_vast.fake.t_null = 3600.0
    first = client.create_instance(fake_vast.fake.offer_ids()[0], image="i", disk_gb=10, label="keep-1")
    client.create_instance(fake_vast.fake.offer_ids()[1], image="i", disk_gb=10, label="other-1")
    headers = {"Authorization": f"Bearer {fake_vast.api_key}"}
    url = f"{fake_vast.base_url}/api/v1/instances/"
    answer = requests.get(url, params={"select_filters": json.dumps({"label": {"eq": "keep-1"}})}, headers=headers,
                          timeout=5).json()  # fmt: skip
    assert [row["id"] for row in answer["instances"]] == [first] and answer["next_token"] is None
    computed = requests.get(url, params={"select_filters": json.dumps({"dph_total": {"lt": 1}})}, headers=headers,
                            timeout=5)  # fmt: skip
    assert computed.status_code == 400
    assert requests.get(f"{fake_vast.base_url}/api/v0/instances/", headers=headers, timeout=5).status_code == 410
    assert requests.get(url, headers={"Authorization": "Bearer wrong"}, timeout=5).status_code == 401
    too_long = requests.put(f"{fake_vast.base_url}/api/v0/asks/{fake_vast.fake.offer_ids()[2]}/", headers=headers,
                            json={"image": "i", "onstart": "x" * 4049}, timeout=5)  # fmt: skip
    assert too_long.status_code == 400
    gone = requests.delete(f"{fake_vast.base_url}/api/v0/instances/123/", headers=headers, timeout=5)
    assert (gone.status_code, gone.json()["error"]) == (404, "no_such_instance")
    assert [r.status for r in fake_vast.fake.requests if r.path == "/api/v0/instances/"] == [410]
