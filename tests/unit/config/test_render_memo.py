"""A load renders again only the apps whose inputs changed (config/policies.py RenderMemo): a push
that changes one app of a thousand must not render every app in every region again (issue 15:
push -> first region grew with the number of apps), and must never skip a render that would fail."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from config import policies
from config.errors import InvalidRepository
from config.grants import Policy
from config.loader import load_repository
from config.policies import RenderMemo
from config.repository import AppSource, Repository
from tests.conftest import EXAMPLE


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    root = tmp_path / "shop"
    shutil.copytree(EXAMPLE, root)
    return root


@pytest.fixture
def rendered(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The apps rendered, in order, by every load of the test."""
    seen: list[str] = []
    real = policies._render_issues

    def counting(repo: Repository, app: AppSource) -> list[object]:
        seen.append(app.name)
        return real(repo, app)  # type: ignore[return-value]

    monkeypatch.setattr(policies, "_render_issues", counting)
    return seen


def bump(root: Path, app: str, version: str) -> None:
    path = root / "apps" / app / "values.yaml"
    data = yaml.safe_load(path.read_text())
    data["version"] = version
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def test_a_second_load_renders_only_the_app_that_changed(shop: Path, rendered: list[str]) -> None:
    memo = RenderMemo()
    apps = sorted(load_repository(shop, memo=memo).apps)
    assert sorted(rendered) == apps
    rendered.clear()
    load_repository(shop, memo=memo)
    assert rendered == []  # nothing changed: nothing rendered
    bump(shop, "checkout", "9.9.9")
    load_repository(shop, memo=memo)
    assert rendered == ["checkout"]


def test_without_a_memo_every_load_renders_every_app(shop: Path, rendered: list[str]) -> None:
    apps = load_repository(shop).apps
    load_repository(shop)
    assert sorted(rendered) == sorted(2 * list(apps))


def test_a_change_to_the_regions_renders_every_app_again(shop: Path, rendered: list[str]) -> None:
    memo = RenderMemo()
    apps = load_repository(shop, memo=memo).apps
    rendered.clear()
    region = next((shop / "regions").glob("*.yaml"))
    data = yaml.safe_load(region.read_text())
    data.setdefault("params", {})["replicas"] = 7
    region.write_text(yaml.safe_dump(data, sort_keys=False))
    load_repository(shop, memo=memo)
    assert sorted(rendered) == sorted(apps)


def test_another_operator_policy_renders_every_app_again(shop: Path, rendered: list[str]) -> None:
    memo = RenderMemo()
    apps = load_repository(shop, memo=memo).apps
    rendered.clear()
    stricter = Policy.model_validate({"default": {"namespaces": ["nowhere"]}})
    with pytest.raises(InvalidRepository, match="nowhere"):  # refused under it: so it did render
        load_repository(shop, stricter, memo=memo)
    assert sorted(rendered) == sorted(apps)


def test_an_app_that_passed_then_breaks_is_refused_not_skipped(shop: Path, rendered: list[str]) -> None:
    memo = RenderMemo()
    load_repository(shop, memo=memo)
    template = shop / "apps" / "checkout" / "manifests" / "deployment.yaml"
    template.write_text(template.read_text().replace("{{ params.port }}", "{{ params.no_such_param }}", 1))
    with pytest.raises(InvalidRepository, match="no_such_param"):
        load_repository(shop, memo=memo)


def test_a_failed_render_is_not_remembered_and_is_tried_again(shop: Path, rendered: list[str]) -> None:
    """A refusal may be a limit hit on a busy machine: the next load renders the app again."""
    memo = RenderMemo()
    template = shop / "apps" / "checkout" / "manifests" / "deployment.yaml"
    template.write_text(template.read_text().replace("{{ params.port }}", "{{ params.no_such_param }}", 1))
    for _ in range(2):
        with pytest.raises(InvalidRepository):
            load_repository(shop, memo=memo)
    assert rendered.count("checkout") == 2


def test_the_memo_is_bounded_and_forgets_the_oldest_first() -> None:
    memo = RenderMemo(size=2)
    for key in (("a", "1", "p"), ("b", "1", "p"), ("c", "1", "p")):
        memo.remember(key)
    assert not memo.passed(("a", "1", "p"))
    assert memo.passed(("b", "1", "p")) and memo.passed(("c", "1", "p"))
