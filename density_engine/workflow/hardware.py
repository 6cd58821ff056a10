"""What the machine running `snakemake` has, found without importing torch (the Snakefile calls this on every run)."""

from __future__ import annotations

from pathlib import Path

NVIDIA_GPU_LIST = Path("/proc/driver/nvidia/gpus")  # one folder per GPU the NVIDIA driver sees


def nvidia_gpu_count(gpu_list: Path = NVIDIA_GPU_LIST) -> int:
    """Number of GPUs the NVIDIA driver lists (0 without a driver)."""
    return sum(1 for _ in gpu_list.iterdir()) if gpu_list.is_dir() else 0
