#!/bin/bash
# Runs allreduce.py through the target's runner ($MAD_MULTI_NODE_RUNNER: torchrun --nnodes ...
# --master_addr=$MASTER_ADDR --master_port=$MASTER_PORT).
#   --unreachable-rank R  node rank R looks for its master one port off (nothing listens there), as a
#                         node behind a wrong address or firewall would
#   --fail-rank R         node rank R exits 7 at once; the others wait for it at the rendezvous
#                         (distributed.rendezvous_timeout) unless the target stops them first
set -euo pipefail
runner=$MAD_MULTI_NODE_RUNNER
echo "node rank $NODE_RANK of $NNODES: master $MASTER_ADDR:$MASTER_PORT"
case "${1:-}" in
    --unreachable-rank)
        if [ "$NODE_RANK" = "$2" ]; then
            runner=${runner/--master_port=$MASTER_PORT/--master_port=$((MASTER_PORT + 1))}
            echo "node rank $NODE_RANK: looking for the master at port $((MASTER_PORT + 1)) (nothing listens there)"
        fi
        shift 2 ;;
    --fail-rank)
        if [ "$NODE_RANK" = "$2" ]; then
            echo "node rank $NODE_RANK: failing on purpose with exit code 7"
            exit 7
        fi
        shift 2 ;;
esac
# shellcheck disable=SC2086  # the runner is a command line
exec $runner allreduce.py "$@"
