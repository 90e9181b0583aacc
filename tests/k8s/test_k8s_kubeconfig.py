"""A kubeconfig that exists but cannot be used is a usage error at start (exit 4), one paragraph naming
the file and the fix: found before any image is built, never a fixture error display or a traceback."""
from __future__ import annotations

from pathlib import Path

import pytest

from pytest_madengine.errors import MadError
from pytest_madengine.targets.k8s.api import KubeAccess, api_client
from tests.k8s.test_k8s_session import session_args, write_package

ROOT = Path(__file__).resolve().parents[2]
BAD = {
    "empty": ("", "is empty"),
    "garbage": ("\x7fELF\x02\x01\x01 garbage ::: [", "is not valid YAML"),
    "broken-yaml": ("apiVersion: v1\nclusters:\n  - name: x\n   cluster: {server: [\n", "is not valid YAML (line"),
    "a-string": ("just some words\n", "does not have a kubeconfig's shape"),
    "a-list": ("- a\n- b\n", "does not have a kubeconfig's shape"),
    "no-current-context": ("apiVersion: v1\nkind: Config\nclusters: []\n", "current-context"),
}
DISPLAYS = ("Traceback", "ERROR at setup", "def mad_", "INTERNALERROR")


@pytest.mark.parametrize("case", list(BAD))
def test_unusable_kubeconfig_is_one_mad_error(tmp_path, case):
    text, expected = BAD[case]
    path = tmp_path / "kubeconfig"
    path.write_text(text)
    with pytest.raises(MadError) as caught:
        api_client(KubeAccess(str(path), "", "--mad-k8s-kubeconfig"))
    message = caught.value.message
    assert message.startswith(f"--mad-k8s-kubeconfig: kubeconfig {path} ") and expected in message
    assert "Fix: give a kubeconfig with clusters" in message and "\n" not in message


@pytest.mark.parametrize("case", ["empty", "garbage", "broken-yaml", "a-list"])
def test_unusable_kubeconfig_stops_the_session_at_start(pytester, monkeypatch, case):
    text, expected = BAD[case]
    write_package(pytester.path)
    kubeconfig = pytester.path / "bad-kubeconfig"
    kubeconfig.write_text(text)
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    result = pytester.runpytest_subprocess("-n", "0", *session_args("default", kubeconfig, "pyt"))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    output = result.stdout.str() + result.stderr.str()
    result.stderr.fnmatch_lines([f"ERROR: --mad-k8s-kubeconfig: kubeconfig {kubeconfig} *{expected}*Fix:*"])
    assert not any(display in output for display in DISPLAYS), output
    assert not list((pytester.path / "mad_logs").glob("*build*"))  # nothing was built first
