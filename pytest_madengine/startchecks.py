"""What a session checks once, before any build: the GPU list, the registry, image names, that
perf.csv can be written, and that the target's backend answers (its optional ``preflight``).
Each raises ``MadError`` (the session turns it into a usage error, exit 4)."""
from __future__ import annotations

from collections.abc import Sequence

from .cards import ModelCard
from .errors import MadError
from .parallel.gpus import GpuAllocator
from .settings import Settings
from .targets.base import Target


def check_inputs(settings: Settings, cards: Sequence[ModelCard], allocator: GpuAllocator) -> None:
    """The GPU pool resolves, the registry parses, every card's name can name an image."""
    from .images.dockerfiles import check_image_name
    from .images.registry import check_registry

    _ = allocator.pool
    if settings.registry:
        check_registry(settings.registry)
    if not (settings.use_image or settings.manifest):
        for card in cards:
            check_image_name(card)


def check_outputs(settings: Settings) -> None:
    """perf.csv must be writable before any model runs (a read-only or full filesystem)."""
    if settings.build_only:
        return
    from .results.sinks.perfcsv import check_writable

    problem = check_writable(settings.perf_csv)
    if problem:
        raise MadError(f"{problem}", where=f"--mad-perf-csv {settings.perf_csv}",
                       fix="free space there or point --mad-perf-csv at a writable file")


def preflight(target: Target, settings: Settings) -> None:
    """The target's backend answers (``preflight`` is optional; none for build-only sessions)."""
    check = getattr(target, "preflight", None)
    if check is not None and not settings.build_only:
        check()
