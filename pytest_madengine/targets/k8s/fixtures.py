"""Fixtures of the Kubernetes target, registered (``K8sTarget.pytest_plugins``) when a session
chooses it: ``mad_k8s`` gives conftest code the model's Job and pods."""
from __future__ import annotations

import pytest

from ...cards import ModelCard
from ...context import Context
from ...errors import MadError
from ...keys import TARGET_KEY
from .handle import K8sHandle
from .target import K8sTarget


@pytest.fixture
def mad_k8s(request: pytest.FixtureRequest, mad_card: ModelCard, mad_context: Context) -> K8sHandle:
    """The Kubernetes side of this model: ``api`` (the ``kubernetes`` ApiClient), ``namespace``, and
    once ``mad_result`` ran, ``job_name`` / ``job()`` / ``pods()`` of its Job. A bad ``k8s`` setting
    fails the test with its one-paragraph message."""
    target = request.config.stash[TARGET_KEY]
    assert isinstance(target, K8sTarget)
    try:
        return target.handle(mad_card, mad_context)
    except MadError as exc:
        error = exc
    pytest.fail(error.message, pytrace=False)
    raise AssertionError("unreachable")  # pytest.fail raised
