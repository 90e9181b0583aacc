"""The Kubernetes target without a cluster: settings merging and warnings, generated objects
(official schema in strict mode via kubernetes-validate, golden YAML per launcher), the payload
channel, the pod's entry script, and kubeconfig resolution."""
from __future__ import annotations

import io
import os
import subprocess
import tarfile
import warnings
from pathlib import Path

import pytest
import yaml

from pytest_madengine.errors import MadError
from pytest_madengine.targets.k8s import config as k8s_config
from pytest_madengine.targets.k8s import objects
from pytest_madengine.targets.k8s.api import find_access
from pytest_madengine.targets.k8s.config import K8sConfigWarning, resolve
from pytest_madengine.targets.k8s.payload import CONFIGMAP_LIMIT, POD_SCRIPT, ResultsFilter, build_payload
from pytest_madengine.targets.k8s.prepare import prepare_run

from ..slurm.helpers import make_card, make_package, make_request

GOLDEN = Path(__file__).parent / "golden"
LAUNCHERS = ("native", "torchrun", "deepspeed", "megatron", "torchtitan", "primus", "vllm", "sglang",
             "sglang_disagg")
LABELS = {objects.SESSION_LABEL: "0123456789", objects.MODEL_LABEL: "golden_model",
          objects.PID_LABEL: "4242", objects.HOST_LABEL: "ci-host"}
FULL_K8S = {
    "namespace": "ml-training", "gpu_count": 2, "memory": "128Gi", "memory_limit": "192Gi", "cpu": "24",
    "cpu_limit": 32, "node_selector": {"feature.node.kubernetes.io/amd-gpu": "true"},
    "tolerations": [{"key": "gpu", "operator": "Equal", "value": "amd", "effect": "NoSchedule"}],
    "image_pull_secrets": ["regcred"], "service_account": "bench", "host_ipc": True,
    "results_pvc": "results", "data_pvc": "datasets",
    "host_paths": [{"host_path": "/srv/models", "mount_path": "/models"}],
    "backoff_limit": 0, "ttl_seconds_after_finished": 600, "secrets": {"runtime_secret_name": "hf-token"},
}


def validate(manifest: dict) -> None:
    import kubernetes_validate

    kubernetes_validate.validate(manifest, "1.37", strict=True)


def golden_objects(launcher: str) -> list[dict]:
    nnodes = 3 if launcher == "sglang_disagg" else 2  # disaggregated serving: a proxy, prefill and decode
    card = make_card("golden_model", "run.sh", distributed={"launcher": launcher, "nnodes": nnodes})
    config = resolve(card, {"gpu_vendor": "AMD", "k8s": FULL_K8S, "distributed": {"master_port": 29600}},
                     timeout=3600)
    name = objects.job_name(card.name, "0123456789-abcdef01")
    inputs = objects.JobInputs(name=name, labels=LABELS, image="registry.example/ci-golden:1",
                               command=["bash", "run.sh", "--two words"],
                               env={"MAD_MODEL_NAME": card.name, **objects.rank_env(name, config)},
                               env_secret=f"{name}-env", pull_secrets=(f"{name}-pull", "regcred"))
    return [objects.configmap(name, LABELS, config.namespace, b"payload"),
            objects.env_secret(f"{name}-env", LABELS, config.namespace, {"MAD_SECRETS_HF": "s3cr3t"}),
            objects.registry_secret(f"{name}-pull", LABELS, config.namespace, '{"auths": {}}'),
            objects.headless_service(inputs, config.namespace, config.master_port),
            objects.job(inputs, config, config.namespace)]


@pytest.mark.parametrize("launcher", LAUNCHERS)
def test_objects_match_golden_yaml_and_the_official_schema(launcher: str) -> None:
    manifests = golden_objects(launcher)
    for manifest in manifests:
        validate(manifest)
    text = yaml.safe_dump_all(manifests, sort_keys=True, width=120)
    golden = GOLDEN / f"{launcher}.yaml"
    if os.environ.get("MAD_UPDATE_GOLDEN"):
        golden.write_text(text)
    assert text == golden.read_text(), f"regenerate with MAD_UPDATE_GOLDEN=1 after checking the diff ({golden})"


