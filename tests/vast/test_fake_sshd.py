"""The real-sshd test hosts: login with the test key, SFTP, private /workspace, kill takes the host's jobs with it."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import paramiko
import pytest

from tests.fake_vast import fixtures, sshd
from tests.fake_vast.fixtures import SshKeyPair
from tests.fake_vast.sshd import REQUIRE_SSH_ENV, SshdHost, can_isolate, generate_keypair

pytestmark = pytest.mark.ssh
ssh_keypair, sshd_factory, sshd_host = fixtures.ssh_keypair, fixtures.sshd_factory, fixtures.sshd_host


def connect(host: SshdHost, key_path: Path) -> paramiko.SSHClient:
    """Open a paramiko connection to a test host (accepting its fresh host key)."""
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    client.connect(
        host.host, host.port, username=host.user, key_filename=str(key_path), look_for_keys=False,
        allow_agent=False, timeout=5, banner_timeout=5, auth_timeout=5,
    )  # fmt: skip
    return client


def run(client: paramiko.SSHClient, command: str) -> tuple[int, str]:
    """Run a command, return (exit status, stdout + stderr)."""
    _, stdout, stderr = client.exec_command(command, timeout=10)
    out = stdout.read().decode() + stderr.read().decode()
    return stdout.channel.recv_exit_status(), out


def pid_alive(pid: int) -> bool:
    """True when a host process with this PID exists and is not a zombie."""
    try:
        return "State:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False


def test_login_exec_and_sftp(sshd_host: SshdHost) -> None:
    client = connect(sshd_host, sshd_host.key_path)
    try:
        status, out = run(client, "echo hello; exit 3")
        assert (status, out) == (3, "hello\n")
        sftp = client.open_sftp()
        with sftp.open("/workspace/payload.bin", "wb") as handle:
            handle.write(b"\x00\x01payload")
        assert sftp.listdir("/workspace") == ["payload.bin"]
        sftp.close()
    finally:
        client.close()
    assert (sshd_host.workspace_dir / "payload.bin").read_bytes() == b"\x00\x01payload"


def test_unknown_key_is_rejected_until_authorized(sshd_host: SshdHost, tmp_path: Path) -> None:
    other_key = tmp_path / "other"
    other_public = generate_keypair(other_key)
    with pytest.raises(paramiko.AuthenticationException):
        connect(sshd_host, other_key)
    sshd_host.add_authorized_key(other_public)  # attach a key to a running host
    connect(sshd_host, other_key).close()


@pytest.mark.skipif(not can_isolate(), reason="private /workspace needs root and unshare (mount namespace)")
def test_workspace_is_private_per_host(sshd_factory: Callable[..., SshdHost], ssh_keypair: SshKeyPair) -> None:
    first, second = sshd_factory("a"), sshd_factory("b")
    for host, text in ((first, "first"), (second, "second")):
        client = connect(host, ssh_keypair.private_path)
        try:
            assert run(client, f"mkdir -p /workspace/d && echo {text} > /workspace/d/f && cat /workspace/d/f")[0] == 0
            assert run(client, "ls /workspace")[1] == "d\n"  # never sees the other host's files
        finally:
            client.close()
    assert (first.workspace_dir / "d" / "f").read_text() == "first\n"
    assert (second.workspace_dir / "d" / "f").read_text() == "second\n"
    assert not Path("/workspace/d").exists()  # the test process's /workspace is untouched


@pytest.mark.skipif(not can_isolate(), reason="killing detached jobs relies on the PID namespace (root + unshare)")
def test_kill_takes_detached_jobs_with_it(sshd_host: SshdHost) -> None:
    client = connect(sshd_host, sshd_host.key_path)
    marker = f"300.{os.getpid()}{time.monotonic_ns() % 10**6}"  # a unique sleep duration identifies the jobs
    try:
        # a nohup job and a job in its own session (setsid): both must die with the host
        command = (
            f"nohup sleep {marker} >/dev/null 2>&1 & "
            f"setsid sleep {marker} >/dev/null 2>&1 < /dev/null & sleep 0.2; echo started"
        )
        assert run(client, command) == (0, "started\n")
    finally:
        client.close()

    def job_pids() -> list[int]:
        pids = []
        for entry in Path("/proc").iterdir():
            try:
                if entry.name.isdigit() and (entry / "cmdline").read_bytes().split(b"\0")[:2] == [
                    b"sleep",
                    marker.encode(),
                ]:
                    pids.append(int(entry.name))
            except OSError:
                continue
        return [pid for pid in pids if pid_alive(pid)]

    assert len(job_pids()) == 2
    sshd_host.kill()
    deadline = time.monotonic() + 5
    while job_pids() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert job_pids() == []
    with pytest.raises((OSError, paramiko.SSHException)):
        connect(sshd_host, sshd_host.key_path)


def test_restart_after_kill_serves_same_workspace(sshd_host: SshdHost) -> None:
    (sshd_host.workspace_dir / "kept").write_text("x")
    sshd_host.kill()
    sshd_host.start()
    client = connect(sshd_host, sshd_host.key_path)
    try:
        assert run(client, "cat /workspace/kept") == (0, "x")
    finally:
        client.close()


@pytest.mark.skipif(not can_isolate(), reason="hiding controller folders needs a mount namespace (root + unshare)")
def test_controller_folders_are_hidden_from_the_host(sshd_host: SshdHost, tmp_path: Path) -> None:
    """A job on the host cannot read (or write) the controller's files through absolute paths: pytest's base temp
    folder and the checkout are empty there, only the host's own instance folder stays where sshd expects it."""
    controller_file = tmp_path / "controller-only.txt"
    controller_file.write_text("local")
    repo_file = fixtures.REPO_ROOT / "pyproject.toml"
    assert repo_file.is_file() and sshd_host.hide_paths
    client = connect(sshd_host, sshd_host.key_path)
    try:
        for path in (controller_file, repo_file):
            assert run(client, f"test -e {path} && echo visible || echo hidden") == (0, "hidden\n"), path
        # the instance folder (sshd config, keys) is still there, and writes to a hidden path never reach the controller
        assert run(client, f"test -f {sshd_host.config_path} && echo ok")[1] == "ok\n"
        run(client, f"mkdir -p {tmp_path} && echo remote > {controller_file}")
    finally:
        client.close()
    assert controller_file.read_text() == "local"


