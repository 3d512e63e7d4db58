"""Helm and Kustomize sources with the real, pinned binaries (deploy/tools/build.sh builds them; no
cluster is needed): the example apps render per region with the identity labels, and every
refusal of docs/repository.md comes back as a validation issue with its message."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from config import sources
from config.errors import InvalidRepository, Issue
from config.hooks import hook_of
from config.identity import ReleaseIdentity
from config.loader import load_repository
from config.render import render
from config.sources import tools
from rollout.cli import main
from tests.conftest import EXAMPLE

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
COMMIT = "5e1f0c2d9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d"
CANARY_ONLY = {
    "app": "web",
    "owner": {"team": "t", "contact": "c"},
    "playbook": "https://runbooks.example.com/w",
    "strategy": {"rolling": {}},
    "waves": [{"name": "canary", "regions": ["eu-canary"], "smokeWindow": "1m"}],
}
DEPLOYMENT = """apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector: {matchLabels: {app.kubernetes.io/name: web}}
  template:
    metadata: {labels: {app.kubernetes.io/name: web}}
    spec: {containers: [{name: web, image: IMAGE}]}
"""


@pytest.fixture(scope="module", autouse=True)
def pinned_tools() -> None:
    """The pinned binaries, built (or found cached) the way deploy/setup.sh does."""
    build = subprocess.run(
        ["bash", str(REPO / "deploy" / "tools" / "build.sh")], capture_output=True, text=True, timeout=3600, check=False
    )
    assert build.returncode == 0, build.stdout + build.stderr
    assert tools.reported_version("helm") == tools.HELM_VERSION
    assert tools.reported_version("kustomize") == tools.KUSTOMIZE_VERSION


@pytest.fixture(scope="module")
def shop() -> object:
    return load_repository(EXAMPLE)


def deployment(rendered: object) -> dict:
    return next(o for o in rendered.objects if o["kind"] == "Deployment")  # type: ignore[attr-defined]


def env(dep: dict) -> dict[str, str]:
    return {e["name"]: e["value"] for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}


# --- the examples -------------------------------------------------------------------------------------


def test_the_helm_example_differs_per_region_and_carries_the_identity(shop: object) -> None:
    identity = ReleaseIdentity(COMMIT, "2.1.0", track="canary")
    east, west = (render(shop, "reviews", region, identity) for region in ("ap-east", "eu-west"))  # type: ignore[arg-type]
    assert (deployment(east)["spec"]["replicas"], deployment(west)["spec"]["replicas"]) == (3, 2)
    assert (env(deployment(east))["RATING_SCALE"], env(deployment(west))["RATING_SCALE"]) == ("10", "5")
    assert (
        deployment(west)["spec"]["template"]["spec"]["containers"][0]["image"]
        == "registry.eu.example.com/shop/reviews:2.1.0"
    )
    labels = {
        "app.kubernetes.io/name": "reviews",
        "app.kubernetes.io/version": "2.1.0",
        "app.kubernetes.io/managed-by": "regional-rollout",
        "rollout.dev/track": "canary",
        "rollout.dev/release": COMMIT[:12],
        "rollout.dev/region": "eu-west",
    }
    assert sorted(o["kind"] for o in west.objects) == ["Deployment", "Job", "Service"]
    [flush] = [o for o in west.objects if o["kind"] == "Job"]  # the chart's pre-rollback hook
    assert hook_of(flush) is not None and hook_of(flush).phases == ("pre-rollback",)  # type: ignore[union-attr]
    for obj in west.objects:
        assert labels.items() <= obj["metadata"]["labels"].items()
        assert obj["metadata"]["namespace"] == "reviews"
        assert obj["metadata"]["annotations"]["rollout.dev/commit"] == COMMIT
    assert labels.items() <= deployment(west)["spec"]["template"]["metadata"]["labels"].items()
    assert deployment(west)["spec"]["selector"]["matchLabels"] == {"app.kubernetes.io/name": "reviews"}
    sources.forget()  # run helm again: the bytes are the tool's, not the cache's
    assert west.to_yaml() == render(shop, "reviews", "eu-west", identity).to_yaml()  # type: ignore[arg-type]


def test_the_kustomize_example_differs_per_region_and_carries_the_identity(shop: object) -> None:
    identity = ReleaseIdentity(COMMIT, "1.8.0")
    us, eu = (render(shop, "inventory", region, identity) for region in ("us-east", "eu-west"))  # type: ignore[arg-type]
    assert (env(deployment(us))["STOCK_SOURCE"], env(deployment(eu))["STOCK_SOURCE"]) == (
        "us-warehouse",
        "eu-warehouse",
    )
    assert (
        deployment(eu)["spec"]["template"]["spec"]["containers"][0]["image"]
        == "registry.eu.example.com/shop/inventory:1.8.0"
    )
    assert deployment(eu)["spec"]["replicas"] == 2  # the region's replicas param, by the region patch
    for obj in eu.objects:
        assert obj["metadata"]["labels"]["rollout.dev/region"] == "eu-west"
        assert obj["metadata"]["labels"]["app.kubernetes.io/version"] == "1.8.0"
    sources.forget()
    assert eu.to_yaml() == render(shop, "inventory", "eu-west", identity).to_yaml()  # type: ignore[arg-type]


def test_validate_and_render_work_the_same_for_all_sources() -> None:
    runner = CliRunner()
    assert runner.invoke(main, ["validate", str(EXAMPLE)]).exit_code == 0
    for app, region, words in (("reviews", "us-east", "replicas: 4"), ("inventory", "ap-east", "ap-warehouse")):
        result = runner.invoke(main, ["render", str(EXAMPLE), app, region])
        assert result.exit_code == 0, result.output
        assert words in result.output and f"rollout.dev/region: {region}" in result.output
    version = runner.invoke(main, ["version"])
    assert version.exit_code == 0, version.output
    assert f"helm: {tools.HELM_VERSION}" in version.output and f"kustomize: {tools.KUSTOMIZE_VERSION}" in version.output


# --- refusals -------------------------------------------------------------------------------------


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[Path]:
    (tmp_path / "regions").mkdir()
    shutil.copy(EXAMPLE / "regions" / "eu-canary.yaml", tmp_path / "regions")
    (tmp_path / "apps" / "web").mkdir(parents=True)
    (tmp_path / "apps" / "web" / "values.yaml").write_text(
        "version: 1.0.0\nimage: {repository: shop/web, tag: '1.0.0'}\n"
    )
    yield tmp_path


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / "apps" / "web" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def helm_app(root: Path, templates: dict[str, str], chart_extra: str = "", values: str = "{}\n") -> None:
    write(
        root,
        {
            "rollout.yaml": yaml.safe_dump({**CANARY_ONLY, "source": {"helm": {"chart": "chart"}}}),
            "chart/Chart.yaml": f"apiVersion: v2\nname: web\nversion: 0.1.0\n{chart_extra}",
            "chart/values.yaml": values,
            **{f"chart/templates/{name}": text for name, text in templates.items()},
        },
    )


def kustomize_app(root: Path, files: dict[str, str]) -> None:
    source = {"kustomize": {"path": "overlays/{region}"}}
    write(root, {"rollout.yaml": yaml.safe_dump({**CANARY_ONLY, "source": source}), **files})


def issues_of(root: Path) -> list[Issue]:
    with pytest.raises(InvalidRepository) as invalid:
        load_repository(root)
    return invalid.value.issues


def test_a_kustomize_remote_base_is_refused(repo: Path) -> None:
    kustomize_app(
        repo,
        {
            "overlays/eu-canary/kustomization.yaml": "resources:\n  - https://github.com/kubernetes-sigs/kustomize//examples/helloWorld?ref=v5.8.2\n"
        },
    )
    [issue] = issues_of(repo)
    assert (issue.file, issue.field) == ("apps/web/overlays/eu-canary/kustomization.yaml", "resources[0]")
    assert "is a remote base or resource; the controller renders without network" in issue.problem


def test_an_overlay_escaping_the_app_folder_through_dotdot_is_refused(repo: Path) -> None:
    (repo / "shared").mkdir()
    (repo / "shared" / "kustomization.yaml").write_text("resources: []\n")
    kustomize_app(repo, {"overlays/eu-canary/kustomization.yaml": "resources: [../../../../shared]\n"})
    [issue] = issues_of(repo)
    assert (issue.file, issue.field) == ("apps/web/overlays/eu-canary/kustomization.yaml", "resources[0]")
    assert "'../../../../shared' leaves the app's folder" in issue.problem


def test_an_overlay_escaping_the_app_folder_through_a_symlink_is_refused(repo: Path) -> None:
    (repo / "outside.yaml").write_text(DEPLOYMENT.replace("IMAGE", "shop/web:1.0.0"))
    kustomize_app(repo, {"overlays/eu-canary/kustomization.yaml": "resources: [deployment.yaml]\n"})
    (repo / "apps" / "web" / "overlays" / "eu-canary" / "deployment.yaml").symlink_to(repo / "outside.yaml")
    [issue] = issues_of(repo)
    assert issue.file == "apps/web/overlays/eu-canary/deployment.yaml"
    assert "is a symlink leading outside apps/web/" in issue.problem


def test_a_kustomize_error_points_at_the_file_it_is_about(repo: Path) -> None:
    kustomize_app(
        repo,
        {
            "overlays/eu-canary/kustomization.yaml": "resources: [deployment.yaml]\n",
            "overlays/eu-canary/deployment.yaml": "apiVersion: apps/v1\nkind: Deployment\nspec: {}\n",
        },
    )
    [issue] = issues_of(repo)
    assert issue.file == "apps/web/overlays/eu-canary/deployment.yaml"  # the resource without a name
    assert "kustomize build failed" in issue.problem and "/tmp/" not in issue.problem
    assert "'apps/web/overlays/eu-canary'" in issue.problem  # and the kustomization that includes it


def test_a_yaml_error_in_a_kustomization_or_a_patch_names_the_file_and_the_line(repo: Path) -> None:
    kustomize_app(
        repo,
        {
            "overlays/eu-canary/kustomization.yaml": "resources: [deployment.yaml]\npatches:\n  - path: patch.yaml\n",
            "overlays/eu-canary/deployment.yaml": DEPLOYMENT.replace("IMAGE", "shop/web:1.0.0"),
            "overlays/eu-canary/patch.yaml": "kind: Deployment\nmetadata:\n  name: web\n  x: : y\n",
        },
    )
    [issue] = issues_of(repo)
    assert (issue.file, issue.field) == ("apps/web/overlays/eu-canary/patch.yaml", "line 4")
    assert "is not valid YAML: mapping values are not allowed in this context" in issue.problem
    (repo / "apps/web/overlays/eu-canary/kustomization.yaml").write_text("resources:\n  - deployment.yaml\n bad: [\n")
    [issue] = issues_of(repo)
    assert (issue.file, issue.field) == ("apps/web/overlays/eu-canary/kustomization.yaml", "line 3")


def test_a_kustomize_error_in_a_base_names_the_base_file_and_an_unknown_field_its_line(repo: Path) -> None:
    kustomize_app(
        repo,
        {
            "base/kustomization.yaml": "resources: [deployment.yaml]\n",
            "base/deployment.yaml": "apiVersion: apps/v1\nkind: Deployment\nspec: {}\n",
            "overlays/eu-canary/kustomization.yaml": "resources: [../../base]\n",
        },
    )
    [issue] = issues_of(repo)
    assert issue.file == "apps/web/base/deployment.yaml"
    assert "missing metadata.name" in issue.problem and "/tmp/" not in issue.problem
    (repo / "apps/web/base/deployment.yaml").write_text(DEPLOYMENT.replace("IMAGE", "shop/web:1.0.0"))
    (repo / "apps/web/overlays/eu-canary/kustomization.yaml").write_text("resources: [../../base]\nnotAField: 1\n")
    [issue] = issues_of(repo)
    assert (issue.file, issue.field) == ("apps/web/overlays/eu-canary/kustomization.yaml", "line 2")
    assert 'unknown field "notAField"' in issue.problem


def test_an_unpinned_image_in_a_kustomize_base_points_at_the_base_file(repo: Path) -> None:
    write(
        repo,
        {
            "rollout.yaml": yaml.safe_dump({**CANARY_ONLY, "source": {"kustomize": {"regionPatch": False}}}),
            "base/kustomization.yaml": "resources: [deployment.yaml]\n",
            "base/deployment.yaml": DEPLOYMENT.replace("IMAGE", "shop/web"),
            "overlays/eu-canary/kustomization.yaml": "resources: [../../base]\n",
        },
    )
    [issue] = issues_of(repo)
    assert (issue.file, issue.field) == (
        "apps/web/base/deployment.yaml",
        "document[0].spec.template.spec.containers[0].image",
    )
    assert "'shop/web' has no tag or digest" in issue.problem


def test_a_helm_dependency_not_vendored_is_refused(repo: Path) -> None:
    helm_app(repo, {}, "dependencies:\n  - {name: redis, version: 19.0.0, repository: https://charts.example.com}\n")
    [issue] = issues_of(repo)
    assert (issue.file, issue.field) == ("apps/web/chart/Chart.yaml", "dependencies[0]")
    assert "'redis' is not vendored under charts/" in issue.problem


def test_a_chart_using_lookup_is_refused(repo: Path) -> None:
    helm_app(
        repo,
        {
            "cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n"
            'data: {n: {{ len (lookup "v1" "Namespace" "" "") | quote }}}\n'
        },
    )
    [issue] = issues_of(repo)
    assert (issue.file, issue.field) == ("apps/web/chart/templates/cm.yaml", "line 4")
    assert "calls lookup" in issue.problem


def test_a_template_that_loops_for_ever_is_stopped_at_the_time_limit(repo: Path) -> None:
    loop = "{{ range until 100000 }}{{ range until 100000 }}{{ range until 100000 }}{{ end }}{{ end }}{{ end }}\n"
    helm_app(repo, {"loop.yaml": loop})  # 10^15 iterations over small lists: time, not memory
    with tools.limits(wall_seconds=3.0):
        [issue] = issues_of(repo)
    assert issue.file == "apps/web/chart" and "helm exceeded 3 s of wall-clock time" in issue.problem


def test_a_chart_rendering_50_mb_is_stopped_at_the_output_limit(repo: Path) -> None:
    helm_app(
        repo,
        {
            "big.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: big}\n"
            'data: {blob: {{ repeat 52428800 "x" | quote }}}\n'
        },
    )
    with tools.limits(wall_seconds=60.0):
        [issue] = issues_of(repo)
    assert "helm exceeded 16 MiB of output" in issue.problem


def test_an_unpinned_image_from_a_chart_default_values_is_refused(repo: Path) -> None:
    image = '"{{ .Values.image.repository }}:{{ .Values.image.tag }}"'
    helm_app(
        repo,
        {"deployment.yaml": DEPLOYMENT.replace("IMAGE", image)},
        values="image: {repository: nginx, tag: latest}\n",
    )
    [issue] = issues_of(repo)
    assert (issue.file, issue.field) == (
        "apps/web/chart/templates/deployment.yaml",
        "document[0].spec.template.spec.containers[0].image",
    )
    assert "'nginx:latest' uses the moving tag 'latest'" in issue.problem


def test_a_helm_template_error_points_at_the_chart_file_and_line(repo: Path) -> None:
    helm_app(
        repo, {"deployment.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Values.missing.name }}\n"}
    )
    [issue] = issues_of(repo)
    assert (issue.file, issue.field) == ("apps/web/chart/templates/deployment.yaml", "line 4")
    assert "nil pointer" in issue.problem


def test_a_helm_error_in_a_helper_names_the_helper_and_its_line(repo: Path) -> None:
    helm_app(
        repo,
        {
            "_helpers.tpl": '{{- define "web.name" -}}\n{{ .Values.a.b }}\n{{- end }}\n',
            "cm.yaml": 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ include "web.name" . }}\n',
        },
    )
    [issue] = issues_of(repo)
    assert (issue.file, issue.field) == ("apps/web/chart/templates/_helpers.tpl", "line 2")
    assert "web/templates/cm.yaml:4" in issue.problem  # the template that included it is in the message


def test_yaml_errors_of_a_chart_name_the_file_and_the_line(repo: Path) -> None:
    configmap = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n  a: b\n   c: d\n"
    helm_app(repo, {"cm.yaml": configmap})
    [issue] = issues_of(repo)  # helm finds it in the template's output
    assert (issue.file, issue.field) == ("apps/web/chart/templates/cm.yaml", "rendered line 7")
    helm_app(repo, {"cm.yaml": configmap.replace("   c: d\n", "")}, values="a: 1\nb: [1\n")
    [issue] = issues_of(repo)  # ours, before helm runs
    assert (issue.file, issue.field) == ("apps/web/chart/values.yaml", "line 3")
    assert "is not valid YAML" in issue.problem


def test_the_tools_have_no_cluster_and_no_network(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Even past the checks: the Capabilities are the built-in defaults, no kubeconfig is read."""
    monkeypatch.setenv("KUBECONFIG", str(repo / "kubeconfig-that-would-leak"))
    helm_app(
        repo,
        {
            "cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n"
            "data: {kube: {{ .Capabilities.KubeVersion.Version | quote }}}\n"
        },
    )
    rendered = render(load_repository(repo), "web", "eu-canary", ReleaseIdentity(COMMIT, "1.0.0"))
    assert rendered.objects[0]["data"]["kube"].startswith("v1.")


def test_the_memory_limit_applies_to_the_tool(repo: Path) -> None:
    """RLIMIT_AS reaches the helm process: under 256 MiB of address space the Go runtime cannot start."""
    helm_app(repo, {"cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n"})
    with tools.limits(memory_bytes=256 * 1024 * 1024):
        [issue] = issues_of(repo)
    assert "helm exceeded 256 MiB of memory" in issue.problem
