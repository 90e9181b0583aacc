# Shared settings of the tests/infra/*-k8s.sh scripts (sourced, not run).
# shellcheck shell=bash disable=SC2034  # the variables are used by the scripts that source this
K8S_VERSION=${MAD_K8S_VERSION:-v1.37.2}
CACHE=${MAD_TEST_CACHE:-/var/cache/mad-test}/k8s/$K8S_VERSION
BIN=$CACHE/bin
STATE=${MAD_K8S_STATE:-/var/lib/mad-test/k8s}
RUN=/run/mad-test-k8s
LOGS=$STATE/log
NODE_MODE=${MAD_K8S_NODES:-kubelet}
NODES=(node1 node2)

ETCD_URL=http://127.0.0.1:12379
API_PORT=16443
API_URL=https://127.0.0.1:$API_PORT
CLUSTER_DOMAIN=cluster.local
SERVICE_CIDR=10.252.0.0/16
API_SERVICE_IP=10.252.0.1
# Node IPs and the cluster DNS live on an empty bridge of the host (this kernel has no dummy
# interfaces, bridges it has: CNI needs them): the kubelets may not
# use a loopback address as node IP, and the pods reach the DNS through their bridge gateway.
DUMMY_IF=mad-k8s0
NODE_IP_BASE=10.250.0
NODE_IPS=("$NODE_IP_BASE.1" "$NODE_IP_BASE.2")
DNS_IP=$NODE_IP_BASE.10
POD_CIDR=10.251.0.0/16
POD_CIDR_PREFIX=10.251
PAUSE_IMAGE=mad-test/pause:latest
PAUSE_IMAGE_REF=docker.io/$PAUSE_IMAGE
GPUS_PER_NODE=8  # extended resources only: amd.com/gpu on node1, nvidia.com/gpu on node2
CONTROL_PLANE=(etcd kube-apiserver kube-controller-manager kube-scheduler)
NEEDED_BINARIES=("${CONTROL_PLANE[@]}")
if [ "$NODE_MODE" = kubelet ]; then NEEDED_BINARIES+=(kubelet coredns); fi

check_binaries() {
    local b missing=()
    for b in "${NEEDED_BINARIES[@]}"; do
        [ -x "$BIN/$b" ] || missing+=("$b")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if command -v go >/dev/null || [ -x /usr/local/go/bin/go ]; then
        echo "Kubernetes $K8S_VERSION binaries not built (${missing[*]}): run tests/infra/build-k8s.sh (.ci/setup does)" >&2
    else
        echo "Kubernetes binaries not built and Go is not installed (tests/infra/build-k8s.sh needs it)" >&2
    fi
    exit 3
}
