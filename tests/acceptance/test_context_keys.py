"""Context and card keys madengine packages use: honoured in a real session, unknown ones warned about."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.acceptance.conftest import card, write_card_package

pytestmark = pytest.mark.docker


def read_perf(path: Path) -> list[dict[str, str]]:
    import csv

    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_context_keys_are_honoured_and_unknown_keys_warned(pytester: pytest.Pytester, busybox_image: str) -> None:
    pkg = write_card_package(pytester.path / "pkg", [
        card("keys", "scripts/keys.sh", args="--a 1", frobnicate=True,
             log_error_benign_patterns=["ValueError: harmless"]),
    ], {"scripts/keys.sh": 'echo "args=$* ngpus=$MAD_RUNTIME_NGPUS runner=$MAD_MULTI_NODE_RUNNER"\n'
                           'echo "ValueError: harmless"\necho "performance: 1 ops"\n'})
    context = ("--mad-context={'gpu_vendor': 'AMD', 'guest_os': 'UBUNTU', 'model_args': '--zzz 9', "
               f"'MAD_CONTAINER_IMAGE': '{busybox_image}', 'num_gpus': 3, 'bogus_key': 1, "
               "'slurm_typo': {}, 'distributed': {'launcher': 'torchrun', 'lancher': 'x'}}")
    result = pytester.runpytest("--mad-package", str(pkg), "--mad-tags", "all", context, "--mad-gpus", "none",
                                "-p", "no:cacheprovider", "-W", "always")
    result.assert_outcomes(passed=1)
    out = result.stdout.str()
    for key, where in (("'bogus_key'", "--mad-context"), ("'slurm_typo'", "--mad-context"),
                       ("'distributed.lancher'", "--mad-context"), ("'frobnicate'", "models.json")):
        assert any(key in line and where in line and "MadKeyWarning" in line for line in out.splitlines()), key
    assert out.count("'bogus_key'") == 1  # once per session
    [row] = read_perf(pytester.path / "perf.csv")
    assert (row["args"], row["docker_image"], row["build_duration"], row["status"]) == (
        "--zzz 9", busybox_image, "0.00", "SUCCESS")
    logs = [p.read_text() for p in pytester.path.rglob("*.log") if "args=" in p.read_text(errors="replace")]
    assert any("args=--zzz 9 ngpus=3 runner=torchrun --standalone --nproc_per_node=3" in log for log in logs)
