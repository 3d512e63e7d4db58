"""A private copy of an app's folder for an external renderer to read.

helm and kustomize follow symlinks and open whatever paths their inputs name. Instead of trusting
them to stay inside the app's folder, they get a copy of it: regular files only, a symlink
replaced by its target when that target lies inside the app's folder and refused when it leads
out, the whole copy capped in size and file count. The tool runs in the copy, so it can read
nothing of the checkout (or the machine) beyond the app's own files.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from config.errors import Issue

MAX_COPY_BYTES = 32 * 1024 * 1024
MAX_COPY_FILES = 5000


class Refused(Exception):
    def __init__(self, issues: list[Issue]):
        self.issues = issues
        super().__init__("; ".join(str(i) for i in issues))


def copy_app(app_dir: Path, target: Path, shown_root: str) -> None:
    """Copy `app_dir` into `target` (created); raise Refused naming each escaping symlink.

    `shown_root` is how the app folder appears in messages (e.g. apps/web)."""
    real_root = app_dir.resolve()
    issues: list[Issue] = []
    total = files = 0
    target.mkdir(parents=True, exist_ok=True)
    for current, dirs, names in os.walk(app_dir, followlinks=False):
        here = Path(current)
        relative_dir = here.relative_to(app_dir)
        for name in sorted(dirs) + sorted(names):
            source = here / name
            relative = relative_dir / name
            shown = f"{shown_root}/{relative}"
            if source.is_symlink():
                real = source.resolve()
                if real != real_root and real_root not in real.parents:
                    issues.append(
                        Issue(
                            shown,
                            "",
                            f"is a symlink leading outside {shown_root}/ (to {os.readlink(source)})",
                            "replace the symlink with the file itself, inside the app's folder",
                        )
                    )
                    continue
                if real.is_dir():
                    if name in dirs:
                        dirs.remove(name)  # its files are copied from where they really are
                    issues.append(
                        Issue(
                            shown,
                            "",
                            "is a symlink to a folder",
                            "refer to the folder by its own path instead of through a symlink",
                        )
                    )
                    continue
            elif source.is_dir():
                (target / relative).mkdir(exist_ok=True)
                continue
            if not source.is_file():
                continue  # sockets, fifos, devices: nothing a renderer should read
            size = source.stat().st_size
            total += size
            files += 1
            if total > MAX_COPY_BYTES or files > MAX_COPY_FILES:
                raise Refused(
                    [
                        Issue(
                            shown_root,
                            "",
                            f"holds more than {MAX_COPY_BYTES // (1024 * 1024)} MiB or {MAX_COPY_FILES} files",
                            "keep only the manifests, chart and overlays there",
                        )
                    ]
                )
            shutil.copyfile(source, target / relative, follow_symlinks=True)
    if issues:
        raise Refused(issues)
