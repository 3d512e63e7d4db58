"""`rollout lab ...`: start, stop and inspect the local lab."""

from __future__ import annotations

import click


@click.group()
def lab() -> None:
    """Run a local lab: real control planes per region, Prometheus, traffic simulator, Git server."""
