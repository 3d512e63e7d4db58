"""Build kube-apiserver, kube-controller-manager, kube-scheduler, etcd and kwok; cache them by version.

Layout: `${ROLLOUT_LAB_CACHE:-~/.cache/regional-rollout/lab}/<component>-<version>/<binary>`.
A component is skipped when every binary exists and its `--version` names the pinned version, so
`build_all()` is cheap once the machine has paid the cold build.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import queue
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import structlog

from deploy.lab.build import versions

log = structlog.get_logger(__name__)

MODULES = Path(__file__).resolve().parent
K8S_MODULE = MODULES / "k8s"
ETCD_MODULE = MODULES / "etcd"
K8S_COMMANDS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")
PROGRESS_EVERY_S = 10.0

Progress = Callable[[str], None]


class BuildError(RuntimeError):
    """A go command failed; the message carries its tail."""


@dataclass(frozen=True)
class Component:
    name: str
    version: str
    binaries: tuple[str, ...]
    version_marker: str  # what `<binary> --version` prints when it is the pinned build

    def directory(self, root: Path | None = None) -> Path:
        return (root or cache_root()) / f"{self.name}-{self.version}"


COMPONENTS: tuple[Component, ...] = (
    Component("kubernetes", versions.KUBERNETES, K8S_COMMANDS, f"Kubernetes {versions.KUBERNETES}"),
    Component("etcd", versions.ETCD, ("etcd",), f"etcd Version: {versions.ETCD.lstrip('v')}"),
    Component("kwok", versions.KWOK, ("kwok",), versions.KWOK),
)


def cache_root() -> Path:
    env = os.environ.get("ROLLOUT_LAB_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "regional-rollout" / "lab"


def component_of(binary_name: str) -> Component:
    for c in COMPONENTS:
        if binary_name in c.binaries:
            return c
    raise KeyError(binary_name)


def binary(name: str, root: Path | None = None) -> Path:
    """Path of a cached binary (it may not exist yet: see `build_all`)."""
    return component_of(name).directory(root) / name


def is_cached(component: Component, root: Path | None = None) -> bool:
    for name in component.binaries:
        path = component.directory(root) / name
        if not path.is_file():
            return False
        try:
            out = subprocess.run([str(path), "--version"], capture_output=True, text=True, timeout=30, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return False
        if component.version_marker not in out.stdout + out.stderr:
            return False
    return True


def build_all(progress: Progress | None = None, root: Path | None = None, force: bool = False) -> dict[str, float]:
    """Build every missing component; returns seconds spent per component (0 when cached)."""
    say = progress or (lambda msg: log.info("lab.build", msg=msg))
    root = root or cache_root()
    root.mkdir(parents=True, exist_ok=True)
    spent: dict[str, float] = {}
    with _lock(root / ".build.lock"):  # two fixtures or CLIs must not build the same thing twice
        for component in COMPONENTS:
            if not force and is_cached(component, root):
                say(f"{component.name} {component.version}: cached in {component.directory(root)}")
                spent[component.name] = 0.0
                continue
            started = time.monotonic()
            say(f"{component.name} {component.version}: building (cold builds take minutes)")
            _BUILDERS[component.name](component, root, say)
            if not is_cached(component, root):
                raise BuildError(f"{component.name}: built binaries do not report {component.version_marker!r}")
            spent[component.name] = time.monotonic() - started
            say(f"{component.name} {component.version}: done in {spent[component.name]:.0f}s")
    return spent


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    with path.open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _go_env() -> dict[str, str]:
    env = dict(os.environ)
    # Static binaries, as upstream ships them; never fetch another toolchain behind our back.
    env.update(CGO_ENABLED="0", GOTOOLCHAIN="local")
    return env


def _go(args: list[str], cwd: Path, say: Progress, label: str, env: dict[str, str] | None = None) -> str:
    """Run a go command, reporting progress every PROGRESS_EVERY_S even while it is silent (linking)."""
    proc = subprocess.Popen(
        ["go", *args], cwd=cwd, env=env or _go_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines: queue.Queue[str | None] = queue.Queue()
    threading.Thread(target=_pump, args=(proc, lines), daemon=True).start()
    tail: list[str] = []
    compiled = downloaded = 0
    started = last = time.monotonic()
    while True:
        try:
            line = lines.get(timeout=1.0)
        except queue.Empty:
            line = ""
        if line is None:
            break
        if line:
            tail = (tail + [line])[-40:]
            if line.startswith("go: downloading"):
                downloaded += 1
            elif not line.startswith(("go:", "#")):
                compiled += 1  # `go build -v` prints one package per line as it compiles it
        if time.monotonic() - last >= PROGRESS_EVERY_S:
            last = time.monotonic()
            say(
                f"{label}: {last - started:.0f}s, {compiled} packages compiled, "
                f"{downloaded} modules downloaded (last: {(tail or [''])[-1][:80]})"
            )
    if proc.wait() != 0:
        raise BuildError(f"{label}: go {' '.join(args[:2])} failed:\n" + "\n".join(tail))
    return "\n".join(tail)


def _pump(proc: subprocess.Popen[str], lines: queue.Queue[str | None]) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.put(line.rstrip())
    lines.put(None)


def _staging_modules(k8s_version: str, say: Progress) -> list[str]:
    """Every k8s.io module that k8s.io/kubernetes maps to ./staging: all need a replace in our wrapper."""
    out = _go(["mod", "download", "-json", f"k8s.io/kubernetes@{k8s_version}"], MODULES, say, "download kubernetes")
    directory = Path(json.loads(out[out.index("{") :])["Dir"])
    gomod = (directory / "go.mod").read_text()
    return sorted(set(re.findall(r"^\s*(k8s\.io/[\w.-]+)\s+=>\s+\./staging/", gomod, re.M)))


def render_k8s_gomod(k8s_version: str, staging: list[str]) -> str:
    sv = versions.staging_version(k8s_version)
    replaces = "\n".join(f"\t{m} => {m} {sv}" for m in staging)
    return (
        "module regional-rollout.dev/lab/k8s\n\ngo 1.25\n\n"
        f"require k8s.io/kubernetes {k8s_version}\n\nreplace (\n{replaces}\n)\n"
    )


def k8s_gomod_matches(gomod: str, k8s_version: str) -> bool:
    """True when the committed go.mod already pins this release (and its staging replaces)."""
    sv = versions.staging_version(k8s_version)
    replaces = re.findall(r"^\s*(k8s\.io/[\w.-]+) => \1 (v\S+)$", gomod, re.M)
    return (
        re.search(rf"^\s*(require\s+)?k8s\.io/kubernetes {re.escape(k8s_version)}$", gomod, re.M) is not None
        and len(replaces) >= 31
        and all(v == sv for _, v in replaces)
    )


def _version_ldflags(k8s_version: str) -> str:
    major, minor, _ = versions.kube_minor_patch(k8s_version)
    values = {
        "gitVersion": k8s_version,
        "gitMajor": str(major),
        "gitMinor": str(minor),
        "gitCommit": "0" * 40,  # built from the module zip: there is no commit to report
        "gitTreeState": "clean",
        "buildDate": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    # Both copies of the version variables: kube-* report component-base's, clients read client-go's.
    pkgs = ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version")
    return " ".join(f"-X {p}.{k}={v}" for p in pkgs for k, v in values.items())


def _build_kubernetes(component: Component, root: Path, say: Progress) -> None:
    gomod = K8S_MODULE / "go.mod"
    if not k8s_gomod_matches(gomod.read_text(), component.version):
        say(f"kubernetes: re-pinning wrapper module to {component.version}")
        gomod.write_text(render_k8s_gomod(component.version, _staging_modules(component.version, say)))
        (K8S_MODULE / "go.sum").unlink(missing_ok=True)
        _go(["mod", "tidy"], K8S_MODULE, say, "go mod tidy (kubernetes)")
    ldflags = f"-s -w {_version_ldflags(component.version)}"
    with _staged(component, root) as out:
        # One `go build` for all three shares the compile work; each binary still links on its own.
        _go(
            [
                "build",
                "-v",
                "-trimpath",
                "-tags",
                "selinux,notest,grpcnotrace",
                "-ldflags",
                ldflags,
                "-o",
                f"{out}/",
                *(f"k8s.io/kubernetes/cmd/{c}" for c in K8S_COMMANDS),
            ],
            K8S_MODULE,
            say,
            "build kubernetes",
        )


def _build_etcd(component: Component, root: Path, say: Progress) -> None:
    gomod = ETCD_MODULE / "go.mod"
    if f"go.etcd.io/etcd/server/v3 {component.version}" not in gomod.read_text():
        say(f"etcd: re-pinning wrapper module to {component.version}")
        _go(["get", f"go.etcd.io/etcd/server/v3@{component.version}"], ETCD_MODULE, say, "go get etcd")
        _go(["mod", "tidy"], ETCD_MODULE, say, "go mod tidy (etcd)")
    with _staged(component, root) as out:
        _go(
            ["build", "-v", "-trimpath", "-ldflags", "-s -w", "-o", f"{out}/etcd", "."],
            ETCD_MODULE,
            say,
            "build etcd",
        )


def _build_kwok(component: Component, root: Path, say: Progress) -> None:
    # kwok's go.mod has no replace directives, so plain `go install` works.
    with _staged(component, root) as out:
        env = _go_env() | {"GOBIN": str(out)}
        _go(
            [
                "install",
                "-v",
                "-trimpath",
                "-ldflags",
                "-s -w",
                f"sigs.k8s.io/kwok/cmd/kwok@{component.version}",
            ],
            root,
            say,
            "build kwok",
            env=env,
        )


@contextlib.contextmanager
def _staged(component: Component, root: Path) -> Iterator[Path]:
    """Build into a scratch folder and swap it in whole: a killed build never looks cached."""
    final = component.directory(root)
    scratch = root / f".partial-{final.name}-{os.getpid()}"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    try:
        yield scratch
        shutil.rmtree(final, ignore_errors=True)
        scratch.rename(final)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


_BUILDERS: dict[str, Callable[[Component, Path, Progress], None]] = {
    "kubernetes": _build_kubernetes,
    "etcd": _build_etcd,
    "kwok": _build_kwok,
}
