"""The `rollout` command line. Each sub-command lives with the room it drives; this module only
assembles them, so `rollout --help` lists everything a user can do."""

from __future__ import annotations

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="regional-rollout")
def main() -> None:
    """Progressive delivery, region by region, from a Git repository of plans and manifests."""


def _register_subcommands() -> None:
    from deploy.lab.cli import lab
    from rollout.cli_controller import controller
    from rollout.cli_repo import plan, render_command, validate

    for command in (validate, plan, render_command, controller, lab):
        main.add_command(command)


_register_subcommands()
