#!/usr/bin/env bash
# Stop what start-k8s.sh started: kubelets, the pods' containers, the node containerds, CoreDNS,
# scheduler, controller-manager, apiserver, etcd. The state (PKI, etcd data, loaded images) is
# kept, so the next start is warm. --purge also removes the state, the node bridges, the dummy
# interface and the iptables rules. Idempotent and flock-protected.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=k8s-common.sh
source "$here/k8s-common.sh"
purge=false
[ "${1:-}" = --purge ] && purge=true
mkdir -p "$STATE"
exec 9>"$STATE/.lock"
flock 9

alive() {
    local pid
    [ -s "$RUN/$1.pid" ] && pid=$(cat "$RUN/$1.pid") && [ -r "/proc/$pid/stat" ] || return 1
    [ "$(cut -d' ' -f3 "/proc/$pid/stat" 2>/dev/null)" != Z ]
}

stop() { # name...
    local name
    for name in "$@"; do
        alive "$name" && kill "$(cat "$RUN/$name.pid")" 2>/dev/null || true
    done
    for name in "$@"; do
        for _ in $(seq 100); do alive "$name" || break; sleep 0.1; done
        if alive "$name"; then kill -9 "$(cat "$RUN/$name.pid")" 2>/dev/null || true; fi
        rm -f "$RUN/$name.pid"
    done
}

# The pods' containers outlive kubelet and containerd (their shims are separate processes).
kill_node_containers() { # node
    local sock=$RUN/$1/containerd.sock id
    alive "containerd-$1" || return 0
    for id in $(ctr -a "$sock" -n k8s.io tasks ls -q 2>/dev/null); do
        ctr -a "$sock" -n k8s.io tasks kill -s SIGKILL "$id" >/dev/null 2>&1 || true
    done
    for id in $(ctr -a "$sock" -n k8s.io tasks ls -q 2>/dev/null); do
        ctr -a "$sock" -n k8s.io tasks delete -f "$id" >/dev/null 2>&1 || true
    done
    for id in $(ctr -a "$sock" -n k8s.io containers ls -q 2>/dev/null); do
        ctr -a "$sock" -n k8s.io containers delete "$id" >/dev/null 2>&1 || true
    done
}

unmount_under() { # dir: lazily unmount everything below it, deepest first
    [ -d "$1" ] || return 0
    awk -v d="$1/" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | sort -r | while read -r m; do
        umount -l "$m" 2>/dev/null || true
    done
}

stop kubelet-node1 kubelet-node2 coredns
for node in "${NODES[@]}"; do kill_node_containers "$node"; done
stop containerd-node1 containerd-node2
stop kube-scheduler kube-controller-manager kube-apiserver etcd
for node in "${NODES[@]}"; do
    unmount_under "$STATE/$node"
    unmount_under "$RUN/$node"
done
if $purge; then
    for node in "${NODES[@]}"; do rm -rf "${STATE:?}/$node" "${RUN:?}/$node"; done
    rm -rf "${STATE:?}" "${RUN:?}"
    ip link del "$DUMMY_IF" 2>/dev/null || true
    ip link del mad-cni1 2>/dev/null || true
    ip link del mad-cni2 2>/dev/null || true
    iptables -D FORWARD -s "$POD_CIDR" -j ACCEPT 2>/dev/null || true
    iptables -D FORWARD -d "$POD_CIDR" -j ACCEPT 2>/dev/null || true
    for node in "${NODES[@]}"; do
        find /sys/fs/cgroup/*/"mad-k8s-$node" -depth -type d -exec rmdir {} + 2>/dev/null || true
    done
fi
