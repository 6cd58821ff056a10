"""SSH layer on paramiko: connect (timeouts, keepalive), exec with exit code, SFTP put/get, per-run keys.

Host-key policy ("trust on first use, per instance, in memory"): Vast.ai hosts are rented minutes before use and their
host keys are unknown in advance and ephemeral (IPs and proxy ports are reused by other renters later), so a
persistent ``known_hosts`` cannot help. Each rented instance gets its own :class:`TofuHostKeys`: the first key seen for
an ``(host, port)`` of that instance is remembered for the instance's lifetime, and a *different* key on a later
connection is rejected with :class:`HostKeyChanged` (a man-in-the-middle or a port now served by another machine).
Nothing is written to ``~/.ssh/known_hosts``; ``look_for_keys`` and the SSH agent are disabled, so only the run's own
key is offered.

Every remote command is built from a list of arguments with :func:`shlex.quote` (see :func:`quote_command`), never by
pasting unquoted strings.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import stat
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from snakemake_executor_plugin_vast.atomic import atomic_path, write_bytes_atomic

if TYPE_CHECKING:  # paramiko is imported lazily: the plugin module must stay cheap to import
    import paramiko

log = logging.getLogger(__name__)

DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_KEEPALIVE = 15


class SshError(Exception):
    """An SSH operation failed."""


class SshUnreachable(SshError):
    """The host could not be reached or did not complete the handshake/authentication in time."""


class HostKeyChanged(SshError):
    """The host presented a different host key than on the first connection of this run."""


class RemoteCommandError(SshError):
    """A remote command exited with a non-zero status (see ``result``)."""

    def __init__(self, message: str, result: ExecResult) -> None:
        super().__init__(message)
        self.result = result


@dataclass(frozen=True)
class ExecResult:
    """Outcome of one remote command."""

    exit_code: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        """True when the command exited with status 0."""
        return self.exit_code == 0


def quote_command(args: Sequence[str | os.PathLike[str]]) -> str:
    """Join arguments into one shell command line, quoting every argument."""
    return " ".join(shlex.quote(os.fspath(arg)) for arg in args)


class TofuHostKeys:
    """Trust-on-first-use host keys of one instance, in memory (see the module docstring)."""

    def __init__(self) -> None:
        self._keys: dict[tuple[str, int], tuple[str, str]] = {}
        self._lock = threading.Lock()

    def check(self, host: str, port: int, key_type: str, key_b64: str) -> None:
        """Remember the first key of ``(host, port)``; raise :class:`HostKeyChanged` if a later key differs."""
        with self._lock:
            known = self._keys.setdefault((host, port), (key_type, key_b64))
        if known != (key_type, key_b64):
            raise HostKeyChanged(
                f"host key of {host}:{port} changed during the run (was {known[0]}, now {key_type}); not connecting"
            )

    def forget(self) -> None:
        """Drop every remembered key (when the instance is destroyed)."""
        with self._lock:
            self._keys.clear()


def _policy_for(host_keys: TofuHostKeys, port: int) -> paramiko.MissingHostKeyPolicy:
    import paramiko

    class _Policy(paramiko.MissingHostKeyPolicy):
        def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
            host = hostname.removeprefix("[").split("]")[0]
            host_keys.check(host, port, key.get_name(), key.get_base64())

    return _Policy()


def load_private_key(path: str | os.PathLike[str]) -> paramiko.PKey:
    """Load an unencrypted private key file (ed25519, ECDSA or RSA); a clear error names the file otherwise."""
    import paramiko

    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"SSH key file {path} does not exist")
    try:
        return paramiko.PKey.from_path(path)
    except (paramiko.SSHException, ValueError) as exc:
        raise SshError(
            f"cannot load SSH private key {path}: {exc} (passphrase-protected keys are not supported)"
        ) from exc


def public_key_line(key: paramiko.PKey, comment: str = "density-engine") -> str:
    """The ``authorized_keys`` line of a key."""
    return f"{key.get_name()} {key.get_base64()} {comment}"


def generate_run_key(path: str | os.PathLike[str], comment: str = "density-engine") -> tuple[paramiko.PKey, str]:
    """Create a new ed25519 key at ``path`` (mode 0600, ``.pub`` beside it); return (key, public key line)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    )
    write_bytes_atomic(path, pem, mode=0o600)  # the temp file is 0600 from its creation on
    key = load_private_key(path)
    line = public_key_line(key, comment)
    path.with_name(path.name + ".pub").write_text(line + "\n")
    return key, line


