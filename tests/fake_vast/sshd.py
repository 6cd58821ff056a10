"""Real OpenSSH servers on loopback standing in for rented Vast.ai hosts.

Each :class:`SshdHost` runs ``/usr/sbin/sshd -D -e -f <inst>/sshd_config`` with its own host key, its own
``authorized_keys`` and ``Subsystem sftp internal-sftp``, listening on one or more free ``127.0.0.1`` ports.

When the tests run as root (CI and the dev machine do) the daemon is started as PID 1 of a new PID + mount namespace::

    unshare --mount --pid --fork --mount-proc --propagation private \
        sh -c 'mount --bind <inst>/workspace /workspace && exec /usr/sbin/sshd -D -e -f <inst>/sshd_config'

so that

* ``/workspace`` seen over SSH is the instance's private ``<inst>/workspace``: files written remotely are visible to the
  test process only through that folder, never through a shared ``/workspace`` (staging bugs cannot hide);
* the login user's ``~/.bashrc`` is replaced by a fast one whose PATH starts with the test interpreter's folder;
* every process started over SSH (also ``nohup … &`` jobs, also jobs that call ``setsid``) lives in the namespace, and
  killing the namespace's init (sshd) makes the kernel SIGKILL all of them: :meth:`SshdHost.kill` really kills the
  host's jobs, as a dying Vast machine would. sshd, as PID 1, reaps orphaned jobs, so no zombie looks alive to
  ``kill -0``; ``/proc`` is remounted, so PIDs written by remote jobs (``echo $!``) are meaningful to ``ps``/``kill``.

Without root the daemon runs in its own session only (``private_workspace`` is then False and the host ``/workspace`` is
not touched); tests that need privacy skip in that case.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

SSHD_BINARY = "/usr/sbin/sshd"
WORKSPACE = Path("/workspace")


def sshd_unavailable_reason() -> str | None:
    """Why real-sshd tests cannot run here, or None when they can."""
    if not os.path.exists(SSHD_BINARY):
        return f"{SSHD_BINARY} not found (install openssh-server)"
    if shutil.which("ssh-keygen") is None:
        return "ssh-keygen not found (install openssh-client)"
    return None


def can_isolate() -> bool:
    """True when sshd can be started in a private mount + PID namespace (needs root and util-linux unshare)."""
    return os.geteuid() == 0 and shutil.which("unshare") is not None


def free_port() -> int:
    """A currently free TCP port on 127.0.0.1 (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def generate_keypair(private_path: Path, comment: str = "density-engine-test") -> str:
    """Create an ed25519 key pair (``private_path`` and ``private_path.pub``, mode 0600); return the public key line."""
    private_path.parent.mkdir(parents=True, exist_ok=True)
    for path in (private_path, private_path.with_name(private_path.name + ".pub")):
        path.unlink(missing_ok=True)
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(private_path)],
        check=True,
        stdin=subprocess.DEVNULL,
        capture_output=True,
    )
    private_path.chmod(0o600)
    return private_path.with_name(private_path.name + ".pub").read_text().strip()


