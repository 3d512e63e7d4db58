"""The incident responder's commands. Reading is plain API reads; every change is a ReleaseAction
object that the controller carries out, so RBAC decides who may do what and every action leaves
a record (user, time, reason) that `history` shows. The CLI never touches workloads itself."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import click
from kubernetes import client
from kubernetes import config as kube_config  # not the project's config package
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException
from rich import box
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from config.durations import parse_duration
from config.freezes import summary
from config.times import format_time, parse_time
from rollout.actions import runtime_freezes
from rollout.cli.repo import emit
from rollout.store import ACTIONS, GROUP, RELEASES, VERSION
from rollout.views import (  # noqa: F401 - re-exported: the CLI's tests and callers import them from here
    STATUS_HEADER,
    WIDE_HEADER,
    action_rows,
    active_release,
    history_rows,
    last_verdict,
    rendered_by,
    smoke_left,
    status_rows,
)

ACK_TIMEOUT_S = 30.0
console = Console()


class Ops:
    """The responder's view of the home cluster, through the user's own kubeconfig identity."""

    def __init__(self, kubeconfig: str | None, context: str | None, namespace: str):
        try:
            self.api_client = kube_config.new_client_from_config(config_file=kubeconfig, context=context)
        except (ConfigException, FileNotFoundError) as exc:
            raise click.ClickException(f"cannot use kubeconfig: {exc}") from None
        self.custom = client.CustomObjectsApi(self.api_client)
        self.namespace = namespace

    def call(self, what: str, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except ApiException as exc:
            raise click.ClickException(explain(exc, what, self.namespace, self.whoami)) from None
        except Exception as exc:  # noqa: BLE001 - connection refused, DNS, TLS: one readable line
            reason = f"{type(exc).__name__}: {exc}"
            raise click.ClickException(f"cannot reach the home cluster to {what}: {reason}") from None

    def releases(self, app: str | None = None) -> list[dict[str, Any]]:
        selector = f"app.kubernetes.io/name={app}" if app else ""
        items: list[dict[str, Any]] = self.call(
            "list releases",
            lambda: self.custom.list_namespaced_custom_object(
                GROUP, VERSION, self.namespace, RELEASES, label_selector=selector
            ),
        )["items"]
        return sorted(items, key=lambda r: r["metadata"]["creationTimestamp"])

    def actions(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.call(
            "list actions", lambda: self.custom.list_namespaced_custom_object(GROUP, VERSION, self.namespace, ACTIONS)
        )["items"]
        return items

    def whoami(self) -> str:
        return self.identity()[0]

    def identity(self) -> tuple[str, list[str]]:
        """(user name, groups) as the API server authenticates this kubeconfig (SelfSubjectReview)."""
        try:
            review = client.AuthenticationV1Api(self.api_client).create_self_subject_review(
                client.V1SelfSubjectReview(api_version="authentication.k8s.io/v1", kind="SelfSubjectReview")
            )
            user = review.status.user_info if review.status else None
            return (user.username if user else None) or "unknown", list((user.groups if user else None) or [])
        except Exception:  # noqa: BLE001 - older servers: the admission policy still checks it
            return "unknown", []

    def request(
        self,
        action: str,
        app: str | None,
        reason: str,
        *,
        region: str | None = None,
        full: bool = False,
        force: bool = False,
        to_release: str | None = None,
        until: str | None = None,
        wave: str | None = None,
        wait_s: float = ACK_TIMEOUT_S,
    ) -> dict[str, Any]:
        """Create the ReleaseAction and wait for the controller to handle it."""
        created = self.submit(
            action, app, reason, region=region, full=full, force=force, to_release=to_release, until=until, wave=wave
        )
        return self.wait_ack(action, created["metadata"]["name"], wait_s)

    def submit(
        self,
        action: str,
        app: str | None,
        reason: str,
        *,
        region: str | None = None,
        full: bool = False,
        force: bool = False,
        to_release: str | None = None,
        until: str | None = None,
        wave: str | None = None,
        release: str | None = None,
    ) -> dict[str, Any]:
        """Create the ReleaseAction (as the CLI and `rollout ui` do) and return it, unacknowledged.
        approve and refuse carry the requester's groups too (an approval gate may allow a group)."""
        user, groups = self.identity()
        spec: dict[str, Any] = {"action": action, "reason": reason, "requestedBy": user}
        pairs = (("app", app), ("release", release), ("region", region), ("toRelease", to_release), ("until", until))
        for key, value in pairs:
            if value:
                spec[key] = value
        if wave:
            spec["wave"] = wave
            spec["requesterGroups"] = groups
        if full:
            spec["full"] = True
        if force:
            spec["force"] = True
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "ReleaseAction",
            "metadata": {"generateName": f"{action}-{app or region or 'all'}-"},
            "spec": spec,
        }
        created: dict[str, Any] = self.call(
            f"create a {action} action",
            lambda: self.custom.create_namespaced_custom_object(GROUP, VERSION, self.namespace, ACTIONS, body),
        )
        return created

    def wait_ack(self, action: str, name: str, wait_s: float = ACK_TIMEOUT_S) -> dict[str, Any]:
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            current: dict[str, Any] = self.call(
                "read the action",
                lambda: self.custom.get_namespaced_custom_object(GROUP, VERSION, self.namespace, ACTIONS, name),
            )
            if (current.get("status") or {}).get("state"):
                return current
            time.sleep(0.5)
        raise click.ClickException(
            f"the controller did not acknowledge {action} ({name}) within {wait_s:.0f}s: is it running? "
            f"`kubectl -n {self.namespace} get pods -l app.kubernetes.io/name=rollout-controller`. The request "
            f"stays queued and will be carried out when the controller is back."
        )


