"""Launcher contracts (madengine's values) that need no container: caps, the disagg split, aliases."""
from __future__ import annotations

import pytest

from pytest_madengine.errors import MadError
from pytest_madengine.workload.launchers import contract_env, distributed_env, get_launcher, local_launcher_env


def test_megatron_caps_tensor_parallel_at_8_on_one_node_only() -> None:
    assert contract_env("megatron", nnodes=1, nproc_per_node=16)["TENSOR_MODEL_PARALLEL_SIZE"] == "8"
    assert contract_env("megatron", nnodes=2, nproc_per_node=16)["TENSOR_MODEL_PARALLEL_SIZE"] == "16"


@pytest.mark.parametrize("spelling", ["sglang_disagg", "sglang-disagg", "SGLang_Disagg"])
def test_sglang_disagg_spellings_are_one_launcher(spelling: str) -> None:
    launcher = get_launcher(spelling)
    assert (launcher.kind, launcher.family) == ("sglang-disagg", "sglang_disagg")


def test_disagg_default_split_and_roles_per_rank() -> None:
    envs = [distributed_env(get_launcher("sglang_disagg"), nnodes=5, nproc_per_node=8, node_rank=rank,
                            master_addr="n1", master_port=29500, node_ips="10.0.0.1,10.0.0.2") for rank in range(5)]
    assert [env["SGLANG_DISAGG_ROLE"] for env in envs] == ["proxy", "prefill", "decode", "decode", "decode"]
    first = envs[0]
    assert {k: first[k] for k in ("SGLANG_DISAGG_MODE", "SGLANG_DISAGG_PREFILL_NODES", "SGLANG_DISAGG_DECODE_NODES",
                                  "SGLANG_DISAGG_TOTAL_NODES", "SGLANG_TP_SIZE", "SGLANG_NODE_RANK",
                                  "SGLANG_NODE_IPS", "MAD_MULTI_NODE_RUNNER")} == {
        "SGLANG_DISAGG_MODE": "enabled", "SGLANG_DISAGG_PREFILL_NODES": "1", "SGLANG_DISAGG_DECODE_NODES": "3",
        "SGLANG_DISAGG_TOTAL_NODES": "5", "SGLANG_TP_SIZE": "8", "SGLANG_NODE_RANK": "0",
        "SGLANG_NODE_IPS": "10.0.0.1,10.0.0.2", "MAD_MULTI_NODE_RUNNER": ""}


def test_disagg_custom_split_is_honoured_and_checked() -> None:
    split = {"sglang_disagg": {"prefill_nodes": 2, "decode_nodes": 2}}
    env = contract_env("sglang-disagg", nnodes=5, nproc_per_node=8, node_rank=2, distributed=split)
    assert (env["SGLANG_DISAGG_PREFILL_NODES"], env["SGLANG_DISAGG_ROLE"]) == ("2", "prefill")
    with pytest.raises(MadError, match="must equal nnodes 4"):
        contract_env("sglang-disagg", nnodes=4, nproc_per_node=8, distributed=split)
    with pytest.raises(MadError, match="at least 3 nodes"):
        contract_env("sglang-disagg", nnodes=2, nproc_per_node=8)


def test_local_env_takes_the_context_launcher_then_the_card_then_mad_launcher() -> None:
    assert local_launcher_env({"launcher": "vllm"}, {"launcher": "deepspeed"}, nproc_per_node=2,
                              model_name="m")["MAD_MULTI_NODE_RUNNER"] == "deepspeed --num_gpus=2"
    assert local_launcher_env(None, None, nproc_per_node=2, model_name="m",
                              host_launcher="sglang")["SGLANG_TENSOR_PARALLEL_SIZE"] == "2"
    with pytest.raises(MadError, match="MAD_LAUNCHER"):
        local_launcher_env(None, None, nproc_per_node=2, model_name="m", host_launcher="mpirun")
