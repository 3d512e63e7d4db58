"""`rollout-lab`: build, start, stop and inspect the local lab, and run the demo.

The lab is its own distribution (deploy/pyproject.toml, installed by deploy/setup.sh); the
product's `rollout` command knows nothing of it. Every state folder is made absolute here, before
it reaches a child process or a config file: the defaults are relative to the current directory.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import click

DEFAULT_STATE = Path(".lab")
DEFAULT_DEMO_STATE = Path(".lab/demo")


def _services() -> ModuleType | None:
    """The other lab parts (Prometheus, simulator, Git server) plug in through `deploy.lab.services`:
    `start(lab, state_dir)` once the clusters answer, `stop_from_state(state_dir)` before they go
    down. Absent module = clusters only."""
    try:
        return importlib.import_module("deploy.lab.services")
    except ModuleNotFoundError as exc:
        if exc.name != "deploy.lab.services":
            raise
        return None


def state_option(default: Path) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """--state-dir, resolved to an absolute path (relative = to the current directory)."""
    return click.option(
        "--state-dir",
        type=click.Path(file_okay=False, path_type=Path, resolve_path=True),
        default=default,
        show_default=True,
    )


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Run a local lab: real control planes per region, Prometheus, traffic simulator, Git server."""
    from rollout.logs import configure

    configure(level="warning")


@main.command()
@click.option("--force", is_flag=True, help="Rebuild even when the cached binaries match the pins.")
def build(force: bool) -> None:
    """Build kube-apiserver/-controller-manager/-scheduler, etcd and kwok from pinned Go modules (cached)."""
    from deploy.lab.build import build_all, cache_root
    from deploy.lab.cluster import gateway_api_crds

    started = time.monotonic()
    spent = build_all(progress=lambda msg: click.echo(f"lab build: {msg}", err=True), force=force)
    crds = gateway_api_crds()  # fetched now so that `lab up` works without the module proxy
    click.echo(f"lab build: Gateway API CRDs in {crds}", err=True)
    click.echo(
        f"lab build: done in {time.monotonic() - started:.0f}s "
        f"({', '.join(f'{k} {v:.0f}s' for k, v in spent.items())}); cache {cache_root()}"
    )


@main.command()
@click.option("--regions", help="Comma-separated region names (default: config/examples/shop/regions).")
@state_option(DEFAULT_STATE)
@click.option("--nodes", default=3, show_default=True, help="Fake (kwok) nodes per region.")
@click.option("--clusters-only", is_flag=True, help="Do not start Prometheus, simulator, Git server.")
def up(regions: str | None, state_dir: Path, nodes: int, clusters_only: bool) -> None:
    """Start the lab (stopping leftovers of a previous one in the same state folder first)."""
    from deploy.lab.cluster import Lab, select_regions

    names = [r.strip() for r in regions.split(",") if r.strip()] if regions else None
    _stop_services(state_dir)  # a previous run's leftovers; the clusters' own are stopped by Lab.up
    lab_ = Lab(state_dir, select_regions(names), nodes_per_region=nodes).up()
    assert lab_.state is not None
    click.echo(f"lab clusters up in {lab_.state.ready_after_s:.1f}s: contexts {', '.join(lab_.contexts)}")
    services = None if clusters_only else _services()
    if services is not None:
        try:
            handle = services.start(lab_, lab_.state_dir)
        except BaseException:
            _stop_services(lab_.state_dir)
            lab_.down(keep_logs=True)
            raise
        for attr in ("prometheus_url", "simulator_url"):
            if getattr(handle, attr, None):
                click.echo(f"{attr.replace('_', ' ')}: {getattr(handle, attr)}")
        from deploy.lab.controllerproc import install_crds
        from deploy.lab.gitserver import GitServer

        install_crds(lab_.kubeconfig, lab_.home_context)  # so `rollout controller` and `rollout status` work at once
        git = GitServer(lab_.state_dir / "git").start()
        click.echo(f"git url: {git.url} (seeded with config/examples/shop)")
    click.echo(f"export KUBECONFIG={lab_.kubeconfig}")


def _stop_services(state_dir: Path) -> None:
    services = _services()
    if services is not None and hasattr(services, "stop_from_state"):
        services.stop_from_state(state_dir)
    from deploy.lab.gitserver import GitServer

    git = GitServer(Path(state_dir) / "git")
    if git.is_running():
        git.stop()


@main.command()
@state_option(DEFAULT_STATE)
@click.option("--keep-logs", is_flag=True, help="Keep <state-dir>/logs for inspection.")
def down(state_dir: Path, keep_logs: bool) -> None:
    """Stop every lab process recorded in the state folder and remove its files."""
    from deploy.lab.cluster import Lab

    lab_ = Lab(state_dir, regions=[])
    _stop_services(state_dir)
    killed = lab_.down(keep_logs=keep_logs)
    click.echo("lab down" + (f" (SIGKILLed: {', '.join(killed)})" if killed else ""))


@main.command()
@state_option(DEFAULT_STATE)
def status(state_dir: Path) -> None:
    """Per-component pid, port, health and memory."""
    from rich.console import Console
    from rich.table import Table

    from deploy.lab.cluster import Lab

    try:
        lab_ = Lab.load(state_dir)
    except FileNotFoundError:
        lab_ = Lab(state_dir, regions=[])
    rows = lab_.status()
    if not rows:
        click.echo(f"no lab processes recorded in {state_dir}")
        return
    table = Table("component", "pid", "port", "alive", "healthy", "RSS MiB")
    for r in rows:
        table.add_row(
            r.name, str(r.pid), str(r.port or "-"), _yes(r.alive), _yes(r.healthy), f"{r.rss_bytes / 2**20:.0f}"
        )
    Console().print(table)
    if lab_.state is not None:
        click.echo(f"kubeconfig: {lab_.kubeconfig} (contexts: {', '.join(lab_.contexts)})")
    if not all(r.healthy for r in rows):
        raise SystemExit(1)


def _yes(flag: bool) -> str:
    return "yes" if flag else "NO"


@main.command()
@state_option(DEFAULT_DEMO_STATE)
def demo(state_dir: Path) -> None:
    """Run the lab demo: a release promoted across regions, then a bad release caught in the canary
    region, drained, rolled back and quarantined. Prints a timeline and the measured durations."""
    from deploy.lab.demo import run

    raise SystemExit(0 if run(state_dir) else 1)


if __name__ == "__main__":
    main()
