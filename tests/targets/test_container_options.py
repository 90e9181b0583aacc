"""``pytest_madengine_container_options``: one conftest hook, applied by every target that runs
containers (local container, each SLURM node's container, the Kubernetes pod's environment)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

CONFTEST = '''
HOOK_DATA = {hook_data!r}

def pytest_madengine_container_options(card, context, options):
    options["environment"] = {"HOOK_VAR": "from-hook-" + card.name}
    options["volumes"] = {HOOK_DATA: {"bind": "/hookdata", "mode": "ro"}}
    options["privileged"] = True  # not a target-neutral option: warned about, not applied


def pytest_madengine_docker_run_options(card, context, options):
    options["environment"]["OLD_HOOK_VAR"] = "old-hook"
'''
SCRIPT = 'echo "hook=$HOOK_VAR old=$OLD_HOOK_VAR"\ncat /hookdata/marker\necho "performance: 1 x"\n'


def write_package(root: Path) -> Path:
    (root / "scripts" / "m").mkdir(parents=True)
    (root / "docker").mkdir()
    (root / "docker" / "bb.Dockerfile").write_text("# CONTEXT {'gpu_vendor': 'NONE'}\nFROM mad-test/busybox:latest\n")
    (root / "models.json").write_text(json.dumps([{
        "name": "opts", "dockerfile": "docker/bb", "scripts": "scripts/m/run.sh", "n_gpus": "0", "args": "",
        "owner": "t", "training_precision": "", "tags": ["opts"]}]))
    (root / "scripts" / "m" / "run.sh").write_text(SCRIPT)
    hook_data = root / "hookdata"
    hook_data.mkdir()
    (hook_data / "marker").write_text("mounted by the hook\n")
    (root / "conftest.py").write_text(CONFTEST.replace("{hook_data!r}", repr(str(hook_data))))
    return root


@pytest.mark.parametrize("target", ["local", "slurm"])
def test_container_options_reach_local_containers_and_slurm_nodes(pytester: pytest.Pytester, target: str,
                                                                   request: pytest.FixtureRequest) -> None:
    request.getfixturevalue("busybox_image")
    if target == "slurm":
        request.getfixturevalue("slurm_cluster")
    write_package(pytester.path)
    result = pytester.runpytest_subprocess("--mad-tags", "opts", "--mad-target", target, "--mad-gpus", "none",
                                           "-n", "0", "--mad-history", "none", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, warnings=2 if target == "slurm" else 1)
    log = (pytester.path / "mad_logs" / "opts.run.log").read_text()
    assert "hook=from-hook-opts" in log
    assert "mounted by the hook" in log  # the volume reached the container (local) / each node's container
    output = result.stdout.str()
    assert "key 'privileged' is not a container option every target applies" in output
    if target == "slurm":  # the Docker SDK hook is the local target's alone, and says so
        assert "old=\n" in log or log.count("old=old-hook") == 0
        assert "'pytest_madengine_docker_run_options' adjusts Docker SDK options of the local target only" in output
    else:
        assert "old=old-hook" in log
