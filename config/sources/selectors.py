"""Selectors on the labels the controller stamps: refused when the stamp would break them.

Every object and pod template of an app is labelled `app.kubernetes.io/name: <app>` and
`app.kubernetes.io/managed-by: regional-rollout` (config/identity.py), overwriting what the
manifests say. A chart made by `helm create` selects its pods by `app.kubernetes.io/name: <chart
name>` (and an overlay tree may select by any name it likes): when the app is named otherwise, the
stamp moves the pods' label away from the selector, the region's API server refuses the
Deployment ("selector does not match template labels") and a Service selects no pod. The checks
on the manifests pass (they run before the stamp), so this is refused here, before anything is
applied, with the fix (pure, unit-tested).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from config.errors import Issue
from config.identity import LABEL_MANAGED_BY, LABEL_NAME, MANAGED_BY
from config.sources.common import Document

# kinds whose spec.selector is a plain label map (the rest use a LabelSelector's matchLabels)
_PLAIN_SELECTOR = frozenset({"Service", "ReplicationController"})


def _selectors(body: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    spec = body.get("spec")
    if not isinstance(spec, Mapping):
        return
    selector = spec.get("selector")
    if body.get("kind") in _PLAIN_SELECTOR and isinstance(selector, Mapping):
        yield "spec.selector", selector
    elif isinstance(selector, Mapping) and isinstance(selector.get("matchLabels"), Mapping):
        yield "spec.selector.matchLabels", selector["matchLabels"]
    pods = spec.get("podSelector")  # a NetworkPolicy
    if isinstance(pods, Mapping) and isinstance(pods.get("matchLabels"), Mapping):
        yield "spec.podSelector.matchLabels", pods["matchLabels"]


def issues(documents: Iterable[Document], app: str, kind: str) -> list[Issue]:
    """Selectors asking for another value of a label the controller stamps (`kind`: helm or kustomize)."""
    stamped = {LABEL_NAME: app, LABEL_MANAGED_BY: MANAGED_BY}
    out: list[Issue] = []
    for doc in documents:
        body = doc.body
        if not isinstance(body, Mapping):
            continue
        meta = body.get("metadata") if isinstance(body.get("metadata"), Mapping) else {}
        owner = f"{body.get('kind', '?')}/{meta.get('name', '?')}"  # type: ignore[union-attr]
        template = (body.get("spec") or {}).get("template") if isinstance(body.get("spec"), Mapping) else None
        consequence = (
            "the region's API server would refuse it (its selector would not match its pod template)"
            if isinstance(template, Mapping)
            else "it would select no pod"
        )
        for path, labels in _selectors(body):
            for key, ours in stamped.items():
                if key not in labels or str(labels[key]) == ours:
                    continue
                value = str(labels[key])
                if key == LABEL_NAME:
                    fix = (
                        f"set nameOverride: {app} in the chart's values.yaml (charts made by helm create "
                        f"take app.kubernetes.io/name from it), or select by another label, or name the app "
                        f"{value} (apps/{value}/)"
                        if kind == "helm"
                        else f"label and select the pods with {key}: {app} in the base (or select by another "
                        f"label), or name the app {value} (apps/{value}/)"
                    )
                else:
                    fix = f"select by another label: the controller owns {key}"
                out.append(
                    Issue(
                        doc.file,
                        f"{owner} {path}.{key}",
                        f"selects {key}: {value}, but the controller labels every object and pod of app "
                        f"{app!r} {key}: {ours}, so {consequence}",
                        fix,
                    )
                )
    return out