class SshConnection:
    """One paramiko connection to a host, with exec and SFTP helpers. Thread-safe for sequential use per call."""

    def __init__(
        self,
        host: str,
        port: int,
        user: str,
        key: paramiko.PKey,
        host_keys: TofuHostKeys,
        *,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        keepalive: int = DEFAULT_KEEPALIVE,
    ) -> None:
        self.host = host
        self.port = int(port)
        self.user = user
        self._key = key
        self._host_keys = host_keys
        self.connect_timeout = connect_timeout
        self.keepalive = keepalive
        self._client: paramiko.SSHClient | None = None
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return f"SshConnection({self.user}@{self.host}:{self.port})"

    @property
    def address(self) -> str:
        """``user@host:port`` for messages."""
        return f"{self.user}@{self.host}:{self.port}"

    def connect(self) -> None:
        """Open the connection (no-op while an active one exists); raise :class:`SshUnreachable` on failure."""
        import paramiko

        with self._lock:
            if self._client is not None:
                transport = self._client.get_transport()
                if transport is not None and transport.is_active():
                    return
                self._close_locked()
            client = paramiko.SSHClient()
            client.set_missing_host_key_policy(_policy_for(self._host_keys, self.port))
            try:
                client.connect(
                    self.host,
                    self.port,
                    username=self.user,
                    pkey=self._key,
                    look_for_keys=False,
                    allow_agent=False,
                    timeout=self.connect_timeout,
                    banner_timeout=self.connect_timeout,
                    auth_timeout=self.connect_timeout,
                    channel_timeout=self.connect_timeout,
                )
            except HostKeyChanged:
                client.close()
                raise
            except (paramiko.SSHException, OSError, EOFError) as exc:
                client.close()
                raise SshUnreachable(f"cannot connect to {self.address}: {type(exc).__name__}: {exc}") from exc
            transport = client.get_transport()
            if transport is not None and self.keepalive:
                transport.set_keepalive(self.keepalive)
            self._client = client

    def _close_locked(self) -> None:
        if self._client is not None:
            with contextlib.suppress(Exception):  # closing a broken transport must never raise
                self._client.close()
            self._client = None

    def close(self) -> None:
        """Close the connection (idempotent)."""
        with self._lock:
            self._close_locked()

    def exec(
        self,
        command: str | Sequence[str],
        *,
        timeout: float = 60.0,
        stdin: bytes | None = None,
        check: bool = False,
    ) -> ExecResult:
        """Run a command (a shell string, or an argument list that is quoted here); return its exit code and output.

        Connection problems raise :class:`SshUnreachable` (after closing the connection, so the next call reconnects);
        with ``check=True`` a non-zero exit raises :class:`RemoteCommandError`.
        """
        import paramiko

        line = command if isinstance(command, str) else quote_command(command)
        self.connect()
        with self._lock:
            client = self._client
        assert client is not None
        try:
            chan = client.get_transport().open_session(timeout=self.connect_timeout)  # type: ignore[union-attr]
            chan.settimeout(timeout)
            chan.exec_command(line)
            if stdin is not None:
                chan.sendall(stdin)
            chan.shutdown_write()
            out, err = _drain(chan, timeout)
            code = chan.recv_exit_status()
            chan.close()
        except (paramiko.SSHException, OSError, EOFError) as exc:
            self.close()
            raise SshUnreachable(f"command on {self.address} failed: {type(exc).__name__}: {exc}") from exc
        result = ExecResult(code, out.decode(errors="replace"), err.decode(errors="replace"))
        if code == -1:  # the channel closed without an exit status: the connection (or the host) went away
            self.close()
            raise SshUnreachable(f"command on {self.address} lost its connection before it finished")
        if check and not result.ok:
            first = line if len(line) < 200 else line[:200] + "…"
            raise RemoteCommandError(
                f"remote command on {self.address} exited {code}: {first}\n{result.stderr.strip()[-2000:]}", result
            )
        return result

    def _sftp(self) -> paramiko.SFTPClient:
        import paramiko

        self.connect()
        with self._lock:
            client = self._client
        assert client is not None
        try:
            sftp = client.open_sftp()
        except (paramiko.SSHException, OSError, EOFError) as exc:
            self.close()
            raise SshUnreachable(f"SFTP to {self.address} failed: {exc}") from exc
        sftp.get_channel().settimeout(max(self.connect_timeout, 60.0))
        return sftp

    def put(self, local: str | os.PathLike[str], remote: str, *, mode: int | None = None) -> None:
        """Upload a file atomically: write ``<remote>.<random>.tmp`` next to it, then rename over ``remote``."""
        self.put_many([(Path(local), remote)], mode=mode)

    def put_many(
        self,
        pairs: Iterable[tuple[Path, str]],
        *,
        mode: int | None = None,
        blobs: Iterable[tuple[bytes, str, int]] = (),
    ) -> None:
        """Upload files and in-memory blobs ``(data, remote, mode)`` over one SFTP session, each atomically.

        Every item is written to ``<remote>.<random>.tmp`` next to its target (blobs get their mode before any byte is
        written) and renamed over the target; parent folders are created.
        """
        import paramiko

        sftp = self._sftp()
        made: set[str] = set()

        def prepare(remote: str) -> str:
            parent = str(PurePosixPath(remote).parent)
            if parent not in made:
                _sftp_makedirs(sftp, parent)
                made.add(parent)
            return f"{remote}.{uuid.uuid4().hex[:12]}.tmp"

        try:
            for local, remote in pairs:
                tmp = prepare(remote)
                sftp.put(os.fspath(local), tmp)
                if mode is not None:
                    sftp.chmod(tmp, mode)
                sftp.posix_rename(tmp, remote)
            for data, remote, blob_mode in blobs:
                tmp = prepare(remote)
                with sftp.open(tmp, "wb") as handle:
                    handle.chmod(blob_mode)
                    handle.write(data)
                sftp.posix_rename(tmp, remote)
        except (paramiko.SSHException, OSError, EOFError) as exc:
            self.close()
            raise SshUnreachable(f"upload to {self.address} failed: {type(exc).__name__}: {exc}") from exc
        finally:
            sftp.close()

    def put_bytes(self, data: bytes, remote: str, *, mode: int = 0o600) -> None:
        """Write bytes to a remote file atomically, creating it with ``mode`` before any data is written."""
        self.put_many([], blobs=[(data, remote, mode)])

    def get_many(self, pairs: Iterable[tuple[str, Path]]) -> None:
        """Download files (or whole folders) atomically: temp file in the local target folder, then ``os.replace``.

        Downloaded files get the local current time as mtime (remote clocks may be skewed). A missing remote file raises
        ``FileNotFoundError`` naming it.
        """
        import paramiko

        sftp = self._sftp()
        try:
            for remote, local in pairs:
                try:
                    attrs = sftp.stat(remote)
                except FileNotFoundError as exc:
                    raise FileNotFoundError(f"remote file {remote} on {self.address} does not exist") from exc
                if stat.S_ISDIR(attrs.st_mode or 0):
                    _get_tree(sftp, remote, Path(local))
                else:
                    _get_file(sftp, remote, Path(local))
        except FileNotFoundError:
            raise
        except (paramiko.SSHException, OSError, EOFError) as exc:
            self.close()
            raise SshUnreachable(f"download from {self.address} failed: {type(exc).__name__}: {exc}") from exc
        finally:
            sftp.close()

    def get(self, remote: str, local: str | os.PathLike[str]) -> None:
        """Download one file or folder atomically (see :meth:`get_many`)."""
        self.get_many([(remote, Path(local))])


