"""Snakemake executor plugin ``vast``: run jobs on rented Vast.ai GPU hosts over SSH (``--executor vast``).

A thin adapter over the Vast layers of this package (REST client ``client``/``query``, SSH ``ssh``, host pool
``pool``, job runner ``runner``); see ``docs/intro.md`` and ``docs/further.md``. This module is imported by EVERY
``snakemake`` invocation (also ``--help`` and the remote ``--mode remote`` runs), so it imports only dataclasses and
the Snakemake interfaces at module level; paramiko, requests and the layers are imported in ``__post_init__``.
(No ``from __future__ import annotations`` here: Snakemake reads the settings' types.)
"""

# Snakemake turns the settings' annotations into argparse types: keep typing.Optional (not "X | None").
# ruff: noqa: UP035, UP045

import asyncio
import atexit
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncGenerator, Optional

from snakemake_interface_common.exceptions import WorkflowError
from snakemake_interface_executor_plugins.executors.base import SubmittedJobInfo
from snakemake_interface_executor_plugins.executors.remote import RemoteExecutor
from snakemake_interface_executor_plugins.jobs import JobExecutorInterface
from snakemake_interface_executor_plugins.settings import CommonSettings, ExecutorSettingsBase

__version__ = "0.2.0"

DEFAULT_IMAGE = "pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime"
DEFAULT_OFFER_QUERY = "reliability>0.98 direct_port_count>=1 inet_down>=100 cuda_vers>=12.4"
DEFAULT_LEDGER = "results/vast/cost_ledger.json"
DEFAULT_EXCLUDED_SOURCES = (".git", ".snakemake", ".venv", "results", "logs", "tests", "docs", "build", "dist")
_ALWAYS_SHIPPED_DIRS = ("workflow", "config", "resources")
_MAX_SOURCE_FILE_BYTES = 10 * 1024 * 1024


