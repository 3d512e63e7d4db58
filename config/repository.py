"""The loaded rollout repository: regions and apps, as typed values."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from config.freezes import Freeze
from config.grants import DEFAULT_POLICY, Policy
from config.schema import AppValues, Plan, Region


@dataclass(frozen=True)
class AppSource:
    name: str
    directory: Path
    plan: Plan
    values: AppValues


@dataclass(frozen=True)
class Repository:
    root: Path
    regions: dict[str, Region]
    apps: dict[str, AppSource]
    # the operator's policy (config/grants.py), from outside Git; render() checks every output against it
    grants: Policy = DEFAULT_POLICY
    freezes: tuple[Freeze, ...] = ()  # freezes.yaml at the repository root (config/freezes.py)

    def relative(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.root))
        except ValueError:
            return str(path)


def content_digest(root: Path, app: str) -> str:
    """sha256 over everything that shapes an app's releases: its folder and the regions (templates,
    charts and overlays are confined to the app's folder, config/templating.py and config/sources).
    Stored in every Release (spec.contentDigest): its value must not change between versions."""
    digest = hashlib.sha256()
    for folder in (root / "apps" / app, root / "regions"):
        for path in sorted(p for p in folder.rglob("*") if p.is_file() or p.is_symlink()):
            digest.update(str(path.relative_to(root)).encode() + b"\0")
            digest.update((path.readlink().as_posix().encode() if path.is_symlink() else path.read_bytes()) + b"\0")
    return digest.hexdigest()
