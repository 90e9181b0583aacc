"""slurm.enable_node_check without a cluster: the keys, the vendor tools' process listings (tests/data/smi),
the built-in GPU check, a site check command (a real subprocess) and the nodes' meeting point."""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from pytest_madengine.errors import MadError
from pytest_madengine.host import GpuProcess, amd, nvidia
from pytest_madengine.host.health import check_gpus
from pytest_madengine.targets.slurm.config import NodeCheck, resolve
from pytest_madengine.targets.slurm.nodecheck import Verdict, meet, read_verdicts, site_check
from pytest_madengine.targets.slurm.nodecheck_retry import CheckRecord, node_settings, note_verdicts
from pytest_madengine.workload.known_keys import context_unknown
from tests.slurm.helpers import make_card
from tests.unit.test_host import fake_runner, smi

MI300X_BUSY = "amd_smi_process_mi300x_x4_busy.json"


# --- parsers ------------------------------------------------------------------------------------

def test_amd_smi_process_lists_only_real_processes():
    assert amd.parse_amd_smi_process_json(smi(MI300X_BUSY)) == [
        GpuProcess(gpu=1, pid=48213, name="python3", memory_bytes=65498251264)]


def test_amd_smi_process_in_the_gpu_data_envelope_and_unreadable_text():
    wrapped = json.dumps({"gpu_data": json.loads(smi(MI300X_BUSY))})
    assert [p.pid for p in amd.parse_amd_smi_process_json(wrapped)] == [48213]
    assert amd.parse_amd_smi_process_json("Command requires elevation") == []
    assert amd.parse_amd_smi_process_json(json.dumps([{"gpu": 0, "process_list": "N/A"}])) == []


def test_nvidia_compute_apps_map_to_gpu_indices_by_uuid():
    gpus = nvidia.parse_nvidia_smi_csv(smi("nvidia_smi_query_h100.csv"))
    found = nvidia.parse_nvidia_smi_compute_apps(smi("nvidia_smi_compute_apps_h100.csv"), gpus)
    assert [(p.gpu, p.pid, p.name, p.memory_bytes) for p in found] == [
        (1, 91544, "/usr/bin/python3", 61440 * 2**20), (3, 91602, "ray::RayWorkerWrapper", 0)]
    assert nvidia.parse_nvidia_smi_compute_apps("No running processes found", gpus) == []
    assert nvidia.parse_nvidia_smi_compute_apps("GPU-x, 7, p, 5 MiB", gpus)[0].gpu is None  # unknown UUID


# --- the built-in check -------------------------------------------------------------------------

def amd_node(process_text: str | None = None):
    outputs = {amd.AMD_SMI_LIST: smi("amd_smi_list_mi300x_x8.json"),
               amd.AMD_SMI_ASIC: smi("amd_smi_static_asic_mi300x_x8.json")}
    if process_text is not None:
        outputs[amd.AMD_SMI_PROCESS] = process_text
    return fake_runner(outputs)


def test_a_busy_gpu_makes_the_node_unhealthy_and_names_the_process():
    health = check_gpus(amd_node(smi(MI300X_BUSY)), required=8)
    assert health.problems == ("GPU 1 is busy: pid 48213 (python3, 61.0 GiB)",)
    assert "AMD: 8 GPU(s) (AMD Instinct MI300X)" in health.report()


def test_only_the_gpus_slurm_gave_the_job_are_checked_for_processes():
    assert check_gpus(amd_node(smi(MI300X_BUSY)), required=2, indices=(2, 3)).healthy
    assert not check_gpus(amd_node(smi(MI300X_BUSY)), required=2, indices=(1, 2)).healthy


def test_missing_gpus_are_a_problem():
    assert check_gpus(amd_node("[]"), required=16).problems == ("8 GPU(s) found, 16 needed",)
    assert check_gpus(amd_node("[]"), required=1, indices=(9,)).problems == (
        "GPU(s) 9 given by SLURM are not present",)
    assert check_gpus(fake_runner({}), required=1).problems == (
        "0 GPU(s) found, 1 needed (no answer from amd-smi, rocm-smi or nvidia-smi)",)
    assert check_gpus(fake_runner({}), required=0).healthy  # gpu_vendor NONE: nothing to check


def test_nvidia_node_with_two_busy_gpus():
    run = fake_runner({nvidia.QUERY: smi("nvidia_smi_query_h100.csv"),
                       nvidia.COMPUTE_APPS: smi("nvidia_smi_compute_apps_h100.csv")})
    health = check_gpus(run, required=4)
    assert [p.gpu for p in health.processes] == [1, 3] and len(health.problems) == 2


def test_no_process_listing_is_reported_not_failed():
    health = check_gpus(amd_node(None), required=8)
    assert health.healthy and not health.processes_listed
    assert "busy GPUs not checked" in health.report()


# --- keys ---------------------------------------------------------------------------------------

