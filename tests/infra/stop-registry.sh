#!/usr/bin/env bash
# Stop the registry that start-registry.sh started from DIR. Usage: stop-registry.sh DIR
set -euo pipefail
pidfile=${1:?usage: $0 DIR}/registry.pid
[ -s "$pidfile" ] || exit 0
pid=$(cat "$pidfile")
if kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
fi
rm -f "$pidfile"
