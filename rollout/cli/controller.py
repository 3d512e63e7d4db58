"""`rollout controller`: run the daemon (in a Pod, or against the lab from a terminal)."""

from __future__ import annotations

import os
from pathlib import Path

import click


@click.command()
@click.option("--repo", "repo_url", required=True, help="Git URL of the rollout repository (no credentials in it)")
@click.option("--ref", default="HEAD", show_default=True, help="branch or tag to follow")
@click.option(
    "--kubeconfig",
    type=click.Path(dir_okay=False),
    default=None,
    help="kubeconfig with one context per region (default: in-cluster for home)",
)
@click.option("--home-context", default=None, help="context of the cluster that stores Releases")
@click.option(
    "--regions-kubeconfig",
    type=click.Path(dir_okay=False),
    default=None,
    help="kubeconfig with one context per region (default: --kubeconfig, then $KUBECONFIG)",
)
@click.option("--namespace", default="rollout-system", show_default=True)
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("/tmp/rollout-cache"),
    show_default=True,
)
@click.option("--poll-seconds", type=float, default=30.0, show_default=True)
@click.option(
    "--tick-seconds",
    type=float,
    default=1.0,
    show_default=True,
    help="how often active releases are reconciled (watch events wake it sooner)",
)
@click.option("--prometheus-url", default=None, help="without it every analysis is inconclusive")
@click.option(
    "--http-host",
    default="127.0.0.1",
    show_default=True,
    help="address of /healthz /readyz /metrics (in a Pod: the pod IP, $(POD_IP))",
)
@click.option("--http-port", type=int, default=8080, show_default=True, help="/healthz /readyz /metrics")
@click.option("--webhook-host", default=None, help="address of /webhook/git (default: --http-host)")
@click.option(
    "--webhook-port",
    type=int,
    default=None,
    help="port of /webhook/git alone (default: served on --http-port with the probes)",
)
@click.option(
    "--notify-allow",
    multiple=True,
    metavar="URL_PREFIX",
    help="where notification webhooks may go, e.g. https://hooks.example.com/services/ "
    "(repeatable; without it no webhook notification is sent)",
)
@click.option(
    "--notify-key",
    "notify_keys",
    multiple=True,
    metavar="APP=FILE",
    help="file holding the HMAC key that signs APP's notifications (repeatable)",
)
@click.option(
    "--notify-queue",
    type=int,
    default=100,
    show_default=True,
    help="notifications waiting to be sent; beyond it new ones are dropped and logged",
)
@click.option(
    "--notify-timeout-seconds",
    type=float,
    default=10.0,
    show_default=True,
    help="total time for one notification (connect, send, answer)",
)
@click.option(
    "--webhook-secret-env",
    default="ROLLOUT_WEBHOOK_SECRET",
    show_default=True,
    help="environment variable holding the push webhook's HMAC key",
)
@click.option(
    "--webhook-secret-file",
    type=click.Path(dir_okay=False),
    default=None,
    help="file holding the push webhook's HMAC key (a mounted Secret; preferred to --webhook-secret-env)",
)
@click.option("--git-token-env", default="ROLLOUT_GIT_TOKEN", show_default=True)
@click.option(
    "--git-token-file",
    type=click.Path(dir_okay=False),
    default=None,
    help="file holding the Git token (a mounted Secret; preferred to --git-token-env)",
)
@click.option("--git-ssh-key", type=click.Path(dir_okay=False), default=None)
@click.option(
    "--git-known-hosts",
    type=click.Path(dir_okay=False),
    default=None,
    help="known_hosts file for ssh:// remotes (a mounted ConfigMap); only these host keys are trusted",
)
@click.option(
    "--git-host-key-checking",
    type=click.Choice(["yes", "accept-new", "no"]),  # rollout.gitsync.HostKeyChecking
    default="yes",
    show_default=True,
    help="OpenSSH StrictHostKeyChecking for ssh:// remotes",
)
@click.option(
    "--allow-insecure-git",
    is_flag=True,
    default=False,
    help="accept http:// and git:// remotes (no encryption, no integrity; a lab only); "
    "by default only https, ssh and file",
)
@click.option(
    "--git-max-file-mib",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    help="a commit with a bigger file is not used (the sync fails naming the file; the last good commit stays)",
)
@click.option(
    "--git-max-commit-mib",
    type=click.IntRange(min=1),
    default=128,
    show_default=True,
    help="a commit whose files add up to more is not used (each commit is checked out whole)",
)
@click.option(
    "--git-max-repository-mib",
    type=click.IntRange(min=1),
    default=512,
    show_default=True,
    help="the Git mirror may take this much disk after a fetch; beyond it syncs fail",
)
@click.option("--identity", default=None, help="leader-election identity (default host-pid)")
@click.option("--lease-seconds", type=int, default=15, show_default=True)
@click.option("--renew-seconds", type=int, default=10, show_default=True)
@click.option("--retry-seconds", type=int, default=2, show_default=True)
@click.option(
    "--shards",
    type=click.IntRange(min=1, max=32),
    default=1,
    show_default=True,
    help="spread apps over this many shards, each reconciled by the replica holding its Lease "
    "rollout-shard-<i> (1: one leader for every app, Lease rollout-controller)",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1, max=64),
    default=8,
    show_default=True,
    help="releases of different apps reconciled at once (one per app at a time; 1: one after another)",
)
@click.option(
    "--kube-api-qps",
    type=click.FloatRange(min=0),
    default=50.0,
    show_default=True,
    help="Kubernetes API requests per second per cluster, beyond the burst (0: no client-side limit)",
)
@click.option(
    "--kube-api-burst",
    type=click.IntRange(min=1),
    default=100,
    show_default=True,
    help="Kubernetes API requests per cluster that may go at once before --kube-api-qps paces them",
)
@click.option(
    "--region-watches/--no-region-watches",
    default=False,
    show_default=True,
    help="read each region's Deployments, Services and HTTPRoutes from one watch per kind, shared by "
    "every app (needs the read-only grant deploy/base/region/watch-reader.yaml; without it, reads per pass)",
)
@click.option(
    "--analysis-window-seconds",
    type=float,
    default=None,
    help="range of {{ interval }} in queries when shorter than a check interval is wanted",
)
@click.option(
    "--policy",
    "policy_file",
    type=click.Path(dir_okay=False),
    default=None,
    help="the operator's rollout policy: what each app may deploy (mounted from the ConfigMap "
    "rollout-policy; default: the built-in safe default, docs/security.md)",
)
@click.option("--log-format", type=click.Choice(["auto", "json", "console"]), default="auto", show_default=True)
@click.option(
    "--helm",
    "helm_path",
    type=click.Path(dir_okay=False),
    default=None,
    envvar="ROLLOUT_HELM",
    help="the pinned helm for Helm-chart apps (default: the deploy/tools/build.sh cache)",
)
@click.option(
    "--kustomize",
    "kustomize_path",
    type=click.Path(dir_okay=False),
    default=None,
    envvar="ROLLOUT_KUSTOMIZE",
    help="the pinned kustomize for Kustomize apps (default: the build cache)",
)
def controller(
    log_format: str,
    identity: str | None,
    policy_file: str | None,
    helm_path: str | None,
    kustomize_path: str | None,
    **options: object,
) -> None:
    """Run the controller: sync Git, create Releases, promote them region by region."""
    from config.grants import InvalidPolicy, load_policy
    from config.sources import tools
    from rollout.controller import Controller, SecretFileError, Settings
    from rollout.logs import configure

    configure(None if log_format == "auto" else log_format == "json")
    for tool, path in (("helm", helm_path), ("kustomize", kustomize_path)):
        if path:  # config/sources/tools.py reads the path from the environment, absolute
            os.environ[tools.ENVIRONMENT[tool]] = os.path.abspath(path)
    for tool, found in tools.versions().items():  # a missing renderer fails only the apps that need it
        if found.startswith("unavailable"):
            click.echo(f"warning: {tool} {found}", err=True)
    try:
        grants = load_policy(policy_file)  # a broken policy stops the start, never widens a grant
    except InvalidPolicy as invalid:
        raise click.ClickException(str(invalid)) from None
    for many in ("notify_allow", "notify_keys"):
        options[many] = list(options[many])  # type: ignore[call-overload]
    settings = Settings(**options)  # type: ignore[arg-type]
    if identity:
        settings.identity = identity
    from rollout.notify import NotifyConfigError

    try:
        daemon = Controller(settings)
    except (NotifyConfigError, SecretFileError) as bad:  # an operator flag that cannot be used: refuse to start
        raise click.ClickException(str(bad)) from None
    daemon.workspace.grants = grants  # before anything is loaded: every render is checked against it
    daemon.run()
