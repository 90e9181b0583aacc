#!/usr/bin/env bash
# Start a two-node SLURM cluster on this one host: munged, slurmctld, `slurmd -N node1|node2`.
# Partition "debug" = node[1-2]. Idempotent and flock-protected; waits until both nodes are up.
# Writes /etc/slurm/slurm.conf (a differing config restarts the daemons). Exit 3: not installed.
set -euo pipefail
for tool in munged slurmctld slurmd sinfo; do
    command -v "$tool" >/dev/null || { echo "$tool is not installed (apt-get install slurm-wlm munge)" >&2; exit 3; }
done
CONF=/etc/slurm/slurm.conf
NODES=(node1 node2)
LOGDIR=/var/log/slurm
host=$(hostname)
cpus=$(nproc)

exec 9>/tmp/mad-slurm.lock
flock 9

munge_works() { munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; }

start_munge() {
    munge_works && return 0
    mkdir -p /run/munge /var/log/munge /var/lib/munge /etc/munge
    chown munge:munge /run/munge /var/log/munge /var/lib/munge /etc/munge
    chmod 0755 /run/munge
    chmod 0700 /var/log/munge /etc/munge
    [ -s /etc/munge/munge.key ] || runuser -u munge -- mungekey -c -k /etc/munge/munge.key
    runuser -u munge -- munged --force 9>&-
    for _ in $(seq 50); do munge_works && return 0; sleep 0.1; done
    echo "munged did not start; see /var/log/munge/munged.log" >&2
    exit 1
}

render_conf() {
    cat <<CONF
# Written by tests/infra/start-slurm.sh: two slurmd daemons on one host.
ClusterName=madtest
SlurmctldHost=$host
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
# Start jobs at once instead of batching submissions for up to 3 s.
SchedulerParameters=batch_sched_delay=0
ReturnToService=2
SlurmdParameters=config_overrides
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd/%n
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd-%n.pid
SlurmctldLogFile=$LOGDIR/slurmctld.log
SlurmdLogFile=$LOGDIR/slurmd-%n.log
KillWait=5
MailProg=/bin/true
InactiveLimit=0
MinJobAge=300
NodeName=node[1-2] NodeHostname=$host Port=17001-17002 CPUs=$cpus RealMemory=2000 State=UNKNOWN
PartitionName=debug Nodes=node[1-2] Default=YES MaxTime=INFINITE State=UP
CONF
}

# kill -0 is not enough: this VM's init reaps late, and a zombie still answers kill -0.
alive() {
    local pid
    [ -s "$1" ] && pid=$(cat "$1") && [ -r "/proc/$pid/stat" ] || return 1
    [ "$(cut -d' ' -f3 "/proc/$pid/stat" 2>/dev/null)" != Z ]
}

stop_daemons() {
    local pidfile
    for pidfile in /run/slurmctld.pid /run/slurmd-node1.pid /run/slurmd-node2.pid; do
        alive "$pidfile" && kill "$(cat "$pidfile")" || true
    done
    for pidfile in /run/slurmctld.pid /run/slurmd-node1.pid /run/slurmd-node2.pid; do
        for _ in $(seq 50); do alive "$pidfile" || break; sleep 0.1; done
    done
}

write_conf() {
    local wanted
    wanted=$(render_conf)
    [ -f "$CONF" ] && [ "$(cat "$CONF")" = "$wanted" ] && return 0
    stop_daemons
    mkdir -p "$(dirname "$CONF")"
    printf '%s\n' "$wanted" >"$CONF"
}

start_daemons() {
    mkdir -p /var/spool/slurmctld "$LOGDIR" "${NODES[@]/#//var/spool/slurmd/}"
    alive /run/slurmctld.pid || slurmctld 9>&-
    local node
    for node in "${NODES[@]}"; do
        alive "/run/slurmd-$node.pid" || slurmd -N "$node" 9>&-
    done
}

node_states() { sinfo -h -N -p debug -o '%N %t' 2>/dev/null | sort -u; }

wait_until_up() {
    local states
    for i in $(seq 240); do
        states=$(node_states)
        if [ -n "$states" ] && ! grep -qvE ' (idle|mix|alloc|comp)$' <<<"$states" \
            && [ "$(wc -l <<<"$states")" -eq ${#NODES[@]} ]; then
            return 0
        fi
        # A node left down/drained by an earlier run comes back once it answers.
        if [ $((i % 20)) -eq 0 ] && grep -qE ' (down|drain|drng|fail)[*~#]?$' <<<"$states"; then
            scontrol update nodename=node[1-2] state=resume 2>/dev/null || true
        fi
        sleep 0.25
    done
    echo "SLURM nodes not up after 60 s:" >&2
    echo "$states" >&2
    tail -n 5 "$LOGDIR"/slurm*.log >&2 || true
    exit 1
}

start_munge
write_conf
start_daemons
wait_until_up
