"""Build and cache the lab's Go binaries (kube-*, etcd, kwok) from pinned modules.

The folders `k8s/` and `etcd/` are Go wrapper modules; `versions.py` holds the pins.
"""

from deploy.lab.build.builder import (
    COMPONENTS,
    BuildError,
    Component,
    binary,
    build_all,
    cache_root,
    is_cached,
)

__all__ = ["COMPONENTS", "BuildError", "Component", "binary", "build_all", "cache_root", "is_cached"]
