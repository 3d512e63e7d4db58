#!/usr/bin/env bash
# Builds the manifest renderers the controller runs (helm, kustomize) from the pinned Go modules
# next to this script (helm/go.mod, kustomize/go.mod with their go.sum), and caches them in
#   ${ROLLOUT_TOOLS_CACHE:-~/.cache/regional-rollout/tools}/<tool>-<version>/<tool>
# which is where the controller looks by default (config/sources/tools.py; ROLLOUT_HELM and
# ROLLOUT_KUSTOMIZE override). The version is the one the wrapper go.mod requires; a tool is
# skipped when its cached binary already reports that version. deploy/Containerfile runs this
# same script, so the image carries the same versions.
#
# Usage: deploy/tools/build.sh [--force]      (needs Go >= 1.26 on PATH and the module proxy)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cache="${ROLLOUT_TOOLS_CACHE:-$HOME/.cache/regional-rollout/tools}"
force="${1:-}"
export CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS="-mod=readonly -buildvcs=false"
mkdir -p "$cache"

required() {  # the version of module $2 that $1/go.mod requires
  sed -nE "s#^[[:space:]]*(require[[:space:]]+)?$2 (v[^ ]+).*#\2#p" "$here/$1/go.mod" | head -1
}

build() {  # tool, version, version marker, package, extra ldflags
  local tool="$1" version="$2" marker="$3" package="$4" ldflags="$5"
  local final="$cache/$tool-$version" scratch="$cache/.partial-$tool-$$"
  if [ "$force" != "--force" ] && [ -x "$final/$tool" ] && "$final/$tool" version 2>/dev/null | grep -qF "$marker"; then
    echo "tools: $tool $version: cached in $final"
    return
  fi
  local started=$SECONDS
  echo "tools: $tool $version: building (cold: a few minutes)"
  rm -rf "$scratch" && mkdir -p "$scratch"
  (cd "$here/$tool" && go build -trimpath -ldflags "-s -w $ldflags" -o "$scratch/$tool" "$package")
  if ! "$scratch/$tool" version | grep -qF "$marker"; then
    echo "tools: $tool: the built binary does not report $marker" >&2
    rm -rf "$scratch"
    exit 1
  fi
  rm -rf "$final" && mv "$scratch" "$final"  # swapped in whole: a killed build never looks cached
  echo "tools: $tool $version: built in $((SECONDS - started))s into $final"
}

helm_version="$(required helm helm.sh/helm/v3)"
client_go="$(required helm k8s.io/client-go)"  # Helm's default .Capabilities.KubeVersion follows it
kube_minor="$(echo "$client_go" | cut -d. -f2)"
helm_flags="-X helm.sh/helm/v3/internal/version.version=$helm_version"
helm_flags+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
for pkg in helm.sh/helm/v3/pkg/chartutil helm.sh/helm/v3/pkg/lint/rules; do
  helm_flags+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$kube_minor"
done
build helm "$helm_version" "$helm_version" helm.sh/helm/v3/cmd/helm "$helm_flags"

kustomize_version="$(required kustomize sigs.k8s.io/kustomize/kustomize/v5)"
build kustomize "$kustomize_version" "$kustomize_version" sigs.k8s.io/kustomize/kustomize/v5 \
  "-X sigs.k8s.io/kustomize/api/provenance.version=$kustomize_version"
