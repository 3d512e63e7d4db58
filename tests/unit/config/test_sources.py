"""The pure parts of the Helm and Kustomize sources: the plan's `source`, the refusals made before a
tool runs, the private copy of the app's folder, the pins and the tool runner's limits (with a
stand-in script: the real binaries are exercised in tests/integration/test_sources_tools.py)."""

from __future__ import annotations

import io
import re
import tarfile
from pathlib import Path

import pytest
import yaml

from config.errors import Issue
from config.loader import parse_model
from config.schema import Plan, Region, Source
from config.sources import confine, helm, kustomize, tools
from config.sources.common import load_all, substitute

REPO = Path(__file__).resolve().parents[3]
PLAN = {
    "app": "web",
    "owner": {"team": "t", "contact": "c"},
    "playbook": "https://x",
    "strategy": {"rolling": {}},
    "waves": [{"name": "all", "regions": ["eu"], "smokeWindow": "1m"}],
}


def plan_issues(source: object) -> list[Issue]:
    issues: list[Issue] = []
    parse_model(Plan, {**PLAN, "source": source}, "apps/web/rollout.yaml", issues)
    return issues


# --- the plan's source ------------------------------------------------------------------------


def test_the_default_source_is_the_jinja_templates() -> None:
    plan = Plan.model_validate(PLAN)
    assert plan.source.kind == "jinja"


def test_helm_and_kustomize_sources_parse_with_their_defaults() -> None:
    helm_source = Source.model_validate({"helm": {"valuesFiles": ["values/{region}.yaml"]}})
    assert helm_source.kind == "helm" and helm_source.helm is not None
    assert helm_source.helm.chart == "chart" and helm_source.helm.values_files == ["values/{region}.yaml"]
    kustomize_source = Source.model_validate({"kustomize": {}})
    assert kustomize_source.kind == "kustomize" and kustomize_source.kustomize is not None
    assert kustomize_source.kustomize.path == "overlays/{region}" and kustomize_source.kustomize.region_patch


@pytest.mark.parametrize(
    ("source", "field", "words"),
    [
        ({"helm": {"chart": "chart", "valueFiles": []}}, "source.helm.valueFiles", "Extra inputs are not permitted"),
        ({"helm": {}, "kustomize": {}}, "source", "helm and kustomize source given"),
        ({}, "source", "no source given"),
        ({"kustomize": {"path": "../other/overlays"}}, "source.kustomize.path", "leaves the app folder"),
        ({"helm": {"chart": "/srv/chart"}}, "source.helm.chart", "leaves the app folder"),
        ({"helm": {"valuesFiles": ["values/{zone}.yaml"]}}, "source.helm.valuesFiles[0]", "unknown placeholder"),
    ],
)
def test_a_bad_source_is_refused_naming_the_field_and_the_fix(source: object, field: str, words: str) -> None:
    issues = plan_issues(source)
    assert [i.field for i in issues] == [field], issues
    assert words in issues[0].problem and issues[0].fix


def test_placeholders_are_filled_per_region() -> None:
    region = Region.model_validate({"name": "eu-west", "cluster": "c", "tier": "low", "trafficShare": 0.1})
    assert substitute("overlays/{tier}/{region}", region) == "overlays/low/eu-west"


# --- the pins -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tool", "module"), [("helm", "helm.sh/helm/v3"), ("kustomize", "sigs.k8s.io/kustomize/kustomize/v5")]
)
def test_the_pins_agree_with_the_go_modules_the_build_uses(tool: str, module: str) -> None:
    gomod = (REPO / "deploy" / "tools" / tool / "go.mod").read_text()
    assert re.search(rf"^(require )?\s*{re.escape(module)} {re.escape(tools.VERSIONS[tool])}$", gomod, re.M)
    assert (REPO / "deploy" / "tools" / tool / "go.sum").is_file()


def test_kustomize_stays_on_an_api_that_builds_with_go_1_26() -> None:
    gomod = (REPO / "deploy" / "tools" / "kustomize" / "go.mod").read_text()
    api = re.search(r"sigs.k8s.io/kustomize/api v0\.(\d+)\.(\d+)", gomod)
    assert api is not None and (int(api.group(1)), int(api.group(2))) <= (21, 2)  # v0.21.3 needs Go 1.27


