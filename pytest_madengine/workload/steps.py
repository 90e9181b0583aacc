"""What runs inside a model's container: the model dir's content and the ordered steps.

The model dir gets the card's scripts dir (or, for a card with ``url``, a clone of that repo with
the scripts copied into it, as madengine does). The steps are the card's data downloads (custom
data providers, see ``dataproviders``), the context's pre scripts, the model command (wrapped by
profiling tools and ``encapsulate_script``), then the post scripts.
A single step runs as a plain argv; several go through a fixed runner script that receives each
step's argv in environment variables, so user data never becomes shell text.
"""
from __future__ import annotations

import os
import shlex
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..cards import ModelCard
from ..errors import MadError
from .credentials import CardCredential, card_credential
from .dataproviders import DataPlan, resolve_data
from .gitclone import clone_into
from .paths import confined, is_inside
from .run import RunRequest
from .scripts import package_scripts
from .sysenv import capture_step, sys_env_mode
from .tools import CATALOGUE_DIR, MODEL_TOOLS_DIR, apply_tools

# Runs the steps given as MAD_STEP_<i>_KIND / _ARGC / _ARG_<j>. The eval lines only expand
# variable *names* built from integers; values are never parsed as shell code.
# Pre scripts and the model run while everything succeeded so far; post scripts always run.
# The exit status is the first failing step's.
RUNNER = r'''
mad_step() {
  mad_i=$1; eval "mad_n=\${MAD_STEP_${mad_i}_ARGC}"; set --; mad_j=0
  while [ "$mad_j" -lt "$mad_n" ]; do
    eval "mad_a=\${MAD_STEP_${mad_i}_ARG_${mad_j}}"; set -- "$@" "$mad_a"; mad_j=$((mad_j+1))
  done
  "$@"
}
mad_rc=0; mad_k=0
while [ "$mad_k" -lt "$MAD_STEP_COUNT" ]; do
  eval "mad_kind=\${MAD_STEP_${mad_k}_KIND}"
  if [ "$mad_kind" = post ] || [ "$mad_rc" -eq 0 ]; then
    mad_step "$mad_k"; mad_code=$?
    [ "$mad_rc" -eq 0 ] && mad_rc=$mad_code
  fi
  mad_k=$((mad_k+1))
done
exit $mad_rc
'''


@dataclass
class StepPlan:
    """The container command and what it needs besides the image."""

    command: list[str]
    # runner steps + tool env vars + MAD_DATAHOME + the card's <CRED>_<KEY> variables
    env: dict[str, str] = field(default_factory=dict)
    git_commit: str = ""  # HEAD of the card's cloned url
    data: DataPlan = field(default_factory=DataPlan)  # data mounts, and what perf.csv reports after the run
    outputs: list[str] = field(default_factory=list)  # tool outputs (model-dir-relative globs) for the log dir
    secret_values: list[str] = field(default_factory=list, repr=False)  # never to be written by the env capture


def script_argv(path: Path, args: str, where: str) -> list[str]:
    interpreter = "python3" if path.name.endswith(".py") else "bash"
    try:
        return [interpreter, path.name, *shlex.split(args or "")]
    except ValueError as exc:
        raise MadError(f"args {args!r} cannot be split ({exc})", where=where, fix="balance the quotes") from None


def model_script(card: ModelCard, package_root: Path) -> tuple[Path, Path]:
    """(scripts dir to copy, script) — a dir means its run.sh, as in madengine."""
    where = f"{card.source}: card {card.name!r}, field 'scripts'"
    path = confined(package_root, card.scripts, where=where, field="scripts")
    script = path / "run.sh" if path.is_dir() else path
    if not script.is_file() or not is_inside(package_root, script):
        raise MadError(f"script {script.relative_to(Path(package_root).resolve())} does not exist", where=where,
                       fix="point 'scripts' at the model's script (or a dir with run.sh)")
    return script.parent, script


