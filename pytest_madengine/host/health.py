"""Are this machine's GPUs present and free? The node health check of ``slurm.enable_node_check``.

The vendor tools answer through an injectable runner (``host.Runner``): ``amd-smi list`` /
``rocm-smi`` / ``nvidia-smi --query-gpu`` for the GPUs (``host.amd.detect``, ``host.nvidia.detect``),
then ``amd-smi process --json`` or ``nvidia-smi --query-compute-apps`` for the processes holding
them. A GPU is busy when any process holds it; madengine's node selector looks for the same thing
(stale processes filling GPU memory). Unreadable output never raises: it reads as "nothing found".
"""
from __future__ import annotations

from dataclasses import dataclass

from . import GpuInfo, GpuProcess, Runner


@dataclass(frozen=True)
class GpuHealth:
    """What the check found: ``problems`` is empty when the node may run the model."""

    vendor: str  # "AMD", "NVIDIA" or "NONE"
    gpus: tuple[GpuInfo, ...]
    processes: tuple[GpuProcess, ...]  # the processes holding the GPUs that were checked
    processes_listed: bool  # False: no process tool answered, so "busy" was not checked
    problems: tuple[str, ...]

    @property
    def healthy(self) -> bool:
        return not self.problems

    def report(self) -> str:
        """A few lines for the run's log: GPUs found, processes, problems."""
        names = ", ".join(sorted({gpu.product for gpu in self.gpus if gpu.product})) or "no product name"
        lines = [f"{self.vendor}: {len(self.gpus)} GPU(s) ({names})" if self.gpus else "no GPU found"]
        lines += [f"GPU {'?' if p.gpu is None else p.gpu}: {p.describe()}" for p in self.processes]
        if self.gpus and not self.processes_listed:
            lines.append("busy GPUs not checked: the process listing (amd-smi process / nvidia-smi) did not answer")
        return "\n".join(lines + list(self.problems))


def _gpus_and_processes(run: Runner) -> tuple[str, list[GpuInfo], list[GpuProcess] | None]:
    from . import amd, nvidia

    gpus = amd.detect(run)
    if gpus:
        text = run(list(amd.AMD_SMI_PROCESS))
        return "AMD", gpus, None if text is None else amd.parse_amd_smi_process_json(text)
    gpus = nvidia.detect(run)
    if gpus:
        text = run(list(nvidia.COMPUTE_APPS))
        # nvidia-smi prints nothing when no process holds a GPU: an empty listing, not a silent tool
        return "NVIDIA", gpus, [] if text is None else nvidia.parse_nvidia_smi_compute_apps(text, gpus)
    return "NONE", [], []


def check_gpus(run: Runner, *, required: int, indices: tuple[int, ...] = ()) -> GpuHealth:
    """Check that ``required`` GPUs are present and none of ``indices`` (all GPUs when empty) is busy.

    ``indices`` are the GPUs SLURM gave the job on this node (``SLURM_JOB_GPUS``), when it says.
    Problems name the GPU and the process ("GPU 0 is busy: pid 4242 (python3, 61.0 GiB)").
    """
    vendor, gpus, processes = _gpus_and_processes(run)
    problems = []
    if len(gpus) < required:
        problems.append(f"{len(gpus)} GPU(s) found, {required} needed"
                        + ("" if gpus else " (no answer from amd-smi, rocm-smi or nvidia-smi)"))
    present = {gpu.index for gpu in gpus}
    missing = [index for index in indices if index not in present]
    if missing and gpus:
        problems.append(f"GPU(s) {', '.join(map(str, missing))} given by SLURM are not present")
    watched = set(indices) if indices else present
    holding = [p for p in processes or [] if p.gpu is None or p.gpu in watched]
    problems += [f"GPU {'?' if p.gpu is None else p.gpu} is busy: {p.describe()}" for p in holding]
    return GpuHealth(vendor=vendor, gpus=tuple(gpus), processes=tuple(holding),
                     processes_listed=processes is not None, problems=tuple(problems))
