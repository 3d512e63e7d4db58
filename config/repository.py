"""The loaded rollout repository: regions and apps, as typed values."""

from __future__ import annotations

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
