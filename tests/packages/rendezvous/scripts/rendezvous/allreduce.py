"""One rank of a torchrun job: join the gloo process group, all_reduce, check the sum, time it.

Every rank contributes ``rank + 1``; the sum must be ``world * (world + 1) / 2``. Each rank then
times ``--iters`` all_reduces of ``--mib`` MiB and prints its data rate as a MAD performance line
(``performance: N allreduce_MB_per_second``; the targets sum the nodes' figures).
"""
import argparse
import os
import sys
import time

import torch
import torch.distributed as dist


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mib", type=float, default=4.0)
    parser.add_argument("--iters", type=int, default=20)
    args = parser.parse_args()
    rank = int(os.environ["RANK"])
    started = time.monotonic()
    dist.init_process_group("gloo")  # env://: MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE from torchrun
    world = dist.get_world_size()
    print(f"rank {rank}/{world} joined at {os.environ['MASTER_ADDR']}:{os.environ['MASTER_PORT']} "
          f"in {time.monotonic() - started:.2f} s", flush=True)
    total = torch.full((4,), float(rank + 1))
    dist.all_reduce(total)
    expected = world * (world + 1) / 2
    if not bool(torch.all(total == expected)):
        print(f"rank {rank}: all_reduce sum {total.tolist()} is not {expected}", flush=True)
        return 3
    print(f"rank {rank}: all_reduce sum {expected:g} is right", flush=True)
    data = torch.ones(int(args.mib * 2**20 / 4))
    dist.barrier()
    started = time.monotonic()
    for _ in range(args.iters):
        dist.all_reduce(data)
    seconds = time.monotonic() - started
    if dist.get_rank() % int(os.environ.get("LOCAL_WORLD_SIZE", "1")) == 0:  # one line per node
        print(f"performance: {args.iters * data.numel() * 4 / 1e6 / seconds:.1f} allreduce_MB_per_second")
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
