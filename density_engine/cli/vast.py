"""`density-engine` commands of the vast stage."""

from __future__ import annotations

import click

COMMANDS: list[click.Command] = []
