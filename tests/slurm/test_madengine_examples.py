"""madengine's own SLURM example configs (tests/data/madengine-examples), fed to real pytest sessions on
the real two-node cluster with only what this site lacks changed."""
from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from tests.logs import rank_sections

pytestmark = [pytest.mark.slurm, pytest.mark.docker]

EXAMPLES = Path(__file__).resolve().parents[1] / "data" / "madengine-examples" / "slurm-configs"
SHOW_ENV = 'env | sort\necho "performance: 3.5 samples_per_second"\n'
MULTI_SCRIPT = """#!/bin/bash
echo "job=$SLURM_JOB_ID nodes=$SLURM_JOB_NUM_NODES image=$DOCKER_IMAGE_NAME"
mkdir -p slurm_output/perf_csv
printf 'model,performance,metric\\ndisagg,812.5,tok/s\\n' > "slurm_output/perf_csv/run_${SLURM_JOB_ID}.csv"
"""


def site_adapted(name: str, **changes: dict) -> dict:
    """The example as madengine ships it, with this site's partition and no GPUs on the nodes."""
    config = json.loads((EXAMPLES / name).read_text())
    config["slurm"].update(partition="debug", gpus_per_node=0, **changes.get("slurm", {}))
    config.get("distributed", {}).update(changes.get("distributed", {}))
    return config


def write_package(root: Path, cards: list[dict], scripts: dict[str, str]) -> None:
    (root / "scripts" / "m").mkdir(parents=True)
    (root / "docker").mkdir()
    (root / "docker" / "bb.Dockerfile").write_text("# CONTEXT {'gpu_vendor': 'AMD'}\nFROM mad-test/busybox:latest\n")
    (root / "models.json").write_text(json.dumps([
        {"dockerfile": "docker/bb", "n_gpus": "1", "args": "", "owner": "t", "training_precision": "",
         "tags": ["pyt"], **card} for card in cards]))
    for name, text in scripts.items():
        (root / "scripts" / "m" / name).write_text(text)


def test_multi_node_basic_exports_env_vars_into_both_nodes_containers(pytester, slurm_cluster, busybox_image):
    config = site_adapted("basic/03-multi-node-basic.json")
    assert config["env_vars"]["NCCL_DEBUG"] == "WARN" and config["slurm"]["nodes"] == 2  # as madengine ships it
    (pytester.path / "config.json").write_text(json.dumps(config))
    write_package(pytester.path, [{"name": "dist", "scripts": "scripts/m/env.sh"}], {"env.sh": SHOW_ENV})
    result = pytester.runpytest("--mad-tags", "pyt", "--mad-context-file", "config.json", "--mad-gpus", "none",
                                "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert "'env_vars' is not acted on" not in result.stdout.str()
    sections = rank_sections((pytester.path / "mad_logs" / "dist.run.log").read_text())
    assert sorted(sections) == [0, 1]
    for rank, text in sections.items():
        for name, value in config["env_vars"].items():
            if name != "MIOPEN_USER_DB_PATH":
                assert f"{name}={value}\n" in text, (rank, name)
        # madengine's job script: a per-node MIOpen cache, never the config's shared one
        assert f"MIOPEN_USER_DB_PATH=/tmp/.miopen/node_{rank}_rank_${{LOCAL_RANK:-0}}\n" in text
    exported = next(pytester.path.rglob("job.sh")).read_text()  # under the config's slurm.output_dir
    assert "export NCCL_DEBUG_SUBSYS=INIT,NET\n" in exported and "MIOPEN_USER_DB_PATH" not in exported
    assert ",slurm,torchrun," in (pytester.path / "perf.csv").read_text()


def test_slurm_multi_minimal_runs_with_its_slurm_section(pytester, slurm_cluster, busybox_image):
    config = site_adapted("minimal/slurm-multi-minimal.json", slurm={"nodes": 2}, distributed={"nnodes": 2})
    assert config["deploy"] == "slurm" and config["slurm"]["time"] == "04:00:00"
    (pytester.path / "config.json").write_text(json.dumps(config))
    write_package(pytester.path, [{"name": "disagg", "scripts": "scripts/m/run.slurm"}],
                  {"run.slurm": MULTI_SCRIPT})
    result = pytester.runpytest("--mad-tags", "pyt", "--mad-context-file", "config.json", "--mad-gpus", "none",
                                "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    log = (pytester.path / "mad_logs" / "disagg.run.log").read_text()
    job_id = re.search(r"job=(\d+) nodes=2 image=\S+", log).group(1)
    shown = subprocess.run(["scontrol", "-o", "show", "job", job_id], capture_output=True, text=True,
                           check=True).stdout
    fields = dict(item.split("=", 1) for item in shown.split() if "=" in item)
    assert (fields["NumNodes"], fields["TimeLimit"], fields["Partition"]) == ("2", "04:00:00", "debug")
    assert fields["OverSubscribe"] == "NO"  # exclusive: true
    rows = (pytester.path / "perf.csv").read_text()
    assert re.search(r"^disagg_disagg,.*,812.5,tok/s,.*SUCCESS", rows, flags=re.M), rows
