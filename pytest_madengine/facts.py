"""The facts every part of a session starts from, computed once per process (the options and the
adjusted context): the session, ``-n auto`` and the queued-job workers of xdist all read them."""
from __future__ import annotations

from dataclasses import dataclass, replace

import pytest

from . import settings as _settings
from .context import Context, build_context
from .errors import MadError
from .images.manifest_context import manifest_layer
from .keys import FACTS_KEY


@dataclass(frozen=True)
class EarlyFacts:
    """What the session, ``-n auto`` and the queued-job workers of xdist all start from, computed
    once per process: the options, and the context (a ``--mad-manifest``'s build context and
    deployment config under the run's own) with the conftest's ``adjust_context`` applied.
    The context's ``MAD_CONTAINER_IMAGE`` is already in ``settings.use_image`` (madengine: run that
    image, build nothing), so the settings never change afterwards."""

    settings: _settings.Settings
    context: Context


def early_facts(config: pytest.Config) -> EarlyFacts:
    """The process's ``EarlyFacts`` (computed on first use). Raises pytest.UsageError."""
    facts = config.stash.get(FACTS_KEY, None)
    if isinstance(facts, EarlyFacts):
        return facts
    try:
        settings = _settings.from_config(config)
        context = build_context(context_file=settings.context_file, context_text=settings.context,
                                gpus_option=settings.gpus, base=manifest_layer(settings.manifest))
    except MadError as exc:
        raise pytest.UsageError(exc.message) from None
    config.hook.pytest_madengine_adjust_context(config=config, context=context.data)
    image = context.get("MAD_CONTAINER_IMAGE")
    if image and not settings.use_image:
        settings = replace(settings, use_image=str(image))
    facts = EarlyFacts(settings, context)
    config.stash[FACTS_KEY] = facts
    return facts
