"""Job dispatch: stage jobs onto pool hosts over SSH, run them detached, poll them, bring their files back.

Remote layout under ``remote_root``::

    venv/                              the run's venv on the image's python (host wheels installed, see hostenv)
    wheels/<wheel>                     the uploaded wheels; constraints.txt of the last pip install
    runs/<run_id>/work/                workflow sources + job inputs + outputs: the remote snakemake's working dir
    runs/<run_id>/jobs/<key>/          run.sh, env, pid, exit_code, job.log of one submission

Life of a job: ``submit`` asks the pool for a host (:class:`~.pool.HostRequest`, avoiding the hosts and machines the
job failed on before); when the pool grants one, a pool worker sets the host up once (:mod:`.hostenv`: python, venv,
wheels, pinned requirements, Snakemake version; sources once per content hash), uploads the job's inputs, writes
``run.sh`` (``scripts/run.sh``) and starts it with ``setsid nohup``. ``poll`` runs ONE SSH command per host per cycle
for all of that host's jobs (hosts in parallel, at most ``poll_workers`` at a time); a job that exited 0 has its
outputs, benchmark and log files downloaded atomically before it is reported done; a failed job's remote logs are
fetched first.

Host faults are not job failures: a job whose host died, was preempted, filled its disk or broke its SSH while staging
is re-queued on another host (at most ``MAX_HOST_FAULTS`` times; a preemption does not count) without reaching
Snakemake's retries. A job that failed by itself is reported failed (Snakemake retries it, elsewhere: the next attempt
avoids that host and machine); a host on which two different jobs failed is retired. The same set-up error on two
different machines ends the run (:attr:`JobRunner.fatal_error`) instead of renting more.

Environment variables declared for the jobs (Snakemake ``envvars:`` / ``--envvars``) travel in a 0600 file
``jobs/<key>/env`` that ``run.sh`` sources; they are never part of a command line.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import re
import tarfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from snakemake_executor_plugin_vast import hostenv
from snakemake_executor_plugin_vast.boot import DEAD_STATUSES
from snakemake_executor_plugin_vast.health import DISK_FULL, HOST_FAULTS, HealthBook, classify
from snakemake_executor_plugin_vast.hostenv import HostSetupError, script
from snakemake_executor_plugin_vast.offers import JobNeeds
from snakemake_executor_plugin_vast.pool import BudgetExceeded, Host, HostPool, HostRequest, PoolClosed
from snakemake_executor_plugin_vast.ssh import RemoteCommandError, SshError, quote_command
from snakemake_executor_plugin_vast.wheels import WheelInfo

log = logging.getLogger(__name__)

STARTING_GRACE_S = 60.0
"""How long a launched job may go without a pid file before it counts as lost."""

MAX_STAGING_FAILURES = 3
"""Consecutive SSH failures while staging jobs after which a host is retired although Vast reports it running."""

MAX_HOST_FAULTS = 3
"""Host faults (death, disk full, broken SSH, set-up errors) one job may meet before it fails (retryably)."""

_KEY_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def job_key(jobid: object, attempt: int) -> str:
    """Folder-safe key of one submission: ``<jobid>-a<attempt>`` (group job ids are UUIDs)."""
    return _KEY_SAFE.sub("_", f"{jobid}-a{attempt}")[:80]


@dataclass
class RemoteJob:
    """One submission as the runner sees it (built by the executor from a Snakemake job)."""

    key: str
    name: str
    command: str
    inputs: list[str]
    outputs: list[str]
    optional_outputs: list[str]
    needs: JobNeeds = field(default_factory=JobNeeds)
    env: dict[str, str] = field(default_factory=dict, repr=False)
    """Environment of the remote command (shipped in a 0600 file, never on a command line)."""
    jobid: str = ""
    """Snakemake's job id (the same for every attempt): failures are remembered per jobid."""
    state: str = "queued"  # queued | staging | running | succeeded | failed
    host: Host | None = None
    launched_at: float | None = None
    exit_code: int | None = None
    error: str | None = None
    aux_logs: list[str] = field(default_factory=list)
    cancelled: bool = False
    gpu_ids: list[int] = field(default_factory=list)
    host_faults: int = 0
    requeues: list[str] = field(default_factory=list)
    avoid_hosts: set[int] = field(default_factory=set)
    avoid_machines: set[int] = field(default_factory=set)

    def __post_init__(self) -> None:
        if not self.jobid:
            self.jobid = self.key.rsplit("-a", 1)[0]

    @property
    def finished(self) -> bool:
        """True once the job succeeded or failed."""
        return self.state in ("succeeded", "failed")


