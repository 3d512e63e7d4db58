"""Release hooks as manifests declare them: the one reading of hook annotations for every source.

A Job annotated `rollout.dev/hook: pre-upgrade,pre-rollback` (a comma list of phases) runs at
those phases of a release in each region instead of being applied with the release's objects;
`rollout.dev/hook-timeout: 5m` bounds it (default: the plan's `hooks.timeout`). Helm's
`helm.sh/hook` annotation (rendered by `helm template`, or copied into plain manifests) maps onto
the same phases:

    pre-install, pre-upgrade    -> pre-upgrade
    post-install, post-upgrade  -> post-promote
    pre-rollback                -> pre-rollback

Helm phases with no counterpart here (test, test-success, pre-delete, post-delete,
post-rollback) are left out: an object whose only phases are those is a hook of no phase, never
applied (Helm, too, runs them only on `helm test` or uninstall). When both annotations are set,
`rollout.dev/hook` wins. What is refused (validation and controller alike, `hook_problems`): an
unknown phase in `rollout.dev/hook` or `helm.sh/hook`, a hook that is not a Job, a bad timeout, a
weight that is not an integer, an unknown delete policy.

Order: `rollout.dev/hook-weight` (else `helm.sh/hook-weight`; an integer, default 0) orders the
hooks of one phase, lower first, ties by name; each starts once the one before it completed.

Delete policy: `rollout.dev/hook-delete-policy` (else `helm.sh/hook-delete-policy`), a comma list
of `before-hook-creation` (the default when neither is set: the same hook's Job of the previous
release is deleted before this one is created), `hook-succeeded` (this Job is deleted once
complete) and `hook-failed` (deleted once failed or timed out; the failure is reported all the
same). Deletion is in the background (the Job's Pods go with it).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from config.durations import parse_duration

ANNOTATION_HOOK = "rollout.dev/hook"
ANNOTATION_HOOK_TIMEOUT = "rollout.dev/hook-timeout"
HELM_HOOK = "helm.sh/hook"
ANNOTATION_HOOK_WEIGHT = "rollout.dev/hook-weight"
HELM_HOOK_WEIGHT = "helm.sh/hook-weight"
ANNOTATION_HOOK_DELETE = "rollout.dev/hook-delete-policy"
HELM_HOOK_DELETE = "helm.sh/hook-delete-policy"
LABEL_HOOK_PHASE = "rollout.dev/hook-phase"  # on the Jobs made from hooks: the phase each runs at

BEFORE_HOOK_CREATION = "before-hook-creation"
HOOK_SUCCEEDED = "hook-succeeded"
HOOK_FAILED = "hook-failed"
DELETE_POLICIES = (BEFORE_HOOK_CREATION, HOOK_SUCCEEDED, HOOK_FAILED)

PRE_UPGRADE = "pre-upgrade"
POST_PROMOTE = "post-promote"
PRE_ROLLBACK = "pre-rollback"
PHASES = (PRE_UPGRADE, POST_PROMOTE, PRE_ROLLBACK)

HELM_PHASES: Mapping[str, str] = {
    "pre-install": PRE_UPGRADE,
    "pre-upgrade": PRE_UPGRADE,
    "post-install": POST_PROMOTE,
    "post-upgrade": POST_PROMOTE,
    "pre-rollback": PRE_ROLLBACK,
}
HELM_LEFT_OUT = frozenset({"test", "test-success", "pre-delete", "post-delete", "post-rollback"})


@dataclass(frozen=True)
class Hook:
    """What an object's hook annotations say: its phases (in PHASES order) and its own timeout."""

    phases: tuple[str, ...]
    timeout: timedelta | None = None
    weight: int = 0
    delete_policy: frozenset[str] = frozenset({BEFORE_HOOK_CREATION})


