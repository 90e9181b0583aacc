"""The local Docker target against the real engine: one container per run, never left behind."""
from __future__ import annotations

import os
import shutil
import threading
import time
import uuid
from dataclasses import replace
from pathlib import Path

import pytest

from pytest_madengine.images.build import ensure_image
from pytest_madengine.images.dockerfiles import resolve_dockerfiles
from pytest_madengine.records import ImageRef
from pytest_madengine.settings import Settings
from pytest_madengine.targets.local.target import (
    KEEP_LABEL,
    MODEL_LABEL,
    SESSION_LABEL,
    LocalTarget,
    effective_timeout,
    remove_session_containers,
    remove_stale_containers,
)
from pytest_madengine.workload.run import RunRequest
from tests.docker.fakes import RUNNABLE, amd_context, load_cards

pytestmark = pytest.mark.docker
CARDS = load_cards()


@pytest.fixture(scope="module")
def package(tmp_path_factory) -> Path:
    """A copy of the runnable package (Docker creates the run_directory mount point in it)."""
    root = tmp_path_factory.mktemp("runnable") / "pkg"
    shutil.copytree(RUNNABLE, root)
    return root


@pytest.fixture(scope="module")
def images(package, docker_engine, busybox_image, tmp_path_factory) -> dict[str, ImageRef]:
    logs = tmp_path_factory.mktemp("build-logs")
    context = amd_context()
    return {name: ensure_image(card, resolve_dockerfiles(card, package, context.data)[0], package_root=package,
                               context=context, clean_cache=False, log_dir=logs, lock_dir=logs / "locks",
                               client=docker_engine)
            for name, card in CARDS.items()}


@pytest.fixture
def session_id() -> str:
    return f"test-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def target(package, docker_engine, session_id, clean_containers):
    clean_containers.value = session_id  # other sessions may run containers meanwhile
    target = LocalTarget(session_id=session_id, package_root=package, client=docker_engine)
    yield target
    target.cancel_all()


@pytest.fixture
def request_for(package, images, tmp_path):
    def make(name: str, *, context=None, gpus=(), settings=None, **extra) -> RunRequest:
        card = extra.pop("card", CARDS[name])
        settings = settings or Settings(package=package, gpus="none", no_sys_env=True)  # exact logs
        return RunRequest(card=card, context=context or amd_context(), image=extra.pop("image", images[name]),
                          gpus=gpus, settings=settings, log_path=tmp_path / f"{name}.log",
                          work_dir=tmp_path / f"work-{name}", run_id=uuid.uuid4().hex[:8], **extra)
    return make


def lines(outcome, prefix: str) -> list[str]:
    return [line[len(prefix):] for line in outcome.log_path.read_text().splitlines() if line.startswith(prefix)]


def env_of(outcome) -> dict[str, str]:
    return dict(line.split("=", 1) for line in lines(outcome, "ENV "))


def test_pass_runs_the_script_with_its_args(target, request_for):
    outcome = target.run(request_for("pass"))
    assert (outcome.exit_code, outcome.error, outcome.timed_out) == (0, "", False)
    assert outcome.log_path.read_text() == "running pass with args: --batch 8\nperformance: 123.4 samples_per_second\n"
    assert not (outcome.log_path.parent / "work-pass" / "model").exists()


def test_multiple_results_csv_lands_on_the_host(target, request_for):
    outcome = target.run(request_for("multi"))
    assert outcome.exit_code == 0
    (csv,) = outcome.result_files
    assert csv.read_text().splitlines()[0] == "model,performance,metric" and csv.parent.name == "work-multi"
    assert not (csv.parent / "model").exists()


def test_failing_model_reports_exit_code_and_stderr(target, request_for):
    outcome = target.run(request_for("fail"))
    assert outcome.exit_code == 1 and outcome.error == ""
    assert "RuntimeError: the model crashed" in outcome.log_path.read_text()


def test_model_without_performance_still_exits_zero(target, request_for):
    outcome = target.run(request_for("noperf"))
    assert outcome.exit_code == 0 and "performance:" not in outcome.log_path.read_text()


def test_timeout_kills_and_removes_the_container(target, request_for, package, docker_engine, session_id):
    started = time.monotonic()
    outcome = target.run(request_for("sleep", settings=Settings(package=package, gpus="none", timeout=1)))
    assert outcome.timed_out and outcome.timeout == 1 and outcome.exit_code is None
    assert time.monotonic() - started < 25  # killed, not left to sleep its 30 s
    assert "sleeping 30 s" in outcome.log_path.read_text()
    assert not docker_engine.containers.list(all=True, filters={"label": f"{SESSION_LABEL}={session_id}"})


