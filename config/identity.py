"""Release identity and the labels every rendered object carries (docs/conventions.md)."""

from __future__ import annotations

from dataclasses import dataclass

MANAGED_BY = "regional-rollout"
LABEL_NAME = "app.kubernetes.io/name"
LABEL_VERSION = "app.kubernetes.io/version"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_TRACK = "rollout.dev/track"
LABEL_COLOR = "rollout.dev/color"
LABEL_RELEASE = "rollout.dev/release"
LABEL_REGION = "rollout.dev/region"
ANNOTATION_COMMIT = "rollout.dev/commit"
TRACKS = ("stable", "canary")


@dataclass(frozen=True)
class ReleaseIdentity:
    """Which release a rendering belongs to: the pinned commit, the app version and the track."""

    commit: str
    version: str
    track: str = "stable"

    def __post_init__(self) -> None:
        if self.track not in TRACKS:
            raise ValueError(f"track must be one of {', '.join(TRACKS)}, not {self.track!r}")

    @property
    def number(self) -> str:
        return self.commit[:12]

    def labels(self, app: str, region: str) -> dict[str, str]:
        return {
            LABEL_NAME: app,
            LABEL_VERSION: self.version,
            LABEL_MANAGED_BY: MANAGED_BY,
            LABEL_TRACK: self.track,
            LABEL_RELEASE: self.number,
            LABEL_REGION: region,
        }