def test_required_ssh_tests_fail_instead_of_skipping(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fixtures, "sshd_unavailable_reason", lambda: "sshd not found (simulated)")
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv(REQUIRE_SSH_ENV, raising=False)
    with pytest.raises(pytest.skip.Exception, match="simulated"):
        fixtures.require_sshd()  # a developer machine without sshd: skip
    monkeypatch.setenv("CI", "false")
    with pytest.raises(pytest.skip.Exception):
        fixtures.require_sshd()
    for name, value in (("CI", "true"), (REQUIRE_SSH_ENV, "1")):
        with monkeypatch.context() as env:
            env.setenv(name, value)
            with pytest.raises(pytest.fail.Exception, match=r"required.*simulated"):
                fixtures.require_sshd()  # CI: the SSH tests must run, so a missing sshd fails loudly


def test_isolation_is_probed_and_required_on_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    """Root and an unshare binary are not enough: a kernel or container that forbids the namespaces is detected by
    trying, and where SSH tests are required that is an error, not a quiet loss of isolation."""
    calls: list[list[str]] = []

    def refused(argv: list[str], **_: object) -> subprocess.CompletedProcess[str]:
        calls.append(argv)
        return subprocess.CompletedProcess(argv, 1, "", "unshare: unshare failed: Operation not permitted")

    monkeypatch.setattr(sshd.os, "geteuid", lambda: 0)
    monkeypatch.setattr(sshd.shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(sshd.subprocess, "run", refused)
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv(REQUIRE_SSH_ENV, raising=False)
    sshd.isolation_unavailable_reason.cache_clear()
    try:
        assert "Operation not permitted" in (sshd.isolation_unavailable_reason() or "")
        assert calls and calls[0][0] == "unshare"
        assert sshd.can_isolate() is False
        monkeypatch.setenv(REQUIRE_SSH_ENV, "1")
        with pytest.raises(RuntimeError, match="Operation not permitted"):
            sshd.can_isolate()
    finally:
        sshd.isolation_unavailable_reason.cache_clear()
