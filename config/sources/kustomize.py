"""A Kustomize base with overlays in the app's folder, built with the pinned `kustomize build`.

Before kustomize runs, every kustomization reachable from the one built is read and each path it
names is checked (pure functions, unit-tested): remote bases and resources (URLs, `github.com/...`,
`git@...`, `?ref=`) are refused, since the controller renders without network; a path must stay
inside the app's folder (`../../base` from an overlay is fine, `../../../other-app` is not) and
must exist (kustomize would otherwise try it as a URL); Helm inflation inside Kustomize is refused
(use `source: helm`). Symlinks are resolved when the app's folder is copied (confine.py). Then
`kustomize build --load-restrictor LoadRestrictionsRootOnly` runs in the copy under the tool limits.

The region patch (`regionPatch: true`, the default) is a kustomization the controller writes next
to the copy: it includes the built folder and sets the image of values.yaml (its repository
prefixed with the region's `registry` param, its tag or digest) and `spec.replicas` of every
Deployment and StatefulSet from the `replicas` param, when there is one. The controller's
kustomization always asks for origin annotations, so each object's issues name the file it came
from (the annotation is removed before anything else sees the object).
"""

from __future__ import annotations

import json
import os
import posixpath
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from config.errors import Issue

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
_REMOTE = re.compile(
    r"^(?:[a-z][a-z0-9+.-]*://|git@|git::|(?:github\.com|gitlab\.com|bitbucket\.org)/)|\?ref=|"
    r"^[\w.-]+\.[a-z]{2,}/[^/]+/[^/]+//",
    re.I,
)
_PATH_LISTS = (
    "resources",
    "bases",
    "components",
    "crds",
    "configurations",
    "generators",
    "transformers",
    "validators",
    "patchesStrategicMerge",
)
_REFUSED_FIELDS = {
    "helmCharts": "Helm inflation inside Kustomize is not run (it needs --enable-helm)",
    "helmChartInflationGenerator": "Helm inflation inside Kustomize is not run",
    "helmGlobals": "Helm inflation inside Kustomize is not run",
}


def kustomization_file(folder: Path) -> Path | None:
    for name in KUSTOMIZATION_FILES:
        if (folder / name).is_file():
            return folder / name
    return None


def is_remote(reference: str) -> bool:
    return bool(_REMOTE.search(reference.strip()))


def tree_issues(app_dir: Path, start: str, shown_root: str) -> list[Issue]:
    """Every refused reference in the kustomizations reachable from `start` (relative to app_dir)."""
    issues: list[Issue] = []
    seen: set[str] = set()
    pending = [posixpath.normpath(start)]
    while pending:
        folder = pending.pop()
        if folder in seen:
            continue
        seen.add(folder)
        file = kustomization_file(app_dir / folder)
        if file is None:
            continue  # reported by the caller (the start) or by kustomize (a plain folder as a resource)
        shown = f"{shown_root}/{file.relative_to(app_dir)}"
        try:
            data = yaml.safe_load(file.read_text(encoding="utf-8"))
        except (yaml.YAMLError, OSError, UnicodeDecodeError) as exc:
            issues.append(
                Issue(shown, "", f"cannot be read as YAML ({exc})".replace("\n", " "), "fix the file's syntax")
            )
            continue
        if not isinstance(data, dict):
            issues.append(Issue(shown, "", "is not a mapping", "write the kustomization's fields as key: value"))
            continue
        for field, reference in references(data):
            problem, target = _check(app_dir, folder, reference)
            if problem:
                issues.append(Issue(shown, field, problem[0], problem[1]))
            elif target is not None and (app_dir / target).is_dir():
                pending.append(target)
        for field, why in _REFUSED_FIELDS.items():
            if field in data:
                issues.append(Issue(shown, field, why, "render the chart with source: helm in rollout.yaml instead"))
    return sorted(issues)


