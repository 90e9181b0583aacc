#!/bin/bash
# Runs allreduce.py through the target's runner ($MAD_MULTI_NODE_RUNNER: torchrun --nnodes ...
# --master_addr=$MASTER_ADDR --master_port=$MASTER_PORT). --unreachable-rank R: rank R looks for its
# master one port off (nothing listens there), as a node behind a wrong address or firewall would.
set -euo pipefail
runner=$MAD_MULTI_NODE_RUNNER
if [ "${1:-}" = "--unreachable-rank" ]; then
    if [ "$NODE_RANK" = "$2" ]; then
        runner=${runner/--master_port=$MASTER_PORT/--master_port=$((MASTER_PORT + 1))}
        echo "rank $NODE_RANK: looking for the master at port $((MASTER_PORT + 1)) (nothing listens there)"
    fi
    shift 2
fi
echo "node rank $NODE_RANK of $NNODES: master $MASTER_ADDR:$MASTER_PORT"
# shellcheck disable=SC2086  # the runner is a command line
exec $runner allreduce.py "$@"
