"""`rollout ui`: the live release view in the browser (rollout/ui/), served on this machine with
the caller's kubeconfig identity."""

from __future__ import annotations

from collections.abc import Callable

import click
from kubernetes.client.exceptions import ApiException

from rollout.cli.ops import Ops, explain, kube_options
from rollout.store import ACTIONS, RELEASES
from rollout.ui.live import Hub, Watcher
from rollout.ui.server import UI, Server, is_loopback


@click.command()
@kube_options
@click.option("--address", default="127.0.0.1", show_default=True, help="listen here; other than loopback: say so")
@click.option("--port", type=int, default=0, show_default=True, help="0: any free port (printed)")
@click.pass_context
def ui(
    ctx: click.Context, kubeconfig: str | None, context: str | None, namespace: str, address: str, port: int
) -> None:
    """Serve the live fleet, release, history and region pages on ADDRESS:PORT (a local web server).

    Reads and actions use your kubeconfig identity: RBAC decides what you see and may do."""
    if not is_loopback(address):
        if ctx.get_parameter_source("address") is not click.core.ParameterSource.COMMANDLINE:
            raise click.UsageError(f"refusing to listen on {address}: name it with --address to serve other hosts")
        click.echo(
            f"warning: listening on {address}: anybody who reaches it sees the releases and, with the page, "
            "acts as you",
            err=True,
        )
    ops = Ops(kubeconfig, context, namespace)
    hub = Hub()

    def describing(what: str) -> Callable[[ApiException], str]:
        return lambda exc: explain(exc, what, namespace, ops.whoami)

    watchers = [
        Watcher(ops.api_client, namespace, kind, hub, describing(what))
        for kind, what in ((RELEASES, "list releases"), (ACTIONS, "list actions"))
    ]
    for watcher in watchers:
        watcher.start()
    try:
        server = Server(address, port, UI(ops, hub))
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {address}:{port}: {exc.strerror}") from None
    click.echo(f"rollout ui: {server.url} (as {server.ui.user}, namespace {namespace}); Ctrl-C stops", err=False)
    try:
        server.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.stopping.set()
        server.server_close()
        for w in watchers:
            w.stop()
