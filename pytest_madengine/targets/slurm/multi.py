"""The slurm_multi launcher: the card's own SLURM script, run bare metal as madengine's wrapper runs it.

madengine (``deployment/slurm.py:_prepare_slurm_multi_script``) wraps the script in a job with
``--partition/--nodes/--ntasks/--gpus-per-node/--time/--exclusive/--reservation/--nodelist`` from the
``slurm`` section and exports the card's ``env_vars``, the context's top-level ``env_vars`` (which win),
``xP``/``yD`` of ``distributed.sglang_disagg`` (unless set) and ``DOCKER_IMAGE_NAME`` (the run's image).
Here those settings (and ``account``, ``qos``, ``constraint``, ``exclude``, ``mem``, ``extra_sbatch_options``)
are sbatch arguments, which override the script's own ``#SBATCH`` lines as madengine's wrapper directives
do. The variables reach the job through sbatch's environment (``--export=ALL``), so a value may hold commas,
blanks or newlines; the card's ``args`` are split as a shell splits them (quoted parts stay whole) and become
the script's argv. Nothing is put into a shell string.

The job's results: the first CSV found of ``MAD_OUTPUT_CSV`` (in the run dir), the card's
``multiple_results`` next to the script, then madengine's places (``_collect_slurm_multi_results``):
``slurm.results_dir/perf*.csv``, ``/shared_inference/<user>/<job id>/perf.csv`` (and
``.../model_blog_logs/<job id>/perf.csv``), ``slurm_output/perf_csv/*<job id>*.csv`` and ``perf.csv`` (each
in the script's directory, then the package root); only files written since the job was submitted.
"""
from __future__ import annotations

import getpass
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...cards import ModelCard
from ...errors import MadError
from ...workload.launchers import DEFAULT_MASTER_PORT
from .config import JobConfig
from .jobs import SlurmCli

SHARED_INFERENCE = Path("/shared_inference")


def card_script(card: ModelCard, package_root: Path) -> Path:
    script = package_root / card.scripts
    if not script.is_file():
        raise MadError(f"SLURM script {card.scripts} does not exist", where=f"{card.source}: card {card.name!r}",
                       fix="point 'scripts' at the card's .slurm/.sbatch script")
    return script


def script_args(card: ModelCard) -> list[str]:
    """The card's ``args`` (with the context's ``model_args``) as argv, split as a shell would."""
    try:
        return shlex.split(card.full_args)
    except ValueError as exc:
        raise MadError(f"args {card.full_args!r} cannot be split into arguments ({exc})",
                       where=f"{card.source}: card {card.name!r}", fix="close the quote in 'args'") from None


def _disagg_split(card: ModelCard, context: dict[str, Any]) -> dict[str, str]:
    """``xP``/``yD`` from ``distributed.sglang_disagg`` (the card's, else the context's), as madengine."""
    split = (card.distributed or {}).get("sglang_disagg") or (context.get("distributed") or {}).get("sglang_disagg")
    if not isinstance(split, dict):
        return {}
    return {"xP": str(split.get("prefill_nodes", 1)), "yD": str(split.get("decode_nodes", 1))}


def job_environment(request: Any, context: dict[str, Any], config: JobConfig, run_dir: Path) -> dict[str, str]:
    """The job's variables: card ``env_vars`` < context ``env_vars`` < ``docker_env_vars`` < ours."""
    card = request.card
    env = {str(k): str(v) for k, v in card.env_vars.items()}
    env.update({str(k): str(v) for k, v in (context.get("env_vars") or {}).items()})
    env.update({str(k): str(v) for k, v in (context.get("docker_env_vars") or {}).items()})
    env.update({k: v for k, v in _disagg_split(card, context).items() if k not in env})
    if request.image is not None and request.image.name:
        env["DOCKER_IMAGE_NAME"] = request.image.name
    results_csv = run_dir / Path(card.multiple_results or "results.csv").name
    env.update(MAD_MODEL_NAME=card.name, MAD_OUTPUT_CSV=str(results_csv), MAD_RUN_DIR=str(run_dir),
               NNODES=str(config.nnodes), NPROC_PER_NODE=str(config.nproc_per_node),
               MASTER_PORT=str(config.master_port or DEFAULT_MASTER_PORT), MAD_DEPLOYMENT_TYPE="slurm")
    return env


