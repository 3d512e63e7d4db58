"""The Go wrapper modules agree with the pins; the kube-* version ldflags are complete."""

from __future__ import annotations

import re

from deploy.lab.build import builder, versions


def test_k8s_wrapper_module_pins_the_release_and_every_staging_module() -> None:
    gomod = (builder.K8S_MODULE / "go.mod").read_text()
    assert builder.k8s_gomod_matches(gomod, versions.KUBERNETES)
    replaces = dict(re.findall(r"^\s*(k8s\.io/[\w.-]+) => \1 (v\S+)$", gomod, re.M))
    assert len(replaces) >= 31
    assert set(replaces.values()) == {versions.staging_version()}
    assert {"k8s.io/api", "k8s.io/client-go", "k8s.io/component-base", "k8s.io/kubectl"} <= set(replaces)


def test_gomod_check_rejects_other_releases() -> None:
    gomod = (builder.K8S_MODULE / "go.mod").read_text()
    assert not builder.k8s_gomod_matches(gomod, "v1.36.1")
    stale = gomod.replace("k8s.io/api => k8s.io/api v0.35.4", "k8s.io/api => k8s.io/api v0.35.3")
    assert not builder.k8s_gomod_matches(stale, versions.KUBERNETES)


def test_render_k8s_gomod_round_trips() -> None:
    rendered = builder.render_k8s_gomod("v1.36.3", ["k8s.io/api"] + [f"k8s.io/m{i}" for i in range(30)])
    assert builder.k8s_gomod_matches(rendered, "v1.36.3")
    assert "k8s.io/api => k8s.io/api v0.36.3" in rendered


def test_etcd_wrapper_module_pins_etcd() -> None:
    gomod = (builder.ETCD_MODULE / "go.mod").read_text()
    assert f"go.etcd.io/etcd/server/v3 {versions.ETCD}" in gomod
    assert "etcdmain.Main(os.Args)" in (builder.ETCD_MODULE / "main.go").read_text()


def test_version_ldflags_set_both_packages() -> None:
    flags = builder._version_ldflags("v1.35.4")
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        for key, value in (("gitVersion", "v1.35.4"), ("gitMajor", "1"), ("gitMinor", "35"), ("gitTreeState", "clean")):
            assert f"-X {pkg}.{key}={value}" in flags
        assert f"-X {pkg}.buildDate=" in flags


def test_cache_layout_is_keyed_by_version(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("ROLLOUT_LAB_CACHE", str(tmp_path))
    assert builder.binary("kube-apiserver") == tmp_path / f"kubernetes-{versions.KUBERNETES}" / "kube-apiserver"
    assert builder.binary("etcd") == tmp_path / f"etcd-{versions.ETCD}" / "etcd"
    assert not any(builder.is_cached(c) for c in builder.COMPONENTS)


def test_is_cached_checks_the_reported_version(tmp_path) -> None:  # type: ignore[no-untyped-def]
    etcd = builder.component_of("etcd")
    d = etcd.directory(tmp_path)
    d.mkdir(parents=True)
    fake = d / "etcd"
    fake.write_text("#!/bin/sh\necho 'etcd Version: 3.5.0'\n")
    fake.chmod(0o755)
    assert not builder.is_cached(etcd, tmp_path)
    fake.write_text(f"#!/bin/sh\necho 'etcd Version: {versions.ETCD.lstrip('v')}'\n")
    assert builder.is_cached(etcd, tmp_path)
