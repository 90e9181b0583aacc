#!/usr/bin/env bash
# Start a real Kubernetes cluster on this one host, from the binaries build-k8s.sh built:
#   etcd, kube-apiserver (client-cert auth, service-account key pair), kube-controller-manager,
#   kube-scheduler, and (MAD_K8S_NODES=kubelet, the default) two real nodes, node1 and node2:
#   one containerd instance of its own per node (own socket, root, state; CRI on, cgroupfs),
#   one kubelet per node (own root dir, node IP, log dir, cgroup root), a CNI bridge per node,
#   and CoreDNS on the host answering cluster.local for the pods.
# Never builds (that is build-k8s.sh's job, .ci/setup runs it): exit 3 when the binaries or the
# Debian packages are missing. Idempotent and flock-protected: what runs already is kept.
# The last line printed is the path of the admin kubeconfig.
# Environment: MAD_K8S_VERSION (v1.37.2), MAD_TEST_CACHE (/var/cache/mad-test),
#              MAD_K8S_STATE (/var/lib/mad-test/k8s), MAD_K8S_NODES (kubelet | none).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=k8s-common.sh
source "$here/k8s-common.sh"

check_binaries
for tool in openssl curl python3; do
    command -v "$tool" >/dev/null || { echo "$tool is not installed (apt-get install openssl curl python3)" >&2; exit 3; }
done
if [ "$NODE_MODE" = kubelet ]; then
    for tool in containerd ctr runc iptables ip docker; do
        command -v "$tool" >/dev/null || { echo "$tool is not installed (apt-get install containerd runc iptables iproute2 docker.io)" >&2; exit 3; }
    done
    [ -x /usr/lib/cni/bridge ] || { echo "CNI plugins are not installed (apt-get install containernetworking-plugins)" >&2; exit 3; }
fi

mkdir -p "$STATE" "$RUN" "$LOGS"
exec 9>"$STATE/.lock"
flock 9

t0=$(date +%s%N)
log() { echo "[start-k8s $(( ($(date +%s%N) - t0) / 1000000 ))ms] $*" >&2; }

# --- PKI: one CA; serving cert for the apiserver; client certs (CN = user, O = group) -------
pki=$STATE/pki
new_cert() { # name CN O [SAN]
    local name=$1 cn=$2 org=$3 san=${4:-}
    [ -s "$pki/$name.crt" ] && return 0
    openssl genrsa -out "$pki/$name.key" 2048 2>/dev/null
    local ext=$pki/$name.ext
    {
        echo "basicConstraints=CA:FALSE"
        echo "keyUsage=critical,digitalSignature,keyEncipherment"
        if [ -n "$san" ]; then
            echo "extendedKeyUsage=serverAuth,clientAuth"
            echo "subjectAltName=$san"
        else
            echo "extendedKeyUsage=clientAuth"
        fi
    } >"$ext"
    local subj="/CN=$cn"
    [ -n "$org" ] && subj="/O=$org/CN=$cn"
    openssl req -new -key "$pki/$name.key" -subj "$subj" -out "$pki/$name.csr" 2>/dev/null
    openssl x509 -req -in "$pki/$name.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
        -days 3650 -sha256 -extfile "$ext" -out "$pki/$name.crt" 2>/dev/null
    rm -f "$pki/$name.csr" "$ext"
}

