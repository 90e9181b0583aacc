"""The slurm_multi launcher: the card's own SLURM script, submitted as is (bare metal).

The script starts its own containers on the nodes it asks for. We add only what sbatch takes
on its command line (job name, output file, working dir) and the MAD variables in its
environment; results come from the CSV it writes (``MAD_OUTPUT_CSV``, or the card's
``multiple_results`` next to the script).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ...cards import ModelCard
from ...errors import MadError
from .config import JobConfig
from .jobs import SlurmCli

DEFAULT_MASTER_PORT = 29500  # the card's script starts its own processes; madengine gives it 29500


def card_script(card: ModelCard, package_root: Path) -> Path:
    script = package_root / card.scripts
    if not script.is_file():
        raise MadError(f"SLURM script {card.scripts} does not exist", where=f"{card.source}: card {card.name!r}",
                       fix="point 'scripts' at the card's .slurm/.sbatch script")
    return script


def result_candidates(card: ModelCard, run_dir: Path, package_root: Path) -> list[Path]:
    name = card.multiple_results or "results.csv"
    return [run_dir / Path(name).name, card_script(card, package_root).parent / name]


def job_environment(card: ModelCard, context: dict[str, Any], config: JobConfig, run_dir: Path) -> dict[str, str]:
    env = {str(k): str(v) for k, v in card.env_vars.items()}
    env.update({str(k): str(v) for k, v in (context.get("docker_env_vars") or {}).items()})
    results_csv = run_dir / Path(card.multiple_results or "results.csv").name
    env.update(MAD_MODEL_NAME=card.name, MAD_OUTPUT_CSV=str(results_csv),
               MAD_RUN_DIR=str(run_dir), NNODES=str(config.nnodes), NPROC_PER_NODE=str(config.nproc_per_node),
               MASTER_PORT=str(config.master_port or DEFAULT_MASTER_PORT))
    return env


def submit_card_script(cli: SlurmCli, request: Any, config: JobConfig, run_dir: Path,
                       package_root: Path, context: dict[str, Any]) -> tuple[str, list[Path]]:
    card = request.card
    script = card_script(card, package_root)
    env = job_environment(card, context, config, run_dir)
    bad = [key for key, value in env.items() if "," in value or "\n" in value]
    if bad:  # sbatch --export splits on commas
        raise MadError(f"env var(s) {', '.join(bad)} contain a comma or newline", where=f"card {card.name!r}",
                       fix="slurm_multi passes variables through sbatch --export; avoid commas in values")
    argv = [f"--job-name=mad-{card.short_name}"[:120], f"--output={run_dir / 'job.out'}",
            f"--chdir={script.parent}", "--export=" + ",".join(["ALL", *(f"{k}={v}" for k, v in env.items())]),
            str(script), *card.full_args.split()]
    return cli.sbatch(argv), result_candidates(card, run_dir, package_root)
