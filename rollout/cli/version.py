"""`rollout version`: the controller's version and the pinned renderers it runs (helm, kustomize)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version

import click

from config.sources import tools
from rollout.cli.repo import OUTPUT, emit


def versions() -> dict[str, str]:
    try:
        own = package_version("regional-rollout")
    except PackageNotFoundError:
        own = "unknown (not installed)"
    return {"rollout": own, **tools.versions()}


@click.command("version")
@OUTPUT
def version(output: str) -> None:
    """Print the versions of the controller and of the Helm and Kustomize binaries it renders with.

    A renderer that is missing or not the pinned version is shown as unavailable (with the fix);
    the command then exits 1."""
    found = versions()
    if output == "text":
        for name, value in found.items():
            click.echo(f"{name}: {value}")
    else:
        emit(found, output)
    if any(value.startswith("unavailable") for value in found.values()):
        raise SystemExit(1)
