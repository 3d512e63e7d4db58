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
unknown phase in `rollout.dev/hook` or `helm.sh/hook`, a hook that is not a Job, a bad timeout.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from config.durations import parse_duration

ANNOTATION_HOOK = "rollout.dev/hook"
ANNOTATION_HOOK_TIMEOUT = "rollout.dev/hook-timeout"
HELM_HOOK = "helm.sh/hook"

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
    return Hook(tuple(p for p in PHASES if p in named), timeout)


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
