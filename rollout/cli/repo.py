"""`rollout validate | plan | render`: what release engineers run before they push."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
import yaml
from rich.console import Console
from rich.table import Table

from config.durations import format_duration
from config.errors import InvalidRepository
from config.grants import InvalidPolicy, Policy, load_policy
from config.groups import group_of
from config.identity import ReleaseIdentity
from config.loader import load_repository
from config.render import RenderFailed, render
from config.repository import Repository
from config.schema import Plan, SmokeWindow
from config.waves import plan_waves

OUTPUT = click.option(
    "-o",
    "--output",
    type=click.Choice(["text", "json", "yaml"]),
    default="text",
    help="text for people, json/yaml for scripts",
)
REV = click.option("--rev", default=None, help="branch, tag or commit to read (default: the working tree)")
POLICY = click.option(
    "--policy",
    "policy_file",
    type=click.Path(dir_okay=False, exists=True),
    default=None,
    help="the operator's rollout policy (what each app may deploy; default: the built-in "
    "safe default, docs/security.md)",
)


def operator_policy(policy_file: str | None) -> Policy:
    try:
        return load_policy(policy_file)
    except InvalidPolicy as invalid:
        raise click.ClickException(str(invalid)) from None


@contextmanager
def repository_at(source: str, rev: str | None) -> Iterator[tuple[Path, str | None]]:
    """A directory holding the repository at `rev`, and the commit it came from (if any)."""
    from rollout.sources import checkout_source

    with checkout_source(source, rev) as (path, commit):
        yield path, commit


def _load(path: Path, grants: Policy | None = None) -> Repository:
    try:
        return load_repository(path, grants or operator_policy(None))
    except InvalidRepository as invalid:
        raise click.ClickException(invalid.summary()) from None


@click.command()
@click.argument("source")
@REV
@POLICY
@OUTPUT
def validate(source: str, rev: str | None, policy_file: str | None, output: str) -> None:
    """Check a rollout repository (PATH or Git URL): schema, policies, and a dry render of every
    app in every region, checked against the operator's policy (--policy). Exits 1 and lists every
    problem when anything is wrong."""
    grants = operator_policy(policy_file)
    with repository_at(source, rev) as (path, _commit):
        try:
            repo = load_repository(path, grants)
        except InvalidRepository as invalid:
            if output == "text":
                click.echo(invalid.summary(), err=True)
            else:
                emit({"valid": False, "issues": [i.to_dict() for i in invalid.issues]}, output)
            raise SystemExit(1) from None
    summary = {"valid": True, "regions": sorted(repo.regions), "apps": sorted(repo.apps)}
    if output == "text":
        click.echo(f"ok: {len(repo.regions)} regions, {len(repo.apps)} apps ({', '.join(sorted(repo.apps))})")
    else:
        emit(summary, output)


@click.command()
@click.argument("source")
@click.argument("app")
@REV
@OUTPUT
def plan(source: str, app: str, rev: str | None, output: str) -> None:
    """Show how a release of APP would travel: waves, regions, strategy steps, smoke windows, and
    for a release group (dependsOn), the order in which the group's apps go in each region."""
    with repository_at(source, rev) as (path, _commit):
        repo = _load(path)
    chosen = _app(repo, app)
    data = plan_summary(repo, chosen.plan)
    if output != "text":
        emit(data, output)
        return
    console = Console()
    console.print(f"[bold]{app}[/] owned by {data['owner']} — playbook {data['playbook']}")
    console.print(f"strategy: {data['strategy']['kind']}  " + "  ".join(data["strategy"]["steps"]))
    table = Table("#", "wave", "regions", "smoke window", "max parallel")
    for i, wave in enumerate(data["waves"], 1):
        table.add_row(str(i), wave["name"], ", ".join(wave["regions"]), wave["smokeWindow"], str(wave["maxParallel"]))
    console.print(table)
    group = data.get("group")
    if group:
        console.print(
            f"release group: {' -> '.join(group['apps'])} (in each region an app starts once the apps "
            "it depends on passed there)"
        )
        table = Table("wave", "region", "order")
        for row in group["regions"]:
            order = " -> ".join(f"{a['app']} ({a['wave']})" for a in row["apps"])
            table.add_row(row["wave"] or "-", row["region"], order)
        console.print(table)


