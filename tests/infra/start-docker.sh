#!/usr/bin/env bash
# Start the Docker engine unless one already answers. Safe to run concurrently (flock).
# Exit 3 means dockerd is not installed at all (fixtures skip on that, and only on that).
set -euo pipefail
command -v dockerd >/dev/null || { echo "dockerd is not installed (apt-get install docker.io)" >&2; exit 3; }
docker info >/dev/null 2>&1 && exit 0

exec 9>/tmp/dockerd.lock
flock 9
docker info >/dev/null 2>&1 && exit 0
# 9>&- : the daemon must not inherit the lock, or every later caller would block forever.
setsid dockerd >/tmp/dockerd.log 2>&1 </dev/null 9>&- &
for _ in $(seq 120); do
    docker info >/dev/null 2>&1 && exit 0
    sleep 0.25
done
echo "dockerd did not answer within 30 s; last lines of /tmp/dockerd.log:" >&2
tail -n 20 /tmp/dockerd.log >&2
exit 1
