"""`density-engine` commands of the dataset stage."""

from __future__ import annotations

import click

COMMANDS: list[click.Command] = []