def test_node_check_is_off_by_default_and_opt_in():
    card = make_card("m", "run.sh")
    assert resolve(card, {}, timeout=None).node_check is None
    assert resolve(card, {"slurm": {"enable_node_check": True}}, timeout=None).node_check == NodeCheck()
    config = resolve(card, {"slurm": {"enable_node_check": "true", "node_check_command": "/opt/check --gpu 'a b'",
                                      "node_check_retries": 0, "node_check_timeout": 30}}, timeout=None)
    assert config.node_check == NodeCheck(command=("/opt/check", "--gpu", "a b"), retries=0, timeout=30)


def test_node_check_keys_are_known():
    context = {"slurm": {"enable_node_check": True, "node_check_command": ["x"], "node_check_retries": 1,
                         "node_check_timeout": 5}}
    assert context_unknown(context, "context") == []


@pytest.mark.parametrize("slurm, field", [
    ({"enable_node_check": "maybe"}, "slurm.enable_node_check"),
    ({"enable_node_check": True, "node_check_retries": -1}, "slurm.node_check_retries"),
    ({"enable_node_check": True, "node_check_command": {"cmd": "x"}}, "slurm.node_check_command"),
    ({"enable_node_check": True, "node_check_timeout": "soon"}, "slurm.node_check_timeout"),
])
def test_bad_node_check_keys_raise_one_clear_error(slurm, field):
    with pytest.raises(MadError) as caught:
        resolve(make_card("m", "run.sh"), {"slurm": slurm}, timeout=None)
    assert caught.value.where == field and caught.value.fix


def test_slurm_multi_refuses_the_node_check():
    card = make_card("m", "run.slurm", distributed={"launcher": "slurm_multi"})
    with pytest.raises(MadError, match="per-node runner"):
        resolve(card, {"slurm": {"enable_node_check": True}}, timeout=None)


@pytest.mark.parametrize("context, n_gpus, required", [
    ({"gpu_vendor": "NONE"}, "8", 0),
    ({"gpu_vendor": "AMD"}, "8", 8),
    ({"gpu_vendor": "AMD", "slurm": {"gpus_per_node": 4}}, "8", 4),
    ({"gpu_vendor": "NVIDIA"}, "-1", 1),
])
def test_gpus_a_node_must_have(context, n_gpus, required):
    card = make_card("m", "run.sh", n_gpus=n_gpus)
    config = resolve(card, {**context, "slurm": {**context.get("slurm", {}), "enable_node_check": True}}, timeout=None)
    assert node_settings(config, card, context)["required_gpus"] == required


# --- on the node ------------------------------------------------------------------------------

def test_site_check_passes_fails_and_times_out():
    assert site_check(["sh", "-c", "echo fine"], timeout=10, gpus=(0,), required=1) == (True, "", "fine")
    script = 'echo "gpus $MAD_NODE_CHECK_GPUS"; echo "GPU 0 busy" >&2; exit 3'
    healthy, reason, output = site_check(["sh", "-c", script], timeout=10, gpus=(0, 1), required=2)
    assert (healthy, reason, output) == (False, "node_check_command exited with 3: GPU 0 busy", "gpus 0,1\nGPU 0 busy")
    assert site_check(["sleep", "5"], timeout=0.3, gpus=(), required=0)[1] == \
        "node_check_command did not finish within 0 s"
    assert "could not start" in site_check(["/nonexistent/check"], timeout=5, gpus=(), required=0)[1]


def test_nodes_meet_and_a_silent_rank_is_unhealthy(tmp_path: Path):
    folder = tmp_path / "node-check"
    other = Verdict(rank=1, node="node2", healthy=False, reason="GPU 0 is busy")
    folder.mkdir()
    (folder / "rank-1.json").write_text(json.dumps(other.__dict__))
    mine = Verdict(rank=0, node="node1", healthy=True)
    assert meet(folder, mine, 2, timeout=5) == [mine, other]
    started = time.monotonic()
    lonely = meet(tmp_path / "alone" / "node-check", mine, 2, timeout=0.5)
    assert time.monotonic() - started < 5
    assert lonely[1] == Verdict(rank=1, node="rank 1", healthy=False, reason="did not report its node check within 0 s")
    assert read_verdicts(tmp_path, 2) == [mine, other]


def test_the_record_names_the_failed_nodes_in_junit_properties():
    record = CheckRecord(jobs=["11"], first_run_dir="run", user_exclude="")
    failed = note_verdicts(record, "11", [Verdict(0, "node1", False, "GPU 0 is busy: pid 7 (x)"),
                                          Verdict(1, "node2", True)])
    assert [v.node for v in failed] == ["node1"]
    record.jobs.append("12")
    assert note_verdicts(record, "12", [Verdict(0, "node2", True), Verdict(1, "node3", True)]) == []
    assert record.properties() == {"node_check.jobs": "11,12", "node_check.healthy": "node2,node3",
                                   "node_check.excluded": "node1", "node_check.failed.node1": "GPU 0 is busy: pid 7 (x)"}
    assert "SLURM job 11: node1 (rank 0) FAILED: GPU 0 is busy" in "".join(record.log)
