"""The reason of a failed gang names the rank that failed first, not the ranks stopped with it."""
from __future__ import annotations

import pytest

from pytest_madengine.errors import MadError
from pytest_madengine.workload.gang import RankEnd, first_failure, gang_reason, reason_line
from pytest_madengine.workload.launchers import distributed_env, get_launcher, rendezvous_timeout

TORCH_TIMEOUT = ("  File \".../static_tcp_rendezvous.py\", line 55, in next_rendezvous\n"
                 "TimeoutError: The client socket has timed out after 20s while trying to connect to (vm, 29515).\n")


def test_the_rank_that_failed_is_the_reason_not_rank_0_killed_by_the_job_controller() -> None:
    ends = [RankEnd(0, "node1", 143, finished=105.0, log="waiting for rank 1\n"),
            RankEnd(1, "node2", 7, finished=100.0, log="node rank 1: failing on purpose with exit code 7\n")]
    assert first_failure(ends) is ends[1]
    assert gang_reason(ends) == "rank 1 (node2) failed first: exit code 7; rank(s) 0 were stopped with it"


def test_a_rank_stopped_by_srun_is_never_the_reason_and_the_log_line_says_why() -> None:
    ends = [RankEnd(0, "node1", None, error="node node1 (rank 0) was stopped (signal 15)", stopped=True, finished=1.0),
            RankEnd(1, "node2", 1, finished=2.0, log=TORCH_TIMEOUT)]
    reason = gang_reason(ends)
    assert reason.startswith("rank 1 (node2) failed first: exit code 1: TimeoutError: The client socket has timed out")
    assert reason.endswith("rank(s) 0 were stopped with it")


def test_earliest_failure_wins_and_a_passing_gang_has_no_reason() -> None:
    ends = [RankEnd(0, "a", 2, finished=9.0), RankEnd(1, "b", 3, finished=4.0), RankEnd(2, "c", 0, finished=1.0)]
    assert first_failure(ends).rank == 1
    assert gang_reason([RankEnd(0, "a", 0), RankEnd(1, "b", 0)]) == ""
    assert gang_reason([RankEnd(0, "a", 0), RankEnd(1, "b", None, stopped=True, error="cancelled")]) == ""


def test_reason_line_skips_our_own_notes_and_is_bounded() -> None:
    assert reason_line("ok\n[pytest-madengine] something error\n") == ""
    assert len(reason_line("RuntimeError: " + "x" * 1000)) == 243


def test_multi_node_torchrun_bounds_the_rendezvous() -> None:
    env = distributed_env(get_launcher("torchrun"), nnodes=2, nproc_per_node=1, node_rank=1, master_addr="vm",
                          master_port=29511, distributed={"rendezvous_timeout": 20})
    assert env["PET_RDZV_CONF"] == "timeout=20"
    one = distributed_env(get_launcher("torchrun"), nnodes=1, nproc_per_node=1, node_rank=0, master_addr="",
                          master_port=29500)
    assert "PET_RDZV_CONF" not in one
    assert rendezvous_timeout({}) == 300


@pytest.mark.parametrize("value", ["0", "soon", -5])
def test_a_bad_rendezvous_timeout_names_the_key(value: object) -> None:
    with pytest.raises(MadError, match="rendezvous_timeout"):
        rendezvous_timeout({"rendezvous_timeout": value})
