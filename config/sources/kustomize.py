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
from config.sources.common import load_yaml_file

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
_YAML_SUFFIXES = (".yaml", ".yml", ".json")
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
    read: set[str] = set()
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
        documents, unreadable = load_yaml_file(file, shown)
        if unreadable is not None:
            issues.append(unreadable)
            continue
        data = documents[0] if documents else None
        if not isinstance(data, dict):
            issues.append(Issue(shown, "", "is not a mapping", "write the kustomization's fields as key: value"))
            continue
        for field, reference in references(data):
            problem, target = _check(app_dir, folder, reference)
            if problem:
                issues.append(Issue(shown, field, problem[0], problem[1]))
            elif target is not None and (app_dir / target).is_dir():
                pending.append(target)
            elif (
                target is not None
                and target not in read
                and target.endswith(_YAML_SUFFIXES)
                and not field.startswith(("configMapGenerator", "secretGenerator"))  # data, not manifests
            ):
                read.add(target)  # a resource or a patch: its syntax errors by line, before kustomize
                _, unreadable = load_yaml_file(app_dir / target, f"{shown_root}/{target}")
                issues += [unreadable] if unreadable is not None else []
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


def error_issue(message: str, kustomization: str, scratch: str, app_shown: str, app_dir: Path | None = None) -> Issue:
    """A kustomize error as an issue naming the file it is about (the innermost kustomization, resource
    or patch the message names, repository-relative; else `kustomization`) and, where the message or
    the file gives it, the line. `app_dir` is the folder kustomize ran on (the app's copy)."""
    text = message.replace(scratch + "/app", app_shown).replace(scratch, "<render folder>")
    text = re.sub(r"^Error: ", "", text.strip()).replace("\n", " ")
    text = _FIRST_TRIED_AS_FILE.sub("", text)  # kustomize tries each folder as a file first: noise
    file = _innermost_file(text, app_shown, app_dir) or kustomization
    found = _YAML_LINE.search(text)
    line = f"line {found.group(1)}" if found else ""
    unknown = _UNKNOWN_FIELD.search(text)
    if not line and unknown and app_dir is not None and file.startswith(app_shown + "/"):
        line = _line_of_key(app_dir / file[len(app_shown) + 1 :], unknown.group(1))
    return Issue(
        file,
        line,
        f"kustomize build failed: {text}",
        "correct the kustomization or the files it names (kustomize build reproduces it)",
    )


_FIRST_TRIED_AS_FILE = re.compile(
    r"accumulation err='accumulating resources from '[^']*': '[^']*' must resolve to a file': "
)
_MENTION = re.compile(
    r"(?:path|directory:) '(?P<folder>[^']+)'|"
    r"(?:accumulating resources from '|in File: |\[path: \"|path: )(?P<file>[\w./-]+\.(?:ya?ml|json))\b"
)
_YAML_LINE = re.compile(r"yaml: line (\d+)")
_UNKNOWN_FIELD = re.compile(r'unknown field "([^"]+)"')


def _innermost_file(text: str, app_shown: str, app_dir: Path | None) -> str:
    """The last file of the app's folder that kustomize's (nested) message names, or ""."""
    folder, file = "", ""
    for mention in _MENTION.finditer(text):
        if mention.group("folder"):
            named = posixpath.normpath(mention.group("folder"))
            if named != app_shown and not named.startswith(app_shown + "/"):
                continue
            if named.endswith(_YAML_SUFFIXES):
                folder, file = posixpath.dirname(named), named
            else:
                folder = named
                relative = named[len(app_shown) + 1 :]
                found = kustomization_file(app_dir / relative) if app_dir is not None else None
                file = f"{named}/{found.name if found else KUSTOMIZATION_FILES[0]}"
        elif folder and not mention.group("file").startswith(("app/", "../", "/")):
            file = posixpath.normpath(f"{folder}/{mention.group('file')}")
    return file


def _line_of_key(path: Path, key: str) -> str:
    """`line N` of the first line of `path` that sets `key` ("" when not found)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return ""
    pattern = re.compile(rf"^\s*-?\s*{re.escape(key)}\s*:")
    return next((f"line {n}" for n, text in enumerate(lines, 1) if pattern.match(text)), "")