def explain(exc: ApiException, what: str, namespace: str, whoami: Callable[[], str]) -> str:
    if exc.status == 403 and "needs the verb" in (exc.body or ""):  # the admission policy: a verb of its own
        try:
            return f"cannot {what}: {json.loads(exc.body or '{}').get('message', exc.reason)}"
        except (ValueError, TypeError):
            pass
    if exc.status == 403:
        verb, resource = _verb_and_resource(what)
        return (
            f"permission denied: {whoami()} may not {verb} {resource}.{GROUP} in namespace {namespace}. "
            f"Ask for the rollout-responder role (see README, Incident response)."
        )
    if exc.status == 404:
        return (
            f"cannot {what}: the rollout CRDs are not installed in this cluster or the namespace "
            f"{namespace} does not exist (install: kubectl apply -k deploy/)"
        )
    if exc.status == 422:
        try:
            message = json.loads(exc.body or "{}").get("message", exc.reason)
        except (ValueError, TypeError):
            message = exc.reason
        return f"cannot {what}: {message}"
    return f"cannot {what}: {exc.status} {exc.reason}"


def _verb_and_resource(what: str) -> tuple[str, str]:
    verb = "create" if what.startswith("create") else "list" if what.startswith("list") else "get"
    return verb, "releaseactions" if "action" in what else "releases"


def acted_on(message: str, releases: list[dict[str, Any]]) -> str:
    """Which release the controller acted on ("applied to NAME") and where it stands now."""
    for rel in releases:
        name = rel["metadata"]["name"]
        if message.endswith(f" {name}") or f" {name} " in f"{message} ":
            status = rel.get("status") or {}
            return (
                f"acted on release {name} (version {rel['spec']['version']}, commit "
                f"{rel['spec']['commit'][:12]}): now {status.get('phase', 'Pending')}"
                + (f" — {status['message']}" if status.get("message") else "")
            )
    return "acted on: see `rollout status`"


# --- rendering ---------------------------------------------------------------------------------


def status_title(release: dict[str, Any]) -> str:
    status = release.get("status") or {}
    spec = release["spec"]
    title = f"{spec['app']} {spec['version']} ({release['metadata']['name']}): {status.get('phase', 'Pending')}" + (
        " [quarantined]" if status.get("quarantined") else ""
    )
    if rendered := rendered_by(release):
        title += f", rendered by {rendered}"
    return title


def status_table(release: dict[str, Any], *, wide: bool = False, now: datetime | None = None) -> Table:
    """Every column in full; too narrow a terminal folds the text onto more lines, never cuts it."""
    table = Table(title=Text(status_title(release)), title_justify="left")
    header = WIDE_HEADER if wide else STATUS_HEADER
    for name in header:
        table.add_column(name, overflow="fold")
    for row in status_rows(release, wide=wide, now=now):
        table.add_row(*map(Text, row))  # Text: a "[...]" in a message is not rich markup
    return table


