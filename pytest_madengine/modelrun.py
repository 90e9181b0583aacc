"""One model run: request → target → judged result."""
from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from .cards import ModelCard
from .context import Context
from .records import SUCCESS, ImageRef, ModelResult
from .session import MadSession
from .workload.run import CONTAINER_OPTION_KEYS, RunOptions, RunOutcome, RunRequest
from .workload.rundirs import mark_owned, private_log, publish_log, release_owned, remove_run_dir
from .xdist import terminal_line


def run_card(session: MadSession, item: pytest.Item, card: ModelCard, context: Context, image: ImageRef,
             gpus: tuple[int, ...], *, release_gpus: Callable[[], None] | None = None) -> ModelResult:
    """Run the model (``--mad-repeat`` times, one image), judge it, then check its performance
    against the references and the history baseline."""
    repeat = session.settings.repeat
    runs = [_run_once(session, item, card, context, image, gpus,
                      release_gpus=release_gpus if index == repeat - 1 else None, attempt=index + 1, of=repeat)
            for index in range(repeat)]
    result = runs[0]
    if repeat > 1:
        from .results.repeats import check_cv, combine_runs

        result, stats = combine_runs(runs)
        if stats is not None:
            result.properties.update(stats.junit_properties())
            if session.settings.max_cv is not None:
                result = check_cv(result, stats, session.settings.max_cv)
    checks = session.performance_checks
    return checks.apply(result) if checks.active and result.status == SUCCESS else result


def _run_once(session: MadSession, item: pytest.Item, card: ModelCard, context: Context, image: ImageRef,
              gpus: tuple[int, ...], *, release_gpus: Callable[[], None] | None, attempt: int, of: int) -> ModelResult:
    settings = session.settings
    hook = session.config.hook
    run_id = f"{session.session_id}-{uuid.uuid4().hex[:8]}"
    log_dir = Path(settings.log_dir).absolute()
    stem = session.log_stem(item.name)
    work_dir = log_dir / "runs" / f"{stem}-{run_id}"
    try:
        work_dir.mkdir(parents=True, exist_ok=True)
        mark_owned(work_dir)
    except OSError as exc:
        from .results.judge import failed_result

        return failed_result(card, phase="run", context=context.data, image=image, gpus=gpus,
                             reason=f"the run dir {work_dir} could not be created ({exc}). Fix: free space "
                                    "there or point --mad-log-dir at a writable directory.")
    suffix = f".{attempt}" if of > 1 else ""
    log_path = log_dir / f"{stem}{suffix}.run.log"
    request = RunRequest(
        card=card, context=context, image=image, gpus=gpus, settings=settings,
        log_path=private_log(work_dir), work_dir=work_dir, run_id=run_id,
        adjust_options=(lambda options: hook.pytest_madengine_docker_run_options(
            card=card, context=context, options=options))
        if hook.pytest_madengine_docker_run_options.get_hookimpls() else None,
        live_output=terminal_line(session.config) if settings.live_output else None,
        cache_dir=Path(session.session_dir) / "cache",
        on_model_exit=release_gpus,
        container_options=_container_options(session, card, context),
    )
    keep = settings.keep_model_dir or settings.keep_alive
    try:
        outcome = session.target.run(request)
        result = _judge(session, card, context, image, gpus, outcome)
        result = _relocated(result, publish_log(request.log_path, log_path))
    finally:  # interrupted (Ctrl-C, SIGTERM) too: the run dir goes unless kept
        if keep:
            release_owned(work_dir)  # kept on purpose: never swept as stale
        else:
            remove_run_dir(work_dir)
    return result


def _container_options(session: MadSession, card: ModelCard, context: Context) -> RunOptions:
    """What ``pytest_madengine_container_options`` implementations set; unknown keys warned once."""
    options: RunOptions = {}
    session.config.hook.pytest_madengine_container_options(card=card, context=context, options=options)
    for key in [key for key in options if key not in CONTAINER_OPTION_KEYS]:
        session.warn_once(key, "pytest_madengine_container_options",
                          f"is not a container option every target applies ({', '.join(CONTAINER_OPTION_KEYS)}); "
                          "it is ignored (pytest_madengine_docker_run_options sets any Docker SDK option locally)")
        del options[key]
    return options


def _relocated(result: ModelResult, moved: dict[str, str]) -> ModelResult:
    """``result`` with the paths of the files that moved out of the run dir (log, tool outputs, env CSV)."""
    def new(path: str) -> str:
        for old, target in moved.items():
            if path == old or path.startswith(old + "/"):
                return target + path[len(old):]
        return path

    properties = {name: new(value) for name, value in result.properties.items()}
    return replace(result, log_path=new(result.log_path), properties=properties)


def _judge(session: MadSession, card: ModelCard, context: Context, image: ImageRef, gpus: tuple[int, ...],
           outcome: RunOutcome) -> ModelResult:
    from .results.configs import load_configs
    from .results.judge import judge

    hook = session.config.hook
    result = judge(card, outcome, image=image, context=context.data, gpus=gpus,
                   nnodes=int(str(outcome.extra.get("nnodes", 1))), deployment_type=session.target.deployment_type,
                   launcher=str(outcome.extra.get("launcher", "")),
                   parse_hook=lambda c, text: hook.pytest_madengine_parse_performance(card=c, log_text=text))
    result.configs = load_configs(card, session.settings.package)
    return result
