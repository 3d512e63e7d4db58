"""Policies that span files: waves against regions, analysis references, queries, and a dry
render of every app in every region it reaches (templates, images, well-formed objects)."""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import jinja2

from config.defaults import DEFAULT_CHECKS
from config.errors import Issue
from config.grants import Policy
from config.identity import ReleaseIdentity
from config.render import RenderFailed, render_many
from config.repository import AppSource, Repository, content_digest
from config.schema import AppValues, Plan
from config.templating import QUERY_VARIABLES, undeclared_variables
from config.waves import plan_waves, wave_problems

VALIDATION_COMMIT = "0" * 40  # validation renders with a placeholder identity


class RenderMemo:
    """The apps whose dry render passed, by everything the render reads: the app's folder and the
    regions (`content_digest`: templates, charts and overlays are confined to the app's folder) and
    the operator's policy. A push that changes one app of a thousand then renders that one app, not
    every app in every region again (each render is a sandboxed child process, ~10-70 ms). Only
    passes are remembered: a render refused because a limit was hit on a busy machine is tried
    again with the next load. Thread-safe; bounded (oldest forgotten first)."""

    def __init__(self, size: int = 20_000):
        self._size = size
        self._passed: OrderedDict[tuple[str, str, str], None] = OrderedDict()
        self._lock = threading.Lock()
        self._policy: tuple[Policy, str] | None = None  # the last policy and its digest

    def key(self, repo: Repository, app: AppSource) -> tuple[str, str, str]:
        return (app.name, content_digest(repo.root, app.name), self._policy_digest(repo.grants))

    def _policy_digest(self, grants: Policy) -> str:
        """Computed once per policy (it is fixed for the process), not once per app."""
        known = self._policy
        if known is None or known[0] is not grants:
            known = (grants, hashlib.sha256(grants.model_dump_json().encode()).hexdigest())
            self._policy = known
        return known[1]

    def render_issues(self, repo: Repository, app: AppSource) -> list[Issue]:
        """`_render_issues`, skipped for an app whose render passed with the same inputs."""
        key = self.key(repo, app)
        if self.passed(key):
            return []
        issues = _render_issues(repo, app)
        if not issues:
            self.remember(key)
        return issues

    def passed(self, key: tuple[str, str, str]) -> bool:
        with self._lock:
            if key in self._passed:
                self._passed.move_to_end(key)
                return True
            return False

    def remember(self, key: tuple[str, str, str]) -> None:
        with self._lock:
            self._passed[key] = None
            self._passed.move_to_end(key)
            while len(self._passed) > self._size:
                self._passed.popitem(last=False)


def repository_issues(repo: Repository, memo: RenderMemo | None = None) -> list[Issue]:
    issues: list[Issue] = []
    for app in repo.apps.values():
        issues += app_issues(repo, app, memo)
    return issues


def app_issues(repo: Repository, app: AppSource, memo: RenderMemo | None = None) -> list[Issue]:
    plan_file = repo.relative(app.directory / "rollout.yaml")
    values_file = repo.relative(app.directory / "values.yaml")
    problems = wave_problems(app.plan, repo.regions)
    issues = [Issue(plan_file, p.field, p.problem, p.fix) for p in problems]
    issues += list(_analysis_issues(plan_file, app))
    issues += [
        Issue(
            values_file,
            f"regionOverrides.{name}",
            f"unknown region {name!r}",
            f"use one of {', '.join(sorted(repo.regions))}",
        )
        for name in app.values.region_overrides
        if name not in repo.regions
    ]
    if not problems:
        issues += _render_issues(repo, app) if memo is None else memo.render_issues(repo, app)
    return issues


def check_names(app: AppSource) -> set[str]:
    return {c.name for c in (app.plan.analysis.checks or DEFAULT_CHECKS)}


def _analysis_issues(shown: str, app: AppSource) -> Iterator[Issue]:
    for i, check in enumerate(app.plan.analysis.checks):
        yield from query_issues(shown, f"analysis.checks[{i}].query", check.query)
        if check.baseline_query:
            yield from query_issues(shown, f"analysis.checks[{i}].baselineQuery", check.baseline_query)
    known = check_names(app)
    fix = f"use one of {', '.join(sorted(known))}"
    canary = app.plan.strategy.canary
    for i, step in enumerate(canary.steps if canary else []):
        for name in step.analysis.checks if step.analysis else []:
            if name not in known:
                yield Issue(shown, f"strategy.canary.steps[{i}].analysis.checks", f"unknown check {name!r}", fix)
    blue_green = app.plan.strategy.blue_green
    for name in blue_green.pre_promotion_analysis if blue_green else []:
        if name not in known:
            yield Issue(shown, "strategy.blueGreen.prePromotionAnalysis", f"unknown check {name!r}", fix)


