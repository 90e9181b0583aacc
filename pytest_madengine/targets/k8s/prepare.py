"""Everything a run needs before the API is called: model dir, payload, environment, the objects.

What runs in the pod is what runs in the local target's container: ``workload.steps.plan_command``
prepares the model dir and the step command, ``workload.environment.mad_environment`` gives the
``MAD_*`` variables (``ROCM_PATH`` from the image's ``ENV`` when this host's Docker engine has the
image, the controller's ``HOST_PASS_THROUGH`` variables); the launcher and job variables come from
``objects.rank_env``. Every secret variable (``split_secret_env``) goes into a Secret the
pod reads (``envFrom``), registry credentials of the image's registry into an image pull Secret:
never into the Job spec, a log or a manifest. The system environment capture and the tools'
``outputs`` come back through the pod log (``payload.CARRY_VAR``).
"""
from __future__ import annotations

import base64
import dataclasses
import json
import os
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...errors import MadError
from ...fileio import locked, safe_name
from ...images.client import image_env
from ...workload.credentials import credential_env
from ...workload.environment import mad_environment
from ...workload.launchers import yield_to_env_vars
from ...workload.run import RunRequest
from ...workload.secrets import is_secret_key
from ...workload.steps import plan_command
from ...workload.sysenv import SYS_ENV_DIR, sys_env_mode
from ...workload.tools import multi_node_context
from . import objects
from .config import K8sConfig, warn_once
from .payload import CARRY_VAR, RESULTS_MARK_VAR, build_payload

SECRET_PREFIX = "MAD_SECRETS_"
DOCKER_HUB_SERVER = "https://index.docker.io/v1/"
IMAGE_LOADER_TIMEOUT = 900


@dataclass(frozen=True)
class Prepared:
    inputs: objects.JobInputs
    manifests: list[dict[str, Any]]  # in creation order: ConfigMap, Secrets, Service, Job
    results_mark: str
    outputs: list[str] = field(default_factory=list)  # tool outputs (model-dir-relative globs)
    secret_values: list[str] = field(default_factory=list, repr=False)  # never written by the env capture


def pod_environment(request: RunRequest, config: K8sConfig, step_env: dict[str, str]) -> dict[str, str]:
    """The pod's variables: madengine's MAD_* (GPUs as the device plugin shows them: 0..n-1) + steps."""
    gpus = tuple(range(config.gpu_count)) if config.gpu_resource_name else ()
    env = mad_environment(request.card, request.context, gpus, devices_passed=True,
                          image_env=image_env(request.image.name))
    env["MAD_SYSTEM_NGPUS"] = str(config.gpu_count)
    env.update(step_env)
    return env


def _carried(request: RunRequest, outputs: list[str]) -> list[str]:
    """Model-dir-relative names / globs the pod sends back: the env capture's dir (when it runs) and the
    tools' ``outputs``. A name with blanks cannot travel in the space-separated ``CARRY_VAR``."""
    context = getattr(request.context, "data", None) or {}
    mode = sys_env_mode(context, disabled_by_option=bool(getattr(request.settings, "no_sys_env", False)))
    carried = ([SYS_ENV_DIR] if mode else []) + list(outputs)
    blank = [name for name in carried if not name.strip() or any(c.isspace() for c in name)]
    if blank:
        raise MadError(f"tool output name {blank[0]!r} has blanks, which the Kubernetes target cannot send back",
                       where="context 'tools': outputs", fix="name the outputs without spaces (globs are fine)")
    return carried


def split_secret_env(env: dict[str, str], names: set[str], known: list[str]) -> dict[str, str]:
    """Move every secret variable out of ``env`` (in place) and return them, for the run's Secret: the
    secret-looking names (``workload.secrets``: ``HF_TOKEN``, ``MY_PASSWORD`` from the context's
    ``docker_env_vars`` or the card's ``env_vars``), ``MAD_SECRETS_*``, the card's ``cred`` variables
    (``names``), and any variable whose value holds a secret value (the env capture's hide list)."""
    values = {v for v in [*known, *(env[k] for k in env if is_secret_key(k) or k.startswith(SECRET_PREFIX)
                                     or k in names)] if v}
    moved = [k for k, v in env.items() if is_secret_key(k) or k.startswith(SECRET_PREFIX) or k in names
             or any(secret in v for secret in values)]
    return {k: env.pop(k) for k in moved}


def _registry_secret_data(image: str, package_root: Path) -> str:
    """The ``.dockerconfigjson`` for the image's registry when credentials exist, else ''."""
    from ...images.registry import find_credentials, registry_of_image

    registry = registry_of_image(image)
    creds = find_credentials(registry, package_root, os.environ)
    if creds is None:
        return ""
    server = registry or DOCKER_HUB_SERVER
    token = base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode("ascii")
    config = {"auths": {server: {"username": creds.username, "password": creds.password, "auth": token}}}
    return json.dumps(config)


