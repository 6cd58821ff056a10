"""The ``density-engine`` command line.

Each stage owns one module here (``simulate``, ``workflow``, ``operations``, ``dataset``, ``vast``) exposing
``COMMANDS``, a list of click commands or groups that are attached to the top-level group. Modules import heavy
dependencies (torch, pyarrow, huggingface_hub, paramiko) inside their command functions so that
``density-engine --help`` stays fast.
"""

from __future__ import annotations

import importlib
import logging

import click

from density_engine import __version__

_COMMAND_MODULES = ("simulate", "workflow", "operations", "dataset", "vast")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="density-engine")
@click.option("-v", "--verbose", count=True, help="More log output (repeat for debug).")
def main(verbose: int) -> None:
    """Simulate return densities of stochastic-volatility models and publish them as a dataset."""
    level = logging.WARNING - 10 * min(verbose + 1, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


for _name in _COMMAND_MODULES:
    for _command in importlib.import_module(f"density_engine.cli.{_name}").COMMANDS:
        main.add_command(_command)