class SshdHost:
    """One real sshd on loopback with a private ``/workspace`` (see the module docstring).

    Attributes used by tests: ``host`` ("127.0.0.1"), ``port`` (first port), ``ports`` (all), ``user`` (the login
    user: the user running the tests), ``key_path`` (a private key that is authorized, when given), ``inst_dir``,
    ``workspace_dir`` (what the host sees as ``/workspace``), ``log_path`` (sshd's stderr, ``-e``).
    """

    def __init__(
        self,
        inst_dir: Path,
        *,
        ports: Sequence[int] | None = None,
        authorized_keys: Iterable[str] = (),
        key_path: Path | None = None,
        isolate: bool | None = None,
    ) -> None:
        self.inst_dir = Path(inst_dir)
        self.inst_dir.mkdir(parents=True, exist_ok=True)
        self.host = "127.0.0.1"
        self.ports: tuple[int, ...] = tuple(ports) if ports else (free_port(),)
        self.user = getpass.getuser()
        self.key_path = key_path
        self.private_workspace = can_isolate() if isolate is None else isolate
        self.workspace_dir = self.inst_dir / "workspace"
        self.workspace_dir.mkdir(exist_ok=True)
        self.authorized_keys_path = self.inst_dir / "authorized_keys"
        self.host_key_path = self.inst_dir / "ssh_host_ed25519_key"
        self.config_path = self.inst_dir / "sshd_config"
        self.log_path = self.inst_dir / "sshd.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._ready = False
        if not self.authorized_keys_path.exists():
            self.authorized_keys_path.write_text("")
        self.authorized_keys_path.chmod(0o600)
        for key in authorized_keys:
            self.add_authorized_key(key)
        self._write_config()

    @property
    def port(self) -> int:
        """The first listening port."""
        return self.ports[0]

    @property
    def pid(self) -> int | None:
        """Host PID of the process-group leader (unshare, or sshd itself when not isolated)."""
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        """True while the daemon process is alive (it may not accept connections yet: see ``ready``)."""
        return self._process is not None and self._process.poll() is None

    @property
    def ready(self) -> bool:
        """True once every port answered with an SSH banner, until the daemon is killed."""
        return self._ready and self.running

    def _write_config(self) -> None:
        lines = [f"Port {port}" for port in self.ports] + [
            f"ListenAddress {self.host}",
            f"HostKey {self.host_key_path}",
            f"PidFile {self.inst_dir / 'sshd.pid'}",
            f"AuthorizedKeysFile {self.authorized_keys_path}",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "PermitRootLogin prohibit-password",
            "UsePAM no",
            "StrictModes no",
            "UseDNS no",
            "PrintMotd no",
            "PrintLastLog no",
            "MaxStartups 200",
            "MaxSessions 100",
            "LogLevel INFO",
            "Subsystem sftp internal-sftp",
        ]
        self.config_path.write_text("\n".join(lines) + "\n")

    def add_authorized_key(self, public_key: str) -> None:
        """Authorize a public key line (idempotent; takes effect for the next login, also while running)."""
        public_key = public_key.strip()
        if not public_key:
            raise ValueError("empty public key")
        present = self.authorized_keys_path.read_text().splitlines()
        if public_key not in present:
            with self.authorized_keys_path.open("a") as handle:
                handle.write(public_key + "\n")

    def remove_authorized_key(self, public_key: str) -> None:
        """Remove a public key line from authorized_keys (no error when absent)."""
        lines = [line for line in self.authorized_keys_path.read_text().splitlines() if line != public_key.strip()]
        self.authorized_keys_path.write_text("".join(line + "\n" for line in lines))

    def _bashrc_bind(self) -> str:
        """Mount command hiding the login user's ``~/.bashrc`` behind a fast one (bash sources it for every SSH
        command; an interactive setup such as ``pyenv init`` costs ~0.3 s per exec). PATH starts with the test
        interpreter's folder, so ``python3`` over SSH is the same Python (same packages) as the test process."""
        bashrc = Path(os.path.expanduser("~")) / ".bashrc"
        if not bashrc.is_file():
            return ""
        fast = self.inst_dir / "bashrc"
        path = f"{os.path.dirname(sys.executable)}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        fast.write_text(f"# fake Vast host: fast non-interactive shell\nexport PATH={shlex.quote(path)}\n")
        return f"mount --bind {shlex.quote(str(fast))} {shlex.quote(str(bashrc))} && "

    def command(self) -> list[str]:
        """The argv that starts this daemon."""
        sshd = [SSHD_BINARY, "-D", "-e", "-f", str(self.config_path)]
        if not self.private_workspace:
            return sshd
        script = (
            f"mount --bind {shlex.quote(str(self.workspace_dir))} {WORKSPACE} && {self._bashrc_bind()}"
            f"exec {shlex.join(sshd)}"
        )
        return ["unshare", "--mount", "--pid", "--fork", "--mount-proc", "--propagation", "private", "sh", "-c", script]

    def start(self, *, wait: bool = True, timeout: float = 10.0) -> None:
        """Start the daemon (own session/process group); by default wait until it answers with an SSH banner."""
        if self.running:
            return
        if not self.host_key_path.exists():  # generated on first start: renting many never-booted hosts stays cheap
            generate_keypair(self.host_key_path, comment="fake-vast-host")
        if self.private_workspace:
            WORKSPACE.mkdir(exist_ok=True)
        if os.geteuid() == 0:
            Path("/run/sshd").mkdir(parents=True, exist_ok=True)  # privilege-separation dir sshd wants as root
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                self.command(), stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
            )
        if wait:
            self.wait_ready(timeout)

    def wait_ready(self, timeout: float = 10.0) -> None:
        """Block until every port answers with an SSH banner; raise RuntimeError (with the sshd log) otherwise."""
        deadline = time.monotonic() + timeout
        pending = list(self.ports)
        self._ready = False
        while pending:
            if not self.running:
                raise RuntimeError(f"sshd in {self.inst_dir} exited early:\n{self.read_log()}")
            try:
                with socket.create_connection((self.host, pending[0]), timeout=1.0) as sock:
                    if sock.recv(8).startswith(b"SSH-"):
                        pending.pop(0)
                        continue
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"sshd in {self.inst_dir} not ready after {timeout} s:\n{self.read_log()}")
            time.sleep(0.02)
        self._ready = True

    def kill(self) -> None:
        """SIGKILL the daemon's process group; with isolation this also kills every process started over SSH."""
        process, self._process = self._process, None
        self._ready = False
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)

    stop = kill

    def read_log(self) -> str:
        """sshd's own log (stderr with ``-e``)."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __enter__(self) -> SshdHost:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.kill()

    def __repr__(self) -> str:
        return f"SshdHost({self.host}:{self.ports}, inst_dir={str(self.inst_dir)!r}, running={self.running})"