def _annotations(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return (obj.get("metadata") or {}).get("annotations") or {}


def is_hook(obj: Mapping[str, Any]) -> bool:
    """Whether the object is a hook (of some phase or none): never applied with the release."""
    notes = _annotations(obj)
    return ANNOTATION_HOOK in notes or HELM_HOOK in notes


def _words(value: Any) -> list[str]:
    return [w.strip() for w in str(value).split(",") if w.strip()]


def hook_of(obj: Mapping[str, Any]) -> Hook | None:
    """The object's hook (unknown phases and a bad timeout left out: `hook_problems` reports
    them), or None when it is not a hook."""
    notes = _annotations(obj)
    if ANNOTATION_HOOK in notes:
        named = {w for w in _words(notes[ANNOTATION_HOOK]) if w in PHASES}
    elif HELM_HOOK in notes:
        named = {HELM_PHASES[w] for w in _words(notes[HELM_HOOK]) if w in HELM_PHASES}
    else:
        return None
    timeout = None
    if ANNOTATION_HOOK_TIMEOUT in notes:
        try:
            timeout = parse_duration(str(notes[ANNOTATION_HOOK_TIMEOUT]))
        except ValueError:
            timeout = None
    weight = 0
    with contextlib.suppress(ValueError):
        weight = _weight(notes)
    delete = _first(notes, ANNOTATION_HOOK_DELETE, HELM_HOOK_DELETE)
    policy = frozenset({BEFORE_HOOK_CREATION})
    if delete is not None:  # set: only the policies named (Helm's reading)
        policy = frozenset(_words(delete[1])) & frozenset(DELETE_POLICIES)
    return Hook(tuple(p for p in PHASES if p in named), timeout, weight, policy)


def _first(notes: Mapping[str, Any], *keys: str) -> tuple[str, Any] | None:
    """The first of `keys` the annotations set, with its value."""
    return next(((k, notes[k]) for k in keys if k in notes), None)


def _weight(notes: Mapping[str, Any]) -> int:
    found = _first(notes, ANNOTATION_HOOK_WEIGHT, HELM_HOOK_WEIGHT)
    return 0 if found is None else int(str(found[1]).strip())


def hook_problems(objects: Iterable[Mapping[str, Any]]) -> list[tuple[str, str, str]]:
    """Every hook annotation the controller would refuse, as (field, problem, fix); the field names
    the object (`Job/db-backup metadata.annotations...`)."""
    out: list[tuple[str, str, str]] = []
    for obj in objects:
        if not is_hook(obj):
            continue
        notes = _annotations(obj)
        what = f"{obj.get('kind')}/{(obj.get('metadata') or {}).get('name')}"
        known: tuple[str, ...]
        if ANNOTATION_HOOK in notes:
            key, known = ANNOTATION_HOOK, PHASES
        else:
            key, known = HELM_HOOK, (*HELM_PHASES, *sorted(HELM_LEFT_OUT))
        field = f"{what} metadata.annotations.{key}"
        unknown = [w for w in _words(notes[key]) if w not in known]
        if unknown or not _words(notes[key]):
            out.append(
                (
                    field,
                    f"unknown hook phase {', '.join(repr(w) for w in unknown) or '(empty)'}",
                    f"use a comma list of {', '.join(known)}",
                )
            )
        hook = hook_of(obj)
        if obj.get("kind") != "Job" and hook is not None and hook.phases:
            out.append(
                (
                    field,
                    f"a hook must be a Job, not a {obj.get('kind')}",
                    "run the hook's work in a Job, or remove the annotation to apply the object with the release",
                )
            )
        weight = _first(notes, ANNOTATION_HOOK_WEIGHT, HELM_HOOK_WEIGHT)
        if weight is not None:
            try:
                _weight(notes)
            except ValueError:
                out.append(
                    (
                        f"{what} metadata.annotations.{weight[0]}",
                        f"bad hook weight {str(weight[1])!r}: not an integer",
                        "write an integer such as -5, 0 or 10 (lower runs first)",
                    )
                )
        delete = _first(notes, ANNOTATION_HOOK_DELETE, HELM_HOOK_DELETE)
        if delete is not None:
            bad = [w for w in _words(delete[1]) if w not in DELETE_POLICIES]
            if bad or not _words(delete[1]):
                out.append(
                    (
                        f"{what} metadata.annotations.{delete[0]}",
                        f"unknown hook delete policy {', '.join(repr(w) for w in bad) or '(empty)'}",
                        f"use a comma list of {', '.join(DELETE_POLICIES)}",
                    )
                )
        if ANNOTATION_HOOK_TIMEOUT in notes:
            try:
                parse_duration(str(notes[ANNOTATION_HOOK_TIMEOUT]))
            except ValueError as exc:
                out.append(
                    (
                        f"{what} metadata.annotations.{ANNOTATION_HOOK_TIMEOUT}",
                        f"bad hook timeout: {exc}",
                        "write a duration such as 30s, 5m or 1h",
                    )
                )
    return out
