#!/usr/bin/env bash
# Installs everything lpm needs on a fresh Debian 12 machine (root): apt
# packages, Deno, etcd/checkpointctl (Debian 13) and CRIU (Debian unstable),
# each in a private root,
# Kubernetes binaries, MinIO and containerd built from their Go modules.
# Idempotent: a warm cache makes it a few seconds. Tools are linked into
# ~/.cache/lpm/bin, which the harness and tasks put first in PATH.
#
#   hack/bootstrap.sh            everything
#   hack/bootstrap.sh deno apt   just those steps
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ALL_STEPS=(apt deno trixie_root criu kubernetes minio containerd)
steps=("$@"); ((${#steps[@]})) || steps=("${ALL_STEPS[@]}")

[[ $(id -u) == 0 ]] || die "bootstrap must run as root (it installs apt packages and runs dockerd, CRIU)"
for s in "${steps[@]}"; do
  [[ -f "$LPM_ROOT/hack/steps/$s.sh" ]] || die "unknown step '$s' (known: ${ALL_STEPS[*]})"
  bash "$LPM_ROOT/hack/steps/$s.sh"
done

# Each kubelet and containerd takes inotify instances; tests run several
# local clusters at once (cross-cluster restore), beyond the default 128.
if (($(sysctl -n fs.inotify.max_user_instances) < 1024)); then
  sysctl -qw fs.inotify.max_user_instances=1024 || log "warning: cannot raise fs.inotify.max_user_instances"
fi

# Stable names for the versioned builds.
bin="$LPM_CACHE/bin"; mkdir -p "$bin"
# Relinked only when the target changes: ln -f removes the old link first, which a
# bootstrap running side by side with a test would see as a missing tool.
link() {
  local target="$LPM_CACHE/$1/bin/$2"
  [[ -e "$target" ]] || return 0
  [[ "$(readlink "$bin/$2" 2>/dev/null)" == "$target" ]] || ln -sfn "$target" "$bin/$2"
}
for t in kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl; do link "kubernetes-$K8S_VERSION" "$t"; done
link "minio-$MINIO_VERSION" minio
for t in containerd containerd-shim-runc-v2 ctr; do link "containerd-$CONTAINERD_VERSION" "$t"; done
log "bootstrap done: tools in $bin"
