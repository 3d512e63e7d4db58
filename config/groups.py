"""Release groups: apps that declare `dependsOn` other apps (pure graph logic, no IO).

In each region a dependent app's release waits until its dependencies' releases passed there
(rollout/orchestrator.py); here: the checks `rollout validate` runs on the declarations (unknown
app, self-dependency, cycle) and the order in which a group's apps go (dependencies first).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence

from config.errors import Issue

Graph = Mapping[str, Sequence[str]]  # app -> the apps it depends on


def dependency_issues(graph: Graph, known: Collection[str]) -> list[Issue]:
    """Every problem of the declarations: an unknown app, an app depending on itself, a cycle
    (named once, "a -> b -> a", on the file of the cycle's first app by name)."""
    issues: list[Issue] = []
    for app, deps in sorted(graph.items()):
        shown = f"apps/{app}/rollout.yaml"
        for i, dep in enumerate(deps):
            if dep == app:
                issues.append(
                    Issue(shown, f"dependsOn[{i}]", f"{app!r} depends on itself", "remove it from its own dependsOn")
                )
            elif dep not in known:
                issues.append(
                    Issue(
                        shown,
                        f"dependsOn[{i}]",
                        f"unknown app {dep!r}",
                        f"name an app under apps/ (known: {', '.join(sorted(known))}), or remove the entry",
                    )
                )
    for cycle in cycles(graph):
        issues.append(
            Issue(
                f"apps/{cycle[0]}/rollout.yaml",
                "dependsOn",
                f"the dependencies form a cycle: {' -> '.join(cycle)}",
                "remove one dependsOn entry of the cycle, so that the apps can go one after the other",
            )
        )
    return issues


def cycles(graph: Graph) -> list[list[str]]:
    """Each cycle of the graph once, as a path that starts and ends with its smallest app by name
    (["a", "b", "a"]). Self-dependencies and unknown apps are not cycles here (reported apart)."""
    found: dict[tuple[str, ...], list[str]] = {}
    done: set[str] = set()

    def visit(app: str, path: list[str]) -> None:
        for dep in sorted(set(graph.get(app, ()))):
            if dep == app or dep not in graph:
                continue
            if dep in path:
                loop = path[path.index(dep) :]
                start = loop.index(min(loop))
                ring = loop[start:] + loop[:start]
                found.setdefault(tuple(ring), [*ring, ring[0]])
            elif dep not in done:
                visit(dep, [*path, dep])
        done.add(app)

    for app in sorted(graph):
        if app not in done:
            visit(app, [app])
    return [found[key] for key in sorted(found)]


def release_order(graph: Graph, apps: Iterable[str]) -> list[str]:
    """`apps` with every app after the apps it depends on (directly or not); ties by name.
    Dependencies outside `apps` are ignored; a cycle (rejected by validation) does not loop."""
    chosen = set(apps)
    out: list[str] = []
    placed: set[str] = set()

    def place(app: str, seen: frozenset[str]) -> None:
        if app in placed or app in seen:
            return
        for dep in sorted(set(graph.get(app, ()))):
            if dep in chosen:
                place(dep, seen | {app})
        placed.add(app)
        out.append(app)

    for app in sorted(chosen):
        place(app, frozenset())
    return out


def group_of(graph: Graph, app: str) -> list[str]:
    """The apps linked to `app` by dependencies in either direction (its release group, `app`
    included), in release order."""
    linked: dict[str, set[str]] = {a: set() for a in graph}
    for a, deps in graph.items():
        for dep in deps:
            linked.setdefault(a, set()).add(dep)
            linked.setdefault(dep, set()).add(a)
    group, todo = {app}, [app]
    while todo:
        for other in linked.get(todo.pop(), ()):
            if other not in group:
                group.add(other)
                todo.append(other)
    return release_order(graph, group)


def dependents(graph: Graph, app: str) -> list[str]:
    """The apps that depend on `app`, directly or not, in release order."""
    found: set[str] = set()
    todo = [app]
    while todo:
        current = todo.pop()
        for a, deps in graph.items():
            if current in deps and a not in found and a != app:
                found.add(a)
                todo.append(a)
    return release_order(graph, found)