def _render_issues(repo: Repository, app: AppSource) -> list[Issue]:
    identity = validation_identity(app.values)
    issues: set[Issue] = set()
    regions = [region for wave in plan_waves(app.plan, repo.regions) for region in wave.regions]
    plan_file = repo.relative(app.directory / "rollout.yaml")
    for result in render_many(repo, app.name, regions, identity).values():  # one sandbox child per app
        if isinstance(result, RenderFailed):
            issues.update(result.issues)
        else:  # what the controller's strategies need from the manifests (strategies.check)
            issues.update(
                Issue(plan_file, field, problem, fix)
                for field, problem, fix in workload_problems(app.name, app.plan, result.objects)
            )
    return sorted(issues)


def traffic_workload(app: str, plan: Plan, objects: Sequence[Mapping[str, Any]]) -> str | None:
    """The Deployment that takes the traffic of a canary or blue/green release: the plan's
    strategy.trafficWorkload, else the only Deployment, else the one named after the app; None
    when there is none (workload_problems says why). Rolling plans have none: every workload rolls."""
    if plan.strategy.kind == "rolling":
        return None
    deployments = [str(o["metadata"]["name"]) for o in objects if o.get("kind") == "Deployment"]
    if plan.strategy.traffic_workload is not None:
        return plan.strategy.traffic_workload if plan.strategy.traffic_workload in deployments else None
    if len(deployments) == 1:
        return deployments[0]
    return app if app in deployments else None


def workload_problems(app: str, plan: Plan, objects: Sequence[Mapping[str, Any]]) -> list[tuple[str, str, str]]:
    """What a release's manifests lack for its plan's strategy, as (plan field, problem, fix): the
    one rule `rollout validate` and the controller (strategies.check) both apply."""
    kind = plan.strategy.kind
    if kind == "rolling":
        return []
    deployments = sorted(str(o["metadata"]["name"]) for o in objects if o.get("kind") == "Deployment")
    named = plan.strategy.traffic_workload
    out: list[tuple[str, str, str]] = []
    if traffic_workload(app, plan, objects) is None:
        if named is not None:
            out.append(
                (
                    "strategy.trafficWorkload",
                    f"{kind} names Deployment {named!r}, which the manifests do not "
                    f"render (Deployments: {', '.join(deployments) or 'none'})",
                    "name one of the rendered Deployments, or render it",
                )
            )
        else:
            out.append(
                (
                    "strategy.trafficWorkload",
                    f"{kind} needs the Deployment that takes the traffic; the "
                    f"manifests render {len(deployments)} ({', '.join(deployments) or 'none'}) and none is "
                    f"named after the app {app!r}",
                    "set strategy.trafficWorkload to the Deployment behind the app's Service",
                )
            )
    services = {str(o["metadata"]["name"]): o for o in objects if o.get("kind") == "Service"}
    if app not in services:
        out.append(
            (
                "strategy",
                f"{kind} routes traffic through a Service named after the app ({app!r}); the manifests render none",
                f"add a Service named {app!r} selecting the traffic workload",
            )
        )
    elif (
        plan.strategy.canary is not None
        and plan.strategy.canary.traffic_router == "gatewayAPI"
        and not (services[app].get("spec") or {}).get("ports")
    ):
        out.append(
            (
                "strategy.canary.trafficRouter",
                f"Service {app!r} declares no port; the HTTPRoute needs one",
                f"add spec.ports to Service {app!r}",
            )
        )
    return out


def query_issues(shown: str, field: str, source: str) -> Iterator[Issue]:
    try:
        unknown = undeclared_variables(source) - QUERY_VARIABLES
    except jinja2.TemplateSyntaxError as exc:
        yield Issue(shown, field, f"template syntax error: {exc.message}", "close every {{ ... }}")
        return
    for name in sorted(unknown):
        yield Issue(shown, field, f"unknown variable {name!r}", f"use only {', '.join(sorted(QUERY_VARIABLES))}")


def validation_identity(values: AppValues) -> ReleaseIdentity:
    return ReleaseIdentity(commit=VALIDATION_COMMIT, version=values.version)