# --- helm: refused before helm runs ---------------------------------------------------------------


CHART = "apiVersion: v2\nname: web\nversion: 0.1.0\n"


def chart(tmp_path: Path, templates: dict[str, str], chart_yaml: str = CHART) -> Path:
    folder = tmp_path / "chart"
    (folder / "templates").mkdir(parents=True)
    (folder / "Chart.yaml").write_text(chart_yaml)
    (folder / "values.yaml").write_text("{}\n")
    for name, text in templates.items():
        (folder / "templates" / name).write_text(text)
    return folder


def test_a_chart_calling_lookup_is_refused_at_its_line(tmp_path: Path) -> None:
    template = 'kind: Secret\ndata:\n  key: {{ (lookup "v1" "Secret" "ns" "s").data }}\n'
    folder = chart(tmp_path, {"secret.yaml": template})
    issues = helm.chart_issues(folder, "apps/web/chart")
    assert [(i.file, i.field) for i in issues] == [("apps/web/chart/templates/secret.yaml", "line 3")]
    assert "calls lookup, which reads the live cluster" in issues[0].problem
    assert "values" in issues[0].fix


@pytest.mark.parametrize(
    "action", ["{{ randAlphaNum 16 }}", '{{ now | date "2006" }}', "{{- uuidv4 }}", '{{ genCA "x" 365 }}']
)
def test_a_template_whose_output_changes_on_every_render_is_refused(tmp_path: Path, action: str) -> None:
    issues = helm.template_issues(f"a: 1\nb: {action}\n", "apps/web/chart/templates/x.yaml")
    assert len(issues) == 1 and issues[0].field == "line 2"
    assert "differs on every render" in issues[0].problem


@pytest.mark.parametrize(
    "text",
    ["{{ .Values.lookup }}", '{{ "lookup now" }}', "{{/* lookup is not used */}}", "lookup: now", "{{ $.Values.now }}"],
)
def test_words_that_are_not_calls_are_not_refused(text: str) -> None:
    assert helm.template_issues(text, "x.yaml") == []


def test_a_dependency_not_vendored_under_charts_is_refused(tmp_path: Path) -> None:
    folder = chart(
        tmp_path,
        {},
        "apiVersion: v2\nname: web\nversion: 0.1.0\ndependencies:\n"
        "  - name: redis\n    version: 19.0.0\n    repository: https://charts.example.com\n",
    )
    issues = helm.chart_issues(folder, "apps/web/chart")
    assert [(i.file, i.field) for i in issues] == [("apps/web/chart/Chart.yaml", "dependencies[0]")]
    assert "'redis' is not vendored under charts/" in issues[0].problem
    assert "helm dependency build apps/web/chart" in issues[0].fix


