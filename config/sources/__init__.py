"""External manifest sources: a Helm chart or a Kustomize tree in the app's folder (rollout.yaml `source`).

`documents(repo, app, region, identity, context)` renders one app for one region with the pinned
tool and returns the raw objects with the file each came from; config/render.py then applies the
checks and identity labels it applies to Jinja output, so all three sources give the same
guarantees. Every step that can refuse does so before the tool runs; the tool runs in a private
copy of the app's folder, in a child process with limits (tools.py), and any failure raises
SourceFailed with issues naming the file, the field and the fix - never a partial rendering.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import yaml

from config.errors import Issue
from config.identity import ReleaseIdentity
from config.repository import AppSource, Repository
from config.sources import argocd, helm, kustomize, release_image, selectors, tools
from config.sources.common import Document, SourceFailed, load_all, substitute
from config.sources.confine import MAX_COPY_BYTES, Refused, copy_app
from config.sources.tools import ToolFailed, ToolLimitExceeded, current_limits, run

__all__ = ["Document", "SourceFailed", "documents", "forget", "renderers"]


_CACHE_SIZE = 256
_cache: OrderedDict[str, list[Document] | SourceFailed] = OrderedDict()
_cache_lock = threading.Lock()


def renderers(app: AppSource) -> dict[str, str]:
    """The pinned tool that renders `app` and its version (`{"helm": "v3.22.0"}`; `{}` for Jinja).

    Rendering refuses any binary that does not report the pin (tools.reported_version), so the pin
    is the version that rendered; each Release records it when it is created."""
    kind = app.plan.source.kind
    return {kind: tools.VERSIONS[kind]} if kind in tools.VERSIONS else {}


def documents(
    repo: Repository, app: AppSource, region_name: str, identity: ReleaseIdentity, context: dict[str, Any]
) -> list[Document]:
    """The objects of `app` in `region_name` from its Helm or Kustomize source; raises SourceFailed.

    The tools are deterministic, so a result (or a refusal) is remembered by the content of the app's
    folder and everything else the render reads: validating an unchanged app again (every sync
    does) costs a hash of its files, not a helm or kustomize run. Limit hits are not remembered."""
    key = _cache_key(repo, app, region_name, context)
    with _cache_lock:
        cached = _cache.get(key) if key else None
        if cached is not None:
            _cache.move_to_end(key)
    if isinstance(cached, SourceFailed):
        raise SourceFailed(list(cached.issues))
    if cached is not None:
        return list(cached)
    try:
        result: list[Document] | SourceFailed = _documents(repo, app, region_name, identity, context)
    except SourceFailed as failed:
        result = failed
    if key and not (isinstance(result, SourceFailed) and result.limit_hit):
        with _cache_lock:
            _cache[key] = result
            while len(_cache) > _CACHE_SIZE:
                _cache.popitem(last=False)
    if isinstance(result, SourceFailed):
        raise SourceFailed(list(result.issues))
    return list(result)


def forget() -> None:
    """Drop every remembered rendering (tests that must run the tool again)."""
    with _cache_lock:
        _cache.clear()


def _cache_key(repo: Repository, app: AppSource, region_name: str, context: dict[str, Any]) -> str:
    """A digest of the app's files (paths, symlink targets, bytes), the plan, values and context."""
    digest = hashlib.sha256()
    digest.update(
        json.dumps(
            [
                repo.relative(app.directory),
                region_name,
                context,
                tools.VERSIONS,
                app.plan.model_dump(mode="json"),
                app.values.model_dump(mode="json"),
            ],
            sort_keys=True,
            default=str,
        ).encode()
    )
    total = 0
    for current, dirs, names in os.walk(app.directory, followlinks=False):
        dirs.sort()
        for name in sorted(names + [d for d in dirs if os.path.islink(os.path.join(current, d))]):
            path = os.path.join(current, name)
            digest.update(b"\0" + os.path.relpath(path, app.directory).encode() + b"\0")
            if os.path.islink(path):
                digest.update(b"link:" + os.readlink(path).encode())
            elif os.path.isfile(path):
                total += os.path.getsize(path)
                if total > MAX_COPY_BYTES:
                    return ""  # too big to hash cheaply: the copy refuses it anyway
                with open(path, "rb") as fh:
                    digest.update(fh.read())
    return digest.hexdigest()


def _documents(
    repo: Repository, app: AppSource, region_name: str, identity: ReleaseIdentity, context: dict[str, Any]
) -> list[Document]:
    source = app.plan.source
    with tempfile.TemporaryDirectory(prefix="rollout-render-") as scratch_name:
        scratch = Path(scratch_name).resolve()
        shown_root = repo.relative(app.directory)
        try:
            copy_app(app.directory, scratch / "app", shown_root)
        except Refused as refused:
            raise SourceFailed(refused.issues) from None
        (scratch / "home").mkdir()
        if source.helm is not None:
            return _helm(repo, app, region_name, context, scratch, shown_root)
        if source.kustomize is not None:
            return _kustomize(repo, app, region_name, context, scratch, shown_root)
    raise ValueError(f"{app.name}: the jinja source is rendered by config.render")


