"""Render an app's manifests for one region and one release, deterministically.

Same repository, commit, app and region give byte-identical YAML: files are read in sorted
order and objects are dumped with sorted keys. Templates run in a limited child process
(config/sandbox.py); `render` here in the caller's process only checks the result against the
operator's grants.
"""

from __future__ import annotations

import contextvars
import os
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import jinja2
import yaml
from jinja2.exceptions import SecurityError

from config import sandbox, sources
from config.errors import Issue
from config.grants import CLUSTER_SCOPED_KINDS, violations
from config.hooks import hook_problems
from config.identity import ANNOTATION_COMMIT, ReleaseIdentity
from config.repository import AppSource, Repository
from config.sandbox import Limits, YamlRefused, current_limits, load_yaml_all
from config.sources.tools import ToolUnavailable
from config.templating import OutsideRepository, TemplateTooLarge, confined_path, environment

MANIFEST_SUFFIXES = (".yaml", ".yml", ".yaml.j2", ".yml.j2")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


class RenderFailed(Exception):
    def __init__(self, issues: list[Issue]):
        self.issues = issues
        super().__init__("; ".join(str(i) for i in issues))


@dataclass(frozen=True)
class Rendered:
    app: str
    region: str
    identity: ReleaseIdentity
    objects: tuple[dict[str, Any], ...]
    # hook Jobs (config/hooks.py): render() leaves every object in `objects`; the strategies'
    # Renderer moves the hooks here (strategies/hooks.split) so no strategy applies them
    hooks: tuple[dict[str, Any], ...] = ()

    def to_yaml(self) -> str:
        return yaml.safe_dump_all(list(self.objects), sort_keys=True, default_flow_style=False, explicit_start=True)


def manifest_files(app: AppSource) -> list[Path]:
    folder = app.directory / "manifests"
    return sorted(p for p in folder.iterdir() if p.name.endswith(MANIFEST_SUFFIXES)) if folder.is_dir() else []


def template_context(repo: Repository, app: AppSource, region_name: str, identity: ReleaseIdentity) -> dict[str, Any]:
    region = repo.regions[region_name]
    params = {**app.values.params, **region.params, **app.values.region_overrides.get(region_name, {})}
    registry = params.get("registry")
    image = app.values.image
    ref = f"{registry}/{image.repository}" if registry else image.repository
    ref += f":{image.tag}" if image.tag else ""
    ref += f"@{image.digest}" if image.digest else ""
    return {
        "app": app.name,
        "namespace": app.plan.target_namespace,
        "version": identity.version,
        "image": ref,
        "release": {"number": identity.number, "commit": identity.commit, "track": identity.track},
        "region": {
            "name": region.name,
            "tier": region.tier.value,
            "cluster": region.cluster,
            "trafficShare": region.traffic_share,
            "characteristics": dict(region.characteristics),
        },
        "params": params,
    }


def render(repo: Repository, app_name: str, region_name: str, identity: ReleaseIdentity) -> Rendered:
    """Render or raise RenderFailed listing every problem found.

    The templates run in a child process under config.sandbox limits (time, CPU, memory, output);
    a limit hit or any exception while rendering is an issue naming the file, never a crash here."""
    app = repo.apps[app_name]
    if app.plan.source.kind == "jinja":
        objects, issues = _render_sandboxed(repo, app, region_name, identity)
        manifests = repo.relative(app.directory / "manifests")
    else:  # a Helm chart or a Kustomize tree, rendered by the pinned tool (config/sources/)
        objects, issues = _render_external(repo, app, region_name, identity)
        manifests = repo.relative(app.directory)
    # the operator's policy (config/grants.py): nothing outside the app's grant renders
    issues += violations(
        objects,
        repo.grants.grant_for(app.name),
        app=app.name,
        namespace=app.plan.target_namespace,
        manifests=manifests,
        plan_file=repo.relative(app.directory / "rollout.yaml"),
    )
    issues += [Issue(manifests, field, problem, fix) for field, problem, fix in hook_problems(objects)]
    if issues:
        raise RenderFailed(issues)
    return Rendered(app_name, region_name, identity, tuple(objects))


_LIMIT_FIXES = {
    "wall": "make the templates render faster (fewer or smaller loops)",
    "cpu": "make the templates render faster (fewer or smaller loops, no huge arithmetic)",
    "memory": "make the templates and params build smaller values",
    "output": "render fewer or smaller objects (or split the app)",
}