@dataclass
class RunnerSettings:
    """Remote paths and local folders of one run."""

    run_id: str
    remote_root: str = "/workspace/snakemake-vast"
    remote_python: str = "python3"
    local_workdir: Path = field(default_factory=Path.cwd)
    aux_dir: Path = field(default_factory=lambda: Path(".snakemake/auxiliary/vast-logs"))
    snakemake_version: str = ""
    unreachable_timeout: float = 300.0
    poll_workers: int = 16

    @property
    def venv(self) -> str:
        """Remote venv folder."""
        return f"{self.remote_root}/venv"

    @property
    def venv_python(self) -> str:
        """Remote python of the venv (what the remote ``python -m snakemake`` runs with)."""
        return f"{self.venv}/bin/python"

    @property
    def workdir(self) -> str:
        """Remote working directory of this run."""
        return f"{self.remote_root}/runs/{self.run_id}/work"

    @property
    def jobs_root(self) -> str:
        """Remote folder of this run's job control folders."""
        return f"{self.remote_root}/runs/{self.run_id}/jobs"

    def jobdir(self, key: str) -> str:
        """Remote control folder of one submission."""
        return f"{self.jobs_root}/{key}"


class SourceBundle:
    """A tar.gz of the workflow sources (relative paths), content-hashed so each host gets it once."""

    def __init__(self, files: Iterable[str], workdir: Path) -> None:
        self.files = sorted(set(files))
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=6) as tar:
            for rel in self.files:
                info = tar.gettarinfo(str(workdir / rel), arcname=rel)
                info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
                with open(workdir / rel, "rb") as handle:
                    tar.addfile(info, handle)
        self.data = buffer.getvalue()
        self.sha256 = hashlib.sha256(self.data).hexdigest()


