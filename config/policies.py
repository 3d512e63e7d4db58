"""Policies that span files: waves against regions, analysis references, queries, and a dry
render of every app in every region it reaches (templates, images, well-formed objects)."""

from __future__ import annotations

from collections.abc import Iterator

import jinja2

from config.defaults import DEFAULT_CHECKS
from config.errors import Issue
from config.identity import ReleaseIdentity
from config.render import RenderFailed, render_many
from config.repository import AppSource, Repository
from config.schema import AppValues
from config.templating import QUERY_VARIABLES, undeclared_variables
from config.waves import plan_waves, wave_problems

VALIDATION_COMMIT = "0" * 40  # validation renders with a placeholder identity


def repository_issues(repo: Repository) -> list[Issue]:
    issues: list[Issue] = []
    for app in repo.apps.values():
        issues += app_issues(repo, app)
    return issues


def app_issues(repo: Repository, app: AppSource) -> list[Issue]:
    plan_file = repo.relative(app.directory / "rollout.yaml")
    values_file = repo.relative(app.directory / "values.yaml")
    problems = wave_problems(app.plan, repo.regions)
    issues = [Issue(plan_file, p.field, p.problem, p.fix) for p in problems]
    issues += list(_analysis_issues(plan_file, app))
    issues += [Issue(values_file, f"regionOverrides.{name}", f"unknown region {name!r}",
                     f"use one of {', '.join(sorted(repo.regions))}")
               for name in app.values.region_overrides if name not in repo.regions]
    if not problems:
        issues += _render_issues(repo, app)
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
    for result in render_many(repo, app.name, regions, identity).values():  # one sandbox child per app
        if isinstance(result, RenderFailed):
            issues.update(result.issues)
    return sorted(issues)


def query_issues(shown: str, field: str, source: str) -> Iterator[Issue]:
    try:
        unknown = undeclared_variables(source) - QUERY_VARIABLES
    except jinja2.TemplateSyntaxError as exc:
        yield Issue(shown, field, f"template syntax error: {exc.message}", "close every {{ ... }}")
        return
    for name in sorted(unknown):
        yield Issue(shown, field, f"unknown variable {name!r}",
                    f"use only {', '.join(sorted(QUERY_VARIABLES))}")


def validation_identity(values: AppValues) -> ReleaseIdentity:
    return ReleaseIdentity(commit=VALIDATION_COMMIT, version=values.version)