@dataclass
class ExecutorSettings(ExecutorSettingsBase):
    """Settings of the vast executor (``--vast-<name>`` on the command line, ``vast-<name>:`` in a profile)."""

    api_url: str = field(
        default="https://console.vast.ai",
        metadata={"help": "Base URL of the Vast.ai REST API (point it at a fake for tests)."},
    )
    api_key: Optional[str] = field(
        default=None,
        repr=False,  # never shown in a repr of the settings (logs, tracebacks)
        metadata={
            "help": "Vast.ai API key. Set it in the environment (SNAKEMAKE_VAST_API_KEY) rather than on the command "
            "line, where it is visible in the process list. When unset, the vastai CLI's places are used: "
            "VAST_API_KEY, then ~/.config/vastai/vast_api_key, then ~/.vast_api_key.",
            "env_var": True,
        },
    )
    api_throttle: float = field(
        default=1.0,
        metadata={
            "help": "Multiplier on Vast's documented per-endpoint minimum request intervals (1: the documented rate; "
            "lower only against a local fake API)."
        },
    )
    offer_query: str = field(
        default=DEFAULT_OFFER_QUERY,
        metadata={
            "help": "Offer filter in the `vastai search offers` query grammar, e.g. "
            "'gpu_name=RTX_4090 reliability>0.99'. GPU count, memory and disk clauses are added from each job's "
            "resources (gpu, mem_mb, disk_mb).",
        },
    )
    max_price: Optional[float] = field(
        default=1.0,
        metadata={"help": "Highest price per instance in $/hour (dph_total, storage included)."},
    )
    max_instances: int = field(
        default=4,
        metadata={"help": "Most instances rented at the same time; hosts are reused for later jobs."},
    )
    budget: Optional[float] = field(
        default=None,
        metadata={
            "help": "Cap on the run's total spend in $ (price x time of every instance it rented). When reached, no "
            "more instances are rented, running jobs are stopped, instances destroyed and the run ends with a message.",
        },
    )
    image: str = field(
        default=DEFAULT_IMAGE,
        metadata={"help": "Docker image of the instances; it must provide python >= 3.11 (and ideally torch)."},
    )
    disk_gb: int = field(
        default=32,
        metadata={"help": "Disk size in GB of each rented instance (also the minimum disk_space of offers)."},
    )
    ssh_key: Optional[str] = field(
        default=None,
        metadata={
            "help": "Private SSH key file (unencrypted) for the hosts. When absent, a fresh ed25519 key is generated "
            "for each run under .snakemake/vast/<run id>/ (mode 0600) and registered for the run only.",
        },
    )
    ssh_user: str = field(default="root", metadata={"help": "SSH login user on the hosts."})
    remote_root: str = field(
        default="/workspace/density-engine",
        metadata={"help": "Folder on the hosts for the venv, the workflow sources and the job files."},
    )
    remote_python: str = field(
        default="python3",
        metadata={"help": "Python (>= 3.11) on the hosts used to create the venv the jobs run in."},
    )
    boot_timeout: int = field(
        default=1200,
        metadata={"help": "Seconds a rented instance may take to become reachable over SSH before it is replaced."},
    )
    unreachable_timeout: int = field(
        default=300,
        metadata={
            "help": "Seconds a host may stay unreachable before its jobs are failed (retryably) and it is destroyed."
        },
    )
    keep_instances: bool = field(
        default=False,
        metadata={
            "help": "Do not destroy the healthy instances at the end of the run (they keep billing!); hosts that died "
            "or failed to boot, and all of them once the budget is reached, are destroyed anyway."
        },
    )
    label_prefix: str = field(
        default="snakemake-vast",
        metadata={"help": "Prefix of instance labels (<prefix>-<run id>-<n>); cleanup finds leftovers by it."},
    )
    host_wheels_command: Optional[str] = field(
        default=None,
        metadata={
            "help": "Command run on this machine (with a shell, in the working directory) when the run starts; it "
            "builds the Python wheels every host installs into its venv and prints their paths, one per line "
            "(e.g. the workflow's own package and this plugin). Their requirements are installed with pip. "
            "Unset: the hosts only need Snakemake."
        },
    )
    ledger: str = field(
        default=DEFAULT_LEDGER,
        metadata={"help": "Cost ledger file (JSON), kept up to date during the run."},
    )
    exclude_sources: list[str] = field(
        default_factory=lambda: list(DEFAULT_EXCLUDED_SOURCES),
        metadata={
            "help": "Top-level folders of the working directory never shipped to the hosts as workflow sources "
            "(e.g. packages the hosts get as wheels).",
            "nargs": "+",
        },
    )


common_settings = CommonSettings(
    non_local_exec=True,
    implies_no_shared_fs=True,  # forces --shared-fs-usage none
    job_deploy_sources=False,  # the executor ships the sources itself
    can_transfer_local_files=True,  # ... and the inputs/outputs: no storage provider needed
    pass_default_storage_provider_args=False,
    pass_default_resources_args=True,
    pass_envvar_declarations_to_cmd=False,  # secrets never go into the remote command line
    auto_deploy_default_storage_provider=False,
    init_seconds_before_status_checks=1,
)


def _gpus(resources: Any) -> int:
    try:
        return max(1, int(resources.get("gpu", 1) or 1))
    except (TypeError, ValueError):
        return 1


def _number(resources: Any, name: str) -> Optional[float]:
    try:
        value = resources.get(name)
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


