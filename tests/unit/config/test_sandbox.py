"""Template, YAML and condition bombs: each is refused within its limit with the message it must
produce, and this (the parent) process carries on. Limits are small here so the suite stays fast."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from config import sandbox
from config.errors import InvalidRepository
from config.expressions import ConditionError, parse_condition
from config.identity import ReleaseIdentity
from config.loader import load_repository
from config.render import RenderFailed, render
from config.repository import Repository
from config.templating import QueryRenderFailed, render_query, undeclared_variables
from tests.conftest import EXAMPLE

IDENTITY = ReleaseIdentity("3f2a9c1d0e4b5a69788796a5b4c3d2e1f0a9b8c7", "3.2.0")
SMALL = {"wall_seconds": 20.0, "cpu_seconds": 1, "memory_bytes": 384 * sandbox.MiB, "output_bytes": sandbox.MiB}


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example's regions and its `search` app only (other example apps may need tools)."""
    root = tmp_path_factory.mktemp("sandbox") / "shop"
    shutil.copytree(EXAMPLE / "regions", root / "regions")
    shutil.copytree(EXAMPLE / "apps" / "search", root / "apps" / "search")
    return root


@pytest.fixture(scope="module")
def repo(shop: Path) -> Repository:
    return load_repository(shop)


@pytest.fixture(autouse=True)
def small_limits() -> Iterator[None]:
    with sandbox.limits(**SMALL):
        yield


def issues_of(repo: Repository, template: str, name: str = "zz-bomb.yaml") -> tuple[list[str], float]:
    """Render `search` in eu-west with one extra template; the issues as text and the seconds taken."""
    path = repo.root / "apps" / "search" / "manifests" / name
    path.write_text(template, encoding="utf-8")
    started = time.monotonic()
    try:
        render(repo, "search", "eu-west", IDENTITY)
    except RenderFailed as failed:
        return [str(i) for i in failed.issues], time.monotonic() - started
    finally:
        path.unlink()
    raise AssertionError("the bomb rendered")


def one(messages: list[str]) -> str:
    assert len(messages) == 1, messages
    return messages[0]


# --- templates ------------------------------------------------------------------------------------


def test_the_example_still_renders_in_the_sandbox(repo: Repository) -> None:
    kinds = sorted(o["kind"] for o in render(repo, "search", "eu-west", IDENTITY).objects)
    assert kinds == ["Deployment", "Service"]


def test_a_power_is_not_folded_in_this_process_and_a_huge_one_is_refused(repo: Repository) -> None:
    # Jinja's ** is left-associative: (9**9)**9 is a 78-digit number, rendered in the child (not
    # folded at compile time here), and then refused because it is not an object.
    messages, seconds = issues_of(repo, "{{ 9**9**9 }}\n")
    assert "zz-bomb.yaml: document[0]: is not a Kubernetes object" in one(messages)
    messages, seconds = issues_of(repo, "{{ 9**(9**9) }}\n")
    assert "the template sandbox refused: 9 ** 387420489 is too large (over 4096 bits)" in one(messages)
    assert seconds < 5
    assert undeclared_variables("{{ 9**(9**9) }}{{ ''|center(1000000000) }}") == set()  # parsed, not compiled


def test_nested_loops_stop_at_the_cpu_limit(repo: Repository) -> None:
    bomb = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
    messages, seconds = issues_of(repo, bomb)
    assert one(messages) == (
        "apps/search/manifests/zz-bomb.yaml: render exceeded 1 s of CPU time. "
        "Fix: make the templates render faster (fewer or smaller loops, no huge arithmetic)"
    )
    assert seconds < SMALL["wall_seconds"]


def test_nested_loops_that_write_stop_at_the_output_limit(repo: Repository) -> None:
    bomb = "{% for i in range(100000) %}{% for j in range(100000) %}xxxxxxxx{% endfor %}{% endfor %}"
    messages, _ = issues_of(repo, bomb)
    assert one(messages) == (
        "apps/search/manifests/zz-bomb.yaml: render exceeded 1 MiB of output. "
        "Fix: render fewer or smaller objects (or split the app)"
    )


def test_a_huge_repetition_is_refused(repo: Repository) -> None:
    messages, _ = issues_of(repo, "{{ 'a' * 10**9 }}")
    assert "the template sandbox refused: repeating a str of length 1 1000000000 times is too large" in one(messages)


def test_a_huge_allocation_stops_at_the_memory_limit(repo: Repository) -> None:
    messages, _ = issues_of(repo, "{% set x = ''|center(10**9) %}")
    assert one(messages) == (
        "apps/search/manifests/zz-bomb.yaml: render exceeded 384 MiB of memory. "
        "Fix: make the templates and params build smaller values"
    )