@click.command(name="render")
@click.argument("source")
@click.argument("app")
@click.argument("region")
@REV
@click.option("--track", type=click.Choice(["stable", "canary"]), default="stable")
@POLICY
def render_command(source: str, app: str, region: str, rev: str | None, track: str, policy_file: str | None) -> None:
    """Print the YAML that would be applied for APP in REGION (checked against --policy)."""
    grants = operator_policy(policy_file)
    with repository_at(source, rev) as (path, commit):
        repo = _load(path, grants)
        chosen = _app(repo, app)
        if region not in repo.regions:
            raise click.ClickException(f"unknown region {region!r}; known: {', '.join(sorted(repo.regions))}")
        identity = ReleaseIdentity(commit=commit or "0" * 40, version=chosen.values.version, track=track)
        try:
            click.echo(render(repo, app, region, identity).to_yaml(), nl=False)
        except RenderFailed as failed:
            raise click.ClickException("\n".join(str(i) for i in failed.issues)) from None


def plan_summary(repo: Repository, plan: Plan) -> dict[str, Any]:
    summary = {
        "app": plan.app,
        "owner": f"{plan.owner.team} ({plan.owner.contact})",
        "playbook": plan.playbook,
        "strategy": {"kind": plan.strategy.kind, "steps": strategy_steps(plan)},
        "waves": [
            {
                "name": w.name,
                "regions": list(w.regions),
                "smokeWindow": describe_smoke(w.smoke_window),
                "maxParallel": w.max_parallel,
            }
            for w in plan_waves(plan, repo.regions)
        ],
    }
    group = group_summary(repo, plan.app)
    if group:
        summary["group"] = group
    return summary


def group_summary(repo: Repository, app: str) -> dict[str, Any] | None:
    """The combined waves of `app`'s release group (dependsOn, config/groups.py), None when the app
    is in no group: per region (in `app`'s wave order, then the regions only other apps go to), the
    group's apps going there in order (dependencies first) and the wave each goes in."""
    graph = {name: source.plan.depends_on for name, source in repo.apps.items()}
    apps = group_of(graph, app)
    if len(apps) < 2:
        return None
    wave_of = {
        name: {r: w.name for w in plan_waves(repo.apps[name].plan, repo.regions) for r in w.regions} for name in apps
    }
    regions = list(wave_of[app])
    regions += sorted({r for name in apps for r in wave_of[name]} - set(regions))
    return {
        "apps": apps,
        "regions": [
            {
                "region": region,
                "wave": wave_of[app].get(region, ""),
                "apps": [{"app": name, "wave": wave_of[name][region]} for name in apps if region in wave_of[name]],
            }
            for region in regions
        ],
    }


def strategy_steps(plan: Plan) -> list[str]:
    strategy = plan.strategy
    if strategy.rolling:
        r = strategy.rolling
        return [
            f"maxSurge={r.max_surge}",
            f"maxUnavailable={r.max_unavailable}",
            f"progressDeadline={format_duration(r.progress_deadline)}",
        ]
    if strategy.blue_green:
        b = strategy.blue_green
        return [
            "deploy preview colour",
            *([f"analysis({', '.join(b.pre_promotion_analysis)})"] if b.pre_promotion_analysis else []),
            "switch active" if b.auto_promotion else "wait for promote, then switch active",
            f"scale down old colour after {format_duration(b.scale_down_delay)}",
        ]
    assert strategy.canary is not None
    steps = []
    for step in strategy.canary.steps:
        if step.set_weight is not None:
            steps.append(f"setWeight {step.set_weight}%")
        elif step.pause is not None:
            duration = step.pause.duration
            steps.append(f"pause {format_duration(duration)}" if duration else "pause until promoted")
        else:
            assert step.analysis is not None
            steps.append(f"analysis({', '.join(step.analysis.checks) or 'all checks'})")
    return [*steps, "setWeight 100% (promote)"]


def describe_smoke(window: SmokeWindow) -> str:
    if window.fixed is not None:
        return format_duration(window.fixed)
    assert window.auto is not None
    return f"auto ({format_duration(window.auto.floor)}..{format_duration(window.auto.ceiling)})"


def _app(repo: Repository, app: str) -> Any:
    if app not in repo.apps:
        raise click.ClickException(f"unknown app {app!r}; known: {', '.join(sorted(repo.apps))}")
    return repo.apps[app]


def emit(data: Any, output: str) -> None:
    click.echo(json.dumps(data, indent=2) if output == "json" else yaml.safe_dump(data, sort_keys=False), nl=False)
    if output == "json":
        click.echo()
