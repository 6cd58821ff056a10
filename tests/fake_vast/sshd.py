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

Paths of the controller side that a remote job must never see (``hide_paths``: the pytest base temp folder, holding
the controller's working directories, and the repository checkout) are covered with empty tmpfs mounts inside the
namespace; the instance's own folder is bound back, so sshd still finds its config and keys. A staging bug that reads
or writes an absolute controller path therefore fails instead of silently working through the shared filesystem.

Without root the daemon runs in its own session only (``private_workspace`` is then False and the host ``/workspace`` is
not touched); tests that need privacy skip in that case, except on CI (``CI=true``) or with
``DENSITY_ENGINE_REQUIRE_SSH=1``, where a missing sshd or a failing ``unshare`` is an error, never a skip.

Start and kill are serialised per host: :meth:`SshdHost.kill` bumps an epoch, and a :meth:`SshdHost.start` that was
decided before that kill (``start(epoch=...)``) does nothing, so a destroyed fake instance never gets a late sshd.
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
import tempfile
import threading
import time
from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path

SSHD_BINARY = "/usr/sbin/sshd"
WORKSPACE = Path("/workspace")
REQUIRE_SSH_ENV = "DENSITY_ENGINE_REQUIRE_SSH"
STAGING_MOUNT = Path("/run/fake-vast-inst")
"""Mount point (inside each host's namespace only) that carries the instance folder across the hiding mounts."""
IMAGE_ROOT = Path("/run/fake-vast-image")
"""Where an "image" host sees the folders of :attr:`SshdHost.image_binds` (inside its namespace only)."""
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def ssh_tests_required() -> bool:
    """True on CI (``CI`` set to anything but false/0) or with ``DENSITY_ENGINE_REQUIRE_SSH=1``: real-sshd tests must
    run there, so what would make them skip is an error instead."""
    ci = os.environ.get("CI", "").strip().lower()
    return ci not in ("", "0", "false", "no") or os.environ.get(REQUIRE_SSH_ENV, "").strip() == "1"


def sshd_unavailable_reason() -> str | None:
    """Why real-sshd tests cannot run here, or None when they can."""
    if not os.path.exists(SSHD_BINARY):
        return f"{SSHD_BINARY} not found (install openssh-server)"
    if shutil.which("ssh-keygen") is None:
        return "ssh-keygen not found (install openssh-client)"
    return None


@lru_cache(maxsize=1)
def isolation_unavailable_reason() -> str | None:
    """Why sshd cannot run in a private mount + PID namespace here, or None when it can: needs root, util-linux
    ``unshare`` and a kernel that allows the namespaces and mounts (probed once by doing exactly that)."""
    if os.geteuid() != 0:
        return "private /workspace needs root (mount namespace)"
    if shutil.which("unshare") is None:
        return "unshare (util-linux) not found"
    with tempfile.TemporaryDirectory(prefix="fake-vast-probe-") as probe:
        script = f"mount -t tmpfs fake-vast-probe {shlex.quote(probe)} && mount --bind / {shlex.quote(probe)} && true"
        command = ["unshare", "--mount", "--pid", "--fork", "--mount-proc", "--propagation", "private", "sh", "-c"]
        try:
            result = subprocess.run([*command, script], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.SubprocessError) as exc:
            return f"unshare probe failed: {exc}"
    if result.returncode != 0:
        return f"unshare probe exited {result.returncode}: {(result.stderr or result.stdout).strip()[-300:]}"
    return None


def can_isolate() -> bool:
    """True when sshd can be started in a private mount + PID namespace (see :func:`isolation_unavailable_reason`).

    Where SSH tests are required (:func:`ssh_tests_required`) an unusable namespace raises instead of returning False,
    so tests cannot quietly skip or lose their isolation on CI.
    """
    reason = isolation_unavailable_reason()
    if reason is not None and ssh_tests_required():
        raise RuntimeError(f"fake Vast hosts cannot be isolated: {reason} (required: CI or {REQUIRE_SSH_ENV}=1 is set)")
    return reason is None


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
    ``workspace_dir`` (what the host sees as ``/workspace``), ``log_path`` (sshd's stderr, ``-e``), ``hide_paths``
    (controller folders covered with an empty tmpfs on the host), ``epoch`` (bumped by every kill).
    """

    def __init__(
        self,
        inst_dir: Path,
        *,
        ports: Sequence[int] | None = None,
        authorized_keys: Iterable[str] = (),
        key_path: Path | None = None,
        isolate: bool | None = None,
        hide_paths: Iterable[Path] = (),
        workspace_kb: int | None = None,
        image_binds: Sequence[tuple[Path, str]] = (),
        masks: Sequence[Path] = (),
        session_path: str | None = None,
        init_path: str | None = None,
    ) -> None:
        self.workspace_kb = workspace_kb
        """A private tmpfs of this many KiB as /workspace instead of the instance's folder (a host with a full disk)."""
        self.image_binds = tuple((Path(src), name) for src, name in image_binds)
        """Folders shown at ``/run/fake-vast-image/<name>`` on the host (e.g. an image's venv)."""
        self.masks = tuple(Path(p) for p in masks)
        """Folders covered with an empty tmpfs on the host (e.g. the test interpreter's site-packages)."""
        self.session_path = session_path
        """PATH of SSH sessions (the fast ~/.bashrc); default: the test interpreter's folder first."""
        self.init_path = init_path
        """PATH in the environment of the host's init (sshd, PID 1): what an image's ENV PATH would be."""
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
        self.hide_paths = tuple(Path(p).resolve() for p in hide_paths)
        self._process: subprocess.Popen[bytes] | None = None
        self._ready = False
        self._lock = threading.Lock()  # serialises start and kill (the fake's boot thread vs. DELETE)
        self._epoch = 0
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
    def epoch(self) -> int:
        """Number of kills so far: pass it to :meth:`start` to start only if no kill happened since it was read."""
        return self._epoch

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
        path = self.session_path or f"{os.path.dirname(sys.executable)}:{SYSTEM_PATH}"
        # the hosts have no internet: pip fails at once instead of retrying a package index
        fast.write_text(
            f"# fake Vast host: fast non-interactive shell\nexport PATH={shlex.quote(path)}\nexport PIP_NO_INDEX=1\n"
        )
        return f"mount --bind {shlex.quote(str(fast))} {shlex.quote(str(bashrc))} && "

    def _hide_mounts(self) -> str:
        """Mount commands covering :attr:`hide_paths` with empty tmpfs folders. What the host itself needs from under
        them (the instance folder: sshd's config, keys, authorized_keys, log; the test interpreter, e.g. a venv inside
        the checkout) is carried across on :data:`STAGING_MOUNT` and bound back at its old path."""
        hidden = sorted({p for p in self.hide_paths if p.is_dir() and p != Path("/")}, key=lambda p: len(p.parts))
        hidden = [p for i, p in enumerate(hidden) if not any(p.is_relative_to(q) for q in hidden[:i])]
        if not hidden:
            return ""
        needed = {self.inst_dir.resolve(), Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve()}
        keep = sorted(k for k in needed if any(k.is_relative_to(h) for h in hidden))
        keep = [k for i, k in enumerate(keep) if not any(k.is_relative_to(q) for q in keep[:i])]
        staging = shlex.quote(str(STAGING_MOUNT))
        steps = [f"mount -t tmpfs -o size=1m,mode=755 fake-vast-keep {staging}"]
        for n, path in enumerate(keep):
            steps += [f"mkdir -p {staging}/{n}", f"mount --bind {shlex.quote(str(path))} {staging}/{n}"]
        steps += [f"mount -t tmpfs -o size=1m,mode=755 fake-vast-hidden {shlex.quote(str(p))}" for p in hidden]
        for n, path in enumerate(keep):
            steps += [f"mkdir -p {shlex.quote(str(path))}", f"mount --bind {staging}/{n} {shlex.quote(str(path))}"]
        steps.append(f"umount --recursive --lazy {staging}")
        return " && ".join(steps) + " && "

    def command(self) -> list[str]:
        """The argv that starts this daemon."""
        sshd = [SSHD_BINARY, "-D", "-e", "-f", str(self.config_path)]
        if not self.private_workspace:
            return sshd
        if self.workspace_kb is not None:
            workspace = f"mount -t tmpfs -o size={int(self.workspace_kb)}k fake-vast-full {WORKSPACE}"
        else:
            workspace = f"mount --bind {shlex.quote(str(self.workspace_dir))} {WORKSPACE}"
        image = "".join(
            f"mkdir -p {IMAGE_ROOT}/{name} && mount --bind {shlex.quote(str(src))} {IMAGE_ROOT}/{name} && "
            for src, name in self.image_binds
        )
        if image:
            image = f"mount -t tmpfs -o size=1m,mode=755 fake-vast-image {IMAGE_ROOT} && " + image
        masks = "".join(
            f"mount -t tmpfs -o size=1m,mode=755 fake-vast-mask {shlex.quote(str(p))} && " for p in self.masks
        )
        # sshd drops its environment when it re-executes itself; an image's init keeps the image's ENV (PATH) in
        # /proc/1/environ, so with init_path the namespace's PID 1 is a shell that runs sshd as its child (and reaps
        # orphaned jobs while it waits, as sshd does when it is PID 1)
        start = shlex.join(sshd) if self.init_path else f"exec {shlex.join(sshd)}"
        script = f"{workspace} && {self._bashrc_bind()}{image}{masks}{self._hide_mounts()}{start}"
        return ["unshare", "--mount", "--pid", "--fork", "--mount-proc", "--propagation", "private", "sh", "-c", script]

    def start(self, *, wait: bool = True, timeout: float = 10.0, epoch: int | None = None) -> bool:
        """Start the daemon (own session/process group); by default wait until it answers with an SSH banner.

        With ``epoch`` (a value of :attr:`epoch` read earlier) nothing starts when :meth:`kill` ran since then, and a
        kill while waiting for the banner is not an error: the host was destroyed meanwhile. Returns True when the
        daemon runs (and, with ``wait``, answers) at the end.
        """
        with self._lock:
            if epoch is not None and epoch != self._epoch:
                return False
            if self.running:
                return True
            if not self.host_key_path.exists():  # generated on first start: renting many never-booted hosts stays cheap
                generate_keypair(self.host_key_path, comment="fake-vast-host")
            if self.private_workspace:
                WORKSPACE.mkdir(exist_ok=True)
                if self.hide_paths:
                    STAGING_MOUNT.mkdir(parents=True, exist_ok=True)
                if self.image_binds:
                    IMAGE_ROOT.mkdir(parents=True, exist_ok=True)
            if os.geteuid() == 0:
                Path("/run/sshd").mkdir(parents=True, exist_ok=True)  # privilege-separation dir sshd wants as root
            env = {**os.environ, "PATH": self.init_path} if self.init_path else None
            with self.log_path.open("ab") as log:
                self._process = subprocess.Popen(
                    self.command(), stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True, env=env
                )
            started_epoch = self._epoch
        if wait:
            return self.wait_ready(timeout, epoch=started_epoch)
        return True

    def wait_ready(self, timeout: float = 10.0, *, epoch: int | None = None) -> bool:
        """Block until every port answers with an SSH banner; raise RuntimeError (with the sshd log) otherwise.

        With ``epoch``: return False (no error) as soon as a kill since that epoch ended the daemon.
        """
        deadline = time.monotonic() + timeout
        pending = list(self.ports)
        self._ready = False
        while pending:
            if epoch is not None and epoch != self._epoch:
                return False
            if not self.running:
                if epoch is not None and epoch != self._epoch:
                    return False
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
        with self._lock:
            self._ready = self.running and (epoch is None or epoch == self._epoch)
            return self._ready

    def kill(self) -> None:
        """SIGKILL the daemon's process group; with isolation this also kills every process started over SSH.

        Bumps :attr:`epoch`, so a start decided before this kill (``start(epoch=...)``) does nothing.
        """
        with self._lock:
            self._epoch += 1
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
