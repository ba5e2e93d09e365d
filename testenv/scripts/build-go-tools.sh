#!/usr/bin/env bash
# Builds the real servers and CLIs the tests need (etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
# kubelet, kubectl, helm, crictl, registry, KEDA's operator and metrics adapter) from their Go modules, pinned by the
# go.mod files under testenv/gobin/.
# Binaries are cached outside the repo, keyed by a hash of those go.mod/go.sum files, so a second run builds nothing.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cache=${KPT_CACHE:-$HOME/.cache/kpt}
key=$(cat "$here"/gobin/*/go.mod "$here"/gobin/*/go.sum "$0" | sha256sum | cut -c1-16)
out="$cache/gobin-$key"
want=(etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl helm crictl registry keda-operator keda-adapter)
missing=0
for b in "${want[@]}"; do [ -x "$out/$b" ] || missing=1; done
if [ "$missing" = 0 ]; then echo "$out"; exit 0; fi
mkdir -p "$out"
# One build at a time (tests, env-up and the Makefile may all ask at once).
exec 9>"$cache/gobin.lock"
flock 9
export GOFLAGS=-mod=mod GOTOOLCHAIN=local CGO_ENABLED=0
build() { # module-dir output package
  local dir=$1 name=$2 pkg=$3
  [ -x "$out/$name" ] && return 0
  local t0=$SECONDS
  local ld="-s -w"
  if [ "$dir" = k8s ]; then
    # Stamp the version so kubectl and helm see a real server version instead of v0.0.0.
    local v; v=$(sed -n 's/^require k8s.io\/kubernetes \(v[0-9.]*\)$/\1/p' "$here/gobin/k8s/go.mod")
    local minor; minor=$(echo "$v" | cut -d. -f2)
    local vp=k8s.io/component-base/version
    ld="$ld -X $vp.gitVersion=$v -X $vp.gitMajor=1 -X $vp.gitMinor=$minor -X $vp.gitTreeState=clean"
    ld="$ld -X k8s.io/client-go/pkg/version.gitVersion=$v -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=$minor"
  fi
  if [ "$dir" = helm ]; then
    # helm's own release build stamps its version and the Kubernetes version it assumes for `helm template`
    # (from the client-go it links); without them it reports v0.0.0 and assumes Kubernetes 1.20.
    local hv cg
    hv=$(sed -n 's/^require helm.sh\/helm\/v3 \(v[0-9.]*\)$/\1/p' "$here/gobin/helm/go.mod")
    cg=$(cd "$here/gobin/helm" && go list -m -f '{{.Version}}' k8s.io/client-go | cut -d. -f2)
    ld="$ld -X helm.sh/helm/v3/internal/version.version=$hv"
    for vpkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
      ld="$ld -X $vpkg.k8sVersionMajor=1 -X $vpkg.k8sVersionMinor=$cg"
    done
  fi
  (cd "$here/gobin/$dir" && go build -trimpath -ldflags="$ld" -o "$out/$name.tmp" "$pkg")
  mv "$out/$name.tmp" "$out/$name"
  echo "built $name in $((SECONDS - t0))s" >&2
}
build etcd etcd go.etcd.io/etcd/server/v3
build k8s kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver
build k8s kube-controller-manager k8s.io/kubernetes/cmd/kube-controller-manager
build k8s kube-scheduler k8s.io/kubernetes/cmd/kube-scheduler
build k8s kubelet k8s.io/kubernetes/cmd/kubelet
build k8s kubectl k8s.io/kubernetes/cmd/kubectl
build helm helm helm.sh/helm/v3/cmd/helm
build cri-tools crictl sigs.k8s.io/cri-tools/cmd/crictl
build registry registry github.com/distribution/distribution/v3/cmd/registry
build keda keda-operator github.com/kedacore/keda/v2/cmd/operator
build keda keda-adapter github.com/kedacore/keda/v2/cmd/adapter
echo "$out"
