"""Snakemake executor plugin ``vast`` (placeholder until the Vast.ai executor lands).

Kept importable and dependency-free: Snakemake imports every installed plugin when it builds its argument parser.
"""

from __future__ import annotations

from dataclasses import dataclass

from snakemake_interface_executor_plugins.executors.remote import RemoteExecutor
from snakemake_interface_executor_plugins.settings import CommonSettings, ExecutorSettingsBase

common_settings = CommonSettings(
    non_local_exec=True, implies_no_shared_fs=True, job_deploy_sources=False, can_transfer_local_files=True
)


@dataclass
class ExecutorSettings(ExecutorSettingsBase):
    """Settings of the vast executor."""


class Executor(RemoteExecutor):
    """Placeholder executor; the real one dispatches to Vast.ai hosts."""

    def run_job(self, job):  # pragma: no cover - placeholder
        raise NotImplementedError

    async def check_active_jobs(self, active_jobs):  # pragma: no cover - placeholder
        for job in active_jobs:
            yield job

    def cancel_jobs(self, active_jobs):  # pragma: no cover - placeholder
        pass
