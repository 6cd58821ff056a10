"""`density-engine` commands of the workflow stage."""

from __future__ import annotations

import click

COMMANDS: list[click.Command] = []