def render_many(
    repo: Repository, app_name: str, region_names: Sequence[str], identity: ReleaseIdentity
) -> dict[str, Rendered | RenderFailed]:
    """`render` for several regions of one app: a Jinja app renders all of them in one sandbox child
    (validation renders every region; one child per app instead of one per region)."""
    app = repo.apps[app_name]
    batch = _sandbox_regions(repo, app, list(region_names), identity) if app.plan.source.kind == "jinja" else {}
    token = _PRERENDERED.set({(id(repo), app_name, region, identity): done for region, done in batch.items()})
    try:
        out: dict[str, Rendered | RenderFailed] = {}
        for region in region_names:
            try:
                out[region] = render(repo, app_name, region, identity)
            except RenderFailed as failed:
                out[region] = failed
        return out
    finally:
        _PRERENDERED.reset(token)


_Result = tuple[list[dict[str, Any]], list[Issue]]
_PRERENDERED: contextvars.ContextVar[dict[tuple[int, str, str, ReleaseIdentity], _Result] | None] = (
    contextvars.ContextVar("prerendered", default=None)
)


def _render_sandboxed(repo: Repository, app: AppSource, region_name: str, identity: ReleaseIdentity) -> _Result:
    done = (_PRERENDERED.get() or {}).get((id(repo), app.name, region_name, identity))
    if done is not None:
        return list(done[0]), list(done[1])
    return _sandbox_regions(repo, app, [region_name], identity)[region_name]


def _sandbox_regions(
    repo: Repository, app: AppSource, regions: list[str], identity: ReleaseIdentity
) -> dict[str, _Result]:
    """Run `_render_regions_here` in one sandbox child with only what it needs (absolute paths: the
    child's working directory is /). A limit hit stops the whole batch: every region gets the issue."""
    limits = current_limits()
    root = Path(os.path.abspath(repo.root))
    local = replace(app, directory=Path(os.path.abspath(app.directory)))
    needed = Repository(root=root, regions={name: repo.regions[name] for name in regions}, apps={app.name: local})
    manifests = repo.relative(app.directory / "manifests")
    try:
        results = sandbox.call(
            "config.render:_render_regions_here",
            (needed, app.name, regions, identity, limits),
            limits,
            answers=len(regions),
        )
    except sandbox.LimitExceeded as exc:
        issue = Issue(exc.where or manifests, "", str(exc), _LIMIT_FIXES.get(exc.limit, "render less"))
        return {name: ([], [issue]) for name in regions}
    except sandbox.ChildFailed as exc:
        issue = Issue(exc.where or manifests, "", f"the render failed: {exc}", "correct the template")
        return {name: ([], [issue]) for name in regions}
    return {name: (list(results[name][0]), list(results[name][1])) for name in regions}


def _render_regions_here(
    progress: Callable[[str], None],
    repo: Repository,
    app_name: str,
    regions: list[str],
    identity: ReleaseIdentity,
    limits: Limits,
) -> dict[str, _Result]:
    """In the sandbox child: each region's objects and issues, templates compiled once."""
    env = environment(repo.apps[app_name].directory)
    return {name: _render_here(progress, repo, app_name, name, identity, limits, env) for name in regions}


class _OutputCap(Exception):
    pass


