"""The shipped region deployer role grants exactly what the controller does with the kinds every
app may render (config/grants.py DEFAULT_KINDS): a kind missing from it made the first hook Job or
prune of an app fail with 403 in every region installed from deploy/base."""

from __future__ import annotations

from pathlib import Path

import yaml

from config.grants import DEFAULT_KINDS

ROLE = Path(__file__).resolve().parents[2] / "deploy/base/region/deployer.yaml"
VERBS = {"get", "list", "create", "patch", "delete"}  # ownership check, observe/prune, apply, prune


def _plural(kind: str) -> str:
    lower = kind.lower()
    return lower + ("es" if lower.endswith("s") else "s")


def _rules() -> list[dict[str, list[str]]]:
    docs = [d for d in yaml.safe_load_all(ROLE.read_text()) if d]
    role = next(d for d in docs if d["kind"] == "ClusterRole" and d["metadata"]["name"] == "rollout-region-deployer")
    return list(role["rules"])


def test_every_default_kind_has_the_verbs_the_controller_uses() -> None:
    rules = _rules()
    for group, kind in sorted(DEFAULT_KINDS):
        granted = {
            verb
            for rule in rules
            if group in rule["apiGroups"] and _plural(kind) in rule["resources"]
            for verb in rule["verbs"]
        }
        assert granted >= VERBS, f"{group or 'core'}/{kind}: missing {sorted(VERBS - granted)} in {ROLE}"


def test_nothing_beyond_the_default_kinds_namespaces_and_events() -> None:
    allowed = {(g, _plural(k)) for g, k in DEFAULT_KINDS} | {("", "namespaces"), ("", "events")}
    for rule in _rules():
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                assert (group, resource) in allowed, f"{group or 'core'}/{resource} is not an application kind"
        assert "*" not in rule["verbs"] and "escalate" not in rule["verbs"] and "bind" not in rule["verbs"]
