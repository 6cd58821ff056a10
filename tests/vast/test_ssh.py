"""The paramiko SSH layer against real sshd processes on loopback."""

from __future__ import annotations

import os
import socket
import stat
import threading
import time
from pathlib import Path

import pytest

from snakemake_executor_plugin_vast.ssh import (
    HostKeyChanged,
    SshConnection,
    SshUnreachable,
    TofuHostKeys,
    connect_first,
    generate_run_key,
    load_private_key,
    quote_command,
)
from tests.fake_vast.sshd import SshdHost

pytestmark = pytest.mark.ssh


def open_conn(host: SshdHost, key_path: Path, host_keys: TofuHostKeys | None = None) -> SshConnection:
    conn = SshConnection(host.host, host.port, host.user, load_private_key(key_path), host_keys or TofuHostKeys())
    conn.connect_timeout = 5
    return conn


def test_exec_returns_exit_code_stdout_stderr_and_feeds_stdin(sshd_host: SshdHost) -> None:
    conn = open_conn(sshd_host, sshd_host.key_path)
    try:
        result = conn.exec("echo out; echo err >&2; exit 3")
        assert (result.exit_code, result.stdout, result.stderr) == (3, "out\n", "err\n")
        assert conn.exec("cat", stdin=b"hello").stdout == "hello"
        assert conn.exec(["printf", "%s|", "a b", "c"]).stdout == "a b|c|"
    finally:
        conn.close()


def test_arguments_are_quoted_never_interpreted(sshd_host: SshdHost, tmp_path: Path) -> None:
    conn = open_conn(sshd_host, sshd_host.key_path)
    marker = tmp_path / "pwned"
    nasty = f"x'; touch {marker}; echo '$(touch {marker})`touch {marker}`"
    try:
        result = conn.exec(["echo", nasty])
        assert result.stdout == nasty + "\n"
        assert quote_command(["a b", "c'd"]) == "'a b' 'c'\"'\"'d'"
    finally:
        conn.close()
    assert not marker.exists()


def test_sftp_round_trip_is_atomic_and_creates_folders(sshd_host: SshdHost, tmp_path: Path) -> None:
    conn = open_conn(sshd_host, sshd_host.key_path)
    remote_dir = (
        f"{sshd_host.inst_dir}/remote/a b/c"  # a path the host sees directly (isolation only remaps /workspace)
    )
    source = tmp_path / "src.bin"
    payload = os.urandom(300_000)
    source.write_bytes(payload)
    try:
        conn.put(source, f"{remote_dir}/data.bin")
        conn.put_bytes(b"secret", f"{remote_dir}/key", mode=0o600)
        local = tmp_path / "back" / "data.bin"
        old = time.time() - 3600
        conn.exec(["touch", "-d", f"@{old:.0f}", f"{remote_dir}/data.bin"], check=True)
        conn.get(f"{remote_dir}/data.bin", local)
        assert local.read_bytes() == payload
        assert local.stat().st_mtime > time.time() - 60  # local "now", not the remote mtime
        assert stat.S_IMODE(os.stat(f"{remote_dir}/key").st_mode) == 0o600
        assert not [p for p in Path(remote_dir).iterdir() if p.name.endswith(".tmp")]
        assert not [p for p in local.parent.iterdir() if p.name != "data.bin"]
        conn.get(remote_dir, tmp_path / "tree")
        assert (tmp_path / "tree" / "data.bin").read_bytes() == payload
        with pytest.raises(FileNotFoundError, match=r"missing\.parquet"):
            conn.get(f"{remote_dir}/missing.parquet", tmp_path / "missing.parquet")
        assert not (tmp_path / "missing.parquet").exists()
    finally:
        conn.close()


def test_private_workspace_is_not_the_local_one(sshd_host: SshdHost) -> None:
    if not sshd_host.private_workspace:
        pytest.skip("private /workspace needs root and unshare")
    conn = open_conn(sshd_host, sshd_host.key_path)
    try:
        conn.put_bytes(b"x", "/workspace/only-remote.txt")
    finally:
        conn.close()
    assert (sshd_host.workspace_dir / "only-remote.txt").read_bytes() == b"x"
    assert not Path("/workspace/only-remote.txt").exists()


def test_generated_run_key_is_private_and_accepted(sshd_factory, tmp_path: Path) -> None:
    key, public = generate_run_key(tmp_path / "keys" / "id_ed25519")
    assert stat.S_IMODE((tmp_path / "keys" / "id_ed25519").stat().st_mode) == 0o600
    assert public.startswith("ssh-ed25519 ")
    host = sshd_factory("runkey", authorized_keys=[public])
    conn = SshConnection(host.host, host.port, host.user, key, TofuHostKeys(), connect_timeout=5)
    try:
        assert conn.exec("echo ok").stdout == "ok\n"
    finally:
        conn.close()


def test_changed_host_key_is_rejected(sshd_factory, tmp_path: Path) -> None:
    host = sshd_factory("tofu")
    keys = TofuHostKeys()
    conn = open_conn(host, host.key_path, keys)
    assert conn.exec("true").ok
    conn.close()
    host.kill()
    impostor = SshdHost(
        tmp_path / "impostor", ports=host.ports, authorized_keys=[Path(str(host.key_path) + ".pub").read_text()]
    )
    impostor.start()
    try:
        with pytest.raises(HostKeyChanged):
            open_conn(impostor, host.key_path, keys).connect()
        fresh = open_conn(impostor, host.key_path, TofuHostKeys())  # another instance's policy trusts it
        assert fresh.exec("true").ok
        fresh.close()
    finally:
        impostor.kill()


def test_unreachable_and_blackholed_ports_fail_fast(ssh_keypair) -> None:
    key = load_private_key(ssh_keypair.private_path)
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        closed_port = closed.getsockname()[1]
    blackhole = socket.socket()
    blackhole.bind(("127.0.0.1", 0))
    blackhole.listen(5)  # accepts the TCP connection, never sends a banner
    try:
        for port in (closed_port, blackhole.getsockname()[1]):
            started = time.monotonic()
            with pytest.raises(SshUnreachable):
                SshConnection("127.0.0.1", port, "root", key, TofuHostKeys(), connect_timeout=1.0).connect()
            assert time.monotonic() - started < 5
    finally:
        blackhole.close()


def test_connect_first_waits_for_a_late_sshd_and_falls_back_to_the_next_endpoint(sshd_factory, ssh_keypair) -> None:
    late = sshd_factory("late", start=False)
    timer = threading.Timer(1.0, late.start)
    timer.start()
    try:
        with socket.socket() as dead:
            dead.bind(("127.0.0.1", 0))
            dead_port = dead.getsockname()[1]
        started = time.monotonic()
        conn = connect_first(
            [("127.0.0.1", dead_port), (late.host, late.port)],
            late.user,
            load_private_key(ssh_keypair.private_path),
            TofuHostKeys(),
            deadline=time.monotonic() + 20,
            connect_timeout=2,
            retry_interval=0.3,
        )
        assert conn.port == late.port and time.monotonic() - started >= 0.9
        conn.close()
    finally:
        timer.join()