make_pki() {
    mkdir -p "$pki"
    chmod 0700 "$pki"
    if [ ! -s "$pki/ca.crt" ]; then
        openssl genrsa -out "$pki/ca.key" 2048 2>/dev/null
        openssl req -x509 -new -key "$pki/ca.key" -subj "/CN=mad-test-k8s-ca" -days 3650 -sha256 \
            -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
            -out "$pki/ca.crt" 2>/dev/null
    fi
    if [ ! -s "$pki/sa.key" ]; then
        openssl genrsa -out "$pki/sa.key" 2048 2>/dev/null
        openssl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
    fi
    new_cert apiserver kube-apiserver "" \
        "DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.$CLUSTER_DOMAIN,IP:127.0.0.1,IP:$API_SERVICE_IP"
    new_cert admin mad-test-admin system:masters
    new_cert apiserver-kubelet-client kube-apiserver-kubelet-client system:masters
    new_cert controller-manager system:kube-controller-manager ""
    new_cert scheduler system:kube-scheduler ""
    new_cert coredns mad-test-coredns system:masters
    local node
    for node in "${NODES[@]}"; do
        new_cert "kubelet-$node" "system:node:$node" system:nodes
    done
}

write_kubeconfig() { # file cert-name
    local file=$1 name=$2 tmp
    tmp=$(mktemp "$file.XXXXXX")
    cat >"$tmp" <<YAML
apiVersion: v1
kind: Config
clusters:
- name: mad-test
  cluster:
    server: $API_URL
    certificate-authority: $pki/ca.crt
users:
- name: $name
  user:
    client-certificate: $pki/$name.crt
    client-key: $pki/$name.key
contexts:
- name: mad-test
  context: {cluster: mad-test, user: $name, namespace: default}
current-context: mad-test
YAML
    chmod 0600 "$tmp"
    mv "$tmp" "$file"
}

# --- daemons ---------------------------------------------------------------------------------
# kill -0 is not enough: this VM's init reaps late, and a zombie still answers kill -0.
alive() {
    local pid
    [ -s "$RUN/$1.pid" ] && pid=$(cat "$RUN/$1.pid") && [ -r "/proc/$pid/stat" ] || return 1
    [ "$(cut -d' ' -f3 "/proc/$pid/stat" 2>/dev/null)" != Z ]
}

launch() { # name argv...
    local name=$1
    shift
    alive "$name" && return 0
    log "starting $name"
    setsid "$@" >>"$LOGS/$name.log" 2>&1 </dev/null 9>&- &
    echo $! >"$RUN/$name.pid"
}

wait_for() { # what seconds command...
    local what=$1 secs=$2
    shift 2
    local i
    for i in $(seq $((secs * 10))); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "$what not ready after ${secs}s; last log lines:" >&2
    tail -n 20 "$LOGS/$what.log" >&2 2>/dev/null || true
    exit 1
}

api_get() { # path (as admin)
    curl -fsS --max-time 5 --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" "$API_URL$1"
}

