#!/usr/bin/env bash
# Start a private registry (Debian's docker-registry, distribution 2.8) with htpasswd auth.
# Usage: start-registry.sh DIR USER PASS [ADDR]   (ADDR defaults to 127.0.0.1:5000)
# Everything lives in DIR (config.yml, htpasswd, data/, registry.log, registry.pid).
# Idempotent: a registry already started from DIR is left running. Exit 4: ADDR is taken.
set -euo pipefail
[ $# -ge 3 ] || { echo "usage: $0 DIR USER PASS [ADDR]" >&2; exit 2; }
dir=$1 user=$2 pass=$3 addr=${4:-127.0.0.1:5000}
url="http://$addr/v2/"
command -v docker-registry >/dev/null || { echo "docker-registry is not installed" >&2; exit 3; }
command -v htpasswd >/dev/null || { echo "htpasswd is not installed (apache2-utils)" >&2; exit 3; }

status_code() { curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$url" || true; }

mkdir -p "$dir/data"
dir=$(cd "$dir" && pwd)
if [ -s "$dir/registry.pid" ] && kill -0 "$(cat "$dir/registry.pid")" 2>/dev/null; then
    [ "$(status_code)" = 401 ] && exit 0
fi
if [ "$(status_code)" != 000 ]; then
    echo "something already answers on $addr; pick another address" >&2
    exit 4
fi

# The password goes through stdin, not htpasswd's argv.
printf '%s' "$pass" | htpasswd -iBn "$user" >"$dir/htpasswd" 2>/dev/null
cat >"$dir/config.yml" <<YAML
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $dir/data
  delete:
    enabled: true
http:
  addr: $addr
auth:
  htpasswd:
    realm: basic-realm
    path: $dir/htpasswd
YAML

setsid docker-registry serve "$dir/config.yml" >"$dir/registry.log" 2>&1 </dev/null &
echo $! >"$dir/registry.pid"
for _ in $(seq 100); do
    [ "$(status_code)" = 401 ] && exit 0
    kill -0 "$(cat "$dir/registry.pid")" 2>/dev/null || break
    sleep 0.1
done
echo "registry on $addr did not come up; last lines of $dir/registry.log:" >&2
tail -n 20 "$dir/registry.log" >&2
grep -q 'address already in use' "$dir/registry.log" && exit 4
exit 1
