"""Render a job script from the package's jinja2 templates (one per launcher family)."""
from __future__ import annotations

import shlex
from dataclasses import dataclass
from importlib import resources
from typing import Any

from ...workload.launchers import DEFAULT_MASTER_PORT
from .config import JobConfig


@dataclass(frozen=True)
class ScriptInputs:
    """What the script needs besides the job config: names and paths of this run."""

    model: str
    job_name: str
    spec_path: str
    rc_path: str
    python: str
    pythonpath: str = ""
    in_allocation: bool = False  # steps inside an existing allocation share its job id


def _environment() -> Any:
    import jinja2

    folder = resources.files("pytest_madengine").joinpath("templates/slurm")
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(folder)), undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
                             autoescape=False)
    env.filters["q"] = lambda value: shlex.quote(str(value))
    return env


def render_job_script(config: JobConfig, inputs: ScriptInputs) -> str:
    template = _environment().get_template(config.launcher.template)
    return template.render(
        model=inputs.model, job_name=inputs.job_name, spec_path=inputs.spec_path,
        rc_path=inputs.rc_path, python=inputs.python, pythonpath=inputs.pythonpath,
        in_allocation=inputs.in_allocation, default_master_port=DEFAULT_MASTER_PORT,
        launcher=config.launcher.name, family=config.launcher.family,
        launcher_env=list(config.launcher.env),
        nnodes=config.nnodes, nproc_per_node=config.nproc_per_node,
        gpus_per_node=config.gpus_per_node, master_port=config.master_port,
        partition=config.partition, time=config.time, exclusive=config.exclusive,
        reservation=config.reservation, nodelist=config.nodelist, account=config.account,
        qos=config.qos, extra_sbatch_options=config.extra_sbatch_options,
        constraint=config.constraint, exclude=config.exclude, mem=config.mem, modules=config.modules,
        job_env=sorted(config.script_env.items()),
    )
