"""The `rollout` command line. Each sub-command lives with the room it drives; this module only
assembles them, so `rollout --help` lists everything a user can do."""

from __future__ import annotations

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="regional-rollout")
def main() -> None:
    """Progressive delivery, region by region, from a Git repository of plans and manifests."""
    from rollout.logs import configure

    configure(level="warning")  # logs go to stderr; commands' output on stdout stays parseable


def _register_subcommands() -> None:
    from rollout.cli.controller import controller
    from rollout.cli.drill import drill
    from rollout.cli.ops import ACTION_COMMANDS, history, status
    from rollout.cli.repo import plan, render_command, validate
    from rollout.cli.ui import ui
    from rollout.cli.version import version

    for command in (validate, plan, render_command, controller, status, history, *ACTION_COMMANDS, drill, ui, version):
        main.add_command(command)


_register_subcommands()


if __name__ == "__main__":
    main()
