"""Where a rollout repository comes from for the CLI: a local folder, or a Git URL at a revision."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

GIT_URL_PREFIXES = ("file://", "http://", "https://", "ssh://", "git://")


@contextmanager
def checkout_source(source: str, rev: str | None) -> Iterator[tuple[Path, str | None]]:
    """Yield a folder with the repository's files and the commit they came from (None: work tree)."""
    is_url = source.startswith(GIT_URL_PREFIXES)
    if not is_url and rev is None:
        path = Path(source)
        if not path.is_dir():
            raise click.ClickException(f"{source} is not a folder; give a rollout repository folder or a Git URL")
        yield path, None
        return
    yield from _from_git(source if is_url else Path(source).resolve().as_uri(), rev)


def _from_git(url: str, rev: str | None) -> Iterator[tuple[Path, str | None]]:
    from rollout.gitsync import GitError, GitMirror

    with tempfile.TemporaryDirectory(prefix="rollout-src-") as tmp:
        try:
            # An operator's own terminal reading a URL they typed, with no token: any transport.
            mirror = GitMirror(url, cache_dir=Path(tmp) / "mirror", allow_insecure=True)
            mirror.sync()
            commit = mirror.resolve(rev or "HEAD")
            yield mirror.checkout(commit, Path(tmp) / "tree"), commit
        except GitError as exc:
            raise click.ClickException(str(exc)) from None
