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
DEFAULT_LEDGER_DIR = "results/vast/ledger"
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
        metadata={
            "help": "Highest price per instance in $/hour (dph_total, storage included; the bid when interruptible)."
        },
    )
    max_instances: int = field(
        default=4,
        metadata={"help": "Most instances rented at the same time; hosts are reused for later jobs."},
    )
    offer_wait: int = field(
        default=1800,
        metadata={
            "help": "Seconds a job waits for capacity when no offer matches and no pool host (booting, busy or ready) "
            "can take it: the market is searched again with back-off meanwhile. Only then the job fails, with a "
            "message saying how many offers match without the price cap and the resource clauses. Waiting never "
            "consumes a Snakemake retry."
        },
    )
    idle_timeout: int = field(
        default=180,
        metadata={
            "help": "Seconds a host without jobs stays rented while no waiting job fits it; then it is destroyed "
            "(at once when no more remote jobs are to come, or when its slot is needed for a host a waiting job can "
            "use). The ledger shows each host's idle time."
        },
    )
    budget: Optional[float] = field(
        default=None,
        metadata={
            "help": "Cap on the run's total spend in $ (price x time of every instance it rented). The projected "
            "spend (spent + live instances' $/h x the time until the executor could react) never passes it: a rent "
            "that would is not made, and when the live instances would, every job is stopped, every instance "
            "destroyed and the run ends with one message. Also checked against the cost estimate at start."
        },
    )
    allow_over_budget: bool = field(
        default=False,
        metadata={"help": "Start even when the cost estimate at start exceeds --vast-budget (the budget still caps)."},
    )
    estimate_command: Optional[str] = field(
        default=None,
        metadata={
            "help": "How to estimate the run's cost at start: a command (shell, working directory) printing JSON "
            '{"total": {"gpu_hours": {"<GPU type>": hours}}} (or per model under "models"), where '
            "{config} is replaced by a JSON file of the run's config as Snakemake resolved it (--config overrides "
            "included), {configfiles} by the run's config files and {configfile_args} by --configfile <file> for "
            "each; or 'resources': runtime (minutes) x gpu of the jobs to run. The GPU-hours are priced per GPU type "
            "at the cheapest matching offers and the run refuses to start when the expected cost exceeds "
            "--vast-budget. Unset: no estimate."
        },
    )
    interruptible: bool = field(
        default=False,
        metadata={
            "help": "Rent interruptible (bid) instances: cheaper, but stopped when outbid. A preempted host's jobs "
            "go to other hosts without counting as failures; the ledger marks preemptions."
        },
    )
    bid_factor: float = field(
        default=1.25,
        metadata={"help": "Bid of an interruptible rent: this factor x the offer's min_bid."},
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
        default="/workspace/snakemake-vast",
        metadata={"help": "Folder on the hosts for the venv, the workflow sources and the job files."},
    )
    remote_python: str = field(
        default="python3",
        metadata={
            "help": "Python (>= 3.11) of the image that the run's venv is built on: a name looked up on the image's "
            "PATH (also the PATH of the container's init and of a login shell, which non-interactive SSH lacks), "
            "or a path. When it is a venv (e.g. /venv/main/bin/python), its packages stay visible in the run's venv."
        },
    )
    boot_timeout: int = field(
        default=1200,
        metadata={"help": "Seconds a rented instance may take to become reachable over SSH before it is replaced."},
    )
    unreachable_timeout: int = field(
        default=300,
        metadata={"help": "Seconds a host may stay unreachable before it is destroyed and its jobs go to other hosts."},
    )
    keep_instances: bool = field(
        default=False,
        metadata={
            "help": "Do not destroy the healthy instances at the end of the run (they keep billing!); hosts that died "
            "or failed to boot, and all of them once the budget is reached, are destroyed anyway."
        },
    )
    no_adopt: bool = field(
        default=False,
        metadata={
            "help": "At start, destroy every live instance of a dead run of this workflow (its ledger in "
            "--vast-ledger-dir never became final, e.g. the controller was killed). Default: adopt the healthy ones "
            "(reachable, room within --vast-max-instances) instead of renting new hosts, and destroy the rest."
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
            "(e.g. the workflow's own package and this plugin). Requirements the host lacks are pip-installed at "
            "this machine's versions. Unset: the hosts only need Snakemake."
        },
    )
    ledger_dir: str = field(
        default=DEFAULT_LEDGER_DIR,
        metadata={
            "help": "Folder of the cost ledger: one JSON file per run (<run id>.json), an append-only history; "
            "the run's file is final before the workflow's last remote job is reported done."
        },
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


DRAIN_HOLD_S = 600.0
"""Longest a finished last job is held back while the pool destroys its hosts and finalizes the ledger."""


class Executor(RemoteExecutor):
    """Dispatches jobs to a pool of Vast.ai hosts (see ``docs/further.md``)."""

    def __post_init__(self) -> None:
        import snakemake

        from snakemake_executor_plugin_vast.client import AuthError, VastClient, VastError, resolve_api_key
        from snakemake_executor_plugin_vast.dispatch import JobRunner, RunnerSettings, new_run_id
        from snakemake_executor_plugin_vast.pool import HostPool, PoolSettings
        from snakemake_executor_plugin_vast.runs import RunLock
        from snakemake_executor_plugin_vast.ssh import generate_run_key, load_private_key, public_key_line
        from snakemake_executor_plugin_vast.wheels import WheelError, host_wheels

        self._runner = None
        self._pool = None
        self._lock_file = None
        self._finished_pending: dict[str, Any] = {}
        self._hold_since: Optional[float] = None
        self._torn_down = False
        self._generated_key: Optional[Path] = None
        self._old_key_dirs: list[Path] = []
        self._teardown_lock = threading.Lock()
        s = self.workflow.executor_settings
        if s.max_instances < 1:
            raise WorkflowError("--vast-max-instances must be at least 1")
        if s.budget is not None and s.budget <= 0:
            raise WorkflowError("--vast-budget must be positive (in $)")
        if s.interruptible and s.bid_factor < 1.0:
            raise WorkflowError("--vast-bid-factor must be at least 1 (a bid below min_bid is never accepted)")
        try:
            api_key = resolve_api_key(s.api_key)
        except Exception as exc:
            raise WorkflowError(f"vast executor: {exc}") from None
        self.workdir = Path.cwd()
        try:  # fail now, once and clearly, rather than at every host's set-up
            wheels = host_wheels(s.host_wheels_command, self.workdir)
        except WheelError as exc:
            raise WorkflowError(f"vast executor: {exc}") from None
        throttle = max(0.0, float(s.api_throttle))
        self._client = VastClient(api_key, s.api_url, interval_scale=throttle)
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
        self._lock_file = RunLock(s.label_prefix, self.run_id, workdir=self.workdir)
        self._state_root = self.workdir / ".snakemake" / "vast"
        state_dir = self._state_root / self.run_id
        aux_dir = Path(".snakemake/auxiliary/vast-logs")
        key_comment = f"{s.label_prefix}-{self.run_id}"  # cleanup removes leftover account keys by this comment
        if s.ssh_key:
            key = load_private_key(s.ssh_key)
            public = public_key_line(key, key_comment)
        else:
            key, public = generate_run_key(state_dir / "id_ed25519", key_comment)
            self._generated_key = state_dir / "id_ed25519"
        base = float(self.workflow.remote_execution_settings.seconds_between_status_checks or 10)
        self._base_interval = max(0.5, base)
        self._max_interval = max(self._base_interval, min(60.0, 3 * self._base_interval))
        self._interval = self._base_interval
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
            offer_wait=float(s.offer_wait),
            idle_timeout=float(s.idle_timeout),
            interruptible=bool(s.interruptible),
            bid_factor=float(s.bid_factor),
            log_dir=self.workdir / aux_dir / self.run_id / "instances",
            ledger_dir=self.workdir / s.ledger_dir,
            tick=min(1.0, self._base_interval),
            monitor_interval=max(self._base_interval, 1.0 * throttle),
            api_throttle=throttle,
            workers=min(32, max(4, s.max_instances)),
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
                poll_workers=min(16, max(2, s.max_instances)),
            ),
            self._source_files,
            wheels=wheels,
            logger=self.logger,
        )
        try:
            self._check_estimate()
        except WorkflowError:
            self._abort_start()
            raise
        self._recover()
        self._pool.start()
        atexit.register(self._teardown)
        self.logger.info(
            f"vast executor: run {self.run_id}, up to {s.max_instances} instance(s)"
            f"{' (interruptible)' if s.interruptible else ''}, labels {s.label_prefix}-{self.run_id}-*, ledger "
            f"{self._pool.ledger.path.relative_to(self.workdir)}, host wheels: "
            f"{', '.join(w.path.name for w in wheels) or 'none'}"
            + (f", budget ${s.budget:g}" if s.budget is not None else "")
        )

    def _abort_start(self) -> None:
        if self._runner is not None:
            self._runner.close()
        self._client.close()
        if self._lock_file is not None:
            self._lock_file.release()
        if self._generated_key is not None:
            for path in (self._generated_key, self._generated_key.with_name("id_ed25519.pub")):
                path.unlink(missing_ok=True)

    # ---- start-up: estimate and recovery ---------------------------------------------------------------------------

    def _check_estimate(self) -> None:
        """Price the run's estimate at current offer prices; refuse to start over the budget (see pricing)."""
        import json
        import shlex
        import subprocess

        from snakemake_executor_plugin_vast.atomic import write_text_atomic
        from snakemake_executor_plugin_vast.pricing import (
            EstimateError,
            expected_quote,
            format_quotes,
            parse_estimate,
            quote_gpu_hours,
        )

        s = self.workflow.executor_settings
        if not s.estimate_command:
            return
        if s.estimate_command.strip() != "resources":
            files = [shlex.quote(os.path.relpath(str(f))) for f in self.workflow.configfiles]
            command = s.estimate_command.replace("{configfiles}", " ".join(files)).replace(
                "{configfile_args}", " ".join(f"--configfile {f}" for f in files)
            )
            if "{config}" in command:  # the run's config as Snakemake resolved it (--config overrides included)
                config_path = self._state_root / self.run_id / "config.json"
                write_text_atomic(config_path, json.dumps(self.workflow.config, sort_keys=True, default=str))
                command = command.replace("{config}", shlex.quote(os.path.relpath(config_path, self.workdir)))
            try:
                done = subprocess.run(
                    command, shell=True, cwd=self.workdir, capture_output=True, text=True, timeout=600,
                    stdin=subprocess.DEVNULL,
                )  # fmt: skip
            except (OSError, subprocess.SubprocessError) as exc:
                raise WorkflowError(f"vast executor: --vast-estimate-command could not run: {exc}") from None
            if done.returncode != 0:
                raise WorkflowError(
                    f"vast executor: --vast-estimate-command exited {done.returncode}:\n{done.stderr.strip()[-1500:]}"
                )
            try:
                hours = parse_estimate(done.stdout)
            except EstimateError as exc:
                raise WorkflowError(f"vast executor: --vast-estimate-command: {exc}") from None
            source = f"{s.estimate_command.split()[0]} ..."
        else:
            hours = self._resource_estimate()
            source = "runtime x gpu of the jobs to run"
            if hours is None:
                self.logger.info("vast executor: no cost estimate (the jobs have no runtime resource)")
                return
        try:
            quotes = quote_gpu_hours(
                self._client, s.offer_query or "", hours, max_price=s.max_price, disk_gb=float(s.disk_gb),
                interruptible=bool(s.interruptible), bid_factor=float(s.bid_factor),
            )  # fmt: skip
        except Exception as exc:
            self.logger.warning(f"vast executor: could not price the estimate now ({exc}); continuing")
            return
        self.logger.info(format_quotes(quotes, s.budget, source))
        chosen = expected_quote(quotes)
        if s.budget is None or chosen is None or chosen.cost_usd is None or chosen.cost_usd <= s.budget:
            return
        if s.allow_over_budget:
            self.logger.warning(
                f"vast executor: the estimate (${chosen.cost_usd:.2f}) exceeds --vast-budget ${s.budget:g}; starting "
                "anyway (--vast-allow-over-budget): the budget stops the run when it is reached"
            )
            return
        raise WorkflowError(
            f"vast executor: the estimated cost ${chosen.cost_usd:.2f} ({chosen.gpu_hours:.2f} GPU-hours on "
            f"{chosen.gpu_type} at ${chosen.usd_per_gpu_hour:.4f}/GPU-h) exceeds --vast-budget ${s.budget:g}; nothing "
            "was rented. Raise the budget, shrink the run, or pass --vast-allow-over-budget to start anyway."
        )

    def _resource_estimate(self) -> Optional[dict]:
        """GPU-hours of the remote jobs to run from their ``runtime`` (minutes) and ``gpu`` resources."""
        try:
            jobs = [j for j in self.workflow.dag.needrun_jobs() if not j.is_local]
        except Exception:
            return None
        hours = 0.0
        for job in jobs:
            runtime = _number(job.resources, "runtime")
            if runtime is None:
                return None
            hours += runtime * _gpus(job.resources) / 60.0
        return {"any": hours} if jobs else None

    def _recover(self) -> None:
        from snakemake_executor_plugin_vast.recovery import recover

        s = self.workflow.executor_settings
        report = recover(
            self._pool,
            ledger_dir=self.workdir / s.ledger_dir,
            state_root=self._state_root,
            remote_root=s.remote_root.rstrip("/"),
            adopt=not s.no_adopt,
            logger=self.logger,
        )
        self._old_key_dirs = list(report.old_keys)
        if report.dead_runs:
            self.logger.info(
                f"vast executor: recovered dead run(s) {', '.join(report.dead_runs)}: adopted "
                f"{len(report.adopted)} instance(s), destroyed {len(report.destroyed)}"
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
        from snakemake_executor_plugin_vast.dispatch import RemoteJob
        from snakemake_executor_plugin_vast.offers import JobNeeds

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
            jobid=str(job.jobid),
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
        from snakemake_executor_plugin_vast.dispatch import job_key

        key = job_key(job.jobid, job.attempt)
        info = SubmittedJobInfo(job, external_jobid=f"vast-{self.run_id}/{key}", aux={"key": key})
        try:
            remote = self._remote_job(job, key)
        except Exception as exc:
            self.report_job_error(info, msg=f"vast executor could not prepare the job: {exc}\n")
            return
        self.report_job_submission(info)
        self._runner.submit(remote)

    def _remote_work_left(self, finishing: list[SubmittedJobInfo]) -> bool:
        """True unless the DAG has no remote job left to run besides ``finishing`` (the jobs being reported done) and
        the runner has nothing else in flight. Unknown (an unexpected DAG) counts as work left."""
        if self._runner is None or self._runner.unfinished():
            return True
        try:
            pending = [j for j in self.workflow.dag.needrun_jobs() if not j.is_local]
        except Exception:
            return True
        done = set()
        for info in finishing:
            done.update(info.job.jobs if info.job.is_group() else [info.job])
        return any(job not in done for job in pending)

    async def check_active_jobs(self, active_jobs: list[SubmittedJobInfo]) -> AsyncGenerator[SubmittedJobInfo, None]:
        """One status cycle: the runner makes one SSH call per host; finished jobs are reported, the rest yielded.

        When the jobs finishing now are the workflow's last remote jobs, their success is held back (they are yielded
        as still running) until the pool destroyed its hosts and finalized the run's ledger: rules that run after
        them (a cost report reading the ledger) see the final ledger, and no later write makes them out of date."""
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
        if runner.budget_stopped or self._pool.budget_hit:
            # On purpose: an exception from check_active_jobs makes Snakemake stop scheduling, shut the executor down
            # (teardown: instances destroyed, ledger written) and exit non-zero, with this one message and no
            # retries, instead of every remaining job failing (and being retried) with the budget message.
            raise WorkflowError(self._pool.budget_message())
        if runner.fatal_error:
            raise WorkflowError(f"vast executor: {runner.fatal_error}")
        for remote in finished:
            self._finished_pending[remote.key] = remote
        keyed = [(info, info.aux.get("key") if info.aux else None) for info in active_jobs]
        successes = [
            info for info, key in keyed if getattr(self._finished_pending.get(key), "state", None) == "succeeded"
        ]
        hold = False
        if successes and not self._remote_work_left(successes):
            self._pool.drain()
            now = time.monotonic()
            self._hold_since = self._hold_since or now
            hold = not self._pool.drained.is_set() and now - self._hold_since < DRAIN_HOLD_S
        else:
            self._hold_since = None
        changed = False
        for info, key in keyed:
            remote = self._finished_pending.get(key)
            if remote is None or (hold and remote.state == "succeeded"):
                yield info
                continue
            del self._finished_pending[key]
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
        if hold:
            self.next_seconds_between_status_checks = min(1.0, self._base_interval)
            return
        self._interval = self._base_interval if changed else min(self._max_interval, self._interval * 1.5)
        self.next_seconds_between_status_checks = self._interval

    def cancel_jobs(self, active_jobs: list[SubmittedJobInfo]) -> None:
        """Kill every remote job this run started (not only ``active_jobs``); instances are destroyed in shutdown."""
        runner = getattr(self, "_runner", None)
        if runner is not None:
            runner.cancel_all()

    def shutdown(self) -> None:
        """Stop status polling, then destroy the instances (unless kept) and write the ledger when it changed."""
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
            if self._runner is not None:
                if self._runner.unfinished():
                    self._runner.cancel_all()
                self._runner.close()
            self._pool.close(destroy=True)  # destroys, sweeps by label and writes the ledger if it changed
            if self._pool.ledger.records:
                self.logger.info(self._pool.ledger.format_table())
            keep = self.workflow.executor_settings.keep_instances and not self._pool.budget_hit
            for folder in ([self._generated_key.parent] if self._generated_key else []) + self._old_key_dirs:
                if keep:
                    self.logger.info(f"vast executor: SSH key of the kept instances: {folder / 'id_ed25519'}")
                    continue
                for name in ("id_ed25519", "id_ed25519.pub"):  # useless once its instances are gone
                    (folder / name).unlink(missing_ok=True)
            self.logger.debug(f"vast executor: teardown took {time.monotonic() - started:.1f} s")
            self._client.close()
            if self._lock_file is not None:
                self._lock_file.release(remove=not (keep and self._pool.ledger.live_count()))
