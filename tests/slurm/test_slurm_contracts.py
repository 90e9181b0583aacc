"""What a MAD model sees in its container on each node of a real two-node SLURM job, per launcher.

Expected values are madengine's (``deployment/slurm.py`` ``_generate_*_command`` multi-node branches
and ``templates/slurm/job.sh.j2``), for nnodes=2, nproc_per_node=2; the master is node1 at its
``NodeAddr`` and the port 29500 + job id mod 1000 (madengine: the node name and 29500).
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.docker.test_launcher_contracts import ENV_SCRIPT, container_env

from .helpers import job_port, make_card, make_package, make_request, node_address

pytestmark = [pytest.mark.slurm, pytest.mark.docker]

TORCHRUN = "torchrun --nnodes=2 --nproc_per_node=2 --node_rank={rank} --master_addr={addr} --master_port={port}"
EXPECTED = {
    "megatron": {"MAD_MULTI_NODE_RUNNER": TORCHRUN, "TENSOR_MODEL_PARALLEL_SIZE": "2",
                 "PIPELINE_MODEL_PARALLEL_SIZE": "2", "CONTEXT_PARALLEL_SIZE": "1", "MAD_LAUNCHER_TYPE": "megatron"},
    "torchtitan": {"MAD_MULTI_NODE_RUNNER": TORCHRUN, "TORCHTITAN_TENSOR_PARALLEL_SIZE": "2",
                   "TORCHTITAN_PIPELINE_PARALLEL_SIZE": "2", "TORCHTITAN_FSDP_ENABLED": "1",
                   "TORCHTITAN_CONTEXT_PARALLEL_SIZE": "1"},
    "deepspeed": {"MAD_MULTI_NODE_RUNNER": "deepspeed --no_ssh --num_nodes=2 --num_gpus=2 --node_rank={rank} "
                                           "--master_addr={addr} --master_port={port}"},
    "vllm": {"MAD_MULTI_NODE_RUNNER": "", "VLLM_TENSOR_PARALLEL_SIZE": "2", "VLLM_PIPELINE_PARALLEL_SIZE": "1",
             "VLLM_DISTRIBUTED_BACKEND": "none"},
    "sglang": {"MAD_MULTI_NODE_RUNNER": "", "SGLANG_TENSOR_PARALLEL_SIZE": "2",
               "SGLANG_PIPELINE_PARALLEL_SIZE": "1", "NCCL_INIT_ADDR": "{addr}:{port}"},
    "primus": {"MAD_MULTI_NODE_RUNNER": "", "PRIMUS_CONFIG_PATH": "exp_pretrain.yaml"},
}
JOB = {"MAD_DEPLOYMENT_TYPE": "slurm", "MAD_TOTAL_NODES": "2", "MAD_IN_SLURM_JOB": "1", "LOCAL_RANK": "0",
       "MASTER_ADDR": "{addr}", "MASTER_PORT": "{port}", "NNODES": "2", "NPROC_PER_NODE": "2", "WORLD_SIZE": "4"}


@pytest.mark.parametrize("launcher", list(EXPECTED))
def test_each_node_gets_the_launcher_contract_and_the_job_variables(target, tmp_path, launcher):
    package = make_package(tmp_path / "pkg", {"env.sh": ENV_SCRIPT})
    card = make_card("contract", "env.sh", distributed={"launcher": launcher, "nnodes": 2, "nproc_per_node": 2})
    outcome = target.run(make_request(package, card, tmp_path))
    assert outcome.exit_code == 0, outcome.error
    for rank, log in enumerate(outcome.node_logs):
        env = container_env(log.read_text())
        master = {"addr": node_address("node1"), "port": job_port(outcome.extra["job_id"])}
        wanted = {key: value.format(rank=rank, **master) for key, value in {**EXPECTED[launcher], **JOB}.items()}
        wanted.update(MAD_SLURM_JOB_ID=str(outcome.extra["job_id"]), MAD_NODE_RANK=str(rank), RANK=str(rank),
                      NODE_RANK=str(rank), MAD_COLLECT_METRICS="true" if rank == 0 else "false")
        assert {key: env.get(key) for key in wanted} == wanted


@pytest.mark.parametrize("line, expected, rule", [
    ('echo "performance: $((100 + NODE_RANK * 10)) samples_per_second"', "210", "sum"),
    ('echo "performance: $((10 + NODE_RANK * 4)) ms"', "12", "mean"),
])
def test_two_node_performance_is_aggregated_by_metric(target, tmp_path, line, expected, rule):
    from pytest_madengine.results.judge import judge

    package = make_package(tmp_path / "pkg", {"perf.sh": line + "\n"})
    card = make_card("agg", "perf.sh", distributed={"launcher": "torchrun", "nnodes": 2})
    request = make_request(package, card, tmp_path)
    outcome = target.run(request)
    result = judge(card, outcome, image=None, context=request.context, gpus=(), nnodes=2, deployment_type="slurm")
    assert (result.status, result.performance, result.rows[0]["performance"]) == ("SUCCESS", expected, expected)
    assert result.properties["aggregation.method"] == rule and result.properties["aggregation.nodes"] == "2"


def test_slurm_keys_of_real_configs_reach_the_job_and_the_containers(target, tmp_path):
    package = make_package(tmp_path / "pkg", {"env.sh": ENV_SCRIPT})
    card = make_card("keys", "env.sh", distributed={"launcher": "torchrun", "port": 29612})
    context = {"gpu_vendor": "NONE", "slurm": {"network_interface": "lo", "env_vars": {"NCCL_DEBUG": "INFO"},
                                               "exclude": "node1", "mem": "100M"}}
    outcome = target.run(make_request(package, card, tmp_path, context=context))
    assert outcome.exit_code == 0, outcome.error
    assert outcome.extra["nodes"] == ["node2"]  # node1 excluded
    env = container_env(outcome.node_logs[0].read_text())
    assert {k: env.get(k) for k in ("NCCL_SOCKET_IFNAME", "GLOO_SOCKET_IFNAME", "NCCL_DEBUG", "MASTER_PORT")} == {
        "NCCL_SOCKET_IFNAME": "lo", "GLOO_SOCKET_IFNAME": "lo", "NCCL_DEBUG": "INFO", "MASTER_PORT": "29612"}


def test_each_node_gets_madengines_container_variables_and_the_cards_credentials(target, tmp_path, monkeypatch):
    import json

    from pytest_madengine.context import build_context
    from tests.docker.test_container_env import MI300X

    monkeypatch.setenv("BUILD_NUMBER", "2718")  # the job inherits the submitter's environment
    package = make_package(tmp_path / "pkg", {"env.sh": ENV_SCRIPT})
    (package / "credential.json").write_text(json.dumps({"MAD_HF": {"username": "bot", "token": "t-1"}}))
    card = make_card("vars", "env.sh", cred="MAD_HF", distributed={"launcher": "torchrun", "nnodes": 2})
    context = build_context(context_text="{'gpu_vendor': 'AMD'}", host=MI300X).to_json()
    outcome = target.run(make_request(package, card, tmp_path, context=context))
    assert outcome.exit_code == 0, outcome.error
    wanted = {"MAD_SYSTEM_HIP_VERSION": "6.2", "MAD_SYSTEM_GPU_PRODUCT_NAME": "AMD Instinct MI300X",
              "JENKINS_BUILD_NUMBER": "2718", "ROCM_PATH": "/opt/rocm", "MAD_HF_USERNAME": "bot", "MAD_HF_TOKEN": "t-1"}
    for log in outcome.node_logs:
        env = container_env(log.read_text())
        assert {key: env.get(key) for key in wanted} == wanted


def test_tool_outputs_of_every_node_are_kept_and_named(target, tmp_path, monkeypatch):
    from pytest_madengine.results.judge import artifact_properties

    # madengine's multi-node rule keeps rocprof tools only where rocprofv3 is on the submitting host's PATH
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "rocprofv3").write_text("#!/bin/sh\nexit 0\n")
    (tmp_path / "bin" / "rocprofv3").chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    script = 'mkdir -p rocprof_output && echo "rank $NODE_RANK" > rocprof_output/trace.txt\necho "performance: 1 x"\n'
    package = make_package(tmp_path / "pkg", {"prof.sh": script})
    card = make_card("prof", "prof.sh", distributed={"launcher": "torchrun", "nnodes": 2})
    context = {"gpu_vendor": "NONE", "tools": [{"name": "rocprofv3", "cmd": " "}]}
    outcome = target.run(make_request(package, card, tmp_path, context=context))
    assert outcome.exit_code == 0, outcome.error
    kept = [Path(path) for path in outcome.extra["tool_outputs"]]
    assert [(path / "trace.txt").read_text().strip() for path in kept] == ["rank 0", "rank 1"]
    assert sorted(artifact_properties(outcome.extra)) == ["env_csv", "tool_output.node-1.tools/rocprof_output",
                                                         "tool_output.rocprof_output"]
    assert Path(str(outcome.extra["env_csv"])).name == "node-0_env.csv"  # rank 0's capture
