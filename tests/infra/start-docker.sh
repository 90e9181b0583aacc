#!/usr/bin/env bash
# Start the Docker engine unless one already answers. Safe to run concurrently (flock).
# Exit 3 means dockerd is not installed at all (fixtures skip on that, and only on that).
# A running engine whose default bridge interface (docker0) has gone from the host gets it back,
# with the address of Docker's `bridge` network: without it every container on the default bridge
# network fails to start ("could not find bridge docker0"), while host-network ones, like the
# plugin's, carry on. Containers keep running (no daemon restart).
set -euo pipefail
command -v dockerd >/dev/null || { echo "dockerd is not installed (apt-get install docker.io)" >&2; exit 3; }

restore_default_bridge() {
    local name subnet gateway net
    read -r name subnet gateway < <(docker network inspect bridge -f \
        '{{index .Options "com.docker.network.bridge.name"}} {{range .IPAM.Config}}{{.Subnet}} {{.Gateway}}{{end}}' \
        2>/dev/null) || return 0
    [ -n "$name" ] && [ -n "$subnet" ] || return 0
    ip link show "$name" >/dev/null 2>&1 && return 0
    # The engine's default gateway is the subnet's first address (a.b.c.0/p -> a.b.c.1/p).
    net=${subnet%/*}
    [ -n "$gateway" ] || gateway=${net%.*}.$((${net##*.} + 1))
    echo "start-docker.sh: the Docker bridge $name was gone; recreating it ($gateway/${subnet#*/})" >&2
    ip link add "$name" type bridge 2>/dev/null || ip link show "$name" >/dev/null
    ip addr replace "$gateway/${subnet#*/}" dev "$name"
    ip link set "$name" up
}

if docker info >/dev/null 2>&1; then
    restore_default_bridge
    exit 0
fi

exec 9>/tmp/dockerd.lock
flock 9
docker info >/dev/null 2>&1 && { restore_default_bridge; exit 0; }
# 9>&- : the daemon must not inherit the lock, or every later caller would block forever.
setsid dockerd >/tmp/dockerd.log 2>&1 </dev/null 9>&- &
for _ in $(seq 120); do
    docker info >/dev/null 2>&1 && exit 0
    sleep 0.25
done
echo "dockerd did not answer within 30 s; last lines of /tmp/dockerd.log:" >&2
tail -n 20 /tmp/dockerd.log >&2
exit 1
