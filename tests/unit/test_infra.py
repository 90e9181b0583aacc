"""The tests/infra fixtures give working parts: images that run, a registry that checks passwords,
a SLURM cluster whose two nodes run job steps side by side."""

from __future__ import annotations

import subprocess
import textwrap
import time
import uuid

import pytest

from tests.infra.containers import run_output
from tests.infra.fixtures import SESSION_LABEL, Registry, SlurmCluster

RUN_ID = f"infra-test-{uuid.uuid4().hex[:12]}"  # label value of this module's containers
BASH_LIKE_SCRIPT = textwrap.dedent(
    """\
    #!/bin/bash
    set -euo pipefail
    greet() { local who=${1:-world}; echo "hello $who"; }
    greet "$@"
    name="a-b-c"
    [[ "$name" == a-* && -n "$name" ]] && echo "${name//-/_} ${#name} ${name%%-*}"
    out=$(echo sub | tr a-z A-Z); echo "$out $((6 * 7))"
    source /dev/null
    echo "${UNSET:-default}"
    exit 3
    """
)


@pytest.fixture
def no_leaks(clean_containers):
    """clean_containers narrowed to this module's containers (other sessions may share the engine)."""
    clean_containers.value = RUN_ID
    return clean_containers


def run_container(client, image: str, command: list[str], **kwargs) -> str:
    output = run_output(client, image, command, labels={SESSION_LABEL: RUN_ID}, **kwargs)
    return output.decode()


@pytest.mark.docker
def test_busybox_image_runs_bash_through_busybox(docker_engine, busybox_image, no_leaks):
    assert run_container(docker_engine, busybox_image, ["bash", "-c", "echo ok"]) == "ok\n"


@pytest.mark.docker
def test_busybox_sh_runs_a_simple_bash_script(docker_engine, busybox_image, tmp_path, no_leaks):
    import docker

    script = tmp_path / "run.sh"
    script.write_text(BASH_LIKE_SCRIPT)
    script.chmod(0o755)
    mount = {str(tmp_path): {"bind": "/work", "mode": "ro"}}
    with pytest.raises(docker.errors.ContainerError) as by_bash:
        run_container(docker_engine, busybox_image, ["bash", "/work/run.sh", "mad"], volumes=mount)
    assert by_bash.value.exit_status == 3
    assert by_bash.value.stderr.decode().splitlines() == ["hello mad", "a_b_c 5 a", "SUB 42", "default"]
    with pytest.raises(docker.errors.ContainerError) as by_shebang:  # `#!/bin/bash` works too
        run_container(docker_engine, busybox_image, ["/work/run.sh"], volumes=mount)
    assert by_shebang.value.exit_status == 3


@pytest.mark.docker
def test_python_image_runs_python3(docker_engine, python_image, no_leaks):
    out = run_container(docker_engine, python_image, ["python3", "-c", "import sys; print(sys.version_info[:2])"])
    assert out == "(3, 11)\n"


@pytest.mark.docker
def test_clean_containers_fails_a_test_that_leaks_a_container(docker_engine, busybox_image, pytester):
    leak_id = f"leak-{uuid.uuid4().hex}"
    pytester.makeconftest('pytest_plugins = ["tests.infra.fixtures"]')
    pytester.makepyfile(
        f"""
        def test_leaks(docker_engine, clean_containers):
            clean_containers.value = {leak_id!r}
            docker_engine.containers.create({busybox_image!r}, ["true"], labels={{clean_containers.label: {leak_id!r}}})
        """
    )
    result = pytester.runpytest_inprocess()
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*survived the test*"])
    for leak in docker_engine.containers.list(all=True, filters={"label": f"{SESSION_LABEL}={leak_id}"}):
        leak.remove(force=True)


def _fresh_client():
    import docker

    return docker.from_env()


@pytest.mark.docker
@pytest.mark.registry
def test_registry_rejects_a_wrong_password_and_accepts_the_right_one(registry: Registry):
    import docker

    assert registry.password.startswith("canary-")
    client = _fresh_client()  # login state stays in this client, not the session one
    try:
        with pytest.raises(docker.errors.APIError, match="401|unauthorized|Unauthorized"):
            client.login(registry.user, "wrong-" + registry.password, registry=registry.host, reauth=True)
        answer = client.login(registry.user, registry.password, registry=registry.host, reauth=True)
        assert answer.get("Status") == "Login Succeeded"
    finally:
        client.close()


