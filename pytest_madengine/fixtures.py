"""Fixtures a MAD package's conftest.py can use or override, and the item test functions."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .cards import ModelCard
from .context import Context
from .errors import MadError, MadSkip
from .fileio import printable
from .keys import GPU_RELEASE_KEY, RESULT_KEY
from .records import FAILURE, SKIPPED, ImageRef, ModelResult
from .session import get_session
from .settings import Settings


def _fail(item: pytest.Item, result: ModelResult, message: str) -> None:
    item.stash[RESULT_KEY] = result
    pytest.fail(message, pytrace=False)


@pytest.fixture(scope="session")
def mad_settings(request: pytest.FixtureRequest) -> Settings:
    """The resolved ``--mad-*`` options."""
    return get_session(request.config).settings


@pytest.fixture(scope="session")
def mad_context(request: pytest.FixtureRequest) -> Context:
    """The run context: detected host facts with the user's context merged over them."""
    return get_session(request.config).context


@pytest.fixture
def mad_card(request: pytest.FixtureRequest, mad_context: Context) -> ModelCard:
    """The model card of this test; skips it when ``skip_gpu_arch`` matches this host."""
    session = get_session(request.config)
    card = request.node.spec.card
    if not session.settings.disable_skip_gpu_arch and card.skip_gpu_arch:
        from .context import skip_reason
        from .results.judge import skipped_result

        reason = skip_reason(card.skip_gpu_arch, mad_context)
        if reason:
            request.node.stash[RESULT_KEY] = skipped_result(card, reason, mad_context.data)
            pytest.skip(reason)
    return card


@pytest.fixture
def mad_image(request: pytest.FixtureRequest, mad_card: ModelCard, mad_context: Context) -> ImageRef:
    """The image this model runs in: built (or reused by content hash), pulled, or given; an
    ``ImageRef`` without a name when the target runs no image (``needs_image = False``)."""
    session = get_session(request.config)
    if not getattr(session.target, "needs_image", True):
        return ImageRef(name="")
    try:
        return session.images.image_for_run(mad_card, request.node.spec.dockerfile)
    except MadError as exc:
        error = exc  # fail outside the except block: no chained traceback in the report
    from .results.judge import failed_result

    result = failed_result(mad_card, phase="build", reason=error.message, context=mad_context.data)
    _fail(request.node, result, f"{mad_card.name}: image not available (phase build). {error.message}")
    raise AssertionError("unreachable")  # pytest.fail raised


@pytest.fixture
def mad_gpus(request: pytest.FixtureRequest, mad_card: ModelCard, mad_context: Context) -> Iterator[tuple[int, ...]]:
    """GPU ids allocated to this model for its run (empty without a GPU pool)."""
    allocator = get_session(request.config).gpu_allocator
    try:
        allocation = allocator.acquire(mad_card.n_gpus, owner=request.node.nodeid)
    except MadSkip as exc:
        from .results.judge import skipped_result

        request.node.stash[RESULT_KEY] = skipped_result(mad_card, str(exc), mad_context.data)
        pytest.skip(str(exc))
    request.node.stash[GPU_RELEASE_KEY] = allocation.release  # the target calls it when the model exits
    try:
        yield tuple(allocation.ids)
    finally:
        allocator.release(allocation)


@pytest.fixture
def mad_result(request: pytest.FixtureRequest, mad_card: ModelCard, mad_context: Context,
               mad_image: ImageRef, mad_gpus: tuple[int, ...]) -> ModelResult:
    """Run the model on the session's target and judge it. Model failures are a result, not
    an exception: the test body turns them into a failure (override this to post-process)."""
    from .modelrun import run_card

    result = run_card(get_session(request.config), request.node, mad_card, mad_context, mad_image, mad_gpus,
                      release_gpus=request.node.stash.get(GPU_RELEASE_KEY, None))
    request.node.stash[RESULT_KEY] = result
    return result


def run_model(request: pytest.FixtureRequest, mad_result: ModelResult) -> None:
    """The test body of a model item: pass on SUCCESS, fail with the reason and log tail."""
    request.node.stash[RESULT_KEY] = mad_result
    if mad_result.status == SKIPPED:
        pytest.skip(mad_result.reason)
    if mad_result.status == FAILURE:
        pytest.fail(failure_message(mad_result), pytrace=False)


def failure_message(result: ModelResult) -> str:
    """The reason, the run log's path (only when the file is there) and the model's last lines,
    terminal control sequences neutralised (``fileio.printable``)."""
    lines = [f"{result.model} failed (phase {result.phase or 'run'}): {printable(result.reason)}"]
    if result.log_path and Path(result.log_path).is_file():
        lines.append(f"log: {result.log_path}")
    elif result.log_path:
        lines.append(f"log: none (the run wrote no log at {result.log_path})")
    if result.log_tail:
        lines += ["--- last lines of the log ---", printable(result.log_tail.rstrip())]
    return "\n".join(lines)


def build_model(request: pytest.FixtureRequest, mad_card: ModelCard, mad_context: Context) -> None:
    """The test body of a ``--mad-build-only`` item: build (and push) one image."""
    images = get_session(request.config).images
    try:
        result = images.build_for_manifest(mad_card, request.node.spec.dockerfile)
    except MadError as exc:
        error = exc
    else:
        request.node.stash[RESULT_KEY] = result
        return
    from .results.judge import failed_result

    images.record_build_failure(mad_card, error.message)
    result = failed_result(mad_card, phase="build", reason=error.message, context=mad_context.data)
    result.rows = []  # build-only sessions write the manifest, not perf.csv
    _fail(request.node, result, f"{mad_card.name}: build failed. {error.message}")
