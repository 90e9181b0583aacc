"""The local Docker target: one short-lived container per model run, through the Docker SDK.

Layout inside the container (madengine-compatible paths):
- the package root is bind-mounted at ``/myworkspace``;
- the card's scripts dir is copied on the host into ``<work_dir>/model`` and that dir is
  bind-mounted at ``/myworkspace/run_directory`` (the working dir), so result files land on the
  host directly — no ``docker cp``, no long-lived container, and ``..`` still is the package root.
  (Docker creates an empty ``run_directory`` mount point in the package root, as madengine does.)
What runs there (model dir content, pre/model/post steps as argv lists) comes from ``steps``;
the card's data (``data.json``) adds bind mounts and download steps (``dataproviders``).
"""
from __future__ import annotations

import contextlib
import os
import shutil
import socket
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from ...cards import ModelCard
from ...errors import MadError
from ...fileio import object_name
from ...images.client import (daemon_alive, daemon_unreachable, docker_client, engine_errors, engine_failures,
                              image_env)
from ...workload.dataproviders import data_fields
from ...workload.layout import MODEL_DIR, MODEL_DIR_NAME, WORKSPACE
from ...workload.paths import confined
from ...workload.run import RunOptions, RunOutcome, RunRequest, effective_timeout
from ...workload.steps import StepPlan, plan_command
from ...workload.sysenv import write_env_csv
from ...workload.tools import keep_outputs
from ..base import TargetSettings
from .cleanup import (
    HOST_LABEL,
    KEEP_LABEL,
    MODEL_LABEL,
    PID_LABEL,
    SESSION_LABEL,
    remove_quietly,
    remove_session_containers,
    remove_stale_containers,
)
from .keepalive import ModelExit, enter_hint, wrapped
from .logpump import LogPump
from .options import assemble_options, merge_options, neutral_options

if TYPE_CHECKING:
    from docker import DockerClient
    from docker.models.containers import Container

SKIP_REASON = "--mad-skip-run"


def _keep_artifacts(model_dir: Path, plan: StepPlan, log_path: Path, outcome: RunOutcome) -> None:
    """Tool outputs and the env CSV beside the run log; a full or read-only log dir loses them, not the run."""
    try:
        kept = keep_outputs(model_dir, plan.outputs, log_path)
        if kept:
            outcome.extra["tool_outputs"] = [str(path) for path in kept]
        env_csv = write_env_csv(model_dir, log_path, plan.secret_values)
        if env_csv is not None:
            outcome.extra["env_csv"] = str(env_csv)
    except OSError as exc:
        outcome.error = outcome.error or f"the run's tool outputs / env CSV could not be written ({exc})"


def _environment(options: RunOptions) -> dict[str, str]:
    environment = options.get("environment") or {}
    assert isinstance(environment, dict)
    return {str(key): str(value) for key, value in environment.items()}


def container_name(card: ModelCard, run_id: str) -> str:
    return f"mad-{object_name(card.name)}-{object_name(run_id)}"[:200]


