#!/usr/bin/env bash
# Load Docker images into the containerd of every test node (namespace k8s.io), so pods can use
# them with imagePullPolicy IfNotPresent or Never (nothing can be pulled here). An image whose
# Docker image id was loaded before is skipped. Usage: load-k8s-image.sh IMAGE...
# Exit 3: the cluster's nodes are not running (start-k8s.sh first).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=k8s-common.sh
source "$here/k8s-common.sh"
[ $# -gt 0 ] || { echo "usage: $0 IMAGE..." >&2; exit 2; }
for node in "${NODES[@]}"; do
    [ -S "$RUN/$node/containerd.sock" ] || { echo "node $node has no containerd (start-k8s.sh)" >&2; exit 3; }
done
exec 9>"$STATE/.images.lock"
flock 9
for image in "$@"; do
    id=$(docker image inspect -f '{{.Id}}' "$image")
    key=$(printf '%s' "$image" | tr -c 'A-Za-z0-9._-' '_')
    tar=
    for node in "${NODES[@]}"; do
        mark=$STATE/$node/images/$key
        [ -f "$mark" ] && [ "$(cat "$mark")" = "$id" ] && continue
        if [ -z "$tar" ]; then
            tar=$(mktemp /tmp/mad-k8s-image.XXXXXX)
            docker save "$image" -o "$tar"
        fi
        ctr -a "$RUN/$node/containerd.sock" -n k8s.io images import "$tar" >/dev/null
        mkdir -p "$(dirname "$mark")"
        echo "$id" >"$mark"
    done
    if [ -n "$tar" ]; then rm -f "$tar"; fi
done
