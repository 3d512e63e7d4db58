"""Every state path of the lab is absolute before it reaches a child process or a config file.

Regression for issue 11: with the demo's default `--state-dir .lab/demo` (relative), Prometheus
read its file_sd path relative to its config file and never found the simulator. Each test runs
from a scratch working directory with a relative state folder and inspects what would reach the
child (argv, cwd, config files) without the lab's binaries.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from deploy.lab import procs, prometheus
from deploy.lab.cli import main as lab_cli
from deploy.lab.controllerproc import ControllerProcess
from deploy.lab.gitserver import GitServer
from deploy.lab.simulator import process as simulator_process
from deploy.lab.simulator.model import AppSpec, RegionSpec
from deploy.lab.simulator.server import SimulatorConfig

RELATIVE = Path(".lab/demo")


def relative_paths(argv: list[str]) -> list[str]:
    """Arguments (or `--flag=value` values) that look like filesystem paths but are not absolute."""
    out = []
    for arg in argv:
        value = arg.split("=", 1)[1] if arg.startswith("--") and "=" in arg else arg
        if "/" in value and not value.startswith(("/", "http://", "https://")):
            out.append(arg)
    return out


@pytest.fixture
def in_scratch_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    return cwd


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """procs.start records what it would run instead of running it; readiness holds at once."""
    calls: list[dict[str, Any]] = []

    def fake_start(name: str, argv: list[str], **kw: Any) -> procs.ProcessRecord:
        calls.append({"name": name, "argv": list(argv), **kw})
        return procs.ProcessRecord(name, 0, 0, tuple(argv), str(kw.get("log_file") or ""), kw.get("port"))

    monkeypatch.setattr(procs, "start", fake_start)
    monkeypatch.setattr(procs, "wait_healthy", lambda *a, **k: None)
    monkeypatch.setattr(procs, "wait_ready", lambda *a, **k: None)
    return calls


def test_prometheus_config_names_its_targets_by_absolute_path(in_scratch_dir: Path) -> None:
    cfg = json.loads(prometheus.render_config(1.0, RELATIVE / "prometheus" / "targets"))
    (files,) = [f for job in cfg["scrape_configs"] for sd in job["file_sd_configs"] for f in sd["files"]]
    assert files == str(in_scratch_dir / RELATIVE / "prometheus" / "targets" / "*.json")


def test_prometheus_started_from_a_relative_state_dir_gets_absolute_paths(
    in_scratch_dir: Path, started: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(prometheus.shutil, "which", lambda _: "/usr/bin/prometheus")
    handle = prometheus.start(RELATIVE, targets={"simulator": ["127.0.0.1:1"]})
    (call,) = started
    assert relative_paths(call["argv"]) == [], call["argv"]
    assert Path(call["state_dir"]).is_absolute() and Path(call["log_file"]).is_absolute()
    assert handle.home == in_scratch_dir / RELATIVE / "prometheus"
    config = yaml.safe_load((handle.home / "prometheus.yml").read_text())
    files = config["scrape_configs"][0]["file_sd_configs"][0]["files"]
    assert files == [str(handle.targets_dir / "*.json")] and Path(files[0]).is_absolute()


def test_simulator_started_from_a_relative_state_dir_gets_absolute_paths(
    in_scratch_dir: Path, started: list[dict[str, Any]]
) -> None:
    config = SimulatorConfig(
        regions=[RegionSpec("eu-west", "eu-west", 1.0)],
        apps=[AppSpec("checkout", "checkout", 10.0)],
        source="kube",
        kubeconfig=str(RELATIVE / "lab" / "kubeconfig"),
    )
    simulator_process.start(config, RELATIVE)
    (call,) = started
    assert relative_paths(call["argv"]) == [], call["argv"]
    assert Path(call["state_dir"]).is_absolute() and Path(call["cwd"]).is_absolute()
    written = json.loads((in_scratch_dir / RELATIVE / "simulator" / "config.json").read_text())
    assert Path(written["ready_file"]).is_absolute() and Path(written["kubeconfig"]).is_absolute()


def test_controller_process_gets_absolute_paths() -> None:
    proc = ControllerProcess(RELATIVE / "lab" / "kubeconfig", "home", "http://127.0.0.1:1/shop.git", RELATIVE)
    argv = proc.command()
    assert relative_paths(argv) == [], argv
    assert proc.state_dir.is_absolute() and proc.log_path.is_absolute()


def test_git_server_gets_absolute_paths(in_scratch_dir: Path, started: list[dict[str, Any]]) -> None:
    server = GitServer(RELATIVE / "git", seed=None)
    assert server.state_dir == in_scratch_dir / RELATIVE / "git"
    server.state_dir.mkdir(parents=True)
    server._launch()
    (call,) = started
    assert relative_paths(call["argv"]) == [], call["argv"]
    assert Path(call["cwd"]).is_absolute() and Path(call["log_file"]).is_absolute()


def test_a_real_child_runs_in_the_absolute_state_dir(in_scratch_dir: Path) -> None:
    code = "import os, sys; print(os.getcwd(), flush=True); sys.stdin.read()"
    rec = procs.start("pwd", [sys.executable, "-c", code], state_dir=RELATIVE)
    try:
        assert Path(rec.log_file).is_absolute()
        expected = str(in_scratch_dir / RELATIVE)
        procs.wait_until(
            lambda: None if Path(rec.log_file).read_text().strip() == expected else "no cwd printed yet",
            10,
            "the child to print its working directory",
        )
    finally:
        procs.stop([rec], RELATIVE)
    assert procs.records(in_scratch_dir / RELATIVE) == []


def test_cli_resolves_the_state_dir(in_scratch_dir: Path) -> None:
    res = CliRunner().invoke(lab_cli, ["status", "--state-dir", "rel/state"])
    assert res.exit_code == 0, res.output
    assert f"no lab processes recorded in {in_scratch_dir / 'rel' / 'state'}" in res.output


def test_wait_until_names_what_and_the_last_problem() -> None:
    with pytest.raises(procs.ProcessError, match=r"the thing: not done after 0.2s: still 3 left"):
        procs.wait_until(lambda: "still 3 left", 0.2, "the thing")
    seen = iter(["a", "b", None])
    procs.wait_until(lambda: next(seen), 5, "three polls")
