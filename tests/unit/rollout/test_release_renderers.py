"""Each Release records the pinned renderer (helm, kustomize) that rendered it; status/history show it."""

from __future__ import annotations

from config.loader import load_repository
from config.sources.tools import HELM_VERSION, KUSTOMIZE_VERSION
from rollout.cli.ops import history_rows, rendered_by, status_table
from rollout.release import ReleaseSpec
from rollout.store import StoredRelease
from rollout.sync import candidates_at
from tests.conftest import EXAMPLE


def test_the_release_body_of_a_helm_app_carries_the_helm_version_and_jinja_apps_carry_none() -> None:
    candidates = candidates_at(load_repository(EXAMPLE), "a" * 40, {})
    helm_spec = candidates["reviews"].spec.to_dict()  # what ReleaseStore.create sends as the spec
    assert helm_spec["renderers"] == {"helm": HELM_VERSION}
    assert candidates["inventory"].spec.to_dict()["renderers"] == {"kustomize": KUSTOMIZE_VERSION}
    assert "renderers" not in candidates["catalog"].spec.to_dict()
    stored = StoredRelease.from_object(
        {"metadata": {"name": "reviews-aaaaaaaaaaaa", "resourceVersion": "1"}, "spec": helm_spec}
    )
    assert stored.spec == candidates["reviews"].spec  # read back unchanged


def test_status_and_history_show_the_renderer() -> None:
    spec = ReleaseSpec("reviews", "a" * 40, "1.0.0", "p", "d", (), (("helm", HELM_VERSION),)).to_dict()
    release = {
        "metadata": {"name": "reviews-aaaaaaaaaaaa", "creationTimestamp": "2026-11-24T12:00:00Z"},
        "spec": spec,
        "status": {"phase": "Progressing"},
    }
    assert rendered_by(release) == f"helm {HELM_VERSION}"
    assert str(status_table(release).title).endswith(f"rendered by helm {HELM_VERSION}")
    assert history_rows([release])[0][7] == f"helm {HELM_VERSION}"
    jinja = {**release, "spec": {**spec, "renderers": {}}}
    assert rendered_by(jinja) == "" and "rendered by" not in str(status_table(jinja).title)
