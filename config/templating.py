"""Sandboxed Jinja templating confined to one directory.

Manifests and PromQL queries are written in Git by many hands and rendered by the controller, so
templates cannot run code (sandbox), cannot silently render a missing value (StrictUndefined) and
cannot read files outside the app's own directory (no `..`, no symlink pointing out).

Rendering itself runs in a limited child process (config/sandbox.py): the controller process only
parses templates. Arithmetic operators are intercepted, so Jinja never folds `{{ 9**9**9 }}` at
compile time, and a power or a repetition too large to be useful is refused with a message.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

from config import sandbox

# Variables a PromQL template may use; each analysis run supplies all of them.
QUERY_VARIABLES = frozenset({"app", "namespace", "region", "release", "version", "track", "interval", "stable_version"})


MAX_QUERY_CHARS = 16_384  # a PromQL template
_MAX_POWER_BITS = 4096  # an integer power with a longer result is refused
_MAX_REPEAT = 1_000_000  # items or characters made by `*` on a string or list


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
        if path.stat().st_size > sandbox.MAX_FILE_BYTES:
            raise TemplateTooLarge(
                f"{template} is {path.stat().st_size / sandbox.MiB:.1f} MiB; templates "
                f"are limited to {sandbox.MAX_FILE_BYTES // sandbox.MiB} MiB"
            )
        mtime = path.stat().st_mtime
        return path.read_text(encoding="utf-8"), str(path), lambda: path.stat().st_mtime == mtime


class TemplateTooLarge(jinja2.TemplateError):
    """A template file over sandbox.MAX_FILE_BYTES."""


class _Environment(ImmutableSandboxedEnvironment):
    """The sandbox with `**` and `*` intercepted: never folded at compile time, refused when huge."""

    intercepted_binops = frozenset({"**", "*"})

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "**":
            if (
                isinstance(left, int)
                and isinstance(right, int)
                and abs(left) > 1
                and right > 0
                and right * math.log2(abs(left)) > _MAX_POWER_BITS
            ):
                raise SecurityError(f"{left} ** {right} is too large (over {_MAX_POWER_BITS} bits)")
            return left**right
        for count, other in ((left, right), (right, left)):
            if isinstance(count, int) and isinstance(other, str | list | tuple) and count * len(other) > _MAX_REPEAT:
                raise SecurityError(
                    f"repeating a {type(other).__name__} of length {len(other)} {count} times "
                    f"is too large (over {_MAX_REPEAT})"
                )
        return left * right


def _to_yaml(value: Any) -> str:
    import yaml

    return yaml.safe_dump(value, default_flow_style=True, sort_keys=True).strip()


def environment(root: Path | None = None) -> ImmutableSandboxedEnvironment:
    env = _Environment(
        loader=ConfinedLoader(root) if root else None,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters["to_yaml"] = _to_yaml
    return env


def parse(source: str) -> nodes.Template:
    """Parse a template without compiling it (raises jinja2.TemplateSyntaxError, for any failure)."""
    try:
        return environment().parse(source)
    except jinja2.TemplateSyntaxError:
        raise
    except (RecursionError, MemoryError):
        raise jinja2.TemplateSyntaxError("the template nests too deeply", 1) from None
    except Exception as exc:  # noqa: BLE001 - any parser failure is a syntax problem of the template
        raise jinja2.TemplateSyntaxError(f"{type(exc).__name__}: {exc}", 1) from None


def undeclared_variables(source: str) -> set[str]:
    """Variables a template reads from its context (raises jinja2.TemplateSyntaxError).

    Walks the parsed template instead of compiling it (jinja2.meta compiles, and compiling folds
    constant expressions and filters in this process)."""
    if len(source) > MAX_QUERY_CHARS:
        raise jinja2.TemplateSyntaxError(
            f"the template is {len(source)} characters; at most {MAX_QUERY_CHARS} are allowed", 1
        )
    tree = parse(source)
    try:
        names = list(tree.find_all(nodes.Name))
    except RecursionError:
        raise jinja2.TemplateSyntaxError("the template nests too deeply", 1) from None
    stored = {n.name for n in names if n.ctx in ("store", "param")}
    stored |= {str(a.name) for m in tree.find_all(nodes.Macro) for a in m.args}
    return {n.name for n in names if n.ctx == "load"} - stored - set(environment().globals)


class QueryRenderFailed(jinja2.TemplateRuntimeError):
    """A query template that failed or hit a sandbox limit while rendering."""


def render_query(source: str, variables: dict[str, Any]) -> str:
    """Render a PromQL template in the sandbox; unknown or missing variables or any failure raise
    a jinja2.TemplateError. Same source and variables give the same text, so results are cached."""
    unknown = undeclared_variables(source) - QUERY_VARIABLES
    if unknown:
        raise jinja2.UndefinedError(f"unknown variable(s) {', '.join(sorted(unknown))}")
    try:
        key = (source, tuple(sorted(variables.items())))
        hash(key)
    except TypeError:
        return _render_query(source, variables)
    return _cached_query(key)


@functools.lru_cache(maxsize=1024)
def _cached_query(key: tuple[str, tuple[tuple[str, Any], ...]]) -> str:
    return _render_query(key[0], dict(key[1]))


def _render_query(source: str, variables: dict[str, Any]) -> str:
    limits = sandbox.current_limits()
    limits = sandbox.Limits(
        min(limits.wall_seconds, 5.0),
        min(limits.cpu_seconds, 2),
        limits.memory_bytes,
        min(limits.output_bytes, sandbox.MiB),
    )
    try:
        result, error = sandbox.call("config.templating:render_query_here", (source, variables), limits)
    except (sandbox.LimitExceeded, sandbox.ChildFailed) as exc:
        raise QueryRenderFailed(str(exc)) from None
    if error:
        raise QueryRenderFailed(error)
    return str(result)


def render_query_here(progress: Callable[[str], None], source: str, variables: dict[str, Any]) -> tuple[str, str]:
    """In the sandbox child: (text, "") or ("", why it failed)."""
    try:
        template = environment().from_string(source)
        out: list[str] = []
        size = 0
        for chunk in template.generate(**variables):
            size += len(chunk)
            if size > sandbox.MiB:
                return "", f"the query renders to more than {sandbox.MiB} characters"
            out.append(chunk)
        return "".join(out), ""
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - reported to the caller as a template error
        return "", f"{type(exc).__name__}: {exc}"
