"""A real single-node Slurm cluster on localhost for the tests: munged, slurmctld and slurmd (Debian's ``munge`` and
``slurm-wlm`` packages), started as root from a generated ``slurm.conf`` in a temporary folder and stopped again.

Everything lives in that folder: the munge key and socket, ``slurm.conf``/``gres.conf``, state, spool, pid and log
files; the daemons listen on free loopback ports, so nothing of a system Slurm or munge is used or touched. Clients
(``sbatch``, ``squeue``, the snakemake slurm executor) find the cluster through ``SLURM_CONF`` (:meth:`env`).

The cluster is what a small real one looks like, minus accounting: one node ``localhost`` with the machine's CPUs and
memory (``slurmd -C``), partitions ``cpu`` (default) and ``gpu`` (the names profiles/slurm uses), ``select/cons_tres``
with cores and memory as consumable resources, ``proctrack/linuxproc`` and ``task/none`` (no cgroups needed), no
slurmdbd (``accounting_storage/none``: ``sacct`` answers "accounting storage is disabled"), ``MinJobAge=600`` so
that ``squeue --states=all`` still lists finished jobs. The node declares two GPUs as generic resources backed by
``/dev/null`` and ``/dev/zero`` (no GPU here): Slurm schedules ``--gpus=1`` requests against them (and sets
``CUDA_VISIBLE_DEVICES``), the jobs themselves compute on the CPU.

One work-around: snakemake-executor-plugin-slurm-jobstep (0.6.1) removes every ``SLURM_*`` variable but the job's
identity, ``SLURM_CONF`` included, from the environment of the ``srun`` it starts inside a job. A real cluster's
clients find ``/etc/slurm/slurm.conf`` without it; this one's configuration is in the temporary folder, so ``PATH``
starts with a folder whose ``srun`` puts ``SLURM_CONF`` back and runs the real ``srun``.

Without root or without the packages, :func:`slurm_unavailable_reason` says why; on CI (``CI`` set) or with
``DENSITY_ENGINE_REQUIRE_SLURM=1`` the tests fail instead of skipping.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

REQUIRE_SLURM_ENV = "DENSITY_ENGINE_REQUIRE_SLURM"
DAEMONS = ("munged", "mungekey", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "srun", "squeue", "scancel", "sinfo", "scontrol")
PARTITIONS = ("cpu", "gpu")  # profiles/slurm submits simulate to "gpu"
FAKE_GPU_FILES = ("/dev/null", "/dev/zero")


def slurm_tests_required() -> bool:
    """True on CI (``CI`` set to anything but false/0) or with ``DENSITY_ENGINE_REQUIRE_SLURM=1``."""
    ci = os.environ.get("CI", "").strip().lower()
    return ci not in ("", "0", "false", "no") or os.environ.get(REQUIRE_SLURM_ENV, "").strip() == "1"


def slurm_unavailable_reason() -> str | None:
    """Why a local Slurm cluster cannot be started here, or None when it can."""
    missing = [name for name in (*DAEMONS, *CLIENTS) if shutil.which(name) is None]
    if missing:
        return f"{', '.join(missing)} not found (apt-get install slurm-wlm munge)"
    if os.geteuid() != 0:
        return "slurmd must run as root"
    return None


def _free_ports(count: int) -> list[int]:
    """Distinct free loopback ports (all bound at once while picking, so they differ)."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]


def _node_hardware() -> tuple[int, int]:
    """CPUs and memory (MB) of this machine as slurmd sees them (``slurmd -C``)."""
    text = subprocess.run(["slurmd", "-C"], capture_output=True, text=True, check=True, timeout=30).stdout
    cpus = int(re.search(r"\bCPUs=(\d+)", text).group(1))
    memory = int(re.search(r"\bRealMemory=(\d+)", text).group(1))
    return cpus, memory