def test_division_by_zero_is_an_issue_with_its_line(repo: Repository) -> None:
    messages, _ = issues_of(repo, "kind: ConfigMap\n\ndata: {{ 1/0 }}\n")
    assert one(messages) == (
        "apps/search/manifests/zz-bomb.yaml: line 3: template failed: ZeroDivisionError: "
        "division by zero. Fix: correct the template (e.g. guard the division or the argument)"
    )


def test_a_macro_calling_itself_is_an_issue(repo: Repository) -> None:
    messages, _ = issues_of(repo, "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}")
    assert "zz-bomb.yaml: line 1: template error: recursion too deep (a macro that calls itself?)" in one(messages)


def test_an_alias_bomb_in_a_rendered_manifest_is_refused(repo: Repository) -> None:
    messages, _ = issues_of(repo, _alias_bomb(depth=6))
    assert "rendered YAML aliases expand to more than 10000 nodes (an alias bomb)" in one(messages)


def test_a_50_mb_template_is_refused_before_it_is_read(repo: Repository) -> None:
    path = repo.root / "apps" / "search" / "manifests" / "huge.yaml"
    with path.open("wb") as f:
        f.truncate(50 * sandbox.MiB)  # sparse: nothing is written
    try:
        with pytest.raises(RenderFailed) as failed:
            render(repo, "search", "eu-west", IDENTITY)
    finally:
        path.unlink()
    assert [str(i) for i in failed.value.issues] == [
        "apps/search/manifests/huge.yaml: manifests/huge.yaml is 50.0 MiB; templates are limited to 1 MiB. "
        "Fix: split the template or move data out of the repository"
    ]


def test_the_render_helper_survives_its_workers_being_killed(repo: Repository) -> None:
    issues_of(repo, "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}")
    assert render(repo, "search", "eu-west", IDENTITY).objects


def _sleeper(progress: Callable[[str], None], seconds: float) -> str:
    progress("apps/slow/manifests/sleep.yaml")
    time.sleep(seconds)
    return "woke"


def test_the_wall_clock_limit_names_the_file_in_progress() -> None:
    started = time.monotonic()
    with pytest.raises(sandbox.LimitExceeded) as exceeded:
        sandbox.call(f"{__name__}:_sleeper", (30,), sandbox.Limits(wall_seconds=0.5, cpu_seconds=5))
    assert time.monotonic() - started < 5
    assert exceeded.value.limit == "wall" and exceeded.value.where == "apps/slow/manifests/sleep.yaml"
    assert str(exceeded.value) == "render exceeded 0.5 s of wall-clock time"
    assert sandbox.call(f"{__name__}:_sleeper", (0,)) == "woke"


def test_the_answer_may_only_be_plain_data() -> None:
    with pytest.raises(sandbox.ChildFailed, match="the answer could not be read: .*pathlib"):
        sandbox.call(f"{__name__}:_not_plain", ())  # the restricted unpickler refuses; nothing runs here


def _not_plain(progress: Callable[[str], None]) -> Any:
    return Path("/")


# --- queries --------------------------------------------------------------------------------------


def test_query_bombs_are_template_errors() -> None:
    variables = {"app": "search", "interval": "1m"}
    assert render_query('rate(x{app="{{ app }}"}[{{ interval }}])', variables) == 'rate(x{app="search"}[1m])'
    with pytest.raises(QueryRenderFailed, match="ZeroDivisionError: division by zero"):
        render_query("{{ app }}{{ 1/0 }}", variables)
    with pytest.raises(QueryRenderFailed, match="render exceeded 1 s of CPU time"):
        render_query("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", variables)


# --- YAML in the repository -----------------------------------------------------------------------


def _alias_bomb(depth: int) -> str:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, depth + 1):
        ref = f"*a{level - 1}"
        lines.append(f"a{level}: &a{level} [{', '.join([ref] * 9)}]")
    return "kind: ConfigMap\nmetadata: {name: bomb}\ndata:\n" + "\n".join("  " + line for line in lines) + "\n"


def load_issues(shop: Path, tmp_path: Path, files: dict[str, str | int]) -> list[str]:
    """Load a copy of `shop` with `files` replaced (an int: a sparse file of that size)."""
    root = tmp_path / "shop"
    shutil.copytree(shop, root)
    for name, content in files.items():
        if isinstance(content, int):
            with (root / name).open("wb") as f:
                f.truncate(content)
        else:
            (root / name).write_text(content, encoding="utf-8")
    with pytest.raises(InvalidRepository) as invalid:
        load_repository(root)
    return [str(i) for i in invalid.value.issues]