def _drain(chan: paramiko.Channel, timeout: float) -> tuple[bytes, bytes]:
    out, err = bytearray(), bytearray()
    deadline = time.monotonic() + timeout
    while True:
        progressed = False
        while chan.recv_ready():
            out += chan.recv(65536)
            progressed = True
        while chan.recv_stderr_ready():
            err += chan.recv_stderr(65536)
            progressed = True
        if chan.exit_status_ready() and not chan.recv_ready() and not chan.recv_stderr_ready():
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"remote command did not finish within {timeout:.0f} s")
        if not progressed:
            time.sleep(0.005)
    return bytes(out), bytes(err)


def _sftp_makedirs(sftp: paramiko.SFTPClient, folder: str) -> None:
    parts = PurePosixPath(folder).parts
    current = PurePosixPath(parts[0]) if parts else PurePosixPath(".")
    for part in parts[1:]:
        current = current / part
        try:
            sftp.stat(str(current))
        except FileNotFoundError:
            try:
                sftp.mkdir(str(current))
            except OSError:
                sftp.stat(str(current))  # created concurrently: fine; otherwise this raises


def _get_file(sftp: paramiko.SFTPClient, remote: str, local: Path) -> None:
    with atomic_path(local) as tmp:
        sftp.get(remote, os.fspath(tmp))
    now = time.time()
    os.utime(local, (now, now))


