"""The Vast.ai REST client against the fake Vast server (a real HTTP server on 127.0.0.1)."""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from snakemake_executor_plugin_vast.client import (
    AuthError,
    InstanceGone,
    OfferUnavailable,
    RateLimited,
    SshEndpoint,
    VastClient,
    VastError,
    resolve_api_key,
)
from tests.fake_vast import fixtures
from tests.fake_vast.fixtures import FakeVastHandle
from tests.fake_vast.server import ManualClock

fake_vast = fixtures.fake_vast

BY_ID = "/api/v0/instances/{id}/"


def make_client(handle: FakeVastHandle, sleeps: list[float] | None = None, **kwargs: object) -> VastClient:
    """A client for the fake. With ``sleeps``, the client runs on a manual clock: every wait is recorded and
    advances that clock instead of sleeping, so back-off tests take no real time."""
    kwargs.setdefault("interval_scale", 0.0)
    if sleeps is not None:
        clock = ManualClock()

        def sleep(seconds: float) -> None:
            sleeps.append(round(seconds, 6))
            clock.advance(seconds)

        kwargs["sleep"], kwargs["clock"] = sleep, clock
    return VastClient(handle.api_key, handle.base_url, **kwargs)  # type: ignore[arg-type]


def wait_running(client: VastClient, instance_id: int, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        inst = client.get_instance(instance_id)
        if inst.is_running:
            return inst
        time.sleep(0.02)
    raise AssertionError(f"instance {instance_id} not running after {timeout} s")


def test_happy_path_search_rent_poll_destroy(fake_vast: FakeVastHandle) -> None:
    fake = fake_vast.fake
    fake.t_null, fake.t_loading = 0.05, 0.1
    client = make_client(fake_vast)
    offers = client.search_offers("gpu_name=RTX_4090 num_gpus=1 dph<1", disk_gb=36)
    assert [o.gpu_name for o in offers] == ["RTX 4090", "RTX 4090"]
    assert offers[0].dph_total == pytest.approx(0.35 + 0.1 * 36 / 720)  # dph_base + storage_cost * disk / 720
    assert offers[0].dph_total < offers[1].dph_total
    instance_id = client.create_instance(offers[0].id, image="img:1", disk_gb=36, label="density-engine-r1-0")
    first = client.get_instance(instance_id)
    assert first.label == "density-engine-r1-0"
    if first.actual_status in (None, "loading"):
        assert [e.kind for e in first.endpoints] == ["proxy"]  # no port mapping before running
    inst = wait_running(client, instance_id)
    direct, proxy = inst.endpoints
    assert direct == SshEndpoint("127.0.0.1", fake.instance(instance_id).direct_port, "direct")  # address stripped
    assert proxy.kind == "proxy" and proxy.port == fake.instance(instance_id).proxy_port
    assert inst.machine_id == offers[0].machine_id and inst.dph_total == pytest.approx(offers[0].dph_total)
    assert offers[0].id not in [o.id for o in client.search_offers("gpu_name=RTX_4090")]  # rented: not offered
    assert client.destroy_instance(instance_id) is True
    with pytest.raises(InstanceGone):
        client.get_instance(instance_id)
    assert client.destroy_instance(instance_id) is True  # already gone (404 no_such_instance) is success
    assert fake.live_instances() == []
    assert client.current_user()["email"] == "test@example.com"


@pytest.mark.parametrize("status", [404, 410])
def test_vanished_offer_raises_offer_unavailable(fake_vast: FakeVastHandle, status: int) -> None:
    client = make_client(fake_vast)
    offers = client.search_offers("")
    fake_vast.fake.vanish_offer(offers[0].id, status=status)
    with pytest.raises(OfferUnavailable) as raised:
        client.create_instance(offers[0].id, image="img", disk_gb=10, label="density-engine-x-0")
    assert raised.value.status == status and "no_such_ask" in str(raised.value)
    assert len(fake_vast.fake.requests_to("PUT", "/api/v0/asks/{id}/")) == 1  # never retried
    assert offers[0].id not in [o.id for o in client.search_offers("")]
    assert client.create_instance(offers[1].id, image="img", disk_gb=10, label="density-engine-x-1") > 0
    assert len(fake_vast.fake.live_instances()) == 1


def test_429_storm_completes_with_bounded_requests(fake_vast: FakeVastHandle) -> None:
    client_sleeps: list[float] = []
    client = make_client(fake_vast, client_sleeps, rng=lambda: 1.0)
    instance_id = client.create_instance(fake_vast.fake.offer_ids()[0], image="i", disk_gb=10, label="l-1")
    fake_vast.fake.rate_limit("GET", BY_ID, first_n=4, body="detail")
    assert client.get_instance(instance_id).id == instance_id
    assert len(fake_vast.fake.requests_to("GET", BY_ID)) == 5  # 4 answered 429, the 5th succeeded
    assert client_sleeps == [0.5, 1.0, 2.0, 4.0]  # exponential back-off (jitter pinned by rng=1)

    # Retry-After is honoured when sent; plain-text 429 bodies are understood
    client_sleeps.clear()
    fake_vast.fake.rate_limit("GET", BY_ID, first_n=2, body="plain", retry_after=1.5)
    client.get_instance(instance_id)
    assert client_sleeps == [1.5, 1.5]

    # a storm that never ends gives RateLimited after max_retries + 1 requests, not a hang
    fake_vast.fake.rate_limit("GET", BY_ID, every_k=1, body="json")
    before = len(fake_vast.fake.requests_to("GET", BY_ID))
    with pytest.raises(RateLimited):
        make_client(fake_vast, [], max_retries=3).get_instance(instance_id)
    assert len(fake_vast.fake.requests_to("GET", BY_ID)) - before == 4


def test_backoff_is_capped_and_jittered(fake_vast: FakeVastHandle) -> None:
    sleeps: list[float] = []
    client = make_client(fake_vast, sleeps, max_retries=8, backoff_base=0.5, backoff_cap=4.0, rng=lambda: 0.0)
    fake_vast.fake.rate_limit("POST", "/api/v0/bundles/", every_k=1)
    with pytest.raises(RateLimited):
        client.search_offers("")
    # equal jitter: between half and all of min(cap, base * 2**n); rng=0 gives the lower half
    assert sleeps == [0.25, 0.5, 1.0, 2.0, 2.0, 2.0, 2.0, 2.0]


def test_search_quota_is_not_retried(fake_vast: FakeVastHandle) -> None:
    fake_vast.fake.rate_limit("POST", "/api/v0/bundles/", every_k=1, body="quota")
    with pytest.raises(RateLimited, match="quota"):
        make_client(fake_vast, []).search_offers("")
    assert len(fake_vast.fake.requests_to("POST", "/api/v0/bundles/")) == 1  # resets at UTC midnight: no retry


def test_min_interval_spaces_requests_per_endpoint(fake_vast: FakeVastHandle) -> None:
    sleeps: list[float] = []
    client = make_client(fake_vast, sleeps, interval_scale=0.5)
    instance_id = client.create_instance(fake_vast.fake.offer_ids()[0], image="i", disk_gb=10, label="l-1")
    for _ in range(3):
        client.get_instance(instance_id)
    client.list_instances()
    client.list_instances()
    # by-id GET threshold 2.0 s x 0.5; v1 list 1.0 s x 0.5; the first call of each endpoint does not wait
    assert sleeps == [1.0, 1.0, 0.5]


def test_delete_5xx_is_retried_and_gone_is_success(fake_vast: FakeVastHandle) -> None:
    sleeps: list[float] = []
    client = make_client(fake_vast, sleeps)
    instance_id = client.create_instance(fake_vast.fake.offer_ids()[0], image="i", disk_gb=10, label="l-1")
    fake_vast.fake.fail_deletes(2, status=502)
    assert client.destroy_instance(instance_id) is True
    deletes = fake_vast.fake.requests_to("DELETE", BY_ID)
    assert [r.status for r in deletes] == [502, 502, 200]
    assert len(sleeps) == 2 and fake_vast.fake.live_instances() == []
    assert client.destroy_instance(instance_id) is True
    assert client.destroy_instance(987654) is True  # never existed: also "gone"


def test_ambiguous_rent_is_resolved_by_label_not_repeated(fake_vast: FakeVastHandle) -> None:
    client = make_client(fake_vast, [])
    fake_vast.fake.fail_rent_answers(1, status=502)
    instance_id = client.create_instance(fake_vast.fake.offer_ids()[0], image="i", disk_gb=10, label="run-7-3")
    assert [inst.id for inst in fake_vast.fake.live_instances()] == [instance_id]
    assert len(fake_vast.fake.requests_to("PUT", "/api/v0/asks/{id}/")) == 1


def test_list_instances_pages_and_filters_by_prefix(fake_vast: FakeVastHandle) -> None:
    fake = fake_vast.fake
    fake.t_null = 3600.0  # stay provisioning: no sshd needed for this test
    for _ in range(23):
        fake.add_offer(gpu_name="RTX 3090", num_gpus=1, dph_base=0.1, verified=True, rentable=True)
    client = make_client(fake_vast)
    ids = []
    for index, offer_id in enumerate(fake.offer_ids()[:27]):
        label = f"density-engine-runA-{index}" if index % 3 else f"other-{index}"
        ids.append(client.create_instance(offer_id, image="i", disk_gb=10, label=label))
    everything = client.list_instances(page_size=7)
    assert sorted(inst.id for inst in everything) == sorted(ids)
    assert len(fake.requests_to("GET", "/api/v1/instances/")) == math.ceil(27 / 7)
    ours = client.list_instances(label_prefix="density-engine-runA-")
    assert len(ours) == 18 and all(inst.label.startswith("density-engine-runA-") for inst in ours)
    assert len(client.list_instances()) == 27  # default page size 25 → 2 pages


def test_by_id_shape_variants(fake_vast: FakeVastHandle) -> None:
    fake = fake_vast.fake
    fake.t_null, fake.t_loading = 0.02, 0.02
    client = make_client(fake_vast)
    instance_id = client.create_instance(fake.offer_ids()[0], image="i", disk_gb=10, label="l-1")
    wait_running(client, instance_id)
    fake.by_id_mode = "list"
    assert client.get_instance(instance_id).id == instance_id
    fake.by_id_mode = "omit_ports"  # the by-id route without port mappings: taken from the v1 list
    assert [e.kind for e in client.get_instance(instance_id).endpoints] == ["direct", "proxy"]
    fake.by_id_mode = "gone_as_404"
    client.destroy_instance(instance_id)
    with pytest.raises(InstanceGone):
        client.get_instance(instance_id)


def test_labels_keys_and_logs(fake_vast: FakeVastHandle, tmp_path: Path) -> None:
    fake = fake_vast.fake
    fake.t_null, fake.t_loading = 0.02, 0.02
    client = make_client(fake_vast, [])
    key_id = client.add_account_ssh_key("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAccountKey test")
    instance_id = client.create_instance(
        fake.offer_ids()[0], image="i", disk_gb=10, label="l-1", onstart="echo onstart says hi"
    )
    client.attach_ssh_key(instance_id, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAttachedKey test")
    authorized = fake.instance(instance_id).sshd.authorized_keys_path.read_text()
    assert "AccountKey" in authorized and "AttachedKey" in authorized
    client.set_label(instance_id, "renamed-1")
    assert client.get_instance(instance_id).label == "renamed-1"
    wait_running(client, instance_id)
    deadline = time.monotonic() + 10
    logs = ""
    while "onstart says hi" not in logs and time.monotonic() < deadline:
        logs = client.request_logs(instance_id, interval=0.01)  # the fake answers 404 to the first poll
    assert "onstart says hi" in logs
    assert [k["id"] for k in client.list_account_ssh_keys()] == [key_id]
    client.delete_account_ssh_key(key_id)
    assert client.list_account_ssh_keys() == []
    with pytest.raises(ValueError, match="public key"):
        client.add_account_ssh_key("-----BEGIN OPENSSH PRIVATE KEY-----")
    client.destroy_instance(instance_id)
    with pytest.raises(InstanceGone):
        client.request_logs(instance_id)  # logs are not retained after destroy


def test_wrong_key_is_an_auth_error(fake_vast: FakeVastHandle) -> None:
    client = VastClient("not-the-key", fake_vast.base_url, interval_scale=0)
    with pytest.raises(AuthError):
        client.list_instances()


class _EchoKeyHandler(BaseHTTPRequestHandler):
    """A misbehaving server that echoes the Authorization header back in its error messages."""

    def log_message(self, format: str, *args: object) -> None:
        return

    def do_GET(self) -> None:
        body = json.dumps({"success": False, "error": "bad", "msg": f"got {self.headers.get('Authorization')}"})
        self.send_response(500)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())


@pytest.fixture
def echo_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _EchoKeyHandler)
    thread = threading.Thread(target=lambda: server.serve_forever(poll_interval=0.05), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_api_key_never_in_logs_repr_or_errors(
    fake_vast: FakeVastHandle, echo_server: str, caplog: pytest.LogCaptureFixture
) -> None:
    secret = fake_vast.api_key
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []
    client = make_client(fake_vast, [])
    texts += [repr(client), str(vars(client))]
    fake_vast.fake.vanish_offer(fake_vast.fake.offer_ids()[0])
    fake_vast.fake.fail_deletes(1)
    failing = [
        lambda: client.create_instance(fake_vast.fake.offer_ids()[0], image="i", disk_gb=1, label="x"),
        lambda: client.get_instance(424242),
        lambda: VastClient(secret, echo_server, interval_scale=0, max_retries=1, sleep=lambda s: None).current_user(),
        lambda: VastClient(secret, "http://127.0.0.1:9", max_retries=1, sleep=lambda s: None).current_user(),
    ]
    for call in failing:
        with pytest.raises(VastError) as raised:
            call()
        texts += [str(raised.value), repr(raised.value), str(raised.value.msg)]
    client.destroy_instance(client.create_instance(fake_vast.fake.offer_ids()[1], image="i", disk_gb=1, label="y"))
    texts.append(caplog.text)
    assert "***" in " ".join(texts)  # the echoed key was masked, not dropped silently
    assert not [text for text in texts if secret in text]


def test_resolve_api_key_order(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    home, xdg = tmp_path / "home", tmp_path / "xdg"
    (home).mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(xdg))
    monkeypatch.delenv("VAST_API_KEY", raising=False)
    with pytest.raises(AuthError, match="VAST_API_KEY") as raised:
        resolve_api_key(None)
    assert str(xdg / "vastai" / "vast_api_key") in str(raised.value)
    (home / ".vast_api_key").write_text("legacy-key\n")
    assert resolve_api_key(None) == "legacy-key"
    (xdg / "vastai").mkdir(parents=True)
    (xdg / "vastai" / "vast_api_key").write_text(" xdg-key \n")
    assert resolve_api_key(None) == "xdg-key"
    monkeypatch.setenv("VAST_API_KEY", "env-key")
    assert resolve_api_key(None) == "env-key"
    assert resolve_api_key("explicit-key") == "explicit-key"
