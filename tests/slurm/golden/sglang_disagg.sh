#!/bin/bash
# Job script rendered by pytest-madengine for golden_model (launcher sglang_disagg, family sglang_disagg).
# Each node runs one task: `python -m pytest_madengine.targets.slurm.node SPEC`, which makes the image
# available on the node, waits for the other nodes, runs the model's container and writes
# node-<rank>.json and node-<rank>.log next to the spec.
#SBATCH --job-name=mad-golden_model
#SBATCH --nodes=3
#SBATCH --ntasks-per-node=1
#SBATCH --partition=gpu
#SBATCH --gpus-per-node=8
#SBATCH --time=01:00:00
#SBATCH --exclusive
#SBATCH --reservation=bench
#SBATCH --nodelist=node[1-2]
#SBATCH --account=perf
#SBATCH --qos=high
#SBATCH --constraint=mi300x
#SBATCH --exclude=node9
#SBATCH --mem=0
#SBATCH --gres=gpu:8
set -uo pipefail
module load rocm/6.2.0

# Rendezvous: the first node of the allocation is the master, reached at its NodeAddr (the address
# slurmctld itself uses; a node name need not resolve where the containers run).
MASTER_NODE="$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)"
MASTER_ADDR="$(scontrol show node "$MASTER_NODE" | tr ' ' '\n' | sed -n 's/^NodeAddr=//p' | head -n 1)"
export MASTER_ADDR="${MASTER_ADDR:-$MASTER_NODE}"
export MASTER_PORT=29600
export NNODES=3
export NPROC_PER_NODE=8
export WORLD_SIZE=$((NNODES * NPROC_PER_NODE))
export MAD_LAUNCHER=sglang_disagg
# sglang-disagg: every node's address, in rank order, for the proxy and the prefill/decode servers.
SGLANG_NODE_IPS="$(scontrol show hostnames "$SLURM_JOB_NODELIST" | while read -r host; do
    getent hosts "$host" | awk '{print $1; exit}'
done | paste -sd, -)"
export SGLANG_NODE_IPS
export SGLANG_HOST_IP=0.0.0.0
export GLOO_SOCKET_IFNAME=ib0
export NCCL_DEBUG=INFO
export NCCL_SOCKET_IFNAME=ib0
export PYTHONPATH=/opt/pytest-madengine${PYTHONPATH:+:$PYTHONPATH}

# NODE_RANK and MAD_MULTI_NODE_RUNNER are set per node by slurm_node (from SLURM_NODEID).
# --kill-on-bad-exit: a node that fails stops the others (their runner stops its container on SIGTERM).
srun --nodes="$NNODES" --ntasks="$NNODES" --ntasks-per-node=1 --kill-on-bad-exit=1 \
    /usr/bin/python3 -m pytest_madengine.targets.slurm.node '/shared/mad/session/run 1/spec.json'
rc=$?
echo "$rc" > '/shared/mad/session/run 1/job.rc'
exit "$rc"
