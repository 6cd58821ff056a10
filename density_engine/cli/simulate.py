"""`density-engine` commands of the simulate stage."""

from __future__ import annotations

import click

COMMANDS: list[click.Command] = []
