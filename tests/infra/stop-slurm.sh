#!/usr/bin/env bash
# Stop the SLURM daemons that start-slurm.sh started (munged is left running), and wait until they
# are gone: a start right after must not meet a daemon still holding its port (up to 10 s each,
# then SIGKILL).
set -euo pipefail
exec 9>/tmp/mad-slurm.lock
flock 9
# kill -0 is not enough: this VM's init reaps late, and a zombie still answers kill -0.
running() { [ -r "/proc/$1/stat" ] && [ "$(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null)" != Z ]; }
pids=()
for pidfile in /run/slurmctld.pid /run/slurmd-node1.pid /run/slurmd-node2.pid; do
    [ -s "$pidfile" ] && pid=$(cat "$pidfile") && running "$pid" && kill "$pid" 2>/dev/null && pids+=("$pid")
done
for pid in "${pids[@]}"; do
    for _ in $(seq 100); do running "$pid" || break; sleep 0.1; done
    running "$pid" && kill -9 "$pid" 2>/dev/null || true
done
