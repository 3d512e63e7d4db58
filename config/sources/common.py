"""What every external source shares: the documents it yields, its failure, YAML without aliases."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from config.errors import Issue
from config.sandbox import YamlRefused, load_yaml_all
from config.schema import Region


@dataclass(frozen=True)
class Document:
    """One rendered object and where it came from (a repository-relative file), for messages."""

    file: str
    index: int  # its position among the documents of that file
    body: Any


class SourceFailed(Exception):
    """The source could not be rendered; `issues` name the file, the field and the fix."""

    def __init__(self, issues: list[Issue], limit_hit: bool = False):
        self.issues = issues
        self.limit_hit = limit_hit  # a time/memory/output limit: depends on the load, never remembered
        super().__init__("; ".join(str(i) for i in issues))


def substitute(pattern: str, region: Region) -> str:
    """Fill the placeholders of a source path (config.schema.PLACEHOLDERS) for one region."""
    return pattern.replace("{region}", region.name).replace("{tier}", region.tier.value)


_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_all(text: str) -> list[Any]:
    """The non-empty YAML documents of a tool's output (raises yaml.YAMLError).

    Anchors and aliases are refused first (on the event stream, nothing built): they are how a
    small text expands to a huge tree, and no rendered manifest needs them."""
    for event in yaml.parse(text, Loader=_LOADER):
        if isinstance(event, yaml.AliasEvent):
            line = event.start_mark.line + 1 if event.start_mark else 0
            raise yaml.YAMLError(
                f"alias *{event.anchor} at line {line}: rendered output may not use YAML anchors and aliases"
            )
    return [d for d in yaml.load_all(text, Loader=_LOADER) if d is not None]  # noqa: S506 - a safe loader


def load_yaml_file(path: Path, shown: str) -> tuple[list[Any], Issue | None]:
    """The documents of a repository YAML file (a kustomization, a patch, a values file), read with the
    project's capped loader before a tool sees it, or an issue naming the file and the line: a syntax
    error (or a cap hit) there is reported by line, not by a tool's message about a copy of it."""
    try:
        return load_yaml_all(path.read_text(encoding="utf-8")), None
    except YamlRefused as exc:
        line = f"line {exc.line}" if exc.line else ""
        return [], Issue(
            shown, line, exc.problem, "write the values out instead of using anchors and aliases, or nest less"
        )
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f"line {mark.line + 1}" if mark else ""
        column = f" at column {mark.column + 1}" if mark else ""
        problem = f"is not valid YAML: {exc.problem or exc.context or 'syntax error'}{column}"
        return [], Issue(shown, line, problem, "check indentation and quoting on that line")
    except yaml.YAMLError as exc:
        return [], Issue(shown, "", f"is not valid YAML: {exc}".replace("\n", " "), "check indentation and quoting")
    except (OSError, UnicodeDecodeError) as exc:
        return [], Issue(shown, "", f"cannot be read ({exc.__class__.__name__})", "make it a UTF-8 file")