def _render_here(
    progress: Callable[[str], None],
    repo: Repository,
    app_name: str,
    region_name: str,
    identity: ReleaseIdentity,
    limits: Limits,
    env: jinja2.Environment | None = None,
) -> _Result:
    """In the sandbox child: the objects and the issues of one app in one region."""
    app = repo.apps[app_name]
    context = template_context(repo, app, region_name, identity)
    env = env or environment(app.directory)
    issues: list[Issue] = []
    objects: list[dict[str, Any]] = []
    files = manifest_files(app)
    if not files:
        issues.append(
            Issue(
                repo.relative(app.directory / "manifests"),
                "",
                "no manifest templates found",
                "add at least one *.yaml template",
            )
        )
    budget = limits.output_bytes
    for path in files:
        shown = repo.relative(path)
        progress(shown)
        try:
            confined_path(app.directory, str(path.relative_to(app.directory)))
            template = env.get_template(str(path.relative_to(app.directory)))
            text = _generate(template, context, budget)
            budget -= len(text)
            docs = [d for d in load_yaml_all(text, limits.output_bytes) if d is not None]
        except OutsideRepository as exc:
            issues.append(
                Issue(
                    shown,
                    "",
                    f"template reaches outside the app directory: {exc}",
                    "keep templates and includes inside apps/<app>/",
                )
            )
            continue
        except TemplateTooLarge as exc:
            issues.append(Issue(shown, "", str(exc), "split the template or move data out of the repository"))
            continue
        except SecurityError as exc:
            issues.append(
                Issue(
                    shown,
                    _template_line(exc),
                    f"the template sandbox refused: {exc}",
                    "templates may read values and call filters, not reach into Python objects",
                )
            )
            continue
        except jinja2.UndefinedError as exc:
            issues.append(
                Issue(
                    shown,
                    _template_line(exc),
                    f"undefined variable: {exc.message}",
                    "define it in values.yaml params or the region's params, or use | default(...)",
                )
            )
            continue
        except jinja2.TemplateError as exc:
            issues.append(Issue(shown, _template_line(exc), f"template error: {exc}", "correct the template"))
            continue
        except YamlRefused as exc:
            issues.append(
                Issue(
                    shown,
                    f"line {exc.line}" if exc.line else "",
                    f"rendered YAML {exc.problem}",
                    "write the objects out instead of using anchors and aliases",
                )
            )
            continue
        except yaml.YAMLError as exc:
            issues.append(
                Issue(
                    shown,
                    "",
                    f"rendered text is not YAML: {exc}".replace("\n", " "),
                    "check indentation and quoting of rendered values",
                )
            )
            continue
        except _OutputCap:
            issues.append(Issue(shown, "", f"render exceeded {limits.describe('output')}", _LIMIT_FIXES["output"]))
            return [], issues
        except MemoryError:
            issues.append(Issue(shown, "", f"render exceeded {limits.describe('memory')}", _LIMIT_FIXES["memory"]))
            return [], issues
        except RecursionError:
            issues.append(
                Issue(
                    shown,
                    _traceback_line(path),
                    "template error: recursion too deep (a macro that calls itself?)",
                    "end the recursion or use a loop",
                )
            )
            continue
        except Exception as exc:  # noqa: BLE001 - every failure of a template is an issue of its file
            issues.append(
                Issue(
                    shown,
                    _traceback_line(path),
                    f"template failed: {type(exc).__name__}: {exc}",
                    "correct the template (e.g. guard the division or the argument)",
                )
            )
            continue
        for index, doc in enumerate(docs):
            _accept(doc, shown, index, app, region_name, identity, objects, issues)
    return objects, issues


def _accept(
    doc: Any,
    shown: str,
    index: int,
    app: AppSource,
    region_name: str,
    identity: ReleaseIdentity,
    objects: list[dict[str, Any]],
    issues: list[Issue],
) -> None:
    """What every source's output goes through: the object checks, then the identity labels."""
    problems = list(_check_object(doc))
    field_prefix = f"document[{index}]"
    issues += [
        Issue(shown, f"{field_prefix}.{field}" if field else field_prefix, problem, fix)
        for field, problem, fix in problems
    ]
    if not problems:
        objects.append(_stamp(doc, app.name, app.plan.target_namespace, region_name, identity))


def _render_external(
    repo: Repository, app: AppSource, region_name: str, identity: ReleaseIdentity
) -> tuple[list[dict[str, Any]], list[Issue]]:
    """A Helm or Kustomize source: the pinned tool in a limited child process (config/sources/),
    then the same checks and labels as Jinja output."""
    try:
        documents = sources.documents(
            repo, app, region_name, identity, template_context(repo, app, region_name, identity)
        )
    except sources.SourceFailed as failed:
        return [], list(failed.issues)
    except ToolUnavailable as exc:
        return [], [
            Issue(
                repo.relative(app.directory / "rollout.yaml"),
                f"source.{app.plan.source.kind}",
                f"cannot render: {exc}",
                "install the pinned tools (deploy/tools/build.sh)",
            )
        ]
    objects: list[dict[str, Any]] = []
    issues: list[Issue] = []
    for document in documents:
        _accept(document.body, document.file, document.index, app, region_name, identity, objects, issues)
    return objects, issues


def _generate(template: jinja2.Template, context: dict[str, Any], budget: int) -> str:
    """The rendered text, stopping as soon as it passes `budget` characters."""
    out: list[str] = []
    size = 0
    for chunk in template.generate(**context):
        size += len(chunk)
        if size > budget:
            raise _OutputCap
        out.append(chunk)
    return "".join(out)