def status_view(release: dict[str, Any], *, wide: bool = False, now: datetime | None = None) -> RenderableType:
    """`text`: a compact table (no message column) and, under it, each region's verdict and full
    message on lines of their own, word-wrapped; `wide`: one table with every column."""
    if wide:
        table, frozen = status_table(release, wide=True, now=now), frozen_lines(release)
        return Group(table, *frozen) if frozen else table
    rows = status_rows(release, now=now)
    table = Table(title=Text(status_title(release)), title_justify="left", box=box.SIMPLE_HEAD, show_edge=False)
    table.pad_edge = False  # two more columns for the names on an 80-column terminal
    for name in STATUS_HEADER[:5]:
        table.add_column(name, overflow="fold")
    notes = []
    for row in rows:
        table.add_row(*map(Text, row[:5]))
        verdict, message = row[5], row[6]
        if verdict or message:
            notes.append(Text(f"  {row[1]}: " + " — ".join(p for p in (verdict, message) if p), overflow="fold"))
    return Group(table, *notes, *frozen_lines(release))


def frozen_lines(release: dict[str, Any]) -> list[Text]:
    """Why the release waits at a region boundary, and until when; who overrode freezes for it."""
    status = release.get("status") or {}
    lines = [Text(f"  {status['frozen']}", overflow="fold")] if status.get("frozen") else []
    if status.get("freezeOverride"):
        lines.append(Text(f"  freezes overridden by {status['freezeOverride']}", overflow="fold"))
    if gate := status.get("awaitingApproval"):
        have, need = gate.get("have", 0), gate.get("required")
        text = f"  awaiting approval for wave {gate.get('wave')}: {have}/{need} approvals from {gate.get('from')}"
        text += f"; {gate['expired']} expired" if gate.get("expired") else ""
        text += f"; refused by {gate['refused']}" if gate.get("refused") else ""
        lines.append(Text(text, overflow="fold"))
    return lines


def freeze_lines(actions: list[dict[str, Any]], now: datetime) -> list[Text]:
    """The run-time freezes in force (`rollout freeze`); freezes.yaml windows show on the releases
    they hold."""
    return [
        Text(f"frozen by {f.owner}: {summary(f)} ({f.reason}) [{f.name}]", overflow="fold")
        for f in runtime_freezes(actions, now)
    ]


def until_time(text: str, now: datetime) -> str:
    """`--until`: a duration from now (2h, 1d) or a time (RFC 3339; no offset: UTC), as RFC 3339."""
    try:
        return format_time(now + parse_duration(text))
    except ValueError:
        pass
    try:
        when = parse_time(text)
    except ValueError:
        when = None
    if when is None:
        raise click.BadParameter(f"{text!r} is neither a duration (2h, 1d) nor a time (2026-12-24T18:00:00Z)")
    if when <= now:
        raise click.BadParameter(f"{text} is in the past; give a later time or a duration")
    return format_time(when)


def print_wide(out: Console, *renderables: RenderableType, wide: bool) -> None:
    """Print; with `wide`, on a console as wide as the content needs (whatever the terminal or,
    when stdout is not one, rich's default of 80 columns), so that nothing folds."""
    if not wide:
        for renderable in renderables:
            out.print(renderable)
        return
    options = out.options.update_width(100_000)
    needed = max((Measurement.get(out, options, r).maximum for r in renderables), default=out.width)
    target = Console(
        file=out.file,
        width=max(out.width, needed),
        color_system=out.color_system,  # type: ignore[arg-type]  # the name rich reports back
        force_terminal=out.is_terminal,
        no_color=out.no_color,
    )
    for renderable in renderables:
        target.print(renderable)


# --- commands ----------------------------------------------------------------------------------

_kube = [
    click.option("--kubeconfig", envvar="KUBECONFIG", default=None, help="like kubectl"),
    click.option("--context", default=None, help="the home cluster's context (default: current)"),
    click.option("-n", "--namespace", default="rollout-system", show_default=True),
]


def kube_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(_kube):
        fn = option(fn)
    return fn


def _ops(kubeconfig: str | None, context: str | None, namespace: str) -> Ops:
    return Ops(kubeconfig, context, namespace)


