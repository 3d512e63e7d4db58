"""`rollout drill APP --region R`: rehearse drain and rollback in one region, for real.

The CLI only creates the drill ReleaseAction (RBAC decides who may) and follows its status; the
controller carries the drill out (rollout/drill/) and records the checklist on the action, so the
result stays in the cluster (`kubectl -n rollout-system get ra`) whatever happens to this terminal.
"""

from __future__ import annotations

import time
from typing import Any

import click
from rich.console import Console
from rich.live import Live
from rich.table import Table

from rollout.cli.ops import ACK_TIMEOUT_S, Ops, kube_options
from rollout.drill import FINAL
from rollout.store import ACTIONS, GROUP, VERSION

FOLLOW_TIMEOUT_S = 900.0


def checklist_table(action: dict[str, Any]) -> Table:
    spec, status = action.get("spec") or {}, action.get("status") or {}
    state = status.get("state") or "Pending"
    verdict = {"Done": "[green]PASS[/green]", "Failed": "[red]FAIL[/red]", "Rejected": "[red]REJECTED[/red]"}
    title = (
        f"drill {spec.get('app')} in {spec.get('region')} ({action['metadata']['name']}): {verdict.get(state, state)}"
    )
    table = Table("#", "step", "expected", "observed", "time", "result", title=title, title_justify="left")
    for number, item in enumerate(status.get("checklist") or [], 1):
        passed = item.get("passed")
        result = "[green]pass[/green]" if passed else "[red]fail[/red]" if passed is False else "..."
        seconds = item.get("seconds")
        table.add_row(
            str(number),
            item["step"],
            item.get("expected", ""),
            item.get("observed", ""),
            f"{seconds:.1f}s" if seconds is not None else "",
            result,
        )
    return table


def _concluded(action: dict[str, Any]) -> int:
    return sum(1 for i in (action.get("status") or {}).get("checklist") or [] if i.get("passed") is not None)


@click.command()
@click.argument("app")
@click.option("--region", required=True, help="the region to rehearse in (not a high-traffic one without --force)")
@click.option("--reason", required=True, help="why: recorded with your name and shown in the action")
@kube_options
@click.option("--force", is_flag=True, help="allow drilling a high-traffic region")
@click.option(
    "--timeout",
    type=float,
    default=FOLLOW_TIMEOUT_S,
    show_default=True,
    help="seconds to follow the drill (it goes on in the controller after that)",
)
def drill(
    app: str,
    region: str,
    reason: str,
    kubeconfig: str | None,
    context: str | None,
    namespace: str,
    force: bool,
    timeout: float,
) -> None:
    """Rehearse drain and rollback of APP in REGION, for real: drain it, roll it back to the previous
    release, roll it forward again, restore its traffic; measure each step against the plan's targets
    and print the checklist. Exits 0 when every step met its target, 1 otherwise."""
    console = Console()
    if not console.is_terminal:
        console = Console(width=max(console.width, 160))
    ops = Ops(kubeconfig, context, namespace)
    if not ops.releases(app):
        raise click.ClickException(f"unknown app {app!r}: no release of it exists in {namespace}")
    console.print(
        f"[bold yellow]This drill acts for real:[/bold yellow] {app}'s users in {region} are moved to "
        f"the other regions, {region} is rolled back to the previous release and forward again, "
        f"then its traffic is restored."
    )
    action = ops.request("drill", app, reason, region=region, force=force, wait_s=min(timeout, ACK_TIMEOUT_S))
    name = action["metadata"]["name"]
    deadline = time.monotonic() + timeout

    def current() -> dict[str, Any]:
        return dict(
            ops.call(
                "read the drill",
                lambda: ops.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, ACTIONS, name),
            )
        )

    def finished(a: dict[str, Any]) -> bool:
        return (a.get("status") or {}).get("state") in FINAL

    if console.is_terminal:
        with Live(checklist_table(action), console=console, refresh_per_second=2, transient=True) as live:
            while not finished(action) and time.monotonic() < deadline:
                time.sleep(1)
                action = current()
                live.update(checklist_table(action))
    else:  # logs and pipes: one line per concluded step
        shown = 0
        while not finished(action) and time.monotonic() < deadline:
            time.sleep(1)
            action = current()
            items = (action.get("status") or {}).get("checklist") or []
            for item in items[shown : _concluded(action)]:
                console.print(
                    f"  {item['step']}: {'pass' if item['passed'] else 'fail'} "
                    f"({item.get('seconds', 0):.1f}s) {item.get('observed', '')}"
                )
            shown = max(shown, _concluded(action))
    status = action.get("status") or {}
    if status.get("checklist"):
        console.print(checklist_table(action))
    if not finished(action):
        raise click.ClickException(
            f"drill {name} still {status.get('state')} after {timeout:.0f}s; it goes on in the controller: "
            f"kubectl -n {namespace} get releaseaction {name} -o yaml"
        )
    state = status["state"]
    console.print(f"drill {app} {region}: {'PASS' if state == 'Done' else state.upper()} — {status.get('message', '')}")
    raise SystemExit(0 if state == "Done" else 1)
