#!/usr/bin/env bash
# Builds the local control plane's binaries from their Go modules and caches them by version:
#   kube-apiserver, kube-controller-manager, kubectl  (k8s.io/kubernetes, one version)
#   etcd                                              (go.etcd.io/etcd/server/v3)
#   helm                                              (helm.sh/helm/v4)
#   helm3                                             (helm.sh/helm/v3: the chart tests run with both)
#   actionlint                                        (github.com/rhysd/actionlint)
# Prints the cache's bin directory on stdout; progress goes to stderr.
# Nothing is downloaded but Go modules: no prebuilt binaries exist on these machines.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"

cache=${ATO_CACHE_DIR:-$HOME/.cache/actor-token-operator}
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod

log() { printf '[build-tools] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

command -v go >/dev/null || die "go is not on PATH; install Go 1.26 or newer (it builds the test control plane)."

# shellcheck source=go-build.sh
source "$here/go-build.sh"

# A wrapper module for k8s.io/kubernetes: its go.mod requires every staging module at v0.0.0
# and replaces it with a local folder, so each must be pointed at its published v0.N.P tag.
# The list is derived from the release's own go.mod, since it changes between releases.
build_kubernetes() {
  local out=$cache/kubernetes-$KUBERNETES_VERSION
  if [[ -x $out/kube-apiserver && -x $out/kube-controller-manager && -x $out/kubectl ]]; then return; fi
  local work=$cache/src/kubernetes-$KUBERNETES_VERSION
  rm -rf "$work" && mkdir -p "$work"
  local gomod
  gomod=$(cd "$work" && go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" | sed -n 's/.*"GoMod": "\(.*\)",/\1/p')
  [[ -f $gomod ]] || die "could not download k8s.io/kubernetes@$KUBERNETES_VERSION from the Go module proxy."
  local minor=${KUBERNETES_VERSION#v1.}; minor=${minor%%.*}
  local staging_version=v0.${KUBERNETES_VERSION#v1.}
  {
    echo "module actor-token-operator/hack/kubernetes"
    echo
    grep -E '^go [0-9.]+$' "$gomod"
    grep -E '^godebug ' "$gomod" || true
    echo
    echo "require k8s.io/kubernetes $KUBERNETES_VERSION"
    echo
    grep -E '^\s+k8s\.io/[a-z0-9-]+ v0\.0\.0$' "$gomod" | awk -v v="$staging_version" '{print "replace " $1 " => " $1 " " v}'
  } >"$work/go.mod"
  local ver=k8s.io/component-base/version
  local ldflags="-s -w -X $ver.gitVersion=$KUBERNETES_VERSION -X $ver.gitMajor=1 -X $ver.gitMinor=$minor -X $ver.gitTreeState=clean -X $ver.buildDate=1970-01-01T00:00:00Z"
  mkdir -p "$work/bin"
  (cd "$work" && with_progress "kube-apiserver, kube-controller-manager, kubectl $KUBERNETES_VERSION" "15-25 min" \
    go build -trimpath -ldflags "$ldflags" -o bin/ \
      k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kubectl)
  rm -rf "$out.tmp" && mv "$work/bin" "$out.tmp" && rm -rf "$out" && mv "$out.tmp" "$out"
}

# Builds one binary from a module through a one-line wrapper module (etcd's server module
# carries replace directives of its own, which only apply in a module that requires it).
#   build_module NAME VERSION MODULE PACKAGE ESTIMATE [LDFLAGS...]
build_module() {
  local name=$1 version=$2 module=$3 package=$4 estimate=$5; shift 5
  local out=$cache/$name-$version
  [[ -x $out/$name ]] && return
  local work=$cache/src/$name-$version
  rm -rf "$work" && mkdir -p "$work/bin"
  printf 'module actor-token-operator/hack/%s\n\ngo 1.26\n\nrequire %s %s\n' "$name" "$module" "$version" >"$work/go.mod"
  (cd "$work" && with_progress "$name $version" "$estimate" \
    go build -trimpath -ldflags "-s -w $*" -o "bin/$name" "$package")
  rm -rf "$out" && mv "$work/bin" "$out"
}

build_etcd() {
  build_module etcd "$ETCD_VERSION" go.etcd.io/etcd/server/v3 go.etcd.io/etcd/server/v3 "2-4 min"
}

build_helm() {
  build_module helm "$HELM_VERSION" helm.sh/helm/v4 helm.sh/helm/v4/cmd/helm "3-5 min" \
    "-X helm.sh/helm/v4/internal/version.version=$HELM_VERSION"
}

# Many clusters are still driven by Helm 3; the chart's tests run with it as well as Helm 4.
# Like Helm's own release build, it is told the Kubernetes version of the client-go it is built
# with: that is what `helm template` and `helm lint` check a chart's kubeVersion against when no
# cluster is asked (without it, v1.20). Helm 4 reads it from its build information itself.
build_helm3() {
  [[ -x $cache/helm3-$HELM3_VERSION/helm3 ]] && return
  local gomod minor
  gomod=$(cd "$cache" && go mod download -json "helm.sh/helm/v3@$HELM3_VERSION" | sed -n 's/.*"GoMod": "\(.*\)",/\1/p')
  minor=$(sed -n 's#^[[:space:]]*k8s.io/client-go v0\.\([0-9]*\)\..*#\1#p' "$gomod" 2>/dev/null)
  [[ -n $minor ]] || die "could not read the client-go version of helm.sh/helm/v3@$HELM3_VERSION from the Go module proxy."
  build_module helm3 "$HELM3_VERSION" helm.sh/helm/v3 helm.sh/helm/v3/cmd/helm "3-5 min" \
    "-X helm.sh/helm/v3/internal/version.version=$HELM3_VERSION" \
    "-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$minor" \
    "-X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$minor"
}

# actionlint checks the GitHub Actions workflows in .github/workflows (hack/test.sh).
build_actionlint() {
  build_module actionlint "$ACTIONLINT_VERSION" github.com/rhysd/actionlint github.com/rhysd/actionlint/cmd/actionlint "1-2 min" \
    "-X github.com/rhysd/actionlint.version=$ACTIONLINT_VERSION"
}

# One bin directory of symlinks per set of versions (named by the hash of versions.env), so
# callers need a single PATH entry.
link_bin() {
  local bin
  bin=$cache/bin-$(sha256sum "$here/versions.env" | cut -c1-16)
  mkdir -p "$bin"
  for f in kube-apiserver kube-controller-manager kubectl; do ln -sf "$cache/kubernetes-$KUBERNETES_VERSION/$f" "$bin/$f"; done
  ln -sf "$cache/etcd-$ETCD_VERSION/etcd" "$bin/etcd"
  ln -sf "$cache/helm-$HELM_VERSION/helm" "$bin/helm"
  ln -sf "$cache/helm3-$HELM3_VERSION/helm3" "$bin/helm3"
  ln -sf "$cache/actionlint-$ACTIONLINT_VERSION/actionlint" "$bin/actionlint"
  echo "$bin"
}

mkdir -p "$cache"
# Serialise concurrent builds (two terminals, or make -j) on one lock.
exec 9>"$cache/.build.lock"
flock 9
build_etcd
build_helm
build_helm3
build_actionlint
build_kubernetes
link_bin
