"""Real test infrastructure: scripts that start Docker, base images, a registry and SLURM."""