class SlurmCluster:
    """munged + slurmctld + slurmd on localhost, configured under ``folder`` (see the module docstring)."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.conf = self.folder / "slurm.conf"
        self.munge_socket = self.folder / "munge" / "munge.socket"
        self._processes: dict[str, subprocess.Popen] = {}

    @property
    def bin_dir(self) -> Path:
        """Folder of the ``srun`` wrapper (see the module docstring); first on the clients' and jobs' PATH."""
        return self.folder / "bin"

    def env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """Environment for Slurm clients of this cluster (and the jobs they submit: sbatch exports it)."""
        env = dict(os.environ if base is None else base)
        env["SLURM_CONF"] = str(self.conf)
        env["PATH"] = f"{self.bin_dir}{os.pathsep}{env.get('PATH', os.defpath)}"
        return env

    def run(self, *command: str, timeout: float = 30) -> subprocess.CompletedProcess:
        """A Slurm client command against this cluster (raises on failure)."""
        return subprocess.run(command, env=self.env(), capture_output=True, text=True, check=True, timeout=timeout)

    # ---- set-up ----------------------------------------------------------------------------------------------------

    def write_config(self) -> None:
        for sub in ("munge", "state", "spool/slurmd-localhost", "log"):
            (self.folder / sub).mkdir(parents=True, exist_ok=True)
        os.chmod(self.folder / "munge", 0o700)
        cpus, memory = _node_hardware()
        folder = self.folder
        gres = f"gpu:{len(FAKE_GPU_FILES)}"
        controller_port, node_port = _free_ports(2)
        lines = [
            "ClusterName=density-engine-test",
            "SlurmctldHost=localhost(127.0.0.1)",
            f"SlurmctldPort={controller_port}",
            f"SlurmdPort={node_port}",
            "SlurmUser=root",
            "SlurmdUser=root",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            f"AuthInfo=socket={self.munge_socket}",
            f"StateSaveLocation={folder / 'state'}",
            f"SlurmdSpoolDir={folder / 'spool' / 'slurmd-%n'}",
            f"SlurmctldPidFile={folder / 'slurmctld.pid'}",
            f"SlurmdPidFile={folder / 'slurmd-%n.pid'}",
            f"SlurmctldLogFile={folder / 'log' / 'slurmctld.log'}",
            f"SlurmdLogFile={folder / 'log' / 'slurmd-%n.log'}",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none",
            "JobCompType=jobcomp/none",
            "SchedulerType=sched/backfill",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core_Memory",
            "MpiDefault=none",
            "MailProg=/bin/true",
            "ReturnToService=2",
            "MinJobAge=600",
            "SlurmctldTimeout=30",
            "SlurmdTimeout=30",
            "KillWait=5",
            "GresTypes=gpu",
            f"NodeName=localhost NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory} Gres={gres} State=UNKNOWN",
        ]
        for name in PARTITIONS:  # the first is the default partition
            default = " Default=YES" if name == PARTITIONS[0] else ""
            lines.append(f"PartitionName={name} Nodes=localhost{default} MaxTime=INFINITE State=UP")
        self.conf.write_text("\n".join(lines) + "\n")
        real_srun = shutil.which("srun")
        self.bin_dir.mkdir(exist_ok=True)
        wrapper = self.bin_dir / "srun"
        wrapper.write_text(f'#!/bin/sh\nexport SLURM_CONF="${{SLURM_CONF:-{self.conf}}}"\nexec {real_srun} "$@"\n')
        wrapper.chmod(0o755)
        (self.folder / "gres.conf").write_text(
            "AutoDetect=off\n" + "".join(f"NodeName=localhost Name=gpu File={path}\n" for path in FAKE_GPU_FILES)
        )

    def _start(self, name: str, command: list[str]) -> None:
        log = open(self.folder / "log" / f"{name}.out", "wb")  # noqa: SIM115 (owned by the process)
        self._processes[name] = subprocess.Popen(
            command, env=self.env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()

    def _wait(self, what: str, ready, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            for name, process in self._processes.items():
                if process.poll() is not None:
                    exited = f"{name} exited with {process.returncode}"
                    raise RuntimeError(f"{exited} while waiting for {what}:\n{self.logs()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out waiting for {what}:\n{self.logs()}")
            time.sleep(0.2)

    def _controller_up(self) -> bool:
        ping = subprocess.run(["scontrol", "ping"], env=self.env(), capture_output=True, text=True, timeout=10)
        return "is UP" in ping.stdout

    def _node_state(self) -> str:
        result = subprocess.run(
            ["sinfo", "-h", "-n", "localhost", "-o", "%t"], env=self.env(), capture_output=True, text=True, timeout=10
        )
        return result.stdout.strip().split("\n")[0] if result.returncode == 0 else ""

    def start(self, timeout: float = 60) -> SlurmCluster:
        """Write the configuration, start the daemons and wait until the node is idle."""
        self.write_config()
        key = self.folder / "munge" / "munge.key"
        subprocess.run(["mungekey", "--create", f"--keyfile={key}"], check=True, capture_output=True, timeout=30)
        munge = self.folder / "munge"
        self._start(
            "munged",
            [
                "munged",
                "--foreground",
                "--force",
                f"--socket={self.munge_socket}",
                f"--key-file={key}",
                f"--pid-file={munge / 'munged.pid'}",
                f"--seed-file={munge / 'munged.seed'}",
                f"--log-file={self.folder / 'log' / 'munged.log'}",
            ],
        )
        self._wait("the munge socket", self.munge_socket.exists, timeout)
        self._start("slurmctld", ["slurmctld", "-D", "-i", "-f", str(self.conf)])
        self._wait("slurmctld", self._controller_up, timeout)
        self._start("slurmd", ["slurmd", "-D", "-N", "localhost", "-f", str(self.conf)])
        self._wait("the node localhost to be idle", lambda: self._node_state() == "idle", timeout)
        return self

    # ---- tear-down -------------------------------------------------------------------------------------------------

    def job_ids(self) -> list[str]:
        result = subprocess.run(
            ["squeue", "-h", "-o", "%i", "--states=PENDING,RUNNING,CONFIGURING,COMPLETING,SUSPENDED"],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=10,
        )
        return result.stdout.split() if result.returncode == 0 else []

    def stop(self) -> None:
        """Cancel what still runs, stop slurmd, slurmctld and munged (SIGTERM, then SIGKILL)."""
        with contextlib.suppress(Exception):
            ids = self.job_ids()
            if ids:
                subprocess.run(["scancel", *ids], env=self.env(), capture_output=True, timeout=10)
                deadline = time.monotonic() + 15
                while self.job_ids() and time.monotonic() < deadline:
                    time.sleep(0.5)
        for name in ("slurmd", "slurmctld", "munged"):
            process = self._processes.pop(name, None)
            if process is None or process.poll() is not None:
                continue
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)

    def logs(self, tail: int = 30) -> str:
        """The last lines of every daemon log (for error messages)."""
        parts = []
        for path in sorted((self.folder / "log").glob("*")):
            lines = path.read_text(errors="replace").splitlines()[-tail:]
            parts.append(f"--- {path.name}\n" + "\n".join(lines))
        return "\n".join(parts)
