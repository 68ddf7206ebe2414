#!/usr/bin/env bash
# Build kube-apiserver, kube-controller-manager, kube-scheduler, kubelet and
# kubectl from the k8s.io/kubernetes Go module at $K8S_VERSION.
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

name="kubernetes-$K8S_VERSION"
if cache_ready "$name"; then log "kubernetes $K8S_VERSION: cached"; exit 0; fi
command -v go >/dev/null || die "Go is required to build Kubernetes"

log "kubernetes $K8S_VERSION: building (cold: about 25-40 min on 2 cores)"
staging=$(cache_staging "$name")
mod="$staging/src"; mkdir -p "$mod" "$staging/bin"

# k8s.io/kubernetes replaces its staging modules with local paths; a module
# that requires it must replace each one with the published v0.Y.Z version.
minor="${K8S_VERSION#v1.}"; stage_ver="v0.$minor"
gomod_json=$(cd "$mod" && go mod download -json "k8s.io/kubernetes@$K8S_VERSION")
upstream_gomod=$(printf '%s' "$gomod_json" | sed -n 's/.*"GoMod": "\(.*\)",/\1/p')
[[ -f "$upstream_gomod" ]] || die "cannot find go.mod of k8s.io/kubernetes@$K8S_VERSION"
{
  echo "module lpm.local/k8sbuild"
  echo
  grep -E '^go [0-9]' "$upstream_gomod"
  echo
  echo "require k8s.io/kubernetes $K8S_VERSION"
  echo
  grep -E '^\s*k8s.io/[a-z0-9-]+ => ./staging/' "$upstream_gomod" |
    awk -v v="$stage_ver" '{print "replace " $1 " => " $1 " " v}'
} >"$mod/go.mod"
cat >"$mod/tools.go" <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubelet"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
GO
run_logged kubernetes-mod bash -c "cd '$mod' && go mod tidy -e && go mod download"

ld="-s -w"
for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
  ld="$ld -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=${minor%%.*}"
  ld="$ld -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done
with_heartbeat kubernetes-build bash -c "cd '$mod' && CGO_ENABLED=0 go build -tags tools -trimpath -ldflags '$ld' -o '$staging/bin/' \
  k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
  k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kubectl"
grep -q "$K8S_VERSION" <<<"$("$staging/bin/kube-apiserver" --version)" || die "kube-apiserver reports the wrong version"
rm -rf "$mod"
cache_publish "$name" "$staging"
log "kubernetes $K8S_VERSION: built"