start_control_plane() {
    launch etcd "$BIN/etcd" --name mad-test --data-dir "$STATE/etcd" \
        --listen-client-urls "$ETCD_URL" --advertise-client-urls "$ETCD_URL" \
        --listen-peer-urls http://127.0.0.1:12380 --initial-advertise-peer-urls http://127.0.0.1:12380 \
        --initial-cluster mad-test=http://127.0.0.1:12380 --listen-metrics-urls "" \
        --unsafe-no-fsync --quota-backend-bytes 2147483648 --log-level warn
    wait_for etcd 30 curl -fsS --max-time 2 "$ETCD_URL/health"

    launch kube-apiserver "$BIN/kube-apiserver" \
        --etcd-servers "$ETCD_URL" --bind-address 127.0.0.1 --secure-port "$API_PORT" \
        --advertise-address "$NODE_IP_BASE.1" --endpoint-reconciler-type none \
        --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
        --client-ca-file "$pki/ca.crt" \
        --kubelet-client-certificate "$pki/apiserver-kubelet-client.crt" \
        --kubelet-client-key "$pki/apiserver-kubelet-client.key" \
        --kubelet-preferred-address-types InternalIP \
        --service-account-key-file "$pki/sa.pub" --service-account-signing-key-file "$pki/sa.key" \
        --service-account-issuer "https://kubernetes.default.svc.$CLUSTER_DOMAIN" \
        --service-cluster-ip-range "$SERVICE_CIDR" --authorization-mode Node,RBAC \
        --allow-privileged=true --profiling=false --anonymous-auth=false
    wait_for kube-apiserver 90 api_get /readyz

    launch kube-controller-manager "$BIN/kube-controller-manager" \
        --kubeconfig "$STATE/controller-manager.kubeconfig" \
        --authentication-kubeconfig "$STATE/controller-manager.kubeconfig" \
        --authorization-kubeconfig "$STATE/controller-manager.kubeconfig" \
        --bind-address 127.0.0.1 --secure-port 10257 --leader-elect=false \
        --service-account-private-key-file "$pki/sa.key" --root-ca-file "$pki/ca.crt" \
        --use-service-account-credentials=true --controllers '*' \
        --cluster-signing-cert-file "$pki/ca.crt" --cluster-signing-key-file "$pki/ca.key" \
        --service-cluster-ip-range "$SERVICE_CIDR" --allocate-node-cidrs=false \
        --concurrent-job-syncs 10 --profiling=false
    launch kube-scheduler "$BIN/kube-scheduler" \
        --kubeconfig "$STATE/scheduler.kubeconfig" \
        --authentication-kubeconfig "$STATE/scheduler.kubeconfig" \
        --authorization-kubeconfig "$STATE/scheduler.kubeconfig" \
        --bind-address 127.0.0.1 --secure-port 10259 --leader-elect=false --profiling=false
    wait_for kube-controller-manager 60 curl -fsSk --max-time 2 https://127.0.0.1:10257/healthz
    wait_for kube-scheduler 60 curl -fsSk --max-time 2 https://127.0.0.1:10259/healthz
}

# --- nodes -------------------------------------------------------------------------------------
setup_host_network() {
    modprobe br_netfilter 2>/dev/null || true
    sysctl -qw net.ipv4.ip_forward=1
    ip link show "$DUMMY_IF" >/dev/null 2>&1 || ip link add "$DUMMY_IF" type bridge
    ip link set "$DUMMY_IF" up
    local addr have
    # Not `ip ... | grep -q`: grep exiting early fails the pipe (pipefail) when ip gets SIGPIPE.
    have=$(ip -4 -o addr show dev "$DUMMY_IF")
    for addr in "${NODE_IPS[@]}" "$DNS_IP"; do
        grep -q " $addr/" <<<"$have" || ip addr add "$addr/32" dev "$DUMMY_IF"
    done
    # Docker sets the FORWARD policy to DROP; let pod traffic through (the CNI firewall plugin
    # accepts per pod too, this covers replies across the two node bridges).
    iptables -C FORWARD -s "$POD_CIDR" -j ACCEPT 2>/dev/null || iptables -I FORWARD -s "$POD_CIDR" -j ACCEPT
    iptables -C FORWARD -d "$POD_CIDR" -j ACCEPT 2>/dev/null || iptables -I FORWARD -d "$POD_CIDR" -j ACCEPT
}

write_node_configs() { # index node
    local i=$1 node=$2 dir=$STATE/$2 nrun=$RUN/$2
    mkdir -p "$dir/cni" "$dir/kubelet" "$dir/pods-logs" "$nrun"
    cat >"$dir/containerd.toml" <<TOML
# Written by tests/infra/start-k8s.sh: the containerd of test node $node (not Docker's).
version = 2
root = "$dir/containerd"
state = "$nrun/containerd"
oom_score = 0
[grpc]
  address = "$nrun/containerd.sock"
[ttrpc]
  address = "$nrun/containerd-ttrpc.sock"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "$dir/containerd-opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE_REF"
  stream_server_address = "127.0.0.1"
  stream_server_port = "$((10010 + i))"
  enable_selinux = false
  disable_apparmor = true
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$nrun/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$dir/cni"
    max_conf_num = 1
TOML
    cat >"$dir/cni/10-mad-k8s.conflist" <<JSON
{
  "cniVersion": "1.0.0",
  "name": "mad-k8s-$node",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "mad-cni$i",
      "isGateway": true,
      "ipMasq": true,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "$POD_CIDR_PREFIX.$i.0/24"}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": "$nrun/cni-ipam"
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}},
    {"type": "firewall"}
  ]
}
JSON
    cat >"$dir/kubelet.yaml" <<YAML
