"""Release faults that live in Git rather than in the simulator, for benchmarks and tests."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from deploy.lab.cluster import FAULT_LABEL


def never_ready_in(read: Callable[[str], str], app: str, regions: Sequence[str]) -> dict[str, str]:
    """Commit contents making `app`'s pods never Ready in `regions` only (e.g. one wave's): the pod
    template gains the KWOK fault label, `never-ready` where the region is one of `regions`,
    `none` elsewhere. Needs the app's `manifests/deployment.yaml` with a pod template `labels:`."""
    if not regions:
        raise ValueError("never_ready_in needs at least one region")
    path = f"apps/{app}/manifests/deployment.yaml"
    text = read(path)
    found = re.search(r"^(\s*)template:\s*\n\s*metadata:\s*\n\s*labels:\s*\n(\s*)\S", text, re.MULTILINE)
    if found is None:
        raise ValueError(f"{path}: no pod template labels to add {FAULT_LABEL} to; add spec.template.metadata.labels")
    names = ", ".join(repr(r) for r in sorted(regions))
    line = f"{found.group(2)}{FAULT_LABEL}: \"{{{{ 'never-ready' if region.name in [{names}] else 'none' }}}}\"\n"
    at = found.end() - 1 - len(found.group(2))
    return {path: text[:at] + line + text[at:]}