def test_effective_timeout():
    card = CARDS["sleep"]
    assert effective_timeout(card, Settings(package=Path("."))) == 3
    assert effective_timeout(card, Settings(package=Path("."), timeout=10)) == 10
    assert effective_timeout(card, Settings(package=Path("."), timeout=0)) is None


def test_environment_args_and_adjusted_options_reach_the_container(target, request_for, monkeypatch):
    monkeypatch.setenv("MAD_SECRETS_TOKEN", "s3cret")
    context = amd_context(docker_env_vars={"CTX_VAR": "from-context"})
    seen = {}

    def adjust(options):
        seen.update(options)
        options["environment"]["HOOK_VAR"] = "from-hook"

    outcome = target.run(request_for("env", context=context, gpus=(0, 1), adjust_options=adjust))
    env = env_of(outcome)
    assert {k: env[k] for k in ("CARD_VAR", "OPT_VAR", "CTX_VAR", "HOOK_VAR", "MAD_SECRETS_TOKEN")} == {
        "CARD_VAR": "from-card", "OPT_VAR": "from-options", "CTX_VAR": "from-context", "HOOK_VAR": "from-hook",
        "MAD_SECRETS_TOKEN": "s3cret"}
    assert (env["MAD_MODEL_NAME"], env["MAD_GPU_VENDOR"], env["MAD_RUNTIME_NGPUS"]) == ("env", "AMD", "2")
    assert "HIP_VISIBLE_DEVICES" not in env  # --mad-gpus none: no GPU flags whatever the vendor
    assert lines(outcome, "ARG ") == ["[--name]", "[two words]", "[--dollar]", "[$HOME;rm -rf /]"]
    assert lines(outcome, "PWD ") == ["/myworkspace/run_directory"]
    assert seen["shm_size"] == "64m" and seen["labels"][MODEL_LABEL] == "env"
    assert not [device for device in seen.get("devices", []) if "/dev/kfd" in device or "/dev/dri" in device]
    assert "s3cret" not in str(outcome.extra)


def test_amd_devices_on_a_machine_without_them_give_a_clean_error(target, request_for, package):
    if os.path.exists("/dev/kfd"):
        pytest.skip("this machine has an AMD GPU")
    outcome = target.run(request_for("pass", gpus=(0,), settings=Settings(package=package)))
    assert outcome.exit_code is None and "/dev/kfd" in outcome.error


def test_missing_image_is_a_clear_error(target, request_for):
    outcome = target.run(request_for("pass", image=ImageRef(name="mad-test/never-built:1")))
    assert "image mad-test/never-built:1 does not exist locally" in outcome.error


def test_pre_and_post_scripts_run_in_the_same_container(target, request_for):
    context = amd_context(pre_scripts=[{"path": "scripts/common/pre_hello.sh", "args": "'a b' '$X;y'"}],
                          post_scripts=[{"path": "scripts/common/post_bye.sh"}],
                          encapsulate_script="env WRAPPED=yes")
    outcome = target.run(request_for("env", context=context))
    text = outcome.log_path.read_text()
    assert outcome.exit_code == 0
    assert text.index("PRE [a b]") < text.index("PRE [$X;y]") < text.index("performance:") < text.index("POST ran")
    assert env_of(outcome)["WRAPPED"] == "yes"


def test_failing_pre_script_skips_the_model_but_not_post_scripts(target, request_for, package):
    (package / "scripts/common/pre_fail.sh").write_text("echo pre failing\nexit 7\n")
    context = amd_context(pre_scripts=[{"path": "scripts/common/pre_fail.sh"}],
                          post_scripts=[{"path": "scripts/common/post_bye.sh"}])
    outcome = target.run(request_for("pass", context=context))
    text = outcome.log_path.read_text()
    assert outcome.exit_code == 7 and "performance:" not in text and "POST ran" in text


def test_skip_run_starts_the_container_and_pre_scripts_only(target, request_for, package):
    context = amd_context(pre_scripts=[{"path": "scripts/common/pre_hello.sh", "args": "x"}])
    settings = Settings(package=package, gpus="none", skip_run=True)
    outcome = target.run(request_for("pass", context=context, settings=settings))
    text = outcome.log_path.read_text()
    assert outcome.skipped == "--mad-skip-run" and outcome.exit_code == 0
    assert "PRE [x]" in text and "performance:" not in text


def test_live_output_receives_each_line(target, request_for):
    received: list[str] = []
    outcome = target.run(request_for("pass", live_output=received.append))
    assert received == outcome.log_path.read_text().splitlines()