class LocalTarget:
    """One container per model run on this host's Docker engine (``targets.base.Target``)."""

    name = "local"
    deployment_type = "local"
    needs_image = True

    def __init__(self, *, session_id: str, package_root: Path, client: DockerClient | None = None,
                 defer_removal: bool = False, owns_session: bool = False, keep_alive: bool = False) -> None:
        """``defer_removal``: remove exited containers in the background so the next model starts
        at once (``cancel_all`` waits for them; the session's label sweep is the safety net).
        ``owns_session``: this process's ``close`` sweeps the session's leftovers."""
        self.session_id = session_id
        self.package_root = Path(package_root).resolve()
        self._client = client
        self._running: dict[str, Container] = {}
        self._lock = threading.Lock()
        self.defer_removal = defer_removal
        self._removals: list[threading.Thread] = []
        self.owns_session = owns_session
        self.keep_alive = keep_alive
        # Docker creates the model dir's mount point in the package; it goes again at the end
        # unless it was there before (the package is left as it was found).
        self._mount_point = self.package_root / MODEL_DIR_NAME
        self._mount_point_existed = self._mount_point.exists()

    @classmethod
    def from_settings(cls, settings: TargetSettings) -> LocalTarget:
        return cls(session_id=settings.session_id, package_root=settings.package_root, defer_removal=True,
                   owns_session=settings.controller, keep_alive=settings.settings.keep_alive)

    @property
    def client(self) -> DockerClient:
        if self._client is None:
            self._client = docker_client()
        return self._client

    def preflight(self) -> None:
        """Once per session, before any build: the Docker engine answers (MadError naming its address)."""
        _ = self.client

    def sweep_stale(self) -> int:
        """Containers of earlier sessions on this host whose pytest process is gone."""
        try:
            return remove_stale_containers(self.client)
        except (MadError, *engine_failures()):
            return 0  # no daemon (yet), or it failed mid-sweep: each model reports that clearly when it runs

    def close(self) -> None:
        self.cancel_all()  # idempotent: a session calls cancel_all before close anyway
        if not self.owns_session:
            return
        if not self.keep_alive and self._client is not None:  # never talked to Docker: nothing to remove
            with contextlib.suppress(Exception):  # the daemon may be gone; nothing of ours can be left then
                remove_session_containers(self.session_id, self._client)
        if not self._mount_point_existed and not self.keep_alive:  # a kept container's model dir is mounted there
            with contextlib.suppress(OSError):  # not empty (the user's files) or gone: leave it
                self._mount_point.rmdir()

    def container_options(self, request: RunRequest, model_dir: Path,
                          data_volumes: list[str] | None = None) -> RunOptions:
        settings = request.settings
        options = assemble_options(request.card, request.context, tuple(request.gpus),
                                   no_gpus=str(getattr(settings, "gpus", "") or "").lower() == "none",
                                   image_env=self.image_env(request.image.name))
        mounts = [f"{self.package_root}:{WORKSPACE}:rw", f"{model_dir}:{MODEL_DIR}:rw", *(data_volumes or [])]
        options = merge_options(options, {"volumes": mounts})
        labels = {SESSION_LABEL: self.session_id, MODEL_LABEL: request.card.name,
                  PID_LABEL: str(os.getpid()), HOST_LABEL: socket.gethostname()}
        if getattr(settings, "keep_alive", False):
            labels[KEEP_LABEL] = "1"
        options.update(name=container_name(request.card, request.run_id), working_dir=MODEL_DIR,
                       image=request.image.name, labels=labels)
        return options

    def image_env(self, image: str) -> dict[str, str]:
        """The image's own ``ENV`` (its config); {} when the engine does not have it (creating fails later)."""
        return image_env(image, self.client)

    def run(self, request: RunRequest) -> RunOutcome:
        started = time.monotonic()
        timeout = effective_timeout(request.card, request.settings)
        outcome = RunOutcome(exit_code=None, log_path=request.log_path, duration=0.0, timeout=timeout)
        request.log_path.parent.mkdir(parents=True, exist_ok=True)
        request.work_dir.mkdir(parents=True, exist_ok=True)
        model_dir = request.work_dir / "model"
        try:
            plan = plan_command(request, self.package_root, model_dir)
            options = self.container_options(request, model_dir, plan.data.volumes)
        except MadError as exc:
            outcome.error = exc.message
            return self._finish(outcome, started)
        except OSError as exc:  # the work dir's filesystem is full or read-only
            outcome.error = (f"{request.card.name}: the model dir {model_dir} could not be prepared ({exc}). "
                             "Fix: free space there or point --mad-log-dir elsewhere.")
            return self._finish(outcome, started)
        if plan.git_commit:
            outcome.extra["git_commit"] = plan.git_commit
        keep_alive = bool(getattr(request.settings, "keep_alive", False))
        options["command"] = wrapped(plan.command) if keep_alive else plan.command
        options["environment"] = {**_environment(options), **plan.env}
        options = merge_options(options, neutral_options(request.container_options))
        if request.adjust_options:
            request.adjust_options(options)
        try:
            with engine_errors():
                self._create_and_execute(options, request, timeout, outcome)
        except MadError as exc:  # the daemon went away: the same message as one never there
            outcome.error = outcome.error or exc.message
        outcome.extra.update(data_fields(plan.data, model_dir))  # read before _gather removes the dir
        _keep_artifacts(model_dir, plan, request.log_path, outcome)
        self._gather(request, model_dir, outcome)
        if getattr(request.settings, "skip_run", False) and not outcome.error:
            outcome.skipped = SKIP_REASON
        return self._finish(outcome, started)

    def _create_and_execute(self, options: RunOptions, request: RunRequest, timeout: int | None,
                            outcome: RunOutcome) -> None:
        container = self._create(options, request, outcome)
        if container is not None:
            try:
                self._execute(container, request, timeout, outcome)
            except BaseException:
                # interrupted (Ctrl-C, SIGTERM): the caller removes the run dir next, so the container
                # must be gone first, or it still writes into that dir while the dir is removed
                self._dispose(container, request, outcome, in_background=False)
                raise
            self._dispose(container, request, outcome, in_background=self.defer_removal)

    def _create(self, options: RunOptions, request: RunRequest, outcome: RunOutcome) -> Container | None:
        from docker.errors import APIError, ImageNotFound

        try:
            container = self.client.containers.create(**options)
        except ImageNotFound:
            outcome.error = (f"{request.card.name}: image {options['image']} does not exist locally. "
                             "Fix: build it (run without --mad-manifest/--mad-use-image), or pull/tag it.")
            return None
        except APIError as exc:
            outcome.error = f"{request.card.name}: Docker refused to create the container: {exc.explanation or exc}"
            return None
        with self._lock:
            self._running[container.id] = container
        return container

    def _execute(self, container: Container, request: RunRequest, timeout: int | None, outcome: RunOutcome) -> None:
        from docker.errors import APIError
        from requests.exceptions import ConnectionError as RequestsConnectionError
        from requests.exceptions import ReadTimeout

        stream = None
        try:
            stream = container.attach(stdout=True, stderr=True, stream=True, logs=True)
            container.start()
        except APIError as exc:
            if stream is not None:
                stream.close()
            outcome.error = f"{request.card.name}: the container did not start: {exc.explanation or exc}"
            return
        model_exit = ModelExit() if getattr(request.settings, "keep_alive", False) else None
        pump = LogPump(stream, request.log_path, request.live_output, model_exit)
        pump.start()
        try:
            if model_exit is not None:
                self._wait_kept(container, model_exit, timeout, outcome)
            else:
                outcome.exit_code = int(container.wait(timeout=timeout)["StatusCode"])
        except (ReadTimeout, RequestsConnectionError) as exc:  # the SDK reports a wait timeout as either
            if not daemon_alive(self.client):
                outcome.error = daemon_unreachable(exc).message
            else:
                outcome.timed_out = True
                self._kill(container)
        except APIError as exc:  # removed under us: cancel_all (Ctrl-C) or someone else
            outcome.error = f"{request.card.name}: the container went away while running ({exc.explanation or exc})"
        if request.on_model_exit is not None:
            request.on_model_exit()
        pump.join(timeout=0 if model_exit is not None and outcome.exit_code is not None else 30)
        if pump.write_error:
            outcome.error = outcome.error or (
                f"{request.card.name}: the run's log could not be written to {request.log_path} "
                f"({pump.write_error}); the rest of the output was dropped. Fix: free space on that "
                "filesystem or point --mad-log-dir elsewhere.")

    def _wait_kept(self, container: Container, model_exit: ModelExit, timeout: int | None,
                   outcome: RunOutcome) -> None:
        """--mad-keep-alive: the model's exit code from its output; the container idles on (killed on timeout)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while deadline is None or time.monotonic() < deadline:
            outcome.exit_code = model_exit.wait(2.0)
            if outcome.exit_code is not None:
                outcome.extra["keep_alive_hint"] = enter_hint(container.name)
                return
            container.reload()
            if container.status != "running":  # ended before the model did (no sh in the image, OOM kill)
                outcome.exit_code = int(container.wait(timeout=30)["StatusCode"])
                return
        outcome.timed_out = True
        self._kill(container)

    @staticmethod
    def _kill(container: Container) -> None:
        from docker.errors import APIError

        try:
            container.kill()
        except APIError:
            pass  # already stopped

    def _dispose(self, container: Container, request: RunRequest, outcome: RunOutcome, *,
                 in_background: bool) -> None:
        from docker.errors import APIError, NotFound

        with self._lock:
            self._running.pop(container.id, None)
        outcome.extra["container"] = container.name
        if getattr(request.settings, "keep_alive", False):
            outcome.extra["kept_container"] = container.name
            return
        if in_background:
            remover = threading.Thread(target=remove_quietly, args=(container,), daemon=True)
            remover.start()
            with self._lock:
                self._removals = [t for t in self._removals if t.is_alive()] + [remover]
            return
        try:
            container.remove(force=True)
        except NotFound:
            pass
        except APIError as exc:
            outcome.error = outcome.error or f"container {container.name} could not be removed: {exc}"

    def _gather(self, request: RunRequest, model_dir: Path, outcome: RunOutcome) -> None:
        """Result CSV into ``outcome.result_files``; the model dir goes unless kept."""
        settings = request.settings
        keep = bool(getattr(settings, "keep_model_dir", False) or getattr(settings, "keep_alive", False))
        csv_name = request.card.multiple_results
        csv = self._results_file(request, model_dir, outcome) if csv_name else None
        if csv is not None and csv.is_file():
            if keep:
                outcome.result_files.append(csv)
            else:
                target = request.work_dir / Path(csv_name).name
                try:
                    shutil.copyfile(csv, target)
                except OSError as exc:  # disk full: judge the file where the model left it
                    outcome.extra["model_dir"] = str(model_dir)
                    outcome.result_files.append(csv)
                    outcome.error = outcome.error or f"{request.card.name}: {csv_name} could not be copied ({exc})"
                    return
                outcome.result_files.append(target)
        if keep:
            outcome.extra["model_dir"] = str(model_dir)
        elif model_dir.exists():
            shutil.rmtree(model_dir, ignore_errors=True)

    @staticmethod
    def _results_file(request: RunRequest, model_dir: Path, outcome: RunOutcome) -> Path | None:
        """The card's ``multiple_results`` file, confined to the model dir (a symlink out is refused)."""
        card = request.card
        try:
            return confined(model_dir, card.multiple_results, where=f"{card.source}: card {card.name!r}",
                            field="multiple_results", root_name="the model's working directory")
        except MadError as exc:
            outcome.error = outcome.error or exc.message
            return None

    @staticmethod
    def _finish(outcome: RunOutcome, started: float) -> RunOutcome:
        outcome.duration = round(time.monotonic() - started, 3)
        return outcome

    def cancel_all(self) -> None:
        """Kill and remove the containers this target is running now (Ctrl-C). Idempotent."""
        with self._lock:
            running, self._running = list(self._running.values()), {}
            removals, self._removals = self._removals, []
        if running:
            _remove_running(running)
        for remover in removals:
            remover.join(timeout=60)


def _remove_running(running: list[Container]) -> None:
    for container in running:
        remove_quietly(container)  # already gone, or the daemon is (its label sweep removes it later)