def test_vendored_dependencies_folder_or_packaged_are_accepted_and_checked(tmp_path: Path) -> None:
    folder = chart(
        tmp_path,
        {},
        "apiVersion: v2\nname: web\nversion: 0.1.0\ndependencies:\n"
        "  - {name: redis, version: 1.0.0}\n  - {name: cache, version: 1.0.0}\n",
    )
    sub = folder / "charts" / "redis"
    (sub / "templates").mkdir(parents=True)
    (sub / "Chart.yaml").write_text("apiVersion: v2\nname: redis\nversion: 1.0.0\n")
    (sub / "templates" / "x.yaml").write_text('a: {{ lookup "v1" "Pod" "" "" }}\n')
    packaged = io.BytesIO()
    with tarfile.open(fileobj=packaged, mode="w:gz") as archive:
        for name, text in (
            ("cache/Chart.yaml", "apiVersion: v2\nname: cache\nversion: 1.0.0\n"),
            ("cache/templates/y.yaml", "b: {{ randAlpha 3 }}\n"),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(text)
            archive.addfile(info, io.BytesIO(text.encode()))
    (folder / "charts" / "cache-1.0.0.tgz").write_bytes(packaged.getvalue())
    issues = helm.chart_issues(folder, "apps/web/chart")
    assert [(i.file, i.field) for i in issues] == [
        ("apps/web/chart/charts/cache-1.0.0.tgz:cache/templates/y.yaml", "line 1"),
        ("apps/web/chart/charts/redis/templates/x.yaml", "line 1"),
    ]


def test_a_missing_chart_and_a_missing_values_file_name_the_fix(tmp_path: Path) -> None:
    assert "has no Chart.yaml" in helm.chart_issues(tmp_path / "nope", "apps/web/nope")[0].problem
    source = Source.model_validate({"helm": {"valuesFiles": ["values/eu.yaml"]}}).helm
    assert source is not None
    found, issues = helm.values_files(source, ["values/eu.yaml"], tmp_path, "apps/web", "apps/web/rollout.yaml")
    assert found == [] and issues[0].field == "source.helm.valuesFiles[0]"
    assert "ignoreMissingValuesFiles" in issues[0].fix


def test_helm_errors_point_at_the_chart_file_and_line() -> None:
    issue = helm.error_issue(
        "Error: template: web/templates/deployment.yaml:12:20: executing "
        '"web/templates/deployment.yaml" at <.Values.x.y>: nil pointer evaluating',
        "apps/web/chart",
        "/tmp/r",
        "apps/web",
    )
    assert (issue.file, issue.field) == ("apps/web/chart/templates/deployment.yaml", "line 12")
    issue = helm.error_issue(
        'Error: parse error at (web/templates/svc.yaml:3): function "nope" not defined',
        "apps/web/chart",
        "/tmp/r",
        "apps/web",
    )
    assert (issue.file, issue.field) == ("apps/web/chart/templates/svc.yaml", "line 3")
    issue = helm.error_issue(
        "Error: YAML parse error on web/templates/svc.yaml: error converting YAML to JSON",
        "apps/web/chart",
        "/tmp/r",
        "apps/web",
    )
    assert issue.file == "apps/web/chart/templates/svc.yaml"


def test_a_helm_error_names_the_innermost_file_and_a_rendered_yaml_error_its_line() -> None:
    issue = helm.error_issue(
        'Error: template: web/templates/cm.yaml:4:11: executing "web/templates/cm.yaml" at <include "web.n" .>: '
        'error calling include: template: web/templates/_helpers.tpl:2:10: executing "web.n" at <.Values.a.b>: '
        "nil pointer evaluating interface {}.b",
        "apps/web/chart",
        "/tmp/r",
        "apps/web",
    )
    assert (issue.file, issue.field) == ("apps/web/chart/templates/_helpers.tpl", "line 2")
    issue = helm.error_issue(
        "Error: YAML parse error on web/templates/cm.yaml: error converting YAML to JSON: yaml: line 7: "
        "mapping values are not allowed in this context",
        "apps/web/chart",
        "/tmp/r",
        "apps/web",
    )
    assert (issue.file, issue.field) == ("apps/web/chart/templates/cm.yaml", "rendered line 7")


def test_a_kustomize_error_names_the_innermost_file_the_message_names(tmp_path: Path) -> None:
    app = tree(
        tmp_path,
        {
            "base/kustomization.yaml": "resources: [deployment.yaml]\n",
            "overlays/eu/kustomization.yaml": "resources: [../../base]\nnotAField: 1\n",
        },
    )
    scratch = "/tmp/kustomize-123"
    nested = (
        "Error: accumulating resources: accumulation err='accumulating resources from 'app/overlays/eu': "
        "'/tmp/kustomize-123/app/overlays/eu' must resolve to a file': recursed accumulation of path "
        "'/tmp/kustomize-123/app/overlays/eu': accumulating resources: recursed accumulation of path "
        "'/tmp/kustomize-123/app/base': accumulating resources: accumulation err='accumulating resources from "
        "'deployment.yaml': missing metadata.name in object': must build at directory: "
        "'/tmp/kustomize-123/app/base/deployment.yaml': file is not directory"
    )
    issue = kustomize.error_issue(nested, "apps/web/overlays/eu/kustomization.yaml", scratch, "apps/web", app)
    assert issue.file == "apps/web/base/deployment.yaml"
    assert "must resolve to a file" not in issue.problem and "/tmp/" not in issue.problem
    unknown = (
        "Error: accumulating resources: couldn't make target for path '/tmp/kustomize-123/app/overlays/eu': "
        'invalid Kustomization: json: unknown field "notAField"'
    )
    issue = kustomize.error_issue(unknown, "apps/web/overlays/eu/kustomization.yaml", scratch, "apps/web", app)
    assert (issue.file, issue.field) == ("apps/web/overlays/eu/kustomization.yaml", "line 2")
    malformed = (
        "Error: accumulating resources: recursed accumulation of path '/tmp/kustomize-123/app/overlays/eu': "
        "accumulating resources from 'svc.yaml': MalformedYAMLError: yaml: line 5: mapping values are not "
        "allowed in this context in File: svc.yaml"
    )
    issue = kustomize.error_issue(malformed, "apps/web/overlays/eu/kustomization.yaml", scratch, "apps/web", app)
    assert (issue.file, issue.field) == ("apps/web/overlays/eu/svc.yaml", "line 5")


def test_yaml_syntax_errors_in_a_kustomization_or_a_patch_carry_the_line(tmp_path: Path) -> None:
    app = tree(
        tmp_path,
        {
            "base/kustomization.yaml": "resources:\n  - deployment.yaml\n bad: [\n",
            "base/deployment.yaml": "kind: Deployment\n",
            "overlays/eu/kustomization.yaml": "resources: [../../base]\npatches:\n  - path: patch.yaml\n",
            "overlays/eu/patch.yaml": "kind: Deployment\nmetadata:\n  name: web\n  x: : y\n",
        },
    )
    issues = kustomize.tree_issues(app, "overlays/eu", "apps/web")
    assert [(i.file, i.field) for i in issues] == [
        ("apps/web/base/kustomization.yaml", "line 3"),
        ("apps/web/overlays/eu/patch.yaml", "line 4"),
    ]
    assert all("is not valid YAML" in i.problem for i in issues)


def test_helm_output_is_split_by_source_file() -> None:
    text = "---\n# Source: web/templates/a.yaml\nkind: A\n---\n# Source: web/charts/db/templates/b.yaml\nkind: B\n"
    assert [
        (helm.shown_source(s, "apps/web/chart"), yaml.safe_load(t)["kind"]) for s, t in helm.split_output(text)
    ] == [("apps/web/chart/templates/a.yaml", "A"), ("apps/web/chart/charts/db/templates/b.yaml", "B")]


def test_rendered_output_may_not_use_aliases() -> None:
    with pytest.raises(yaml.YAMLError, match="anchors and aliases"):
        load_all("a: &x [1, 2]\nb: *x\n")
    assert load_all("---\na: 1\n---\n---\nb: 2\n") == [{"a": 1}, {"b": 2}]


# --- kustomize: refused before kustomize runs -----------------------------------------------------


def tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    return tmp_path


def test_an_overlay_on_a_local_base_is_accepted(tmp_path: Path) -> None:
    app = tree(
        tmp_path,
        {
            "base/kustomization.yaml": "resources: [deployment.yaml]\n",
            "base/deployment.yaml": "{}",
            "overlays/eu/kustomization.yaml": "resources: [../../base]\npatches: [{path: p.yaml}]\n",
            "overlays/eu/p.yaml": "{}",
        },
    )
    assert kustomize.tree_issues(app, "overlays/eu", "apps/web") == []


@pytest.mark.parametrize(
    "reference",
    [
        "https://github.com/org/repo//base?ref=v1",
        "github.com/org/repo/base",
        "git@github.com:org/repo.git//base",
        "ssh://git.example.com/repo",
        "../../base?ref=main",
    ],
)
def test_a_remote_base_is_refused(tmp_path: Path, reference: str) -> None:
    app = tree(tmp_path, {"overlays/eu/kustomization.yaml": yaml.safe_dump({"resources": [reference]})})
    issues = kustomize.tree_issues(app, "overlays/eu", "apps/web")
    assert [(i.file, i.field) for i in issues] == [("apps/web/overlays/eu/kustomization.yaml", "resources[0]")]
    assert "is a remote base or resource; the controller renders without network" in issues[0].problem
    assert "vendor it" in issues[0].fix


def test_a_path_leaving_the_app_folder_through_dotdot_is_refused_in_any_field(tmp_path: Path) -> None:
    app = tree(
        tmp_path / "web",
        {
            "base/kustomization.yaml": "configMapGenerator: [{name: c, files: [key=../../../etc/passwd]}]\n",
            "overlays/eu/kustomization.yaml": "resources: [../../base, ../../../shared]\n",
        },
    )
    issues = kustomize.tree_issues(app, "overlays/eu", "apps/web")
    assert [(i.file, i.field) for i in issues] == [
        ("apps/web/base/kustomization.yaml", "configMapGenerator[0].files[0]"),
        ("apps/web/overlays/eu/kustomization.yaml", "resources[1]"),
    ]
    assert all("leaves the app's folder" in i.problem for i in issues)


def test_missing_paths_and_helm_inflation_are_refused(tmp_path: Path) -> None:
    app = tree(tmp_path, {"k/kustomization.yaml": "resources: [nothere.yaml]\nhelmCharts: [{name: x}]\n"})
    issues = kustomize.tree_issues(app, "k", "apps/web")
    assert {i.field for i in issues} == {"resources[0]", "helmCharts"}


def test_the_region_patch_sets_the_image_and_the_replicas() -> None:
    wrapper = kustomize.region_kustomization(
        "app/overlays/eu", "shop/inv", kustomize.image_fields("shop/inv", "reg.eu", "1.2.0", None), 3
    )
    assert wrapper["resources"] == ["app/overlays/eu"]
    assert wrapper["images"] == [{"name": "shop/inv", "newName": "reg.eu/shop/inv", "newTag": "1.2.0"}]
    assert [p["target"]["kind"] for p in wrapper["patches"]] == ["Deployment", "StatefulSet"]
    assert "patches" not in kustomize.region_kustomization("a", "i", {"newName": "i"}, None)


# --- the private copy ---------------------------------------------------------------------------------


def test_the_copy_refuses_a_symlink_leading_out_and_resolves_one_inside(tmp_path: Path) -> None:
    app = tree(tmp_path / "apps" / "web", {"base/deployment.yaml": "kind: Deployment\n"})
    (tmp_path / "secret.txt").write_text("s3cret")
    (app / "base" / "alias.yaml").symlink_to("deployment.yaml")
    confine.copy_app(app, tmp_path / "copy", "apps/web")
    assert (tmp_path / "copy" / "base" / "alias.yaml").read_text() == "kind: Deployment\n"
    assert not (tmp_path / "copy" / "base" / "alias.yaml").is_symlink()
    (app / "base" / "leak.yaml").symlink_to(tmp_path / "secret.txt")
    with pytest.raises(confine.Refused) as refused:
        confine.copy_app(app, tmp_path / "copy2", "apps/web")
    assert [(i.file, "symlink leading outside apps/web/" in i.problem) for i in refused.value.issues] == [
        ("apps/web/base/leak.yaml", True)
    ]


# --- the runner's limits, with a stand-in for the tool ---------------------------------------------


@pytest.fixture
def fake_helm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    script = tmp_path / "fake-helm"
    script.write_text(f"""#!/bin/sh
if [ "$1" = version ]; then echo {tools.HELM_VERSION}; exit 0; fi
case "$1" in
  loop) while :; do :; done ;;
  flood) /usr/bin/yes 'kind: Flood' ;;
  env) /usr/bin/env ;;
  fail) echo 'Error: template: web/templates/x.yaml:2:3: boom' >&2; exit 1 ;;
esac
""")
    script.chmod(0o755)
    monkeypatch.setenv("ROLLOUT_HELM", str(script))
    return tmp_path


def test_the_runner_kills_a_tool_at_its_time_limit(fake_helm: Path) -> None:
    with (
        tools.limits(wall_seconds=1.0),
        pytest.raises(tools.ToolLimitExceeded, match="helm exceeded 1 s of wall-clock time"),
    ):
        tools.run("helm", ["loop"], cwd=fake_helm, home=fake_helm)


def test_the_runner_stops_reading_at_the_output_limit(fake_helm: Path) -> None:
    with (
        tools.limits(output_bytes=1024 * 1024),
        pytest.raises(tools.ToolLimitExceeded, match="exceeded 1 MiB of output"),
    ):
        tools.run("helm", ["flood"], cwd=fake_helm, home=fake_helm)


def test_the_tool_sees_no_kubeconfig_no_path_and_proxies_that_go_nowhere(
    fake_helm: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", "/root/.kube/config")
    monkeypatch.setenv("GIT_TOKEN", "s3cret")
    output = tools.run("helm", ["env"], cwd=fake_helm, home=fake_helm).decode()
    env = dict(line.split("=", 1) for line in output.splitlines() if "=" in line)
    assert "s3cret" not in output and env["KUBECONFIG"].endswith("no-kubeconfig")
    assert env["HTTPS_PROXY"] == "http://127.0.0.1:9" and env["HOME"] == str(fake_helm)
    assert not Path(env["PATH"]).exists()


def test_a_tool_error_is_its_message_and_a_wrong_version_is_refused(
    fake_helm: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(tools.ToolFailed, match="boom"):
        tools.run("helm", ["fail"], cwd=fake_helm, home=fake_helm)
    old = fake_helm / "old-helm"
    old.write_text("#!/bin/sh\necho v3.1.0\n")
    old.chmod(0o755)
    monkeypatch.setenv("ROLLOUT_HELM", str(old))
    with pytest.raises(tools.ToolUnavailable, match="not the pinned v3.22.0"):
        tools.reported_version("helm")


# --- the dispatch in config.render, with a stand-in helm ------------------------------------------


def test_a_helm_source_goes_through_the_same_checks_and_labels_and_is_rendered_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from config.identity import ReleaseIdentity
    from config.render import RenderFailed, render
    from config.repository import AppSource, Repository

    calls = tmp_path / "calls"
    script = tmp_path / "helm"
    script.write_text(f"""#!/bin/sh
if [ "$1" = version ]; then echo {tools.HELM_VERSION}; exit 0; fi
echo "$@" >> {calls}
/bin/cat <<'YAML'
---
# Source: web/templates/deployment.yaml
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec: {{containers: [{{name: web, image: "shop/web:IMAGE_TAG"}}]}}
YAML
""")
    script.chmod(0o755)
    monkeypatch.setenv("ROLLOUT_HELM", str(script))
    app_dir = tmp_path / "apps" / "web"
    (app_dir / "chart" / "templates").mkdir(parents=True)
    (app_dir / "chart" / "Chart.yaml").write_text(CHART)
    region = Region.model_validate({"name": "eu", "cluster": "c", "tier": "canary", "trafficShare": 0.1})
    plan = Plan.model_validate({**PLAN, "source": {"helm": {"chart": "chart"}}})
    from config.schema import AppValues

    values = AppValues.model_validate({"version": "1.0.0", "image": {"repository": "shop/web", "tag": "1.0.0"}})
    repo = Repository(root=tmp_path, regions={"eu": region}, apps={"web": AppSource("web", app_dir, plan, values)})
    identity = ReleaseIdentity("ab" * 20, "1.0.0")

    script.write_text(script.read_text().replace("IMAGE_TAG", "1.0.0"))
    first = render(repo, "web", "eu", identity)
    again = render(repo, "web", "eu", identity)
    assert first.to_yaml() == again.to_yaml()
    assert len(calls.read_text().splitlines()) == 1  # the second render was remembered, not re-run
    assert "template web ./chart --namespace web --skip-tests --values" in calls.read_text()
    [deployment] = first.objects
    assert deployment["metadata"]["labels"]["rollout.dev/region"] == "eu"
    assert deployment["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/version"] == "1.0.0"
    assert deployment["metadata"]["namespace"] == "web"

    script.write_text(script.read_text().replace("shop/web:1.0.0", "shop/web:latest"))
    (app_dir / "chart" / "values.yaml").write_text("changed: true\n")  # a new folder content: rendered again
    with pytest.raises(RenderFailed) as failed:
        render(repo, "web", "eu", identity)
    [issue] = failed.value.issues
    assert (issue.file, issue.field) == (
        "apps/web/chart/templates/deployment.yaml",
        "document[0].spec.template.spec.containers[0].image",
    )


def test_the_origin_annotation_names_the_file_and_is_removed() -> None:
    body = {
        "kind": "Service",
        "metadata": {
            "name": "s",
            "annotations": {"config.kubernetes.io/origin": "path: app/overlays/eu/../../base/service.yaml\n"},
        },
    }
    assert kustomize.pop_origin(body) == "app/base/service.yaml"
    assert body["metadata"] == {"name": "s"}
    kept = {"metadata": {"annotations": {"a": "b", "config.kubernetes.io/origin": "configuredIn: app/k.yaml\n"}}}
    assert kustomize.pop_origin(kept) == "app/k.yaml" and kept["metadata"]["annotations"] == {"a": "b"}
    assert kustomize.pop_origin({"metadata": {}}) == "" and kustomize.pop_origin("text") == ""
