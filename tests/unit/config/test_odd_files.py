"""Files a repository should not hold: non-UTF-8 text and symlink loops. Each is an issue naming
the file (the commit is rejected, nothing is applied), never a hang or a crash of the load."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from config.errors import InvalidRepository
from config.identity import ReleaseIdentity
from config.loader import load_repository
from config.render import render

APP = "apps/checkout"
LATIN1 = b"\n# caf\xe9 (latin-1, not UTF-8)\n"


def _append(rel: str) -> Callable[[Path], object]:
    return lambda root: (root / rel).write_bytes((root / rel).read_bytes() + LATIN1)


NON_UTF8 = {
    "values": (_append(f"{APP}/values.yaml"), f"{APP}/values.yaml"),
    "plan": (_append(f"{APP}/rollout.yaml"), f"{APP}/rollout.yaml"),
    "manifest": (
        lambda root: (root / f"{APP}/manifests/extra.yaml").write_bytes(LATIN1),
        f"{APP}/manifests/extra.yaml",
    ),
}


@pytest.mark.parametrize("where", sorted(NON_UTF8))
def test_a_non_utf8_file_is_an_issue_naming_it(where: str, example_copy: Path) -> None:
    breakage, rel = NON_UTF8[where]
    breakage(example_copy)
    with pytest.raises(InvalidRepository) as raised:
        load_repository(example_copy)
    issues = [i for i in raised.value.issues if i.file == rel]
    assert issues and "UnicodeDecodeError" in issues[0].problem and issues[0].fix, raised.value.summary()


SYMLINK_LOOPS = {
    "to itself": ("loop.yaml", [("loop.yaml", "loop.yaml")]),
    "a pair": ("a.yaml", [("a.yaml", "b.yaml"), ("b.yaml", "a.yaml")]),
}


@pytest.mark.parametrize("shape", sorted(SYMLINK_LOOPS))
def test_a_symlink_loop_among_the_manifests_is_an_issue_naming_it(shape: str, example_copy: Path) -> None:
    named, links = SYMLINK_LOOPS[shape]
    for link, target in links:
        os.symlink(target, example_copy / APP / "manifests" / link)
    with pytest.raises(InvalidRepository) as raised:
        load_repository(example_copy)
    issues = [i for i in raised.value.issues if i.file == f"{APP}/manifests/{named}"]
    assert issues and "Symlink loop" in issues[0].problem, raised.value.summary()


def test_a_directory_symlink_loop_is_not_followed(example_copy: Path) -> None:
    """manifests/sub -> . would be endless if walked: the load ends and renders the app's own files once."""
    os.symlink(".", example_copy / APP / "manifests" / "sub")
    repo = load_repository(example_copy)
    rendered = render(repo, "checkout", "eu-west", ReleaseIdentity("a" * 40, repo.apps["checkout"].values.version))
    assert sorted(o["kind"] for o in rendered.objects) == ["Deployment", "Service"]