def prepare_model_dir(request: RunRequest, package_root: Path, model_dir: Path,
                      credential: CardCredential | None = None) -> str:
    """Fill the model dir; return the clone's commit ('' without a url)."""
    card = request.card
    scripts_dir, _ = model_script(card, package_root)
    if model_dir.exists():
        shutil.rmtree(model_dir)
    commit = ""
    if card.url:
        commit = clone_into(card, model_dir, cache_dir=request.cache_dir, credential=credential)
    shutil.copytree(scripts_dir, model_dir, symlinks=True, dirs_exist_ok=True)
    return commit


def plan_command(request: RunRequest, package_root: Path, model_dir: Path) -> StepPlan:
    """Prepare the model dir; return the container command, its env, the clone's commit and the data plan."""
    card, context = request.card, getattr(request.context, "data", None) or {}
    settings = request.settings
    data = resolve_data(card, context, package_root, data_file=getattr(settings, "data_config", None),
                        force_mirror_local=getattr(settings, "force_mirror_local", None))  # errors come fast
    credential = card_credential(card, package_root)
    commit = prepare_model_dir(request, package_root, model_dir, credential)
    if card.multiple_results:  # checked again after the run: the model may plant a symlink
        confined(model_dir, card.multiple_results, where=f"{card.source}: card {card.name!r}",
                 field="multiple_results", root_name="the model's working directory")
    _, script = model_script(card, package_root)
    where = f"{card.source}: card {card.name!r}"
    pre = package_scripts(context.get("pre_scripts"), package_root, "context 'pre_scripts'")
    post = package_scripts(context.get("post_scripts"), package_root, "context 'post_scripts'")
    model = script_argv(script, card.full_args, where)
    tooling = apply_tools(context.get("tools"), package_root, model=model, pre=pre, post=post,
                          tools_file=getattr(settings, "tools_config", None))
    encapsulate = str(context.get("encapsulate_script") or "")
    model = shlex.split(encapsulate) + tooling.model
    for item in (*tooling.pre, *tooling.post):
        shutil.copy2(item.path, model_dir / item.path.name)
    if tooling.needs_catalogue:
        shutil.copytree(CATALOGUE_DIR, model_dir / MODEL_TOOLS_DIR, dirs_exist_ok=True)
    skip = bool(getattr(request.settings, "skip_run", False))
    secrets = credential.env() if credential else {}
    secrets.update({k: v for k, v in os.environ.items() if k.startswith("MAD_SECRETS_")})
    capture, capture_env = _sys_env(request, context, model_dir, secrets)
    ordered = (capture + data.steps + [("pre", script_argv(s.path, s.args, s.where)) for s in tooling.pre]
               + ([] if skip else [("model", model)])
               + [("post", script_argv(s.path, s.args, s.where)) for s in tooling.post])
    command, env = _runner(ordered, skip)
    cred_env = credential.env() if credential else {}
    return StepPlan(command=command, env={**cred_env, **tooling.env, **data.env, **capture_env, **env},
                    git_commit=commit, data=data, outputs=tooling.outputs, secret_values=list(secrets.values()))


def _sys_env(request: RunRequest, context: dict[str, Any], model_dir: Path,
             secrets: dict[str, str]) -> tuple[list[tuple[str, list[str]]], dict[str, str]]:
    """The system environment capture step (first, so its GPU table tops the log) and its env; none when off."""
    mode = sys_env_mode(context, disabled_by_option=bool(getattr(request.settings, "no_sys_env", False)))
    if mode is None:
        return [], {}
    shutil.copytree(CATALOGUE_DIR, model_dir / MODEL_TOOLS_DIR, dirs_exist_ok=True)
    argv, env = capture_step(mode, secrets)
    return [("pre", argv)], env


def _runner(ordered: list[tuple[str, list[str]]], skip: bool) -> tuple[list[str], dict[str, str]]:
    if len(ordered) == 1 and not skip:
        return ordered[0][1], {}
    env = {"MAD_STEP_COUNT": str(len(ordered))}
    for index, (kind, argv) in enumerate(ordered):
        env[f"MAD_STEP_{index}_KIND"] = kind
        env[f"MAD_STEP_{index}_ARGC"] = str(len(argv))
        env.update({f"MAD_STEP_{index}_ARG_{j}": arg for j, arg in enumerate(argv)})
    return ["bash", "-c", RUNNER, "mad-runner"], env