def _traceback_line(path: Path) -> str:
    """The template line of the exception being handled, from Jinja's rewritten traceback."""
    filename = str(path.resolve())
    line = None
    tb = sys.exc_info()[2]
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == filename:
            line = tb.tb_lineno
        tb = tb.tb_next
    return f"line {line}" if line else ""


def _template_line(exc: jinja2.TemplateError) -> str:
    line = getattr(exc, "lineno", None)
    return f"line {line}" if line else ""


def _check_object(doc: Any) -> Iterator[tuple[str, str, str]]:
    if not isinstance(doc, dict):
        yield "", "is not a Kubernetes object (a mapping)", "each YAML document must be one object"
        return
    for key in ("apiVersion", "kind"):
        if not isinstance(doc.get(key), str) or not doc.get(key):
            yield key, "is missing", f"set {key} (e.g. apps/v1 / Deployment)"
    name = (doc.get("metadata") or {}).get("name")
    if not isinstance(name, str) or not _DNS_SUBDOMAIN.match(name):
        yield "metadata.name", f"{name!r} is not a valid name", "use lowercase letters, digits, '-' and '.'"
    for path, pod_spec in _pod_specs(doc):
        yield from _check_pod_spec(path, pod_spec)
    if doc.get("kind") == "Deployment":
        yield from _check_deployment(doc)


def _pod_specs(doc: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    kind = doc.get("kind")
    spec = doc.get("spec") or {}
    if kind == "Pod":
        yield "spec", spec
    elif kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"):
        yield "spec.template.spec", ((spec.get("template") or {}).get("spec") or {})
    elif kind == "CronJob":
        job = (spec.get("jobTemplate") or {}).get("spec") or {}
        yield "spec.jobTemplate.spec.template.spec", ((job.get("template") or {}).get("spec") or {})


def _check_pod_spec(path: str, pod_spec: dict[str, Any]) -> Iterator[tuple[str, str, str]]:
    containers = pod_spec.get("containers")
    if not containers:
        yield f"{path}.containers", "is empty", "list at least one container with a name and an image"
        return
    for group in ("initContainers", "containers"):
        for i, container in enumerate(pod_spec.get(group) or []):
            field = f"{path}.{group}[{i}].image"
            problem = image_problem(str(container.get("image", "")))
            if problem:
                yield field, problem, "tag images with the release version or commit (or pin a digest)"


def image_problem(image: str) -> str | None:
    """Why an image reference is not pinned, or None when it is."""
    if not image:
        return "has no image"
    name, _, digest = image.partition("@")
    last = name.rsplit("/", 1)[-1]
    tag = last.split(":", 1)[1] if ":" in last else None
    if tag == "latest":
        return f"{image!r} uses the moving tag 'latest'"
    if tag is None and not digest:
        return f"{image!r} has no tag or digest (it would mean 'latest')"
    return None


def _check_deployment(doc: dict[str, Any]) -> Iterator[tuple[str, str, str]]:
    spec = doc.get("spec") or {}
    selector = (spec.get("selector") or {}).get("matchLabels") or {}
    labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    if not selector:
        yield "spec.selector.matchLabels", "is missing", "select the pod template's labels"
    elif any(labels.get(k) != v for k, v in selector.items()):
        yield (
            "spec.selector.matchLabels",
            "does not match spec.template.metadata.labels",
            "make every selector label a pod template label",
        )


def _stamp(doc: dict[str, Any], app: str, namespace: str, region: str, identity: ReleaseIdentity) -> dict[str, Any]:
    """Add identity labels to the object and its pod template; leave selectors alone (immutable)."""
    labels = identity.labels(app, region)
    out: dict[str, Any] = yaml.safe_load(yaml.safe_dump(doc))  # deep copy through plain YAML types
    metadata = out.setdefault("metadata", {})
    metadata.setdefault("labels", {}).update(labels)
    metadata.setdefault("annotations", {})[ANNOTATION_COMMIT] = identity.commit
    if out["kind"] not in CLUSTER_SCOPED_KINDS:  # the one list (config/grants.py)
        metadata.setdefault("namespace", namespace)
    template = (out.get("spec") or {}).get("template")
    if out["kind"] == "CronJob":
        template = out["spec"]["jobTemplate"]["spec"]["template"]
    if isinstance(template, dict):
        template.setdefault("metadata", {}).setdefault("labels", {}).update(labels)
    return out