@pytest.mark.docker
@pytest.mark.registry
def test_registry_push_needs_credentials_and_then_pulls_back(docker_engine, busybox_image, registry: Registry):
    repository = f"{registry.host}/infra/busybox"
    image = docker_engine.images.get(busybox_image)
    image.tag(repository, "t1")
    try:
        anonymous = _push(_fresh_client(), repository, auth_config=None)
        assert any("error" in line for line in anonymous), anonymous
        pushed = _push(docker_engine, repository, auth_config=registry.auth_config)
        assert not any("error" in line for line in pushed), pushed
        docker_engine.images.remove(f"{repository}:t1")
        pulled = docker_engine.images.pull(repository, tag="t1", auth_config=registry.auth_config)
        assert pulled.id == image.id
    finally:
        docker_engine.images.remove(f"{repository}:t1", force=True)


def _push(client, repository: str, auth_config: dict | None) -> list[dict]:
    return list(client.images.push(repository, tag="t1", auth_config=auth_config, stream=True, decode=True))


FINISHED_STATES = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED"}


def sbatch(cluster: SlurmCluster, *args: str) -> str:
    proc = subprocess.run(
        ["sbatch", "--parsable", "-p", cluster.partition, "-D", str(cluster.shared_dir), *args],
        capture_output=True, text=True, timeout=30, check=True,
    )
    return proc.stdout.strip()


def job_state(job_id: str) -> str:
    shown = subprocess.run(
        ["scontrol", "-o", "show", "job", job_id], check=False, capture_output=True, text=True, timeout=30
    )
    fields = dict(f.split("=", 1) for f in shown.stdout.split() if "=" in f)
    return fields.get("JobState", "UNKNOWN")


def wait_for_jobs(*job_ids: str, timeout: float = 60) -> list[str]:
    """Poll (sbatch --wait sleeps up to 10 s between its own polls) until every job has ended."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = [job_state(j) for j in job_ids]
        if all(s in FINISHED_STATES for s in states):
            return states
        time.sleep(0.2)
    raise AssertionError(f"jobs {job_ids} still not finished after {timeout} s: {states}")


@pytest.mark.slurm
def test_slurm_two_node_job_runs_a_step_on_each_node(slurm_cluster: SlurmCluster):
    out = slurm_cluster.shared_dir / "two-node.out"
    step = 'echo "$SLURMD_NODENAME $SLURM_NODEID $SLURM_JOB_NODELIST"'
    job = sbatch(slurm_cluster, "-N", "2", "-o", str(out), "--wrap", f"srun bash -c '{step}'")
    assert wait_for_jobs(job) == ["COMPLETED"]
    assert sorted(out.read_text().splitlines()) == ["node1 0 node[1-2]", "node2 1 node[1-2]"]


@pytest.mark.slurm
def test_slurm_runs_two_jobs_at_once(slurm_cluster: SlurmCluster):
    """Each job waits for the other's mark: both finish only if both ran at the same time."""
    rendezvous = slurm_cluster.shared_dir / "rendezvous"
    rendezvous.mkdir()

    def job(me: str, other: str) -> str:
        wait_for_other = (
            f"touch {rendezvous}/{me}; "
            f"for i in $(seq 100); do [ -e {rendezvous}/{other} ] && exit 0; sleep 0.2; done; exit 1"
        )
        return sbatch(slurm_cluster, "-N", "2", "-o", "/dev/null", "--wrap", f"srun -N 1 -n 1 bash -c '{wait_for_other}'")

    assert wait_for_jobs(job("a", "b"), job("b", "a")) == ["COMPLETED", "COMPLETED"]


@pytest.mark.slurm
@pytest.mark.docker
def test_slurm_job_steps_can_run_containers(slurm_cluster: SlurmCluster, busybox_image, no_leaks):
    out = slurm_cluster.shared_dir / "docker.out"
    run = f"docker run --rm --label {SESSION_LABEL}={RUN_ID} {busybox_image} echo from-$SLURMD_NODENAME"
    job = sbatch(slurm_cluster, "-N", "2", "-o", str(out), "--wrap", f"srun bash -c '{run}'")
    assert wait_for_jobs(job) == ["COMPLETED"], out.read_text()
    assert sorted(out.read_text().split()) == ["from-node1", "from-node2"]
