"""Issue 20 on the real SLURM cluster: the preflight passes a working cluster, and
``--mad-live-output`` says why a job's output comes when the job ends, then shows it."""
from __future__ import annotations

import re

import pytest

from .test_slurm_session import run_session

pytestmark = [pytest.mark.slurm, pytest.mark.docker]


def test_live_output_on_slurm_says_when_the_output_comes_then_shows_it(pytester: pytest.Pytester, slurm_cluster,
                                                                       busybox_image):
    result = run_session(pytester, "bad", "-n", "0", "--mad-live-output")
    result.assert_outcomes(failed=1)  # the preflight let a working cluster through
    out = result.stdout.str()
    said = re.search(r"broken: SLURM job (\d+) submitted; SLURM writes its output on the nodes", out)
    assert said, out
    assert out.index("boom: broken model") > said.end()  # the job's output, after it ended