def _helm(
    repo: Repository, app: AppSource, region_name: str, context: dict[str, Any], scratch: Path, shown_root: str
) -> list[Document]:
    source = app.plan.source.helm
    assert source is not None
    region = repo.regions[region_name]
    plan_file = f"{shown_root}/rollout.yaml"
    copy = scratch / "app"
    chart_shown = posixpath.normpath(f"{shown_root}/{source.chart}")  # chart: ./chart -> apps/<app>/chart
    issues = helm.chart_issues(copy / source.chart, chart_shown)
    found, missing = helm.values_files(
        source, [substitute(p, region) for p in source.values_files], copy, shown_root, plan_file
    )
    issues += missing
    if issues:
        raise SourceFailed(issues)
    generated = scratch / "rollout-values.yaml"
    generated.write_text(yaml.safe_dump(helm.controller_values(context), sort_keys=True), encoding="utf-8")
    args = helm.template_args(
        source.release_name or app.name,
        f"./{source.chart}",
        app.plan.target_namespace,
        [f"./{p}" for p in found] + [str(generated)],
    )
    try:
        output = run("helm", args, cwd=copy, home=scratch / "home")
    except ToolFailed as failed:
        raise SourceFailed([helm.error_issue(failed.message, chart_shown, str(scratch), shown_root)]) from None
    except ToolLimitExceeded as exceeded:
        raise _limit_failure(exceeded, chart_shown) from None
    out: list[Document] = []
    counts: dict[str, int] = {}
    for origin, text in helm.split_output(output.decode("utf-8", "replace")):
        shown = helm.shown_source(origin, chart_shown) if origin else chart_shown
        try:
            bodies = load_all(text)
        except yaml.YAMLError as exc:
            raise SourceFailed(
                [
                    Issue(
                        shown,
                        "",
                        f"rendered text is not YAML: {exc}".replace("\n", " "),
                        "check indentation and quoting of rendered values",
                    )
                ]
            ) from None
        for body in bodies:
            out.append(Document(shown, counts.get(shown, 0), body))
            counts[shown] = counts.get(shown, 0) + 1
    _check_output(out, app, context, "helm", shown_root)
    return out


def _kustomize(
    repo: Repository, app: AppSource, region_name: str, context: dict[str, Any], scratch: Path, shown_root: str
) -> list[Document]:
    source = app.plan.source.kustomize
    assert source is not None
    region = repo.regions[region_name]
    copy = scratch / "app"
    folder = substitute(source.path, region)
    start = kustomize.kustomization_file(copy / folder)
    if start is None:
        raise SourceFailed(
            [
                Issue(
                    f"{shown_root}/rollout.yaml",
                    "source.kustomize.path",
                    f"{shown_root}/{folder} has no kustomization.yaml",
                    f"add {shown_root}/{folder}/kustomization.yaml, or point path at a folder "
                    "every region has (e.g. base)",
                )
            ]
        )
    shown = f"{shown_root}/{start.relative_to(copy)}"
    issues = kustomize.tree_issues(copy, folder, shown_root)
    if issues:
        raise SourceFailed(issues)
    if source.region_patch:
        image = app.values.image
        wrapper = kustomize.region_kustomization(
            f"app/{folder}",
            image.repository,
            kustomize.image_fields(image.repository, context["params"].get("registry"), image.tag, image.digest),
            context["params"].get("replicas"),
        )
    else:
        wrapper = kustomize.plain_kustomization(f"app/{folder}")
    (scratch / "kustomization.yaml").write_text(yaml.safe_dump(wrapper, sort_keys=True), encoding="utf-8")
    try:
        output = run("kustomize", kustomize.build_args(str(scratch)), cwd=scratch, home=scratch / "home")
    except ToolFailed as failed:
        raise SourceFailed([kustomize.error_issue(failed.message, shown, str(scratch), shown_root, copy)]) from None
    except ToolLimitExceeded as exceeded:
        raise _limit_failure(exceeded, shown) from None
    try:
        bodies = load_all(output.decode("utf-8", "replace"))
    except yaml.YAMLError as exc:
        raise SourceFailed(
            [
                Issue(
                    shown,
                    "",
                    f"kustomize output is not YAML: {exc}".replace("\n", " "),
                    "correct the resources the kustomization includes",
                )
            ]
        ) from None
    out: list[Document] = []
    counts: dict[str, int] = {}
    for body in bodies:
        origin = kustomize.pop_origin(body)  # the file the object came from, for messages
        file = f"{shown_root}/{origin.removeprefix('app/')}" if origin.startswith("app/") else shown
        out.append(Document(file, counts.get(file, 0), body))
        counts[file] = counts.get(file, 0) + 1
    _check_output(out, app, context, "kustomize", shown_root, region_patch=source.region_patch)
    return out


def _check_output(
    out: list[Document], app: AppSource, context: dict[str, Any], kind: str, shown_root: str, region_patch: bool = False
) -> None:
    """What a chart or a tree brought as is gets wrong first: Argo CD hooks, selectors on a name the
    identity stamp replaces, an image of its own."""
    found = (
        argocd.issues(out)
        + selectors.issues(out, app.name, kind)
        + release_image.issues(
            out, str(context["image"]), app.values.image.repository, kind, shown_root, region_patch=region_patch
        )
    )
    if found:
        raise SourceFailed(found)


def _limit_failure(exceeded: ToolLimitExceeded, shown: str) -> SourceFailed:
    return SourceFailed([_limit_issue(exceeded, shown)], limit_hit=True)


def _limit_issue(exceeded: ToolLimitExceeded, shown: str) -> Issue:
    fixes = {
        "wall": "make the templates finish quickly (no unbounded loops)",
        "cpu": "make the templates finish quickly (no unbounded loops)",
        "memory": "render fewer or smaller objects",
        "output": f"render less than {current_limits().output_bytes // (1024 * 1024)} MiB of manifests",
    }
    return Issue(shown, "", f"rendering stopped: {exceeded}", fixes.get(exceeded.limit, "render less"))
