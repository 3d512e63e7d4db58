"""Issue 13 item 5: a chart's hooks, rendered by the real pinned `helm template` (no cluster
needed), map onto the release's hook phases; test hooks are left out; a hook that is not a Job is
refused with the chart file's object named."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.hooks import hook_of
from config.identity import ReleaseIdentity
from config.loader import load_repository
from config.render import render
from strategies import hooks
from tests.integration.test_sources_tools import (  # noqa: F401  (pinned_tools: the module's autouse fixture)
    COMMIT,
    DEPLOYMENT,
    helm_app,
    issues_of,
    pinned_tools,
    repo,
)

pytestmark = pytest.mark.integration

IMAGE = "shop/web:1.0.0"


def hook(name: str, phases: str, kind: str = "Job") -> str:
    spec = (
        f"spec:\n  template:\n    spec:\n      restartPolicy: Never\n      containers: [{{name: c, image: {IMAGE}}}]\n"
        if kind == "Job"
        else "data: {a: b}\n"
    )
    api = "batch/v1" if kind == "Job" else "v1"
    return (
        f"apiVersion: {api}\nkind: {kind}\nmetadata:\n  name: {name}\n"
        f'  annotations: {{"helm.sh/hook": "{phases}", "helm.sh/hook-weight": "0"}}\n{spec}'
    )


def test_chart_hooks_map_onto_release_phases(repo: Path) -> None:  # noqa: F811
    helm_app(
        repo,
        {
            "deployment.yaml": DEPLOYMENT.replace("IMAGE", IMAGE),
            "backup.yaml": hook("db-backup", "pre-install,pre-upgrade,pre-rollback"),
            "notify.yaml": hook("notify", "post-install,post-upgrade"),
            "tests/test.yaml": hook("smoke", "test"),
        },
    )
    rendered = render(load_repository(repo), "web", "eu-canary", ReleaseIdentity(COMMIT, "1.0.0"))
    names = sorted(o["metadata"]["name"] for o in rendered.objects)
    assert names == ["db-backup", "notify", "web"]  # --skip-tests: the test hook is not rendered
    split = hooks.split(rendered)
    assert [o["metadata"]["name"] for o in split.objects] == ["web"]
    phases = {o["metadata"]["name"]: hook_of(o).phases for o in split.hooks}  # type: ignore[union-attr]
    assert phases == {"db-backup": ("pre-upgrade", "pre-rollback"), "notify": ("post-promote",)}
    backup = next(o for o in split.hooks if o["metadata"]["name"] == "db-backup")
    assert backup["metadata"]["labels"]["rollout.dev/region"] == "eu-canary"  # identity stamped like the rest


def test_a_chart_hook_that_is_not_a_job_is_refused(repo: Path) -> None:  # noqa: F811
    helm_app(
        repo,
        {
            "deployment.yaml": DEPLOYMENT.replace("IMAGE", IMAGE),
            "config.yaml": hook("hook-config", "pre-install", kind="ConfigMap"),
        },
    )
    [issue] = issues_of(repo)
    assert issue.field.startswith("ConfigMap/hook-config metadata.annotations.helm.sh/hook")
    assert "a hook must be a Job, not a ConfigMap" in issue.problem and "Job" in issue.fix
