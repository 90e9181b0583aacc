#!/usr/bin/env bash
# Build FerretDB 1.x (a MongoDB wire-protocol server with an SQLite backend; no registry ships a
# mongod binary) from its Go module into $MAD_TEST_CACHE/ferretdb/<version>/bin/ferretdb
# (default /var/cache/mad-test/ferretdb/v1.24.0). Module cache, build cache and the binary live
# under that one version directory; a stamp marks a complete build, so a second run builds
# nothing. flock-protected. Exit 3: Go is not installed. Prints the binary's path as its last line.
set -euo pipefail
VERSION=${MAD_FERRETDB_VERSION:-v1.24.0}
CACHE=${MAD_TEST_CACHE:-/var/cache/mad-test}/ferretdb/$VERSION
BIN=$CACHE/bin/ferretdb
STAMP=$CACHE/bin/.complete

GO=$(command -v go || true)
[ -z "$GO" ] && [ -x /usr/local/go/bin/go ] && GO=/usr/local/go/bin/go
[ -n "$GO" ] || { echo "go is not installed (needed to build FerretDB from its Go module)" >&2; exit 3; }

mkdir -p "$CACHE/bin"
exec 9>"$CACHE/.build.lock"
flock 9
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$VERSION" ] && [ -x "$BIN" ]; then
    echo "$BIN"
    exit 0
fi
t0=$(date +%s)
export GOPATH=$CACHE/gopath GOMODCACHE=$CACHE/gopath/pkg/mod GOCACHE=$CACHE/gocache
export GOTOOLCHAIN=local GOFLAGS=-buildvcs=false CGO_ENABLED=0
# `go install …@version` builds a binary that panics at start: FerretDB's main package wants the
# generated build/version/version.txt, which the module zip lacks. Build from a copy with it.
echo "[build-ferretdb] fetching github.com/FerretDB/FerretDB@$VERSION" >&2
module=$("$GO" mod download -json "github.com/FerretDB/FerretDB@$VERSION" | python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')
rm -rf "$CACHE/src"
cp -r "$module" "$CACHE/src"
chmod -R u+w "$CACHE/src"
echo "$VERSION" >"$CACHE/src/build/version/version.txt"
echo "[build-ferretdb] building cmd/ferretdb (nice, CGO off: pure-Go SQLite)" >&2
(cd "$CACHE/src" && nice -n 10 "$GO" build -o "$BIN" ./cmd/ferretdb)
echo "$VERSION" >"$STAMP"
echo "[build-ferretdb] built in $(($(date +%s) - t0)) s" >&2
echo "$BIN"