# Written by tests/infra/start-k8s.sh: kubelet of test node $node.
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: "${NODE_IPS[$((i - 1))]}"
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $((10247 + i))
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: "$pki/ca.crt"}
authorization: {mode: AlwaysAllow}
cgroupDriver: cgroupfs
cgroupRoot: /mad-k8s-$node
cgroupsPerQOS: true
failCgroupV1: false
failSwapOn: false
clusterDomain: $CLUSTER_DOMAIN
clusterDNS: ["$DNS_IP"]
resolvConf: /etc/resolv.conf
podLogsDir: "$dir/pods-logs"
containerRuntimeEndpoint: "unix://$nrun/containerd.sock"
imageServiceEndpoint: "unix://$nrun/containerd.sock"
registerNode: true
maxPods: 30
serializeImagePulls: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
imageMinimumGCAge: 87600h
evictionHard: {"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%"}
evictionPressureTransitionPeriod: 10s
nodeStatusUpdateFrequency: 5s
syncFrequency: 10s
fileCheckFrequency: 10s
protectKernelDefaults: false
makeIPTablesUtilChains: false
localStorageCapacityIsolation: true
YAML
    write_kubeconfig "$dir/kubelet.kubeconfig" "kubelet-$node"
}

# The kubelet refuses a cgroup root that does not exist: make it in every cgroup v1 hierarchy
# (cpuset needs its cpus and mems filled in before anything can join it).
make_cgroup_root() { # node
    local h
    for h in /sys/fs/cgroup/*/; do
        [ -d "$h" ] && [ "$h" != /sys/fs/cgroup/unified/ ] || continue
        mkdir -p "$h/mad-k8s-$1"
    done
    if [ -f /sys/fs/cgroup/cpuset/cpuset.cpus ]; then
        local c=/sys/fs/cgroup/cpuset/mad-k8s-$1
        [ -n "$(cat "$c/cpuset.cpus")" ] || cat /sys/fs/cgroup/cpuset/cpuset.cpus >"$c/cpuset.cpus"
        [ -n "$(cat "$c/cpuset.mems")" ] || cat /sys/fs/cgroup/cpuset/cpuset.mems >"$c/cpuset.mems"
    fi
}

containerd_up() { ctr -a "$RUN/$1/containerd.sock" version; }

start_node() { # index node
    local i=$1 node=$2 dir=$STATE/$2
    write_node_configs "$i" "$node"
    launch "containerd-$node" containerd --config "$dir/containerd.toml"
    wait_for "containerd-$node" 30 containerd_up "$node"
    load_pause_image "$node"
    make_cgroup_root "$node"
    launch "kubelet-$node" "$BIN/kubelet" --config "$dir/kubelet.yaml" \
        --kubeconfig "$dir/kubelet.kubeconfig" --root-dir "$dir/kubelet" \
        --cert-dir "$dir/kubelet/pki" --hostname-override "$node" \
        --node-ip "${NODE_IPS[$((i - 1))]}" --node-labels "mad-test/node=$node" --v 1
}

# The sandbox ("pause") image: nothing can be pulled, so it is made here from the busybox
# static binary of Debian's busybox-static, PID 1 a shell that waits for SIGTERM.
load_pause_image() { # node
    local sock=$RUN/$1/containerd.sock
    grep -qx "$PAUSE_IMAGE_REF" <<<"$(ctr -a "$sock" -n k8s.io images ls -q 2>/dev/null)" && return 0
    local tar=$STATE/pause.tar
    if [ ! -s "$tar" ]; then
        local rootfs
        rootfs=$(mktemp -d /tmp/mad-pause.XXXXXX)
        mkdir -p "$rootfs/bin"
        install -m 0755 /bin/busybox "$rootfs/bin/busybox"
        ln -s busybox "$rootfs/bin/sh"
        ln -s busybox "$rootfs/bin/sleep"
        # An OCI image layout tarball by hand would be long: docker builds it, ctr imports it.
        tar -C "$rootfs" -c . | docker import \
            -c 'ENTRYPOINT ["/bin/sh", "-c", "trap \"exit 0\" TERM INT; while :; do sleep 3600 & wait $!; done"]' \
            - "$PAUSE_IMAGE" >/dev/null
        rm -rf "$rootfs"
        docker save "$PAUSE_IMAGE" -o "$tar.tmp"
        mv "$tar.tmp" "$tar"
    fi
    ctr -a "$sock" -n k8s.io images import "$tar" >/dev/null
}

start_coredns() {
    cat >"$STATE/Corefile" <<COREFILE
.:53 {
    bind $DNS_IP
    errors
    ready 127.0.0.1:18181
    kubernetes $CLUSTER_DOMAIN in-addr.arpa ip6.arpa {
        kubeconfig $STATE/coredns.kubeconfig mad-test
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 5
    }
    forward . /etc/resolv.conf
    cache 5
}
COREFILE
    launch coredns "$BIN/coredns" -conf "$STATE/Corefile"
    wait_for coredns 30 coredns_ready
}

coredns_ready() { curl -fsS --max-time 2 http://127.0.0.1:18181/ready; }

nodes_ready() {
    local node
    for node in "${NODES[@]}"; do
        api_get "/api/v1/nodes/$node" | python3 -c '
import json, sys
node = json.load(sys.stdin)
sys.exit(not any(c["type"] == "Ready" and c["status"] == "True" for c in node["status"].get("conditions", [])))' || return 1
    done
}

# No GPU here: node1 advertises amd.com/gpu, node2 nvidia.com/gpu, as extended resources patched
# into the node status (the kubelet keeps extended capacity it has no device plugin for), so
# pods asking for either vendor's GPUs are scheduled to "their" node and really run there.
advertise_gpus() {
    local node=$1 resource=$2 count=$3
    curl -fsS --max-time 5 --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" \
        -X PATCH -H 'Content-Type: application/merge-patch+json' \
        --data "{\"status\": {\"capacity\": {\"$resource\": \"$count\"}}}" \
        "$API_URL/api/v1/nodes/$node/status" >/dev/null
}

# The kubelet copies capacity into allocatable (what the scheduler looks at) on its next status
# update, within nodeStatusUpdateFrequency (5 s).
gpus_allocatable() { # node resource
    api_get "/api/v1/nodes/$1" | python3 -c '
import json, sys
sys.exit(sys.argv[1] not in json.load(sys.stdin)["status"].get("allocatable", {}))' "$2"
}

make_pki
write_kubeconfig "$STATE/admin.kubeconfig" admin
write_kubeconfig "$STATE/controller-manager.kubeconfig" controller-manager
write_kubeconfig "$STATE/scheduler.kubeconfig" scheduler
write_kubeconfig "$STATE/coredns.kubeconfig" coredns
start_control_plane
if [ "$NODE_MODE" = kubelet ]; then
    setup_host_network
    i=0
    for node in "${NODES[@]}"; do
        i=$((i + 1))
        start_node "$i" "$node"
    done
    start_coredns
    for node in "${NODES[@]}"; do wait_for "kubelet-$node" 120 nodes_ready; done
    advertise_gpus node1 amd.com/gpu "$GPUS_PER_NODE"
    advertise_gpus node2 nvidia.com/gpu "$GPUS_PER_NODE"
    wait_for kubelet-node1 30 gpus_allocatable node1 amd.com/gpu
    wait_for kubelet-node2 30 gpus_allocatable node2 nvidia.com/gpu
fi
log "cluster up"
echo "$STATE/admin.kubeconfig"