def _get_tree(sftp: paramiko.SFTPClient, remote: str, local: Path) -> None:
    """Download a folder into a temp folder beside ``local``, then swap it into place."""
    import shutil

    local.parent.mkdir(parents=True, exist_ok=True)
    tmp = local.with_name(f".{local.name}.{uuid.uuid4().hex[:12]}.tmpdir")

    def walk(src: str, dst: Path) -> None:
        dst.mkdir(parents=True, exist_ok=True)
        for entry in sftp.listdir_attr(src):
            child = f"{src}/{entry.filename}"
            if stat.S_ISDIR(entry.st_mode or 0):
                walk(child, dst / entry.filename)
            else:
                sftp.get(child, os.fspath(dst / entry.filename))

    try:
        walk(remote, tmp)
        if local.exists():
            shutil.rmtree(local) if local.is_dir() else local.unlink()
        os.replace(tmp, local)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    now = time.time()
    for path in [local, *local.rglob("*")]:
        os.utime(path, (now, now))


def connect_first(
    endpoints: Sequence[tuple[str, int]],
    user: str,
    key: paramiko.PKey,
    host_keys: TofuHostKeys,
    *,
    deadline: float,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    retry_interval: float = 2.0,
    stop: threading.Event | None = None,
) -> SshConnection:
    """Try the endpoints in order (direct first, then proxy) until one accepts us or ``deadline`` (monotonic) passes.

    Authentication failures right after boot are retried too (the key may not be installed yet). Host-key changes are
    never retried. Setting ``stop`` ends the wait early.
    """
    if not endpoints:
        raise SshUnreachable("instance has no SSH endpoint")
    errors: list[str] = []
    while True:
        for host, port in endpoints:
            conn = SshConnection(
                host,
                port,
                user,
                key,
                host_keys,
                connect_timeout=min(connect_timeout, max(1.0, deadline - time.monotonic())),
            )
            try:
                conn.connect()
                conn.exec("true", timeout=connect_timeout, check=True)
                conn.connect_timeout = connect_timeout
                return conn
            except HostKeyChanged:
                raise
            except SshError as exc:
                conn.close()
                errors.append(str(exc))
        if time.monotonic() + retry_interval > deadline:
            raise SshUnreachable(f"no SSH endpoint answered in time; last error: {errors[-1] if errors else '?'}")
        if stop is not None and stop.wait(retry_interval):
            raise SshUnreachable("stopped while waiting for SSH")
        if stop is None:
            time.sleep(retry_interval)
