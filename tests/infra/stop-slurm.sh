#!/usr/bin/env bash
# Stop the SLURM daemons that start-slurm.sh started (munged is left running).
set -euo pipefail
exec 9>/tmp/mad-slurm.lock
flock 9
for pidfile in /run/slurmctld.pid /run/slurmd-node1.pid /run/slurmd-node2.pid; do
    [ -s "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null || true
done