def test_multi_node_job_is_indexed_with_a_master_behind_the_headless_service() -> None:
    *_, service, job = golden_objects("torchrun")
    spec = job["spec"]
    assert (spec["completionMode"], spec["completions"], spec["parallelism"]) == ("Indexed", 2, 2)
    pod = spec["template"]["spec"]
    assert pod["subdomain"] == service["metadata"]["name"] == job["metadata"]["name"]
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    name = job["metadata"]["name"]
    assert env["MASTER_ADDR"] == env["PET_MASTER_ADDR"] == f"{name}-0.{name}.ml-training.svc.cluster.local"
    assert (env["NNODES"], env["NPROC_PER_NODE"], env["WORLD_SIZE"], env["MASTER_PORT"]) == ("2", "2", "4", "29600")
    assert "--node_rank=1" in env["MAD_RANK_1_MAD_MULTI_NODE_RUNNER"]
    assert {"NODE_RANK", "PET_NODE_RANK", "MAD_MULTI_NODE_RUNNER"} <= set(env["MAD_PER_RANK_VARS"].split())
    assert pod["containers"][0]["resources"]["limits"]["amd.com/gpu"] == "2"
    assert spec["activeDeadlineSeconds"] == 3600 + 300 + 300


def test_secrets_are_referenced_never_inlined_in_the_job() -> None:
    job = golden_objects("native")[-1]
    text = yaml.safe_dump(job)
    assert "s3cr3t" not in text and "MAD_SECRETS_HF" not in text
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert {"secretRef": {"name": job["metadata"]["name"] + "-env"}} in container["envFrom"]
    assert {"secretRef": {"name": "hf-token"}} in container["envFrom"]


