"""What a MAD model sees in a real local container, per launcher (madengine's single-node contract).

Expected values are madengine's (``container_runner._generate_local_launcher_command`` and the
``slurm._generate_*_command`` single-node branches): the runner line for torchrun-like and deepspeed
launchers, empty for those that start their own processes, and each launcher's size variables.
"""
from __future__ import annotations

import pytest

from pytest_madengine.targets.local.target import LocalTarget
from tests.slurm.helpers import make_card, make_package, make_request

pytestmark = pytest.mark.docker

ENV_SCRIPT = "env | sort\necho 'performance: 1 x'\n"
TORCHRUN_4 = "torchrun --standalone --nproc_per_node=4"
CONTRACT_KEYS = ("MAD_MULTI_NODE_RUNNER", "TENSOR_MODEL_PARALLEL_SIZE", "PIPELINE_MODEL_PARALLEL_SIZE",
                 "CONTEXT_PARALLEL_SIZE", "TORCHTITAN_TENSOR_PARALLEL_SIZE", "TORCHTITAN_PIPELINE_PARALLEL_SIZE",
                 "TORCHTITAN_FSDP_ENABLED", "VLLM_TENSOR_PARALLEL_SIZE", "VLLM_PIPELINE_PARALLEL_SIZE",
                 "VLLM_DISTRIBUTED_BACKEND", "SGLANG_TENSOR_PARALLEL_SIZE", "SGLANG_PIPELINE_PARALLEL_SIZE",
                 "SGLANG_DISAGG_MODE", "PRIMUS_CONFIG_PATH", "PRIMUS_CLI_EXTRA", "BACKEND")
EXPECTED = {
    None: {"MAD_MULTI_NODE_RUNNER": TORCHRUN_4},
    "torchrun": {"MAD_MULTI_NODE_RUNNER": TORCHRUN_4},
    "megatron": {"MAD_MULTI_NODE_RUNNER": TORCHRUN_4, "TENSOR_MODEL_PARALLEL_SIZE": "4",
                 "PIPELINE_MODEL_PARALLEL_SIZE": "1", "CONTEXT_PARALLEL_SIZE": "1"},
    "torchtitan": {"MAD_MULTI_NODE_RUNNER": TORCHRUN_4, "TORCHTITAN_TENSOR_PARALLEL_SIZE": "4",
                   "TORCHTITAN_PIPELINE_PARALLEL_SIZE": "1"},
    "deepspeed": {"MAD_MULTI_NODE_RUNNER": "deepspeed --num_gpus=4"},
    "vllm": {"MAD_MULTI_NODE_RUNNER": "", "VLLM_TENSOR_PARALLEL_SIZE": "4", "VLLM_PIPELINE_PARALLEL_SIZE": "1",
             "VLLM_DISTRIBUTED_BACKEND": "auto"},
    "sglang": {"MAD_MULTI_NODE_RUNNER": "", "SGLANG_TENSOR_PARALLEL_SIZE": "4", "SGLANG_PIPELINE_PARALLEL_SIZE": "1"},
    "sglang_disagg": {"MAD_MULTI_NODE_RUNNER": ""},
    "primus": {"MAD_MULTI_NODE_RUNNER": "", "PRIMUS_CONFIG_PATH": "exp_pretrain.yaml"},
}


def container_env(log_text: str) -> dict[str, str]:
    env = {}
    for line in log_text.splitlines():
        name, sep, value = line.partition("=")
        if sep and name.replace("_", "").isalnum():
            env[name] = value
    return env


@pytest.fixture
def run_env(tmp_path, docker_engine, busybox_image, clean_containers):
    package = make_package(tmp_path / "pkg", {"env.sh": ENV_SCRIPT})
    session = f"contract-{tmp_path.name[-8:]}"
    clean_containers.value = session
    target = LocalTarget(session_id=session, package_root=package, client=docker_engine)

    def run(card, context=None) -> dict[str, str]:
        outcome = target.run(make_request(package, card, tmp_path, context=context))
        assert outcome.exit_code == 0, outcome.error
        return container_env(outcome.log_path.read_text())
    yield run
    target.close()


@pytest.mark.parametrize("launcher", list(EXPECTED), ids=lambda name: name or "no-launcher")
def test_each_launcher_exports_madengines_single_node_contract(run_env, launcher):
    distributed = {"launcher": launcher} if launcher else None
    env = run_env(make_card("contract", "env.sh", n_gpus="4", distributed=distributed))
    seen = {key: env[key] for key in CONTRACT_KEYS if key in env}
    assert seen == EXPECTED[launcher]


def test_context_launcher_wins_and_primus_settings_reach_the_container(run_env):
    card = make_card("primus_pretrain/megatron_MI300X_llama", "env.sh", n_gpus="2",
                     distributed={"launcher": "torchrun"})
    context = {"gpu_vendor": "NONE", "distributed": {
        "launcher": "primus", "primus": {"config_path": "examples/megatron/configs/llama.yaml",
                                         "cli_extra": "--train_iters 10"}}}
    env = run_env(card, context)
    assert env["MAD_MULTI_NODE_RUNNER"] == ""
    assert env["PRIMUS_CONFIG_PATH"] == "examples/megatron/configs/llama.yaml"
    assert env["PRIMUS_CLI_EXTRA"] == "--train_iters 10"
    assert env["BACKEND"] == "megatron"  # inferred from the primus_pretrain/<backend>_... name


def test_a_runner_given_in_docker_env_vars_is_left_alone(run_env):
    context = {"gpu_vendor": "NONE", "docker_env_vars": {"MAD_MULTI_NODE_RUNNER": "mpirun -np 2"}}
    env = run_env(make_card("own", "env.sh", distributed={"launcher": "megatron"}), context)
    assert env["MAD_MULTI_NODE_RUNNER"] == "mpirun -np 2"
    assert "TENSOR_MODEL_PARALLEL_SIZE" not in env