def test_an_alias_bomb_in_values_params_is_refused(shop: Path, tmp_path: Path) -> None:
    values = _values_with_bomb(shop)
    assert len(values) < 1000  # a few hundred bytes that would expand to millions of nodes
    messages = load_issues(shop, tmp_path, {"apps/search/values.yaml": values})
    assert one(messages).startswith("apps/search/values.yaml: line 1")
    assert "aliases expand to more than 10000 nodes (an alias bomb). Fix: write the values out" in one(messages)


def _values_with_bomb(shop: Path) -> str:
    bomb = "\n".join("  " + line for line in _alias_bomb(6).split("data:\n", 1)[1].splitlines())
    text = (shop / "apps/search/values.yaml").read_text()
    return text.replace("params:\n", "params:\n" + bomb + "\n", 1)


def test_a_value_that_breaks_a_validator_is_an_issue(shop: Path, tmp_path: Path) -> None:
    huge = "smokeWindow: 99999999999999999999d"
    plan = (shop / "apps/search/rollout.yaml").read_text().replace("smokeWindow: 5m", huge)
    messages = load_issues(shop, tmp_path, {"apps/search/rollout.yaml": plan})
    assert one(messages).startswith("apps/search/rollout.yaml: cannot be validated (OverflowError: ")


def test_a_50_mb_values_file_is_refused_before_it_is_read(shop: Path, tmp_path: Path) -> None:
    messages = load_issues(shop, tmp_path, {"apps/search/values.yaml": 50 * sandbox.MiB})
    assert messages == [
        "apps/search/values.yaml: is 50.0 MiB; repository files are limited to 1 MiB. "
        "Fix: keep large data out of the repository"
    ]


@pytest.mark.parametrize(
    "text, problem",
    [
        ("a: &a [*a]\n", "alias *a refers to a node that contains it (a cycle)"),
        ("a: " + "[" * 100 + "]" * 100 + "\n", "nests deeper than 64 levels"),
        (
            "".join(f"k{i}: &x{i} 1\n" for i in range(101)) + "l: [" + ", ".join(f"*x{i}" for i in range(101)) + "]\n",
            "has more than 100 aliases",
        ),
    ],
)
def test_yaml_caps(text: str, problem: str) -> None:
    with pytest.raises(sandbox.YamlRefused, match=problem.replace("*", r"\*").replace("(", r"\(").replace(")", r"\)")):
        sandbox.load_yaml(text)


def test_ordinary_anchors_are_still_allowed() -> None:
    assert sandbox.load_yaml("base: &b {cpu: 1}\nprod: *b\n") == {"base": {"cpu": 1}, "prod": {"cpu": 1}}


# --- conditions -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "condition, message",
    [
        ("max() < 1", "max() takes at least 2 arguments, not 0; e.g. max(1.5 * baseline, 0.001)"),
        ("max(result) < 1", "max() takes at least 2 arguments, not 1"),
        ("abs(result, baseline) < 1", "abs() takes exactly 1 argument, not 2; e.g. abs(result - baseline)"),
        (" + ".join(["result"] * 3000) + " < 1", "the condition is 27001 characters; at most 1000 are allowed"),
        (" + ".join(["result"] * 100) + " < 1", "the condition nests more than 32 levels (each operator is one)"),
        ("(" * 3000 + "result" + ")" * 3000 + " < 1", "the condition is 6010 characters"),
        ("not " * 40 + "result < 1", "nests more than 32 levels"),
    ],
)
def test_conditions_are_checked_at_parse_time(condition: str, message: str) -> None:
    with pytest.raises(ConditionError) as refused:
        parse_condition(condition)
    assert message in str(refused.value)


def test_a_bad_condition_in_a_plan_is_an_issue_naming_the_field(shop: Path, tmp_path: Path) -> None:
    plan = (shop / "apps/search/rollout.yaml").read_text()
    assert "analysis:" not in plan
    plan += (
        "analysis:\n  checks:\n    - name: error-ratio\n      query: 'up'\n"
        "      successCondition: 'abs(result, 1) < 2'\n"
    )
    messages = load_issues(shop, tmp_path, {"apps/search/rollout.yaml": plan})
    assert one(messages).startswith(
        "apps/search/rollout.yaml: analysis.checks[0].successCondition: abs() takes exactly 1 argument, not 2"
    )