@click.command()
@click.argument("app", required=False)
@kube_options
@click.option(
    "-o",
    "--output",
    type=click.Choice(["text", "wide", "json", "yaml"]),
    default="text",
    help="text: compact, messages in full under the table; wide: every column, never cut",
)
@click.option("--watch", is_flag=True, help="redraw live until interrupted")
def status(
    app: str | None, kubeconfig: str | None, context: str | None, namespace: str, output: str, watch: bool
) -> None:
    """Where each app's latest release stands, region by region."""
    ops = _ops(kubeconfig, context, namespace)

    def latest() -> list[dict[str, Any]]:
        by_app: dict[str, dict[str, Any]] = {}
        for rel in ops.releases(app):
            by_app[rel["spec"]["app"]] = rel
        if app and app not in by_app:
            raise click.ClickException(f"unknown app {app!r}: no release of it exists in {namespace}")
        return [by_app[k] for k in sorted(by_app)]

    if output not in ("text", "wide"):
        emit(
            [
                {
                    "release": r["metadata"]["name"],
                    "app": r["spec"]["app"],
                    "version": r["spec"]["version"],
                    "renderers": r["spec"].get("renderers") or {},
                    "status": r.get("status") or {},
                }
                for r in latest()
            ],
            output,
        )
        return
    wide = output == "wide"
    if not watch:
        freezes = freeze_lines(ops.actions(), datetime.now(UTC))
        print_wide(console, *freezes, *(status_view(rel, wide=wide) for rel in latest()), wide=wide)
        return
    with Live(console=console, refresh_per_second=2) as live:  # a live view folds to the terminal's width
        while True:
            live.update(Group(*(status_view(r, wide=wide) for r in latest())))
            time.sleep(1)


@click.command()
@click.argument("app")
@kube_options
@click.option(
    "-o",
    "--output",
    type=click.Choice(["text", "wide", "json", "yaml"]),
    default="text",
    help="wide: every column in full, never cut or folded",
)
def history(app: str, kubeconfig: str | None, context: str | None, namespace: str, output: str) -> None:
    """Releases of APP, newest first: outcome, duration, and who did what."""
    ops = _ops(kubeconfig, context, namespace)
    releases = ops.releases(app)
    if not releases:
        raise click.ClickException(f"unknown app {app!r}: no release of it exists in {namespace}")
    rows = history_rows(releases)
    header = ["release", "version", "outcome", "created", "took", "failed region", "people", "rendered by"]
    requested = action_rows(ops.actions(), app)
    action_header = ["requested", "action", "target", "by", "reason", "outcome"]
    if output not in ("text", "wide"):
        emit(
            {
                "releases": [dict(zip(header, row, strict=True)) for row in rows],
                "actions": [dict(zip(action_header, row, strict=True)) for row in requested],
            },
            output,
        )
        return
    tables = [history_table(f"history of {app}", header, rows)]
    if requested:
        tables.append(history_table("requested by people (ReleaseActions)", action_header, requested))
    print_wide(console, *tables, wide=output == "wide")


def history_table(title: str, header: list[str], rows: list[list[str]]) -> Table:
    """Long text folds onto more lines instead of being cut with an ellipsis."""
    table = Table(title=Text(title), title_justify="left")
    for name in header:
        table.add_column(name, overflow="fold")
    for row in rows:
        table.add_row(*map(Text, row))  # Text: a "[...]" in a message is not rich markup
    return table


def _action_command(action: str, help_text: str, needs_app: bool = True) -> click.Command:
    @click.command(name=action, help=help_text)
    @click.argument("target")
    @click.option("--reason", required=True, help="why: recorded with your name and shown in history")
    @kube_options
    @click.option("--region", default=None, help="limit to one region")
    @click.option("--full", is_flag=True, help="promote: skip every remaining pause and smoke window")
    @click.option("--to", "to_release", default=None, help="rollback: the release to return to")
    @click.option(
        "--timeout",
        type=float,
        default=ACK_TIMEOUT_S,
        show_default=True,
        help="seconds to wait for the controller's acknowledgement",
    )
    def command(
        target: str,
        reason: str,
        kubeconfig: str | None,
        context: str | None,
        namespace: str,
        region: str | None,
        full: bool,
        to_release: str | None,
        timeout: float,
    ) -> None:
        ops = _ops(kubeconfig, context, namespace)
        app = target if needs_app else None
        if needs_app and not ops.releases(app):
            raise click.ClickException(f"unknown app {app!r}: no release of it exists in {namespace}")
        result = ops.request(
            action,
            app,
            reason,
            region=region if needs_app else target,
            full=full,
            to_release=to_release,
            wait_s=timeout,
        )
        state = result["status"]
        click.echo(f"{action} {target}: {state['state']} — {state.get('message', '')}")
        if needs_app and state["state"] == "Done":
            click.echo(acted_on(state.get("message", ""), ops.releases(app)))
        if state["state"] == "Rejected":
            raise SystemExit(1)

    return command


