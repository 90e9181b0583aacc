"""SLURM faults and secrets on the real two-node cluster: a dead slurmd, an unreachable slurmctld,
and secrets that must reach the model but no file the session leaves (nor the controller's spool).

The node fault kills only ``node2``'s slurmd and restarts it (``tests/infra/start-slurm.sh`` is
idempotent and waits for the nodes).
"""
from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ..infra.fixtures import run_infra_script

pytestmark = [pytest.mark.slurm, pytest.mark.docker]

CANARIES = {"HF_TOKEN": "canary-ctx-5b1d", "API_TOKEN": "canary-card-9e2a", "MAD_SECRETS_KEY": "canary-env-c4f7"}
SPOOL = Path("/var/spool/slurmctld")


def write_package(root: Path, cards: list[dict], scripts: dict[str, str]) -> Path:
    (root / "scripts").mkdir(parents=True, exist_ok=True)
    (root / "docker").mkdir(exist_ok=True)
    (root / "docker" / "bb.Dockerfile").write_text("# CONTEXT {'gpu_vendor': 'NONE'}\nFROM mad-test/busybox:latest\n")
    full = [{"dockerfile": "docker/bb", "n_gpus": "1", "args": "", "tags": ["f"], **card} for card in cards]
    (root / "models.json").write_text(json.dumps(full))
    for name, text in scripts.items():
        (root / "scripts" / name).write_text(text)
    return root


def files_containing(root: Path, needles: list[str]) -> list[str]:
    found = []
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            found += [f"{path}: {needle}" for needle in needles if needle.encode() in data]
    return found


def test_secrets_reach_the_job_but_no_file_or_spool(pytester: pytest.Pytester, slurm_cluster, busybox_image,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    # The script knows only each value's prefix and length: the canaries appear in no input file but the card.
    check = " && ".join(f'[ "${{{name}#{value[:-4]}}}" != "${name}" ] && [ ${{#{name}}} -eq {len(value)} ]'
                        for name, value in CANARIES.items())
    write_package(pytester.path, [{"name": "secretive", "scripts": "scripts/s.sh",
                                   "env_vars": {"API_TOKEN": CANARIES["API_TOKEN"]}}],
                  {"s.sh": f'{check} || {{ echo "secrets missing"; exit 4; }}\necho "performance: 3 ops"\n'})
    context = {"gpu_vendor": "NONE", "docker_env_vars": {"HF_TOKEN": CANARIES["HF_TOKEN"]}}
    monkeypatch.setenv("MAD_SECRETS_KEY", CANARIES["MAD_SECRETS_KEY"])
    result = pytester.runpytest_subprocess("--mad-tags", "f", "--mad-target", "slurm", "--mad-gpus", "none",
                                           f"--mad-context={json.dumps(context)}", "--junitxml=junit.xml",
                                           "-p", "no:cacheprovider", "--mad-build-only", "--mad-manifest-output",
                                           "build_manifest.json")
    assert result.ret == 0, result.stdout.str()
    result = pytester.runpytest_subprocess("--mad-tags", "f", "--mad-target", "slurm", "--mad-gpus", "none",
                                           f"--mad-context={json.dumps(context)}", "--junitxml=junit.xml",
                                           "-p", "no:cacheprovider")
    out = result.stdout.str() + result.stderr.str()
    assert result.ret == 0, out  # the model saw all three secrets
    needles = list(CANARIES.values())
    assert not [n for n in needles if n in out]
    inputs = {pytester.path / "models.json"}  # the card itself holds its env_vars
    leaks = [hit for hit in files_containing(pytester.path, needles) if Path(hit.split(": ")[0]) not in inputs]
    assert leaks == []
    specs = list(pytester.path.rglob("spec.json"))
    assert specs and all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in specs)
    assert list(pytester.path.rglob("secrets.json")) == []
    if SPOOL.is_dir():
        assert files_containing(SPOOL, needles) == []


def test_unreachable_slurmctld_is_one_usage_error_before_any_build(pytester: pytest.Pytester, slurm_cluster,
                                                                   busybox_image,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    conf = pytester.path / "down" / "slurm.conf"
    conf.parent.mkdir()
    lines = [line for line in Path("/etc/slurm/slurm.conf").read_text().splitlines()
             if not line.startswith("SlurmctldPort=")]
    conf.write_text("\n".join([*lines, "SlurmctldPort=6999"]) + "\n")  # nobody listens there
    monkeypatch.setenv("SLURM_CONF", str(conf))
    write_package(pytester.path, [{"name": f"unsent{i}", "scripts": "scripts/ok.sh"} for i in range(3)],
                  {"ok.sh": "echo performance: 1 ops\n"})
    result = pytester.runpytest_subprocess("--mad-tags", "f", "--mad-target", "slurm", "--mad-gpus", "none",
                                           "-p", "no:cacheprovider", timeout=240)
    text = result.stdout.str() + result.stderr.str()
    assert result.ret == pytest.ExitCode.USAGE_ERROR, text
    assert "Traceback" not in text and "INTERNALERROR" not in text and "RESTORE SLURMCTLD" not in text
    assert text.count("SLURM: the controller does not answer") == 1  # once for the session, not per model
    assert "scontrol ping" in text and "Fix: start slurmctld" in text
    assert not (pytester.path / "perf.csv").exists() and not (pytester.path / "mad_logs").exists()


def _slurmd_pid(node: str) -> int:
    return int(Path(f"/run/slurmd-{node}.pid").read_text().strip())


def test_dead_slurmd_after_the_model_finished_keeps_its_result(pytester: pytest.Pytester, slurm_cluster,
                                                               busybox_image) -> None:
    marker = pytester.path / "model-done"
    write_package(pytester.path, [{"name": "orphaned", "scripts": "scripts/done.sh", "timeout": 240,
                                   "slurm": {"nodelist": "node2"}}],
                  {"done.sh": "echo performance: 7 ops\ntouch /myworkspace/model-done\nsleep 3\n"})
    proc = subprocess.Popen([sys.executable, "-m", "pytest", "--mad-tags", "f", "--mad-target", "slurm", "--mad-gpus",
                             "none", "-p", "no:cacheprovider"], cwd=pytester.path, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert marker.exists(), "the model never ran"
        os.kill(_slurmd_pid("node2"), signal.SIGKILL)
        started = time.monotonic()
        out, _ = proc.communicate(timeout=200)
        waited = time.monotonic() - started
        print(f"session ended {waited:.1f} s after the kill")
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # cancels its job
            proc.communicate(timeout=60)
        run_infra_script("start-slurm.sh", timeout=120)  # node2's slurmd back (idempotent)
    assert proc.returncode == 0, out
    assert waited < 120, out  # not the whole 240 s timeout
    row = (pytester.path / "perf.csv").read_text().splitlines()[1]
    assert ",SUCCESS," in row and ",7," in row
