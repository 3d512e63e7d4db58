from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from config.identity import ReleaseIdentity
from config.loader import load_repository
from config.render import image_problem, render
from tests.conftest import EXAMPLE

COMMIT = "3f2a9c1d0e4b5a69788796a5b4c3d2e1f0a9b8c7"


@pytest.fixture(scope="module")
def repo():
    return load_repository(EXAMPLE)


def test_rendering_is_byte_identical_for_the_same_input(repo) -> None:
    identity = ReleaseIdentity(COMMIT, "1.4.0")
    assert (
        render(repo, "checkout", "us-east", identity).to_yaml()
        == render(repo, "checkout", "us-east", identity).to_yaml()
    )


def test_every_object_and_pod_template_carries_the_release_identity(repo) -> None:
    rendered = render(repo, "checkout", "ap-east", ReleaseIdentity(COMMIT, "1.4.0", track="canary"))
    expected = {
        "app.kubernetes.io/name": "checkout",
        "app.kubernetes.io/version": "1.4.0",
        "app.kubernetes.io/managed-by": "regional-rollout",
        "rollout.dev/track": "canary",
        "rollout.dev/release": COMMIT[:12],
        "rollout.dev/region": "ap-east",
    }
    for obj in rendered.objects:
        assert expected.items() <= obj["metadata"]["labels"].items()
        assert obj["metadata"]["annotations"]["rollout.dev/commit"] == COMMIT
        assert obj["metadata"]["namespace"] == "checkout"
    deployment = next(o for o in rendered.objects if o["kind"] == "Deployment")
    assert expected.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    assert deployment["spec"]["selector"]["matchLabels"] == {"app.kubernetes.io/name": "checkout"}


def test_region_parameters_and_overrides_reach_the_manifest(repo) -> None:
    def deployment(region: str) -> dict:
        rendered = render(repo, "checkout", region, ReleaseIdentity(COMMIT, "1.4.0"))
        return next(o for o in rendered.objects if o["kind"] == "Deployment")

    us, ap = deployment("us-east"), deployment("ap-east")
    assert us["spec"]["replicas"] == 6  # app override beats the region's 4
    assert ap["spec"]["replicas"] == 4
    assert us["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.us.example.com/shop/checkout:1.4.0"
    assert ap["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.ap.example.com/shop/checkout:1.4.0"


def test_rendered_yaml_parses_back_to_the_same_objects(repo) -> None:
    rendered = render(repo, "search", "eu-west", ReleaseIdentity(COMMIT, "3.2.0"))
    assert list(yaml.safe_load_all(rendered.to_yaml())) == list(rendered.objects)


@pytest.mark.parametrize(
    "image, pinned",
    [
        ("shop/app:1.2.3", True),
        ("registry:5000/shop/app:1.2.3", True),
        ("shop/app@sha256:" + "a" * 64, True),
        ("shop/app:latest", False),
        ("shop/app", False),
        ("registry:5000/shop/app", False),
        ("", False),
    ],
)
def test_image_pinning(image: str, pinned: bool) -> None:
    assert (image_problem(image) is None) is pinned


def test_a_symlink_inside_the_app_directory_is_allowed(example_copy: Path) -> None:
    manifests = example_copy / "apps" / "catalog" / "manifests"
    (manifests / "service.yaml").rename(example_copy / "apps" / "catalog" / "service.tpl")
    (manifests / "service.yaml").symlink_to("../service.tpl")
    repo = load_repository(example_copy)
    kinds = [o["kind"] for o in render(repo, "catalog", "eu-west", ReleaseIdentity(COMMIT, "2.7.1")).objects]
    assert kinds == ["Deployment", "Service"]