def _warn_docker_options(request: RunRequest) -> None:
    if request.card.raw.get("additional_docker_run_options"):
        warn_once("additional_docker_run_options", f"card {request.card.name}",
                  "holds docker run flags, which a Kubernetes pod does not take; they are ignored "
                  "(use k8s settings: resources, host_ipc, host_paths)")
    if request.adjust_options is not None:
        warn_once("pytest_madengine_docker_run_options", "conftest.py / plugin",
                  "adjusts Docker SDK options of the local target only; it is not applied to Kubernetes "
                  "pods (pytest_madengine_container_options reaches every target)")
    for key in [key for key in request.container_options if key != "environment"]:
        warn_once(key, "pytest_madengine_container_options",
                  "is not applied to a Kubernetes pod (only 'environment' is); use the k8s settings "
                  "host_paths, resources or host_ipc instead")


def prepare_run(request: RunRequest, config: K8sConfig, package_root: Path, labels: dict[str, str], *,
                run_name: str) -> Prepared:
    """Model dir, payload and objects of one run. Raises MadError for what the user must fix."""
    if config.nnodes > 1:  # madengine's multi-node profiling rule
        context = dataclasses.replace(request.context, data=multi_node_context(request.context.to_json(), config.nnodes))
        request = dataclasses.replace(request, context=context)
    request.work_dir.mkdir(parents=True, exist_ok=True)
    model_dir = request.work_dir / "model"
    plan = plan_command(request, package_root, model_dir)
    if plan.data.volumes:
        raise MadError(f"the card's data is mounted from this host ({', '.join(plan.data.volumes)}), which a pod "
                       "cannot reach", where=f"card {request.card.name}: data",
                       fix="put the data on a volume the cluster has and name it in k8s.data_pvc or k8s.host_paths")
    _warn_docker_options(request)
    payload = build_payload(model_dir, package_root, where=f"card {request.card.name}: scripts")
    mark = f"----- pytest-madengine results {uuid.uuid4().hex} -----"
    env = pod_environment(request, config, plan.env)
    env.update({str(k): str(v) for k, v in dict(request.container_options.get("environment") or {}).items()})
    if config.data_pvc:
        env.setdefault("MAD_DATAHOME", config.data_mount_path)
    env.update(yield_to_env_vars(objects.rank_env(run_name, config, model_name=request.card.name), config.launcher, env))
    secret_env = split_secret_env(env, set(credential_env(request.card, package_root)), plan.secret_values)
    carried = _carried(request, plan.outputs)
    if carried:
        env[CARRY_VAR] = " ".join(carried)
    namespace = config.namespace
    manifests = [objects.configmap(run_name, labels, namespace, payload)]
    env_secret = f"{run_name}-env" if secret_env else ""
    if secret_env:
        manifests.append(objects.env_secret(env_secret, labels, namespace, secret_env))
    pull = list(config.image_pull_secrets)
    if config.secret_strategy == "from_local_credentials":
        dockerconfig = _registry_secret_data(request.image.name, package_root)
        if dockerconfig:
            manifests.append(objects.registry_secret(f"{run_name}-pull", labels, namespace, dockerconfig))
            pull.insert(0, f"{run_name}-pull")
    inputs = objects.JobInputs(name=run_name, labels=labels, image=request.image.name, command=plan.command,
                               env={**env, RESULTS_MARK_VAR: mark},
                               env_secret=env_secret, pull_secrets=tuple(pull))
    if config.nnodes > 1:
        manifests.append(objects.headless_service(inputs, namespace, config.master_port))
    manifests.append(objects.job(inputs, config, namespace))
    return Prepared(inputs, manifests, mark, outputs=list(plan.outputs),
                    secret_values=[*plan.secret_values, *secret_env.values()])


def load_image(config: K8sConfig, image: str, session_dir: Path) -> None:
    """Run ``k8s.image_loader`` + image once per session and image (e.g. ``kind load docker-image``)."""
    if not config.image_loader:
        return
    done = session_dir / "k8s-images" / f"{safe_name(image)}.loaded"
    done.parent.mkdir(parents=True, exist_ok=True)
    with locked(done.with_suffix(".lock")):
        if done.is_file():
            return
        argv = [*config.image_loader, image]
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=IMAGE_LOADER_TIMEOUT, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise MadError(f"the image loader could not run: {exc}", where="k8s.image_loader",
                           fix="give a command that exists, as a list; the image name is appended") from None
        if proc.returncode != 0:
            tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
            raise MadError(f"{argv[0]} exited {proc.returncode} loading {image}: {tail}", where="k8s.image_loader",
                           fix="make the loader work by hand first (it gets the image name as its last argument)")
        done.write_text(image + "\n")
