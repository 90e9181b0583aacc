"""conftest.py template: adjust the context; run a prebuilt image instead of building.

``pytest_madengine_adjust_context`` runs once per session, after the user's --mad-context and
--mad-context-file are merged over the detected host facts.
"""
import os

import pytest

from pytest_madengine.records import ImageRef


def pytest_madengine_adjust_context(config, context):
    # Every model sees the site name; the user's context still wins where it sets it.
    context.setdefault("docker_env_vars", {}).setdefault("SITE", "lab-a")


# Run every model of the package in one prebuilt image (e.g. a nightly base) instead of building.
# The image must exist locally; the plugin's own fixture would build it from the Dockerfile.
PREBUILT_IMAGE = os.environ.get("MAD_PREBUILT_IMAGE")

if PREBUILT_IMAGE:

    @pytest.fixture
    def mad_image():
        return ImageRef(name=PREBUILT_IMAGE)
