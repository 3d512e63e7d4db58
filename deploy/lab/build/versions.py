"""The one place the lab's pinned versions live.

The Go wrapper modules next to this file are rendered from these pins by `builder.py`
(tests/unit/test_lab_build.py checks they agree). Every version here builds with Go 1.26:
k8s 1.37, gateway-api 1.7 and external-dns 0.23's own go.mod want Go 1.27.
"""

from __future__ import annotations

KUBERNETES = "v1.35.4"
ETCD = "v3.6.16"
KWOK = "v0.8.0"
GATEWAY_API = "v1.6.3"
# Only its DNSEndpoint CRD is used; `go mod download` refuses the module on Go 1.26 (go 1.27.0),
# so deploy/lab/crds/ carries a copy taken from this tag.
EXTERNAL_DNS = "v0.23.0"


def kube_minor_patch(version: str = KUBERNETES) -> tuple[int, int, int]:
    """`v1.35.4` -> (1, 35, 4)."""
    major, minor, patch = version.lstrip("v").split(".")
    return int(major), int(minor), int(patch)


def staging_version(version: str = KUBERNETES) -> str:
    """Staging modules (k8s.io/api, ...) are tagged v0.<minor>.<patch> for release v1.<minor>.<patch>."""
    _, minor, patch = kube_minor_patch(version)
    return f"v0.{minor}.{patch}"