class JobRunner:
    """Runs :class:`RemoteJob` s on hosts of a :class:`HostPool` (see the module docstring). Thread-safe."""

    def __init__(
        self,
        pool: HostPool,
        settings: RunnerSettings,
        source_files: Callable[[], Sequence[str]],
        *,
        wheels: Sequence[WheelInfo] = (),
        health: HealthBook | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        self.pool = pool
        self.settings = settings
        self.log = logger or log
        self.wheels = list(wheels)
        """The wheels every host installs (from ``--vast-host-wheels-command``), in install order."""
        self.health = health or HealthBook()
        self._source_files = source_files
        self._bundle: SourceBundle | None = None
        self._pins: dict[str, str] | None = None
        self._prep_lock = threading.Lock()
        self._lock = threading.RLock()
        self.jobs: dict[str, RemoteJob] = {}
        self._closed = False
        self.budget_stopped = False
        self.fatal_error: str | None = None
        self._poll_workers = ThreadPoolExecutor(
            max_workers=max(1, settings.poll_workers), thread_name_prefix="vast-poll"
        )
        pool.on_host_lost = self._host_lost
        pool.on_budget = self._stop_for_budget

    # ---- preparation -----------------------------------------------------------------------------------------------

    @property
    def wheel_versions(self) -> dict[str, str]:
        """Normalized distribution name → version of every host wheel."""
        return {w.key: w.version for w in self.wheels}

    @property
    def stamp(self) -> str:
        """What a set-up host has: the host wheels' versions and the controller's Snakemake version."""
        wheels = ",".join(f"{name}=={version}" for name, version in sorted(self.wheel_versions.items()))
        return f"{wheels or '-'};snakemake=={self.settings.snakemake_version or '?'}"

    def _prepare_local(self) -> SourceBundle:
        with self._prep_lock:
            if self._bundle is None:
                self._bundle = SourceBundle(self._source_files(), self.settings.local_workdir)
                self.log.info(
                    f"vast: workflow sources: {len(self._bundle.files)} files, {len(self._bundle.data) / 1024:.1f} KiB"
                )
            if self._pins is None:
                self._pins = hostenv.controller_versions(self.wheels)
            return self._bundle

    def bootstrap(self, host: Host) -> None:
        """Prepare a host once (python, venv, wheels, requirements, Snakemake check), then ship the sources once per
        content hash. Two SSH commands when the host is already set up, a few more when it needs installs."""
        bundle = self._prepare_local()
        conn = host.conn
        assert conn is not None
        s = self.settings
        with host.lock:
            if host.bootstrapped != self.stamp:
                self._set_up(host)
                host.bootstrapped = self.stamp
            if host.sources_hash != bundle.sha256:
                remote_tar = f"{s.remote_root}/runs/{s.run_id}/sources-{bundle.sha256[:16]}.tar.gz"
                conn.put_bytes(bundle.data, remote_tar, mode=0o600)
                conn.exec(f"tar -xzf {quote_command([remote_tar])} -C {quote_command([s.workdir])}", check=True)
                host.sources_hash = bundle.sha256

    def _set_up(self, host: Host) -> None:
        s = self.settings
        conn = host.conn
        assert conn is not None
        wanted = self.wheel_versions
        conn.exec(f"mkdir -p {quote_command([s.workdir, s.jobs_root, f'{s.remote_root}/wheels'])}", check=True)
        found = hostenv.probe(conn, s.remote_python, s.venv, list(wanted))
        image_installed = dict(found.installed)
        if not found.in_venv:
            kind = "a venv, chained" if found.is_venv else "not a venv"
            self.log.info(f"vast: {host.name}: python {found.python} ({kind}); creating the run's venv {s.venv}")
            hostenv.make_venv(conn, found, s.venv)
            found = hostenv.probe(conn, s.remote_python, s.venv, list(wanted))
        host.env = found
        stale = [w for w in self.wheels if found.installed.get(w.key) != w.version]
        if stale:
            remote = [f"{s.remote_root}/wheels/{w.path.name}" for w in stale]
            self.log.info(f"vast: installing {', '.join(w.path.name for w in stale)} on {host.name}")
            conn.put_many([(w.path, r) for w, r in zip(stale, remote, strict=True)])
            hostenv.install_wheels(conn, s.venv_python, remote)
            found = hostenv.probe(conn, s.remote_python, s.venv, list(wanted))
        else:
            self.log.info(f"vast: {host.name} already has {', '.join(f'{k} {v}' for k, v in wanted.items()) or '-'}")
        install, constraints = hostenv.requirements_plan(
            found.missing, self._pins or {}, image_installed, shipped=wanted, snakemake_version=s.snakemake_version
        )
        if install:
            self.log.info(
                f"vast: installing on {host.name} (pinned to this controller's versions): {' '.join(install)}"
            )
            hostenv.pip_install(conn, s.venv_python, install, constraints, f"{s.remote_root}/wheels")
            found = hostenv.probe(conn, s.remote_python, s.venv, list(wanted))
        broken = [f"{w.name} {w.version}" for w in self.wheels if found.installed.get(w.key) != w.version]
        if broken:
            raise HostSetupError(f"{', '.join(broken)} not importable after the install")
        sm = found.installed.get("snakemake")
        if s.snakemake_version and sm != s.snakemake_version:
            raise HostSetupError(
                f"snakemake on the host is {sm or 'not installed'}, but this controller runs {s.snakemake_version}; "
                "the versions must be equal"
            )
        host.env = found

    # ---- submission ------------------------------------------------------------------------------------------------

    def submit(self, job: RemoteJob) -> None:
        """Ask the pool for a host for this job (never blocks, never raises for host problems)."""
        with self._lock:
            self.jobs[job.key] = job
        if self._closed or self.fatal_error:
            self._fail(job, self.fatal_error or "the vast executor is shutting down")
            return
        self._request(job)

    def _request(self, job: RemoteJob) -> None:
        hosts, machines = self.health.avoid_for(job.jobid)
        job.state = "queued"
        job.host = None
        self.pool.request(
            HostRequest(
                key=job.key,
                needs=job.needs,
                on_host=lambda host: self._start(job, host),
                on_error=lambda exc: self._no_host(job, exc),
                avoid_hosts=frozenset(hosts | job.avoid_hosts),
                avoid_machines=frozenset(machines | job.avoid_machines),
            )
        )

    def _no_host(self, job: RemoteJob, exc: Exception) -> None:
        if isinstance(exc, PoolClosed | BudgetExceeded):
            self._fail(job, str(exc) if not self.budget_stopped else self.pool.budget_message())
        else:
            self._fail(job, f"no host: {exc}")

    def _start(self, job: RemoteJob, host: Host) -> None:
        """A pool worker with ``host`` reserved for ``job``: set the host up, stage and start the job."""
        if job.cancelled or self._closed or self.fatal_error:
            self.pool.release(host, job.needs.gpus, job.key)
            self._fail(job, self.fatal_error or "cancelled")
            return
        job.state = "staging"
        job.host = host
        job.gpu_ids = self.pool.assign_gpus(host, job.key, job.needs.gpus)
        started = time.monotonic()
        try:
            self.bootstrap(host)
            self._launch(host, job)
        except HostSetupError as exc:  # the host is retired (or the run stops) before its GPUs are given back
            self._setup_failed(job, host, str(exc))
            return
        except (SshError, OSError) as exc:
            if isinstance(exc, SshError) or classify(str(exc)) == DISK_FULL:
                self._staging_failed(job, host, exc)
            else:  # a local input is unreadable: the job's problem
                self.pool.release(host, job.needs.gpus, job.key)
                self._fail(job, f"staging failed: {exc}")
            return
        self.log.info(
            f"vast: job {job.name} ({job.key}) started on {host.name} (staged in {time.monotonic() - started:.1f} s)"
        )

    def _setup_failed(self, job: RemoteJob, host: Host, reason: str) -> None:
        if classify(reason) in HOST_FAULTS:  # e.g. the venv cannot be written to a full disk: the host's fault
            detail = self._disk_detail(host) if classify(reason) == DISK_FULL else ""
            self.pool.retire(host, f"{classify(reason)}{f' ({detail})' if detail else ''}: {reason[:200]}")
            self.pool.release(host, job.needs.gpus, job.key)
            self._requeue(job, host, f"set-up failed on {host.name}: {reason}")
            return
        machines = self.health.setup_failed(reason, host.machine_id, host.instance_id)
        self.log.warning(f"vast: setting up {host.name} failed: {reason}")
        if machines >= 2:  # the pool stops before this host's slot frees up: no further rent can start
            self._fatal(
                f"the same set-up error happened on {machines} different machines, so it is not the hosts' fault and "
                f"renting more would not help: {reason}"
            )
        self.pool.retire(host, f"set-up failed: {reason}")
        self.pool.release(host, job.needs.gpus, job.key)
        if machines >= 2:
            self._fail(job, self.fatal_error or reason)
            return
        self._requeue(job, host, f"set-up failed on {host.name}: {reason}")

    def _staging_failed(self, job: RemoteJob, host: Host, exc: Exception) -> None:
        """An SSH/SFTP failure while staging: a full disk retires the host at once; otherwise the host is retired
        when Vast says it is not running, after ``MAX_STAGING_FAILURES`` failures in a row, or once unreachable
        for ``unreachable_timeout``. The job goes to another host either way."""
        text = str(exc)
        if classify(text) == DISK_FULL:
            detail = self._disk_detail(host)
            reason = f"disk full ({detail or text[:200]})"
            self.pool.retire(host, reason)
            self.pool.release(host, job.needs.gpus, job.key)
            self._requeue(job, host, f"staging on {host.name} failed: {reason}")
            return
        now = time.monotonic()
        host.staging_failures += 1
        if host.unreachable_since is None:
            host.unreachable_since = now
        status = self.pool.instance_status(host)
        waited = now - host.unreachable_since
        if status not in ("running", "?"):
            self.pool.retire(host, f"SSH failed during staging and the instance is {status!r}")
        elif not self._answers(host):  # Vast may not know yet: a host that does not answer at once is not used again
            self.pool.retire(host, "SSH failed during staging and the host does not answer")
        elif host.staging_failures >= MAX_STAGING_FAILURES or waited > self.settings.unreachable_timeout:
            self.pool.retire(
                host,
                f"SSH failed for {host.staging_failures} staging attempt(s) in a row over {waited:.0f} s although "
                "Vast reports the instance running",
            )
        self.pool.release(host, job.needs.gpus, job.key)
        self._requeue(job, host, f"staging on {host.name} failed: {text[:300]}")

    @staticmethod
    def _answers(host: Host) -> bool:
        """True when the host runs a trivial command now (a fresh connection if the last one broke)."""
        if host.conn is None:
            return False
        try:
            return host.conn.exec("true", timeout=10).ok
        except SshError:
            return False

    def _disk_detail(self, host: Host) -> str:
        if host.conn is None:
            return ""
        with contextlib.suppress(Exception):
            return hostenv.disk_report(host.conn, self.settings.remote_root)
        return ""

    def _requeue(self, job: RemoteJob, host: Host | None, reason: str, *, fault: bool = True) -> None:
        """Give the job to another host without a Snakemake failure (a host fault, or a preemption: ``fault=False``)."""
        with self._lock:
            if job.finished:
                return
            if host is not None:
                job.avoid_hosts.add(host.instance_id)
                if fault and host.machine_id is not None:
                    job.avoid_machines.add(host.machine_id)
            job.requeues.append(reason)
            if fault:
                job.host_faults += 1
            too_many = job.host_faults > MAX_HOST_FAULTS
        if job.cancelled or self._closed or self.fatal_error:
            self._fail(job, self.fatal_error or reason)
            return
        if too_many:
            self._fail(job, f"{reason} (the job met {job.host_faults} host faults: " + "; ".join(job.requeues) + ")")
            return
        self.log.warning(f"vast: job {job.name} ({job.key}) goes to another host: {reason}")
        job.launched_at = None
        job.exit_code = None
        self._request(job)

    def _fatal(self, message: str) -> None:
        with self._lock:
            if self.fatal_error:
                return
            self.fatal_error = message
        self.log.error(f"vast: {message}")
        self.pool.stop()

    def _launch(self, host: Host, job: RemoteJob) -> None:
        s = self.settings
        conn = host.conn
        assert conn is not None
        jobdir = s.jobdir(job.key)
        bad = sorted(name for name in job.env if not _ENV_NAME.fullmatch(name))
        if bad:
            raise ValueError(f"environment variable names {bad} of job {job.name} are not valid shell names")
        env_text = "".join(f"export {name}={quote_command([value])}\n" for name, value in sorted(job.env.items()))
        pairs = []
        for rel in job.inputs:
            local = s.local_workdir / rel
            if local.is_dir():
                pairs.extend(
                    (p, f"{s.workdir}/{p.relative_to(s.local_workdir).as_posix()}")
                    for p in local.rglob("*")
                    if p.is_file()
                )
            else:
                pairs.append((local, f"{s.workdir}/{PurePosixPath(Path(rel).as_posix())}"))
        values = {
            "@JOBDIR@": quote_command([jobdir]),
            "@WORKDIR@": quote_command([s.workdir]),
            "@VENV_BIN@": quote_command([s.venv + "/bin"]),
            "@CUDA@": ",".join(str(i) for i in job.gpu_ids) or "0",
        }
        run_sh = script("run.sh")
        for placeholder, value in values.items():
            run_sh = run_sh.replace(placeholder, value)
        run_sh = run_sh.replace("@COMMAND@", job.command)
        # one SFTP session for the inputs, env (0600 from its creation on) and run.sh, one command to clear old state
        # and start the job detached
        blobs = [(env_text.encode(), f"{jobdir}/env", 0o600), (run_sh.encode(), f"{jobdir}/run.sh", 0o700)]
        conn.put_many(pairs, blobs=blobs)
        leftovers = [f"{jobdir}/{name}" for name in ("pid", "exit_code", "job.log")]
        conn.exec(
            f"rm -f {quote_command(leftovers)} && cd {quote_command([jobdir])} && "
            "{ setsid nohup bash run.sh > job.log 2>&1 < /dev/null & }",
            check=True,
            timeout=60,
        )
        job.launched_at = time.monotonic()
        job.state = "running"
        host.staging_failures = 0
        host.unreachable_since = None
        if job.cancelled:
            self._kill_on_host(host, [job.key])

    # ---- polling ---------------------------------------------------------------------------------------------------

    def poll(self) -> list[RemoteJob]:
        """One status cycle: one SSH call per host with running jobs (hosts in parallel, bounded); returns the jobs
        that finished since the last poll."""
        with self._lock:
            running = [j for j in self.jobs.values() if j.state == "running" and j.host is not None]
        by_host: dict[int, list[RemoteJob]] = {}
        hosts: dict[int, Host] = {}
        for job in running:
            assert job.host is not None
            by_host.setdefault(job.host.instance_id, []).append(job)
            hosts[job.host.instance_id] = job.host
        if len(by_host) > 1:
            list(self._poll_workers.map(lambda hid: self._poll_host(hosts[hid], by_host[hid]), by_host))
        else:
            for hid, jobs in by_host.items():
                self._poll_host(hosts[hid], jobs)
        return self.collect_finished()

    def collect_finished(self) -> list[RemoteJob]:
        """Remove and return the finished jobs."""
        with self._lock:
            done = [j for j in self.jobs.values() if j.finished]
            for job in done:
                del self.jobs[job.key]
        return done

    def unfinished(self) -> int:
        """Jobs submitted and not yet finished."""
        with self._lock:
            return sum(1 for j in self.jobs.values() if not j.finished)

    def _poll_host(self, host: Host, jobs: list[RemoteJob]) -> None:
        if host.state in ("dead", "destroyed"):
            return  # its jobs were handed back when it was lost
        try:
            states = self._query_states(host, [j.key for j in jobs])
        except SshError as exc:
            self._host_unreachable(host, jobs, exc)
            return
        except Exception as exc:
            self.log.warning(f"vast: status of {host.name} failed: {exc}")
            return
        host.unreachable_since = None
        for job in jobs:
            if job.host is not host or job.state != "running":
                continue
            try:
                self._handle_state(host, job, states.get(job.key, ("lost",)))
            except Exception as exc:  # never let one job break the status cycle
                self.log.debug("vast: status handling error", exc_info=True)
                self._finish_failed(host, job, f"status handling failed: {type(exc).__name__}: {exc}")

    def _query_states(self, host: Host, keys: list[str]) -> dict[str, tuple[str, ...]]:
        assert host.conn is not None
        command = (
            f"JOBS={quote_command([self.settings.jobs_root])} bash -c {quote_command([script('poll.sh')])} bash "
            f"{quote_command(keys)}"
        )
        result = host.conn.exec(command, timeout=60)
        if not result.ok:
            raise RemoteCommandError(f"status command failed on {host.name}: {result.stderr.strip()[-300:]}", result)
        states: dict[str, tuple[str, ...]] = {}
        for line in result.stdout.splitlines():
            parts = line.split()
            if len(parts) >= 2:
                states[parts[0]] = tuple(parts[1:])
        return states

    def _handle_state(self, host: Host, job: RemoteJob, state: tuple[str, ...]) -> None:
        kind = state[0]
        if kind == "running":
            return
        if kind == "starting":
            if job.launched_at is not None and time.monotonic() - job.launched_at > STARTING_GRACE_S:
                self._finish_failed(host, job, "the job process never started")
            return
        if kind == "lost":
            self._finish_failed(host, job, "the job process vanished without an exit code (killed or out of memory?)")
            return
        try:
            code = int(state[1])
        except (IndexError, ValueError):
            code = -1
        job.exit_code = code
        if code != 0:
            self._finish_failed(host, job, f"exit code {code}")
            return
        try:
            self._download(host, job)
        except FileNotFoundError as exc:
            self._finish_failed(host, job, f"exit code 0 but an output is missing: {exc}")
            return
        except SshError as exc:
            self._finish_failed(host, job, f"downloading the outputs failed: {exc}")
            return
        job.state = "succeeded"
        self.pool.release(host, job.needs.gpus, job.key, finished_job=True)
        ran = time.monotonic() - job.launched_at if job.launched_at is not None else float("nan")
        self.log.info(
            f"vast: job {job.name} ({job.key}) finished on {host.name} after {ran:.1f} s (outputs downloaded)"
        )

    def _download(self, host: Host, job: RemoteJob) -> None:
        assert host.conn is not None
        s = self.settings
        required = [(f"{s.workdir}/{Path(p).as_posix()}", s.local_workdir / p) for p in job.outputs]
        host.conn.get_many(required)
        for rel in job.optional_outputs:
            with contextlib.suppress(FileNotFoundError):
                host.conn.get(f"{s.workdir}/{Path(rel).as_posix()}", s.local_workdir / rel)

    def _fetch_logs(self, host: Host, job: RemoteJob) -> tuple[list[str], str, str]:
        """Fetch the job's remote logs into the aux folder (before anything is destroyed); return (paths, tail of the
        job log, all fetched text)."""
        s = self.settings
        target = s.local_workdir / s.aux_dir / s.run_id / job.key
        paths: list[str] = []
        tail, text = "", ""
        if host.conn is None:
            return paths, tail, text
        wanted = [(f"{s.jobdir(job.key)}/job.log", target / "job.log")]
        wanted += [(f"{s.workdir}/{Path(p).as_posix()}", target / "rule-logs" / p) for p in job.optional_outputs]
        for remote, local in wanted:
            try:
                host.conn.get(remote, local)
                paths.append(os.path.relpath(local, s.local_workdir))
            except (FileNotFoundError, SshError):
                continue
        texts = [(s.local_workdir / p).read_text(errors="replace") for p in paths]
        if texts:
            tail = "\n".join(texts[0].strip().splitlines()[-15:])
        return paths, tail, "\n".join(texts)

    def _finish_failed(self, host: Host, job: RemoteJob, reason: str) -> None:
        aux, tail, text = self._fetch_logs(host, job)
        kind = classify(text) or classify(reason)
        if kind in HOST_FAULTS:
            detail = self._disk_detail(host) if kind == DISK_FULL else ""
            cause = f"{kind}{f' ({detail})' if detail else ''}"
            self.pool.retire(host, f"{cause}: job {job.key} failed with it")
            self.pool.release(host, job.needs.gpus, job.key)
            self._requeue(job, host, f"{reason} on {host.name}: {cause}")
            return
        job.aux_logs = aux
        message = f"{reason} on {host.name}"
        if kind:
            message += f" ({kind})"
        if job.exit_code is not None and "exit code" not in reason:
            message += f" (exit code {job.exit_code})"
        if tail:
            message += f"; last lines of the remote log:\n{tail}\n"
        repeated = self.health.job_failed(job.jobid, host.instance_id, host.machine_id)
        if repeated:
            jobs = sorted(self.health.failed_jobs_by_host.get(host.instance_id, ()))
            self.pool.retire(host, f"different jobs failed on it ({', '.join(jobs)})")
        self.pool.release(host, job.needs.gpus, job.key)
        self._fail(job, message)

    def _fail(self, job: RemoteJob, message: str) -> None:
        job.error = message
        job.state = "failed"

    def _host_unreachable(self, host: Host, jobs: list[RemoteJob], exc: Exception) -> None:
        now = time.monotonic()
        if host.unreachable_since is None:
            host.unreachable_since = now
            self.log.warning(
                f"vast: {host.name} unreachable ({exc}); waiting up to {self.settings.unreachable_timeout:.0f} s"
            )
        status = self.pool.instance_status(host)
        waited = now - host.unreachable_since
        if status == "gone" or status in DEAD_STATUSES or waited > self.settings.unreachable_timeout:
            why = (
                f"instance status {status!r}"
                if status == "gone" or status in DEAD_STATUSES
                else f"unreachable for {waited:.0f} s"
            )
            container_log = self.pool.fetch_container_log(host)  # before the host is destroyed
            self.pool.retire(host, why)
            self._lose_host(host, f"host {host.name} died while the job ran ({why})", fault=True, log=container_log)

    def _host_lost(self, host: Host, reason: str, preempted: bool) -> None:
        """The pool lost a host (preempted, gone, exited): its jobs go to other hosts."""
        self._lose_host(host, f"{host.name}: {reason}", fault=not preempted)

    def _lose_host(self, host: Host, reason: str, *, fault: bool, log: Path | None = None) -> None:
        container_log = log
        note = f"; Vast's container log: {os.path.relpath(container_log, self.settings.local_workdir)}" if (
            container_log is not None
        ) else ""  # fmt: skip
        with self._lock:
            jobs = [j for j in self.jobs.values() if j.host is host and j.state in ("staging", "running")]
        for job in jobs:
            self.pool.release(host, job.needs.gpus, job.key)
            self._requeue(job, host, reason + note, fault=fault)

    # ---- cancellation and teardown ---------------------------------------------------------------------------------

    def _kill_on_host(self, host: Host, keys: list[str]) -> None:
        if host.conn is None or not keys:
            return
        command = (
            f"JOBS={quote_command([self.settings.jobs_root])} bash -c {quote_command([script('kill.sh')])} bash "
            f"{quote_command(keys)}"
        )
        try:
            host.conn.exec(command, timeout=20)
        except SshError as exc:
            self.log.warning(f"vast: could not kill jobs on {host.name}: {exc}")

    def _kill_running(self, jobs: list[RemoteJob]) -> None:
        by_host: dict[int, tuple[Host, list[str]]] = {}
        for job in jobs:
            if job.state == "running" and job.host is not None:
                by_host.setdefault(job.host.instance_id, (job.host, []))[1].append(job.key)
        threads = [threading.Thread(target=self._kill_on_host, args=item) for item in by_host.values()]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)

    def cancel_all(self) -> None:
        """Kill every remote job of this run (one SSH call per host, in parallel) and fail queued ones."""
        self._closed = True
        with self._lock:
            jobs = list(self.jobs.values())
        for job in jobs:
            job.cancelled = True
            self.pool.cancel_request(job.key)
        self._kill_running(jobs)
        for job in jobs:
            if not job.finished:
                self._fail(job, "cancelled")

    def _stop_for_budget(self, message: str) -> None:
        self.budget_stopped = True
        with self._lock:
            jobs = [j for j in self.jobs.values() if not j.finished]
        for job in jobs:
            job.cancelled = True
        self._kill_running(jobs)
        for job in jobs:
            self._fail(job, message)

    def close(self) -> None:
        """Stop accepting jobs and stop the pool (queued jobs fail as cancelled)."""
        self._closed = True
        self.pool.stop()
        self._poll_workers.shutdown(wait=False, cancel_futures=True)


def new_run_id() -> str:
    """A short unique run id (8 hex characters)."""
    return uuid.uuid4().hex[:8]


__all__ = ["JobRunner", "RemoteJob", "RunnerSettings", "SourceBundle", "job_key", "new_run_id"]