def test_keep_alive_keeps_container_and_model_dir_until_cleanup(target, request_for, package, docker_engine,
                                                                 session_id):
    settings = Settings(package=package, gpus="none", keep_alive=True)
    outcome = target.run(request_for("multi", settings=settings))
    kept = docker_engine.containers.get(outcome.extra["kept_container"])
    assert kept.labels[SESSION_LABEL] == session_id and kept.labels[KEEP_LABEL] == "1"
    assert Path(outcome.extra["model_dir"], "run_multi.sh").is_file()
    assert outcome.result_files[0].parent.name == "model"
    assert remove_session_containers(session_id, docker_engine) == 0  # session end keeps it
    assert remove_session_containers(session_id, docker_engine, include_kept=True) == 1


def test_keep_model_dir_keeps_only_the_dir(target, request_for, package, docker_engine, session_id):
    outcome = target.run(request_for("pass", settings=Settings(package=package, gpus="none", keep_model_dir=True)))
    assert Path(outcome.extra["model_dir"], "run_pass.sh").is_file()
    assert not docker_engine.containers.list(all=True, filters={"label": f"{SESSION_LABEL}={session_id}"})


def test_cancel_all_stops_a_running_model(target, request_for, package, docker_engine, session_id):
    settings = Settings(package=package, gpus="none", timeout=0)
    outcomes = []
    runner = threading.Thread(target=lambda: outcomes.append(target.run(request_for("sleep", settings=settings))))
    runner.start()
    label = {"label": f"{SESSION_LABEL}={session_id}"}
    deadline = time.monotonic() + 20
    while not docker_engine.containers.list(filters=label) and time.monotonic() < deadline:
        time.sleep(0.1)
    target.cancel_all()
    runner.join(timeout=20)
    assert not runner.is_alive() and outcomes and not outcomes[0].timed_out
    assert not docker_engine.containers.list(all=True, filters=label)


def _labelled_container(client, busybox_image, labels):
    return client.containers.create(busybox_image, ["sleep", "60"], labels=labels)


def test_remove_session_containers_removes_only_that_session(docker_engine, busybox_image, session_id):
    mine = _labelled_container(docker_engine, busybox_image, {SESSION_LABEL: session_id})
    mine.start()
    other = _labelled_container(docker_engine, busybox_image, {SESSION_LABEL: session_id + "-other"})
    try:
        assert remove_session_containers(session_id, docker_engine) == 1
        assert [c.id for c in docker_engine.containers.list(all=True, filters={"id": mine.id})] == []
    finally:
        other.remove(force=True)


def test_remove_stale_containers_spares_live_sessions(docker_engine, busybox_image, session_id):
    import socket

    host = socket.gethostname()
    base = {SESSION_LABEL: session_id, "pytest-madengine.host": host}
    dead = _labelled_container(docker_engine, busybox_image, {**base, "pytest-madengine.pid": "999999999"})
    alive = _labelled_container(docker_engine, busybox_image, {**base, "pytest-madengine.pid": str(os.getpid())})
    try:
        assert remove_stale_containers(docker_engine) >= 1
        ids = {c.id for c in docker_engine.containers.list(all=True, filters={"label": SESSION_LABEL})}
        assert dead.id not in ids and alive.id in ids
    finally:
        alive.remove(force=True)


def test_nested_card_runs_with_its_dir_scripts(target, request_for, package):
    card = replace(CARDS["pass"], scripts="scripts/runnable")  # a dir → its run.sh
    (package / "scripts/runnable/run.sh").write_text('echo "performance: 2 dirs"\n')
    outcome = target.run(request_for("pass", card=card))
    assert outcome.log_path.read_text() == "performance: 2 dirs\n"


def test_gpus_are_given_back_when_the_model_exits_before_cleanup(target, request_for, docker_engine, session_id):
    seen = []

    def on_exit() -> None:
        containers = docker_engine.containers.list(all=True, filters={"label": f"{SESSION_LABEL}={session_id}"})
        seen.append([c.status for c in containers])

    outcome = target.run(request_for("pass", on_model_exit=on_exit))
    assert outcome.exit_code == 0
    assert seen == [["exited"]]  # called once, after the model ended, while its container still existed
    assert not docker_engine.containers.list(all=True, filters={"label": f"{SESSION_LABEL}={session_id}"})


def test_deferred_removal_is_finished_by_cancel_all(package, docker_engine, session_id, clean_containers,
                                                     request_for):
    clean_containers.value = session_id
    target = LocalTarget(session_id=session_id, package_root=package, client=docker_engine, defer_removal=True)
    outcomes = [target.run(request_for("pass")) for _ in range(3)]
    assert [o.exit_code for o in outcomes] == [0, 0, 0]
    target.cancel_all()  # what the session does at its end
    assert not docker_engine.containers.list(all=True, filters={"label": f"{SESSION_LABEL}={session_id}"})
