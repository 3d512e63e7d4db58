"""Argo CD hook annotations in a chart or an overlay tree brought as is: refused with the mapping.

The public example trees of the GitOps tools mark Jobs with `argocd.argoproj.io/hook: PreSync` (or
PostSync, SyncFail, ...). This controller does not read that annotation: such a Job would be
applied with the release's objects, running at the same time as the upgrade it should precede,
and the next release would patch it (a Job's template cannot change: the region would fail). So
an object carrying it, without a hook annotation of ours or Helm's, is refused with the phase to
write instead (config/hooks.py reads `rollout.dev/hook` and `helm.sh/hook`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from config.errors import Issue
from config.hooks import ANNOTATION_HOOK, HELM_HOOK
from config.sources.common import Document

ARGOCD_HOOK = "argocd.argoproj.io/hook"
# Argo CD's phase -> ours (None: no counterpart, the object is not a release hook here)
PHASES: Mapping[str, str | None] = {
    "PreSync": "pre-upgrade",
    "PostSync": "post-promote",
    "SyncFail": None,
    "Sync": None,
    "Skip": None,
    "PreDelete": None,
    "PostDelete": None,
}


def _fix(value: str) -> str:
    ours = [PHASES[p.strip()] for p in value.split(",") if PHASES.get(p.strip())]
    if ours:
        return (
            f"annotate it {ANNOTATION_HOOK}: {','.join(dict.fromkeys(p for p in ours if p))} instead "
            '(run as a hook Job of the release in each region, docs/repository.md "Hooks"), or drop '
            "the annotation to apply it with the release"
        )
    return (
        f"drop the annotation to apply it with the release, or make it a hook with {ANNOTATION_HOOK}: "
        "pre-upgrade, post-promote or pre-rollback (a failed release rolls back: pre-rollback runs first)"
    )


def issues(documents: Iterable[Document]) -> list[Issue]:
    """Every object carrying Argo CD's hook annotation and neither `rollout.dev/hook` nor `helm.sh/hook`."""
    out: list[Issue] = []
    for doc in documents:
        body = doc.body
        meta = body.get("metadata") if isinstance(body, Mapping) else None
        annotations = meta.get("annotations") if isinstance(meta, Mapping) else None
        if not isinstance(annotations, Mapping) or ARGOCD_HOOK not in annotations:
            continue
        if ANNOTATION_HOOK in annotations or HELM_HOOK in annotations:
            continue  # the author mapped it: ours (or Helm's) is the one read
        value = str(annotations[ARGOCD_HOOK])
        out.append(
            Issue(
                doc.file,
                f"{body.get('kind', '?')}/{meta.get('name', '?')} metadata.annotations.{ARGOCD_HOOK}",  # type: ignore[union-attr]
                f"is Argo CD's hook annotation ({value}), which this controller does not read: the object "
                "would be applied with the release's objects, not run as a hook",
                _fix(value),
            )
        )
    return out