def _freeze_command(action: str, help_text: str) -> click.Command:
    @click.command(name=action, help=help_text)
    @click.argument("app", required=False)
    @click.option("--all", "every", is_flag=True, help="every app (instead of APP)")
    @click.option("--reason", required=True, help="why: recorded with your name and shown in status and history")
    @kube_options
    @click.option("--region", default=None, help="only this region")
    @click.option(
        "--until",
        default=None,
        hidden=action != "freeze",
        help="when the freeze ends: a duration (2h) or a time (2026-12-24T18:00:00Z); default: until unfreeze",
    )
    @click.option("--timeout", type=float, default=ACK_TIMEOUT_S, show_default=True)
    def command(
        app: str | None,
        every: bool,
        reason: str,
        kubeconfig: str | None,
        context: str | None,
        namespace: str,
        region: str | None,
        until: str | None,
        timeout: float,
    ) -> None:
        if bool(app) == every:
            raise click.UsageError(f"name one APP or give --all: rollout {action} APP --reason ...")
        if until is not None and action != "freeze":
            raise click.UsageError("--until applies to freeze only")
        ends = until_time(until, datetime.now(UTC)) if until else None
        ops = _ops(kubeconfig, context, namespace)
        result = ops.request(action, app, reason, region=region, until=ends, wait_s=timeout)
        state = result["status"]
        click.echo(f"{action} {app or 'all apps'}: {state['state']} — {state.get('message', '')}")
        if state["state"] == "Rejected":
            raise SystemExit(1)

    return command


def _approval_command(action: str, help_text: str) -> click.Command:
    @click.command(name=action, help=help_text)
    @click.argument("app")
    @click.option("--wave", required=True, help="the wave whose approval gate this is for")
    @click.option("--reason", required=True, help="why: recorded with your name and shown in history")
    @kube_options
    @click.option("--timeout", type=float, default=ACK_TIMEOUT_S, show_default=True)
    def command(
        app: str, wave: str, reason: str, kubeconfig: str | None, context: str | None, namespace: str, timeout: float
    ) -> None:
        ops = _ops(kubeconfig, context, namespace)
        if not ops.releases(app):
            raise click.ClickException(f"unknown app {app!r}: no release of it exists in {namespace}")
        result = ops.request(action, app, reason, wave=wave, wait_s=timeout)
        state = result["status"]
        message = state.get("message", "")
        click.echo(f"{action} {app} wave {wave}: {state['state']} — {message}")
        if state["state"] == "Done":
            click.echo(acted_on(message, ops.releases(app)))
        if state["state"] == "Rejected" or message.startswith("not counted"):
            raise SystemExit(1)

    return command


ACTION_COMMANDS = [
    _action_command("rollback", "Roll APP back (to the release before it); drains first if the plan says so."),
    _action_command("abort", "Abort APP's release in progress and roll it back."),
    _action_command("pause", "Pause APP's release: no region moves until resume."),
    _action_command("resume", "Resume APP's paused release."),
    _action_command("promote", "Skip the current pause or smoke window of APP (recorded)."),
    _action_command("drain", "Set REGION's global traffic weight to 0 for every app.", needs_app=False),
    _action_command("restore", "Restore REGION's global traffic weight to 100 for every app.", needs_app=False),
    _freeze_command("freeze", "Freeze APP (or --all): no release starts a new region until it ends or is lifted."),
    _freeze_command("unfreeze", "Lift the run-time freezes of APP (or --all); freezes.yaml windows end in Git."),
    _action_command(
        "override-freeze",
        "Let APP's release start regions despite freezes (needs the override-freeze verb; recorded).",
    ),
    _approval_command(
        "approve",
        "Approve the approval gate of APP's wave (needs the approve verb; counts if the gate allows you).",
    ),
    _approval_command(
        "refuse",
        "Refuse the approval gate of APP's wave: recorded, and it stays closed until approved again.",
    ),
]