def test_single_pod_job_has_no_index_and_no_gpu_request_without_a_vendor(tmp_path: Path) -> None:
    package = make_package(tmp_path / "pkg", {"run.sh": "echo performance: 1 x\n"})
    card = make_card("solo", "run.sh", multiple_results="out.csv")
    request = make_request(package, card, tmp_path, context={"gpu_vendor": "NONE"})
    request.context.data["k8s"] = {"namespace": "bench"}
    config = resolve(card, request.context.data, timeout=None)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MAD_SECRETS_TOKEN", "hunter2")
        prepared = prepare_run(request, config, package, LABELS, run_name="mad-solo-1")
    kinds = [m["kind"] for m in prepared.manifests]
    assert kinds == ["ConfigMap", "Secret", "Job"]
    for manifest in prepared.manifests:
        validate(manifest)
    job = prepared.manifests[-1]
    assert "completionMode" not in job["spec"] and "activeDeadlineSeconds" not in job["spec"]
    container = job["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert "resources" not in container and env["MASTER_ADDR"] == "localhost"
    assert env["MAD_OUTPUT_CSV"] == "out.csv" and "hunter2" not in yaml.safe_dump(job)
    assert prepared.manifests[1]["stringData"] == {"MAD_SECRETS_TOKEN": "hunter2"}


def test_payload_carries_the_model_dir_and_scripts_common(tmp_path: Path) -> None:
    package = make_package(tmp_path / "pkg", {"run.sh": "echo hi\n"})
    (package / "scripts" / "common").mkdir()
    (package / "scripts" / "common" / "helper.sh").write_text("echo helper\n")
    data = build_payload(package / "scripts" / "m", package, where="card x")
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        names = set(tar.getnames())
    assert {"run_directory/run.sh", "scripts/common/helper.sh"} <= names


def test_payload_over_the_configmap_limit_is_a_clear_error(tmp_path: Path) -> None:
    package = make_package(tmp_path / "pkg", {"run.sh": "echo hi\n"})
    (package / "scripts" / "m" / "weights.bin").write_bytes(os.urandom(CONFIGMAP_LIMIT + 1))
    with pytest.raises(MadError) as info:
        build_payload(package / "scripts" / "m", package, where="card big: scripts")
    assert "card big: scripts" in info.value.message and "ConfigMap" in info.value.message
    assert "Fix:" in info.value.message


def test_pod_script_unpacks_ranks_and_reports_results(tmp_path: Path) -> None:
    """The entry script under a real sh, with the payload at a temporary root."""
    package = make_package(tmp_path / "pkg", {"run.sh": "echo hi\n"})
    model = package / "scripts" / "m"
    (model / "out.csv").write_text("model,performance,metric\na,1,x\n")
    payload = tmp_path / "in"
    payload.mkdir()
    (payload / "payload.tgz").write_bytes(build_payload(model, package, where="x"))
    root = tmp_path / "ws"
    script = POD_SCRIPT.replace("/mad-payload", str(payload)).replace("/myworkspace", str(root))
    env = {"PATH": os.environ["PATH"], "JOB_COMPLETION_INDEX": "1", "PET_NNODES": "2",
           "MAD_PER_RANK_VARS": "PET_NODE_RANK MAD_MULTI_NODE_RUNNER", "MAD_RANK_0_PET_NODE_RANK": "0",
           "MAD_RANK_1_PET_NODE_RANK": "1", "MAD_RANK_0_MAD_MULTI_NODE_RUNNER": "runner --rank 0",
           "MAD_RANK_1_MAD_MULTI_NODE_RUNNER": "runner --rank 1 '$(touch pwned)'", "MAD_OUTPUT_CSV": "out.csv",
           "MAD_K8S_RESULTS_MARK": "--mark--"}
    proc = subprocess.run(["sh", "-c", script, "mad-pod", "sh", "-c",
                           'echo "$NODE_RANK $PET_NODE_RANK $MAD_MULTI_NODE_RUNNER $(pwd)"; exit 3'],
                          env=env, capture_output=True, text=True, check=False)
    lines = proc.stdout.splitlines()
    assert proc.returncode == 3
    assert lines[0] == f"1 1 runner --rank 1 '$(touch pwned)' {root}/run_directory"
    assert not (root / "run_directory" / "pwned").exists()  # a value is expanded, never run
    keep = ResultsFilter("--mark--")
    assert [line for line in lines if keep.keep(line)] == [lines[0]]
    assert keep.csv_text == "model,performance,metric\na,1,x\n"


def test_unknown_keys_are_warned_about_once_with_their_origin() -> None:
    k8s_config._warned.clear()
    card = make_card("w", "run.sh", k8s={"namspace": "typo"})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(2):
            resolve(card, {"kubernetes": {"output_dir": "./m", "storage_class": "nfs"}}, timeout=None)
    messages = [str(w.message) for w in caught if issubclass(w.category, K8sConfigWarning)]
    assert sorted(messages) == ["card w: k8s.namspace is not a setting pytest-madengine knows; it is ignored",
                                "context: k8s.output_dir is not a setting pytest-madengine knows; it is ignored"]


@pytest.mark.parametrize(("k8s", "field"), [
    ({"namespace": "Bad_NS"}, "k8s.namespace"), ({"memory": "lots"}, "k8s.memory"),
    ({"image_pull_policy": "Sometimes"}, "k8s.image_pull_policy"),
    ({"tolerations": [{"key": "a", "colour": "x"}]}, "k8s.tolerations[0]"),
    ({"image_loader": "kind load"}, "k8s.image_loader"), ({"gpu_count": -2}, "k8s.gpu_count"),
])
def test_bad_settings_name_the_field(k8s: dict, field: str) -> None:
    with pytest.raises(MadError) as info:
        resolve(make_card("b", "run.sh"), {"k8s": k8s}, timeout=None)
    assert info.value.where == field and info.value.fix


def test_all_gpus_card_needs_an_explicit_gpu_count() -> None:
    with pytest.raises(MadError, match="k8s.gpu_count"):
        resolve(make_card("all", "run.sh", n_gpus="-1"), {"gpu_vendor": "AMD"}, timeout=None)


def test_kubeconfig_order_and_a_missing_one(tmp_path: Path) -> None:
    option, env_file, home = tmp_path / "option", tmp_path / "env", tmp_path / "home"
    option.write_text("x")
    env_file.write_text("x")
    (home / ".kube").mkdir(parents=True)
    (home / ".kube" / "config").write_text("x")
    env = {"KUBECONFIG": str(env_file), "HOME": str(home)}
    assert find_access(str(option), "", "", env).kubeconfig == str(option)
    assert find_access(None, "", "ctx", env).origin == "KUBECONFIG"
    assert find_access(None, "", "", {"HOME": str(home)}).origin == "~/.kube/config"
    assert find_access(None, "", "", {"HOME": str(tmp_path), "KUBERNETES_SERVICE_HOST": "10.0.0.1"}).kubeconfig == ""
    with pytest.raises(MadError) as info:
        find_access(None, "", "", {"HOME": str(tmp_path)})
    assert "--mad-k8s-kubeconfig" in info.value.message and "\n" not in info.value.message


def test_names_fit_kubernetes_limits() -> None:
    name = objects.job_name("Very_Long/Model.Name " * 5, "0123456789-abcdef01")
    assert len(name) <= 53 and name.endswith("-abcdef01") and name == name.lower()
    assert objects.label_value("-a/b c.-") == "a-b-c"


def test_target_is_inferred_from_a_k8s_or_kubernetes_context_key() -> None:
    from pytest_madengine.targets.builtins import BUILTIN_TARGETS, infer_target

    assert infer_target(None, {"kubernetes": {"namespace": "x"}}) == infer_target(None, {"k8s": {}}) == "k8s"
    assert infer_target("kubernetes", {}) == "k8s" and "k8s" in BUILTIN_TARGETS


@pytest.mark.parametrize(("nnodes", "k8s", "expected"), [
    (1, {"storage_class": "nfs", "local_path_storage_class": "local-path"}, ("local-path", "ReadWriteOnce")),
    (2, {"storage_class": "nfs", "nfs_storage_class": "nfs-banff"}, ("nfs-banff", "ReadWriteMany")),
    (2, {"multi_node_results_storage_class": "rwx", "nfs_storage_class": "nfs"}, ("rwx", "ReadWriteMany")),
    (1, {}, ("", "ReadWriteOnce")),
])
def test_results_claim_class_and_access_mode_follow_madengine(nnodes: int, k8s: dict, expected: tuple) -> None:
    card = make_card("c", "run.sh", distributed={"launcher": "torchrun", "nnodes": nnodes})
    config = resolve(card, {"k8s": {"results_pvc": "res", "results_storage_size": "10Gi", **k8s}}, timeout=None)
    (claim,) = config.claims
    assert (claim.name, claim.size, claim.storage_class, claim.access_mode) == ("res", "10Gi", *expected)
    validate(objects.persistent_volume_claim(claim, LABELS, "ns"))


def test_data_claim_is_read_write_many_and_recreating_it_is_refused() -> None:
    card = make_card("c", "run.sh")
    k8s = {"data_pvc": "ds", "data_storage_size": "100Gi", "storage_class": "sc", "data_storage_class": "nfs"}
    (claim,) = resolve(card, {"k8s": k8s}, timeout=None).claims
    assert (claim.storage_class, claim.access_mode, claim.key) == ("nfs", "ReadWriteMany", "k8s.data_pvc")
    with pytest.raises(MadError) as info:
        resolve(card, {"k8s": {**k8s, "recreate_shared_data_pvc": True}}, timeout=None)
    assert info.value.where == "k8s.recreate_shared_data_pvc" and "kubectl delete pvc" in info.value.fix
    with pytest.raises(MadError, match="k8s.data_storage_size"):
        resolve(card, {"k8s": {**k8s, "data_storage_size": "lots"}}, timeout=None)


@pytest.mark.parametrize("mode", ["required", "preferred", "none"])
def test_pod_anti_affinity_modes_are_valid_jobs(mode: str) -> None:
    card = make_card("c", "run.sh", distributed={"launcher": "sglang_disagg", "nnodes": 3})
    config = resolve(card, {"k8s": {"pod_anti_affinity": mode}}, timeout=None)
    inputs = objects.JobInputs(name="mad-c-1", labels=LABELS, image="i:1", command=["true"], env={})
    job = objects.job(inputs, config, "ns")
    validate(job)
    affinity = job["spec"]["template"]["spec"].get("affinity", {}).get("podAntiAffinity", {})
    assert list(affinity) == {"required": ["requiredDuringSchedulingIgnoredDuringExecution"],
                              "preferred": ["preferredDuringSchedulingIgnoredDuringExecution"], "none": []}[mode]


def test_pod_script_sends_the_carried_files_back_through_its_log(tmp_path: Path) -> None:
    package = make_package(tmp_path / "pkg", {"run.sh": "echo hi\n"})
    payload = tmp_path / "in"
    payload.mkdir()
    (payload / "payload.tgz").write_bytes(build_payload(package / "scripts" / "m", package, where="x"))
    root = tmp_path / "ws"
    script = POD_SCRIPT.replace("/mad-payload", str(payload)).replace("/myworkspace", str(root))
    env = {"PATH": os.environ["PATH"], "MAD_K8S_RESULTS_MARK": "--mark--", "MAD_K8S_CARRY": ".mad_sys_env out_* none"}
    model = "mkdir -p .mad_sys_env out_a && echo v > .mad_sys_env/uname && echo t > out_a/trace; echo done"
    proc = subprocess.run(["sh", "-c", script, "mad-pod", "sh", "-c", model], env=env, capture_output=True,
                          text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    keep = ResultsFilter("--mark--")
    assert [line for line in proc.stdout.splitlines() if keep.keep(line)] == ["done"]
    keep.unpack_files(tmp_path / "back", where="pod x")
    assert (tmp_path / "back" / ".mad_sys_env" / "uname").read_text() == "v\n"
    assert (tmp_path / "back" / "out_a" / "trace").read_text() == "t\n"


def test_top_level_env_vars_are_pod_env_and_secret_looking_ones_go_to_the_secret(tmp_path: Path) -> None:
    package = make_package(tmp_path / "pkg", {"run.sh": "echo performance: 1 x\n"})
    card = make_card("envs", "run.sh", distributed={"launcher": "torchrun"})
    request = make_request(package, card, tmp_path, context={
        "gpu_vendor": "NONE", "k8s": {"namespace": "bench"},
        "env_vars": {"OMP_NUM_THREADS": "8", "NCCL_IB_HCA": "mlx5_0:1,mlx5_1:1", "HF_TOKEN": "canary-41"}})
    config = resolve(card, request.context.data, timeout=None)
    prepared = prepare_run(request, config, package, LABELS, run_name="mad-envs-1")
    job, secret = prepared.manifests[-1], prepared.manifests[1]
    env = {e["name"]: e.get("value") for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["OMP_NUM_THREADS"] == "8"  # the config's, not torchrun's default of 1
    assert env["NCCL_IB_HCA"] == "mlx5_0:1,mlx5_1:1"
    assert "HF_TOKEN" not in env and "canary-41" not in yaml.safe_dump(job)
    assert secret["kind"] == "Secret" and secret["stringData"]["HF_TOKEN"] == "canary-41"
def test_every_secret_variable_goes_through_the_runs_secret(tmp_path: Path) -> None:
    package = make_package(tmp_path / "pkg", {"run.sh": "echo performance: 1 x\n"})
    (package / "credential.json").write_text('{"VAULT": {"username": "u-canary", "password": "p-canary"}}')
    card = make_card("solo", "run.sh", env_vars={"CARD_TOKEN": "card-canary", "PLAIN": "plain"}, cred="VAULT")
    context = {"gpu_vendor": "NONE", "k8s": {"namespace": "bench"},
               "docker_env_vars": {"HF_TOKEN": "hf-canary", "MY_PASSWORD": "pw-canary", "MODE": "fast"}}
    request = make_request(package, card, tmp_path, context=context)
    config = resolve(card, request.context.data, timeout=None)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MAD_SECRETS_HF", "env-canary")
        prepared = prepare_run(request, config, package, LABELS, run_name="mad-solo-1")
    secret = next(m for m in prepared.manifests if m["kind"] == "Secret")
    assert {"HF_TOKEN", "MY_PASSWORD", "CARD_TOKEN", "VAULT_USERNAME", "VAULT_PASSWORD", "MAD_SECRETS_HF"} \
        <= set(secret["stringData"])
    public = yaml.safe_dump([m for m in prepared.manifests if m["kind"] != "Secret"])
    assert not [v for v in ("hf-canary", "pw-canary", "card-canary", "u-canary", "p-canary", "env-canary")
                if v in public]
    env = {e["name"]: e.get("value") for e in prepared.manifests[-1]["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["PLAIN"] == "plain" and env["MODE"] == "fast"  # the rest stays readable in the spec
    assert {"hf-canary", "card-canary", "env-canary"} <= set(prepared.secret_values)
