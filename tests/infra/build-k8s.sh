#!/usr/bin/env bash
# Build the Kubernetes binaries the test cluster needs from Go modules (no registry ships them):
#   kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy etcd coredns
# into $MAD_TEST_CACHE/k8s/<version>/bin (default /var/cache/mad-test/k8s/v1.37.2/bin).
# k8s.io/kubernetes pins its staging modules at v0.0.0 with local replace lines, so `go install`
# refuses it: a wrapper module of our own requires it and replaces each staging module with its
# published v0.<minor>.<patch> twin. Everything (module cache, build cache, wrapper, binaries)
# lives under that one version directory. A stamp marks a complete build: a second run builds
# nothing. Idempotent and flock-protected. Exit 3: Go is not installed.
# Prints the bin directory as its last line.
set -euo pipefail
K8S_VERSION=${MAD_K8S_VERSION:-v1.37.2}
CACHE=${MAD_TEST_CACHE:-/var/cache/mad-test}/k8s/$K8S_VERSION
BIN=$CACHE/bin
STAMP=$BIN/.complete
COREDNS_VERSION=v1.15.0
BINARIES=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy etcd coredns)

GO=$(command -v go || true)
[ -z "$GO" ] && [ -x /usr/local/go/bin/go ] && GO=/usr/local/go/bin/go
[ -n "$GO" ] || { echo "go is not installed (needed to build Kubernetes from Go modules)" >&2; exit 3; }

mkdir -p "$CACHE"
exec 9>"$CACHE/.build.lock"
flock 9

stamp_text() { printf '%s coredns-%s %s\n' "$K8S_VERSION" "$COREDNS_VERSION" "${BINARIES[*]}"; }
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$(stamp_text)" ]; then
    echo "$BIN"
    exit 0
fi

t0=$(date +%s)
log() { echo "[build-k8s $(($(date +%s) - t0))s] $*" >&2; }

export GOPATH=$CACHE/gopath GOMODCACHE=$CACHE/gopath/pkg/mod GOCACHE=$CACHE/gocache
export GOTOOLCHAIN=local GOFLAGS=-buildvcs=false CGO_ENABLED=0
mod=$CACHE/wrapper
mkdir -p "$mod" "$BIN"
cd "$mod"

if [ ! -f go.mod ] || ! grep -q "k8s.io/kubernetes $K8S_VERSION" go.mod; then
    log "resolving k8s.io/kubernetes@$K8S_VERSION"
    rm -f go.mod go.sum
    "$GO" mod init mad-test/k8s-binaries >/dev/null 2>&1
    upstream=$("$GO" mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')
    [ -s "$upstream" ] || { echo "could not download k8s.io/kubernetes@$K8S_VERSION" >&2; exit 1; }
    staging_version=v0.${K8S_VERSION#v1.}
    edits=("-require=k8s.io/kubernetes@$K8S_VERSION")
    # Every module that k8s.io/kubernetes requires at v0.0.0 is a staging module.
    for m in $("$GO" mod edit -json "$upstream" | python3 -c '
import json, sys
print("\n".join(r["Path"] for r in json.load(sys.stdin)["Require"] if r["Version"] == "v0.0.0"))'); do
        edits+=("-replace=$m=$m@$staging_version")
    done
    "$GO" mod edit "${edits[@]}"
    # Keep the upstream Go directive so language and GODEBUG defaults match the release.
    gover=$("$GO" mod edit -json "$upstream" | python3 -c 'import json, sys; print(json.load(sys.stdin)["Go"])')
    [ -n "$gover" ] && "$GO" mod edit -go="$gover"
    cat >tools.go <<'GO'
//go:build tools

// Package tools only pins the main packages this wrapper module builds.
package tools

import (
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
GO
    log "go mod tidy (downloads the module graph)"
    "$GO" mod tidy -e >&2
fi

minor=${K8S_VERSION#v1.}
minor=${minor%%.*}
vpkg=k8s.io/component-base/version
ldflags="-s -w -X $vpkg.gitVersion=$K8S_VERSION -X $vpkg.gitMajor=1 -X $vpkg.gitMinor=$minor"
ldflags+=" -X $vpkg.gitTreeState=clean -X $vpkg.buildDate=1970-01-01T00:00:00Z"
ldflags+=" -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION"
# `go build -o DIR/` names go.etcd.io/etcd/server/v3's binary after "server".
rename_etcd() { if [ -x "$BIN/server" ]; then mv "$BIN/server" "$BIN/etcd"; fi; }
rename_etcd
if [ ! -x "$BIN/kube-apiserver" ] || [ ! -x "$BIN/etcd" ] || [ ! -x "$BIN/kubelet" ]; then
log "go build kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy etcd"
"$GO" build -trimpath -ldflags "$ldflags" -o "$BIN/" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubelet \
    k8s.io/kubernetes/cmd/kube-proxy go.etcd.io/etcd/server/v3 >&2
rename_etcd
fi
# CoreDNS (cluster DNS for the pods) has no replace lines: a plain `go install`, outside the
# wrapper module so its dependency versions stay its own; the build cache is shared.
if [ ! -x "$BIN/coredns" ]; then
    log "go install github.com/coredns/coredns@$COREDNS_VERSION"
    (cd "$CACHE" && GOBIN=$BIN "$GO" install -trimpath -ldflags "-s -w" "github.com/coredns/coredns@$COREDNS_VERSION" >&2)
fi
for b in "${BINARIES[@]}"; do
    [ -x "$BIN/$b" ] || { echo "build produced no $BIN/$b" >&2; exit 1; }
done
stamp_text >"$STAMP"
# The build cache (~4.7 GB) only speeds up a rebuild of this very version, which the stamp
# prevents; the module cache (~2.3 GB) stays for `go mod` of the wrapper.
"$GO" clean -cache
log "done: $(du -sh "$CACHE" | cut -f1) in $CACHE"
echo "$BIN"
