"""Job runner: stage jobs onto pool hosts over SSH, run them detached, poll them, bring their files back.

Remote layout under ``remote_root`` (default ``/workspace/density-engine``)::

    venv/                              python -m venv --system-site-packages (the host wheels installed into it)
    wheels/<wheel>                     the uploaded wheels
    runs/<run_id>/work/                workflow sources + job inputs + outputs: the remote snakemake's working dir
    runs/<run_id>/jobs/<key>/          run.sh, pid, exit_code, job.log of one submission

Life of a job: ``submit`` queues it; a dispatcher thread takes a host from the pool (reuse or rent), bootstraps the
host once (snakemake version check, wheel installs skipped when the installed versions match, sources upload once per
content hash), uploads the job's inputs, writes ``run.sh`` and starts it with ``setsid nohup`` (pid + exit-code files).
``poll`` runs ONE SSH command per host per cycle for all of that host's jobs; a job that exited 0 has its outputs,
benchmark and log files downloaded atomically before it is reported done; a failed job's remote logs are fetched before
anything is destroyed. A host that stays unreachable for ``unreachable_timeout`` (or whose instance is gone) fails its
jobs with a retryable error and is destroyed and blacklisted, after Vast's container log was fetched; so is a host whose
SSH keeps failing while staging (``MAX_STAGING_FAILURES`` in a row, or unreachable for ``unreachable_timeout``) even
though Vast still reports it ``running``.

Environment variables declared for the jobs (Snakemake ``envvars:`` / ``--envvars``) travel in a 0600 file
``jobs/<key>/env`` that ``run.sh`` sources; they are never part of a command line.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import queue
import re
import tarfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path, PurePosixPath

from snakemake_executor_plugin_vast.pool import (
    DEAD_STATUSES,
    BudgetExceeded,
    Host,
    HostPool,
    JobNeeds,
    PoolClosed,
    PoolError,
)
from snakemake_executor_plugin_vast.ssh import RemoteCommandError, SshError, SshUnreachable, quote_command
from snakemake_executor_plugin_vast.wheels import WheelInfo

log = logging.getLogger(__name__)

STARTING_GRACE_S = 60.0
"""How long a launched job may go without a pid file before it counts as lost."""

MAX_STAGING_FAILURES = 3
"""Consecutive SSH failures while staging jobs after which a host is retired although Vast reports it running."""

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
    state: str = "queued"  # queued | staging | running | succeeded | failed
    host: Host | None = None
    launched_at: float | None = None
    exit_code: int | None = None
    error: str | None = None
    aux_logs: list[str] = field(default_factory=list)
    cancelled: bool = False
    gpu_ids: list[int] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        """True once the job succeeded or failed."""
        return self.state in ("succeeded", "failed")


@dataclass
class RunnerSettings:
    """Remote paths and local folders of one run."""

    run_id: str
    remote_root: str = "/workspace/density-engine"
    remote_python: str = "python3"
    local_workdir: Path = field(default_factory=Path.cwd)
    aux_dir: Path = field(default_factory=lambda: Path(".snakemake/auxiliary/vast-logs"))
    snakemake_version: str = ""
    unreachable_timeout: float = 300.0
    dispatch_threads: int = 4

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

    def jobdir(self, key: str) -> str:
        """Remote control folder of one submission."""
        return f"{self.remote_root}/runs/{self.run_id}/jobs/{key}"


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


def script(name: str) -> str:
    """The text of a remote script shipped as package data (``scripts/<name>``)."""
    return resources.files(__package__).joinpath("scripts", name).read_text(encoding="utf-8")


class HostSetupError(Exception):
    """A host cannot run our jobs (wrong snakemake version, install failure)."""


class JobRunner:
    """Runs :class:`RemoteJob` s on hosts of a :class:`HostPool` (see the module docstring). Thread-safe."""

    def __init__(
        self,
        pool: HostPool,
        settings: RunnerSettings,
        source_files: Callable[[], Sequence[str]],
        *,
        wheels: Sequence[WheelInfo] = (),
        logger: logging.Logger | None = None,
    ) -> None:
        self.pool = pool
        self.settings = settings
        self.log = logger or log
        self.wheels = list(wheels)
        """The wheels every host installs (from ``--vast-host-wheels-command``), in install order."""
        self._source_files = source_files
        self._bundle: SourceBundle | None = None
        self._prep_lock = threading.Lock()
        self._lock = threading.RLock()
        self.jobs: dict[str, RemoteJob] = {}
        self._queue: queue.Queue[RemoteJob | None] = queue.Queue()
        self._threads = [
            threading.Thread(target=self._dispatch_loop, name=f"vast-dispatch-{i}", daemon=True)
            for i in range(max(1, settings.dispatch_threads))
        ]
        for thread in self._threads:
            thread.start()
        self._closed = False
        self.budget_stopped = False

    # ---- preparation -----------------------------------------------------------------------------------------------

    @property
    def wheel_versions(self) -> dict[str, str]:
        """Normalized distribution name → version of every host wheel."""
        return {w.key: w.version for w in self.wheels}

    def _prepare_local(self) -> SourceBundle:
        with self._prep_lock:
            if self._bundle is None:
                self._bundle = SourceBundle(self._source_files(), self.settings.local_workdir)
                self.log.info(
                    f"vast: workflow sources: {len(self._bundle.files)} files, {len(self._bundle.data) / 1024:.1f} KiB"
                )
            return self._bundle

    def bootstrap(self, host: Host) -> None:
        """Prepare a host once: install the host wheels unless those versions are there, check snakemake, ship sources.

        Costs two SSH commands when the host is already set up (probe + sources), four when it needs the install.
        """
        bundle = self._prepare_local()
        conn = host.conn
        assert conn is not None
        s = self.settings
        wanted = self.wheel_versions
        stamp = ",".join(f"{name}=={version}" for name, version in sorted(wanted.items())) or "-"
        with host.lock:
            if host.bootstrapped != stamp:
                probe = self._probe(host)
                installed = probe.get("installed", {})
                stale = [w for w in self.wheels if installed.get(w.key) != w.version]
                if stale or not probe.get("in_venv"):
                    names = ", ".join(w.path.name for w in stale) or "nothing"
                    self.log.info(f"vast: installing {names} on {host.name}")
                    remote = [f"{s.remote_root}/wheels/{w.path.name}" for w in stale]
                    conn.put_many([(w.path, r) for w, r in zip(stale, remote, strict=True)])
                    venv = quote_command(
                        [s.remote_python, "-m", "venv", "--system-site-packages", "--without-pip", s.venv]
                    )
                    install = f" && {quote_command([s.venv_python, '-c', script('install_wheels.py'), *remote])}"
                    result = conn.exec(
                        f"{{ [ -x {quote_command([s.venv_python])} ] || {venv}; }}{install if remote else ''}",
                        timeout=600,
                    )
                    if not result.ok:
                        raise HostSetupError(
                            f"installing {names} on {host.name} failed: {result.stderr.strip()[-1500:]}"
                        )
                    probe = self._probe(host)
                    if probe.get("missing"):
                        self._install_requirements(host, probe["missing"])
                        probe = self._probe(host)
                    installed = probe.get("installed", {})
                    broken = [f"{w.name} {w.version}" for w in self.wheels if installed.get(w.key) != w.version]
                    if broken:
                        raise HostSetupError(f"{', '.join(broken)} not importable on {host.name} after install")
                else:
                    self.log.info(f"vast: {host.name} already has {stamp}")
                found = installed.get("snakemake")
                if s.snakemake_version and found != s.snakemake_version:
                    raise HostSetupError(
                        f"snakemake on {host.name} is {found or 'not installed'}, but this controller runs "
                        f"{s.snakemake_version}; the versions must be equal"
                    )
                host.bootstrapped = stamp
            if host.sources_hash != bundle.sha256:
                remote_tar = f"{s.remote_root}/runs/{s.run_id}/sources-{bundle.sha256[:16]}.tar.gz"
                conn.put_bytes(bundle.data, remote_tar, mode=0o600)
                conn.exec(f"tar -xzf {quote_command([remote_tar])} -C {quote_command([s.workdir])}", check=True)
                host.sources_hash = bundle.sha256

    def _probe(self, host: Host) -> dict:
        """One command: the python's version, environment and installed distributions, and the unmet requirements of
        the host wheels; from the run's venv when it exists (``in_venv``), else from ``--vast-remote-python``."""
        s = self.settings
        assert host.conn is not None
        probe = script("probe.py")
        arg = json.dumps({"dists": sorted(self.wheel_versions)})
        command = (
            f"mkdir -p {quote_command([s.workdir, f'{s.remote_root}/wheels'])} && "
            f"if [ -x {quote_command([s.venv_python])} ]; then {quote_command([s.venv_python, '-c', probe, arg])} "
            f"&& echo in_venv; else {quote_command([s.remote_python, '-c', probe, arg])}; fi"
        )
        result = host.conn.exec(command, timeout=180)
        lines = result.stdout.strip().splitlines()
        in_venv = bool(lines) and lines[-1] == "in_venv"
        try:
            answer = json.loads(lines[-2] if in_venv else lines[-1])
        except (IndexError, ValueError):
            raise HostSetupError(
                f"remote python {s.remote_python!r} on {host.name} does not work: "
                f"{(result.stdout + result.stderr).strip()[-800:]}"
            ) from None
        if tuple(answer.get("py", (0, 0))) < (3, 11):
            raise HostSetupError(f"remote python on {host.name} is {answer.get('py')}; the jobs need >= 3.11")
        answer["in_venv"] = in_venv
        return answer

    def _install_requirements(self, host: Host, requirements: list[str]) -> None:
        s = self.settings
        assert host.conn is not None
        self.log.info(f"vast: installing missing dependencies on {host.name}: {', '.join(requirements)}")
        pip = [s.venv_python, "-m", "pip", "install", "--disable-pip-version-check", "-q", *requirements]
        result = host.conn.exec(quote_command(pip), timeout=1800)
        if not result.ok:
            raise HostSetupError(f"installing {requirements} on {host.name} failed: {result.stderr.strip()[-1500:]}")

    # ---- submission ------------------------------------------------------------------------------------------------

    def submit(self, job: RemoteJob) -> None:
        """Queue a job (never blocks, never raises for host problems: those end as a failed job)."""
        with self._lock:
            self.jobs[job.key] = job
        if self._closed:
            self._fail(job, "the vast executor is shutting down")
            return
        self._queue.put(job)

    def _dispatch_loop(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            try:
                self._start(job)
            except Exception as exc:  # a dispatcher must never die
                self.log.debug("vast: dispatch error", exc_info=True)
                self._fail(job, f"staging failed: {type(exc).__name__}: {exc}")

    def _start(self, job: RemoteJob) -> None:
        if job.cancelled or self._closed:
            self._fail(job, "cancelled")
            return
        job.state = "staging"
        queued_since = time.monotonic()
        try:
            host = self.pool.acquire(job.needs)
        except PoolClosed as exc:
            self._fail(job, str(exc))
            return
        except BudgetExceeded as exc:
            self._fail(job, str(exc))
            return
        except PoolError as exc:
            job.aux_logs = [self._relative(path) for path in getattr(exc, "logs", [])]
            self._fail(job, f"no host: {exc}")
            return
        job.host = host
        job.gpu_ids = self.pool.assign_gpus(host, job.key, job.needs.gpus)
        staging_since = time.monotonic()
        try:
            self.bootstrap(host)
            self._launch(host, job)
            self.log.info(
                f"vast: job {job.name} ({job.key}) started on {host.name} "
                f"(waited {staging_since - queued_since:.1f} s for a host, staged in "
                f"{time.monotonic() - staging_since:.1f} s)"
            )
        except HostSetupError as exc:
            self.pool.release(host, job.needs.gpus, job.key)
            self.pool.retire(host, str(exc))
            self._fail(job, f"{host.name}: {exc}")
        except SshError as exc:
            self.pool.release(host, job.needs.gpus, job.key)
            self._staging_failed(host)
            self._fail(job, f"staging on {host.name} failed: {exc}")
        except OSError as exc:  # a local input is unreadable
            self.pool.release(host, job.needs.gpus, job.key)
            self._fail(job, f"staging failed: {exc}")

    def _staging_failed(self, host: Host) -> None:
        """Count an SSH failure while staging; retire the host when Vast says it is not running, after
        ``MAX_STAGING_FAILURES`` failures in a row, or once it has been unreachable for ``unreachable_timeout``."""
        now = time.monotonic()
        host.staging_failures += 1
        if host.unreachable_since is None:
            host.unreachable_since = now
        status = self.pool.instance_status(host)
        waited = now - host.unreachable_since
        if status != "running":  # the host is gone or broken: do not hand it to the next job
            self.pool.retire(host, f"SSH failed during staging and the instance is {status!r}")
        elif host.staging_failures >= MAX_STAGING_FAILURES or waited > self.settings.unreachable_timeout:
            self.pool.retire(
                host,
                f"SSH failed for {host.staging_failures} staging attempt(s) in a row over {waited:.0f} s although "
                "Vast reports the instance running",
            )

    def _relative(self, path: Path | str) -> str:
        """``path`` relative to the local working directory (how Snakemake shows aux logs)."""
        return os.path.relpath(path, self.settings.local_workdir)

    def _launch(self, host: Host, job: RemoteJob) -> None:
        s = self.settings
        conn = host.conn
        assert conn is not None
        jobdir = s.jobdir(job.key)
        bad = sorted(name for name in job.env if not _ENV_NAME.fullmatch(name))
        if bad:
            raise ValueError(f"environment variable names {bad} of job {job.name} are not valid shell names")
        env_file = f"{jobdir}/env"
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
        script = "\n".join(
            [
                "#!/bin/bash",
                f"echo $$ > {quote_command([jobdir + '/pid.tmp'])} && "
                f"mv {quote_command([jobdir + '/pid.tmp', jobdir + '/pid'])}",
                f"cd {quote_command([s.workdir])} || exit 97",
                f'export PATH={quote_command([s.venv + "/bin"])}:"$PATH"',
                # bash re-reads ~/.bashrc in any shell it thinks sshd started (SSH_CLIENT set, shell level 1), which
                # can reset PATH inside the rule's shell; the job is detached from SSH, so drop those markers
                "unset SSH_CLIENT SSH2_CLIENT SSH_CONNECTION SSH_TTY",
                "export PYTHONNOUSERSITE=1",
                f"export CUDA_VISIBLE_DEVICES={','.join(str(i) for i in job.gpu_ids) or '0'}",
                f". {quote_command([env_file])} || exit 96",
                "(",  # a subshell: an `exit` in the command still records its exit code
                job.command,
                ")",
                "code=$?",
                f"echo $code > {quote_command([jobdir + '/exit_code.tmp'])} && "
                f"mv {quote_command([jobdir + '/exit_code.tmp', jobdir + '/exit_code'])}",
                "",
            ]
        )
        # one SFTP session for the inputs, env (0600 from its creation on) and run.sh, one command to clear old state
        # and start the job detached
        blobs = [(env_text.encode(), env_file, 0o600), (script.encode(), f"{jobdir}/run.sh", 0o700)]
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
        """One status cycle: one SSH call per host with running jobs; returns jobs that finished since the last poll."""
        if self.pool.budget_reached() and not self.budget_stopped:
            self._stop_for_budget()
        self.pool.maybe_write_ledger()
        with self._lock:
            running = [j for j in self.jobs.values() if j.state == "running"]
        by_host: dict[int, list[RemoteJob]] = {}
        hosts: dict[int, Host] = {}
        for job in running:
            assert job.host is not None
            by_host.setdefault(job.host.instance_id, []).append(job)
            hosts[job.host.instance_id] = job.host
        if len(by_host) > 1:
            with ThreadPoolExecutor(max_workers=min(8, len(by_host))) as executor:
                list(executor.map(lambda hid: self._poll_host(hosts[hid], by_host[hid]), by_host))
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

    def _poll_host(self, host: Host, jobs: list[RemoteJob]) -> None:
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
            try:
                self._handle_state(host, job, states.get(job.key, ("lost",)))
            except Exception as exc:  # never let one job break the status cycle
                self.log.debug("vast: status handling error", exc_info=True)
                self._finish_failed(host, job, f"status handling failed: {type(exc).__name__}: {exc}")

    def _query_states(self, host: Host, keys: list[str]) -> dict[str, tuple[str, ...]]:
        assert host.conn is not None
        jobs_root = f"{self.settings.remote_root}/runs/{self.settings.run_id}/jobs"
        command = (
            f"JOBS={quote_command([jobs_root])} bash -c {quote_command([script('poll.sh')])} bash {quote_command(keys)}"
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
        self.pool.release(host, job.needs.gpus, job.key)
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

    def _fetch_logs(self, host: Host, job: RemoteJob) -> tuple[list[str], str]:
        """Fetch the job's remote logs into the aux folder (before anything is destroyed); return (paths, tail)."""
        s = self.settings
        target = s.local_workdir / s.aux_dir / s.run_id / job.key
        paths: list[str] = []
        tail = ""
        if host.conn is None:
            return paths, tail
        wanted = [(f"{s.jobdir(job.key)}/job.log", target / "job.log")]
        wanted += [(f"{s.workdir}/{Path(p).as_posix()}", target / "rule-logs" / p) for p in job.optional_outputs]
        for remote, local in wanted:
            try:
                host.conn.get(remote, local)
                paths.append(os.path.relpath(local, s.local_workdir))
            except (FileNotFoundError, SshError):
                continue
        if paths:
            text = (s.local_workdir / paths[0]).read_text(errors="replace").strip().splitlines()
            tail = "\n".join(text[-15:])
        return paths, tail

    def _finish_failed(self, host: Host, job: RemoteJob, reason: str, *, fetch_logs: bool = True) -> None:
        aux, tail = self._fetch_logs(host, job) if fetch_logs else ([], "")
        job.aux_logs = aux
        message = f"{reason} on {host.name}"
        if job.exit_code is not None and "exit code" not in reason:
            message += f" (exit code {job.exit_code})"
        if tail:
            message += f"; last lines of the remote log:\n{tail}\n"
        self._fail(job, message)
        self.pool.release(host, job.needs.gpus, job.key)

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
            aux = [self._relative(container_log)] if container_log is not None else []
            note = f"; Vast's container log: {aux[0]}" if aux else ""
            for job in jobs:
                job.aux_logs = list(aux)
                self._fail(
                    job, f"host {host.name} died while the job ran ({why}); the job can be retried elsewhere{note}"
                )
                self.pool.release(host, job.needs.gpus, job.key)
            self.pool.retire(host, why)

    # ---- cancellation and teardown ---------------------------------------------------------------------------------

    def _kill_on_host(self, host: Host, keys: list[str]) -> None:
        if host.conn is None or not keys:
            return
        jobs_root = f"{self.settings.remote_root}/runs/{self.settings.run_id}/jobs"
        command = (
            f"JOBS={quote_command([jobs_root])} bash -c {quote_command([script('kill.sh')])} bash {quote_command(keys)}"
        )
        try:
            host.conn.exec(command, timeout=20)
        except SshError as exc:
            self.log.warning(f"vast: could not kill jobs on {host.name}: {exc}")

    def cancel_all(self) -> None:
        """Kill every remote job of this run (one SSH call per host, in parallel) and fail queued ones."""
        self._closed = True
        with self._lock:
            jobs = list(self.jobs.values())
        by_host: dict[int, tuple[Host, list[str]]] = {}
        for job in jobs:
            job.cancelled = True
            if job.state == "running" and job.host is not None:
                by_host.setdefault(job.host.instance_id, (job.host, []))[1].append(job.key)
            if not job.finished:
                self._fail(job, "cancelled")
        threads = [threading.Thread(target=self._kill_on_host, args=item) for item in by_host.values()]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)

    def _stop_for_budget(self) -> None:
        self.budget_stopped = True
        message = self.pool.budget_message()
        self.log.warning("vast: budget reached: stopping the remaining jobs and destroying every instance")
        with self._lock:
            jobs = [j for j in self.jobs.values() if not j.finished]
        by_host: dict[int, tuple[Host, list[str]]] = {}
        for job in jobs:
            if job.state == "running" and job.host is not None:
                by_host.setdefault(job.host.instance_id, (job.host, []))[1].append(job.key)
        for host, keys in by_host.values():
            self._kill_on_host(host, keys)
        for job in jobs:
            job.cancelled = True
            self._fail(job, message)
        for host in list(self.pool.hosts):
            self.pool.retire(host, "budget reached", blacklist=False)

    def close(self, timeout: float = 10.0) -> None:
        """Stop the dispatcher threads (queued jobs fail as cancelled).

        The pool is told to stop first, so dispatchers blocked in :meth:`HostPool.acquire` (waiting for a host, or for
        one to boot) return at once instead of each being waited for; ``timeout`` bounds the whole wait.
        """
        self._closed = True
        self.pool.stop()
        for _ in self._threads:
            self._queue.put(None)
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))


def new_run_id() -> str:
    """A short unique run id (8 hex characters)."""
    return uuid.uuid4().hex[:8]


__all__ = [
    "HostSetupError",
    "JobRunner",
    "RemoteJob",
    "RunnerSettings",
    "SourceBundle",
    "SshUnreachable",
    "job_key",
    "new_run_id",
]
