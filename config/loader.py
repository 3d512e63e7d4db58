"""Load and validate a rollout repository, reporting every problem of the repository at once.

Layout (docs/repository.md):
    regions/<region>.yaml          Region
    apps/<app>/rollout.yaml        Plan
    apps/<app>/values.yaml         AppValues
    apps/<app>/manifests/*.yaml    templates rendered per region
    freezes.yaml                   change freezes (optional; config/freezes.py)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from config.errors import InvalidRepository, Issue, field_path, problem_and_fix
from config.freezes import FILE as FREEZES_FILE
from config.freezes import Freeze, parse_freezes
from config.grants import DEFAULT_POLICY, Policy
from config.groups import dependency_issues
from config.policies import RenderMemo, repository_issues
from config.repository import AppSource, Repository
from config.sandbox import MAX_FILE_BYTES, MiB, YamlRefused, load_yaml
from config.schema import AppValues, Plan, Region
from config.templating import OutsideRepository, confined_path

M = TypeVar("M", bound=BaseModel)
_UNREADABLE = object()  # read_yaml already reported why


def load_repository(root: Path | str, grants: Policy = DEFAULT_POLICY, memo: RenderMemo | None = None) -> Repository:
    """Load `root` or raise InvalidRepository carrying every issue found; `grants` is the operator's
    policy (config/grants.py) every render of this repository is checked against. `memo`: apps
    whose dry render passed in an earlier load, not rendered again while nothing they read changed."""
    root = Path(root)
    issues: list[Issue] = []
    if not root.is_dir():
        raise InvalidRepository([Issue(str(root), "", "is not a directory", "point at a rollout repository")])
    regions = _load_regions(root, issues)
    apps = _load_apps(root, issues)
    issues += _dependency_issues(root, apps)
    freezes = _load_freezes(root, regions, apps, issues)
    repo = Repository(root=root, regions=regions, apps=apps, grants=grants, freezes=freezes)
    issues += repository_issues(repo, memo)
    if issues:
        raise InvalidRepository(issues)
    return repo


def read_yaml(root: Path, path: Path, issues: list[Issue]) -> Any:
    """The file's data, or _UNREADABLE after adding an issue. Capped (config/sandbox.py): files over
    MAX_FILE_BYTES, too deeply nested, or whose aliases expand too far are refused."""
    shown = str(path.relative_to(root))
    try:
        confined_path(root, shown)
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            issues.append(
                Issue(
                    shown,
                    "",
                    f"is {size / MiB:.1f} MiB; repository files are limited to {MAX_FILE_BYTES // MiB} MiB",
                    "keep large data out of the repository",
                )
            )
            return _UNREADABLE
        return load_yaml(path.read_text(encoding="utf-8"))
    except OutsideRepository:
        issues.append(
            Issue(shown, "", "is a symlink leading outside the repository", "replace the symlink with the file itself")
        )
    except YamlRefused as exc:
        issues.append(
            Issue(
                shown,
                f"line {exc.line}" if exc.line else "",
                exc.problem,
                "write the values out instead of using anchors and aliases, or nest less",
            )
        )
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else ""
        issues.append(
            Issue(shown, where, f"is not valid YAML ({getattr(exc, 'problem', exc)})", "check indentation and quoting")
        )
    except (OSError, UnicodeDecodeError) as exc:
        issues.append(Issue(shown, "", f"cannot be read ({exc.__class__.__name__})", "make it a UTF-8 file"))
    except (RecursionError, MemoryError, ValueError) as exc:
        issues.append(
            Issue(
                shown,
                "",
                f"cannot be loaded ({exc.__class__.__name__})",
                "simplify the file (less nesting, smaller values)",
            )
        )
    return _UNREADABLE


def _located(model: type[BaseModel], loc: tuple[int | str, ...], message: str) -> tuple[str, str]:
    """Where an error is, and its message. A check across fields (a model validator) has no location
    of its own; it names the field it is about as "<field>: ..." so that the user is sent there."""
    if loc:
        return field_path(loc), message
    field, sep, rest = message.partition(": ")
    aliases = {f.alias or name for name, f in model.model_fields.items()}
    if sep and field in aliases:
        return field, rest
    return "(top level)", message


def parse_model(model: type[M], data: Any, shown: str, issues: list[Issue]) -> M | None:
    if data is _UNREADABLE:
        return None
    if not isinstance(data, dict):
        issues.append(Issue(shown, "", "must be a YAML mapping", f"write the {model.__name__} fields as key: value"))
        return None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        for err in _without_union_noise(exc.errors()):
            where, message = _located(model, err["loc"], err["msg"].removeprefix("Value error, "))
            problem, fix = problem_and_fix(err["type"], message)
            issues.append(Issue(shown, where, problem, fix))
        return None
    except Exception as exc:  # noqa: BLE001 - a validator failing unexpectedly (e.g. OverflowError on 10**20 days)
        issues.append(
            Issue(
                shown,
                "",
                f"cannot be validated ({type(exc).__name__}: {exc})",
                "use ordinary values: numbers and durations of a sensible size",
            )
        )
        return None


def _without_union_noise(errors: list[Any]) -> list[Any]:
    """Drop "should be 'auto'" when the user clearly wrote the other branch of a union (a list)."""
    branch_errors = {e["loc"][0] for e in errors if e["type"] != "literal_error" and len(e["loc"]) > 2}
    return [
        e for e in errors if not (e["type"] == "literal_error" and len(e["loc"]) == 2 and e["loc"][0] in branch_errors)
    ]


def _load_regions(root: Path, issues: list[Issue]) -> dict[str, Region]:
    folder = root / "regions"
    files = sorted(folder.glob("*.y*ml")) if folder.is_dir() else []
    if not files:
        issues.append(Issue("regions/", "", "no region files found", "add regions/<name>.yaml per region"))
    regions: dict[str, Region] = {}
    for path in files:
        shown = str(path.relative_to(root))
        region = parse_model(Region, read_yaml(root, path, issues), shown, issues)
        if region is None:
            continue
        if region.name in regions:
            issues.append(
                Issue(
                    shown,
                    "name",
                    f"region {region.name!r} is declared twice",
                    "give each region one file and a unique name",
                )
            )
        elif path.stem != region.name:
            issues.append(
                Issue(
                    shown,
                    "name",
                    f"{region.name!r} differs from the file name",
                    f"rename the file to regions/{region.name}.yaml",
                )
            )
        regions[region.name] = region
    return regions


def _load_apps(root: Path, issues: list[Issue]) -> dict[str, AppSource]:
    folder = root / "apps"
    dirs = sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
    if not dirs:
        issues.append(Issue("apps/", "", "no applications found", "add apps/<app>/rollout.yaml"))
    apps: dict[str, AppSource] = {}
    for directory in dirs:
        plan = _load_file(root, directory / "rollout.yaml", Plan, issues)
        values = _load_file(root, directory / "values.yaml", AppValues, issues)
        if plan is not None and plan.app != directory.name:
            issues.append(
                Issue(
                    f"apps/{directory.name}/rollout.yaml",
                    "app",
                    f"{plan.app!r} differs from the folder name",
                    f"set app: {directory.name}",
                )
            )
        elif plan is not None and values is not None:
            apps[plan.app] = AppSource(plan.app, directory, plan, values)
    return apps


def _dependency_issues(root: Path, apps: dict[str, AppSource]) -> list[Issue]:
    """dependsOn (release groups, config/groups.py): known apps, no self-dependency, no cycle. An
    app whose plan did not load is still known (its folder exists): its own issue says what is wrong."""
    folder = root / "apps"
    known = {p.name for p in folder.iterdir() if p.is_dir()} if folder.is_dir() else set()
    return dependency_issues({name: app.plan.depends_on for name, app in apps.items()}, known)


def _load_freezes(
    root: Path, regions: dict[str, Region], apps: dict[str, AppSource], issues: list[Issue]
) -> tuple[Freeze, ...]:
    """freezes.yaml at the root (optional): change freezes, checked against the apps and regions."""
    path = root / FREEZES_FILE
    if not path.exists() and not path.is_symlink():
        return ()
    data = read_yaml(root, path, issues)
    if data is _UNREADABLE:
        return ()
    return tuple(parse_freezes(data, issues, apps, regions))


def _load_file(root: Path, path: Path, model: type[M], issues: list[Issue]) -> M | None:
    shown = str(path.relative_to(root))
    if not path.is_file():
        issues.append(Issue(shown, "", "is missing", f"add it (see config/examples/shop/{shown.split('/', 2)[-1]})"))
        return None
    return parse_model(model, read_yaml(root, path, issues), shown, issues)
