"""Sandboxed Jinja templating confined to one directory.

Manifests and PromQL queries are written in Git by many hands and rendered by the controller, so
templates cannot run code (sandbox), cannot silently render a missing value (StrictUndefined) and
cannot read files outside the app's own directory (no `..`, no symlink pointing out).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import jinja2
from jinja2 import meta
from jinja2.sandbox import ImmutableSandboxedEnvironment

# Variables a PromQL template may use; each analysis run supplies all of them.
QUERY_VARIABLES = frozenset({"app", "namespace", "region", "release", "version", "track", "interval",
                             "stable_version"})


class OutsideRepository(jinja2.TemplateNotFound):
    """A template path that leaves its root directory."""


def confined_path(root: Path, relative: str) -> Path:
    """Resolve `relative` under `root`, refusing `..` and symlinks that lead outside."""
    if Path(relative).is_absolute() or ".." in Path(relative).parts:
        raise OutsideRepository(f"{relative} (paths may not be absolute or contain '..')")
    real_root = root.resolve()
    target = (root / relative).resolve()
    if target != real_root and real_root not in target.parents:
        raise OutsideRepository(f"{relative} (it resolves outside {root.name}/ through a symlink)")
    return target


class ConfinedLoader(jinja2.BaseLoader):
    def __init__(self, root: Path):
        self.root = root

    def get_source(self, environment: jinja2.Environment, template: str) -> tuple[str, str, Callable[[], bool]]:
        path = confined_path(self.root, template)
        if not path.is_file():
            raise jinja2.TemplateNotFound(template)
        mtime = path.stat().st_mtime
        return path.read_text(encoding="utf-8"), str(path), lambda: path.stat().st_mtime == mtime


def _to_yaml(value: Any) -> str:
    import yaml

    return yaml.safe_dump(value, default_flow_style=True, sort_keys=True).strip()


def environment(root: Path | None = None) -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(
        loader=ConfinedLoader(root) if root else None,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters["to_yaml"] = _to_yaml
    return env


def undeclared_variables(source: str) -> set[str]:
    """Variables a template reads from its context (raises jinja2.TemplateSyntaxError)."""
    return set(meta.find_undeclared_variables(environment().parse(source)))


def render_query(source: str, variables: dict[str, Any]) -> str:
    """Render a PromQL template; unknown or missing variables raise."""
    unknown = undeclared_variables(source) - QUERY_VARIABLES
    if unknown:
        raise jinja2.UndefinedError(f"unknown variable(s) {', '.join(sorted(unknown))}")
    return environment().from_string(source).render(**variables)
