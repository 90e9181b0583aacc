"""SLURM helpers of the slurm target: job configuration, rendering, the job CLI, the spec file."""
