"""A Helm chart kept in the app's folder, rendered with the pinned `helm template`.

Before helm runs, the chart is checked (pure functions, unit-tested): every dependency of
Chart.yaml is vendored under charts/ (no chart repository is ever contacted); no template calls
`lookup` (there is no cluster to read: the result would silently be empty); no template calls a
function whose output changes on every render (random values, the current time, generated keys),
since the same commit must render the same bytes. Then `helm template` runs in a private copy of
the app's folder (config/sources/confine.py) under the tool limits, with --skip-tests, with the
chart's hooks (their `helm.sh/hook` annotations map onto the release's hook phases in
config/hooks.py; the controller runs them as hook Jobs, never with the release) and with the
controller's values last: `rollout:` (and `global.rollout:` for subcharts) holds the app,
namespace, image, version, release identity, region and merged params.
"""

from __future__ import annotations

import io
import re
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from config.errors import Issue
from config.schema import HelmSource
from config.sources.common import load_yaml_file

# Template functions refused, and why.
LOOKUP = re.compile(r"(?<![.$\w])lookup\b")  # a call, not .Values.lookup
NONDETERMINISTIC = re.compile(
    r"(?<![.$\w])(randAlphaNum|randAlpha|randNumeric|randAscii|randBytes|randInt|uuidv4|now|"
    r"genPrivateKey|genCA|genCAWithKey|genSelfSignedCert|genSelfSignedCertWithKey|genSignedCert|"
    r"genSignedCertWithKey|htpasswd|bcrypt|encryptAES)\b"
)
_ACTION = re.compile(r"\{\{(.*?)\}\}", re.S)
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|`[^`]*`')
_TEMPLATE_SUFFIXES = (".yaml", ".yml", ".tpl", ".txt", ".json")
MAX_TEMPLATE_BYTES = 1024 * 1024


def chart_issues(chart_dir: Path, shown: str) -> list[Issue]:
    """Everything refused in a chart folder before helm runs; `shown` is its repository-relative path."""
    chart_file = chart_dir / "Chart.yaml"
    if not chart_file.is_file():
        return [
            Issue(
                shown,
                "",
                "has no Chart.yaml",
                "point source.helm.chart at the chart's folder "
                "(the one holding Chart.yaml, values.yaml and templates/)",
            )
        ]
    issues = list(_dependency_issues(chart_dir, shown))
    if (chart_dir / "values.yaml").is_file():  # its syntax errors by line, before helm reads it
        _, unreadable = load_yaml_file(chart_dir / "values.yaml", f"{shown}/values.yaml")
        issues += [unreadable] if unreadable is not None else []
    for relative, text in sorted(_templates(chart_dir)):
        issues += template_issues(text, f"{shown}/{relative}")
    return issues


def _dependency_issues(chart_dir: Path, shown: str) -> Iterator[Issue]:
    documents, unreadable = load_yaml_file(chart_dir / "Chart.yaml", f"{shown}/Chart.yaml")
    if unreadable is not None:
        yield unreadable
        return
    chart = (documents[0] if documents else None) or {}
    if not isinstance(chart, dict):
        yield Issue(f"{shown}/Chart.yaml", "", "is not a mapping", "write Chart.yaml fields as key: value")
        return
    vendored = vendored_charts(chart_dir)
    for i, dependency in enumerate(chart.get("dependencies") or []):
        name = str((dependency or {}).get("name", ""))
        if name not in vendored:
            yield Issue(
                f"{shown}/Chart.yaml",
                f"dependencies[{i}]",
                f"dependency {name!r} is not vendored under charts/ (the controller renders without "
                "network and never contacts a chart repository)",
                f"run `helm dependency build {shown}` where the repository is reachable and commit "
                f"charts/{name}-<version>.tgz (or the unpacked charts/{name}/)",
            )
    for sub in sorted((chart_dir / "charts").glob("*/Chart.yaml")) if (chart_dir / "charts").is_dir() else []:
        yield from _dependency_issues(sub.parent, f"{shown}/charts/{sub.parent.name}")


def vendored_charts(chart_dir: Path) -> set[str]:
    """Names of the charts under charts/: unpacked folders and packaged .tgz files."""
    folder = chart_dir / "charts"
    names: set[str] = set()
    if not folder.is_dir():
        return names
    for entry in folder.iterdir():
        if entry.is_dir() and (entry / "Chart.yaml").is_file():
            names.add(_chart_name(entry / "Chart.yaml") or entry.name)
        elif entry.name.endswith(".tgz") and entry.is_file():
            names.add(_packaged_name(entry) or entry.name.rsplit("-", 1)[0])
    return names


def _chart_name(path: Path) -> str | None:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, OSError, UnicodeDecodeError):
        return None
    return str(data["name"]) if isinstance(data, dict) and data.get("name") else None


def _packaged_name(path: Path) -> str | None:
    try:
        with tarfile.open(path, "r:gz") as archive:
            for member in archive.getmembers():
                if member.isfile() and member.name.count("/") == 1 and member.name.endswith("/Chart.yaml"):
                    extracted = archive.extractfile(member)
                    if extracted is None or member.size > MAX_TEMPLATE_BYTES:
                        return None
                    data = yaml.safe_load(io.TextIOWrapper(extracted, encoding="utf-8").read())
                    return str(data["name"]) if isinstance(data, dict) and data.get("name") else None
    except (tarfile.TarError, OSError, yaml.YAMLError, UnicodeDecodeError):
        return None
    return None


def _templates(chart_dir: Path) -> Iterator[tuple[str, str]]:
    """(path relative to the chart, text) of every template, packaged subcharts included."""
    for path in sorted(chart_dir.rglob("*")):
        relative = path.relative_to(chart_dir)
        if "templates" not in relative.parts or not path.is_file():
            continue
        if path.name.endswith(_TEMPLATE_SUFFIXES) and path.stat().st_size <= MAX_TEMPLATE_BYTES:
            yield str(relative), path.read_text(encoding="utf-8", errors="replace")
    for packaged in sorted(chart_dir.rglob("charts/*.tgz")):
        try:
            with tarfile.open(packaged, "r:gz") as archive:
                for member in archive.getmembers():
                    parts = member.name.split("/")
                    if (
                        member.isfile()
                        and "templates" in parts
                        and member.size <= MAX_TEMPLATE_BYTES
                        and member.name.endswith(_TEMPLATE_SUFFIXES)
                    ):
                        extracted = archive.extractfile(member)
                        if extracted is not None:
                            yield (
                                f"{packaged.relative_to(chart_dir)}:{member.name}",
                                extracted.read().decode("utf-8", "replace"),
                            )
        except (tarfile.TarError, OSError):
            continue  # helm reports an unreadable archive itself


def template_issues(text: str, shown: str) -> list[Issue]:
    """`lookup` and render-to-render varying functions used in one template's actions."""
    issues: list[Issue] = []
    for action in _ACTION.finditer(text):
        body = _STRING.sub('""', action.group(1))  # a word inside a string literal is not a call
        if body.lstrip("- ").startswith("/*"):
            continue  # a comment
        line = text.count("\n", 0, action.start()) + 1
        if LOOKUP.search(body):
            issues.append(
                Issue(
                    shown,
                    f"line {line}",
                    "calls lookup, which reads the live cluster; the controller "
                    "renders without a cluster, so it would always return nothing",
                    "pass the value in through values (values.yaml or the region's values file)",
                )
            )
        for found in NONDETERMINISTIC.finditer(body):
            issues.append(
                Issue(
                    shown,
                    f"line {line}",
                    f"calls {found.group(1)}, whose result differs on every render "
                    "(the same commit must render the same bytes)",
                    "pass the value in through values, or create it outside the chart (e.g. a Secret)",
                )
            )
    return issues


def values_files(
    source: HelmSource, substituted: list[str], app_dir: Path, shown_root: str, plan_file: str
) -> tuple[list[str], list[Issue]]:
    """The values files that exist for this region (relative to the app folder), and issues for missing ones."""
    found: list[str] = []
    issues: list[Issue] = []
    for i, relative in enumerate(substituted):
        if (app_dir / relative).is_file():
            found.append(relative)
            _, unreadable = load_yaml_file(app_dir / relative, f"{shown_root}/{relative}")
            issues += [unreadable] if unreadable is not None else []
        elif not source.ignore_missing_values_files:
            issues.append(
                Issue(
                    plan_file,
                    f"source.helm.valuesFiles[{i}]",
                    f"{shown_root}/{relative} does not exist",
                    "add the file, or set ignoreMissingValuesFiles: true to skip missing ones",
                )
            )
    return found, issues


def controller_values(context: dict[str, Any]) -> dict[str, Any]:
    """The values the controller passes last: its template context under `rollout` and `global.rollout`."""
    return {"rollout": context, "global": {"rollout": context}}


def template_args(release: str, chart: str, namespace: str, values: list[str]) -> list[str]:
    args = ["template", release, chart, "--namespace", namespace, "--skip-tests"]
    for path in values:
        args += ["--values", path]
    return args


_SOURCE = re.compile(r"^# Source: (\S+)\s*$", re.M)
_ERROR_AT = re.compile(
    r"(?:template: |\(|YAML parse error on |in )([\w.-]+/(?:charts/|templates/)[^\s:()\"]+)"
    r"(?::(\d+))?"
)


_RENDERED_LINE = re.compile(r"yaml: line (\d+)")
_DEBUG_HINT = re.compile(r"\s*Use --debug flag to render out invalid YAML\.?")


def split_output(text: str) -> Iterator[tuple[str, str]]:
    """(chart-relative source, YAML text) per document of `helm template` output."""
    for chunk in re.split(r"^---[ \t]*$", text, flags=re.M):
        if not chunk.strip():
            continue
        source = _SOURCE.search(chunk)
        yield (source.group(1) if source else ""), chunk


def shown_source(source: str, chart_shown: str) -> str:
    """`web/templates/x.yaml` (chart name first) -> `apps/web/chart/templates/x.yaml`."""
    _, _, rest = source.partition("/")
    return f"{chart_shown}/{rest}" if rest else chart_shown


def error_issue(message: str, chart_shown: str, scratch: str, app_shown: str) -> Issue:
    """A helm error as an issue pointing at the chart file and line it names."""
    text = message.replace(scratch + "/app", app_shown).replace(scratch, "<render folder>")
    text = re.sub(r"^Error: ", "", text.strip()).replace("\n", " ")
    text = _DEBUG_HINT.sub("", text).strip()  # the controller's helm takes no --debug: noise here
    # the last place named is the innermost: a helper in _helpers.tpl, not the template including it
    where = next(reversed(list(_ERROR_AT.finditer(text))), None)
    if where:
        rendered = _RENDERED_LINE.search(text)  # a YAML error helm found in a template's output
        line = f"line {where.group(2)}" if where.group(2) else f"rendered line {rendered.group(1)}" if rendered else ""
        return Issue(
            shown_source(where.group(1), chart_shown),
            line,
            f"helm template failed: {text}",
            "correct the template or the values it reads (helm template reproduces it)",
        )
    return Issue(
        f"{chart_shown}/Chart.yaml",
        "",
        f"helm template failed: {text}",
        "correct the chart (helm template reproduces it)",
    )