def sbatch_options(config: JobConfig) -> list[str]:
    """The ``slurm`` section as sbatch arguments (one task per node, as madengine's wrapper asks)."""
    options = [f"--nodes={config.nnodes}", f"--ntasks={config.nnodes}"]
    named = (("partition", config.partition), ("time", config.time), ("reservation", config.reservation),
             ("nodelist", config.nodelist), ("account", config.account), ("qos", config.qos),
             ("constraint", config.constraint), ("exclude", config.exclude), ("mem", config.mem))
    options += [f"--{name}={value}" for name, value in named if value]
    if config.gpus_per_node:
        options.append(f"--gpus-per-node={config.gpus_per_node}")
    if config.exclusive:
        options.append("--exclusive")
    return options + list(config.extra_sbatch_options)


@dataclass(frozen=True)
class ResultLookup:
    """Where a slurm_multi job's results may be, looked at once the job has ended (see the module doc)."""

    run_dir: Path
    script_dir: Path
    package_root: Path
    multiple_results: str
    results_dir: str
    submitted: float  # time.time() at submission: older files belong to other runs

    def candidates(self, job_id: str) -> list[Path]:
        name = self.multiple_results or "results.csv"
        found = [self.run_dir / Path(name).name, self.script_dir / name]
        if self.results_dir:
            found += sorted(Path(self.results_dir).glob("perf*.csv"))
        user = getpass.getuser()
        found += [SHARED_INFERENCE / user / job_id / "perf.csv",
                  SHARED_INFERENCE / user / "model_blog_logs" / job_id / "perf.csv"]
        for base in dict.fromkeys((self.script_dir, self.package_root)):
            found += sorted((base / "slurm_output" / "perf_csv").glob(f"*{job_id}*.csv"))
        found += [base / "perf.csv" for base in dict.fromkeys((self.script_dir, self.package_root))]
        return found

    def find(self, job_id: str) -> list[Path]:
        """The first candidate written since submission, as a one-item list ([] when none is)."""
        for path in self.candidates(job_id):
            try:
                if path.is_file() and path.stat().st_size > 0 and path.stat().st_mtime >= self.submitted - 1:
                    return [path]
            except OSError:
                continue  # an unreadable shared mount is as good as no file there
        return []


def submit_card_script(cli: SlurmCli, request: Any, config: JobConfig, run_dir: Path, package_root: Path,
                       context: dict[str, Any], *, submitted: float, comment: str) -> tuple[str, ResultLookup]:
    """Submit the card's script (``comment``: the session's job tag); returns the job id and where its
    results will be looked for."""
    card = request.card
    script = card_script(card, package_root)
    env = job_environment(request, context, config, run_dir)
    argv = [f"--job-name=mad-{card.short_name}"[:120], f"--output={run_dir / 'job.out'}",
            f"--chdir={script.parent}", f"--comment={comment}", *sbatch_options(config), "--export=ALL",
            str(script), *script_args(card)]
    slurm = (context.get("slurm") or {}) if isinstance(context.get("slurm"), dict) else {}
    card_slurm = (card.raw.get("slurm") or {}) if isinstance(card.raw.get("slurm"), dict) else {}
    lookup = ResultLookup(run_dir=run_dir, script_dir=script.parent, package_root=package_root,
                          multiple_results=card.multiple_results or "",
                          results_dir=str(slurm.get("results_dir") or card_slurm.get("results_dir") or ""),
                          submitted=submitted)
    return cli.sbatch(argv, env=env), lookup
