"""The SLURM target fixture shared by the cluster tests."""
from __future__ import annotations

import os

import pytest

from pytest_madengine.targets.slurm.target import SlurmTarget


@pytest.fixture
def target(slurm_cluster, busybox_image, tmp_path):
    """A SLURM target on the real two-node cluster; the package goes to ``tmp_path / "pkg"``."""
    made = SlurmTarget(session_id=f"t{os.getpid()}{tmp_path.name[-6:]}", package_root=tmp_path / "pkg",
                       shared_dir=slurm_cluster.shared_dir)
    yield made
    made.cancel_all()
