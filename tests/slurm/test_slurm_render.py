"""Rendered job scripts (golden files, bash -n), settings merging and launcher command lines."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from pytest_madengine.errors import MadError
from pytest_madengine.results.performance import best_first
from pytest_madengine.targets.slurm.config import resolve
from pytest_madengine.targets.slurm.render import ScriptInputs, render_job_script
from pytest_madengine.workload.launchers import distributed_env, families, get_launcher, runner_command

from .helpers import make_card

GOLDEN = Path(__file__).parent / "golden"
TEMPLATE_FAMILIES = [f for f in families() if f != "slurm_multi"]


def render_fixed(family: str) -> str:
    nnodes = 3 if family == "sglang_disagg" else 2  # disaggregated serving needs a proxy, a prefill and a decode node
    card = make_card("golden_model", "run.sh", distributed={"launcher": family, "nnodes": nnodes},
                     slurm={"partition": "gpu", "gpus_per_node": 8, "time": "01:00:00"})
    context = {"slurm": {"exclusive": True, "account": "perf", "qos": "high", "reservation": "bench",
                         "nodelist": "node[1-2]", "extra_sbatch_options": ["--gres=gpu:8"], "constraint": "mi300x",
                         "exclude": "node9", "mem": 0, "modules": ["rocm/6.2.0"], "network_interface": "ib0",
                         "env_vars": {"NCCL_DEBUG": "INFO"}},
               "distributed": {"port": 29600}}
    config = resolve(card, context, timeout=3600)
    inputs = ScriptInputs(model=card.name, job_name="mad-golden_model",
                          spec_path="/shared/mad/session/run 1/spec.json", rc_path="/shared/mad/session/run 1/job.rc",
                          python="/usr/bin/python3", pythonpath="/opt/pytest-madengine")
    return render_job_script(config, inputs)


@pytest.mark.parametrize("family", TEMPLATE_FAMILIES)
def test_rendered_script_matches_golden_file(family: str) -> None:
    text = render_fixed(family)
    golden = GOLDEN / f"{family}.sh"
    if os.environ.get("MAD_UPDATE_GOLDEN"):
        golden.write_text(text)
    assert text == golden.read_text()


@pytest.mark.parametrize("family", TEMPLATE_FAMILIES)
def test_golden_script_is_valid_bash(family: str) -> None:
    done = subprocess.run(["bash", "-n", str(GOLDEN / f"{family}.sh")], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


def test_script_carries_the_merged_settings() -> None:
    text = render_fixed("torchrun")
    for line in ("#SBATCH --nodes=2", "#SBATCH --partition=gpu", "#SBATCH --gpus-per-node=8",
                 "#SBATCH --time=01:00:00", "#SBATCH --exclusive", "#SBATCH --account=perf",
                 "#SBATCH --qos=high", "#SBATCH --reservation=bench", "#SBATCH --nodelist=node[1-2]",
                 "#SBATCH --gres=gpu:8", "export MASTER_PORT=29600", "export NPROC_PER_NODE=8",
                 "#SBATCH --constraint=mi300x", "#SBATCH --exclude=node9", "#SBATCH --mem=0",
                 "module load rocm/6.2.0", "export NCCL_SOCKET_IFNAME=ib0", "export GLOO_SOCKET_IFNAME=ib0",
                 "export NCCL_DEBUG=INFO"):
        assert line in text.splitlines(), line
    assert "'/shared/mad/session/run 1/spec.json'" in text  # paths are shell-quoted


def test_context_wins_over_card_and_preset_fills_the_rest() -> None:
    card = make_card("m", "run.sh", slurm={"partition": "card", "nodes": 2, "time": "10"},
                     distributed={"launcher": "deepspeed", "nnodes": 2})
    config = resolve(card, {"slurm": {"partition": "ctx"}, "distributed": {"nnodes": 1}}, timeout=None)
    assert (config.partition, config.time, config.nnodes) == ("ctx", "10", 1)
    assert config.launcher.family == "deepspeed"
    assert config.master_port is None and config.exclusive is False  # preset: the port comes from the job id


@pytest.mark.parametrize("alias", ["shared_dir", "shared_workspace", "output_dir", "results_dir"])
def test_madengine_names_of_the_shared_dir_are_aliases(alias: str) -> None:
    assert resolve(make_card("m", "run.sh"), {"slurm": {alias: "/nfs/mad"}}, timeout=None).shared_dir == "/nfs/mad"


def test_time_limit_defaults_from_the_model_timeout() -> None:
    config = resolve(make_card("m", "run.sh"), {}, timeout=600)
    assert config.time == "20" and config.launcher.family == "native" and config.nnodes == 1


@pytest.mark.parametrize("context, field", [
    ({"slurm": {"partition": "gpu\n#SBATCH --x"}}, "slurm.partition"),
    ({"slurm": {"time": "one hour"}}, "slurm.time"),
    ({"slurm": {"extra_sbatch_options": ["mem=0"]}}, "slurm.extra_sbatch_options"),
    ({"distributed": {"launcher": "mpirun-ish"}}, "distributed.launcher"),
    ({"slurm": "gpu"}, "context"),
])
def test_bad_settings_raise_one_clear_error(context: dict, field: str) -> None:
    with pytest.raises(MadError) as info:
        resolve(make_card("m", "run.sh"), context, timeout=None)
    assert field in info.value.message and "Fix:" in info.value.message


def test_runner_lines_per_family() -> None:
    args = {"nnodes": 2, "nproc_per_node": 8, "node_rank": 1, "master_addr": "node1", "master_port": 29500}
    assert runner_command("torchrun", **args) == (
        "torchrun --nnodes=2 --nproc_per_node=8 --node_rank=1 --master_addr=node1 --master_port=29500")
    assert runner_command("deepspeed", **args) == (
        "deepspeed --no_ssh --num_nodes=2 --num_gpus=8 --node_rank=1 --master_addr=node1 --master_port=29500")
    for kind in ("megatron", "torchtitan", "native"):
        assert runner_command(kind, **args) == runner_command("torchrun", **args)
    for kind in ("vllm", "sglang", "sglang-disagg", "sglang_disagg", "primus", "slurm_multi"):
        assert runner_command(kind, **args) == "", kind  # madengine: these start their own processes
    one = dict(args, nnodes=1, node_rank=0)
    assert runner_command("torchrun", **one) == "torchrun --standalone --nproc_per_node=8"
    assert runner_command("megatron-lm", **one) == "torchrun --standalone --nproc_per_node=8"
    assert runner_command("deepspeed", **one) == "deepspeed --num_gpus=8"


def test_distributed_env_names_match_madengine() -> None:
    env = distributed_env(get_launcher("megatron"), nnodes=2, nproc_per_node=4, node_rank=1,
                          master_addr="node1", master_port=1234)
    assert {k: env[k] for k in ("MASTER_ADDR", "MASTER_PORT", "NNODES", "NODE_RANK", "NPROC_PER_NODE",
                                "WORLD_SIZE")} == {"MASTER_ADDR": "node1", "MASTER_PORT": "1234", "NNODES": "2",
                                                   "NODE_RANK": "1", "NPROC_PER_NODE": "4", "WORLD_SIZE": "8"}
    assert env["MAD_MULTI_NODE_RUNNER"].startswith("torchrun ")


def test_node_file_with_most_performance_rows_comes_first(tmp_path: Path) -> None:
    few, many = tmp_path / "a.csv", tmp_path / "b.csv"
    few.write_text("model,performance,metric\nx,1,m\ny,,m\n")
    many.write_text("model, performance ,metric\nx,1,m\ny,2,m\n")
    assert best_first([few, many]) == [many, few]


def test_distributed_backend_is_exported_as_madengine_does(monkeypatch: pytest.MonkeyPatch) -> None:
    from pytest_madengine.targets.slurm.node import node_env

    from dataclasses import replace

    from pytest_madengine.targets.slurm.spec import JobSpec

    monkeypatch.delenv("MASTER_ADDR", raising=False)
    monkeypatch.delenv("MASTER_PORT", raising=False)
    spec = JobSpec(session_id="s", run_id="r", model="m", card={"name": "m", "distributed": {"backend": "gloo"}},
                   context={}, image={}, settings={}, package_root="/p", run_dir="/r", image_cache_dir="/i",
                   launcher="torchrun", nnodes=2, nproc_per_node=1, gpus_per_node=0, master_port=29500,
                   image_distribution="auto", barrier_timeout=60)
    assert node_env(spec, 0, "node1")["DISTRIBUTED_BACKEND"] == "gloo"
    spec = replace(spec, context={"distributed": {"backend": "mpi"}})  # the context wins over the card
    assert node_env(spec, 1, "node1")["DISTRIBUTED_BACKEND"] == "mpi"
    assert node_env(replace(spec, card={"name": "m"}, context={}), 0, "node1")["DISTRIBUTED_BACKEND"] == "nccl"


def test_perf_launcher_without_a_launcher_is_madengines_slurm_default() -> None:
    assert not resolve(make_card("plain", "run.sh"), {}, timeout=60).launcher_given
    assert resolve(make_card("given", "run.sh", distributed={"launcher": "native"}), {}, timeout=60).launcher_given


def test_auto_cleanup_nodes_is_a_clear_refusal() -> None:
    card = make_card("dirty", "run.sh", slurm={"enable_node_check": True, "auto_cleanup_nodes": True})
    with pytest.raises(MadError, match=r"slurm.auto_cleanup_nodes: auto_cleanup_nodes is refused: .*pkill -9 -f.*"
                                       r"Fix: set auto_cleanup_nodes to false"):
        resolve(card, {}, timeout=60)
    off = make_card("clean", "run.sh", slurm={"enable_node_check": True, "auto_cleanup_nodes": False})
    assert resolve(off, {}, timeout=60).node_check is not None
@pytest.mark.parametrize(("in_allocation", "expected"), [(False, 29500 + 4321 % 1000), (True, None)])
def test_without_a_configured_port_each_job_derives_its_own(in_allocation: bool, expected: int | None) -> None:
    card = make_card("m", "run.sh", distributed={"launcher": "torchrun", "nnodes": 2})
    config = resolve(card, {}, timeout=None)
    inputs = ScriptInputs(model="m", job_name="mad-m", spec_path="/s/spec.json", rc_path="/s/job.rc", python="python3",
                          in_allocation=in_allocation)
    line = next(line for line in render_job_script(config, inputs).splitlines()
                if line.startswith("export MASTER_PORT="))
    ports = {subprocess.run(["bash", "-c", f"{line}; echo $MASTER_PORT"], env={"SLURM_JOB_ID": "4321"},
                            capture_output=True, text=True, check=True).stdout.strip() for _ in range(3)}
    if expected is not None:
        assert ports == {str(expected)}
    else:  # steps of one allocation share its job id: each script's pid tells them apart
        assert len(ports) == 3 and all(29500 <= int(port) < 30500 for port in ports)


def test_a_bad_rendezvous_timeout_is_refused_before_submitting() -> None:
    card = make_card("m", "run.sh", distributed={"launcher": "torchrun", "nnodes": 2, "rendezvous_timeout": "soon"})
    with pytest.raises(MadError, match="distributed.rendezvous_timeout"):
        resolve(card, {}, timeout=None)


def test_the_job_spec_round_trips_and_names_what_a_bad_file_lacks(tmp_path: Path) -> None:
    from pytest_madengine.targets.slurm import spec as specfile

    job = specfile.JobSpec(session_id="s1", run_id="r1", model="m", card={"name": "m", "env_vars": {"HF_TOKEN": "t0k"}},
                           context={"docker_env_vars": {"MY_PASSWORD": "pw"}}, image={"name": "img"}, settings={},
                           package_root="/p", run_dir=str(tmp_path), image_cache_dir="/i", launcher="torchrun",
                           nnodes=2, nproc_per_node=1, gpus_per_node=0, master_port=None, image_distribution="auto",
                           barrier_timeout=60.0, container_options={"environment": {"API_KEY": "k3y", "X": "1"}})
    path = tmp_path / "spec.json"
    specfile.write_spec(path, job, host_env={})
    assert not [value for value in ("t0k", "pw", "k3y") if value in path.read_text()]  # secrets beside it
    assert specfile.read_spec(path) == job
    data = json.loads(path.read_text())
    del data["launcher"]
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="job spec lacks launcher"):
        specfile.read_spec(path)