class Executor(RemoteExecutor):
    """Dispatches jobs to a pool of Vast.ai hosts (see ``docs/further.md``)."""

    def __post_init__(self) -> None:
        import snakemake

        from snakemake_executor_plugin_vast.client import AuthError, VastClient, VastError, resolve_api_key
        from snakemake_executor_plugin_vast.pool import HostPool, PoolSettings
        from snakemake_executor_plugin_vast.runner import JobRunner, RunnerSettings, new_run_id
        from snakemake_executor_plugin_vast.ssh import generate_run_key, load_private_key, public_key_line
        from snakemake_executor_plugin_vast.wheels import WheelError, host_wheels

        self._runner = None
        self._pool = None
        self._finished_pending: dict[str, Any] = {}
        self._infos: dict[str, SubmittedJobInfo] = {}
        self._torn_down = False
        self._generated_key: Optional[Path] = None
        self._teardown_lock = threading.Lock()
        s = self.workflow.executor_settings
        if s.max_instances < 1:
            raise WorkflowError("--vast-max-instances must be at least 1")
        if s.budget is not None and s.budget <= 0:
            raise WorkflowError("--vast-budget must be positive (in $)")
        try:
            api_key = resolve_api_key(s.api_key)
        except Exception as exc:
            raise WorkflowError(f"vast executor: {exc}") from None
        try:  # fail now, once and clearly, rather than at every host's set-up
            wheels = host_wheels(s.host_wheels_command, Path.cwd())
        except WheelError as exc:
            raise WorkflowError(f"vast executor: {exc}") from None
        self._client = VastClient(api_key, s.api_url, interval_scale=max(0.0, float(s.api_throttle)))
        try:  # a wrong key is found now, not at the first rent; transient trouble only warns
            self._client.current_user()
        except AuthError as exc:
            self._client.close()
            raise WorkflowError(
                f"vast executor: the Vast.ai API key was rejected by {s.api_url} ({exc}). Check SNAKEMAKE_VAST_API_KEY "
                "/ VAST_API_KEY / ~/.config/vastai/vast_api_key (create a key at https://cloud.vast.ai/manage-keys/)."
            ) from None
        except VastError as exc:
            self.logger.warning(f"vast executor: could not check the API key now ({exc}); continuing")
        self.run_id = new_run_id()
        self.workdir = Path.cwd()
        state_dir = self.workdir / ".snakemake" / "vast" / self.run_id
        aux_dir = Path(".snakemake/auxiliary/vast-logs")
        key_comment = f"{s.label_prefix}-{self.run_id}"  # cleanup removes leftover account keys by this comment
        if s.ssh_key:
            key = load_private_key(s.ssh_key)
            public = public_key_line(key, key_comment)
        else:
            key, public = generate_run_key(state_dir / "id_ed25519", key_comment)
            self._generated_key = state_dir / "id_ed25519"
        pool_settings = PoolSettings(
            run_id=self.run_id,
            image=s.image,
            offer_query=s.offer_query or "",
            max_price=s.max_price,
            max_instances=s.max_instances,
            budget=s.budget,
            disk_gb=float(s.disk_gb),
            ssh_user=s.ssh_user,
            label_prefix=s.label_prefix,
            boot_timeout=float(s.boot_timeout),
            unreachable_timeout=float(s.unreachable_timeout),
            keep_instances=bool(s.keep_instances),
            log_dir=self.workdir / aux_dir / self.run_id / "instances",
            ledger_path=self.workdir / s.ledger,
        )
        self._pool = HostPool(self._client, pool_settings, key, public, logger=self.logger)
        self._runner = JobRunner(
            self._pool,
            RunnerSettings(
                run_id=self.run_id,
                remote_root=s.remote_root.rstrip("/"),
                remote_python=s.remote_python,
                local_workdir=self.workdir,
                aux_dir=aux_dir,
                snakemake_version=snakemake.__version__,
                unreachable_timeout=float(s.unreachable_timeout),
                dispatch_threads=max(2, s.max_instances),
            ),
            self._source_files,
            wheels=wheels,
            logger=self.logger,
        )
        self._pool.start()
        base = float(self.workflow.remote_execution_settings.seconds_between_status_checks or 10)
        self._base_interval = max(0.5, base)
        self._max_interval = max(self._base_interval, min(60.0, 3 * self._base_interval))
        self._interval = self._base_interval
        atexit.register(self._teardown)
        self.logger.info(
            f"vast executor: run {self.run_id}, up to {s.max_instances} instance(s), "
            f"labels {s.label_prefix}-{self.run_id}-*, host wheels: {', '.join(w.path.name for w in wheels) or 'none'}"
            + (f", budget ${s.budget:g}" if s.budget is not None else "")
        )

    # ---- command line of the remote job ----------------------------------------------------------------------------

    def get_python_executable(self) -> str:
        """The remote venv's python (the remote job runs ``<venv>/bin/python -m snakemake ...``)."""
        import shlex

        return shlex.quote(f"{self.workflow.executor_settings.remote_root.rstrip('/')}/venv/bin/python")

    def get_job_args(self, job: JobExecutorInterface, **kwargs: Any) -> str:
        """Standard job args plus ``--resources gpu=<n>`` so group members share the host's GPUs one at a time."""
        return f"{super().get_job_args(job, **kwargs)} --resources gpu={_gpus(job.resources)}"

    def _source_files(self) -> list[str]:
        """Workflow sources to ship: Snakemake's source list (filtered) plus workflow/, config/ and resources/."""
        files: set = set()
        excluded = set(self.workflow.executor_settings.exclude_sources or ())
        candidates = set(self.workflow.dag.get_sources())
        candidates.add(os.path.relpath(self.workflow.main_snakefile))
        for folder in _ALWAYS_SHIPPED_DIRS:
            base = self.workdir / folder
            if base.is_dir():
                candidates.update(
                    os.path.relpath(p, self.workdir)
                    for p in base.rglob("*")
                    if p.is_file() and "__pycache__" not in p.parts
                )
        for rel in candidates:
            path = Path(rel)
            if path.is_absolute() or rel.startswith(".."):
                raise WorkflowError(
                    f"vast executor: workflow file {rel} lies outside the working directory and cannot be shipped to "
                    "the hosts; move it (e.g. the --configfile) inside the working directory"
                )
            if path.parts and path.parts[0] in excluded:
                continue
            full = self.workdir / path
            if not full.is_file():
                continue
            if full.stat().st_size > _MAX_SOURCE_FILE_BYTES:
                self.logger.warning(f"vast executor: not shipping {rel} (larger than 10 MB); pass data as rule input")
                continue
            files.add(path.as_posix())
        return sorted(files)

    def _remote_job(self, job: JobExecutorInterface, key: str) -> Any:
        from snakemake_executor_plugin_vast.pool import JobNeeds
        from snakemake_executor_plugin_vast.runner import RemoteJob

        members = list(job.jobs) if job.is_group() else [job]
        produced = {str(f) for member in members for f in member.output}
        inputs = sorted({str(f) for member in members for f in member.input} - produced)
        outputs = sorted(produced | {str(m.benchmark) for m in members if getattr(m, "benchmark", None)})
        logs = sorted({str(f) for member in members for f in member.log})
        disk_mb = _number(job.resources, "disk_mb")
        mem_mb = _number(job.resources, "mem_mb")
        needs = JobNeeds(
            gpus=_gpus(job.resources),
            mem_mb=int(mem_mb) if mem_mb else None,
            disk_gb=disk_mb / 1000.0 if disk_mb else None,
        )
        first = str(members[0].output[0]) if members and members[0].output else job.name
        more = f" +{len(members) - 1} more" if len(members) > 1 else ""
        return RemoteJob(
            key=key,
            name=f"{job.name} [{first}{more}] (attempt {job.attempt})",
            command=self.format_job_exec(job),
            inputs=inputs,
            outputs=outputs,
            optional_outputs=logs,
            needs=needs,
            env={str(k): str(v) for k, v in self.envvars().items()},  # a 0600 file on the host, never in argv
        )

    # ---- executor API ----------------------------------------------------------------------------------------------

    def run_job(self, job: JobExecutorInterface) -> None:
        """Queue the job for a host; never blocks and never raises (problems become retryable job errors)."""
        from snakemake_executor_plugin_vast.runner import job_key

        key = job_key(job.jobid, job.attempt)
        info = SubmittedJobInfo(job, external_jobid=f"vast-{self.run_id}/{key}", aux={"key": key})
        try:
            remote = self._remote_job(job, key)
        except Exception as exc:
            self.report_job_error(info, msg=f"vast executor could not prepare the job: {exc}\n")
            return
        self.report_job_submission(info)
        self._infos[key] = info
        self._runner.submit(remote)

    async def check_active_jobs(self, active_jobs: list[SubmittedJobInfo]) -> AsyncGenerator[SubmittedJobInfo, None]:
        """One status cycle: the runner makes one SSH call per host; finished jobs are reported, the rest yielded."""
        if not active_jobs:
            return
        runner = getattr(self, "_runner", None)
        if runner is None:
            for info in active_jobs:
                yield info
            return
        try:
            async with self.status_rate_limiter:
                finished = await asyncio.to_thread(runner.poll)
        except Exception as exc:  # never let the status thread die by accident
            self.logger.warning(f"vast executor: status cycle failed: {exc}")
            finished = []
        if runner.budget_stopped:
            # On purpose: an exception from check_active_jobs makes Snakemake stop scheduling, shut the executor down
            # (teardown: instances destroyed, ledger written) and exit non-zero, with this one message and no
            # retries, instead of every remaining job failing (and being retried) with the budget message.
            raise WorkflowError(self._pool.budget_message())
        for remote in finished:
            self._finished_pending[remote.key] = remote
        changed = False
        for info in active_jobs:
            key = info.aux.get("key") if info.aux else None
            remote = self._finished_pending.pop(key, None)
            if remote is None:
                yield info
                continue
            changed = True
            try:
                if remote.state == "succeeded":
                    self.report_job_success(info)
                else:
                    message = f"vast: job {remote.name} failed: {remote.error}\n"
                    if remote.aux_logs:
                        message += f"remote logs fetched to: {', '.join(remote.aux_logs)}\n"
                    # Snakemake drops msg for group jobs ("Error in group ..."), so log it ourselves too
                    self.logger.error(message.rstrip())
                    self.report_job_error(info, msg=message, aux_logs=list(remote.aux_logs))
            except Exception as exc:
                self.logger.error(f"vast executor: reporting job {key} failed: {exc}")
            finally:
                self._infos.pop(key, None)
        self._interval = self._base_interval if changed else min(self._max_interval, self._interval * 1.5)
        self.next_seconds_between_status_checks = self._interval

    def cancel_jobs(self, active_jobs: list[SubmittedJobInfo]) -> None:
        """Kill every remote job this run started (not only ``active_jobs``); instances are destroyed in shutdown."""
        runner = getattr(self, "_runner", None)
        if runner is not None:
            runner.cancel_all()

    def shutdown(self) -> None:
        """Stop status polling, then destroy the instances (unless kept) and print/write the cost ledger."""
        super().shutdown()
        self._teardown()

    def _teardown(self) -> None:
        lock = getattr(self, "_teardown_lock", None)
        if lock is None:
            return
        with lock:
            if self._torn_down or self._pool is None:
                return
            self._torn_down = True
            started = time.monotonic()
            self._pool.stop()  # first: wakes dispatchers blocked in acquire/boot, so closing the runner is quick
            if self._runner is not None:
                if any(not j.finished for j in self._runner.jobs.values()):
                    self._runner.cancel_all()
                self._runner.close()
            self._pool.close(destroy=True)  # destroys, sweeps by label and writes the final ledger
            self.logger.info(self._pool.format_ledger() + f"\n  (written to {self.workflow.executor_settings.ledger})")
            if self._generated_key is not None:
                if self.workflow.executor_settings.keep_instances:
                    self.logger.info(f"vast executor: SSH key of the kept instances: {self._generated_key}")
                else:  # the per-run key is useless once its instances are gone
                    for path in (self._generated_key, self._generated_key.with_name("id_ed25519.pub")):
                        path.unlink(missing_ok=True)
            self.logger.debug(f"vast executor: teardown took {time.monotonic() - started:.1f} s")
            self._client.close()
