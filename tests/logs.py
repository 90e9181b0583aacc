"""Reading run logs in tests: a multi-node run's log holds one section per rank, headed
``===== node <name> (rank r) =====`` (SLURM) or ``===== pod <name> (rank r) on <node> =====`` (Kubernetes)."""
from __future__ import annotations

import re

_RANK_HEADER = re.compile(r"^===== (?:node|pod) \S+ \(rank (\d+)\)(?: on \S+)? =====$", flags=re.M)


def rank_sections(log: str) -> dict[int, str]:
    """Rank → the text of its section of a multi-node run log."""
    parts = _RANK_HEADER.split(log)
    return {int(parts[i]): parts[i + 1] for i in range(1, len(parts) - 1, 2)}
