"""slurm_multi on the real two-node cluster: the ``slurm`` section, madengine's wrapper variables,
values no shell string could carry, and results where madengine's wrapper leaves them."""
from __future__ import annotations

import subprocess

import pytest

from pytest_madengine.targets.slurm.multi import ResultLookup

from .helpers import make_card, make_package, make_request

pytestmark = [pytest.mark.slurm]

# The card's script: it records its argv and variables, then writes its perf CSV where the MAD hub's
# large-EP scripts do (slurm_output/perf_csv/*<job id>*.csv, relative to the script's directory).
SCRIPT = """#!/bin/bash
#SBATCH --nodes=1
#SBATCH --time=00:01:00
printf 'argc=%s\\n' "$#"
for arg in "$@"; do printf 'arg=[%s]\\n' "$arg"; done
printf 'hca=[%s] debug=[%s] note=[%s]\\n' "$NCCL_IB_HCA" "$NCCL_DEBUG" "$NOTE"
printf 'xP=%s yD=%s image=%s card_only=%s\\n' "$xP" "$yD" "$DOCKER_IMAGE_NAME" "$CARD_ONLY"
printf 'nodes=%s\\n' "$SLURM_JOB_NUM_NODES"
mkdir -p slurm_output/perf_csv
printf 'model,performance,metric\\nbare,12.5,tok/s\\n' > "slurm_output/perf_csv/bare_${SLURM_JOB_ID}.csv"
"""


def scontrol(job_id: str) -> dict[str, str]:
    out = subprocess.run(["scontrol", "-o", "show", "job", job_id], capture_output=True, text=True,
                         check=True).stdout
    return dict(item.split("=", 1) for item in out.split() if "=" in item)


def test_slurm_section_wrapper_variables_and_results(target, tmp_path):
    package = make_package(tmp_path / "pkg", {"run.slurm": SCRIPT})
    card = make_card("bare", "run.slurm", args='--prompt "hello world" --tag a,b',
                     distributed={"launcher": "slurm_multi", "sglang_disagg": {"prefill_nodes": 1, "decode_nodes": 1}},
                     slurm={"nodes": 2, "time": "00:07:00"},
                     env_vars={"NCCL_DEBUG": "WARN", "CARD_ONLY": "c", "DOCKER_IMAGE_NAME": "<supply-your-image>"})
    context = {"gpu_vendor": "NONE",
               "env_vars": {"NCCL_IB_HCA": "mlx5_0:1,mlx5_1:1", "NCCL_DEBUG": "INFO", "NOTE": "two words"}}
    outcome = target.run(make_request(package, card, tmp_path, context=context))
    assert outcome.exit_code == 0, outcome.error
    log = outcome.log_path.read_text()
    # args: quoted values whole, commas kept
    assert "argc=4\narg=[--prompt]\narg=[hello world]\narg=[--tag]\narg=[a,b]\n" in log
    # context env_vars win over the card's; a comma list and blanks arrive intact
    assert "hca=[mlx5_0:1,mlx5_1:1] debug=[INFO] note=[two words]" in log
    assert "xP=1 yD=1 image=mad-test/busybox:latest card_only=c" in log
    assert "nodes=2" in log
    job = scontrol(outcome.extra["job_id"])
    assert job["NumNodes"] == "2" and job["TimeLimit"] == "00:07:00"
    assert outcome.result_files == [package / "scripts" / "m" / "slurm_output" / "perf_csv"
                                    / f"bare_{outcome.extra['job_id']}.csv"]


def test_unbalanced_quote_in_args_fails_before_submitting(target, tmp_path):
    package = make_package(tmp_path / "pkg", {"run.slurm": SCRIPT})
    card = make_card("bare", "run.slurm", args='--prompt "unclosed', distributed={"launcher": "slurm_multi"})
    outcome = target.run(make_request(package, card, tmp_path))
    assert outcome.exit_code is None and "cannot be split into arguments" in outcome.error
    assert "close the quote in 'args'" in outcome.error


def test_result_lookup_order_and_age(tmp_path):
    """results_dir first, then madengine's later places; files older than the submission are someone else's."""
    script_dir, root, results = tmp_path / "pkg" / "scripts", tmp_path / "pkg", tmp_path / "results"
    for folder in (script_dir / "slurm_output" / "perf_csv", results):
        folder.mkdir(parents=True)
    lookup = ResultLookup(run_dir=tmp_path / "run", script_dir=script_dir, package_root=root,
                          multiple_results="", results_dir=str(results), submitted=0.0)
    (root / "perf.csv").write_text("model,performance\nm,1\n")
    assert lookup.find("77") == [root / "perf.csv"]
    workspace = script_dir / "slurm_output" / "perf_csv" / "run_77.csv"
    workspace.write_text("model,performance\nm,2\n")
    assert lookup.find("77") == [workspace]
    (results / "perf_x.csv").write_text("model,performance\nm,3\n")
    assert lookup.find("77") == [results / "perf_x.csv"]
    later = ResultLookup(run_dir=tmp_path / "run", script_dir=script_dir, package_root=root,
                         multiple_results="", results_dir=str(results), submitted=4102444800.0)
    assert later.find("77") == []