def references(data: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(field path, path or URL) of every file or folder a kustomization names."""
    for key in _PATH_LISTS:
        for i, entry in enumerate(data.get(key) or []):
            if isinstance(entry, str) and "\n" not in entry:  # a multi-line entry is an inline patch
                yield f"{key}[{i}]", entry
    for key in ("patches", "patchesJson6902", "replacements"):
        for i, entry in enumerate(data.get(key) or []):
            if isinstance(entry, dict) and isinstance(entry.get("path"), str):
                yield f"{key}[{i}].path", entry["path"]
    for key in ("configMapGenerator", "secretGenerator"):
        for i, generator in enumerate(data.get(key) or []):
            if not isinstance(generator, dict):
                continue
            for j, item in enumerate(generator.get("files") or []):
                if isinstance(item, str):
                    yield f"{key}[{i}].files[{j}]", item.split("=", 1)[-1]
            for j, item in enumerate(generator.get("envs") or []):
                if isinstance(item, str):
                    yield f"{key}[{i}].envs[{j}]", item
            if isinstance(generator.get("env"), str):
                yield f"{key}[{i}].env", generator["env"]
    openapi = data.get("openapi")
    if isinstance(openapi, dict) and isinstance(openapi.get("path"), str):
        yield "openapi.path", openapi["path"]


def _check(app_dir: Path, folder: str, reference: str) -> tuple[tuple[str, str] | None, str | None]:
    """(problem, fix) when `reference` is refused; else the app-relative path it names."""
    if is_remote(reference):
        return (
            f"{reference!r} is a remote base or resource; the controller renders without network",
            "vendor it: copy the base into the app's folder and refer to it by a relative path",
        ), None
    if posixpath.isabs(reference):
        return (f"{reference!r} is an absolute path", "refer to files inside the app's folder by relative path"), None
    target = posixpath.normpath(posixpath.join(folder, reference))
    if target == ".." or target.startswith("../"):
        return (
            f"{reference!r} leaves the app's folder",
            "keep the base, patches and files the overlay uses inside apps/<app>/ (copy a shared base into it)",
        ), None
    if not os.path.lexists(app_dir / target):
        return (
            f"{reference!r} does not exist in the app's folder (kustomize would try it as a URL)",
            "correct the path or add the file",
        ), None
    return None, target


def region_kustomization(built: str, image_name: str, image: dict[str, str], replicas: Any) -> dict[str, Any]:
    """The controller's kustomization around `built`: the release's image and the region's replicas."""
    out = plain_kustomization(built) | {"images": [{"name": image_name, **image}]}
    if isinstance(replicas, int) and not isinstance(replicas, bool):
        patch = json.dumps([{"op": "add", "path": "/spec/replicas", "value": replicas}])
        out["patches"] = [{"target": {"kind": kind}, "patch": patch} for kind in ("Deployment", "StatefulSet")]
    return out


def plain_kustomization(built: str) -> dict[str, Any]:
    return {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [built],
        "buildMetadata": [ORIGIN_METADATA],
    }


ORIGIN_METADATA = "originAnnotations"  # kustomize notes each object's source file; pop_origin removes it
ORIGIN_ANNOTATION = "config.kubernetes.io/origin"


def pop_origin(body: Any) -> str:
    """Remove kustomize's origin annotation from an object; the path it names ('' when none)."""
    if not isinstance(body, dict) or not isinstance(body.get("metadata"), dict):
        return ""
    metadata = body["metadata"]
    annotations = metadata.get("annotations")
    if not isinstance(annotations, dict) or ORIGIN_ANNOTATION not in annotations:
        return ""
    text = annotations.pop(ORIGIN_ANNOTATION)
    if not annotations:
        del metadata["annotations"]
    try:
        origin = yaml.safe_load(text) if isinstance(text, str) else None
    except yaml.YAMLError:
        return ""
    if not isinstance(origin, dict):
        return ""
    path = origin.get("path") or origin.get("configuredIn") or ""
    return posixpath.normpath(path) if isinstance(path, str) and path else ""


def image_fields(repository: str, registry: Any, tag: str | None, digest: str | None) -> dict[str, str]:
    fields = {"newName": f"{registry}/{repository}" if registry else repository}
    if tag:
        fields["newTag"] = tag
    if digest:
        fields["digest"] = digest
    return fields


def build_args(folder: str) -> list[str]:
    return ["build", folder, "--load-restrictor", "LoadRestrictionsRootOnly"]


def error_issue(message: str, kustomization: str, scratch: str, app_shown: str) -> Issue:
    text = message.replace(scratch + "/app", app_shown).replace(scratch, "<render folder>")
    text = re.sub(r"^Error: ", "", text.strip()).replace("\n", " ")
    return Issue(
        kustomization,
        "",
        f"kustomize build failed: {text}",
        "correct the kustomization or the files it names (kustomize build reproduces it)",
    )
