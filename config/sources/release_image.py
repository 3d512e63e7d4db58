"""Does a chart or an overlay take the release's image? The trap of a chart or tree brought as is.

A release is "bump `values.yaml`": its `image` (with the region's registry) is what the release
ships. A Jinja template says `{{ image }}`; a chart brought unchanged keeps its own
`image: "{{ .Values.image.repository }}:{{ .Values.image.tag }}"`, and a Kustomize base names its
image in its own spelling, which the region patch (an `images:` entry named after values.yaml's
`image.repository`) silently fails to match. Either way the release would go out labelled with
the new version and running the old image. Two refusals, both pure (unit-tested):

- a container of the app's image (the same repository, any registry in front) at another tag or
  digest than the release's: the chart or tree hard-codes its image, so a bump changes nothing
  (found at the first bump: a chart at the release's tag that only misses the region's registry
  is not refused);
- with Kustomize's `regionPatch`, no container at all carries the release's image: the patch's
  name matched nothing in the tree.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

from config.errors import Issue
from config.grants import pod_specs
from config.sources.common import Document

_GROUPS = ("initContainers", "containers")


def repository_of(image: str) -> str:
    """`registry.eu/shop/web:1.0@sha256:...` -> `registry.eu/shop/web` (no tag, no digest)."""
    name = image.partition("@")[0]
    head, _, last = name.rpartition("/")
    last = last.split(":", 1)[0]
    return f"{head}/{last}" if head else last


def _version(image: str) -> str:
    """The tag and digest of a reference (`:1.0`, `@sha256:...`, `:1.0@sha256:...`)."""
    return image[len(repository_of(image)) :]


def _same(image: str, release_image: str) -> bool:
    """The same image: the same reference, or the same repository at the same digest (a tool may
    drop the tag when it sets a digest)."""
    if image == release_image:
        return True
    digest, release_digest = image.partition("@")[2], release_image.partition("@")[2]
    return bool(digest) and digest == release_digest and repository_of(image) == repository_of(release_image)


def _containers(documents: Iterable[Document]) -> Iterator[tuple[Document, str, str]]:
    """(document, field, image) of every container of every pod template, hooks included."""
    for doc in documents:
        body = doc.body
        if not isinstance(body, Mapping):
            continue
        meta = body.get("metadata") if isinstance(body.get("metadata"), Mapping) else {}
        owner = f"{body.get('kind', '?')}/{meta.get('name', '?')}"  # type: ignore[union-attr]
        for path, pod in pod_specs(body):
            for group in _GROUPS:
                items = pod.get(group)
                for i, container in enumerate(items if isinstance(items, list) else []):
                    if isinstance(container, Mapping) and isinstance(container.get("image"), str):
                        yield doc, f"{owner} {path}.{group}[{i}].image", str(container["image"])


def issues(
    documents: Iterable[Document],
    release_image: str,
    repository: str,
    kind: str,
    shown_root: str,
    region_patch: bool = False,
) -> list[Issue]:
    """Why these rendered documents would not ship the release's image (empty when they do).

    `release_image` is the full reference the release ships in this region, `repository` is
    values.yaml's `image.repository`, `kind` the source (helm or kustomize). The messages do not
    name the region's registry, so that one problem found in several regions is reported once."""
    found = list(_containers(documents))
    if not found or any(_same(image, release_image) for _, _, image in found):
        return []
    values = f"{shown_root}/values.yaml"
    out: list[Issue] = []
    for doc, field, image in found:
        repo = repository_of(image)
        if _version(image) in ("", ":latest"):
            continue  # not pinned: the render's image check says so, with its own fix
        if (repo == repository or repo.endswith(f"/{repository}")) and _version(image) != _version(release_image):
            shipped = repository + release_image.partition(repository)[2]  # without the registry
            out.append(
                Issue(
                    doc.file,
                    field,
                    f"renders {image!r}, but the release ships {shipped!r} ({values} image): the "
                    f"{'chart' if kind == 'helm' else 'tree'} sets its own image, so bumping {values} "
                    "would release a new version label on the old image",
                    "write image: {{ .Values.rollout.image }} in the template (the release's image with "
                    "the region's registry)"
                    if kind == "helm"
                    else "let the region patch set it (regionPatch: true, and name the image in the base "
                    f"as {repository!r}), or drop the tag from the tree and set it in {values}",
                )
            )
    if out or kind != "kustomize" or not region_patch:
        return out
    doc, field, image = found[0]
    names = sorted({repository_of(i) for _, _, i in found})
    return [
        Issue(
            doc.file,
            field,
            f"the region patch sets the image named {repository!r} ({values} image.repository), but no "
            f"container of the tree uses that name (it names {', '.join(repr(n) for n in names)}), so "
            "the release's image is applied nowhere",
            f"set image.repository in {values} to the name the base uses (e.g. {names[0]!r}), or "
            "rename the image in the base",
        )
    ]
