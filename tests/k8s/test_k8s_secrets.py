"""Canary secrets in every place a user can put one never reach a Kubernetes object spec, a file or a log.

Planted: the context's ``docker_env_vars`` (``HF_TOKEN``, ``MY_PASSWORD``), its top-level ``env_vars``,
the card's ``env_vars`` (``CARD_TOKEN``), the card's ``cred`` entry of ``credential.json`` (username
and password) and the host's ``MAD_SECRETS_*``. The model checks (by MD5, so its script holds no
secret) that each one it should get arrived, and reports how many as its performance. Then every
object of the run is read back from the API (``--mad-keep-alive`` keeps them): Jobs, Pods,
ConfigMaps (the payload tar unpacked too), Services, events; and every file the session wrote and
its output. The values may only be in the run's Secrets.
"""
from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import tarfile
import uuid
from pathlib import Path

import pytest

from tests.k8s.test_k8s_session import session_args

pytestmark = [pytest.mark.k8s, pytest.mark.docker]

ROOT = Path(__file__).resolve().parents[2]


def canary(name: str) -> str:
    return f"canary-{name.lower()}-{uuid.uuid4().hex[:12]}"


def check_script(delivered: dict[str, str]) -> str:
    """Counts the variables whose MD5 matches; prints it as the performance."""
    lines = ["n=0"]
    for name, value in delivered.items():
        digest = hashlib.md5(value.encode()).hexdigest()
        lines.append(f'[ "$(printf %s "${{{name}:-}}" | md5sum | cut -d" " -f1)" = {digest} ] && n=$((n+1))')
    lines.append('echo "performance: $n secrets_received"')
    return "\n".join(lines) + "\n"


def object_texts(api, namespace: str) -> dict[str, str]:
    """Every non-Secret object of the namespace (and the ConfigMaps' unpacked payloads), as text."""
    from kubernetes import client

    core, batch = client.CoreV1Api(api), client.BatchV1Api(api)
    listed = {"job": batch.list_namespaced_job(namespace).items, "pod": core.list_namespaced_pod(namespace).items,
              "configmap": core.list_namespaced_config_map(namespace).items,
              "service": core.list_namespaced_service(namespace).items,
              "event": core.list_namespaced_event(namespace).items}
    texts = {}
    for kind, items in listed.items():
        for item in items:
            data = api.sanitize_for_serialization(item)
            texts[f"{kind}/{item.metadata.name}"] = json.dumps(data)
            for key, value in (data.get("binaryData") or {}).items():
                with tarfile.open(fileobj=io.BytesIO(gzip.decompress(base64.b64decode(value)))) as tar:
                    for member in tar.getmembers():
                        if member.isfile():
                            text = tar.extractfile(member).read().decode(errors="replace")
                            texts[f"{kind}/{item.metadata.name}:{key}:{member.name}"] = text
    return texts


def test_canary_secrets_stay_out_of_objects_files_and_logs(pytester, monkeypatch, k8s_cluster, k8s_namespace,
                                                           busybox_image):
    from kubernetes import client

    planted = {"HF_TOKEN": canary("hf"), "MY_PASSWORD": canary("pw"), "CARD_TOKEN": canary("card"),
               "VAULT_USERNAME": canary("user"), "VAULT_PASSWORD": canary("credpw"),
               "MAD_SECRETS_HFKEY": canary("madsecret"), "TOP_TOKEN": canary("top")}
    delivered = {k: v for k, v in planted.items() if k != "TOP_TOKEN"}  # top-level env_vars: issue 21's item 1
    (pytester.path / "scripts" / "m").mkdir(parents=True)
    (pytester.path / "docker").mkdir()
    (pytester.path / "docker" / "bb.Dockerfile").write_text("# CONTEXT {'gpu_vendor': 'NONE'}\n"
                                                           "FROM mad-test/busybox:latest\n")
    (pytester.path / "scripts" / "m" / "check.sh").write_text(check_script(delivered))
    (pytester.path / "credential.json").write_text(json.dumps(
        {"VAULT": {"username": planted["VAULT_USERNAME"], "password": planted["VAULT_PASSWORD"]}}))
    card = {"name": "secretive", "dockerfile": "docker/bb", "scripts": "scripts/m/check.sh", "n_gpus": "1",
            "args": "", "owner": "t", "training_precision": "", "tags": ["secretive"], "cred": "VAULT",
            "env_vars": {"CARD_TOKEN": planted["CARD_TOKEN"]}}
    (pytester.path / "models.json").write_text(json.dumps([card]))
    monkeypatch.setenv("MAD_SECRETS_HFKEY", planted["MAD_SECRETS_HFKEY"])
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    args = session_args(k8s_namespace, k8s_cluster.kubeconfig, "secretive")
    context = json.loads(args[args.index("--mad-context") + 1])
    context["docker_env_vars"] = {"HF_TOKEN": planted["HF_TOKEN"], "MY_PASSWORD": planted["MY_PASSWORD"]}
    context["env_vars"] = {"TOP_TOKEN": planted["TOP_TOKEN"]}
    args[args.index("--mad-context") + 1] = json.dumps(context)
    result = pytester.runpytest_subprocess("-n", "0", "--mad-keep-alive", *args, timeout=300)
    output = result.stdout.str() + result.stderr.str()
    result.assert_outcomes(passed=1)
    perf = (pytester.path / "perf.csv").read_text()
    assert f",{len(delivered)},secrets_received," in perf  # each secret reached the model

    with k8s_cluster.api_client() as api:
        texts = object_texts(api, k8s_namespace)
        secrets = client.CoreV1Api(api).list_namespaced_secret(k8s_namespace).items
    assert any(name.startswith("job/") for name in texts) and any(":payload.tgz:" in name for name in texts)
    assert any(s.type == "Opaque" for s in secrets)  # where the values belong
    for path in pytester.path.rglob("*"):
        inputs = ("credential.json", "models.json")  # the user's own files, where the values were planted
        if path.is_file() and path.name not in inputs and not path.is_relative_to(pytester.path / "scripts"):
            texts[str(path.relative_to(pytester.path))] = path.read_text(errors="replace")
    texts["session output"] = output
    forms = {name: (value, base64.b64encode(value.encode()).decode()) for name, value in planted.items()}
    leaked = sorted({name for name, values in forms.items() for where, text in texts.items()
                     if any(value in text for value in values)})
    print(f"secrets planted: {len(planted)}, leaked: {len(leaked)}; places read: {len(texts)}")
    assert leaked == [], [where for where, text in texts.items() if any(planted[n] in text for n in leaked)]
