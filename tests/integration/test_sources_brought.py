"""Issue 13, a newcomer's first hour: charts and overlay trees brought as they are in the public
example repositories of the GitOps tools, rendered by the real pinned helm and kustomize. Each test
is a small fixture of the shape that tripped (none of those repositories' files): a `helm create`
chart selecting by its own name, a chart or a base keeping its own image, an Argo CD hook, a chart
at the app's root, a helm error with its --debug hint."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from config.hooks import hook_of
from config.identity import ReleaseIdentity
from config.loader import load_repository
from config.render import render
from tests.integration.test_sources_tools import (  # noqa: F401  (pinned_tools: the module's autouse fixture)
    CANARY_ONLY,
    COMMIT,
    DEPLOYMENT,
    helm_app,
    issues_of,
    kustomize_app,
    pinned_tools,
    repo,
    write,
)

pytestmark = pytest.mark.integration

# the shape of a `helm create` chart: objects named and selected after the chart, not the app
HELPERS = """{{- define "webapp.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- define "webapp.selectorLabels" -}}
app.kubernetes.io/name: {{ include "webapp.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}
"""
SCAFFOLD_DEPLOYMENT = """apiVersion: apps/v1
kind: Deployment
metadata: {name: {{ .Release.Name }}-webapp}
spec:
  selector:
    matchLabels:
      {{- include "webapp.selectorLabels" . | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "webapp.selectorLabels" . | nindent 8 }}
    spec:
      containers:
        - name: web
          image: IMAGE
"""
SCAFFOLD_SERVICE = """apiVersion: v1
kind: Service
metadata: {name: {{ .Release.Name }}-webapp}
spec:
  ports: [{port: 80}]
  selector:
    {{- include "webapp.selectorLabels" . | nindent 4 }}
"""
ROLLOUT_IMAGE = "{{ .Values.rollout.image }}"


def scaffold(root: Path, image: str = ROLLOUT_IMAGE, values: str = 'nameOverride: ""\n') -> None:
    helm_app(
        root,
        {
            "_helpers.tpl": HELPERS,
            "deployment.yaml": SCAFFOLD_DEPLOYMENT.replace("IMAGE", image),
            "service.yaml": SCAFFOLD_SERVICE,
        },
        values=values,
    )
    chart = root / "apps/web/chart/Chart.yaml"
    chart.write_text(chart.read_text().replace("name: web", "name: webapp"))


def test_a_helm_create_chart_selecting_by_its_own_name_is_refused_with_name_override_as_the_fix(repo: Path) -> None:  # noqa: F811
    scaffold(repo)
    issues = sorted(issues_of(repo), key=lambda i: i.file)
    assert [(i.file, i.field) for i in issues] == [
        (
            "apps/web/chart/templates/deployment.yaml",
            "Deployment/web-webapp spec.selector.matchLabels.app.kubernetes.io/name",
        ),
        ("apps/web/chart/templates/service.yaml", "Service/web-webapp spec.selector.app.kubernetes.io/name"),
    ]
    assert "selects app.kubernetes.io/name: webapp, but the controller labels every object" in issues[0].problem
    assert "API server would refuse it" in issues[0].problem and "select no pod" in issues[1].problem
    assert "set nameOverride: web in the chart's values.yaml" in issues[0].fix

    scaffold(repo, values="nameOverride: web\n")  # the fix the message gives
    rendered = render(load_repository(repo), "web", "eu-canary", ReleaseIdentity(COMMIT, "1.0.0"))
    deployment = next(o for o in rendered.objects if o["kind"] == "Deployment")
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()


def test_a_chart_keeping_its_own_image_is_refused_once_values_yaml_is_bumped(repo: Path) -> None:  # noqa: F811
    image = '"{{ .Values.image.repository }}:{{ .Values.image.tag }}"'
    helm_app(
        repo,
        {"deployment.yaml": DEPLOYMENT.replace("IMAGE", image)},
        values="image: {repository: shop/web, tag: 0.9.0}\n",
    )
    [issue] = issues_of(repo)
    assert (issue.file, issue.field) == (
        "apps/web/chart/templates/deployment.yaml",
        "Deployment/web spec.template.spec.containers[0].image",
    )
    assert "renders 'shop/web:0.9.0', but the release ships 'shop/web:1.0.0' (apps/web/values.yaml image)" in (
        issue.problem
    )
    assert "image: {{ .Values.rollout.image }}" in issue.fix

    helm_app(repo, {"deployment.yaml": DEPLOYMENT.replace("IMAGE", ROLLOUT_IMAGE)})  # the fix
    rendered = render(load_repository(repo), "web", "eu-canary", ReleaseIdentity(COMMIT, "1.0.0"))
    [deployment] = rendered.objects
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.eu.example.com/shop/web:1.0.0"


def kustomize_base(root: Path, image: str, extra: dict[str, str] | None = None) -> None:
    resources = ["deployment.yaml", *sorted(extra or {})]
    kustomize_app(
        root,
        {
            "overlays/eu-canary/kustomization.yaml": "resources: [../../base]\n",
            "base/kustomization.yaml": yaml.safe_dump({"resources": resources}),
            "base/deployment.yaml": DEPLOYMENT.replace("IMAGE", image),
            **{f"base/{name}": text for name, text in (extra or {}).items()},
        },
    )


def test_a_base_naming_its_image_otherwise_than_values_yaml_is_refused(repo: Path) -> None:  # noqa: F811
    kustomize_base(repo, "example.org/upstream/frontend:0.9.0")
    [issue] = issues_of(repo)
    assert (issue.file, issue.field) == (
        "apps/web/base/deployment.yaml",
        "Deployment/web spec.template.spec.containers[0].image",
    )
    assert "the region patch sets the image named 'shop/web'" in issue.problem
    assert "it names 'example.org/upstream/frontend'" in issue.problem
    assert "set image.repository in apps/web/values.yaml to the name the base uses" in issue.fix

    kustomize_base(repo, "shop/web:0.9.0")  # named as values.yaml says: the region patch sets it
    rendered = render(load_repository(repo), "web", "eu-canary", ReleaseIdentity(COMMIT, "1.0.0"))
    [deployment] = rendered.objects
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.eu.example.com/shop/web:1.0.0"


ARGO_JOB = """apiVersion: batch/v1
kind: Job
metadata:
  name: migrate
  annotations: {argocd.argoproj.io/hook: PreSync, argocd.argoproj.io/hook-delete-policy: HookSucceeded}
spec:
  template:
    spec:
      restartPolicy: Never
      containers: [{name: m, image: shop/web:1.0.0}]
"""


def test_an_argo_cd_hook_is_refused_with_the_phase_to_write_instead(repo: Path) -> None:  # noqa: F811
    kustomize_base(repo, "shop/web:1.0.0", {"migrate.yaml": ARGO_JOB})
    [issue] = issues_of(repo)
    assert (issue.file, issue.field) == (
        "apps/web/base/migrate.yaml",
        "Job/migrate metadata.annotations.argocd.argoproj.io/hook",
    )
    assert "Argo CD's hook annotation (PreSync), which this controller does not read" in issue.problem
    assert "annotate it rollout.dev/hook: pre-upgrade instead" in issue.fix

    mapped = ARGO_JOB.replace("annotations: {", "annotations: {rollout.dev/hook: pre-upgrade, ")  # the fix
    kustomize_base(repo, "shop/web:1.0.0", {"migrate.yaml": mapped})
    rendered = render(load_repository(repo), "web", "eu-canary", ReleaseIdentity(COMMIT, "1.0.0"))
    job = next(o for o in rendered.objects if o["kind"] == "Job")
    assert hook_of(job) is not None and hook_of(job).phases == ("pre-upgrade",)  # type: ignore[union-attr]


def test_a_chart_at_the_apps_root_is_refused_naming_the_clash_of_the_two_values_files(repo: Path) -> None:  # noqa: F811
    write(repo, {"rollout.yaml": yaml.safe_dump({**CANARY_ONLY, "source": {"helm": {"chart": "."}}})})
    write(repo, {"Chart.yaml": "apiVersion: v2\nname: web\nversion: 0.1.0\n"})
    issues = issues_of(repo)
    [issue] = [i for i in issues if i.file == "apps/web/rollout.yaml"]
    assert issue.field == "source.helm.chart"
    assert "'.' is the app's folder, whose values.yaml is the release's" in issue.problem
    assert "into apps/<app>/chart/ and write chart: chart" in issue.fix


def test_a_helm_error_names_the_file_without_dot_segments_or_the_debug_hint(repo: Path) -> None:  # noqa: F811
    helm_app(repo, {"deployment.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Values.a.b }}\n"})
    rollout = repo / "apps/web/rollout.yaml"
    rollout.write_text(rollout.read_text().replace("chart: chart", "chart: ./chart"))
    [issue] = issues_of(repo)
    assert (issue.file, issue.field) == ("apps/web/chart/templates/deployment.yaml", "line 4")
    assert "nil pointer" in issue.problem and "--debug" not in issue.problem
