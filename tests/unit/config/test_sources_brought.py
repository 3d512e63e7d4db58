"""The checks on a chart's or an overlay tree's output that catch what a newcomer brings as is
(config/sources/release_image.py, selectors.py, argocd.py; the chart folder in config/schema.py):
pure functions on rendered documents, no tool needed."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from config.schema import HelmSource
from config.sources import argocd, release_image, selectors
from config.sources.common import Document


def deployment(image: str, name_label: str = "web", kind: str = "Deployment") -> Document:
    body: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": kind,
        "metadata": {"name": "web"},
        "spec": {
            "selector": {"matchLabels": {"app.kubernetes.io/name": name_label}},
            "template": {
                "metadata": {"labels": {"app.kubernetes.io/name": name_label}},
                "spec": {"containers": [{"name": "web", "image": image}]},
            },
        },
    }
    return Document("apps/web/chart/templates/deployment.yaml", 0, body)


def image_issues(images: list[str], kind: str = "helm", region_patch: bool = False) -> list[Any]:
    docs = [deployment(i) for i in images]
    return release_image.issues(
        docs, "registry.eu/shop/web:1.1.0", "shop/web", kind, "apps/web", region_patch=region_patch
    )


@pytest.mark.parametrize(
    ("image", "repository"),
    [
        ("shop/web:1.0", "shop/web"),
        ("registry.eu:5000/shop/web:1.0", "registry.eu:5000/shop/web"),
        ("shop/web@sha256:ab", "shop/web"),
        ("shop/web:1.0@sha256:ab", "shop/web"),
        ("nginx", "nginx"),
    ],
)
def test_the_repository_of_a_reference(image: str, repository: str) -> None:
    assert release_image.repository_of(image) == repository


def test_a_chart_image_at_another_tag_than_the_release_is_refused() -> None:
    [issue] = image_issues(["gcr.io/shop/web:1.0.0"])
    assert issue.field == "Deployment/web spec.template.spec.containers[0].image"
    assert "renders 'gcr.io/shop/web:1.0.0', but the release ships 'shop/web:1.1.0'" in issue.problem
    assert "{{ .Values.rollout.image }}" in issue.fix


def test_the_release_image_anywhere_or_only_another_registry_or_an_unpinned_image_is_not_refused() -> None:
    assert image_issues(["registry.eu/shop/web:1.1.0", "shop/web:1.0.0"]) == []  # a sidecar at its own tag
    assert image_issues(["shop/web:1.1.0"]) == []  # the release's tag, without the region's registry
    assert image_issues(["shop/web:latest"]) == []  # the render's image check reports it, with its fix
    assert image_issues(["mysql:8.4"]) == []  # another image: not the app's


def test_a_digest_set_without_the_tag_is_the_same_image() -> None:
    docs = [deployment("registry.eu/shop/web@sha256:ab")]
    assert release_image.issues(docs, "registry.eu/shop/web:1.1.0@sha256:ab", "shop/web", "helm", "apps/web") == []


def test_a_region_patch_that_sets_no_container_is_refused() -> None:
    [issue] = image_issues(["example.org/frontend:0.9"], kind="kustomize", region_patch=True)
    assert "the region patch sets the image named 'shop/web'" in issue.problem
    assert "it names 'example.org/frontend'" in issue.problem
    assert image_issues(["example.org/frontend:0.9"], kind="kustomize", region_patch=False) == []


def test_a_selector_on_another_app_name_is_refused_for_a_workload_and_a_service() -> None:
    service = Document(
        "apps/web/chart/templates/service.yaml",
        0,
        {"kind": "Service", "metadata": {"name": "s"}, "spec": {"selector": {"app.kubernetes.io/name": "webapp"}}},
    )
    found = selectors.issues([deployment("shop/web:1.0", name_label="webapp"), service], "web", "helm")
    assert [i.field for i in found] == [
        "Deployment/web spec.selector.matchLabels.app.kubernetes.io/name",
        "Service/s spec.selector.app.kubernetes.io/name",
    ]
    assert "refuse it" in found[0].problem and "select no pod" in found[1].problem
    assert "nameOverride: web" in found[0].fix
    assert "in the base" in selectors.issues([deployment("x:1", name_label="webapp")], "web", "kustomize")[0].fix
    assert selectors.issues([deployment("shop/web:1.0")], "web", "helm") == []


def test_a_selector_on_managed_by_helm_is_refused() -> None:
    doc = deployment("shop/web:1.0")
    doc.body["spec"]["selector"]["matchLabels"]["app.kubernetes.io/managed-by"] = "Helm"
    [issue] = selectors.issues([doc], "web", "helm")
    assert issue.field.endswith("app.kubernetes.io/managed-by")


def argo(annotations: dict[str, str]) -> Document:
    return Document("apps/web/base/job.yaml", 0, {"kind": "Job", "metadata": {"name": "m", "annotations": annotations}})


@pytest.mark.parametrize(
    ("value", "fix"),
    [
        ("PreSync", "rollout.dev/hook: pre-upgrade instead"),
        ("PostSync", "rollout.dev/hook: post-promote instead"),
        ("PreSync,PostSync", "rollout.dev/hook: pre-upgrade,post-promote instead"),
        ("SyncFail", "drop the annotation"),
    ],
)
def test_an_argo_cd_hook_is_refused_with_our_phase(value: str, fix: str) -> None:
    [issue] = argocd.issues([argo({"argocd.argoproj.io/hook": value})])
    assert issue.field == "Job/m metadata.annotations.argocd.argoproj.io/hook"
    assert fix in issue.fix


def test_an_argo_cd_hook_mapped_by_the_author_is_accepted() -> None:
    for ours in ("rollout.dev/hook", "helm.sh/hook"):
        assert argocd.issues([argo({"argocd.argoproj.io/hook": "PreSync", ours: "pre-upgrade"})]) == []


@pytest.mark.parametrize("chart", [".", "./", "./."])
def test_a_chart_at_the_apps_root_is_refused(chart: str) -> None:
    with pytest.raises(ValidationError, match="is the app's folder, whose values.yaml is the release's"):
        HelmSource.model_validate({"chart": chart})
    assert HelmSource.model_validate({"chart": "./chart"}).chart == "./chart"
